# amaranth: UnusedElaboratable=no
"""Fast tier: :class:`amos_hw.engines.depthwise.DepthwiseConvEngine` on two's-complement input
words (``in_signed=True``, the output ``y`` of a trained AMOS unit, as in an MBConv block's
swish before the depthwise conv) and with raw requantised outputs ``v = (acc + 2**(S-1)) >> S``
for a trained unit after it: in the Amaranth simulator, bit for bit against python_ref
(``snn.conv2d`` with ``groups = C`` on the words' values, then ``snn.requant_unit`` or
``quant.requant_shift``) under random input gaps and output stalls, the measured cycles and
latency equal to the figures (and to the unsigned engine's), the accumulator's exact range
reached at both ends, and a raw depthwise conv feeding a :class:`~amos_hw.engines.unit.
UnitEngine` equal to :class:`python_ref.quant.IntAmosUnit` on python_ref's ``v``.

An ``in_bits`` signed word ``x`` has the value ``-2**(in_bits-1) * x[in_bits-1] + sum_{b <
in_bits-1} 2**b * x[b]``.
"""
from __future__ import annotations

import re

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring

from amos_hw.engines.depthwise import DepthwiseConvEngine
from amos_hw.engines.figures import accumulator_range
from amos_hw.engines.unit import UnitEngine
from amos_hw.lib.engine_sim import output_cycles, run_engine, to_words
from python_ref import snn
from python_ref.quant import IntAmosUnit, quantize_unit, requant_shift, signed_width
from python_ref.units import load_unit

CONFIGS = {
    # name: (H, W, C, k, stride, padding, lanes, in_bits, shift, out_bits)
    "3x3s1p1_relu": (5, 6, 4, 3, 1, 1, 2, 6, 6, 4),
    "3x3s2p1_raw_shift": (6, 5, 4, 3, 2, 1, 1, 8, 5, None),
    "3x3s1p1_raw_shift0": (4, 5, 2, 3, 1, 1, 2, 4, 0, None),
    "3x3s2p0_lanes": (7, 5, 6, 3, 2, 0, 6, 5, 4, 3),
    "1x1s1_raw": (4, 4, 2, 1, 1, 0, 1, 3, 1, None),
    "one_bit": (4, 4, 2, 3, 1, 1, 2, 1, 0, None),
}


def signed_inputs(rng, shape, bits):
    """Random ``bits`` two's-complement values, the most negative one, -1 and the largest
    among them."""
    a = rng.integers(-(2 ** (bits - 1)), 2 ** (bits - 1), shape)
    flat = a.reshape(-1)
    flat[0], flat[1], flat[-1] = -(2 ** (bits - 1)), -1, 2 ** (bits - 1) - 1
    flat[2::7] = -(2 ** (bits - 1))
    flat[3::11] = -1
    return a


def make(cfg, seed=0, **kw):
    H, W, C, k, s, p, lanes, in_bits, shift, out_bits = cfg
    rng = np.random.default_rng(seed)
    w = rng.integers(-127, 128, (C, k, k, 1))
    b = rng.integers(-1000, 1001, C)
    dut = DepthwiseConvEngine(w, b, height=H, width=W, stride=s, padding=p, in_bits=in_bits,
                              shift=shift, out_bits=out_bits, lanes=lanes, in_signed=True, **kw)
    return dut, rng


def reference(dut, a):
    """python_ref on the words' values: the grouped convolution, then the ReLU unit or the raw
    requantised value."""
    acc = snn.conv2d(a, dut.weights, dut.bias, dut.stride, dut.padding, groups=a.shape[3])
    if dut.out_bits is None:
        return requant_shift(acc, dut.shift)
    return snn.requant_unit([acc], [dut.shift], IntAmosUnit.relu(dut.out_bits))[0]


def n_out_words(dut, images):
    ho, wo, c = dut.out_shape
    return images * ho * wo * c // dut.lanes


@pytest.mark.parametrize("name", CONFIGS)
def test_random_against_reference(name):
    dut, rng = make(CONFIGS[name], seed=len(name))
    a = signed_inputs(rng, (3,) + dut.in_shape, dut.in_bits)
    hw = run_engine(dut, to_words(a, dut.lanes), n_out_words(dut, 3), in_lanes=dut.lanes,
                    out_lanes=dut.lanes, seed=len(name))
    ref = reference(dut, a).ravel()
    assert hw.tolist() == ref.tolist()
    assert hw.tolist() == dut.model(a).ravel().tolist()
    if dut.out_bits is not None:  # the data reach both ends of the unit's range
        assert ref.min() == 0 and ref.max() == 2**dut.out_bits - 1
    else:  # negative and positive raw values
        assert ref.min() < 0 < ref.max()


