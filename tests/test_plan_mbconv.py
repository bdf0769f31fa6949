# amaranth: UnusedElaboratable=no
"""Fast tier: an MBConv block's convolutions with trained swish units through the generator
(issue 16): conv -> ReLU -> 1x1 expansion -> swish -> depthwise 3x3 (stride 1 or 2) reading the
swish's two's-complement words, raw before the second swish -> swish -> 1x1 projection -> ReLU
-> gap -> dense (``rtl_tests/mbconv_network.py``). The plan's widths and signed words, each
layer's cycles equal to its engine's, and the network in the Amaranth simulator: logits and
class equal to python_ref.snn under random stalls at two foldings (lanes on the depthwise conv
and the units), the measured result interval equal to the report's cycles per image."""
from __future__ import annotations

import numpy as np
import pytest

from amos_hw import cost, folding
from amos_hw.flow import build_network, run_flow
from amos_hw.layer_engines import engine_figures
from amos_hw.passes.common import FlowConfig, FlowError
from amos_hw.plan import DepthwiseLayer, UnitLayer, lower
from python_ref import ir, snn
from python_ref.quant import requant_shift, signed_width
from rtl_tests.mbconv_network import MBCONV_FOLDINGS, mbconv_network
from rtl_tests.pool_network import pool_network
from tests.test_plan_pool import _residual, result_cycles, simulate

STRIDES = (1, 2)


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    root = tmp_path_factory.mktemp("mbconv")
    for s in STRIDES:
        mbconv_network(root / f"s{s}", dw_stride=s)
    x = np.random.default_rng(3).integers(0, 256, (3, 8, 8, 3)).astype(np.uint8)
    return root, x


def _v_width(w, b, in_bits, shift):
    """The exact signed width of ``v = (acc + 2**(shift-1)) >> shift`` of a depthwise conv on
    ``in_bits`` two's-complement words, from the extreme window of every channel (all nine
    taps of the padded 3x3 window inside the 8x8 map): each input at whichever end of
    ``-2**(in_bits-1)..2**(in_bits-1)-1`` pushes its product outwards."""
    lo_in, hi_in = -(2 ** (in_bits - 1)), 2 ** (in_bits - 1) - 1
    w = w.reshape(w.shape[0], -1)
    ends = []
    for c in range(w.shape[0]):
        up = sum(max(x * lo_in, x * hi_in) for x in w[c].tolist())
        down = sum(min(x * lo_in, x * hi_in) for x in w[c].tolist())
        ends += [int(b[c]) + up, int(b[c]) + down, up, down]  # with and without the bias
    v = requant_shift(np.array([min(ends), max(ends)]), shift)
    return signed_width(int(v[0]), int(v[1]))


@pytest.mark.parametrize("stride", STRIDES)
def test_plan_signed_depthwise_before_a_trained_unit(stride):
    g = mbconv_network(dw_stride=stride)
    plan = lower(g)
    assert [lay.kind for lay in plan.layers] == ["conv", "conv", "unit", "dwconv", "unit",
                                                 "conv", "gap", "dense"]
    lays = plan.by_name()
    exp_act, dw, dw_act, proj = (lays[n] for n in ("exp.act", "dw", "dw.act", "proj.act"))
    assert isinstance(dw, DepthwiseLayer) and isinstance(dw_act, UnitLayer)
    # the depthwise conv reads the expansion swish's 8-bit two's-complement words ...
    assert dw.inputs == ["exp.act"] and (exp_act.out_width, exp_act.out_signed) == (8, True)
    assert (dw.in_bits, dw.in_signed) == (8, True)
    # ... and is raw, requantised by its swish's shift, for the unit layer after it
    shift = g.node["dw.act"]["rshift"][0]
    assert shift > 0
    assert (dw.out_bits, dw.out_signed, dw.shift) == (None, True, shift)
    assert dw.out_width == _v_width(g.arrays["dw.w"], g.arrays["dw.b"], 8, shift)
    assert dw.out_shape == [8 // stride, 8 // stride, 16]
    assert (dw_act.inputs, dw_act.in_width, dw_act.K) == (["dw"], dw.out_width, 12)
    assert (proj.in_bits, proj.in_signed, proj.out_bits) == (8, True, 4)
    d = dw.as_dict()
    assert d["in_signed"] is True and d["shift"] == shift and d["out_bits"] is None
    # an unsigned depthwise conv states no in_signed (its JSON is as it was)
    assert "in_signed" not in lower(pool_network()).layer("dw.act").as_dict()


@pytest.mark.parametrize("stride", STRIDES)
def test_layer_cycles_equal_the_engines_at_every_folding(stride):
    g = mbconv_network(dw_stride=stride)
    plan = lower(g)
    seen = 0
    for lay in plan.layers:
        for o in folding.options(lay, plan)[:6]:
            lay.fold(o, cost.layer_cycles(lay, o))
            fig = engine_figures(lay, g.arrays)
            assert fig.cycles == lay.cycles, (lay.name, o)
            assert fig.out_width == lay.out_width, lay.name
            seen += lay.name == "dw"
    assert seen > 2  # several lane counts of the depthwise conv


def test_flow_accepts_the_block_and_still_refuses_a_raw_depthwise_into_an_add(tmp_path):
    """The layer-pipelined checks let a raw depthwise conv feed a trained unit; one feeding an
    add is still refused, naming it."""
    ir.save(mbconv_network(dw_stride=2), tmp_path / "m")
    ctx = run_flow(FlowConfig(model=str(tmp_path / "m.json"), stop_after="estimate",
                              write=False, quiet=True))
    assert ctx.plan.layer("dw").out_bits is None
    ir.save(_residual(pool_network(), main_dw=False), tmp_path / "r")
    with pytest.raises(FlowError, match="^layer 'dw': a depthwise conv with raw outputs "
                                        r"\(feeding an add\) has no layer-pipelined form"):
        run_flow(FlowConfig(model=str(tmp_path / "r.json"), stop_after="estimate",
                            write=False, quiet=True))


@pytest.mark.parametrize(("stride", "k"), [(s, k) for s in STRIDES
                                           for k in range(len(MBCONV_FOLDINGS))])
def test_network_bit_exact_and_interval(nets, stride, k):
    """Random idle input cycles and backpressure: logits and class == python_ref.snn; images
    back to back: one result every ``cycles_per_image``; each engine's cycles those of the
    plan (and of its figures), the depthwise engine on signed words."""
    root, x = nets
    g = ir.load(root / f"s{stride}")
    top = build_network(root / f"s{stride}.json", parallelism=MBCONV_FOLDINGS[k])
    for lay in top.plan.layers:
        assert top.engines[lay.name].expected_cycles == lay.cycles, lay.name
        assert engine_figures(lay, g.arrays).cycles == lay.cycles, lay.name
    dw = top.engines["dw"]
    assert dw.in_signed and dw.lanes == MBCONV_FOLDINGS[k]["dw"]["lanes"]
    ref = snn.run(g, x)
    assert len(set(ref.logits[:, 0])) > 1
    logits, cls = simulate(top, x, idle=0.2, backpressure=0.3, seed=10 * stride + k)
    assert (logits == ref.logits).all()
    assert (cls == ref.classes).all()
    outs = result_cycles(top, x)
    assert outs[2] - outs[1] == top.cycles_per_image
