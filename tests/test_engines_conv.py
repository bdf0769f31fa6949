# amaranth: UnusedElaboratable=no
"""Fast tier: :class:`amos_hw.engines.conv.ConvEngine` (and its sliding window) vs python_ref."""
from __future__ import annotations

import random
import re

import numpy as np
import pytest
from amaranth.hdl import Fragment

from amos_hw.engines.conv import ConvEngine
from amos_hw.engines.figures import window_held_rows
from amos_hw.engines.window import SlidingWindow, line_buffer_rows
from amos_hw.lib.bram import MemShape, blocks_for
from amos_hw.lib.engine_sim import output_cycles, run_engine, to_words
from python_ref import snn
from python_ref.quant import IntAmosUnit, requant_shift

CONFIGS = {
    # name: (H, W, C_in, C_out, k, stride, padding, pe, simd, out_bits)
    "3x3s1p1": (5, 6, 2, 4, 3, 1, 1, 2, 1, 4),
    "3x3s2p1_raw": (6, 5, 4, 2, 3, 2, 1, 1, 2, None),
    "1x1s1": (4, 4, 2, 2, 1, 1, 0, 2, 2, 3),
    # pointwise (a FIFO, no line buffer) with 8 output folds: the next pixel must come in
    # while the matrix-vector unit reads the last one from its buffer
    "1x1s1_folds": (4, 3, 4, 8, 1, 1, 0, 1, 2, 3),
    "1x1s2": (6, 6, 2, 2, 1, 2, 0, 1, 1, 3),
    "3x3s1p0": (5, 5, 1, 2, 3, 1, 0, 2, 1, 3),
    "3x3s2p0": (7, 5, 2, 4, 3, 2, 0, 4, 2, 3),
    # output rows of one word (the window's row end is then always set) and an image of one
    # output row (every row end is an image end)
    "1x1s2_one_word_rows": (3, 2, 1, 2, 1, 2, 0, 1, 1, 3),
    "3x3s2p0_one_row": (3, 6, 2, 2, 3, 2, 0, 1, 2, 3),
}


def make(cfg, seed=0, in_bits=4, shift=7, planes=None):
    H, W, cin, cout, k, s, p, pe, simd, out_bits = cfg
    rng = np.random.default_rng(seed)
    w = rng.integers(-127, 128, (cout, k, k, cin))
    b = rng.integers(-1000, 1001, cout)
    dut = ConvEngine(w, b, height=H, width=W, stride=s, padding=p, in_bits=in_bits, shift=shift,
                     out_bits=out_bits, pe=pe, simd=simd, planes=planes)
    return dut, rng


def reference(dut, a):
    acc = snn.conv2d(a, dut.weights, dut.bias, dut.stride, dut.padding)
    if dut.out_bits is None:
        return requant_shift(acc, dut.shift)
    return snn.requant_unit([acc], [dut.shift], IntAmosUnit.relu(dut.out_bits))[0]


def n_out_words(dut, images):
    ho, wo, co = dut.out_shape
    return images * ho * wo * co // dut.pe


@pytest.mark.parametrize("name", CONFIGS)
def test_random_against_reference(name):
    dut, rng = make(CONFIGS[name], seed=len(name))
    a = rng.integers(0, 16, (2,) + dut.in_shape)
    hw = run_engine(dut, to_words(a, dut.simd), n_out_words(dut, 2), in_lanes=dut.simd,
                    out_lanes=dut.pe, seed=7)
    assert hw.tolist() == reference(dut, a).ravel().tolist()


@pytest.mark.parametrize("name", CONFIGS)
def test_expected_cycles_and_latency_exact(name):
    dut, rng = make(CONFIGS[name], seed=1)
    check_latency_and_interval(dut, rng.integers(0, 16, (3,) + dut.in_shape))


