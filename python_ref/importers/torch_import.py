"""A ``torch.nn.Module`` to the converter's float ops, through ``torch.export``.

The module is exported with ``torch.onnx.export(..., dynamo=True)`` (which traces it with
``torch.export.export``) into an in-memory ONNX model, and that model goes through
:func:`python_ref.importers.onnx_import.import_onnx`: one importer, so a module and its ONNX
file give the same description.
"""
from __future__ import annotations

import contextlib
import io
import warnings

import torch

from .common import ModelImportError
from .onnx_import import import_onnx

__all__ = ["torch_ops", "to_onnx"]


def to_onnx(module: torch.nn.Module, example_input: torch.Tensor):
    """``module`` (in eval mode) as an ``onnx.ModelProto``, traced on ``example_input``."""
    if not isinstance(module, torch.nn.Module):
        raise ModelImportError(f"from_torch wants a torch.nn.Module, not "
                               f"{type(module).__name__}")
    x = torch.as_tensor(example_input)
    if x.ndim != 4:
        raise ModelImportError(f"example_input: shape {tuple(x.shape)} must be N x C x H x W")
    was_training = module.training
    module.eval()
    try:
        # the exporter prints its progress and warns about optional torchvision ops
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            prog = torch.onnx.export(module, (x if x.is_floating_point() else x.float(),),
                                     dynamo=True, verbose=False)
    except Exception as e:  # noqa: BLE001 - any export failure becomes one clear message
        raise ModelImportError(f"torch.export could not trace the module "
                               f"({type(e).__name__}: {str(e).splitlines()[0]})") from None
    finally:
        module.train(was_training)
    return prog.model_proto


def torch_ops(module: torch.nn.Module, example_input: torch.Tensor) -> list:
    """The float ops of ``module`` (see :func:`~python_ref.importers.onnx_import.import_onnx`)."""
    return import_onnx(to_onnx(module, example_input))
