# amaranth: UnusedElaboratable=no
"""Fast tier: the windowed ops (maxpool, avgpool, depthwise conv) through the generator: the
plan's layers and widths, cycles equal to the engines', the errors that name the layer, the
report, and a small network (conv -> amos -> maxpool -> depthwise conv -> amos -> avgpool ->
dense, ``rtl_tests/pool_network.py``) in the Amaranth simulator, logits and class equal to
python_ref.snn and result intervals equal to the report's cycles per image."""
from __future__ import annotations

import random

import numpy as np
import pytest

from amos_hw import cost, folding
from amos_hw.flow import build_network, run_flow
from amos_hw.layer_engines import engine_figures
from amos_hw.lib.sim import run_simulation, stream_get_many, stream_put_many
from amos_hw.passes.common import FlowConfig, FlowError
from amos_hw.plan import AvgPoolLayer, DepthwiseLayer, MaxPoolLayer, lower
from python_ref import ir, snn
from rtl_tests.pool_network import CPD_FOLDINGS, POOL_FOLDINGS, conv_pool_dense, pool_network

#: A second shape of the network: 3x3 windows with padding and stride 2 everywhere but the
#: average pool (3x3, stride 1, padding 1).
STRIDED = {"pool1": (3, 2, 1), "dw": (3, 2, 1), "pool2": (3, 1, 1)}


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    path = tmp_path_factory.mktemp("pool") / "pool_net"
    g = pool_network(path)
    x = np.random.default_rng(1).integers(0, 256, (3, 8, 8, 3)).astype(np.uint8)
    return path.with_suffix(".json"), g, x


def _beats(images):
    out = []
    for img in images:
        flat = np.asarray(img).ravel()
        out += [{"data": int(v), "first": int(k == 0), "last": int(k == flat.size - 1)}
                for k, v in enumerate(flat)]
    return out


def simulate(top, images, *, idle, backpressure, seed):
    got = []
    rng_in, rng_out = random.Random(seed), random.Random(seed + 1)

    async def producer(ctx):
        await stream_put_many(ctx, top.pixels, _beats(images), rng=rng_in, idle=idle)

    async def consumer(ctx):
        got.extend(await stream_get_many(ctx, top.result, len(images), rng=rng_out,
                                         backpressure=backpressure))

    run_simulation(top, producer, consumer, max_cycles=200_000)
    return (np.array([[int(v) for v in r.logits] for r in got], np.int64),
            np.array([int(r.cls) for r in got], np.int64))


def result_cycles(top, images):
    """Cycle of every result beat, the pixels always offered and the result always taken."""
    beats, outs = _beats(images), []

    async def tb(ctx):
        ctx.set(top.result.ready, 1)
        n = cycle = 0
        while len(outs) < len(images):
            ctx.set(top.pixels.valid, n < len(beats))
            if n < len(beats):
                ctx.set(top.pixels.payload, beats[n])
            _, _, iv, ir_, ov = await ctx.tick().sample(top.pixels.valid, top.pixels.ready,
                                                        top.result.valid)
            n += bool(iv and ir_)
            if ov:
                outs.append(cycle)
            cycle += 1

    run_simulation(top, tb, max_cycles=200_000)
    return outs


def test_plan_layers_and_widths(net):
    _, g, _ = net
    plan = lower(g)
    kinds = {lay.name: lay for lay in plan.layers}
    assert [lay.kind for lay in plan.layers] == ["conv", "maxpool", "dwconv", "avgpool",
                                                 "dense"]
    pool1, dw, pool2, fc = kinds["pool1"], kinds["dw.act"], kinds["pool2"], kinds["fc"]
    assert isinstance(pool1, MaxPoolLayer) and (pool1.out_bits, pool1.out_width) == (4, 4)
    assert isinstance(dw, DepthwiseLayer) and dw.ir_nodes == ["dw", "dw.act"]
    assert (dw.in_bits, dw.out_bits, dw.shift, dw.channels) == (4, 4, 8, 4)
    assert isinstance(pool2, AvgPoolLayer) and pool2.out_bits is None
    assert pool2.out_width == 4 + 2 == ir.activation_bits(g, "pool2")
    assert fc.in_bits == 6 and fc.inputs == ["pool2"]
    d = pool2.as_dict()
    assert (d["kernel"], d["stride"], d["padding"], d["in_bits"]) == (2, 2, 0, 4)


