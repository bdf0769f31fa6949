"""Windowed pooling engines: a sliding window and a per-channel reducer (maximum or sum).

:class:`MaxPoolEngine` and :class:`AvgPoolEngine` share the front of the convolution engine (a
:class:`~amos_hw.engines.window.SlidingWindow` and a skid buffer): the window emits, for every
output pixel, its ``k x k`` input pixels in ``(ky, kx, channel group)`` order, ``lanes``
channels a word. Behind it a reducer keeps one running result per channel group in a ring of
``C / lanes`` registers (as the global average pooling engine does): a window word updates the
ring's head and rotates the ring, so a channel group's result is complete on its last window
word and leaves in the next cycle. :func:`window_front` and :class:`WindowCounter` are shared
with :mod:`amos_hw.engines.depthwise`. The figures are :class:`~amos_hw.engines.figures.
PoolParams`'s.
"""
from __future__ import annotations

import numpy as np
from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from amos_hw.engines.dense import counter
from amos_hw.engines.figures import Figures, PoolParams, WindowParams
from amos_hw.engines.window import SlidingWindow
from amos_hw.lib.ring import AccumulatorRing
from amos_hw.lib.skid import SkidBuffer
from python_ref import snn

__all__ = ["AvgPoolEngine", "MaxPoolEngine", "WindowCounter", "window_front"]


def window_front(m, win: WindowParams, i_port):
    """The sliding window of ``win`` fed from ``i_port`` (the engine's input), then a skid
    buffer (registered ``ready`` into the window's reader); returns the skid buffer's output
    stream: the window words, one per output pixel, tap and channel group."""
    m.submodules.window = window = SlidingWindow(
        height=win.height, width=win.width, channels=win.channels, kernel=win.kernel,
        stride=win.stride, padding=win.padding, simd=win.simd, bits=win.bits, name=win.name)
    m.submodules.window_skid = skid = SkidBuffer(window.o.payload.shape())
    wiring.connect(m, wiring.flipped(i_port), window.i)
    wiring.connect(m, window.o, skid.i)
    return skid.o


class WindowCounter:
    """The position of the window word being taken: ``index`` in ``0..k*k*CF-1`` (the weight
    address of a depthwise convolution), the channel group ``group`` and whether the word is
    the first (``first``) or last (``last``) tap of its channel group. :meth:`step` advances it
    when a word is taken."""

    def __init__(self, win: WindowParams):
        self.words, self.cf = win.words_per_window, win.cf
        self.index = counter(self.words, "win_index")
        self.group = counter(self.cf, "win_group")
        self.first = self.index < self.cf
        self.last = self.index >= self.words - self.cf

    def step(self, m, take) -> None:
        with m.If(take):
            m.d.sync += self.index.eq(Mux(self.index == self.words - 1, 0, self.index + 1))
            m.d.sync += self.group.eq(Mux(self.group == self.cf - 1, 0, self.group + 1))


class _PoolEngine(wiring.Component):
    """Common part of :class:`MaxPoolEngine` and :class:`AvgPoolEngine`."""

    _OP = ""

    def __init__(self, *, height, width, channels, kernel, stride=1, padding=0, in_bits,
                 lanes=1, name="pool"):
        p = PoolParams.check(op=self._OP, height=height, width=width, channels=channels,
                             kernel=kernel, stride=stride, padding=padding, in_bits=in_bits,
                             lanes=lanes, name=name)
        self._p = p
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(unsigned(p.in_bits), p.lanes))),
            "o": Out(stream.Signature(data.ArrayLayout(unsigned(p.out_width), p.lanes))),
        })

    @classmethod
    def figures(cls, *, height, width, channels, kernel, stride=1, padding=0, in_bits, lanes=1,
                name="pool") -> Figures:
        """The figures of the engine these arguments would build, without building it: the
        constructor's arguments and checks (same errors), then
        :meth:`amos_hw.engines.figures.PoolParams.figures`."""
        return PoolParams.check(op=cls._OP, height=height, width=width, channels=channels,
                                kernel=kernel, stride=stride, padding=padding, in_bits=in_bits,
                                lanes=lanes, name=name).figures()

    params = property(lambda self: self._p, doc="The checked parameters (PoolParams).")
    name = property(lambda self: self._p.name)
    lanes = property(lambda self: self._p.lanes)
    pe = property(lambda self: self._p.lanes, doc="Output lanes (as the other engines' ``pe``).")
    simd = property(lambda self: self._p.lanes, doc="Input lanes.")
    in_bits = property(lambda self: self._p.in_bits)
    out_width = property(lambda self: self._p.out_width, doc="Bits of an output (unsigned).")
    kernel = property(lambda self: self._p.window.kernel)
    stride = property(lambda self: self._p.window.stride)
    padding = property(lambda self: self._p.window.padding)
    in_shape = property(lambda self: self._p.in_shape)
    out_shape = property(lambda self: self._p.out_shape)
    line_buffer_rows = property(lambda self: self._p.window.rows)
    # the figures: PoolParams's formulas (see there)
    expected_cycles = property(lambda self: self._p.cycles,
                               doc="Cycles per image: the window's words or the input's.")
    latency = property(lambda self: self._p.latency,
                       doc="Cycles from an image's first input word to its first output word.")
    memories = property(lambda self: list(self._p.memories))
    memory_bits = property(lambda self: self._p.memory_bits)
    flip_flops = property(lambda self: self._p.flip_flops)
    luts = property(lambda self: self._p.luts)

    def _check_images(self, a) -> np.ndarray:
        a = np.asarray(a, dtype=np.int64)
        if a.ndim != 4 or a.shape[1:] != self.in_shape:
            shape = ", ".join(map(str, self.in_shape))
            raise ValueError(f"{self._p.name}: images must have shape (N, {shape})")
        if a.size and (a.min() < 0 or a.max() > 2**self.in_bits - 1):
            raise ValueError(f"{self._p.name}: inputs must lie in 0..{2**self.in_bits - 1}")
        return a

    def _reduce(self, x, head, first):
        raise NotImplementedError

    def elaborate(self, platform):
        m = Module()
        p = self._p
        lanes, ib, ow = p.lanes, p.in_bits, p.out_width
        src = window_front(m, p.window, self.i)
        ctr = WindowCounter(p.window)
        en = Signal()
        valid1, first1, last1 = Signal(), Signal(), Signal()
        a1 = Signal(lanes * ib)
        m.d.comb += [en.eq(~self.o.valid | self.o.ready), src.ready.eq(en)]
        ctr.step(m, en & src.valid)
        with m.If(en):  # stage 1: the window word and its position
            m.d.sync += [valid1.eq(src.valid), a1.eq(src.payload.as_value()),
                         first1.eq(ctr.first), last1.eq(ctr.last)]
        ring = AccumulatorRing(m, p.window.cf, lanes * ow, "accs")
        new = Signal(lanes * ow)
        for q in range(lanes):
            x = a1.word_select(q, ib)
            head = ring.head.word_select(q, ow)
            m.d.comb += new.word_select(q, ow).eq(self._reduce(x, head, first1))
        with m.If(en):  # stage 2: the ring and the output register
            m.d.sync += self.o.valid.eq(valid1 & last1)
        ring.step(en & valid1, new)
        with m.If(en & valid1):
            m.d.sync += self.o.payload.as_value().eq(new)
        return m


