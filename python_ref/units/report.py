"""Integer-versus-float report of the AMOS units and the paper's Figs. 3-6."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..quant import IntAmosUnit, quantize_unit, to_int_input
from . import PAPER_K, load_unit, relu_unit
from .fit import grid, target, unit_errors

__all__ = ["DEFAULT_BITS", "HARDWARE_BITS", "integer_unit", "compare_int_float", "report",
           "write_report", "plot", "plot_integer"]

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "docs" / "results"
FIGURES = REPO / "docs" / "figures"

#: Widths used for the trained units in the report: (in_bits, w_bits, d_bits).
DEFAULT_BITS = {"sigmoid": (12, 12, 12), "swish": (12, 12, 12), "mult": (12, 12, 12)}
#: Input-weight widths also reported (``w_bits`` sweep at the default in_bits and d_bits).
SWEEP_W_BITS = (8, 12, 16)


def integer_unit(name: str, bits=None) -> tuple[IntAmosUnit, str]:
    """The integer unit of ``name`` and the rounding of its real input (``nearest``/``floor``).

    ``relu`` is the closed-form integer unit (K = 10, alpha = 1: step ``2^-10``), whose real input
    is rounded down as ``docs/integer_semantics.md`` says; the trained units go through
    :func:`python_ref.quant.quantize_unit`.
    """
    if name == "relu":
        return IntAmosUnit.relu(PAPER_K["relu"], alpha=1.0), "floor"
    bits = DEFAULT_BITS[name] if bits is None else bits
    return quantize_unit(load_unit(name), *bits), "nearest"


def compare_int_float(fu, iu: IntAmosUnit, rounding: str = "nearest", n1: int = 20001,
                      n2: int = 401) -> dict:
    """Errors of an integer unit against its float self on the dense grid of the domain.

    Two comparisons: ``vs_float`` maps every real grid point to the integer input (rounding,
    saturating) and compares ``y_int·out_scale`` with the float unit at the *real* point (input
    quantisation included); ``params_only`` evaluates the float unit at the integer input times
    its scale, so only parameter rounding remains, and counts the points whose spike vectors
    differ. ``vs_target`` compares both units with the target function.
    """
    pts = grid(fu.domain, n1, n2)
    scales = [iu.in_scale] + ([iu.in2_scale] if iu.inputs == 2 else [])
    ranges = [iu.in_range] + ([iu.in2_range] if iu.inputs == 2 else [])
    xi = [to_int_input(p, s, r, rounding) for p, s, r in zip(pts, scales, ranges, strict=True)]
    xq = [x * s for x, s in zip(xi, scales, strict=True)]
    y_int = iu.real(*xi)
    y_float = fu(*pts)
    y_float_q = fu(*xq)
    mism = np.any(iu.spikes(*xi) != fu.spikes(*xq), axis=-1)
    tgt = target(fu.name, *pts)

    def stats(e):
        e = np.abs(e)
        return {"max_abs_err": float(e.max()), "mean_abs_err": float(e.mean())}

    return {
        "grid_points": int(pts[0].size),
        "vs_float": stats(y_int - y_float),
        "params_only": {**stats(y_int - y_float_q), "spike_mismatches": int(mism.sum()),
                        "spike_mismatch_rate": float(mism.mean())},
        "vs_target": {
            "float": {**stats(y_float - tgt), "mse": float(np.mean((y_float - tgt) ** 2))},
            "integer": {**stats(y_int - tgt), "mse": float(np.mean((y_int - tgt) ** 2))},
        },
    }


def report(n1: int = 20001, n2: int = 401, progress: bool = True) -> dict:
    """The ``docs/results/units.json`` content (see :func:`compare_int_float`)."""
    out = {}
    for name in tqdm(("relu", "sigmoid", "swish", "mult"), desc="units report",
                     disable=not progress):
        fu = relu_unit(PAPER_K["relu"]) if name == "relu" else load_unit(name)
        iu, rounding = integer_unit(name)
        entry = {
            "K": fu.K,
            "inputs": fu.inputs,
            "params": fu.param_count,
            "domain": [list(p) for p in fu.domain],
            "float_fit": unit_errors(fu, name, n1, n2),
            "integer": {
                "input_rounding": rounding,
                "in_scale": iu.in_scale,
                "in_range": list(iu.in_range),
                "out_scale": iu.out_scale,
                "widths": iu.widths,
            },
        }
        if iu.inputs == 2:
            entry["integer"]["in2_scale"] = iu.in2_scale
            entry["integer"]["in2_range"] = list(iu.in2_range)
        if name != "relu":
            entry["integer"]["bits"] = dict(zip(("in_bits", "w_bits", "d_bits"),
                                                DEFAULT_BITS[name], strict=True))
        else:
            entry["relu_bound"] = {"alpha": 1.0, "bound": 2.0 ** -fu.K}
        entry.update(compare_int_float(fu, iu, rounding, n1, n2))
        if name != "relu":
            sweep = {}
            for wb in SWEEP_W_BITS:
                ib, _, db = DEFAULT_BITS[name]
                qu = quantize_unit(fu, ib, wb, db)
                r = compare_int_float(fu, qu, rounding, n1, n2)
                sweep[f"w_bits={wb}"] = {
                    "membrane_bits": qu.widths["membrane"],
                    "int_vs_target": r["vs_target"]["integer"],
                    "vs_float_mean_abs_err": r["vs_float"]["mean_abs_err"],
                    "spike_mismatches": r["params_only"]["spike_mismatches"],
                }
            entry["w_bits_sweep"] = sweep
        out[name] = entry
    return out


def _md_table(rep: dict) -> str:
    lines = [
        "# AMOS units: fits and their integer versions",
        "",
        "Generated by `python -m python_ref.units report` (numbers in `units.json`). Errors are",
        "over a dense grid of the domain (20001 points; mult: 401 x 401) with the hard Heaviside.",
        "`int vs float`: integer unit (input rounded to its grid, saturating) against the float",
        "unit at the real input; `spike mism.`: grid points whose spike vector differs when both",
        "units see the same quantised input.",
        "",
        "| unit | K | params | domain | float MSE | float max / mean abs err "
        "| widths in/w/d, membrane | int vs float max / mean | spike mism. "
        "| int vs target max / mean |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, e in rep.items():
        f = e["float_fit"]
        w = e["integer"]["widths"]
        bits = e["integer"].get("bits")
        wb = (f"{bits['in_bits']}/{w['c']}/{w['d']}" if bits else f"{w['x']}/{w['c']}/{w['d']}")
        dom = " x ".join(f"[{lo:g}, {hi:g}]" for lo, hi in e["domain"])
        pf = e["params_only"]
        v = e["vs_float"]
        lines.append(
            f"| {name} | {e['K']} | {e['params']} | {dom} | {f['mse']:.3g} "
            f"| {f['max_abs_err']:.3g} / {f['mean_abs_err']:.3g} | {wb}, {w['membrane']} "
            f"| {v['max_abs_err']:.3g} / {v['mean_abs_err']:.3g} "
            f"| {pf['spike_mismatches']} / {e['grid_points']} "
            f"| {e['vs_target']['integer']['max_abs_err']:.3g} / "
            f"{e['vs_target']['integer']['mean_abs_err']:.3g} |"
        )
    lines += [
        "",
        "ReLU: the closed-form unit with alpha = 1 (bound alpha·2^-K = 2^-10 = 0.000977); its",
        "integer form (input rounded down to the step 2^-10) agrees with the float unit exactly.",
        "",
        "The units are staircases, so the largest |int - float| sits where rounding the input",
        "moves it across a step (a jump of up to one output step); the mean and the error of the",
        "integer unit against the target are the figures that matter. Input weights (`w_bits`):",
        "",
        "| unit | w_bits | membrane bits | int vs target max / mean | spike mism. |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, e in rep.items():
        for key, v in e.get("w_bits_sweep", {}).items():
            t = v["int_vs_target"]
            lines.append(f"| {name} | {key.split('=')[1]} | {v['membrane_bits']} "
                         f"| {t['max_abs_err']:.3g} / {t['mean_abs_err']:.3g} "
                         f"| {v['spike_mismatches']} |")
    lines += [
        "",
        "Fixed-point rule (`python_ref.quant.quantize_unit`): input scale = max|domain| /",
        "(2^(in_bits-1) - 1), input saturated to the domain; one membrane scale chosen so the",
        "largest input weight takes w_bits; T and h on that scale; d on its own scale with",
        "d_bits; rounding to nearest (ties to even). Widths of T, h, membrane and output follow",
        "from the values (`IntAmosUnit.widths`).",
        "",
    ]
    return "\n".join(lines)


def write_report(out_dir=RESULTS, progress: bool = True) -> dict:
    """Write ``units.json`` and ``units.md`` into ``out_dir``."""
    rep = report(progress=progress)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "units.json").write_text(json.dumps(rep, indent=1) + "\n")
    (out_dir / "units.md").write_text(_md_table(rep))
    return rep


def plot(out_dir=FIGURES) -> list[Path]:
    """Regenerate the paper's Figs. 3-6 as PNG files in ``out_dir`` (Agg backend)."""
    # matplotlib (the `train` extra) only for the figures; the backend must be chosen before
    # pyplot is imported
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    figs = [("fig3_relu_k10.png", "relu", "ReLU"), ("fig4_sigmoid_k8.png", "sigmoid", "sigmoid"),
            ("fig5_swish_k12.png", "swish", "Swish")]
    for fname, name, label in figs:
        u = relu_unit(10) if name == "relu" else load_unit(name)
        lo, hi = u.domain[0]
        x = np.linspace(lo, hi, 4001)
        e = unit_errors(u, name)
        fig, ax = plt.subplots(figsize=(5, 3.6), dpi=120)
        ax.plot(x, target(name, x), color="red", lw=1.5, label=f"{label}(x)")
        ax.plot(x, u(x), color="blue", lw=1.0, label=f"AMOS, K = {u.K}")
        ax.set_xlabel("x")
        ax.set_title(f"AMOS approximation of {label}, K = {u.K}\n"
                     f"max |err| = {e['max_abs_err']:.3g}, mean |err| = {e['mean_abs_err']:.3g}",
                     fontsize=9)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = out_dir / fname
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    u = load_unit("mult")
    n = 401
    xs, ys = grid(u.domain, n2=n)
    err = (u(xs, ys) - xs * ys).reshape(n, n)
    fig, ax = plt.subplots(figsize=(5, 4.2), dpi=120)
    (xlo, xhi), (ylo, yhi) = u.domain
    im = ax.imshow(err.T, origin="lower", extent=(xlo, xhi, ylo, yhi), cmap="coolwarm",
                   vmin=-np.abs(err).max(), vmax=np.abs(err).max())
    fig.colorbar(im, ax=ax, label="AMOS(x, y) - x·y")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(f"Error of the AMOS multiplication unit, K = {u.K}\n"
                 f"MSE = {np.mean(err**2):.3g} (paper: 0.0102), "
                 f"max |err| = {np.abs(err).max():.3g}", fontsize=9)
    fig.tight_layout()
    path = out_dir / "fig6_mult_k40_error.png"
    fig.savefig(path)
    plt.close(fig)
    written.append(path)
    return written


