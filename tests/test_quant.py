"""Tests of python_ref.quant: integer ReLU, spikes, requantisation and the integer AMOS unit."""
from __future__ import annotations

import numpy as np
import pytest

from python_ref.quant import (
    IntAmosUnit,
    relu_int,
    relu_spikes,
    requant_shift,
    signed_width,
)


def _edge_and_random(K: int, rng: np.random.Generator) -> np.ndarray:
    top = 2**K - 1
    edges = [-(2**31), -(2**20), -top - 1, -2, -1, 0, 1, 2, top - 1, top, top + 1, 2 * top,
             2**20, 2**31 - 1]
    rand = rng.integers(-4 * (top + 1), 4 * (top + 1), size=500)
    return np.array(edges + list(rand), dtype=np.int64)


@pytest.mark.parametrize("K", range(1, 17))
def test_relu_unit_equals_closed_form(K):
    rng = np.random.default_rng(K)
    x = _edge_and_random(K, rng)
    unit = IntAmosUnit.relu(K)
    y = unit(x)
    # the reference is written out independently of relu_int
    expected = np.array([min(max(int(v), 0), 2**K - 1) for v in x], dtype=np.int64)
    assert np.array_equal(y, expected)
    assert np.array_equal(relu_int(x, K), expected)
    spikes = unit.spikes(x)
    assert spikes.dtype == np.uint8 and spikes.shape == x.shape + (K,)
    assert np.array_equal(spikes, relu_spikes(y, K))
    # binary digits, most significant first, written out by hand
    digits = np.array([[int(b) for b in format(int(v), f"0{K}b")] for v in expected])
    assert np.array_equal(spikes, digits)


@pytest.mark.parametrize("K", range(2, 17))
def test_identity_unit_equals_signed_clamp(K):
    rng = np.random.default_rng(100 + K)
    x = _edge_and_random(K, rng)
    unit = IntAmosUnit.identity(K)
    lo, hi = -(2 ** (K - 1)), 2 ** (K - 1) - 1
    expected = np.array([min(max(int(v), lo), hi) for v in x], dtype=np.int64)
    assert np.array_equal(unit(x), expected)
    # the spikes are the K-bit two's complement digits of y, sign first, written out by hand
    digits = np.array([[int(b) for b in format(int(v) & (2**K - 1), f"0{K}b")]
                       for v in expected])
    assert np.array_equal(unit.spikes(x), digits)
    assert unit.name == "identity" and unit.K == K and unit.inputs == 1


def test_identity_unit_parameters_and_errors():
    u = IntAmosUnit.identity(4, scale=0.5)
    assert list(u.c) == [-1, 1, 1, 1]
    assert list(u.T) == [1, 4, 2, 1]
    assert list(u.d) == [-8, 4, 2, 1]
    assert u.h.tolist() == [[0, 0, 0, 0], [-8, 0, 0, 0], [-8, 4, 0, 0], [-8, 4, 2, 0]]
    assert u.in_scale == u.out_scale == 0.5
    with pytest.raises(ValueError, match="at least 2, not 1"):
        IntAmosUnit.identity(1)
    with pytest.raises(ValueError, match="scale must be a positive"):
        IntAmosUnit.identity(4, scale=0.0)


def test_relu_unit_parameters():
    u = IntAmosUnit.relu(4)
    assert list(u.c) == [1, 1, 1, 1]
    assert list(u.T) == [8, 4, 2, 1]
    assert list(u.d) == [8, 4, 2, 1]
    assert u.h.tolist() == [[0, 0, 0, 0], [8, 0, 0, 0], [8, 4, 0, 0], [8, 4, 2, 0]]
    assert u.inputs == 1 and u.c2 is None and u.K == 4 and u.name == "relu"
    assert u.param_count == 4 * 3 + 6
    assert IntAmosUnit.relu(10).param_count == 75


def test_unit_arrays_are_read_only():
    u = IntAmosUnit.relu(3)
    for arr in (u.c, u.T, u.h, u.d):
        with pytest.raises(ValueError):
            arr[0] = 5
    with pytest.raises(AttributeError):
        u.K = 4


def test_relu_spikes_shape_and_range():
    a = np.array([[0, 5], [7, 2]])
    s = relu_spikes(a, 3)
    assert s.shape == (2, 2, 3)
    assert s[0, 1].tolist() == [1, 0, 1]
    assert s[1, 0].tolist() == [1, 1, 1]
    with pytest.raises(ValueError, match="0..7"):
        relu_spikes([8], 3)
    with pytest.raises(ValueError, match="0..7"):
        relu_spikes([-1], 3)


