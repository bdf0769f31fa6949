"""Step ``memory``: size the pointwise convolutions' window FIFOs, the skip FIFOs of residual
adds and the map memories of gates (:mod:`amos_hw.buffers`), with a board keep small memories
out of block RAM where the design needs more blocks than the board has
(:mod:`amos_hw.lut_memories`), and list every layer's memory bits.

The engines keep weights, biases, line buffers, input buffers and FIFOs in
:class:`amaranth.lib.memory.Memory`; all of them are counted as block RAM bits (``bram_bits``),
and so are the rings of running values of the pooling engines when they are memories
(:mod:`amos_hw.lib.ring`; small ones are flip-flops).
"""
from __future__ import annotations

from amos_hw import cost
from amos_hw.buffers import assign_gate_buffers, assign_skip_fifos, assign_window_fifos
from amos_hw.devices import board_budget
from amos_hw.lut_memories import assign_lut_memories
from amos_hw.passes.common import FlowContext

__all__ = ["memory"]


def memory(ctx: FlowContext) -> dict:
    windows = assign_window_fifos(ctx.plan)
    fifos = assign_skip_fifos(ctx.plan)
    gates = assign_gate_buffers(ctx.plan, ctx.graph.arrays)
    moved = ({} if ctx.config.board is None
             else assign_lut_memories(ctx.plan, ctx.graph.arrays, board_budget(ctx.config)))
    mems = {r["name"]: {"bram_bits": r["est_bram_bits"]}
            for r in cost.layer_rows(ctx.plan, ctx.graph.arrays)}
    for name, f in (*fifos.items(), *gates.items()):
        mems[name].update(f)
    for name, rows in windows.items():
        if rows:
            mems[name]["window_fifo_rows"] = rows
    for name, names in moved.items():
        mems[name]["lut_memories"] = names
    for lay in ctx.plan.layers:
        if getattr(lay, "banked_weights", False):
            mems[lay.name]["banked_weights"] = True
    return {"layers": mems}
