"""The integer SNN description (IR) that the converter writes and the generator reads.

A description is a JSON graph (``<name>.json``) plus an ``.npz`` of integer arrays
(``<name>.npz``, same stem); ``docs/ir.md`` is the format's reference. This module loads, saves and
validates it and derives what the hardware needs from it (shapes, exact integer bounds of every
tensor, neuron counts). It imports neither torch nor anything heavy: the generator runs on a fresh
clone with numpy only.

Version 1 knows eight ops (``input``, ``conv`` (dense or depthwise), ``dense``, ``add``, ``gap``,
``maxpool``, ``avgpool``, ``amos``) and two unit kinds (``relu``: the closed-form integer ReLU with
``K`` neurons; ``amos``: a general integer AMOS unit with explicit ``c``, ``c2``, ``T``, ``h``,
``d`` arrays, one or two inputs), so trained units (swish, sigmoid, multiplication) fit without a
format change.
"""
from __future__ import annotations

import copy
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .quant import IntAmosUnit

__all__ = [
    "FORMAT",
    "IR_VERSION",
    "OPS",
    "UNIT_KINDS",
    "IRError",
    "Graph",
    "load",
    "save",
    "validate",
    "make_unit",
    "activation_bits",
    "conv_groups",
]

FORMAT = "amos_ir"
IR_VERSION = 1
OPS = ("input", "conv", "dense", "add", "gap", "maxpool", "avgpool", "amos")
UNIT_KINDS = ("relu", "amos")

# Fields every node of an op must carry (beyond name/op/inputs) and their Python types.
_REQUIRED = {
    "input": {"shape": list, "bits": int},
    "conv": {"weight": str, "kernel": int, "stride": int, "padding": int, "out_channels": int},
    "dense": {"weight": str, "out_features": int},
    "add": {"lshift": list},
    "gap": {},
    "maxpool": {"kernel": int, "stride": int, "padding": int},
    "avgpool": {"kernel": int, "stride": int, "padding": int},
    "amos": {"unit": str, "rshift": list},
}
_N_INPUTS = {"input": (0, 0), "conv": (1, 1), "dense": (1, 1), "add": (2, 64), "gap": (1, 1),
             "maxpool": (1, 1), "avgpool": (1, 1), "amos": (1, 2)}


class IRError(ValueError):
    """An SNN description is malformed; the message names the layer (or file) and the problem."""


@dataclass
class Graph:
    """An integer SNN description held in memory.

    Parameters
    ----------
    name : str
        Network name (``"resnet8"``).
    nodes : list of dict
        Ops in topological order; ``nodes[0]`` is the ``input`` op. See ``docs/ir.md``.
    units : dict
        Unit library: unit name -> ``{"kind": "relu", "K": 10}`` or a general ``amos`` unit.
    arrays : dict of numpy.ndarray
        Integer arrays referenced by name from nodes and units.
    outputs : list of str
        Names of the output tensors (the logits).
    meta : dict
        Free-form provenance (checkpoint hash, calibration); not used by the semantics.

    Members
    -------
    node : dict
        Name -> node, built by :meth:`index`.
    """

    name: str
    nodes: list
    units: dict
    arrays: dict
    outputs: list
    meta: dict = field(default_factory=dict)

    def index(self) -> dict:
        """Name -> node mapping."""
        return {n["name"]: n for n in self.nodes}

    @property
    def node(self) -> dict:
        return self.index()

    def unit(self, name: str) -> IntAmosUnit:
        """The integer unit ``name`` as an :class:`~python_ref.quant.IntAmosUnit`."""
        if name not in self.units:
            raise IRError(f"unit {name!r} is not in the unit library")
        return make_unit(name, self.units[name], self.arrays)

    def amos_nodes(self) -> list:
        return [n for n in self.nodes if n["op"] == "amos"]

    def neurons(self) -> int:
        """Spiking neurons of the SNN: the sum over all AMOS units of their K (one unit per
        element of every ``amos`` op's output)."""
        info = validate(self)
        total = 0
        for n in self.amos_nodes():
            total += math.prod(info[n["name"]]["shape"]) * unit_K(self.units[n["unit"]],
                                                                  self.arrays)
        return total

    def time_steps(self) -> int:
        """Latency in time steps: the largest sum of unit K over any input-to-output path (each
        AMOS layer emits its K spikes on K consecutive steps, MSB first)."""
        steps: dict[str, int] = {}
        for n in self.nodes:
            t = max((steps[i] for i in n.get("inputs", [])), default=0)
            if n["op"] == "amos":
                t += unit_K(self.units[n["unit"]], self.arrays)
            steps[n["name"]] = t
        return max(steps[o] for o in self.outputs)

    def K_values(self) -> dict:
        """Layer name -> K of its unit, for every ``amos`` op."""
        return {n["name"]: unit_K(self.units[n["unit"]], self.arrays) for n in self.amos_nodes()}

    def to_json(self) -> dict:
        return {"format": FORMAT, "version": IR_VERSION, "name": self.name,
                "outputs": list(self.outputs), "units": self.units, "nodes": self.nodes,
                "meta": self.meta}

    def copy(self) -> Graph:
        return Graph(self.name, copy.deepcopy(self.nodes), copy.deepcopy(self.units),
                     {k: v.copy() for k, v in self.arrays.items()}, list(self.outputs),
                     copy.deepcopy(self.meta))


