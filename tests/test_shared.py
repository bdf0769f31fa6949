"""Fast tier: the shared-engine architecture (amos_hw.shared), bit for bit against python_ref.

* the program and its word-memory layout, executed word by word (program.execute), equal
  python_ref.snn on ResNet8 and digits, and ResNet8 fits the UP5K's SPRAM;
* the engine in the Amaranth simulator equals python_ref.snn on digits, the two-block residual
  network (K = 4, 8 slots a word) and a K = 10 residual network whose channel groups straddle
  words (6 slots a word), with random idle cycles and backpressure, with its weights preloaded
  or loaded through the ``load`` port, with gated adds or multiplications in the lanes;
* the measured interval between results equals program.cycles exactly, and the engine's
  figures (amos_hw.shared.engine.cycles_per_image, memories) are the component's;
* the flow: --architecture shared, the UP5K fallback, and the messages.
"""
from __future__ import annotations

import json
import random

import numpy as np
import pytest

from amos_hw.flow import FlowConfig, FlowError, run_flow
from amos_hw.lib.sim import run_simulation, stream_get_many, stream_put_many
from amos_hw.lib.spiflash import SpiFlashModel
from amos_hw.shared import program as P
from amos_hw.shared.engine import SharedNetwork, cycles_per_image, memories
from amos_hw.zoo import resolve
from python_ref import ir, snn
from rtl_tests.network import layer_builders, tiny_resnet
from tests.test_top import pixel_beats, result_cycles


def straddle_net(path, seed=3):
    """A K = 10 residual network on 6x6x5 images: 12 and 20 channels (groups of 8 straddle
    words of 6 slots), an identity shortcut with lshift 2, a projection shortcut, stride 2,
    gap and an 11-class dense layer."""
    rng = np.random.default_rng(seed)
    A = {}
    conv, act = layer_builders(rng, A, "r10", 3000)

    n = [{"name": "input", "op": "input", "inputs": [], "shape": [6, 6, 5], "bits": 8},
         conv("stem", "input", 5, 12, 3, 1, 1), act("stem.act", "stem", 6),
         conv("c1", "stem.act", 12, 12, 3, 1, 1), act("a1", "c1", 9),
         conv("c2", "a1", 12, 12, 3, 1, 1),
         {"name": "add0", "op": "add", "inputs": ["c2", "stem.act"], "lshift": [0, 2]},
         act("a2", "add0", 9),
         conv("d1", "a2", 12, 20, 3, 2, 1), act("d1.act", "d1", 9),
         conv("d2", "d1.act", 20, 20, 3, 1, 1), conv("sc", "a2", 12, 20, 1, 2, 0),
         {"name": "add1", "op": "add", "inputs": ["d2", "sc"], "lshift": [0, 0]},
         act("a3", "add1", 10),
         {"name": "gap", "op": "gap", "inputs": ["a3"]}]
    A["fc.w"] = rng.integers(-127, 128, (11, 20))
    A["fc.b"] = rng.integers(-1000, 1000, 11)
    n.append({"name": "fc", "op": "dense", "inputs": ["gap"], "weight": "fc.w", "bias": "fc.b",
              "out_features": 11})
    g = ir.Graph("straddle", n, {"r10": {"kind": "relu", "K": 10}}, A, ["fc"])
    ir.save(g, path)
    return ir.load(path)


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    d = tmp_path_factory.mktemp("shared")
    tiny_resnet(d / "tiny")
    return {"digits": ir.load(resolve("digits")), "tiny": ir.load(d / "tiny"),
            "straddle": straddle_net(d / "straddle")}


def program_of(g):
    return P.layout(P.lower(g))


def images(g, n, seed=0):
    shape = tuple(g.nodes[0]["shape"])
    return np.random.default_rng(seed).integers(0, 256, (n, *shape))


