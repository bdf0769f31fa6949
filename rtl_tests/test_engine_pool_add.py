"""Slow tier: global average pooling and residual add engines as Verilog, under cocotb.

One bank, one build per simulator (``rtl_tests/tb_engine.py``): two GAP engines (the second's
sums in a memory, ``amos_hw.lib.ring``), a residual add with
the ReLU unit after it, and a projection-style add (signed skip) with raw outputs.
"""
from __future__ import annotations

import numpy as np

from amos_hw.engines.gap import GlobalAvgPoolEngine
from amos_hw.engines.residual import ResidualAddEngine
from amos_hw.lib.bank import Bank
from python_ref import snn
from python_ref.quant import IntAmosUnit, requant_shift
from rtl_tests.engine_spec import VERILATOR_ARGS, engine_spec
from rtl_tests.harness import run_cocotb


def add_reference(dut, main, skip):
    acc = snn.add([main, skip], [0, dut.skip_shift])
    if dut.out_bits is None:
        return requant_shift(acc, dut.shift)
    return snn.requant_unit([acc], [dut.shift], IntAmosUnit.relu(dut.out_bits))[0]


def pool_add_bank():
    rng = np.random.default_rng(123)
    duts, specs = {}, []
    gap = GlobalAvgPoolEngine(height=3, width=4, channels=4, in_bits=4, lanes=2)
    a = rng.integers(0, 16, (3, 3, 4, 4))
    duts["gap"] = gap
    specs.append(engine_spec("gap", gap, [("i", 2, 4, a)], snn.gap(a), images=3,
                             out_signed=False))
    # 128 sums of 18 bits: the ring of sums in a memory (amos_hw.lib.ring)
    gapm = GlobalAvgPoolEngine(height=2, width=2, channels=128, in_bits=16, name="gapm")
    assert gapm.memories[0].name == "sums"
    a = rng.integers(0, 2**16, (2, 2, 2, 128))
    duts["gapm"] = gapm
    specs.append(engine_spec("gapm", gapm, [("i", 1, 16, a)], snn.gap(a), images=2,
                             out_signed=False))
    for name, (lanes, wpi, mw, sb, ssh, S, K, sgn) in {
        "addrelu": (2, 6, 12, 4, 5, 6, 4, False),
        "addproj": (1, 5, 10, 9, 0, 0, None, True),
    }.items():
        dut = ResidualAddEngine(lanes=lanes, words_per_image=wpi, main_width=mw, skip_bits=sb,
                                skip_shift=ssh, shift=S, out_bits=K, skip_depth=4,
                                skip_signed=sgn)
        n = 3 * wpi * lanes
        main = rng.integers(-(2 ** (mw - 1)), 2 ** (mw - 1), n)
        if sgn:
            skip = rng.integers(-(2 ** (sb - 1)), 2 ** (sb - 1), n)
        else:
            skip = rng.integers(0, 2**sb, n)
        duts[name] = dut
        specs.append(engine_spec(name, dut, [("i", lanes, mw, main, True),
                                             ("skip", lanes, sb, skip, sgn)],
                                 add_reference(dut, main, skip), images=3,
                                 out_signed=K is None))
    return Bank(duts), specs


def test_pool_and_add_engines(sim):
    bank, specs = pool_add_bank()
    run_cocotb(bank, toplevel="pool_add_bank", test_module="rtl_tests.tb_engine", sim=sim,
               build_args=VERILATOR_ARGS if sim == "verilator" else (),
               params={"engines": specs, "seed": 8, "idle": 0.3, "backpressure": 0.3})
