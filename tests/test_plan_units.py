# amaranth: UnusedElaboratable=no
"""Fast tier: trained AMOS units (swish, sigmoid) through the generator (issue 16): the plan's
unit layers and signed words, cycles equal to the engines', the errors that name the layer, and
the two small networks of ``rtl_tests/unit_network.py`` in the Amaranth simulator, logits and
class equal to python_ref.snn under random stalls and result intervals equal to the report's
cycles per image."""
from __future__ import annotations

import numpy as np
import pytest

from amos_hw import cost, folding
from amos_hw.engines import UnitEngine
from amos_hw.errors import FlowError
from amos_hw.flow import build_network
from amos_hw.layer_engines import engine_figures
from amos_hw.plan import PlanError, UnitLayer, lower
from python_ref import ir, snn
from python_ref.quant import IntAmosUnit, quantize_unit
from python_ref.units import load_unit
from rtl_tests.mbconv_network import SERIAL_FOLDINGS as MB_SERIAL
from rtl_tests.mbconv_network import mbconv_network
from rtl_tests.unit_network import SERIAL_FOLDINGS, UNIT_FOLDINGS, unit_network, unit_spec
from tests.test_plan_pool import _flow_error, result_cycles, simulate


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    root = tmp_path_factory.mktemp("units")
    for tail in ("dense", "gap"):
        unit_network(root / tail, tail=tail)
    x = np.random.default_rng(1).integers(0, 256, (3, 8, 8, 3)).astype(np.uint8)
    return root, x


def test_plan_unit_layers_and_signed_words():
    plan = lower(unit_network(tail="dense"))
    lays = plan.by_name()
    assert [lay.kind for lay in plan.layers] == ["conv", "unit", "conv", "gap", "dense", "unit",
                                                 "dense"]
    c1, sw, c2, fc1, sg, fc = (lays[n] for n in ("c1", "c1.act", "c2.act", "fc1", "fc1.act",
                                                 "fc"))
    # the conv before a trained unit is raw, requantised by the unit's shift
    g = unit_network(tail="dense")
    assert (c1.out_bits, c1.out_signed, c1.shift) == (None, True, g.node["c1.act"]["rshift"][0])
    assert isinstance(sw, UnitLayer) and sw.inputs == ["c1"] and sw.K == 12
    assert (sw.in_width, sw.out_bits, sw.out_width, sw.out_signed) == (c1.out_width, 8, 8, True)
    # y of the 6-bit d: lo = sum of negative d, hi = sum of positive d, in 8 signed bits
    d = g.arrays["swish.d"]
    assert -128 <= d[d < 0].sum() and d[d > 0].sum() <= 127
    assert (c2.in_bits, c2.in_signed, c2.out_bits) == (8, True, 4)
    assert (fc1.out_bits, fc1.shift, sg.K, sg.inputs) == (None, g.node["fc1.act"]["rshift"][0],
                                                          8, ["fc1"])
    assert (fc.in_bits, fc.in_signed) == (8, True)
    assert c2.as_dict()["in_signed"] is True and "in_signed" not in c1.as_dict()


def test_plan_signed_gap():
    """A swish feeding the global pool: the sums are signed, and so are the dense layer's
    inputs."""
    plan = lower(unit_network(tail="gap"))
    pool, fc = plan.layer("pool"), plan.layer("fc")
    assert (pool.in_signed, pool.out_signed, pool.in_bits) == (True, True, 8)
    # 4x4 sums of 8-bit two's-complement words: -16*128 .. 16*127 in 12 signed bits
    assert pool.out_width == 12
    assert (fc.in_bits, fc.in_signed) == (12, True)


@pytest.mark.parametrize("tail", ["dense", "gap"])
def test_layer_cycles_equal_the_engines_at_every_folding(tail):
    g = unit_network(tail=tail)
    plan = lower(g)
    for lay in plan.layers:
        opts = folding.options(lay, plan)
        for o in opts[:6]:
            lay.fold(o, cost.layer_cycles(lay, o))
            fig = engine_figures(lay, g.arrays)
            assert fig.cycles == lay.cycles, (lay.name, o)
            assert fig.out_width == lay.out_width, lay.name


