# amaranth: UnusedElaboratable=no
"""Fast tier: the unit engine (:class:`amos_hw.engines.unit.UnitEngine`) in the Amaranth
simulator, bit for bit against python_ref's :class:`~python_ref.quant.IntAmosUnit` for the
library's trained units, with random input gaps and output stalls, its spike count, exact cycles
and latency, its figures from parameters alone and its errors."""
from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Fragment

from amos_hw.engines import UnitEngine
from amos_hw.engines.unit_params import UnitParams, const_mul_adders
from amos_hw.lib.amos_unit import AmosUnit
from amos_hw.lib.engine_sim import from_words, output_cycles, to_words
from amos_hw.lib.sim import run_simulation, stream_get_many, stream_put_many
from python_ref.quant import IntAmosUnit, quantize_unit, signed_width
from python_ref.units import load_unit
from python_ref.units.report import integer_unit

#: id: the unit (built lazily: quantising reads the unit files)
UNITS = {
    "swish": lambda: integer_unit("swish")[0],
    "sigmoid": lambda: integer_unit("sigmoid")[0],
    "swish888": lambda: quantize_unit(load_unit("swish"), 8, 8, 8),
}


def port_range(width):
    return -(2 ** (width - 1)), 2 ** (width - 1) - 1


def stimulus(unit, width, rng, n_random=60, step=1):
    """Values for a ``width``-bit port: the ends of the port and of the unit's ``in_range`` and
    their neighbours (saturation on both sides when the port reaches beyond it), every
    ``step``-th value of ``in_range``, and random values over the whole port."""
    lo, hi = port_range(width)
    r_lo, r_hi = unit.in_range
    edges = [lo, lo + 1, r_lo - 1, r_lo, r_lo + 1, -1, 0, 1, r_hi - 1, r_hi, r_hi + 1, hi - 1, hi]
    sweep = list(range(max(lo, r_lo), min(hi, r_hi) + 1, step))
    values = [v for v in edges if lo <= v <= hi] + sweep
    values += [int(v) for v in rng.integers(lo, hi + 1, n_random)]
    return np.array(values, dtype=np.int64)


def pad(values, multiple):
    """``values`` repeated at the end up to a multiple of ``multiple``."""
    extra = (-len(values)) % multiple
    return np.concatenate([values, values[:extra]])


def simulate(dut, values, *, seed, idle=0.3, backpressure=0.3):
    """Stream ``values`` through ``dut`` with random gaps and stalls; the outputs and the
    ``spike_count`` two clock edges after the last transfer."""
    words = to_words(values, dut.lanes)
    rng_in, rng_out = random.Random(seed), random.Random(seed + 1)
    got, counts = [], []

    async def producer(ctx):
        await stream_put_many(ctx, dut.i, words, rng=rng_in, idle=idle)

    async def consumer(ctx):
        got.extend(await stream_get_many(ctx, dut.o, len(words), rng=rng_out,
                                         backpressure=backpressure))
        await ctx.tick().repeat(2)  # the count includes a transfer two edges after it
        counts.append(ctx.get(dut.spike_count))

    run_simulation(dut, producer, consumer, max_cycles=10 * len(words) + 200)
    return from_words(got, dut.lanes), counts[0]


@pytest.mark.parametrize(("name", "in_width", "lanes", "step"), [
    ("swish", 14, 1, 7),  # in_range -2047..2047: saturation on both sides of a 14-bit port
    ("swish", 12, 4, 5),  # the port is the range: -2048 saturates, 2047 does not
    ("sigmoid", 13, 2, 7),
    ("swish888", 10, 1, 1),  # every value of in_range -127..127 and beyond
    ("swish888", 9, 2, 1),
])
def test_trained_unit_against_reference(name, in_width, lanes, step):
    unit = UNITS[name]()
    dut = UnitEngine(unit, in_width=in_width, lanes=lanes, name="act")
    rng = np.random.default_rng(in_width * 10 + lanes)
    values = pad(stimulus(unit, in_width, rng, step=step), lanes)
    assert values.min() < unit.in_range[0] or in_width == 12  # saturation below is exercised
    hw, spikes = simulate(dut, values, seed=in_width + lanes)
    assert hw.tolist() == unit(values).tolist()  # python_ref, not the engine's model
    assert spikes == int(unit.spikes(values).sum())


def test_saturation_outside_in_range():
    """Values beyond ``in_range`` give the outputs of its ends (IntAmosUnit saturates first)."""
    unit = UNITS["swish888"]()
    lo, hi = unit.in_range
    dut = UnitEngine(unit, in_width=12, lanes=2)
    values = np.array([-2048, lo - 1, lo - 100, lo, 2047, hi + 1, hi + 300, hi])
    hw, _ = simulate(dut, values, seed=3)
    y_lo, y_hi = (int(v) for v in unit(np.array([lo, hi])))
    assert hw.tolist() == [y_lo] * 4 + [y_hi] * 4
    assert y_lo != y_hi


