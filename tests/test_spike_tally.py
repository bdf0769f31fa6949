# amaranth: UnusedElaboratable=no
"""Fast tier: the hardware's own spike counts (``--spike-counts``, amos_hw.lib.spike_tally).

The network top with the tally in the Amaranth simulator: every image's spikes, in total and per
AMOS layer, equal python_ref's ``SimResult.spikes`` under idle input cycles and heavy result
backpressure (which fills the pipeline up to the tally's images in flight); the intervals
between results stay the report's; the tally's own errors; the generator's option.
"""
from __future__ import annotations

import random

import numpy as np
import pytest

from amos_hw import generate
from amos_hw.flow import BudgetError, FlowConfig, FlowError, run_flow
from amos_hw.lib.sim import run_simulation, stream_put_many
from amos_hw.lib.spike_tally import SpikeLayer, SpikeTally, spike_layers, tally_depth
from amos_hw.top import NetworkTop, result_layout
from python_ref import ir, snn
from python_ref.data import load_digits
from rtl_tests.network import tiny_resnet
from tests.test_top import TINY_FOLDINGS, pixel_beats


def spike_flow(model, **cfg):
    return run_flow(FlowConfig(model=model, quiet=True, stop_after="assemble",
                               spike_counts=True, **cfg))


def run_top(top: NetworkTop, images, *, idle=0.0, backpressure=0.0, seed=0,
            max_cycles=400_000):
    """Every result beat: (cycle, cls, logits, spikes, layer_spikes); and the most images
    that were in flight at once (first byte taken, result not yet out)."""
    got, flight = [], {"now": 0, "max": 0}
    rng_out = random.Random(seed + 1)
    n_bytes = int(np.prod(images.shape[1:]))

    async def producer(ctx):
        await stream_put_many(ctx, top.pixels, pixel_beats(images), rng=random.Random(seed),
                              idle=idle)

    async def consumer(ctx):
        cycle = 0
        while len(got) < len(images):
            ctx.set(top.result.ready, int(rng_out.random() >= backpressure))
            _, _, v, r, p, split = await ctx.tick().sample(
                top.result.valid, top.result.ready, top.result.payload, top.layer_spikes)
            if v and r:
                got.append((cycle, int(p.cls), [int(x) for x in p.logits], int(p.spikes),
                            [int(x) for x in split]))
            cycle += 1

    async def watch(ctx):
        taken = 0
        async for _, _, pv, pr, rv, rr in ctx.tick().sample(
                top.pixels.valid, top.pixels.ready, top.result.valid, top.result.ready):
            if pv and pr:
                flight["now"] += taken % n_bytes == 0
                taken += 1
            flight["now"] -= bool(rv and rr)
            flight["max"] = max(flight["max"], flight["now"])

    run_simulation(top, producer, consumer, background=[watch], max_cycles=max_cycles)
    return got, flight["max"]


def check_spikes(top, got, ref):
    """Every beat's class, logits, total and per-layer spikes equal python_ref's."""
    assert [g[1] for g in got] == list(ref.classes)
    assert np.array_equal([g[2] for g in got], ref.logits)
    per_layer = np.array([g[4] for g in got])
    want = np.stack([ref.spikes[name] for name in top.spike_layers], axis=1)
    assert np.array_equal(per_layer, want)
    assert [g[3] for g in got] == list(ref.spikes_per_image)
    assert set(top.spike_layers) == set(ref.spikes)  # every AMOS layer is counted


@pytest.fixture(scope="module")
def digits():
    x, _ = load_digits("test")
    return x[:6]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny") / "tiny_resnet"
    g = tiny_resnet(path)
    x = np.random.default_rng(1).integers(0, 256, (3, 8, 8, 3)).astype(np.uint8)
    return path, g, x


def test_digits_spikes_with_backpressure(digits):
    ctx = spike_flow("digits")
    top = ctx.top
    assert top.spike_layers == ("act1",)
    ref = snn.run(ctx.graph, digits)
    assert len(set(ref.spikes_per_image)) > 1  # the images differ in their spikes
    got, most = run_top(top, digits, idle=0.1, backpressure=0.8, seed=2)
    check_spikes(top, got, ref)
    assert most <= tally_depth(top.latency_cycles, top.cycles_per_image)


@pytest.mark.parametrize("k", [pytest.param(0, marks=pytest.mark.slow), 1,
                               pytest.param(3, marks=pytest.mark.slow)])
def test_tiny_resnet_spikes(tiny, k):
    """Five AMOS layers (two convolutions, two residual adds, the stem), every lane adapter
    kind, time-serial layers (folding 3): per-layer counts under backpressure (about 40 s
    each; folding 1 in the default run)."""
    path, g, x = tiny
    ctx = spike_flow(path, parallelism=TINY_FOLDINGS[k])
    top = ctx.top
    assert top.spike_layers == ("stem.act", "b0.a1", "b0.a2", "b1.a1", "b1.a2")
    ref = snn.run(g, x)
    got, _ = run_top(top, x, idle=0.2, backpressure=0.6, seed=k, max_cycles=300_000)
    check_spikes(top, got, ref)


