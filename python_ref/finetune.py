"""Fine-tune a converted network with the AMOS units in the loop (quantisation-aware training).

``python -m python_ref.finetune --model resnet8 [--epochs 3] [--out STEM]``

Starts from the converted description (its scales, shifts, units and K stay fixed) and the float
checkpoint's batch-norm-folded weights, and trains the float weights and biases through a
fake-quantised forward pass that mirrors the integer scheme of ``docs/integer_semantics.md``
step by step, in integer units:

* weights ``Wq = round(clamp(W * s_in / s_acc, -127, 127))`` and biases ``bq = round(b / s_acc)``;
* ``acc = conv(a, Wq) + bq`` on integer activations ``a``, residual skips added as
  ``a_skip * 2**lshift``;
* ``v = floor((acc + 2**(S-1)) / 2**S)``, ``a' = clamp(v, 0, 2**K - 1)`` (the ReLU unit);
  a trained unit (sigmoid, swish, the signed identity, the two-input multiplication of a
  squeeze-and-excitation gate, its ``[C]`` gate broadcast over the ``[H, W, C]`` map) is its
  exact integer table with a smooth backward pass (:mod:`python_ref.unit_tables`);
* the logits are the last accumulators; the loss is the cross entropy of the logits times their
  scale (the float network's units), plus optionally a distillation term to the float ANN.

Rounding and flooring pass gradients straight through (identity), clamping passes them inside
the range only. The trainable parameters are kept in integer units (a weight in weight steps, a
bias in steps of the layer's output), so one Adam learning rate (default 0.01 steps, cosine
decay) suits every layer; a float parametrisation gave the classifier (whose weights carry the
1/64 of pooling) steps hundreds of times too large and diverged.

The export (:func:`export`) writes exactly ``Wq`` and ``bq`` into a copy of the
description, so the integer network equals the fake-quantised one up to float32 rounding of the
training arithmetic; the fine-tuned description is then checked with :mod:`python_ref.snn`.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from . import ir as _ir
from .checkpoint import ZOO, float_graph, load_checkpoint
from .data import DataError, load_dataset
from .models import MODELS, build_model
from .train import augment, split_validation
from .unit_tables import UnitTable

__all__ = ["build_net", "float_ops_from_graph", "export", "finetune", "finetune_ops",
           "load_training", "FloatNet", "main"]


def _ste_round(t):
    return t + (t.round() - t).detach()


def _ste_floor(t):
    return t + (t.floor() - t).detach()


def _scales(g: _ir.Graph) -> dict:
    return {n["name"]: float(n["scale"]) for n in g.nodes}


def _output_shifts(g: _ir.Graph) -> dict:
    """Accumulator (conv / dense, directly or through an add) -> the shift of the unit it
    feeds."""
    node = g.index()
    shift = {}
    for n in g.amos_nodes():
        for i in n["inputs"]:
            terms = node[i]["inputs"] if node[i]["op"] == "add" else [i]
            for t in terms:
                shift[t] = n["rshift"][0]
    return shift


def _over_map(g, x):
    """A per-channel gate ``g`` (N, C) shaped to broadcast over the map ``x`` (N, C, H, W);
    ``g`` of ``x``'s rank unchanged."""
    return g.reshape(g.shape + (1,) * (x.ndim - g.ndim))


def _key(name: str) -> str:
    """The parameter name of layer ``name`` (torch forbids dots in it)."""
    return name.replace(".", "_")


def _pool(a, op: str, kernel: int, stride: int, padding: int):
    """A ``maxpool`` (max) or ``avgpool`` (window sum, the 1/(k*k) lives in the next layer) of
    a non-negative NCHW map, zero padded as in ``docs/integer_semantics.md``."""
    if padding:
        a = F.pad(a, (padding,) * 4)
    if op == "maxpool":
        return F.max_pool2d(a, kernel, stride)
    return F.avg_pool2d(a, kernel, stride, divisor_override=1)


