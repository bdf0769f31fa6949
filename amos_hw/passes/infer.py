"""Step ``infer``: lower the description into the typed plan (:func:`amos_hw.plan.lower`: shapes,
exact widths, the hardware layers) and refuse what the layer-pipelined engines cannot build,
naming the layer, before any hardware exists: a stride the conv engine does not support, a
padding the sliding window cannot make, spike words or inputs wider than the engines take, an
output that is not the raw logits of a dense layer, more classes than the result's 4-bit field,
a window op (maxpool, avgpool, depthwise conv) inside a residual block's main path.
"""
from __future__ import annotations

from amos_hw.engines.figures import MAX_IN_BITS
from amos_hw.passes.common import FlowContext, FlowError
from amos_hw.plan import (
    INPUT,
    ConvLayer,
    DepthwiseLayer,
    NetworkPlan,
    PlanError,
    PoolLayer,
    UnitLayer,
    WindowLayer,
    lower,
)
from python_ref import ir

__all__ = ["infer", "check_pipelined", "SUPPORTED_STRIDES", "MAX_BITS"]

#: Strides the sliding window engines (conv, maxpool, avgpool, dwconv) are verified for
#: (rtl_tests/test_engine_conv.py, rtl_tests/test_engine_pool_window.py).
SUPPORTED_STRIDES = (1, 2)
#: Largest K (spikes per value, ``out_bits``) of a ReLU unit the engines build.
MAX_BITS = 16


def _err(name, msg):
    return FlowError(f"layer {name!r}: {msg}")


def _check_residual_paths(plan: NetworkPlan) -> None:
    """A raw depthwise conv feeding an add (signed accumulators as an add's main input) has no
    engine form: refused, naming it. A raw depthwise conv whose every consumer is a trained
    unit (:class:`~amos_hw.plan.UnitLayer`, an MBConv block's swish: ``v`` requantised by the
    unit's shift) is built. Window ops on a residual block's main path are fine: the skip FIFO
    (:mod:`amos_hw.buffers`) counts their line buffers as it counts the convolutions'."""
    for lay in plan.layers:
        if isinstance(lay, DepthwiseLayer) and lay.out_bits is None:
            users = [u for u in plan.layers if lay.name in u.inputs]
            if users and all(isinstance(u, UnitLayer) for u in users):
                continue
            raise _err(lay.ir_nodes[0], "a depthwise conv with raw outputs (feeding an add) "
                                        "has no layer-pipelined form; follow it by a ReLU amos "
                                        "op")


def check_pipelined(plan: NetworkPlan, output_tensor: str) -> None:
    """Raise :class:`FlowError` for the first layer the layer engines cannot build."""
    _check_residual_paths(plan)
    for lay in plan.layers:
        if lay.kind in ("conv", "dense", "gap", "maxpool", "avgpool", "dwconv"):
            _, width = plan.source_width(lay.inputs[0])
            if width > MAX_IN_BITS:
                raise _err(lay.ir_nodes[0], f"its input is {width} bits wide, more than the "
                                            f"engines' {MAX_IN_BITS}")
        if lay.kind in ("unit", "gate") and lay.out_bits > MAX_IN_BITS:
            raise _err(lay.name, f"its unit's output y needs {lay.out_bits} bits, more "
                                 f"than the engines' {MAX_IN_BITS}; quantise the unit's d "
                                 f"with fewer bits")
        if lay.kind not in ("unit", "gate") and lay.out_bits is not None \
                and lay.out_bits > MAX_BITS:
            raise _err(lay.name, f"K={lay.out_bits} is more than the engines' {MAX_BITS} "
                                 f"spikes per value")
        if isinstance(lay, (ConvLayer, WindowLayer)):
            name, k, s, p = lay.ir_nodes[0], lay.kernel, lay.stride, lay.padding
            if s not in SUPPORTED_STRIDES:
                raise _err(name, f"stride {s} is not supported by the {lay.kind} engine "
                                 f"(supported: {', '.join(map(str, SUPPORTED_STRIDES))})")
            if p >= k:
                raise _err(name, f"padding {p} must be less than the kernel {k} for the "
                                 f"sliding window")
    out = None if plan.output == INPUT else plan.output_layer
    if (out is None or out.out_bits is not None or len(out.out_shape) != 1
            or isinstance(out, PoolLayer)):
        raise _err(output_tensor, "the network output must be the raw accumulators (logits) "
                                  "of a dense layer")
    if not 1 <= plan.num_classes <= 16:
        raise _err(output_tensor, f"{plan.num_classes} classes do not fit the 4-bit class "
                                  f"field (1..16)")


def infer(ctx: FlowContext) -> dict:
    try:
        ctx.info = ir.validate(ctx.graph)
    except ir.IRError as e:
        raise FlowError(f"model {ctx.model_name!r}: {e}") from None
    try:
        plan = lower(ctx.graph)
    except PlanError as e:
        raise FlowError(str(e)) from None
    check_pipelined(plan, ctx.graph.outputs[0])
    ctx.plan = plan
    return plan.as_dict()