def unit_K(spec: dict, arrays: dict) -> int:
    if spec.get("kind") == "relu":
        return int(spec["K"])
    return int(np.asarray(arrays[spec["c"]]).size)


def make_unit(name: str, spec: dict, arrays: dict) -> IntAmosUnit:
    """Build the :class:`IntAmosUnit` for a unit-library entry (errors name the unit).

    A ``relu`` entry gives :meth:`IntAmosUnit.relu` of its ``K``. In an ``amos`` entry ``c``,
    ``T``, ``h``, ``d`` (and ``c2``, which makes a two-input unit when present and not null or
    empty) name arrays in ``arrays``; ``in_range`` / ``in2_range`` are inclusive ``[lo, hi]``
    (absent or null: ``[-2**31, 2**31 - 1]``, and ``in2_range`` defaults to ``in_range``); the
    unit's name is ``source`` when given, else ``name``.
    """
    kind = spec.get("kind")
    if kind == "relu":
        try:
            return IntAmosUnit.relu(spec.get("K"))
        except ValueError as e:
            raise IRError(f"unit {name!r}: {e}") from None
    if kind == "amos":
        try:
            get = {k: arrays[spec[k]] for k in ("c", "T", "h", "d")}
            c2 = arrays[spec["c2"]] if spec.get("c2") else None
            kw = {}
            for k in ("in_range", "in2_range"):
                if spec.get(k) is not None:
                    kw[k] = tuple(spec[k])
            for k in ("in_scale", "in2_scale", "out_scale"):
                if spec.get(k) is not None:
                    kw[k] = spec[k]
            return IntAmosUnit(spec.get("source", name), c2=c2, **get, **kw)
        except KeyError as e:
            raise IRError(f"unit {name!r}: missing field or array {e}") from None
        except (ValueError, TypeError) as e:
            raise IRError(f"unit {name!r}: {e}") from None
    raise IRError(f"unit {name!r}: unknown unit kind {kind!r}; known: {', '.join(UNIT_KINDS)}")


# ---------------------------------------------------------------------------------------------
# Validation: shapes and exact integer bounds
# ---------------------------------------------------------------------------------------------


def _int_array(g: Graph, node: dict, key: str, what: str) -> np.ndarray:
    ref = node.get(key)
    if ref is None:
        raise IRError(f"layer {node['name']!r}: missing field {key!r}")
    if not isinstance(ref, str) or ref not in g.arrays:
        raise IRError(f"layer {node['name']!r}: {what} array {ref!r} is missing from the arrays")
    a = np.asarray(g.arrays[ref])
    if a.dtype.kind not in "iu":
        raise IRError(f"layer {node['name']!r}: {what} array {ref!r} must hold integers, "
                      f"not {a.dtype}")
    return a


def _conv_out(n: int, k: int, s: int, p: int) -> int:
    return (n + 2 * p - k) // s + 1


def validate(g: Graph) -> dict:
    """Check a description and infer every tensor's shape and exact integer range.

    Parameters
    ----------
    g : Graph

    Returns
    -------
    dict
        Tensor name -> ``{"shape": tuple, "lo": int, "hi": int}``: ``lo``/``hi`` bound every
        value over all inputs in the declared input range, computed in Python ints (no
        overflow); they need not be reached (each input element is taken as free in its range,
        and an ``add`` bound is the sum of its inputs' bounds).

    Raises
    ------
    IRError
        Naming the layer and what is wrong: unknown op or unit kind, missing field or array,
        dangling input, inconsistent shapes, out-of-range weights.
    """
    if not g.nodes or g.nodes[0].get("op") != "input":
        raise IRError("the first node must be the 'input' op")
    info: dict[str, dict] = {}
    for n in g.nodes:
        name, op, ins = _check_node(n, info)
        info[name] = _INFER[op](g, n, [info[i] for i in ins])
        if "shape" in n and op != "input" and tuple(n["shape"]) != info[name]["shape"]:
            raise IRError(f"layer {name!r}: declared shape {tuple(n['shape'])} but the inputs "
                          f"give {info[name]['shape']}")
    for o in g.outputs:
        if o not in info:
            raise IRError(f"output {o!r} is not a layer")
    for u, spec in g.units.items():
        make_unit(u, spec, g.arrays)
    return info


