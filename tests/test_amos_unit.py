# amaranth: UnusedElaboratable=no
"""Fast tier: :class:`amos_hw.lib.amos_unit.AmosUnit` in the Amaranth simulator vs python_ref."""
from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.hdl import Fragment

from amos_hw.lib.amos_unit import AmosUnit
from amos_hw.lib.sim import run_simulation, stream_get_many, stream_put_many
from python_ref.quant import IntAmosUnit, quantize_unit
from python_ref.units import load_unit


def simulate(dut, xs, x2s=None, *, seed=0, idle=0.3, backpressure=0.3):
    """Stream ``xs`` (shape ``(n, lanes)``) through ``dut``; return spike words, outputs, counts."""
    xs = np.asarray(xs, dtype=np.int64).reshape(len(xs), dut.lanes)
    if x2s is not None:
        x2s = np.asarray(x2s, dtype=np.int64).reshape(len(xs), dut.lanes)
    payloads = []
    for n in range(len(xs)):
        p = {"x": [int(v) for v in xs[n]]}
        if x2s is not None:
            p["x2"] = [int(v) for v in x2s[n]]
        payloads.append(p)
    rng = random.Random(seed)
    got = []
    counts = {}

    async def producer(ctx):
        await stream_put_many(ctx, dut.i, payloads, rng=rng, idle=idle)

    async def consumer(ctx):
        got.extend(await stream_get_many(ctx, dut.o, len(payloads), rng=rng,
                                         backpressure=backpressure))
        await ctx.tick().repeat(2)  # the counters lag the transfer by a registered popcount
        counts["spikes"] = ctx.get(dut.spike_count)
        counts["outputs"] = ctx.get(dut.output_count)

    run_simulation(dut, producer, consumer, max_cycles=20 * len(payloads) + 200)
    z = np.array([[int(g.z[lane]) for lane in range(dut.lanes)] for g in got], dtype=np.int64)
    y = np.array([[int(g.y[lane]) for lane in range(dut.lanes)] for g in got], dtype=np.int64)
    return z, y, counts


def check(dut, xs, x2s=None, **kw):
    z, y, counts = simulate(dut, xs, x2s, **kw)
    xs = np.asarray(xs, dtype=np.int64).reshape(z.shape)
    if x2s is not None:
        x2s = np.asarray(x2s, dtype=np.int64).reshape(z.shape)
    z_ref, y_ref = dut.model(xs, x2s)
    assert z.tolist() == z_ref.tolist()
    assert y.tolist() == y_ref.tolist()
    # the statistics port: every spike of every output, counted by the hardware
    assert counts["spikes"] == sum(bin(int(v)).count("1") for v in z_ref.ravel())
    assert counts["outputs"] == len(z)


def relu_inputs(K, width, rng, n=40):
    lo, hi = -(2 ** (width - 1)), 2 ** (width - 1) - 1
    top = 2**K - 1
    edges = [lo, hi, -1, 0, 1, top - 1, top, top + 1]
    edges = [v for v in edges if lo <= v <= hi]
    return np.array(edges + list(rng.integers(lo, hi + 1, size=n)), dtype=np.int64)


@pytest.mark.parametrize("K", range(1, 17))
def test_relu_unit_every_K(K):
    rng = np.random.default_rng(K)
    width = K + 3  # saturation at both ends is reachable
    dut = AmosUnit(IntAmosUnit.relu(K), width)
    assert dut.shared_residual
    xs = relu_inputs(K, width, rng)
    check(dut, xs, seed=K)


def test_relu_unit_lanes_and_narrow_port():
    # a port narrower than the unit's in_range: no clamp; 3 lanes share one pipeline
    rng = np.random.default_rng(7)
    dut = AmosUnit(IntAmosUnit.relu(4), 6, lanes=3)
    xs = rng.integers(-32, 32, size=(50, 3))
    check(dut, xs, seed=3)


