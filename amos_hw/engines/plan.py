"""Folding plan and pre-synthesis estimates for ResNet8 on the layer engines.

``python -m amos_hw.engines.plan [--K 4] [--mhz 100]`` takes every ResNet8 engine with the PE/SIMD
folding of :data:`RESNET8_FOLDING` (weights all +-127, the widest accumulators) and prints each
engine's expected cycles per image, LUT / flip-flop / memory-bit estimates, and the resulting
images per second. Nothing is built, elaborated or synthesised: the figures are the engines'
static ``figures(...)`` (:mod:`amos_hw.engines.figures`). The reasoning behind the folding is in
``docs/architecture.md``.
"""
from __future__ import annotations

import argparse

import numpy as np

from amos_hw.engines.conv import ConvEngine
from amos_hw.engines.dense import DenseEngine
from amos_hw.engines.gap import GlobalAvgPoolEngine
from amos_hw.engines.residual import ResidualAddEngine

__all__ = ["RESNET8_FOLDING", "resnet8_figures", "main"]

#: name: (kind, H, W, C_in, C_out, kernel, stride, padding, pe, simd); 40,000 cycles/image is
#: 2,500 images/s at 100 MHz, and every layer stays under it.
RESNET8_FOLDING = {
    "stem": ("conv", 32, 32, 3, 16, 3, 1, 1, 4, 3),
    "b1c1": ("conv", 32, 32, 16, 16, 3, 1, 1, 4, 16),
    "b1c2": ("conv", 32, 32, 16, 16, 3, 1, 1, 4, 16),
    "b1add": ("add", 32, 32, 16, 16, 0, 0, 0, 1, 1),
    "b2c1": ("conv", 32, 32, 16, 32, 3, 2, 1, 2, 16),
    "b2c2": ("conv", 16, 16, 32, 32, 3, 1, 1, 4, 16),
    "b2proj": ("conv", 32, 32, 16, 32, 1, 2, 0, 1, 4),
    "b2add": ("add", 16, 16, 32, 32, 0, 0, 0, 1, 1),
    "b3c1": ("conv", 16, 16, 32, 64, 3, 2, 1, 2, 16),
    "b3c2": ("conv", 8, 8, 64, 64, 3, 1, 1, 4, 16),
    "b3proj": ("conv", 16, 16, 32, 64, 1, 2, 0, 1, 4),
    "b3add": ("add", 8, 8, 64, 64, 0, 0, 0, 1, 1),
    "gap": ("gap", 8, 8, 64, 64, 0, 0, 0, 1, 1),
    "fc": ("dense", 1, 1, 64, 10, 0, 0, 0, 1, 1),
}


def resnet8_figures(K: int = 4, in_bits: int = 8) -> dict:
    """The figures (:class:`~amos_hw.engines.figures.Figures`) of the ResNet8 engines with
    worst-case weights (all +-127), by layer name; no engine is built."""
    figures = {}
    for name, (kind, H, W, cin, cout, k, s, p, pe, simd) in RESNET8_FOLDING.items():
        kin = in_bits if name == "stem" else K
        if kind == "conv":
            w = np.full((cout, k, k, cin), 127)
            out_bits = None if ("c2" in name or "proj" in name) else K
            fig = ConvEngine.figures(w, np.zeros(cout, np.int64), height=H, width=W, stride=s,
                                     padding=p, in_bits=kin, shift=0 if out_bits is None else 8,
                                     out_bits=out_bits, pe=pe, simd=simd, name=name)
        elif kind == "add":
            # the block's last convolution gives raw accumulators (shift 0): their width
            main = figures[name.replace("add", "c2")].out_width
            fig = ResidualAddEngine.figures(lanes=pe, words_per_image=H * W * cout // pe,
                                            main_width=main,
                                            skip_bits=K if name == "b1add" else 20,
                                            skip_shift=2, shift=8, out_bits=K,
                                            skip_depth=3 * W * cout, skip_signed=name != "b1add",
                                            name=name)
        elif kind == "gap":
            fig = GlobalAvgPoolEngine.figures(height=H, width=W, channels=cin, in_bits=K,
                                              lanes=pe, name=name)
        else:
            gap_bits = figures["gap"].out_width
            fig = DenseEngine.figures(np.full((cout, cin), 127), np.zeros(cout, np.int64),
                                      in_bits=gap_bits, shift=0, out_bits=None, pe=pe, simd=simd,
                                      name=name)
        figures[name] = fig
    return figures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m amos_hw.engines.plan",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--K", type=int, default=4, help="spikes per activation (default 4)")
    parser.add_argument("--mhz", type=float, default=100.0, help="clock in MHz (default 100)")
    args = parser.parse_args(argv)
    figures = resnet8_figures(args.K)
    print(f"{'layer':8} {'cycles':>8} {'LUT4':>8} {'FF':>8} {'mem bits':>10}")
    tot = [0, 0, 0]
    for name, f in figures.items():
        print(f"{name:8} {f.cycles:8d} {f.luts:8d} {f.flip_flops:8d} {f.memory_bits:10d}")
        tot = [tot[0] + f.luts, tot[1] + f.flip_flops, tot[2] + f.memory_bits]
    worst = max(f.cycles for f in figures.values())
    print(f"{'total':8} {worst:8d} {tot[0]:8d} {tot[1]:8d} {tot[2]:10d}")
    print(f"bottleneck {worst} cycles/image -> {args.mhz * 1e6 / worst:.0f} images/s at "
          f"{args.mhz:g} MHz (K={args.K})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
