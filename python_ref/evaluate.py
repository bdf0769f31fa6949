"""Evaluate a converted network: float ANN versus the integer SNN reference, on the test set.

``python -m python_ref.evaluate --model resnet8 [--data PATH] [--limit N | --indices SPEC]
[--json out.json] [--per-image FILE.npz]``

``python -m python_ref.evaluate --description STEM --data DATA [--onnx MODEL.onnx] [...]``
evaluates your own converted description (``STEM.json`` + ``STEM.npz``, from the importer,
``docs/import.md``; :func:`evaluate_description`): ``DATA`` is an ``.npz`` with ``x`` (N x H x W x
C uint8 test pixels) and ``y`` (labels), a CIFAR-10 data folder (test split) or ``digits``; the
float ANN, when ``--onnx`` is given, is the ONNX model run by onnxruntime on
``(x * input_scale - mean) / std`` with the normalisation the converter recorded (without
``--onnx`` the ANN columns are empty).

Both accuracies are recomputed on every run: the ANN from the checkpoint (torch), the SNN by
running the integer description with :func:`python_ref.snn.run`. Prints a row in the style of the
paper's Table 2 (model, ANN, SNN, # neurons, # spikes) and, with ``--json``, writes
``{"model", "dataset", "n_images", "ann_top1", "snn_top1", "K", "neurons", "spikes_per_image",
"time_steps", ...}``; for a network with squeeze-and-excitation gates (``effnet_cifar``) also
``snn_exact_mult_top1`` (:func:`exact_gate_figures`: the gates' products exact, the cost of the
trained multiplication unit).

Definitions: ``neurons`` is the sum over all AMOS units of their K (from the description);
``spikes_per_image`` the mean over the evaluated images of the spikes emitted by all AMOS units
(the input pixels' bits are not counted); ``time_steps`` the latency of one image, the largest
sum of K over the AMOS layers on any input-to-output path (each layer emits its K spikes on K
consecutive steps, MSB first); pipelined, the network takes a new image every step.

Operations (``docs/integer_semantics.md``, "Synaptic operations"; :func:`layer_ops`,
:func:`per_layer`): ``synops_per_image`` is the mean over images of every AMOS spike times its
fan-out (the number of weights it is multiplied with downstream: for a consuming conv
``C_out`` times the number of output positions whose window covers the spike's position, exact at
the borders and for any stride; for a dense consumer ``n_out``; for an ``add``, ``gap`` or
``amos`` consumer 1; for a depthwise conv, a ``maxpool`` or an ``avgpool`` the number of
windows covering it; the output bits of a pool count as spikes), summed over the network from
each image's own spike maps
(``snn.run(..., synops=True)``); ``input_synops_per_image`` the same for the input pixels' bits
(not in ``synops_per_image``, as they are not in ``spikes_per_image``). ``macs_per_image`` is
the ANN's multiply-accumulates of the same network (``H_out*W_out*C_out*k*k*C_in`` per conv,
``n_in*n_out`` per dense, padding zeros included) and ``adds_per_image`` its other additions
(``(m-1)*E`` for an ``add`` of ``m`` maps of ``E`` elements, ``(H*W-1)*C`` for ``gap``,
``(k*k-1)`` per output element of a ``maxpool`` (comparisons) or ``avgpool``; a depthwise conv
does ``H_out*W_out*C*k*k`` MACs).
``per_layer`` lists, for every layer but the input, the spikes it emits, the SynOps it does
on the AMOS spikes it reads, and its MACs and additions in the ANN (all per image).

Which test images: all of them by default; ``--limit N`` a fixed, seeded draw of N across the
classes (:func:`subset`); ``--indices SPEC`` the test-set indices listed, in the order given
(:func:`parse_indices`): comma-separated indices and half-open ranges ``START:END`` (END
excluded; an omitted START is 0, an omitted END the test set's size), e.g. ``9000:9200`` or
``0:100,150``. An index outside the test set, an empty range or an image selected twice is an
error naming the part.

``--per-image FILE.npz`` writes, for the N evaluated images in evaluation order, the arrays
(:func:`per_image_arrays`)

* ``index`` int64 ``(N,)``: the image's index in the test set;
* ``label`` int64 ``(N,)``: its true class;
* ``snn_class`` int64 ``(N,)``: the class the integer SNN predicts (argmax of ``logits``,
  lowest index on ties);
* ``logits`` int64 ``(N, classes)``: the integer SNN's logits (the output layer's accumulators);
* ``ann_class`` int64 ``(N,)``: the class the float ANN predicts (-1 without an ANN);
* ``layers`` str ``(L,)``: the names of the L ``amos`` layers, in the description's order;
* ``spikes`` int64 ``(N, L)``: the spikes each image made in each of those layers.

Read it with ``numpy.load(FILE)`` (no pickle needed).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import ir as _ir
from . import snn
from .checkpoint import ZOO, ConversionError, load_checkpoint
from .data import DataError, load_dataset

__all__ = ["PAPER_TABLE2", "PER_IMAGE_HELP", "DEFINITIONS", "subset", "parse_indices",
           "ann_logits", "onnx_logits", "load_test_data", "per_image_arrays",
           "write_per_image", "layer_ops", "per_layer", "evaluate", "evaluate_description",
           "table_row", "ops_table", "main"]

# Table 2 of the paper (ANN %, SNN %, neurons, spikes per image), for the printed comparison.
PAPER_TABLE2 = {
    "resnet8": (87.22, 87.05, 737_280, 103_753),
    "resnet14": (90.49, 90.39, 1_310_720, 190_107),
    "resnet20": (91.58, 91.45, 1_884_160, 261_779),
}

#: The ``--per-image`` file's arrays, for ``--help`` (the module docstring says the same).
PER_IMAGE_HELP = """\
--per-image FILE.npz holds, for the N evaluated images in evaluation order:
  index      int64 (N,)           the image's index in the test set
  label      int64 (N,)           its true class
  snn_class  int64 (N,)           the class the integer SNN predicts (argmax of logits,
                                  lowest index on ties)
  logits     int64 (N, classes)   the integer SNN's logits
  ann_class  int64 (N,)           the class the float ANN predicts (-1: no ANN given)
  layers     str   (L,)           the names of the L amos layers, in the description's order
  spikes     int64 (N, L)         spikes of each image in each of those layers