def simulate(top, xs, *, idle=0.0, backpressure=0.0, seed=0, load_words=None,
             restarts=(0,)):
    got = []
    rng_in, rng_out = random.Random(seed), random.Random(seed + 1)

    async def producer(ctx):
        if load_words is not None:
            beats = []
            for a, w in enumerate(load_words):
                for b in range(8):
                    beats.append({"data": (int(w) >> (8 * b)) & 0xFF,
                                  "first": int(b == 0 and a in restarts)})
            await stream_put_many(ctx, top.load, beats, rng=rng_in, idle=idle)
        await stream_put_many(ctx, top.pixels, pixel_beats(xs), rng=rng_in, idle=idle)

    async def consumer(ctx):
        got.extend(await stream_get_many(ctx, top.result, len(xs), rng=rng_out,
                                         backpressure=backpressure))

    run_simulation(top, producer, consumer, max_cycles=2_000_000)
    return (np.array([[int(v) for v in r.logits] for r in got], np.int64),
            np.array([int(r.cls) for r in got], np.int64))


# ----------------------------------------------------------------------------- program

def test_resnet8_program_fits_spram_and_executes_exactly():
    g = ir.load(resolve("resnet8"))
    p = P.layout(P.lower(g), max_depth=16384)
    assert p.weight_words == 9718  # 77,744 int8 weights (fc padded to 16 outputs) / 8 lanes
    assert p.depth == 15862
    # a residual block's output overwrites its identity skip input
    assert p.maps["block0.act2"][0] == p.maps["stem.act"][0]
    xs = images(g, 2, seed=5)
    ref = snn.run(g, xs).logits
    for k in range(2):
        np.testing.assert_array_equal(P.execute(p, xs[k]), ref[k])


def test_layout_overflow_names_the_budget():
    g = ir.load(resolve("resnet8"))
    with pytest.raises(P.ProgramError, match=r"15862 words .* more than the 15000 available "
                                             r"\(over by 862\)"):
        P.layout(P.lower(g), max_depth=15000)


def test_unsupported_patterns_name_the_layer(nets):
    g = nets["tiny"].copy()
    g.nodes = [n for n in g.nodes if n["name"] != "fc"]
    g.outputs = ["gap"]
    with pytest.raises(P.ProgramError, match="layer 'gap': the logits must come from a conv or "
                                             "dense layer, not 'gap'"):
        P.lower(g)
    g = nets["tiny"].copy()
    for n in g.nodes:
        if n["name"] == "b1.add":  # the projection shortcut shifted: no instruction adds that
            n["lshift"] = [0, 1]
    with pytest.raises(P.ProgramError, match=r"layer 'b1.add': a convolution input \('b1.sc'\) "
                                             r"shifted left by 1"):
        P.lower(g)
    g = nets["tiny"].copy()
    for n in g.nodes:
        if n["name"] == "b0.add":  # the main convolution shifted: the pipelined add engine
            n["lshift"] = [1, 3]       # has main_shift, the shared engine no instruction
    with pytest.raises(P.ProgramError, match=r"layer 'b0.add': a convolution input \('b0.c2'\) "
                                             r"shifted left by 1 has no shared-engine"):
        P.lower(g)


@pytest.mark.parametrize("name", ["digits", "tiny", "straddle"])
def test_execute_equals_reference(nets, name):
    g = nets[name]
    p = program_of(g)
    xs = images(g, 3, seed=1)
    ref = snn.run(g, xs).logits
    for k in range(3):
        np.testing.assert_array_equal(P.execute(p, xs[k]), ref[k])


def test_run_cycles_model_hides_fetches():
    # six-slot words: one beat per slot, plus the fill and drain of the pipeline
    assert P.run_cycles((6, 6, 6)) == 18 + 4
    # one-slot words are fetched one a cycle: the FIFO of three keeps the lanes busy
    assert P.run_cycles((1,) * 10) == 10 + 4
    # a tap outside the map costs a cycle only when nothing is queued behind it
    assert P.run_cycles((0, 1)) == P.run_cycles((1,)) + 1
    assert P.run_cycles((6, 0, 6)) == P.run_cycles((6, 6))


# ----------------------------------------------------------------------------- engine

@pytest.mark.parametrize("name", ["digits", "tiny", "straddle"])
def test_engine_bit_exact_with_stalls(nets, name):
    g = nets[name]
    xs = images(g, 3, seed=2)
    logits, cls = simulate(SharedNetwork(program_of(g)), xs, idle=0.3, backpressure=0.3)
    ref = snn.run(g, xs)
    np.testing.assert_array_equal(logits, ref.logits)
    np.testing.assert_array_equal(cls, ref.classes)