def _residual(g, main_dw: bool):
    """``pool1`` forks into a raw 3x3 conv ``c2`` (the main path; behind the depthwise conv
    and its ReLU when ``main_dw``) and a raw depthwise conv ``dw`` or ``pool1`` itself (the
    skip), added and followed by a ReLU."""
    rng = np.random.default_rng(5)
    arrays = {**g.arrays, "c2.w": rng.integers(-127, 128, (4, 3, 3, 4))}
    keep = ("input", "stem", "stem.act", "pool1", "dw") + (("dw.act",) if main_dw else ())
    nodes = [n for n in g.nodes if n["name"] in keep]
    nodes += [{"name": "c2", "op": "conv", "inputs": ["dw.act" if main_dw else "pool1"],
               "weight": "c2.w", "kernel": 3, "stride": 1, "padding": 1, "out_channels": 4},
              {"name": "sum", "op": "add", "inputs": ["c2", "pool1" if main_dw else "dw"],
               "lshift": [0, 2]},
              {"name": "sum.act", "op": "amos", "inputs": ["sum"], "unit": "r",
               "rshift": [8]}]
    return ir.Graph("residual", nodes, g.units, arrays, ["sum.act"])


def test_raw_depthwise_layer(tmp_path):
    """A depthwise conv feeding an add is raw (signed accumulators, shift 0) in the plan, as a
    conv; the layer-pipelined design refuses it, naming it."""
    g = _residual(pool_network(), main_dw=False)
    plan = lower(g)
    lay = plan.layer("dw")
    assert isinstance(lay, DepthwiseLayer)
    assert (lay.out_bits, lay.shift, lay.out_signed) == (None, 0, True)
    assert lay.out_width == engine_figures(lay, g.arrays).out_width
    assert plan.layer("sum.act").skip_signed
    assert _flow_error(tmp_path, g) == (
        "layer 'dw': a depthwise conv with raw outputs (feeding an add) has no "
        "layer-pipelined form; follow it by a ReLU amos op")


def test_window_op_on_a_residual_main_path_is_bit_exact(tmp_path):
    """A depthwise conv and its ReLU on a residual block's main path (MobileNetV2's shape):
    the skip FIFO counts the window op's line buffer; logits, classes under random stalls and
    the result interval equal python_ref and the cycle model."""
    g = _residual(pool_network(), main_dw=True)
    rng = np.random.default_rng(6)
    g.arrays.update({"head.w": rng.integers(-127, 128, (5, 4)), "head.b": rng.integers(-99, 99, 5)})
    g.nodes += [{"name": "gap", "op": "gap", "inputs": ["sum.act"]},
                {"name": "head", "op": "dense", "inputs": ["gap"], "weight": "head.w",
                 "bias": "head.b", "out_features": 5}]
    g.outputs = ["head"]
    path = tmp_path / "residual"
    ir.save(g, path)
    x = np.random.default_rng(4).integers(0, 256, (3, 8, 8, 3)).astype(np.uint8)
    top = build_network(path.with_suffix(".json"))
    ref = snn.run(g, x)
    assert len(set(ref.logits.ravel().tolist())) > 1
    logits, _ = simulate(top, x, idle=0.2, backpressure=0.3, seed=7)
    assert (logits == ref.logits.reshape(len(x), -1)).all()
    outs = result_cycles(top, x)
    assert outs[2] - outs[1] == top.cycles_per_image


@pytest.mark.parametrize("shape", [{}, STRIDED])
def test_layer_cycles_equal_the_engines_at_every_folding(shape):
    g = pool_network(**shape)
    plan = lower(g)
    for lay in plan.layers:
        if not isinstance(lay, (MaxPoolLayer, AvgPoolLayer, DepthwiseLayer)):
            continue
        opts = folding.options(lay, plan)
        assert [o["lanes"] for o in opts] == [1, 2, 4]
        for o in opts:
            lay.fold(o, cost.layer_cycles(lay, o))
            assert engine_figures(lay, g.arrays).cycles == lay.cycles