Read it with numpy.load(FILE)."""


#: The result's ``definitions`` (the module docstring and ``docs/integer_semantics.md`` agree).
DEFINITIONS = {
    "neurons": "sum over all AMOS units of K",
    "spikes_per_image": "mean over images of the spikes of all AMOS units "
                        "(input pixel bits not counted)",
    "time_steps": "latency of one image: the largest sum of K over the AMOS layers on an "
                  "input-to-output path; pipelined throughput is one image per step",
    "synops_per_image": "mean over images of the sum over every AMOS spike of its fan-out, "
                        "from each image's spike maps: a spike at (y, x, c) read by a conv "
                        "counts C_out times the number of output positions whose window covers "
                        "(y, x) (exact at borders and for any stride; a depthwise conv or a "
                        "pool: the number of windows only), by a dense n_out, by an add, gap or "
                        "amos layer 1; a map read by several layers adds their fan-outs; the "
                        "output bits of maxpool / avgpool layers count as spikes here too "
                        "(input pixel bits not counted)",
    "input_synops_per_image": "the same for the input pixels' bits taken as spikes (popcount "
                              "of each pixel times its fan-out); not in synops_per_image",
    "macs_per_image": "the ANN's multiply-accumulates: H_out*W_out*C_out*k*k*C_in per conv "
                      "(H_out*W_out*C*k*k when depthwise; padding zeros included), n_in*n_out "
                      "per dense",
    "adds_per_image": "the ANN's other additions: (m-1)*E per add of m maps of E elements, "
                      "(H*W-1)*C per gap, (k*k-1) per output element of a maxpool "
                      "(comparisons) or avgpool; biases and requantisation not counted",
    "per_layer": "every layer but the input, in the description's order: spikes it emits, "
                 "synops it does on the AMOS spikes it reads (per image), macs and adds of "
                 "the same layer in the ANN; layers reading accumulators (fc after gap) do "
                 "their MACs on integers in the SNN too, which are not synops",
}


def subset(n: int, limit: int | None, seed: int = 0) -> np.ndarray:
    """Indices of the evaluated images: all ``n``, or ``limit`` of them drawn without
    replacement with a fixed seed and kept in order (the CIFAR-10 arrays are sorted by class, so
    the first N images would all be airplanes)."""
    if limit is None or limit >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).permutation(n)[:limit])


def _parse_part(spec: str, part: str, n: int) -> range:
    """One comma-separated part of an indices spec as a range of indices."""
    num = r"[0-9]+"
    if re.fullmatch(num, part):
        i = int(part)
        if i >= n:
            raise ValueError(f"indices {spec!r}: part {part!r}: index {i} is outside the test "
                             f"set of {n} images (indices 0..{n - 1})")
        return range(i, i + 1)
    m = re.fullmatch(rf"({num})?:({num})?", part)
    if not m:
        raise ValueError(f"indices {spec!r}: part {part!r} is neither an index nor a range "
                         "START:END (non-negative integers, e.g. 9000:9200)")
    start = int(m[1]) if m[1] is not None else 0
    end = int(m[2]) if m[2] is not None else n
    if end > n:
        raise ValueError(f"indices {spec!r}: part {part!r}: END {end} is past the test set of "
                         f"{n} images (a range START:END excludes END, so END is at most {n})")
    if start >= end:
        raise ValueError(f"indices {spec!r}: part {part!r} is an empty range (START must be "
                         f"below END; the test set has {n} images)")
    return range(start, end)


def parse_indices(spec: str, n: int) -> np.ndarray:
    """Test-set indices from a spec like ``"9000:9200"`` or ``"0:100,150"``.

    Parameters
    ----------
    spec : str
        Comma-separated parts, each an index ``I`` or a half-open range ``START:END`` (END
        excluded; an omitted START is 0, an omitted END is ``n``). Spaces around parts are
        ignored.
    n : int
        Size of the test set.

    Returns
    -------
    numpy.ndarray of int64
        The indices in the order given.

    Raises
    ------
    ValueError
        Naming the spec and the offending part and giving the test-set size: a part that is not
        an index or a range, an index ``>= n``, a range ending past ``n`` or empty, an image
        selected twice, or an empty spec.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"indices must be a non-empty string like '9000:9200' or '0:100,150', "
                         f"not {spec!r}")
    out: list[int] = []
    first: dict[int, str] = {}
    for raw in spec.split(","):
        part = raw.strip()
        for i in _parse_part(spec, part, n):
            if i in first:
                raise ValueError(f"indices {spec!r}: image {i} is selected twice (in part "
                                 f"{first[i]!r} and in part {part!r})")
            first[i] = part
            out.append(i)
    return np.asarray(out, dtype=np.int64)