class FakeQuantNet(nn.Module):
    """The description's integer network with trainable float weights (see the module
    docstring); :func:`build_net` makes one."""

    def __init__(self, g: _ir.Graph, ops: list):
        super().__init__()
        self.g = g
        sc = _scales(g)
        fl = {o["name"]: o for o in ops}
        self.w = nn.ParameterDict()
        self.b = nn.ParameterDict()
        self.bias_step = {}
        # the shift after each accumulator: biases are trained in units of the output step
        shift = _output_shifts(g)
        for n in g.nodes:
            if n["op"] in ("conv", "dense"):
                self._add_layer(n, fl[n["name"]], sc, 2.0 ** shift.get(n["name"], 0))
        self.out_scale = sc[g.outputs[0]]
        # ReLU units in closed form (clamp), the trained ones as tables (python_ref.snn's rule)
        self.K, self.tables = {}, nn.ModuleDict()
        for n in g.amos_nodes():
            unit = g.unit(n["unit"])
            if unit.name == "relu" and unit.inputs == 1:
                self.K[n["name"]] = unit.K
            elif _key(n["unit"]) not in self.tables:
                self.tables[_key(n["unit"])] = UnitTable(unit)

    def _add_layer(self, n: dict, o: dict, sc: dict, step: float) -> None:
        """The trainable weight and bias of layer ``n`` from its float op ``o``."""
        key = _key(n["name"])
        if key in self.w:
            raise ValueError(f"layer {n['name']!r}: its parameter name {key!r} is taken by "
                             "another layer (rename one of them)")
        w = o["w"].transpose(0, 3, 1, 2) if n["op"] == "conv" else o["w"]
        # parameters in integer units (one weight step = 1, one output step = 1), so one
        # learning rate suits every layer whatever its scale
        rw = sc[n["inputs"][0]] / sc[n["name"]]
        self.w[key] = nn.Parameter(torch.tensor(np.ascontiguousarray(w) * rw,
                                                dtype=torch.float32))
        self.b[key] = nn.Parameter(torch.tensor(o["b"] / sc[n["name"]] / step,
                                                dtype=torch.float32))
        self.bias_step[n["name"]] = step

    def qweights(self, name):
        key = _key(name)
        wq = _ste_round(torch.clamp(self.w[key], -127, 127))
        bq = _ste_round(self.b[key] * self.bias_step[name])
        # the exported integers must fit their arrays: int8 weights, int32 biases
        return wq, bq

    def _layer(self, n: dict, ins: list, x):
        """The output of layer ``n`` from its inputs' (``x``: the network's input)."""
        op, name = n["op"], n["name"]
        if op == "input":
            return x
        if op == "conv":
            wq, bq = self.qweights(name)
            return F.conv2d(ins[0], wq, bq, n["stride"], n["padding"],
                            groups=_ir.conv_groups(n))
        if op in ("maxpool", "avgpool"):
            return _pool(ins[0], op, n["kernel"], n["stride"], n["padding"])
        if op == "dense":
            wq, bq = self.qweights(name)
            a = ins[0]
            if a.ndim == 4:  # the IR flattens channels last
                a = a.permute(0, 2, 3, 1)
            return F.linear(a.flatten(1), wq, bq)
        if op == "add":
            return sum(t * float(2**s) for t, s in zip(ins, n["lshift"], strict=True))
        if op == "gap":
            return ins[0].sum(dim=(2, 3))
        v = [t if S == 0 else _ste_floor((t + 2.0 ** (S - 1)) / 2.0**S)
             for t, S in zip(ins, n["rshift"], strict=True)]
        if name in self.K:
            return torch.clamp(v[0], 0, 2 ** self.K[name] - 1)
        if len(v) == 2:
            v[1] = _over_map(v[1], v[0]).expand_as(v[0])
        return self.tables[_key(n["unit"])](*v)

    def forward(self, x):
        """``x``: integer pixels as float, NCHW. Returns logits in real units."""
        vals = {}
        for n in self.g.nodes:
            vals[n["name"]] = self._layer(n, [vals[i] for i in n.get("inputs", [])], x)
        return vals[self.g.outputs[0]] * self.out_scale


#: the IR ops :class:`FakeQuantNet` runs
_NET_OPS = ("input", "conv", "dense", "add", "gap", "maxpool", "avgpool", "amos")


def build_net(g: _ir.Graph, ops: list) -> FakeQuantNet:
    """The fake-quantised torch module for description ``g`` with float weights from ``ops``
    (:func:`python_ref.checkpoint.float_graph`). ``net(x)`` takes integer pixels as floats
    (NCHW) and returns the logits in real units; ``net.double()`` makes the forward pass
    exact."""
    for n in g.nodes:
        if n["op"] not in _NET_OPS:
            raise ValueError(f"layer {n['name']!r}: fine-tuning does not support the op "
                             f"{n['op']!r} (supported: {', '.join(_NET_OPS)})")
    return FakeQuantNet(g, ops)