@pytest.mark.parametrize("k", [None, pytest.param(1, marks=pytest.mark.slow)])
def test_cycles_per_image_unchanged(tiny, digits, k):
    """Without stalls the counters change nothing: the intervals are the report's, the
    latency the plain design's."""
    if k is None:
        model, par, x = "digits", None, digits[:4]
    else:
        (model, _, x), par = tiny, TINY_FOLDINGS[k]
    plain = run_flow(FlowConfig(model=model, quiet=True, stop_after="assemble",
                                parallelism=par))
    top = spike_flow(model, parallelism=par).top
    assert top.cycles_per_image == plain.top.cycles_per_image
    got, _ = run_top(top, x)
    plain_first = run_top_plain(plain.top, x[:1])
    cycles = [g[0] for g in got]
    assert [b - a for a, b in zip(cycles[1:], cycles[2:], strict=False)] == \
        [top.cycles_per_image] * (len(x) - 2)
    assert cycles[0] == plain_first


def run_top_plain(top, images):
    """Cycle of the first result beat of the plain top (no spike counts)."""
    out = []

    async def producer(ctx):
        await stream_put_many(ctx, top.pixels, pixel_beats(images))

    async def consumer(ctx):
        ctx.set(top.result.ready, 1)
        cycle = 0
        while not out:
            _, _, v = await ctx.tick().sample(top.result.valid)
            if v:
                out.append(cycle)
            cycle += 1

    run_simulation(top, producer, consumer, max_cycles=100_000)
    return out[0]


def test_report_and_manifest():
    ctx = run_flow(FlowConfig(model="digits", quiet=True, stop_after="estimate",
                              spike_counts=True))
    plain = run_flow(FlowConfig(model="digits", quiet=True, stop_after="estimate"))
    t = ctx.report["spike_tally"]
    assert t["layers"] == ["act1"]
    assert t["depth"] == tally_depth(plain.report["latency_cycles"],
                                     plain.report["cycles_per_image"])
    layers = spike_layers(ctx.plan.layers)
    fig = SpikeTally.figures(layers, image_bytes=64, depth=t["depth"])
    assert (t["est_lut4"], t["est_ff"]) == (fig["lut4"], fig["ff"])
    assert ctx.report["est_lut4"] == plain.report["est_lut4"] + fig["lut4"]
    assert ctx.report["est_ff"] == plain.report["est_ff"] + fig["ff"]
    assert ctx.report["latency_cycles"] == plain.report["latency_cycles"]
    assert "spike_tally" not in plain.report
    assert ctx.config.as_dict()["spike_counts"] is True
    assert "spike_counts" not in plain.config.as_dict()


def test_spike_layer_figures():
    """``max_spikes`` is the elements times K; the count's width follows from it."""
    ctx = run_flow(FlowConfig(model="digits", quiet=True, stop_after="estimate"))
    (lay,) = spike_layers(ctx.plan.layers)
    act1 = ctx.plan.layer("act1")
    assert lay.max_spikes == act1.out_shape[0] * act1.out_bits
    assert lay.words == act1.out_shape[0] // act1.out_lanes
    assert lay.width == lay.max_spikes.bit_length()


def test_shared_engine_refused():
    with pytest.raises(FlowError, match="--spike-counts: the shared engine has no spike "
                                        "counters"):
        run_flow(FlowConfig(model="digits", quiet=True, architecture="shared",
                            spike_counts=True, stop_after="infer"))


def no_amos_model(path):
    """input -> dense (the logits): a network without an AMOS layer."""
    A = {"fc.w": np.ones((3, 4), np.int64), "fc.b": np.zeros(3, np.int64)}
    n = [{"name": "input", "op": "input", "inputs": [], "shape": [2, 2, 1], "bits": 8},
         {"name": "fc", "op": "dense", "inputs": ["input"], "weight": "fc.w", "bias": "fc.b",
          "out_features": 3}]
    ir.save(ir.Graph("no_amos", n, {}, A, ["fc"]), path)


def test_no_amos_layer(tmp_path):
    no_amos_model(tmp_path / "no_amos")
    with pytest.raises(FlowError, match="--spike-counts: model 'no_amos' has no AMOS layer"):
        spike_flow(tmp_path / "no_amos")
    ctx = run_flow(FlowConfig(model=tmp_path / "no_amos", quiet=True, stop_after="estimate"))
    with pytest.raises(ValueError, match="spike_counts: the network has no AMOS layer"):
        NetworkTop(ctx.plan, ctx.graph.arrays, spike_counts=True)


