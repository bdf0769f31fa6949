"""Convert a trained float network into an integer SNN description (AMOS conversion).

``python -m python_ref.convert --model resnet8 [--checkpoint PATH] [--data PATH] [--out STEM]``
``python -m python_ref.convert --onnx MODEL.onnx --calib CALIB --out STEM [--finetune EPOCHS
--train TRAIN]`` (docs/import.md)

Steps (each a function here; :func:`load_checkpoint` and :func:`float_graph` come from
:mod:`python_ref.checkpoint`, which :mod:`python_ref.finetune` shares, the importer from
:mod:`python_ref.importers`):

1. :func:`load_checkpoint` reads ``{"arch", "state_dict", ...}`` and checks it against the model
   class (another architecture, a missing layer or a wrong shape is an error naming the layer).
   A user's model comes instead as an ONNX file (:func:`import_ops`) or a module
   (:func:`from_torch`).
2. The importer writes the network as a list of float ops, batch norm folded, the 1/(H*W) of
   global average pooling folded into the classifier, the input normalisation folded into the
   first layers: :func:`float_graph` takes the zoo's model through it (``torch.export`` and the
   ONNX importer, as for a user's module) and names the layers as the shipped descriptions do
   (``stem.conv``, ``block0.conv1``, ..., ``fc``); a user's layers keep their ONNX node names.
   Before calibration :func:`insert_identities` puts an ``identity`` op (``<layer>.id``) after
   every linear output (a conv / dense / add with no activation) that a conv, dense, gap, gate
   or a second reader takes: its spikes come from the signed identity unit.
3. :func:`calibrate` runs the float ops (numpy) on calibration images from the *training* set
   and takes, for every ReLU, the given percentile of its outputs (all elements, zeros included)
   as the clipping level ``alpha_cal``. Default: 2,000 images (a fixed, seeded draw), 99.99th
   percentile. For a trained unit (``sigmoid``, ``swish``: an imported Sigmoid or SiLU) it takes
   the percentile of the absolute value of the unit's input, recorded as ``input_cal``; for an
   ``identity`` that of ``|v|``, its clipping level.
4. :func:`quantise` picks per layer one power-of-two requantisation shift and integer weights
   (``docs/integer_semantics.md``): the accumulator scale is set by the layer's largest |weight|
   mapping to 127, the output scale is the accumulator scale times ``2**S`` and lies in
   ``[alpha_cal, 2*alpha_cal) / 2**K``. Where an identity shortcut is added, the accumulator
   scale must also be ``2**-shift`` times the skip tensor's scale so that the skip is a left
   shift; there the weights use ``(63.5, 127]`` of the int8 range (at most one bit less).
   Two conv terms of one accumulator whose own scales lie :data:`ALIGN_BITS` bits or more
   apart (a per-layer K) are aligned the same way: the accumulator takes the finer scale and
   the coarser term a left shift in the add.
   A trained unit layer's shift makes the unit's fit domain span about ``in_bits`` signed bits
   of its input, and the library unit is quantised for that input scale
   (:func:`python_ref.quant.quantize_unit_for_input`); its output scale is the unit's
   ``out_scale`` (``unit_bits``; ``docs/integer_semantics.md``, "Trained units"). An identity
   is :meth:`python_ref.quant.IntAmosUnit.identity` with ``K = d_bits``, its shift the smallest
   that fits the calibrated level in ``K`` signed bits.
5. The :class:`~python_ref.ir.Graph` is validated and saved (``.json`` + ``.npz``).
6. Optionally (``--finetune EPOCHS``) :mod:`python_ref.finetune` trains the weights with the
   integer units in the loop, keeping every scale, shift and K; the shipped ResNet8 was made with
   ``--finetune 1`` because the plain conversion missed the 0.2-point target (0.26 points).
   An imported model fine-tunes the same way on ``--train TRAIN``, distilling from its own float
   ops (:func:`python_ref.finetune.finetune_ops`).
"""
from __future__ import annotations

import argparse
import hashlib
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import ir as _ir
from .checkpoint import (
    ZOO,
    ConversionError,
    check_state_dict,
    float_graph,
    load_checkpoint,
    random_state_dict,
)
from .data import DataError, load_dataset
from .importers import (
    ModelImportError,
    fold_input_normalisation,
    from_torch_ops,
    import_onnx,
)
from .importers.common import IDENTITY_OP, UNIT_OPS, insert_identities
from .quant import IntAmosUnit, quantize_unit_for_input, quantize_unit_for_inputs
from .snn import im2col
from .units import load_unit

__all__ = [
    "ConversionError",
    "load_checkpoint",
    "float_graph",
    "run_float",
    "calibrate",
    "quantise",
    "convert",
    "convert_ops",
    "load_calibration",
    "import_ops",
    "insert_identities",
    "from_torch",
    "ModelImportError",
    "random_state_dict",
    "ZOO",
]

DEFAULT_K = 10
DEFAULT_PERCENTILE = 99.99
DEFAULT_CALIB = 2000
#: (in_bits, w_bits, d_bits) of a trained unit layer: signed bits of its input v over the unit's
#: fit domain, of its input weights c and of its output weights d (``quantise``, step 4).
DEFAULT_UNIT_BITS = (12, 10, 10)
#: The float op an importer writes for the squeeze-and-excitation gate ``Mul(x, s)``; it becomes
#: a two-input ``amos`` layer with the library's ``mult`` unit (``python_ref/units/mult.json``).
GATE_OP = "gate"
GATE_UNIT = "mult"
CONVERTER_VERSION = 1


# ---------------------------------------------------------------------------------------------
# 2. Running the float graph (steps 1 and 2 build it: python_ref.checkpoint)
# ---------------------------------------------------------------------------------------------


def _float_conv(a, w, b, stride, padding, groups=1):
    cols, (N, Ho, Wo) = im2col(a, w.shape[1], stride, padding)
    if groups != 1:  # depthwise: w (C, k, k, 1)
        C = w.shape[0]
        out = np.einsum("mjc,cj->mc", cols.reshape(len(cols), -1, C),
                        w.reshape(C, -1).astype(a.dtype))
    else:
        out = cols @ w.reshape(w.shape[0], -1).T.astype(a.dtype)
    return out.reshape(N, Ho, Wo, -1) + b.astype(a.dtype)


def _float_pool(a, o):
    """A ``maxpool`` (max) or ``avgpool`` (sum: the next layer carries the 1/(k*k)) of a map
    of non-negative values, zero padded."""
    k = o["kernel"]
    cols, (N, Ho, Wo) = im2col(a, k, o["stride"], o["padding"])
    win = cols.reshape(N, Ho, Wo, k * k, -1)
    return win.max(axis=3) if o["op"] == "maxpool" else win.sum(axis=3)


def _float_unit(op: str, a: np.ndarray) -> np.ndarray:
    """The float function a trained unit op approximates: ``sigmoid(a)`` or ``a * sigmoid(a)``
    (``sigmoid(a) = (1 + tanh(a/2)) / 2``, which cannot overflow)."""
    sig = (1 + np.tanh(a * a.dtype.type(0.5))) * a.dtype.type(0.5)
    return sig if op == "sigmoid" else a * sig


def _float_activation(o: dict, a: np.ndarray, hook, dtype) -> np.ndarray:
    """A ``relu`` (clipped at its ``cap``), an ``identity`` or a trained unit op on ``a``;
    ``hook`` sees the ReLU's output, the identity's and the unit's ``|a|``."""
    if o["op"] == IDENTITY_OP:
        v, seen = a, np.abs(a)
    elif o["op"] == "relu":
        v = np.maximum(a, 0)
        if o.get("cap") is not None:
            v = np.minimum(v, dtype(o["cap"]))
        seen = v
    else:
        v = _float_unit(o["op"], a)
        seen = np.abs(a)
    if hook is not None:
        hook(o["name"], seen)
    return v


