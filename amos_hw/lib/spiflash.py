"""Weights from an SPI flash: a reader that streams 64-bit words, and a model of the flash.

Boards whose block RAM cannot hold a network's weights (ResNet8 on an ECP5-25F) keep them in
the configuration flash, after the bitstream, and the shared engine
(:class:`amos_hw.shared.engine.SharedNetwork` with ``weights="flash"``) reads them once per
image, in the order it uses them (:func:`amos_hw.shared.program.layout`).

:class:`SpiFlashReader` does one ``FAST READ`` (``0x0B``, 24-bit address, 8 dummy clocks) per
image, started by ``start``. Bytes arrive most significant bit first; eight bytes make a word,
little-endian (the byte order of :meth:`amos_hw.shared.program.Program.weight_bytes`). The
flash clock is the ``sync`` clock divided by ``2 * div``; it stops (low) whenever the reader
is ``depth`` words ahead of the engine, which an SPI flash allows at any bit. Timing, exactly:
:class:`amos_hw.shared.program.StreamTiming`.

Single-bit SPI and ``FAST READ`` are what every SPI NOR flash does without configuration
(no quad-enable bit to set), so the same reader works on the ULX3S's and the OrangeCrab's
parts. :class:`SpiFlashModel` is a model of such a flash from the protocol, used by the tests
to check the reader and the engine behind it.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from amos_hw.shared.program import WORD_BITS, StreamTiming

__all__ = ["SPI_FLASH", "SpiFlashReader", "SpiFlashModel", "FAST_READ", "HEADER_SLOTS",
           "flash_contents", "reader_timing"]

#: The pins of an SPI flash as the reader drives them (the design's side).
SPI_FLASH = wiring.Signature({
    "sck": Out(1), "cs_n": Out(1, init=1), "copi": Out(1), "cipo": In(1),
})
#: The read command: 0x0B FAST READ (address, then 8 dummy clocks).
FAST_READ = 0x0B
#: Bit slots before the first data bit: command 8, address 24, dummy 8.
HEADER_SLOTS = 40


def reader_timing(div: int, depth: int) -> StreamTiming:
    """When the words of a :class:`SpiFlashReader` with this clock divider and FIFO arrive."""
    return StreamTiming(div=div, depth=depth, header_slots=HEADER_SLOTS)


class SpiFlashReader(wiring.Component):
    """Stream ``words`` 64-bit words from byte ``offset`` of an SPI flash, once per ``start``.

    Parameters
    ----------
    words : int
        Words per read (the network's weight words).
    offset : int
        Byte address of the first word in the flash (24-bit addressing: below 16 MiB).
    div : int
        The flash clock is ``sync / (2 * div)``.
    depth : int
        Words the reader may run ahead of the consumer (its FIFO; a power of two keeps the
        FIFO's pointers plain counters).

    Members
    -------
    start : In(1)
        Pulse: begin a read at ``offset`` (ignored while a read is running).
    o : Out(stream.Signature(64))
        The words, in flash order.
    flash : Out(SPI_FLASH)
        The flash pins.
    busy : Out(1)
        A read is running.
    """

    def __init__(self, *, words: int, offset: int = 0, div: int = 1, depth: int = 512):
        self.check(words=words, offset=offset, div=div, depth=depth)
        self.words, self.offset, self.div, self.depth = words, offset, div, depth
        self.timing = reader_timing(div, depth)
        super().__init__({
            "start": In(1),
            "o": Out(stream.Signature(WORD_BITS)),
            "flash": Out(SPI_FLASH),
            "busy": Out(1),
        })

    @staticmethod
    def check(*, words: int, offset: int, div: int, depth: int) -> None:
        """Raise ``ValueError`` naming the parameter a reader cannot be built with."""
        for name, v, lo in (("words", words, 1), ("offset", offset, 0), ("div", div, 1),
                            ("depth", depth, 1)):
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"SpiFlashReader: {name} must be an integer >= {lo}, "
                                 f"not {v!r}")
        end = offset + words * (WORD_BITS // 8)
        if end > 1 << 24:
            raise ValueError(f"SpiFlashReader: bytes {offset:#x}..{end:#x} pass the 16 MiB that "
                             f"24-bit addresses reach")

    def elaborate(self, platform):
        m = Module()
        div, D = self.div, self.depth
        m.submodules.fifo = q = fifo.SyncFIFOBuffered(width=WORD_BITS, depth=D + 1)
        m.d.comb += [self.o.valid.eq(q.r_rdy), self.o.payload.eq(q.r_data),
                     q.r_en.eq(self.o.ready)]
        pop = self.o.valid & self.o.ready

        header = Const((FAST_READ << 32) | (self.offset << 8), HEADER_SLOTS)
        ph = Signal(range(2 * div))  # phase within a bit slot: low for div cycles, then high
        slot_end = ph == 2 * div - 1
        sample = ph == div - 1  # the clock rises at the end of this cycle
        bit = Signal(range(max(HEADER_SLOTS, WORD_BITS)))
        shout = Signal(HEADER_SLOTS)
        shin = Signal(WORD_BITS)
        wcnt = Signal(range(self.words + 1))
        ahead = Signal(range(D + 1))  # words started and not yet taken
        in_header = Signal()
        running = Signal()  # inside a bit slot
        reading = Signal()  # chip selected
        credit = ahead < D
        begin = Signal()  # a word's first slot begins next cycle

        m.d.comb += [
            self.busy.eq(reading),
            self.flash.cs_n.eq(~reading),
            self.flash.sck.eq(running & (ph >= div)),
            self.flash.copi.eq(in_header & running & shout[-1]),
        ]
        m.d.sync += ahead.eq(ahead + begin - pop)

        with m.If(running):
            m.d.sync += ph.eq(ph + 1)
            with m.If(sample & ~in_header):
                m.d.sync += shin.eq(Cat(self.flash.cipo, shin[:-1]))
            with m.If(slot_end):
                m.d.sync += [ph.eq(0), bit.eq(bit + 1)]
                with m.If(in_header):
                    m.d.sync += shout.eq(shout << 1)
                    with m.If(bit == HEADER_SLOTS - 1):
                        m.d.sync += [in_header.eq(0), bit.eq(0)]
                        m.d.comb += begin.eq(credit)
                        m.d.sync += running.eq(credit)
                with m.Elif(bit == WORD_BITS - 1):
                    # the word is complete: first wire byte is the least significant
                    word = Cat(*[shin.word_select(7 - k, 8) for k in range(8)])
                    m.d.comb += [q.w_data.eq(word), q.w_en.eq(1)]
                    m.d.sync += [bit.eq(0), wcnt.eq(wcnt + 1)]
                    with m.If(wcnt == self.words - 1):
                        m.d.sync += [running.eq(0), reading.eq(0)]
                    with m.Else():
                        m.d.comb += begin.eq(credit)
                        m.d.sync += running.eq(credit)
        with m.Elif(reading & ~in_header):  # waiting for room
            with m.If(credit):
                m.d.comb += begin.eq(1)
                m.d.sync += [running.eq(1), ph.eq(0)]
        with m.Elif(~reading & self.start):
            m.d.sync += [reading.eq(1), running.eq(1), in_header.eq(1), ph.eq(0), bit.eq(0),
                         shout.eq(header), wcnt.eq(0)]
        return m


class SpiFlashModel:
    """An SPI NOR flash answering ``FAST READ`` (``0x0B``) in mode 0, sampled once per clock.

    Call :meth:`step` with the pins after every clock edge of the design (its outputs are
    registers, so one sample per cycle sees every edge of ``sck``); it returns ``cipo``. The
    flash takes ``copi`` on rising edges of ``sck`` and shifts data out on falling edges, most
    significant bit first, from the address onwards. ``data`` starts at byte ``base``; the
    bytes around it read as ``0xFF`` (erased). Other commands, a deselect in the middle of a
    byte or a clock while deselected are recorded in :attr:`errors`.
    """

    def __init__(self, data: bytes, base: int = 0):
        self.data = bytes(data)
        self.base = int(base)
        self.errors: list[str] = []
        self.reads: list[int] = []  # start address of every read
        self.bits_out = 0
        self._sck = 0
        self._cs = False
        self._cipo = 0
        self._reset()

    def _reset(self):
        self._rx = 0
        self._nrx = 0
        self._addr = None
        self._out_bit = None  # index of the next data bit to drive

    def step(self, cs_n: int, sck: int, copi: int) -> int:
        sel = not cs_n
        if sel and not self._cs:
            self._reset()
        if not sel and self._cs and self._out_bit is None and self._nrx % 8:
            self.errors.append(f"deselected after {self._nrx} bits of the header")
        self._cs = sel
        rise, fall = sck and not self._sck, self._sck and not sck
        self._sck = sck
        if not sel:
            if rise:
                self.errors.append("clock while deselected")
            self._cipo = 0
            return self._cipo
        if rise:
            if self._out_bit is None:
                self._rx = (self._rx << 1) | (copi & 1)
                self._nrx += 1
                if self._nrx == 8 and self._rx != FAST_READ:
                    self.errors.append(f"command {self._rx:#04x}, expected {FAST_READ:#04x}")
                if self._nrx == 32:
                    self._addr = self._rx & 0xFFFFFF
                    self.reads.append(self._addr)
                if self._nrx == HEADER_SLOTS:  # the dummy byte: data from the next fall
                    self._out_bit = 0
            else:
                self.bits_out += 1
        if fall and self._out_bit is not None:
            pos = self._addr * 8 + self._out_bit
            k = pos // 8 - self.base
            byte = self.data[k] if 0 <= k < len(self.data) else 0xFF
            self._cipo = (byte >> (7 - pos % 8)) & 1
            self._out_bit += 1
        return self._cipo


def flash_contents(network) -> dict | None:
    """What the flash holds for a network that reads its weights there (``flash_params``, as
    :class:`amos_hw.shared.engine.SharedNetwork` with ``weights="flash"`` has them): its weight
    bytes (hex) at the reader's offset (``base``), for a :class:`SpiFlashModel` in a
    simulation; None for other networks."""
    params = getattr(network, "flash_params", None)
    if not params:
        return None
    return {"base": params["offset"], "hex": network.program.weight_bytes().hex()}
