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
from pathlib import Path

import numpy as np

from . import ir as _ir
from .convert import ZOO

__all__ = ["build_net", "float_ops_from_graph", "export", "finetune", "main"]


def _ste_round(t):
    return t + (t.round() - t).detach()


def _ste_floor(t):
    return t + (t.floor() - t).detach()


def _scales(g: _ir.Graph) -> dict:
    return {n["name"]: float(n["scale"]) for n in g.nodes}


def build_net(g: _ir.Graph, ops: list):
    """The fake-quantised torch module for description ``g`` with float weights from ``ops``
    (:func:`python_ref.convert.float_graph`). ``net(x)`` takes integer pixels as floats (NCHW)
    and returns the logits in real units; ``net.double()`` makes the forward pass exact."""
    import torch
    from torch import nn

    class FakeQuantNet(nn.Module):
        """The description's integer network with trainable float weights (see module doc)."""

        def __init__(self):
            super().__init__()
            self.g = g
            sc = _scales(g)
            fl = {o["name"]: o for o in ops}
            self.w = nn.ParameterDict()
            self.b = nn.ParameterDict()
            self.bias_step = {}
            node = g.index()
            # the shift after each accumulator: biases are trained in units of the output step
            shift = {}
            for n in g.amos_nodes():
                for i in n["inputs"]:
                    terms = node[i]["inputs"] if node[i]["op"] == "add" else [i]
                    for t in terms:
                        shift[t] = n["rshift"][0]
            for n in g.nodes:
                if n["op"] in ("conv", "dense"):
                    key = n["name"].replace(".", "_")
                    o = fl[n["name"]]
                    w = o["w"].transpose(0, 3, 1, 2) if n["op"] == "conv" else o["w"]
                    # parameters in integer units (one weight step = 1, one output step = 1), so
                    # one learning rate suits every layer whatever its scale
                    rw = sc[n["inputs"][0]] / sc[n["name"]]
                    step = 2.0 ** shift.get(n["name"], 0)
                    self.w[key] = nn.Parameter(torch.tensor(np.ascontiguousarray(w) * rw,
                                                            dtype=torch.float32))
                    self.b[key] = nn.Parameter(torch.tensor(o["b"] / sc[n["name"]] / step,
                                                            dtype=torch.float32))
                    self.bias_step[n["name"]] = step
            self.out_scale = sc[g.outputs[0]]
            self.K = {n["name"]: g.unit(n["unit"]).K for n in g.amos_nodes()}

        def qweights(self, name):
            key = name.replace(".", "_")
            wq = _ste_round(torch.clamp(self.w[key], -127, 127))
            bq = _ste_round(self.b[key] * self.bias_step[name])
            # the exported integers must fit their arrays: int8 weights, int32 biases
            return wq, bq

        def forward(self, x):
            """``x``: integer pixels as float, NCHW. Returns logits in real units."""
            import torch.nn.functional as F

            vals = {}
            for n in self.g.nodes:
                op, name = n["op"], n["name"]
                ins = [vals[i] for i in n.get("inputs", [])]
                if op == "input":
                    v = x
                elif op == "conv":
                    wq, bq = self.qweights(name)
                    v = F.conv2d(ins[0], wq, bq, n["stride"], n["padding"])
                elif op == "dense":
                    wq, bq = self.qweights(name)
                    a = ins[0]
                    if a.ndim == 4:  # the IR flattens channels last
                        a = a.permute(0, 2, 3, 1)
                    v = F.linear(a.flatten(1), wq, bq)
                elif op == "add":
                    v = sum(t * float(2**s) for t, s in zip(ins, n["lshift"], strict=True))
                elif op == "gap":
                    v = ins[0].sum(dim=(2, 3))
                else:
                    S = n["rshift"][0]
                    v = ins[0] if S == 0 else _ste_floor((ins[0] + 2.0 ** (S - 1)) / 2.0**S)
                    v = torch.clamp(v, 0, 2 ** self.K[name] - 1)
                vals[name] = v
            return vals[self.g.outputs[0]] * self.out_scale

    for n in g.nodes:
        if n["op"] == "amos" and (g.units[n["unit"]]["kind"] != "relu" or len(n["inputs"]) != 1):
            raise ValueError(f"layer {n['name']!r}: fine-tuning supports ReLU units only")
    return FakeQuantNet()


