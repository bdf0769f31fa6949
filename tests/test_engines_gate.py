# amaranth: UnusedElaboratable=no
"""Fast tier: the gate engine (:class:`amos_hw.engines.gate.GateEngine`, the squeeze-and-
excitation gate) in the Amaranth simulator, bit for bit against a numpy model written from the
IR's semantics of a two-input ``amos`` op with a broadcast second input (and against
python_ref's :class:`~python_ref.quant.IntAmosUnit`), with random gaps on both inputs and
output stalls; its spike count, exact cycles and latency, that the map's producer is never held
up while each gate comes within an interval, its figures from parameters alone and its errors.
"""
from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Fragment

from amos_hw.engines import GateEngine
from amos_hw.engines.gate_params import GateParams
from amos_hw.lib.amos_unit import AmosUnit
from amos_hw.lib.bram import MemShape
from amos_hw.lib.engine_sim import from_words, to_words
from amos_hw.lib.sim import run_simulation, stream_get_many, stream_put_many
from python_ref.quant import IntAmosUnit, quantize_unit, signed_width
from python_ref.units import load_unit


def mult_unit():
    """The paper's trained multiplication unit, K = 40, quantised 8/8/8."""
    return quantize_unit(load_unit("mult"), 8, 8, 8)


def port(width, is_signed=True):
    return (-(2 ** (width - 1)), 2 ** (width - 1) - 1) if is_signed else (0, 2 ** width - 1)


def reference(unit, x, g, S1, S2):
    """The gate from the IR's words alone (round 2 of issue 16): ``x`` of shape
    ``(N, H, W, C)``, ``g`` of shape ``(N, C)`` broadcast over ``H, W``; ``v = (a + 2**(S-1))
    >> S`` (``S = 0``: ``a``) saturated to the unit's ranges; neuron ``i`` fires
    ``[c_i v1 + c2_i v2 - sum_{j<i} h_ij z_j - T_i >= 0]`` in order; ``y = sum d_i z_i``.
    Returns ``y`` and the total spike count."""
    def rq(a, S):
        return (a + (1 << (S - 1))) >> S if S else a

    v1 = np.clip(rq(np.asarray(x, np.int64), S1), *unit.in_range)
    v2 = np.clip(rq(np.asarray(g, np.int64), S2), *unit.in2_range)[:, None, None, :]
    v2 = np.broadcast_to(v2, v1.shape)
    c, c2, T, h, d = (np.asarray(a, np.int64) for a in (unit.c, unit.c2, unit.T, unit.h,
                                                         unit.d))
    z = []
    for i in range(unit.K):
        inhib = sum((h[i, j] * z[j] for j in range(i)), np.zeros_like(v1))
        z.append((c[i] * v1 + c2[i] * v2 - inhib - T[i] >= 0).astype(np.int64))
    y = sum(d[i] * z[i] for i in range(unit.K))
    return y, int(sum(zi.sum() for zi in z))


def simulate(dut, x, g, *, seed, idle=0.3, backpressure=0.3, gate_idle=0.5):
    """All maps on ``i`` and all gates on ``skip`` (independent producers, random gaps), the
    output with random stalls; the outputs and the ``spike_count`` after the last transfer."""
    xw, gw = to_words(x, dut.lanes), to_words(g, dut.lanes)
    rng = [random.Random(seed + k) for k in range(3)]
    got, counts = [], []

    async def maps(ctx):
        await stream_put_many(ctx, dut.i, xw, rng=rng[0], idle=idle)

    async def gates(ctx):
        await stream_put_many(ctx, dut.skip, gw, rng=rng[1], idle=gate_idle)

    async def consumer(ctx):
        got.extend(await stream_get_many(ctx, dut.o, len(xw), rng=rng[2],
                                         backpressure=backpressure))
        await ctx.tick().repeat(2)  # the count includes a transfer two edges after it
        counts.append(ctx.get(dut.spike_count))

    run_simulation(dut, maps, gates, consumer, max_cycles=20 * len(xw) + 500)
    return from_words(got, dut.lanes).reshape(np.shape(x)), counts[0]


def data_for(dut, images, hw, rng):
    p = dut.params
    x = rng.integers(*port(p.x_width, p.x_signed), (images, *hw, p.channels), endpoint=True)
    g = rng.integers(*port(p.g_width, p.g_signed), (images, p.channels), endpoint=True)
    return x, g


