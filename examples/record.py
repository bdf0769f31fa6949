"""Add the generator's estimate and an RTL run to an example's result file::

    python -m examples.record --json build/examples/eval_vgg_cifar.json \\
        --report build/vgg_cifar/report.json --rtl build/examples/rtl_vgg_cifar.json \\
        --out docs/results/example_vgg_cifar.json

``--json`` is the file ``python -m python_ref.evaluate`` wrote (ANN vs SNN); ``--report`` the
``report.json`` of ``python -m amos_hw.generate`` (its estimate goes in as ``estimate``);
``--rtl`` the result of ``python -m rtl_tests.network`` (its runs go in as ``rtl``). All three
must be of the same description: the model SHA-256 of the report and of the RTL run must
agree, and the description's name must be the result's model.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

#: The report's fields kept in ``estimate``.
ESTIMATE_FIELDS = ("board", "parallelism", "clock_mhz", "cycles_per_image", "images_per_s",
                   "latency_cycles", "bottleneck", "est_lut4", "est_ff", "est_bram_bits",
                   "est_bram_blocks", "est_dsp", "neurons", "time_steps", "model_sha256")


class RecordError(ValueError):
    """An input of ``examples.record`` is missing, unreadable or of another description."""


def _read(path: Path, what: str) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise RecordError(f"{what} {path}: no such file") from None
    except (OSError, ValueError) as e:
        raise RecordError(f"{what} {path}: not a JSON file ({e})") from None


def record(result: dict, report: dict | None = None, rtl: dict | None = None,
           report_command: str | None = None, rtl_command: str | None = None,
           command: str | None = None) -> dict:
    """``result`` with ``estimate`` (from the generator's ``report``) and ``rtl`` (the runs
    of an ``rtl_tests.network`` result) added, each with the command that made it when given
    (``command``: the result's own, as ``command``).

    Raises
    ------
    RecordError
        When the report, the RTL run and the result are not of one description.
    """
    out = dict(result)
    if command:
        out["command"] = command
    sha = None
    if report is not None:
        missing = [k for k in ESTIMATE_FIELDS if k not in report]
        if missing:
            raise RecordError(f"--report: not a generator report.json (no {', '.join(missing)})")
        if report.get("model") != result.get("model"):
            raise RecordError(f"--report is of model {report.get('model')!r}, the result of "
                              f"{result.get('model')!r}")
        sha = report["model_sha256"]
        out["estimate"] = {k: report[k] for k in ESTIMATE_FIELDS}
        if report_command:
            out["estimate"]["command"] = report_command
    if rtl is not None:
        if "runs" not in rtl:
            raise RecordError("--rtl: not an rtl_tests.network result (no 'runs')")
        if sha is not None and rtl.get("model_sha256") != sha:
            raise RecordError(f"--rtl ran the description {rtl.get('model_sha256')}, the report "
                              f"is of {sha}")
        out["rtl"] = {"command": rtl_command or rtl.get("command"), "runs": rtl["runs"]}
    return out


def main(argv=None) -> dict:
    """The command line (see the module docstring)."""
    p = argparse.ArgumentParser(description="Add the generator's estimate and an RTL run to "
                                "an example's result file.")
    p.add_argument("--json", required=True, type=Path,
                   help="the result (python -m python_ref.evaluate --json)")
    p.add_argument("--command", default=None, help="the command that wrote --json (recorded)")
    p.add_argument("--out", type=Path, default=None, help="write here (default: --json)")
    p.add_argument("--report", type=Path, default=None, help="amos_hw.generate's report.json")
    p.add_argument("--report-command", default=None,
                   help="the generate command that wrote --report (recorded)")
    p.add_argument("--rtl", type=Path, default=None, help="rtl_tests.network's result")
    p.add_argument("--rtl-command", default=None,
                   help="the rtl_tests.network command that wrote --rtl (recorded)")
    a = p.parse_args(argv)
    try:
        result = _read(a.json, "--json")
        report = _read(a.report, "--report") if a.report else None
        rtl = _read(a.rtl, "--rtl") if a.rtl else None
        out = record(result, report, rtl, a.report_command, a.rtl_command, a.command)
    except RecordError as e:
        raise SystemExit(f"error: {e}") from None
    (a.out or a.json).write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
