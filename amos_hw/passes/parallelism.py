"""Step ``parallelism``: the folding of every layer (``pe`` x ``simd``, or ``lanes``).

Three ways, in this order of precedence:

* ``--parallelism``: a per-layer JSON object ``{"layer": {"pe": 4, "simd": 2}}`` (``lanes`` for
  ``gap`` / ``add`` layers; conv and dense layers also take ``planes``, the spike planes taken
  per cycle, a divisor of the layer's ``in_bits``: all of them, bit-parallel, by default), as a
  file path or JSON text; a layer may be named by its hardware name or any description op fused
  into it; unnamed layers get 1 (and bit-parallel);
* ``--target-fps N``: the target initiation interval ``T = clock / N`` cycles; every layer gets
  the cheapest folding (by :func:`lane_cost`) whose cycles per image are at most ``T``, over
  ``pe``, ``simd`` and ``planes``: fewer planes than ``in_bits`` only where a layer must go
  below one bit-parallel lane;
* ``--board NAME``: the smallest ``T`` whose estimate fits the device
  (:data:`amos_hw.passes.estimate.DEVICES`), found by bisection over the achievable ``T``.

Without any of them every layer is folded completely (``pe = simd = lanes = 1``): the smallest
design, one MAC lane per layer.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

from amos_hw.passes.common import BudgetError, FlowContext, FlowError

__all__ = ["parallelism", "apply", "carry_form", "layer_cycles", "choose_for_target", "divisors",
           "lane_cost", "passes"]


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _fields(spec) -> tuple[str, ...]:
    return ("pe", "simd", "planes") if spec["kind"] in ("conv", "dense") else ("lanes",)


def passes(spec: dict, par: dict | None = None) -> int:
    """Cycles a conv / dense engine spends on one input word: ``in_bits / planes``."""
    par = spec if par is None else par
    return spec["in_bits"] // par.get("planes", spec["in_bits"])


def layer_cycles(spec: dict, par: dict) -> int:
    """Cycles per image of a layer at a folding (the engines' ``expected_cycles``)."""
    k = spec["kind"]
    if k == "conv":
        ho, wo, _ = spec["out_shape"]
        sf = spec["kernel"] ** 2 * spec["c_in"] // par["simd"]
        compute = ho * wo * (spec["c_out"] // par["pe"]) * sf * passes(spec, par)
        return max(compute, spec["height"] * spec["width"] * spec["c_in"] // par["simd"])
    if k == "dense":
        return (spec["n_out"] // par["pe"]) * (spec["n_in"] // par["simd"]) * passes(spec, par)
    if k == "gap":
        return spec["height"] * spec["width"] * spec["channels"] // par["lanes"]
    return math.prod(spec["out_shape"]) // par["lanes"]


def _options(spec: dict, plan: dict | None = None) -> list[dict]:
    k = spec["kind"]
    if k in ("conv", "dense"):
        n_out, n_in = (spec["c_out"], spec["c_in"]) if k == "conv" else (spec["n_out"],
                                                                          spec["n_in"])
        planes = divisors(spec["in_bits"])
        if k == "dense" and plan is not None and any(
                s["name"] == spec["inputs"][0] and s["kind"] == "dense" for s in plan["layers"]):
            planes = [spec["in_bits"]]  # see estimate.inexact_layers: kept bit-parallel
        return [{"pe": p, "simd": s, "planes": b} for p in divisors(n_out)
                for s in divisors(n_in) for b in planes]
    return [{"lanes": n} for n in divisors(spec["channels"])]


def lane_cost(spec: dict, par: dict) -> float:
    """Relative cost of a folding: the gated additions per cycle (``pe * simd * planes``, the
    same adders whether arranged bit-parallel or over passes), plus the weight and operand
    registers that every extra lane of a time-serial folding adds. Measured on the ECP5
    (``python -m amos_hw.engines.synth_probe --wrap``, K = 10, 144 -> 16 at 72 to 80 cycles per
    vector): bit-parallel 32 lanes 10.5K LUT4 / 2.4K FF, two planes 144 lanes 11.5K / 6.7K,
    one plane 288 lanes 12.2K / 7.0K. So a folding uses fewer planes only where it must: below
    ``pe = simd = 1`` (the smallest designs) or where the divisors leave no other way."""
    if "lanes" in par:
        return float(par["lanes"])
    lanes = par["pe"] * par["simd"]
    b = par.get("planes", spec["in_bits"])
    return lanes * b + (lanes if b < spec["in_bits"] else 0)


def _cost(par: dict, spec: dict) -> tuple:
    if "lanes" in par:
        return (par["lanes"],)
    return (lane_cost(spec, par), par["pe"])


def choose_for_target(plan: dict, target: int) -> dict:
    """Per-layer folding with the least parallelism that meets ``target`` cycles per image
    (the most parallel folding where none does).

    Each layer first gets the cheapest folding whose own cycles meet the target; a dense layer
    whose first fold is stretched by a slow input (:func:`~amos_hw.passes.estimate
    .pipeline_ii`) then gets the cheapest folding that meets it in the pipeline.
    """
    from amos_hw.passes.estimate import pipeline_ii

    out = {}
    for spec in plan["layers"]:
        opts = sorted(_options(spec, plan), key=lambda o, s=spec: _cost(o, s))
        ok = [o for o in opts if layer_cycles(spec, o) <= target]
        out[spec["name"]] = ok[0] if ok else min(opts, key=lambda o, s=spec: (
            layer_cycles(s, o), _cost(o, s)))
    import copy

    trial = apply(copy.deepcopy(plan), out)
    for spec in trial["layers"]:
        if spec["kind"] != "dense" or pipeline_ii(trial)[1][spec["name"]] <= target:
            continue
        for o in sorted(_options(spec, plan), key=lambda o, s=spec: _cost(o, s)):
            out[spec["name"]] = o
            apply(trial, out)
            if pipeline_ii(trial)[1][spec["name"]] <= target:
                break
    return out


def carry_form(cfg) -> str:
    """The matrix-vector units' carry form: ``cfg.carry``, or ``"ecp5"`` for an ECP5 board and
    ``"generic"`` otherwise (:mod:`amos_hw.engines.carry`)."""
    from amos_hw.engines.carry import CARRY_FORMS, default_form
    from amos_hw.passes import estimate as est

    if cfg.carry is not None:
        if cfg.carry not in CARRY_FORMS:
            raise FlowError(f"--carry: unknown {cfg.carry!r}; known: {', '.join(CARRY_FORMS)}")
        return cfg.carry
    family = None if cfg.board is None else est.device(cfg.board)["family"]
    return default_form(family)


def _read_user(value, plan) -> dict:
    if isinstance(value, dict):
        raw = value
    else:
        text = os.fspath(value)
        p = Path(text)
        try:
            is_file = p.is_file()
        except OSError:
            is_file = False
        src = f"--parallelism file {text!r}" if is_file else "--parallelism"
        try:
            raw = json.loads(p.read_text() if is_file else text)
        except json.JSONDecodeError as e:
            raise FlowError(f"{src}: not valid JSON ({e}); expected "
                            f"{{\"layer\": {{\"pe\": 4, \"simd\": 2}}}}") from None
        if not isinstance(raw, dict):
            raise FlowError(f"{src}: expected a JSON object of layers, not {type(raw).__name__}")
    alias = {}
    for spec in plan["layers"]:
        for n in [spec["name"], *spec["ir_nodes"]]:
            alias[n] = spec["name"]
    out = {}
    for name, par in raw.items():
        if name not in alias:
            raise FlowError(f"--parallelism: no layer {name!r}; layers: "
                            f"{', '.join(s['name'] for s in plan['layers'])}")
        spec = next(s for s in plan["layers"] if s["name"] == alias[name])
        fields = _fields(spec)
        if not isinstance(par, dict) or set(par) - set(fields):
            raise FlowError(f"--parallelism: layer {name!r} ({spec['kind']}) takes "
                            f"{' and '.join(fields)}, not {par!r}")
        out[spec["name"]] = dict(par)
    return out


def apply(plan: dict, folding: dict) -> dict:
    """Write a folding into the plan's layers (checked), returning the plan."""
    for spec in plan["layers"]:
        par = {f: 1 for f in _fields(spec)}
        if "planes" in par:
            par["planes"] = spec["in_bits"]
        par.update(folding.get(spec["name"], {}))
        name = spec["name"]
        for f, v in par.items():
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise FlowError(f"layer {name!r}: {f} must be a positive integer, not {v!r}")
        k = spec["kind"]
        if k in ("conv", "dense"):
            n_out = spec["c_out"] if k == "conv" else spec["n_out"]
            n_in = spec["c_in"] if k == "conv" else spec["n_in"]
            what = "input channels" if k == "conv" else "inputs"
            if n_out % par["pe"]:
                raise FlowError(f"layer {name!r}: pe must divide the {n_out} outputs, "
                                f"not {par['pe']}")
            if n_in % par["simd"]:
                raise FlowError(f"layer {name!r}: simd must divide the {n_in} {what}, "
                                f"not {par['simd']}")
            if spec["in_bits"] % par["planes"] or par["planes"] > spec["in_bits"]:
                raise FlowError(f"layer {name!r}: planes must divide the {spec['in_bits']} "
                                f"spikes of an input (in_bits), not {par['planes']}")
            spec.update(pe=par["pe"], simd=par["simd"], planes=par["planes"],
                        in_lanes=par["simd"], out_lanes=par["pe"])
        else:
            if spec["channels"] % par["lanes"]:
                raise FlowError(f"layer {name!r}: lanes must divide the {spec['channels']} "
                                f"channels, not {par['lanes']}")
            spec.update(lanes=par["lanes"], in_lanes=par["lanes"], out_lanes=par["lanes"])
            if k == "add":
                spec.update(skip_lanes=par["lanes"],
                            words_per_image=math.prod(spec["out_shape"]) // par["lanes"])
        spec["cycles"] = layer_cycles(spec, par)
    return plan


def _floor(plan) -> int:
    return plan["input"]["elements"]  # one pixel byte per cycle


def parallelism(ctx: FlowContext) -> dict:
    from amos_hw.passes import estimate as est

    cfg, plan = ctx.config, ctx.plan
    carry = carry_form(cfg)
    for spec in plan["layers"]:  # before any estimate: the carry form changes the LUT4 count
        if spec["kind"] in ("conv", "dense"):
            spec["carry"] = carry
    chosen = sum(x is not None for x in (cfg.parallelism, cfg.target_fps))
    if chosen > 1:
        raise FlowError("give either --parallelism or --target-fps, not both")
    clock = est.clock_mhz(cfg)
    if cfg.parallelism is not None:
        folding = _read_user(cfg.parallelism, plan)
        how = "explicit"
    elif cfg.target_fps is not None:
        fps = cfg.target_fps
        if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not fps > 0:
            raise FlowError(f"--target-fps must be a positive number, not {fps!r}")
        target = int(clock * 1e6 // fps)
        folding = choose_for_target(plan, target)
        apply(plan, folding)
        got, per_layer = est.pipeline_ii(plan)
        if got > target:
            slow = max(per_layer, key=per_layer.get)
            limit = ("the pixel input (one byte per cycle)" if _floor(plan) >= per_layer[slow]
                     else f"layer {slow!r} fully parallel")
            raise BudgetError(
                f"{fps:g} images/s at {clock:g} MHz needs at most {target} cycles per image; "
                f"the fastest design takes {got} ({clock * 1e6 / got:.1f} images/s), limited by "
                f"{limit}")
        how = f"target {fps:g} images/s ({target} cycles at {clock:g} MHz)"
    elif cfg.board is not None:
        folding, how = _fit_board(ctx, est)
    else:
        folding, how = {}, "fully folded (default)"
    apply(plan, folding)
    bad = est.inexact_layers(plan)
    if bad:
        raise FlowError(
            f"layer {bad[0]!r}: a time-serial dense layer (planes < in_bits) fed through a "
            f"gathering lane adapter and slower than its producer has no exact cycle model; "
            f"give it planes = in_bits, or a simd no larger than its producer's pe")
    plan["parallelism"] = how
    return {"how": how, "layers": {s["name"]: {f: s[f] for f in _fields(s)} | {
        "cycles": s["cycles"]} for s in plan["layers"]}}


def _fit_board(ctx, est):
    plan = ctx.plan
    dev = est.device(ctx.config.board)
    cands = sorted({layer_cycles(s, o) for s in plan["layers"] for o in _options(s, plan)}
                   | {_floor(plan)}, reverse=True)
    cands = [c for c in cands if c >= _floor(plan)]
    # cands[0] is the fully folded design; the resources grow as T shrinks
    first = choose_for_target(plan, cands[0])
    fit, why = est.fits(ctx, first, dev)
    if not fit:
        raise BudgetError(f"{ctx.model_name} does not fit {dev['name']} even fully folded: "
                          f"{why}")
    lo, hi = 0, len(cands) - 1  # cands[lo] fits; find the last index that fits
    best = first
    while lo < hi:
        mid = (lo + hi + 1) // 2
        folding = choose_for_target(plan, cands[mid])
        ok, _ = est.fits(ctx, folding, dev)
        if ok:
            lo, best = mid, folding
        else:
            hi = mid - 1
    return best, f"largest that fits {dev['name']} (target {cands[lo]} cycles per image)"
