"""Trained float checkpoints: reading and checking them, and the float network they hold.

:func:`load_checkpoint` reads ``{"arch", "state_dict", ...}`` and checks it against the model
class (another architecture, a missing layer or a wrong shape is an error naming the layer);
:func:`float_graph` folds batch norm into the convolutions and writes the network as a list of
float ops named as the integer description's layers will be. :mod:`python_ref.convert` turns
those ops into the integer description, :mod:`python_ref.finetune` trains them with the integer
units in the loop; both import this module (the converter re-exports its names).

Importing this module does not import torch: :mod:`python_ref.convert` and
:mod:`python_ref.evaluate`, which import it, must load without the ``train`` extra (the
generator and the SNN reference run on numpy alone). The functions that need the model classes
(:mod:`python_ref.models`, which imports torch) import them when they run.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

__all__ = [
    "ZOO",
    "ConversionError",
    "check_state_dict",
    "load_checkpoint",
    "random_state_dict",
    "float_graph",
]

#: The trained checkpoints and converted networks shipped with the package.
ZOO = Path(__file__).resolve().parent / "zoo"


class ConversionError(ValueError):
    """A checkpoint cannot be converted; the message names the file or layer and the problem."""


# ---------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------


def _model_layers(arch: str) -> dict:
    """Expected state_dict keys and shapes of ``arch`` (from the model class itself)."""
    from .models import build_model  # imports torch: see the module docstring

    return {k: tuple(v.shape) for k, v in build_model(arch).state_dict().items()}


def check_state_dict(arch: str, sd: dict, source: str = "checkpoint") -> None:
    """Raise :class:`ConversionError` naming the first layer that is missing, unexpected or of
    the wrong shape for ``arch``."""
    want = _model_layers(arch)
    extra = sorted(set(sd) - set(want))
    if extra:
        raise ConversionError(f"{source}: layer {extra[0].rsplit('.', 1)[0]!r} is not part of "
                              f"{arch} ({len(extra)} unexpected key(s), e.g. {extra[0]!r}); "
                              "is this a checkpoint of another architecture?")
    for k, shape in want.items():
        layer = k.rsplit(".", 1)[0]
        if k not in sd:
            raise ConversionError(f"{source}: layer {layer!r} is missing ({k!r} not in the "
                                  f"state_dict of this {arch} checkpoint)")
        got = tuple(sd[k].shape)
        if got != shape:
            raise ConversionError(f"{source}: layer {layer!r}: {k!r} has shape {got}, "
                                  f"{arch} expects {shape}")


def load_checkpoint(path, arch: str) -> tuple[dict, dict]:
    """Load a checkpoint for ``arch``; returns ``(state_dict as float64 numpy, info)``."""
    # torch and the model classes (the `train` extra): see the module docstring
    import torch

    from .models import MODELS

    path = Path(path)
    if arch not in MODELS:
        raise ConversionError(f"unknown model {arch!r}; known: {', '.join(MODELS)}")
    if not path.is_file():
        raise ConversionError(f"{path}: no such checkpoint")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - any unreadable file becomes one clear message
        raise ConversionError(f"{path}: cannot be read as a torch checkpoint ({e})") from None
    if not isinstance(ck, dict) or "state_dict" not in ck:
        raise ConversionError(f"{path}: not a python_ref checkpoint (a dict with 'arch' and "
                              "'state_dict')")
    got = ck.get("arch")
    if got is not None and got != arch:
        raise ConversionError(f"{path}: checkpoint is for architecture {got!r}, not {arch!r}")
    sd = {k: v.detach().cpu().double().numpy() for k, v in ck["state_dict"].items()}
    check_state_dict(arch, sd, str(path))
    data = path.read_bytes()
    info = {"checkpoint": path.name, "sha256": hashlib.sha256(data).hexdigest(),
            "schedule": ck.get("schedule"), "seed": ck.get("seed")}
    return sd, info


def random_state_dict(arch: str, seed: int = 0) -> dict:
    """A randomly initialised ``arch`` with random batch-norm statistics, as float64 numpy arrays
    (for tests and hardware bring-up without a trained checkpoint)."""
    # torch and the model classes (the `train` extra): see the module docstring
    import torch

    from .models import build_model

    torch.manual_seed(seed)
    model = build_model(arch)
    rng = np.random.default_rng(seed)
    sd = {k: v.detach().double().numpy().copy() for k, v in model.state_dict().items()}
    for k in sd:
        if k.endswith("running_mean"):
            sd[k] = rng.normal(0, 0.1, sd[k].shape)
        elif k.endswith("running_var"):
            sd[k] = rng.uniform(0.5, 2.0, sd[k].shape)
        elif k.endswith(".bias") and sd[k].ndim == 1:
            sd[k] = rng.normal(0, 0.1, sd[k].shape)
        elif k.endswith(".weight") and sd[k].ndim == 1:
            sd[k] = rng.uniform(0.5, 1.5, sd[k].shape)
    return sd


# ---------------------------------------------------------------------------------------------
# The float network, batch norm folded
# ---------------------------------------------------------------------------------------------


def _fold(sd: dict, conv: str, bn: str, eps: float = 1e-5):
    """Conv weight ``(O, C, k, k)`` + batch norm -> float weight ``(O, k, k, C)`` and bias."""
    w = sd[f"{conv}.weight"]
    g, b = sd[f"{bn}.weight"], sd[f"{bn}.bias"]
    m, v = sd[f"{bn}.running_mean"], sd[f"{bn}.running_var"]
    s = g / np.sqrt(v + eps)
    return (w * s[:, None, None, None]).transpose(0, 2, 3, 1).copy(), b - m * s


def float_graph(arch: str, sd: dict, input_shape=None) -> list:
    """The float network as ops ``{"name", "op", "inputs", ...}`` in topological order.

    Ops: ``input``, ``conv`` (``w`` ``(O, k, k, C)``, ``b``, ``stride``, ``padding``), ``dense``
    (``w`` ``(O, I)``, ``b``), ``add``, ``relu``, ``gap`` (a sum; ``fc`` carries the 1/(H*W)).
    """
    from .models import MODELS  # imports torch: see the module docstring

    shape = list(input_shape or MODELS[arch]["input_shape"])
    C, H, W = shape
    ops = [{"name": "input", "op": "input", "inputs": [], "shape": [H, W, C]}]
    if arch == "digits":
        return ops + _digits_ops(sd)
    if not arch.startswith("resnet"):
        raise ConversionError(f"no converter for architecture {arch!r}")
    return ops + _resnet_ops(arch, sd, H)


def _digits_ops(sd: dict) -> list:
    """The digits MLP after its input: dense, ReLU, dense."""
    return [
        {"name": "fc1", "op": "dense", "inputs": ["input"], "w": sd["fc1.weight"],
         "b": sd["fc1.bias"]},
        {"name": "act1", "op": "relu", "inputs": ["fc1"]},
        {"name": "fc", "op": "dense", "inputs": ["act1"], "w": sd["fc2.weight"],
         "b": sd["fc2.bias"]},
    ]


def _resnet_ops(arch: str, sd: dict, hw: int) -> list:
    """A CIFAR ResNet after its input (``hw`` pixels square): stem, residual blocks, pooling
    and the classifier, which carries the pooling's 1/(H*W)."""
    from .models import build_model  # imports torch: see the module docstring

    strides = [int(blk.conv1.stride[0]) for blk in build_model(arch).blocks]
    w, b = _fold(sd, "conv1", "bn1")
    ops = [{"name": "stem.conv", "op": "conv", "inputs": ["input"], "w": w, "b": b, "stride": 1,
            "padding": 1},
           {"name": "stem.act", "op": "relu", "inputs": ["stem.conv"]}]
    x = "stem.act"
    for i, stride in enumerate(strides):
        ops += _block_ops(sd, i, x, stride)
        x = f"block{i}.act2"
        hw = (hw - 1) // stride + 1
    ops += [{"name": "gap", "op": "gap", "inputs": [x]},
            {"name": "fc", "op": "dense", "inputs": ["gap"], "w": sd["fc.weight"] / (hw * hw),
             "b": sd["fc.bias"]}]
    return ops


