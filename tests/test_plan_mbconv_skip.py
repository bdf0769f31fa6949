# amaranth: UnusedElaboratable=no
"""Fast tier: a true MBConv block through the generator (issue 16): the linear 1x1 projection
through the signed identity unit, and the identity skip ``sum = add(proj, x)`` with ``x`` a
trained unit's two's-complement words, the add raw (``v = requant_shift(sum, S)``) before the
identity unit (``rtl_tests/mbconv_network.py``, ``linear=True`` / ``skip=True``; ``se=True``:
with squeeze-and-excitation between the depthwise swish and the projection). The plan's
layers and widths, each layer's cycles equal to its engine's, the raw add engine on signed
skip words against python_ref, the networks in the Amaranth simulator (logits and class equal
to python_ref.snn under random stalls, the measured result interval equal to the report's
cycles per image), and the descriptions the plan refuses, named."""
from __future__ import annotations

import random

import numpy as np
import pytest

from amos_hw import cost, folding
from amos_hw.flow import build_network
from amos_hw.layer_engines import engine_figures
from amos_hw.lib.sim import run_simulation, stream_get_many, stream_put_many
from amos_hw.plan import AddLayer, PlanError, UnitLayer, lower
from python_ref import ir, snn
from python_ref.quant import IntAmosUnit, requant_shift
from rtl_tests.mbconv_network import LINEAR_FOLDINGS, SE_FOLDINGS, SKIP_FOLDINGS, mbconv_network
from tests.test_engines_pool_add import add_reference, add_stimulus, from_words, make_add, to_words
from tests.test_plan_pool import result_cycles, simulate

FOLDINGS = {"skip": SKIP_FOLDINGS, "linear": LINEAR_FOLDINGS, "se": SE_FOLDINGS}


def _net(variant: str) -> ir.Graph:
    return mbconv_network(**{variant: True})


def _width(lo: int, hi: int) -> int:
    """The fewest two's-complement bits that hold ``lo..hi`` (counted up, not computed)."""
    w = 1
    while not (-(2 ** (w - 1)) <= lo and hi <= 2 ** (w - 1) - 1):
        w += 1
    return w


def _round_shift(v: int, s: int) -> int:
    """``(v + 2**(s-1)) >> s`` on a Python int (floor shift), ``v`` for ``s = 0``."""
    return (v + (1 << (s - 1))) >> s if s else v


def test_plan_of_the_skip_block():
    g = _net("skip")
    plan = lower(g)
    assert [lay.kind for lay in plan.layers] == ["conv", "unit", "conv", "unit", "dwconv",
                                                 "unit", "conv", "add", "unit", "conv", "gap",
                                                 "dense"]
    lays = plan.by_name()
    x, proj, add, ident, head = (lays[n] for n in ("stem.act", "proj", "sum", "sum.act",
                                                   "head.act"))
    assert isinstance(add, AddLayer) and isinstance(ident, UnitLayer)
    # the projection feeds the add only: raw, unshifted
    assert (proj.out_bits, proj.shift, proj.out_signed) == (None, 0, True)
    # x: the stem swish's 8-bit two's-complement words, read as the signed skip
    assert (x.out_width, x.out_signed) == (8, True)
    lshift = g.node["sum"]["lshift"][1]
    S = g.node["sum.act"]["rshift"][0]
    assert lshift > 0 and S > 0  # the test network exercises both shifts
    assert (add.name, add.ir_nodes, add.inputs, add.main_index) == ("sum", ["sum"],
                                                                   ["proj", "stem.act"], 0)
    assert (add.skip_bits, add.skip_signed, add.skip_shift, add.main_width) == (
        8, True, lshift, proj.out_width)
    # raw: v = requant_shift(main + (x << lshift), S), S the identity unit's rshift
    assert (add.out_bits, add.out_signed, add.shift) == (None, True, S)
    lo = -(2 ** (proj.out_width - 1)) + (-(2**7) << lshift)
    hi = 2 ** (proj.out_width - 1) - 1 + ((2**7 - 1) << lshift)
    assert add.out_width == _width(_round_shift(lo, S), _round_shift(hi, S))
    # the identity unit reads v and emits K = 6 bit two's-complement words to the head conv
    assert (ident.inputs, ident.in_width, ident.K, ident.out_width) == (["sum"], add.out_width,
                                                                        6, 6)
    assert (head.inputs, head.in_bits, head.in_signed, head.out_bits) == (["sum.act"], 6, True,
                                                                          4)
    d = add.as_dict()
    assert (d["name"], d["out_bits"], d["skip_signed"], d["shift"]) == ("sum", None, True, S)


