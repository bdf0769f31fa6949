"""amos_hw.backend.tools.find_tool: the interpreter's own bin folder first, then PATH."""
from __future__ import annotations

import sys

from amos_hw.backend import tools


def _exe(folder, name):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_beside_the_interpreter_before_path(tmp_path, monkeypatch):
    venv, other = tmp_path / "venv" / "bin", tmp_path / "other"
    mine, theirs = _exe(venv, "amos-tool"), _exe(other, "amos-tool")
    monkeypatch.setattr(sys, "executable", str(venv / "python"))
    monkeypatch.setenv("PATH", str(other))
    assert tools.find_tool("amos-tool") == str(mine)
    mine.unlink()
    assert tools.find_tool("amos-tool") == str(theirs)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert tools.find_tool("amos-tool") is None