def _gate_key(name: str) -> str:
    """The calibration key of a gate's second input ``g`` (``:`` never occurs in a layer
    name); its first input ``x`` has the gate's name."""
    return f"{name}:g"


def _float_gate(o: dict, ins: list, hook) -> np.ndarray:
    """The squeeze-and-excitation gate ``x * g``, ``g`` of shape ``(N, C)`` broadcast over the
    ``(N, H, W, C)`` map ``x`` (or of ``x``'s shape); ``hook`` sees ``|x|`` under the gate's
    name and ``|g|`` under :func:`_gate_key`."""
    x, g = ins
    if g.ndim < x.ndim:
        g = g.reshape(g.shape[:1] + (1,) * (x.ndim - g.ndim) + g.shape[1:])
    if hook is not None:
        hook(o["name"], np.abs(x))
        hook(_gate_key(o["name"]), np.abs(ins[1]))
    return x * g


def run_float(ops: list, x: np.ndarray, hook=None, dtype=np.float32) -> np.ndarray:
    """Run the float ops on uint8 images (real input ``x / 255``); ``hook(name, value)`` sees
    every ReLU output (a ReLU with a ``cap`` clips at it), for a trained unit (``sigmoid``,
    ``swish``: the exact float function) and for an ``identity`` (the identity function,
    :func:`insert_identities`) the absolute value of its input and for a ``gate`` (``x * g``,
    the exact product) ``|x|`` and ``|g|`` (:func:`_float_gate`). Returns the logits."""
    vals = {}
    for o in ops:
        ins = [vals[i] for i in o["inputs"]]
        if o["op"] == "input":
            v = x.astype(dtype) / dtype(255)
        elif o["op"] == "conv":
            v = _float_conv(ins[0], o["w"], o["b"], o["stride"], o["padding"],
                            o.get("groups", 1))
        elif o["op"] in ("maxpool", "avgpool"):
            v = _float_pool(ins[0], o)
        elif o["op"] == "dense":
            v = ins[0].reshape(len(ins[0]), -1) @ o["w"].T.astype(dtype) + o["b"].astype(dtype)
        elif o["op"] == "add":
            v = sum(ins)
        elif o["op"] == "gap":
            v = ins[0].sum(axis=(1, 2))
        elif o["op"] in ("relu", IDENTITY_OP) or o["op"] in UNIT_OPS:
            v = _float_activation(o, ins[0], hook, dtype)
        elif o["op"] == GATE_OP:
            v = _float_gate(o, ins, hook)
        else:
            raise ConversionError(f"layer {o['name']!r}: unknown float op {o['op']!r}")
        vals[o["name"]] = v
    return vals[ops[-1]["name"]]


# ---------------------------------------------------------------------------------------------
# 3. Calibration
# ---------------------------------------------------------------------------------------------


def calibrate(ops: list, x: np.ndarray, percentile: float = DEFAULT_PERCENTILE,
              batch_size: int = 100, progress: bool = True) -> dict:
    """ReLU name -> ``alpha_cal``: the ``percentile`` of its outputs over the images ``x``,
    at most the ReLU's ``cap`` when it has one (Clip(0, a), ReLU6); trained unit (``sigmoid``,
    ``swish``) name -> the ``percentile`` of the absolute value of its input (recorded as the
    layer's ``input_cal``; the unit's input range is its fit domain, see :func:`quantise`);
    gate name -> the ``percentile`` of ``|x|``, and ``<gate>:g`` -> that of ``|g|`` (the real
    values its ``mult`` unit's domain bound 1 stands for, see :func:`quantise`); identity name
    -> the ``percentile`` of ``|v|``, the linear output it reads (its clipping level, see
    :func:`quantise`). The ops go through :func:`insert_identities` first.

    Exact over all elements: the top ``ceil((1 - p/100) * count) + 1`` values of every layer are
    kept across batches and the percentile is read from them (linear interpolation as in
    ``numpy.percentile``).
    """
    if not 0 < percentile <= 100:
        raise ConversionError(f"percentile must lie in (0, 100], not {percentile}")
    ops = insert_identities(ops)
    n = len(x)
    caps = {o["name"]: float(o["cap"]) for o in ops if o.get("cap") is not None}
    tops: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}

    def hook(name, v):
        flat = v.reshape(-1)
        total = v[0].size * n
        m = min(total, int(math.ceil((1 - percentile / 100) * total)) + 2)
        counts[name] = counts.get(name, 0) + flat.size
        cur = np.concatenate([tops.get(name, np.empty(0, flat.dtype)), flat])
        if cur.size > m:
            cur = np.partition(cur, cur.size - m)[cur.size - m:]
        tops[name] = cur

    it = range(0, n, batch_size)
    if progress:
        it = tqdm(it, desc="calibrate", unit="batch", file=sys.stderr)
    for s in it:
        run_float(ops, x[s:s + batch_size], hook)
    alphas = {}
    for name, top in tops.items():
        total = counts[name]
        # rank (0-based, ascending) of the percentile in the full sorted array
        r = percentile / 100 * (total - 1)
        lo_r, frac = int(math.floor(r)), r - math.floor(r)
        top = np.sort(top.astype(np.float64))
        base = total - top.size  # rank of top[0]
        lo_v = top[max(0, lo_r - base)]
        hi_v = top[min(top.size - 1, lo_r + 1 - base)]
        a = float(lo_v + (hi_v - lo_v) * frac)
        if not a > 0:
            a = float(top[-1]) if top[-1] > 0 else 1.0  # a dead layer: any positive level
        alphas[name] = min(a, caps.get(name, math.inf))
    return alphas


# ---------------------------------------------------------------------------------------------
# 4. Quantisation
# ---------------------------------------------------------------------------------------------


def _terms(byname: dict, name: str) -> tuple[list, list]:
    """The accumulator terms of the tensor ``name``: (conv/dense ops, skip activation names)."""
    o = byname[name]
    if o["op"] in ("conv", "dense"):
        return [o], []
    if o["op"] == "add":
        convs, skips = [], []
        for i in o["inputs"]:
            if byname[i]["op"] in ("conv", "dense", "add"):
                c, s = _terms(byname, i)
                convs += c
                skips += s
            else:
                skips.append(i)
        return convs, skips
    raise ConversionError(f"layer {name!r}: a unit must follow a conv, dense or add, "
                          f"not {o['op']!r}")


def _pow2_exp(r: float) -> int:
    """The integer e with ``2**e`` the closest power of two to ``r`` (``r`` is one already up to
    float rounding)."""
    e = round(math.log2(r))
    if not math.isclose(2.0 ** e, r, rel_tol=1e-9):
        raise ConversionError(f"internal: scale ratio {r} is not a power of two")
    return e