def test_plan_of_the_linear_projection():
    g = _net("linear")
    plan = lower(g)
    assert [lay.kind for lay in plan.layers] == ["conv", "conv", "unit", "dwconv", "unit",
                                                 "conv", "unit", "conv", "gap", "dense"]
    proj, ident, head = (plan.layer(n) for n in ("proj", "proj.act", "head.act"))
    S = g.node["proj.act"]["rshift"][0]
    assert S > 0
    assert (proj.out_bits, proj.shift, proj.in_bits, proj.in_signed) == (None, S, 8, True)
    assert (ident.inputs, ident.in_width, ident.K, ident.out_width) == (["proj"],
                                                                        proj.out_width, 6, 6)
    assert (head.in_bits, head.in_signed) == (6, True)


def test_identity_unit_values_span_it():
    """The calibration makes the add's values use the identity unit (some clamped in the
    linear network, none out of the add's port)."""
    x = np.random.default_rng(3).integers(0, 256, (4, 8, 8, 3))
    g = _net("skip")
    tr = snn.run(g, x, trace=["sum", "sum.act"]).traces
    v = requant_shift(tr["sum"], g.node["sum.act"]["rshift"][0])
    w = lower(g).layer("sum").out_width
    assert -(2 ** (w - 1)) <= v.min() and v.max() <= 2 ** (w - 1) - 1
    assert tr["sum.act"].min() < -4 and tr["sum.act"].max() > 8
    y = snn.run(_net("linear"), x, trace=["proj.act"]).traces["proj.act"]
    assert y.min() == -32 and y.max() == 31  # K = 6 saturates both ways


@pytest.mark.parametrize("variant", FOLDINGS)
def test_layer_cycles_equal_the_engines_at_every_folding(variant):
    g = _net(variant)
    plan = lower(g)
    seen = 0
    for lay in plan.layers:
        for o in folding.options(lay, plan)[:6]:
            lay.fold(o, cost.layer_cycles(lay, o))
            if isinstance(lay, AddLayer):
                lay.skip_depth = 64
            fig = engine_figures(lay, g.arrays)
            assert fig.cycles == lay.cycles, (lay.name, o)
            assert fig.out_width == lay.out_width, lay.name
            seen += lay.name in ("sum", "sum.act", "proj.act")
    assert seen >= 4  # several lane counts of the add and the identity units


def test_raw_add_on_signed_skip_words_against_the_reference():
    """The engine of the ``sum`` layer's kind: raw, a requantisation shift, two's-complement
    skip words shifted left, under idle cycles and backpressure."""
    cfg = (2, 7, 14, 6, 5, 7, None, True)
    dut = make_add(cfg)
    main, skip = add_stimulus(cfg, 3, np.random.default_rng(8))
    r = random.Random(9)
    got = []

    async def put_main(ctx):
        await stream_put_many(ctx, dut.i, to_words(main, dut.lanes), rng=r, idle=0.4)

    async def put_skip(ctx):
        await stream_put_many(ctx, dut.skip, to_words(skip, dut.lanes), rng=r, idle=0.2)

    async def get(ctx):
        got.extend(await stream_get_many(ctx, dut.o, len(main) // dut.lanes, rng=r,
                                         backpressure=0.3))

    run_simulation(dut, put_main, put_skip, get)
    want = add_reference(dut, main, skip)
    assert (skip < 0).any() and (want < 0).any() and (want > 0).any()
    assert from_words(got, dut.lanes).tolist() == want.tolist()


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    root = tmp_path_factory.mktemp("mbconv_skip")
    for variant in FOLDINGS:
        mbconv_network(root / variant, **{variant: True})
    x = np.random.default_rng(3).integers(0, 256, (3, 8, 8, 3)).astype(np.uint8)
    return root, x


@pytest.mark.parametrize(("variant", "k"), [
    # the squeeze-and-excitation block at its second folding: 2.5 minutes in the simulator
    # (its first folding is the CI sibling, rtl_tests/test_network_mbconv_skip.py runs both)
    pytest.param(v, k, marks=pytest.mark.slow) if (v, k) == ("se", 1) else (v, k)
    for v in FOLDINGS for k in range(2)])