def test_shared_architecture_refuses_a_trained_unit(tmp_path):
    msg = _flow_error(tmp_path, unit_network(), architecture="shared")
    assert "layer 'c1.act': a trained AMOS unit has no shared-engine instruction" in msg


def test_too_wide_unit_output_names_the_layer(tmp_path):
    """A unit whose d (scaled by 2**10 from a 16-bit quantisation) makes y wider than the 24
    bits the consumers take; the message names the unit layer and says what to change."""
    g = unit_network()
    q = quantize_unit(load_unit("swish"), 8, 8, 16)
    wide = IntAmosUnit("swish", c=q.c, T=q.T, h=q.h, d=q.d * 2**10, in_range=q.in_range)
    g.units["swish"] = unit_spec(wide, "swish", g.arrays)
    lo, hi = int(wide.d[wide.d < 0].sum()), int(wide.d[wide.d > 0].sum())
    assert max(-lo, hi) >= 2 ** 24  # needs more than 24 signed bits
    msg = _flow_error(tmp_path, g)
    assert msg.startswith("layer 'c1.act': its unit's output y needs ")
    assert msg.endswith("bits, more than the engines' 24; quantise the unit's d with fewer bits")


def test_trained_unit_after_an_add_is_a_raw_add_then_a_unit():
    g = unit_network(tail="gap")
    rng = np.random.default_rng(0)
    g.arrays["p.w"] = rng.integers(-127, 128, (4, 1, 1, 4))
    i = next(k for k, n in enumerate(g.nodes) if n["name"] == "c2.act")
    g.nodes[i:i] = [{"name": "p", "op": "conv", "inputs": ["c1.act"], "weight": "p.w",
                     "kernel": 1, "stride": 2, "padding": 0, "out_channels": 4},
                    {"name": "sum", "op": "add", "inputs": ["c2", "p"], "lshift": [0, 0]}]
    g.node["c2.act"]["inputs"] = ["sum"]
    plan = lower(ir.Graph(g.name, g.nodes, g.units, g.arrays, g.outputs))
    add, unit = plan.layer("sum"), plan.layer("c2.act")
    assert (add.kind, add.out_bits, add.out_signed) == ("add", None, True)
    assert add.shift == g.node["c2.act"]["rshift"][0]
    assert (unit.kind, unit.inputs, unit.in_width) == ("unit", ["sum"], add.out_width)


def test_signed_words_into_a_max_pool_are_refused():
    g = unit_network(tail="dense")
    i = next(k for k, n in enumerate(g.nodes) if n["name"] == "c2")
    g.nodes.insert(i, {"name": "mp", "op": "maxpool", "inputs": ["c1.act"], "kernel": 2,
                       "stride": 2, "padding": 0})
    g.node["c2"]["inputs"] = ["mp"]
    with pytest.raises((PlanError, ir.IRError), match="'mp'"):
        lower(ir.Graph(g.name, g.nodes, g.units, g.arrays, g.outputs))


@pytest.mark.parametrize("k", range(len(UNIT_FOLDINGS)))
def test_network_bit_exact(nets, k):
    """Random idle input cycles and backpressure: logits and class == python_ref.snn."""
    root, x = nets
    g = ir.load(root / "dense")
    top = build_network(root / "dense.json", parallelism=UNIT_FOLDINGS[k])
    ref = snn.run(g, x)
    assert len(set(ref.logits[:, 0])) > 1
    logits, cls = simulate(top, x, idle=0.2, backpressure=0.3, seed=k)
    assert (logits == ref.logits).all()
    assert (cls == ref.classes).all()


