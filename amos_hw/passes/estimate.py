"""Step ``estimate``: cycles, latency and resources per layer and in total, before synthesis.

Per layer the figures are the engines' own properties (``expected_cycles``, ``latency``,
``luts``, ``flip_flops``, ``memory_bits``; :mod:`amos_hw.engines`); no engine uses a multiplier,
so ``est_dsp`` is 0. The glue that :class:`~amos_hw.top.NetworkTop` adds (broadcasts, lane
adapters, the result collector) is one more entry.

* ``cycles_per_image``: the steady-state initiation interval of the layer pipeline, the largest
  of the layers' cycles and of the pixel input (one byte per cycle);
* ``latency_cycles``: an estimate of the first pixel to result time of an image entering an
  empty pipeline: every layer starts when the part of its input it needs first has arrived at
  its producer's rate (the slower of the producer's own rate and its input's), then adds its
  engine's latency. The measured value is in ``docs/results/rtl_<model>.json``.
"""
from __future__ import annotations

import copy
import math

from amos_hw.lib.bram import BLOCK_MARGIN, FAMILIES, block_count, bram_budget
from amos_hw.lib.skid import SkidBuffer
from amos_hw.passes.common import BudgetError, FlowContext, FlowError
from amos_hw.passes.parallelism import passes

__all__ = ["DEVICES", "LUT_FILL", "device", "clock_mhz", "layer_estimates", "totals",
           "fits", "estimate"]

#: Resource budgets: LUT4s, flip-flops, block RAM bits (EBR), DSP blocks, default clock (MHz).
DEVICES = {
    "ecp5-25f": {"family": "ecp5", "lut4": 24288, "ff": 24288, "bram_blocks": 56,
                 "bram_bits": 56 * 18432, "dsp": 28, "clock_mhz": 50.0},
    "ecp5-45f": {"family": "ecp5", "lut4": 43848, "ff": 43848, "bram_blocks": 108,
                 "bram_bits": 108 * 18432, "dsp": 72, "clock_mhz": 50.0},
    "ecp5-85f": {"family": "ecp5", "lut4": 83640, "ff": 83640, "bram_blocks": 208,
                 "bram_bits": 208 * 18432, "dsp": 156, "clock_mhz": 50.0},
    "ice40-up5k": {"family": "ice40", "lut4": 5280, "ff": 5280, "bram_blocks": 30,
                   "bram_bits": 30 * 4096, "dsp": 8, "clock_mhz": 24.0},
}
_ALIASES = {"up5k": "ice40-up5k", "ice40up5k": "ice40-up5k", "ecp5-25": "ecp5-25f",
            "ecp5-45": "ecp5-45f", "ecp5-85": "ecp5-85f", "25f": "ecp5-25f", "45f": "ecp5-45f",
            "85f": "ecp5-85f"}
#: Share of a device's LUTs a design may plan for (routing needs the rest).
LUT_FILL = 0.8
DEFAULT_CLOCK_MHZ = 50.0


def device(name: str) -> dict:
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in DEVICES:
        raise FlowError(f"unknown board {name!r}; known: {', '.join(DEVICES)}")
    return {"name": key, **DEVICES[key]}


def clock_mhz(cfg) -> float:
    if cfg.clock_mhz is not None:
        c = cfg.clock_mhz
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not c > 0:
            raise FlowError(f"--clock-mhz must be a positive number, not {c!r}")
        return float(c)
    if cfg.board is not None:
        return device(cfg.board)["clock_mhz"]
    return DEFAULT_CLOCK_MHZ


def _engines(plan, arrays):
    from amos_hw.top import make_engine, silence

    out = {}
    for spec in plan["layers"]:
        try:
            eng = make_engine(spec, arrays)
        except (TypeError, ValueError) as e:
            raise FlowError(f"layer {spec['name']!r}: the engine refuses it: {e}") from None
        silence(eng)
        out[spec["name"]] = eng
    return out


