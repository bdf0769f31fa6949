"""ResNet8's accuracy-for-speed trade-off over the activation width K (issue 17, point 4).

::

    python -m boards.pareto                      # K = 4 5 6 8 10 and the zoo model, ecp5-85f
    python -m boards.pareto --K 6 10 --limit 500 # a quick look (not for docs/results)

For each K: the shipped ResNet8 checkpoint converted plainly at that K
(:func:`python_ref.convert.convert`, no fine-tuning), evaluated on the CIFAR-10 test set
(:func:`python_ref.evaluate.evaluate`: ANN and integer SNN top-1, spikes per image), then the
generator's estimate for the board (``python -m amos_hw.generate --model STEM.json --board B
--stop-after estimate``: the folding the generator picks to fill the device, cycles per image,
LUT4, FF, block RAM; nothing is built). The zoo's own description (K = 10, fine-tuned with the
units in the loop) is a row too, and so is each zoo description with a per-layer K
(:data:`PER_LAYER`: ``resnet8_kmix``, the K pass of ``python -m python_ref.spikecal``, its K
per layer in the row's ``K``). Placed figures (Fmax over seeds, LUT4, FF, DP16KD, DSP, images/s
on the board clock) come from the recorded bitstream builds of the row's description
(``python -m boards.bench``, matched by ``model_sha256``; :func:`placed`) and stay ``null`` in
a row until one is recorded; ``python -m boards.pareto --placed`` refills them alone.

Writes ``docs/results/pareto_resnet8.json`` (one row per point) and
``docs/figures/pareto_resnet8.png`` (test top-1 against the estimated images/s, and against the
images/s on the board clock where a build is recorded).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from amos_hw import generate
from amos_hw.devices import device_name
from boards.results import bench_builds, sweep_builds
from python_ref import convert as _convert
from python_ref import evaluate as _evaluate
from python_ref.checkpoint import ZOO

__all__ = ["FIGURE", "RESULT", "estimate", "main", "plot", "row"]

REPO = Path(__file__).resolve().parent.parent
RESULT = REPO / "docs" / "results" / "pareto_resnet8.json"
FIGURE = REPO / "docs" / "figures" / "pareto_resnet8.png"
MODEL = "resnet8"
DEFAULT_K = (4, 5, 6, 8, 10)
#: zoo descriptions of ResNet8 with a K per layer, each a row
PER_LAYER = ("resnet8_kmix",)
# the placed figures a bitstream build adds to a row (null until one is recorded)
PLACED = ("fmax_mhz", "fmax_mhz_min", "lut4", "ff", "bram", "dsp", "images_per_s_board_clock",
          "placed_builds")
BOARDS = REPO / "docs" / "results" / "boards"


def _plain_build(rep: dict) -> bool:
    """A build of the board's own folding, ECP5 carry, router1 and no timing target: one that
    differs from the default build by its PLL clock, nextpnr seed and small reset nets folded
    into LUTs (``--fold-resets``, an exact netlist pass, :mod:`boards.lsrfold`) at most."""
    words = [w for w in (rep.get("variant") or "").split(", ") if w]
    return (str(rep.get("parallelism", "")).startswith("largest that fits")
            and rep.get("router") == "router1" and rep.get("timing_mhz") is None
            and rep.get("carry") in (None, "ecp5")
            and all(w.startswith(("PLL ", "nextpnr seed ", "resets of fewer than "))
                    for w in words))


def placed(row: dict, boards: Path = BOARDS) -> dict:
    """The placed figures of a row from the recorded bitstream builds of the same description
    (``model_sha256``) on a board of the row's device, plain builds only (:func:`_plain_build`):
    the bench's (``boards/*.json``) and the sweeps' (``boards/sweeps/<sweep>/*.json``, named
    with their folder). LUT4, FF, DP16KD, DSP and images/s on the board clock are those of the
    fastest build that meets its clock; Fmax is the median and the minimum over the builds
    that target the same clock (``fmax_constraint_mhz``) from the same generator commit
    (``git``) with the same reset fold (``fold_resets``): the nextpnr seeds of one netlist,
    listed in ``placed_builds`` (between builds that meet their clock at the same images/s, the
    netlist with more seeds, then the one with the higher median). All ``None`` when there is
    no such build; without a build that meets its clock, the fastest build of the
    highest target chooses the commit and gives the sizes, and images/s on the board clock
    stays ``None``."""
    reps = []
    builds = [(path.relative_to(boards).as_posix(), rep)
              for path, rep in [*bench_builds(boards), *sweep_builds(boards)]]
    for name, rep in builds:
        if (rep.get("model_sha256") == row.get("model_sha256") and _plain_build(rep)
                and device_name(rep["board"]) == device_name(row["board"])):
            reps.append((name, rep))
    out = dict.fromkeys(PLACED)
    if not reps:
        return out

    def same_netlist(a, b):  # one generator commit, clock target and reset fold: its seeds
        return (a["fmax_constraint_mhz"] == b["fmax_constraint_mhz"]
                and a.get("git") == b.get("git") and a.get("fold_resets") == b.get("fold_resets"))

    def seeds(rep):  # how many seeds its netlist has, and their median Fmax
        fmax = [r["fmax_mhz"] for _, r in reps if same_netlist(r, rep)]
        return len(fmax), statistics.median(fmax)

    meets = [rep for _, rep in reps if rep.get("meets_board_clock")]
    # equal images/s (one clock, one cycle count): the netlist with more seeds measured, then
    # the one with the higher median Fmax
    best = max(meets, key=lambda rep: (rep["images_per_s_board_clock"], *seeds(rep))) \
        if meets else None
    if best is None:
        top = max(rep["fmax_constraint_mhz"] for _, rep in reps)
        best = max((rep for _, rep in reps if rep["fmax_constraint_mhz"] == top),
                   key=lambda rep: rep["fmax_mhz"])
    group = [(name, rep) for name, rep in reps if same_netlist(rep, best)]
    fmax = sorted(rep["fmax_mhz"] for _, rep in group)
    out.update(fmax_mhz=round(statistics.median(fmax), 2), fmax_mhz_min=fmax[0],
               placed_builds=[name for name, _ in group])
    out.update(lut4=best["lut4"], ff=best["ff"], bram=best["bram"]["blocks"], dsp=best["dsp"])
    if best.get("meets_board_clock"):
        out["images_per_s_board_clock"] = best["images_per_s_board_clock"]
    return out


def estimate(stem: Path, board: str) -> dict:
    """The generator's estimate step for the description ``stem`` on ``board``."""
    with tempfile.TemporaryDirectory() as out:
        rc = generate.main(["--model", f"{stem}.json", "--board", board, "--stop-after",
                            "estimate", "--out", out, "--quiet"])
        if rc:
            raise RuntimeError(f"python -m amos_hw.generate --model {stem}.json --board {board} "
                               f"--stop-after estimate failed with status {rc}")
        step = json.loads(next(Path(out, "steps").glob("*_estimate.json")).read_text())
    return {"model_sha256": step["model_sha256"],
            "est_architecture": step.get("architecture") or "pipelined",
            "est_cycles_per_image": step["cycles_per_image"],
            "est_clock_mhz": step["clock_mhz"],
            "est_images_per_s": step["images_per_s"], "est_lut4": step["est_lut4"],
            "est_ff": step["est_ff"], "est_bram": step["est_bram_blocks"],
            "est_dsp": step["est_dsp"]}


def row(name: str, stem: Path, conversion: str, board: str, data=None, limit=None,
        progress: bool = True) -> dict:
    """One point: the description ``stem`` evaluated on the test set and estimated on ``board``."""
    r = _evaluate.evaluate(MODEL, data=data, limit=limit, description=stem, progress=progress)
    return {"model": name, "K": r["K"], "conversion": conversion, "n_images": r["n_images"],
            "ann_top1": r["ann_top1"], "snn_top1": r["snn_top1"],
            "spikes_per_image": r["spikes_per_image"], "neurons": r["neurons"],
            "board": board, **(est := estimate(stem, board)), **placed({**est, "board": board})}


def _label(r: dict) -> str:
    """A row's label: its K (a per-layer K with its range)."""
    if isinstance(r["K"], dict):
        return f"K={min(r['K'].values())}-{max(r['K'].values())} per layer"
    return f"K={r['K']}" + ("" if r["conversion"] == "plain" else " (zoo, fine-tuned)")


def _style(r: dict) -> tuple:
    """Marker, size and colour: plain conversions, per-layer K, the zoo's fine-tuned model."""
    if isinstance(r["K"], dict):
        return "D", 50, "C1"
    return ("o", 40, "C0") if r["conversion"] == "plain" else ("*", 120, "C3")


def plot(rows: list, path: Path = FIGURE) -> Path:
    """Two panels: test top-1 of each row against its estimated images/s (and the placed
    build's images/s on its board clock), and against the estimated LUT4 (and the placed
    build's; the rows of one folding share an images/s, they differ there), each point
    labelled with its K."""
    fig = Figure(figsize=(11.5, 4.4))
    FigureCanvasAgg(fig)
    ax, ax_lut = fig.subplots(1, 2)
    # each panel: its axes, the estimate's key and the placed build's (images/s on the board
    # clock, LUT4)
    panels = ((ax, "est_images_per_s", "images_per_s_board_clock"), (ax_lut, "est_lut4", "lut4"))
    for k, r in enumerate(rows):
        marker, size, color = _style(r)
        y = 100 * r["snn_top1"]
        for a, est, got in panels:
            a.scatter(r[est], y, marker=marker, s=size, color=color)
            # labels of points on one vertical alternate sides
            a.annotate(_label(r), (r[est], y), textcoords="offset points",
                       xytext=(6, -4) if k % 2 == 0 else (-6, -4),
                       ha="left" if k % 2 == 0 else "right", fontsize=8)
            if r.get(got):  # the placed build, joined to the estimate
                a.scatter(r[got], y, marker="s", s=40, facecolors="none", edgecolors="C2")
                a.plot([r[est], r[got]], [y] * 2, color="C2", lw=0.8, ls=":")
    clock = rows[0]["est_clock_mhz"] if rows else 0
    board = rows[0]["board"] if rows else ""
    ax.set_xlabel(f"images/s: generator estimate at {clock:g} MHz ({board});\n"
                  "squares: placed build on its board clock")
    ax_lut.set_xlabel(f"LUT4: generator estimate ({board}, at its folding);\n"
                      "squares: placed build")
    ylabel = (f"SNN top-1 (%), {rows[0]['n_images']:,} CIFAR-10 test images" if rows
              else "SNN top-1 (%)")
    ax.set_ylabel(ylabel)
    ax.set_title("ResNet8: accuracy against throughput over K")
    ax_lut.set_title("... and against logic")
    for a in (ax, ax_lut):
        a.grid(alpha=0.3)
        a.margins(x=0.25)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m boards.pareto", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--K", type=int, nargs="+", default=list(DEFAULT_K))
    p.add_argument("--board", default="ecp5-85f")
    p.add_argument("--data", default=None, help="data folder (default: $AMOS_DATA, ../shared)")
    p.add_argument("--limit", type=int, default=None,
                   help="N test images (a seeded draw); the results files need the full set")
    p.add_argument("--work", default="build/pareto", help="folder for the converted variants")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--placed", action="store_true",
                   help="only refill the placed figures of docs/results/pareto_resnet8.json from "
                        "the recorded builds (docs/results/boards/), and redraw the figure")
    return p


def refill(path: Path = RESULT, boards: Path = BOARDS) -> list:
    """Refill the placed figures of every row of the results file ``path``; the rows."""
    doc = json.loads(path.read_text())
    for r in doc["rows"]:
        if "model_sha256" not in r:
            raise SystemExit(f"{path}: row {r['model']!r} has no model_sha256 (written before "
                             f"it was recorded): rerun python -m boards.pareto")
        r.update(placed(r, boards))
    path.write_text(json.dumps(doc, indent=1) + "\n")
    return doc["rows"]


def main(argv=None) -> int:
    """The command line; the exit status."""
    a = _parser().parse_args(argv)
    if a.placed:
        rows = refill()
        print(f"wrote {RESULT.relative_to(REPO)} and {plot(rows).relative_to(REPO)}: "
              f"{sum(r['fmax_mhz'] is not None for r in rows)} rows with builds")
        return 0
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    t0, rows, progress = time.time(), [], not a.no_progress
    for k in a.K:
        stem = work / f"{MODEL}_k{k}"
        _convert.convert(MODEL, data=a.data, out=stem, K=k, progress=progress)
        rows.append(row(f"{MODEL}_k{k}", stem, "plain", a.board, a.data, a.limit, progress))
        print(f"K={k}: SNN {100 * rows[-1]['snn_top1']:.2f} %, "
              f"{rows[-1]['est_images_per_s']:,.0f} images/s estimated", file=sys.stderr)
    for name in PER_LAYER:
        rows.append(row(name, ZOO / name, "per-layer K (zoo)", a.board, a.data, a.limit,
                        progress))
    rows.append(row(MODEL, ZOO / MODEL, "fine-tuned (zoo)", a.board, a.data, a.limit, progress))
    doc = {"command": "python -m boards.pareto " + " ".join(sys.argv[1:] if argv is None
                                                              else argv),
           "data": "CIFAR-10 test set (JPEG copy)", "seconds": round(time.time() - t0, 1),
           "placed": "null until a bitstream build of the row is recorded (python -m "
                     "boards.bench)", "rows": rows}
    if a.limit is None:
        RESULT.write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {RESULT.relative_to(REPO)} and {plot(rows).relative_to(REPO)}")
    else:
        out = work / "pareto_resnet8.json"
        out.write_text(json.dumps(doc, indent=1) + "\n")
        print(f"--limit: wrote {out} and {plot(rows, work / 'pareto_resnet8.png')} "
              "(not docs/results)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