CASES = [  # (channels, (H, W), lanes, x_width, x_signed, g_width, g_signed, shifts)
    (4, (3, 3), 1, 8, True, 8, True, (0, 0)),  # -128 saturates to in_range's -127
    (4, (2, 3), 2, 10, True, 9, True, (2, 1)),  # rounding shifts, saturation both sides
    (8, (2, 2), 2, 11, True, 7, False, (3, 0)),  # an unsigned gate (ReLU spike words)
    (6, (1, 1), 3, 6, False, 8, True, (0, 0)),  # a vector of C values, unsigned x
    (8, (2, 2), 4, 8, True, 8, True, (0, 0)),  # K * lanes = 160 spikes counted per word
]


@pytest.mark.parametrize(("C", "hw", "lanes", "xw", "xs", "gw", "gs", "shifts"), CASES)
def test_gate_against_reference(C, hw, lanes, xw, xs, gw, gs, shifts):
    unit = mult_unit()
    dut = GateEngine(unit, channels=C, elements=C * hw[0] * hw[1], x_width=xw, g_width=gw,
                     shifts=shifts, lanes=lanes, x_signed=xs, g_signed=gs, name="gate")
    rng = np.random.default_rng(C * 100 + lanes)
    x, g = data_for(dut, 3, hw, rng)
    want, spikes = reference(unit, x, g, *shifts)
    assert len(set(want.ravel().tolist())) > 3
    got, count = simulate(dut, x, g, seed=lanes)
    assert got.tolist() == want.tolist()
    assert count == spikes
    # the engine's model (python_ref's IntAmosUnit) agrees with the one written here
    y, z = dut.model(x, g)
    assert y.tolist() == want.tolist() and int(z.sum()) == spikes


def test_gate_arriving_before_its_map():
    """The gate producer may run ahead (all gates first): each image still pairs with its own
    gate, which waits in its bank."""
    unit = mult_unit()
    dut = GateEngine(unit, channels=4, elements=16, x_width=8, g_width=8, lanes=2)
    x, g = data_for(dut, 2, (2, 2), np.random.default_rng(7))
    got, _ = simulate(dut, x, g, seed=11, idle=0.6, gate_idle=0.0, backpressure=0.5)
    assert got.tolist() == reference(unit, x, g, 0, 0)[0].tolist()


def timed(dut, xw, gw, images, gate_delay):
    """No idle map cycle, output always ready; the gate of image ``n`` is offered
    ``gate_delay`` cycles after its map's last word was taken, one word a cycle. Returns the
    cycles of the map transfers, gate transfers and output transfers, and the outputs."""
    W, CW = len(xw) // images, len(gw) // images
    ins, gins, outs, got = [], [], [], []

    async def tb(ctx):
        ctx.set(dut.o.ready, 1)
        n = k = cycle = 0
        while len(outs) < len(xw):
            if n < len(xw):
                ctx.set(dut.i.payload, xw[n])
            ctx.set(dut.i.valid, n < len(xw))
            img = k // CW  # the gate image offered next
            due = len(ins) >= (img + 1) * W and cycle > ins[(img + 1) * W - 1] + gate_delay
            if k < len(gw) and due:
                ctx.set(dut.skip.payload, gw[k])
            ctx.set(dut.skip.valid, k < len(gw) and due)
            _, _, iv, ir, gv, gr, ov, op = await ctx.tick().sample(
                dut.i.valid, dut.i.ready, dut.skip.valid, dut.skip.ready, dut.o.valid,
                dut.o.payload)
            if iv and ir:
                ins.append(cycle)
                n += 1
            if gv and gr:
                gins.append(cycle)
                k += 1
            if ov:
                outs.append(cycle)
                got.append(op)
            cycle += 1

    run_simulation(dut, tb, max_cycles=50 * len(xw) + 1000)
    return ins, gins, outs, from_words(got, dut.lanes)


@pytest.mark.parametrize(("C", "hw", "lanes", "delay"), [
    (4, (3, 3), 1, 0), (4, (3, 3), 1, 30), (8, (2, 3), 2, 9), (6, (2, 2), 3, 5)])
