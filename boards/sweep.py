"""Bitstream sweeps: boards x models x foldings x nextpnr seeds, one build per task on Dask.

``python -m boards.bench --sweep SWEEP.json [--scheduler ADDRESS]`` reads a sweep file::

    {"boards": ["icebreaker", "hx8k"], "models": ["digits"], "seeds": [1, 2, 3],
     "foldings": [null, {"fc": 2}], "clock_mhz": null}

``boards``, ``models`` and ``seeds`` (nextpnr placement seeds) are required; ``foldings``
(optional, default ``[null]``) lists per-layer parallelism objects as ``--parallelism`` takes
them, ``null`` meaning the board's own folding; ``clock_mhz`` (optional) builds every design
with the board PLL at that clock; ``fold_resets`` (optional, ECP5) folds the synchronous resets
of reset nets read by fewer than that many flip-flops into LUTs in every build
(:mod:`boards.lsrfold`). Each combination is one task calling
:func:`boards.build.build` in its own folder, ``build/sweeps/<sweep>/<board>_<model>_<folding>_
seed<N>``, on a local Dask cluster of this machine's cores or on the running one at
``--scheduler`` (:mod:`amos_hw.backend.cluster`); a failing build is retried, then the sweep
fails naming it.

As each build finishes its report is saved as the bench saves one
(:func:`boards.bench.save_result`), into ``docs/results/boards/sweeps/<sweep>/``; at the end
``docs/results/boards/sweeps/<sweep>.json`` holds the whole sweep: each build's Fmax, LUT4, FF,
block RAM, cycles per image and images/s, and per (board, model, folding) the median and
minimum Fmax over the seeds. A sweep with a failed build is written with ``"complete": false``,
the builds that are missing and their errors, and no summary; the command then exits non-zero.
The results page (:mod:`boards.results`) shows every complete sweep.
"""
from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from itertools import product
from pathlib import Path

from amos_hw.backend.cluster import ClusterError, Task, cluster, run_tasks
from amos_hw.lib.checks import positive_int
from boards.board import BoardError
from boards.build import REPO, build
from boards.catalog import board_names, get_board
from boards.results import BOARD_RESULTS

__all__ = ["BUILDS", "SWEEPS", "Combination", "build_one", "combinations", "load_sweep",
           "run_sweep", "summarise"]

#: Where the sweep results go (one JSON per sweep, a folder of build reports beside it).
SWEEPS = BOARD_RESULTS / "sweeps"
#: Build folders of the sweeps, relative to the repository of the worker that builds.
BUILDS = Path("build") / "sweeps"
_KEYS = {"boards", "models", "seeds", "foldings", "clock_mhz", "fold_resets"}
#: The figures kept per build in the sweep's JSON (the full report is in its own file).
_FIGURES = ("fmax_mhz", "lut4", "ff", "cycles_per_image", "images_per_s", "meets_board_clock",
            "build_wall_s", "git")


@dataclass(frozen=True)
class Combination:
    """One build of a sweep."""

    board: str
    model: str
    folding: str  # "board" (its own folding) or "folding<i>", the i-th entry of "foldings"
    parallelism: dict | None
    seed: int
    clock_mhz: float | None
    fold_resets: int | None = None

    @property
    def name(self) -> str:
        """The build's name in progress and errors: ``board/model/folding/seed<N>``."""
        return f"{self.board}/{self.model}/{self.folding}/seed{self.seed}"

    @property
    def folder(self) -> str:
        """Its build folder's name."""
        return f"{self.board}_{Path(self.model).stem}_{self.folding}_seed{self.seed}"


def _error(path, message: str) -> BoardError:
    return BoardError(f"sweep {path}: {message}")


def _list(path, spec: dict, key: str, default=None) -> list:
    value = spec.get(key, default)
    if not isinstance(value, list) or not value:
        raise _error(path, f"{key!r} must be a non-empty list, not {value!r}")
    if len({json.dumps(v, sort_keys=True) for v in value}) != len(value):
        raise _error(path, f"{key!r} lists an entry twice: {value!r}")
    return value


