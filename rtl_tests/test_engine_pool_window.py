"""Slow tier: the windowed engines (max pooling, average pooling, depthwise convolution) as
Verilog, under cocotb (``rtl_tests/tb_engine.py``).

One bank, one build per simulator: a 2x2 stride-2 max pool and a 3x3 stride-2 padded average
pool over spike words, a 3x3 stride-1 padded depthwise conv with its ReLU unit and a 3x3
stride-2 one with raw outputs, each with its own lanes; outputs against python_ref, cycles and
latency exact; and ``verilator --lint-only -Wall`` over each engine with the project's
waivers only (as ``rtl_tests/test_engine_lint.py`` for the other engines).
"""
from __future__ import annotations

import numpy as np
import pytest

from amos_hw.backend.lint import lint_verilog
from amos_hw.backend.verilog import to_verilog
from amos_hw.engines.depthwise import DepthwiseConvEngine
from amos_hw.engines.pool import AvgPoolEngine, MaxPoolEngine
from amos_hw.lib.bank import Bank
from python_ref import snn
from python_ref.quant import IntAmosUnit, requant_shift
from rtl_tests.engine_spec import VERILATOR_ARGS, engine_spec
from rtl_tests.harness import run_cocotb

POOLS = {
    # name: (engine, reference, H, W, C, k, stride, padding, lanes)
    "max2s2": (MaxPoolEngine, snn.maxpool2d, 6, 5, 4, 2, 2, 0, 2),
    "avg3s2": (AvgPoolEngine, snn.avgpool2d, 6, 6, 2, 3, 2, 1, 1),
}
DEPTHWISE = {
    # name: (H, W, C, k, stride, padding, lanes, out_bits)
    "dw3s1": (5, 6, 4, 3, 1, 1, 2, 4),
    "dw3s2raw": (6, 5, 2, 3, 2, 1, 1, None),
}


def depthwise_reference(dut, a):
    acc = snn.conv2d(a, dut.weights, dut.bias, dut.stride, dut.padding, groups=a.shape[3])
    if dut.out_bits is None:
        return requant_shift(acc, dut.shift)
    return snn.requant_unit([acc], [dut.shift], IntAmosUnit.relu(dut.out_bits))[0]


def window_bank():
    rng = np.random.default_rng(77)
    duts, specs = {}, []
    for name, (cls, ref, H, W, C, k, s, p, lanes) in POOLS.items():
        dut = cls(height=H, width=W, channels=C, kernel=k, stride=s, padding=p, in_bits=4,
                  lanes=lanes)
        a = rng.integers(0, 16, (3, H, W, C))
        duts[name] = dut
        specs.append(engine_spec(name, dut, [("i", lanes, 4, a)], ref(a, k, s, p), images=3,
                                 out_signed=False))
    for name, (H, W, C, k, s, p, lanes, out_bits) in DEPTHWISE.items():
        dut = DepthwiseConvEngine(rng.integers(-127, 128, (C, k, k, 1)),
                                  rng.integers(-1000, 1001, C), height=H, width=W, stride=s,
                                  padding=p, in_bits=4, shift=5, out_bits=out_bits, lanes=lanes)
        a = rng.integers(0, 16, (3, H, W, C))
        duts[name] = dut
        specs.append(engine_spec(name, dut, [("i", lanes, 4, a)], depthwise_reference(dut, a),
                                 images=3, out_signed=out_bits is None))
    return Bank(duts), specs


def test_window_engines(sim):
    bank, specs = window_bank()
    run_cocotb(bank, toplevel="window_bank", test_module="rtl_tests.tb_engine", sim=sim,
               build_args=VERILATOR_ARGS if sim == "verilator" else (),
               params={"engines": specs, "seed": 11, "idle": 0.3, "backpressure": 0.3})


def lint_designs():
    rng = np.random.default_rng(0)
    return {
        "maxpool": lambda: MaxPoolEngine(height=5, width=6, channels=4, kernel=3, stride=2,
                                         padding=1, in_bits=4, lanes=2),
        "avgpool": lambda: AvgPoolEngine(height=4, width=4, channels=2, kernel=2, stride=2,
                                         in_bits=4, lanes=1),
        "dwconv": lambda: DepthwiseConvEngine(rng.integers(-127, 128, (4, 3, 3, 1)),
                                              np.zeros(4, int), height=5, width=6, stride=1,
                                              padding=1, in_bits=4, shift=7, out_bits=4,
                                              lanes=2),
        "dwconv_raw": lambda: DepthwiseConvEngine(rng.integers(-127, 128, (2, 3, 3, 1)),
                                                  np.ones(2, int), height=5, width=5, stride=2,
                                                  padding=0, in_bits=4, shift=0, out_bits=None),
    }


@pytest.mark.parametrize("name", list(lint_designs()))
def test_lint_clean(name, tmp_path):
    path = tmp_path / f"{name}.v"
    path.write_text(to_verilog(lint_designs()[name](), name))
    clean, output = lint_verilog(path, name)
    assert clean, output
