"""Folding a plan: how many output channels (``pe``), inputs (``simd``) and spike planes
(``planes``) each conv / dense engine takes per cycle, or how many channels (``lanes``) a
pooling or add engine does.

* :func:`read_user`: a per-layer JSON object ``{"layer": {"pe": 4, "simd": 2}}`` (``lanes`` for
  ``gap`` / ``add`` layers; conv and dense layers also take ``planes``, a divisor of the layer's
  ``in_bits``: all of them, bit-parallel, by default; a trained unit layer takes ``lanes``
  pipelined units or ``serial``: that many time-serial units, one a lane, one word every ``K``
  cycles, optionally with their ``depth``), as a file path or JSON text; a layer may
  be named by its hardware name or any description op fused into it; unnamed layers get 1;
  a conv or dense layer may add ``"multiply": true``, the products form (a multiplier, on
  the ECP5 a ``MULT18X18D``, per weight and input word; whole words, ``planes = in_bits``:
  worth it for the stem's 8-bit pixels), which no automatic folding chooses;
* :func:`choose_for_target`: for a target initiation interval ``T`` cycles, every layer gets
  the cheapest folding (by :func:`lane_cost`) whose cycles per image are at most ``T``, over
  ``pe``, ``simd`` and ``planes``: fewer planes than ``in_bits`` only where a layer must go
  below one bit-parallel lane;
* :func:`fit_device`: the smallest ``T`` whose estimate fits a device, by bisection over the
  achievable ``T``.

:func:`apply` writes a folding into the plan (checked, naming the layer and the field).
"""
from __future__ import annotations

import copy
import json
import math
import os
from pathlib import Path

from amos_hw import cost
from amos_hw.buffers import assign_gate_buffers, assign_skip_fifos, assign_window_fifos
from amos_hw.devices import family
from amos_hw.engines.carry import CARRY_FORMS, default_form
from amos_hw.engines.unit_params import serial_depth
from amos_hw.errors import BudgetError, FlowError
from amos_hw.lib.checks import positive_int
from amos_hw.lib.serial_unit import MAX_DEPTH
from amos_hw.lut_memories import assign_lut_memories
from amos_hw.plan import ConvLayer, DenseLayer, GateLayer, Layer, NetworkPlan, UnitLayer

#: Layers with trained AMOS units: folded by lanes or serial units (plan._SerialFolding).
_UNITS = (UnitLayer, GateLayer)

__all__ = ["divisors", "options", "lane_cost", "choose_for_target", "carry_form", "read_user",
           "apply", "serial_buffer", "fits", "fit_device"]


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def options(lay: Layer, plan: NetworkPlan | None = None) -> list[dict]:
    """Every folding a layer's engine takes (a unit layer's serial forms at their default
    ``depth``)."""
    if isinstance(lay, _UNITS):
        lanes = divisors(lay.channels)
        serial = [{"serial": n, "depth": serial_depth(lay.K)} for n in lanes
                  if lay.serial_ok and lay.serial_lut4]
        return [{"lanes": n} for n in lanes] + serial
    if lay.FOLD_FIELDS == ("lanes",):  # pooling and adds
        return [{"lanes": n} for n in divisors(lay.channels)]
    planes = divisors(lay.in_bits)
    if isinstance(lay, DenseLayer) and plan is not None and any(
            s.name == lay.inputs[0] and isinstance(s, DenseLayer) for s in plan.layers):
        planes = [lay.in_bits]  # see cost.inexact_layers: kept bit-parallel
    return [{"pe": p, "simd": s, "planes": b} for p in divisors(lay.n_outputs)
            for s in divisors(lay.n_inputs) for b in planes]


def lane_cost(lay: Layer, par: dict) -> float:
    """Relative cost of a folding: the gated additions per cycle (``pe * simd * planes``, the
    same adders whether arranged bit-parallel or over passes), plus the weight and operand
    registers that every extra lane of a time-serial folding adds. Measured on the ECP5
    (``python -m amos_hw.engines.synth_probe --wrap``, K = 10, 144 -> 16 at 72 to 80 cycles per
    vector): bit-parallel 32 lanes 10.5K LUT4 / 2.4K FF, two planes 144 lanes 11.5K / 6.7K,
    one plane 288 lanes 12.2K / 7.0K. So a folding uses fewer planes only where it must: below
    ``pe = simd = 1`` (the smallest designs) or where the divisors leave no other way.

    A trained unit or gate layer's cost is its engine's LUT4 (``lane_lut4`` a pipelined lane,
    ``serial_lut4`` a serial unit, :class:`~amos_hw.plan.UnitLayer`), so its pipelined and
    serial forms compare fairly (a layer of no other kind is compared with it)."""
    if isinstance(lay, _UNITS) and lay.lane_lut4:
        if "serial" in par:
            return float(par["serial"] * lay.serial_lut4)
        return float(par["lanes"] * lay.lane_lut4)
    if "lanes" in par:
        return float(par["lanes"])
    lanes = par["pe"] * par["simd"]
    b = par.get("planes", lay.in_bits)
    return lanes * b + (lanes if b < lay.in_bits else 0)


