"""A small random network with a squeeze-and-excitation gate (issue 16) for the generator's
tests in both tiers (``tests/test_plan_gate.py``, ``rtl_tests/test_network_gate.py``).

:func:`gate_network`: input 8x8x3 -> conv 3x3 (8 channels) -> swish -> [global average pool ->
dense 4 -> swish -> dense 8 -> sigmoid] -> gate (x = the swish map, g = the sigmoid, the
paper's trained two-input multiplication unit, K = 40) -> conv 1x1 (8 channels, reading the
gate's signed words) -> ReLU -> global average pool -> dense 3. The one-input units are the
library's swish (K = 12) and sigmoid (K = 8) quantised at 8/8/6 bits, the multiplication unit at
8/8/8 (:func:`python_ref.quant.quantize_unit`); every requantisation shift, the gate's two
included, is chosen so that the values on a few random images span about the unit's input
range (a network parameter like any other: the tests compare the hardware with ``python_ref``
on whatever it is).
"""
from __future__ import annotations

import numpy as np

from python_ref import ir
from python_ref.quant import IntAmosUnit, quantize_unit
from python_ref.units import load_unit
from rtl_tests.unit_network import calibrate, unit_spec

__all__ = ["GATE_FOLDINGS", "SERIAL_FOLDINGS", "gate_network", "gate_spec"]

#: Foldings the tests run: fully folded; lanes on the map's units, the pool and the gate with
#: lane adapters between them (the map leaves the swish 4 a word, the gate takes 2); and one
#: where the gate, one lane, is almost as slow as the slowest layer.
GATE_FOLDINGS = [
    {},
    {"c1": {"pe": 4, "simd": 3}, "c1.act": {"lanes": 4}, "se.pool": {"lanes": 4},
     "se.fc1": {"pe": 2, "simd": 2}, "se.fc2": {"pe": 4, "simd": 1}, "se.fc2.act": {"lanes": 2},
     "gate": {"lanes": 2}, "c2.act": {"pe": 4, "simd": 2}, "pool": {"lanes": 2},
     "fc": {"pe": 3, "simd": 2}},
    # the gate (one lane, 512 cycles) almost the slowest layer (the first conv, 576): the
    # map comes at nearly the gate's pace
    {"c1": {"pe": 8, "simd": 3}, "c1.act": {"lanes": 8}, "se.pool": {"lanes": 8},
     "se.fc1": {"pe": 4, "simd": 8}, "se.fc2": {"pe": 8, "simd": 4}, "c2.act": {"pe": 8,
                                                                                 "simd": 2},
     "pool": {"lanes": 2}, "fc": {"pe": 3, "simd": 8}},
]

#: Foldings with serial units (``{"serial": n}``): the gate (8 serial K = 40 units, the slowest
#: layer) after a 4-unit serial swish, the sigmoid of the gate vector one serial unit; and the
#: gate in 4 serial units behind the pipelined swish, lane adapters around it.
SERIAL_FOLDINGS = [
    {"c1": {"pe": 4, "simd": 3}, "c1.act": {"serial": 4}, "se.pool": {"lanes": 4},
     "se.fc1": {"pe": 2, "simd": 2}, "se.fc2": {"pe": 4, "simd": 1},
     "se.fc2.act": {"serial": 1}, "gate": {"serial": 8}, "c2.act": {"pe": 4, "simd": 2},
     "pool": {"lanes": 2}, "fc": {"pe": 3, "simd": 2}},
    {"c1": {"pe": 8, "simd": 3}, "c1.act": {"lanes": 8}, "se.pool": {"lanes": 8},
     "se.fc1": {"pe": 4, "simd": 8}, "se.fc2": {"pe": 8, "simd": 4}, "gate": {"serial": 4},
     "c2.act": {"pe": 8, "simd": 2}, "pool": {"lanes": 2}, "fc": {"pe": 3, "simd": 8}},
]