def ann_logits(model_name: str, checkpoint, x: np.ndarray, batch_size: int = 500,
               progress: bool = False) -> np.ndarray:
    """Float logits of the checkpoint on uint8 images (torch, CPU)."""
    # torch (the optional `train` extra) is imported only where the float network runs
    import torch

    from .models import build_model

    sd, _ = load_checkpoint(checkpoint, model_name)
    model = build_model(model_name)
    model.load_state_dict({k: torch.from_numpy(v).float() for k, v in sd.items()})
    model.eval()
    out = []
    it = range(0, len(x), batch_size)
    if progress:
        it = tqdm(it, desc=f"ANN {model_name}", unit="batch", file=sys.stderr)
    with torch.no_grad():
        for s in it:
            xb = torch.from_numpy(x[s:s + batch_size]).permute(0, 3, 1, 2).float() / 255.0
            out.append(model(xb).numpy())
    return np.concatenate(out)


def per_image_arrays(index, label, res: snn.SimResult, ann: np.ndarray) -> dict:
    """The per-image record of a run (the arrays of ``--per-image``; see the module docstring).

    Parameters
    ----------
    index, label : array of int, shape (N,)
        Test-set indices and true classes of the evaluated images, in evaluation order.
    res : SimResult
        The integer SNN's result on those images.
    ann : array of float, shape (N, classes), or None
        The float ANN's logits on them (None: no ANN, ``ann_class`` is -1).

    Returns
    -------
    dict of numpy.ndarray
        ``index``, ``label``, ``snn_class``, ``logits``, ``ann_class``, ``layers``, ``spikes``.
    """
    layers = list(res.spikes)
    n = len(res.logits)
    spikes = (np.stack([res.spikes[k] for k in layers], axis=1) if layers
              else np.zeros((n, 0), np.int64))
    return {
        "index": np.asarray(index, dtype=np.int64),
        "label": np.asarray(label, dtype=np.int64),
        "snn_class": res.classes.astype(np.int64),
        "logits": res.logits.astype(np.int64),
        "ann_class": (np.argmax(ann, axis=1).astype(np.int64) if ann is not None
                      else np.full(n, -1, np.int64)),
        "layers": np.asarray(layers, dtype=str),
        "spikes": spikes.astype(np.int64),
    }