def check_latency_and_interval(dut, a):
    """Stream the images ``a`` back to back: the first output comes ``dut.latency`` cycles after
    the first input word, and one image leaves every ``dut.expected_cycles`` cycles."""
    images = len(a)
    n = n_out_words(dut, images)
    ins, outs = output_cycles(dut, to_words(a, dut.simd), n)
    firsts = outs[:: n // images]
    assert firsts[0] - ins[0] == dut.latency
    assert np.diff(firsts).tolist() == [dut.expected_cycles] * (images - 1)


def test_expected_cycles_formula():
    dut, _ = make(CONFIGS["3x3s1p1"])
    # compute-bound: Ho*Wo outputs, NF = 4/2 folds of SF = 9*2/1 words each
    assert dut.expected_cycles == 5 * 6 * 2 * 18
    Fragment.get(dut, None)
    dut, _ = make(CONFIGS["1x1s2"])
    # input-bound: 36 pixels of 2 words, but only 9 output pixels of 2 folds x 2 words
    assert dut.expected_cycles == 6 * 6 * 2
    Fragment.get(dut, None)


def test_worst_case_accumulator():
    w = np.full((2, 3, 3, 2), 127)
    w[1] = -127
    b = np.array([2**31 - 1, -(2**31)])
    dut = ConvEngine(w, b, height=3, width=3, stride=1, padding=1, in_bits=8, shift=0,
                     out_bits=None, pe=2, simd=2)
    a = np.full((1, 3, 3, 2), 255)
    hw = run_engine(dut, to_words(a, 2), n_out_words(dut, 1), in_lanes=2, out_lanes=2, seed=3)
    ref = reference(dut, a).ravel()
    assert hw.tolist() == ref.tolist()
    assert hw.max() == 2**31 - 1 + 127 * 255 * 18  # the centre pixel sees the whole window


def test_line_buffer_rows():
    assert line_buffer_rows(32, 3, 1, 1) == 4
    assert line_buffer_rows(32, 3, 2, 1) == 5
    assert line_buffer_rows(32, 1, 1, 0) == 2
    assert line_buffer_rows(5, 3, 1, 0) == 6


def test_pointwise_window_is_a_two_pixel_fifo():
    """1x1, stride 1, no padding: no line buffer, a FIFO of two pixels' words; its first word
    leaves two cycles after it came (the measured latency: test_expected_cycles_and_latency_
    exact["1x1s1_folds"]). A strided or padded 1x1 window keeps its rows."""
    win = SlidingWindow(height=8, width=8, channels=256, kernel=1, stride=1, padding=0, simd=2,
                        bits=12)
    assert win.params.pointwise and win.params.fifo_words == 256
    assert win.memories == [MemShape("fifo", 256, 24)] and win.memory_bits == 256 * 24
    assert win.latency == 2
    assert window_held_rows(8, 8, 1, 1, 0) == 1 and window_held_rows(8, 1, 1, 1, 0) == 2
    strided = SlidingWindow(height=8, width=8, channels=256, kernel=1, stride=2, padding=0,
                            simd=2, bits=12)
    assert not strided.params.pointwise
    assert strided.memories == [MemShape("lines", 3 * 8 * 128, 24)]
    assert strided.latency == 8 * 128 + 2  # the read and the output register
    # against the line buffer it replaced (2 rows of 8 pixels): 2 DP16KD fewer
    assert blocks_for(256, 24) == 1 and blocks_for(2 * 8 * 128, 24) == 3
    Fragment.get(win, None)


def test_estimates():
    dut, _ = make(CONFIGS["3x3s1p1"])
    # line buffer (4 rows of 6 pixels x 2 words x 4 bits) + weights + biases + input buffer
    assert dut.line_buffer_rows == 4
    assert dut.memory_bits == 4 * 6 * 2 * 4 + (4 * 18 * 8 + 2 * 2 * 11 + 18 * 4)
    assert dut.luts > 0 and dut.flip_flops > 0
    Fragment.get(dut, None)


# -- bad parameters -----------------------------------------------------------------------------

W4 = np.ones((2, 3, 3, 4), np.int64)
B2 = np.zeros(2, np.int64)
OK = {"height": 6, "width": 6, "stride": 1, "padding": 1, "in_bits": 4, "shift": 3,
      "out_bits": 4, "pe": 1, "simd": 2}


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((W4[:, :2], B2), {}, "c1: weights must be (C_out, k, k, C_in), not (2, 2, 3, 4)"),
        ((W4[0], B2), {}, "c1: weights must be a non-empty 4-D array, not shape (3, 3, 4)"),
        ((W4, B2), {"simd": 3}, "c1: simd must divide the 4 input channels, not 3"),
        ((W4, B2), {"simd": 0}, "c1: simd must be a positive integer, not 0"),
        ((W4, B2), {"height": 0}, "c1: height must be a positive integer, not 0"),
        ((W4, B2), {"width": -2}, "c1: width must be a positive integer, not -2"),
        ((W4, B2), {"stride": 0}, "c1: stride must be a positive integer, not 0"),
        ((W4, B2), {"padding": -1}, "c1: padding must be a non-negative integer, not -1"),
        ((W4, B2), {"padding": 3}, "c1: padding must be less than kernel=3, not 3"),
        ((W4, B2), {"height": 2, "padding": 0},
         "c1: a 3x3 window with padding 0 does not fit a 2x6 image"),
        ((W4, B2), {"pe": 4}, "c1: pe must divide the 2 outputs, not 4"),
        ((W4, B2), {"in_bits": 0}, "c1: in_bits must be a positive integer of at most 24, not 0"),
        ((W4 * 200, B2), {}, "c1: weights must lie in -127..127 (int8, symmetric), not 200..200"),
    ],
)
def test_bad_parameters(args, kwargs, message):
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        ConvEngine(*args, **{**OK, **kwargs}, name="c1")