def test_tally_messages():
    res = result_layout(8, 2)
    one = SpikeLayer("a", 4, 40)
    with pytest.raises(ValueError, match="a spike tally needs at least one AMOS layer"):
        SpikeTally(res, [], image_bytes=4, depth=2)
    with pytest.raises(TypeError, match="layers must be SpikeLayer, not tuple"):
        SpikeTally(res, [("a", 4, 40)], image_bytes=4, depth=2)
    with pytest.raises(ValueError, match="layer 'b': words must be a positive integer"):
        SpikeTally(res, [one, SpikeLayer("b", 0, 1)], image_bytes=4, depth=2)
    with pytest.raises(ValueError, match="layer 'b': max_spikes must be a positive integer"):
        SpikeTally(res, [SpikeLayer("b", 1, 0)], image_bytes=4, depth=2)
    with pytest.raises(ValueError, match=r"up to 4,294,967,336 spikes per image do not fit the "
                                         r"32-bit spike count \(layer 'big' alone: "
                                         r"4,294,967,296\)"):
        SpikeTally(res, [one, SpikeLayer("big", 1, 2**32)], image_bytes=4, depth=2)
    with pytest.raises(ValueError, match="image_bytes must be a positive integer, not 0"):
        SpikeTally(res, [one], image_bytes=0, depth=2)
    with pytest.raises(ValueError, match="depth must be a positive integer of at most 64"):
        SpikeTally(res, [one], image_bytes=4, depth=65)
    with pytest.raises(ValueError, match="up to 4,294,967,336 spikes"):
        SpikeTally.figures([one, SpikeLayer("big", 1, 2**32)], image_bytes=4, depth=2)


def test_tally_depth():
    assert tally_depth(2425, 2221) == 4
    assert tally_depth(2221, 2221) == 3
    assert tally_depth(1, 2221) == 3


def test_tally_alone():
    """The tally by itself, with an emulated engine (its running count includes a word two
    clock edges after the word's transfer): counts per image across the count width's wrap
    (7 bits for up to 100 spikes; image 1 takes the running count past 128), results held
    until the counts are there, and the gate: with two images in flight the first byte of a
    third waits until a result leaves."""
    res = result_layout(8, 2)
    dut = SpikeTally(res, [SpikeLayer("a", 2, 100)], image_bytes=2, depth=2)
    words = [60, 40, 50, 45, 7, 0]  # spikes of each output word: images 100, 95, 7
    want = [words[0] + words[1], words[2] + words[3], words[4] + words[5]]
    got, admits = [], []

    async def engine(ctx):
        count = 0
        for cycle in range(len(words) + 2):  # one word a cycle, back to back
            ctx.set(dut.taken[0], cycle < len(words))
            await ctx.tick()
            if 1 <= cycle <= len(words):  # after edge c: the words taken up to edge c - 1
                count += words[cycle - 1]
                ctx.set(dut.counts[0], count)

    async def pixels(ctx):
        for _ in range(6):  # three images of two bytes; a byte transfers when admitted
            while True:
                ctx.set(dut.pixel_taken, 0)
                admit = ctx.get(dut.admit)
                admits.append(admit)
                if admit:
                    ctx.set(dut.pixel_taken, 1)
                    await ctx.tick()
                    break
                await ctx.tick()
        ctx.set(dut.pixel_taken, 0)

    async def results(ctx):
        await ctx.tick().repeat(40)  # the third image's first byte waits meanwhile
        assert not admits[-1] and len(admits) >= 5
        for k in range(3):
            ctx.set(dut.i.payload, {"cls": k, "logits": [k, -k]})
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.o.ready, 1)
            p, split = await ctx.tick().sample(dut.o.payload, dut.layer_spikes).until(
                dut.o.valid)
            got.append((int(p.cls), [int(v) for v in p.logits], int(p.spikes), int(split[0])))
        ctx.set(dut.i.valid, 0)

    run_simulation(dut, engine, pixels, results, max_cycles=500)
    assert got == [(k, [k, -k], want[k], want[k]) for k in range(3)]
    assert admits.count(0) > 10  # the gate held the third image back


def test_no_shared_fallback():
    """A board the layer-pipelined design does not fit falls back to the shared engine, which
    has no spike counters: with them asked for, the fit error stands."""
    with pytest.raises(BudgetError, match="resnet8 does not fit ice40-up5k"):
        run_flow(FlowConfig(model="resnet8", quiet=True, board="ice40-up5k",
                            spike_counts=True, stop_after="estimate"))


def test_generate_option(tmp_path, capsys):
    assert generate.main(["--model", "digits", "--spike-counts", "--quiet",
                          "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "spike counters: 1 layers, 4 images in flight" in out
    verilog = (tmp_path / "amos_digits.v").read_text()
    assert "output [31:0] layer_spikes;" in verilog
    assert generate.main(["--model", "digits", "--spike-counts", "--architecture", "shared",
                          "--quiet", "--out", str(tmp_path)]) == 2
    assert "the shared engine has no spike counters" in capsys.readouterr().err