def _cost(par: dict, lay: Layer) -> tuple:
    if isinstance(lay, _UNITS):
        return (lane_cost(lay, par), par.get("lanes", par.get("serial")))
    if "lanes" in par:
        return (par["lanes"],)
    return (lane_cost(lay, par), par["pe"])


def choose_for_target(plan: NetworkPlan, target: int) -> dict:
    """Per-layer folding with the least parallelism that meets ``target`` cycles per image
    (the most parallel folding where none does).

    Each layer first gets the cheapest folding whose own cycles meet the target; a dense layer
    whose first fold is stretched by a slow input (:func:`amos_hw.cost.pipeline_ii`) then gets
    the cheapest folding that meets it in the pipeline.
    """
    out = {}
    for lay in plan.layers:
        opts = sorted(options(lay, plan), key=lambda o, s=lay: _cost(o, s))
        ok = [o for o in opts if cost.layer_cycles(lay, o) <= target]
        out[lay.name] = ok[0] if ok else min(opts, key=lambda o, s=lay: (
            cost.layer_cycles(s, o), _cost(o, s)))
    trial = apply(copy.deepcopy(plan), out)
    for lay in trial.layers:
        if not isinstance(lay, DenseLayer) or cost.pipeline_ii(trial)[1][lay.name] <= target:
            continue
        for o in sorted(options(lay, plan), key=lambda o, s=lay: _cost(o, s)):
            out[lay.name] = o
            apply(trial, out)
            if cost.pipeline_ii(trial)[1][lay.name] <= target:
                break
    return out


def carry_form(cfg) -> str:
    """The matrix-vector units' carry form: ``cfg.carry``, or ``"ecp5"`` for an ECP5 board and
    ``"generic"`` otherwise (:mod:`amos_hw.engines.carry`)."""
    if cfg.carry is not None:
        if cfg.carry not in CARRY_FORMS:
            raise FlowError(f"--carry: unknown {cfg.carry!r}; known: {', '.join(CARRY_FORMS)}")
        return cfg.carry
    return default_form(family(cfg.board))


def _read_json(value) -> dict:
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
    return raw


def read_user(value, plan: NetworkPlan) -> dict:
    """A user's folding (a dict, a JSON file path or JSON text), by hardware layer name."""
    raw = value if isinstance(value, dict) else _read_json(value)
    alias = {}
    for lay in plan.layers:
        for n in [lay.name, *lay.ir_nodes]:
            alias[n] = lay.name
    out = {}
    for name, par in raw.items():
        if name not in alias:
            raise FlowError(f"--parallelism: no layer {name!r}; layers: "
                            f"{', '.join(s.name for s in plan.layers)}")
        lay = plan.layer(alias[name])
        fields = (*lay.FOLD_FIELDS, *lay.OPTIONAL_FOLD_FIELDS)
        if not isinstance(par, dict) or set(par) - set(fields):
            what = ("lanes, or serial (and depth)" if isinstance(lay, _UNITS)
                    else " and ".join(lay.FOLD_FIELDS)
                    + "".join(f" (and {f})" for f in lay.OPTIONAL_FOLD_FIELDS))
            raise FlowError(f"--parallelism: layer {name!r} ({lay.kind}) takes {what}, "
                            f"not {par!r}")
        out[lay.name] = dict(par)
    return out


def _merged(lay: Layer, user: dict) -> dict:
    """The layer's default folding updated by the user's fields (a unit layer's ``serial``
    form replaces its default ``lanes``)."""
    if isinstance(lay, _UNITS) and "serial" in user:
        if "lanes" in user:
            raise FlowError(f"layer {lay.name!r}: takes lanes (pipelined units) or serial "
                            f"(serial units, one a lane), not both: {user!r}")
        return {"depth": serial_depth(lay.K), **user}
    return {**lay.default_folding(), **user}


def _check_unit(lay: UnitLayer | GateLayer, par: dict) -> None:
    name = lay.name
    if "depth" in par and "serial" not in par:
        raise FlowError(f"layer {name!r}: depth is a parameter of the serial form; give serial "
                        f"too, not {par!r}")
    n = par.get("serial", par.get("lanes"))
    field = "serial" if "serial" in par else "lanes"
    if lay.channels % n:
        raise FlowError(f"layer {name!r}: {field} must divide the {lay.channels} channels, "
                        f"not {n}")
    if "serial" not in par:
        return
    if not lay.serial_ok:
        raise FlowError(f"layer {name!r}: its signed identity unit is built as a clamp; it has "
                        f"no serial form (use lanes)")
    D = par["depth"]
    if D > MAX_DEPTH or math.gcd(D, lay.K) != 1:
        raise FlowError(f"layer {name!r}: depth must be in 1..{MAX_DEPTH} and have no common "
                        f"divisor with the unit's K = {lay.K} (e.g. {serial_depth(lay.K)}), "
                        f"not {D}")


