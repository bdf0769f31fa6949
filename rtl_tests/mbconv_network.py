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

With ``linear=True`` the projection is linear, as in EfficientNet: the raw 1x1 projection (8
ch) goes through the signed identity unit (:meth:`python_ref.quant.IntAmosUnit.identity`,
``K`` = the swish's ``d_bits``, a kind ``"amos"`` unit) into a 1x1 ``head`` conv reading its
two's-complement words -> ReLU -> gap -> dense. With ``skip=True`` (implies ``linear``, and
``dw_stride=1``) the block has its identity skip too: the stem's activation is a swish (the
block input ``x``, two's-complement words), and ``sum = add(proj, x)`` (``x`` shifted left
by ``lshift``, the power of two that brings ``x`` to the projection's accumulator scale on the
calibration images) goes through the identity unit into the ``head`` conv. The identity's
shift is calibrated as for the other units, against its ``K``-bit output range.

With ``se=True`` (implies ``skip``) the block is EfficientNet's whole: squeeze-and-excitation
between the depthwise swish and the projection, ``gap -> dense (channels / 2) -> swish -> dense
(expanded channels) -> sigmoid`` and the gate (the library's trained two-input multiplication
unit, K = 40) of the depthwise swish's map by that vector, which the projection reads: the
zoo's ``effnet_cifar`` blocks 4 and 6, where the skip FIFO must hold the whole image while the
gate waits for its map (:func:`amos_hw.buffers.skip_depth`).
"""
from __future__ import annotations

import numpy as np

from python_ref import ir, snn
from python_ref.quant import IntAmosUnit, quantize_unit
from python_ref.units import load_unit
from rtl_tests.gate_network import gate_spec
from rtl_tests.unit_network import calibrate, unit_spec

__all__ = ["LINEAR_FOLDINGS", "MBCONV_FOLDINGS", "SERIAL_FOLDINGS", "SE_FOLDINGS",
           "SKIP_FOLDINGS", "mbconv_network"]

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


#: Foldings of the skip variant (``skip=True``): fully folded but the stem, the expansion and
#: the depthwise conv (the projection the slowest layer); and lanes everywhere, the add's lanes
#: those of its two inputs, lane adapters between the add, its identity unit (4 lanes) and the
#: head conv, the depthwise conv the slowest layer.
SKIP_FOLDINGS = [
    {"stem": {"pe": 8, "simd": 3}, "exp": {"pe": 4, "simd": 2}, "dw": {"lanes": 2}},
    {"stem": {"pe": 8, "simd": 3}, "stem.act": {"lanes": 2}, "exp": {"pe": 4, "simd": 4},
     "exp.act": {"lanes": 4}, "dw": {"lanes": 8}, "dw.act": {"lanes": 1},
     "proj": {"pe": 2, "simd": 4}, "sum": {"lanes": 2}, "sum.act": {"lanes": 4},
     "head.act": {"pe": 2, "simd": 4}, "pool": {"lanes": 2}},
]
#: Foldings of the squeeze-and-excitation variant (``se=True``): fully folded but the stem, the
#: expansion and the depthwise conv; and lanes on the map's path, the gate in 2 serial units,
#: the squeeze path's dense layers with a few outputs a cycle.
SE_FOLDINGS = [
    {"stem": {"pe": 8, "simd": 3}, "exp": {"pe": 4, "simd": 2}, "dw": {"lanes": 2}},
    {"stem": {"pe": 8, "simd": 3}, "stem.act": {"lanes": 2}, "exp": {"pe": 4, "simd": 4},
     "exp.act": {"lanes": 4}, "dw": {"lanes": 8}, "dw.act": {"lanes": 2},
     "se.pool": {"lanes": 2}, "se.fc1": {"pe": 2, "simd": 4}, "se.fc2": {"pe": 4, "simd": 2},
     "gate": {"serial": 2}, "proj": {"pe": 2, "simd": 4}, "sum": {"lanes": 2},
     "sum.act": {"lanes": 4}, "head.act": {"pe": 2, "simd": 4}, "pool": {"lanes": 2}},
]
#: The same two for the linear variant (``linear=True``: the stem fused with its ReLU, the
#: identity unit ``proj.act`` after the raw projection).
LINEAR_FOLDINGS = [
    {"stem.act": {"pe": 8, "simd": 3}, "exp": {"pe": 4, "simd": 2}, "dw": {"lanes": 2}},
    {"stem.act": {"pe": 8, "simd": 3}, "exp": {"pe": 4, "simd": 4}, "exp.act": {"lanes": 4},
     "dw": {"lanes": 8}, "dw.act": {"lanes": 1}, "proj": {"pe": 2, "simd": 4},
     "proj.act": {"lanes": 4}, "head.act": {"pe": 2, "simd": 4}, "pool": {"lanes": 2}},
]

#: Foldings with serial swish units (``{"serial": n}``), as ``(mbconv_network keywords,
#: folding)``: the depthwise conv (2 lanes, a pixel's 8 channel groups back to back) before a
#: 2-unit serial swish, the slowest layer, which its input FIFO keeps from stalling the
#: depthwise conv; the same with a 4-unit serial swish, the depthwise conv the slowest; and
#: the skip block with three serial swish units, the identity unit in lanes.
SERIAL_FOLDINGS = [
    ({}, {"stem.act": {"pe": 8, "simd": 3}, "exp": {"pe": 4, "simd": 2},
          "exp.act": {"serial": 4}, "dw": {"lanes": 2}, "dw.act": {"serial": 2},
          "proj.act": {"pe": 2, "simd": 2}}),
    ({}, {"stem.act": {"pe": 8, "simd": 3}, "exp": {"pe": 4, "simd": 2},
          "exp.act": {"serial": 4}, "dw": {"lanes": 2}, "dw.act": {"serial": 4},
          "proj.act": {"pe": 2, "simd": 2}}),
    ({"skip": True}, {"stem": {"pe": 8, "simd": 3}, "stem.act": {"serial": 4},
                      "exp": {"pe": 4, "simd": 4}, "exp.act": {"serial": 8}, "dw": {"lanes": 8},
                      "dw.act": {"serial": 4}, "proj": {"pe": 2, "simd": 4},
                      "sum": {"lanes": 2}, "sum.act": {"lanes": 4},
                      "head.act": {"pe": 2, "simd": 4}, "pool": {"lanes": 2}}),
]


def mbconv_network(path=None, seed=0, *, dw_stride=1, channels=8, expand=2, classes=3,
                   unit_bits=(8, 8, 6), K=4, linear=False, skip=False,
                   se=False) -> ir.Graph:
    """The description, with random int8 weights and biases; written to ``path`` (a stem)
    when given. ``dw_stride`` is the depthwise conv's stride (1 or 2), ``expand`` the expansion
    ratio (``channels * expand`` channels between the 1x1 convs), ``K`` the ReLU units'.
    ``linear``: a linear projection through the identity unit; ``skip``: and the identity skip
    (module docstring); ``se``: and squeeze-and-excitation (implies ``skip``)."""
    skip = skip or se
    if skip and dw_stride != 1:
        raise ValueError("an identity skip needs dw_stride=1 (the block keeps its map size)")
    linear = linear or skip
    rng = np.random.default_rng(seed)
    A: dict[str, np.ndarray] = {}
    units = {"r": {"kind": "relu", "K": K},
             "swish": unit_spec(quantize_unit(load_unit("swish"), *unit_bits), "swish", A)}
    if linear:
        units["id"] = unit_spec(IntAmosUnit.identity(unit_bits[2]), "id", A)
    wide = channels * expand
    if se:
        hidden = max(1, channels // 2)
        units.update({
            "sigmoid": unit_spec(quantize_unit(load_unit("sigmoid"), *unit_bits), "sigmoid", A),
            "mult": gate_spec(quantize_unit(load_unit("mult"), 8, 8, 8), "mult", A)})
        A.update({"se.fc1.w": rng.integers(-127, 128, (hidden, wide)),
                  "se.fc1.b": rng.integers(-500, 500, hidden),
                  "se.fc2.w": rng.integers(-127, 128, (wide, hidden)),
                  "se.fc2.b": rng.integers(-500, 500, wide)})
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
         conv("stem", "input", 3, 1, channels), act("stem", "swish" if skip else "r"),
         conv("exp", "stem.act", 1, 1, wide), act("exp", "swish"),
         conv("dw", "exp.act", 3, dw_stride, wide, groups=wide), act("dw", "swish")]
    if se:
        n += [{"name": "se.pool", "op": "gap", "inputs": ["dw.act"]},
              _dense("se.fc1", "se.pool", hidden), act("se.fc1", "swish"),
              _dense("se.fc2", "se.fc1.act", wide), act("se.fc2", "sigmoid"),
              {"name": "gate", "op": "amos", "inputs": ["dw.act", "se.fc2.act"], "unit": "mult",
               "rshift": [0, 0]}]
    n.append(conv("proj", "gate" if se else "dw.act", 1, 1, channels))
    if linear:
        A.update({"head.w": rng.integers(-127, 128, (channels, 1, 1, channels)),
                  "head.b": rng.integers(-500, 500, channels)})
    if skip:
        n += [{"name": "sum", "op": "add", "inputs": ["proj", "stem.act"], "lshift": [0, 0]},
              act("sum", "id"), conv("head", "sum.act", 1, 1, channels), act("head", "r")]
    elif linear:
        n += [act("proj", "id"), conv("head", "proj.act", 1, 1, channels), act("head", "r")]
    else:
        n.append(act("proj", "r"))
    last = n[-1]["name"]
    n += [{"name": "pool", "op": "gap", "inputs": [last]},
          {"name": "fc", "op": "dense", "inputs": ["pool"], "weight": "fc.w", "bias": "fc.b",
           "out_features": classes}]
    name = f"mbconv_s{dw_stride}" + ("_se" if se else "_skip" if skip else
                                      "_linear" if linear else "")
    g = ir.Graph(name, n, units, A, ["fc"])
    x = rng.integers(0, 256, (16, 8, 8, 3))
    if linear:
        _calibrate_linear(g, x, skip)
    else:
        calibrate(g, x)
    ir.validate(g)
    if path is not None:
        ir.save(g, path)
    return g


def _dense(name: str, src: str, out: int) -> dict:
    return {"name": name, "op": "dense", "inputs": [src], "weight": f"{name}.w",
            "bias": f"{name}.b", "out_features": out}


def _calibrate_linear(g: ir.Graph, x: np.ndarray, skip: bool) -> None:
    """:func:`calibrate` with the identity unit's range taken as its ``K``-bit output range
    (its ``in_range`` is int32's: it saturates by itself) and, with ``skip``, the add's
    ``lshift`` of ``x``: the smallest power of two that brings the 99th percentile of
    ``|x|`` to at least that of ``|proj|``, capped at 16."""
    spec = g.units["id"]
    K = len(g.arrays[spec["d"]])
    spec["in_range"] = [-(2 ** (K - 1)), 2 ** (K - 1) - 1]
    try:
        calibrate(g, x)
        if skip:
            tr = snn.run(g, x, trace=["proj", "stem.act"]).traces
            hi_p, hi_x = (max(1.0, float(np.percentile(np.abs(tr[t]), 99)))
                          for t in ("proj", "stem.act"))
            lshift = 0
            while hi_x * 2**lshift < hi_p and lshift < 16:
                lshift += 1
            g.node["sum"]["lshift"] = [0, lshift]
            calibrate(g, x)
    finally:
        spec["in_range"] = [-(2**31), 2**31 - 1]