def quantise(ops: list, alphas: dict, K: int = DEFAULT_K, K_layers: dict | None = None,
             name: str = "net", input_bits: int = 8, weight_bits: int = 8,
             unit_bits: tuple = DEFAULT_UNIT_BITS, unit_files: dict | None = None) -> _ir.Graph:
    """Integer weights, biases, shifts and units for the float ops (see the module docstring).

    Parameters
    ----------
    ops : list
        From :func:`float_graph`.
    alphas : dict
        ReLU name -> calibrated clipping level, trained unit name -> calibrated level of its
        |input| (from :func:`calibrate`).
    K : int
        Neurons per ReLU unit (a trained unit has its library file's K).
    K_layers : dict, optional
        Per-layer override, ReLU name -> K.
    name : str
        The description's name.
    input_bits, weight_bits : int
        Bits of the input pixels and of the (symmetric) weights.
    unit_bits : (int, int, int)
        ``(in_bits, w_bits, d_bits)`` of every trained unit layer: its shift ``S`` is the
        smallest ``S >= 0`` with ``s_acc * 2^S >= R / (2^(in_bits-1) - 1)``, ``R`` the largest
        ``|bound|`` of the unit's fit domain, so the domain spans about ``in_bits`` signed bits
        of ``v``; the unit is then :func:`~python_ref.quant.quantize_unit_for_input` of the
        library unit for ``in_scale = s_acc * 2^S`` with ``w_bits`` and ``d_bits``, and its
        output scale ``s_y`` is the scale the next layer's weights absorb. A ``gate``
        (``x * g``) uses the library's ``mult`` unit with the same widths: for each input
        ``j`` the real span ``R_j`` (the calibrated level of ``|x|`` or ``|g|``) stands for
        the unit's domain bound 1, its shift ``S_j`` is the smallest ``S >= 0`` with
        ``s_j * 2^S >= R_j / (2^(in_bits-1) - 1)`` (``s_j`` the input tensor's scale), and the
        unit is :func:`~python_ref.quant.quantize_unit_for_inputs` for the input scales
        ``s_j * 2^S_j`` and spans ``R_j``; its output scale carries ``R_1 * R_2``. An
        ``identity`` (a linear output another layer reads, :func:`insert_identities`) is the
        signed identity unit :meth:`~python_ref.quant.IntAmosUnit.identity` with
        ``K = d_bits``: its shift ``S`` is the smallest ``S >= 0`` with
        ``s_acc * 2^S >= alpha_cal / (2^(K-1) - 1)`` (``alpha_cal``: the calibrated level of
        ``|v|``), its scale (in and out) ``s_acc * 2^S``; it clamps ``v`` to
        ``[-2^(K-1), 2^(K-1) - 1]``.
    unit_files : dict, optional
        Unit kind (``sigmoid``, ``swish``, ``mult``) -> the library unit file to use instead of
        ``python_ref/units/<kind>.json`` (a name under ``python_ref/units`` or a path), e.g.
        ``{"swish": "swish_wide"}``; recorded in ``meta["unit_files"]``.

    Returns
    -------
    Graph
        Validated, every node carrying its inferred ``shape``.
    """
    K_layers = dict(K_layers or {})
    ops = insert_identities(ops)
    _check_activations(ops, alphas, K_layers)
    unit_bits = _check_unit_bits(unit_bits)
    unit_files = check_unit_files(unit_files)
    p = _plan_scales(ops, alphas, K, K_layers, input_bits, weight_bits, unit_bits, unit_files)
    arrays: dict[str, np.ndarray] = {}
    units: dict[str, dict] = {}
    nodes = []
    for o in ops:  # integer arrays and IR nodes, in the float order
        build = _NODE_BUILDERS.get(o["op"])
        if build is None:
            raise ConversionError(f"layer {o['name']!r}: unknown float op {o['op']!r}")
        nodes.append(build(o, p, arrays, units))
    outputs = [o["name"] for o in ops if not p.consumers[o["name"]]]
    meta = {"converter_version": CONVERTER_VERSION, "weight_bits": weight_bits}
    if any(o["op"] in UNIT_OPS or o["op"] in (GATE_OP, IDENTITY_OP) for o in ops):
        meta["unit_bits"] = dict(zip(("in_bits", "w_bits", "d_bits"), unit_bits, strict=True))
    if unit_files:
        meta["unit_files"] = dict(unit_files)
    g = _ir.Graph(name=name, nodes=nodes, units=units, arrays=arrays, outputs=outputs,
                  meta=meta)
    info = _ir.validate(g)
    for n in g.nodes:
        n["shape"] = list(info[n["name"]]["shape"])
    return g


def _check_activations(ops: list, alphas: dict, K_layers: dict) -> None:
    """Every K override names a ReLU and every ReLU, trained unit and identity has a calibrated
    level."""
    relus = [o["name"] for o in ops if o["op"] == "relu"]
    units = {o["name"]: o["op"] for o in ops if o["op"] in UNIT_OPS}
    idents = [o["name"] for o in ops if o["op"] == IDENTITY_OP]
    for k in K_layers:
        if k in idents:
            raise ConversionError(f"K override for {k!r}: the layer is the signed identity "
                                  "unit of a linear output, whose K is the d_bits of "
                                  "--unit-bits (unit_bits)")
        if k in units:
            raise ConversionError(f"K override for {k!r}: the layer is a trained {units[k]} "
                                  "unit, whose K is its library file's "
                                  f"(python_ref/units/{units[k]}.json)")
        if k not in relus:
            raise ConversionError(f"K override for {k!r}: no such activation layer "
                                  f"(known: {', '.join(relus)})")
    for k in relus + list(units) + idents:
        if k not in alphas:
            raise ConversionError(f"layer {k!r}: no calibrated clipping level")
    for o in ops:
        if o["op"] == GATE_OP and not (o["name"] in alphas and _gate_key(o["name"]) in alphas):
            raise ConversionError(f"layer {o['name']!r}: no calibrated level of its inputs "
                                  f"(keys {o['name']!r} and {_gate_key(o['name'])!r})")


def _check_unit_bits(bits) -> tuple[int, int, int]:
    """``(in_bits, w_bits, d_bits)`` as integers, each in 2..16 (2..30 for ``in_bits``)."""
    try:
        b = tuple(int(v) for v in bits)
    except (TypeError, ValueError):
        raise ConversionError(f"unit_bits must be three integers (in_bits, w_bits, d_bits), "
                              f"not {bits!r}") from None
    if len(b) != 3 or not all(2 <= v <= hi for v, hi in zip(b, (30, 16, 16), strict=True)):
        raise ConversionError(f"unit_bits {list(b)}: in_bits must lie in 2..30, w_bits and "
                              "d_bits in 2..16")
    return b


@dataclass
class _Scales:
    """What :func:`quantise` decides before it writes integers: the scale (real value of one
    integer step) of every tensor and accumulator, and per ReLU its K, shift and skip shifts."""

    byname: dict  # op name -> float op
    consumers: dict  # op name -> names of the ops reading it
    qmax: int  # largest integer weight
    input_bits: int
    weight_bits: int
    unit_bits: tuple  # (in_bits, w_bits, d_bits) of the trained units
    scale: dict  # tensor -> its scale
    acc_scale: dict  # conv/dense op -> its accumulator scale
    # activation (ReLU or trained unit) name -> {"K", "S", "s_acc", "lshift", "skips",
    # "alpha_cal", and "alpha" (ReLU) or "unit" (the IntAmosUnit)}
    act: dict
    unit_files: dict = field(default_factory=dict)  # unit kind -> library file (quantise)
    # conv / dense op -> the left shift its term takes in the add (:func:`_accumulator_scale`)
    conv_lshift: dict = field(default_factory=dict)


def _plan_scales(ops: list, alphas: dict, K: int, K_layers: dict, input_bits: int,
                 weight_bits: int, unit_bits: tuple = DEFAULT_UNIT_BITS,
                 unit_files: dict | None = None) -> _Scales:
    """Every tensor's scale, in the float order: the input's from its bits, each ReLU's from
    its calibrated level and K, an output dense layer's from its weights."""
    consumers = {o["name"]: [] for o in ops}
    for o in ops:
        for i in o["inputs"]:
            consumers[i].append(o["name"])
    p = _Scales(byname={o["name"]: o for o in ops}, consumers=consumers,
                qmax=2 ** (weight_bits - 1) - 1, input_bits=input_bits, weight_bits=weight_bits,
                unit_bits=tuple(unit_bits), scale={"input": 1.0 / (2**input_bits - 1)},
                acc_scale={}, act={}, unit_files=dict(unit_files or {}))
    for o in ops:
        nm = o["name"]
        if o["op"] in ("gap", "maxpool", "avgpool"):
            p.scale[nm] = p.scale[o["inputs"][0]]
        elif o["op"] == "relu":
            _plan_relu(p, o, alphas[nm], K_layers.get(nm, K))
        elif o["op"] in UNIT_OPS:
            _plan_unit(p, o, alphas[nm])
        elif o["op"] == IDENTITY_OP:
            _plan_identity(p, o, alphas[nm])
        elif o["op"] == GATE_OP:
            _plan_gate(p, o, (alphas[nm], alphas[_gate_key(nm)]))
        elif o["op"] == "dense" and not consumers[nm]:
            s_acc, _, _ = _accumulator_scale(p, [o], [], nm)
            p.acc_scale[nm] = s_acc
            p.scale[nm] = s_acc
    return p