@pytest.mark.parametrize("name", ["digits", "tiny", "straddle"])
def test_engine_cycles_equal_model(nets, name):
    p = program_of(nets[name])
    net = SharedNetwork(p)
    # the component's figures are the module's functions of the program
    assert net.cycles_per_image == net.latency_cycles == cycles_per_image(p) == P.cycles(p)
    assert net.memories == memories(p)
    outs = result_cycles(net, images(nets[name], 3), max_cycles=2_000_000)
    assert np.diff(outs).tolist() == [P.cycles(p)] * 2


def test_weights_through_the_load_port_and_dsp_lanes(nets):
    """No initial contents (as on SPRAM): the weights arrive through ``load``; the lanes
    multiply (the iCE40 build's DSP form). A first load of garbage is restarted by ``first``."""
    g = nets["straddle"]
    p = program_of(g)
    xs = images(g, 2, seed=4)
    words = [int(w) for w in p.image.tolist()]
    garbage = [0x0123456789ABCDEF] * 5
    logits, _ = simulate(SharedNetwork(p, preload=False, dsp_lanes=True), xs,
                         load_words=garbage + words, restarts=(0, len(garbage)), idle=0.2)
    np.testing.assert_array_equal(logits, snn.run(g, xs).logits)


def test_engine_without_weights_differs(nets):
    """The load test can fail: with nothing loaded the logits are not the reference's."""
    g = nets["straddle"]
    p = program_of(g)
    xs = images(g, 1, seed=4)
    logits, _ = simulate(SharedNetwork(p, preload=False), xs)
    assert not np.array_equal(logits, snn.run(g, xs).logits)


# ----------------------------------------------------------------------------- flow

def test_flow_shared_report_and_fallback():
    """--board ice40-up5k falls back to the shared engine when the pipelined ResNet8 does not
    fit, and says why; digits fits pipelined and keeps it."""
    ctx = run_flow(FlowConfig(model="resnet8", board="ice40-up5k", stop_after="estimate",
                              quiet=True))
    r = ctx.report
    assert r["architecture"] == "shared" and r["board"]["fits"]
    assert r["architecture_why"].startswith("the layer-pipelined design does not fit: resnet8 "
                                            "does not fit ice40-up5k even fully folded")
    assert r["cycles_per_image"] == P.cycles(ctx.program)
    assert r["memory_words"] == 15862 and r["est_dsp"] == 0
    assert r["images_per_s"] == pytest.approx(24e6 / r["cycles_per_image"], rel=1e-4)
    ctx = run_flow(FlowConfig(model="digits", board="ice40-up5k", stop_after="estimate",
                              quiet=True))
    assert ctx.report.get("architecture", "pipelined") == "pipelined"


def test_flow_shared_budget_message():
    from amos_hw.flow import BudgetError

    with pytest.raises(BudgetError, match=r"resnet8 does not fit ice40-up5k \(shared engine\): "
                                          r"needs about \d+ LUT4, budget 2640 \(50% of 5280\)"):
        run_flow(FlowConfig(model="resnet8", board="ice40-up5k", architecture="shared",
                            lut_fill=0.5, stop_after="estimate", quiet=True))


def test_flow_shared_writes_files(tmp_path):
    ctx = run_flow(FlowConfig(model="digits", architecture="shared", out=tmp_path, write=True,
                              quiet=True))
    rep = json.loads((tmp_path / "report.json").read_text())
    assert rep["architecture"] == "shared" and rep["cycles_per_image"] == 878
    man = json.loads((tmp_path / "manifest.json").read_text())
    assert man["config"]["architecture"] == "shared"
    assert man["shared_program"]["depth"] == ctx.program.depth
    assert "module amos_digits" in (tmp_path / "amos_digits.v").read_text()


