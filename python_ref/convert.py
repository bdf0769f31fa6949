"""Convert a trained float network into an integer SNN description (AMOS conversion).

``python -m python_ref.convert --model resnet8 [--checkpoint PATH] [--data PATH] [--out STEM]``

Steps (each a function here):

1. :func:`load_checkpoint` reads ``{"arch", "state_dict", ...}`` and checks it against the model
   class (another architecture, a missing layer or a wrong shape is an error naming the layer).
2. :func:`float_graph` folds batch norm into the convolutions and writes the network as a list of
   float ops with the same names the integer description will have (``stem.conv``,
   ``block0.conv1``, ..., ``fc``); the 1/(H*W) of global average pooling is folded into ``fc``.
3. :func:`calibrate` runs the float ops (numpy) on calibration images from the *training* set
   and takes, for every ReLU, the given percentile of its outputs (all elements, zeros included)
   as the clipping level ``alpha_cal``. Default: 2,000 images (a fixed, seeded draw), 99.99th
   percentile.
4. :func:`quantise` picks per layer one power-of-two requantisation shift and integer weights
   (``docs/integer_semantics.md``): the accumulator scale is set by the layer's largest |weight|
   mapping to 127, the output scale is the accumulator scale times ``2**S`` and lies in
   ``[alpha_cal, 2*alpha_cal) / 2**K``. Where an identity shortcut is added, the accumulator
   scale must also be ``2**-shift`` times the skip tensor's scale so that the skip is a left
   shift; there the weights use ``(63.5, 127]`` of the int8 range (at most one bit less).
5. The :class:`~python_ref.ir.Graph` is validated and saved (``.json`` + ``.npz``).
6. Optionally (``--finetune EPOCHS``) :mod:`python_ref.finetune` trains the weights with the
   integer units in the loop, keeping every scale, shift and K; the shipped ResNet8 was made with
   ``--finetune 1`` because the plain conversion missed the 0.2-point target (0.26 points).
"""
from __future__ import annotations

import argparse
import hashlib
import math
import sys
from pathlib import Path

import numpy as np

from . import ir as _ir
from .snn import im2col

__all__ = [
    "ConversionError",
    "load_checkpoint",
    "float_graph",
    "run_float",
    "calibrate",
    "quantise",
    "convert",
    "random_state_dict",
    "ZOO",
]

ZOO = Path(__file__).resolve().parent / "zoo"
DEFAULT_K = 10
DEFAULT_PERCENTILE = 99.99
DEFAULT_CALIB = 2000
CONVERTER_VERSION = 1


class ConversionError(ValueError):
    """A checkpoint cannot be converted; the message names the file or layer and the problem."""


# ---------------------------------------------------------------------------------------------
# 1. Checkpoints
# ---------------------------------------------------------------------------------------------


def _model_layers(arch: str) -> dict:
    """Expected state_dict keys and shapes of ``arch`` (from the model class itself)."""
    from .models import build_model

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
# 2. Float graph with batch norm folded
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
    from .models import MODELS

    shape = list(input_shape or MODELS[arch]["input_shape"])
    C, H, W = shape
    ops = [{"name": "input", "op": "input", "inputs": [], "shape": [H, W, C]}]
    if arch == "digits":
        ops += [
            {"name": "fc1", "op": "dense", "inputs": ["input"], "w": sd["fc1.weight"],
             "b": sd["fc1.bias"]},
            {"name": "act1", "op": "relu", "inputs": ["fc1"]},
            {"name": "fc", "op": "dense", "inputs": ["act1"], "w": sd["fc2.weight"],
             "b": sd["fc2.bias"]},
        ]
        return ops
    if not arch.startswith("resnet"):
        raise ConversionError(f"no converter for architecture {arch!r}")
    from .models import build_model

    strides = [int(blk.conv1.stride[0]) for blk in build_model(arch).blocks]
    w, b = _fold(sd, "conv1", "bn1")
    ops += [{"name": "stem.conv", "op": "conv", "inputs": ["input"], "w": w, "b": b, "stride": 1,
             "padding": 1},
            {"name": "stem.act", "op": "relu", "inputs": ["stem.conv"]}]
    x = "stem.act"
    i = 0
    hw = H
    while i < len(strides):
        p = f"blocks.{i}"
        q = f"block{i}"
        proj = f"{p}.shortcut.0.weight" in sd
        stride = strides[i]
        w1, b1 = _fold(sd, f"{p}.conv1", f"{p}.bn1")
        w2, b2 = _fold(sd, f"{p}.conv2", f"{p}.bn2")
        ops += [{"name": f"{q}.conv1", "op": "conv", "inputs": [x], "w": w1, "b": b1,
                 "stride": stride, "padding": 1},
                {"name": f"{q}.act1", "op": "relu", "inputs": [f"{q}.conv1"]},
                {"name": f"{q}.conv2", "op": "conv", "inputs": [f"{q}.act1"], "w": w2, "b": b2,
                 "stride": 1, "padding": 1}]
        skip = x
        if proj:
            ws, bs = _fold(sd, f"{p}.shortcut.0", f"{p}.shortcut.1")
            ops.append({"name": f"{q}.shortcut", "op": "conv", "inputs": [x], "w": ws, "b": bs,
                        "stride": stride, "padding": 0})
            skip = f"{q}.shortcut"
        ops += [{"name": f"{q}.add", "op": "add", "inputs": [f"{q}.conv2", skip]},
                {"name": f"{q}.act2", "op": "relu", "inputs": [f"{q}.add"]}]
        x = f"{q}.act2"
        hw = (hw - 1) // stride + 1
        i += 1
    ops += [{"name": "gap", "op": "gap", "inputs": [x]},
            {"name": "fc", "op": "dense", "inputs": ["gap"], "w": sd["fc.weight"] / (hw * hw),
             "b": sd["fc.bias"]}]
    return ops


