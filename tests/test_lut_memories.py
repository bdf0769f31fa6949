# amaranth: UnusedElaboratable=no
"""Small memories out of block RAM (amos_hw.lut_memories, amos_hw.lib.bram.style_attrs): the
attribute each engine gives a listed memory, the estimate's placement and LUT4 cost, and the
generator moving the cheapest memories of the zoo's effnet_cifar (random weights, fully
folded: 228 DP16KD counted, 208 on the ECP5-85F) until it fits, with the elaborated network's
memories carrying exactly the attributes the count assumed."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Fragment, MemoryInstance, Shape

from amos_hw import cost
from amos_hw.devices import device
from amos_hw.engines import DenseEngine, DepthwiseConvEngine, GateEngine, GlobalAvgPoolEngine
from amos_hw.flow import FlowConfig, run_flow
from amos_hw.folding import choose_for_target, options
from amos_hw.layer_engines import engine_figures
from amos_hw.lib.bram import (
    LUTRAM_CELL_LUTS,
    MemShape,
    block_count,
    lut_cost,
    mark_lut,
    placement,
    style_attrs,
)
from amos_hw.lut_memories import MOVABLE, bank_candidates, candidates
from python_ref import convert as cv
from python_ref.quant import quantize_unit
from python_ref.units import load_unit

RNG = np.random.default_rng(3)


def test_attributes_placement_and_cost():
    assert style_attrs("biases", True, ("biases",)) == {"rom_style": "logic"}
    assert style_attrs("sums", False, ("sums", "x")) == {"ram_style": "distributed"}
    assert style_attrs("weights", True, ("biases",)) == {}
    rom, ram = MemShape("biases", 320, 13, rom=True), MemShape("inputs", 256, 16)
    assert placement(rom) == ("block", 1) and placement(ram) == ("block", 1)
    lrom, lram = mark_lut((rom, ram, MemShape("w", 9, 9)), ("biases", "inputs"))[:2]
    assert lrom.in_lut and lram.in_lut
    assert placement(lrom) == ("logic", 0)
    assert placement(lram) == ("lutram", 16 * 4)  # 16 x 4 cells
    assert placement(lram, "ice40") == ("logic", 0)  # no LUT RAM there
    assert block_count((lrom, lram, rom)) == 1
    # the docstring's calibration: 2 LUT4 per 16 words and bit, +1 a bit; cells, +1 LUT4 per
    # 16 words and bit
    assert lut_cost(rom) == 13 * (2 * 20 + 1) == 533
    assert lut_cost(ram) == 64 * LUTRAM_CELL_LUTS + 16 * 16 == 640


def _dense(**kw):
    w, b = RNG.integers(-3, 4, (320, 32)), RNG.integers(-3000, 3000, 320)
    return (w, b), dict(in_bits=4, shift=2, out_bits=4, pe=1, simd=4, **kw)


def test_engines_refuse_names_they_lack():
    args, kw = _dense(lut_memories=("lines",))
    with pytest.raises(ValueError, match=r"^dense: lut_memories names 'lines', not a memory "
                                         r"of this engine \(it has biases, inputs, weights\)$"):
        DenseEngine(*args, **kw)
    with pytest.raises(ValueError, match="^dense: lut_memories must be a sequence"):
        DenseEngine.figures(*_dense(lut_memories="biases")[0], **_dense(lut_memories="biases")[1])


def _styles(component) -> Counter:
    """(depth, width, rom, style attribute) of every memory of the elaborated component."""
    out = Counter()

    def walk(frag):
        if isinstance(frag, MemoryInstance):
            attrs = frag._attrs
            style = attrs.get("rom_style") or attrs.get("ram_style")
            out[(frag._data.depth, Shape.cast(frag._data.shape).width, not frag._write_ports,
                 style)] += 1
        for sub, *_ in frag.subfragments:
            walk(sub)
    walk(Fragment.get(component, None))
    return out


def _listed(mems) -> Counter:
    """The same for the figures' memories, one entry per column of a memory built in
    columns (``MemShape.column_widths``)."""
    return Counter((m.depth, width, m.rom,
                    ("logic" if m.rom else "distributed") if m.in_lut else None)
                   for m in mems for width in m.column_widths)


def _engines():
    uw, ub = RNG.integers(-3, 4, (160, 3, 3, 1)), RNG.integers(-900, 900, 160)
    mult = quantize_unit(load_unit("mult"), 10, 8, 8)
    return [
        (DenseEngine, *_dense(lut_memories=("biases", "inputs"))),
        (DepthwiseConvEngine, (uw, ub), dict(height=6, width=6, padding=1, in_bits=8, shift=4,
                                              out_bits=None, lut_memories=("biases", "accs"))),
        (GlobalAvgPoolEngine, (), dict(height=4, width=4, channels=256, in_bits=10,
                                       lut_memories=("sums",))),
        (GateEngine, (mult,), dict(channels=96, elements=4 * 96, x_width=10, g_width=10,
                                   shifts=(2, 2), lut_memories=("gate",))),
    ]


@pytest.mark.parametrize("n", range(4))
def test_engines_give_the_listed_memories_their_attribute(n):
    """Each engine kind the generator may move memories of (amos_hw.lut_memories.MOVABLE):
    the elaborated memories and their style attributes equal its figures' memories and
    ``in_lut`` marks; the attribute reaches the Verilog."""
    cls, args, kw = _engines()[n]
    eng = cls(*args, **kw)
    mems = cls.figures(*args, **kw).memories
    assert {m.name for m in mems if m.in_lut} == set(kw["lut_memories"])
    assert _styles(eng) == _listed(mems)
    if n == 0:
        text = verilog.convert(eng, name="top", emit_src=False)
        assert text.count('(* rom_style = "logic" *)') == 1
        assert text.count('(* ram_style = "distributed" *)') == 1


def test_movable_names_are_memories_of_their_engines():
    names = {"biases", "inputs", "accs", "sums", "gate"}
    assert {n for v in MOVABLE.values() for n in v} == names


@pytest.fixture(scope="module")
def effnet(tmp_path_factory):
    stem = tmp_path_factory.mktemp("effnet") / "effnet_cifar"
    cv.convert("effnet_cifar", sd=cv.random_state_dict("effnet_cifar", seed=4),
               calib_images=cv.calibration_images("effnet_cifar", n=8), progress=False,
               out=stem)
    return str(stem) + ".json"


def test_effnet_moves_the_cheapest_memories_until_it_fits(effnet):
    """Fully folded on the ECP5-85F: without moving, 228 blocks are counted (the fit fails);
    the memory step moves memories in candidates' order, no more than needed, and the estimate
    counts their LUT4s instead of their blocks."""
    dev, fam = device("ecp5-85f"), "ecp5"
    # the board fit's first trial: every layer its slowest folding (serial units)
    plan = run_flow(FlowConfig(model=effnet, stop_after="infer", quiet=True)).plan
    folded = choose_for_target(plan, max(cost.layer_cycles(lay, o) for lay in plan.layers
                                         for o in options(lay, plan)))
    plain = run_flow(FlowConfig(model=effnet, parallelism=folded, stop_after="memory",
                                quiet=True))
    before = cost.totals(plain.plan, plain.graph.arrays, 50.0, fam)
    over = before["est_bram_blocks"] - dev["bram_blocks"]
    assert over > 0
    order = candidates(plain.plan, plain.graph.arrays, fam)
    assert [c for c, *_ in order] == sorted(c for c, *_ in order)
    # first the weight ROMs in columns go back to banks (all of them: not enough alone)
    banks = bank_candidates(plain.plan, plain.graph.arrays, fam)
    banked = sum(saved for saved, _ in banks)
    assert 0 < banked < over
    need, prefix = banked, 0
    while need < over:
        need, prefix = need + order[prefix][3], prefix + 1
    ctx = run_flow(FlowConfig(model=effnet, parallelism=folded, board="ecp5-85f",
                              stop_after="estimate", quiet=True))
    moved = {(lay.name, m) for lay in ctx.plan.layers for m in lay.lut_memories}
    assert moved == {(name, mem) for _, name, mem, _ in order[:prefix]}
    assert {lay.name for lay in ctx.plan.layers if getattr(lay, "banked_weights", False)} == {
        name for _, name in banks}
    assert ctx.report["est_bram_blocks"] == before["est_bram_blocks"] - need
    assert ctx.report["est_bram_blocks"] <= dev["bram_blocks"]
    assert ctx.report["board"]["fits"] is True
    extra = sum(lut_cost(m, fam) for lay in ctx.plan.layers
                for m in engine_figures(lay, ctx.graph.arrays).memories if m.in_lut)
    assert ctx.report["est_lut4"] == before["est_lut4"] + extra
    listed = {(d["name"], m) for d in ctx.plan.as_dict()["layers"]
              for m in d.get("lut_memories", ())}
    assert listed == moved
    ice = candidates(plain.plan, plain.graph.arrays, "ice40")  # no LUT RAM there: ROMs only
    assert ice and all(m == "biases" for _, _, m, _ in ice)


def test_weight_columns_go_back_to_banks_before_the_folding_slows():
    """ResNet8 on the ECP5-45F: at the folding that fits (294,912 cycles per image), the weight
    ROMs in columns would count more blocks than the device has; the memory step banks the
    ones that save the most blocks first, only until the count fits, and the engines then
    build those ROMs as one memory."""
    dev, fam = device("ecp5-45f"), "ecp5"
    ctx = run_flow(FlowConfig(model="resnet8", board="ecp5-45f", stop_after="estimate",
                              quiet=True))
    assert ctx.plan.cycles_per_image == 294912
    banked = [lay.name for lay in ctx.plan.layers if getattr(lay, "banked_weights", False)]
    assert banked == ["block2.conv2"]
    assert ctx.report["est_bram_blocks"] <= dev["bram_blocks"]
    lay = ctx.plan.by_name()["block2.conv2"]
    lay.banked_weights = False  # the columns' count for the same layer
    columns = engine_figures(lay, ctx.graph.arrays).memories
    lay.banked_weights = True
    one = engine_figures(lay, ctx.graph.arrays).memories
    w_cols, w_one = ([m for m in ms if m.name == "weights"][0] for ms in (columns, one))
    assert w_cols.column_bits and not w_one.column_bits
    saved = placement(w_cols, fam)[1] - placement(w_one, fam)[1]
    assert saved > 0
    # without the banking the count would be over the device (no margin on the ECP5)
    assert ctx.report["est_bram_blocks"] + saved > dev["bram_blocks"]
    assert ctx.plan.as_dict()["layers"][[d["name"] for d in ctx.plan.as_dict()["layers"]]
                                        .index("block2.conv2")]["banked_weights"] is True
