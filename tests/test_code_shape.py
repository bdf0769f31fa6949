"""Small components: no function of the project is longer than :data:`MAX_LINES` lines, and
no module sets Amaranth's private attributes (the "unused elaboratable" flag: use the linter pragma
``# amaranth: UnusedElaboratable=no`` on a file's first line, or build nothing unused)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("amos_hw", "python_ref", "boards", "rtl_tests", "tests")
MAX_LINES = 120


def sources():
    return sorted(p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py"))


def long_functions(path: Path, limit: int = MAX_LINES) -> list[str]:
    """``name (N lines)`` of every function in ``path`` longer than ``limit`` lines."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return [f"{n.name} ({n.end_lineno - n.lineno + 1} lines)" for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            and n.end_lineno - n.lineno + 1 > limit]


def test_the_check_finds_a_long_function(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def short():\n    return 1\n\n\ndef long():\n" + "    x = 1\n" * 130)
    assert long_functions(f) == ["long (131 lines)"]


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(REPO)))
def test_functions_are_short(path):
    assert long_functions(path) == []


def test_no_private_amaranth_attributes():
    marker = "_MustUse" + "__"  # split so that this file does not match itself
    offenders = [str(p.relative_to(REPO)) for p in sources() if marker in p.read_text()]
    assert offenders == []