class FloatNet(nn.Module):
    """The float network of a list of float ops (:func:`python_ref.convert.import_ops`, the
    list the converter quantised) as a frozen torch module: the teacher of an imported model.

    ``net(x)`` takes the pixels divided by 255 (NCHW, the input normalisation is folded into
    the ops) and returns the logits; it computes what :func:`python_ref.convert.run_float`
    does.
    """

    def __init__(self, ops: list):
        super().__init__()
        self.ops = ops
        self.t = {}
        for o in ops:
            if o["op"] not in _FLOAT_OPS:
                raise ValueError(f"layer {o['name']!r}: no float teacher for the op "
                                 f"{o['op']!r} (supported: {', '.join(_FLOAT_OPS)})")
            if o["op"] in ("conv", "dense"):
                w = o["w"].transpose(0, 3, 1, 2) if o["op"] == "conv" else o["w"]
                self.t[o["name"]] = (torch.tensor(np.ascontiguousarray(w), dtype=torch.float32),
                                     torch.tensor(o["b"], dtype=torch.float32))

    def _op(self, o: dict, ins: list, x):
        op = o["op"]
        if op == "input":
            return x
        if op == "conv":
            return F.conv2d(ins[0], *self.t[o["name"]], o["stride"], o["padding"],
                            groups=o.get("groups", 1))
        if op == "dense":
            a = ins[0]
            if a.ndim == 4:  # the float ops flatten channels last
                a = a.permute(0, 2, 3, 1)
            return F.linear(a.flatten(1), *self.t[o["name"]])
        if op in ("maxpool", "avgpool"):
            return _pool(ins[0], op, o["kernel"], o["stride"], o["padding"])
        if op == "add":
            return sum(ins)
        if op == "gap":
            return ins[0].sum(dim=(2, 3))
        if op == "gate":  # x * g
            return ins[0] * _over_map(ins[1], ins[0])
        if op in _FLOAT_UNITS:
            return _FLOAT_UNITS[op](ins[0])
        v = F.relu(ins[0])
        return v if o.get("cap") is None else torch.clamp(v, max=float(o["cap"]))

    def forward(self, x):
        vals = {}
        for o in self.ops:
            vals[o["name"]] = self._op(o, [vals[i] for i in o["inputs"]], x)
        return vals[self.ops[-1]["name"]]


#: the float functions of the trained units' ops (the identity: a linear output another layer
#: reads, python_ref.importers.common.insert_identities)
_FLOAT_UNITS = {"swish": F.silu, "sigmoid": torch.sigmoid, "identity": lambda t: t}
#: the float ops :class:`FloatNet` runs (those the importers emit)
_FLOAT_OPS = ("input", "conv", "dense", "add", "gap", "maxpool", "avgpool", "relu", "gate",
              *_FLOAT_UNITS)


def export(net, g: _ir.Graph) -> _ir.Graph:
    """A copy of ``g`` with the fine-tuned integer weights and biases (exactly the fake-quantised
    ones)."""
    h = g.copy()
    with torch.no_grad():
        for n in h.nodes:
            if n["op"] in ("conv", "dense"):
                wq, bq = net.qweights(n["name"])
                w = wq.numpy()
                if n["op"] == "conv":
                    w = w.transpose(0, 2, 3, 1)
                h.arrays[n["weight"]] = np.rint(w).astype(h.arrays[n["weight"]].dtype)
                if np.abs(bq.numpy()).max() >= 2**31:
                    raise ValueError(f"layer {n['name']!r}: fine-tuned bias overflows int32")
                h.arrays[n["bias"]] = np.rint(bq.numpy()).astype(np.int32)
    h.meta = dict(h.meta)
    return h


def float_ops_from_graph(g: _ir.Graph) -> list:
    """Float weights that the description's integers represent exactly (``W = Wq * s_acc / s_in``,
    ``b = bq * s_acc``), to continue fine-tuning from a fine-tuned description."""
    sc = _scales(g)
    ops = []
    for n in g.nodes:
        if n["op"] in ("conv", "dense"):
            s_in, s_acc = sc[n["inputs"][0]], sc[n["name"]]
            ops.append({"name": n["name"],
                        "w": g.arrays[n["weight"]].astype(np.float64) * (s_acc / s_in),
                        "b": g.arrays[n["bias"]].astype(np.float64) * s_acc})
    return ops


@dataclass
class _Loop:
    """What one fine-tuning epoch reads and updates."""

    net: FakeQuantNet
    opt: torch.optim.Optimizer
    teacher: torch.nn.Module | None
    xt: torch.Tensor  # integer pixels as float, NCHW
    yt: torch.Tensor
    gen: torch.Generator
    lr: float
    steps: int  # over the whole run, for the cosine decay
    batch_size: int
    distill: float
    augment: bool
    step: int = 0


