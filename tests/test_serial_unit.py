# amaranth: UnusedElaboratable=no
"""Fast tier: :class:`amos_hw.lib.serial_unit.SerialAmosUnit` in the Amaranth simulator vs
python_ref's :class:`~python_ref.quant.IntAmosUnit`: outputs and spike words with random input
gaps and output stalls, measured interval and latency, counters, estimates and errors."""
from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.hdl import Fragment

from amos_hw.lib.amos_unit import AmosUnit
from amos_hw.lib.serial_unit import SerialAmosUnit
from amos_hw.lib.sim import run_simulation, stream_get_many, stream_put_many
from python_ref.quant import IntAmosUnit, quantize_unit
from python_ref.units import load_unit

TRAINED_K = {"sigmoid": 8, "swish": 12, "mult": 40}


def trained_unit(name):
    """The committed fitted unit (``python_ref/units/<name>.json``) as an integer unit."""
    unit = quantize_unit(load_unit(name))
    assert unit.K == TRAINED_K[name]
    return unit


def simulate(dut, xs, x2s=None, *, seed=0, idle=0.3, backpressure=0.3):
    """Stream ``xs`` through ``dut`` with random gaps and stalls; spike words, outputs and the
    counters two clock edges after the last transfer."""
    payloads = []
    for n, x in enumerate(xs):
        p = {"x": [int(x)]}
        if x2s is not None:
            p["x2"] = [int(x2s[n])]
        payloads.append(p)
    rng_in, rng_out = random.Random(seed), random.Random(seed + 1)
    got, counts = [], {}

    async def producer(ctx):
        await stream_put_many(ctx, dut.i, payloads, rng=rng_in, idle=idle)

    async def consumer(ctx):
        got.extend(await stream_get_many(ctx, dut.o, len(payloads), rng=rng_out,
                                         backpressure=backpressure))
        await ctx.tick().repeat(2)  # the counters lag the transfer by a registered popcount
        counts["spikes"] = ctx.get(dut.spike_count)
        counts["outputs"] = ctx.get(dut.output_count)

    run_simulation(dut, producer, consumer, max_cycles=4 * dut.latency * (len(payloads) + 2))
    z = np.array([int(g.z[0]) for g in got], dtype=np.int64)
    y = np.array([int(g.y[0]) for g in got], dtype=np.int64)
    return z, y, counts


def expected(unit, xs, x2s=None):
    """Spike words (bit ``K-1-i`` is ``z_i``) and outputs, from python_ref alone."""
    z = unit.spikes(xs, x2s).astype(np.int64)
    words = [int("".join(str(int(b)) for b in row), 2) for row in z]
    return words, unit(xs, x2s).tolist()


def check(dut, xs, x2s=None, **kw):
    xs = np.asarray(xs, dtype=np.int64)
    x2s = None if x2s is None else np.asarray(x2s, dtype=np.int64)
    z, y, counts = simulate(dut, xs, x2s, **kw)
    z_ref, y_ref = expected(dut.unit, xs, x2s)
    assert z.tolist() == z_ref
    assert y.tolist() == y_ref
    assert counts["spikes"] == sum(bin(v).count("1") for v in z_ref)
    assert counts["outputs"] == len(xs)


def stimulus(rng, in_range, width, n):
    """The ends of a ``width``-bit port and of ``in_range`` with their neighbours, zero, and
    ``n`` random values over the whole port (beyond ``in_range`` where the port reaches)."""
    lo, hi = -(2 ** (width - 1)), 2 ** (width - 1) - 1
    r_lo, r_hi = in_range
    edges = [lo, r_lo - 1, r_lo, r_lo + 1, -1, 0, 1, r_hi - 1, r_hi, r_hi + 1, hi]
    edges = [v for v in dict.fromkeys(edges) if lo <= v <= hi]
    return np.array(edges + [int(v) for v in rng.integers(lo, hi + 1, n)], dtype=np.int64)


@pytest.mark.parametrize(("name", "depth"), [("swish", 3), ("swish", 1), ("sigmoid", 2)])
def test_trained_one_input_units(name, depth):
    unit = trained_unit(name)
    width = unit.widths["x"] + 1  # one bit more than the range: saturation is reachable
    dut = SerialAmosUnit(unit, width, depth=depth)
    xs = stimulus(np.random.default_rng(depth), unit.in_range, width, 40)
    step = 1 if depth == 3 else 23  # once every integer of in_range
    xs = np.concatenate([xs, np.arange(unit.in_range[0], unit.in_range[1] + 1, step)])
    check(dut, xs, seed=depth)