def _check(lay: Layer, par: dict) -> None:
    name = lay.name
    for f, v in par.items():
        if f == "multiply":
            if not isinstance(v, bool):
                raise FlowError(f"layer {name!r}: multiply must be true or false, not {v!r}")
            continue
        positive_int(f"layer {name!r}: {f}", v, error=FlowError)
    if isinstance(lay, _UNITS):
        _check_unit(lay, par)
        return
    if lay.FOLD_FIELDS == ("lanes",):
        if lay.channels % par["lanes"]:
            raise FlowError(f"layer {name!r}: lanes must divide the {lay.channels} "
                            f"channels, not {par['lanes']}")
        return
    what = "input channels" if lay.kind == "conv" else "inputs"
    if lay.n_outputs % par["pe"]:
        raise FlowError(f"layer {name!r}: pe must divide the {lay.n_outputs} outputs, "
                        f"not {par['pe']}")
    if lay.n_inputs % par["simd"]:
        raise FlowError(f"layer {name!r}: simd must divide the {lay.n_inputs} {what}, "
                        f"not {par['simd']}")
    if lay.in_bits % par["planes"] or par["planes"] > lay.in_bits:
        raise FlowError(f"layer {name!r}: planes must divide the {lay.in_bits} "
                        f"spikes of an input (in_bits), not {par['planes']}")
    if par.get("multiply") and par["planes"] != lay.in_bits:
        raise FlowError(f"layer {name!r}: multiply takes whole input words (planes = "
                        f"{lay.in_bits}), not planes = {par['planes']}")


def serial_buffer(plan: NetworkPlan, lay: UnitLayer) -> int:
    """Words of the input FIFO of a serial unit layer: none behind a conv or dense engine
    (each output word takes it ``sf`` cycles: they come evenly), one pixel's words (``channels
    / serial``, at least 3: a ``SyncFIFOBuffered`` of ``B >= 3`` words takes ``B + 1``
    back to back) behind any other producer (a depthwise conv or pooling window emits
    a pixel's channel groups back to back and stalls its whole pipeline while one waits; an add
    or a gate passes its input's bursts on). Measured on ``rtl_tests/mbconv_network.py``: a
    depthwise conv (2 lanes, 72 cycles a pixel) before a 4-unit serial swish (K = 12) without
    the FIFO took 82 cycles a pixel."""
    src = plan.by_name().get(lay.inputs[0])
    if not lay.serial or isinstance(src, (ConvLayer, DenseLayer)):
        return 0
    return max(3, lay.channels // lay.serial)


def apply(plan: NetworkPlan, folding: dict) -> NetworkPlan:
    """Write a folding into the plan's layers (checked), returning the plan; a serial unit
    layer gets its input FIFO (:func:`serial_buffer`)."""
    for lay in plan.layers:
        par = _merged(lay, folding.get(lay.name, {}))
        _check(lay, par)
        lay.fold(par, cost.layer_cycles(lay, par))
        if isinstance(lay, UnitLayer):
            lay.buffer = serial_buffer(plan, lay)
    return plan


def fits(plan: NetworkPlan, arrays: dict, folding: dict, dev: dict) -> tuple[bool, str]:
    """Whether a folding of ``plan`` fits ``dev``; otherwise by how much it misses."""
    trial = apply(copy.deepcopy(plan), folding)
    assign_window_fifos(trial)
    assign_skip_fifos(trial)
    assign_gate_buffers(trial, arrays)
    assign_lut_memories(trial, arrays, dev)
    tot = cost.totals(trial, arrays, dev["clock_mhz"], dev["family"])
    return cost.check(tot, dev)


def fit_device(plan: NetworkPlan, arrays: dict, dev: dict) -> tuple[dict, str]:
    """The folding of the smallest initiation interval whose estimate fits ``dev``."""
    floor = plan.input_elements  # one pixel byte per cycle
    cands = sorted({cost.layer_cycles(s, o) for s in plan.layers for o in options(s, plan)}
                   | {floor}, reverse=True)
    cands = [c for c in cands if c >= floor]
    # cands[0] is the fully folded design; the resources grow as T shrinks
    first = choose_for_target(plan, cands[0])
    fit, why = fits(plan, arrays, first, dev)
    if not fit:
        raise BudgetError(f"{plan.name} does not fit {dev['name']} even fully folded: {why}")
    lo, hi = 0, len(cands) - 1  # cands[lo] fits; find the last index that fits
    best = first
    while lo < hi:
        mid = (lo + hi + 1) // 2
        folding = choose_for_target(plan, cands[mid])
        ok, _ = fits(plan, arrays, folding, dev)
        if ok:
            lo, best = mid, folding
        else:
            hi = mid - 1
    return best, f"largest that fits {dev['name']} (target {cands[lo]} cycles per image)"