def _float_conv(a, w, b, stride, padding):
    cols, (N, Ho, Wo) = im2col(a, w.shape[1], stride, padding)
    out = cols @ w.reshape(w.shape[0], -1).T.astype(a.dtype)
    return out.reshape(N, Ho, Wo, -1) + b.astype(a.dtype)


def run_float(ops: list, x: np.ndarray, hook=None, dtype=np.float32) -> np.ndarray:
    """Run the float ops on uint8 images (real input ``x / 255``); ``hook(name, value)`` sees
    every ReLU output. Returns the logits."""
    vals = {}
    for o in ops:
        ins = [vals[i] for i in o["inputs"]]
        if o["op"] == "input":
            v = x.astype(dtype) / dtype(255)
        elif o["op"] == "conv":
            v = _float_conv(ins[0], o["w"], o["b"], o["stride"], o["padding"])
        elif o["op"] == "dense":
            v = ins[0].reshape(len(ins[0]), -1) @ o["w"].T.astype(dtype) + o["b"].astype(dtype)
        elif o["op"] == "add":
            v = sum(ins)
        elif o["op"] == "gap":
            v = ins[0].sum(axis=(1, 2))
        elif o["op"] == "relu":
            v = np.maximum(ins[0], 0)
            if hook is not None:
                hook(o["name"], v)
        else:
            raise ConversionError(f"layer {o['name']!r}: unknown float op {o['op']!r}")
        vals[o["name"]] = v
    return vals[ops[-1]["name"]]


# ---------------------------------------------------------------------------------------------
# 3. Calibration
# ---------------------------------------------------------------------------------------------


