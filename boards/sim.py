"""A board's top under Verilator, with its UART modelled bit by bit (``host classify --sim``).

The design is exactly what :func:`boards.build.build` places on the board: the same network
(built for the board, with its folding), the same :class:`boards.top.UartNetworkTop` at the
board's clock and baud rate. Only the pins differ: a modelled host drives ``rx`` and samples
``tx`` at ``clk_hz / baud`` cycles per bit, and talks the protocol of
:mod:`amos_hw.lib.hostproto` through them. The host is the native C++ bench of
:mod:`boards.native_uart` (no Python on the clock; builds cached in
``build/sim/<model>/uart-board_top-<hash>``), or, for a top that reads its weights from an SPI
flash (which that bench does not model), the cocotb test :mod:`boards.tb_host` through the
project's one cocotb runner (:func:`amos_hw.backend.simbuild.cocotb_run`; builds cached in
``build/sim/<model>/<board>-verilator-<hash>``).
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

from amos_hw.backend.simbuild import cocotb_run
from amos_hw.backend.verilog import to_verilog
from amos_hw.lib import hostproto as hp
from amos_hw.lib.spiflash import flash_contents
from boards.build import REPO, fit_check
from boards.catalog import get_board
from boards.native_uart import build_uart_bench, run_frames
from boards.top import UartNetworkTop

__all__ = ["REQUEST_ENV", "board_top", "classify", "classify_top"]

#: Environment variable carrying the request JSON path into the cocotb test.
REQUEST_ENV = "AMOS_HOST_REQUEST"
TOPLEVEL = "board_top"
SIM = "verilator"


def board_top(board_name: str, model: str, architecture: str | None = None,
              spike_counts: bool = False) -> UartNetworkTop:
    """The :class:`~boards.top.UartNetworkTop` of ``model`` on ``board_name``, as
    :func:`boards.build.build` places it (``architecture="shared"`` forces the shared engine
    on a board with SPRAM, as the build does for a model the pipelined design cannot fit;
    ``spike_counts`` builds the spike counters in, as ``boards build --spike-counts``)."""
    board = get_board(board_name)
    fold = dict(board.fold) if board.fold is not None else None
    if architecture == "shared":
        net, _ = fit_check(board, model, lut_fill=1.0, architecture="shared",
                           spike_counts=spike_counts)
    else:
        net, _ = fit_check(board, model, fold, shared_fallback=True,
                           spike_counts=spike_counts)
    clk_hz = int(board.make_platform().default_clk_frequency)
    name = Path(str(model)).stem
    return UartNetworkTop(net, clk_hz=clk_hz, baud=board.baud, name=name)


def weight_bytes(network) -> bytes | None:
    """The weight image a network with run-time weights needs (``None`` for the others)."""
    if not hasattr(network, "load"):
        return None
    return network.program.weight_bytes()


def _payloads(images, want_shape) -> list[list[int]]:
    """The images as byte lists, each checked against the model's input shape."""
    payloads = []
    for k, a in enumerate(images):
        a = np.asarray(a)
        if a.shape != tuple(want_shape) or a.dtype != np.uint8:
            raise ValueError(f"image {k}: expected uint8 pixels of shape {tuple(want_shape)}, "
                             f"not {a.dtype} {a.shape}")
        payloads.append(list(a.tobytes()))
    return payloads


def classify(board_name: str, model: str, images, *, progress: bool = True,
             architecture: str | None = None, spike_counts: bool = False):
    """Classify ``images`` (uint8 arrays of the model's input shape) on the simulated top of
    ``model`` on ``board_name`` (:func:`board_top`, then :func:`classify_top`)."""
    top = board_top(board_name, model, architecture, spike_counts)
    return classify_top(top, images, board_name=board_name, progress=progress)


