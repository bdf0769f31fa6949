"""Step ``assemble``: build the :class:`~amos_hw.top.NetworkTop` of the plan."""
from __future__ import annotations

from amos_hw.passes.common import FlowContext, FlowError
from amos_hw.top import NetworkTop

__all__ = ["assemble"]


def assemble(ctx: FlowContext) -> dict:
    try:
        top = NetworkTop(ctx.plan, ctx.graph.arrays, spike_counts=ctx.config.spike_counts)
    except (TypeError, ValueError) as e:
        raise FlowError(f"model {ctx.model_name!r}: assembly failed: {e}") from None
    ctx.top = top
    return {"top": "NetworkTop", "input_shape": list(top.input_shape),
            "num_classes": top.num_classes, "logit_width": top.logit_width,
            "cycles_per_image": top.cycles_per_image, "latency_cycles": top.latency_cycles,
            "engines": [s.name for s in ctx.plan.layers],
            **({"spike_layers": list(top.spike_layers)} if top.spike_layers else {})}
