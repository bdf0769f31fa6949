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
from .train import augment

__all__ = ["build_net", "float_ops_from_graph", "export", "finetune", "main"]


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
        self.K = {n["name"]: g.unit(n["unit"]).K for n in g.amos_nodes()}

    def _add_layer(self, n: dict, o: dict, sc: dict, step: float) -> None:
        """The trainable weight and bias of layer ``n`` from its float op ``o``."""
        key = n["name"].replace(".", "_")
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
        key = name.replace(".", "_")
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
            return F.conv2d(ins[0], wq, bq, n["stride"], n["padding"])
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
        S = n["rshift"][0]
        v = ins[0] if S == 0 else _ste_floor((ins[0] + 2.0 ** (S - 1)) / 2.0**S)
        return torch.clamp(v, 0, 2 ** self.K[name] - 1)

    def forward(self, x):
        """``x``: integer pixels as float, NCHW. Returns logits in real units."""
        vals = {}
        for n in self.g.nodes:
            vals[n["name"]] = self._layer(n, [vals[i] for i in n.get("inputs", [])], x)
        return vals[self.g.outputs[0]] * self.out_scale


def build_net(g: _ir.Graph, ops: list) -> FakeQuantNet:
    """The fake-quantised torch module for description ``g`` with float weights from ``ops``
    (:func:`python_ref.checkpoint.float_graph`). ``net(x)`` takes integer pixels as floats
    (NCHW) and returns the logits in real units; ``net.double()`` makes the forward pass
    exact."""
    for n in g.nodes:
        if n["op"] == "amos" and (g.units[n["unit"]]["kind"] != "relu" or len(n["inputs"]) != 1):
            raise ValueError(f"layer {n['name']!r}: fine-tuning supports ReLU units only")
    return FakeQuantNet(g, ops)


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


def _training_set(dataset: str, data, limit: int | None, seed: int) -> tuple:
    """The training images and labels, or a seeded random subset of ``limit`` of them."""
    x, y = load_dataset(dataset, "train", data)
    if limit:  # a seeded random subset (the training arrays may be sorted by class)
        idx = np.sort(np.random.default_rng(seed).permutation(len(x))[:limit])
        x, y = x[idx], y[idx]
    return x, y


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


def finetune(model_name: str, description=None, checkpoint=None, data=None, epochs: int = 3,
             lr: float = 0.01, batch_size: int = 128, distill: float = 1.0, seed: int = 0,
             limit: int | None = None, progress: bool = True, threads: int | None = None,
             init: str = "checkpoint"):
    """Fine-tune; returns ``(graph, history)``. ``limit`` uses a seeded random subset of the
    training images."""
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    g = description if isinstance(description, _ir.Graph) else \
        _ir.load(description or ZOO / model_name)
    checkpoint = checkpoint or ZOO / f"{model_name}.pt"
    sd, _ = load_checkpoint(checkpoint, model_name)
    net = _start_net(model_name, g, sd, init)
    dataset = MODELS[model_name]["dataset"]
    x, y = _training_set(dataset, data, limit, seed)
    teacher = _teacher(model_name, sd) if distill else None
    loop = _Loop(net=net, opt=torch.optim.Adam(list(net.parameters()), lr=lr), teacher=teacher,
                 xt=torch.from_numpy(x).permute(0, 3, 1, 2).float(),  # integer pixels
                 yt=torch.from_numpy(y), gen=torch.Generator().manual_seed(seed), lr=lr,
                 steps=epochs * (len(x) // batch_size), batch_size=batch_size, distill=distill,
                 augment=dataset == "cifar10")
    history = []
    for ep in range(epochs):
        desc = f"finetune {model_name} {ep + 1}/{epochs}" if progress else None
        rec = _epoch(loop, ep, desc)
        history.append(rec)
        print(json.dumps(rec), file=sys.stderr)
    h = export(net, g)
    prev = g.meta.get("finetune")
    h.meta["finetune"] = {"init": init, "previous": prev, "epochs": epochs, "lr": lr,
                          "batch_size": batch_size, "seed": seed, "distill": distill,
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
    p.add_argument("--out", required=True, help="output stem for the fine-tuned description")
    a = p.parse_args(argv)
    try:
        h, _ = finetune(a.model, a.description, a.checkpoint, a.data, a.epochs, a.lr,
                        a.batch_size, limit=a.limit, threads=a.threads, init=a.init)
    except (DataError, _ir.IRError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    _ir.save(h, a.out)
    print(f"wrote {Path(a.out).with_suffix('.json')}")


if __name__ == "__main__":
    main()
