"""A board top behind its UART on a native Verilator bench (``host classify --sim``).

The bench (``boards/native/uart_bench.cpp``) plays the host in C++: it sends each frame of a
file on the top's ``rx`` bit by bit at the UART's divisor, samples ``tx`` as a UART receiver
does, cuts the received bytes into frames by the protocol's framing and waits for one answer
per frame; it writes each answer's bytes and the cycles it took. No Python runs on the clock
(the cocotb host of :mod:`boards.tb_host` drove every bit from a coroutine: 20 digits images
took 4.19 s under it, 0.11 s here, with the same answers). The frames are encoded and the
answers decoded and checked (CRC included) here, with :mod:`amos_hw.lib.hostproto`.

:func:`build_uart_bench` verilates the top once per design (cached under ``build/sim``, the key
covering the Verilog, the bench source and the options; locked against parallel builds);
:func:`run_frames` runs it. A top that reads its weights from an SPI flash has no model here:
:mod:`boards.sim` runs it under cocotb.
"""
from __future__ import annotations

import hashlib
import re
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

from amos_hw.backend.simbuild import (
    NATIVE_BUILD_ID,
    NATIVE_VERILATOR_ARGS,
    digest,
    locked,
    sim_models_for,
    verilate_native,
)
from amos_hw.lib.checks import positive_int

__all__ = ["MAGIC", "UART_BENCH_SOURCE", "UartBench", "UartBenchError", "build_uart_bench",
           "read_answers", "run_file", "run_frames", "write_frames"]

#: The C++ bench.
UART_BENCH_SOURCE = Path(__file__).resolve().parent / "native" / "uart_bench.cpp"
#: First 8 bytes of a frames file; then the divisor and the frame count (uint32 LE).
MAGIC = b"AMOSUAR1"
_HEADER = struct.Struct("<8sII")
#: Ports the bench drives and reads.
REQUIRED_PORTS = ("clk", "rst", "rx", "tx")


class UartBenchError(RuntimeError):
    """The UART bench could not be built or run, or refused its input."""


@dataclass(frozen=True)
class UartBench:
    """A built bench: its executable and the SHA-256 of the Verilog it was built from."""

    path: Path
    verilog_sha256: str


def _ports(verilog: str, toplevel: str) -> list[str]:
    """The port names of module ``toplevel`` in ``verilog``."""
    m = re.search(rf"^module\s+{re.escape(toplevel)}\s*\(([^)]*)\)", verilog, re.MULTILINE)
    if m is None:
        raise UartBenchError(f"the Verilog has no module {toplevel!r}")
    return [p.strip() for p in m.group(1).split(",")]


def build_uart_bench(verilog: str, *, toplevel: str, root: Path) -> UartBench:
    """Verilate and compile the bench for the board top ``toplevel`` of ``verilog`` in a
    directory under ``root`` (once per design; locked).

    Raises
    ------
    UartBenchError
        When the top lacks ``clk``, ``rst``, ``rx`` or ``tx``, reads an SPI flash, or the build
        failed (the message ends with the compiler's last lines; all of them in ``build.log``).
    amos_hw.backend.simbuild.RTLTestFailure
        If Verilator, make or a C++ compiler is missing.
    """
    ports = _ports(verilog, toplevel)
    missing = [p for p in REQUIRED_PORTS if p not in ports]
    if missing:
        raise UartBenchError(f"{toplevel} has no port(s) {', '.join(missing)}: the UART bench "
                             f"drives a board top's rx and tx (boards.top.UartNetworkTop)")
    if any(p.startswith("flash__") for p in ports):
        raise UartBenchError(f"{toplevel} reads its weights from an SPI flash: the UART bench "
                             f"has no flash model (boards.sim runs it under cocotb)")
    models = sim_models_for(verilog)
    key = digest(verilog, UART_BENCH_SOURCE.read_text(), toplevel, repr(NATIVE_VERILATOR_ARGS),
                 NATIVE_BUILD_ID, *(p.read_text() for p in models))
    build_dir = Path(root) / f"uart-{toplevel}-{key}"
    with locked(Path(root) / f"{build_dir.name}.lock"):
        if not (build_dir / ".amos-built").exists():
            status, log = verilate_native(build_dir, top_module=toplevel,
                                          verilog={f"{toplevel}.v": verilog},
                                          sources=[*models, UART_BENCH_SOURCE])
            if status != 0:
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
                raise UartBenchError(f"{toplevel}: the UART bench's Verilator build failed "
                                     f"(status {status}) in {build_dir}; the end of {log}:\n"
                                     f"{tail}")
            (build_dir / ".amos-built").write_text(key + "\n")
    return UartBench(build_dir / "bench", hashlib.sha256(verilog.encode()).hexdigest())


def write_frames(path: Path, frames: list[bytes], divisor: int) -> None:
    """Write encoded ``frames`` (each one :func:`amos_hw.lib.hostproto.encode_frame`) as a
    bench frames file, for a UART of ``divisor`` clock cycles per bit."""
    positive_int("divisor", divisor)
    with open(path, "wb") as f:
        f.write(_HEADER.pack(MAGIC, divisor, len(frames)))
        for frame in frames:
            f.write(struct.pack("<I", len(frame)))
            f.write(bytes(frame))


def read_answers(path: Path, count: int) -> list[tuple[bytes, int]]:
    """A bench's output: per frame, the answer's bytes and the cycles from the frame's first
    bit to the answer's last byte.

    Raises
    ------
    UartBenchError
        When the file does not end with the bench's ``done`` line for ``count`` frames, or a
        line is malformed (a run cut short).
    """
    lines = Path(path).read_text().splitlines()
    if not lines or not lines[-1].startswith("done "):
        raise UartBenchError(f"{path}: no 'done' line; the bench run was cut short "
                             f"({len(lines)} lines)")
    rows = [line.split() for line in lines[:-1]]
    if int(lines[-1].split()[1]) != count or len(rows) != count or \
            any(len(r) != 4 or r[0] != str(k) for k, r in enumerate(rows)):
        raise UartBenchError(f"{path}: expected {count} answer lines, the file has "
                             f"{len(rows)} ('{lines[-1]}')")
    return [(bytes.fromhex(r[3]), int(r[2]) - int(r[1])) for r in rows]


def run_frames(bench: UartBench, frames: list[bytes], divisor: int, workdir: Path, *,
               watchdog: int = 0) -> list[tuple[bytes, int]]:
    """Send ``frames`` one by one to the simulated top, each after the answer to the one
    before; return each answer's bytes and round trip in cycles (:func:`read_answers`).

    Raises
    ------
    UartBenchError
        When the bench exits non-zero (a bad frames file, the watchdog: no answer within
        ``watchdog`` cycles after a frame's last bit, a framing error on ``tx``); the message
        holds its error line.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    src, out = workdir / "frames.bin", workdir / "answers.txt"
    write_frames(src, frames, divisor)
    run_file(bench, src, out, watchdog=watchdog)
    return read_answers(out, len(frames))


def run_file(bench: UartBench, frames_file: Path, out: Path, *, watchdog: int = 0) -> None:
    """Run ``bench`` on a frames file (:func:`write_frames`), its answers to ``out``.

    Raises
    ------
    UartBenchError
        When the bench exits non-zero; the message holds its error line.
    """
    Path(out).unlink(missing_ok=True)
    done = subprocess.run([str(bench.path), str(frames_file), str(out), "--watchdog",
                           str(int(watchdog))], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        message = done.stderr.strip() or f"status {done.returncode}, no message"
        raise UartBenchError(f"the UART bench {bench.path} failed on {frames_file}: {message}")
