"""Keeping small memories out of block RAM when a design needs more blocks than its device has.

Block RAM is counted in whole blocks (:mod:`amos_hw.lib.bram`): a 160-word bias ROM or a
256-word ring of sums fills a DP16KD of which it uses a sixth. A network with many layers has
many such memories (``effnet_cifar``: 30 blocks' worth, about 14 % of the ECP5-85F's 208),
while its LUTs have room. So when the fit counts more blocks than the budget, the generator
moves the small memories that cost the fewest LUT4s per block freed into LUT RAM (written
memories, ECP5) or logic (ROMs), one at a time, until the count fits
(:func:`assign_lut_memories`). The engines give each chosen memory the attribute Yosys obeys
(:func:`amos_hw.lib.bram.style_attrs`); the estimate counts its LUT4s
(:func:`amos_hw.lib.bram.lut_cost`) and no block. Before any memory moves, the weight ROMs
that the generator builds in columns of one block each (for timing: the operand register
becomes the blocks' output register) go back to one banked memory where that takes fewer
blocks (:func:`bank_candidates`, ``banked_weights`` on the layer).

Which memories may move (:data:`MOVABLE`): the bias ROMs, the input buffers of folded dense
layers, the rings of running values (depthwise accumulators, global-average-pooling sums) and
the gate vectors of squeeze-and-excitation gates; only those of at most :data:`MAX_WORDS`
words, so that a memory's multiplexer stays small. Weight ROMs, line buffers and maps stay
where Yosys puts them. A design that fits keeps every memory where it was, so its Verilog does
not change. On the iCE40, which has no LUT RAM, only ROMs move.
"""
from __future__ import annotations

from amos_hw import cost
from amos_hw.layer_engines import engine_figures
from amos_hw.lib.bram import FAMILIES, blocks_for, bram_budget, lut_cost, placement
from amos_hw.plan import ConvLayer, DenseLayer, DepthwiseLayer, GateLayer, NetworkPlan, PoolLayer

__all__ = ["MOVABLE", "MAX_WORDS", "assign_lut_memories", "bank_candidates", "candidates"]

#: Per layer kind, the memories of its engine that may leave block RAM.
MOVABLE = {ConvLayer: ("biases",), DenseLayer: ("biases", "inputs"),
           DepthwiseLayer: ("biases", "accs"), PoolLayer: ("sums",), GateLayer: ("gate",)}
#: Deepest memory moved (words).
MAX_WORDS = 1024


def candidates(plan: NetworkPlan, arrays: dict, family: str) -> list[tuple]:
    """``(lut4_per_block, layer, memory, blocks)`` of every movable memory that takes blocks
    now, cheapest first (ties: the plan's layer order)."""
    lutram = FAMILIES[family]["lutram"]
    out = []
    for order, lay in enumerate(plan.layers):
        names = MOVABLE.get(type(lay), ())
        if not names:
            continue
        for mem in engine_figures(lay, arrays).memories:
            if mem.name not in names or mem.depth > MAX_WORDS or not (mem.rom or lutram):
                continue
            where, blocks = placement(mem, family)
            if where == "block":
                out.append((lut_cost(mem, family) / blocks, order, lay.name, mem.name, blocks))
    return [(c, name, mem, n) for c, _, name, mem, n in sorted(out)]


def bank_candidates(plan: NetworkPlan, arrays: dict, family: str) -> list[tuple]:
    """``(blocks_saved, layer)`` of every matrix layer whose weight ROM is built in columns
    (:attr:`amos_hw.engines.figures.DenseParams.weight_column_bits`) and would take fewer
    blocks as one memory, the largest saving first (ties: the plan's layer order)."""
    out = []
    for order, lay in enumerate(plan.layers):
        if not isinstance(lay, (ConvLayer, DenseLayer)):
            continue
        for mem in engine_figures(lay, arrays).memories:
            if mem.name != "weights" or not mem.column_bits or mem.in_lut:
                continue
            saved = placement(mem, family)[1] - blocks_for(mem.depth, mem.width, family)
            if saved > 0:
                out.append((-saved, order, lay.name))
    return [(-neg, name) for neg, _, name in sorted(out)]


def assign_lut_memories(plan: NetworkPlan, arrays: dict, dev: dict) -> dict:
    """Set ``lut_memories`` of the layers of a folded, memory-assigned plan so that its block
    count fits ``dev`` (:func:`amos_hw.devices.device` or a board budget), moving as few
    LUT4s' worth as the greedy order allows. First, weight ROMs built in columns (one block
    each, so that the operand register can be the blocks' output register) go back to one
    memory, the largest saving first (``banked_weights``), until the count fits; only then
    do small memories move. Returns ``{layer: [memory, ...]}`` of those moved
    (empty when the design fits as it is). When even all movable memories do not make it fit,
    all are moved and the fit check reports what is still over."""
    for lay in plan.layers:
        lay.lut_memories = ()
        if isinstance(lay, (ConvLayer, DenseLayer)):
            lay.banked_weights = False
    family = dev["family"]
    rows = cost.layer_rows(plan, arrays, family)
    over = sum(r["est_bram_blocks"] for r in rows) - bram_budget(family, dev["bram_blocks"])
    moved: dict[str, list] = {}
    if over <= 0:
        return moved
    layers = plan.by_name()
    for saved, name in bank_candidates(plan, arrays, family):
        layers[name].banked_weights = True
        over -= saved
        if over <= 0:
            return moved
    for _, name, mem, blocks in candidates(plan, arrays, family):
        moved.setdefault(name, []).append(mem)
        over -= blocks
        if over <= 0:
            break
    for lay in plan.layers:
        if lay.name in moved:
            lay.lut_memories = tuple(moved[lay.name])
    return moved
