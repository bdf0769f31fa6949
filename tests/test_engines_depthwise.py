# amaranth: UnusedElaboratable=no
"""Fast tier: :class:`amos_hw.engines.depthwise.DepthwiseConvEngine` in the Amaranth simulator,
bit for bit against python_ref (``snn.conv2d`` with ``groups = C``, then ``snn.requant_unit``
or ``quant.requant_shift``), with exact cycles and latency, and its figures."""
from __future__ import annotations

import re

import numpy as np
import pytest
from amaranth.hdl import Fragment

from amos_hw.engines.depthwise import DepthwiseConvEngine
from amos_hw.lib.engine_sim import output_cycles, run_engine, to_words
from python_ref import snn
from python_ref.quant import IntAmosUnit, requant_shift

CONFIGS = {
    # name: (H, W, C, k, stride, padding, lanes, out_bits)
    "3x3s1p1": (5, 6, 4, 3, 1, 1, 2, 4),
    "3x3s2p1_raw": (6, 5, 4, 3, 2, 1, 1, None),
    "3x3s1p0": (5, 5, 2, 3, 1, 0, 2, 3),
    "3x3s2p0_lanes": (7, 5, 6, 3, 2, 0, 6, 4),
    "1x1s1": (4, 4, 2, 1, 1, 0, 1, 3),
    "5x5s1p2": (5, 5, 2, 5, 1, 2, 1, 4),
}


def make(cfg, seed=0, in_bits=4, shift=5):
    H, W, C, k, s, p, lanes, out_bits = cfg
    rng = np.random.default_rng(seed)
    w = rng.integers(-127, 128, (C, k, k, 1))
    b = rng.integers(-1000, 1001, C)
    dut = DepthwiseConvEngine(w, b, height=H, width=W, stride=s, padding=p, in_bits=in_bits,
                              shift=shift, out_bits=out_bits, lanes=lanes)
    return dut, rng


def reference(dut, a):
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
    a = rng.integers(0, 16, (2,) + dut.in_shape)
    hw = run_engine(dut, to_words(a, dut.lanes), n_out_words(dut, 2), in_lanes=dut.lanes,
                    out_lanes=dut.lanes, seed=7)
    ref = reference(dut, a).ravel()
    assert hw.tolist() == ref.tolist()
    assert hw.tolist() == dut.model(a).ravel().tolist()
    if dut.out_bits is not None:  # the data reach both ends of the unit's range
        assert ref.min() == 0 and ref.max() == 2**dut.out_bits - 1


