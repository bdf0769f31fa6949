"""``python -m amos_hw.generate --model resnet8``: a converted network to Verilog.

Writes into ``--out`` (default ``build/<model>/``): ``amos_<model>.v`` (the whole network; the
weights are memory initial values inside it), ``report.json`` (cycles per image, latency,
LUT4 / FF / BRAM / DSP estimates, images per second at the target clock, per layer and in total,
neurons, time steps), ``manifest.json`` (model hash, every parameter, tool versions) and
``steps/<n>_<step>.json`` (every step's intermediate). See :mod:`amos_hw.flow` for the steps.
"""
from __future__ import annotations

import argparse
import sys

from amos_hw.devices import BOARD_DEVICES, DEVICES
from amos_hw.engines.carry import CARRY_FORMS
from amos_hw.flow import STEP_NAMES, WEIGHT_SOURCES, FlowConfig, FlowError, run_flow

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m amos_hw.generate", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True,
                   help="zoo name (resnet8, digits) or path of a converted description")
    p.add_argument("--out", default=None, help="output folder (default build/<model>)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--parallelism", default=None, metavar="JSON",
                   help='per-layer folding, a file or text: {"stem.act": {"pe": 4, "simd": 3}}')
    g.add_argument("--target-fps", type=float, default=None, metavar="N",
                   help="choose the folding for N images per second at the clock")
    p.add_argument("--board", default=None, metavar="NAME",
                   help="fit this device's LUT / block RAM budget (alone: the fastest that "
                        f"fits): a device ({', '.join(DEVICES)}) or a board, which names its "
                        f"device ({', '.join(f'{b}={d}' for b, d in BOARD_DEVICES.items())})")
    p.add_argument("--architecture", default=None, choices=("pipelined", "shared"),
                   help="pipelined: one engine per layer (default); shared: one engine runs "
                        "every layer in turn, weights and maps in one memory (the iCE40 UP5K "
                        "form; chosen by --board ice40-up5k when the pipelined one does not "
                        "fit)")
    p.add_argument("--weights", default=None, choices=WEIGHT_SOURCES,
                   help="shared engine: where its weights live: memory (default: with the maps "
                        "in its main memory) or flash (read from an SPI flash once per image; "
                        "the memory holds the maps alone: ResNet8 on an ECP5-25F)")
    p.add_argument("--carry", default=None, choices=CARRY_FORMS,
                   help="matrix-vector adders: generic, or ecp5 (the first adder level on "
                        "CCU2C carry cells with the spike gates folded in; needs an ECP5 or a "
                        "CCU2C simulation model). Default: ecp5 with an ECP5 --board, else "
                        "generic")
    p.add_argument("--spike-counts", action="store_true",
                   help="count each image's spikes in hardware: the result beat carries the "
                        "image's spikes, a debug port the split per layer (layer-pipelined "
                        "only; off by default, the Verilog is then unchanged)")
    p.add_argument("--clock-mhz", type=float, default=None,
                   help="target clock (default: the board's, else 50)")
    p.add_argument("--stop-after", default=None, choices=STEP_NAMES, metavar="STEP",
                   help=f"stop after this step ({', '.join(STEP_NAMES)})")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    cfg = FlowConfig(model=args.model, out=args.out, parallelism=args.parallelism,
                     target_fps=args.target_fps, board=args.board, clock_mhz=args.clock_mhz,
                     architecture=args.architecture, carry=args.carry, weights=args.weights,
                     spike_counts=args.spike_counts, stop_after=args.stop_after,
                     quiet=args.quiet, write=True)
    try:
        ctx = run_flow(cfg)
    except FlowError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    r = ctx.report
    print(f"{ctx.model_name}: steps {', '.join(ctx.timings)} -> {ctx.out_dir}")
    if r:
        print(f"  {r['cycles_per_image']} cycles per image ({r['images_per_s']:g} images/s at "
              f"{r['clock_mhz']:g} MHz; bottleneck {r['bottleneck']}), latency ~"
              f"{r['latency_cycles']} cycles")
        blocks = (f" ({r['est_bram_blocks']} blocks on the {r['board']['name']})"
                  if "est_bram_blocks" in r and r.get("board") else "")
        print(f"  estimates: {r['est_lut4']} LUT4, {r['est_ff']} FF, {r['est_bram_bits']} "
              f"block RAM bits{blocks}, {r['est_dsp']} DSP; {r['neurons']} neurons, "
              f"{r['time_steps']} time steps")
        if "spike_tally" in r:
            t = r["spike_tally"]
            print(f"  spike counters: {len(t['layers'])} layers, {t['depth']} images in flight, "
                  f"{t['est_lut4']} LUT4, {t['est_ff']} FF (in the estimates)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
