"""Slow tier: the unit engine (:class:`amos_hw.engines.unit.UnitEngine`) as Verilog, under cocotb
(``rtl_tests/tb_engine.py``).

One bank, one build per simulator: the trained swish unit quantised to 8/8/8 bits on a 10-bit
port with two lanes, and the trained 12-bit sigmoid unit on a 13-bit port, each fed every value
of its ``in_range``, values beyond it (saturation) and random ones over its port; outputs
against python_ref's :class:`~python_ref.quant.IntAmosUnit`, cycles per image and latency
exact; and ``verilator --lint-only -Wall`` over the engine with the project's waivers only.
"""
from __future__ import annotations

import numpy as np

from amos_hw.backend.lint import lint_verilog
from amos_hw.backend.verilog import to_verilog
from amos_hw.engines.unit import UnitEngine
from amos_hw.lib.bank import Bank
from python_ref.quant import quantize_unit
from python_ref.units import load_unit
from python_ref.units.report import integer_unit
from rtl_tests.engine_spec import VERILATOR_ARGS, engine_spec
from rtl_tests.harness import run_cocotb

IMAGES = 3


def units():
    """name: (unit, in_width, lanes, values per image)."""
    return {
        "swish888": (quantize_unit(load_unit("swish"), 8, 8, 8), 10, 2, 128),
        "sigmoid": (integer_unit("sigmoid")[0], 13, 1, 96),
    }


def stimulus(unit, width, n, rng):
    """``n`` values for a ``width``-bit port: both ends of the port and of ``in_range``, a
    sweep across ``in_range``, the rest random over the port."""
    lo, hi = -(2 ** (width - 1)), 2 ** (width - 1) - 1
    r_lo, r_hi = unit.in_range
    edges = [lo, r_lo - 1, r_lo, r_lo + 1, -1, 0, 1, r_hi - 1, r_hi, r_hi + 1, hi]
    sweep = np.linspace(r_lo, r_hi, n // 2).round().astype(np.int64)
    rest = rng.integers(lo, hi + 1, n - len(edges) - len(sweep))
    return np.concatenate([edges, sweep, rest]).astype(np.int64)


def unit_bank():
    rng = np.random.default_rng(16)
    duts, specs = {}, []
    for name, (unit, width, lanes, elements) in units().items():
        dut = UnitEngine(unit, in_width=width, lanes=lanes, elements=elements, name=name)
        v = stimulus(unit, width, IMAGES * elements, rng)
        duts[name] = dut
        specs.append(engine_spec(name, dut, [("i", lanes, width, v, True)], unit(v),
                                 images=IMAGES, out_signed=True))
    return Bank(duts), specs


def test_unit_engines(sim):
    bank, specs = unit_bank()
    run_cocotb(bank, toplevel="unit_bank", test_module="rtl_tests.tb_engine", sim=sim,
               build_args=VERILATOR_ARGS if sim == "verilator" else (),
               params={"engines": specs, "seed": 5, "idle": 0.3, "backpressure": 0.3})


def test_lint_clean(tmp_path):
    unit, width, lanes, elements = units()["swish888"]
    path = tmp_path / "unit.v"
    path.write_text(to_verilog(UnitEngine(unit, in_width=width, lanes=lanes, elements=elements,
                                          name="act"), "unit"))
    clean, output = lint_verilog(path, "unit")
    assert clean, output