def _glue(plan) -> dict:
    """Skid buffers, broadcasts, lane adapters and the result collector."""
    by_name = {s["name"]: s for s in plan["layers"]}
    lut = ff = 0
    users: dict[str, int] = {}
    for spec in plan["layers"]:
        lanes_in = [spec["in_lanes"], spec.get("skip_lanes", 0)]
        for src, want in zip(spec["inputs"], lanes_in, strict=False):
            users[src] = users.get(src, 0) + 1
            if src == "input":
                have, width = 1, plan["input"]["bits"]
            else:
                have, width = by_name[src]["out_lanes"], by_name[src]["out_width"]
            if have != want:
                bits = (max(have, want) + min(have, want)) * width
                ff += bits + 8
                lut += bits + 16
    feeds_dense = {spec["inputs"][0] for spec in plan["layers"] if spec["kind"] == "dense"}
    for src in users:  # the SkidBuffers of NetworkTop: two words and control
        if src == "input":
            bits = plan["input"]["bits"]
        elif src not in feeds_dense:
            bits = by_name[src]["out_lanes"] * by_name[src]["out_width"]
        else:
            continue
        ff += SkidBuffer.flip_flops_for(bits)
        lut += SkidBuffer.luts_for(bits)
    ff += sum(n + 1 for n in users.values() if n > 1)
    lut += sum(2 * n for n in users.values() if n > 1)
    out = by_name[plan["output"]]
    ff += 2 * plan["num_classes"] * out["out_width"] + 8
    lut += plan["num_classes"] * out["out_width"] * 2 + 16
    return {"name": "glue", "kind": "glue", "est_lut4": lut, "est_ff": ff, "est_bram_bits": 0,
            "est_dsp": 0}


def layer_estimates(plan: dict, arrays: dict, family: str | None = None) -> list[dict]:
    """One dict per layer: folding, cycles, latency and resource estimates; with an FPGA
    ``family`` (``ecp5``, ``ice40``) also the block RAMs its memories take there
    (``est_bram_blocks``, :mod:`amos_hw.lib.bram`)."""
    engines = _engines(plan, arrays)
    rows = []
    for spec in plan["layers"]:
        e = engines[spec["name"]]
        fold = ({"pe": spec["pe"], "simd": spec["simd"],
                 "planes": spec.get("planes", spec["in_bits"])} if "pe" in spec
                else {"lanes": spec["lanes"]})
        if e.expected_cycles != spec["cycles"]:  # the plan's formula must be the engine's
            raise FlowError(f"layer {spec['name']!r}: planned {spec['cycles']} cycles, the "
                            f"engine states {e.expected_cycles}")
        rows.append({"name": spec["name"], "kind": spec["kind"], **fold,
                     "cycles_per_image": e.expected_cycles, "latency_cycles": e.latency,
                     "est_lut4": e.luts, "est_ff": e.flip_flops,
                     "est_bram_bits": e.memory_bits, "est_dsp": 0})
        if family is not None:
            rows[-1]["est_bram_blocks"] = block_count(e.memories, family)
    return rows


