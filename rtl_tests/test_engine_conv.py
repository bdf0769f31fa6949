"""Slow tier: convolution engines emitted as Verilog, run by cocotb (``rtl_tests/tb_engine.py``).

One bank, one build per simulator: 3x3 stride 1 with padding (ReLU), 3x3 stride 2 with padding
(raw outputs), 1x1 stride 2 (input-bound) and 1x1 stride 1 (the pointwise window's FIFO, 8
output folds), each with its own PE/SIMD folding.
"""
from __future__ import annotations

import numpy as np

from amos_hw.engines.conv import ConvEngine
from amos_hw.lib.bank import Bank
from python_ref import snn
from python_ref.quant import IntAmosUnit, requant_shift
from rtl_tests.engine_spec import VERILATOR_ARGS, engine_spec
from rtl_tests.harness import run_cocotb

CONFIGS = {
    # name: (H, W, C_in, C_out, k, stride, padding, pe, simd, out_bits, carry)
    "c3s1": (5, 6, 2, 4, 3, 1, 1, 2, 1, 4, "generic"),
    "c3s2": (6, 5, 4, 2, 3, 2, 1, 1, 2, None, "generic"),
    "c1s2": (6, 6, 2, 2, 1, 2, 0, 1, 1, 3, "generic"),
    "c1s1": (4, 3, 4, 8, 1, 1, 0, 1, 2, 3, "generic"),
    "c3s1ecp5": (5, 6, 4, 4, 3, 1, 1, 2, 4, 4, "ecp5"),  # CCU2C cells, their sim model
}


def reference(dut, a):
    acc = snn.conv2d(a, dut.weights, dut.bias, dut.stride, dut.padding)
    if dut.out_bits is None:
        return requant_shift(acc, dut.shift)
    return snn.requant_unit([acc], [dut.shift], IntAmosUnit.relu(dut.out_bits))[0]


def conv_bank():
    rng = np.random.default_rng(99)
    duts, specs = {}, []
    for name, (H, W, cin, cout, k, s, p, pe, simd, out_bits, carry) in CONFIGS.items():
        dut = ConvEngine(rng.integers(-127, 128, (cout, k, k, cin)),
                         rng.integers(-1000, 1001, cout), height=H, width=W, stride=s,
                         padding=p, in_bits=4, shift=7, out_bits=out_bits, pe=pe, simd=simd,
                         carry=carry)
        a = rng.integers(0, 16, (3, H, W, cin))
        duts[name] = dut
        specs.append(engine_spec(name, dut, [("i", simd, 4, a)], reference(dut, a), images=3,
                                 out_signed=out_bits is None))
    return Bank(duts), specs


def test_conv_engines(sim):
    bank, specs = conv_bank()
    run_cocotb(bank, toplevel="conv_bank", test_module="rtl_tests.tb_engine", sim=sim,
               build_args=VERILATOR_ARGS if sim == "verilator" else (),
               params={"engines": specs, "seed": 5, "idle": 0.3, "backpressure": 0.3})