def write_per_image(path, arrays: dict) -> Path:
    """Write the per-image arrays to exactly ``path`` (an ``.npz``; no suffix is added)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)
    return path


def layer_ops(g: _ir.Graph) -> dict:
    """The ANN's operations per image, per layer, from the description's shapes.

    Parameters
    ----------
    g : Graph

    Returns
    -------
    dict
        Layer name -> ``{"op", "macs", "adds"}`` for every layer but the input: ``macs`` is
        ``H_out*W_out*C_out*k*k*C_in`` for a conv and ``n_in*n_out`` for a dense (0 otherwise);
        ``adds`` is ``(m-1)*E`` for an add of ``m`` maps of ``E`` elements, ``(H*W-1)*C``
        for a gap and ``(k*k-1)`` per output element of a pool (0 otherwise). A depthwise
        conv's ``macs`` is ``H_out*W_out*C*k*k``.
    """
    shapes = {k: v["shape"] for k, v in _ir.validate(g).items()}
    out = {}
    for n in g.nodes[1:]:
        op, ins = n["op"], n["inputs"]
        macs = adds = 0
        if op == "conv":
            c_in = shapes[ins[0]][-1] if _ir.conv_groups(n) == 1 else 1
            macs = int(np.prod(shapes[n["name"]])) * n["kernel"] ** 2 * c_in
        elif op == "dense":
            macs = int(np.prod(shapes[ins[0]])) * n["out_features"]
        elif op == "add":
            adds = (len(ins) - 1) * int(np.prod(shapes[n["name"]]))
        elif op == "gap":
            adds = int(np.prod(shapes[ins[0]])) - int(np.prod(shapes[n["name"]]))
        elif op in ("maxpool", "avgpool"):
            adds = (n["kernel"] ** 2 - 1) * int(np.prod(shapes[n["name"]]))
        out[n["name"]] = {"op": op, "macs": int(macs), "adds": int(adds)}
    return out


def per_layer(g: _ir.Graph, res: snn.SimResult) -> list:
    """The per-layer table of a run (``per_layer`` in the result).

    Parameters
    ----------
    g : Graph
    res : SimResult
        From ``snn.run(g, x, synops=True)``.

    Returns
    -------
    list of dict
        One row per layer but the input, in the description's order: ``name``, ``op``,
        ``spikes`` (mean spikes the layer emits per image; 0 but for ``amos`` layers),
        ``synops`` (mean SynOps the layer does per image on the AMOS spikes it reads),
        ``macs`` and ``adds`` (:func:`layer_ops`).
    """
    rows = []
    for name, ops in layer_ops(g).items():
        spikes = res.spikes.get(name)
        synops = res.synops.get(name)
        rows.append({"name": name, "op": ops["op"],
                     "spikes": float(spikes.mean()) if spikes is not None else 0.0,
                     "synops": float(synops.mean()) if synops is not None else 0.0,
                     "macs": ops["macs"], "adds": ops["adds"]})
    return rows


def _selection(n: int, limit, indices) -> np.ndarray:
    if limit is not None and indices is not None:
        raise ValueError("give limit (a seeded draw) or indices (the images listed), not both")
    if indices is not None:
        return parse_indices(indices, n)
    return subset(n, limit)


def evaluate(model_name: str, data=None, limit: int | None = None, description=None,
             checkpoint=None, batch_size: int = 100, progress: bool = True,
             indices: str | None = None, per_image=None) -> dict:
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
    batch_size : int
        Images per step of the integer SNN.
    progress : bool
        Show progress bars.
    indices : str, optional
        The test images to use, e.g. ``"9000:9200"`` or ``"0:100,150"`` (:func:`parse_indices`);
        not together with ``limit``.
    per_image : path, optional
        Write the per-image arrays (:func:`per_image_arrays`) to this ``.npz`` file.

    Returns
    -------
    dict
        The result (see the module docstring); with ``indices`` it also holds ``"indices"``,
        with ``per_image`` the file's path as ``"per_image"``.
    """
    from .models import MODELS  # imports torch (the `train` extra), like the ANN below

    if model_name not in MODELS:
        raise ValueError(f"unknown model {model_name!r}; known: {', '.join(MODELS)}")
    if limit is not None and (isinstance(limit, bool) or limit < 1):
        raise ValueError(f"limit must be a positive integer, not {limit!r}")
    dataset = MODELS[model_name]["dataset"]
    g = _ir.load(description or ZOO / model_name)
    if g.name != model_name:
        raise ValueError(f"description {description} is for {g.name!r}, not {model_name!r}")
    x, y = load_dataset(dataset, "test", data)
    idx = _selection(len(y), limit, indices)
    x, y = x[idx], y[idx]
    t0 = time.time()
    ann = ann_logits(model_name, checkpoint or ZOO / f"{model_name}.pt", x, progress=progress)
    t1 = time.time()
    res = snn.run(g, x, batch_size=batch_size, progress=progress, synops=True)
    t2 = time.time()
    out = _summary(model_name, dataset, g, y, ann, res)
    out["seconds"] = {"ann": round(t1 - t0, 1), "snn": round(t2 - t1, 1)}
    if _gates(g):  # effnet_cifar: what the trained multiplication unit costs
        out.update(exact_gate_figures(g, x, y, res.classes, batch_size, progress))
        out["seconds"]["snn_exact_gates"] = round(time.time() - t2, 1)
    if model_name in PAPER_TABLE2:
        a, s, nrn, spk = PAPER_TABLE2[model_name]
        out["paper"] = {"ann_top1": a / 100, "snn_top1": s / 100, "neurons": nrn,
                        "spikes_per_image": spk}
    if indices is not None:
        out["indices"] = indices
    if per_image is not None:
        path = write_per_image(per_image, per_image_arrays(idx, y, res, ann))
        out["per_image"] = str(path)
    return out


