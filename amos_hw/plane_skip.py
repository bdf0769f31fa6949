"""What a data-dependent schedule could save: all-zero spike planes and zero padding, counted.

Issue 17 (item 3) and issue 18 name one lever for both images/s on the board and images/s in
simulation: a matrix-vector unit that skips the passes whose spikes are all zero. This module
measures how many there are, on a converted network's own integer activations and the folding
the generator chose, before any hardware is built for it.

The counting follows the engines' schedule (:class:`amos_hw.engines.dense.DenseEngine`, fed by
:class:`amos_hw.engines.window.SlidingWindow`): a convolution layer with ``pe`` outputs and
``simd`` inputs a word reads, for each of its ``c_out / pe`` output folds, every output pixel's
window in ``(ky, kx, channel)`` order, ``c_in / simd`` words per window position, positions in
the zero padding included (zero words). A word of ``in_bits``-bit activations is taken in
``in_bits / planes`` passes of ``planes`` spike planes each, most significant first. A pass is
*skippable* when every spike it gates is zero: bits ``[b0, b0 + planes)`` of all ``simd``
activations are 0 (a padding word's passes always are).

For each such layer and image: ``fixed`` = the passes the fixed schedule runs
(``folds x windows x positions x words x passes``), ``needed`` = the passes that are not
skippable; the ratio ``needed / fixed`` is the share of the layer's matrix-vector cycles a
skipping schedule at that ``planes`` would still spend. ``padding`` is the same ratio when only
the padding words are skipped (data-independent: a fixed schedule can do that).

What the ratios bound: a layer-pipelined network runs at its slowest layer's rate. With every
matrix layer refolded to skip at ``planes`` per pass and its cycles otherwise as planned, the
network's cycles per image are at least ``max over layers (cycles x ratio)``, the ratio taken
per image (``worst``: no buffering between layers) or as the mean over images (``mean``:
buffers deep enough to absorb the differences between images). The layers that are not matrix
layers (AMOS stages, pools, adds) keep their cycles. These are upper bounds on what skipping
gains, not costed designs: a layer refolded from ``in_bits`` to ``planes`` planes per pass keeps
its planned cycles only with ``in_bits / planes`` times the lanes (``pe * simd``), which costs
about the same gated adders (``lane_cost``) but that many times the weight words read per cycle
(each weight read serves ``planes`` spikes instead of ``in_bits``), and the data-dependent
schedule needs its own exact cycle model. ``python -m amos_hw.plane_skip --model
resnet8_k6 --board ecp5-85f`` writes ``docs/results/plane_skip_<model>.json`` and a table beside
it.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from amos_hw.engines.figures import out_size
from amos_hw.errors import FlowError
from amos_hw.flow import run_flow
from amos_hw.folding import divisors
from amos_hw.lib.checks import positive_int
from amos_hw.passes.common import FlowConfig
from amos_hw.plan import ConvLayer
from python_ref import snn
from python_ref.data import DataError, load_dataset

__all__ = ["layer_counts", "measure", "nonzero_passes", "summarise", "window_sum"]

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "docs" / "results"


def nonzero_passes(a: np.ndarray, simd: int, bits: int, planes: int) -> np.ndarray:
    """Passes of each word that gate at least one spike.

    ``a``: integer activations ``(N, H, W, C)`` (spike words of ``bits`` bits; two's complement
    when negative). Returns ``(N, H, W, C // simd)``: per word of ``simd`` channels, how many of
    its ``bits // planes`` passes have a one among bits ``[p * planes, (p + 1) * planes)`` of its
    ``simd`` activations.
    """
    n, h, w, c = a.shape
    if c % simd:
        raise ValueError(f"simd {simd} must divide the {c} channels")
    if bits % planes:
        raise ValueError(f"planes {planes} must divide the {bits} bits")
    mask = (1 << planes) - 1
    words = np.asarray(a, dtype=np.int64).reshape(n, h, w, c // simd, simd)
    return sum((((words >> (p * planes)) & mask) != 0).any(-1).astype(np.int64)
               for p in range(bits // planes))


def window_sum(m: np.ndarray, kernel: int, stride: int, padding: int) -> np.ndarray:
    """Per image, the sum of ``m`` (``(N, H, W, G)``) over every window position of every
    output pixel of a ``kernel x kernel`` convolution (zero outside the image): each input
    position counted as often as output pixels read it (:func:`python_ref.snn.conv_cover`)."""
    _, h, w, _ = m.shape
    cover = np.outer(snn.conv_cover(h, kernel, stride, padding),
                     snn.conv_cover(w, kernel, stride, padding))
    return np.einsum("nhwg,hw->n", np.asarray(m, dtype=np.int64), cover)


def layer_counts(a: np.ndarray, lay: ConvLayer, planes: int) -> dict:
    """``fixed``, ``padding`` (passes left when only padding words are skipped) and ``needed``
    (per image, ``(N,)``) of convolution layer ``lay`` on its input activations ``a``, at
    ``planes`` spike planes per pass."""
    n, h, w, c = a.shape
    passes = lay.in_bits // planes
    folds = lay.c_out // lay.pe
    ones = np.ones((1, h, w, c // lay.simd), dtype=np.int64)
    inside = int(window_sum(ones, lay.kernel, lay.stride, lay.padding)[0])
    windows = (out_size(h, lay.kernel, lay.stride, lay.padding)
               * out_size(w, lay.kernel, lay.stride, lay.padding))
    fixed = folds * windows * lay.kernel ** 2 * (c // lay.simd) * passes
    needed = folds * window_sum(nonzero_passes(a, lay.simd, lay.in_bits, planes),
                                lay.kernel, lay.stride, lay.padding)
    return {"fixed": fixed, "padding": folds * inside * passes, "needed": needed}


def _inputs(x: np.ndarray, traces: dict, lay: ConvLayer) -> np.ndarray:
    src = lay.inputs[0]
    a = x if src == "input" else traces.get(src)
    if a is None:
        raise FlowError(f"layer {lay.name!r}: its input {src!r} is not a traced layer")
    a = np.asarray(a)
    want = (lay.height, lay.width, lay.c_in)
    if a.shape[1:] != want:
        raise FlowError(f"layer {lay.name!r}: input {src!r} has shape {a.shape[1:]}, the plan "
                        f"says {want}")
    return a


def measure(model: str, *, board: str | None = None, parallelism=None, dataset: str = "cifar10",
            split: str = "train", images: int = 1000, data=None, batch: int = 100,
            progress: bool = True) -> dict:
    """Count skippable passes of every convolution layer of ``model`` at the folding the
    generator chooses (``board`` / ``parallelism`` as ``python -m amos_hw.generate``) over the
    first ``images`` images of ``split``; returns the result document (module docstring)."""
    positive_int("images", images)
    ctx = run_flow(FlowConfig(model=model, board=board, parallelism=parallelism,
                              architecture="pipelined", stop_after="parallelism", quiet=True))
    plan = ctx.plan
    convs = [lay for lay in plan.layers if isinstance(lay, ConvLayer)]
    if not convs:
        raise FlowError(f"{model}: no convolution layer to count")
    try:
        x, _ = load_dataset(dataset, split, data)
    except DataError as e:
        raise FlowError(str(e)) from None
    x = x[:images]
    want = {lay.inputs[0] for lay in convs} - {"input"}
    sums: dict = {}
    steps = range(0, len(x), batch)
    for s in tqdm(steps, desc="plane_skip", unit="batch", disable=not progress):
        xb = x[s:s + batch]
        traces = snn.run(ctx.graph, xb, trace=sorted(want), batch_size=batch).traces
        for lay in convs:
            a = _inputs(xb, traces, lay)
            for planes in divisors(lay.in_bits):
                c = layer_counts(a, lay, planes)
                acc = sums.setdefault((lay.name, planes), {"fixed": c["fixed"],
                                                           "padding": c["padding"],
                                                           "needed": []})
                acc["needed"].append(c["needed"])
    layers = []
    for lay in plan.layers:
        row = {"layer": lay.name, "kind": lay.kind, "cycles": lay.cycles}
        if isinstance(lay, ConvLayer):
            row.update(pe=lay.pe, simd=lay.simd, in_bits=lay.in_bits,
                       planned_planes=lay.planes or lay.in_bits, options=[])
            for planes in divisors(lay.in_bits):
                acc = sums[lay.name, planes]
                ratio = np.concatenate(acc["needed"]) / acc["fixed"]
                row["options"].append({
                    "planes": planes, "fixed_passes": acc["fixed"],
                    "padding_ratio": round(acc["padding"] / acc["fixed"], 4),
                    "mean_ratio": round(float(ratio.mean()), 4),
                    "worst_ratio": round(float(ratio.max()), 4)})
        layers.append(row)
    return {"command": "", "model": str(model), "network": ctx.model_name,
            "model_sha256": ctx.model_hash,
            "board": board, "parallelism": parallelism if parallelism is None
            or isinstance(parallelism, dict) else str(parallelism), "dataset": dataset,
            "split": split, "images": len(x),
            "cycles_per_image": max(lay.cycles for lay in plan.layers), "layers": layers,
            "pipeline": summarise(layers)}


def summarise(layers: list) -> list:
    """Per ``planes`` option (1 and the bit-parallel case, every layer at that option where it
    divides the layer's bits, else bit-parallel): the network's cycles per image bound with
    padding skipped, with the mean and with the worst ratios (module docstring), and the
    layer that sets each."""
    bits = {o["planes"] for r in layers for o in r.get("options", [])}
    out = []
    for planes in sorted(bits):
        def bound(key, planes=planes):
            best, who = 0.0, None
            for r in layers:
                ratio = 1.0
                if r.get("options"):
                    opts = {o["planes"]: o for o in r["options"]}
                    ratio = opts.get(planes, opts[r["in_bits"]])[key]
                if r["cycles"] * ratio > best:
                    best, who = r["cycles"] * ratio, r["layer"]
            return round(best, 1), who
        row = {"planes": planes}
        for key in ("padding_ratio", "mean_ratio", "worst_ratio"):
            row[key.replace("ratio", "cycles")], row[key.replace("ratio", "layer")] = bound(key)
        out.append(row)
    return out


def table(doc: dict) -> str:
    """The result as Markdown: the pipeline bounds, then every convolution layer's ratios."""
    folding = (f"the folding of `{doc['parallelism']}`" if doc.get("parallelism") is not None
               else f"the folding chosen for `{doc['board']}`")
    lines = [f"# Skippable spike passes: `{doc['model']}`, {folding}", "",
             f"Generated by `{doc['command']}` from `{doc['dataset']}` {doc['split']} images "
             f"(first {doc['images']}); the fixed schedule runs {doc['cycles_per_image']:,} "
             "cycles per image. Definitions: `amos_hw/plane_skip.py`.", "",
             "| planes per pass | cycles/image, padding skipped (layer) | mean bound (layer) "
             "| speed-up | worst image (layer) | speed-up |",
             "| --- | --- | --- | --- | --- | --- |"]
    fixed = doc["cycles_per_image"]
    for r in doc["pipeline"]:
        lines.append(f"| {r['planes']} | {r['padding_cycles']:,.0f} ({r['padding_layer']}) | "
                     f"{r['mean_cycles']:,.0f} ({r['mean_layer']}) | "
                     f"{fixed / r['mean_cycles']:.2f}x | "
                     f"{r['worst_cycles']:,.0f} ({r['worst_layer']}) | "
                     f"{fixed / r['worst_cycles']:.2f}x |")
    lines += ["", "| layer | pe | simd | bits | planes | padding ratio | mean ratio | "
              "worst ratio |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in doc["layers"]:
        for o in r.get("options", []):
            lines.append(f"| {r['layer']} | {r['pe']} | {r['simd']} | {r['in_bits']} | "
                         f"{o['planes']} | {o['padding_ratio']:.3f} | {o['mean_ratio']:.3f} | "
                         f"{o['worst_ratio']:.3f} |")
    return "\n".join(lines) + "\n"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m amos_hw.plane_skip", description=__doc__.split(
        "\n")[0])
    p.add_argument("--model", required=True, help="zoo name or description path")
    p.add_argument("--board", help="fold for this device, as python -m amos_hw.generate")
    p.add_argument("--parallelism", help="per-layer folding (JSON file or text)")
    p.add_argument("--dataset", default="cifar10", help="cifar10 (default) or digits")
    p.add_argument("--split", default="train", choices=("train", "test"),
                   help="images to count on (default train: a design input, not a test result)")
    p.add_argument("--images", type=int, default=1000, help="first N images (default 1000)")
    p.add_argument("--data", help="data folder (default $AMOS_DATA, then the shared copy)")
    p.add_argument("--out", help="result JSON (default docs/results/plane_skip_<model>.json)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv=None) -> int:
    a = _parser().parse_args(argv)
    t0 = time.time()
    try:
        doc = measure(a.model, board=a.board, parallelism=a.parallelism, dataset=a.dataset,
                      split=a.split, images=a.images, data=a.data, progress=not a.quiet)
    except (FlowError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    doc["command"] = "python -m amos_hw.plane_skip " + " ".join(
        sys.argv[1:] if argv is None else argv)
    doc["seconds"] = round(time.time() - t0, 1)
    out = Path(a.out) if a.out else RESULTS / f"plane_skip_{Path(a.model).stem}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1) + "\n")
    out.with_suffix(".md").write_text(table(doc))
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
