"""Slow tier: engines on two's-complement input words (``in_signed=True``) emitted as Verilog,
run by cocotb (``rtl_tests/tb_engine.py``) on Icarus and Verilator.

One bank, one build per simulator: a 3x3 stride-1 convolution with padding and the ReLU unit,
a 3x3 stride-2 convolution with raw outputs two spike planes a cycle on the ECP5 carry form
(``CCU2C`` cells, their simulation model ``amos_hw/backend/sim_models/CCU2C.v``), and a
bit-parallel dense layer on the ECP5 carry form whose worst-case inputs (the most negative
word where that is the extreme) drive the accumulator to both ends of its range. The inputs
include the most negative word and -1; values, cycles and latency checked as for the unsigned
engines. And ``verilator --lint-only -Wall`` (the project's waivers) over signed engines.
"""
from __future__ import annotations

import numpy as np
import pytest

from amos_hw.backend.lint import lint_verilog
from amos_hw.backend.verilog import to_verilog
from amos_hw.engines.conv import ConvEngine
from amos_hw.engines.dense import DenseEngine
from amos_hw.engines.gap import GlobalAvgPoolEngine
from amos_hw.lib.bank import Bank
from python_ref import snn
from python_ref.quant import IntAmosUnit, requant_shift
from rtl_tests.engine_spec import VERILATOR_ARGS, engine_spec
from rtl_tests.harness import run_cocotb

CONVS = {
    # name: (H, W, C_in, C_out, k, stride, padding, pe, simd, in_bits, planes, out_bits, carry)
    "c3s1": (5, 6, 2, 4, 3, 1, 1, 2, 1, 4, None, 4, "generic"),
    "c3s2ecp5planes2": (6, 5, 4, 2, 3, 2, 1, 1, 4, 6, 2, None, "ecp5"),
}


def requantised(acc, shift, out_bits):
    if out_bits is None:
        return requant_shift(acc, shift)
    return snn.requant_unit([acc], [shift], IntAmosUnit.relu(out_bits))[0]


def signed_words(rng, shape, bits):
    """Random ``bits`` two's-complement values, the most negative one and -1 among them."""
    a = rng.integers(-(2 ** (bits - 1)), 2 ** (bits - 1), shape)
    flat = a.reshape(-1)
    flat[::5] = -(2 ** (bits - 1))
    flat[1::7] = -1
    return a


def signed_bank():
    rng = np.random.default_rng(123)
    duts, specs = {}, []
    for name, (H, W, cin, cout, k, s, p, pe, simd, bits, planes, out_bits, carry) in \
            CONVS.items():
        dut = ConvEngine(rng.integers(-127, 128, (cout, k, k, cin)),
                         rng.integers(-1000, 1001, cout), height=H, width=W, stride=s,
                         padding=p, in_bits=bits, shift=6, out_bits=out_bits, pe=pe, simd=simd,
                         planes=planes, carry=carry, in_signed=True)
        a = signed_words(rng, (3, H, W, cin), bits)
        acc = snn.conv2d(a, dut.weights, dut.bias, s, p)
        duts[name] = dut
        specs.append(engine_spec(name, dut, [("i", simd, bits, a, True)],
                                 requantised(acc, 6, out_bits), images=3,
                                 out_signed=out_bits is None))
    w = rng.choice([-127, 127], size=(4, 6))
    w[0], w[1] = 127, -127
    b = np.array([-(2**31), 2**31 - 1, 0, 777])
    dut = DenseEngine(w, b, in_bits=5, shift=0, out_bits=None, pe=2, simd=3, carry="ecp5",
                      in_signed=True)
    worst = np.array([np.where(w[k] * sign > 0, 15, -16) for k in range(4) for sign in (1, -1)])
    duts["denseworst"] = dut
    specs.append(engine_spec("denseworst", dut, [("i", 3, 5, worst, True)],
                             snn.dense(worst, w, b), images=len(worst), out_signed=True))
    return Bank(duts), specs


def test_signed_engines(sim):
    bank, specs = signed_bank()
    worst = next(s for s in specs if s["name"] == "denseworst")
    values = [v for word in worst["expected"] for v in word]
    # the stimulus reaches both ends of the accumulator: -16 times 127 on each of the six inputs
    assert (min(values), max(values)) == (-(2**31) - 127 * 16 * 6, 2**31 - 1 + 127 * 16 * 6)
    run_cocotb(bank, toplevel="signed_bank", test_module="rtl_tests.tb_engine", sim=sim,
               build_args=VERILATOR_ARGS if sim == "verilator" else (),
               params={"engines": specs, "seed": 11, "idle": 0.3, "backpressure": 0.3})


def lint_designs():
    rng = np.random.default_rng(1)
    return {
        "dense_signed_planes1": lambda: DenseEngine(
            rng.integers(-127, 128, (4, 6)), np.ones(4, int), in_bits=6, shift=2, out_bits=4,
            pe=2, simd=3, planes=1, in_signed=True),
        "conv_signed_planes2": lambda: ConvEngine(
            rng.integers(-127, 128, (2, 3, 3, 2)), np.zeros(2, int), height=5, width=6,
            stride=2, padding=1, in_bits=4, shift=0, out_bits=None, pe=1, simd=2, planes=2,
            in_signed=True),
        "gap_signed": lambda: GlobalAvgPoolEngine(height=3, width=4, channels=4, in_bits=4,
                                                  lanes=2, in_signed=True),
    }


@pytest.mark.parametrize("name", list(lint_designs()))
def test_signed_lint_clean(name, tmp_path):
    path = tmp_path / f"{name}.v"
    path.write_text(to_verilog(lint_designs()[name](), name))
    clean, output = lint_verilog(path, name)
    assert clean, output