def test_sign_plane_alone():
    """Every input the most negative word (only the sign plane spikes), or -1 (every plane):
    the sign plane's spike weighs -2**(in_bits-1), not +2**(in_bits-1). A 1x1 kernel: each
    output is ``w_c * a + b_c``."""
    w = np.array([3, -127, 127, 0]).reshape(4, 1, 1, 1)
    b = np.array([0, 5, -7, 11])
    dut = DepthwiseConvEngine(w, b, height=1, width=3, in_bits=4, shift=0, out_bits=None,
                              lanes=2, in_signed=True)
    a = np.array([[[[-8, -8, -8, -8], [-1, -1, -1, -1], [7, -8, 7, -1]]]])
    hw = run_engine(dut, to_words(a, 2), 6, in_lanes=2, out_lanes=2, seed=4)
    assert hw.tolist() == [-24, 1016 + 5, -1016 - 7, 11,
                           -3, 127 + 5, -127 - 7, 11,
                           21, 1016 + 5, 889 - 7, 11]


@pytest.mark.parametrize("name", ["3x3s1p1_relu", "3x3s2p1_raw_shift", "3x3s2p0_lanes",
                                  "1x1s1_raw"])
def test_cycles_and_latency_exact(name):
    """Images back to back, no idle, no stall: the first output ``latency`` cycles after the
    first input, one image every ``expected_cycles``; both as for unsigned inputs."""
    dut, rng = make(CONFIGS[name])
    a = signed_inputs(rng, (3,) + dut.in_shape, dut.in_bits)
    per_image = n_out_words(dut, 1)
    ins, outs = output_cycles(dut, to_words(a, dut.lanes), 3 * per_image)
    firsts = outs[::per_image]
    assert firsts[0] - ins[0] == dut.latency
    H, W, C, k, _, _, lanes, *_ = CONFIGS[name]
    ho, wo, _ = dut.out_shape
    cycles = max(ho * wo * k * k * C // lanes, H * W * C // lanes)
    assert np.diff(firsts).tolist() == [dut.expected_cycles] * 2 == [cycles] * 2
    kw = {k_: getattr(dut, k_) for k_ in ("stride", "padding", "in_bits", "shift", "out_bits",
                                          "lanes")}
    plain = DepthwiseConvEngine.figures(dut.weights, dut.bias, height=H, width=W, **kw)
    assert (plain.cycles, plain.latency) == (dut.expected_cycles, dut.latency)


def test_worst_case_accumulator():
    """Extreme biases and weights, every input the most negative word (only the sign plane
    spikes): the accumulator reaches both ends of its exact range (``accumulator_range`` with
    ``in_signed``: the bias plus the centre pixel's nine taps of ``127 * 128``), and one bit
    less would not hold them."""
    w = np.full((2, 3, 3, 1), -127)
    w[1] = 127
    b = np.array([2**31 - 1, -(2**31)])
    dut = DepthwiseConvEngine(w, b, height=3, width=3, stride=1, padding=1, in_bits=8,
                              shift=0, out_bits=None, lanes=2, in_signed=True)
    a = np.stack([np.full((3, 3, 2), -128), np.full((3, 3, 2), 127)])
    hw = run_engine(dut, to_words(a, 2), n_out_words(dut, 2), in_lanes=2, out_lanes=2, seed=3)
    assert hw.tolist() == reference(dut, a).ravel().tolist()
    top, bottom = 2**31 - 1 + 127 * 128 * 9, -(2**31) - 127 * 128 * 9
    assert hw.max() == top and hw.min() == bottom
    assert dut.params.acc_range == (bottom, top) == accumulator_range(
        w.reshape(2, 9), b, 8, in_signed=True)
    assert dut.acc_width == signed_width(bottom, top) == 33
    assert not -(2**31) <= top < 2**31  # 32 bits would not do


def test_figures_equal_the_engine():
    H, W, C, k, s, p, lanes, in_bits, shift, out_bits = CONFIGS["3x3s2p1_raw_shift"]
    rng = np.random.default_rng(2)
    args = (rng.integers(-127, 128, (C, k, k, 1)), rng.integers(-1000, 1001, C))
    kw = {"height": H, "width": W, "stride": s, "padding": p, "in_bits": in_bits,
          "shift": shift, "out_bits": out_bits, "lanes": lanes, "in_signed": True}
    fig = DepthwiseConvEngine.figures(*args, **kw)
    dut = DepthwiseConvEngine(*args, **kw)
    assert (fig.cycles, fig.latency, fig.luts, fig.flip_flops, fig.memory_bits,
            list(fig.memories), fig.out_width) == (
        dut.expected_cycles, dut.latency, dut.luts, dut.flip_flops, dut.memory_bits,
        dut.memories, dut.out_width)
    assert dut.in_signed and dut.params.in_signed
    # the raw output width: the exact signed width of v over the signed accumulator's range
    acc_lo, acc_hi = accumulator_range(args[0].reshape(C, k * k), args[1], in_bits, True)
    v_lo, v_hi = (int(v) for v in requant_shift(np.array([acc_lo, acc_hi]), shift))
    assert fig.out_width == signed_width(v_lo, v_hi)
    assert dut.i.payload.shape().elem_shape.signed
    assert dut.o.payload.shape().elem_shape.signed


def test_in_signed_must_be_a_bool():
    args = (np.zeros((2, 3, 3, 1), np.int64), np.zeros(2, np.int64))
    kw = {"height": 4, "width": 4, "in_bits": 4, "shift": 0, "out_bits": None, "name": "d",
          "in_signed": 1}
    msg = "^" + re.escape("d: in_signed must be a bool, not 1") + "$"
    with pytest.raises(ValueError, match=msg):
        DepthwiseConvEngine(*args, **kw)
    with pytest.raises(ValueError, match=msg):
        DepthwiseConvEngine.figures(*args, **kw)


def test_model_checks_the_signed_range():
    dut, _ = make(CONFIGS["3x3s1p1_relu"])
    with pytest.raises(ValueError, match=r"^dwconv: inputs must lie in -32\.\.31$"):
        dut.model(np.full((1, 5, 6, 4), -33))
    with pytest.raises(ValueError, match=r"^dwconv: inputs must lie in -32\.\.31$"):
        dut.model(np.full((1, 5, 6, 4), 32))


class _DwThenUnit(wiring.Component):
    """A raw depthwise conv (``shift = S``) and a unit engine on its ``v``."""

    def __init__(self, dw, unit):
        self.dw, self.unit = dw, unit
        super().__init__({"i": wiring.In(dw.i.signature.flip()),
                          "o": wiring.Out(unit.o.signature)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.dw, m.submodules.unit = self.dw, self.unit
        wiring.connect(m, wiring.flipped(self.i), self.dw.i)
        wiring.connect(m, self.dw.o, self.unit.i)
        wiring.connect(m, self.unit.o, wiring.flipped(self.o))
        return m


@pytest.mark.parametrize("lanes", [1, 2])
def test_raw_output_feeds_a_trained_unit(lanes):
    """Signed words in, the raw ``v`` requantised by the unit's shift out, a swish unit engine
    on it: ``y`` equal to :class:`~python_ref.quant.IntAmosUnit` on python_ref's ``v`` (which
    spans the unit's whole input range, saturation included)."""
    unit = quantize_unit(load_unit("swish"), 8, 8, 6)
    rng = np.random.default_rng(lanes)
    C = 4
    w = rng.integers(-127, 128, (C, 3, 3, 1))
    b = rng.integers(-500, 501, C)
    dw = DepthwiseConvEngine(w, b, height=5, width=5, stride=1, padding=1, in_bits=8, shift=7,
                             out_bits=None, lanes=lanes, in_signed=True)
    eng = UnitEngine(unit, in_width=dw.out_width, lanes=lanes, elements=5 * 5 * C)
    a = signed_inputs(rng, (2, 5, 5, C), 8)
    v = reference(dw, a)
    lo, hi = unit.in_range
    assert v.min() < lo and v.max() > hi  # saturation on both sides is exercised
    hw = run_engine(_DwThenUnit(dw, eng), to_words(a, lanes), v.size // lanes,
                    in_lanes=lanes, out_lanes=lanes, seed=9)
    assert hw.tolist() == unit(v.ravel()).tolist()
