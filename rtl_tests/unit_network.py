"""Small random networks with trained AMOS units (issue 16) for the generator's tests in both tiers
(``tests/test_plan_units.py``, ``rtl_tests/test_network_units.py``).

:func:`unit_network`: conv -> swish -> conv (stride 2, reading the swish's signed words) -> ReLU
-> gap -> dense -> sigmoid -> dense, or with ``tail="gap"`` conv -> ReLU -> conv -> swish -> gap
(signed sums) -> dense. The units are the library's trained swish (K = 12) and sigmoid (K = 8),
quantised with :func:`python_ref.quant.quantize_unit` at ``unit_bits``; each requantisation shift
is chosen so that the layer's values on a few random images span about the unit's input range
(a network parameter like any other: the tests compare the hardware with ``python_ref`` on
whatever it is).
"""
from __future__ import annotations

import numpy as np

from python_ref import ir, snn
from python_ref.quant import IntAmosUnit, quantize_unit
from python_ref.units import load_unit

__all__ = ["SERIAL_FOLDINGS", "UNIT_FOLDINGS", "calibrate", "unit_network", "unit_spec"]

#: Foldings the tests run: fully folded, lanes on the units with lane adapters around them,
#: and a wide one.
UNIT_FOLDINGS = [
    {},
    {"c1": {"pe": 2, "simd": 3}, "c1.act": {"lanes": 2}, "c2.act": {"pe": 1, "simd": 4},
     "fc1": {"pe": 2, "simd": 1}, "fc1.act": {"lanes": 1}},
    {"c1": {"pe": 4, "simd": 3}, "c1.act": {"lanes": 4}, "c2.act": {"pe": 4, "simd": 2},
     "pool": {"lanes": 4}, "fc1": {"pe": 4, "simd": 4}, "fc1.act": {"lanes": 2},
     "fc": {"pe": 3, "simd": 2}},
]

#: Foldings with serial units (``{"serial": n}``, one word every ``K`` cycles): ``tail="dense"``
#: with both units serial, the swish (4 units behind a 4-lane conv) the slowest layer; and
#: ``tail="gap"`` with the swish serial (2 units, depth 7) behind a 4-lane conv.
SERIAL_FOLDINGS = [
    ("dense", {"c1": {"pe": 4, "simd": 3}, "c1.act": {"serial": 4},
               "c2.act": {"pe": 4, "simd": 2}, "pool": {"lanes": 4}, "fc1": {"pe": 4, "simd": 4},
               "fc1.act": {"serial": 2}, "fc": {"pe": 3, "simd": 2}}),
    ("gap", {"c1.act": {"pe": 4, "simd": 3}, "c2": {"pe": 4, "simd": 4},
             "c2.act": {"serial": 2, "depth": 7}, "pool": {"lanes": 2}}),
]


def unit_spec(unit: IntAmosUnit, prefix: str, arrays: dict) -> dict:
    """The unit library entry of a trained integer unit, its arrays put into ``arrays``."""
    for k in ("c", "T", "h", "d"):
        arrays[f"{prefix}.{k}"] = np.asarray(getattr(unit, k), np.int64)
    return {"kind": "amos", "source": unit.name, "c": f"{prefix}.c", "T": f"{prefix}.T",
            "h": f"{prefix}.h", "d": f"{prefix}.d", "in_range": list(unit.in_range),
            "in_scale": unit.in_scale, "out_scale": unit.out_scale}


def _shift_for(values: np.ndarray, hi: int) -> int:
    """The smallest shift that brings the 99th percentile of ``|values|`` within ``hi``."""
    top = float(np.percentile(np.abs(values), 99)) if values.size else 0.0
    s = 0
    while top / 2**s > hi:
        s += 1
    return s


