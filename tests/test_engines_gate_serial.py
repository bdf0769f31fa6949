# amaranth: UnusedElaboratable=no
"""Fast tier: the serial form of the gate engine (``GateEngine(..., serial=n, depth=D)``: ``n``
time-serial units, :class:`~amos_hw.engines.unit.SerialLanes`, reading the map one word every
``K`` cycles) in the Amaranth simulator, bit for bit against the gate's integer semantics
written out in ``tests/test_engines_gate.py`` under random gaps and stalls, its spike count,
its measured cycles and latency against its figures, the figures from parameters alone and its
errors."""
from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.hdl import Fragment

from amos_hw.engines import GateEngine
from amos_hw.engines.gate_params import GateParams
from amos_hw.engines.unit_params import COUNT_WIDTH
from amos_hw.lib.engine_sim import from_words, to_words
from amos_hw.lib.serial_unit import SerialAmosUnit
from amos_hw.lib.sim import run_simulation, stream_get_many, stream_put_many
from python_ref.quant import quantize_unit
from python_ref.units import load_unit
from tests.test_engines_gate import data_for, mult_unit, reference, timed


def simulate(dut, x, g, *, seed, idle=0.3, backpressure=0.3, gate_idle=0.5):
    """As tests/test_engines_gate.py's, with room for ``K`` cycles a word."""
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
        await ctx.tick().repeat(2)
        counts.append(ctx.get(dut.spike_count))

    run_simulation(dut, maps, gates, consumer, max_cycles=4 * dut.K * (len(xw) + 20))
    return from_words(got, dut.lanes).reshape(np.shape(x)), counts[0]


CASES = [  # (channels, (H, W), serial, depth, x_width, x_signed, g_width, g_signed, shifts)
    (4, (3, 3), 1, None, 8, True, 8, True, (0, 0)),  # K = 40: default D = 3
    (4, (2, 3), 2, 1, 10, True, 9, True, (2, 1)),  # rounding shifts, saturation, D = 1
    (8, (2, 2), 4, 7, 11, True, 7, False, (3, 0)),  # an unsigned gate
    (6, (1, 1), 3, 3, 6, False, 8, True, (0, 0)),  # a vector, unsigned x
]


@pytest.mark.parametrize(("C", "hw", "serial", "depth", "xw", "xs", "gw", "gs", "shifts"),
                         CASES)
def test_serial_gate_against_reference(C, hw, serial, depth, xw, xs, gw, gs, shifts):
    unit = mult_unit()
    dut = GateEngine(unit, channels=C, elements=C * hw[0] * hw[1], x_width=xw, g_width=gw,
                     shifts=shifts, x_signed=xs, g_signed=gs, serial=serial, depth=depth,
                     name="gate")
    assert dut.lanes == dut.serial == serial and dut.depth == (depth or 3)
    x, g = data_for(dut, 3, hw, np.random.default_rng(C * 100 + serial))
    want, spikes = reference(unit, x, g, *shifts)
    assert len(set(want.ravel().tolist())) > 3
    got, count = simulate(dut, x, g, seed=serial)
    assert got.tolist() == want.tolist()
    assert count == spikes


@pytest.mark.parametrize(("C", "hw", "serial", "delay"), [
    (4, (3, 3), 1, 0), (4, (2, 2), 2, 30), (6, (2, 2), 3, 5)])
def test_serial_cycles_and_latency_exact(C, hw, serial, delay):
    """Map offered every cycle, output always ready: the first output ``3 + K * D + 1``
    cycles after the gate's last word, one output word every ``K`` cycles (the reads paced
    by the units), one image every ``K * elements / n`` cycles: the figures."""
    unit = mult_unit()
    K, elements = unit.K, C * hw[0] * hw[1]
    dut = GateEngine(unit, channels=C, elements=elements, x_width=8, g_width=8,
                     serial=serial)
    W, CW, images = elements // serial, C // serial, 3
    x, g = data_for(dut, images, hw, np.random.default_rng(delay))
    ins, gins, outs, got = timed(dut, to_words(x, serial), to_words(g, serial), images, delay)
    assert got.tolist() == reference(unit, x, g, 0, 0)[0].ravel().tolist()
    firsts = outs[::W]
    assert firsts[0] - gins[CW - 1] == dut.latency == 3 + K * 3 + 1
    assert np.diff(outs).tolist() == [K] * (len(outs) - 1)
    assert np.diff(firsts).tolist() == [dut.expected_cycles] * (images - 1) == \
        [K * W] * (images - 1)
    fig = GateEngine.figures(unit, channels=C, elements=elements, x_width=8, g_width=8,
                             serial=serial)
    assert (fig.cycles, fig.latency) == (dut.expected_cycles, dut.latency)