#: a term whose own scale is at least ``2**ALIGN_BITS`` times finer than the coarsest term's
#: sets the accumulator scale instead, the coarser terms reaching it by a left shift: below that
#: every term is quantised at the coarsest term's scale (each keeps at least
#: ``weight_bits - 1 - ALIGN_BITS`` bits of its largest weight), which is how every shipped
#: description with one K was made (their ratios are under 3); a per-layer K makes a ratio of
#: ``2**dK``, and at the coarsest scale the finer term's weights would round to a few levels
#: (a K = 6 ``block0.act2`` under K = 10 elsewhere: 1.6 % top-1)
ALIGN_BITS = 2


def _accumulator_scale(p: _Scales, convs: list, skips: list,
                       where: str) -> tuple[float, list, list]:
    """The accumulator scale of the terms ``convs`` (each conv / dense op's own scale maps its
    largest weight to ``qmax``) and skip activations ``skips``; the skips' left shifts and the
    convs' left shifts (:data:`ALIGN_BITS`).

    With every conv's own scale within ``2**ALIGN_BITS`` of the coarsest, the base is the
    coarsest (all convs share it, shift 0); otherwise the finest. With skips, the accumulator
    scale is the base brought down to ``2**-j`` times the finest skip's scale (``j >= 0``), so
    every skip reaches it by a left shift. Each conv's weights then use the accumulator scale
    times ``2**l``, ``l >= 0`` the smallest that keeps its largest weight within ``qmax``, and
    the add shifts its term left by ``l``."""
    scale, qmax = p.scale, p.qmax
    own = [scale[c["inputs"][0]] * float(np.abs(c["w"]).max()) / qmax for c in convs]
    live = [s for s in own if s > 0] or [min(scale[c["inputs"][0]] for c in convs) / qmax]
    s_max, s_min = max(live), min(live)  # a term of all-zero weights takes any scale
    base = s_min if s_max >= 2**ALIGN_BITS * s_min * (1 - 1e-12) else s_max
    s_acc, lsh = base, []
    if skips:
        s_ref = min(scale[s] for s in skips)
        j = min(0, math.ceil(math.log2(base / s_ref) - 1e-12))
        s_acc = s_ref * 2.0**j
        lsh = [_pow2_exp(scale[s] / s_acc) for s in skips]
    conv_lsh = [max(0, math.ceil(math.log2(s / s_acc) - 1e-12)) if s > 0 else 0 for s in own]
    if max(conv_lsh) > 30:
        raise ConversionError(f"layer {where!r}: its terms' scales lie more than 2**30 apart; "
                              "cannot align them by a left shift")
    return s_acc, lsh, conv_lsh


def _accumulator(p: _Scales, o: dict) -> tuple[list, list, float, list]:
    """The accumulator a unit ``o`` reads: its conv / dense terms, skip activations, scale and
    the skips' left shifts (:func:`_accumulator_scale`); each term gets the accumulator scale
    times ``2**l``, its own left shift (``p.conv_lshift``; a term that another accumulator
    already gave a different scale is an internal error: after :func:`insert_identities` a
    term has no other reader but units of the same accumulator)."""
    convs, skips = _terms(p.byname, o["inputs"][0])
    s_acc, lsh, conv_lsh = _accumulator_scale(p, convs, skips, o["name"])
    for c, ls in zip(convs, conv_lsh, strict=True):
        s_c = s_acc * 2.0**ls
        if p.acc_scale.get(c["name"], s_c) != s_c:
            raise ConversionError(f"internal: layer {c['name']!r} is read by two "
                                  f"accumulators of different scales (one before "
                                  f"{o['name']!r}); insert_identities should have given it an "
                                  "identity")
        p.acc_scale[c["name"]] = s_c
        p.conv_lshift[c["name"]] = ls
    return convs, skips, s_acc, lsh


def _plan_relu(p: _Scales, o: dict, alpha_cal: float, k) -> None:
    """A ReLU's shift ``S``: its output scale ``s_acc * 2**S`` is the smallest power-of-two
    multiple of the accumulator scale at or above ``alpha_cal / 2**K``."""
    nm = o["name"]
    convs, skips, s_acc, lsh = _accumulator(p, o)
    k = int(k)
    s_target = alpha_cal / 2**k
    S = max(0, math.ceil(math.log2(s_target / s_acc) - 1e-12))
    p.scale[nm] = s_acc * 2**S
    p.act[nm] = {"K": k, "S": S, "s_acc": s_acc, "lshift": lsh, "skips": skips,
                 "alpha_cal": alpha_cal, "alpha": p.scale[nm] * 2**k}


#: the unit kinds whose library file ``unit_files`` may replace
UNIT_KINDS = (*UNIT_OPS, GATE_UNIT)


def check_unit_files(unit_files: dict | None) -> dict:
    """``unit_files`` (kind -> file) checked: known kinds, files that load and approximate
    that kind; :class:`ConversionError` names the kind and the file otherwise."""
    out = {}
    for kind, f in (unit_files or {}).items():
        if kind not in UNIT_KINDS:
            raise ConversionError(f"unit file for {kind!r}: not a trained unit kind (known: "
                                  f"{', '.join(UNIT_KINDS)})")
        try:
            u = load_unit(f)
        except (OSError, ValueError) as e:
            raise ConversionError(f"unit file for {kind!r}: {e}") from None
        if u.name != kind:
            raise ConversionError(f"unit file {f!r} for {kind!r} approximates {u.name!r}")
        out[kind] = str(f)
    return out


def _library_unit_for(p: _Scales, kind: str):
    """The float library unit of ``kind``: ``python_ref/units/<kind>.json`` or the file
    ``unit_files`` names for it."""
    return load_unit(p.unit_files.get(kind, kind))


def _plan_unit(p: _Scales, o: dict, input_cal: float) -> None:
    """A trained unit's shift ``S``, the smallest ``S >= 0`` whose step ``s_v = s_acc * 2**S``
    is at least ``R / (2**(in_bits-1) - 1)`` (``R``: the largest |bound| of the unit's fit
    domain), and the library unit quantised for that input scale; the layer's output scale is
    the unit's ``out_scale``."""
    nm = o["name"]
    convs, skips, s_acc, lsh = _accumulator(p, o)
    in_bits, w_bits, d_bits = p.unit_bits
    fu = _library_unit_for(p, o["op"])
    R = max(abs(v) for v in fu.domain[0])
    S = max(0, math.ceil(math.log2(R / (2 ** (in_bits - 1) - 1) / s_acc) - 1e-12))
    if S > 62:
        raise ConversionError(f"layer {nm!r}: the {o['op']} unit would need a shift of {S} "
                              "(more than 62); the accumulator scale is too fine")
    try:
        unit = quantize_unit_for_input(fu, s_acc * 2.0**S, w_bits, d_bits)
    except ValueError as e:
        raise ConversionError(f"layer {nm!r}: {e}") from None
    p.scale[nm] = unit.out_scale
    p.act[nm] = {"K": unit.K, "S": S, "s_acc": s_acc, "lshift": lsh, "skips": skips,
                 "alpha_cal": input_cal, "unit": unit}


