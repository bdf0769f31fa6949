"""What the two examples' training scripts share: a seeded CPU training loop on CIFAR-10 with a
held-out validation split (the checkpoint kept is the one with the best validation accuracy,
never chosen on the test set) and the ONNX export the converter reads.

The pieces of the project's own trainer that are not model-specific are reused from
:mod:`python_ref.train`: the validation split (:func:`~python_ref.train.split_validation`, the
same 5,000 images as the zoo's runs), the augmentation (4-pixel zero-padded random crop and
horizontal flip), the pixel-to-tensor convention (``x / 255``, channels first) and the
learning-rate schedule (linear warm-up, then cosine decay).
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from python_ref.data import load_cifar10
from python_ref.train import augment, evaluate, lr_at, split_validation, to_tensor

#: Training images held out for validation (500 of each class).
VAL_IMAGES = 5000
#: ONNX opset of the export.
OPSET = 18


def schedule(epochs: int, lr: float = 0.1) -> dict:
    """The SGD schedule: batch 128, Nesterov momentum 0.9, weight decay 5e-4 on the weights,
    one warm-up epoch, then cosine decay to zero over ``epochs``."""
    return dict(epochs=epochs, batch_size=128, lr=lr, momentum=0.9, weight_decay=5e-4,
                warmup_epochs=1)


def _optimiser(model: torch.nn.Module, cfg: dict) -> torch.optim.SGD:
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    return torch.optim.SGD([{"params": decay, "weight_decay": cfg["weight_decay"]},
                            {"params": no_decay, "weight_decay": 0.0}],
                           lr=cfg["lr"], momentum=cfg["momentum"], nesterov=True)


def _epoch(model, opt, xt, yt, gen, cfg: dict, epoch: int) -> float:
    """One epoch in a seeded random order (the last partial batch dropped); the mean loss."""
    bs = cfg["batch_size"]
    spe = len(xt) // bs
    model.train()
    perm = torch.randperm(len(xt), generator=gen)
    total = 0.0
    for s in range(spe):
        for g in opt.param_groups:
            g["lr"] = lr_at(epoch * spe + s, spe, cfg)
        idx = perm[s * bs:(s + 1) * bs]
        xb = augment(xt[idx], gen).contiguous(memory_format=torch.channels_last)
        loss = F.cross_entropy(model(xb), yt[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += loss.item()
    return total / spe


def train(build, cfg: dict, out: Path, data=None, seed: int = 0) -> dict:
    """Train ``build()`` on CIFAR-10 less the validation split; keep the best validation epoch.

    Parameters
    ----------
    build : callable
        Returns the untrained ``torch.nn.Module``.
    cfg : dict
        The schedule (:func:`schedule`).
    out : Path
        Folder for ``metrics.jsonl`` (one record per epoch).
    data : path, optional
        The CIFAR-10 folder (default: ``$AMOS_DATA``, then the shared copy).
    seed : int
        Seeds the weights, the batch order and the augmentation.

    Returns
    -------
    dict
        ``model`` (the best epoch's weights, eval mode), ``epoch`` and ``val_acc`` of that
        epoch, ``seconds`` of training.
    """
    torch.manual_seed(seed)
    np.random.seed(seed)
    x, y = load_cifar10(data, "train")
    xtr, ytr, xval, yval, _ = split_validation(x, y, VAL_IMAGES)
    xt, yt = to_tensor(xtr, "cpu"), torch.from_numpy(ytr)
    model = build().to(memory_format=torch.channels_last)
    opt = _optimiser(model, cfg)
    gen = torch.Generator().manual_seed(seed)
    out.mkdir(parents=True, exist_ok=True)
    best = {"val_acc": -1.0}
    t0 = time.time()
    with open(out / "metrics.jsonl", "w") as log:
        for epoch in range(cfg["epochs"]):
            loss = _epoch(model, opt, xt, yt, gen, cfg, epoch)
            val = evaluate(model, xval, yval, "cpu")
            rec = {"epoch": epoch + 1, "train_loss": round(loss, 4), "val_acc": val,
                   "elapsed_s": round(time.time() - t0, 1)}
            log.write(json.dumps(rec) + "\n")
            log.flush()
            print(json.dumps(rec), file=sys.stderr)
            if val > best["val_acc"]:
                best = {"val_acc": val, "epoch": epoch + 1,
                        "state_dict": copy.deepcopy(model.state_dict())}
    model.load_state_dict(best.pop("state_dict"))
    model = model.to(memory_format=torch.contiguous_format).eval()
    return dict(best, model=model, seconds=round(time.time() - t0, 1))


def export_onnx(model: torch.nn.Module, path: Path) -> Path:
    """Write ``model`` (eval mode) as ONNX, opset :data:`OPSET`, input ``x`` of shape
    ``batch x 3 x 32 x 32`` (the batch symbolic), with ``torch.onnx.export``'s dynamo route."""
    model = model.eval()
    batch = torch.export.Dim("batch", min=1, max=4096)
    prog = torch.onnx.export(model, (torch.zeros(2, 3, 32, 32),), dynamo=True,
                             opset_version=OPSET, input_names=["x"], output_names=["logits"],
                             dynamic_shapes={"x": {0: batch}}, verbose=False)
    prog.save(str(path))
    return path


def save(model: torch.nn.Module, result: dict, cfg: dict, seed: int, folder: Path,
         name: str) -> dict:
    """Write ``<folder>/<name>.pt`` (state dict, schedule, seed, chosen epoch and its
    validation accuracy) and ``<folder>/model.onnx``; returns what was written and its sizes."""
    folder.mkdir(parents=True, exist_ok=True)
    ckpt = folder / f"{name}.pt"
    sd = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    torch.save({"arch": name, "state_dict": sd, "schedule": cfg, "seed": seed,
                "epoch": result["epoch"], "val_acc": result["val_acc"]}, ckpt)
    onnx_path = export_onnx(model, folder / "model.onnx")
    return {"checkpoint": str(ckpt), "checkpoint_bytes": ckpt.stat().st_size,
            "onnx": str(onnx_path), "onnx_bytes": onnx_path.stat().st_size}


def main(argv, build, name: str, epochs: int, folder: Path) -> dict:
    """The training scripts' command line: train on one CPU thread, save, export, report."""
    p = argparse.ArgumentParser(description=f"Train the {name} example on CIFAR-10 (CPU) and "
                                "export it to ONNX.")
    p.add_argument("--data", default=None, help="CIFAR-10 folder (default: $AMOS_DATA, "
                   "../shared/datasets/cifar10)")
    p.add_argument("--epochs", type=int, default=epochs, help=f"default {epochs}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=folder,
                   help=f"folder for {name}.pt, model.onnx and metrics.jsonl (default: {folder})")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = p.parse_args(argv)
    if args.epochs < 1:
        p.error(f"--epochs must be at least 1, not {args.epochs}")
    torch.set_num_threads(args.threads)
    cfg = schedule(args.epochs)
    res = train(build, cfg, args.out, args.data, args.seed)
    written = save(res["model"], res, cfg, args.seed, args.out, name)
    x, y = load_cifar10(args.data, "test")
    report = {"model": name, "epochs": args.epochs, "best_epoch": res["epoch"],
              "val_acc": res["val_acc"], "test_acc": evaluate(res["model"], x, y, "cpu"),
              "train_seconds": res["seconds"], **written}
    print(json.dumps(report))
    return report