def test_signed_gap_network_bit_exact_and_cycles(nets):
    root, x = nets
    g = ir.load(root / "gap")
    top = build_network(root / "gap.json")
    ref = snn.run(g, x)
    logits, _ = simulate(top, x, idle=0.3, backpressure=0.3, seed=5)
    assert (logits == ref.logits).all()
    outs = result_cycles(top, x)
    assert outs[2] - outs[1] == top.cycles_per_image


@pytest.mark.parametrize("k", [0, 2])
def test_result_interval_equals_the_report(nets, k):
    root, x = nets
    top = build_network(root / "dense.json", parallelism=UNIT_FOLDINGS[k])
    outs = result_cycles(top, x)
    assert outs[2] - outs[1] == top.cycles_per_image


# -- serial unit layers ({"serial": n}) ------------------------------------------------------


@pytest.mark.parametrize("k", range(len(SERIAL_FOLDINGS)))
def test_serial_network_bit_exact_and_interval(nets, k):
    """Serial units: logits and class == python_ref.snn under random gaps and stalls; images
    back to back: one result every ``cycles_per_image`` of the report; the unit layers'
    cycles ``K * elements / n``, those of their engines."""
    root, x = nets
    tail, fold = SERIAL_FOLDINGS[k]
    g = ir.load(root / tail)
    top = build_network(root / f"{tail}.json", parallelism=fold)
    for lay in top.plan.layers:
        assert top.engines[lay.name].expected_cycles == lay.cycles, lay.name
        if isinstance(lay, UnitLayer) and lay.serial:
            assert lay.cycles == lay.elements // lay.serial * lay.K
            assert top.engines[lay.name].serial == lay.serial == fold[lay.name]["serial"]
    ref = snn.run(g, x)
    logits, cls = simulate(top, x, idle=0.2, backpressure=0.3, seed=40 + k)
    assert (logits == ref.logits).all()
    assert (cls == ref.classes).all()
    outs = result_cycles(top, x)
    assert outs[2] - outs[1] == outs[1] - outs[0] == top.cycles_per_image


