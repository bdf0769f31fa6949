"""The generator's device estimate of the Table 2 models: ``docs/results/table2_estimates.json``.

::

    python -m boards.estimates

Runs ``python -m amos_hw.generate --model MODEL --board ecp5-85f --stop-after estimate`` for
each model of :data:`boards.table2.MODELS` (nothing is built; seconds per model) and keeps the
estimate step's figures, which :mod:`boards.table2` puts beside the accuracy figures.
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from amos_hw import generate
from boards.table2 import BOARD, ESTIMATES, MODELS, REPO, VARIANTS

__all__ = ["estimate", "main", "write_estimates"]

# the estimate step's fields kept per model
_FIELDS = ("architecture", "architecture_why", "bottleneck", "clock_mhz", "cycles_per_image",
           "images_per_s", "est_lut4", "est_ff", "est_bram_blocks", "est_dsp", "weights",
           "model_sha256")


def estimate(model: str, board: str = BOARD) -> dict:
    """The generator's ``estimate`` step for ``model`` on ``board`` (nothing is built).

    Returns
    -------
    dict
        The fields of :data:`_FIELDS` from the step's ``steps/4_estimate.json``.
    """
    with tempfile.TemporaryDirectory() as out:
        rc = generate.main(["--model", model, "--board", board, "--stop-after", "estimate",
                            "--out", out, "--quiet"])
        if rc:
            raise RuntimeError(f"python -m amos_hw.generate --model {model} --board {board} "
                               f"--stop-after estimate failed with status {rc}")
        step = json.loads(next(Path(out, "steps").glob("*_estimate.json")).read_text())
    return {k: step.get(k) for k in _FIELDS}


def write_estimates(models=MODELS, path: Path = ESTIMATES) -> Path:
    """Run :func:`estimate` for every model and write them to ``path``."""
    doc = {"board": BOARD, "command": "python -m boards.estimates",
           "models": {m: estimate(f"{REPO / VARIANTS[m][1]}.json" if m in VARIANTS else m)
                      for m in models}}
    Path(path).write_text(json.dumps(doc, indent=1) + "\n")
    return Path(path)


def main(argv=None) -> int:
    """Rewrite ``table2_estimates.json``; the exit status."""
    if argv:
        print("python -m boards.estimates takes no arguments", file=sys.stderr)
        return 2
    print(f"wrote {write_estimates().relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