#: (in_bits, w_bits, d_bits) of the integer units drawn by :func:`plot_integer`: the 8/8/6 units
#: of the hardware tests (``rtl_tests/unit_network.py``, y in 8 signed bits) and the report's
#: 12/12/12.
HARDWARE_BITS = ((8, 8, 6), (12, 12, 12))


#: the one-input unit files :func:`plot_integer` draws: the paper's and the variants
#: effnet_cifar uses (``python_ref/units/fit.py::FIT_SPECS``)
INTEGER_PLOTS = ("sigmoid", "swish", "sigmoid_k12", "swish_wide")


def plot_integer(out_dir=FIGURES, bits=HARDWARE_BITS) -> list[Path]:
    """Sigmoid and swish as the hardware computes them: every integer input ``v`` of the unit's
    ``in_range`` through :class:`~python_ref.quant.IntAmosUnit` (which the ``UnitEngine`` equals
    bit for bit, ``tests/test_engines_unit.py``), ``y * out_scale`` against the target at
    ``v * in_scale``, with the error below; one PNG per unit file of :data:`INTEGER_PLOTS`,
    ``int_<file>_k<K>.png`` (``int_<file>.png`` when the file's name ends in its K); and the
    multiplication unit (:func:`_plot_integer_mult`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for file in INTEGER_PLOTS:
        fu = load_unit(file)
        name = fu.name
        fig, (ax, ae) = plt.subplots(2, 1, figsize=(5.5, 5), dpi=120, sharex=True,
                                     gridspec_kw={"height_ratios": [2, 1]})
        lo, hi = fu.domain[0]
        xs = np.linspace(lo, hi, 2001)
        ax.plot(xs, target(name, xs), color="red", lw=1.2, label=f"{name}(x)")
        for b, colour in zip(bits, ("tab:blue", "tab:green"), strict=False):
            iu = quantize_unit(fu, *b)
            v = np.arange(iu.in_range[0], iu.in_range[1] + 1)
            x, y = v * iu.in_scale, iu(v) * iu.out_scale
            err = y - target(name, x)
            tag = f"integer {b[0]}/{b[1]}/{b[2]} bits, y in {iu.widths['y']} bits"
            ax.step(x, y, where="mid", color=colour, lw=0.9, label=tag)
            ae.plot(x, err, color=colour, lw=0.8,
                    label=f"max |err| {np.abs(err).max():.3g}")
        ax.set_title(f"{name} AMOS unit, K = {fu.K}, as the hardware computes it\n"
                     f"(integer v in, y = sum d_i z_i out, scaled back)", fontsize=9)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        ae.set_xlabel("x = v * in_scale")
        ae.set_ylabel("error")
        ae.legend(fontsize=7)
        ae.grid(alpha=0.3)
        fig.tight_layout()
        stem = file if file.endswith(f"_k{fu.K}") else f"{file}_k{fu.K}"
        path = out_dir / f"int_{stem}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    written += [_plot_integer_mult(out_dir, plt, file) for file in INTEGER_MULT_PLOTS]
    return written


#: (in_bits, w_bits, d_bits) of the integer multiplication unit drawn by :func:`plot_integer`:
#: the squeeze-and-excitation gate's of the hardware tests (``rtl_tests/gate_network.py``).
MULT_BITS = (8, 8, 8)


#: the two-input unit files drawn by :func:`_plot_integer_mult`: the paper's trained product
#: and the closed-form gate product (``python_ref/units/gate_product.py``)
INTEGER_MULT_PLOTS = ("mult", "mult_gate")


def _plot_integer_mult(out_dir: Path, plt, file: str = "mult") -> Path:
    """A two-input multiplication unit as the hardware computes it: every pair of integer
    inputs ``(v1, v2)`` of its ranges through :class:`~python_ref.quant.IntAmosUnit` (the gate
    engine equals it bit for bit, ``tests/test_engines_gate.py``), the error ``y * out_scale -
    x1 * x2`` as a map, and three slices ``x2`` fixed; ``int_<file>_k<K>.png``."""
    fu = load_unit(file)
    iu = quantize_unit(fu, *MULT_BITS)
    v1 = np.arange(iu.in_range[0], iu.in_range[1] + 1)
    v2 = np.arange(iu.in2_range[0], iu.in2_range[1] + 1)
    x1, x2 = v1 * iu.in_scale, v2 * iu.in2_scale
    y = iu(v1[:, None], v2[None, :]) * iu.out_scale
    err = y - x1[:, None] * x2[None, :]
    fig, (am, asl) = plt.subplots(1, 2, figsize=(9, 3.8), dpi=120)
    m = float(np.abs(err).max())
    im = am.imshow(err.T, origin="lower", extent=(x1[0], x1[-1], x2[0], x2[-1]),
                   cmap="coolwarm", vmin=-m, vmax=m, interpolation="nearest")
    fig.colorbar(im, ax=am, label="y · out_scale - x1·x2")
    am.set_xlabel("x1 = v1 · in_scale")
    am.set_ylabel("x2 = v2 · in2_scale")
    am.set_title(f"error over all {len(v1)} x {len(v2)} integer inputs\n"
                 f"MSE {np.mean(err ** 2):.3g}, max |err| {m:.3g}", fontsize=9)
    for k, colour in zip((len(v2) - 1, len(v2) * 3 // 4, len(v2) // 2),
                         ("tab:blue", "tab:green", "tab:orange"), strict=True):
        asl.plot(x1, x1 * x2[k], color="red", lw=0.8)
        asl.step(x1, y[:, k], where="mid", color=colour, lw=0.9, label=f"x2 = {x2[k]:.2f}")
    asl.set_xlabel("x1")
    asl.set_title("y · out_scale (steps) against x1·x2 (red)", fontsize=9)
    asl.legend(fontsize=7)
    asl.grid(alpha=0.3)
    b = MULT_BITS
    fig.suptitle(f"multiplication AMOS unit {file}.json, K = {fu.K}, as the hardware computes it "
                 f"(integer {b[0]}/{b[1]}/{b[2]} bits, y in {iu.widths['y']} bits)", fontsize=9)
    fig.tight_layout()
    path = out_dir / f"int_{file}_k{fu.K}.png"
    fig.savefig(path)
    plt.close(fig)
    return path
