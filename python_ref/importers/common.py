"""What every importer shares: the error class, layer names and the input normalisation fold.

Pure numpy; no onnx, no torch.
"""
from __future__ import annotations

import re

import numpy as np

from ..checkpoint import ConversionError

__all__ = ["ModelImportError", "UNIT_OPS", "IDENTITY_OP", "sanitise_name", "unique_name",
           "fold_input_normalisation", "insert_identities"]

#: Float ops that an importer writes for a trained AMOS unit (``python_ref/units/<op>.json``):
#: ONNX ``Sigmoid`` -> ``sigmoid``; ``Mul(x, Sigmoid(x))`` (PyTorch's ``nn.SiLU``) or ONNX
#: ``Swish`` (alpha 1) -> ``swish``. Each reads one conv / dense / add output.
UNIT_OPS = ("sigmoid", "swish")

#: The float op :func:`insert_identities` writes after a linear output (a conv / dense / add
#: with no activation) that another layer reads: the identity function in float, the signed
#: identity unit (:meth:`python_ref.quant.IntAmosUnit.identity`) once quantised.
IDENTITY_OP = "identity"

#: Ops whose output is an accumulator (a linear output when no activation follows).
_LINEAR = ("conv", "dense", "add")
#: Ops that read an accumulator itself (its units: the ReLU, the trained units, an identity).
_ACC_READERS = ("relu", IDENTITY_OP) + UNIT_OPS


class ModelImportError(ConversionError):
    """A model cannot be imported; the message names the file or node and the problem."""


_BAD = re.compile(r"[^A-Za-z0-9_.]")


def sanitise_name(name: str, fallback: str) -> str:
    """A layer name from an ONNX node name: leading ``/`` dropped, ``/`` and ``::`` become
    ``.``, any other character outside ``[A-Za-z0-9_.]`` becomes ``_``; a name that is empty
    after that is ``fallback``, one that starts with a digit gets an ``n`` in front."""
    s = name.strip().replace("::", ".").strip("/").replace("/", ".")
    s = _BAD.sub("_", s).strip(".")
    if not s:
        s = fallback or "layer"
    if s[0].isdigit():
        s = "n" + s
    return s


def unique_name(name: str, taken: set) -> str:
    """``name``, or ``name_2``, ``name_3``, ... when taken (``input`` is always taken: it is the
    description's input layer); the result is added to ``taken``."""
    out, k = name, 1
    while out in taken:
        k += 1
        out = f"{name}_{k}"
    taken.add(out)
    return out


def _per_channel(what: str, value, C: int) -> np.ndarray:
    v = np.atleast_1d(np.asarray(value, dtype=np.float64)).reshape(-1)
    if v.size == 1:
        v = np.repeat(v, C)
    if v.size != C:
        raise ModelImportError(f"{what}: one value or one per input channel ({C}), "
                               f"not {v.size}")
    return v


def fold_input_normalisation(ops: list, input_scale: float = 1 / 255, mean=0.0,
                             std=1.0) -> list:
    """Fold the model's input normalisation into the layers that read the input.

    The model expects ``(x * input_scale - mean) / std`` per channel; the converter's float ops
    read ``u = x / 255``. So the model's input is ``a * u + d`` with ``a = 255 * input_scale /
    std`` and ``d = -mean / std``: the weights on channel ``c`` are multiplied by ``a[c]`` and
    ``d[c]`` times their sum moves into the bias. With the defaults (``1/255``, 0, 1) nothing
    changes. A zero-padded convolution cannot take a non-zero ``d``: the model pads the
    *normalised* input with 0 (pixel ``mean / input_scale``), the folded layer would pad the
    pixel 0 (normalised ``-mean / std``), so the border outputs would differ; that is refused.

    Returns
    -------
    list
        New ops (the others are shared with ``ops``).
    """
    C = ops[0]["shape"][-1]
    std = _per_channel("std", std, C)
    if np.any(std == 0):
        raise ModelImportError("std: every value must be non-zero")
    a = 255.0 * float(input_scale) / std
    d = -_per_channel("mean", mean, C) / std
    if np.all(a == 1.0) and np.all(d == 0.0):
        return list(ops)
    return [_fold_into(o, a, d) if "input" in o["inputs"] else o for o in ops]


