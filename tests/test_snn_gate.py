"""The squeeze-and-excitation gate in the IR and the integer reference: a two-input ``amos`` layer
``[x, g]`` with ``g`` of shape (C,) broadcast over the map ``x`` (python_ref.ir validation,
python_ref.snn.requant_inputs / requant_unit / exact_gate, SynOps fan-outs), and the two-input
quantisation of the library's multiplication unit (python_ref.quant.quantize_unit_for_inputs)
against x * y on a grid."""
from __future__ import annotations

import numpy as np
import pytest

from python_ref import ir, snn
from python_ref.quant import (
    IntAmosUnit,
    quantize_unit_for_input,
    quantize_unit_for_inputs,
    requant_shift,
)
from python_ref.units import load_unit

#: max |y * out_scale - x_real * g_real| / (R_1 * R_2) over the integer grid of the inputs
#: (spans R_1 = 4, R_2 = 1, 12-bit inputs, w_bits = d_bits = 10); measured 0.1047. The float
#: unit's own fit error on [-1, 1]^2 is 0.107 (python_ref/units/mult.json max_abs_err).
MULT_ERR = 0.115


def _spec(name: str, u: IntAmosUnit, arrays: dict) -> dict:
    """A unit-library entry for ``u`` (arrays ``<name>.c`` ...), as the converter writes it."""
    for k in ("c", "T", "h", "d"):
        arrays[f"{name}.{k}"] = np.array(getattr(u, k), np.int64)
    spec = {"kind": "amos", "c": f"{name}.c", "T": f"{name}.T", "h": f"{name}.h",
            "d": f"{name}.d", "in_range": list(u.in_range), "in_scale": u.in_scale,
            "out_scale": u.out_scale, "source": u.name}
    if u.c2 is not None:
        arrays[f"{name}.c2"] = np.array(u.c2, np.int64)
        spec.update(c2=f"{name}.c2", in2_range=list(u.in2_range), in2_scale=u.in2_scale)
    return spec


def _graph(H: int = 4, C: int = 3, seed: int = 0) -> ir.Graph:
    """conv -> swish (x) -> gap -> dense -> sigmoid (g) -> gate [x, g] -> 1x1 conv."""
    rng = np.random.default_rng(seed)
    arrays = {"c1.w": rng.integers(-20, 21, (C, 3, 3, 1)).astype(np.int8),
              "c1.b": rng.integers(-50, 50, C).astype(np.int32),
              "d1.w": rng.integers(-30, 31, (C, C)).astype(np.int8),
              "d1.b": rng.integers(-50, 50, C).astype(np.int32),
              "c2.w": rng.integers(-30, 31, (2, 1, 1, C)).astype(np.int8)}
    sw = quantize_unit_for_input(load_unit("swish"), 6 / 500, 8, 8)
    sg = quantize_unit_for_input(load_unit("sigmoid"), 6 / 300, 8, 8)
    mu = quantize_unit_for_inputs(load_unit("mult"), (sw.out_scale, 2 * sg.out_scale),
                                  (4.0, 1.0), 8, 8)
    units = {"sw": _spec("sw", sw, arrays), "sg": _spec("sg", sg, arrays),
             "mu": _spec("mu", mu, arrays)}
    nodes = [{"name": "input", "op": "input", "inputs": [], "shape": [H, H, 1], "bits": 8},
             {"name": "c1", "op": "conv", "inputs": ["input"], "weight": "c1.w",
              "bias": "c1.b", "kernel": 3, "stride": 1, "padding": 1, "out_channels": C},
             {"name": "x", "op": "amos", "inputs": ["c1"], "unit": "sw", "rshift": [6]},
             {"name": "pool", "op": "gap", "inputs": ["x"]},
             {"name": "d1", "op": "dense", "inputs": ["pool"], "weight": "d1.w",
              "bias": "d1.b", "out_features": C},
             {"name": "s", "op": "amos", "inputs": ["d1"], "unit": "sg", "rshift": [9]},
             {"name": "gate", "op": "amos", "inputs": ["x", "s"], "unit": "mu",
              "rshift": [0, 1]},
             {"name": "c2", "op": "conv", "inputs": ["gate"], "weight": "c2.w", "kernel": 1,
              "stride": 1, "padding": 0, "out_channels": 2}]
    return ir.Graph("gate_net", nodes, units, arrays, ["c2"])