@pytest.mark.parametrize("S", [0, 1, 2, 5, 13])
def test_requant_shift(S):
    rng = np.random.default_rng(S)
    acc = np.concatenate([rng.integers(-(2**24), 2**24, 400), np.arange(-40, 41)])
    got = requant_shift(acc, S)
    if S == 0:
        expected = acc
    else:
        # floor((acc + 2^(S-1)) / 2^S) computed with Python integers
        expected = np.array([(int(a) + 2 ** (S - 1)) // 2**S for a in acc])
    assert got.dtype == np.int64
    assert np.array_equal(got, expected)


def test_requant_shift_rounding_examples():
    assert requant_shift([3, 2, 1, -1, -2, -3], 1).tolist() == [2, 1, 1, 0, -1, -1]


@pytest.mark.parametrize(
    ("call", "msg"),
    [
        (lambda: relu_int([1], 0), "K must be a positive integer, not 0"),
        (lambda: relu_int([1], -3), "K must be a positive integer, not -3"),
        (lambda: relu_int([1], 2.0), "K must be a positive integer, not 2.0"),
        (lambda: relu_int([1], 63), "K must be at most 62, not 63"),
        (lambda: relu_spikes([1], 0), "K must be a positive integer, not 0"),
        (lambda: requant_shift([1], -1), "S must be a non-negative integer, not -1"),
        (lambda: requant_shift([1], 63), "S must be at most 62, not 63"),
        (lambda: IntAmosUnit.relu(0), "K must be a positive integer, not 0"),
        (lambda: IntAmosUnit.relu(31), "K must be at most 30, not 31"),
    ],
)
def test_parameter_messages(call, msg):
    with pytest.raises(ValueError) as e:
        call()
    assert str(e.value) == msg


def test_float_inputs_rejected():
    with pytest.raises(TypeError, match="v must hold integers"):
        relu_int([1.5], 3)


def _small_unit(**kw):
    args = dict(name="t", c=[1, 2], T=[0, 1], h=[[0, 0], [3, 0]], d=[1, -1])
    args.update(kw)
    return IntAmosUnit(**args)


@pytest.mark.parametrize(
    ("kw", "msg"),
    [
        (dict(name=""), "name must be a non-empty string, not ''"),
        (dict(c=[]), "c must be a non-empty 1-D sequence, not shape (0,)"),
        (dict(T=[0]), "T must have length K=2, not shape (1,)"),
        (dict(d=[1, 2, 3]), "d must have length K=2, not shape (3,)"),
        (dict(h=[[0, 0]]), "h must have shape (2, 2), not (1, 2)"),
        (dict(c2=[1]), "c2 must have length K=2, not shape (1,)"),
        (dict(in_range=(3, 1)), "in_range must have lo <= hi, not (3, 1)"),
        (dict(in_range=5), "in_range must be a pair of integers (lo, hi), not 5"),
        (dict(in_scale=0.0), "in_scale must be a positive finite number, not 0.0"),
        (dict(out_scale=float("nan")), "out_scale must be a positive finite number, not nan"),
        (dict(in2_range=(0, 1)), "in2_range and in2_scale need a two-input unit (c2)"),
        (dict(c=[2**40, 1], in_range=(-(2**30), 2**30)),
         "unit 't': parameters times in_range can overflow int64"),
    ],
)
def test_int_unit_messages(kw, msg):
    with pytest.raises(ValueError) as e:
        _small_unit(**kw)
    assert str(e.value) == msg


def test_int_unit_spike_rule_by_hand():
    # z0 = [x >= 0]; z1 = [2x - 3 z0 - 1 >= 0]; y = z0 - z1
    u = _small_unit(in_range=(-5, 5))
    x = np.arange(-7, 8)
    z0 = (x >= 0).astype(int)
    xs = np.clip(x, -5, 5)
    z1 = (2 * xs - 3 * z0 - 1 >= 0).astype(int)
    assert np.array_equal(u.spikes(x), np.stack([z0, z1], -1))
    assert np.array_equal(u(x), z0 - z1)
    assert u.param_count == 2 + 2 + 2 + 1


def test_two_input_unit_saturates_and_broadcasts():
    u = IntAmosUnit("m", c=[1, 0], c2=[0, 1], T=[1, 1], h=[[0, 0], [0, 0]], d=[1, 2],
                    in_range=(-2, 2), in2_range=(-1, 1))
    x = np.array([[-9], [0], [9]])
    x2 = np.array([-9, 0, 9])
    y = u(x, x2)
    assert y.shape == (3, 3)
    assert y.tolist() == [[0, 0, 2], [0, 0, 2], [1, 1, 3]]
    assert u.param_count == 2 * 4 + 1
    assert u.widths["x2"] == 2
    with pytest.raises(ValueError, match="x2 is missing"):
        u(x)
    with pytest.raises(ValueError, match="x2 must be None"):
        _small_unit()(x, x2)


def test_widths():
    assert signed_width(0, 0) == 1
    assert signed_width(-1, 0) == 1
    assert signed_width(0, 1) == 2
    assert signed_width(-128, 127) == 8
    assert signed_width(-129, 0) == 9
    w = IntAmosUnit.relu(10).widths
    assert w["x"] == 32 and w["d"] == 11 and w["y"] == 11


# --- fixed point of trained units ------------------------------------------------------------

from python_ref.quant import quantize_unit, to_int_input  # noqa: E402
from python_ref.units import AmosUnit, relu_unit  # noqa: E402


def _hand_unit():
    return AmosUnit("hand", c=[1.0, -0.5], T=[0.1, 0.2], h=[[0, 0], [0.3, 0]], d=[1.0, 0.25],
                    domain=[(-1.0, 1.0)])


def test_quantize_unit_by_hand():
    q = quantize_unit(_hand_unit(), in_bits=4, w_bits=4, d_bits=4)
    # s_x = 1/7, in_range = (-7, 7); s_u = 1 * s_x / 7 = 1/49; s_y = 1/7
    assert q.in_range == (-7, 7)
    assert q.in_scale == pytest.approx(1 / 7)
    assert q.c.tolist() == [7, -4]  # rint(7), rint(-3.5) = -4 (ties to even)
    assert q.T.tolist() == [5, 10]  # rint(4.9), rint(9.8)
    assert q.h.tolist() == [[0, 0], [15, 0]]  # rint(14.7)
    assert q.d.tolist() == [7, 2]  # rint(7), rint(1.75)
    assert q.out_scale == pytest.approx(1 / 7)
    assert q.widths["c"] == 4 and q.widths["d"] == 4 and q.widths["x"] == 4
    # saturation: far outside the domain behaves like the domain's edge
    assert np.array_equal(q(np.array([-100, 100])), q(np.array([-7, 7])))


def test_quantize_two_input_unit_shares_the_membrane_scale():
    u = AmosUnit("m", c=[1.0, 0.25], c2=[2.0, -0.6], T=[0.0, 0.1], h=np.zeros((2, 2)),
                 d=[1.0, -1.0], domain=[(-1.0, 1.0), (-0.5, 0.5)])
    q = quantize_unit(u, in_bits=8, w_bits=8, d_bits=8)
    assert q.in_range == (-127, 127) and q.in2_range == (-127, 127)
    # c * s_x and c2 * s_x2 are on the same scale: the largest, |2| * 0.5/127 = 1 * 1/127, is 127
    assert q.c.tolist() == [127, 32] and q.c2.tolist() == [127, -38]  # 31.75, -38.1


@pytest.mark.parametrize(
    ("kw", "msg"),
    [
        (dict(in_bits=1), "in_bits must be at least 2, not 1"),
        (dict(w_bits=0), "w_bits must be a positive integer, not 0"),
        (dict(d_bits=33), "d_bits must be at most 32, not 33"),
    ],
)
def test_quantize_messages(kw, msg):
    with pytest.raises(ValueError) as e:
        quantize_unit(_hand_unit(), **kw)
    assert str(e.value) == msg


def test_quantize_needs_domain():
    u = AmosUnit("nodom", c=[1.0], T=[0.0], h=[[0.0]], d=[1.0])
    with pytest.raises(ValueError, match="has no domain"):
        quantize_unit(u)


def test_to_int_input():
    x = np.array([-9.0, -0.26, -0.25, 0.24, 0.25, 0.75, 9.0])
    assert to_int_input(x, 0.5, (-4, 4)).tolist() == [-4, -1, 0, 0, 0, 2, 4]
    assert to_int_input(x, 0.5, (-4, 4), "floor").tolist() == [-4, -1, -1, 0, 0, 1, 4]
    with pytest.raises(ValueError, match="rounding must be"):
        to_int_input(x, 0.5, (-4, 4), "up")


def test_integer_relu_matches_float_closed_form_exactly():
    K, alpha = 10, 1.0
    fu = relu_unit(K, alpha)
    iu = IntAmosUnit.relu(K, alpha=alpha)
    x = np.linspace(-1.5, 1.0, 30001)
    xi = to_int_input(x, iu.in_scale, iu.in_range, "floor")
    assert np.array_equal(iu.real(xi), fu(x))
    assert np.array_equal(iu.spikes(xi), fu.spikes(x))
