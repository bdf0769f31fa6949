"""Run a generated network under cocotb over real test images (pytest side and a CLI).

``python -m rtl_tests.network --model resnet8 --images 10000 --sim verilator`` runs the whole
CIFAR-10 test set through the generated ResNet8 and writes ``docs/results/rtl_resnet8.json``
(images run, mismatches against python_ref, measured cycles per image and latency, accuracy).

The whole test set takes about 5 hours on one core (0.5 images/s). ``--shard I/N`` runs every
``N``-th image starting at ``I`` (so each shard spans all classes) and writes
``build/rtl_shards/<model>-<hash>-<I>of<N>-<sim>.json``; run the ``N`` shards side by side on ``N``
cores, then ``--merge N`` adds them up into the result file once all ``N`` are there (same model
hash and generator commit), as the run ``<sim>-full``::

    for i in 0 1 2 3 4 5 6 7; do python -m rtl_tests.network --shard $i/8 & done; wait
    python -m rtl_tests.network --merge 8
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from amos_hw.devices import DEVICES
from amos_hw.flow import FlowConfig, run_flow
from amos_hw.lib.spiflash import flash_contents
from amos_hw.passes.emit import top_name
from python_ref import ir, snn
from python_ref.data import load_cifar10, load_digits
from rtl_tests.harness import build_root, run_cocotb

__all__ = ["CI_PARALLELISM", "pick_images", "run_network", "tiny_resnet", "main"]

_REPO = Path(__file__).resolve().parent.parent

#: Folding used for the RTL runs of each model (kept small enough to compile and simulate in CI).
CI_PARALLELISM = {
    "digits": None,
    "resnet8": {"target_fps": None, "target_cycles": 65536},
}


def dataset_for(model: str):
    if model == "digits":
        return load_digits("test")
    return load_cifar10(split="test")


def pick_images(x, y, count: int, seed: int = 0, shard: tuple[int, int] | None = None):
    """``count`` test images: all of them, or a seeded subset across the (class-sorted) set;
    with ``shard = (i, n)``, every ``n``-th image of the whole set from ``i`` (``count`` unused)."""
    if shard is not None:
        i, n = shard
        return x[i::n], y[i::n]
    if count >= len(x):
        return x, y
    idx = np.sort(np.random.default_rng(seed).choice(len(x), count, replace=False))
    return x[idx], y[idx]


def design(model: str, **cfg):
    """Generate the design in memory: (context, Verilog text)."""
    ctx = run_flow(FlowConfig(model=model, quiet=True, **cfg))
    return ctx, ctx.verilog


#: Verilator's C++ of a whole network is large: its fast path compiled with -O1 builds several
#: times faster than the default -Os and runs about as fast; the slow path (initialisation and
#: cocotb's signal table, one huge function) stays at -O0, which GCC compiles in seconds.
VERILATOR_MAKEFLAGS = "OPT_FAST=-O1 OPT_GLOBAL=-O1"
#: cocotb's runner marks every signal public (``--public-flat-rw``), which keeps Verilator from
#: optimising the design; the test drives and reads top-level ports only, so only the top
#: module's signals are made public (digits: 2.3x faster, ResNet8: see docs/results).
VERILATOR_ARGS = ("--no-public-flat-rw", "--public-depth", "1")


def run_network(model: str, count: int, sim: str, *, seed: int = 0, check_cycles=True,
                log_every: int = 0, warmup: int = 2, images=None, shard=None, **cfg) -> dict:
    """Generate, simulate ``count`` test images, compare with python_ref; return the summary.

    ``images``: ``(x, y)`` to use instead of the model's test set.
    """
    git = _git_state()  # the generator that emits the Verilog, recorded before the long run
    ctx, verilog = design(model, **cfg)
    x, y = images if images is not None else dataset_for(ctx.model_name)
    x, y = pick_images(x, y, count, seed, shard)
    ref = snn.run(ctx.graph, x, batch_size=200, progress=count > 1000)
    tag = f"{ctx.model_hash[:8]}-{ctx.report['cycles_per_image']}-{len(x)}-{seed}"
    if shard is not None:
        tag += f"-shard{shard[0]}of{shard[1]}"
    work = build_root() / f"data-{ctx.model_name}-{tag}"
    work.mkdir(parents=True, exist_ok=True)
    data = work / "images.npz"
    np.savez(data, x=x, y=y, logits=ref.logits, classes=ref.classes)
    summary = work / f"summary-{sim}.json"
    summary.unlink(missing_ok=True)
    saved = os.environ.get("MAKEFLAGS")
    if sim == "verilator":
        os.environ["MAKEFLAGS"] = f"{saved or ''} {VERILATOR_MAKEFLAGS}".strip()
    try:
        _run(verilog, ctx, sim, data, summary, log_every, warmup, check_cycles)
    finally:
        if saved is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = saved
    out = json.loads(summary.read_text())
    out.update({"model": ctx.model_name, "simulator": sim, "model_sha256": ctx.model_hash,
                "parallelism": ctx.report.get("parallelism"),
                "architecture": ctx.report.get("architecture", "pipelined"),
                "est_lut4": ctx.report["est_lut4"], "clock_mhz": ctx.report["clock_mhz"],
                "images_per_s_at_clock": ctx.report["images_per_s"],
                "ccu2c_cells": verilog.count("CCU2C #("),  # the ECP5 carry form's cells
                "generator_git": git})
    return out


def _git_state() -> str:
    """Commit of the generator that emitted the simulated Verilog (``+dirty`` with local
    changes)."""
    from amos_hw.backend.manifest import git_state

    return git_state(("amos_hw", "python_ref")) or "unknown"


def _run(verilog, ctx, sim, data, summary, log_every, warmup, check_cycles):
    run_cocotb(verilog, toplevel=top_name(ctx.model_name), test_module="rtl_tests.tb_network",
               sim=sim, build_args=VERILATOR_ARGS if sim == "verilator" else (),
               params={"data": str(data), "summary": str(summary),
                       "cycles_per_image": ctx.report["cycles_per_image"],
                       "latency_cycles": ctx.report["latency_cycles"],
                       "logit_width": ctx.top.logit_width, "num_classes": ctx.top.num_classes,
                       "log_every": log_every, "warmup": warmup, "check_cycles": check_cycles,
                       "flash": flash_contents(ctx.top)})


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m rtl_tests.network", description=__doc__)
    p.add_argument("--model", default="resnet8")
    p.add_argument("--images", type=int, default=10000)
    p.add_argument("--sim", default="verilator", choices=("verilator", "icarus"))
    p.add_argument("--seed", type=int, default=0, help="subset seed (when --images < all)")
    p.add_argument("--target-cycles", type=int, default=None,
                   help="fold for this many cycles per image (default: the CI folding)")
    p.add_argument("--architecture", default="pipelined", choices=("pipelined", "shared"),
                   help="the generator's architecture (shared: one engine for every layer; "
                        "results go to rtl_<model>_shared.json)")
    p.add_argument("--board", default=None, metavar="DEVICE",
                   help="simulate the network a board build makes for this device (its "
                        "folding, and the ECP5 carry form on an ECP5: ecp5-85f, ecp5-45f; on "
                        "ecp5-25f ResNet8 is the shared engine with its weights in an SPI flash, "
                        "modelled here); "
                        "results go to rtl_<model>_<device>.json")
    p.add_argument("--out", default=None,
                   help="result JSON (default docs/results/rtl_<model>.json)")
    p.add_argument("--shard", default=None, metavar="I/N",
                   help="run every N-th test image from I (see the module docstring)")
    p.add_argument("--merge", type=int, default=None, metavar="N",
                   help="add up the N shards of build/rtl_shards into the result file")
    return p


def _flow_config(p, args) -> dict:
    """The generator options of the run (its folding, architecture or board)."""
    if args.board is not None:
        if args.target_cycles is not None or args.architecture == "shared":
            p.error("--board takes the board build's folding and architecture: leave out "
                    "--target-cycles and --architecture")
        if args.board not in DEVICES:
            p.error(f"--board: unknown device {args.board!r}; known: {', '.join(DEVICES)}")
        return {"board": args.board}
    if args.architecture == "shared":
        if args.target_cycles is not None:
            p.error("--target-cycles folds the pipelined engines; the shared engine has one "
                    "speed")
        return {"architecture": "shared"}
    return ci_config(Path(args.model).stem, args.target_cycles)


def _shard(p, text) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        i, n = (int(v) for v in text.split("/"))
        if not 0 <= i < n:
            raise ValueError
    except ValueError:
        p.error(f"--shard must be I/N with 0 <= I < N, not {text!r}")
    return i, n


def _save_shard(res: dict, shard: tuple[int, int], sim: str) -> None:
    res["shard"] = list(shard)
    SHARDS.mkdir(parents=True, exist_ok=True)
    f = SHARDS / (f"{res['model']}-{res['model_sha256'][:12]}-{shard[0]}of{shard[1]}-"
                  f"{sim}.json")
    f.write_text(json.dumps(res, indent=1, sort_keys=True) + "\n")
    print(json.dumps(res, indent=1, sort_keys=True))
    print(f"wrote {f}; when all {shard[1]} shards are there: python -m rtl_tests.network "
          f"--model {res['model']} --sim {sim} --merge {shard[1]}")


def main(argv=None) -> int:
    p = _parser()
    args = p.parse_args(argv)
    cfg = _flow_config(p, args)
    suffix = ("_shared" if args.architecture == "shared" else "") if args.board is None \
        else f"_{args.board}"
    out = (Path(args.out) if args.out
           else _REPO / "docs" / "results" / f"rtl_{Path(args.model).stem}{suffix}.json")
    if args.merge is not None:
        try:
            res = merge_shards(Path(args.model).stem, args.sim, args.merge)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        _write_result(out, res, f"{args.sim}-full")
        return 0 if res["mismatches"] == 0 else 1
    shard = _shard(p, args.shard)
    res = run_network(args.model, args.images, args.sim, seed=args.seed, log_every=10,
                      shard=shard, **cfg)
    if shard is not None:
        _save_shard(res, shard, args.sim)
    else:
        _write_result(out, res, args.sim)
    return 0 if res["mismatches"] == 0 else 1


SHARDS = _REPO / "build" / "rtl_shards"


def merge_shards(model: str, sim: str, n: int) -> dict:
    """Add up the ``n`` shard results of ``model`` on ``sim`` (one model hash, one generator)."""
    found = {}
    for f in sorted(SHARDS.glob(f"{model}-*-*of{n}-{sim}.json")):
        r = json.loads(f.read_text())
        found.setdefault((r["model_sha256"], r.get("generator_git")), {})[r["shard"][0]] = r
    if not found:
        raise ValueError(f"no shards of {model} on {sim} split {n} ways in {SHARDS}")
    (sha, git), shards = max(found.items(), key=lambda kv: len(kv[1]))
    missing = sorted(set(range(n)) - set(shards))
    if missing:
        raise ValueError(f"shards {missing} of {n} ({model}, {sim}, model {sha[:12]}, generator "
                         f"{git}) are not there yet; run them with --shard I/{n}")
    rs = [shards[i] for i in range(n)]
    images = sum(r["images"] for r in rs)
    first = rs[0]
    measured = {r["cycles_per_image_measured"] for r in rs}
    res = {k: first[k] for k in ("model", "model_sha256", "simulator", "parallelism",
                                 "est_lut4", "clock_mhz", "images_per_s_at_clock",
                                 "cycles_per_image_report", "latency_cycles_report",
                                 "generator_git")}
    res.update({
        "images": images,
        "shards": n,
        "mismatches": sum(r["mismatches"] for r in rs),
        "first_mismatches": [m for r in rs for m in r["first_mismatches"]][:10],
        "accuracy": round(sum(r["accuracy"] * r["images"] for r in rs) / images, 6),
        "reference_accuracy": round(sum(r["reference_accuracy"] * r["images"] for r in rs)
                                    / images, 6),
        "cycles_per_image_measured": measured.pop() if len(measured) == 1 else sorted(measured),
        "latency_cycles_measured": max(r["latency_cycles_measured"] for r in rs),
    })
    return res


def _write_result(out: Path, res: dict, run_name: str) -> None:
    # one file per model; each simulator's latest run is kept under "runs"
    doc = {}
    if not out.parent.is_dir():
        out.parent.mkdir(parents=True)
    if out.is_file():
        doc = json.loads(out.read_text())
        if doc.get("model_sha256") != res["model_sha256"]:
            doc = {}
    doc.update({"model": res["model"], "model_sha256": res["model_sha256"],
                "command": "python -m rtl_tests.network --model "
                           f"{res['model']} --images N --sim {{verilator,icarus}}"})
    doc.setdefault("runs", {})[run_name] = res
    out.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    print(json.dumps(res, indent=1, sort_keys=True))


def ci_config(model: str, target_cycles: int | None = None) -> dict:
    """FlowConfig keywords of the folding the RTL tests use for ``model``."""
    if target_cycles is None:
        target_cycles = (CI_PARALLELISM.get(model) or {}).get("target_cycles")
    if target_cycles is None:
        return {}
    # a frame rate at the default 50 MHz clock that gives that many cycles per image
    return {"target_fps": 50e6 / target_cycles}


def layer_builders(rng, arrays: dict, unit: str, bias_limit: int):
    """Node builders for random test descriptions: ``conv(name, inp, cin, cout, k, s, p)``
    (int8 weights, then biases in ``-bias_limit..bias_limit-1``, drawn from ``rng`` into
    ``arrays``) and ``act(name, inp, shift)`` (the ReLU unit ``unit``)."""
    def conv(name, inp, cin, cout, k, s, p):
        arrays[f"{name}.w"] = rng.integers(-127, 128, (cout, k, k, cin))
        arrays[f"{name}.b"] = rng.integers(-bias_limit, bias_limit, cout)
        return {"name": name, "op": "conv", "inputs": [inp], "weight": f"{name}.w",
                "bias": f"{name}.b", "kernel": k, "stride": s, "padding": p, "out_channels": cout}

    def act(name, inp, shift):
        return {"name": name, "op": "amos", "inputs": [inp], "unit": unit, "rshift": [shift]}
    return conv, act


def tiny_resnet(path, seed=0, shifts=(11, 8, 8, 8, 8)):
    """A two-block residual network on 8x8x3 images (identity and projection shortcuts, gap,
    dense) with random int8 weights, written as a validated description."""
    rng = np.random.default_rng(seed)
    A = {}
    conv, act = layer_builders(rng, A, "r4", 200)
    n = [{"name": "input", "op": "input", "inputs": [], "shape": [8, 8, 3], "bits": 8}]
    n += [conv("stem", "input", 3, 4, 3, 1, 1), act("stem.act", "stem", shifts[0])]
    n += [conv("b0.c1", "stem.act", 4, 4, 3, 1, 1), act("b0.a1", "b0.c1", shifts[1]),
          conv("b0.c2", "b0.a1", 4, 4, 3, 1, 1),
          {"name": "b0.add", "op": "add", "inputs": ["b0.c2", "stem.act"], "lshift": [0, 3]},
          act("b0.a2", "b0.add", shifts[2])]
    n += [conv("b1.c1", "b0.a2", 4, 8, 3, 2, 1), act("b1.a1", "b1.c1", shifts[3]),
          conv("b1.c2", "b1.a1", 8, 8, 3, 1, 1), conv("b1.sc", "b0.a2", 4, 8, 1, 2, 0),
          {"name": "b1.add", "op": "add", "inputs": ["b1.c2", "b1.sc"], "lshift": [0, 0]},
          act("b1.a2", "b1.add", shifts[4])]
    n += [{"name": "gap", "op": "gap", "inputs": ["b1.a2"]}]
    A["fc.w"] = rng.integers(-127, 128, (3, 8))
    A["fc.b"] = rng.integers(-1000, 1000, 3)
    n += [{"name": "fc", "op": "dense", "inputs": ["gap"], "weight": "fc.w", "bias": "fc.b",
           "out_features": 3}]
    g = ir.Graph("tiny_resnet", n, {"r4": {"kind": "relu", "K": 4}}, A, ["fc"])
    ir.save(g, path)
    return g


if __name__ == "__main__":
    sys.exit(main())
