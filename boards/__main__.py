"""``python -m boards``: list the boards, build a bitstream, flash it.

::

    python -m boards list
    python -m boards build --board ulx3s-85f --model resnet8     (make bitstream)
    python -m boards flash --board ulx3s-85f --model resnet8     (make flash)
"""
from __future__ import annotations

import argparse
import json
import sys

from boards.board import BoardError
from boards.catalog import board_names, get_board


def _parallelism(text):
    if text is None:
        return None
    return text  # the generator parses JSON text or a file path and names what is wrong


def flash(board_name: str, model: str) -> None:
    """Program the board with the bitstream of ``make bitstream``, as amaranth-boards does."""
    from amaranth.build.run import LocalBuildProducts

    from boards.build import build_dir

    board = get_board(board_name)
    gw = build_dir(board.name, model) / "gateware"
    bit = gw / ("top.bin" if board.family == "ice40" else "top.bit")
    if not bit.exists():
        raise BoardError(f"no bitstream at {bit}: run `make bitstream BOARD={board.name} "
                         f"MODEL={model}` first")
    if board.programmer.resolve() is None:
        raise BoardError(board.programmer.missing_message(f"program the {board.title}"))
    report = build_dir(board.name, model) / "build_report.json"
    if report.exists():
        fb = [f["tool"] for f in json.loads(report.read_text()).get("fallbacks", [])
              if f["tool"] != board.programmer.command]
        if fb:
            print(f"warning: the bitstream was built without {', '.join(fb)}", file=sys.stderr)
    weights = None
    if report.exists():
        weights = json.loads(report.read_text()).get("weights")
    if weights and weights.get("source") == "flash":
        # first the weights (writing the flash may reconfigure the FPGA), then the bitstream
        flash_weights(board, build_dir(board.name, model) / weights["file"])
    board.make_platform().toolchain_program(LocalBuildProducts(str(gw)), "top")


def flash_weights(board, wfile) -> None:
    """Write a flash-weights build's ``weights.bin`` at the board's offset in its flash."""
    import subprocess

    if not board.weight_flash_cmd:
        raise BoardError(f"{board.name} has no place for weights in its flash")
    if not wfile.exists():
        raise BoardError(f"no weights at {wfile}: rebuild with `make bitstream BOARD="
                         f"{board.name} MODEL=...`")
    exe = board.programmer.resolve()
    cmd = [exe, *(a.replace("{file}", str(wfile)) for a in board.weight_flash_cmd)]
    print(f"writing the weights ({wfile.stat().st_size} bytes) at {board.weight_flash_offset:#x} "
          f"of the flash: {' '.join(cmd)}", file=sys.stderr)
    try:
        subprocess.run(cmd, check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        raise BoardError(f"writing the weights failed ({e}); the bitstream was not "
                         f"loaded") from None


def main(argv=None) -> int:
    from amos_hw.engines.carry import CARRY_FORMS
    from boards.build import ROUTERS

    ap = argparse.ArgumentParser(prog="python -m boards", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="the supported boards")
    for name in ("build", "flash"):
        p = sub.add_parser(name)
        p.add_argument("--board", required=True)
        p.add_argument("--model", required=True)
        if name == "build":
            p.add_argument("--parallelism", default=None,
                           help="folding JSON (text or file) for the generator; default: the "
                                "board's choice")
            p.add_argument("--clock-mhz", type=float, default=None,
                           help="clock the design from the board PLL (ECP5 or iCE40) at this "
                                "frequency (or the nearest below); default: the board "
                                "oscillator")
            p.add_argument("--lut-fill", type=float, default=None,
                           help="share of the device's LUT4s the estimate may use (0.8)")
            p.add_argument("--router", choices=ROUTERS, default=None,
                           help="nextpnr's router (default: router1)")
            p.add_argument("--seed", type=int, default=None,
                           help="nextpnr's placement seed (default 1)")
            p.add_argument("--carry", choices=CARRY_FORMS, default=None,
                           help="the matrix-vector units' adders (default: ecp5 on an ECP5 "
                                "board, else generic)")
            p.add_argument("--spike-counts", action="store_true",
                           help="count each image's spikes in hardware; the host link returns "
                                "them with the class (layer-pipelined designs only)")
            p.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "list":
            for n in board_names():
                b = get_board(n)
                print(f"{n:16s} {b.title:36s} {b.device:20s} programmer: {b.programmer.command}")
        elif args.cmd == "build":
            from boards.build import build, build_dir
            get_board(args.board)
            rep = build(args.board, args.model, parallelism=_parallelism(args.parallelism),
                        progress=not args.quiet, clock_mhz=args.clock_mhz,
                        lut_fill=args.lut_fill, router=args.router, carry=args.carry,
                        seed=args.seed, spike_counts=args.spike_counts)
            out = build_dir(rep["board"], rep["model"]) / "build_report.json"
            print(f"{rep['board']} {rep['model']}: Fmax {rep['fmax_mhz']} MHz, "
                  f"{rep['lut4']} LUT4, {rep['ff']} FF, {rep['bram']['blocks']} BRAM, "
                  f"{rep['dsp']} DSP, {rep['images_per_s']} images/s; {out}")
            for f in rep["fallbacks"]:
                print(f"note: {f['tool']} absent, replaced by `true`: {f['effect']} "
                      f"(package {f['package']})")
        else:
            flash(args.board, args.model)
    except BoardError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