def random_unit(rng, K, two=False):
    kw = {}
    if two:
        kw = {"c2": rng.integers(-20, 21, K), "in2_range": (-5, 12)}
    return IntAmosUnit(
        "random",
        c=rng.integers(-20, 21, K),
        T=rng.integers(-60, 61, K),
        h=rng.integers(-30, 31, (K, K)),
        d=rng.integers(-9, 10, K),
        in_range=(-60, 70),
        **kw,
    )


@pytest.mark.parametrize("K", [1, 3, 6])
def test_general_unit_saturates_outside_in_range(K):
    rng = np.random.default_rng(100 + K)
    unit = random_unit(rng, K)
    dut = AmosUnit(unit, 8)  # the 8-bit port reaches beyond (-60, 70): clamped in hardware
    assert dut.shared_residual == (K == 1)
    xs = np.concatenate([np.arange(-128, 128, 5), [-128, -61, -60, 70, 71, 127]])
    check(dut, xs, seed=K)


def test_shared_residual_unit_that_is_not_relu():
    # equal c, column-constant h, arbitrary T and d: one shared residual, a multiplier by c=3
    rng = np.random.default_rng(11)
    K = 5
    col = rng.integers(-20, 21, K)
    unit = IntAmosUnit("shared", c=[3] * K, T=rng.integers(-40, 41, K),
                       h=np.tril(np.broadcast_to(col, (K, K)), -1), d=rng.integers(-5, 6, K),
                       in_range=(-50, 50))
    dut = AmosUnit(unit, 7)
    assert dut.shared_residual
    check(dut, np.arange(-64, 64), seed=4)


def test_two_input_unit():
    rng = np.random.default_rng(5)
    unit = random_unit(rng, 5, two=True)
    dut = AmosUnit(unit, 8, in2_width=5, lanes=2)
    xs = rng.integers(-128, 128, size=(60, 2))
    x2s = rng.integers(-16, 16, size=(60, 2))
    check(dut, xs, x2s, seed=9)


@pytest.mark.parametrize("K", [1, 5])
def test_latency_and_throughput(K):
    dut = AmosUnit(IntAmosUnit.relu(K), 8)
    n = 10
    log = {}

    async def tb(ctx):
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.i.payload, {"x": [3]})
        ctx.set(dut.i.valid, 1)
        accepted = []
        outputs = []
        for cycle in range(n + dut.latency + 5):
            _, _, iv, ir, ov = await ctx.tick().sample(dut.i.valid, dut.i.ready, dut.o.valid)
            if iv and ir:
                accepted.append(cycle)
            if ov:
                outputs.append(cycle)
            if len(accepted) == n:
                ctx.set(dut.i.valid, 0)
        log["accepted"], log["outputs"] = accepted, outputs

    run_simulation(dut, tb)
    assert dut.latency == K + 2
    assert log["accepted"] == list(range(n))  # one input per cycle
    assert log["outputs"] == [c + dut.latency for c in range(n)]


def test_clear_counters():
    dut = AmosUnit(IntAmosUnit.relu(3), 5)
    seen = {}

    async def tb(ctx):
        ctx.set(dut.o.ready, 1)
        for v in (7, 5, 0):
            ctx.set(dut.i.payload, {"x": [v]})
            ctx.set(dut.i.valid, 1)
            await ctx.tick()
        ctx.set(dut.i.valid, 0)
        await ctx.tick().repeat(dut.latency + 2)
        seen["before"] = (ctx.get(dut.spike_count), ctx.get(dut.output_count))
        ctx.set(dut.clear, 1)
        await ctx.tick()
        ctx.set(dut.clear, 0)
        seen["after"] = (ctx.get(dut.spike_count), ctx.get(dut.output_count))

    run_simulation(dut, tb)
    assert seen["before"] == (3 + 2 + 0, 3)
    assert seen["after"] == (0, 0)