def load_test_data(data) -> tuple[np.ndarray, np.ndarray, str]:
    """Test pixels, labels and where they came from, for a user's description.

    Parameters
    ----------
    data : str or path
        ``digits`` (the bundled 8x8 digits, test split); an ``.npz`` with ``x`` (N x H x W x C
        uint8) and ``y`` (N labels); or a CIFAR-10 data folder (test split).

    Raises
    ------
    DataError
        Naming the file or folder: missing, unreadable, without ``x`` / ``y``, or of the wrong
        type or shape.
    """
    if data is None:
        raise DataError("--data is needed with a description of your own: an .npz with x "
                        "(N x H x W x C uint8) and y, a CIFAR-10 folder, or 'digits'")
    if str(data) == "digits":
        x, y = load_dataset("digits", "test")
        return x, y, "digits (test)"
    path = Path(data)
    if path.is_dir():
        x, y = load_dataset("cifar10", "test", path)
        return x, y, f"{path} (CIFAR-10 test)"
    if not path.is_file():
        raise DataError(f"{path}: no such test-data file or folder")
    try:
        with np.load(path, allow_pickle=False) as z:
            x, y = z["x"], z["y"]
    except (OSError, ValueError, KeyError) as e:
        raise DataError(f"{path}: not an .npz with arrays 'x' (N x H x W x C uint8 pixels) "
                        f"and 'y' (labels): {e}") from None
    if x.dtype != np.uint8 or x.ndim != 4 or y.shape != (len(x),):
        raise DataError(f"{path}: x must be uint8 N x H x W x C and y N labels, not x "
                        f"{x.dtype} {x.shape} and y {y.shape}")
    return x, y.astype(np.int64), str(path)


