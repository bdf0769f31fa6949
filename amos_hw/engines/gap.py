"""Global average pooling engine: per-channel sums over all positions of an image."""
from __future__ import annotations

import numpy as np
from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from amos_hw.engines.dense import counter
from amos_hw.engines.figures import Figures, GapParams
from python_ref import snn

__all__ = ["GlobalAvgPoolEngine"]


class GlobalAvgPoolEngine(wiring.Component):
    """Sum every channel over the ``height x width`` positions of an image (``1/(H*W)`` is folded
    into the next dense layer's weights, ``docs/integer_semantics.md``).

    The ``C / lanes`` running sums of ``lanes`` channels each rotate through a ring of registers,
    one word per input word, so a sum is ready exactly when the image's last pixel arrives: the
    outputs leave while the last pixel streams in, and the next image follows without a gap.
    Each output is ``sum_bits`` wide (the exact bound ``H*W*(2**in_bits - 1)``), which is the
    ``in_bits`` of the dense engine after it.

    Throughput: one input word per cycle, :attr:`expected_cycles` per image. Latency: the first
    output is valid :attr:`latency` cycles after the image's first input word (input never idle).

    Parameters
    ----------
    height, width, channels : int
        Input image size.
    in_bits : int
        Bits per input activation.
    lanes : int
        Channels per word (input and output); must divide ``channels``.
    name : str
        Layer name for error messages.

    Members
    -------
    i : ``In(stream.Signature(ArrayLayout(unsigned(in_bits), lanes)))``
        Pixels in raster order, channels innermost.
    o : ``Out(stream.Signature(ArrayLayout(unsigned(sum_bits), lanes)))``
        The ``channels`` sums, ``lanes`` a word.
    """

    def __init__(self, *, height, width, channels, in_bits, lanes=1, name="gap"):
        p = GapParams.check(height=height, width=width, channels=channels, in_bits=in_bits,
                            lanes=lanes, name=name)
        self._p = p
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(unsigned(p.in_bits), p.lanes))),
            "o": Out(stream.Signature(data.ArrayLayout(unsigned(p.sum_bits), p.lanes))),
        })

    @staticmethod
    def figures(*, height, width, channels, in_bits, lanes=1, name="gap") -> Figures:
        """The figures of the engine these arguments would build, without building it: the
        constructor's arguments and checks (same errors), then
        :meth:`amos_hw.engines.figures.GapParams.figures`."""
        return GapParams.check(height=height, width=width, channels=channels, in_bits=in_bits,
                               lanes=lanes, name=name).figures()

    params = property(lambda self: self._p, doc="The checked parameters (GapParams).")
    name = property(lambda self: self._p.name)
    lanes = property(lambda self: self._p.lanes)
    pe = property(lambda self: self._p.lanes, doc="Output lanes (as the other engines' ``pe``).")
    simd = property(lambda self: self._p.lanes, doc="Input lanes.")
    sum_bits = property(lambda self: self._p.sum_bits, doc="Width of a sum (unsigned).")
    out_width = property(lambda self: self._p.sum_bits)
    # the figures: GapParams's formulas (see there)
    expected_cycles = property(lambda self: self._p.cycles,
                               doc="Cycles per image: one input word per cycle.")
    latency = property(lambda self: self._p.latency,
                       doc="Cycles from the first input word to the first output word.")
    memories = property(lambda self: list(self._p.memories), doc="None (:attr:`memory_bits`).")
    memory_bits = property(lambda self: self._p.memory_bits,
                           doc="No memory: the running sums are a ring of registers.")
    flip_flops = property(lambda self: self._p.flip_flops,
                          doc="The ring of running sums, the output register and the counters.")
    luts = property(lambda self: self._p.luts,
                    doc="LUT4 estimate: one adder of ``sum_bits`` per lane, counters.")

    def model(self, a):
        """Reference: :func:`python_ref.snn.gap` of images ``(N, H, W, C)`` -> ``(N, C)``."""
        p = self._p
        a = np.asarray(a, np.int64)
        if a.ndim != 4 or a.shape[1:] != (p.height, p.width, p.channels):
            raise ValueError(
                f"{p.name}: images must have shape (N, {p.height}, {p.width}, {p.channels})"
            )
        return snn.gap(a)

    def elaborate(self, platform):
        m = Module()
        p = self._p
        words = p.words
        pixels = p.height * p.width
        width = p.lanes * p.sum_bits
        ring = [Signal(width, name=f"ring_{n}") for n in range(words)]
        word = counter(words, "word")
        pixel = counter(pixels, "pixel")
        en = Signal()
        go = Signal()
        m.d.comb += [
            en.eq(~self.o.valid | self.o.ready),
            go.eq(en & self.i.valid),
            self.i.ready.eq(en),
        ]
        first = pixel == 0
        last = pixel == pixels - 1
        head = ring[0]
        new = Signal(width)
        for n in range(p.lanes):
            old = Mux(first, 0, head.word_select(n, p.sum_bits))
            m.d.comb += new.word_select(n, p.sum_bits).eq(old + self.i.payload[n])
        with m.If(en):
            m.d.sync += self.o.valid.eq(go & last)
        with m.If(go):
            m.d.sync += [ring[n].eq(ring[n + 1]) for n in range(words - 1)]
            m.d.sync += ring[words - 1].eq(new)
            m.d.sync += self.o.payload.as_value().eq(new)
            m.d.sync += word.eq(Mux(word == words - 1, 0, word + 1))
            with m.If(word == words - 1):
                m.d.sync += pixel.eq(Mux(last, 0, pixel + 1))
        return m
