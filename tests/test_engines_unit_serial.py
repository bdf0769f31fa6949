# amaranth: UnusedElaboratable=no
"""Fast tier: the serial form of the unit engine (``UnitEngine(..., serial=n, depth=D)``: ``n``
:class:`~amos_hw.lib.serial_unit.SerialAmosUnit` s, one a lane, behind a pacer) in the Amaranth
simulator, bit for bit against python_ref's :class:`~python_ref.quant.IntAmosUnit` under random
input gaps and output stalls, its spike count, its measured cycles per image and latency against
its figures, the figures from parameters alone and the errors that name the layer."""
from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.hdl import Fragment

from amos_hw.engines import UnitEngine
from amos_hw.engines.unit_params import COUNT_WIDTH, UnitParams, serial_depth
from amos_hw.lib.engine_sim import from_words, output_cycles, to_words
from amos_hw.lib.serial_unit import SerialAmosUnit
from amos_hw.lib.sim import run_simulation, stream_get_many, stream_put_many
from python_ref.quant import IntAmosUnit
from tests.test_engines_unit import UNITS, pad, port_range, stimulus


def simulate(dut, values, *, seed, idle, backpressure):
    """Stream ``values`` through ``dut`` with random gaps and stalls; the outputs and the
    ``spike_count`` two clock edges after the last transfer (as tests/test_engines_unit.py,
    with room for ``K`` cycles a word)."""
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

    run_simulation(dut, producer, consumer, max_cycles=20 * dut.K * (len(words) + 10))
    return from_words(got, dut.lanes), counts[0]


@pytest.mark.parametrize(("name", "in_width", "serial", "depth", "step"), [
    ("swish", 14, 1, None, 9),  # K = 12: default D = 5; saturation on both sides of the port
    ("swish888", 10, 2, 1, 1),  # every value of in_range and beyond, D = 1
    ("sigmoid", 13, 3, 5, 7),  # K = 8
    ("swish888", 9, 4, 7, 3),
])
def test_serial_against_reference(name, in_width, serial, depth, step):
    unit = UNITS[name]()
    dut = UnitEngine(unit, in_width=in_width, serial=serial, depth=depth, name="act")
    assert dut.lanes == dut.serial == serial
    assert dut.depth == (depth or serial_depth(unit.K))
    rng = np.random.default_rng(in_width * 10 + serial)
    values = pad(stimulus(unit, in_width, rng, step=step), serial)
    hw, spikes = simulate(dut, values, seed=in_width + serial, idle=0.4, backpressure=0.4)
    assert hw.tolist() == unit(values).tolist()  # python_ref, not the engine's model
    assert spikes == int(unit.spikes(values).sum())


def test_serial_under_long_stalls():
    """Mostly stalled output and sparse input: nothing is lost, order is kept."""
    unit = UNITS["swish888"]()
    dut = UnitEngine(unit, in_width=9, serial=2, depth=5)
    values = pad(stimulus(unit, 9, np.random.default_rng(4), step=5), 2)
    hw, spikes = simulate(dut, values, seed=11, idle=0.7, backpressure=0.8)
    assert hw.tolist() == unit(values).tolist()
    assert spikes == int(unit.spikes(values).sum())