def _check_entries(path, spec: dict) -> None:
    """Each entry of the sweep's lists and its clock, checked."""
    known = board_names()
    for b in spec["boards"]:
        if not isinstance(b, str) or b.strip().lower() not in known:
            raise _error(path, f"unknown board {b!r} in 'boards'; known boards: "
                               f"{', '.join(known)}")
    for m in spec["models"]:
        if not isinstance(m, str) or not m:
            raise _error(path, f"'models' holds model names or description paths, not {m!r}")
    for s in spec["seeds"]:
        positive_int(f"sweep {path}: each of 'seeds'", s, error=BoardError)
    for f in spec["foldings"]:
        if f is not None and not isinstance(f, dict):
            raise _error(path, f"each of 'foldings' is a parallelism object or null, not {f!r}")
    clock = spec["clock_mhz"]
    if clock is not None and (isinstance(clock, bool) or not isinstance(clock, (int, float))
                              or clock <= 0):
        raise _error(path, f"'clock_mhz' must be a positive number or null, not {clock!r}")
    fold = spec["fold_resets"]
    if fold is not None:
        positive_int(f"sweep {path}: 'fold_resets'", fold, error=BoardError)


def load_sweep(path: str | Path) -> dict:
    """Read and check a sweep file.

    Parameters
    ----------
    path : str or Path
        The sweep's JSON file.

    Returns
    -------
    dict
        ``boards``, ``models``, ``seeds``, ``foldings``, ``clock_mhz`` and ``fold_resets``,
        defaults filled in.

    Raises
    ------
    BoardError
        Naming the file and what in it is wrong.
    """
    path = Path(path)
    try:
        spec = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise _error(path, f"cannot be read as JSON ({e})") from None
    if not isinstance(spec, dict):
        raise _error(path, f"must hold a JSON object, not {type(spec).__name__}")
    unknown = sorted(set(spec) - _KEYS)
    if unknown:
        raise _error(path, f"unknown keys {unknown}; a sweep has {sorted(_KEYS)}")
    out = {key: _list(path, spec, key) for key in ("boards", "models", "seeds")}
    out["foldings"] = _list(path, spec, "foldings", [None])
    out["clock_mhz"] = spec.get("clock_mhz")
    out["fold_resets"] = spec.get("fold_resets")
    _check_entries(path, out)
    out["boards"] = [get_board(b).name for b in out["boards"]]
    return out


def _folding_name(i: int, folding: dict | None) -> str:
    return "board" if folding is None else f"folding{i}"


def combinations(spec: dict) -> list[Combination]:
    """Every build of a checked sweep: boards, then models, foldings and seeds."""
    folds = [(_folding_name(i, f), f) for i, f in enumerate(spec["foldings"])]
    return [Combination(b, m, name, fold, s, spec["clock_mhz"], spec["fold_resets"])
            for b, m, (name, fold), s in product(spec["boards"], spec["models"], folds,
                                                  spec["seeds"])]


def build_one(build_fn: Callable[..., dict], combo: Combination, folder: str) -> dict:
    """A sweep task, on a worker: build ``combo`` in ``folder`` (relative to the worker's
    repository, or absolute) and return the build report."""
    return build_fn(combo.board, combo.model, parallelism=combo.parallelism,
                    clock_mhz=combo.clock_mhz, seed=combo.seed, out=REPO / folder,
                    progress=False, fold_resets=combo.fold_resets)


def _build_entry(combo: Combination, report: dict, saved: Path, results: Path) -> dict:
    entry = {"board": combo.board, "model": combo.model, "folding": combo.folding,
             "seed": combo.seed}
    entry.update({k: report.get(k) for k in _FIGURES})
    entry["bram_blocks"] = (report.get("bram") or {}).get("blocks")
    entry["result"] = (saved.relative_to(results).as_posix() if saved.is_relative_to(results)
                       else saved.name)
    return entry


def summarise(builds: list[dict]) -> list[dict]:
    """Per (board, model, folding): the seeds, the median and minimum Fmax over them, and the
    images/s at the median Fmax."""
    groups: dict[tuple, list[dict]] = {}
    for b in builds:
        groups.setdefault((b["board"], b["model"], b["folding"]), []).append(b)
    out = []
    for (board, model, folding), rows in groups.items():
        fmax = [r["fmax_mhz"] for r in rows]
        cycles = sorted({r["cycles_per_image"] for r in rows})
        median = statistics.median(fmax)
        out.append({"board": board, "model": model, "folding": folding,
                    "seeds": [r["seed"] for r in rows], "fmax_mhz_median": round(median, 2),
                    "fmax_mhz_min": min(fmax), "fmax_mhz_max": max(fmax),
                    "lut4": sorted({r["lut4"] for r in rows}), "cycles_per_image": cycles,
                    "images_per_s_at_median_fmax": (round(median * 1e6 / cycles[0], 2)
                                                    if len(cycles) == 1 else None)})
    return out