def gate_spec(unit: IntAmosUnit, prefix: str, arrays: dict) -> dict:
    """The unit library entry of a two-input integer unit (:func:`unit_spec` with ``c2``,
    ``in2_range`` and ``in2_scale``), its arrays put into ``arrays``."""
    spec = unit_spec(unit, prefix, arrays)
    arrays[f"{prefix}.c2"] = np.asarray(unit.c2, np.int64)
    spec.update({"c2": f"{prefix}.c2", "in2_range": list(unit.in2_range),
                 "in2_scale": unit.in2_scale})
    return spec


def gate_network(path=None, seed=0, *, channels=8, hidden=4, classes=3, K=4) -> ir.Graph:
    """The description, with random int8 weights and biases; written to ``path`` (a stem)
    when given."""
    rng = np.random.default_rng(seed)
    A: dict[str, np.ndarray] = {}
    units = {"r": {"kind": "relu", "K": K},
             "swish": unit_spec(quantize_unit(load_unit("swish"), 8, 8, 6), "swish", A),
             "sigmoid": unit_spec(quantize_unit(load_unit("sigmoid"), 8, 8, 6), "sigmoid", A),
             "mult": gate_spec(quantize_unit(load_unit("mult"), 8, 8, 8), "mult", A)}
    C = channels
    A.update({"c1.w": rng.integers(-127, 128, (C, 3, 3, 3)),
              "c1.b": rng.integers(-2000, 2000, C),
              "se.fc1.w": rng.integers(-127, 128, (hidden, C)),
              "se.fc1.b": rng.integers(-500, 500, hidden),
              "se.fc2.w": rng.integers(-127, 128, (C, hidden)),
              "se.fc2.b": rng.integers(-500, 500, C),
              "c2.w": rng.integers(-127, 128, (C, 1, 1, C)),
              "c2.b": rng.integers(-2000, 2000, C),
              "fc.w": rng.integers(-127, 128, (classes, C)),
              "fc.b": rng.integers(-1000, 1000, classes)})
    n = [{"name": "input", "op": "input", "inputs": [], "shape": [8, 8, 3], "bits": 8},
         {"name": "c1", "op": "conv", "inputs": ["input"], "weight": "c1.w", "bias": "c1.b",
          "kernel": 3, "stride": 1, "padding": 1, "out_channels": C},
         {"name": "c1.act", "op": "amos", "inputs": ["c1"], "unit": "swish", "rshift": [0]},
         {"name": "se.pool", "op": "gap", "inputs": ["c1.act"]},
         {"name": "se.fc1", "op": "dense", "inputs": ["se.pool"], "weight": "se.fc1.w",
          "bias": "se.fc1.b", "out_features": hidden},
         {"name": "se.fc1.act", "op": "amos", "inputs": ["se.fc1"], "unit": "swish",
          "rshift": [0]},
         {"name": "se.fc2", "op": "dense", "inputs": ["se.fc1.act"], "weight": "se.fc2.w",
          "bias": "se.fc2.b", "out_features": C},
         {"name": "se.fc2.act", "op": "amos", "inputs": ["se.fc2"], "unit": "sigmoid",
          "rshift": [0]},
         {"name": "gate", "op": "amos", "inputs": ["c1.act", "se.fc2.act"], "unit": "mult",
          "rshift": [0, 0]},
         {"name": "c2", "op": "conv", "inputs": ["gate"], "weight": "c2.w", "bias": "c2.b",
          "kernel": 1, "stride": 1, "padding": 0, "out_channels": C},
         {"name": "c2.act", "op": "amos", "inputs": ["c2"], "unit": "r", "rshift": [0]},
         {"name": "pool", "op": "gap", "inputs": ["c2.act"]},
         {"name": "fc", "op": "dense", "inputs": ["pool"], "weight": "fc.w", "bias": "fc.b",
          "out_features": classes}]
    g = ir.Graph("gate_net", n, units, A, ["fc"])
    calibrate(g, rng.integers(0, 256, (16, 8, 8, 3)))
    ir.validate(g)
    if path is not None:
        ir.save(g, path)
    return g
