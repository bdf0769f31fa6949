"""The board top: the generated network behind a UART host link, with an activity LED.

:class:`UartNetworkTop` has only three one-bit ports (``rx``, ``tx``, ``led``), so the very same
component is placed on a board by :class:`BoardTop` (pins from the amaranth-boards platform) and
simulated under Verilator with a modelled UART by :mod:`boards.sim`.
"""
from __future__ import annotations

from amaranth.hdl import ClockDomain, Elaboratable, Instance, Module, Signal
from amaranth.lib import io, wiring
from amaranth.lib.wiring import In, Out

from amos_hw.lib.checks import positive_int
from amos_hw.lib.hostlink import HostLink
from amos_hw.lib.hostproto import FRAME_TIMEOUT_S, Info
from amos_hw.lib.spiflash import SPI_FLASH
from amos_hw.lib.uart import UARTRx, UARTTx
from boards.pll import Ecp5Pll, Ice40Pll

__all__ = ["BoardTop", "UartNetworkTop", "network_info"]

#: Seconds the activity LED stays lit after a frame or a result.
LED_HOLD_S = 0.05


def network_info(network, *, clk_hz: int, baud: int, name: str) -> Info:
    """The :class:`~amos_hw.lib.hostproto.Info` a board top answers for ``network``."""
    return Info(
        input_shape=tuple(int(v) for v in network.input_shape),
        num_classes=int(network.num_classes),
        logit_bytes=(int(network.logit_width) + 7) // 8,
        clk_hz=int(clk_hz),
        cycles_per_image=int(network.cycles_per_image),
        latency_cycles=int(network.latency_cycles),
        baud=int(baud),
        name=str(name)[:8],
        spike_counts=bool(getattr(network, "spike_layers", ())),
    )


class UartNetworkTop(wiring.Component):
    """Network + host link + 8N1 UART + activity LED.

    Parameters
    ----------
    network : amos_hw.top.NetworkTop
        The generated network (``pixels`` in, ``result`` out).
    clk_hz : int
        Frequency of the ``sync`` clock.
    baud : int
        UART bit rate; ``clk_hz / baud`` is rounded to the nearest integer divisor (at least 4).
    name : str
        Model name reported by ``CMD_INFO`` (8 characters at most are kept).
    frame_timeout : int, optional
        Cycles of silence that drop a partial frame; default
        :data:`~amos_hw.lib.hostproto.FRAME_TIMEOUT_S` seconds.
    led_hold : int, optional
        Cycles the LED stays on after each event, rounded up to a power of two; default
        :data:`LED_HOLD_S` seconds.

    Members
    -------
    rx : In(1)
        Serial line from the host.
    tx : Out(1)
        Serial line to the host.
    led : Out(1)
        Activity: lit while frames or results pass.
    """

    def __init__(self, network, *, clk_hz: int, baud: int, name: str = "",
                 frame_timeout: int | None = None, led_hold: int | None = None):
        positive_int("clk_hz", clk_hz)
        positive_int("baud", baud)
        divisor = round(clk_hz / baud)
        if divisor < 4:
            raise ValueError(f"baud {baud} is too fast for a {clk_hz} Hz clock: the UART needs at "
                             f"least 4 clock cycles per bit")
        self.network = network
        self.divisor = divisor
        self.clk_hz = clk_hz
        self.baud = baud
        self.info = network_info(network, clk_hz=clk_hz, baud=baud, name=name)
        self.frame_timeout = (frame_timeout if frame_timeout is not None
                              else max(1, round(FRAME_TIMEOUT_S * clk_hz)))
        self.led_hold = led_hold if led_hold is not None else max(1, round(LED_HOLD_S * clk_hz))
        members = {"rx": In(1, init=1), "tx": Out(1, init=1), "led": Out(1)}
        if hasattr(network, "flash"):  # weights read from the board's SPI flash
            members["flash"] = Out(SPI_FLASH)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.network = net = self.network
        m.submodules.uart_rx = urx = UARTRx(self.divisor)
        m.submodules.uart_tx = utx = UARTTx(self.divisor)
        m.submodules.link = link = HostLink(
            self.info, logit_width=int(net.logit_width), frame_timeout=self.frame_timeout,
            registered_class=bool(getattr(net, "registered_class", False)),
            load_port=hasattr(net, "load"))
        wiring.connect(m, urx.o, link.rx)
        wiring.connect(m, link.tx, utx.i)
        wiring.connect(m, link.pixels, net.pixels)
        wiring.connect(m, net.result, link.result)
        if hasattr(net, "load"):  # weights at run time (the shared engine on SPRAM)
            wiring.connect(m, link.load, net.load)
        if hasattr(net, "flash"):
            wiring.connect(m, net.flash, wiring.flipped(self.flash))
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx)]

        # an up-counter whose top bit ends the pulse: a plain carry chain (a down-counter with
        # a `!= 0` test became the critical path on the UP5K)
        bits = max(1, (self.led_hold - 1).bit_length())
        hold = Signal(bits + 1, init=1 << bits)
        with m.If(link.activity):
            m.d.sync += hold.eq(0)
        with m.Elif(~hold[-1]):
            m.d.sync += hold.eq(hold + 1)
        m.d.comb += self.led.eq(~hold[-1])
        return m


