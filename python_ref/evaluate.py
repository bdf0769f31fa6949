"""Evaluate a converted network: float ANN versus the integer SNN reference, on the test set.

``python -m python_ref.evaluate --model resnet8 [--data PATH] [--limit N] [--json out.json]``

Both accuracies are recomputed on every run: the ANN from the checkpoint (torch), the SNN by
running the integer description with :func:`python_ref.snn.run`. Prints a row in the style of the
paper's Table 2 (model, ANN, SNN, # neurons, # spikes) and, with ``--json``, writes
``{"model", "dataset", "n_images", "ann_top1", "snn_top1", "K", "neurons", "spikes_per_image",
"time_steps", ...}``.

Definitions: ``neurons`` is the sum over all AMOS units of their K (from the description);
``spikes_per_image`` the mean over the evaluated images of the spikes emitted by all AMOS units
(the input pixels' bits are not counted); ``time_steps`` the latency of one image, the largest
sum of K over the AMOS layers on any input-to-output path (each layer emits its K spikes on K
consecutive steps, MSB first); pipelined, the network takes a new image every step.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from . import ir as _ir
from . import snn
from .convert import ZOO

__all__ = ["PAPER_TABLE2", "subset", "ann_logits", "evaluate", "table_row", "main"]

# Table 2 of the paper (ANN %, SNN %, neurons, spikes per image), for the printed comparison.
PAPER_TABLE2 = {
    "resnet8": (87.22, 87.05, 737_280, 103_753),
    "resnet14": (90.49, 90.39, 1_310_720, 190_107),
    "resnet20": (91.58, 91.45, 1_884_160, 261_779),
}


def subset(n: int, limit: int | None, seed: int = 0) -> np.ndarray:
    """Indices of the evaluated images: all ``n``, or ``limit`` of them drawn without
    replacement with a fixed seed and kept in order (the CIFAR-10 arrays are sorted by class, so
    the first N images would all be airplanes)."""
    if limit is None or limit >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).permutation(n)[:limit])


def ann_logits(model_name: str, checkpoint, x: np.ndarray, batch_size: int = 500,
               progress: bool = False) -> np.ndarray:
    """Float logits of the checkpoint on uint8 images (torch, CPU)."""
    import torch

    from .convert import load_checkpoint
    from .models import build_model

    sd, _ = load_checkpoint(checkpoint, model_name)
    model = build_model(model_name)
    model.load_state_dict({k: torch.from_numpy(v).float() for k, v in sd.items()})
    model.eval()
    out = []
    it = range(0, len(x), batch_size)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc=f"ANN {model_name}", unit="batch", file=sys.stderr)
    with torch.no_grad():
        for s in it:
            xb = torch.from_numpy(x[s:s + batch_size]).permute(0, 3, 1, 2).float() / 255.0
            out.append(model(xb).numpy())
    return np.concatenate(out)


def evaluate(model_name: str, data=None, limit: int | None = None, description=None,
             checkpoint=None, batch_size: int = 100, progress: bool = True) -> dict:
    """Recompute ANN and SNN top-1 on the test split and the SNN's size figures.

    Parameters
    ----------
    model_name : str
    data : path, optional
        CIFAR-10 folder (ignored for digits).
    limit : int, optional
        Use ``limit`` test images, a fixed seeded draw (:func:`subset`).
    description : path, optional
        SNN description stem (default ``python_ref/zoo/<model>``).
    checkpoint : path, optional
        Float checkpoint (default ``python_ref/zoo/<model>.pt``).
    """
    from .data import load_dataset
    from .models import MODELS

    if model_name not in MODELS:
        raise ValueError(f"unknown model {model_name!r}; known: {', '.join(MODELS)}")
    if limit is not None and (isinstance(limit, bool) or limit < 1):
        raise ValueError(f"limit must be a positive integer, not {limit!r}")
    dataset = MODELS[model_name]["dataset"]
    g = _ir.load(description or ZOO / model_name)
    if g.name != model_name:
        raise ValueError(f"description {description} is for {g.name!r}, not {model_name!r}")
    x, y = load_dataset(dataset, "test", data)
    idx = subset(len(y), limit)
    x, y = x[idx], y[idx]
    t0 = time.time()
    ann = ann_logits(model_name, checkpoint or ZOO / f"{model_name}.pt", x, progress=progress)
    t1 = time.time()
    res = snn.run(g, x, batch_size=batch_size, progress=progress)
    t2 = time.time()
    ks = sorted(set(g.K_values().values()))
    ann_top1 = float((ann.argmax(1) == y).mean())
    snn_top1 = float((res.classes == y).mean())
    spikes = res.spikes_per_image
    out = {
        "model": model_name,
        "dataset": dataset,
        "dataset_note": "CIFAR-10 (JPEG copy) when read from ../shared/datasets/cifar10"
        if dataset == "cifar10" else "scikit-learn 8x8 digits, seeded stratified 20 % test split",
        "n_images": int(len(y)),
        "ann_top1": ann_top1,
        "snn_top1": snn_top1,
        "K": ks[0] if len(ks) == 1 else g.K_values(),
        "neurons": int(g.neurons()),
        "spikes_per_image": float(spikes.mean()),
        "time_steps": int(g.time_steps()),
        "gap_points": round(100 * (ann_top1 - snn_top1), 4),
        "agreement": float((ann.argmax(1) == res.classes).mean()),
        "spikes_per_layer": {k: float(v.mean()) for k, v in res.spikes.items()},
        "definitions": {
            "neurons": "sum over all AMOS units of K",
            "spikes_per_image": "mean over images of the spikes of all AMOS units "
                                "(input pixel bits not counted)",
            "time_steps": "latency of one image: the largest sum of K over the AMOS layers on an "
                          "input-to-output path; pipelined throughput is one image per step",
        },
        "source": {"checkpoint": g.meta.get("source", {}).get("checkpoint"),
                   "checkpoint_sha256": g.meta.get("source", {}).get("sha256"),
                   "calibration": g.meta.get("calibration"),
                   "finetune": {k: v for k, v in g.meta.get("finetune", {}).items()
                                if k != "history"} or None},
        "seconds": {"ann": round(t1 - t0, 1), "snn": round(t2 - t1, 1)},
    }
    if model_name in PAPER_TABLE2:
        a, s, nrn, spk = PAPER_TABLE2[model_name]
        out["paper"] = {"ann_top1": a / 100, "snn_top1": s / 100, "neurons": nrn,
                        "spikes_per_image": spk}
    return out


def table_row(r: dict) -> str:
    """Header and row in the style of the paper's Table 2 (plus the paper's row if known)."""
    head = f"{'Model':<10} {'ANN':>8} {'SNN':>8} {'# neurons':>12} {'# spikes':>10} {'steps':>6}"
    row = (f"{r['model']:<10} {100 * r['ann_top1']:>7.2f}% {100 * r['snn_top1']:>7.2f}% "
           f"{r['neurons']:>12,} {r['spikes_per_image']:>10,.0f} {r['time_steps']:>6}")
    lines = [head, row]
    if "paper" in r:
        p = r["paper"]
        lines.append(f"{'(paper)':<10} {100 * p['ann_top1']:>7.2f}% {100 * p['snn_top1']:>7.2f}% "
                     f"{p['neurons']:>12,} {p['spikes_per_image']:>10,}")
    return "\n".join(lines)


def main(argv=None):
    from .convert import ConversionError
    from .data import DataError
    from .models import MODELS

    p = argparse.ArgumentParser(prog="python -m python_ref.evaluate",
                                description="ANN vs integer SNN top-1 on the test set.")
    p.add_argument("--model", required=True, choices=sorted(MODELS))
    p.add_argument("--data", default=None, help="data folder (default: $AMOS_DATA, ../shared)")
    p.add_argument("--limit", type=int, default=None,
                   help="N test images only (a fixed, seeded draw across all classes)")
    p.add_argument("--description", default=None, help="SNN description (default: the zoo's)")
    p.add_argument("--checkpoint", default=None, help="float checkpoint (default: the zoo's)")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--json", default=None, help="write the result here")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    try:
        r = evaluate(a.model, a.data, a.limit, a.description, a.checkpoint, a.batch_size,
                     progress=not a.no_progress)
    except (DataError, ConversionError, _ir.IRError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    print(table_row(r))
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(r, indent=2) + "\n")
        print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