def calibrate(ops: list, x: np.ndarray, percentile: float = DEFAULT_PERCENTILE,
              batch_size: int = 100, progress: bool = True) -> dict:
    """ReLU name -> ``alpha_cal``: the ``percentile`` of its outputs over the images ``x``.

    Exact over all elements: the top ``ceil((1 - p/100) * count) + 1`` values of every layer are
    kept across batches and the percentile is read from them (linear interpolation as in
    ``numpy.percentile``).
    """
    if not 0 < percentile <= 100:
        raise ConversionError(f"percentile must lie in (0, 100], not {percentile}")
    n = len(x)
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
        from tqdm import tqdm

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
        alphas[name] = a
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
             name: str = "net", input_bits: int = 8, weight_bits: int = 8) -> _ir.Graph:
    """Integer weights, biases, shifts and units for the float ops (see the module docstring).

    Parameters
    ----------
    ops : list
        From :func:`float_graph`.
    alphas : dict
        ReLU name -> calibrated clipping level (from :func:`calibrate`).
    K : int
        Neurons per ReLU unit.
    K_layers : dict, optional
        Per-layer override, ReLU name -> K.
    """
    K_layers = dict(K_layers or {})
    byname = {o["name"]: o for o in ops}
    relus = [o["name"] for o in ops if o["op"] == "relu"]
    for k in K_layers:
        if k not in relus:
            raise ConversionError(f"K override for {k!r}: no such activation layer "
                                  f"(known: {', '.join(relus)})")
    for k in relus:
        if k not in alphas:
            raise ConversionError(f"layer {k!r}: no calibrated clipping level")
    qmax = 2 ** (weight_bits - 1) - 1
    scale: dict[str, float] = {"input": 1.0 / (2**input_bits - 1)}
    acc_scale: dict[str, float] = {}  # conv/dense op -> its accumulator scale
    plan: dict[str, dict] = {}  # terminal (relu or output dense) -> decisions
    consumers = {o["name"]: [] for o in ops}
    for o in ops:
        for i in o["inputs"]:
            consumers[i].append(o["name"])

    def decide_acc(convs, skips, where):
        s_min = max(scale[c["inputs"][0]] * float(np.abs(c["w"]).max()) / qmax for c in convs)
        if s_min <= 0:
            s_min = min(scale[c["inputs"][0]] for c in convs) / qmax  # all-zero weights
        if not skips:
            return s_min, []
        s_ref = min(scale[s] for s in skips)
        j = math.ceil(math.log2(s_min / s_ref) - 1e-12)
        if j > 0:
            raise ConversionError(f"layer {where!r}: the skip input's scale is finer than the "
                                  "weights allow; cannot align the residual by a left shift")
        s_acc = s_ref * 2.0**j
        return s_acc, [_pow2_exp(scale[s] / s_acc) for s in skips]

    for o in ops:
        nm = o["name"]
        if o["op"] == "gap":
            scale[nm] = scale[o["inputs"][0]]
        elif o["op"] == "relu":
            convs, skips = _terms(byname, o["inputs"][0])
            s_acc, lsh = decide_acc(convs, skips, nm)
            k = int(K_layers.get(nm, K))
            s_target = alphas[nm] / 2**k
            S = max(0, math.ceil(math.log2(s_target / s_acc) - 1e-12))
            scale[nm] = s_acc * 2**S
            for c in convs:
                acc_scale[c["name"]] = s_acc
            plan[nm] = {"K": k, "S": S, "s_acc": s_acc, "lshift": lsh, "skips": skips,
                        "alpha_cal": alphas[nm], "alpha": scale[nm] * 2**k}
        elif o["op"] == "dense" and not consumers[nm]:
            s_acc, _ = decide_acc([o], [], nm)
            acc_scale[nm] = s_acc
            scale[nm] = s_acc
    # integer arrays and IR nodes, in the float order
    arrays: dict[str, np.ndarray] = {}
    units: dict[str, dict] = {}
    nodes = []
    for o in ops:
        nm = o["name"]
        if o["op"] == "input":
            nodes.append({"name": nm, "op": "input", "inputs": [], "shape": o["shape"],
                          "bits": input_bits, "scale": scale[nm]})
        elif o["op"] in ("conv", "dense"):
            if nm not in acc_scale:
                raise ConversionError(f"layer {nm!r}: its output feeds no unit or output")
            s_in, s_acc = scale[o["inputs"][0]], acc_scale[nm]
            wq = np.rint(o["w"] * (s_in / s_acc))
            if np.abs(wq).max(initial=0) > qmax:
                raise ConversionError(f"layer {nm!r}: internal: weight exceeds {qmax}")
            bq = np.rint(o["b"] / s_acc)
            if np.abs(bq).max(initial=0) >= 2**31:
                raise ConversionError(f"layer {nm!r}: bias does not fit in int32")
            arrays[f"{nm}.weight"] = wq.astype(np.int8 if weight_bits <= 8 else np.int32)
            arrays[f"{nm}.bias"] = bq.astype(np.int32)
            node = {"name": nm, "op": o["op"], "inputs": list(o["inputs"]),
                    "weight": f"{nm}.weight", "bias": f"{nm}.bias"}
            if o["op"] == "conv":
                node.update(kernel=int(o["w"].shape[1]), stride=int(o["stride"]),
                            padding=int(o["padding"]), out_channels=int(o["w"].shape[0]))
            else:
                node.update(out_features=int(o["w"].shape[0]))
            if weight_bits != 8:
                node["weight_bits"] = weight_bits
            node["scale"] = s_acc
            nodes.append(node)
        elif o["op"] == "add":
            # the residual add: accumulator terms keep shift 0, skip activations shift left
            term_shift = []
            for i in o["inputs"]:
                if byname[i]["op"] in ("conv", "dense", "add"):
                    term_shift.append(0)
            relu = consumers[nm][0]
            p = plan[relu]
            lsh = []
            it = iter(p["lshift"])
            for i in o["inputs"]:
                lsh.append(0 if byname[i]["op"] in ("conv", "dense", "add") else next(it))
            nodes.append({"name": nm, "op": "add", "inputs": list(o["inputs"]), "lshift": lsh,
                          "scale": p["s_acc"]})
        elif o["op"] == "relu":
            p = plan[nm]
            uname = f"relu_k{p['K']}"
            units[uname] = {"kind": "relu", "K": p["K"]}
            nodes.append({"name": nm, "op": "amos", "inputs": list(o["inputs"]), "unit": uname,
                          "rshift": [p["S"]], "scale": scale[nm],
                          "alpha_cal": p["alpha_cal"], "alpha": p["alpha"]})
        elif o["op"] == "gap":
            nodes.append({"name": nm, "op": "gap", "inputs": list(o["inputs"]),
                          "scale": scale[nm]})
        else:
            raise ConversionError(f"layer {nm!r}: unknown float op {o['op']!r}")
    outputs = [o["name"] for o in ops if not consumers[o["name"]]]
    g = _ir.Graph(name=name, nodes=nodes, units=units, arrays=arrays, outputs=outputs,
                  meta={"converter_version": CONVERTER_VERSION, "weight_bits": weight_bits})
    info = _ir.validate(g)
    for n in g.nodes:
        n["shape"] = list(info[n["name"]]["shape"])
    return g