def test_flow_shared_messages():
    with pytest.raises(FlowError, match="--parallelism folds the layer-pipelined engines"):
        run_flow(FlowConfig(model="digits", architecture="shared", parallelism="{}",
                            quiet=True))
    with pytest.raises(FlowError, match="--architecture: unknown 'wide'"):
        run_flow(FlowConfig(model="digits", architecture="wide", quiet=True))
    with pytest.raises(FlowError, match="below --target-fps 100000"):
        run_flow(FlowConfig(model="resnet8", architecture="shared", target_fps=1e5,
                            quiet=True))


# ----------------------------------------------------------------------------- flash weights

def simulate_flash(top, xs, flash, *, idle=0.0, backpressure=0.0, seed=0):
    """Like :func:`simulate`, with ``flash`` (a :class:`SpiFlashModel`) on the engine's flash
    pins; returns logits, classes and the cycle of every result beat."""
    got, outs = [], []
    rng_in, rng_out = random.Random(seed), random.Random(seed + 1)
    done = []

    async def producer(ctx):
        await stream_put_many(ctx, top.pixels, pixel_beats(xs), rng=rng_in, idle=idle)

    async def consumer(ctx):
        got.extend(await stream_get_many(ctx, top.result, len(xs), rng=rng_out,
                                         backpressure=backpressure))
        done.append(True)

    async def pins(ctx):
        cycle = 0
        async for _, _, valid, ready in ctx.tick().sample(top.result.valid, top.result.ready):
            if valid and ready:
                outs.append(cycle)
            ctx.set(top.flash.cipo, flash.step(ctx.get(top.flash.cs_n), ctx.get(top.flash.sck),
                                               ctx.get(top.flash.copi)))
            cycle += 1

    run_simulation(top, producer, consumer, background=[pins], max_cycles=3_000_000)
    return (np.array([[int(v) for v in r.logits] for r in got], np.int64),
            np.array([int(r.cls) for r in got], np.int64), outs)


def flash_image(p, offset):
    return b"\xff" * offset + p.weight_bytes() + b"\xff" * 64


@pytest.mark.parametrize("depth,div", [(2, 1)])
def test_engine_with_flash_weights_bit_exact_and_cycles_equal_model(nets, depth, div):
    """The weights come from a modelled SPI flash, one FAST READ per image; the reader runs
    at most ``depth`` words ahead, so the engine waits for the flash: the results stay exact
    and the interval is the model's."""
    g = nets["tiny"]
    p = P.layout(P.lower(g), weights="stream")
    top = SharedNetwork(p, weights="flash", flash_offset=0x123, flash_depth=depth, flash_div=div)
    flash = SpiFlashModel(flash_image(p, 0x123))
    xs = images(g, 3, seed=6)
    logits, cls, outs = simulate_flash(top, xs, flash)
    ref = snn.run(g, xs)
    np.testing.assert_array_equal(logits, ref.logits)
    np.testing.assert_array_equal(cls, ref.classes)
    assert flash.errors == []
    assert flash.reads == [0x123] * 3
    assert flash.bits_out == 3 * p.weight_words * 64
    model = P.cycles(p, stream=top.stream_timing)
    assert top.cycles_per_image == model == cycles_per_image(p, flash_div=div, flash_depth=depth)
    assert top.memories == memories(p, flash_depth=depth)
    assert np.diff(outs).tolist() == [model] * 2
    # the flash is the bottleneck here: slower than the same engine with its weights in memory
    assert model > P.cycles(P.layout(P.lower(g)))


@pytest.mark.slow
@pytest.mark.parametrize("depth,div", [(512, 1), (3, 2)])
def test_engine_with_flash_weights_straddle(nets, depth, div):
    g = nets["straddle"]
    p = P.layout(P.lower(g), weights="stream")
    top = SharedNetwork(p, weights="flash", flash_offset=64, flash_depth=depth, flash_div=div)
    flash = SpiFlashModel(flash_image(p, 64))
    xs = images(g, 3, seed=2)
    logits, _, outs = simulate_flash(top, xs, flash, idle=0.2, backpressure=0.2)
    np.testing.assert_array_equal(logits, snn.run(g, xs).logits)
    assert flash.errors == []


