"""Trained float checkpoints: reading and checking them, and the float network they hold.

:func:`load_checkpoint` reads ``{"arch", "state_dict", ...}`` and checks it against the model
class (another architecture, a missing layer or a wrong shape is an error naming the layer);
:func:`float_graph` builds the model and takes it through the importer
(:mod:`python_ref.importers`, the same path as a user's model), which folds batch norm and
writes the network as a list of float ops, named as the shipped descriptions' layers.
:mod:`python_ref.convert` turns those ops into the integer description,
:mod:`python_ref.finetune` trains them with the integer units in the loop; both import this
module (the converter re-exports its names).

Importing this module does not import torch: :mod:`python_ref.convert` and
:mod:`python_ref.evaluate`, which import it, must load without the ``train`` extra (the
generator and the SNN reference run on numpy alone). The functions that need the model classes
(:mod:`python_ref.models`, which imports torch) and the importer (torch and onnx) import them
when they run.
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
    "zoo_names",
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


def float_graph(arch: str, sd: dict, input_shape=None) -> list:
    """The float network as ops ``{"name", "op", "inputs", ...}`` in topological order.

    Built through the importer, as a user's model is: the ``arch`` model, with ``sd`` loaded in
    float64, goes through :func:`python_ref.importers.from_torch_ops` (``torch.export`` and the
    ONNX importer fold batch norm and the pooling's 1/(H*W)); the layers then get the zoo's
    names (:func:`zoo_names`). Ops: ``input``, ``conv`` (``w`` ``(O, k, k, C)``, ``b``,
    ``stride``, ``padding``), ``dense`` (``w`` ``(O, I)``, ``b``), ``add``, ``relu``, ``gap``
    (a sum; ``fc`` carries the 1/(H*W)).
    """
    # torch, the model classes and the importer (the train / onnx extras): see the module
    # docstring
    import torch

    from .importers import from_torch_ops
    from .models import MODELS, build_model

    if arch not in MODELS:
        raise ConversionError(f"no converter for architecture {arch!r}")
    model = build_model(arch).double()
    model.load_state_dict({k: torch.from_numpy(np.asarray(v, np.float64)).to(
        model.state_dict()[k].dtype) for k, v in sd.items()})
    shape = tuple(input_shape or MODELS[arch]["input_shape"])
    ops = from_torch_ops(model, torch.zeros((1, *shape), dtype=torch.float64))
    names = zoo_names(arch, model)
    return ops if names is None else _rename(ops, names)


def zoo_names(arch: str, model) -> list | None:
    """``(name, op)`` of every float op of a zoo architecture, in order: the names the shipped
    descriptions use (``stem.conv``, ``block0.conv1``, ..., ``fc``; for ``effnet_cifar(_l)``
    :func:`_effnet_names`)."""
    if arch == "digits":
        return [("input", "input"), ("fc1", "dense"), ("act1", "relu"), ("fc", "dense")]
    if arch.startswith("effnet_cifar"):
        return _effnet_names(model)
    out = [("input", "input"), ("stem.conv", "conv"), ("stem.act", "relu")]
    for i, blk in enumerate(model.blocks):
        q = f"block{i}"
        out += [(f"{q}.conv1", "conv"), (f"{q}.act1", "relu"), (f"{q}.conv2", "conv")]
        if blk.shortcut is not None:
            out.append((f"{q}.shortcut", "conv"))
        out += [(f"{q}.add", "add"), (f"{q}.act2", "relu")]
    return out + [("gap", "gap"), ("fc", "dense")]


def _effnet_names(model) -> list:
    """The ``effnet_cifar`` ops' names: ``stem.conv``, ``stem.act``; per MBConv block ``i``
    ``block{i}.expand`` / ``.expand.act`` (expansion > 1), ``.dw``, ``.dw.act``, the
    squeeze-and-excitation's ``.se.gap``, ``.se.reduce``, ``.se.act``, ``.se.expand``,
    ``.se.sigmoid``, ``.se.gate`` (where it has one), ``.project``, ``.add`` (identity skip);
    then ``head.conv``, ``head.act``, ``gap``, ``fc``."""
    out = [("input", "input"), ("stem.conv", "conv"), ("stem.act", "swish")]
    for i, blk in enumerate(model.blocks):
        q = f"block{i}"
        if blk.expand is not None:
            out += [(f"{q}.expand", "conv"), (f"{q}.expand.act", "swish")]
        out += [(f"{q}.dw", "conv"), (f"{q}.dw.act", "swish")]
        if blk.se is not None:
            out += [(f"{q}.se.gap", "gap"), (f"{q}.se.reduce", "dense"),
                    (f"{q}.se.act", "swish"), (f"{q}.se.expand", "dense"),
                    (f"{q}.se.sigmoid", "sigmoid"), (f"{q}.se.gate", "gate")]
        out.append((f"{q}.project", "conv"))
        if blk.skip:
            out.append((f"{q}.add", "add"))
    return out + [("head.conv", "conv"), ("head.act", "swish"), ("gap", "gap"),
                  ("fc", "dense")]


def _rename(ops: list, names: list) -> list:
    """The imported ops under the zoo's names (an error if the structure is not the zoo's)."""
    got = [o["op"] for o in ops]
    if got != [op for _, op in names]:
        raise ConversionError(f"internal: the imported network has ops {got}, the zoo "
                              f"architecture {[op for _, op in names]}")
    new = {o["name"]: nm for o, (nm, _) in zip(ops, names, strict=True)}
    return [{**o, "name": new[o["name"]], "inputs": [new[i] for i in o["inputs"]]} for o in ops]
