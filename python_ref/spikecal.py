"""Spike-aware calibration: clipping levels chosen for fewer spikes at equal validation accuracy.

::

    python -m python_ref.spikecal --model resnet8 --out runs/spikecal/resnet8_sc \\
        --json docs/results/spikecal_resnet8.json

The plain conversion (:mod:`python_ref.convert`) sets every ReLU's clipping level ``alpha`` to
the 99.99th percentile of its float outputs (``alpha_cal``). A larger level makes the unit's
step ``alpha / 2**K`` coarser, so small activations round to fewer set bits, i.e. fewer spikes,
at the price of resolution. This search multiplies each layer's ``alpha_cal`` by a factor from
:data:`SCALES`:

1. the baseline: every factor 1, its top-1 and spikes per image on the validation images;
2. with ``--K-choices`` (none by default), the K pass: the layers in order of their baseline
   spikes (most first); for each, the smaller K from the smallest up, keeping the first whose
   network (with the choices already kept) still has a validation top-1 of at least
   ``baseline - tolerance``: the per-layer K chosen from measured sensitivity;
3. the scale pass: the layers in the same order; for each, the factors from the largest down,
   keeping the first whose network still has a validation top-1 of at least
   ``baseline - tolerance`` and fewer spikes per image than the current choice; none kept: the
   factor stays 1.

The tolerance is one budget for the whole search, not per layer. Each trial is a plain
conversion (:func:`python_ref.convert.quantise`) and an integer SNN run
(:func:`python_ref.snn.run`) on the validation images: the fixed, class-balanced hold-out of the
*training* set of :func:`python_ref.train.split_validation` (the test set is never read). The
chosen description is saved like any conversion; evaluate it on the test set with
``python -m python_ref.evaluate --model M --description STEM --json ...``. Greedy, one pass:
a search over all combinations costs ``len(SCALES) ** layers`` runs.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from tqdm import tqdm

from . import ir as _ir
from . import snn
from .checkpoint import ZOO, ConversionError, float_graph, load_checkpoint
from .convert import (
    DEFAULT_CALIB,
    DEFAULT_K,
    DEFAULT_PERCENTILE,
    calibrate,
    calibration_images,
    quantise,
)
from .data import DataError, load_dataset
from .models import MODELS
from .train import split_validation

__all__ = ["SCALES", "Trial", "build", "main", "search"]

# the converter rounds each level up to a power-of-two multiple of the accumulator scale
# (``[alpha_cal, 2*alpha_cal)``), so only factors a power of two apart give new networks: in the
# ResNet8 search of docs/results/spikecal_resnet8.json 1.5 gave the same network as 1, 3 as 2
SCALES = (1.0, 2.0, 4.0, 8.0)
DEFAULT_VAL = 5000
DEFAULT_TOLERANCE = 0.002


class Trial(dict):
    """One evaluated choice: ``scales`` (layer -> factor), ``K_layers`` (layer -> K where not
    the default), ``top1``, ``spikes_per_image``, ``spikes_per_layer``, ``neurons``."""


def build(ops: list, alphas: dict, trial: dict, K: int, name: str) -> _ir.Graph:
    """The description of a trial's ``scales`` and ``K_layers`` (a plain conversion)."""
    return quantise(ops, {k: a * trial["scales"].get(k, 1.0) for k, a in alphas.items()}, K=K,
                    K_layers=trial["K_layers"], name=name)


def _measure(ops: list, alphas: dict, scales: dict, ks: dict, x, y, K: int, name: str) -> Trial:
    g = build(ops, alphas, {"scales": scales, "K_layers": ks}, K, name)
    r = snn.run(g, x, batch_size=250, check=False)
    per_layer = {k: float(v.mean()) for k, v in r.spikes.items()}
    return Trial(scales=dict(scales), K_layers=dict(ks), top1=float((r.classes == y).mean()),
                 spikes_per_image=float(r.spikes_per_image.mean()), spikes_per_layer=per_layer,
                 neurons=int(g.neurons()))