@pytest.mark.parametrize(("name", "in_width", "serial", "depth", "elements"), [
    ("swish888", 10, 2, 5, 14),  # K = 12, D = 5: 7 words an image (not a multiple of D)
    ("sigmoid", 13, 1, 3, 5),  # K = 8, D = 3
    ("swish", 12, 4, None, 8),  # K = 12, D = 5
    ("swish888", 9, 1, 1, 4),
])
def test_serial_cycles_and_latency_exact(name, in_width, serial, depth, elements):
    """Input offered every cycle, output always taken: a word is accepted exactly every ``K``
    cycles (no bursts), the first output is ``K * D + 1`` cycles after the first input, one
    output word every ``K`` cycles, one image every ``K * elements / n``; these are the
    figures."""
    unit = UNITS[name]()
    K = unit.K
    dut = UnitEngine(unit, in_width=in_width, serial=serial, depth=depth, elements=elements)
    D = dut.depth
    per_image = elements // serial
    images = 3
    rng = np.random.default_rng(elements)
    values = rng.integers(*port_range(in_width), images * elements, endpoint=True)
    ins, outs = output_cycles(dut, to_words(values, serial), images * per_image)
    assert np.diff(ins).tolist() == [K] * (len(ins) - 1)
    assert np.diff(outs).tolist() == [K] * (len(outs) - 1)
    firsts = outs[::per_image]
    assert firsts[0] - ins[0] == dut.latency == K * D + 1
    assert np.diff(firsts).tolist() == [dut.expected_cycles] * (images - 1) \
        == [K * per_image] * (images - 1)
    fig = UnitEngine.figures(unit, in_width=in_width, serial=serial, depth=depth,
                             elements=elements)
    assert (fig.latency, fig.cycles) == (dut.latency, dut.expected_cycles)


def test_default_depth_is_coprime_with_K():
    assert [serial_depth(K) for K in (1, 2, 3, 4, 6, 8, 9, 10, 12, 40, 15, 30)] == \
        [3, 3, 4, 3, 5, 3, 4, 3, 5, 3, 4, 7]


@pytest.mark.parametrize(("name", "in_width", "serial", "depth"), [
    ("swish", 12, 1, None), ("sigmoid", 14, 2, 3), ("swish888", 8, 4, 1), ("sigmoid", 12, 2, 5)])
def test_serial_figures(name, in_width, serial, depth):
    """The figures from parameters alone equal the engine's, and are the serial units' own
    estimates: ``n`` units less their unread output counters, ``n - 1`` adders of the spike
    counts, and the pacer."""
    unit = UNITS[name]()
    kw = {"in_width": in_width, "serial": serial, "depth": depth, "elements": 4 * serial}
    fig = UnitEngine.figures(unit, **kw)
    dut = UnitEngine(unit, **kw)
    D = dut.depth
    assert (fig.cycles, fig.latency, fig.luts, fig.flip_flops, fig.memory_bits,
            fig.out_width) == (dut.expected_cycles, dut.latency, dut.luts, dut.flip_flops, 0,
                               dut.out_width)
    pace = max(1, (unit.K - 1).bit_length())
    ff = SerialAmosUnit.flip_flops_for(unit, in_width, depth=D)
    lut = SerialAmosUnit.luts_for(unit, in_width, depth=D)
    assert fig.flip_flops == serial * (ff - COUNT_WIDTH) + pace
    assert fig.luts == serial * lut - COUNT_WIDTH + pace + 2
    assert fig.cycles == 4 * unit.K
    Fragment.get(dut, None)


def test_serial_is_smaller_than_the_lanes():
    """The trained swish unit: one serial unit costs a fraction of one pipelined lane."""
    unit = UNITS["swish"]()
    lane = UnitEngine.figures(unit, in_width=12)
    ser = UnitEngine.figures(unit, in_width=12, serial=1)
    assert ser.luts < lane.luts / 2 and ser.flip_flops < lane.flip_flops / 3  # K=12: D=5


BAD = [
    ({"serial": 0}, ValueError, r"^act: serial must be a positive integer, not 0$"),
    ({"serial": 2, "lanes": 4}, ValueError,
     r"^act: serial=2 units take a word of 2 values; lanes must be 1 \(default\) or 2, not 4$"),
    ({"depth": 3}, ValueError, r"^act: depth is a parameter of the serial form; give serial "
                               r"too$"),
    ({"serial": 1, "depth": 2}, ValueError,
     r"^act: depth must be in 1\.\.16 and have no common divisor with K = 8 .*e\.g\. 3\), "
     r"not 2$"),
    ({"serial": 1, "depth": 17}, ValueError, r"^act: depth must be in 1\.\.16 .*not 17$"),
    ({"serial": 1, "depth": 0}, ValueError, r"^act: depth must be a positive integer, not 0$"),
    ({"serial": 4, "elements": 6}, ValueError,
     r"^act: lanes must divide the 6 elements of an image, not 4$"),
    ({"serial": 1, "unit": "identity"}, ValueError,
     r"^act: the signed identity unit is built as a clamp; it has no serial form$"),
]