def onnx_logits(model, x: np.ndarray, input_scale: float = 1 / 255, mean=0.0,
                std=1.0) -> np.ndarray:
    """Float logits of an ONNX model (onnxruntime, the ``onnx`` extra) on uint8 images
    ``x`` (N x H x W x C), its input ``(x * input_scale - mean) / std``, channels first."""
    import onnxruntime as ort  # the optional `onnx` extra, only where the ANN runs

    path = Path(model)
    if not path.is_file():
        raise DataError(f"{path}: no such ONNX file")
    try:
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - any unreadable model becomes one clear message
        raise DataError(f"{path}: cannot be read as an ONNX model ({e})") from None
    inp = sess.get_inputs()[0]
    C = x.shape[-1]
    m = np.broadcast_to(np.asarray(mean, np.float64).reshape(-1), (C,))
    sd = np.broadcast_to(np.asarray(std, np.float64).reshape(-1), (C,))
    xin = ((x * float(input_scale) - m) / sd).transpose(0, 3, 1, 2).astype(np.float32)
    step = 1 if inp.shape and inp.shape[0] == 1 else 500  # a model exported for batch 1
    return np.concatenate([sess.run(None, {inp.name: xin[s:s + step]})[0]
                           for s in range(0, len(xin), step)])


def _gates(g: _ir.Graph) -> list[str]:
    """The description's gates: its two-input ``amos`` layers."""
    return [n["name"] for n in g.amos_nodes() if len(n["inputs"]) == 2]


def exact_gate_figures(g: _ir.Graph, x: np.ndarray, y: np.ndarray, classes: np.ndarray,
                       batch_size: int = 100, progress: bool = False) -> dict:
    """Top-1 of the description with its gates' products exact (reference only).

    Runs ``snn.run(g, x, exact_gates=True)``: every two-input ``amos`` layer (the
    squeeze-and-excitation gate) computes the exact product of its requantised, saturated
    inputs on its output grid instead of its trained ``mult`` unit (:func:`python_ref.snn.
    exact_gate`); everything else, swish and sigmoid units included, is unchanged. This is no
    hardware mode: it shows what the multiplication unit costs.

    Returns
    -------
    dict
        ``snn_exact_mult_top1``: that top-1 on the labels ``y``; ``exact_mult_agreement``: the
        fraction of images whose class equals ``classes`` (the plain SNN's);
        ``exact_mult_gates``: the gate layers' names.

    Raises
    ------
    ValueError
        When the description has no two-input ``amos`` layer.
    """
    gates = _gates(g)
    if not gates:
        raise ValueError(f"description {g.name!r} has no gate (two-input amos layer); "
                         "--exact-gates has nothing to replace")
    res = snn.run(g, x, batch_size=batch_size, progress=progress, exact_gates=True)
    return {"snn_exact_mult_top1": float((res.classes == y).mean()),
            "exact_mult_agreement": float((res.classes == classes).mean()),
            "exact_mult_gates": gates}


