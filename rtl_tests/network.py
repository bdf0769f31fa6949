"""Run a generated network in RTL over real test images (pytest side and a CLI).

``python -m rtl_tests.network --model resnet8 --images 10000 --sim verilator`` runs the whole
CIFAR-10 test set through the generated ResNet8 and writes ``docs/results/rtl_resnet8.json``
(images run, mismatches against python_ref, measured cycles per image and latency, accuracy,
simulation speed).

On Verilator the network runs on the native C++ bench of :mod:`rtl_tests.native` (no Python on
the clock); on Icarus, and for the shared engine with its weights in an SPI flash (which the
native bench does not model), under cocotb (:mod:`rtl_tests.tb_network`).

Many images run as tasks on Dask (:mod:`amos_hw.backend.cluster`, the ``cluster`` extra): the
chosen images are split into chunks of at most ``--chunk`` (default 250), each chunk one task on
a local cluster of this machine's cores (``--workers N`` for fewer) or on the running cluster at
``--scheduler ADDRESS``, with a progress bar; the design is built once, by a first one-image
task, and the chunks reuse the build. A chunk that fails (a mismatching image fails it) is
retried (``--retries``), then the run fails naming it, and no result is written. The chunks'
summaries are merged into one (:func:`merge_chunks`: the counts add up, the measured cycles per
image must agree, the latency is the largest)::

    python -m rtl_tests.network --model resnet8 --images 10000
    python -m rtl_tests.network --model resnet8 --images 10000 --scheduler tcp://host:8786

``--spike-counts`` generates the network with its spike counters
(:class:`amos_hw.lib.spike_tally.SpikeTally`) and compares every image's spikes, in total and
per AMOS layer, with python_ref's (``SimResult.spikes``): ``spike_mismatches`` in the result,
written to ``rtl_<model>_spikes.json``; a mismatching image fails the run as a mismatching
logit does::

    python -m rtl_tests.network --model resnet8 --images 200 --spike-counts
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from amos_hw.backend.cluster import ClusterError, Task, add_cluster_arguments, cluster, run_tasks
from amos_hw.backend.manifest import git_state
from amos_hw.devices import DEVICES
from amos_hw.engines.carry import CARRY_FORMS
from amos_hw.flow import FlowConfig, run_flow
from amos_hw.lib.checks import positive_int
from amos_hw.lib.spiflash import flash_contents
from amos_hw.passes.emit import top_name
from python_ref import ir, snn
from python_ref.data import load_cifar10, load_digits
from rtl_tests import native
from rtl_tests.harness import RTLTestFailure, build_root, run_cocotb

__all__ = ["CHUNK", "CI_PARALLELISM", "ChunkMergeError", "main", "merge_chunks", "pick_images",
           "run_chunk", "run_chunked", "run_network", "split_images", "tiny_resnet"]

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


def pick_images(x, y, count: int, seed: int = 0):
    """``count`` test images: all of them, or a seeded subset across the (class-sorted) set."""
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
                log_every: int = 0, warmup: int = 2, images=None, **cfg) -> dict:
    """Generate, simulate ``count`` test images, compare with python_ref; return the summary.

    ``images``: ``(x, y)`` to use instead of the model's test set.
    """
    git = _git_state()  # the generator that emits the Verilog, recorded before the long run
    ctx, verilog = design(model, **cfg)
    x, y = images if images is not None else dataset_for(ctx.model_name)
    x, y = pick_images(x, y, count, seed)
    ref = snn.run(ctx.graph, x, batch_size=200, progress=count > 1000)
    if sim == "verilator" and not flash_contents(ctx.top):
        out = _run_native(ctx, x, y, ref, warmup, check_cycles)
    else:
        out = _run_cocotb_network(ctx, verilog, x, y, ref, sim, seed, log_every, warmup,
                                  check_cycles)
    out.update({"model": ctx.model_name, "simulator": sim, "model_sha256": ctx.model_hash,
                "parallelism": ctx.report.get("parallelism"),
                "architecture": ctx.report.get("architecture", "pipelined"),
                "est_lut4": ctx.report["est_lut4"], "clock_mhz": ctx.report["clock_mhz"],
                "images_per_s_at_clock": ctx.report["images_per_s"],
                "ccu2c_cells": verilog.count("CCU2C #("),  # the ECP5 carry form's cells
                # what was simulated: chunks of one run must agree on it (merge_chunks)
                "verilog_sha256": hashlib.sha256(verilog.encode()).hexdigest(),
                "generator_git": git})
    return out


def _run_native(ctx, x, y, ref, warmup, check_cycles) -> dict:
    """The Verilator run on the native bench; fails as the cocotb run does (mismatches,
    cycles other than the report's)."""
    res = native.simulate(ctx, x, y, ref, warmup=warmup)
    del res["mismatch_indices"]  # first_mismatches is enough for a result file
    res["bench"] = "native"
    bad = res["first_mismatches"]
    if bad:
        raise RTLTestFailure(f"{res['mismatches']} of {len(x)} images differ from python_ref "
                             f"on the native bench (first: {bad})")
    if res.get("spike_mismatches"):
        raise RTLTestFailure(f"the spike counts of {res['spike_mismatches']} of {len(x)} images "
                             f"differ from python_ref on the native bench (first: "
                             f"{res['first_spike_mismatches']})")
    if check_cycles and res["cycles_ok"] is False:
        raise RTLTestFailure(
            f"intervals between results {res['cycles_per_image_intervals']} != report.json's "
            f"{res['cycles_per_image_report']} cycles per image (native bench)")
    return res


def _run_cocotb_network(ctx, verilog, x, y, ref, sim, seed, log_every, warmup,
                        check_cycles) -> dict:
    """The cocotb run (:mod:`rtl_tests.tb_network`): Icarus, and the flash form on
    Verilator."""
    tag = f"{ctx.model_hash[:8]}-{ctx.report['cycles_per_image']}-{len(x)}-{seed}"
    work = build_root() / f"data-{ctx.model_name}-{tag}"
    work.mkdir(parents=True, exist_ok=True)
    data = work / "images.npz"
    layers = list(getattr(ctx.top, "spike_layers", ()))
    spikes = (np.stack([ref.spikes[name] for name in layers], axis=1) if layers
              else np.zeros((len(x), 0), np.int64))
    np.savez(data, x=x, y=y, logits=ref.logits, classes=ref.classes, layer_spikes=spikes)
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
    out["bench"] = "cocotb"
    return out


def _git_state() -> str:
    """Commit of the generator that emitted the simulated Verilog (``+dirty`` with local
    changes)."""
    return git_state(("amos_hw", "python_ref")) or "unknown"


def _run(verilog, ctx, sim, data, summary, log_every, warmup, check_cycles):
    run_cocotb(verilog, toplevel=top_name(ctx.model_name), test_module="rtl_tests.tb_network",
               sim=sim, build_args=VERILATOR_ARGS if sim == "verilator" else (),
               params={"data": str(data), "summary": str(summary),
                       "cycles_per_image": ctx.report["cycles_per_image"],
                       "latency_cycles": ctx.report["latency_cycles"],
                       "logit_width": ctx.top.logit_width, "num_classes": ctx.top.num_classes,
                       "log_every": log_every, "warmup": warmup, "check_cycles": check_cycles,
                       "flash": flash_contents(ctx.top),
                       "spike_layers": list(getattr(ctx.top, "spike_layers", ()))})


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m rtl_tests.network", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="resnet8")
    p.add_argument("--images", type=int, default=10000,
                   help="test images to run (all of them when this is more than the set has)")
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
    p.add_argument("--parallelism", default=None, metavar="FILE",
                   help="simulate this folding, a JSON file as python -m amos_hw.generate "
                        "--parallelism takes it (a sweep's folding: products-form layers "
                        "included), in portable adders unless --carry ecp5; results go to "
                        "rtl_<model>_<file name>.json (less a leading <model>_)")
    p.add_argument("--carry", default=None, choices=CARRY_FORMS,
                   help="with --board: the matrix-vector adders' carry form instead of the "
                        "board build's (generic: the same folding and schedule in portable "
                        "Verilog, which Verilator runs several times faster than the CCU2C "
                        "cells; the run is kept as verilator-generic-carry); with "
                        "--parallelism: the carry form (default generic)")
    p.add_argument("--spike-counts", action="store_true",
                   help="generate the network with its spike counters and compare every "
                        "image's spikes with python_ref's (results go to "
                        "rtl_<model>_spikes.json)")
    p.add_argument("--out", default=None,
                   help="result JSON (default docs/results/rtl_<model>.json)")
    run = p.add_argument_group("many images as tasks on Dask (the cluster extra)")
    run.add_argument("--chunk", type=int, default=CHUNK,
                     help=f"images per task (default {CHUNK})")
    add_cluster_arguments(run, "chunk")  # a run of one chunk runs here, without a cluster
    return p


def _flow_config(p, args) -> dict:
    """The generator options of the run (its folding, architecture or board)."""
    if args.parallelism is not None:
        if (args.board is not None or args.target_cycles is not None
                or args.architecture == "shared"):
            p.error("--parallelism is the whole folding: leave out --board, --target-cycles "
                    "and --architecture")
        if not Path(args.parallelism).is_file():
            p.error(f"--parallelism: no file {args.parallelism!r}")
        return {"parallelism": args.parallelism, "carry": args.carry or "generic"}
    if args.board is not None:
        if args.target_cycles is not None or args.architecture == "shared":
            p.error("--board takes the board build's folding and architecture: leave out "
                    "--target-cycles and --architecture")
        if args.board not in DEVICES:
            p.error(f"--board: unknown device {args.board!r}; known: {', '.join(DEVICES)}")
        return {"board": args.board, **({"carry": args.carry} if args.carry else {})}
    if args.carry is not None:
        p.error("--carry chooses the carry form of a board build's network: it needs --board "
                "or --parallelism")
    if args.architecture == "shared":
        if args.target_cycles is not None:
            p.error("--target-cycles folds the pipelined engines; the shared engine has one "
                    "speed")
        return {"architecture": "shared"}
    return ci_config(Path(args.model).stem, args.target_cycles)


def _check_run_args(p, args) -> None:
    """The image count and the chunking options, checked."""
    for what, v in (("--images", args.images), ("--chunk", args.chunk)) + (
            (("--workers", args.workers),) if args.workers is not None else ()):
        try:
            positive_int(what, v)
        except ValueError as e:
            p.error(str(e))
    if args.retries < 0:
        p.error(f"--retries must be 0 or more, not {args.retries}")


def main(argv=None) -> int:
    """Run the chosen test images, in chunks on Dask, and write the merged result.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        0 when every image matched python_ref, 1 when the run failed or did not complete (no
        result is written then; the message goes to standard error).
    """
    p = _parser()
    args = p.parse_args(argv)
    cfg = _flow_config(p, args)
    _check_run_args(p, args)
    name = Path(args.model).stem  # the model as given: the result file's and its command's
    if args.parallelism is not None:  # the file's name, less the model's (rtl_<model>_x2.json)
        suffix = "_" + Path(args.parallelism).stem.removeprefix(f"{name}_")
    elif args.board is not None:
        suffix = f"_{args.board}"
    else:
        suffix = "_shared" if args.architecture == "shared" else ""
    if args.spike_counts:
        cfg["spike_counts"] = True
        suffix += "_spikes"
    out = (Path(args.out) if args.out
           else _REPO / "docs" / "results" / f"rtl_{name}{suffix}.json")
    x, y = pick_images(*dataset_for(name), args.images, args.seed)
    t0 = time.perf_counter()
    try:
        res = run_chunked(args.model, args.sim, x, y, chunk=args.chunk,
                          scheduler=args.scheduler, workers=args.workers, retries=args.retries,
                          **cfg)
    except (ClusterError, ChunkMergeError, RTLTestFailure) as e:
        print(f"error: {e}\nno result written", file=sys.stderr)
        return 1
    res["run_wall_s"] = round(time.perf_counter() - t0, 1)
    # a zoo variant (resnet8_k6) keeps its description's own name ("resnet8"): recorded beside
    res["description_name"] = res["model"]
    res["model"] = name
    if args.parallelism is not None:  # the folding file, for the results page's command
        res["parallelism"] = Path(args.parallelism).as_posix()
        res["parallelism_file"] = True
    # the run's key: a board's folding in the other carry form, or a folding file in the ECP5
    # form (portable adders are a folding file's default)
    carry = args.carry if args.parallelism is None else (
        "ecp5" if args.carry == "ecp5" else None)
    carry = f"-{carry}-carry" if carry else ""
    _write_result(out, res, args.sim + carry)
    return 0 if res["mismatches"] == 0 else 1


#: Images per task of a many-image run (``--chunk``).
CHUNK = 250
#: Figures that add up over the chunks of a run.
_SUMMED = ("images", "mismatches", "correct", "reference_correct", "sim_cycles", "flash_reads",
           "spike_mismatches", "spikes_total")
#: Figures merged by their own rule in :func:`merge_chunks` (the others must agree).
_MERGED = frozenset(_SUMMED) | {
    "first_mismatches", "mismatch_indices", "accuracy", "reference_accuracy",
    "cycles_per_image_measured", "cycles_per_image_intervals", "cycles_ok",
    "latency_cycles_measured", "sim_wall_s", "sim_cpu_s", "sim_cycles_per_s",
    "sim_images_per_s_per_core", "flash_errors", "generator_git", "first_spike_mismatches",
    "layer_spikes_total", "spikes_per_image"}


class ChunkMergeError(ValueError):
    """The chunks of one run disagree on what must be one figure (the design, its cycles)."""


def split_images(count: int, chunk: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of each chunk of ``count`` images: as few chunks of at most ``chunk``
    images as it takes, their sizes within one of each other (no short last chunk)."""
    positive_int("chunk", chunk)
    n = max(1, -(-count // chunk))
    size, extra = divmod(count, n)
    edges = [0]
    for k in range(n):
        edges.append(edges[-1] + size + (k < extra))
    return list(zip(edges, edges[1:], strict=False))


def run_chunk(model: str, sim: str, x, y, first: int, cfg: dict) -> dict:
    """One task of a chunked run, on a worker: images ``x`` (labels ``y``; the run's images
    from index ``first`` on) through the design of ``model`` with the generator options
    ``cfg``. The one place that names the simulation entry point."""
    # seed=first: with every image of x taken, the seed only names the run's data folder
    return run_network(model, len(x), sim, images=(x, y), seed=first, **cfg)


def run_chunked(model: str, sim: str, x, y, *, chunk: int = CHUNK, scheduler: str | None = None,
                workers: int | None = None, retries: int = 1, progress: bool = True,
                **cfg) -> dict:
    """Run images ``x`` (labels ``y``) in chunks of at most ``chunk``, one task each on Dask;
    the merged summary (:func:`merge_chunks`).

    The design is built once, by a first one-image task, before the chunks: they find it in
    the build cache (whose builds are locked, so that no two processes build or write one
    design at once). Without ``scheduler`` the tasks run on a local cluster of ``workers``
    processes (default: the machine's cores), or in this process when there is one chunk.

    Raises
    ------
    ClusterError
        A chunk failed (mismatching images fail it) after its retries, or the scheduler cannot
        be reached; the message names the chunk and its error.
    ChunkMergeError
        The chunks disagree on the design or its measured cycles per image.
    """
    spans = split_images(len(x), chunk)
    if len(spans) == 1 and scheduler is None:
        res = merge_chunks([run_chunk(model, sim, x, y, 0, cfg)], [0])
        return res | {"chunks": 1}
    name = Path(str(model)).stem
    tasks = [Task(f"images {a}-{b - 1}", run_chunk, (model, sim, x[a:b], y[a:b], a, cfg))
             for a, b in spans]
    with cluster(scheduler, workers=workers) as client:
        run_tasks(client, [Task(f"build {name} on {sim}", run_chunk,
                                (model, sim, x[:1], y[:1], 0, cfg))],
                  retries=retries, progress=False)
        parts = run_tasks(client, tasks, retries=retries, progress=progress,
                          desc=f"{name} on {sim}")
    return merge_chunks(parts, [a for a, _ in spans]) | {"chunks": len(spans)}


def _agreed(key: str, values: list, starts: list[int]):
    """The one value the chunks share for ``key``, or :class:`ChunkMergeError`."""
    if len({json.dumps(v, sort_keys=True) for v in values}) > 1:
        each = ", ".join(f"from image {s}: {v!r}" for s, v in zip(starts, values, strict=True))
        raise ChunkMergeError(f"the chunks of one run disagree on {key} ({each})")
    return values[0]


def _count(part: dict, key: str) -> int:
    """Images counted by ``key`` ("correct"), or from its accuracy where the chunk has none."""
    if key in part:
        return part[key]
    acc = "accuracy" if key == "correct" else "reference_accuracy"
    return round(part[acc] * part["images"])


def merge_chunks(parts: list[dict], starts: list[int]) -> dict:
    """One run's summary from its chunks' (in image order; chunk ``k`` starts at image
    ``starts[k]`` of the run).

    Counts add up, mismatch indices are shifted to the run's, the accuracies are recounted,
    the latency is the largest, the simulation times add up (core-seconds) and the speeds are
    recomputed from them; everything else (the design, the report's figures, the measured
    cycles per image) must be the same in every chunk, or it is a :class:`ChunkMergeError`.
    """
    if not parts or len(parts) != len(starts):
        raise ChunkMergeError(f"{len(parts)} chunk summaries for {len(starts)} chunks")
    res = {k: _agreed(k, [p.get(k) for p in parts], starts)
           for k in sorted(set().union(*parts) - _MERGED)}
    for k in _SUMMED:
        if any(k in p for p in parts):
            res[k] = sum(p.get(k, 0) for p in parts)
    for k in ("first_mismatches", "mismatch_indices", "first_spike_mismatches"):
        if any(k in p for p in parts):
            shifted = [s + i for s, p in zip(starts, parts, strict=True) for i in p.get(k, [])]
            res[k] = shifted if k == "mismatch_indices" else shifted[:10]
    n = res["images"]
    res["accuracy"] = sum(_count(p, "correct") for p in parts) / n
    res["reference_accuracy"] = sum(_count(p, "reference_correct") for p in parts) / n
    measured = [(s, p["cycles_per_image_measured"]) for s, p in zip(starts, parts, strict=True)
                if p.get("cycles_per_image_measured") is not None]  # None: too few images
    res["cycles_per_image_measured"] = (
        _agreed("cycles_per_image_measured", [v for _, v in measured], [s for s, _ in measured])
        if measured else None)
    res["cycles_per_image_intervals"] = sorted(
        {v for p in parts for v in p.get("cycles_per_image_intervals", [])})
    res["latency_cycles_measured"] = max(p["latency_cycles_measured"] for p in parts)
    _merge_git(res, parts, starts)
    _merge_extras(res, parts)
    return res


def _merge_git(res: dict, parts: list[dict], starts: list[int]) -> None:
    """The generator's commit. A commit landing during a long run changes the label, not the
    design: when every chunk ran the same Verilog (``verilog_sha256``, checked above as a
    figure that must agree), the run keeps the first chunk's label and lists the others;
    without that hash the labels themselves must agree."""
    gits = [p.get("generator_git") for p in parts]
    if "verilog_sha256" not in res:
        res["generator_git"] = _agreed("generator_git", gits, starts)
        return
    res["generator_git"] = gits[0]
    if len(set(gits)) > 1:
        res["generator_git_chunks"] = gits


def _merge_extras(res: dict, parts: list[dict]) -> None:
    """The optional figures: cycle checks, simulation speed, SPI flash errors."""
    if any("cycles_ok" in p for p in parts):
        oks = [p.get("cycles_ok") for p in parts]
        res["cycles_ok"] = False if False in oks else (True if all(oks) else None)
    for k in ("sim_wall_s", "sim_cpu_s"):
        if any(k in p for p in parts):
            res[k] = round(sum(p.get(k, 0.0) for p in parts), 3)
    if "sim_cycles" in res and res.get("sim_wall_s"):
        res["sim_cycles_per_s"] = round(res["sim_cycles"] / res["sim_wall_s"])
    if res.get("sim_cpu_s"):
        res["sim_images_per_s_per_core"] = round(res["images"] / res["sim_cpu_s"], 3)
    if any("flash_errors" in p for p in parts):
        res["flash_errors"] = [e for p in parts for e in p.get("flash_errors", [])][:10]
    if any("layer_spikes_total" in p for p in parts):
        res["layer_spikes_total"] = {
            name: sum(p["layer_spikes_total"][name] for p in parts)
            for name in parts[0]["layer_spikes_total"]}
        res["spikes_per_image"] = res["spikes_total"] / res["images"]


def _write_result(out: Path, res: dict, run_name: str) -> None:
    # one file per model; each simulator's latest run is kept under "runs"
    doc = {}
    if not out.parent.is_dir():
        out.parent.mkdir(parents=True)
    if out.is_file():
        doc = json.loads(out.read_text())
        if doc.get("model_sha256") != res["model_sha256"]:
            doc = {}
    spikes = " --spike-counts" if res.get("spike_layers") else ""
    doc.update({"model": res["model"], "model_sha256": res["model_sha256"],
                "command": "python -m rtl_tests.network --model "
                           f"{res['model']} --images N --sim {{verilator,icarus}}{spikes}"})
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
