"""Convolution engine: a line-buffered sliding window feeding the spike-driven matrix-vector unit.
"""
from __future__ import annotations

import numpy as np
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from amos_hw.engines.dense import DenseEngine, _int_array, _pos_int
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
    in_bits, shift, out_bits, pe, simd, planes, name, carry
        As :class:`~amos_hw.engines.dense.DenseEngine` (``simd`` must divide ``C_in``;
        ``planes`` spike planes per cycle, all of them by default; ``carry="ecp5"``: the first
        adder level on ECP5 carry cells with the spike gates folded in).

    Members
    -------
    i : ``In(stream.Signature(ArrayLayout(unsigned(in_bits), simd)))``
        Pixels in raster order, channels innermost, ``simd`` channels a word.
    o : ``Out(stream.Signature(ArrayLayout(..., pe)))``
        Output pixels in raster order, ``pe`` channels a word.
    spike_count : ``Out(32)``
        Spikes of the output AMOS units.
    """

    def __init__(self, weights, bias, *, height, width, stride=1, padding=0, in_bits, shift,
                 out_bits, pe=1, simd=1, planes=None, name="conv", carry="generic"):
        self._MustUse__silence = True
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string, not {name!r}")
        weights = _int_array(weights, "weights", 4, name)
        c_out, k, k2, c_in = weights.shape
        if k != k2:
            raise ValueError(f"{name}: weights must be (C_out, k, k, C_in), not {weights.shape}")
        simd = _pos_int(simd, f"{name}: simd")
        if c_in % simd:
            raise ValueError(f"{name}: simd must divide the {c_in} input channels, not {simd}")
        self._mvu = DenseEngine(weights.reshape(c_out, k * k * c_in), bias, in_bits=in_bits,
                                shift=shift, out_bits=out_bits, pe=pe, simd=simd, planes=planes,
                                name=name, carry=carry, credits=True)
        try:
            self._window = SlidingWindow(height=height, width=width, channels=c_in, kernel=k,
                                         stride=stride, padding=padding, simd=simd,
                                         bits=in_bits, name=name)
        except (TypeError, ValueError):
            for unused in (self._mvu, self._mvu._amos):
                if unused is not None:
                    unused._MustUse__silence = True
            raise
        self._name = name
        self._weights = weights
        self._weights.setflags(write=False)
        self._geom = (height, width, stride, padding)
        super().__init__({
            "i": self._mvu.signature.members["i"],
            "o": self._mvu.signature.members["o"],
            "spike_count": Out(32),
        })
        self._MustUse__silence = False

    name = property(lambda self: self._name)
    weights = property(lambda self: self._weights, doc="(C_out, k, k, C_in) int64, read-only.")
    bias = property(lambda self: self._mvu.bias)
    in_bits = property(lambda self: self._mvu.in_bits)
    out_bits = property(lambda self: self._mvu.out_bits)
    out_width = property(lambda self: self._mvu.out_width)
    shift = property(lambda self: self._mvu.shift)
    pe = property(lambda self: self._mvu.pe)
    simd = property(lambda self: self._mvu.simd)
    planes = property(lambda self: self._mvu.planes, doc="Spike planes per cycle.")
    acc_width = property(lambda self: self._mvu.acc_width)
    kernel = property(lambda self: self._weights.shape[1])
    stride = property(lambda self: self._geom[2])
    padding = property(lambda self: self._geom[3])
    in_shape = property(lambda self: (self._geom[0], self._geom[1], self._weights.shape[3]))
    out_shape = property(
        lambda self: (self._window.out_height, self._window.out_width, self._weights.shape[0])
    )
    line_buffer_rows = property(lambda self: self._window.rows)

    @property
    def expected_cycles(self) -> int:
        """Cycles per image: the larger of the compute time and the input time."""
        h, w, _ = self.in_shape
        compute = self._window.out_height * self._window.out_width * self._mvu.expected_cycles
        return max(compute, h * w * self._weights.shape[3] // self.simd)

    @property
    def latency(self) -> int:
        """Cycles from an image's first input word to its first output word (the window, the
        skid buffer between them, the matrix-vector unit)."""
        return self._window.latency + SkidBuffer.latency + self._mvu.latency

    @property
    def memories(self) -> list:
        return self._window.memories + self._mvu.memories

    @property
    def memory_bits(self) -> int:
        return self._window.memory_bits + self._mvu.memory_bits

    @property
    def flip_flops(self) -> int:
        skid = SkidBuffer.flip_flops_for(self.simd * self.in_bits)
        return self._window.flip_flops + skid + self._mvu.flip_flops

    @property
    def luts(self) -> int:
        return self._window.luts + self._mvu.luts

    def model(self, a):
        """Reference outputs for images ``a`` (``(N, H, W, C_in)``), ``(N, Ho, Wo, C_out)`` int64.

        :func:`python_ref.snn.conv2d`, then :func:`python_ref.snn.requant_unit` (ReLU) or
        :func:`python_ref.quant.requant_shift` (raw).
        """
        a = np.asarray(a, dtype=np.int64)
        if a.ndim != 4 or a.shape[1:] != self.in_shape:
            shape = ", ".join(map(str, self.in_shape))
            raise ValueError(f"{self._name}: images must have shape (N, {shape})")
        if a.size and (a.min() < 0 or a.max() > 2**self.in_bits - 1):
            raise ValueError(f"{self._name}: inputs must lie in 0..{2**self.in_bits - 1}")
        acc = snn.conv2d(a, self._weights, self.bias, self.stride, self.padding)
        if self.out_bits is None:
            return requant_shift(acc, self.shift)
        return snn.requant_unit([acc], [self.shift], IntAmosUnit.relu(self.out_bits))[0]

    def elaborate(self, platform):
        m = Module()
        m.submodules.window = self._window
        m.submodules.mvu = self._mvu
        # a skid buffer between the window and the matrix-vector unit: the unit's `ready`
        # (through its fold counters) into the window's reader was the boards' critical path
        m.submodules.window_skid = skid = SkidBuffer(self._window.o.payload.shape())
        wiring.connect(m, wiring.flipped(self.i), self._window.i)
        wiring.connect(m, self._window.o, skid.i)
        wiring.connect(m, skid.o, self._mvu.i)
        wiring.connect(m, self._mvu.o, wiring.flipped(self.o))
        m.d.comb += self.spike_count.eq(self._mvu.spike_count)
        return m