def evaluate_description(description, data, limit: int | None = None, onnx=None,
                         batch_size: int = 100, progress: bool = True,
                         indices: str | None = None, per_image=None,
                         exact_gates: bool = False) -> dict:
    """The SNN figures of a user's description (and the ANN's, from its ONNX model).

    Parameters
    ----------
    description : path
        ``STEM``, ``STEM.json`` or ``STEM.npz`` (:func:`python_ref.ir.load`).
    data
        Test images and labels (:func:`load_test_data`).
    limit, indices, batch_size, progress, per_image
        As for :func:`evaluate`.
    exact_gates : bool
        Also run the description with exact gate products and add
        :func:`exact_gate_figures`'s ``snn_exact_mult_top1`` (reference only).
    onnx : path, optional
        The float model the description was converted from; its input normalisation is the one
        recorded in the description's ``meta["source"]`` (``input_scale``, ``mean``, ``std``;
        default ``1/255``, 0, 1). Without it the ANN figures are None.

    Returns
    -------
    dict
        As :func:`evaluate`'s, ``model`` the description's name.
    """
    if limit is not None and (isinstance(limit, bool) or limit < 1):
        raise ValueError(f"limit must be a positive integer, not {limit!r}")
    g = _ir.load(description)
    x, y, where = load_test_data(data)
    want = tuple(g.nodes[0]["shape"])
    if tuple(x.shape[1:]) != want:
        raise DataError(f"{where}: images of shape {x.shape[1:]}; description {g.name!r} "
                        f"takes {want} (H x W x C)")
    idx = _selection(len(y), limit, indices)
    x, y = x[idx], y[idx]
    t0 = time.time()
    src = g.meta.get("source", {})
    ann = (onnx_logits(onnx, x, src.get("input_scale", 1 / 255), src.get("mean", 0.0),
                       src.get("std", 1.0)) if onnx is not None else None)
    t1 = time.time()
    res = snn.run(g, x, batch_size=batch_size, progress=progress, synops=True)
    t2 = time.time()
    out = _summary(g.name, where, g, y, ann, res)
    out["dataset_note"] = f"test images from {where}"
    out["description"] = str(description)
    out["seconds"] = {"ann": round(t1 - t0, 1), "snn": round(t2 - t1, 1)}
    if exact_gates:
        out.update(exact_gate_figures(g, x, y, res.classes, batch_size, progress))
    if indices is not None:
        out["indices"] = indices
    if per_image is not None:
        out["per_image"] = str(write_per_image(per_image, per_image_arrays(idx, y, res, ann)))
    return out


def _summary(model_name: str, dataset: str, g: _ir.Graph, y, ann, res: snn.SimResult) -> dict:
    """The result dict's figures (everything but timings and the paper's row); without an ANN
    (``ann`` None) its figures are None."""
    ks = sorted(set(g.K_values().values()))
    ann_top1 = float((ann.argmax(1) == y).mean()) if ann is not None else None
    snn_top1 = float((res.classes == y).mean())
    spikes = res.spikes_per_image
    rows = per_layer(g, res)
    n = len(res.logits)
    synops = sum(res.synops.values(), np.zeros(n, np.int64))
    in_synops = sum(res.input_synops.values(), np.zeros(n, np.int64))
    return {
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
        "gap_points": round(100 * (ann_top1 - snn_top1), 4) if ann is not None else None,
        "agreement": float((ann.argmax(1) == res.classes).mean()) if ann is not None else None,
        "spikes_per_layer": {k: float(v.mean()) for k, v in res.spikes.items()},
        "synops_per_image": float(synops.mean()),
        "input_synops_per_image": float(in_synops.mean()),
        "macs_per_image": sum(r["macs"] for r in rows),
        "adds_per_image": sum(r["adds"] for r in rows),
        "per_layer": rows,
        "definitions": dict(DEFINITIONS),
        "source": {"checkpoint": g.meta.get("source", {}).get("checkpoint"),
                   "checkpoint_sha256": g.meta.get("source", {}).get("sha256"),
                   "calibration": g.meta.get("calibration"),
                   "unit_files": g.meta.get("unit_files"),
                   "finetune": {k: v for k, v in g.meta.get("finetune", {}).items()
                                if k != "history"} or None},
    }


def table_row(r: dict) -> str:
    """Header and row in the style of the paper's Table 2 (plus the paper's row if known)."""
    head = f"{'Model':<10} {'ANN':>8} {'SNN':>8} {'# neurons':>12} {'# spikes':>10} {'steps':>6}"
    ann = f"{100 * r['ann_top1']:>7.2f}%" if r["ann_top1"] is not None else f"{'-':>8}"
    row = (f"{r['model']:<10} {ann} {100 * r['snn_top1']:>7.2f}% "
           f"{r['neurons']:>12,} {r['spikes_per_image']:>10,.0f} {r['time_steps']:>6}")
    lines = [head, row]
    if "paper" in r:
        p = r["paper"]
        lines.append(f"{'(paper)':<10} {100 * p['ann_top1']:>7.2f}% {100 * p['snn_top1']:>7.2f}% "
                     f"{p['neurons']:>12,} {p['spikes_per_image']:>10,}")
    return "\n".join(lines)