# ---------------------------------------------------------------------------------------------
# 5. The whole conversion and the CLI
# ---------------------------------------------------------------------------------------------


def calibration_images(arch: str, data=None, n: int = DEFAULT_CALIB, seed: int = 0) -> np.ndarray:
    """``n`` training images drawn without replacement with a fixed seed."""
    from .data import load_dataset
    from .models import MODELS

    x, _ = load_dataset(MODELS[arch]["dataset"], "train", data)
    idx = np.random.default_rng(seed).permutation(len(x))[: min(n, len(x))]
    return x[np.sort(idx)]


def convert(arch: str, checkpoint=None, data=None, out=None, K: int = DEFAULT_K,
            K_layers: dict | None = None, n_calib: int = DEFAULT_CALIB,
            percentile: float = DEFAULT_PERCENTILE, calib_images=None, sd=None,
            progress: bool = True) -> _ir.Graph:
    """Checkpoint -> validated :class:`~python_ref.ir.Graph` (saved to ``out`` when given).

    ``sd`` (a float state_dict as numpy arrays) replaces the checkpoint file, and
    ``calib_images`` the training-set draw; both are for tests and fine-tuning.
    """
    info = {}
    if sd is None:
        checkpoint = Path(checkpoint) if checkpoint else ZOO / f"{arch}.pt"
        sd, info = load_checkpoint(checkpoint, arch)
    else:
        check_state_dict(arch, sd, "state_dict")
    ops = float_graph(arch, sd)
    x = calib_images if calib_images is not None else calibration_images(arch, data, n_calib)
    alphas = calibrate(ops, x, percentile, progress=progress)
    g = quantise(ops, alphas, K=K, K_layers=K_layers, name=arch)
    g.meta.update({"source": info, "calibration": {
        "images": int(len(x)), "split": "train", "percentile": percentile,
        "rule": "percentile of every ReLU output element over the calibration images"}})
    if out is not None:
        _ir.save(g, out)
    return g


def _parse_k_layers(items) -> dict:
    out = {}
    for it in items or []:
        name, _, val = it.partition("=")
        try:
            out[name] = int(val)
        except ValueError:
            raise SystemExit(f"error: --K-layer wants NAME=K, not {it!r}") from None
    return out


def main(argv=None):
    from .data import DataError
    from .models import MODELS

    p = argparse.ArgumentParser(prog="python -m python_ref.convert",
                                description="Convert a trained network to an integer SNN "
                                            "description (JSON graph + npz arrays).")
    p.add_argument("--model", required=True, choices=sorted(MODELS))
    p.add_argument("--checkpoint", default=None, help="default python_ref/zoo/<model>.pt")
    p.add_argument("--data", default=None, help="data folder (default: $AMOS_DATA, ../shared)")
    p.add_argument("--out", default=None, help="output stem (default python_ref/zoo/<model>)")
    p.add_argument("--K", type=int, default=DEFAULT_K, help="neurons per ReLU unit (default 10)")
    p.add_argument("--K-layer", action="append", metavar="NAME=K",
                   help="per-layer K, e.g. stem.act=8 (repeatable)")
    p.add_argument("--calib-images", type=int, default=DEFAULT_CALIB)
    p.add_argument("--percentile", type=float, default=DEFAULT_PERCENTILE)
    p.add_argument("--finetune", type=int, default=0, metavar="EPOCHS",
                   help="then fine-tune with the AMOS units in the loop for EPOCHS epochs "
                        "(python_ref.finetune; the plain conversion is kept as <out>_plain)")
    a = p.parse_args(argv)
    out = Path(a.out) if a.out else ZOO / a.model
    try:
        g = convert(a.model, a.checkpoint, a.data, None, K=a.K,
                    K_layers=_parse_k_layers(a.K_layer), n_calib=a.calib_images,
                    percentile=a.percentile)
        if a.finetune > 0:
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
