"""Bring your own model: a float ONNX model or a ``torch.nn.Module`` to the converter's float ops.

:func:`import_onnx` reads an ONNX file or ``ModelProto`` and returns the same list of float ops
that :func:`python_ref.checkpoint.float_graph` writes for the zoo's architectures (batch norm
folded, ``gap`` a sum whose 1/(H*W) the classifier carries); :func:`fold_input_normalisation`
folds a model's ``(x * input_scale - mean) / std`` into its first layers so that the ops read
raw pixels / 255, as the converter expects. :func:`from_torch` exports a module through
``torch.export`` (``torch.onnx.export``) and imports it the same way. ``docs/import.md`` lists
the supported ops and how each maps.

Importing this package imports neither onnx nor torch (they are the ``onnx`` / ``train``
extras); the submodules that need them import them at their top.
"""
from __future__ import annotations

from .common import ModelImportError, fold_input_normalisation, sanitise_name

__all__ = ["ModelImportError", "fold_input_normalisation", "sanitise_name", "import_onnx",
           "from_torch_ops"]


def _missing(e: ModuleNotFoundError) -> ModelImportError:
    return ModelImportError(f"the model importer needs the onnx extra (pip install -e '.[onnx]'"
                            f"): module {e.name!r} is not installed")


def import_onnx(model, **kw):
    """:func:`python_ref.importers.onnx_import.import_onnx` (imports onnx when called)."""
    try:
        from .onnx_import import import_onnx as _imp  # the `onnx` extra: optional, see above
    except ModuleNotFoundError as e:
        raise _missing(e) from None
    return _imp(model, **kw)


def from_torch_ops(module, example_input, **kw):
    """:func:`python_ref.importers.torch_import.torch_ops` (imports torch and onnx when
    called)."""
    try:
        from .torch_import import torch_ops  # the `onnx` extra: optional, see above
    except ModuleNotFoundError as e:
        raise _missing(e) from None
    return torch_ops(module, example_input, **kw)
