"""8N1 UART receiver and transmitter with :mod:`amaranth.lib.stream` byte interfaces.

Both run in the ``sync`` domain at ``divisor`` clock cycles per bit (baud = clock / divisor). The
line idles high; a frame is one start bit (low), eight data bits LSB first and one stop bit
(high).
"""
from __future__ import annotations

from amaranth.hdl import C, Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["UARTRx", "UARTTx", "check_divisor"]


def check_divisor(divisor) -> int:
    """Return ``divisor`` if it is an integer of at least 4 (the receiver samples mid-bit)."""
    if isinstance(divisor, bool) or not isinstance(divisor, int) or divisor < 4:
        raise ValueError(f"divisor must be an integer of at least 4, not {divisor!r}")
    return divisor


class UARTTx(wiring.Component):
    """UART transmitter.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit, at least 4.

    Members
    -------
    i : In(stream.Signature(8))
        Bytes to send. ``ready`` is high while the transmitter is idle.
    tx : Out(1)
        The serial line (idles high).

    A byte takes ``10 * divisor`` cycles; the next byte is accepted on the cycle after the stop
    bit ends.
    """

    def __init__(self, divisor: int):
        self._divisor = check_divisor(divisor)
        super().__init__({"i": In(stream.Signature(8)), "tx": Out(1, init=1)})

    @property
    def divisor(self) -> int:
        return self._divisor

    def elaborate(self, platform):
        m = Module()
        shreg = Signal(10, init=0x3FF)  # stop, data[7:0], start; shifted out LSB first
        bits = Signal(range(11))
        timer = Signal(range(self._divisor))
        m.d.comb += self.tx.eq(shreg[0])
        m.d.comb += self.i.ready.eq(bits == 0)
        with m.If(bits == 0):
            with m.If(self.i.valid):
                m.d.sync += [
                    shreg.eq(Cat(C(0, 1), self.i.payload, C(1, 1))),
                    bits.eq(10),
                    timer.eq(self._divisor - 1),
                ]
        with m.Elif(timer == 0):
            m.d.sync += [
                shreg.eq((shreg >> 1) | 0x200),
                bits.eq(bits - 1),
                timer.eq(self._divisor - 1),
            ]
        with m.Else():
            m.d.sync += timer.eq(timer - 1)
        return m


class UARTRx(wiring.Component):
    """UART receiver.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit, at least 4.

    Members
    -------
    rx : In(1)
        The serial line; synchronised here with two flip-flops. Idles high.
    o : Out(stream.Signature(8))
        Received bytes. A byte is offered from the middle of its stop bit until it is taken; a
        byte that arrives before the previous one was taken replaces it (``overrun`` pulses).
    overrun : Out(1)
        One-cycle pulse: a received byte was dropped because ``o`` was not read in time.
    framing_error : Out(1)
        One-cycle pulse: the stop bit was low (line noise, wrong baud rate or a break); the
        byte is dropped.

    Latency: a byte is offered ``2 + 9.5 * divisor`` cycles after its start edge (two
    synchroniser cycles, then the middle of the stop bit).
    """

    def __init__(self, divisor: int):
        self._divisor = check_divisor(divisor)
        super().__init__({
            "rx": In(1, init=1),
            "o": Out(stream.Signature(8)),
            "overrun": Out(1),
            "framing_error": Out(1),
        })

    @property
    def divisor(self) -> int:
        return self._divisor

    def elaborate(self, platform):
        m = Module()
        rx = Signal(init=1)
        m.submodules.sync_rx = FFSynchronizer(self.rx, rx, init=1)
        timer = Signal(range(self._divisor))
        bits = Signal(range(10))
        shreg = Signal(8)

        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    m.d.sync += timer.eq(self._divisor // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer == 0):
                    with m.If(rx):  # a glitch, not a start bit
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += [timer.eq(self._divisor - 1), bits.eq(0)]
                        m.next = "DATA"
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)
            with m.State("DATA"):
                with m.If(timer == 0):
                    m.d.sync += [shreg.eq((rx << 7) | (shreg >> 1)), timer.eq(self._divisor - 1),
                                 bits.eq(bits + 1)]
                    with m.If(bits == 7):
                        m.next = "STOP"
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)
            with m.State("STOP"):
                with m.If(timer == 0):
                    with m.If(rx):
                        m.d.sync += [self.o.payload.eq(shreg), self.o.valid.eq(1)]
                        m.d.comb += self.overrun.eq(self.o.valid & ~self.o.ready)
                        m.next = "IDLE"
                    with m.Else():
                        m.d.comb += self.framing_error.eq(1)
                        m.next = "BREAK"
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)
            with m.State("BREAK"):  # wait for the line to go idle before the next start bit
                with m.If(rx):
                    m.next = "IDLE"
        return m
