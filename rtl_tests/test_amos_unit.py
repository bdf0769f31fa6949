"""Slow tier: AMOS units emitted as Verilog, run by cocotb (``rtl_tests/tb_amos_unit.py``).

All units of one test sit in a single :class:`~amos_hw.lib.bank.Bank`, so each simulator builds
one design: the ReLU unit for every K from 1 to 16 (one of them with two lanes), a general
one-input unit and a two-input unit with random integer parameters.
"""
from __future__ import annotations

import numpy as np

from amos_hw.lib.amos_unit import AmosUnit
from amos_hw.lib.bank import Bank
from python_ref.quant import IntAmosUnit
from rtl_tests.engine_spec import VERILATOR_ARGS
from rtl_tests.harness import run_cocotb


def spike_words(unit: IntAmosUnit, x, x2=None) -> np.ndarray:
    """Reference spike words (bit K-1-i is z_i) from python_ref."""
    z = unit.spikes(x, x2).astype(np.int64)
    return z @ (np.int64(1) << np.arange(unit.K - 1, -1, -1, dtype=np.int64))


def spec(name: str, dut: AmosUnit, x, x2=None) -> dict:
    unit = dut.unit
    x = np.asarray(x, np.int64).reshape(-1, dut.lanes)
    if x2 is not None:
        x2 = np.asarray(x2, np.int64).reshape(-1, dut.lanes)
    z = spike_words(unit, x, x2)
    y = unit(x, x2)
    return {
        "name": name,
        "K": dut.K,
        "lanes": dut.lanes,
        "in_width": dut.in_width,
        "in2_width": dut.in2_width,
        "y_width": dut.y_width,
        "latency": dut.latency,
        "x": x.tolist(),
        "x2": None if x2 is None else x2.tolist(),
        "z": z.tolist(),
        "y": y.tolist(),
        "spikes": int(sum(bin(int(v)).count("1") for v in z.ravel())),
    }


def relu_and_random_bank():
    rng = np.random.default_rng(2024)
    duts, specs = {}, []
    for K in range(1, 17):
        lanes = 2 if K == 4 else 1
        width = K + 3  # reaches below 0 and above 2**K - 1: both saturations
        dut = AmosUnit(IntAmosUnit.relu(K), width, lanes=lanes)
        lo, hi = -(2 ** (width - 1)), 2 ** (width - 1) - 1
        edges = [lo, -1, 0, 1, 2**K - 1, 2**K, hi]
        x = np.array(edges * lanes + list(rng.integers(lo, hi + 1, 25 * lanes)))
        x = x[: len(x) // lanes * lanes]
        duts[f"relu{K}"] = dut
        specs.append(spec(f"relu{K}", dut, x))
    K = 6
    general = IntAmosUnit("general", c=rng.integers(-20, 21, K), T=rng.integers(-60, 61, K),
                          h=rng.integers(-30, 31, (K, K)), d=rng.integers(-9, 10, K),
                          in_range=(-60, 70))
    duts["general"] = dut = AmosUnit(general, 8)
    specs.append(spec("general", dut, np.arange(-128, 128, 3)))
    two = IntAmosUnit("two", c=rng.integers(-20, 21, K), c2=rng.integers(-20, 21, K),
                      T=rng.integers(-60, 61, K), h=rng.integers(-30, 31, (K, K)),
                      d=rng.integers(-9, 10, K), in_range=(-60, 70), in2_range=(-5, 12))
    duts["two"] = dut = AmosUnit(two, 8, in2_width=5)
    specs.append(spec("two", dut, rng.integers(-128, 128, 60), rng.integers(-16, 16, 60)))
    return Bank(duts), specs


def test_amos_units(sim):
    bank, specs = relu_and_random_bank()
    run_cocotb(bank, toplevel="amos_unit_bank", test_module="rtl_tests.tb_amos_unit", sim=sim,
               build_args=VERILATOR_ARGS if sim == "verilator" else (),
               params={"units": specs, "seed": 1, "idle": 0.3, "backpressure": 0.3})
