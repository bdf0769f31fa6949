"""Measured speed and size per board and model: build, read the reports, write the results.

::

    python -m boards.bench --board ulx3s-85f --model resnet8      (builds first)
    python -m boards.bench --board icebreaker --model digits --no-build
    python -m boards.bench --table-only
    python -m boards.bench --sweep SWEEP.json [--scheduler ADDRESS]

Writes ``docs/results/boards/<board>_<model>.json`` (the build report, without machine-specific
paths) and regenerates the results page ``docs/results/README.md`` (``boards.results``), whose
boards table reads every JSON file in ``docs/results/boards/``.

``--sweep`` builds every combination of the boards, models, foldings and nextpnr seeds a sweep
file lists, one task each on a local Dask cluster of this machine's cores (or the running one
at ``--scheduler``), and writes ``docs/results/boards/sweeps/<sweep>.json`` with the median and
minimum Fmax over the seeds (:mod:`boards.sweep`; needs the ``cluster`` extra).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from amos_hw.backend.cluster import ClusterError, add_cluster_arguments
from amos_hw.engines.carry import CARRY_FORMS, default_form
from boards.board import BoardError
from boards.build import ROUTERS, SEED, build, build_dir
from boards.catalog import get_board
from boards.results import BOARD_RESULTS, REPO, write_page
from boards.sweep import run_sweep

__all__ = ["RESULTS", "load_results", "main", "save_result"]

#: Where the committed build results go.
RESULTS = BOARD_RESULTS


def _file_tag(name: str) -> str:
    """``name`` as a file-name part: letters and digits kept, everything else ``-``."""
    return "".join(c if c.isalnum() else "-" for c in name)


def _variant_parts(report: dict) -> list[tuple[str, str]]:
    """What sets a build apart from the default one: (file-name part, words for "variant")."""
    parts = []
    pll = report.get("pll")
    if pll:
        parts.append(("pll" + f"{pll['fout']:g}".replace(".", "p") + "mhz",
                      f"PLL {pll['fout']:g} MHz"))
    router = report.get("router", "router1")
    if router != "router1":
        parts.append((router, router))
    if report.get("seed", SEED) != SEED:
        parts.append((f"seed{report['seed']}", f"nextpnr seed {report['seed']}"))
    if report.get("timing_mhz") is not None:
        t = report["timing_mhz"]
        parts.append(("timing" + f"{t:g}".replace(".", "p"), f"routed for {t:g} MHz"))
    carry = report.get("carry")
    if carry is not None and carry != default_form(report.get("family")):
        parts.append((f"{carry}-carry", f"{carry} carry"))
    if report.get("fold_resets") is not None:
        n = report["fold_resets"]
        parts.append((f"resets{n}", f"resets of fewer than {n} flip-flops folded"))
    return parts


def save_result(report: dict, variant: str | None = None, results: Path | None = None) -> Path:
    """Write a build report as the committed result of its board and model.

    Parameters
    ----------
    report : dict
        The build report (``build/<board>/<model>/build_report.json``).
    variant : str, optional
        Name of a build with a non-default folding, saved beside the default one.
    results : Path, optional
        The folder (default :data:`RESULTS`; a sweep saves its builds into its own).

    Returns
    -------
    Path
        ``<results>/<board>_<model>[_<variant parts>].json``; the parts name the
        variant, the PLL, the router, the seed, the timing target and the carry form where
        they differ from the default build, and the JSON's ``variant`` says them in words.
    """
    results = Path(results) if results is not None else RESULTS
    results.mkdir(parents=True, exist_ok=True)
    parts = _variant_parts(report)
    if variant:
        parts.insert(0, (_file_tag(variant), variant))
    tag = "".join(f"_{part}" for part, _ in parts)
    out = results / f"{report['board']}_{report['model']}{tag}.json"
    keep = {k: v for k, v in report.items() if k not in ("elaborate_wall_s",)}
    names = [words for _, words in parts]
    if names:
        keep["variant"] = ", ".join(names)
    out.write_text(json.dumps(keep, indent=2, sort_keys=True) + "\n")
    return out


def load_results() -> list[dict]:
    """Every committed build result in ``docs/results/boards/``, in file-name order."""
    return [json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))]


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m boards.bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--board")
    ap.add_argument("--model")
    ap.add_argument("--no-build", action="store_true",
                    help="read build/<board>/<model>/build_report.json instead of building")
    ap.add_argument("--table-only", action="store_true",
                    help="only regenerate docs/results/README.md from the committed JSON files")
    ap.add_argument("--clock-mhz", type=float, default=None,
                    help="build with the board PLL (ECP5 or iCE40) at this clock (results saved as "
                         "<board>_<model>_pll<F>.json)")
    ap.add_argument("--parallelism", default=None, metavar="JSON",
                    help="folding for the generator instead of the board's choice (needs "
                         "--variant)")
    ap.add_argument("--lut-fill", type=float, default=None,
                    help="share of the device's LUT4s the estimate may use (default 0.8)")
    ap.add_argument("--carry", choices=CARRY_FORMS, default=None,
                    help="matrix-vector adders (default: ecp5 on an ECP5 board); a build with "
                         "the other form is saved with a _<form>-carry suffix")
    ap.add_argument("--router", choices=ROUTERS, default=None,
                    help="nextpnr's router (default: router1); a router2 build is saved with "
                         "a _router2 suffix")
    ap.add_argument("--timing-mhz", type=float, default=None, metavar="F",
                    help="ECP5: ask nextpnr to meet F MHz instead of the clock itself (the "
                         "report's Fmax decides whether the bitstream meets its clock); saved "
                         "with a _timing<F> suffix")
    ap.add_argument("--seed", type=int, default=None,
                    help="nextpnr's placement seed (default 1); a build with another seed is "
                         "saved with a _seed<N> suffix")
    ap.add_argument("--fold-resets", type=int, default=None, metavar="N",
                    help="ECP5: fold the synchronous resets of reset nets read by fewer than N "
                         "flip-flops into LUTs (boards.lsrfold; 8 fills a logic tile)")
    ap.add_argument("--variant", default=None,
                    help="name of a non-default build, saved as <board>_<model>_<variant>.json")
    sweep = ap.add_argument_group("sweeps (boards.sweep; the cluster extra)")
    sweep.add_argument("--sweep", default=None, metavar="SWEEP.json",
                       help="build every combination the sweep file lists, as tasks on a Dask "
                            "cluster; results in docs/results/boards/sweeps/<sweep>.json")
    add_cluster_arguments(sweep, "build")
    return ap


def _build_folder(args, board) -> Path:
    """A variant or PLL build gets its own folder: two builds can run side by side."""
    tag = _file_tag(args.variant or "")
    if args.clock_mhz is not None:
        tag += f"-pll{args.clock_mhz:g}"
    if args.router == "router2":
        tag += "-router2"
    if args.timing_mhz is not None:
        tag += f"-timing{args.timing_mhz:g}"
    if args.seed is not None and args.seed != SEED:
        tag += f"-seed{args.seed}"
    if args.carry is not None and args.carry != default_form(board.family):
        tag += f"-{args.carry}-carry"
    if args.fold_resets is not None:
        tag += f"-resets{args.fold_resets}"
    out = build_dir(board.name, args.model)
    return out.with_name(f"{out.name}_{tag.strip('-')}") if tag else out


def _report(args) -> dict:
    """The build report: read from the last build (``--no-build``) or from a new build."""
    board = get_board(args.board)
    if args.no_build:
        p = build_dir(board.name, args.model) / "build_report.json"
        if not p.exists():
            raise BoardError(f"no build report at {p}: run `make bitstream "
                             f"BOARD={board.name} MODEL={args.model}` or drop --no-build")
        return json.loads(p.read_text())
    return build(board.name, args.model, clock_mhz=args.clock_mhz,
                 parallelism=args.parallelism, lut_fill=args.lut_fill,
                 out=_build_folder(args, board), router=args.router, carry=args.carry,
                 timing_mhz=args.timing_mhz, seed=args.seed, fold_resets=args.fold_resets)


def _sweep(args) -> int:
    """Run the sweep of ``args.sweep``; the exit status (the page is rewritten either way)."""
    try:
        out = run_sweep(args.sweep, save_result, scheduler=args.scheduler,
                        workers=args.workers, retries=args.retries)
        print(f"wrote {_shown(out)}")
        status = 0
    except ClusterError as e:
        print(f"error: the sweep did not complete: {e}", file=sys.stderr)
        status = 1
    print(f"wrote {_shown(write_page())}")
    return status


def _shown(path: Path) -> str:
    """``path`` relative to the repository where it lies inside it."""
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def _check_args(ap, args) -> None:
    if args.sweep is not None:
        given = [f"--{k.replace('_', '-')}" for k in ("board", "model", "no_build", "table_only",
                                                      "clock_mhz", "parallelism", "lut_fill",
                                                      "carry", "router", "timing_mhz", "seed",
                                                      "fold_resets", "variant")
                 if getattr(args, k) not in (None, False)]
        if given:
            ap.error(f"--sweep takes its boards, models, seeds, foldings and clock from the "
                     f"sweep file: leave out {', '.join(given)}")
        return
    if args.scheduler is not None or args.workers is not None:
        ap.error("--scheduler and --workers go with --sweep")
    if args.parallelism is not None and not args.variant:
        ap.error("--parallelism needs --variant NAME: the default result file holds the "
                 "board's own folding")
    if not args.table_only and (not args.board or not args.model):
        ap.error("--board and --model are required (or --table-only, or --sweep)")


def main(argv=None) -> int:
    """Build (or read) one board result, save it, regenerate the results page.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 1 when a sweep did not complete, 2 when the board, the model, the sweep
        file or the build is at fault (the message goes to standard error).
    """
    ap = _parser()
    args = ap.parse_args(argv)
    _check_args(ap, args)
    try:
        if args.sweep is not None:
            return _sweep(args)
        if not args.table_only:
            out = save_result(_report(args), args.variant)
            print(f"wrote {out.relative_to(REPO)}")
        page = write_page()
        print(f"wrote {page.relative_to(REPO)}")
    except BoardError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