def test_trained_mult_unit():
    unit = trained_unit("mult")
    w1, w2 = unit.widths["x"] + 1, unit.widths["x2"] + 1
    dut = SerialAmosUnit(unit, w1, in2_width=w2)
    rng = np.random.default_rng(40)
    # a grid over both ranges (every 409th value, the ends and beyond), then random pairs
    # over both ports with the edges of x2 against those of x
    a = np.unique(np.concatenate([np.arange(-2055, 2056, 409), [-2048, -2047, 2047, 2048]]))
    gx, gx2 = (v.ravel() for v in np.meshgrid(a, a))
    xs = stimulus(rng, unit.in_range, w1, 30)
    x2s = np.concatenate([stimulus(rng, unit.in2_range, w2, 0)[::-1],
                          rng.integers(-(2 ** (w2 - 1)), 2 ** (w2 - 1), len(xs))])[:len(xs)]
    xs, x2s = np.concatenate([gx, xs]), np.concatenate([gx2, x2s])
    check(dut, xs, x2s, seed=5, idle=0.2, backpressure=0.2)


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_relu(depth):
    unit = IntAmosUnit.relu(6)
    dut = SerialAmosUnit(unit, 9, depth=depth)
    xs = stimulus(np.random.default_rng(6), (0, 63), 9, 20)
    check(dut, xs, seed=depth)


@pytest.mark.parametrize("depth", [2, 5])
def test_identity(depth):
    unit = IntAmosUnit.identity(8)
    dut = SerialAmosUnit(unit, 11, depth=depth)
    assert dut.y_width == 8
    xs = stimulus(np.random.default_rng(8), (-128, 127), 11, 20)
    check(dut, xs, seed=depth)


def random_unit(rng, K, two=False):
    kw = {"c2": rng.integers(-20, 21, K), "in2_range": (-5, 12)} if two else {}
    return IntAmosUnit("random", c=rng.integers(-20, 21, K), T=rng.integers(-60, 61, K),
                       h=rng.integers(-30, 31, (K, K)), d=rng.integers(-9, 10, K),
                       in_range=(-60, 70), **kw)


@pytest.mark.parametrize("K", [1, 2, 5])
def test_random_units(K):
    rng = np.random.default_rng(200 + K)
    unit = random_unit(rng, K, two=K > 1)
    dut = SerialAmosUnit(unit, 8, in2_width=5 if K > 1 else None, depth=2)
    xs = stimulus(rng, unit.in_range, 8, 16)
    x2s = rng.integers(-16, 16, len(xs)) if K > 1 else None
    check(dut, xs, x2s, seed=K)


def measure(dut, n):
    """Always-valid input, always-ready output: the cycles of the input and output transfers."""
    log = {}

    async def tb(ctx):
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.i.payload, {"x": [3]} if dut.in2_width is None else {"x": [3], "x2": [2]})
        ctx.set(dut.i.valid, 1)
        accepted, outputs = [], []
        for cycle in range(n * dut.K + dut.latency + 2 * dut.K * dut.depth):
            _, _, iv, ir, ov = await ctx.tick().sample(dut.i.valid, dut.i.ready, dut.o.valid)
            if iv and ir:
                accepted.append(cycle)
            if ov:
                outputs.append(cycle)
            if len(accepted) == n:
                ctx.set(dut.i.valid, 0)
        log["accepted"], log["outputs"] = accepted, outputs

    run_simulation(dut, tb)
    return log["accepted"], log["outputs"]


