"""Convolution engine: a line-buffered sliding window feeding the spike-driven matrix-vector unit.
"""
from __future__ import annotations

import numpy as np
from amaranth.hdl import Module, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from amos_hw.engines.dense import DenseEngine
from amos_hw.engines.figures import ConvParams, Figures, input_range
from amos_hw.engines.window import SlidingWindow
from amos_hw.lib.skid import SkidBuffer
from python_ref import snn
from python_ref.quant import IntAmosUnit, requant_shift

__all__ = ["ConvEngine"]


class ConvEngine(wiring.Component):
    """2-D convolution on AMOS spikes (zero padding, any stride), then the ReLU AMOS unit.

    A :class:`~amos_hw.engines.window.SlidingWindow` keeps :attr:`line_buffer_rows` rows of the
    input and emits the ``kernel x kernel x C_in`` window of every output pixel; a
    :class:`~amos_hw.engines.dense.DenseEngine` with the weights reshaped to
    ``(C_out, kernel*kernel*C_in)`` turns each window into ``C_out`` outputs, ``pe`` at a time,
    consuming ``simd`` channels of spike words per cycle (spike-gated shift-add, no multiplier).

    Throughput: one image every :attr:`expected_cycles` cycles when the input is always valid and
    the output always ready: ``max(Ho*Wo*NF*SF, H*W*C_in/simd)`` with ``NF = C_out/pe`` and
    ``SF = kernel*kernel*C_in/simd`` (compute-bound or input-bound). Latency: :attr:`latency`
    cycles from an image's first input word to its first output word.

    Parameters
    ----------
    weights : (C_out, kernel, kernel, C_in) array of int
        ``-127..127``.
    bias : (C_out,) array of int
        int32, at the accumulator's scale.
    height, width : int
        Input image size.
    stride, padding : int
        Convolution step and zero padding.
    in_bits, shift, out_bits, pe, simd, planes, name, carry, in_signed, multiply
        As :class:`~amos_hw.engines.dense.DenseEngine` (``simd`` must divide ``C_in``;
        ``planes`` spike planes per cycle, all of them by default; ``carry="ecp5"``: the first
        adder level on ECP5 carry cells with the spike gates folded in; ``in_signed``: the
        inputs are ``in_bits`` two's-complement words, the sign plane's weights subtracted;
        ``multiply``: the products form, a multiplier per weight and input word).
        The zero padding is the all-zero word, value 0 in either case.
    fifo_rows : int
        A pointwise convolution's window FIFO in image rows (0: two pixels; see
        :class:`~amos_hw.engines.window.SlidingWindow`).

    Members
    -------
    i : ``In(stream.Signature(ArrayLayout(unsigned(in_bits) or signed(in_bits), simd)))``
        Pixels in raster order, channels innermost, ``simd`` channels a word (signed lanes with
        ``in_signed``).
    o : ``Out(stream.Signature(ArrayLayout(..., pe)))``
        Output pixels in raster order, ``pe`` channels a word.
    spike_count : ``Out(32)``
        Spikes of the output AMOS units.
    """

    def __init__(self, weights, bias, *, height, width, stride=1, padding=0, in_bits, shift,
                 out_bits, pe=1, simd=1, planes=None, name="conv", carry="generic",
                 in_signed=False, fifo_rows=0, lut_memories=(), banked_weights=False,
                 multiply=False):
        p = ConvParams.check(weights, bias, height=height, width=width, stride=stride,
                             padding=padding, in_bits=in_bits, shift=shift, out_bits=out_bits,
                             pe=pe, simd=simd, planes=planes, name=name, carry=carry,
                             in_signed=in_signed, fifo_rows=fifo_rows,
                             lut_memories=lut_memories, banked_weights=banked_weights,
                             multiply=multiply)
        self._p = p
        mvu = p.mvu
        out_shape = unsigned(mvu.out_bits) if mvu.out_bits is not None else signed(mvu.v_width)
        in_shape = signed(mvu.in_bits) if mvu.in_signed else unsigned(mvu.in_bits)
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(in_shape, mvu.simd))),
            "o": Out(stream.Signature(data.ArrayLayout(out_shape, mvu.pe))),
            "spike_count": Out(32),
        })

    @staticmethod
    def figures(weights, bias, *, height, width, stride=1, padding=0, in_bits, shift, out_bits,
                pe=1, simd=1, planes=None, name="conv", carry="generic",
                in_signed=False, fifo_rows=0, lut_memories=(),
                banked_weights=False, multiply=False) -> Figures:
        """The figures of the engine these arguments would build, without building it: the
        constructor's arguments and checks (same errors), then
        :meth:`amos_hw.engines.figures.ConvParams.figures`."""
        return ConvParams.check(weights, bias, height=height, width=width, stride=stride,
                                padding=padding, in_bits=in_bits, shift=shift, out_bits=out_bits,
                                pe=pe, simd=simd, planes=planes, name=name,
                                carry=carry, in_signed=in_signed, fifo_rows=fifo_rows,
                                lut_memories=lut_memories,
                                banked_weights=banked_weights, multiply=multiply).figures()

    params = property(lambda self: self._p, doc="The checked parameters (ConvParams).")
    name = property(lambda self: self._p.name)
    weights = property(lambda self: self._p.weights, doc="(C_out, k, k, C_in) int64, read-only.")
    bias = property(lambda self: self._p.mvu.bias)
    in_bits = property(lambda self: self._p.mvu.in_bits)
    in_signed = property(lambda self: self._p.mvu.in_signed,
                         doc="The inputs are two's-complement words.")
    out_bits = property(lambda self: self._p.mvu.out_bits)
    out_width = property(lambda self: self._p.mvu.out_width)
    shift = property(lambda self: self._p.mvu.shift)
    pe = property(lambda self: self._p.mvu.pe)
    simd = property(lambda self: self._p.mvu.simd)
    planes = property(lambda self: self._p.mvu.planes, doc="Spike planes per cycle.")
    multiply = property(lambda self: self._p.mvu.multiply, doc="The products form.")
    acc_width = property(lambda self: self._p.mvu.acc_width)
    kernel = property(lambda self: self._p.window.kernel)
    stride = property(lambda self: self._p.window.stride)
    padding = property(lambda self: self._p.window.padding)
    in_shape = property(lambda self: self._p.in_shape)
    out_shape = property(lambda self: self._p.out_shape)
    line_buffer_rows = property(lambda self: self._p.window.rows)
    # the figures: ConvParams's formulas (see there)
    expected_cycles = property(lambda self: self._p.cycles,
                               doc="Cycles per image: the larger of the compute time and the "
                                   "input time.")
    latency = property(lambda self: self._p.latency,
                       doc="Cycles from an image's first input word to its first output word "
                           "(the window, the skid buffer between them, the matrix-vector unit).")
    memories = property(lambda self: list(self._p.memories))
    memory_bits = property(lambda self: self._p.memory_bits)
    flip_flops = property(lambda self: self._p.flip_flops)
    luts = property(lambda self: self._p.luts)

    def model(self, a):
        """Reference outputs for images ``a`` (``(N, H, W, C_in)``), ``(N, Ho, Wo, C_out)`` int64.

        :func:`python_ref.snn.conv2d`, then :func:`python_ref.snn.requant_unit` (ReLU) or
        :func:`python_ref.quant.requant_shift` (raw). The inputs must lie in
        :func:`~amos_hw.engines.figures.input_range` (signed with ``in_signed``).
        """
        a = np.asarray(a, dtype=np.int64)
        if a.ndim != 4 or a.shape[1:] != self.in_shape:
            shape = ", ".join(map(str, self.in_shape))
            raise ValueError(f"{self._p.name}: images must have shape (N, {shape})")
        a_lo, a_hi = input_range(self.in_bits, self.in_signed)
        if a.size and (a.min() < a_lo or a.max() > a_hi):
            raise ValueError(f"{self._p.name}: inputs must lie in {a_lo}..{a_hi}")
        acc = snn.conv2d(a, self._p.weights, self.bias, self.stride, self.padding)
        if self.out_bits is None:
            return requant_shift(acc, self.shift)
        return snn.requant_unit([acc], [self.shift], IntAmosUnit.relu(self.out_bits))[0]

    def elaborate(self, platform):
        m = Module()
        p, mvu, win = self._p, self._p.mvu, self._p.window
        unit = DenseEngine(mvu.weights, mvu.bias, in_bits=mvu.in_bits, shift=mvu.shift,
                           out_bits=mvu.out_bits, pe=mvu.pe, simd=mvu.simd, planes=mvu.planes,
                           name=p.name, carry=mvu.carry, credits=True, in_signed=mvu.in_signed,
                           lut_memories=mvu.lut_memories, banked_weights=mvu.banked_weights,
                           multiply=mvu.multiply)
        window = SlidingWindow(height=win.height, width=win.width, channels=win.channels,
                               kernel=win.kernel, stride=win.stride, padding=win.padding,
                               simd=win.simd, bits=win.bits, name=win.name,
                               signed=mvu.in_signed, fifo_rows=win.fifo_rows)
        m.submodules.window = window
        m.submodules.mvu = unit
        # a skid buffer between the window and the matrix-vector unit: the unit's `ready`
        # (through its fold counters) into the window's reader was the boards' critical path
        m.submodules.window_skid = skid = SkidBuffer(window.o.payload.shape())
        wiring.connect(m, wiring.flipped(self.i), window.i)
        wiring.connect(m, window.o, skid.i)
        wiring.connect(m, skid.o, unit.i)
        wiring.connect(m, unit.o, wiring.flipped(self.o))
        m.d.comb += self.spike_count.eq(unit.spike_count)
        return m