def test_engine_with_a_wrong_flash_image_differs(nets):
    """The flash test can fail: weights read from the wrong offset give other logits."""
    g = nets["tiny"]
    p = P.layout(P.lower(g), weights="stream")
    top = SharedNetwork(p, weights="flash", flash_offset=8)
    xs = images(g, 1, seed=6)
    logits, _, _ = simulate_flash(top, xs, SpiFlashModel(flash_image(p, 0)))
    assert not np.array_equal(logits, snn.run(g, xs).logits)


def test_stream_layout_puts_maps_at_zero_and_executes(nets):
    g = nets["straddle"]
    pm, ps = P.layout(P.lower(g)), P.layout(P.lower(g), weights="stream")
    assert ps.weights == "stream" and ps.weight_words == pm.weight_words
    assert ps.depth == pm.depth - pm.weight_words
    assert min(b for b, _, _ in ps.maps.values()) == 0
    np.testing.assert_array_equal(ps.image, pm.image)
    xs = images(g, 2, seed=3)
    ref = snn.run(g, xs).logits
    for k in range(2):
        np.testing.assert_array_equal(P.execute(ps, xs[k]), ref[k])
    # without a stream the two layouts take the same cycles
    assert P.cycles(ps) == P.cycles(pm)


def test_resnet8_maps_alone_fit_the_25f():
    g = ir.load(resolve("resnet8"))
    p = P.layout(P.lower(g), weights="stream")
    assert p.depth == 15862 - 9718  # 6,144 words of maps: 24 DP16KD at 64 bits
    with pytest.raises(P.ProgramError, match=r"the live activation maps need 6144 words"):
        P.layout(P.lower(g), weights="stream", max_depth=6000)


def test_flash_engine_arguments_are_checked(nets):
    g = nets["tiny"]
    pm, ps = P.layout(P.lower(g)), P.layout(P.lower(g), weights="stream")
    with pytest.raises(ValueError, match="weights='flash' needs a program laid out with "
                                         "weights='stream'"):
        SharedNetwork(pm, weights="flash")
    with pytest.raises(ValueError, match="weights='memory' needs a program laid out"):
        SharedNetwork(ps)
    with pytest.raises(ValueError, match="weights must be 'memory' or 'flash', not 'sd'"):
        SharedNetwork(ps, weights="sd")
    with pytest.raises(ValueError, match="pass the 16 MiB"):
        SharedNetwork(ps, weights="flash", flash_offset=0xFFFFF0)
    with pytest.raises(ValueError, match="StreamTiming.depth must be a positive integer"):
        P.StreamTiming(depth=0)
    with pytest.raises(ValueError, match="weights must be 'memory' or 'stream'"):
        P.layout(P.lower(g), weights="flash")


def test_flow_flash_weights_writes_the_flash_image(tmp_path):
    ctx = run_flow(FlowConfig(model="resnet8", architecture="shared", weights="flash",
                              board="ecp5-25f", out=tmp_path, write=True, quiet=True))
    r = json.loads((tmp_path / "report.json").read_text())
    assert r["weights"] == "flash" and r["flash_bytes"] == 77744
    assert r["memory_words"] == 6144
    assert r["cycles_per_image"] == ctx.top.cycles_per_image > P.cycles(ctx.program)
    assert (tmp_path / "weights.bin").read_bytes() == ctx.program.weight_bytes()
    man = json.loads((tmp_path / "manifest.json").read_text())
    assert man["config"]["weights"] == "flash" and "weights.bin" in man["files"]
    # the Verilog carries no weights: it is far smaller than the preloaded engine's
    v = (tmp_path / "amos_resnet8.v").read_text()
    assert "USRMCLK" not in v  # the board top adds the clock primitive, not the generator


def test_flow_flash_weights_messages():
    with pytest.raises(FlowError, match="--weights flash streams the weights into the shared "
                                        "engine: add --architecture shared"):
        run_flow(FlowConfig(model="digits", weights="flash", stop_after="infer", quiet=True))
    with pytest.raises(FlowError, match=r"--weights: unknown 'sdram'; known: memory, flash"):
        run_flow(FlowConfig(model="digits", weights="sdram", architecture="shared",
                            stop_after="infer", quiet=True))