class BoardTop(Elaboratable):
    """:class:`UartNetworkTop` on an amaranth-boards platform's UART and first LED.

    Parameters
    ----------
    network : amos_hw.top.NetworkTop
    baud : int
    name : str
    uart : tuple, optional
        ``(resource name, number)`` of the UART; default ``("uart", 0)``.
    led : tuple, optional
        ``(resource name, number)`` of the LED; default ``("led", 0)``.
    led_field : str, optional
        Subsignal of the LED resource to drive (``"g"`` for an RGB LED); none for a plain LED.
    clock_mhz : float, optional
        Run the design from the PLL of the platform's family (:class:`boards.pll.Ecp5Pll`,
        :class:`boards.pll.Ice40Pll`) at this frequency or the nearest the PLL makes below it;
        default: the board oscillator.
    flash : tuple, optional
        ``(resource name, number)`` of the configuration flash's data pins (``cs``, ``copi``,
        ``cipo``, ``wp``, ``hold``; active-low ones as ``PinsN``) for a network that reads its
        weights from there. Its clock is the ECP5's ``USRMCLK`` (the configuration clock pin
        is not a user pin).
    """

    def __init__(self, network, *, baud: int, name: str, uart=("uart", 0), led=("led", 0),
                 led_field: str | None = None, clock_mhz: float | None = None,
                 flash: tuple | None = None):
        self.network = network
        self.clock_mhz = clock_mhz
        self.pll = None
        self.baud = baud
        self.name = name
        self.uart = uart
        self.led = led
        self.led_field = led_field
        self.flash = flash
        self.core = None

    def elaborate(self, platform):
        family = str(getattr(platform, "family", "")).lower()
        if hasattr(self.network, "flash") and (self.flash is None or family != "ecp5"):
            raise ValueError("this network reads its weights from the configuration flash: "
                             "the board must name its flash pins, and only the ECP5's USRMCLK "
                             "clock is supported")
        m = Module()
        clk_hz = int(platform.default_clk_frequency)
        if self.clock_mhz is not None:
            # the platform's family: "ecp5" (amaranth's LatticePlatform), "iCE40" (SiliconBlue)
            family = str(getattr(platform, "family", "")).lower()
            plls = {"ecp5": Ecp5Pll, "ice40": Ice40Pll}
            if family not in plls:
                raise ValueError(f"no PLL for the {family or type(platform).__name__} family: "
                                 f"leave clock_mhz out to run from the board oscillator")
            # ECP5: reset-less, the PLL resets the design through the global set/reset
            m.domains.sync = cd = ClockDomain("sync", reset_less=family == "ecp5")
            self.pll = pll = plls[family](clk_hz / 1e6, self.clock_mhz, cd)
            m.submodules.pll = pll
            clk_hz = pll.fout_hz
        self.core = core = UartNetworkTop(self.network, clk_hz=clk_hz, baud=self.baud,
                                          name=self.name)
        m.submodules.core = core
        uart = platform.request(*self.uart, dir="-")
        led = platform.request(*self.led, dir="-")
        if self.led_field is not None:
            led = getattr(led, self.led_field)
        m.submodules.rx_buf = rx_buf = io.Buffer("i", uart.rx)
        m.submodules.tx_buf = tx_buf = io.Buffer("o", uart.tx)
        m.submodules.led_buf = led_buf = io.Buffer("o", led)
        m.d.comb += [core.rx.eq(rx_buf.i), tx_buf.o.eq(core.tx), led_buf.o.eq(core.led)]
        if hasattr(core, "flash"):
            self._flash_pins(m, platform, core.flash)
        return m

    def _flash_pins(self, m, platform, pins):
        res = platform.request(*self.flash, dir="-")
        bufs = {}
        for name, direction in (("cs", "o"), ("copi", "o"), ("cipo", "i"), ("wp", "o"),
                                ("hold", "o")):
            bufs[name] = m.submodules[f"flash_{name}"] = io.Buffer(direction, getattr(res, name))
        # cs, wp and hold are PinsN: 1 asserts (drives low)
        m.d.comb += [bufs["cs"].o.eq(~pins.cs_n), bufs["copi"].o.eq(pins.copi),
                     pins.cipo.eq(bufs["cipo"].i), bufs["wp"].o.eq(0), bufs["hold"].o.eq(0)]
        m.submodules.usrmclk = Instance("USRMCLK", a_keep=1, i_USRMCLKI=pins.sck,
                                        i_USRMCLKTS=0)