class MaxPoolEngine(_PoolEngine):
    """Max pooling over ``kernel x kernel`` windows of spike words (zero padding, any stride).

    A ReLU spike word is its activation in binary, so the maximum is an unsigned comparison of
    words and the output is again a spike word of the same ``in_bits`` (the zero padding never
    wins over a real element, all of them ``>= 0``: ``docs/integer_semantics.md``).

    Throughput: one window word a cycle: :attr:`expected_cycles` ``= max(Ho*Wo*k*k*C/lanes,
    H*W*C/lanes)`` per image with the input always valid and the output always ready.
    Latency: :attr:`latency` cycles from an image's first input word to its first output word.

    Parameters
    ----------
    height, width, channels : int
        Input map size.
    kernel, stride, padding : int
        Window size, step and zero padding (``0 <= padding < kernel``).
    in_bits : int
        Bits of a spike word (``K``), 1..16.
    lanes : int
        Channels per word, in and out (the engine's ``pe = simd``); must divide ``channels``.
    name : str
        Layer name for error messages.

    Members
    -------
    i : ``In(stream.Signature(ArrayLayout(unsigned(in_bits), lanes)))``
        Pixels in raster order, channels innermost.
    o : ``Out(stream.Signature(ArrayLayout(unsigned(in_bits), lanes)))``
        Output pixels in raster order, channels innermost.
    """

    _OP = "max"

    def __init__(self, *, height, width, channels, kernel, stride=1, padding=0, in_bits,
                 lanes=1, name="maxpool"):
        super().__init__(height=height, width=width, channels=channels, kernel=kernel,
                         stride=stride, padding=padding, in_bits=in_bits, lanes=lanes,
                         name=name)

    def model(self, a):
        """Reference outputs for images ``a`` (``(N, H, W, C)``):
        :func:`python_ref.snn.maxpool2d`."""
        return snn.maxpool2d(self._check_images(a), self.kernel, self.stride, self.padding)

    def _reduce(self, x, head, first):
        return Mux(first | (x > head), x, head)


class AvgPoolEngine(_PoolEngine):
    """Average pooling over ``kernel x kernel`` windows as window sums (zero padding counted,
    no division: the ``1 / (k*k)`` is in the consuming layer's weights).

    Each output is an unsigned sum of ``in_bits + ceil(log2(k*k))`` bits; a conv or dense
    consumer reads it as a multi-bit input (``in_bits`` = that width). Schedule, throughput and
    latency as :class:`MaxPoolEngine`.

    Parameters
    ----------
    height, width, channels, kernel, stride, padding, in_bits, lanes, name
        As :class:`MaxPoolEngine` (``in_bits``: bits of an input value, a spike word or a
        pixel).

    Members
    -------
    i : ``In(stream.Signature(ArrayLayout(unsigned(in_bits), lanes)))``
    o : ``Out(stream.Signature(ArrayLayout(unsigned(out_width), lanes)))``
    """

    _OP = "avg"

    def __init__(self, *, height, width, channels, kernel, stride=1, padding=0, in_bits,
                 lanes=1, name="avgpool"):
        super().__init__(height=height, width=width, channels=channels, kernel=kernel,
                         stride=stride, padding=padding, in_bits=in_bits, lanes=lanes,
                         name=name)

    def model(self, a):
        """Reference outputs for images ``a`` (``(N, H, W, C)``): :func:`python_ref.snn.avgpool2d`
        (window sums)."""
        return snn.avgpool2d(self._check_images(a), self.kernel, self.stride, self.padding)

    def _reduce(self, x, head, first):
        return Mux(first, 0, head) + x