def _check_node(n: dict, info: dict) -> tuple[str, str, list]:
    """A node's name, op and inputs, once its name is new, its op known, its required fields
    present and typed, and its inputs earlier layers (``info`` holds the earlier layers)."""
    name = n.get("name")
    if not isinstance(name, str) or not name:
        raise IRError(f"a node has no name: {n!r}")
    if name in info:
        raise IRError(f"layer {name!r}: duplicate name")
    op = n.get("op")
    if op not in OPS:
        raise IRError(f"layer {name!r}: unknown op {op!r}; known: {', '.join(OPS)}")
    for key, typ in _REQUIRED[op].items():
        if key not in n:
            raise IRError(f"layer {name!r}: missing field {key!r}")
        if not isinstance(n[key], typ) or isinstance(n[key], bool):
            raise IRError(f"layer {name!r}: field {key!r} must be {typ.__name__}, "
                          f"not {n[key]!r}")
    ins = n.get("inputs", [])
    lo_n, hi_n = _N_INPUTS[op]
    if not isinstance(ins, list) or not lo_n <= len(ins) <= hi_n:
        raise IRError(f"layer {name!r}: op {op!r} takes {lo_n}..{hi_n} inputs, not {ins!r}")
    for i in ins:
        if i not in info:
            raise IRError(f"layer {name!r}: input {i!r} is not an earlier layer")
    return name, op, ins


# One function per op: (graph, node, the inputs' infos) -> the node's {"shape", "lo", "hi"}.


def _infer_input(g: Graph, n: dict, src: list) -> dict:
    name = n["name"]
    shape = tuple(n["shape"])
    if not shape or any(not isinstance(s, int) or s < 1 for s in shape):
        raise IRError(f"layer {name!r}: shape must be positive integers, not {n['shape']!r}")
    if not 1 <= n["bits"] <= 30:
        raise IRError(f"layer {name!r}: bits must be 1..30, not {n['bits']}")
    return {"shape": shape, "lo": 0, "hi": 2 ** n["bits"] - 1}


def _weights(g: Graph, n: dict) -> np.ndarray:
    """The node's weight array as int64, checked against its ``weight_bits`` (default 8)."""
    name = n["name"]
    w = _int_array(g, n, "weight", "weight").astype(np.int64)
    wb = n.get("weight_bits", 8)
    if not isinstance(wb, int) or not 2 <= wb <= 32:
        raise IRError(f"layer {name!r}: weight_bits must be an integer 2..32, not {wb!r}")
    qmax = 2 ** (wb - 1) - 1
    if w.size and np.abs(w).max() > qmax:
        raise IRError(f"layer {name!r}: weights must lie in -{qmax}..{qmax} "
                      f"({wb}-bit symmetric)")
    return w


def conv_groups(n: dict) -> int:
    """A ``conv`` node's ``groups`` (1 when the field is absent)."""
    return n.get("groups", 1)