def test_network_bit_exact_and_interval(nets, variant, k):
    """Random idle input cycles and backpressure: logits and class == python_ref.snn; images
    back to back: one result every ``cycles_per_image``, the first within the latency
    estimate's margin; each engine's cycles those of the plan (and of its figures)."""
    root, x = nets
    g = ir.load(root / variant)
    top = build_network(root / f"{variant}.json", parallelism=FOLDINGS[variant][k])
    for lay in top.plan.layers:
        assert top.engines[lay.name].expected_cycles == lay.cycles, lay.name
        assert engine_figures(lay, g.arrays).cycles == lay.cycles, lay.name
    ref = snn.run(g, x)
    assert len(set(ref.logits[:, 0])) > 1
    logits, cls = simulate(top, x, idle=0.2, backpressure=0.3, seed=k + 20 * len(variant))
    assert (logits == ref.logits).all()
    assert (cls == ref.classes).all()
    outs = result_cycles(top, x)
    assert outs[2] - outs[1] == outs[1] - outs[0] == top.cycles_per_image
    assert 0.75 * top.latency_cycles <= outs[0] <= 1.2 * top.latency_cycles


def test_relu_after_an_add_with_signed_skip_words(tmp_path):
    """A ReLU after the add (the add fused with it) takes a trained unit's words as its skip
    too: bit-exact in the simulator."""
    g = _net("skip")
    g.node["sum.act"]["unit"] = "r"
    g.node["sum.act"]["rshift"] = [g.node["sum.act"]["rshift"][0] - 1]  # 4-bit ReLU, 0..15
    plan = lower(g)
    add = plan.layer("sum.act")
    assert isinstance(add, AddLayer)
    assert (add.ir_nodes, add.out_bits, add.skip_signed, add.skip_bits) == (
        ["sum", "sum.act"], 4, True, 8)
    assert plan.layer("head.act").in_signed is False
    ir.save(g, tmp_path / "m")
    top = build_network(tmp_path / "m.json", parallelism=SKIP_FOLDINGS[1])
    x = np.random.default_rng(4).integers(0, 256, (2, 8, 8, 3)).astype(np.uint8)
    ref = snn.run(g, x, trace=["sum.act"])
    assert 0 < ref.traces["sum.act"].mean() < 15
    logits, _ = simulate(top, x, idle=0.1, backpressure=0.2, seed=5)
    assert (logits == ref.logits).all()


def _plan_error(g) -> str:
    with pytest.raises(PlanError) as e:
        lower(g)
    return str(e.value)


def test_an_add_of_two_unit_outputs_is_refused_naming_them():
    """Neither input a raw convolution: the add engine has no main path."""
    g = _net("skip")
    g.nodes.insert(g.nodes.index(g.node["sum"]),
                   {"name": "proj.id", "op": "amos", "inputs": ["proj"], "unit": "id",
                    "rshift": [4]})
    g.node["sum"]["inputs"] = ["proj.id", "stem.act"]
    assert _plan_error(g) == (
        "layer 'sum': the residual add engine needs a raw convolution on one input "
        "(the block's last conv); its inputs are 'proj.id' (two's-complement words of "
        "unit 'proj.id'), 'stem.act' (two's-complement words of unit 'stem.act')")


def test_an_add_without_one_unit_after_it_is_refused():
    g = _net("skip")
    g.node["head"]["inputs"] = ["sum"]  # the add feeds its unit and a conv
    assert _plan_error(g) == (
        "layer 'sum': the residual add engine needs one one-input amos op after the add (a "
        "ReLU, or a trained unit such as the identity)")


def test_a_trained_unit_after_a_pool_is_refused():
    g = _net("linear")
    g.nodes.insert(g.nodes.index(g.node["fc"]),
                   {"name": "pool.id", "op": "amos", "inputs": ["pool"], "unit": "id",
                    "rshift": [2]})
    g.node["fc"]["inputs"] = ["pool.id"]
    assert _plan_error(g) == ("layer 'pool.id': a trained unit must directly follow a conv, "
                              "dense layer or add; it follows gap 'pool'")


def test_the_identity_unit_is_the_closed_form():
    """The networks' identity unit is :meth:`IntAmosUnit.identity` (what the converter
    emits), so the hardware runs the closed form's arrays."""
    g = _net("linear")
    u = ir.make_unit("id", g.units["id"], g.arrays)
    ref = IntAmosUnit.identity(6)
    for k in ("c", "T", "h", "d"):
        assert (getattr(u, k) == getattr(ref, k)).all(), k
