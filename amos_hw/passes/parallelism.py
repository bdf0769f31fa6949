"""Step ``parallelism``: the folding of every layer (``pe`` x ``simd`` x ``planes``, or
``lanes``; :mod:`amos_hw.folding`), in this order of precedence:

* ``--parallelism``: a per-layer JSON object, a file path or JSON text
  (:func:`amos_hw.folding.read_user`); unnamed layers get 1 (and bit-parallel);
* ``--target-fps N``: the target initiation interval ``T = clock / N`` cycles, every layer the
  cheapest folding that meets it (:func:`amos_hw.folding.choose_for_target`);
* ``--board NAME``: the smallest ``T`` whose estimate fits the device
  (:func:`amos_hw.folding.fit_device`).

Without any of them every layer is folded completely (``pe = simd = lanes = 1``): the smallest
design, one MAC lane per layer. The matrix-vector units' carry form is set here too (it changes
the LUT4 count of every later estimate).
"""
from __future__ import annotations

from amos_hw import cost
from amos_hw.devices import board_budget, clock_mhz
from amos_hw.folding import apply, carry_form, choose_for_target, fit_device, read_user
from amos_hw.passes.common import BudgetError, FlowContext, FlowError
from amos_hw.plan import ConvLayer, DenseLayer

__all__ = ["parallelism"]


def _for_target(plan, fps, clock) -> tuple[dict, str]:
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not fps > 0:
        raise FlowError(f"--target-fps must be a positive number, not {fps!r}")
    target = int(clock * 1e6 // fps)
    folding = choose_for_target(plan, target)
    apply(plan, folding)
    got, per_layer = cost.pipeline_ii(plan)
    if got > target:
        slow = max(per_layer, key=per_layer.get)
        limit = ("the pixel input (one byte per cycle)"
                 if plan.input_elements >= per_layer[slow]
                 else f"layer {slow!r} fully parallel")
        raise BudgetError(
            f"{fps:g} images/s at {clock:g} MHz needs at most {target} cycles per image; "
            f"the fastest design takes {got} ({clock * 1e6 / got:.1f} images/s), limited by "
            f"{limit}")
    return folding, f"target {fps:g} images/s ({target} cycles at {clock:g} MHz)"


def parallelism(ctx: FlowContext) -> dict:
    cfg, plan = ctx.config, ctx.plan
    carry = carry_form(cfg)
    for lay in plan.layers:  # before any estimate: the carry form changes the LUT4 count
        if isinstance(lay, (ConvLayer, DenseLayer)):
            lay.carry = carry
    if cfg.parallelism is not None and cfg.target_fps is not None:
        raise FlowError("give either --parallelism or --target-fps, not both")
    clock = clock_mhz(cfg)
    if cfg.parallelism is not None:
        folding, how = read_user(cfg.parallelism, plan), "explicit"
    elif cfg.target_fps is not None:
        folding, how = _for_target(plan, cfg.target_fps, clock)
    elif cfg.board is not None:
        folding, how = fit_device(plan, ctx.graph.arrays, board_budget(cfg))
    else:
        folding, how = {}, "fully folded (default)"
    apply(plan, folding)
    bad = cost.inexact_layers(plan)
    if bad:
        raise FlowError(
            f"layer {bad[0]!r}: a time-serial dense layer (planes < in_bits) fed through a "
            f"gathering lane adapter and slower than its producer has no exact cycle model; "
            f"give it planes = in_bits, or a simd no larger than its producer's pe")
    plan.parallelism = how
    return {"how": how, "layers": {s.name: {**s.folding(), "cycles": s.cycles}
                                   for s in plan.layers}}