@pytest.mark.parametrize("name", ["3x3s1p1", "3x3s2p1_raw", "3x3s2p0_lanes", "1x1s1"])
def test_cycles_and_latency_exact(name):
    dut, rng = make(CONFIGS[name])
    a = rng.integers(0, 16, (3,) + dut.in_shape)
    per_image = n_out_words(dut, 1)
    ins, outs = output_cycles(dut, to_words(a, dut.lanes), 3 * per_image)
    firsts = outs[::per_image]
    assert firsts[0] - ins[0] == dut.latency
    H, W, C, k, _, _, lanes, _ = CONFIGS[name]
    ho, wo, _ = dut.out_shape
    cycles = max(ho * wo * k * k * C // lanes, H * W * C // lanes)
    assert np.diff(firsts).tolist() == [dut.expected_cycles] * 2 == [cycles] * 2


def test_worst_case_accumulator():
    """Extreme biases and weights with every input at its largest: the accumulator holds the
    centre pixel's whole window on top of the int32 bias, and one bit less would not."""
    w = np.full((2, 3, 3, 1), 127)
    w[1] = -127
    b = np.array([2**31 - 1, -(2**31)])
    dut = DepthwiseConvEngine(w, b, height=3, width=3, stride=1, padding=1, in_bits=8,
                              shift=0, out_bits=None, lanes=2)
    a = np.full((1, 3, 3, 2), 255)
    hw = run_engine(dut, to_words(a, 2), n_out_words(dut, 1), in_lanes=2, out_lanes=2, seed=3)
    ref = reference(dut, a).ravel()
    assert hw.tolist() == ref.tolist()
    assert hw.max() == 2**31 - 1 + 127 * 255 * 9 and hw.min() == -(2**31) - 127 * 255 * 9
    assert dut.acc_width == 33 and not -(2**31) <= hw.max() < 2**31  # 32 bits would not do


def test_spike_count():
    dut, rng = make(CONFIGS["3x3s1p1"])
    assert dut.spike_count.shape().width == 32
    Fragment.get(dut, None)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"weights": np.zeros((2, 3, 3, 2), np.int64)},
         "d: weights must be (C, k, k, 1), not (2, 3, 3, 2)"),
        ({"weights": np.zeros((2, 3, 2, 1), np.int64)},
         "d: weights must be (C, k, k, 1), not (2, 3, 2, 1)"),
        ({"weights": np.full((2, 3, 3, 1), 128)},
         "d: weights must lie in -127..127 (int8, symmetric), not 128..128"),
        ({"weights": np.zeros((2, 3, 3), np.int64)},
         "d: weights must be a non-empty 4-D array, not shape (2, 3, 3)"),
        ({"bias": np.zeros(3, np.int64)}, "d: bias must have shape (2,), not (3,)"),
        ({"bias": np.array([2**31, 0])}, "d: bias must lie in the int32 range"),
        ({"in_bits": 0}, "d: in_bits must be a positive integer of at most 24, not 0"),
        ({"shift": -1}, "d: shift must be a non-negative integer of at most 62, not -1"),
        ({"out_bits": 17}, "d: out_bits must be a positive integer of at most 16, not 17"),
        ({"lanes": 3}, "d: simd must divide the 2 input channels, not 3"),
        ({"padding": 3}, "d: padding must be less than kernel=3, not 3"),
        ({"stride": 0}, "d: stride must be a positive integer, not 0"),
    ],
)
def test_bad_parameters(change, message):
    ok = {"weights": np.zeros((2, 3, 3, 1), np.int64), "bias": np.zeros(2, np.int64),
          "height": 4, "width": 4, "stride": 1, "padding": 1, "in_bits": 4, "shift": 3,
          "out_bits": 4, "lanes": 2}
    kw = {**ok, **change}
    args = (kw.pop("weights"), kw.pop("bias"))
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        DepthwiseConvEngine(*args, **kw, name="d")
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        DepthwiseConvEngine.figures(*args, **kw, name="d")


def test_bad_types():
    with pytest.raises(TypeError, match=r"^d: weights must hold integers, not float64$"):
        DepthwiseConvEngine(np.zeros((1, 1, 1, 1)), [0], height=2, width=2, in_bits=4,
                            shift=0, out_bits=4, name="d")


def test_model_checks_its_input():
    dut, _ = make(CONFIGS["3x3s1p1"])
    with pytest.raises(ValueError, match=r"^dwconv: images must have shape \(N, 5, 6, 4\)$"):
        dut.model(np.zeros((1, 5, 6, 2), np.int64))
    with pytest.raises(ValueError, match=r"^dwconv: inputs must lie in 0\.\.15$"):
        dut.model(np.full((1, 5, 6, 4), -1))


@pytest.mark.parametrize("name", ["3x3s1p1", "3x3s2p1_raw"])
def test_figures_equal_the_engine(name):
    H, W, C, k, s, p, lanes, out_bits = CONFIGS[name]
    rng = np.random.default_rng(1)
    args = (rng.integers(-127, 128, (C, k, k, 1)), rng.integers(-1000, 1001, C))
    kw = {"height": H, "width": W, "stride": s, "padding": p, "in_bits": 4, "shift": 5,
          "out_bits": out_bits, "lanes": lanes}
    fig = DepthwiseConvEngine.figures(*args, **kw)
    dut = DepthwiseConvEngine(*args, **kw)
    assert (fig.cycles, fig.latency, fig.luts, fig.flip_flops, fig.memory_bits,
            list(fig.memories), fig.out_width) == (
        dut.expected_cycles, dut.latency, dut.luts, dut.flip_flops, dut.memory_bits,
        dut.memories, dut.out_width)
    names = [mem.name for mem in fig.memories]
    assert names == ["lines", "weights", "biases"]
    assert fig.memories[1].depth == k * k * C // lanes
    assert dut.pe == dut.simd == lanes