def search(ops: list, alphas: dict, x_val, y_val, *, K: int = DEFAULT_K, name: str = "net",
           scales=SCALES, ks=(), tolerance: float = DEFAULT_TOLERANCE,
           progress: bool = True) -> tuple[Trial, Trial, list]:
    """The greedy search of the module docstring.

    Parameters
    ----------
    ops, alphas
        The float ops and their calibrated levels (:func:`python_ref.convert.calibrate`).
    x_val, y_val
        Validation pixels (N x H x W x C uint8) and labels.
    scales : sequence of float
        The factors tried, each at least 1.
    ks : sequence of int
        Smaller K tried per layer before the factors (none by default): the K pass takes the
        layers in the same order and keeps each layer's smallest K that stays within the
        tolerance (fewer neurons and time steps, a narrower datapath in hardware).
    tolerance : float
        The validation top-1 the search may give up, as a fraction (0.002: 0.2 points).

    Returns
    -------
    (Trial, Trial, list of Trial)
        The baseline, the choice, and every trial in the order run.
    """
    if not scales or min(scales) < 1:
        raise ConversionError(f"scales must be factors of at least 1, not {list(scales)}")
    if not 0 <= tolerance < 1:
        raise ConversionError(f"tolerance must lie in [0, 1), not {tolerance}")
    base = _measure(ops, alphas, {}, {}, x_val, y_val, K, name)
    best, trials = base, [base]
    order = sorted(base["spikes_per_layer"], key=lambda k: -base["spikes_per_layer"][k])
    passes = [("K", layer, [k for k in sorted(ks) if k < K]) for layer in order]
    passes += [("scale", layer, sorted((s for s in scales if s > 1), reverse=True))
               for layer in order]
    bar = tqdm(passes, desc="spikecal", unit="layer", file=sys.stderr, disable=not progress)
    for what, layer, values in bar:
        for v in values:
            sc, kl = dict(best["scales"]), dict(best["K_layers"])
            (sc if what == "scale" else kl)[layer] = v
            t = _measure(ops, alphas, sc, kl, x_val, y_val, K, name)
            trials.append(t)
            bar.set_postfix(layer=layer, **{what: v}, top1=f"{t['top1']:.4f}",
                            spikes=f"{t['spikes_per_image']:.0f}")
            better = (t["spikes_per_image"] < best["spikes_per_image"] if what == "scale"
                      else t["neurons"] < best["neurons"])
            if t["top1"] >= base["top1"] - tolerance and better:
                best = t
                break
    return base, best, trials


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m python_ref.spikecal", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, choices=sorted(MODELS))
    p.add_argument("--checkpoint", default=None, help="default python_ref/zoo/<model>.pt")
    p.add_argument("--data", default=None, help="data folder (default: $AMOS_DATA, ../shared)")
    p.add_argument("--out", required=True, help="stem of the chosen description (.json/.npz)")
    p.add_argument("--json", default=None, help="write the search (every trial) here")
    p.add_argument("--K", type=int, default=DEFAULT_K)
    p.add_argument("--val", type=int, default=DEFAULT_VAL,
                   help=f"validation images held out of the training set (default {DEFAULT_VAL})")
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                   help="validation top-1 the search may give up, a fraction (default 0.002)")
    p.add_argument("--scales", type=float, nargs="+", default=list(SCALES),
                   help="factors of the calibrated clipping level tried per layer")
    p.add_argument("--K-choices", type=int, nargs="+", default=[], metavar="K",
                   help="smaller K tried per layer first (e.g. 6 8); none by default")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv=None) -> int:
    """The command line; the exit status."""
    a = _parser().parse_args(argv)
    t0 = time.time()
    try:
        checkpoint = Path(a.checkpoint) if a.checkpoint else ZOO / f"{a.model}.pt"
        sd, info = load_checkpoint(checkpoint, a.model)
        ops = float_graph(a.model, sd)
        x, y = load_dataset(MODELS[a.model]["dataset"], "train", a.data)
        _, _, x_val, y_val, _ = split_validation(x, y, a.val)
        alphas = calibrate(ops, calibration_images(a.model, a.data), progress=not a.no_progress)
        base, best, trials = search(ops, alphas, x_val, y_val, K=a.K, name=a.model,
                                    scales=a.scales, ks=a.K_choices, tolerance=a.tolerance,
                                    progress=not a.no_progress)
    except (ConversionError, DataError, _ir.IRError) as e:
        print(f"spikecal: {e}", file=sys.stderr)
        return 2
    g = build(ops, alphas, best, a.K, a.model)
    g.meta.update({"source": info, "calibration": {
        "images": DEFAULT_CALIB, "split": "train", "percentile": DEFAULT_PERCENTILE,
        "rule": "percentile of every ReLU output element over the calibration images, times "
                "the layer's spikecal factor"},
        "spikecal": {"scales": best["scales"], "K_layers": best["K_layers"],
                     "tolerance": a.tolerance, "val_images": a.val}})
    _ir.save(g, a.out)
    print(f"{a.model}: validation top-1 {base['top1']:.4f} -> {best['top1']:.4f}, spikes per "
          f"image {base['spikes_per_image']:,.0f} -> {best['spikes_per_image']:,.0f} "
          f"({len(trials)} trials, {time.time() - t0:.0f} s); wrote {a.out}.json and .npz")
    if a.json:
        doc = {"model": a.model, "command": "python -m python_ref.spikecal " + " ".join(
                   sys.argv[1:] if argv is None else argv),
               "val": {"images": a.val, "split": "train, python_ref.train.split_validation"},
               "K": a.K, "tolerance": a.tolerance, "scales_tried": a.scales,
               "K_tried": a.K_choices,
               "baseline": base, "chosen": best, "trials": trials,
               "seconds": round(time.time() - t0, 1)}
        Path(a.json).write_text(json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