def _plan_identity(p: _Scales, o: dict, alpha_cal: float) -> None:
    """A linear output's signed identity unit (``K = d_bits``): the smallest shift ``S >= 0``
    whose step ``s_acc * 2**S`` is at least ``alpha_cal / (2**(K-1) - 1)``, so the calibrated
    level of ``|v|`` fits the unit's ``K`` signed bits; its scale is that step."""
    nm = o["name"]
    convs, skips, s_acc, lsh = _accumulator(p, o)
    K = p.unit_bits[2]
    S = max(0, math.ceil(math.log2(alpha_cal / (2 ** (K - 1) - 1) / s_acc) - 1e-12))
    if S > 62:
        raise ConversionError(f"layer {nm!r}: the identity unit would need a shift of {S} "
                              "(more than 62); the accumulator scale is too fine")
    unit = IntAmosUnit.identity(K, s_acc * 2.0**S)
    p.scale[nm] = unit.out_scale
    p.act[nm] = {"K": K, "S": S, "s_acc": s_acc, "lshift": lsh, "skips": skips,
                 "alpha_cal": alpha_cal, "unit": unit}


def _lowest_value(p: _Scales, src: str) -> float | None:
    """The least real value layer ``src`` can output: 0 after a ReLU; a one-input unit's
    least output over its whole input range; for a two-input unit the sum of its negative
    output weights; each times ``out_scale``. None where no unit bounds it."""
    act = p.act.get(src)
    if act is None:
        return None
    if "unit" not in act:
        return 0.0
    u = act["unit"]
    if u.inputs == 1:
        return float(u(np.arange(u.in_range[0], u.in_range[1] + 1)).min()) * u.out_scale
    return float(np.minimum(np.asarray(u.d, np.int64), 0).sum()) * u.out_scale


def _check_gate_input(p: _Scales, nm: str, src: str, span: float, dom: tuple) -> None:
    """A unit whose fit domain for an input is one-sided (``lo > -hi``: the gate product
    ``mult_gate`` takes ``x >= -1/16`` and ``g >= 0``) would clamp anything below
    ``lo * span``; refuse unless the producing unit cannot go there."""
    lo, hi = dom
    if lo <= -hi:
        return
    least = _lowest_value(p, src)
    floor = lo * span + 0.0  # no "-0" in the message
    if least is None or least < floor - 1e-9 * span:
        file = p.unit_files.get(GATE_UNIT, GATE_UNIT)
        reach = "is not bounded by a unit" if least is None else f"reaches {least:.4g}"
        raise ConversionError(
            f"layer {nm!r}: input {src!r} {reach}, below {floor:.4g}, the least value the "
            f"{GATE_UNIT} unit {file!r} takes there (its domain starts at {lo + 0.0:g} x the "
            f"calibrated span {span:.4g}); use a unit with a signed domain such as the "
            "library's mult, or build one that reaches lower (python -m python_ref.units "
            "build mult_gate --x-min A --out FILE)")


def _plan_gate(p: _Scales, o: dict, spans: tuple) -> None:
    """A gate's shifts ``[S_1, S_2]`` and its ``mult`` unit (see :func:`quantise`); the layer's
    output scale is the unit's ``out_scale``."""
    nm = o["name"]
    in_bits, w_bits, d_bits = p.unit_bits
    fu = _library_unit_for(p, GATE_UNIT)
    shifts, steps = [], []
    for src, span, dom in zip(o["inputs"], spans, fu.domain, strict=True):
        if src not in p.scale:
            raise ConversionError(f"layer {nm!r}: its input {src!r} has no integer scale (a "
                                  "gate reads activations: SiLU / Sigmoid outputs)")
        _check_gate_input(p, nm, src, span, dom)
        s_in = p.scale[src]
        reach = span * max(abs(v) for v in dom) / (2 ** (in_bits - 1) - 1)
        S = max(0, math.ceil(math.log2(reach / s_in) - 1e-12))
        if S > 62:
            raise ConversionError(f"layer {nm!r}: input {src!r} would need a shift of {S} "
                                  "(more than 62)")
        shifts.append(S)
        steps.append(s_in * 2.0**S)
    try:
        unit = quantize_unit_for_inputs(fu, steps, spans, w_bits, d_bits)
    except ValueError as e:
        raise ConversionError(f"layer {nm!r}: {e}") from None
    p.scale[nm] = unit.out_scale
    p.act[nm] = {"K": unit.K, "S": shifts, "unit": unit, "alpha_cal": list(spans)}


# One function per float op: (op, scales, arrays, units) -> the IR node; a conv or dense layer
# adds its integer arrays to ``arrays``, a ReLU its unit to ``units``.


def _node_input(o: dict, p: _Scales, arrays: dict, units: dict) -> dict:
    return {"name": o["name"], "op": "input", "inputs": [], "shape": o["shape"],
            "bits": p.input_bits, "scale": p.scale[o["name"]]}


def _node_weighted(o: dict, p: _Scales, arrays: dict, units: dict) -> dict:
    nm = o["name"]
    if nm not in p.acc_scale:
        raise ConversionError(f"layer {nm!r}: its output feeds no unit or output")
    s_in, s_acc = p.scale[o["inputs"][0]], p.acc_scale[nm]
    wq = np.rint(o["w"] * (s_in / s_acc))
    if np.abs(wq).max(initial=0) > p.qmax:
        raise ConversionError(f"layer {nm!r}: internal: weight exceeds {p.qmax}")
    bq = np.rint(o["b"] / s_acc)
    if np.abs(bq).max(initial=0) >= 2**31:
        raise ConversionError(f"layer {nm!r}: bias does not fit in int32")
    arrays[f"{nm}.weight"] = wq.astype(np.int8 if p.weight_bits <= 8 else np.int32)
    arrays[f"{nm}.bias"] = bq.astype(np.int32)
    node = {"name": nm, "op": o["op"], "inputs": list(o["inputs"]),
            "weight": f"{nm}.weight", "bias": f"{nm}.bias"}
    if o["op"] == "conv":
        node.update(kernel=int(o["w"].shape[1]), stride=int(o["stride"]),
                    padding=int(o["padding"]), out_channels=int(o["w"].shape[0]))
        if o.get("groups", 1) != 1:
            node["groups"] = int(o["groups"])
    else:
        node.update(out_features=int(o["w"].shape[0]))
    if p.weight_bits != 8:
        node["weight_bits"] = p.weight_bits
    node["scale"] = s_acc
    return node


def _add_follower(p: _Scales, nm: str) -> dict:
    """The plan of the unit that reads the add ``nm``'s accumulator (through further adds that
    take it as a term)."""
    for c in p.consumers[nm]:
        if c in p.act:
            return p.act[c]
    for c in p.consumers[nm]:
        if p.byname[c]["op"] == "add":
            return _add_follower(p, c)
    raise ConversionError(f"layer {nm!r}: its output feeds no unit")


def _node_add(o: dict, p: _Scales, arrays: dict, units: dict) -> dict:
    """The residual add: skip activations (a ReLU's unsigned or a trained / identity unit's
    signed output) shift left by their planned amount, conv / dense terms by theirs (0 unless
    their scales lie :data:`ALIGN_BITS` apart), an inner add's sum by 0."""
    nm = o["name"]
    act = _add_follower(p, nm)
    shift = dict(zip(act["skips"], act["lshift"], strict=True))
    lsh = [p.conv_lshift.get(i, 0) if p.byname[i]["op"] in ("conv", "dense") else
           0 if p.byname[i]["op"] == "add" else shift[i] for i in o["inputs"]]
    return {"name": nm, "op": "add", "inputs": list(o["inputs"]), "lshift": lsh,
            "scale": act["s_acc"]}


