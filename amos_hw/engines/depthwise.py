"""Depthwise convolution engine: a sliding window and a per-channel spike-driven
multiply-accumulate, then the requantisation and the ReLU AMOS unit.

The figures are :class:`amos_hw.engines.figures.DepthwiseParams`'s, which
:meth:`DepthwiseConvEngine.figures` gives without building anything.
"""
from __future__ import annotations

import numpy as np
from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from amos_hw.engines.dense import spike_product
from amos_hw.engines.figures import DepthwiseParams, Figures, input_range, mem_depth
from amos_hw.engines.pool import WindowCounter, window_front
from amos_hw.lib.amos_unit import AmosUnit
from amos_hw.lib.bram import style_attrs
from amos_hw.lib.ring import AccumulatorRing
from python_ref import snn
from python_ref.quant import IntAmosUnit, requant_shift

__all__ = ["DepthwiseConvEngine"]


def _pack(values, width: int) -> int:
    """``values`` as one memory word, ``width`` bits each, the first in the low bits."""
    word = 0
    for n, v in enumerate(values):
        word |= (int(v) & ((1 << width) - 1)) << (n * width)
    return word


class DepthwiseConvEngine(wiring.Component):
    """Depthwise 2-D convolution on AMOS spikes (one ``kernel x kernel`` filter per channel,
    zero padding, any stride), then the ReLU AMOS unit or the raw requantised value.

    ``acc[oy, ox, c] = bias[c] + sum_{ky, kx} w[c, ky, kx, 0] * a[oy*s + ky - p, ox*s + kx - p,
    c]``, ``v = (acc + 2**(S-1)) >> S``. The front is the convolution engine's (a
    :class:`~amos_hw.engines.window.SlidingWindow` and a skid buffer), which emits every output
    pixel's window in ``(ky, kx, channel group)`` order, ``lanes`` channels a word. Per lane the
    window word's spike word gates the shifted copies of its channel's weight
    (:func:`~amos_hw.engines.dense.spike_product`, no multiplier), and the sum goes into that
    channel group's accumulator, one of a ring of ``C / lanes`` (started from the bias on the
    group's first tap). A group's accumulator is complete on its last tap and goes on through
    the requantisation and the AMOS unit (``lanes`` units).

    Signed inputs (``in_signed=True``, the two's-complement words ``y`` of a trained AMOS unit,
    ``-2**(in_bits-1)..2**(in_bits-1) - 1``): a word's value is ``-2**(in_bits-1) *
    bit[in_bits-1] + sum_{b<in_bits-1} 2**b * bit[b]``, so the most significant spike (the
    first time step) gates the *negated* shifted weight (``spike_product(..., signed=True)``,
    as in :class:`~amos_hw.engines.dense.DenseEngine`) and the accumulator is sized for that
    range. The window only moves words (a padding position is the all-zero word, value 0).
    Same cycles, same latency.

    Raw outputs (``out_bits=None``): the requantised ``v = (acc + 2**(S-1)) >> S`` (``acc``
    itself for ``S = 0``) leaves as a ``signed(out_width)`` word, ``out_width`` the exact
    signed width of ``v`` over the accumulator's range: the input of a trained unit's engine
    (:class:`~amos_hw.engines.unit.UnitEngine`, ``S`` its shift).

    Stages: 1. the window word, its weights and bias read (``k*k*C/lanes`` weight words of
    ``lanes`` weights, ``C/lanes`` bias words); 2. the spike-gated products; 3. the ring of
    accumulators and the result register; then requantisation and the AMOS unit. Backpressure
    stalls the whole pipeline (one enable).

    Throughput: one window word a cycle, :attr:`expected_cycles` ``= max(Ho*Wo*k*k*C/lanes,
    H*W*C/lanes)`` per image. Latency: :attr:`latency` cycles from an image's first input word
    to its first output word.

    Parameters
    ----------
    weights : (C, kernel, kernel, 1) array of int
        ``-127..127``.
    bias : (C,) array of int
        int32, at the accumulator's scale.
    height, width : int
        Input map size.
    stride, padding : int
        Convolution step and zero padding (``padding < kernel``).
    in_bits : int
        Spikes per input activation (or bits of an unsigned input), 1..16; with ``in_signed``
        the width of the two's-complement input word.
    shift : int
        Requantisation shift ``S``, 0..62.
    out_bits : int or None
        ``K`` of the ReLU AMOS unit after the layer (1..16), or ``None`` for raw outputs.
    lanes : int
        Channels per word, in and out (``pe = simd``); must divide ``C``.
    name : str
        Layer name for error messages.
    in_signed : bool
        ``False``: inputs ``0..2**in_bits - 1`` (ReLU spike words). ``True``: two's-complement
        inputs ``-2**(in_bits-1)..2**(in_bits-1) - 1``, ``signed(in_bits)`` lanes.

    Members
    -------
    i : ``In(stream.Signature(ArrayLayout(unsigned(in_bits) or signed(in_bits), lanes)))``
        Pixels in raster order, channels innermost (signed lanes with ``in_signed``).
    o : ``Out(stream.Signature(ArrayLayout(unsigned(out_bits) or signed(out_width), lanes)))``
        Output pixels in raster order, channels innermost.
    spike_count : ``Out(32)``
        Spikes of the output AMOS units (0 for raw outputs).
    """

    def __init__(self, weights, bias, *, height, width, stride=1, padding=0, in_bits, shift,
                 out_bits, lanes=1, name="dwconv", in_signed=False, lut_memories=()):
        p = DepthwiseParams.check(weights, bias, height=height, width=width, stride=stride,
                                  padding=padding, in_bits=in_bits, shift=shift,
                                  out_bits=out_bits, lanes=lanes, name=name,
                                  in_signed=in_signed, lut_memories=lut_memories)
        self._p = p
        out_shape = unsigned(p.out_bits) if p.out_bits is not None else signed(p.v_width)
        in_shape = signed(p.in_bits) if p.in_signed else unsigned(p.in_bits)
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(in_shape, p.lanes))),
            "o": Out(stream.Signature(data.ArrayLayout(out_shape, p.lanes))),
            "spike_count": Out(32),
        })

    @staticmethod
    def figures(weights, bias, *, height, width, stride=1, padding=0, in_bits, shift, out_bits,
                lanes=1, name="dwconv", in_signed=False, lut_memories=()) -> Figures:
        """The figures of the engine these arguments would build, without building it: the
        constructor's arguments and checks (same errors), then
        :meth:`amos_hw.engines.figures.DepthwiseParams.figures`."""
        return DepthwiseParams.check(weights, bias, height=height, width=width, stride=stride,
                                     padding=padding, in_bits=in_bits, shift=shift,
                                     out_bits=out_bits, lanes=lanes, name=name,
                                     in_signed=in_signed, lut_memories=lut_memories).figures()

    params = property(lambda self: self._p, doc="The checked parameters (DepthwiseParams).")
    name = property(lambda self: self._p.name)
    weights = property(lambda self: self._p.weights, doc="(C, k, k, 1) int64, read-only.")
    bias = property(lambda self: self._p.bias)
    in_bits = property(lambda self: self._p.in_bits)
    in_signed = property(lambda self: self._p.in_signed,
                         doc="The inputs are two's-complement words.")
    out_bits = property(lambda self: self._p.out_bits)
    out_width = property(lambda self: self._p.out_width)
    shift = property(lambda self: self._p.shift)
    lanes = property(lambda self: self._p.lanes)
    pe = property(lambda self: self._p.lanes, doc="Output lanes (``lanes``).")
    simd = property(lambda self: self._p.lanes, doc="Input lanes (``lanes``).")
    acc_width = property(lambda self: self._p.acc_width)
    kernel = property(lambda self: self._p.window.kernel)
    stride = property(lambda self: self._p.window.stride)
    padding = property(lambda self: self._p.window.padding)
    in_shape = property(lambda self: self._p.in_shape)
    out_shape = property(lambda self: self._p.out_shape)
    line_buffer_rows = property(lambda self: self._p.window.rows)
    # the figures: DepthwiseParams's formulas (see there)
    expected_cycles = property(lambda self: self._p.cycles,
                               doc="Cycles per image: the window's words or the input's.")
    latency = property(lambda self: self._p.latency,
                       doc="Cycles from an image's first input word to its first output word.")
    memories = property(lambda self: list(self._p.memories))
    memory_bits = property(lambda self: self._p.memory_bits)
    flip_flops = property(lambda self: self._p.flip_flops)
    luts = property(lambda self: self._p.luts)

    def model(self, a):
        """Reference outputs for images ``a`` (``(N, H, W, C)``), ``(N, Ho, Wo, C)`` int64:
        :func:`python_ref.snn.conv2d` with ``groups = C``, then
        :func:`python_ref.snn.requant_unit` (ReLU) or :func:`python_ref.quant.requant_shift`.
        The inputs must lie in :func:`~amos_hw.engines.figures.input_range` (signed with
        ``in_signed``)."""
        a = np.asarray(a, dtype=np.int64)
        if a.ndim != 4 or a.shape[1:] != self.in_shape:
            shape = ", ".join(map(str, self.in_shape))
            raise ValueError(f"{self._p.name}: images must have shape (N, {shape})")
        a_lo, a_hi = input_range(self.in_bits, self.in_signed)
        if a.size and (a.min() < a_lo or a.max() > a_hi):
            raise ValueError(f"{self._p.name}: inputs must lie in {a_lo}..{a_hi}")
        acc = snn.conv2d(a, self.weights, self.bias, self.stride, self.padding,
                         groups=self.in_shape[2])
        if self.out_bits is None:
            return requant_shift(acc, self.shift)
        return snn.requant_unit([acc], [self.shift], IntAmosUnit.relu(self.out_bits))[0]

    def _memories(self, m):
        """The weight ROM (a word per window word: tap-major, channel group, ``lanes``
        weights) and the bias ROM (a word per channel group)."""
        p = self._p
        lanes, cf, k = p.lanes, p.window.cf, p.window.kernel
        w = p.weights[:, :, :, 0]  # (C, k, k)
        w_init = [_pack(w[g * lanes:(g + 1) * lanes, ky, kx], p.w_width)
                  for ky in range(k) for kx in range(k) for g in range(cf)]
        b_init = [_pack(p.bias[g * lanes:(g + 1) * lanes], p.b_width) for g in range(cf)]
        m.submodules.weights = wmem = Memory(shape=unsigned(lanes * p.w_width),
                                             depth=mem_depth(len(w_init)), init=w_init,
                                             attrs=style_attrs("weights", True, p.lut_memories))
        m.submodules.biases = bmem = Memory(shape=unsigned(lanes * p.b_width),
                                            depth=mem_depth(cf), init=b_init,
                                            attrs=style_attrs("biases", True, p.lut_memories))
        return wmem.read_port(), bmem.read_port()

    def _input_bits(self, m):
        """The input port as the window front takes it: :attr:`i` itself for unsigned words;
        for two's-complement words a stream of the same bits with unsigned lanes (the window and
        the skid buffer only move the words, the products read their bits), wired to :attr:`i`."""
        if not self._p.in_signed:
            return self.i
        sig = stream.Signature(data.ArrayLayout(unsigned(self._p.in_bits), self._p.lanes))
        bits = sig.create()  # the source side, which window_front connects to the window
        m.d.comb += [bits.valid.eq(self.i.valid), bits.payload.eq(self.i.payload.as_value()),
                     self.i.ready.eq(bits.ready)]
        return wiring.flipped(bits)

    def elaborate(self, platform):
        m = Module()
        p = self._p
        lanes, ib = p.lanes, p.in_bits
        src = window_front(m, p.window, self._input_bits(m))
        w_rd, b_rd = self._memories(m)
        ctr = WindowCounter(p.window)
        en = Signal()
        m.d.comb += [src.ready.eq(en), w_rd.en.eq(en), w_rd.addr.eq(ctr.index),
                     b_rd.en.eq(en), b_rd.addr.eq(ctr.group)]
        ctr.step(m, en & src.valid)
        # stage 1: the window word and its position (the weights and bias arrive from the ROMs)
        valid1, first1, last1 = Signal(), Signal(), Signal()
        a1 = Signal(lanes * ib)
        with m.If(en):
            m.d.sync += [valid1.eq(src.valid), a1.eq(src.payload.as_value()),
                         first1.eq(ctr.first), last1.eq(ctr.last)]
        # stage 2: the spike-gated products
        valid2, first2, last2 = Signal(), Signal(), Signal()
        bias2 = Signal(lanes * p.b_width)
        prods = []
        for q in range(lanes):
            wq = w_rd.data.word_select(q, p.w_width).as_signed()
            prod = spike_product(wq, a1.word_select(q, ib), ib, signed=p.in_signed)
            prods.append(Signal(prod.shape(), name=f"prod_{q}"))
            with m.If(en):
                m.d.sync += prods[q].eq(prod)
        with m.If(en):
            m.d.sync += [valid2.eq(valid1), first2.eq(first1), last2.eq(last1),
                         bias2.eq(b_rd.data)]
        # stage 3: the ring of accumulators and the result register
        aw = p.acc_width
        ring = AccumulatorRing(m, p.window.cf, lanes * aw, "accs",
                               attrs=style_attrs("accs", False, p.lut_memories))
        new = Signal(lanes * aw)
        res = Signal(lanes * aw)
        valid_c = Signal()
        for q in range(lanes):
            start = Mux(first2, bias2.word_select(q, p.b_width).as_signed(),
                        ring.head.word_select(q, aw).as_signed())
            m.d.comb += new.word_select(q, aw).eq(start + prods[q])
        with m.If(en):
            m.d.sync += valid_c.eq(valid2 & last2)
        ring.step(en & valid2, new)
        with m.If(en & valid2):
            m.d.sync += res.eq(new)
        self._epilogue(m, en, valid_c, [res.word_select(q, aw).as_signed()
                                        for q in range(lanes)])
        return m

    def _epilogue(self, m, en, valid_c, res):
        """Requantise the results; the ReLU AMOS unit or the raw values out."""
        p = self._p
        S = p.shift
        v = [(r + (1 << (S - 1))) >> S if S else r for r in res]
        if p.out_bits is None:
            m.d.comb += [self.o.valid.eq(valid_c), en.eq(~valid_c | self.o.ready)]
            m.d.comb += [self.o.payload[q].eq(v[q]) for q in range(p.lanes)]
            return
        m.submodules.amos = amos = AmosUnit(IntAmosUnit.relu(p.out_bits), p.v_width,
                                            lanes=p.lanes)
        m.d.comb += [
            amos.i.valid.eq(valid_c),
            en.eq(~valid_c | amos.i.ready),
            self.o.valid.eq(amos.o.valid),
            amos.o.ready.eq(self.o.ready),
            self.spike_count.eq(amos.spike_count),
        ]
        m.d.comb += [amos.i.payload.x[q].eq(v[q]) for q in range(p.lanes)]
        m.d.comb += [self.o.payload[q].eq(amos.o.payload.z[q]) for q in range(p.lanes)]
