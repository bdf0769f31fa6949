"""A small random network with an EfficientNet-style MBConv block's convolutions and trained
swish units (issue 16) for the generator's tests in both tiers (``tests/test_plan_mbconv.py``,
``rtl_tests/test_network_mbconv.py``).

:func:`mbconv_network`: input 8x8x3 -> conv 3x3 (8 ch) -> ReLU -> conv 1x1 expansion (16 ch)
-> swish -> depthwise conv 3x3 (stride 1 or 2, padding 1) reading the swish's signed words ->
swish -> conv 1x1 projection (8 ch) reading the second swish's signed words -> ReLU -> gap ->
dense (3 classes). The depthwise conv is raw before its swish: it emits ``v = (acc +
2**(S-1)) >> S``, ``S`` the swish's ``rshift``. The swish is the library's trained unit (K = 12)
quantised with :func:`python_ref.quant.quantize_unit` at ``unit_bits``; the shifts are chosen as
:func:`rtl_tests.unit_network.unit_network` chooses them (the layer's values on a few random
images span about the unit's input range).
"""
from __future__ import annotations

import numpy as np

from python_ref import ir
from python_ref.quant import quantize_unit
from python_ref.units import load_unit
from rtl_tests.unit_network import calibrate, unit_spec

__all__ = ["MBCONV_FOLDINGS", "mbconv_network"]

#: Foldings the tests run, lanes on the depthwise conv and the units: the same lanes on the
#: depthwise conv and the swish units, the depthwise conv the slowest layer; and different
#: lanes everywhere (lane adapters around the units), the depthwise conv the slowest at
#: stride 1.
MBCONV_FOLDINGS = [
    {"stem.act": {"pe": 8, "simd": 3}, "exp": {"pe": 4, "simd": 2}, "exp.act": {"lanes": 2},
     "dw": {"lanes": 2}, "dw.act": {"lanes": 2}, "proj.act": {"pe": 2, "simd": 2}},
    {"stem.act": {"pe": 8, "simd": 3}, "exp": {"pe": 4, "simd": 2}, "exp.act": {"lanes": 4},
     "dw": {"lanes": 8}, "dw.act": {"lanes": 1}, "proj.act": {"pe": 4, "simd": 4},
     "pool": {"lanes": 2}, "fc": {"pe": 3, "simd": 2}},
]


def mbconv_network(path=None, seed=0, *, dw_stride=1, channels=8, expand=2, classes=3,
                   unit_bits=(8, 8, 6), K=4) -> ir.Graph:
    """The description, with random int8 weights and biases; written to ``path`` (a stem)
    when given. ``dw_stride`` is the depthwise conv's stride (1 or 2), ``expand`` the expansion
    ratio (``channels * expand`` channels between the 1x1 convs), ``K`` the ReLU units'."""
    rng = np.random.default_rng(seed)
    A: dict[str, np.ndarray] = {}
    units = {"r": {"kind": "relu", "K": K},
             "swish": unit_spec(quantize_unit(load_unit("swish"), *unit_bits), "swish", A)}
    wide = channels * expand
    A.update({"stem.w": rng.integers(-127, 128, (channels, 3, 3, 3)),
              "stem.b": rng.integers(-2000, 2000, channels),
              "exp.w": rng.integers(-127, 128, (wide, 1, 1, channels)),
              "exp.b": rng.integers(-500, 500, wide),
              "dw.w": rng.integers(-127, 128, (wide, 3, 3, 1)),
              "dw.b": rng.integers(-500, 500, wide),
              "proj.w": rng.integers(-127, 128, (channels, 1, 1, wide)),
              "proj.b": rng.integers(-500, 500, channels),
              "fc.w": rng.integers(-127, 128, (classes, channels)),
              "fc.b": rng.integers(-1000, 1000, classes)})

    def conv(name, src, kernel, stride, out_channels, **kw):
        return {"name": name, "op": "conv", "inputs": [src], "weight": f"{name}.w",
                "bias": f"{name}.b", "kernel": kernel, "stride": stride,
                "padding": kernel // 2, "out_channels": out_channels, **kw}

    def act(name, unit):
        return {"name": f"{name}.act", "op": "amos", "inputs": [name], "unit": unit,
                "rshift": [0]}

    n = [{"name": "input", "op": "input", "inputs": [], "shape": [8, 8, 3], "bits": 8},
         conv("stem", "input", 3, 1, channels), act("stem", "r"),
         conv("exp", "stem.act", 1, 1, wide), act("exp", "swish"),
         conv("dw", "exp.act", 3, dw_stride, wide, groups=wide), act("dw", "swish"),
         conv("proj", "dw.act", 1, 1, channels), act("proj", "r"),
         {"name": "pool", "op": "gap", "inputs": ["proj.act"]},
         {"name": "fc", "op": "dense", "inputs": ["pool"], "weight": "fc.w", "bias": "fc.b",
          "out_features": classes}]
    g = ir.Graph(f"mbconv_s{dw_stride}", n, units, A, ["fc"])
    calibrate(g, rng.integers(0, 256, (16, 8, 8, 3)))
    ir.validate(g)
    if path is not None:
        ir.save(g, path)
    return g