def test_model_is_the_reference():
    unit = UNITS["swish888"]()
    dut = UnitEngine(unit, in_width=9, lanes=1, name="act")
    v = np.arange(-256, 256).reshape(4, 128)
    ref = unit(v)
    assert dut.model(v).dtype == np.int64
    assert dut.model(v).tolist() == ref.tolist()
    with pytest.raises(ValueError, match=r"^act: inputs must lie in -256\.\.255 \(in_width 9"):
        dut.model(np.array([256]))
    with pytest.raises(TypeError, match=r"^act: inputs must be integers, not float64$"):
        dut.model(np.array([1.5]))


@pytest.mark.parametrize(("name", "in_width", "lanes", "elements"), [
    ("swish888", 10, 2, 12),
    ("sigmoid", 13, 4, 8),
    ("swish888", 9, 1, 5),
])
def test_cycles_and_latency_exact(name, in_width, lanes, elements):
    """No gap, no stall: the first output word comes ``K + 2`` cycles after the first input
    word, one image leaves every ``elements / lanes`` cycles, and these are the figures."""
    unit = UNITS[name]()
    dut = UnitEngine(unit, in_width=in_width, lanes=lanes, elements=elements)
    per_image = elements // lanes
    images = 3
    rng = np.random.default_rng(elements)
    values = rng.integers(*port_range(in_width), images * elements, endpoint=True)
    ins, outs = output_cycles(dut, to_words(values, lanes), images * per_image)
    firsts = outs[::per_image]
    assert firsts[0] - ins[0] == dut.latency == unit.K + 2
    assert np.diff(firsts).tolist() == [dut.expected_cycles] * (images - 1) \
        == [per_image] * (images - 1)
    assert np.diff(outs).tolist() == [1] * (len(outs) - 1)  # one word a cycle, no bubble
    fig = UnitEngine.figures(unit, in_width=in_width, lanes=lanes, elements=elements)
    assert (fig.latency, fig.cycles) == (dut.latency, dut.expected_cycles)


def test_widths_and_ports():
    """``y_width`` is the signed width of the d sums (python_ref), the AmosUnit's y width; the
    ports are signed arrays of ``lanes``."""
    unit = UNITS["swish888"]()
    d = [int(v) for v in unit.d]
    width = signed_width(sum(v for v in d if v < 0), sum(v for v in d if v > 0))
    dut = UnitEngine(unit, in_width=10, lanes=4)
    assert dut.y_width == dut.out_width == width == AmosUnit(unit, 10).y_width
    assert dut.in_width == 10 and dut.lanes == dut.pe == dut.simd == 4
    assert dut.i.payload.shape().elem_shape.signed and dut.o.payload.shape().length == 4
    assert dut.o.payload.shape().elem_shape.width == width
    assert dut.o.payload.shape().elem_shape.signed
    sigmoid = UnitEngine(UNITS["sigmoid"](), in_width=12)
    assert sigmoid.y_width == signed_width(0, int(sigmoid.unit.d.sum()))


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


@pytest.mark.parametrize(("name", "in_width", "lanes", "elements"), [
    ("swish", 12, 1, 1), ("sigmoid", 14, 2, 6), ("swish888", 8, 4, 16)])
def test_figures_equal_the_engine(name, in_width, lanes, elements, built):
    unit = UNITS[name]()
    kw = {"in_width": in_width, "lanes": lanes, "elements": elements}
    fig = UnitEngine.figures(unit, **kw)
    assert built == []  # nothing built
    dut = UnitEngine(unit, **kw)
    assert (fig.cycles, fig.latency, fig.luts, fig.flip_flops, fig.memory_bits,
            list(fig.memories), fig.out_width) == (
        dut.expected_cycles, dut.latency, dut.luts, dut.flip_flops, dut.memory_bits,
        dut.memories, dut.out_width)
    assert fig.memory_bits == 0 and fig.memories == ()
    assert fig.flip_flops == AmosUnit.flip_flops_for(unit, in_width, lanes=lanes)
    assert fig.cycles == elements // lanes and fig.latency == unit.K + 2
    Fragment.get(dut, None)


def test_lut_estimate():
    """Shift-and-add adders by constant; the estimate grows with the lanes and with the
    unit's size."""
    assert [const_mul_adders(c) for c in (0, 1, -8, 3, 7, -7, 5, 11, 21, 27, 127, 1225)] == \
        [0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 1, 4]  # 1225 = 1024+256-64+8+1
    small, big = UNITS["swish888"](), UNITS["swish"]()
    one = UnitEngine.figures(small, in_width=8).luts
    two = UnitEngine.figures(small, in_width=8, lanes=2).luts
    assert 0 < one < two < 2 * one + 1
    assert UnitEngine.figures(big, in_width=12).luts > one
    # the ReLU unit: no multiplier; the residual x - (8 z0 + 4 z1 + 2 z2) of a 5-bit x lies in
    # -30..15 (6 bits); three stages compare and subtract, the last only compares; then the
    # popcount of 4 spikes, the spike counter and control
    relu = UnitEngine.figures(IntAmosUnit.relu(4), in_width=5).luts
    assert relu == 3 * 2 * 6 + 6 + 4 + 32 + 8