def _conv_geometry(n: dict, s: dict, w: np.ndarray) -> tuple:
    """A conv's output shape, its weights as ``(O, k*k*C)`` (``(C, k*k)`` when depthwise) and
    the range of the values it reads (zero padding included)."""
    name = n["name"]
    if len(s["shape"]) != 3:
        raise IRError(f"layer {name!r}: conv needs an (H, W, C) input, "
                      f"not shape {s['shape']}")
    H, W, C = s["shape"]
    k, st, p, co = n["kernel"], n["stride"], n["padding"], n["out_channels"]
    if k < 1 or st < 1 or p < 0:
        raise IRError(f"layer {name!r}: kernel/stride must be >= 1 and padding >= 0")
    groups = conv_groups(n)
    if not isinstance(groups, int) or isinstance(groups, bool) or groups not in (1, C):
        raise IRError(f"layer {name!r}: groups must be 1 or the input channels ({C}), "
                      f"not {groups!r}")
    if groups == 1:
        want = (co, k, k, C)
        what = "(out_channels, kernel, kernel, in_channels)"
    else:
        if co != C:
            raise IRError(f"layer {name!r}: a depthwise conv (groups = {C}) needs out_channels "
                          f"= in_channels = {C}, not {co}")
        want, what = (C, k, k, 1), "(channels, kernel, kernel, 1) for a depthwise conv"
    if w.shape != want:
        raise IRError(f"layer {name!r}: weight shape {w.shape} does not match {what} = {want}")
    Ho, Wo = _conv_out(H, k, st, p), _conv_out(W, k, st, p)
    if Ho < 1 or Wo < 1:
        raise IRError(f"layer {name!r}: output would be empty ({Ho}x{Wo})")
    lo_in, hi_in = s["lo"], s["hi"]
    if p > 0:  # zero padding brings the value 0 in
        lo_in, hi_in = min(lo_in, 0), max(hi_in, 0)
    return (Ho, Wo, co), w.reshape(co, -1), lo_in, hi_in


def _dense_geometry(n: dict, s: dict, w: np.ndarray) -> tuple:
    """A dense layer's output shape, its weights and the range of the values it reads."""
    fin = int(np.prod(s["shape"]))
    co = n["out_features"]
    if w.shape != (co, fin):
        raise IRError(f"layer {n['name']!r}: weight shape {w.shape} does not match "
                      f"(out_features, in_features) = {(co, fin)}")
    return (co,), w, s["lo"], s["hi"]


def _infer_weighted(g: Graph, n: dict, src: list) -> dict:
    """``conv`` and ``dense``: the bounds of ``W a + b`` over inputs ``a`` in their range."""
    w = _weights(g, n)
    geometry = _conv_geometry if n["op"] == "conv" else _dense_geometry
    shape, wm, lo_in, hi_in = geometry(n, src[0], w)
    co = shape[-1]
    pos = np.clip(wm, 0, None).astype(object).sum(1)
    neg = np.clip(wm, None, 0).astype(object).sum(1)
    lo = [int(pp * lo_in + nn * hi_in) for pp, nn in zip(pos, neg, strict=True)]
    hi = [int(pp * hi_in + nn * lo_in) for pp, nn in zip(pos, neg, strict=True)]
    if n.get("bias") is not None:
        b = _int_array(g, n, "bias", "bias").astype(np.int64)
        if b.shape != (co,):
            raise IRError(f"layer {n['name']!r}: bias shape {b.shape} does not match ({co},)")
        lo = [a + int(x) for a, x in zip(lo, b, strict=True)]
        hi = [a + int(x) for a, x in zip(hi, b, strict=True)]
    return {"shape": shape, "lo": min(lo), "hi": max(hi)}


def _infer_add(g: Graph, n: dict, src: list) -> dict:
    name = n["name"]
    sh = n["lshift"]
    if len(sh) != len(src) or any(not isinstance(v, int) or v < 0 for v in sh):
        raise IRError(f"layer {name!r}: lshift must hold one non-negative integer per input, "
                      f"not {sh!r}")
    shapes = {s["shape"] for s in src}
    if len(shapes) != 1:
        raise IRError(f"layer {name!r}: add inputs have different shapes "
                      f"{[s['shape'] for s in src]} (inputs {n['inputs']})")
    pairs = list(zip(src, sh, strict=True))
    return {"shape": src[0]["shape"], "lo": sum(s["lo"] << v for s, v in pairs),
            "hi": sum(s["hi"] << v for s, v in pairs)}


def _infer_gap(g: Graph, n: dict, src: list) -> dict:
    s = src[0]
    if len(s["shape"]) != 3:
        raise IRError(f"layer {n['name']!r}: gap needs an (H, W, C) input, "
                      f"not shape {s['shape']}")
    npos = s["shape"][0] * s["shape"][1]
    return {"shape": (s["shape"][2],), "lo": s["lo"] * npos, "hi": s["hi"] * npos}


def _layer_unit(g: Graph, n: dict) -> IntAmosUnit:
    """The unit an ``amos`` layer names, built from the unit library (errors name the layer)."""
    name, unit_name = n["name"], n["unit"]
    if unit_name not in g.units:
        raise IRError(f"layer {name!r}: unit {unit_name!r} is not in the unit library")
    spec = g.units[unit_name]
    if spec.get("kind") not in UNIT_KINDS:
        raise IRError(f"layer {name!r}: unit {unit_name!r} has unknown kind "
                      f"{spec.get('kind')!r}; known: {', '.join(UNIT_KINDS)}")
    try:
        return make_unit(unit_name, spec, g.arrays)
    except IRError as e:
        raise IRError(f"layer {name!r}: {e}") from None