def test_cycles_and_latency_exact(C, hw, lanes, delay):
    """The map streams in without a single wait while fewer than ``words`` words of the next
    map come up to the cycle of each gate's last word; the first output is ``K + 5`` cycles
    after the gate's last word; each image's outputs leave one word a cycle, one image every
    ``elements / lanes``."""
    unit = mult_unit()
    elements = C * hw[0] * hw[1]
    dut = GateEngine(unit, channels=C, elements=elements, x_width=8, g_width=8, lanes=lanes)
    W, CW, images = elements // lanes, C // lanes, 4
    assert delay + CW < W  # the condition of the figure (5 + 2 < 8: the tightest)
    x, g = data_for(dut, images, hw, np.random.default_rng(delay))
    ins, gins, outs, got = timed(dut, to_words(x, lanes), to_words(g, lanes), images, delay)
    assert got.tolist() == reference(unit, x, g, 0, 0)[0].ravel().tolist()
    assert np.diff(ins).tolist() == [1] * (len(ins) - 1)  # never held up
    firsts = outs[::W]
    gate_last = gins[CW - 1::CW]
    assert firsts[0] - gate_last[0] == dut.latency == unit.K + 5
    # every later image: K + 5 after its gate's last word, or right after the image before
    for n in range(1, images):
        assert firsts[n] == max(gate_last[n] + unit.K + 5, outs[n * W - 1] + 1)
    for n in range(images):
        assert np.diff(outs[n * W:(n + 1) * W]).tolist() == [1] * (W - 1)
    assert np.diff(firsts[1:]).tolist() == [dut.expected_cycles] * (images - 2) == \
        [W] * (images - 2)


def test_late_gate_holds_the_map_but_stays_exact():
    """A gate later than an interval after its map: the two maps' worth of memory fills and
    the map's producer waits (no deadlock); the outputs stay exact."""
    unit = mult_unit()
    dut = GateEngine(unit, channels=4, elements=16, x_width=8, g_width=8, lanes=1)
    x, g = data_for(dut, 4, (2, 2), np.random.default_rng(3))
    ins, _, _, got = timed(dut, to_words(x, 1), to_words(g, 1), 4, 40)
    assert max(np.diff(ins)) > 1  # held up
    assert got.tolist() == reference(unit, x, g, 0, 0)[0].ravel().tolist()