def _start_net(model_name: str, g: _ir.Graph, sd: dict, init: str) -> FakeQuantNet:
    """The network to train, from the checkpoint's float weights or the description's."""
    if init == "checkpoint":
        return build_net(g, float_graph(model_name, sd))
    if init == "description":
        return build_net(g, float_ops_from_graph(g))
    raise ValueError(f"init must be 'checkpoint' or 'description', not {init!r}")


def _training_set(dataset: str, data, limit: int | None, seed: int, val: int = 0) -> tuple:
    """``(x, y, held_out)``: the training images and labels (or a seeded random subset of
    ``limit`` of them) without the ``val`` images :func:`python_ref.train.split_validation`
    holds out, and those as ``(x_val, y_val)`` (None when ``val`` is 0)."""
    x, y = load_dataset(dataset, "train", data)
    held = None
    if val:
        x, y, xv, yv, _ = split_validation(x, y, val)
        held = (xv, yv)
    if limit:  # a seeded random subset (the training arrays may be sorted by class)
        idx = np.sort(np.random.default_rng(seed).permutation(len(x))[:limit])
        x, y = x[idx], y[idx]
    return x, y, held


def _teacher(model_name: str, sd: dict) -> torch.nn.Module:
    """The float ANN of the checkpoint, in eval mode, to distil towards."""
    teacher = build_model(model_name)
    teacher.load_state_dict({k: torch.from_numpy(v).float() for k, v in sd.items()})
    teacher.eval()
    return teacher


def _batch(loop: _Loop, idx) -> tuple:
    """One optimiser step on the images ``idx``; returns the loss and the logits."""
    for grp in loop.opt.param_groups:
        grp["lr"] = loop.lr * 0.5 * (1 + math.cos(math.pi * loop.step / max(1, loop.steps)))
    xb = loop.xt[idx]
    if loop.augment:
        # augment works on [0, 1] images; keep the pixels integers
        xb = (augment(xb / 255.0, loop.gen) * 255.0).round()
    logits = loop.net(xb)
    loss = F.cross_entropy(logits, loop.yt[idx])
    if loop.teacher is not None:  # distillation towards the float ANN on the same batch
        with torch.no_grad():
            t = loop.teacher(xb / 255.0)
        loss = loss + loop.distill * F.kl_div(F.log_softmax(logits, 1), F.softmax(t, 1),
                                              reduction="batchmean")
    loop.opt.zero_grad(set_to_none=True)
    loss.backward()
    loop.opt.step()
    loop.step += 1
    return loss, logits


