"""A board's top under Verilator, with its UART modelled bit by bit (``host classify --sim``).

The design is exactly what :func:`boards.build.build` places on the board: the same network
(built for the board, with its folding), the same :class:`boards.top.UartNetworkTop` at the
board's clock and baud rate. Only the pins differ: the cocotb test :mod:`boards.tb_host` drives
``rx`` and samples ``tx`` at ``clk_hz / baud`` cycles per bit, and talks the protocol of
:mod:`amos_hw.lib.hostlink` through them.

Builds are cached in ``build/sim/<board>/<model>-<hash of the Verilog>``.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np

from amos_hw.backend.simbuild import VERILATOR_MAKEFLAGS, locked, sim_models_for
from amos_hw.lib import hostlink as hl
from amos_hw.lib.spiflash import flash_contents
from boards.board import get_board
from boards.build import REPO, fit_check

__all__ = ["REQUEST_ENV", "board_info", "board_top", "classify"]

#: Environment variable carrying the request JSON path into the cocotb test.
REQUEST_ENV = "AMOS_HOST_REQUEST"
TOPLEVEL = "board_top"




def board_top(board_name: str, model: str, architecture: str | None = None):
    """The :class:`~boards.top.UartNetworkTop` of ``model`` on ``board_name``, as
    :func:`boards.build.build` places it (``architecture="shared"`` forces the shared engine
    on a board with SPRAM, as the build does for a model the pipelined design cannot fit)."""
    from boards.top import UartNetworkTop

    board = get_board(board_name)
    fold = dict(board.fold) if board.fold is not None else None
    if architecture == "shared":
        net, _ = fit_check(board, model, lut_fill=1.0, architecture="shared")
    else:
        net, _ = fit_check(board, model, fold, shared_fallback=True)
    clk_hz = int(board.make_platform().default_clk_frequency)
    name = Path(str(model)).stem
    return UartNetworkTop(net, clk_hz=clk_hz, baud=board.baud, name=name)


def board_info(board_name: str, model: str) -> hl.Info:
    from amos_hw.top import silence

    top = board_top(board_name, model)
    silence(top)
    return top.info


def _verilator_env() -> None:
    flags = os.environ.get("MAKEFLAGS", "")
    if VERILATOR_MAKEFLAGS not in flags:
        os.environ["MAKEFLAGS"] = f"{flags} {VERILATOR_MAKEFLAGS}".strip()
    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    os.environ.pop("VERILATOR_ROOT", None)


def weight_bytes(network) -> bytes | None:
    """The weight image a network with run-time weights needs (``None`` for the others)."""
    if not hasattr(network, "load"):
        return None
    return network.program.weight_bytes()


def classify(board_name: str, model: str, images, *, progress: bool = True,
             architecture: str | None = None):
    """Classify ``images`` (uint8 arrays of the model's input shape) on the simulated top.

    Returns ``(info, [(Result, round-trip seconds at the board clock), ...])``; the ``info`` is
    what the simulated board answered to ``CMD_INFO``.
    """
    from amos_hw.backend.verilog import to_verilog

    top = board_top(board_name, model, architecture)
    want_shape = top.info.input_shape
    payloads = []
    for k, a in enumerate(images):
        a = np.asarray(a)
        if a.shape != tuple(want_shape) or a.dtype != np.uint8:
            raise ValueError(f"image {k}: expected uint8 pixels of shape {tuple(want_shape)}, "
                             f"not {a.dtype} {a.shape}")
        payloads.append(list(a.tobytes()))
    verilog = to_verilog(top, TOPLEVEL)
    digest = hashlib.sha256(verilog.encode()).hexdigest()[:16]
    bdir = REPO / "build" / "sim" / top.info.name / f"{board_name}-{digest}"
    _verilator_env()
    from cocotb_tools.runner import get_runner

    runner = get_runner("verilator")
    with locked(bdir.parent / f".{board_name}-{digest}.lock"):
        bdir.mkdir(parents=True, exist_ok=True)
        src = bdir / f"{TOPLEVEL}.v"
        if not src.exists() or src.read_text() != verilog:
            src.write_text(verilog)
        if progress:
            print(f"verilator: building {board_name}/{top.info.name} in {bdir} "
                  f"(first time only; a few minutes for a large network)", file=sys.stderr)
        models = sim_models_for(verilog)
        runner.build(sources=[src, *models], hdl_toplevel=TOPLEVEL, build_dir=bdir,
                     build_args=["-Wno-fatal", "-Wno-lint", "-Wno-style"],
                     timescale=("1ns", "1ps"), always=False, log_file=bdir / "build.log")
        run = bdir / "run"
        run.mkdir(exist_ok=True)
        req = run / "request.json"
        resp = run / "response.json"
        resp.unlink(missing_ok=True)
        req.write_text(json.dumps({
            "divisor": top.divisor, "clk_hz": top.clk_hz, "images": payloads,
            "info": top.info.to_payload().hex(), "response": str(resp),
            "progress": progress,
            "load": [c.hex() for c in hl.load_chunks(w)] if (w := weight_bytes(top.network))
            else [],
            "flash": flash_contents(top.network),
        }))
        results_xml = runner.test(test_module="boards.tb_host", hdl_toplevel=TOPLEVEL,
                                  build_dir=bdir, test_dir=run,
                                  extra_env={REQUEST_ENV: str(req)},
                                  results_xml=str(run / "results.xml"),
                                  log_file=run / "sim.log")
        if not resp.exists():
            log = (run / "sim.log")
            tail = log.read_text(errors="replace").splitlines()[-30:] if log.exists() else []
            raise RuntimeError(f"the simulation wrote no answer ({results_xml}):\n"
                               + "\n".join(tail))
        answer = json.loads(resp.read_text())
    if answer.get("error"):
        raise RuntimeError(f"simulated board: {answer['error']}")
    info = hl.Info.from_payload(bytes.fromhex(answer["info"]))
    out = []
    for r in answer["results"]:
        res = hl.Result.from_payload(bytes.fromhex(r["payload"]), info.num_classes,
                                     info.logit_bytes)
        out.append((res, r["round_trip_cycles"] / info.clk_hz))
    return info, out