def test_bad_window_parameters():
    with pytest.raises(ValueError, match=r"^w: bits must be a positive integer, not 0$"):
        SlidingWindow(height=4, width=4, channels=2, kernel=3, stride=1, padding=1, simd=1,
                      bits=0, name="w")
    with pytest.raises(ValueError, match=r"^name must be a non-empty string, not 3$"):
        SlidingWindow(height=4, width=4, channels=2, kernel=3, stride=1, padding=1, simd=1,
                      bits=4, name=3)


def test_model_rejects_bad_images():
    dut = ConvEngine(W4, B2, **OK, name="c1")
    with pytest.raises(ValueError, match=r"^c1: images must have shape \(N, 6, 6, 4\)$"):
        dut.model(np.zeros((1, 6, 5, 4), np.int64))
    with pytest.raises(ValueError, match=r"^c1: inputs must lie in 0\.\.15$"):
        dut.model(np.full((1, 6, 6, 4), 16))
    Fragment.get(dut, None)


def random_geometries(count, seed):
    """Seeded random small convolutions: kernels 1, 2, 3, 5; strides 1..3; any valid padding."""
    r = random.Random(seed)
    out = []
    while len(out) < count:
        k = r.choice([1, 2, 3, 5])
        p = r.randrange(0, k)
        s = r.choice([1, 2, 3])
        H, W = r.randrange(1, 7), r.randrange(1, 7)
        if H + 2 * p < k or W + 2 * p < k:
            continue
        cin, cout = r.choice([1, 2, 3, 4]), r.choice([1, 2, 3, 4])
        simd = r.choice([d for d in range(1, cin + 1) if cin % d == 0])
        pe = r.choice([d for d in range(1, cout + 1) if cout % d == 0])
        out.append((H, W, cin, cout, k, s, p, pe, simd, r.choice([None, 3])))
    return out


@pytest.mark.parametrize("cfg", random_geometries(10, seed=2026))
def test_random_geometry_values_cycles_latency(cfg):
    dut, rng = make(cfg, seed=sum(cfg[:9]), in_bits=3, shift=5)
    images = 3
    a = rng.integers(0, 8, (images,) + dut.in_shape)
    n = n_out_words(dut, images)
    hw = run_engine(dut, to_words(a, dut.simd), n, in_lanes=dut.simd, out_lanes=dut.pe, seed=1)
    assert hw.tolist() == reference(dut, a).ravel().tolist()
    check_latency_and_interval(dut, a)


@pytest.mark.parametrize("planes", [1, 2])
@pytest.mark.parametrize("name", ["3x3s1p1", "3x3s2p1_raw", "1x1s2", "3x3s2p0"])
def test_planes_values_cycles_latency(name, planes):
    """Time-serial matrix-vector units behind the sliding window: bit for bit, exact cycles."""
    dut, rng = make(CONFIGS[name], seed=3, planes=planes)
    assert dut.planes == planes
    a = rng.integers(0, 16, (2,) + dut.in_shape)
    hw = run_engine(dut, to_words(a, dut.simd), n_out_words(dut, 2), in_lanes=dut.simd,
                    out_lanes=dut.pe, seed=5)
    assert hw.tolist() == reference(dut, a).ravel().tolist()
    check_latency_and_interval(dut, rng.integers(0, 16, (3,) + dut.in_shape))
