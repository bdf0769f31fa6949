"""A ping-pong buffer of whole images in front of a dense layer fed by a map.

A dense engine reads its input only during its first output fold. Fed directly by a layer that
emits a map row by row (a convolution, a window op), its first fold would last as long as that
producer takes to emit the whole image, and the producer would stall during the other folds:
the interval then depends on the whole upstream pipeline, which the cycle model cannot state.
Behind an :class:`ImageBuffer` the dense engine starts an image only once all its words are in,
and reads them at one word a cycle, so its interval is its own ``NF * SF * P`` cycles, or the
producer's when that is slower (:func:`amos_hw.cost.pipeline_ii`).
"""
from __future__ import annotations

import math

from amaranth.hdl import Module, Mux, Shape, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from amos_hw.engines.dense import counter
from amos_hw.lib.bram import MemShape
from amos_hw.lib.checks import positive_int

__all__ = ["ImageBuffer"]


class ImageBuffer(wiring.Component):
    """Two banks of ``words`` words: the input fills one bank while the output replays the
    other, a whole image at a time and in order.

    The input is taken while the bank it writes is free; a bank is replayed, one word a cycle
    while the output is ready, once all its ``words`` are in, and is free again once its last
    word has left. Latency: the first word of an image leaves :attr:`latency` cycles after its
    last word entered (output ready, the other bank free).

    Parameters
    ----------
    shape : shape-castable
        Payload shape of both streams (a word of ``simd`` lanes).
    words : int
        Words per image.

    Members
    -------
    i : ``In(stream.Signature(shape))``
    o : ``Out(stream.Signature(shape))``
    """

    latency = 2

    @staticmethod
    def memory_for(bits: int, words: int) -> MemShape:
        """The memory of a buffer of ``words`` words of ``bits`` bits (both banks)."""
        return MemShape("image_buffer", 2 * words, bits)

    @staticmethod
    def flip_flops_for(bits: int, words: int) -> int:
        """Flip-flops: the two address counters, the bank and full flags, the output valid."""
        return 2 * max(1, math.ceil(math.log2(words + 1))) + 6

    @staticmethod
    def luts_for(bits: int, words: int) -> int:
        """LUT4: the two address adders and comparisons, the handshakes."""
        return 2 * 2 * max(1, math.ceil(math.log2(2 * words + 1))) + 12

    def __init__(self, shape, words: int):
        self._words = int(positive_int("words", words))
        self._shape = shape
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

    words = property(lambda self: self._words)

    def elaborate(self, platform):
        m = Module()
        n = self._words
        width = Shape.cast(self.i.payload.shape()).width
        m.submodules.banks = mem = Memory(shape=width, depth=2 * n, init=[])
        wr, rd = mem.write_port(), mem.read_port()
        full = Signal(2)
        wbank, rbank = Signal(), Signal()
        waddr, raddr = counter(n, "waddr"), counter(n, "raddr")
        take = Signal()
        m.d.comb += [
            self.i.ready.eq(~full.bit_select(wbank, 1)),
            take.eq(self.i.valid & self.i.ready),
            wr.en.eq(take),
            wr.addr.eq(Mux(wbank, n, 0) + waddr),
            wr.data.eq(self.i.payload.as_value()),
        ]
        set_full = Signal(2)
        clear_full = Signal(2)
        with m.If(take):
            m.d.sync += waddr.eq(Mux(waddr == n - 1, 0, waddr + 1))
            with m.If(waddr == n - 1):
                m.d.sync += wbank.eq(~wbank)
                m.d.comb += set_full.eq(Mux(wbank, 2, 1))
        # the read side: an issued read's data is the output (its port holds while stalled)
        valid = Signal()
        adv = Signal()
        issue = Signal()
        m.d.comb += [
            adv.eq(~valid | self.o.ready),
            issue.eq(adv & full.bit_select(rbank, 1)),
            rd.en.eq(adv),
            rd.addr.eq(Mux(rbank, n, 0) + raddr),
            self.o.valid.eq(valid),
            self.o.payload.eq(rd.data),
        ]
        with m.If(adv):
            m.d.sync += valid.eq(issue)
        with m.If(issue):
            m.d.sync += raddr.eq(Mux(raddr == n - 1, 0, raddr + 1))
            with m.If(raddr == n - 1):
                m.d.sync += rbank.eq(~rbank)
                m.d.comb += clear_full.eq(Mux(rbank, 2, 1))
        m.d.sync += full.eq((full | set_full) & ~clear_full)
        return m
