"""Measured speed and size per board and model: build, read the reports, write the results.

::

    python -m amos_hw.bench --board ulx3s-85f --model resnet8      (builds first)
    python -m amos_hw.bench --board icebreaker --model digits --no-build
    python -m amos_hw.bench --table-only

Writes ``docs/results/boards/<board>_<model>.json`` (the build report, without machine-specific
paths) and regenerates the boards table of ``docs/results/README.md`` (between the
``boards-table`` markers) from every JSON file in ``docs/results/boards/``, with the published
anchors and the goals beside them.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["ANCHORS", "GOALS", "RESULTS", "main", "render_table", "save_result"]

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "docs" / "results" / "boards"
README = REPO / "docs" / "results" / "README.md"
BEGIN = "<!-- boards-table:begin (written by python -m amos_hw.bench) -->"
END = "<!-- boards-table:end -->"

#: Published figures the table is read against.
ANCHORS = [
    {"name": "fpgaConvNet, ResNet8 on a ZedBoard (Zynq-7020)", "images_per_s": 2431,
     "fmax_mhz": 143, "dsp": 211, "lut": "47K LUT6"},
    {"name": "hls4ml, ResNet8 on a Pynq-Z2 (Zynq-7020)", "images_per_s": 130.8,
     "fmax_mhz": None, "dsp": None, "lut": None},
]

#: The goals: (board, model) -> checks.
GOALS = {
    ("ulx3s-85f", "resnet8"): {"images_per_s": 2500, "dsp": 0, "lut4": 60000, "fmax_mhz": 100},
    ("icebreaker", "resnet8"): {"images_per_s": 10},
}


def _file_tag(name: str) -> str:
    """``name`` as a file-name part: letters and digits kept, everything else ``-``."""
    return "".join(c if c.isalnum() else "-" for c in name)


def save_result(report: dict, variant: str | None = None) -> Path:
    """Write ``report`` as the committed result of its board and model (``variant``: a build
    with a non-default folding, saved beside the default one)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    from amos_hw.engines.carry import default_form

    # what sets this build apart from the default one: (file-name part, words for "variant")
    parts = []
    pll = report.get("pll")
    if pll:
        parts.append(("pll" + f"{pll['fout']:g}".replace(".", "p") + "mhz",
                      f"PLL {pll['fout']:g} MHz"))
    router = report.get("router", "router1")
    if router != "router1":
        parts.append((router, router))
    from boards.build import SEED
    if report.get("seed", SEED) != SEED:
        parts.append((f"seed{report['seed']}", f"nextpnr seed {report['seed']}"))
    if report.get("timing_mhz") is not None:
        t = report["timing_mhz"]
        parts.append(("timing" + f"{t:g}".replace(".", "p"), f"routed for {t:g} MHz"))
    carry = report.get("carry")
    if carry is not None and carry != default_form(report.get("family")):
        parts.append((f"{carry}-carry", f"{carry} carry"))
    if variant:
        parts.insert(0, (_file_tag(variant), variant))
    tag = "".join(f"_{part}" for part, _ in parts)
    out = RESULTS / f"{report['board']}_{report['model']}{tag}.json"
    keep = {k: v for k, v in report.items() if k not in ("elaborate_wall_s",)}
    names = [words for _, words in parts]
    if names:
        keep["variant"] = ", ".join(names)
    out.write_text(json.dumps(keep, indent=2, sort_keys=True) + "\n")
    return out


def _goal_status(r: dict) -> str:
    goal = GOALS.get((r["board"], r["model"]))
    if not goal:
        return ""
    parts = []
    if "images_per_s" in goal:
        ok = r["images_per_s"] >= goal["images_per_s"]
        parts.append(f"{'met' if ok else 'missed'} >= {goal['images_per_s']} images/s")
    if "dsp" in goal:
        parts.append(f"{'met' if r['dsp'] <= goal['dsp'] else 'missed'} {goal['dsp']} DSP")
    if "lut4" in goal:
        ok = r["lut4"] <= goal["lut4"]
        parts.append(f"{'met' if ok else 'missed'} <= {goal['lut4'] // 1000}K LUT4")
    if "fmax_mhz" in goal:
        ok = r["fmax_mhz"] >= goal["fmax_mhz"]
        parts.append(f"{'met' if ok else 'missed'} Fmax >= {goal['fmax_mhz']} MHz")
    return "; ".join(parts)