def _check_gate_shapes(n: dict, src: list) -> None:
    """A two-input ``amos`` layer ``[x, g]``: ``g`` has the shape of ``x`` or is one value per
    channel, ``(C,)`` with ``C = x.shape[-1]``, broadcast over the leading axes of ``x``
    (``x[h, w, c]`` pairs with ``g[c]``); the output has the shape of ``x``."""
    if len(src) < 2:
        return
    xs, gs = src[0]["shape"], src[1]["shape"]
    if gs == xs or (len(xs) > 1 and gs == (xs[-1],)):
        return
    raise IRError(f"layer {n['name']!r}: a two-input unit takes x and g = {n['inputs'][1]!r} "
                  f"of the same shape or g of shape (C,) = ({xs[-1]},) broadcast over x's "
                  f"leading axes; x = {n['inputs'][0]!r} has shape {xs}, g has shape {gs}")


def _infer_amos(g: Graph, n: dict, src: list) -> dict:
    """An ``amos`` layer: one input, or two ``[x, g]`` with ``g`` broadcast over ``x``
    (:func:`_check_gate_shapes`); the output has ``x``'s shape. Bounds: a ReLU unit's
    ``[0, 2**K - 1]``, a general unit's ``[sum of its negative d, sum of its positive d]``
    (the range of ``y = sum_i d_i z_i`` over all spike patterns)."""
    name, unit_name = n["name"], n["unit"]
    unit = _layer_unit(g, n)
    if len(src) != unit.inputs:
        raise IRError(f"layer {name!r}: unit {unit_name!r} takes {unit.inputs} input(s), "
                      f"the layer gives {len(src)}")
    rs = n["rshift"]
    if len(rs) != len(src) or any(not isinstance(v, int) or not 0 <= v <= 62 for v in rs):
        raise IRError(f"layer {name!r}: rshift must hold one integer 0..62 per input, not {rs!r}")
    _check_gate_shapes(n, src)
    if g.units[unit_name]["kind"] == "relu":
        lo, hi = 0, 2 ** unit.K - 1
    else:
        lo = int(np.clip(unit.d, None, 0).sum())
        hi = int(np.clip(unit.d, 0, None).sum())
    return {"shape": src[0]["shape"], "lo": lo, "hi": hi}


def _pool_window(n: dict, s: dict) -> tuple:
    """A pool's output shape, once its input is a map and its window fields are in range."""
    name, op = n["name"], n["op"]
    if len(s["shape"]) != 3:
        raise IRError(f"layer {name!r}: {op} needs an (H, W, C) input, not shape {s['shape']}")
    H, W, C = s["shape"]
    k, st, p = n["kernel"], n["stride"], n["padding"]
    if k < 1:
        raise IRError(f"layer {name!r}: kernel must be >= 1, not {k}")
    if st < 1:
        raise IRError(f"layer {name!r}: stride must be >= 1, not {st}")
    if not 0 <= p < k:
        raise IRError(f"layer {name!r}: padding must lie in 0..kernel-1 = 0..{k - 1}, not {p}")
    Ho, Wo = _conv_out(H, k, st, p), _conv_out(W, k, st, p)
    if Ho < 1 or Wo < 1:
        raise IRError(f"layer {name!r}: output would be empty ({Ho}x{Wo})")
    return (Ho, Wo, C)


def _is_relu_layer(g: Graph, node: dict) -> bool:
    return (node["op"] == "amos" and node.get("unit") in g.units
            and g.units[node["unit"]].get("kind") == "relu")


def _pool_source(g: Graph, n: dict, allowed: tuple) -> dict:
    """The node a pool reads, once it is one of the ``allowed`` kinds (``"relu"``: an ``amos``
    layer with a closed-form ReLU unit)."""
    src = g.node[n["inputs"][0]]
    kind = "relu" if _is_relu_layer(g, src) else src["op"]
    if kind not in allowed:
        what = f"op {src['op']!r}" if src["op"] != "amos" else "an amos layer with a non-ReLU unit"
        raise IRError(f"layer {n['name']!r}: {n['op']} needs non-negative activations (one of: "
                      f"{', '.join(allowed)}), but its input {src['name']!r} is {what}")
    return src


