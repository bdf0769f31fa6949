"""``verilator --lint-only -Wall`` over every engine and AMOS unit, with the project's waivers only.

The waivers (``docs/lint_waivers.vlt``, one place) switch off the rules that Amaranth's output
always trips (width extension and truncation, declaration initialisers, unused intermediate
nets, file names); everything else must be clean.
"""
from __future__ import annotations

import numpy as np
import pytest

from amos_hw.backend.lint import lint_verilog
from amos_hw.backend.verilog import to_verilog
from amos_hw.engines import ConvEngine, DenseEngine, GlobalAvgPoolEngine, ResidualAddEngine
from amos_hw.lib.amos_unit import AmosUnit
from python_ref.quant import IntAmosUnit


def designs():
    rng = np.random.default_rng(0)
    K = 5
    general = IntAmosUnit("general", c=rng.integers(-20, 21, K), T=rng.integers(-60, 61, K),
                          h=rng.integers(-30, 31, (K, K)), d=rng.integers(-9, 10, K),
                          c2=rng.integers(-20, 21, K), in_range=(-60, 70))
    return {
        "amos_relu8": lambda: AmosUnit(IntAmosUnit.relu(8), 12, lanes=2),
        "amos_two_input": lambda: AmosUnit(general, 8),
        "dense_relu": lambda: DenseEngine(rng.integers(-127, 128, (6, 8)), np.zeros(6, int),
                                          in_bits=4, shift=6, out_bits=4, pe=2, simd=4),
        "dense_logits": lambda: DenseEngine(rng.integers(-127, 128, (4, 6)), np.ones(4, int),
                                            in_bits=4, shift=0, out_bits=None, pe=1, simd=1),
        "conv3x3": lambda: ConvEngine(rng.integers(-127, 128, (4, 3, 3, 2)), np.zeros(4, int),
                                      height=5, width=6, stride=1, padding=1, in_bits=4,
                                      shift=7, out_bits=4, pe=2, simd=1),
        "conv1x1s2": lambda: ConvEngine(rng.integers(-127, 128, (2, 1, 1, 2)), np.zeros(2, int),
                                        height=6, width=6, stride=2, padding=0, in_bits=4,
                                        shift=7, out_bits=3, pe=1, simd=2),
        "gap": lambda: GlobalAvgPoolEngine(height=3, width=4, channels=4, in_bits=4, lanes=2),
        "residual": lambda: ResidualAddEngine(lanes=2, words_per_image=6, main_width=12,
                                              skip_bits=4, skip_shift=5, shift=6, out_bits=4,
                                              skip_depth=8),
    }


@pytest.mark.parametrize("name", list(designs()))
def test_lint_clean(name, tmp_path):
    path = tmp_path / f"{name}.v"
    path.write_text(to_verilog(designs()[name](), name))
    clean, output = lint_verilog(path, name)
    assert clean, output