@pytest.mark.parametrize(("unit", "depth"), [
    (IntAmosUnit.relu(5), 1), (IntAmosUnit.relu(5), 3), (IntAmosUnit.identity(4), 2),
    ("sigmoid", 3),
])
def test_interval_and_latency(unit, depth):
    unit = trained_unit(unit) if isinstance(unit, str) else unit
    dut = SerialAmosUnit(unit, 13, depth=depth)
    K, D = unit.K, depth
    assert (dut.interval, dut.latency) == (K, K * D + 1)
    assert SerialAmosUnit.interval_for(unit) == K
    assert SerialAmosUnit.latency_for(unit, depth) == K * D + 1
    n = 3 * D + 1
    accepted, outputs = measure(dut, n)
    # bursts of D back-to-back values, a new burst every K*D cycles: K cycles per value
    assert accepted == [(i // D) * K * D + i % D for i in range(n)]
    gaps = [b - a for a, b in zip(accepted, accepted[D:], strict=False)]
    assert gaps == [dut.interval * D] * (n - D)
    assert outputs == [a + dut.latency for a in accepted]


def test_stalled_output_keeps_every_value():
    # a consumer that is rarely ready: the ring stalls, nothing is lost or reordered
    unit = trained_unit("sigmoid")
    dut = SerialAmosUnit(unit, 13, depth=3)
    xs = stimulus(np.random.default_rng(3), unit.in_range, 13, 8)
    check(dut, xs, seed=11, idle=0.0, backpressure=0.9)


def test_clear_counters():
    dut = SerialAmosUnit(IntAmosUnit.relu(3), 5, depth=2)
    seen = {}

    async def tb(ctx):
        ctx.set(dut.o.ready, 1)
        for v in (7, 5, 0):
            ctx.set(dut.i.payload, {"x": [v]})
            ctx.set(dut.i.valid, 1)
            await ctx.tick().until(dut.i.ready)
        ctx.set(dut.i.valid, 0)
        await ctx.tick().repeat(dut.latency + 4)
        seen["before"] = (ctx.get(dut.spike_count), ctx.get(dut.output_count))
        ctx.set(dut.clear, 1)
        await ctx.tick()
        ctx.set(dut.clear, 0)
        seen["after"] = (ctx.get(dut.spike_count), ctx.get(dut.output_count))

    run_simulation(dut, tb)
    assert seen["before"] == (3 + 2 + 0, 3)
    assert seen["after"] == (0, 0)


# -- estimates ------------------------------------------------------------------------------


def test_flip_flops_by_hand():
    # relu(6) on a 9-bit port (its in_range is int32: no clamp, x keeps 9 bits), depth 2.
    # Terms: x (-256..255), -T_s (-32..-1), the gated columns -h_s0..-h_s4 (-32..0 .. -2..0).
    # Tree: level 1 x-T (-288..254: 10 bits), h0+h1 (-48..0: 7), h2+h3 (-12..0: 5), h4;
    # level 2 (-336..254: 10 bits), (-14..0: 5 bits); level 3 the membrane. One cut after
    # level ceil(3/2) = 2: 10 + 5 bits.
    unit = IntAmosUnit.relu(6)
    dut = SerialAmosUnit(unit, 9, depth=2, count_width=16)
    state = 1 + 9 + 3 + 6  # busy, x, s, the spike word (y is the spike word: no accumulator)
    out = 1 + 6 + 7  # valid, z, y (signed, 7 bits)
    popcount = 3 + 1  # registered spike count (0..6) and transfer flag
    assert dut.flip_flops == 2 * state + (10 + 5) + out + popcount + 2 * 16 == 103
    assert SerialAmosUnit.flip_flops_for(unit, 9, depth=2, count_width=16) == 103


def test_serial_is_smaller_than_the_pipeline_for_the_gate_unit():
    unit = quantize_unit(load_unit("mult"), 10, 8, 8)
    serial = SerialAmosUnit.flip_flops_for(unit, 10, in2_width=10)
    pipeline = AmosUnit.flip_flops_for(unit, 10, in2_width=10)
    assert 0 < serial * 10 < pipeline
    assert SerialAmosUnit.luts_for(unit, 10, in2_width=10) > 0


def test_multipliers_and_dsp_estimate():
    # mult quantised 10/8/8: two variable products (c_s*x, c2_s*x2) of 8-bit weights by 10-bit
    # inputs, each floor(5 * 8 * 10 / 2) = 200 LUT4 without DSP blocks; swish: one product;
    # the ReLU's c_s are all 1: no multiplier
    mult = quantize_unit(load_unit("mult"), 10, 8, 8)
    assert max(abs(int(v)) for v in (*mult.c, *mult.c2)) == 127
    dut = SerialAmosUnit(mult, 10, in2_width=10)
    assert dut.multipliers == 2
    assert dut.luts - SerialAmosUnit.luts_for(mult, 10, in2_width=10, dsp=True) == 400
    assert SerialAmosUnit(trained_unit("swish"), 13).multipliers == 1
    assert SerialAmosUnit(IntAmosUnit.relu(4), 8).multipliers == 0


def test_elaborates_every_depth():
    unit = IntAmosUnit.relu(1)
    for depth in (1, 2, 16):
        Fragment.get(SerialAmosUnit(unit, 4, depth=depth), None)


# -- bad parameters -----------------------------------------------------------------------------


def test_bad_unit():
    with pytest.raises(TypeError, match=r"^unit must be a python_ref.quant.IntAmosUnit, not int$"):
        SerialAmosUnit(3, 8)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"in_width": 0}, "in_width must be a positive integer of at most 64, not 0"),
    ({"in_width": 8, "depth": 0}, "depth must be a positive integer of at most 16, not 0"),
    ({"in_width": 8, "depth": 17}, "depth must be a positive integer of at most 16, not 17"),
    ({"in_width": 8, "count_width": 0},
     "count_width must be a positive integer of at most 64, not 0"),
    ({"in_width": 8, "in2_width": 4}, "unit 'relu' has one input; in2_width must be None"),
])
def test_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        SerialAmosUnit(IntAmosUnit.relu(4), **kwargs)
    with pytest.raises(ValueError, match=f"^{message}$"):
        SerialAmosUnit.flip_flops_for(IntAmosUnit.relu(4), **kwargs)


def test_unreachable_range():
    unit = IntAmosUnit("high", c=[1], T=[0], h=[[0]], d=[1], in_range=(100, 200))
    with pytest.raises(
        ValueError, match=r"^unit 'high': a 4-bit signed input cannot reach its range \(100, 200\)$"
    ):
        SerialAmosUnit(unit, 4)
