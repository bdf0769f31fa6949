"""ANN vs integer SNN of an example on the CIFAR-10 test set, the float ANN being the ONNX file::

    python -m examples.evaluate --onnx examples/vgg_cifar/model.onnx \\
        --description build/examples/vgg_cifar --json docs/results/example_vgg_cifar.json

``python -m python_ref.evaluate`` rebuilds the float network of a zoo architecture from its
checkpoint (its ``--model`` names it); a network brought as an ONNX file has no such entry, so
here the ANN is the ONNX model itself, run by onnxruntime on ``x / 255`` (the examples'
input convention), and the SNN the converted description, run by :func:`python_ref.snn.run`.
The figures are those of ``python_ref.evaluate`` (its ``DEFINITIONS``): top-1 of both, their
agreement, neurons, spikes per image (per layer too), time steps and SynOps per image.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from python_ref import ir, snn
from python_ref.data import DataError, load_cifar10
from python_ref.evaluate import DEFINITIONS, per_layer, subset


class ExampleError(ValueError):
    """A file or option of an example's command is unusable; the message names it."""


def session(onnx_path) -> ort.InferenceSession:
    """An onnxruntime session (CPU) of the ONNX file, or an :class:`ExampleError` naming it."""
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise ExampleError(f"--onnx {onnx_path}: no such file")
    try:
        return ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types for a bad file
        raise ExampleError(f"{onnx_path}: onnxruntime cannot load it ({e})") from None


def ann_logits(onnx_path, x: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """Float logits of the ONNX model on uint8 ``N x H x W x C`` pixels (input ``x / 255``,
    channels first), with onnxruntime on the CPU."""
    sess = session(onnx_path)
    name = sess.get_inputs()[0].name
    out = []
    for s in range(0, len(x), batch_size):
        xb = x[s:s + batch_size].transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255)
        out.append(sess.run(None, {name: xb})[0])
    return np.concatenate(out)


def evaluate(onnx_path, description, data=None, limit: int | None = None,
             batch_size: int = 100, progress: bool = True) -> dict:
    """ANN (the ONNX file) and SNN (the description) on the CIFAR-10 test set.

    Parameters
    ----------
    onnx_path : path
        The float model the description was converted from.
    description : path
        The description's stem (``STEM.json`` + ``STEM.npz``).
    data : path, optional
        The CIFAR-10 folder (default: ``$AMOS_DATA``, then the shared copy).
    limit : int, optional
        A fixed seeded draw of this many test images (:func:`python_ref.evaluate.subset`);
        default all 10,000.
    batch_size : int
        Images per step of the integer SNN.
    progress : bool
        Show the SNN's progress bar.

    Returns
    -------
    dict
        ``n_images``, ``ann_top1``, ``snn_top1``, ``gap_points``, ``agreement``, ``K``,
        ``neurons``, ``spikes_per_image``, ``time_steps``, ``synops_per_image``,
        ``spikes_per_layer``, ``per_layer``, ``definitions``, ``source``, ``seconds``.
    """
    onnx_path = Path(onnx_path)
    session(onnx_path)  # a bad file is reported before the test set is read
    g = ir.load(description)
    x, y = load_cifar10(data, "test")
    idx = subset(len(y), limit)
    x, y = x[idx], y[idx]
    t0 = time.time()
    ann = ann_logits(onnx_path, x)
    t1 = time.time()
    res = snn.run(g, x, batch_size=batch_size, progress=progress, synops=True)
    t2 = time.time()
    ks = sorted(set(g.K_values().values()))
    ann_top1, snn_top1 = float((ann.argmax(1) == y).mean()), float((res.classes == y).mean())
    synops = sum(res.synops.values(), np.zeros(len(y), np.int64))
    return {
        "model": g.name, "dataset": "cifar10", "n_images": int(len(y)),
        "ann_top1": ann_top1, "snn_top1": snn_top1,
        "gap_points": round(100 * (ann_top1 - snn_top1), 4),
        "agreement": float((ann.argmax(1) == res.classes).mean()),
        "K": ks[0] if len(ks) == 1 else g.K_values(),
        "neurons": int(g.neurons()), "spikes_per_image": float(res.spikes_per_image.mean()),
        "time_steps": int(g.time_steps()), "synops_per_image": float(synops.mean()),
        "spikes_per_layer": {k: float(v.mean()) for k, v in res.spikes.items()},
        "per_layer": per_layer(g, res),
        "definitions": {k: DEFINITIONS[k] for k in
                        ("neurons", "spikes_per_image", "time_steps", "synops_per_image")},
        "source": {"onnx": onnx_path.name,
                   "onnx_sha256": hashlib.sha256(onnx_path.read_bytes()).hexdigest(),
                   "description": str(description), "calibration": g.meta.get("calibration")},
        "seconds": {"ann": round(t1 - t0, 1), "snn": round(t2 - t1, 1)},
    }


def main(argv=None) -> dict:
    """The command line (see the module docstring)."""
    p = argparse.ArgumentParser(description="ANN (an ONNX file) vs integer SNN (its converted "
                                "description) on the CIFAR-10 test set.")
    p.add_argument("--onnx", required=True, type=Path, help="the float model")
    p.add_argument("--description", required=True, help="the converted description's stem")
    p.add_argument("--data", default=None, help="CIFAR-10 folder (default: $AMOS_DATA, "
                   "../shared/datasets/cifar10)")
    p.add_argument("--limit", type=int, default=None,
                   help="N test images only (a fixed seeded draw); default all")
    p.add_argument("--json", type=Path, default=None, help="write the result here")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    if a.limit is not None and a.limit < 1:
        p.error(f"--limit must be a positive number of images, not {a.limit}")
    try:
        r = evaluate(a.onnx, a.description, a.data, a.limit, progress=not a.no_progress)
    except (ExampleError, DataError, ir.IRError) as e:
        raise SystemExit(f"error: {e}") from None
    r["command"] = "python -m examples.evaluate " + " ".join(argv if argv is not None
                                                             else sys.argv[1:])
    print(f"{r['model']}: ANN {100 * r['ann_top1']:.2f} %, SNN {100 * r['snn_top1']:.2f} % on "
          f"{r['n_images']} test images; {r['neurons']:,} neurons, "
          f"{r['spikes_per_image']:,.0f} spikes per image")
    if a.json is not None:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(r, indent=1) + "\n")
    return r


if __name__ == "__main__":
    main()
