# amaranth: UnusedElaboratable=no
"""Fast tier: :class:`amos_hw.engines.dense.DenseEngine` in the Amaranth simulator vs python_ref."""
from __future__ import annotations

import re

import numpy as np
import pytest
from amaranth.hdl import Fragment

from amos_hw.engines.dense import DenseEngine, accumulator_range
from amos_hw.engines.figures import DenseParams
from amos_hw.lib.engine_sim import from_words, output_cycles, run_engine, to_words
from amos_hw.lib.sim import run_simulation, stream_get_many, stream_put_many
from python_ref import snn
from python_ref.quant import requant_shift, signed_width


def make(rng, n_out, n_in, *, in_bits=4, shift=6, out_bits=4, pe=1, simd=1, bias=3000,
         credits=False):
    w = rng.integers(-127, 128, (n_out, n_in))
    b = rng.integers(-bias, bias + 1, n_out)
    return DenseEngine(w, b, in_bits=in_bits, shift=shift, out_bits=out_bits, pe=pe, simd=simd,
                       credits=credits)


def run(dut, a, seed=0, **kw):
    words = to_words(a, dut.simd)
    n_out = a.shape[0] * dut.n_out // dut.pe
    out = run_engine(dut, words, n_out, in_lanes=dut.simd, out_lanes=dut.pe, seed=seed, **kw)
    return out.reshape(a.shape[0], dut.n_out)


def reference(dut, a):
    # written from python_ref directly, not through dut.model
    acc = snn.dense(a, dut.weights, dut.bias)
    v = requant_shift(acc, dut.shift)
    if dut.out_bits is None:
        return v
    y, _ = snn.requant_unit([acc], [dut.shift], snn.IntAmosUnit.relu(dut.out_bits))
    return y


@pytest.mark.parametrize(
    ("n_out", "n_in", "pe", "simd", "in_bits", "out_bits", "shift"),
    [
        (6, 8, 2, 4, 4, 4, 6),  # folded both ways
        (4, 6, 1, 1, 3, None, 0),  # raw logits, fully serial
        (3, 3, 3, 3, 4, 3, 4),  # fully parallel (NF = SF = 1)
        (10, 12, 5, 3, 8, None, 2),  # raw, shifted
        (8, 16, 4, 2, 1, 2, 3),  # 1-bit inputs
    ],
)
@pytest.mark.parametrize("credits", [False, True])
def test_random_against_reference(n_out, n_in, pe, simd, in_bits, out_bits, shift, credits):
    rng = np.random.default_rng(n_out * 100 + n_in)
    dut = make(rng, n_out, n_in, in_bits=in_bits, shift=shift, out_bits=out_bits, pe=pe,
               simd=simd, credits=credits)
    a = rng.integers(0, 2**in_bits, (6, n_in))
    hw = run(dut, a, seed=n_in)
    assert hw.tolist() == reference(dut, a).tolist()
    assert hw.tolist() == dut.model(a).tolist()


def test_spike_count_reports_activity():
    rng = np.random.default_rng(3)
    dut = make(rng, 4, 4, pe=2, simd=2, shift=5)
    a = rng.integers(0, 16, (5, 4))
    words = to_words(a, 2)
    got, counts = [], {}

    async def producer(ctx):
        await stream_put_many(ctx, dut.i, words)

    async def consumer(ctx):
        got.extend(await stream_get_many(ctx, dut.o, 10))
        await ctx.tick().repeat(2)  # the counters lag the transfer by a registered popcount
        counts["spikes"] = ctx.get(dut.spike_count)

    run_simulation(dut, producer, consumer)
    hw = from_words(got, 2)
    assert hw.tolist() == reference(dut, a).ravel().tolist()
    assert counts["spikes"] == sum(bin(int(v)).count("1") for v in hw)


@pytest.mark.parametrize(("n_out", "n_in", "pe", "simd", "out_bits"),
                         [(6, 8, 2, 4, 4), (4, 6, 1, 1, None), (3, 3, 3, 3, 2), (4, 4, 2, 4, 3)])
