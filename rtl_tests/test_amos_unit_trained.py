"""Slow tier: the trained units as fitted (sigmoid K=8, swish K=12, multiplication K=40) as
Verilog under cocotb (``rtl_tests/tb_amos_unit.py``), one bank, one build per simulator.

The one-input units see every integer of their input range (every 4th on Icarus) and a few
beyond it on both sides (saturation); the two-input unit sees a grid over both ranges with both
edges and beyond.
"""
from __future__ import annotations

import numpy as np

from amos_hw.lib.amos_unit import AmosUnit
from amos_hw.lib.bank import Bank
from rtl_tests.engine_spec import VERILATOR_ARGS
from rtl_tests.harness import run_cocotb
from rtl_tests.test_amos_unit import spec

TRAINED_K = {"sigmoid": 8, "swish": 12, "mult": 40}


def sweep(lo, hi, step):
    core = np.arange(lo - 8, hi + 9, step)
    return np.unique(np.concatenate([core, [lo - 1, lo, lo + 1, hi - 1, hi, hi + 1]]))


def trained_bank(step=1, grid_step=64):
    from python_ref.quant import quantize_unit
    from python_ref.units import load_unit

    duts, specs = {}, []
    for name, K in TRAINED_K.items():
        unit = quantize_unit(load_unit(name))
        assert unit.K == K
        in2 = unit.widths["x2"] + 1 if unit.inputs == 2 else None
        dut = AmosUnit(unit, unit.widths["x"] + 1, in2_width=in2)
        if unit.inputs == 1:
            specs.append(spec(name, dut, sweep(*unit.in_range, step)))
        else:
            a, b = sweep(*unit.in_range, grid_step), sweep(*unit.in2_range, grid_step)
            x, x2 = (v.ravel() for v in np.meshgrid(a, b))
            specs.append(spec(name, dut, x, x2))
        duts[name] = dut
    return Bank(duts), specs


def test_trained_units(sim):
    # Verilator runs every input of the one-input units; Icarus, about 20 times slower on this
    # bank, every 4th (the edges and the saturation always)
    bank, specs = trained_bank(1, 64) if sim == "verilator" else trained_bank(4, 128)
    run_cocotb(bank, toplevel="amos_trained_bank", test_module="rtl_tests.tb_amos_unit",
               sim=sim, build_args=VERILATOR_ARGS if sim == "verilator" else (),
               params={"units": specs, "seed": 2, "idle": 0.2, "backpressure": 0.2})