def activation_bits(g: Graph, name: str) -> int:
    """The width in bits of the unsigned values a spike-map tensor carries.

    ``input``: its ``bits``; an ``amos`` layer with a ReLU unit: the unit's ``K``; ``maxpool``:
    its input's width; ``avgpool``: its input's width plus ``ceil(log2(kernel**2))``.

    Raises
    ------
    IRError
        When ``name`` is not such a tensor (naming it).
    """
    node = g.node.get(name)
    if node is None:
        raise IRError(f"layer {name!r}: no such layer")
    if node["op"] == "input":
        return int(node["bits"])
    if _is_relu_layer(g, node):
        return int(g.units[node["unit"]]["K"])
    if node["op"] == "maxpool":
        return activation_bits(g, node["inputs"][0])
    if node["op"] == "avgpool":
        k = node["kernel"]
        return activation_bits(g, node["inputs"][0]) + math.ceil(math.log2(k * k))
    raise IRError(f"layer {name!r}: op {node['op']!r} does not carry unsigned activations")


def _infer_maxpool(g: Graph, n: dict, src: list) -> dict:
    shape = _pool_window(n, src[0])
    _pool_source(g, n, ("relu", "maxpool"))
    return {"shape": shape, "lo": 0, "hi": src[0]["hi"]}


def _infer_avgpool(g: Graph, n: dict, src: list) -> dict:
    shape = _pool_window(n, src[0])
    _pool_source(g, n, ("relu", "maxpool", "avgpool", "input"))
    return {"shape": shape, "lo": 0, "hi": src[0]["hi"] * n["kernel"] ** 2}


_INFER = {"input": _infer_input, "conv": _infer_weighted, "dense": _infer_weighted,
          "add": _infer_add, "gap": _infer_gap, "maxpool": _infer_maxpool,
          "avgpool": _infer_avgpool, "amos": _infer_amos}


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


def _paths(path) -> tuple[Path, Path]:
    p = Path(path)
    if p.suffix in (".json", ".npz"):
        p = p.with_suffix("")
    return p.with_suffix(".json"), p.with_suffix(".npz")


def save(g: Graph, path: str | os.PathLike) -> tuple[Path, Path]:
    """Validate and write ``<stem>.json`` and ``<stem>.npz``; returns both paths."""
    validate(g)
    jp, zp = _paths(path)
    jp.parent.mkdir(parents=True, exist_ok=True)
    doc = g.to_json()
    jp.write_text(json.dumps(doc, indent=1, default=_json_default) + "\n")
    np.savez_compressed(zp, **g.arrays)
    return jp, zp


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def load(path: str | os.PathLike, check: bool = True) -> Graph:
    """Read a description from ``<stem>.json`` + ``<stem>.npz`` (either path, or the stem).

    Raises
    ------
    IRError
        When a file is missing or unreadable, the format or version is wrong, or (with
        ``check``) :func:`validate` fails.
    """
    jp, zp = _paths(path)
    for f in (jp, zp):
        if not f.is_file():
            raise IRError(f"{f}: no such file (an SNN description is a .json and an .npz)")
    doc = _read_document(jp)
    arrays = _read_arrays(zp)
    g = Graph(doc["name"], doc["nodes"], doc["units"], arrays, doc["outputs"], doc.get("meta", {}))
    if check:
        try:
            validate(g)
        except IRError as e:
            raise IRError(f"{jp}: {e}") from None
    return g


def _read_document(jp: Path) -> dict:
    """The JSON half of a description, once its format, version and top-level fields are
    checked."""
    try:
        doc = json.loads(jp.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise IRError(f"{jp}: not valid JSON ({e})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise IRError(f"{jp}: not an {FORMAT} description (field 'format' is "
                      f"{doc.get('format') if isinstance(doc, dict) else None!r})")
    if doc.get("version") != IR_VERSION:
        raise IRError(f"{jp}: format version {doc.get('version')!r} is not supported "
                      f"(this reader knows version {IR_VERSION})")
    for k in ("name", "nodes", "units", "outputs"):
        if k not in doc:
            raise IRError(f"{jp}: missing top-level field {k!r}")
    return doc


def _read_arrays(zp: Path) -> dict:
    """The arrays of a description's ``.npz`` (no pickled objects)."""
    try:
        with np.load(zp, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise IRError(f"{zp}: cannot be read as an .npz file ({e})") from None


def exact_float64_bound(lo: int, hi: int) -> bool:
    """Whether every integer in ``[lo, hi]`` is exact in float64 (``|v| < 2**53``)."""
    return max(abs(lo), abs(hi)) < 2**53 and math.isfinite(float(hi))