def _latency(plan: dict, rows: list[dict]) -> int:
    """Estimated first-pixel-to-result cycles through an empty pipeline (module docstring)."""
    by_name = {s["name"]: s for s in plan["layers"]}
    row = {r["name"]: r for r in rows}
    # tensor -> (time of its first element, elements per cycle it then arrives at)
    t = {"input": (0.0, 1.0)}
    for spec in plan["layers"]:
        name = spec["name"]
        t0, rate = t[spec["inputs"][0]]
        out_elems = math.prod(spec["out_shape"])
        k = spec["kind"]
        if k == "conv":
            first_rows = min(spec["height"], spec["kernel"] - spec["padding"])
            need = first_rows * spec["width"] * spec["c_in"]
            in_elems = spec["height"] * spec["width"] * spec["c_in"]
            mvu = row[name]["latency_cycles"] - (need // spec["simd"] + 1)
            start = t0 + max(need / rate, need / spec["simd"])
            own = out_elems / spec["cycles"]
        elif k == "dense":
            need = spec["n_in"]
            in_elems = need
            per_cycle = spec["simd"] / passes(spec)
            mvu = row[name]["latency_cycles"] - int(need / per_cycle)
            start = t0 + max(need / rate, need / per_cycle)
            own = out_elems / spec["cycles"]
        elif k == "gap":
            in_elems = spec["height"] * spec["width"] * spec["channels"]
            need = in_elems - spec["channels"] + spec["lanes"]
            mvu = 1
            start = t0 + max(need / rate, need / spec["lanes"]) - 1
            own = out_elems / spec["cycles"]
        else:
            ts, _ = t[spec["inputs"][1]]
            in_elems = out_elems
            mvu = row[name]["latency_cycles"]
            start = max(t0, ts)
            own = out_elems / spec["cycles"]
        first = start + mvu
        # a convolution streams at its input's pace; dense and pooling start once all of their
        # input is in, then run at their own pace
        t[name] = (first, min(own, rate * out_elems / in_elems) if k in ("conv", "add")
                   else own)
    t0, rate = t[plan["output"]]
    out = by_name[plan["output"]]
    words = plan["num_classes"] // out["out_lanes"]
    return int(math.ceil(t0 + (words - 1) * out["out_lanes"] / rate + 1))


def _adapt_span(span: float, d: float, have: int, want: int) -> tuple[float, float]:
    """Span (first to last word, cycles) and word interval after a lane adapter."""
    if have == want:
        return span, d
    if want > have:  # gather: every n-th word leaves
        n = want // have if want % have == 0 else want // math.gcd(have, want)
        return max(0.0, span - (n - 1) * d), n * d
    n = have // want if have % want == 0 else have // math.gcd(have, want)
    return span + (n - 1), max(1.0, d / n)


def inexact_layers(plan: dict) -> list[str]:
    """Dense layers whose cycles :func:`pipeline_ii` cannot state exactly: time-serial
    (``planes < in_bits``), fed by a dense layer through a gathering lane adapter (producer
    ``pe`` < consumer ``simd``), slower than that producer, with a first fold stretched by the
    producer's pace. The producer then runs ahead into the adapter and the first fold shrinks by
    an amount that depends on the adapter's fill; the generator refuses such foldings rather
    than report a wrong figure."""
    by_name = {s["name"]: s for s in plan["layers"]}
    _, per = pipeline_ii(plan)
    out = []
    for spec in plan["layers"]:
        src = by_name.get(spec["inputs"][0])
        if (spec["kind"] != "dense" or passes(spec) == 1 or src is None
                or src["kind"] != "dense" or src["out_lanes"] >= spec["in_lanes"]):
            continue
        P = passes(spec)
        nf, sf = spec["n_out"] // spec["pe"], spec["n_in"] // spec["simd"] * P
        if per[spec["name"]] > per[src["name"]] and per[spec["name"]] > nf * sf:
            out.append(spec["name"])
    return out


def pipeline_ii(plan: dict) -> tuple[int, dict]:
    """Steady-state cycles per image of the whole pipeline, and each layer's share.

    Convolutions, pooling and adds decouple their input (line buffer, ring, FIFO): a layer takes
    its engine's ``expected_cycles``. A dense engine reads its input only during its first output
    fold, so that fold lasts as long as its input takes to arrive (the span from the first to
    the last input word of an image: pixel bytes gathered into ``simd``-wide words, or a previous
    dense layer's outputs, one every ``sf`` cycles); it then needs ``(nf - 1) * sf`` cycles for
    the other folds: ``max(nf * sf, span + 1 + (nf - 1) * sf)``. When that makes it slower
    than a dense producer that feeds it directly, the producer holds its first output of the
    next image in its AMOS unit and computes on until its next result needs the unit: the
    consumer's first fold then shrinks by up to ``sf_p - (K_p + 2)`` cycles.
    """
    span: dict[str, tuple[float, float, int]] = {
        "input": (plan["input"]["elements"] - 1.0, 1.0, 1)}
    by_name = {s["name"]: s for s in plan["layers"]}
    ii = {}
    for spec in plan["layers"]:
        s_in, d_in, lanes = span[spec["inputs"][0]]
        s_in, d_in = _adapt_span(s_in, d_in, lanes, spec["in_lanes"])
        k = spec["kind"]
        if k == "dense":
            P = passes(spec)
            sf = spec["n_in"] // spec["simd"] * P  # cycles of one output fold
            nf = spec["n_out"] // spec["pe"]
            f0 = max(sf, int(round(s_in)) + P)
            busy = f0 + (nf - 1) * sf
            src = by_name.get(spec["inputs"][0])
            if (src is not None and src["kind"] == "dense" and src["out_bits"] is not None
                    and src["out_lanes"] == spec["in_lanes"] and busy > ii[src["name"]]):
                sf_p = src["n_in"] // src["simd"] * passes(src)
                busy -= min(busy - ii[src["name"]], max(0, sf_p - (src["out_bits"] + 2)))
            ii[spec["name"]] = max(nf * sf, busy)
            span[spec["name"]] = ((nf - 1) * sf, float(sf), spec["out_lanes"])
        elif k == "gap":
            ii[spec["name"]] = spec["cycles"]
            words = spec["channels"] // spec["lanes"]
            span[spec["name"]] = ((words - 1) * max(1.0, d_in), max(1.0, d_in),
                                  spec["out_lanes"])
        else:
            ii[spec["name"]] = spec["cycles"]
            words = math.prod(spec["out_shape"]) // spec["out_lanes"]
            d = spec["cycles"] / words
            span[spec["name"]] = ((words - 1) * d, d, spec["out_lanes"])
    return max([plan["input"]["elements"], *ii.values()]), ii


def totals(plan: dict, arrays: dict, clock: float, family: str | None = None) -> dict:
    """Per-layer rows (plus glue) and the totals for a plan with folding and memory assigned;
    with an FPGA ``family`` also the block RAMs (``est_bram_blocks``)."""
    rows = layer_estimates(plan, arrays, family)
    glue = _glue(plan)
    ii, per_layer = pipeline_ii(plan)
    for r in rows:
        r["engine_cycles"] = r["cycles_per_image"]
        r["cycles_per_image"] = per_layer[r["name"]]
        r["images_per_s"] = round(clock * 1e6 / r["cycles_per_image"], 3)
    total = {k: sum(r[k] for r in rows) + glue[k]
             for k in ("est_lut4", "est_ff", "est_bram_bits", "est_dsp")}
    if family is not None:
        total["est_bram_blocks"] = sum(r["est_bram_blocks"] for r in rows)
    return {"layers": rows, "glue": glue, "cycles_per_image": ii,
            "latency_cycles": _latency(plan, rows), **total, "clock_mhz": clock,
            "images_per_s": round(clock * 1e6 / ii, 3),
            "bottleneck": ("pixel input" if ii == plan["input"]["elements"]
                           else max(rows, key=lambda r: r["cycles_per_image"])["name"])}


def fits(ctx: FlowContext, folding: dict, dev: dict) -> tuple[bool, str]:
    """Whether a folding of ``ctx.plan`` fits ``dev``; otherwise by how much it misses."""
    from amos_hw.passes.memory import assign
    from amos_hw.passes.parallelism import apply

    plan = apply(copy.deepcopy(ctx.plan), folding)
    assign(plan)
    tot = totals(plan, ctx.graph.arrays, dev["clock_mhz"], dev["family"])
    return _check(tot, dev)


def _check(tot: dict, dev: dict) -> tuple[bool, str]:
    misses = []
    usable = int(dev["lut4"] * LUT_FILL)
    # the ECP5 carry form moves the spike gates into flip-flops: the FFs can outgrow the LUTs
    for key, budget, unit in (("est_lut4", usable, "LUT4"),
                              ("est_ff", int(dev["ff"] * LUT_FILL), "flip-flops"),
                              ("est_bram_blocks", bram_budget(dev["family"], dev["bram_blocks"]),
                               f"{FAMILIES[dev['family']]['block']} block RAMs")):
        need = tot[key]
        if need > budget:
            top = max(tot["layers"], key=lambda r: r[key])
            what = (f"of {dev[{'est_lut4': 'lut4', 'est_ff': 'ff'}[key]]} ({LUT_FILL:.0%} "
                    f"usable)" if key in ("est_lut4", "est_ff")
                    else f"(the device's {dev['bram_blocks']} and {BLOCK_MARGIN[dev['family']]:.0%}"
                         f" for the count erring full)" if budget > dev["bram_blocks"] else "")
            misses.append(f"needs {need} {unit}, budget {budget} {what}".rstrip()
                          + f": over by {need - budget} ({100 * (need - budget) / budget:.0f}%"
                          f"), layer {top['name']!r} dominates with {top[key]}")
    return (not misses), "; ".join(misses)


def estimate(ctx: FlowContext) -> dict:
    cfg = ctx.config
    clock = clock_mhz(cfg)
    family = device(cfg.board)["family"] if cfg.board is not None else None
    tot = totals(ctx.plan, ctx.graph.arrays, clock, family)
    ctx.plan["latency_cycles"] = tot["latency_cycles"]
    ctx.plan["cycles_per_image"] = tot["cycles_per_image"]
    report = {"model": ctx.model_name, "model_sha256": ctx.model_hash,
              "neurons": ctx.plan["neurons"], "time_steps": ctx.plan["time_steps"],
              "parallelism": ctx.plan["parallelism"], **tot}
    if cfg.board is not None:
        dev = device(cfg.board)
        ok, why = _check(tot, dev)
        report["board"] = {"name": dev["name"], "fits": ok, "lut4": dev["lut4"],
                           "bram_bits": dev["bram_bits"], "bram_blocks": dev["bram_blocks"],
                           "dsp": dev["dsp"]}
        if not ok:
            raise BudgetError(f"{ctx.model_name} does not fit {dev['name']}: {why}")
    ctx.report = report
    return report