def _block_ops(sd: dict, i: int, x: str, stride: int) -> list:
    """Residual block ``i`` reading tensor ``x``: two convolutions, the shortcut (a projection
    when the checkpoint has one), the add and its ReLU ``block{i}.act2``."""
    p = f"blocks.{i}"
    q = f"block{i}"
    w1, b1 = _fold(sd, f"{p}.conv1", f"{p}.bn1")
    w2, b2 = _fold(sd, f"{p}.conv2", f"{p}.bn2")
    ops = [{"name": f"{q}.conv1", "op": "conv", "inputs": [x], "w": w1, "b": b1,
            "stride": stride, "padding": 1},
           {"name": f"{q}.act1", "op": "relu", "inputs": [f"{q}.conv1"]},
           {"name": f"{q}.conv2", "op": "conv", "inputs": [f"{q}.act1"], "w": w2, "b": b2,
            "stride": 1, "padding": 1}]
    skip = x
    if f"{p}.shortcut.0.weight" in sd:
        ws, bs = _fold(sd, f"{p}.shortcut.0", f"{p}.shortcut.1")
        ops.append({"name": f"{q}.shortcut", "op": "conv", "inputs": [x], "w": ws, "b": bs,
                    "stride": stride, "padding": 0})
        skip = f"{q}.shortcut"
    ops += [{"name": f"{q}.add", "op": "add", "inputs": [f"{q}.conv2", skip]},
            {"name": f"{q}.act2", "op": "relu", "inputs": [f"{q}.add"]}]
    return ops