def run_sweep(path: str | Path, save: Callable[[dict, str | None, Path], Path], *,
              scheduler: str | None = None, workers: int | None = None, retries: int = 1,
              build_fn: Callable[..., dict] = build, results: Path | None = None,
              builds: Path | None = None, progress: bool = True) -> Path:
    """Run a sweep on a Dask cluster and write its results.

    Parameters
    ----------
    path : str or Path
        The sweep file (:func:`load_sweep`); its stem names the sweep.
    save : callable
        ``save(report, variant, folder)`` writes one build's report into ``folder`` and returns
        the file (:func:`boards.bench.save_result`).
    scheduler : str, optional
        A running Dask scheduler's address; default a local cluster.
    workers : int, optional
        Local cluster: worker processes (default: the machine's cores).
    retries : int
        Times a failed build is tried again.
    build_fn : callable
        The build (:func:`boards.build.build`; a test passes a fake one). Module-level: it is
        pickled by reference to the workers.
    results : Path, optional
        Where the sweep's JSON goes (default :data:`SWEEPS`).
    builds : Path, optional
        The build folders' root, relative to each worker's repository (default
        :data:`BUILDS`) or absolute.
    progress : bool
        Show a progress bar.

    Returns
    -------
    Path
        The sweep's JSON, ``<results>/<sweep>.json``.

    Raises
    ------
    BoardError
        A bad sweep file.
    ClusterError
        A build failed after its retries, or the cluster could not be reached; the sweep's
        JSON is then written with ``"complete": false`` and the builds that are missing.
    """
    path = Path(path)
    spec = load_sweep(path)
    results = Path(results) if results is not None else SWEEPS
    builds = Path(builds) if builds is not None else BUILDS
    name = path.stem
    combos = combinations(spec)
    saved: dict[int, Path] = {}

    def keep(i: int, report: dict) -> None:  # saved in this process as each build finishes
        c = combos[i]
        variant = None if c.folding == "board" else c.folding
        saved[i] = save(report, variant, results / name)

    tasks = [Task(c.name, build_one, (build_fn, c, (builds / name / c.folder).as_posix()))
             for c in combos]
    try:
        with cluster(scheduler, workers=workers) as client:
            reports = run_tasks(client, tasks, retries=retries, progress=progress,
                                desc=f"sweep {name}", on_result=keep)
    except ClusterError as e:
        if e.results:  # builds ran: record which are missing (nothing ran: nothing to write)
            _write(results, name, path, spec, combos, e.results, saved, e.failures)
        raise
    return _write(results, name, path, spec, combos, reports, saved, {})


def _write(results: Path, name: str, path: Path, spec: dict, combos: list[Combination],
           reports: list, saved: dict[int, Path], failures: dict) -> Path:
    """The sweep's JSON: complete, or not with what is missing."""
    builds = [_build_entry(c, r, saved[i], results) for i, (c, r) in enumerate(zip(combos, reports,
                                                                            strict=True))
              if r is not None and i in saved]
    done = {(b["board"], b["model"], b["folding"], b["seed"]) for b in builds}
    missing = [c.name for c in combos if (c.board, c.model, c.folding, c.seed) not in done]
    try:
        command = path.resolve().relative_to(REPO).as_posix()
    except ValueError:
        command = str(path)
    doc = {"sweep": name, "command": f"python -m boards.bench --sweep {command}",
           "spec": spec, "foldings": {_folding_name(i, f): f
                                      for i, f in enumerate(spec["foldings"])},
           "complete": not missing, "missing": missing, "failures": failures,
           "builds": builds}
    if not missing:
        doc["summary"] = summarise(builds)
    results.mkdir(parents=True, exist_ok=True)
    out = results / f"{name}.json"
    out.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return out