@pytest.mark.parametrize("credits", [False, True])
def test_expected_cycles_and_latency_exact(n_out, n_in, pe, simd, out_bits, credits):
    rng = np.random.default_rng(11)
    dut = make(rng, n_out, n_in, pe=pe, simd=simd, out_bits=out_bits, credits=credits)
    assert dut.expected_cycles == (n_out // pe) * (n_in // simd)
    check_latency_and_interval(dut, rng.integers(0, 16, (4, n_in)))


def check_latency_and_interval(dut, a):
    """Stream the vectors ``a`` back to back: the first output comes ``dut.latency`` cycles after
    the first input word, and one vector leaves every ``dut.expected_cycles`` cycles."""
    images, per_image = len(a), dut.n_out // dut.pe
    ins, outs = output_cycles(dut, to_words(a, dut.simd), images * per_image)
    firsts = outs[::per_image]
    assert firsts[0] - ins[0] == dut.latency
    assert np.diff(firsts).tolist() == [dut.expected_cycles] * (images - 1)


def test_accumulator_width_is_tight_and_worst_case_exact():
    """Worst-case inputs reach both ends of the accumulator range; outputs stay exact."""
    rng = np.random.default_rng(5)
    n_out, n_in, in_bits = 4, 12, 8
    w = rng.choice([-127, 127], size=(n_out, n_in))
    w[0] = 127  # all positive: the largest sum
    w[1] = -127  # all negative: the smallest
    b = np.array([2**31 - 1, -(2**31), 0, 12345])
    dut = DenseEngine(w, b, in_bits=in_bits, shift=0, out_bits=None, pe=2, simd=3)
    amax = 2**in_bits - 1
    lo, hi = accumulator_range(w, b, in_bits)
    assert (lo, hi) == (-(2**31) - 127 * amax * n_in, 2**31 - 1 + 127 * amax * n_in)
    assert dut.acc_width == signed_width(lo, hi)
    # one bit less would overflow on these very sums
    assert not (-(2 ** (dut.acc_width - 2)) <= lo and hi <= 2 ** (dut.acc_width - 2) - 1)
    # per output: the input that maximises it and the one that minimises it
    worst = []
    for k in range(n_out):
        worst.append(np.where(w[k] > 0, amax, 0))
        worst.append(np.where(w[k] < 0, amax, 0))
    a = np.array(worst)
    hw = run(dut, a, seed=2)
    ref = reference(dut, a)
    assert hw.tolist() == ref.tolist()
    assert hw.max() == hi and hw.min() == lo


def test_worst_case_saturates_relu():
    rng = np.random.default_rng(6)
    w = np.full((2, 8), 127)
    w[1] = -127
    dut = DenseEngine(w, [0, 0], in_bits=4, shift=4, out_bits=4, pe=1, simd=4)
    a = np.array([[15] * 8, [0] * 8, rng.integers(0, 16, 8)])
    hw = run(dut, a, seed=1)
    assert hw.tolist() == reference(dut, a).tolist()
    assert hw[0].tolist() == [15, 0]


def test_estimates():
    rng = np.random.default_rng(0)
    w = rng.integers(-127, 128, (8, 16))
    b = np.zeros(8, np.int64)
    small = DenseEngine(w, b, in_bits=4, shift=6, out_bits=4, pe=1, simd=1)
    big = DenseEngine(w, b, in_bits=4, shift=6, out_bits=4, pe=4, simd=4)
    assert small.expected_cycles == 128 and big.expected_cycles == 8
    assert big.luts > small.luts > 0 and big.flip_flops > small.flip_flops > 0
    # same weights either way; only the buffer and the word packing differ
    assert small.memory_bits == 8 * 16 * 8 + 8 * 1 + 16 * 4
    assert big.memory_bits == 8 * 16 * 8 + 8 * 1 + 4 * 4 * 4
    for dut in (small, big):
        Fragment.get(dut, None)


# -- bad parameters -----------------------------------------------------------------------------

W = np.ones((4, 6), np.int64)
B = np.zeros(4, np.int64)
OK = {"in_bits": 4, "shift": 2, "out_bits": 4, "pe": 2, "simd": 3}


@pytest.mark.parametrize(
    ("args", "kwargs", "exc", "message"),
    [
        ((W * 128, B), {}, ValueError,
         "fc1: weights must lie in -127..127 (int8, symmetric), not 128..128"),
        ((W.astype(float), B), {}, TypeError, "fc1: weights must hold integers, not float64"),
        ((W[0], B), {}, ValueError, "fc1: weights must be a non-empty 2-D array, not shape (6,)"),
        ((W, B[:3]), {}, ValueError, "fc1: bias must have shape (4,), not (3,)"),
        ((W, B + 2**31), {}, ValueError, "fc1: bias must lie in the int32 range"),
        ((W, B), {"in_bits": 0}, ValueError,
         "fc1: in_bits must be a positive integer of at most 24, not 0"),
        ((W, B), {"in_bits": 25}, ValueError,
         "fc1: in_bits must be a positive integer of at most 24, not 25"),
        ((W, B), {"shift": -1}, ValueError,
         "fc1: shift must be a non-negative integer of at most 62, not -1"),
        ((W, B), {"shift": 63}, ValueError,
         "fc1: shift must be a non-negative integer of at most 62, not 63"),
        ((W, B), {"out_bits": 0}, ValueError,
         "fc1: out_bits must be a positive integer of at most 16, not 0"),
        ((W, B), {"pe": 0}, ValueError, "fc1: pe must be a positive integer, not 0"),
        ((W, B), {"simd": 1.5}, ValueError, "fc1: simd must be a positive integer, not 1.5"),
        ((W, B), {"pe": 3}, ValueError, "fc1: pe must divide the 4 outputs, not 3"),
        ((W, B), {"simd": 4}, ValueError, "fc1: simd must divide the 6 inputs, not 4"),
    ],
)
def test_bad_parameters(args, kwargs, exc, message):
    with pytest.raises(exc, match="^" + re.escape(message) + "$"):
        DenseEngine(*args, **{**OK, **kwargs}, name="fc1")


def test_bad_name():
    with pytest.raises(ValueError, match=r"^name must be a non-empty string, not ''$"):
        DenseEngine(W, B, **OK, name="")


def test_model_rejects_bad_inputs():
    dut = DenseEngine(W, B, **OK, name="fc1")
    with pytest.raises(ValueError, match=r"^fc1: inputs must lie in 0\.\.15$"):
        dut.model(np.full((1, 6), 16))
    with pytest.raises(ValueError, match=r"^fc1: input vectors must have 6 values$"):
        dut.model(np.zeros((1, 5), np.int64))
    Fragment.get(dut, None)


# -- planes: the spike lane taken a few time steps per cycle (planes=1: one per cycle) ----------
@pytest.mark.parametrize(
    ("n_out", "n_in", "pe", "simd", "in_bits", "planes", "out_bits"),
    [
        (6, 8, 2, 4, 4, 1, 4),  # time-serial, folded both ways
        (6, 8, 2, 4, 4, 2, 4),  # two planes per cycle
        (4, 6, 1, 1, 3, 1, None),  # raw logits, serial in every way
        (3, 3, 3, 3, 10, 5, 3),  # NF = SF = 1: only the passes
        (10, 12, 5, 3, 8, 1, None),  # 8-bit inputs (pixels), raw
        (8, 16, 4, 2, 10, 2, 10),  # K = 10 in and out
    ],
)
def test_planes_against_reference(n_out, n_in, pe, simd, in_bits, planes, out_bits):
    rng = np.random.default_rng(n_out * 100 + n_in + planes)
    w = rng.integers(-127, 128, (n_out, n_in))
    b = rng.integers(-3000, 3001, n_out)
    dut = DenseEngine(w, b, in_bits=in_bits, shift=6, out_bits=out_bits, pe=pe, simd=simd,
                      planes=planes)
    assert dut.passes == in_bits // planes
    a = rng.integers(0, 2**in_bits, (6, n_in))
    a[0] = 2**in_bits - 1  # every spike
    a[1] = 0
    hw = run(dut, a, seed=n_in, idle=0.3, backpressure=0.3)
    assert hw.tolist() == reference(dut, a).tolist()


@pytest.mark.parametrize(("n_out", "n_in", "pe", "simd", "in_bits", "planes", "out_bits"), [
    (6, 8, 2, 4, 4, 1, 4), (6, 8, 3, 2, 4, 2, None), (4, 4, 4, 4, 10, 1, 10), (4, 4, 1, 1, 2, 1, 2),
])
@pytest.mark.parametrize("credits", [False, True])
def test_planes_cycles_and_latency_exact(n_out, n_in, pe, simd, in_bits, planes, out_bits,
                                         credits):
    rng = np.random.default_rng(5)
    dut = DenseEngine(rng.integers(-127, 128, (n_out, n_in)), rng.integers(-99, 99, n_out),
                      in_bits=in_bits, shift=4, out_bits=out_bits, pe=pe, simd=simd,
                      planes=planes, credits=credits)
    assert dut.expected_cycles == (n_out // pe) * (n_in // simd) * (in_bits // planes)
    check_latency_and_interval(dut, rng.integers(0, 2**in_bits, (4, n_in)))


def test_planes_worst_case_accumulator():
    """Extreme weights and biases with every spike set: the Horner register and the accumulator
    hold the exact sums (raw outputs, no shift)."""
    n_in = 8
    w = np.array([[127] * n_in, [-127] * n_in, [127, -127] * 4, [-127, 127] * 4])
    b = np.array([2**31 - 1 - 127 * 1023 * n_in, -2**31 + 127 * 1023 * n_in, 5, -5])
    for planes in (1, 2, 5):
        dut = DenseEngine(w, b, in_bits=10, shift=0, out_bits=None, pe=2, simd=4, planes=planes)
        a = np.array([[1023] * n_in, [0] * n_in, [1023, 0] * 4, [0, 1023] * 4])
        assert run(dut, a).tolist() == reference(dut, a).tolist()


def test_planes_estimates_trade_luts_for_cycles():
    rng = np.random.default_rng(1)
    w, b = rng.integers(-127, 128, (16, 144)), rng.integers(-3000, 3000, 16)
    # estimates only: the figures, no engine built
    par = DenseEngine.figures(w, b, in_bits=10, shift=8, out_bits=10, pe=2, simd=16)
    ser = DenseEngine.figures(w, b, in_bits=10, shift=8, out_bits=10, pe=2, simd=16, planes=1)
    assert ser.cycles == 10 * par.cycles
    assert ser.luts < par.luts / 3  # a 1-row product per lane instead of 10 rows
    assert ser.memory_bits == par.memory_bits


@pytest.mark.parametrize(("planes", "message"), [
    (3, "planes must divide the 4 spikes of an input \\(in_bits\\), not 3"),
    (0, "planes must be"),
    (5, "planes must be"),
])
def test_planes_messages(planes, message):
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=message):
        DenseEngine(rng.integers(-9, 9, (2, 2)), [0, 0], in_bits=4, shift=0, out_bits=None,
                    planes=planes)


@pytest.mark.parametrize("credits", [False, True])
def test_credits_latency_and_fifo(credits):
    """With credits the result FIFO adds one cycle of latency and no flip-flop-free stall path;
    without, there is no FIFO."""
    rng = np.random.default_rng(5)
    w, b = rng.integers(-127, 128, (6, 8)), rng.integers(-3000, 3001, 6)
    kw = {"in_bits": 4, "shift": 6, "out_bits": 4, "pe": 2, "simd": 4}
    base = DenseParams.check(w, b, **kw)  # the parameters and figures, no engine built
    dut = DenseParams.check(w, b, **kw, credits=credits)
    assert dut.latency == base.latency + credits
    assert dut.result_fifo_depth == (0 if not credits else
                                     -(-(2 + (2 + dut.tree_depth + 1) + 3) // 2) + 1)
    assert dut.flip_flops - base.flip_flops == dut.result_fifo_depth * 2 * dut.acc_width


@pytest.mark.parametrize("credits", [False, True])
def test_deep_weight_rom_in_columns(credits):
    # 600 words of 32 bits: one row of 1,024 x 18 blocks takes 2, as many as 512 x 36 blocks
    # in two banks, so the ROM is built in columns of 18 and 14 bits (no bank multiplexer)
    rng = np.random.default_rng(600)
    dut = make(rng, 60, 40, in_bits=3, shift=7, out_bits=3, pe=1, simd=4, credits=credits)
    assert dut.params.weight_column_bits == 18
    weights = [mem for mem in dut.params.memories if mem.name == "weights"]
    assert [(w.depth, w.column_widths) for w in weights] == [(600, (18, 14))]
    fragment = Fragment.get(dut, None)
    assert {"weights_0", "weights_1"} <= {name for _, name, _ in fragment.subfragments}
    a = rng.integers(0, 2**3, (2, 40))
    hw = run(dut, a, seed=3)
    assert hw.tolist() == reference(dut, a).tolist()


def test_weight_rom_of_one_row_is_one_memory():
    dut = make(np.random.default_rng(1), 6, 8, pe=2, simd=4)
    assert dut.params.weight_column_bits == 0
    names = {name for _, name, _ in Fragment.get(dut, None).subfragments}
    assert "weights" in names and "weights_0" not in names


def test_banked_weights_keep_one_memory():
    # the same 600 x 32 ROM with banked_weights (set by the memory step when blocks run out)
    rng = np.random.default_rng(600)
    w, b = rng.integers(-127, 128, (60, 40)), rng.integers(-3000, 3001, 60)
    dut = DenseEngine(w, b, in_bits=3, shift=7, out_bits=3, pe=1, simd=4, banked_weights=True)
    assert dut.params.weight_column_bits == 0
    names = {name for _, name, _ in Fragment.get(dut, None).subfragments}
    assert "weights" in names and "weights_0" not in names
    with pytest.raises(ValueError, match="banked_weights must be"):
        DenseEngine(w, b, in_bits=3, shift=7, out_bits=3, banked_weights=1)