def calibrate(g: ir.Graph, x: np.ndarray) -> None:
    """Set each ``amos`` op's ``rshift``, in order, from its inputs on ``x`` (one shift per
    input: a ReLU's ``2**K - 1``, a trained unit's ``in_range`` / ``in2_range``)."""
    for n in g.nodes:
        if n["op"] != "amos":
            continue
        tr = snn.run(g, x, trace=list(n["inputs"])).traces
        spec = g.units[n["unit"]]
        if spec["kind"] == "relu":
            his = [2 ** spec["K"] - 1]
        else:
            his = [spec["in_range"][1], spec.get("in2_range", spec["in_range"])[1]]
        n["rshift"] = [_shift_for(tr[t], hi) for t, hi in zip(n["inputs"], his, strict=False)]


def unit_network(path=None, seed=0, *, tail="dense", channels=4, classes=3,
                 unit_bits=(8, 8, 6), K=4) -> ir.Graph:
    """The description, with random int8 weights and biases; written to ``path`` (a stem)
    when given. ``tail="dense"``: the swish feeds a convolution and a sigmoid sits between two
    dense layers; ``tail="gap"``: the swish feeds the global pool."""
    if tail not in ("dense", "gap"):
        raise ValueError(f"tail must be 'dense' or 'gap', not {tail!r}")
    rng = np.random.default_rng(seed)
    A: dict[str, np.ndarray] = {}
    units = {"r": {"kind": "relu", "K": K},
             "swish": unit_spec(quantize_unit(load_unit("swish"), *unit_bits), "swish", A),
             "sigmoid": unit_spec(quantize_unit(load_unit("sigmoid"), *unit_bits), "sigmoid",
                                  A)}
    first, second = ("swish", "r") if tail == "dense" else ("r", "swish")
    A.update({"c1.w": rng.integers(-127, 128, (channels, 3, 3, 3)),
              "c1.b": rng.integers(-2000, 2000, channels),
              "c2.w": rng.integers(-127, 128, (channels, 3, 3, channels)),
              "c2.b": rng.integers(-2000, 2000, channels)})
    n = [{"name": "input", "op": "input", "inputs": [], "shape": [8, 8, 3], "bits": 8},
         {"name": "c1", "op": "conv", "inputs": ["input"], "weight": "c1.w", "bias": "c1.b",
          "kernel": 3, "stride": 1, "padding": 1, "out_channels": channels},
         {"name": "c1.act", "op": "amos", "inputs": ["c1"], "unit": first, "rshift": [0]},
         {"name": "c2", "op": "conv", "inputs": ["c1.act"], "weight": "c2.w", "bias": "c2.b",
          "kernel": 3, "stride": 2, "padding": 1, "out_channels": channels},
         {"name": "c2.act", "op": "amos", "inputs": ["c2"], "unit": second, "rshift": [0]},
         {"name": "pool", "op": "gap", "inputs": ["c2.act"]}]
    if tail == "dense":
        hidden = 2 * channels
        A.update({"fc1.w": rng.integers(-127, 128, (hidden, channels)),
                  "fc1.b": rng.integers(-500, 500, hidden)})
        n += [{"name": "fc1", "op": "dense", "inputs": ["pool"], "weight": "fc1.w",
               "bias": "fc1.b", "out_features": hidden},
              {"name": "fc1.act", "op": "amos", "inputs": ["fc1"], "unit": "sigmoid",
               "rshift": [0]}]
        last, width = "fc1.act", hidden
    else:
        last, width = "pool", channels
    A.update({"fc.w": rng.integers(-127, 128, (classes, width)),
              "fc.b": rng.integers(-1000, 1000, classes)})
    n.append({"name": "fc", "op": "dense", "inputs": [last], "weight": "fc.w", "bias": "fc.b",
              "out_features": classes})
    g = ir.Graph(f"unit_net_{tail}", n, units, A, ["fc"])
    calibrate(g, rng.integers(0, 256, (16, 8, 8, 3)))
    ir.validate(g)
    if path is not None:
        ir.save(g, path)
    return g