def _node_relu(o: dict, p: _Scales, arrays: dict, units: dict) -> dict:
    nm = o["name"]
    r = p.act[nm]
    uname = f"relu_k{r['K']}"
    units[uname] = {"kind": "relu", "K": r["K"]}
    node = {"name": nm, "op": "amos", "inputs": list(o["inputs"]), "unit": uname,
            "rshift": [r["S"]], "scale": p.scale[nm],
            "alpha_cal": r["alpha_cal"], "alpha": r["alpha"]}
    if o.get("cap") is not None:
        node["cap"] = float(o["cap"])
    return node


def _node_unit(o: dict, p: _Scales, arrays: dict, units: dict) -> dict:
    """A trained unit layer: its integer unit (kind ``amos``, arrays ``<unit>.c``, ``.T``,
    ``.h``, ``.d``) in the library under ``<op>_k<K>.<layer>`` and the ``amos`` node."""
    nm = o["name"]
    r = p.act[nm]
    u: IntAmosUnit = r["unit"]
    uname = f"{o['op']}_k{u.K}.{nm}"
    _library_unit(uname, u, arrays, units)
    lo, hi = _library_unit_for(p, o["op"]).domain[0]
    return {"name": nm, "op": "amos", "inputs": list(o["inputs"]), "unit": uname,
            "rshift": [r["S"]], "scale": u.out_scale, "input_cal": r["alpha_cal"],
            "domain": [lo, hi]}


def _library_unit(uname: str, u: IntAmosUnit, arrays: dict, units: dict) -> None:
    """A one-input unit ``u`` in the library under ``uname`` (kind ``amos``, arrays
    ``<uname>.c``, ``.T``, ``.h``, ``.d``)."""
    for k in ("c", "T", "h", "d"):
        arrays[f"{uname}.{k}"] = np.array(getattr(u, k), np.int64)
    units[uname] = {"kind": "amos", "c": f"{uname}.c", "T": f"{uname}.T", "h": f"{uname}.h",
                    "d": f"{uname}.d", "in_range": list(u.in_range), "in_scale": u.in_scale,
                    "out_scale": u.out_scale, "source": u.name}


def _node_identity(o: dict, p: _Scales, arrays: dict, units: dict) -> dict:
    """A linear output's signed identity unit (:meth:`IntAmosUnit.identity`, ``source``
    ``"identity"``) in the library under ``identity_k<K>.<layer>`` and the ``amos`` node; its
    ``input_cal`` is the calibrated level of ``|v|``."""
    nm = o["name"]
    r = p.act[nm]
    uname = f"{IDENTITY_OP}_k{r['K']}.{nm}"
    _library_unit(uname, r["unit"], arrays, units)
    return {"name": nm, "op": "amos", "inputs": list(o["inputs"]), "unit": uname,
            "rshift": [r["S"]], "scale": p.scale[nm], "input_cal": r["alpha_cal"]}


def _node_gate(o: dict, p: _Scales, arrays: dict, units: dict) -> dict:
    """A gate: its two-input integer unit (kind ``amos``, arrays ``<unit>.c``, ``.c2``, ``.T``,
    ``.h``, ``.d``) in the library under ``mult_k<K>.<layer>`` and the ``amos`` node with
    inputs ``[x, g]`` and shifts ``[S_1, S_2]``."""
    nm = o["name"]
    r = p.act[nm]
    u: IntAmosUnit = r["unit"]
    uname = f"{GATE_UNIT}_k{u.K}.{nm}"
    for k in ("c", "c2", "T", "h", "d"):
        arrays[f"{uname}.{k}"] = np.array(getattr(u, k), np.int64)
    units[uname] = {"kind": "amos", "c": f"{uname}.c", "c2": f"{uname}.c2", "T": f"{uname}.T",
                    "h": f"{uname}.h", "d": f"{uname}.d", "in_range": list(u.in_range),
                    "in2_range": list(u.in2_range), "in_scale": u.in_scale,
                    "in2_scale": u.in2_scale, "out_scale": u.out_scale, "source": u.name}
    return {"name": nm, "op": "amos", "inputs": list(o["inputs"]), "unit": uname,
            "rshift": list(r["S"]), "scale": u.out_scale, "gate_spans": r["alpha_cal"]}


def _node_gap(o: dict, p: _Scales, arrays: dict, units: dict) -> dict:
    return {"name": o["name"], "op": "gap", "inputs": list(o["inputs"]),
            "scale": p.scale[o["name"]]}


def _node_pool(o: dict, p: _Scales, arrays: dict, units: dict) -> dict:
    return {"name": o["name"], "op": o["op"], "inputs": list(o["inputs"]),
            "kernel": int(o["kernel"]), "stride": int(o["stride"]),
            "padding": int(o["padding"]), "scale": p.scale[o["name"]]}


_NODE_BUILDERS = {"input": _node_input, "conv": _node_weighted, "dense": _node_weighted,
                  "add": _node_add, "relu": _node_relu, "gap": _node_gap,
                  "maxpool": _node_pool, "avgpool": _node_pool, GATE_OP: _node_gate,
                  IDENTITY_OP: _node_identity, **{op: _node_unit for op in UNIT_OPS}}


# ---------------------------------------------------------------------------------------------
# 5. The whole conversion and the CLI
# ---------------------------------------------------------------------------------------------


def calibration_images(arch: str, data=None, n: int = DEFAULT_CALIB, seed: int = 0) -> np.ndarray:
    """``n`` training images drawn without replacement with a fixed seed."""
    from .models import MODELS  # imports torch; this module must import without it

    x, _ = load_dataset(MODELS[arch]["dataset"], "train", data)
    idx = np.random.default_rng(seed).permutation(len(x))[: min(n, len(x))]
    return x[np.sort(idx)]


def convert(arch: str, checkpoint=None, data=None, out=None, K: int = DEFAULT_K,
            K_layers: dict | None = None, n_calib: int = DEFAULT_CALIB,
            percentile: float = DEFAULT_PERCENTILE, calib_images=None, sd=None,
            progress: bool = True, unit_bits: tuple = DEFAULT_UNIT_BITS,
            unit_files: dict | None = None) -> _ir.Graph:
    """Checkpoint -> validated :class:`~python_ref.ir.Graph` (saved to ``out`` when given).

    ``sd`` (a float state_dict as numpy arrays) replaces the checkpoint file, and
    ``calib_images`` the training-set draw; both are for tests and fine-tuning.
    ``unit_bits`` and ``unit_files``: see :func:`quantise`.
    """
    info = {}
    if sd is None:
        checkpoint = Path(checkpoint) if checkpoint else ZOO / f"{arch}.pt"
        sd, info = load_checkpoint(checkpoint, arch)
    else:
        check_state_dict(arch, sd, "state_dict")
    ops = float_graph(arch, sd)
    x = calib_images if calib_images is not None else calibration_images(arch, data, n_calib)
    return convert_ops(ops, x, name=arch, out=out, K=K, K_layers=K_layers,
                       percentile=percentile, source=info, progress=progress,
                       unit_bits=unit_bits, unit_files=unit_files)