def test_flip_flop_estimate_positive_and_grows_with_lanes():
    one = AmosUnit(IntAmosUnit.relu(4), 10)
    four = AmosUnit(IntAmosUnit.relu(4), 10, lanes=4)
    assert 0 < one.flip_flops < four.flip_flops
    for dut in (one, four):
        Fragment.get(dut, None)  # elaborates: both build


# -- bad parameters -----------------------------------------------------------------------------


def test_bad_unit():
    with pytest.raises(TypeError, match=r"^unit must be a python_ref.quant.IntAmosUnit, not int$"):
        AmosUnit(3, 8)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"in_width": 0}, "in_width must be a positive integer of at most 64, not 0"),
        ({"in_width": 65}, "in_width must be a positive integer of at most 64, not 65"),
        ({"in_width": True}, "in_width must be a positive integer of at most 64, not True"),
        ({"in_width": 8, "lanes": 0}, "lanes must be a positive integer of at most 4096, not 0"),
        ({"in_width": 8, "count_width": 0},
         "count_width must be a positive integer of at most 64, not 0"),
        ({"in_width": 8, "in2_width": 4}, "unit 'relu' has one input; in2_width must be None"),
    ],
)
def test_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        AmosUnit(IntAmosUnit.relu(4), **kwargs)


def test_bad_in2_width():
    unit = random_unit(np.random.default_rng(0), 2, two=True)
    with pytest.raises(ValueError,
                       match=r"^in2_width must be a positive integer of at most 64, not -1$"):
        AmosUnit(unit, 8, in2_width=-1)


def test_unreachable_range():
    unit = IntAmosUnit("high", c=[1], T=[0], h=[[0]], d=[1], in_range=(100, 200))
    with pytest.raises(
        ValueError, match=r"^unit 'high': a 4-bit signed input cannot reach its range \(100, 200\)$"
    ):
        AmosUnit(unit, 4)


# -- the trained units, as fitted (python_ref/units/<name>.json, quantised by python_ref.quant) ---

TRAINED_K = {"sigmoid": 8, "swish": 12, "mult": 40}


def trained_unit(name):
    """The committed fitted unit (``python_ref/units/<name>.json``) as an integer unit."""
    unit = quantize_unit(load_unit(name))
    assert unit.K == TRAINED_K[name]
    return unit


def sweep(lo, hi, step):
    """Every ``step``-th integer of ``[lo - 8, hi + 8]`` plus both ends and the values just
    beyond them: the whole range, the saturation on both sides, and the edges exactly."""
    core = np.arange(lo - 8, hi + 9, step)
    return np.unique(np.concatenate([core, [lo - 1, lo, lo + 1, hi - 1, hi, hi + 1]]))


def trained_dut(unit):
    in_width = unit.widths["x"] + 1  # one bit more than the range: saturation is reachable
    in2 = unit.widths["x2"] + 1 if unit.inputs == 2 else None
    return AmosUnit(unit, in_width, in2_width=in2)


@pytest.mark.parametrize("name", ["sigmoid", "swish"])
def test_trained_one_input_unit_every_input(name):
    """Every integer of the input range and 8 beyond it on each side (saturation)."""
    unit = trained_unit(name)
    check(trained_dut(unit), sweep(*unit.in_range, 1), seed=3, idle=0.1, backpressure=0.1)


def test_trained_mult_unit_grid():
    unit = trained_unit("mult")
    dut = trained_dut(unit)
    a, b = sweep(*unit.in_range, 409), sweep(*unit.in2_range, 409)
    x, x2 = (v.ravel() for v in np.meshgrid(a, b))
    check(dut, x, x2, seed=2, idle=0.1, backpressure=0.1)


@pytest.mark.slow
def test_trained_mult_unit_dense_grid():
    unit = trained_unit("mult")
    a, b = sweep(*unit.in_range, 61), sweep(*unit.in2_range, 61)
    x, x2 = (v.ravel() for v in np.meshgrid(a, b))
    check(trained_dut(unit), x, x2, seed=4, idle=0.1, backpressure=0.1)
