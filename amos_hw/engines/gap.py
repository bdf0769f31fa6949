"""Global average pooling engine: per-channel sums over all positions of an image."""
from __future__ import annotations

import numpy as np
from amaranth.hdl import Module, Mux, Shape, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from amos_hw.engines.dense import counter
from amos_hw.engines.figures import Figures, GapParams, input_range
from amos_hw.lib.bram import style_attrs
from amos_hw.lib.ring import AccumulatorRing
from python_ref import snn

__all__ = ["GlobalAvgPoolEngine"]


class GlobalAvgPoolEngine(wiring.Component):
    """Sum every channel over the ``height x width`` positions of an image (``1/(H*W)`` is folded
    into the next dense layer's weights, ``docs/integer_semantics.md``).

    The ``C / lanes`` running sums of ``lanes`` channels each rotate through a ring
    (:class:`~amos_hw.lib.ring.AccumulatorRing`: registers, or a block RAM when large), one word
    per input word, so a sum is ready exactly when the image's last pixel arrives: the
    outputs leave while the last pixel streams in, and the next image follows without a gap.
    Each output is ``sum_bits`` wide (the exact bound ``H*W*(2**in_bits - 1)``), which is the
    ``in_bits`` of the dense engine after it.

    Signed inputs (``in_signed=True``, the two's-complement words of a trained unit,
    ``-2**(in_bits-1)..2**(in_bits-1) - 1``): the words are sign-extended into the sums, and
    each sum is a two's-complement word of ``sum_bits``, the signed width of the exact bound
    ``H*W*[-2**(in_bits-1), 2**(in_bits-1) - 1]`` (:attr:`out_signed` is then true: the dense
    engine after it takes ``in_bits=sum_bits, in_signed=True``).

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
    in_signed : bool
        The inputs are two's-complement words (and so are the sums).

    Members
    -------
    i : ``In(stream.Signature(ArrayLayout(unsigned(in_bits) or signed(in_bits), lanes)))``
        Pixels in raster order, channels innermost.
    o : ``Out(stream.Signature(ArrayLayout(unsigned(sum_bits) or signed(sum_bits), lanes)))``
        The ``channels`` sums, ``lanes`` a word (signed with ``in_signed``).
    """

    def __init__(self, *, height, width, channels, in_bits, lanes=1, name="gap",
                 in_signed=False, lut_memories=()):
        p = GapParams.check(height=height, width=width, channels=channels, in_bits=in_bits,
                            lanes=lanes, name=name, in_signed=in_signed,
                            lut_memories=lut_memories)
        self._p = p
        sig = p.in_signed
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(Shape(p.in_bits, signed=sig), p.lanes))),
            "o": Out(stream.Signature(data.ArrayLayout(Shape(p.sum_bits, signed=sig),
                                                       p.lanes))),
        })

    @staticmethod
    def figures(*, height, width, channels, in_bits, lanes=1, name="gap",
                in_signed=False, lut_memories=()) -> Figures:
        """The figures of the engine these arguments would build, without building it: the
        constructor's arguments and checks (same errors), then
        :meth:`amos_hw.engines.figures.GapParams.figures`."""
        return GapParams.check(height=height, width=width, channels=channels, in_bits=in_bits,
                               lanes=lanes, name=name, in_signed=in_signed,
                               lut_memories=lut_memories).figures()

    params = property(lambda self: self._p, doc="The checked parameters (GapParams).")
    name = property(lambda self: self._p.name)
    lanes = property(lambda self: self._p.lanes)
    pe = property(lambda self: self._p.lanes, doc="Output lanes (as the other engines' ``pe``).")
    simd = property(lambda self: self._p.lanes, doc="Input lanes.")
    in_bits = property(lambda self: self._p.in_bits)
    in_signed = property(lambda self: self._p.in_signed,
                         doc="The inputs are two's-complement words.")
    out_signed = property(lambda self: self._p.out_signed,
                          doc="The sums are two's-complement words (exactly when the inputs "
                              "are): the next dense engine's ``in_signed``.")
    sum_bits = property(lambda self: self._p.sum_bits,
                        doc="Width of a sum (unsigned, or signed with ``in_signed``).")
    sum_range = property(lambda self: self._p.sum_range, doc="Exact range of a sum.")
    out_width = property(lambda self: self._p.sum_bits,
                         doc="Width of a sum: the next dense engine's ``in_bits``.")
    # the figures: GapParams's formulas (see there)
    expected_cycles = property(lambda self: self._p.cycles,
                               doc="Cycles per image: one input word per cycle.")
    latency = property(lambda self: self._p.latency,
                       doc="Cycles from the first input word to the first output word.")
    memories = property(lambda self: list(self._p.memories),
                        doc="The ring of sums when it is a memory, else none.")
    memory_bits = property(lambda self: self._p.memory_bits,
                           doc="Bits of the ring of sums when it is a memory, else 0.")
    flip_flops = property(lambda self: self._p.flip_flops,
                          doc="The ring of running sums (registers, or the memory form's "
                              "pointer and read word), the output register and the counters.")
    luts = property(lambda self: self._p.luts,
                    doc="LUT4 estimate: one adder of ``sum_bits`` per lane, counters.")

    def model(self, a):
        """Reference: :func:`python_ref.snn.gap` of images ``(N, H, W, C)`` -> ``(N, C)``; the
        inputs must lie in :func:`~amos_hw.engines.figures.input_range` (signed with
        ``in_signed``)."""
        p = self._p
        a = np.asarray(a, np.int64)
        if a.ndim != 4 or a.shape[1:] != (p.height, p.width, p.channels):
            raise ValueError(
                f"{p.name}: images must have shape (N, {p.height}, {p.width}, {p.channels})"
            )
        a_lo, a_hi = input_range(p.in_bits, p.in_signed)
        if a.size and (a.min() < a_lo or a.max() > a_hi):
            raise ValueError(f"{p.name}: inputs must lie in {a_lo}..{a_hi}")
        return snn.gap(a)

    def elaborate(self, platform):
        m = Module()
        p = self._p
        words = p.words
        pixels = p.height * p.width
        width = p.lanes * p.sum_bits
        ring = AccumulatorRing(m, words, width, "sums",
                               attrs=style_attrs("sums", False, p.lut_memories))
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
        head = ring.head
        new = Signal(width)
        for n in range(p.lanes):
            old = head.word_select(n, p.sum_bits)
            if p.in_signed:  # the input lane is signed(in_bits): sign-extended by the add
                old = old.as_signed()
            old = Mux(first, 0, old)
            m.d.comb += new.word_select(n, p.sum_bits).eq(old + self.i.payload[n])
        with m.If(en):
            m.d.sync += self.o.valid.eq(go & last)
        ring.step(go, new)
        with m.If(go):
            m.d.sync += self.o.payload.as_value().eq(new)
            m.d.sync += word.eq(Mux(word == words - 1, 0, word + 1))
            with m.If(word == words - 1):
                m.d.sync += pixel.eq(Mux(last, 0, pixel + 1))
        return m