def convert_ops(ops: list, x: np.ndarray, name: str = "net", out=None, K: int = DEFAULT_K,
                K_layers: dict | None = None, percentile: float = DEFAULT_PERCENTILE,
                source: dict | None = None, split: str = "train",
                progress: bool = True, unit_bits: tuple = DEFAULT_UNIT_BITS,
                unit_files: dict | None = None) -> _ir.Graph:
    """Float ops (from :func:`float_graph` or an importer) -> validated
    :class:`~python_ref.ir.Graph`: calibrate on the uint8 images ``x`` (N x H x W x C), then
    quantise (``unit_bits``, ``unit_files``: see :func:`quantise`); saved to ``out`` when
    given. ``source`` and ``split`` go into ``meta``."""
    want = tuple(ops[0]["shape"])
    if x.ndim != 4 or tuple(x.shape[1:]) != want:
        raise ConversionError(f"calibration images of shape {tuple(x.shape)}; the model takes "
                              f"N x {' x '.join(map(str, want))} (N x H x W x C) pixels")
    ops = insert_identities(ops)
    alphas = calibrate(ops, x, percentile, progress=progress)
    g = quantise(ops, alphas, K=K, K_layers=K_layers, name=name, unit_bits=unit_bits,
                 unit_files=unit_files)
    rule = "percentile of every ReLU output element over the calibration images"
    if any(o["op"] == GATE_OP for o in ops):
        rule += ("; of |x| and of |g| of every gate x * g (the real values its mult unit's "
                 "domain bound 1 stands for, gate_spans)")
    if any(o["op"] in UNIT_OPS for o in ops):
        rule += ("; of the absolute value of every trained unit's input element (input_cal, "
                 "recorded only: the unit's input range is its fit domain)")
    if any(o["op"] == IDENTITY_OP for o in ops):
        rule += ("; of |v| of every linear output another layer reads (input_cal: its signed "
                 "identity unit's clipping level)")
    g.meta.update({"source": dict(source or {}), "calibration": {
        "images": int(len(x)), "split": split, "percentile": percentile, "rule": rule}})
    if out is not None:
        _ir.save(g, out)
    return g


def load_calibration(calib, n: int = DEFAULT_CALIB, seed: int = 0) -> tuple[np.ndarray, str]:
    """Calibration pixels (uint8, N x H x W x C) and a description of where they came from.

    ``calib``: an array; an ``.npz`` with ``x`` (and optionally ``y``, unused here); the word
    ``digits`` (the bundled 8x8 digits, training split); or a CIFAR-10 data folder the project
    reads (:func:`python_ref.data.load_cifar10`, training split). At most ``n`` images are
    taken, a fixed seeded draw.
    """
    if isinstance(calib, np.ndarray):
        x, where = calib, "array"
    elif str(calib) == "digits":
        x, where = load_dataset("digits", "train")[0], "digits (train)"
    else:
        path = Path(calib)
        if path.is_file():
            try:
                with np.load(path) as z:
                    x = z["x"]
            except (OSError, ValueError, KeyError) as e:
                raise ConversionError(f"{path}: not an .npz with an array 'x' "
                                      f"(N x H x W x C uint8 pixels): {e}") from None
        elif path.is_dir():
            x = load_dataset("cifar10", "train", path)[0]
        else:
            raise ConversionError(f"{path}: no such calibration file or data folder")
        where = str(path)
    x = np.asarray(x)
    if x.dtype != np.uint8 or x.ndim != 4:
        raise ConversionError(f"calibration images from {where}: uint8 N x H x W x C wanted, "
                              f"got {x.dtype} of shape {x.shape}")
    if len(x) > n:
        x = x[np.sort(np.random.default_rng(seed).permutation(len(x))[:n])]
    return x, where


def import_ops(model, input_scale: float = 1 / 255, mean=0.0, std=1.0) -> list:
    """The float ops of an ONNX model (path or ``ModelProto``), the input normalisation folded
    (:mod:`python_ref.importers`; needs the ``onnx`` extra)."""
    return fold_input_normalisation(import_onnx(model), input_scale, mean, std)


def from_torch(module, example_input, calib, out=None, name: str = "net", K: int = DEFAULT_K,
               K_layers: dict | None = None, input_scale: float = 1 / 255, mean=0.0,
               std=1.0, n_calib: int = DEFAULT_CALIB, percentile: float = DEFAULT_PERCENTILE,
               progress: bool = True, unit_bits: tuple = DEFAULT_UNIT_BITS) -> _ir.Graph:
    """A ``torch.nn.Module`` -> validated :class:`~python_ref.ir.Graph`, through
    ``torch.export`` and the ONNX importer (the same float ops as its ONNX file).

    Parameters
    ----------
    module : torch.nn.Module
        The float network; its input is ``(x * input_scale - mean) / std``, channels first.
    example_input : torch.Tensor
        One input of the shape the module takes (``1 x C x H x W``), for tracing.
    calib
        Calibration pixels: see :func:`load_calibration`.
    out : path, optional
        Stem to save ``.json`` / ``.npz`` to.
    name, K, K_layers, percentile, unit_bits
        As for :func:`quantise` and :func:`calibrate`.
    input_scale, mean, std
        The input normalisation (one value or one per channel), folded into the first layers.
    n_calib : int
        At most this many calibration images (a fixed draw).
    """
    ops = fold_input_normalisation(from_torch_ops(module, example_input), input_scale, mean,
                                   std)
    x, where = load_calibration(calib, n_calib)
    return convert_ops(ops, x, name=name, out=out, K=K, K_layers=K_layers,
                       percentile=percentile, unit_bits=unit_bits,
                       source={"torch": type(module).__name__, "input_scale": input_scale,
                               "mean": np.asarray(mean, np.float64).reshape(-1).tolist(),
                               "std": np.asarray(std, np.float64).reshape(-1).tolist()},
                       split=where, progress=progress)


def _parse_units(items) -> dict:
    """``--unit KIND=FILE`` items as a dict (checked by :func:`check_unit_files`)."""
    out = {}
    for it in items or []:
        kind, sep, f = it.partition("=")
        if not sep or not kind or not f:
            raise ConversionError(f"--unit wants KIND=FILE (e.g. swish=swish_wide), not {it!r}")
        out[kind] = f
    return check_unit_files(out)


def _parse_k_layers(items) -> dict:
    out = {}
    for it in items or []:
        name, _, val = it.partition("=")
        try:
            out[name] = int(val)
        except ValueError:
            raise SystemExit(f"error: --K-layer wants NAME=K, not {it!r}") from None
    return out


def _parse_unit_bits(text: str) -> tuple:
    try:
        bits = tuple(int(v) for v in text.split(","))
    except ValueError:
        bits = ()
    if len(bits) != 3:
        raise argparse.ArgumentTypeError(f"--unit-bits wants IN,W,D (three integers, e.g. "
                                         f"12,10,8), not {text!r}")
    return bits