@pytest.mark.parametrize("lanes", [1, 2])
def test_one_map_memory_against_reference(lanes):
    """``map_words`` = one map: the producer waits for each gate, the outputs stay exact under
    random gaps and stalls."""
    unit = mult_unit()
    dut = GateEngine(unit, channels=4, elements=36, x_width=8, g_width=8, lanes=lanes,
                     map_words=36 // lanes)
    assert dut.params.map_depth == 36 // lanes
    x, g = data_for(dut, 3, (3, 3), np.random.default_rng(lanes))
    got, count = simulate(dut, x, g, seed=20 + lanes)
    want, spikes = reference(unit, x, g, 0, 0)
    assert got.tolist() == want.tolist() and count == spikes


def test_map_words_of_one_map_and_the_delay():
    """One map and the next map's words that come before the gate is in and read (here the
    map one word a cycle, so ``delay + CW`` words and the 3 cycles to the first read): the
    producer is never held up and the interval is one map; with one map it is held up."""
    unit = mult_unit()
    C, hw, delay = 4, (3, 3), 5
    W, CW, images = 36, 4, 4
    x, g = data_for(GateEngine(unit, channels=C, elements=W, x_width=8, g_width=8), images,
                    hw, np.random.default_rng(9))
    want = reference(unit, x, g, 0, 0)[0].ravel().tolist()
    for slack, held in ((delay + CW + 4, False), (0, True)):
        dut = GateEngine(unit, channels=C, elements=W, x_width=8, g_width=8,
                         map_words=W + slack)
        ins, _, outs, got = timed(dut, to_words(x, 1), to_words(g, 1), images, delay)
        assert got.tolist() == want
        assert (max(np.diff(ins)) > 1) == held
        if not held:
            firsts = outs[::W]
            assert np.diff(firsts[1:]).tolist() == [W] * (images - 2)


def test_widths_ports_and_figures(built):
    unit = mult_unit()
    kw = {"channels": 8, "elements": 8 * 6, "x_width": 10, "g_width": 9, "shifts": (2, 1),
          "lanes": 4, "g_signed": False}
    fig = GateEngine.figures(unit, **kw)
    assert built == []
    dut = GateEngine(unit, **kw)
    assert (fig.cycles, fig.latency, fig.luts, fig.flip_flops, fig.memory_bits,
            list(fig.memories), fig.out_width) == (
        dut.expected_cycles, dut.latency, dut.luts, dut.flip_flops, dut.memory_bits,
        dut.memories, dut.out_width)
    d = [int(v) for v in unit.d]
    assert dut.y_width == signed_width(sum(v for v in d if v < 0), sum(v for v in d if v > 0))
    assert dut.y_width == 11
    # v1 of a 10-bit x >> 2: -128..128 (9 bits); v2 of an unsigned 9-bit g >> 1: 0..256
    assert (dut.params.v1_width, dut.params.v2_width) == (9, 10)
    assert fig.memories == (MemShape("map", 2 * 12, 4 * 10), MemShape("gate", 4, 4 * 9))
    assert fig.memory_bits == 2 * 48 * 10 + 2 * 8 * 9
    assert fig.flip_flops > AmosUnit.flip_flops_for(unit, 9, in2_width=10, lanes=4)
    assert fig.cycles == 12 and fig.latency == unit.K + 5
    assert dut.skip.payload.shape().elem_shape.signed is False
    assert dut.i.payload.shape().elem_shape.width == 10
    assert dut.o.payload.shape().elem_shape.signed
    one = GateEngine.figures(unit, **{**kw, "lanes": 1}).luts
    assert 0 < one < fig.luts
    Fragment.get(dut, None)


@pytest.fixture
def built(monkeypatch):
    """The classes of every Elaboratable constructed while the test runs."""
    made = []
    original = Elaboratable.__new__

    def counting(cls, *args, **kwargs):
        made.append(cls)
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(Elaboratable, "__new__", counting)
    return made


BAD = [
    ({"unit": "swish"}, ValueError, r"^se: unit 'swish' has 1 input; the gate engine applies "
                                    r"a two-input unit$"),
    ({"unit": None}, TypeError, r"^se: unit must be a python_ref\.quant\.IntAmosUnit, "
                                r"not NoneType$"),
    ({"channels": 0}, ValueError, r"^se: channels must be a positive integer, not 0$"),
    ({"elements": 18}, ValueError, r"^se: the 18 elements of a map are not a whole number of "
                                   r"4-channel pixels$"),
    ({"lanes": 3}, ValueError, r"^se: lanes must divide the 4 channels, not 3$"),
    ({"x_width": 0}, ValueError, r"^se: x_width must be an integer in 1\.\.32, not 0$"),
    ({"g_width": 33}, ValueError, r"^se: g_width must be an integer in 1\.\.32, not 33$"),
    ({"x_signed": 1}, ValueError, r"^se: x_signed must be a bool, not 1$"),
    ({"shifts": (1,)}, ValueError, r"^se: shifts must be two integers \(S1, S2\), not \(1,\)$"),
    ({"shifts": (0, 63)}, ValueError, r"^se: shifts\[1\] must be a non-negative integer of at "
                                      r"most 62, not 63$"),
    ({"name": ""}, ValueError, r"^name must be a non-empty string, not ''$"),
    ({"map_words": 7}, ValueError, r"^se: map_words must hold one map \(8 words\), not 7$"),
    ({"map_words": 17}, ValueError, r"^se: map_words must be a positive integer of at most "
                                    r"16, not 17$"),
]


@pytest.mark.parametrize(("bad", "error", "message"), BAD, ids=[str(b) for b, *_ in BAD])
def test_bad_parameters(bad, error, message, built):
    kw = {"unit": mult_unit(), "channels": 4, "elements": 16, "x_width": 8, "g_width": 8,
          "lanes": 2, "name": "se"}
    kw.update(bad)
    if kw["unit"] == "swish":
        kw["unit"] = quantize_unit(load_unit("swish"), 8, 8, 8)
    unit = kw.pop("unit")
    with pytest.raises(error, match=message):
        GateEngine.figures(unit, **kw)
    assert built == []
    with pytest.raises(error, match=message):
        GateEngine(unit, **kw)
    with pytest.raises(error, match=message):
        GateParams.check(unit, **kw)


def test_gate_port_that_cannot_reach_the_range():
    """v2 of an 8-bit g shifted by 2 lies in -32..32 (7 bits), below in2_range."""
    unit = IntAmosUnit("far", c=[1], c2=[1], T=[0], h=[[0]], d=[1], in_range=(-8, 8),
                       in2_range=(100, 200))
    with pytest.raises(ValueError, match=r"^se: unit 'far': a 7-bit signed input cannot reach "
                                         r"its range \(100, 200\)$"):
        GateEngine(unit, channels=2, elements=4, x_width=4, g_width=8, shifts=(0, 2),
                   name="se")


def test_model_checks_its_inputs():
    dut = GateEngine(mult_unit(), channels=4, elements=8, x_width=8, g_width=6, name="se")
    with pytest.raises(ValueError, match=r"^se: g must lie in -32\.\.31$"):
        dut.model(np.zeros((1, 8), np.int64), np.full((1, 4), 40))
    with pytest.raises(TypeError, match=r"^se: x must hold integers, not float64$"):
        dut.model(np.zeros((1, 8)), np.zeros((1, 4), np.int64))
    with pytest.raises(ValueError, match=r"^se: g must end in 4 channels"):
        dut.model(np.zeros((1, 8), np.int64), np.zeros((1, 3), np.int64))
    assert isinstance(dut.unit, IntAmosUnit)