def _pixels(n: int, H: int = 4, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, H, H, 1), dtype=np.uint8)


def test_validate_infers_the_gate():
    g = _graph()
    info = ir.validate(g)
    u = g.unit("mu")
    assert info["gate"]["shape"] == (4, 4, 3) == info["x"]["shape"]
    assert info["s"]["shape"] == (3,)
    assert (info["gate"]["lo"], info["gate"]["hi"]) == (int(u.d[u.d < 0].sum()),
                                                        int(u.d[u.d > 0].sum()))
    assert g.neurons() == 16 * 3 * (12 + 40) + 3 * 8  # swish, mult per element; sigmoid


def test_equal_shapes_are_accepted():
    g = _graph()
    g.nodes[6]["inputs"] = ["x", "x"]
    assert ir.validate(g)["gate"]["shape"] == (4, 4, 3)


@pytest.mark.parametrize("edit,match", [
    # g of the wrong length
    (lambda g: g.nodes[4].update(out_features=2) or g.arrays.update(
        {"d1.w": np.ones((2, 3), np.int8), "d1.b": np.zeros(2, np.int32)}),
     r"layer 'gate': a two-input unit takes x and g = 's' of the same shape or g of shape "
     r"\(C,\) = \(3,\) .* x = 'x' has shape \(4, 4, 3\), g has shape \(2,\)"),
    # the map as the second input: only g is broadcast
    (lambda g: g.nodes[6].update(inputs=["s", "x"]),
     r"layer 'gate': .* x = 's' has shape \(3,\), g has shape \(4, 4, 3\)"),
    # one shift for two inputs
    (lambda g: g.nodes[6].update(rshift=[0]),
     r"layer 'gate': rshift must hold one integer 0..62 per input"),
    # a one-input unit on two inputs
    (lambda g: g.nodes[6].update(unit="sw"),
     r"layer 'gate': unit 'sw' takes 1 input\(s\), the layer gives 2"),
])
def test_bad_gates_name_the_layer(edit, match):
    g = _graph()
    edit(g)
    with pytest.raises(ir.IRError, match=match):
        ir.validate(g)


def test_gate_equals_the_rule_and_bitserial():
    g = _graph()
    x = _pixels(6)
    res = snn.run(g, x, trace=["x", "s", "gate"])
    u = g.unit("mu")
    a, s = res.traces["x"], res.traces["s"]
    v1 = np.clip(requant_shift(a, 0), *u.in_range)
    v2 = np.clip(requant_shift(s, 1), *u.in2_range)
    want = np.empty(a.shape, np.int64)
    for n, h, w, c in np.ndindex(a.shape):
        z = []
        for i in range(u.K):
            m = (int(u.c[i]) * int(v1[n, h, w, c]) + int(u.c2[i]) * int(v2[n, c])
                 - int(u.T[i]) - sum(int(u.h[i, j]) * z[j] for j in range(i)))
            z.append(int(m >= 0))
        want[n, h, w, c] = sum(int(di) * zi for di, zi in zip(u.d, z, strict=True))
    np.testing.assert_array_equal(res.traces["gate"], want)
    assert len(np.unique(want)) > 5  # the gate does not sit in one corner
    bs = snn.run(g, x, bitserial=True, trace=["gate"])
    np.testing.assert_array_equal(bs.traces["gate"], want)
    np.testing.assert_array_equal(bs.logits, res.logits)
    np.testing.assert_array_equal(bs.spikes["gate"], res.spikes["gate"])


def test_requant_inputs_broadcasts_g_over_the_map():
    x = np.arange(2 * 2 * 3 * 4).reshape(2, 2, 3, 4)
    g = np.arange(8).reshape(2, 4) * 10
    v1, v2 = snn.requant_inputs([x, g], [0, 1])
    assert v2.shape == x.shape
    for n, h, w, c in np.ndindex(x.shape):
        assert v2[n, h, w, c] == (g[n, c] + 1) >> 1
    np.testing.assert_array_equal(v1, x)
    with pytest.raises(ValueError, match=r"do not broadcast"):
        snn.requant_inputs([x, np.zeros((2, 3), np.int64)], [0, 0])
    with pytest.raises(ValueError, match="one rshift per unit input"):
        snn.requant_inputs([x, g], [0])


