"""Small random networks with the windowed ops (issue 15) for the generator's tests in both tiers
(``tests/test_plan_pool.py``, ``rtl_tests/test_network_pool.py``): conv -> amos -> maxpool ->
depthwise conv -> amos -> avgpool -> dense (:func:`pool_network`), and conv -> amos -> maxpool
-> dense, a VGG's classifier (:func:`conv_pool_dense`)."""
from __future__ import annotations

import numpy as np

from python_ref import ir

__all__ = ["CPD_FOLDINGS", "POOL_FOLDINGS", "conv_pool_dense", "pool_network"]

#: Foldings of :func:`pool_network` the tests run: fully folded, lanes on every window op (with
#: lane adapters around them), and the widest.
POOL_FOLDINGS = [
    {},
    {"stem.act": {"pe": 2, "simd": 3}, "pool1": {"lanes": 2}, "dw.act": {"lanes": 4},
     "pool2": {"lanes": 1}, "fc": {"pe": 1, "simd": 2}},
    {"stem.act": {"pe": 4, "simd": 3}, "pool1": {"lanes": 4}, "dw.act": {"lanes": 2},
     "pool2": {"lanes": 4}, "fc": {"pe": 3, "simd": 4}},
]


#: Foldings of :func:`conv_pool_dense`: the dense layer the slowest, then the convolution.
CPD_FOLDINGS = [
    {"c.act": {"pe": 8, "simd": 3}, "m": {"lanes": 2}},
    {"c.act": {"pe": 2, "simd": 1}, "fc": {"pe": 2, "simd": 4}},
]


def pool_network(path=None, seed=0, *, size=8, channels=4, pool1=(2, 2, 0), dw=(3, 1, 1),
                 pool2=(2, 2, 0), shifts=(11, 8), K=4, classes=3) -> ir.Graph:
    """The description, with random int8 weights and biases; written to ``path`` (a stem)
    when given. ``pool1``, ``dw`` and ``pool2`` are ``(kernel, stride, padding)``."""
    rng = np.random.default_rng(seed)
    A = {"stem.w": rng.integers(-127, 128, (channels, 3, 3, 3)),
         "stem.b": rng.integers(-2000, 2000, channels),
         "dw.w": rng.integers(-127, 128, (channels, dw[0], dw[0], 1)),
         "dw.b": rng.integers(-500, 500, channels)}

    def window(name, op, src, kernel, stride, padding):
        return {"name": name, "op": op, "inputs": [src], "kernel": kernel, "stride": stride,
                "padding": padding}

    n = [{"name": "input", "op": "input", "inputs": [], "shape": [size, size, 3], "bits": 8},
         {"name": "stem", "op": "conv", "inputs": ["input"], "weight": "stem.w",
          "bias": "stem.b", "kernel": 3, "stride": 1, "padding": 1, "out_channels": channels},
         {"name": "stem.act", "op": "amos", "inputs": ["stem"], "unit": "r",
          "rshift": [shifts[0]]},
         window("pool1", "maxpool", "stem.act", *pool1),
         {"name": "dw", "op": "conv", "inputs": ["pool1"], "weight": "dw.w", "bias": "dw.b",
          "kernel": dw[0], "stride": dw[1], "padding": dw[2], "out_channels": channels,
          "groups": channels},
         {"name": "dw.act", "op": "amos", "inputs": ["dw"], "unit": "r", "rshift": [shifts[1]]},
         window("pool2", "avgpool", "dw.act", *pool2)]
    side = size
    for k, s, p in (pool1, dw, pool2):
        side = (side + 2 * p - k) // s + 1
    A["fc.w"] = rng.integers(-127, 128, (classes, side * side * channels))
    A["fc.b"] = rng.integers(-1000, 1000, classes)
    n.append({"name": "fc", "op": "dense", "inputs": ["pool2"], "weight": "fc.w",
              "bias": "fc.b", "out_features": classes})
    g = ir.Graph("pool_net", n, {"r": {"kind": "relu", "K": K}}, A, ["fc"])
    ir.validate(g)
    if path is not None:
        ir.save(g, path)
    return g


def conv_pool_dense(path=None, classes=10, channels=8) -> ir.Graph:
    """conv 3x3 -> ReLU -> max pool 2x2/2 -> dense over the 4x4 map (a VGG's classifier):
    the dense layer reads the map through an image buffer."""
    rng = np.random.default_rng(9)
    A = {"c.w": rng.integers(-127, 128, (channels, 3, 3, 3)),
         "c.b": rng.integers(-2000, 2000, channels),
         "fc.w": rng.integers(-127, 128, (classes, 16 * channels)),
         "fc.b": rng.integers(-1000, 1000, classes)}
    n = [{"name": "input", "op": "input", "inputs": [], "shape": [8, 8, 3], "bits": 8},
         {"name": "c", "op": "conv", "inputs": ["input"], "weight": "c.w", "bias": "c.b",
          "kernel": 3, "stride": 1, "padding": 1, "out_channels": channels},
         {"name": "c.act", "op": "amos", "inputs": ["c"], "unit": "r", "rshift": [11]},
         {"name": "m", "op": "maxpool", "inputs": ["c.act"], "kernel": 2, "stride": 2,
          "padding": 0},
         {"name": "fc", "op": "dense", "inputs": ["m"], "weight": "fc.w", "bias": "fc.b",
          "out_features": classes}]
    g = ir.Graph("conv_pool_dense", n, {"r": {"kind": "relu", "K": 4}}, A, ["fc"])
    ir.validate(g)
    if path is not None:
        ir.save(g, path)
    return g