def _epoch(loop: _Loop, ep: int, desc: str | None) -> dict:
    """One pass over the training set in a fresh random order (a progress bar titled
    ``desc`` unless None); returns the epoch's record."""
    bs = loop.batch_size
    loop.net.train()
    perm = torch.randperm(len(loop.xt), generator=loop.gen)
    it = range(len(loop.xt) // bs)
    if desc is not None:
        it = tqdm(it, desc=desc, file=sys.stderr)
    tot, ok, n = 0.0, 0, 0
    for s in it:
        idx = perm[s * bs:(s + 1) * bs]
        loss, logits = _batch(loop, idx)
        tot += float(loss.detach()) * len(idx)
        ok += int((logits.argmax(1) == loop.yt[idx]).sum())
        n += len(idx)
    return {"epoch": ep + 1, "loss": tot / max(1, n), "train_acc": ok / max(1, n)}


def _train(g: _ir.Graph, net: FakeQuantNet, x: np.ndarray, y: np.ndarray, teacher, cfg: dict,
           title: str) -> tuple:
    """Train ``net`` on the uint8 images ``x`` (N x H x W x C) and labels ``y`` for
    ``cfg["epochs"]`` epochs; returns the exported description (``g`` with the trained integer
    weights, meta unchanged) and the per-epoch history."""
    bs = min(cfg["batch_size"], len(x))
    loop = _Loop(net=net, opt=torch.optim.Adam(list(net.parameters()), lr=cfg["lr"]),
                 teacher=teacher,
                 xt=torch.from_numpy(x).permute(0, 3, 1, 2).float(),  # integer pixels
                 yt=torch.from_numpy(np.asarray(y, np.int64)),
                 gen=torch.Generator().manual_seed(cfg["seed"]), lr=cfg["lr"],
                 steps=cfg["epochs"] * (len(x) // bs), batch_size=bs,
                 distill=cfg["distill"], augment=cfg["augment"])
    history, held, best = [], cfg.get("held_out"), None
    for ep in range(cfg["epochs"]):
        desc = f"finetune {title} {ep + 1}/{cfg['epochs']}" if cfg["progress"] else None
        rec = _epoch(loop, ep, desc)
        if held is not None:  # select the epoch on the held-out images, never the test set
            rec["val_acc"] = _accuracy(net, *held)
            if best is None or rec["val_acc"] > best[0]:
                best = (rec["val_acc"], export(net, g))
        history.append(rec)
        print(json.dumps(rec), file=sys.stderr)
    return (export(net, g) if best is None else best[1]), history


def _accuracy(net: FakeQuantNet, x: np.ndarray, y: np.ndarray, batch: int = 500) -> float:
    """Top-1 of the fake-quantised network on uint8 images ``x`` (N x H x W x C)."""
    net.eval()
    ok = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb = torch.from_numpy(x[i:i + batch]).permute(0, 3, 1, 2).float()
            ok += int((net(xb).argmax(1).numpy() == y[i:i + batch]).sum())
    return ok / max(1, len(x))


def finetune(model_name: str, description=None, checkpoint=None, data=None, epochs: int = 3,
             lr: float = 0.01, batch_size: int = 128, distill: float = 1.0, seed: int = 0,
             limit: int | None = None, progress: bool = True, threads: int | None = None,
             init: str = "checkpoint", val: int | None = None):
    """Fine-tune; returns ``(graph, history)``. ``limit`` uses a seeded random subset of the
    training images. ``val`` holds out that many training images
    (:func:`python_ref.train.split_validation`), measures the fake-quantised network on them
    after each epoch and returns the best epoch's description; by default the images the
    checkpoint's float training held out (its schedule's ``val``; none if it held out none),
    so fine-tuning never trains on them."""
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    g = description if isinstance(description, _ir.Graph) else \
        _ir.load(description or ZOO / model_name)
    checkpoint = checkpoint or ZOO / f"{model_name}.pt"
    sd, info = load_checkpoint(checkpoint, model_name)
    if val is None:
        val = int(((info.get("schedule") or {}).get("val") or {}).get("images", 0))
    dataset = MODELS[model_name]["dataset"]
    x, y, held = _training_set(dataset, data, limit, seed, val)  # data errors before the net
    net = _start_net(model_name, g, sd, init)
    teacher = _teacher(model_name, sd) if distill else None
    cfg = {"epochs": epochs, "lr": lr, "batch_size": batch_size, "seed": seed,
           "distill": distill, "augment": dataset == "cifar10", "progress": progress,
           "held_out": held}
    h, history = _train(g, net, x, y, teacher, cfg, model_name)
    prev = g.meta.get("finetune")
    h.meta["finetune"] = {"init": init, "previous": prev, "epochs": epochs, "lr": lr,
                          "batch_size": batch_size, "seed": seed, "distill": distill,
                          "train_images": int(len(x)), "history": history}
    if val:
        h.meta["finetune"]["val"] = {"images": val, "split": "python_ref.train.split_validation",
                                     "selected_epoch": _best_epoch(history)}
    _ir.validate(h)
    return h, history


def _best_epoch(history: list) -> int:
    """The epoch (1-based) with the highest ``val_acc``, the first of equals."""
    return max(history, key=lambda r: (r["val_acc"], -r["epoch"]))["epoch"]


def load_training(train) -> tuple:
    """Training images and labels for an imported model: ``(x, y, where, cifar10)``.

    ``train``: an ``.npz`` with ``x`` (N x H x W x C uint8 pixels) and ``y`` (N integer
    labels), the word ``digits`` (the bundled 8x8 digits, training split) or a CIFAR-10 data
    folder the project reads (its training split; ``cifar10`` is True then, and the images are
    augmented as in :mod:`python_ref.train`). Never a test split.
    """
    if str(train) == "digits":
        x, y = load_dataset("digits", "train")
        return x, y, "digits (train)", False
    path = Path(train)
    if path.is_dir():
        x, y = load_dataset("cifar10", "train", path)
        return x, y, f"{path} (CIFAR-10 train)", True
    if not path.is_file():
        raise DataError(f"--train {path}: no such training file or data folder")
    try:
        with np.load(path) as z:
            x, y = z["x"], z["y"]
    except (OSError, ValueError, KeyError) as e:
        raise DataError(f"--train {path}: not an .npz with arrays 'x' (N x H x W x C uint8 "
                        f"pixels) and 'y' (N labels): {e}") from None
    if x.dtype != np.uint8 or x.ndim != 4:
        raise DataError(f"--train {path}: 'x' must be uint8 N x H x W x C, got {x.dtype} of "
                        f"shape {x.shape}")
    if y.shape != (len(x),) or y.dtype.kind not in "iu":
        raise DataError(f"--train {path}: 'y' must hold {len(x)} integer labels, got {y.dtype} "
                        f"of shape {y.shape}")
    return x, y, str(path), False


def finetune_ops(g: _ir.Graph, ops: list, x: np.ndarray, y: np.ndarray, epochs: int = 1,
                 lr: float = 0.01, batch_size: int = 128, distill: float = 1.0, seed: int = 0,
                 augment: bool = False, progress: bool = True, source: str = "array"):
    """Fine-tune the conversion ``g`` of an imported model; returns ``(graph, history)``.

    Parameters
    ----------
    g : Graph
        The plain conversion of ``ops`` (:func:`python_ref.convert.convert_ops`).
    ops : list
        The float ops the converter quantised (:func:`python_ref.convert.import_ops`): the
        starting weights and, run as :class:`FloatNet`, the teacher distilled towards.
    x, y : numpy.ndarray
        Training images (uint8, N x H x W x C) and their integer labels.
    epochs, lr, batch_size, distill, seed
        As for :func:`finetune` (the batch is at most ``len(x)`` images).
    augment : bool
        Random crops and flips (:func:`python_ref.train.augment`), for CIFAR-10.
    source : str
        Where the training images came from, for ``meta``.
    """
    want = tuple(ops[0]["shape"])
    if x.ndim != 4 or tuple(x.shape[1:]) != want:
        raise DataError(f"training images from {source} of shape {tuple(x.shape)}; the model "
                        f"takes N x {' x '.join(map(str, want))} (N x H x W x C) pixels")
    classes = int(_ir.validate(g)[g.outputs[0]]["shape"][-1])
    if len(x) == 0:
        raise DataError(f"training images from {source}: none")
    if len(y) != len(x) or y.min(initial=0) < 0 or y.max(initial=0) >= classes:
        raise DataError(f"training labels from {source}: {len(x)} labels in 0..{classes - 1} "
                        f"wanted (the model's {classes} outputs)")
    torch.manual_seed(seed)
    net = build_net(g, ops)
    teacher = FloatNet(ops).eval() if distill else None
    cfg = {"epochs": epochs, "lr": lr, "batch_size": batch_size, "seed": seed,
           "distill": distill, "augment": augment, "progress": progress}
    h, history = _train(g, net, x, y, teacher, cfg, g.name)
    h.meta["finetune"] = {"init": "float ops", "teacher": "float ops" if distill else None,
                          "previous": g.meta.get("finetune"), "epochs": epochs, "lr": lr,
                          "batch_size": min(batch_size, len(x)), "seed": seed,
                          "distill": distill, "augment": augment, "train": source,
                          "train_images": int(len(x)), "history": history}
    _ir.validate(h)
    return h, history


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m python_ref.finetune",
                                description="Fine-tune a converted network with the integer "
                                            "AMOS units in the loop.")
    p.add_argument("--model", required=True, choices=sorted(MODELS))
    p.add_argument("--description", default=None, help="start from (default: the zoo's)")
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--data", default=None)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--lr", type=float, default=0.01,
                   help="Adam learning rate in integer units (weight steps, output steps)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--init", choices=("checkpoint", "description"), default="checkpoint",
                   help="start from the checkpoint's float weights or continue from the "
                        "description's integer weights")
    p.add_argument("--val", type=int, default=None, metavar="N",
                   help="hold out N training images (python_ref.train.split_validation), "
                        "measure each epoch on them and keep the best epoch (default: those "
                        "the checkpoint's training held out, if any)")
    p.add_argument("--out", required=True, help="output stem for the fine-tuned description")
    a = p.parse_args(argv)
    try:
        h, _ = finetune(a.model, a.description, a.checkpoint, a.data, a.epochs, a.lr,
                        a.batch_size, limit=a.limit, threads=a.threads, init=a.init,
                        val=a.val)
    except (DataError, _ir.IRError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    _ir.save(h, a.out)
    print(f"wrote {Path(a.out).with_suffix('.json')}")


if __name__ == "__main__":
    main()