def test_gate_synops_fan_out_of_g_is_the_map_size():
    g = _graph()
    res = snn.run(g, _pixels(5), synops=True)
    spikes = snn.run(g, _pixels(5), trace=True)
    # the gate reads x once per element and each g[c] once per position (4 x 4)
    want = res.spikes["x"] + 16 * res.spikes["s"]
    np.testing.assert_array_equal(res.synops["gate"], want)
    assert spikes.spikes["s"].sum() > 0
    fan = snn.fan_out((3,), g.node["gate"], (4, 4, 3))
    np.testing.assert_array_equal(fan, [16, 16, 16])
    np.testing.assert_array_equal(snn.fan_out((4, 4, 3), g.node["gate"], (4, 4, 3)),
                                  np.ones((4, 4, 3)))


def test_exact_gates_compute_the_product():
    g = _graph()
    x = _pixels(6)
    res = snn.run(g, x, trace=["x", "s", "gate"], exact_gates=True)
    u = g.unit("mu")
    a, s = res.traces["x"], res.traces["s"]
    v1 = np.clip(a, *u.in_range) * u.in_scale
    v2 = np.clip((s + 1) >> 1, *u.in2_range)[:, None, None, :] * u.in2_scale
    want = np.rint(v1 * v2 / u.out_scale)
    np.testing.assert_array_equal(res.traces["gate"], want)
    bs = snn.run(g, x, bitserial=True, exact_gates=True, synops=True)
    np.testing.assert_array_equal(bs.logits, res.logits)
    # the plain gate differs from the exact one (the unit's approximation error)
    plain = snn.run(g, x, trace=["gate"])
    assert not np.array_equal(plain.traces["gate"], res.traces["gate"])
    lo, hi = snn.exact_gate_range(u)
    assert lo <= want.min() and want.max() <= hi


def test_exact_gates_need_the_scales():
    g = _graph()
    del g.units["mu"]["in2_scale"]
    with pytest.raises(ir.IRError, match=r"layer 'gate': exact_gates needs the unit 'mu' to "
                                         r"give in2_scale"):
        snn.run(g, _pixels(1), exact_gates=True)


def test_signed_spikes_are_twos_complement():
    y = np.arange(-8, 8)
    z, d = snn.signed_spikes(y, 4)
    np.testing.assert_array_equal(d, [-8, 4, 2, 1])
    np.testing.assert_array_equal(z.astype(np.int64) @ d, y)
    np.testing.assert_array_equal(z[0], [1, 0, 0, 0])  # -8
    with pytest.raises(ValueError, match="do not fit a 4-bit word"):
        snn.signed_spikes(np.array([8]), 4)


def test_mult_unit_against_the_product_on_a_grid():
    fu = load_unit("mult")
    assert fu.K == 40 and fu.inputs == 2 and [list(p) for p in fu.domain] == [[-1, 1], [-1, 1]]
    r1, r2 = 4.0, 1.0
    u = quantize_unit_for_inputs(fu, (r1 / 2047, r2 / 2047), (r1, r2), 10, 10)
    assert u.in_range == (-2047, 2047) == u.in2_range
    assert max(np.abs(u.c).max(), np.abs(u.c2).max()) == 511
    assert np.abs(u.d).max() == 511
    v1 = np.arange(-2047, 2048)
    v2 = np.arange(-2047, 2048, 7)
    A, B = np.meshgrid(v1, v2)
    got = u(A, B) * u.out_scale
    err = np.abs(got - (A * u.in_scale) * (B * u.in2_scale)) / (r1 * r2)
    assert err.max() <= MULT_ERR, err.max()
    assert err.mean() <= 0.02, err.mean()
    # inputs beyond the span saturate
    np.testing.assert_array_equal(u(np.array([5000]), np.array([-9000])),
                                  u(np.array([2047]), np.array([-2047])))


def test_quantize_unit_for_inputs_refuses_bad_arguments():
    fu = load_unit("mult")
    with pytest.raises(ValueError, match="has one input"):
        quantize_unit_for_inputs(load_unit("swish"), (1.0, 1.0))
    with pytest.raises(ValueError, match="in_scales must be two positive finite numbers"):
        quantize_unit_for_inputs(fu, (1.0, 0.0))
    with pytest.raises(ValueError, match="spans must be two positive finite numbers"):
        quantize_unit_for_inputs(fu, (1.0, 1.0), (1.0,))
    with pytest.raises(ValueError, match="w_bits must be at least 2"):
        quantize_unit_for_inputs(fu, (1.0, 1.0), w_bits=1)
