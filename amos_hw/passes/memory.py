"""Step ``memory``: size the skip FIFOs of residual adds (:mod:`amos_hw.buffers`) and list every
layer's memory bits.

The engines keep weights, biases, line buffers, input buffers and FIFOs in
:class:`amaranth.lib.memory.Memory`; all of them are counted as block RAM bits (``bram_bits``),
the register rings of the pooling engine as flip-flops.
"""
from __future__ import annotations

from amos_hw import cost
from amos_hw.buffers import assign_skip_fifos
from amos_hw.passes.common import FlowContext

__all__ = ["memory"]


def memory(ctx: FlowContext) -> dict:
    fifos = assign_skip_fifos(ctx.plan)
    mems = {r["name"]: {"bram_bits": r["est_bram_bits"]}
            for r in cost.layer_rows(ctx.plan, ctx.graph.arrays)}
    for name, f in fifos.items():
        mems[name].update(f)
    return {"layers": mems}
