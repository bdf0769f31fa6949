"""Step ``verilog``: emit the whole network as one Verilog file, then ``report.json`` and
``manifest.json`` beside it.

The weights and biases are initial values of the engines' memories inside the Verilog, so there
are no separate memory initialisation files; except with the shared engine's ``--weights
flash``, whose weights go to ``weights.bin`` (the bytes to write into the flash at the reader's
offset, :meth:`amos_hw.shared.program.Program.weight_bytes`).
"""
from __future__ import annotations

import re

from amos_hw.backend.manifest import manifest
from amos_hw.backend.verilog import to_verilog
from amos_hw.passes.common import FlowContext, canonical_json

__all__ = ["verilog", "top_name"]


def top_name(model: str) -> str:
    """Verilog module name of a model's top level (``amos_resnet8``)."""
    return "amos_" + re.sub(r"[^A-Za-z0-9_]", "_", model)


def verilog(ctx: FlowContext) -> dict:
    name = top_name(ctx.model_name)
    ctx.verilog = to_verilog(ctx.top, name)
    files = {f"{name}.v": ctx.verilog, "report.json": canonical_json(ctx.report)}
    p = ctx.program
    if p is not None and getattr(p, "weights", "memory") == "stream":
        files["weights.bin"] = p.weight_bytes()
    man = manifest(model=ctx.model_name, model_sha256=ctx.model_hash,
                   description=str(ctx.model_path.name), config=ctx.config.as_dict(),
                   plan=ctx.plan if isinstance(ctx.plan, dict) else ctx.plan.as_dict(),
                   files=files)
    files["manifest.json"] = canonical_json(man)
    ctx.files = files
    return {"top_module": name, "files": sorted(files),
            "verilog_lines": ctx.verilog.count("\n")}
