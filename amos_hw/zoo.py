"""Model-name lookup over the packaged zoo of converted descriptions (``python_ref/zoo``).

A model is named either by a zoo name (``resnet8``, ``digits``: a ``<name>.json`` +
``<name>.npz`` pair in ``python_ref/zoo``) or by a path to a description (either file or the
stem). :func:`resolve` turns both into the stem path of the pair.
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ZOO_DIR", "ModelNotFound", "known_models", "resolve"]

#: Where the converter writes the committed descriptions.
ZOO_DIR = Path(__file__).resolve().parent.parent / "python_ref" / "zoo"


class ModelNotFound(ValueError):
    """Neither a zoo name nor an existing description; the message lists the known names."""


def known_models(zoo: Path | None = None) -> list[str]:
    """Names of the converted descriptions in the zoo (both ``.json`` and ``.npz`` present)."""
    zoo = Path(zoo) if zoo is not None else ZOO_DIR
    if not zoo.is_dir():
        return []
    return sorted(p.stem for p in zoo.glob("*.json") if p.with_suffix(".npz").is_file())


def resolve(model: str | os.PathLike, zoo: Path | None = None) -> Path:
    """The stem path (``.../name``, no suffix) of a zoo name or a description path.

    Raises
    ------
    ModelNotFound
        When ``model`` is not a known zoo name and no ``.json``/``.npz`` pair exists at it;
        the message lists the known names.
    """
    text = os.fspath(model)
    if not text:
        raise ModelNotFound("the model name is empty; known models: "
                            + ", ".join(known_models(zoo)))
    zoo_dir = Path(zoo) if zoo is not None else ZOO_DIR
    if text in known_models(zoo_dir):
        return zoo_dir / text
    p = Path(text)
    if p.suffix in (".json", ".npz"):
        p = p.with_suffix("")
    if p.with_suffix(".json").is_file() and p.with_suffix(".npz").is_file():
        return p
    looks_like_path = os.sep in text or text.endswith((".json", ".npz"))
    what = "no description (.json + .npz) at" if looks_like_path else "unknown model"
    raise ModelNotFound(f"{what} {text!r}; known models: {', '.join(known_models(zoo_dir))} "
                        f"(or give the path of a converted description)")
