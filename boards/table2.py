"""The paper's Table 2 side by side: ``docs/results/table2.md``, generated from committed JSON.

::

    python -m boards.estimates   rerun the generator's ECP5-85F estimate of each model into
                                 docs/results/table2_estimates.json
    python -m boards.results     rewrite docs/results/README.md and table2.md

Each row reads ``docs/results/<model>.json`` (``python -m python_ref.evaluate --model MODEL
--json ...``: accuracy on the full test set, neurons, spikes, SynOps, time steps, the paper's
figures) and the model's entry of ``table2_estimates.json`` (the generator's ``estimate`` step
for the ECP5-85F: the architecture it chose and why, cycles, images/s, LUT4, block RAM). A model
without a result JSON gets a row saying why it is missing (:data:`MISSING`). The standard library
only, like :mod:`boards.results`, which writes this page too.
"""
from __future__ import annotations

import json
from pathlib import Path

__all__ = ["BOARD", "ESTIMATES", "MISSING", "MODELS", "PAGE", "VARIANTS", "render_table2",
           "write_page"]

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "docs" / "results"
PAGE = RESULTS_DIR / "table2.md"
ESTIMATES = RESULTS_DIR / "table2_estimates.json"
BOARD = "ecp5-85f"
MODELS = ("resnet8", "resnet8_spikecal", "resnet14", "resnet20")
# rows that are variants of a zoo model: result name -> (label, description stem for the
# generator, relative to the repository)
VARIANTS = {"resnet8_spikecal": (
    "resnet8, spike-aware clipping (plain conversion, python -m python_ref.spikecal)",
    "python_ref/zoo/resnet8_spikecal")}
# the paper's rows that this project has no result for, and why; the figures are the paper's
# Table 2 (Stöckl & Maass, ResNet50 row: ANN 92.99 %, SNN 92.42 %, 4,751,369 neurons, 647,245
# spikes)
MISSING = {
    "resnet50": ("ResNet50", {"ann_top1": 0.9299, "snn_top1": 0.9242, "neurons": 4_751_369,
                              "spikes_per_image": 647_245},
                 "not trained: no session had the GPU time (at most 15 minutes lent, none in "
                 "most); on 2 CPU cores, by its about 1.3 GFLOP per forward pass, one "
                 "training epoch would take on the order of an hour (estimated, not run)"),
}
_NONE = "-"


def _pct(v) -> str:
    return _NONE if v is None else f"{100 * v:.2f} %"


def _int(v) -> str:
    return _NONE if v is None else f"{v:,.0f}"


def _mega(v) -> str:
    return _NONE if v is None else f"{v / 1e6:.2f} M"


def _device(e: dict | None) -> str:
    if not e:
        return _NONE
    arch = e.get("architecture") or "layer-pipelined"
    fit = (f"{arch}: {e['cycles_per_image']:,} cycles, "
           f"{e['images_per_s']:,.1f} images/s at {e['clock_mhz']:g} MHz, "
           f"{e['est_lut4']:,} LUT4, {e['est_bram_blocks']} DP16KD, {e['est_dsp']} DSP")
    if arch == "shared":
        fit += f", weights in {e['weights']} (pipelined form: {e['architecture_why']})"
    return fit


def _row(name: str, r: dict, e: dict | None) -> list[str]:
    p = r.get("paper") or {}
    return [name, f"{_pct(r['ann_top1'])} / {_pct(p.get('ann_top1'))}",
            f"{_pct(r['snn_top1'])} / {_pct(p.get('snn_top1'))}",
            f"{_int(r['neurons'])} / {_int(p.get('neurons'))}",
            f"{_int(r['spikes_per_image'])} / {_int(p.get('spikes_per_image'))}",
            _mega(r.get("synops_per_image")), _mega(r.get("macs_per_image")),
            _int(r["time_steps"]), _int(r["n_images"]), _device(e)]


def render_table2(results_dir: Path | None = None) -> str:
    """The page's markdown from the JSON files in ``results_dir`` (default ``docs/results``)."""
    d = Path(results_dir) if results_dir is not None else RESULTS_DIR
    est_path = d / ESTIMATES.name
    est = json.loads(est_path.read_text())["models"] if est_path.is_file() else {}
    rows, notes = [], []
    for m in MODELS:
        f = d / f"{m}.json"
        if f.is_file():
            r = json.loads(f.read_text())
            label = VARIANTS[m][0] if m in VARIANTS else r["model"]
            rows.append(_row(label, r, est.get(m)))
            if "synops_per_image" not in r:
                notes.append(f"`{m}.json` predates the SynOps count: rerun its evaluate "
                             "command to fill the SynOps and MACs columns.")
    for name, paper, why in MISSING.values():
        rows.append([name, f"{_NONE} / {_pct(paper['ann_top1'])}",
                     f"{_NONE} / {_pct(paper['snn_top1'])}", f"{_NONE} / {_int(paper['neurons'])}",
                     f"{_NONE} / {_int(paper['spikes_per_image'])}", _NONE, _NONE, _NONE, _NONE,
                     why])
    head = ["model", "ANN top-1 (ours / paper)", "SNN top-1 (ours / paper)",
            "AMOS neurons (ours / paper)", "spikes / image (ours / paper)", "SynOps / image",
            "ANN MACs / image", "time steps", "test images", f"{BOARD} (generator estimate)"]
    lines = [
        "# The paper's Table 2, side by side",
        "",
        "<!-- generated by `python -m boards.results` from the JSON files in this folder: "
        "do not edit -->",
        "",
        "Data: CIFAR-10 test set of the project's JPEG copy (`../shared/datasets/cifar10/`, "
        "decoded JPEGs, not the original PNG-exact batches), so accuracies are not strictly "
        "comparable with the paper's; K = 10 everywhere. Ours: `python -m python_ref.evaluate "
        "--model MODEL --json docs/results/MODEL.json`; the paper's figures (Stöckl & Maass, "
        "Table 2) are stored in each JSON's `paper` field. Device column: the generator's "
        "estimate, nothing built (`python -m boards.estimates` writes "
        "`table2_estimates.json`).",
        "",
        "| " + " | ".join(head) + " |",
        "| " + " | ".join(["---"] + ["---:"] * 8 + ["---"]) + " |",
        *("| " + " | ".join(r) + " |" for r in rows),
    ]
    if notes:
        lines += ["", *(f"- {n}" for n in notes)]
    return "\n".join(lines) + "\n"


def write_page(results_dir: Path | None = None, page: Path | None = None) -> Path:
    """Write :func:`render_table2` to ``page`` (default ``docs/results/table2.md``)."""
    page = Path(page) if page is not None else PAGE
    page.write_text(render_table2(results_dir))
    return page