# -- errors: each names the layer; figures(...) refuses as the constructor does --------------


BAD = [
    ({"unit": "mult"}, ValueError, r"^act: unit 'mult' has 2 inputs; the unit engine applies "
                                   r"a one-input unit$"),
    ({"unit": None}, TypeError, r"^act: unit must be a python_ref\.quant\.IntAmosUnit, "
                                r"not NoneType$"),
    ({"in_width": 1}, ValueError, r"^act: in_width must be an integer in 2\.\.32 \(the signed "
                                  r"width of the raw value v\), not 1$"),
    ({"in_width": 33}, ValueError, r"^act: in_width must be an integer in 2\.\.32 .*not 33$"),
    ({"in_width": True}, ValueError, r"^act: in_width must be an integer .*not True$"),
    ({"in_width": "8"}, ValueError, r"^act: in_width must be an integer .*not '8'$"),
    ({"lanes": 0}, ValueError, r"^act: lanes must be a positive integer, not 0$"),
    ({"elements": 6, "lanes": 4}, ValueError, r"^act: lanes must divide the 6 elements of an "
                                              r"image, not 4$"),
    ({"elements": 0}, ValueError, r"^act: elements must be a positive integer, not 0$"),
    ({"name": ""}, ValueError, r"^name must be a non-empty string, not ''$"),
]


@pytest.mark.parametrize(("bad", "error", "message"), BAD, ids=[str(b) for b, *_ in BAD])
def test_bad_parameters(bad, error, message, built):
    kw = {"unit": UNITS["swish888"](), "in_width": 8, "lanes": 2, "elements": 8, "name": "act"}
    kw.update(bad)
    if kw["unit"] == "mult":
        kw["unit"] = integer_unit("mult")[0]
    unit = kw.pop("unit")
    with pytest.raises(error, match=message):
        UnitEngine.figures(unit, **kw)
    assert built == []
    with pytest.raises(error, match=message):
        UnitEngine(unit, **kw)
    with pytest.raises(error, match=message):
        UnitParams.check(unit, **kw)


def test_port_that_cannot_reach_the_range():
    unit = IntAmosUnit("far", c=[1], T=[0], h=[[0]], d=[1], in_range=(100, 200))
    with pytest.raises(ValueError, match=r"^act: unit 'far': a 4-bit signed input cannot reach "
                                         r"its range \(100, 200\)$"):
        UnitEngine(unit, in_width=4, name="act")


@pytest.mark.parametrize(("K", "in_width", "lanes", "in_range"), [
    (6, 9, 1, None),  # the port reaches beyond -32..31 on both sides
    (8, 8, 2, None),  # the port is the identity's range
    (5, 10, 3, (-9, 40)),  # in_range clamps below first, the identity above
])
def test_identity_unit_is_a_clamp(K, in_width, lanes, in_range):
    """The signed identity (IntAmosUnit.identity) is built as a clamp: outputs and spike
    counts equal python_ref's under gaps and stalls, latency 1, one word a cycle, and the
    figures say so."""
    ref = IntAmosUnit.identity(K)
    unit = ref if in_range is None else IntAmosUnit("identity", c=ref.c, T=ref.T, h=ref.h,
                                                    d=ref.d, in_range=in_range)
    dut = UnitEngine(unit, in_width=in_width, lanes=lanes, name="proj.id")
    assert dut.params.clamp and dut.latency == 1
    rng = np.random.default_rng(K)
    values = pad(stimulus(unit, in_width, rng, step=1), lanes)
    hw, spikes = simulate(dut, values, seed=K)
    lo, hi = -(2 ** (K - 1)), 2 ** (K - 1) - 1
    if in_range is not None:
        lo, hi = max(lo, in_range[0]), min(hi, in_range[1])
    assert hw.tolist() == [min(max(int(v), lo), hi) for v in values]
    assert spikes == int(unit.spikes(values).sum())
    ins, outs = output_cycles(dut, to_words(values[: 4 * lanes], lanes), 4)
    assert outs[0] - ins[0] == 1 and np.diff(outs).tolist() == [1, 1, 1]
    fig = UnitEngine.figures(unit, in_width=in_width, lanes=lanes)
    assert (fig.latency, fig.luts, fig.flip_flops) == (1, dut.luts, dut.flip_flops)
    assert dut.luts == lanes * 3 * in_width + K * lanes + 40
    general = IntAmosUnit("other", c=ref.c, T=ref.T, h=ref.h, d=ref.d + np.eye(K, dtype=int)[0])
    assert not UnitEngine(general, in_width=in_width, lanes=lanes).params.clamp