def _fold_into(o: dict, a: np.ndarray, d: np.ndarray) -> dict:
    """One op reading the input, with ``input = a * u + d`` folded into its weights."""
    o = dict(o)
    if o["op"] == "conv":
        if o["padding"] and np.any(d != 0):
            raise ModelImportError(
                f"layer {o['name']!r}: a non-zero mean cannot be folded into a zero-padded "
                "convolution on the input: the model pads the normalised input with 0, the "
                "integer network pads the pixel 0, so the border outputs would differ. Use "
                "--mean 0 (train with x * input_scale / std), or pad 0 in the first conv")
        w = o["w"]  # (O, k, k, C), or (C, k, k, 1) when depthwise
        if o.get("groups", 1) != 1:
            o["b"] = o["b"] + w.sum(axis=(1, 2, 3)) * d
            o["w"] = w * a[:, None, None, None]
        else:
            o["b"] = o["b"] + np.einsum("okjc,c->o", w, d)
            o["w"] = w * a
    elif o["op"] == "dense":
        w = o["w"]  # (O, H*W*C), the input flattened channel-last
        chan = np.arange(w.shape[1]) % len(a)
        o["b"] = o["b"] + w @ d[chan]
        o["w"] = w * a[chan]
    else:
        raise ModelImportError(f"layer {o['name']!r}: reads the input directly ({o['op']}); "
                               "an input normalisation other than x / 255 can only be folded "
                               "into a Conv or a Gemm / MatMul reading the input")
    return o


def insert_identities(ops: list) -> list:
    """The float ops with an ``identity`` op after every linear output another layer reads.

    A conv / dense / add output ``P`` gets an op ``{"name": "<P>.id", "op": "identity",
    "inputs": [P]}`` (``_2``, ``_3``, ... when the name is taken), placed right after ``P``, when
    a reader of ``P`` that is not an activation (``relu``, a trained unit) needs its value as
    spikes: a conv, dense, gap or gate, or an add when ``P`` has other readers too. Those
    readers then read ``<P>.id``; the activations keep reading ``P``. An add that is ``P``'s
    only reader takes ``P`` as an accumulator term (a ResNet's ``conv2``, its projection
    shortcut, an add feeding a ReLU): nothing is inserted, and the network's output (the
    classifier, read by nothing) gets none. Ops that already read an ``identity`` are kept as
    they are, so the function is idempotent.

    Raises
    ------
    ConversionError
        A pool reading a linear output (pools need non-negative inputs), naming the pool.

    Returns
    -------
    list
        New ops; the ops it does not change are shared with ``ops``.
    """
    readers: dict[str, list] = {o["name"]: [] for o in ops}
    for o in ops:
        for i in o["inputs"]:
            readers[i].append(o)
    taken = {o["name"] for o in ops}
    renamed: dict[str, dict] = {}  # reader name -> {P: P.id}
    out = []
    for o in ops:
        out.append(o)
        if o["op"] not in _LINEAR:
            continue
        rest = [r for r in readers[o["name"]] if r["op"] not in _ACC_READERS]
        for r in rest:
            if r["op"] in ("maxpool", "avgpool"):
                raise ConversionError(
                    f"layer {r['name']!r} ({r['op']}): its input {o['name']!r} is a linear "
                    f"output ({o['op']}, no activation), which may be negative; a pool needs "
                    "non-negative inputs: put a ReLU / Clip(0, a) before it")
        if not rest or (len(readers[o["name"]]) == 1 and rest[0]["op"] == "add"):
            continue
        ident = unique_name(f"{o['name']}.id", taken)
        out.append({"name": ident, "op": IDENTITY_OP, "inputs": [o["name"]]})
        for r in rest:
            renamed.setdefault(r["name"], {})[o["name"]] = ident
    return [{**o, "inputs": [renamed[o["name"]].get(i, i) for i in o["inputs"]]}
            if o["name"] in renamed else o for o in out]