@pytest.mark.parametrize(("bad", "error", "message"), BAD, ids=[str(b) for b, *_ in BAD])
def test_bad_serial_parameters(bad, error, message):
    kw = {"unit": UNITS["sigmoid"](), "in_width": 12, "elements": 8, "name": "act"}
    kw.update(bad)
    if kw["unit"] == "identity":
        kw["unit"] = IntAmosUnit.identity(8)
    unit = kw.pop("unit")
    with pytest.raises(error, match=message):
        UnitEngine.figures(unit, **kw)
    with pytest.raises(error, match=message):
        UnitEngine(unit, **kw)
    with pytest.raises(error, match=message):
        UnitParams.check(unit, **kw)


@pytest.mark.parametrize(("buffer", "extra"), [(1, 1), (3, 2), (6, 2)])
def test_serial_input_fifo(buffer, extra):
    """``buffer=B``: a FIFO in front of the pacer takes a burst of ``B`` words at once (the
    producer never waits on the units while it fits), adds ``min(B, 2)`` cycles of latency,
    keeps the pace of one word every ``K`` cycles and the values bit-exact; its memory is in
    the figures."""
    unit = UNITS["sigmoid"]()  # K = 8
    kw = {"in_width": 12, "serial": 2, "depth": 3, "elements": 12, "buffer": buffer}
    dut = UnitEngine(unit, **kw)
    assert dut.latency == 8 * 3 + 1 + extra
    values = np.random.default_rng(buffer).integers(*port_range(12), 36, endpoint=True)
    ins, outs = output_cycles(dut, to_words(values, 2), 18)
    assert outs[0] - ins[0] == dut.latency
    assert np.diff(outs).tolist() == [8] * 17
    if buffer >= 3:  # a burst of B + 1 words goes in back to back (SyncFIFOBuffered of 1 or
        # 2 words does not read and write its memory in one cycle)
        assert ins[: buffer + 1] == list(range(buffer + 1))
    fig = UnitEngine.figures(unit, **kw)
    assert (fig.latency, fig.cycles, fig.luts, fig.flip_flops) == (
        dut.latency, dut.expected_cycles, dut.luts, dut.flip_flops) and fig.cycles == 48
    assert fig.memory_bits == buffer * 2 * 12
    assert [(m.depth, m.width) for m in fig.memories] == ([(buffer - 1, 24)] if buffer > 1
                                                          else [])
    plain = UnitEngine.figures(unit, **{**kw, "buffer": 0})
    levels = {1: 1, 3: 2, 6: 3}[buffer]  # ceil(log2(B + 1))
    assert fig.flip_flops - plain.flip_flops == 24 + 2 * levels + 4
    hw, spikes = simulate(dut, pad(stimulus(unit, 12, np.random.default_rng(9), step=97), 2),
                          seed=buffer, idle=0.3, backpressure=0.5)
    want = pad(stimulus(unit, 12, np.random.default_rng(9), step=97), 2)
    assert hw.tolist() == unit(want).tolist()
    assert spikes == int(unit.spikes(want).sum())


def test_buffer_needs_the_serial_form():
    with pytest.raises(ValueError, match=r"^act: buffer is a parameter of the serial form; "
                                         r"give serial too$"):
        UnitEngine(UNITS["sigmoid"](), in_width=12, buffer=2, name="act")
    with pytest.raises(ValueError, match=r"^act: buffer must be a non-negative integer of at "
                                         r"most 4096, not -1$"):
        UnitEngine(UNITS["sigmoid"](), in_width=12, serial=1, buffer=-1, name="act")