def _rate(v: float) -> str:
    """Images/s for the table: whole numbers, one decimal below 100."""
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def render_table(results: list[dict]) -> str:
    """The markdown of the boards section."""
    lines = [
        BEGIN,
        "",
        "| board | model | Fmax MHz (clock it runs at) | LUT4 | FF | BRAM blocks (kbit) | SPRAM "
        "| DSP | cycles / image | images/s at Fmax | images/s as built | latency at Fmax "
        "| critical path | build |",
        "| --- | --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- "
        "| ---: |",
    ]
    for r in sorted(results, key=lambda r: (r["model"], r["board"])):
        cp = r.get("critical_path") or {}
        path = f"{cp.get('from')} -> {cp.get('to')}" if cp else ""
        meets = "" if r.get("meets_board_clock", True) else " **below its clock**"
        clock = (f"PLL {r['board_clock_mhz']:g}" if r.get("pll") else f"{r['board_clock_mhz']:g}")
        lines.append(
            f"| {r['board']} | {r['model']}"
            + (f" ({r['variant']})" if r.get("variant") else "")
            + f" | {r['fmax_mhz']:.1f} ({clock})"
            f"{meets} | {r['lut4']} ({r['utilisation_pct']['lut4']:.0f}%) | {r['ff']} | "
            f"{r['bram']['blocks']} ({r['bram']['bits'] // 1024}) | {r['spram']['blocks']} | "
            f"{r['dsp']} | {r['cycles_per_image']} | {_rate(r['images_per_s'])} | "
            f"{_rate(r['images_per_s_board_clock'])} | "
            f"{r['latency_us_at_fmax']:.1f} us | `{path}` | {r['build_wall_s']:.0f} s |")
    lines += ["", "Anchors (published, other devices):", ""]
    for a in ANCHORS:
        extra = ", ".join(x for x in (
            f"{a['fmax_mhz']} MHz" if a["fmax_mhz"] else "",
            f"{a['dsp']} DSPs" if a["dsp"] is not None else "",
            a["lut"] or "") if x)
        lines.append(f"- {a['name']}: {a['images_per_s']:,} images/s"
                     + (f" ({extra})" if extra else ""))
    lines += ["", "Goals (each against the build with the most images/s at Fmax):", ""]
    for (board, model), g in GOALS.items():
        rows = [r for r in results if (r["board"], r["model"]) == (board, model)]
        best = max(rows, key=lambda r: r["images_per_s"]) if rows else None
        want = ", ".join(f"{k} {v}" for k, v in g.items())
        got = (_goal_status(best) + (f" (row: {best['variant']})" if best.get("variant") else "")
               if best else "no build result yet")
        lines.append(f"- {model} on {board} ({want}): {got}")
    lines += ["", END]
    return "\n".join(lines)


_HEADER = """# Results

## Boards: speed and size, measured

Every figure below comes from a bitstream build (`make bitstream BOARD=... MODEL=...`, the
pip-installed YoWASP Yosys 0.70 and nextpnr 0.11.1, seed 1) and is read from its
`build/<board>/<model>/build_report.json`; the committed copies are in
[`boards/`](boards/). Fmax is nextpnr's post-route figure for the design's one clock;
images/s = Fmax / cycles per image (the generator's initiation interval, one image in flight
per layer); latency is the generator's first-pixel-to-result estimate at Fmax. LUT4 and FF are
Yosys cell counts after synthesis (an ECP5 carry cell counts as two LUT4s). The bitstreams clock
the design from the board oscillator (value in brackets) or, where the row says PLL, from the
board's PLL at that clock (`--clock-mhz`).
Regenerate the table with `python -m amos_hw.bench --table-only`.

"""


def write_readme(results: list[dict]) -> Path:
    table = render_table(results)
    if README.exists():
        text = README.read_text()
        if BEGIN in text and END in text:
            pre = text[: text.index(BEGIN)]
            post = text[text.index(END) + len(END):]
            text = pre + table + post
        else:
            text = text.rstrip() + "\n\n" + _HEADER.split("\n", 2)[2] + table + "\n"
    else:
        text = _HEADER + table + "\n"
    README.write_text(text)
    return README


def load_results() -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))]


def main(argv=None) -> int:
    from amos_hw.engines.carry import CARRY_FORMS, default_form
    from boards.build import ROUTERS

    ap = argparse.ArgumentParser(prog="python -m amos_hw.bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--board")
    ap.add_argument("--model")
    ap.add_argument("--no-build", action="store_true",
                    help="read build/<board>/<model>/build_report.json instead of building")
    ap.add_argument("--table-only", action="store_true",
                    help="only regenerate the table from docs/results/boards/*.json")
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
    ap.add_argument("--variant", default=None,
                    help="name of a non-default build, saved as <board>_<model>_<variant>.json")
    args = ap.parse_args(argv)
    if args.parallelism is not None and not args.variant:
        ap.error("--parallelism needs --variant NAME: the default result file holds the "
                 "board's own folding")
    from boards.board import BoardError, get_board
    from boards.build import SEED, build, build_dir

    try:
        if not args.table_only:
            if not args.board or not args.model:
                ap.error("--board and --model are required (or --table-only)")
            board = get_board(args.board)
            if args.no_build:
                p = build_dir(board.name, args.model) / "build_report.json"
                if not p.exists():
                    raise BoardError(f"no build report at {p}: run `make bitstream "
                                     f"BOARD={board.name} MODEL={args.model}` or drop "
                                     f"--no-build")
                rep = json.loads(p.read_text())
            else:
                # a variant or PLL build gets its own folder: two builds can run side by side
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
                out = build_dir(board.name, args.model)
                if tag:
                    out = out.with_name(f"{out.name}_{tag.strip('-')}")
                rep = build(board.name, args.model, clock_mhz=args.clock_mhz,
                            parallelism=args.parallelism, lut_fill=args.lut_fill, out=out,
                            router=args.router, carry=args.carry, timing_mhz=args.timing_mhz,
                            seed=args.seed)
            out = save_result(rep, args.variant)
            print(f"wrote {out.relative_to(REPO)}")
        readme = write_readme(load_results())
        print(f"wrote {readme.relative_to(REPO)}")
    except BoardError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