def test_report_lists_the_layers(net):
    path, _, _ = net
    ctx = run_flow(FlowConfig(model=str(path), stop_after="estimate", write=False, quiet=True,
                              parallelism=POOL_FOLDINGS[1]))
    rep = ctx.report
    rows = {r["name"]: r for r in rep["layers"]}
    assert [rows[n]["kind"] for n in ("pool1", "dw.act", "pool2")] == ["maxpool", "dwconv",
                                                                      "avgpool"]
    assert rows["pool1"]["lanes"] == 2 and rows["dw.act"]["lanes"] == 4
    assert all(rows[n]["est_lut4"] > 0 and rows[n]["est_bram_bits"] > 0
               for n in ("pool1", "dw.act", "pool2"))
    assert rep["cycles_per_image"] == max(r["cycles_per_image"] for r in rep["layers"])
    # the dense layer reads the average pool's map through an image buffer: two banks of its
    # 16 / simd = 8 words of 2 x 6 bits, counted with it
    fc = ctx.plan.layer("fc")
    assert rows["fc"]["est_bram_bits"] == engine_figures(fc, ctx.graph.arrays).memory_bits + (
        2 * 8 * 12)


def test_target_fps_folds_the_window_layers(tmp_path):
    """8 channels and a target of 576 cycles (the stem's fastest): the depthwise conv needs 2
    lanes (1,152 cycles at 1), the max pool none (512)."""
    pool_network(tmp_path / "wide", channels=8)
    ctx = run_flow(FlowConfig(model=str(tmp_path / "wide.json"), stop_after="parallelism",
                              write=False, quiet=True, target_fps=50e6 / 576.5))
    lanes = {lay.name: lay.lanes for lay in ctx.plan.layers if hasattr(lay, "lanes")}
    assert (lanes["pool1"], lanes["dw.act"]) == (1, 2)
    cycles = {lay.name: lay.cycles for lay in ctx.plan.layers}
    assert (cycles["pool1"], cycles["dw.act"], max(cycles.values())) == (512, 576, 576)


def _flow_error(tmp_path, g, **cfg):
    ir.save(g, tmp_path / "m")
    with pytest.raises(FlowError) as e:
        run_flow(FlowConfig(model=str(tmp_path / "m.json"), stop_after="estimate", write=False,
                            quiet=True, **cfg))
    return str(e.value)


def test_shared_architecture_names_the_layer(tmp_path):
    msg = _flow_error(tmp_path, pool_network(), architecture="shared")
    assert "layer 'pool1': op 'maxpool' has no shared-engine instruction" in msg


def test_no_architecture_fits_says_why_for_each(tmp_path):
    """On the iCE40 UP5K a design that does not fit falls back to the shared engine; when that
    cannot build it either, the error gives both reasons."""
    msg = _flow_error(tmp_path, pool_network(size=32, channels=32), board="ice40-up5k")
    assert msg.startswith("the layer-pipelined design does not fit: pool_net does not fit "
                          "ice40-up5k even fully folded: ")
    assert msg.endswith("; and the shared engine cannot build it: model 'pool_net' (shared "
                        "engine): layer 'pool1': op 'maxpool' has no shared-engine instruction "
                        "(the layer-pipelined architecture builds it)")


def test_unsupported_stride_names_the_layer(tmp_path):
    msg = _flow_error(tmp_path, pool_network(size=9, pool1=(3, 3, 0)))
    assert msg == ("layer 'pool1': stride 3 is not supported by the maxpool engine "
                   "(supported: 1, 2)")