# [1] differs from [0] only in the serial units of dw.act (4, not 2): the slow tier's
@pytest.mark.parametrize("k", [0, pytest.param(1, marks=pytest.mark.slow), 2])
def test_serial_mbconv_bit_exact_and_interval(tmp_path, k):
    """The MBConv block with serial swish units, the depthwise conv's bursts into one:
    python_ref.snn bit for bit under gaps and stalls, the measured interval the report's."""
    kw, fold = MB_SERIAL[k]
    g = mbconv_network(tmp_path / "m", **kw)
    top = build_network(tmp_path / "m.json", parallelism=fold)
    dw_act = top.plan.layer("dw.act")
    assert dw_act.serial and dw_act.buffer == max(3, dw_act.channels // dw_act.serial)
    assert top.plan.layer("exp.act").buffer == 0  # behind a conv: no FIFO
    x = np.random.default_rng(2).integers(0, 256, (3, 8, 8, 3)).astype(np.uint8)
    ref = snn.run(g, x)
    logits, cls = simulate(top, x, idle=0.2, backpressure=0.3, seed=50 + k)
    assert (logits == ref.logits).all()
    assert (cls == ref.classes).all()
    outs = result_cycles(top, x)
    assert outs[2] - outs[1] == outs[1] - outs[0] == top.cycles_per_image
    assert max(lay.cycles for lay in top.plan.layers) == top.cycles_per_image


def test_serial_options_costs_and_cycles():
    """A unit layer's options: lanes and serial (at the default depth), each costed by its
    engine's LUT4; the cycles of every option those of the engine."""
    g = unit_network(tail="dense")
    plan = lower(g)
    sw = plan.layer("c1.act")
    opts = folding.options(sw, plan)
    assert {"serial": 1, "depth": 5} in opts and {"serial": 4, "depth": 5} in opts  # K = 12
    assert {"lanes": 2} in opts
    unit = ir.make_unit(sw.unit, sw.spec, g.arrays)
    lane = UnitEngine.figures(unit, in_width=sw.in_width).luts
    ser = UnitEngine.figures(unit, in_width=sw.in_width, serial=1).luts
    assert (sw.lane_lut4, sw.serial_lut4) == (lane, ser) and ser < lane
    assert folding.lane_cost(sw, {"serial": 2, "depth": 5}) == 2 * ser
    assert folding.lane_cost(sw, {"lanes": 3}) == 3 * lane
    for o in opts:
        sw.fold(o, cost.layer_cycles(sw, o))
        fig = engine_figures(sw, g.arrays)
        assert fig.cycles == sw.cycles == (sw.elements // o.get("serial", o.get("lanes"))
                                           * (sw.K if "serial" in o else 1)), o


def test_choose_for_target_takes_serial_where_it_is_cheaper():
    """Fully folded, every trained unit layer is one serial unit (cheaper by its engine's LUT4,
    and ``K * elements`` cycles still within the target); at a tighter target two serial units
    where they are cheaper than one pipelined lane, else the lane."""
    plan = lower(unit_network(tail="dense"))
    sw = plan.layer("c1.act")  # 256 values, K = 12, 4 channels
    assert sw.serial_lut4 < sw.lane_lut4 / 2 < 2 * sw.serial_lut4
    slow = folding.choose_for_target(plan, 10**6)
    assert slow["c1.act"] == {"serial": 1, "depth": 5} and slow["fc1.act"]["serial"] == 1
    mid = folding.choose_for_target(plan, 1600)
    assert mid["c1.act"] == {"serial": 2, "depth": 5}  # 1536 cycles
    tight = folding.choose_for_target(plan, 1000)  # 4 serial units (768) cost more than a lane
    assert tight["c1.act"] == {"lanes": 1}
    fast = folding.choose_for_target(plan, 200)
    assert fast["c1.act"] == {"lanes": 2}  # 128 cycles


def test_serial_folding_errors(tmp_path):
    g = unit_network(tail="dense")
    plan = lower(g)
    for fold, msg in [
        ({"c1.act": {"serial": 3}}, "layer 'c1.act': serial must divide the 4 channels, not 3"),
        ({"c1.act": {"serial": 2, "depth": 4}},
         "layer 'c1.act': depth must be in 1..16 and have no common divisor with the unit's "
         "K = 12 (e.g. 5), not 4"),
        ({"c1.act": {"serial": 2, "lanes": 2}},
         "layer 'c1.act': takes lanes (pipelined units) or serial (serial units, one a lane), "
         "not both: {'serial': 2, 'lanes': 2}"),
        ({"c1.act": {"depth": 5}}, "layer 'c1.act': depth is a parameter of the serial form; "
                                   "give serial too, not {'lanes': 1, 'depth': 5}"),
        ({"c1.act": {"serial": 0}}, "layer 'c1.act': serial must be a positive integer, not 0"),
    ]:
        with pytest.raises(FlowError) as e:
            folding.apply(lower(g), folding.read_user(fold, plan))
        assert str(e.value) == msg
    with pytest.raises(FlowError) as e:
        folding.read_user({"c1.act": {"pe": 2}}, plan)
    assert str(e.value) == ("--parallelism: layer 'c1.act' (unit) takes lanes, or serial (and "
                            "depth), not {'pe': 2}")


def test_identity_unit_has_no_serial_form(tmp_path):
    """The linear MBConv's signed identity is a clamp: no serial option, and a serial folding
    of it is refused naming the layer."""
    g = mbconv_network(linear=True)
    plan = lower(g)
    ident = plan.layer("proj.act")
    assert not ident.serial_ok
    assert all("serial" not in o for o in folding.options(ident, plan))
    assert folding.choose_for_target(plan, 10**6)["proj.act"] == {"lanes": 1}
    with pytest.raises(FlowError) as e:
        folding.apply(plan, {"proj.act": {"serial": 1}})
    assert str(e.value) == ("layer 'proj.act': its signed identity unit is built as a clamp; "
                            "it has no serial form (use lanes)")