def classify_top(top: UartNetworkTop, images, *, board_name: str, progress: bool = True):
    """Classify ``images`` (uint8 arrays of the model's input shape) on ``top`` under
    Verilator, with the UART modelled bit by bit: on the native bench of
    :mod:`boards.native_uart`, or under cocotb (:mod:`boards.tb_host`) for a top that reads its
    weights from an SPI flash (the native bench has no flash model).

    Parameters
    ----------
    top : boards.top.UartNetworkTop
        The board top, as :func:`board_top` makes it.
    images : sequence of numpy.ndarray
    board_name : str
        Names the build directory.
    progress : bool
        Say when the design is being compiled and simulated (under cocotb, a bar over several
        images).

    Returns
    -------
    tuple
        ``(info, [(Result, round-trip seconds at the board clock), ...])``; the ``info`` is what
        the simulated board answered to ``CMD_INFO``.

    Raises
    ------
    ValueError
        If an image does not have the model's input shape.
    amos_hw.backend.simbuild.RTLTestFailure
        If the cocotb build failed or its simulated host did not get its answers (the message
        says why).
    boards.native_uart.UartBenchError
        If the native bench's build or run failed (the message says why).
    RuntimeError
        If the simulated board answered something unexpected.
    """
    payloads = _payloads(images, top.info.input_shape)
    verilog = to_verilog(top, TOPLEVEL)
    w = weight_bytes(top.network)
    request = {
        "divisor": top.divisor, "clk_hz": top.clk_hz, "images": payloads,
        "info": top.info.to_payload().hex(), "progress": progress,
        "load": [c.hex() for c in hp.load_chunks(w)] if w else [],
        "flash": flash_contents(top.network),
    }
    root = REPO / "build" / "sim" / top.info.name
    if request["flash"]:
        answer = _cocotb_answer(verilog, request, root, board_name, progress)
    else:
        answer = _native_answer(verilog, request, root, board_name, progress)
    if answer.get("error"):
        raise RuntimeError(f"simulated board: {answer['error']}")
    info = hp.Info.from_payload(bytes.fromhex(answer["info"]))
    out = []
    for r in answer["results"]:
        res = hp.Result.from_payload(bytes.fromhex(r["payload"]), info.num_classes,
                                     info.logit_bytes, info.spike_counts)
        out.append((res, r["round_trip_cycles"] / info.clk_hz))
    return info, out


def _announce(progress: bool, what: str) -> None:
    if progress:
        print(what, file=sys.stderr)


def _native_answer(verilog: str, request: dict, root: Path, board_name: str,
                   progress: bool) -> dict:
    """The answers of the native bench (:mod:`boards.native_uart`), in the form
    :mod:`boards.tb_host` writes them: ``info``, ``results`` (``payload``,
    ``round_trip_cycles``) or an ``error``."""
    _announce(progress, f"verilator: building {board_name} in {root} (first time only; a few "
                        f"minutes for a large network)")
    bench = build_uart_bench(verilog, toplevel=TOPLEVEL, root=root)
    frames = [hp.encode_frame(hp.CMD_INFO)]
    frames += [hp.encode_frame(hp.CMD_LOAD, bytes.fromhex(c)) for c in request["load"]]
    frames += [hp.encode_frame(hp.CMD_CLASSIFY, bytes(image)) for image in request["images"]]
    info = hp.Info.from_payload(bytes.fromhex(request["info"]))
    byte_cycles = 10 * request["divisor"]
    watchdog = 4 * info.latency_cycles + 200 * byte_cycles + 100_000
    _announce(progress, f"simulating {len(request['images'])} image(s) on the native UART bench")
    run_dir = Path(root) / "uart-runs" / f"{board_name}-{os.getpid()}"
    answers = run_frames(bench, frames, request["divisor"], run_dir, watchdog=watchdog)
    got = []
    for k, (raw, cycles) in enumerate(answers):
        dec = hp.FrameDecoder()
        fr = dec.feed(raw)
        if len(fr) != 1:
            return {"error": f"answer to frame {k}: {raw.hex()} is not one frame "
                             f"(CRC errors: {dec.crc_errors})"}
        got.append((fr[0], cycles))
    (first, _), n_load = got[0], len(request["load"])
    if first.cmd != hp.RSP_INFO:
        return {"error": f"expected RSP_INFO, got command 0x{first.cmd:02x}"}
    if first.payload.hex() != request["info"]:
        return {"error": "the simulated top answers a different INFO"}
    for k, (f, _) in enumerate(got[1:1 + n_load]):
        if f.cmd != hp.RSP_LOADED:
            return {"error": f"load chunk {k}: expected RSP_LOADED, got 0x{f.cmd:02x}"}
    results = []
    for f, cycles in got[1 + n_load:]:
        if f.cmd != hp.RSP_RESULT:
            return {"error": f"expected RSP_RESULT, got command 0x{f.cmd:02x} "
                             f"{f.payload.hex()}"}
        results.append({"payload": f.payload.hex(), "round_trip_cycles": cycles})
    return {"info": first.payload.hex(), "results": results}


def _cocotb_answer(verilog: str, request: dict, root: Path, board_name: str,
                   progress: bool) -> dict:
    """The answers of the cocotb host (:mod:`boards.tb_host`), which models the SPI flash."""

    def announce(build_dir: Path) -> None:
        _announce(progress, f"verilator: building {board_name} in {build_dir} (first time "
                            f"only; a few minutes for a large network)")

    with cocotb_run(verilog, toplevel=TOPLEVEL, sim=SIM, root=root, name=board_name,
                    run_key=(json.dumps(request, sort_keys=True),), log=True,
                    on_build=announce) as run:
        req = run.run_dir / "request.json"
        resp = run.run_dir / "response.json"
        resp.unlink(missing_ok=True)
        req.write_text(json.dumps({**request, "response": str(resp)}))
        run.test("boards.tb_host", extra_env={REQUEST_ENV: str(req)})
        return json.loads(resp.read_text())