def test_too_wide_sums_name_the_layer(tmp_path):
    """Sums of sums of 8-bit pixels: five 3x3 average pools make 8 + 5 * 4 = 28-bit sums (each
    window sum of nine values adds 4 bits), more than the engines take, and the pool after
    them is refused."""
    nodes = [pool_network().nodes[0]]
    for k, kk in enumerate((3, 3, 3, 3, 3, 2)):
        nodes.append({"name": f"p{k}", "op": "avgpool", "inputs": [nodes[-1]["name"]],
                      "kernel": kk, "stride": 1, "padding": kk // 2})
    msg = _flow_error(tmp_path, ir.Graph("wide", nodes, {}, {}, ["p5"]))
    assert msg == "layer 'p5': its input is 28 bits wide, more than the engines' 24"


def test_bad_lanes_name_the_layer(tmp_path):
    msg = _flow_error(tmp_path, pool_network(), parallelism={"pool1": {"lanes": 3}})
    assert msg == "layer 'pool1': lanes must divide the 4 channels, not 3"
    msg = _flow_error(tmp_path, pool_network(), parallelism={"dw": {"pe": 2}})
    assert msg == "--parallelism: layer 'dw' (dwconv) takes lanes, not {'pe': 2}"


@pytest.mark.parametrize("k", range(len(POOL_FOLDINGS)))
def test_network_bit_exact(net, k):
    """Random idle input cycles and backpressure: logits and class == python_ref.snn."""
    path, g, x = net
    top = build_network(path, parallelism=POOL_FOLDINGS[k])
    ref = snn.run(g, x)
    assert len(set(ref.logits[:, 0])) > 1
    logits, cls = simulate(top, x[:2] if k == 0 else x, idle=0.2, backpressure=0.3, seed=k)
    assert (logits == ref.logits[:len(logits)]).all()
    assert (cls == ref.classes[:len(cls)]).all()


def test_strided_network_bit_exact_and_cycles(tmp_path):
    g = pool_network(tmp_path / "strided", seed=3, **STRIDED)
    x = np.random.default_rng(2).integers(0, 256, (3, 8, 8, 3)).astype(np.uint8)
    par = {"stem.act": {"pe": 4, "simd": 3}, "pool1": {"lanes": 2}, "dw.act": {"lanes": 2},
           "pool2": {"lanes": 4}, "fc": {"pe": 1, "simd": 4}}
    top = build_network(tmp_path / "strided.json", parallelism=par)
    ref = snn.run(g, x)
    logits, cls = simulate(top, x, idle=0.2, backpressure=0.3, seed=5)
    assert (logits == ref.logits).all() and (cls == ref.classes).all()
    outs = result_cycles(top, x)
    assert outs[2] - outs[1] == top.cycles_per_image


@pytest.mark.parametrize("k", [1, 2])
def test_network_cycles_per_image(net, k):
    path, _, x = net
    top = build_network(path, parallelism=POOL_FOLDINGS[k])
    outs = result_cycles(top, x)
    assert outs[2] - outs[1] == top.cycles_per_image


@pytest.mark.parametrize("par", CPD_FOLDINGS, ids=["dense-bound", "conv-bound"])
def test_dense_after_a_map_is_exact(tmp_path, par):
    """A dense layer fed by a map reads it through an image buffer: bit-exact, and the result
    intervals equal the report whichever layer is the slowest (without the buffer the first
    fold waited on the whole upstream pipeline: 29,265 cycles measured against 20,480 reported
    on a VGG)."""
    g = conv_pool_dense(tmp_path / "cpd")
    x = np.random.default_rng(4).integers(0, 256, (3, 8, 8, 3)).astype(np.uint8)
    top = build_network(tmp_path / "cpd.json", parallelism=par)
    plan = lower(g)
    assert plan.image_buffered(plan.layer("fc")) and not plan.image_buffered(plan.layer("c.act"))
    ref = snn.run(g, x)
    logits, cls = simulate(top, x, idle=0.2, backpressure=0.3, seed=2)
    assert (logits == ref.logits).all() and (cls == ref.classes).all()
    outs = result_cycles(top, x)
    slowest = max(top.plan.layers, key=lambda lay: lay.cycles)
    assert outs[2] - outs[1] == top.cycles_per_image == slowest.cycles
    assert slowest.name == ("fc" if "m" in par else "c.act")

