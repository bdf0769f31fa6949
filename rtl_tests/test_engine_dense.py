"""Slow tier: dense engines emitted as Verilog, run by cocotb (``rtl_tests/tb_engine.py``).

One bank, one build per simulator: a folded ReLU layer, a fully serial raw (logits) layer, and a
worst-case layer whose inputs drive the accumulator to both ends of its range (int32 biases).
"""
from __future__ import annotations

import numpy as np

from amos_hw.engines.dense import DenseEngine
from amos_hw.lib.bank import Bank
from python_ref import snn
from python_ref.quant import IntAmosUnit, requant_shift
from rtl_tests.engine_spec import VERILATOR_ARGS, engine_spec
from rtl_tests.harness import run_cocotb


def reference(dut, a):
    acc = snn.dense(a, dut.weights, dut.bias)
    if dut.out_bits is None:
        return requant_shift(acc, dut.shift)
    return snn.requant_unit([acc], [dut.shift], IntAmosUnit.relu(dut.out_bits))[0]


def dense_bank():
    rng = np.random.default_rng(77)
    duts, specs = {}, []

    def add(name, dut, a):
        duts[name] = dut
        specs.append(engine_spec(name, dut, [("i", dut.simd, dut.in_bits, a)],
                                 reference(dut, a), images=len(a),
                                 out_signed=dut.out_bits is None))

    dut = DenseEngine(rng.integers(-127, 128, (6, 8)), rng.integers(-3000, 3001, 6), in_bits=4,
                      shift=6, out_bits=4, pe=2, simd=4)
    add("relu", dut, rng.integers(0, 16, (5, 8)))
    dut = DenseEngine(rng.integers(-127, 128, (4, 6)), rng.integers(-500, 501, 4), in_bits=3,
                      shift=0, out_bits=None, pe=1, simd=1)
    add("logits", dut, rng.integers(0, 8, (4, 6)))
    w = rng.choice([-127, 127], size=(4, 12))
    w[0], w[1] = 127, -127
    b = np.array([2**31 - 1, -(2**31), 0, 12345])
    dut = DenseEngine(w, b, in_bits=8, shift=0, out_bits=None, pe=2, simd=3)
    worst = [np.where(w[k] * sign > 0, 255, 0) for k in range(4) for sign in (1, -1)]
    add("worst", dut, np.array(worst))
    # the ECP5 carry form (CCU2C cells, amos_hw/backend/sim_models/CCU2C.v): the worst case
    # again, odd simd (an unpaired input), and a multi-pass folding (planes < in_bits)
    dut = DenseEngine(w, b, in_bits=8, shift=0, out_bits=None, pe=2, simd=3, carry="ecp5")
    add("worstecp5", dut, np.array(worst))
    dut = DenseEngine(rng.integers(-127, 128, (6, 8)), rng.integers(-3000, 3001, 6), in_bits=4,
                      shift=6, out_bits=4, pe=2, simd=4, planes=2, carry="ecp5")
    add("reluecp5planes2", dut, rng.integers(0, 16, (5, 8)))
    return Bank(duts), specs


def test_dense_engines(sim):
    bank, specs = dense_bank()
    worst = next(s for s in specs if s["name"] == "worst")
    top = max(max(w) for w in worst["expected"])
    assert top == 2**31 - 1 + 127 * 255 * 12  # the stimulus reaches the accumulator's maximum
    run_cocotb(bank, toplevel="dense_bank", test_module="rtl_tests.tb_engine", sim=sim,
               build_args=VERILATOR_ARGS if sim == "verilator" else (),
               params={"engines": specs, "seed": 3, "idle": 0.3, "backpressure": 0.3})