def ops_table(r: dict) -> str:
    """The per-layer table of a result: spikes, SynOps, MACs and adds per image, and totals."""
    head = (f"{'layer':<16} {'op':<5} {'spikes':>10} {'SynOps':>13} {'MACs':>13} "
            f"{'adds':>9}")
    lines = [head]
    for row in r["per_layer"]:
        lines.append(f"{row['name']:<16} {row['op']:<5} {row['spikes']:>10,.0f} "
                     f"{row['synops']:>13,.0f} {row['macs']:>13,} {row['adds']:>9,}")
    lines.append(f"{'total':<16} {'':<5} {r['spikes_per_image']:>10,.0f} "
                 f"{r['synops_per_image']:>13,.0f} {r['macs_per_image']:>13,} "
                 f"{r['adds_per_image']:>9,}")
    ratio = r["synops_per_image"] / max(r["macs_per_image"], 1)
    lines.append(f"SynOps / MACs = {ratio:.3f}; the input "
                 f"bits add {r['input_synops_per_image']:,.0f} SynOps (not in the total)")
    return "\n".join(lines)


def main(argv=None):
    from .models import MODELS  # imports torch (the `train` extra), which the ANN needs anyway

    p = argparse.ArgumentParser(prog="python -m python_ref.evaluate",
                                description="ANN vs integer SNN top-1 on the test set.",
                                epilog=PER_IMAGE_HELP,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=sorted(MODELS),
                   help="a zoo network; without it, --description names your own")
    p.add_argument("--data", default=None,
                   help="data folder (default: $AMOS_DATA, ../shared); with your own "
                        "description: an .npz with x (N x H x W x C uint8) and y, a CIFAR-10 "
                        "folder, or 'digits'")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--limit", type=int, default=None,
                       help="N test images only (a fixed, seeded draw across all classes)")
    which.add_argument("--indices", default=None, metavar="SPEC",
                       help="these test images, in this order: comma-separated indices and "
                            "ranges START:END (END excluded), e.g. 9000:9200 or 0:100,150")
    p.add_argument("--description", default=None, metavar="STEM",
                   help="SNN description STEM.json + STEM.npz (default: the zoo's)")
    p.add_argument("--checkpoint", default=None, help="float checkpoint (default: the zoo's)")
    p.add_argument("--onnx", default=None, metavar="MODEL.onnx",
                   help="without --model: the float model the description came from (the "
                        "ANN, run by onnxruntime)")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--json", default=None, help="write the result here")
    p.add_argument("--per-image", default=None, metavar="FILE.npz",
                   help="write each evaluated image's index, label, SNN class, logits, ANN "
                        "class and spikes per layer here (arrays below)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--exact-gates", action="store_true",
                   help="with --description: also run the squeeze-and-excitation gates as exact "
                        "products (reference only, no hardware mode) and report "
                        "snn_exact_mult_top1, the cost of the trained multiplication unit")
    a = p.parse_args(argv)
    if a.exact_gates and a.model is not None:
        p.error("--exact-gates is for a description of your own (--description); with "
                "--model a zoo network with gates (effnet_cifar) reports it always")
    if a.model is None and a.description is None:
        p.error("give --model (a zoo network) or --description STEM (your own)")
    if a.model is not None and a.onnx is not None:
        p.error("--onnx is for your own description (without --model); a zoo network's ANN "
                "is its checkpoint (--checkpoint)")
    try:
        if a.model is None:
            r = evaluate_description(a.description, a.data, a.limit, a.onnx, a.batch_size,
                                     progress=not a.no_progress, indices=a.indices,
                                     per_image=a.per_image, exact_gates=a.exact_gates)
        else:
            r = evaluate(a.model, a.data, a.limit, a.description, a.checkpoint, a.batch_size,
                         progress=not a.no_progress, indices=a.indices, per_image=a.per_image)
    except (DataError, ConversionError, _ir.IRError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    print(table_row(r))
    if "snn_exact_mult_top1" in r:
        print(f"exact gate products (reference only): SNN {100 * r['snn_exact_mult_top1']:.2f}% "
              f"(agrees with the SNN on {100 * r['exact_mult_agreement']:.2f}% of images)")
    print()
    print(ops_table(r))
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(r, indent=2) + "\n")
        print(f"wrote {a.json}")
    if a.per_image:
        print(f"wrote {r['per_image']}")


if __name__ == "__main__":
    main()