def export(net, g: _ir.Graph) -> _ir.Graph:
    """A copy of ``g`` with the fine-tuned integer weights and biases (exactly the fake-quantised
    ones)."""
    import torch

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


def finetune(model_name: str, description=None, checkpoint=None, data=None, epochs: int = 3,
             lr: float = 0.01, batch_size: int = 128, distill: float = 1.0, seed: int = 0,
             limit: int | None = None, progress: bool = True, threads: int | None = None,
             init: str = "checkpoint"):
    """Fine-tune; returns ``(graph, history)``. ``limit`` uses a seeded random subset of the
    training images."""
    import torch
    import torch.nn.functional as F

    from .convert import float_graph, load_checkpoint
    from .data import load_dataset
    from .models import MODELS, build_model
    from .train import augment

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    g = description if isinstance(description, _ir.Graph) else \
        _ir.load(description or ZOO / model_name)
    checkpoint = checkpoint or ZOO / f"{model_name}.pt"
    sd, _ = load_checkpoint(checkpoint, model_name)
    if init == "checkpoint":
        net = build_net(g, float_graph(model_name, sd))
    elif init == "description":
        net = build_net(g, float_ops_from_graph(g))
    else:
        raise ValueError(f"init must be 'checkpoint' or 'description', not {init!r}")
    dataset = MODELS[model_name]["dataset"]
    x, y = load_dataset(dataset, "train", data)
    if limit:  # a seeded random subset (the training arrays may be sorted by class)
        idx = np.sort(np.random.default_rng(seed).permutation(len(x))[:limit])
        x, y = x[idx], y[idx]
    teacher = None
    if distill:
        teacher = build_model(model_name)
        teacher.load_state_dict({k: torch.from_numpy(v).float() for k, v in sd.items()})
        teacher.eval()
    xt = torch.from_numpy(x).permute(0, 3, 1, 2).float()  # integer pixels
    yt = torch.from_numpy(y)
    params = list(net.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    gen = torch.Generator().manual_seed(seed)
    steps = epochs * (len(x) // batch_size)
    step = 0
    history = []
    do_aug = dataset == "cifar10"
    for ep in range(epochs):
        net.train()
        perm = torch.randperm(len(x), generator=gen)
        it = range(len(x) // batch_size)
        if progress:
            from tqdm import tqdm

            it = tqdm(it, desc=f"finetune {model_name} {ep + 1}/{epochs}", file=sys.stderr)
        tot, ok, n = 0.0, 0, 0
        for s in it:
            for grp in opt.param_groups:
                grp["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / max(1, steps)))
            idx = perm[s * batch_size:(s + 1) * batch_size]
            xb = xt[idx]
            if do_aug:
                # augment works on [0, 1] images; keep the pixels integers
                xb = (augment(xb / 255.0, gen) * 255.0).round()
            logits = net(xb)
            loss = F.cross_entropy(logits, yt[idx])
            if teacher is not None:  # distillation towards the float ANN on the same batch
                with torch.no_grad():
                    t = teacher(xb / 255.0)
                loss = loss + distill * F.kl_div(F.log_softmax(logits, 1), F.softmax(t, 1),
                                                 reduction="batchmean")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            tot += float(loss.detach()) * len(idx)
            ok += int((logits.argmax(1) == yt[idx]).sum())
            n += len(idx)
        rec = {"epoch": ep + 1, "loss": tot / max(1, n), "train_acc": ok / max(1, n)}
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
    from .data import DataError
    from .models import MODELS

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