def _parser() -> argparse.ArgumentParser:
    # the model classes import torch; this module must import without it (python_ref.evaluate
    # and the torch-free tests import it)
    from .models import MODELS

    p = argparse.ArgumentParser(prog="python -m python_ref.convert",
                                description="Convert a trained network to an integer SNN "
                                            "description (JSON graph + npz arrays): a zoo "
                                            "architecture (--model) or your own ONNX model "
                                            "(--onnx, docs/import.md).")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", choices=sorted(MODELS))
    src.add_argument("--onnx", metavar="MODEL.onnx", help="a float ONNX model (opset 13+)")
    p.add_argument("--checkpoint", default=None, help="default python_ref/zoo/<model>.pt")
    p.add_argument("--data", default=None, help="data folder (default: $AMOS_DATA, ../shared)")
    p.add_argument("--calib", default=None, metavar="CALIB",
                   help="--onnx: calibration pixels, an .npz with x (N x H x W x C uint8), a "
                        "CIFAR-10 data folder, or 'digits'")
    p.add_argument("--input-scale", type=float, default=1 / 255, metavar="S",
                   help="--onnx: the model's input is (x * S - mean) / std (default 1/255)")
    p.add_argument("--mean", type=float, nargs="+", default=[0.0],
                   help="--onnx: one value or one per channel (default 0)")
    p.add_argument("--std", type=float, nargs="+", default=[1.0],
                   help="--onnx: one value or one per channel (default 1)")
    p.add_argument("--out", default=None, help="output stem (default python_ref/zoo/<model>; "
                                               "required with --onnx)")
    p.add_argument("--K", type=int, default=DEFAULT_K, help="neurons per ReLU unit (default 10)")
    p.add_argument("--K-layer", action="append", metavar="NAME=K",
                   help="per-layer K, e.g. stem.act=8 (repeatable)")
    p.add_argument("--unit-bits", type=_parse_unit_bits, default=DEFAULT_UNIT_BITS,
                   metavar="IN,W,D",
                   help="trained units (sigmoid, swish, the gate's mult): signed bits of the "
                        "unit's input over its fit domain, of its input weights and of its "
                        "output weights (default "
                        f"{','.join(map(str, DEFAULT_UNIT_BITS))})")
    p.add_argument("--unit", action="append", metavar="KIND=FILE",
                   help="use this library unit file for a trained unit kind (sigmoid, swish, "
                        "mult): a name under python_ref/units or a path, e.g. "
                        "swish=swish_wide (repeatable)")
    p.add_argument("--calib-images", type=int, default=DEFAULT_CALIB)
    p.add_argument("--percentile", type=float, default=DEFAULT_PERCENTILE)
    p.add_argument("--finetune", type=int, default=0, metavar="EPOCHS",
                   help="then fine-tune with the AMOS units in the loop for EPOCHS epochs "
                        "(python_ref.finetune; the plain conversion is kept as <out>_plain)")
    p.add_argument("--train", default=None, metavar="TRAIN",
                   help="--onnx --finetune: training images, an .npz with x (N x H x W x C "
                        "uint8) and y (labels), a CIFAR-10 data folder, or 'digits'")
    return p


def _convert_onnx(a) -> tuple[_ir.Graph, Path]:
    """The --onnx route: import, fold the normalisation, calibrate, quantise."""
    if a.out is None or a.calib is None:
        raise ConversionError("--onnx needs --calib CALIB and --out STEM")
    if a.finetune and a.train is None:
        raise ConversionError("--onnx --finetune needs --train TRAIN (the training images)")
    out = Path(a.out)
    ops = insert_identities(import_ops(a.onnx, a.input_scale, a.mean, a.std))
    print(f"imported {a.onnx}: {len(ops) - 1} float ops "
          f"({', '.join(f'{k} {v}' for k, v in _op_counts(ops).items())}); input "
          f"{' x '.join(map(str, ops[0]['shape']))} pixels as (x * {a.input_scale:.6g} - "
          f"{a.mean}) / {a.std}")
    x, where = load_calibration(a.calib, a.calib_images)
    print(f"calibrating on {len(x)} images from {where} ({a.percentile} percentile)")
    data = Path(a.onnx).read_bytes()
    src = {"onnx": Path(a.onnx).name, "sha256": hashlib.sha256(data).hexdigest(),
           "input_scale": a.input_scale, "mean": a.mean, "std": a.std}
    g = convert_ops(ops, x, name=out.name, K=a.K, K_layers=_parse_k_layers(a.K_layer),
                    percentile=a.percentile, source=src, split=where, unit_bits=a.unit_bits,
                    unit_files=_parse_units(a.unit))
    _report_units(g)
    if a.finetune > 0:
        # python_ref.finetune imports torch at its top; this module must import without it
        from .finetune import finetune_ops, load_training

        xt, yt, where, cifar = load_training(a.train)
        print(f"fine-tuning {a.finetune} epoch(s) on {len(xt)} images from {where}")
        tuned, _ = finetune_ops(g, ops, xt, yt, epochs=a.finetune, augment=cifar,
                                source=where)
        _ir.save(g, out.with_name(out.name + "_plain"))
        g = tuned
    return g, out


def _report_units(g: _ir.Graph) -> None:
    """One line per trained unit layer: its K, shift, input range and output width; a warning
    when the calibrated |input| level lies so far outside the unit's fit domain that the
    saturated output misses the function by more than the unit's fit error there."""
    for n in g.amos_nodes():
        if "gate_spans" in n:
            u = g.unit(n["unit"])
            print(f"  {n['name']}: gate {' x '.join(map(repr, n['inputs']))}, {u.name} unit, "
                  f"K = {u.K}, rshift {n['rshift']}, inputs {list(u.in_range)} x "
                  f"{list(u.in2_range)} (real spans {n['gate_spans'][0]:.3g}, "
                  f"{n['gate_spans'][1]:.3g}), output {u.widths['y']} signed bits")
        if g.units[n["unit"]].get("source") == IDENTITY_OP:
            K = g.unit(n["unit"]).K
            print(f"  {n['name']}: identity unit (linear output), K = {K}, rshift "
                  f"{n['rshift'][0]}, clamp to [{-(2 ** (K - 1))}, {2 ** (K - 1) - 1}] (real "
                  f"+-{(2 ** (K - 1) - 1) * n['scale']:.3g}, calibrated |v| "
                  f"{n['input_cal']:.3g})")
        if "domain" not in n:
            continue
        u = g.unit(n["unit"])
        lo, hi = n["domain"]
        print(f"  {n['name']}: {u.name} unit, K = {u.K}, rshift {n['rshift'][0]}, input "
              f"{list(u.in_range)} (real [{lo:g}, {hi:g}]), output {u.widths['y']} signed bits")
        miss = _saturation_error(u.name, n["input_cal"], lo, hi)
        fit = float(load_unit(u.name).meta.get("max_abs_err", 0.0))
        if miss > fit:
            print(f"  warning: {n['name']}: the calibrated |input| level {n['input_cal']:.3g} "
                  f"lies outside the {u.name} unit's fit domain [{lo:g}, {hi:g}]; inputs "
                  f"beyond it saturate, missing {u.name} by up to {miss:.3g} (fit error "
                  f"{fit:.3g})")


def _saturation_error(op: str, level: float, lo: float, hi: float) -> float:
    """``max |f(x) - f(clamp(x, lo, hi))|`` over ``|x| <= level`` for the monotone-beyond-the-
    domain functions of :data:`UNIT_OPS` (reached at ``x = -level`` or ``+level``)."""
    x = np.array([-level, level], np.float64)
    return float(np.abs(_float_unit(op, x) - _float_unit(op, np.clip(x, lo, hi))).max())


def _op_counts(ops: list) -> dict:
    counts: dict[str, int] = {}
    for o in ops[1:]:
        counts[o["op"]] = counts.get(o["op"], 0) + 1
    return counts


def main(argv=None):
    a = _parser().parse_args(argv)
    try:
        if a.onnx:
            g, out = _convert_onnx(a)
        else:
            if a.train is not None:
                raise ConversionError("--train is for --onnx; the zoo architectures fine-tune "
                                      "on their data set (--data)")
            out = Path(a.out) if a.out else ZOO / a.model
            g = convert(a.model, a.checkpoint, a.data, None, K=a.K,
                        K_layers=_parse_k_layers(a.K_layer), n_calib=a.calib_images,
                        percentile=a.percentile, unit_bits=a.unit_bits,
                        unit_files=_parse_units(a.unit))
        if a.finetune > 0 and not a.onnx:
            # python_ref.finetune imports torch at its top; this module must import without it
            from .finetune import finetune

            _ir.save(g, out.with_name(out.name + "_plain"))
            g, _ = finetune(a.model, g, a.checkpoint, a.data, epochs=a.finetune)
        _ir.save(g, out)
    except (ConversionError, DataError, _ir.IRError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.npz')}: "
          f"{len(g.nodes)} layers, {g.neurons():,} neurons, {g.time_steps()} time steps")


if __name__ == "__main__":
    main()