def test_serial_gate_figures():
    """The serial form's flip-flops and LUT4 replace the pipelined unit's by ``n`` serial
    units (less their unread output counters, one adder of the spike counts each after the
    first) and the pacer; the memories stay."""
    unit = mult_unit()
    kw = {"channels": 8, "elements": 32, "x_width": 10, "g_width": 10, "shifts": (1, 1)}
    pipe = GateEngine.figures(unit, lanes=2, **kw)
    ser = GateEngine.figures(unit, serial=2, **kw)
    dut = GateEngine(unit, serial=2, **kw)
    assert (ser.cycles, ser.latency, ser.luts, ser.flip_flops, ser.memory_bits,
            ser.out_width) == (dut.expected_cycles, dut.latency, dut.luts, dut.flip_flops,
                               pipe.memory_bits, pipe.out_width)
    assert ser.memories == pipe.memories
    p = GateParams.check(unit, lanes=2, **kw)
    v1, v2 = p.v1_width, p.v2_width
    ff = SerialAmosUnit.flip_flops_for(unit, v1, in2_width=v2, depth=3)
    lut = SerialAmosUnit.luts_for(unit, v1, in2_width=v2, depth=3)
    pace = (unit.K - 1).bit_length()
    assert ser.flip_flops - pipe.flip_flops == 2 * (ff - COUNT_WIDTH) + pace - p.unit_flip_flops
    lane_unit = p._unit_luts()
    assert ser.luts - pipe.luts == (2 * lut - COUNT_WIDTH + pace + 2) - (
        2 * lane_unit + unit.K * 2 + COUNT_WIDTH)
    assert ser.flip_flops < pipe.flip_flops / 10 and ser.luts < pipe.luts / 3
    Fragment.get(dut, None)


@pytest.mark.parametrize(("bad", "message"), [
    ({"serial": 0}, r"^gate: serial must be a positive integer, not 0$"),
    ({"serial": 2, "lanes": 4}, r"^gate: serial=2 units take a word of 2 values; lanes must be "
                                r"1 \(default\) or 2, not 4$"),
    ({"depth": 3}, r"^gate: depth is a parameter of the serial form; give serial too$"),
    ({"serial": 1, "depth": 2}, r"^gate: depth must be in 1\.\.16 and have no common divisor "
                                r"with K = 40 .*not 2$"),
    ({"serial": 3}, r"^gate: lanes must divide the 4 channels, not 3$"),
])
def test_bad_serial_parameters(bad, message):
    kw = {"channels": 4, "elements": 16, "x_width": 8, "g_width": 8, "name": "gate", **bad}
    with pytest.raises(ValueError, match=message):
        GateEngine.figures(mult_unit(), **kw)
    with pytest.raises(ValueError, match=message):
        GateEngine(mult_unit(), **kw)


@pytest.mark.parametrize("serial", [None, 2])
def test_gate_product_unit_in_both_forms(serial):
    """The closed-form gate product (python_ref/units/mult_gate.json: excitatory weights from
    the gate's bits, a one-sided domain) in the pipelined and the serial engine, bit for bit."""
    unit = quantize_unit(load_unit("mult_gate"), 10, 12, 12)
    assert unit.in2_range[0] == 0 and unit.in_range[0] < 0 < unit.in_range[1]
    kw = {"serial": serial} if serial else {"lanes": 2}
    dut = GateEngine(unit, channels=4, elements=4 * 2 * 2, x_width=11, g_width=10,
                 shifts=(0, 0), x_signed=True, g_signed=False, name="gate", **kw)
    x, g = data_for(dut, 3, (2, 2), np.random.default_rng(7))
    want, spikes = reference(unit, x, g, 0, 0)
    assert len(set(want.ravel().tolist())) > 20
    got, count = simulate(dut, x, g, seed=3)
    assert got.tolist() == want.tolist()
    assert count == spikes
