"""Step ``load``: find the converted description (zoo name or path), read and validate it."""
from __future__ import annotations

import hashlib

from amos_hw.passes.common import FlowContext, FlowError
from amos_hw.zoo import ModelNotFound, resolve
from python_ref import ir

__all__ = ["load"]


def model_hash(stem) -> str:
    """SHA-256 over the description's ``.json`` then ``.npz`` bytes."""
    h = hashlib.sha256()
    for suffix in (".json", ".npz"):
        h.update(stem.with_suffix(suffix).read_bytes())
    return h.hexdigest()


def load(ctx: FlowContext) -> dict:
    try:
        stem = resolve(ctx.config.model)
    except ModelNotFound as e:
        raise FlowError(str(e)) from None
    try:
        g = ir.load(stem)
    except ir.IRError as e:
        raise FlowError(f"model {str(ctx.config.model)!r}: {e}") from None
    ctx.graph = g
    ctx.model_name = g.name
    ctx.model_path = stem
    ctx.model_hash = model_hash(stem)
    return {"model": g.name, "description": stem.name, "sha256": ctx.model_hash,
            "ir_nodes": len(g.nodes), "outputs": list(g.outputs)}
