"""Command line of the AMOS unit library.

    python -m python_ref.units fit {sigmoid,swish,mult,sigmoid_k12,swish_wide} [--steps N]
        [--seed S] [--out PATH]
    python -m python_ref.units build mult_gate [--g-bits M] [--x-bits N] [--x-min A] [--out PATH]
    python -m python_ref.units check PATH_OR_NAME...
    python -m python_ref.units table3
    python -m python_ref.units plot [--out DIR]
    python -m python_ref.units plot-int [--out DIR]
    python -m python_ref.units report [--out DIR]

Bad input (a malformed unit file, an impossible option) prints ``error: ...`` and exits 2.
"""
from __future__ import annotations

import argparse
import json
import sys

from . import load_unit, table3, unit_path
from .fit import FIT_SPECS, fit_and_save, unit_errors
from .gate_product import GATE_PRODUCT, gate_product_unit
from .report import FIGURES, RESULTS, plot, plot_integer, write_report


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m python_ref.units", description=__doc__.split(
        "\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fit", help="fit a unit by backpropagation and write <name>.json")
    f.add_argument("name", choices=sorted(FIT_SPECS),
                   help="the paper's units (sigmoid, swish, mult) or a variant of FIT_SPECS "
                        "(sigmoid_k12, swish_wide: python_ref/units/fit.py)")
    f.add_argument("--steps", type=int, default=None, help="Adam steps (default: the spec's)")
    f.add_argument("--seed", type=int, default=None, help="seed (default: the spec's)")
    f.add_argument("--no-progress", action="store_true", help="no progress bar")
    f.add_argument("--out", default=None,
                   help="unit file to write (default python_ref/units/<name>.json)")
    b = sub.add_parser("build", help="write a closed-form unit file (mult_gate: the gate "
                                     "product by long multiplication, python_ref/units/"
                                     "gate_product.py)")
    b.add_argument("name", choices=["mult_gate"])
    b.add_argument("--g-bits", type=int, default=GATE_PRODUCT["g_bits"],
                   help="neurons coding the gate g (default %(default)s)")
    b.add_argument("--x-bits", type=int, default=GATE_PRODUCT["x_bits"],
                   help="bits of x in the first gate bit's group (default %(default)s)")
    b.add_argument("--x-min", type=float, default=GATE_PRODUCT["x_min"],
                   help="x's domain starts at -X_MIN (default %(default)s; a map whose "
                        "calibrated |x| level is small against its swish minimum -0.28 "
                        "needs more)")
    b.add_argument("--out", default=None,
                   help="unit file to write (default python_ref/units/<name>.json; needed "
                        "when the unit is not the library's)")
    c = sub.add_parser("check", help="load unit files and recompute their errors on the grid")
    c.add_argument("units", nargs="+", help="unit file paths or names (sigmoid, swish, mult)")
    sub.add_parser("table3", help="print Table 3 (K and parameter counts) as JSON")
    pl = sub.add_parser("plot", help="regenerate Figs. 3-6 into docs/figures")
    pl.add_argument("--out", default=None, help="output folder (default docs/figures)")
    pi = sub.add_parser("plot-int", help="the integer sigmoid, swish and multiplication "
                                         "units as the hardware computes them, into "
                                         "docs/figures")
    pi.add_argument("--out", default=None, help="output folder (default docs/figures)")
    r = sub.add_parser("report", help="integer-vs-float errors into docs/results/units.json")
    r.add_argument("--out", default=None, help="output folder (default docs/results)")
    return p


def _fit(args) -> None:
    if args.steps is not None and args.steps < 1:
        raise ValueError(f"--steps must be a positive integer, not {args.steps}")
    u = fit_and_save(args.name, steps=args.steps, seed=args.seed,
                     progress=not args.no_progress, path=args.out)
    m = u.meta
    print(json.dumps({"name": u.name, "K": u.K, "params": u.param_count,
                      "domain": [list(p) for p in u.domain],
                      **{k: m[k] for k in ("mse", "max_abs_err", "mean_abs_err", "seed",
                                           "steps", "fit_seconds")}}))


def _build(args) -> None:
    kw = {"g_bits": args.g_bits, "x_bits": args.x_bits, "x_min": args.x_min}
    if kw != GATE_PRODUCT and args.out is None:
        raise ValueError("--g-bits / --x-bits / --x-min other than the library's need --out "
                         "(python_ref/units/mult_gate.json is the library's unit)")
    u = gate_product_unit(**kw)
    u = type(u).from_dict({**u.to_dict(), **unit_errors(u)})
    u.save(args.out or unit_path(args.name))
    print(json.dumps({"name": u.name, "K": u.K, "params": u.param_count,
                      **{k: u.meta[k] for k in ("mse", "max_abs_err", "mean_abs_err",
                                                "error_bound")}}))


def _check(args) -> None:
    for name in args.units:
        u = load_unit(name)
        print(json.dumps({"unit": str(name), "name": u.name, "K": u.K,
                          "params": u.param_count, **unit_errors(u)}))


def _report(args) -> None:
    rep = write_report(args.out or RESULTS)
    print(json.dumps({k: {"float_max_abs_err": v["float_fit"]["max_abs_err"],
                          "int_vs_float_max_abs_err": v["vs_float"]["max_abs_err"]}
                      for k, v in rep.items()}))


_COMMANDS = {
    "fit": _fit,
    "build": _build,
    "check": _check,
    "table3": lambda args: print(json.dumps(table3())),
    "plot": lambda args: print("\n".join(map(str, plot(args.out or FIGURES)))),
    "plot-int": lambda args: print("\n".join(map(str, plot_integer(args.out or FIGURES)))),
    "report": _report,
}


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        _COMMANDS[args.cmd](args)
    except ValueError as e:  # UnitFileError is a ValueError
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
