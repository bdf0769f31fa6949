"""Trained AMOS units as tables for fine-tuning (python_ref.unit_tables): the forward pass equals
the integer reference unit (IntAmosUnit) on every input, saturated ones included, for one- and
two-input units and for an input range too wide to tabulate whole; the backward pass is zero
where an input saturates and the product's partial derivatives for the multiplication."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from python_ref.quant import IntAmosUnit
from python_ref.unit_tables import UnitTable, unit_table


def _random_unit(seed: int, inputs: int, K: int = 6) -> IntAmosUnit:
    rng = np.random.default_rng(seed)
    h = np.tril(rng.integers(-20, 40, (K, K)), -1)
    kw = {"c2": rng.integers(-9, 10, K), "in2_range": (-23, 17), "in2_scale": 0.5} \
        if inputs == 2 else {}
    return IntAmosUnit("rand", rng.integers(-9, 10, K), rng.integers(-60, 60, K), h,
                       rng.integers(-32, 33, K), in_range=(-40, 31), in_scale=0.25,
                       out_scale=0.125, **kw)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_input_table_is_the_unit_everywhere(seed):
    u = _random_unit(seed, 1)
    x = np.arange(-200, 200)
    got = UnitTable(u)(torch.tensor(x, dtype=torch.float64)).numpy()
    np.testing.assert_array_equal(got, u(x))


@pytest.mark.parametrize("seed", [0, 1])
def test_two_input_table_is_the_unit_everywhere(seed):
    u = _random_unit(seed, 2)
    a, b = np.meshgrid(np.arange(-60, 50), np.arange(-40, 35), indexing="ij")
    got = UnitTable(u)(torch.tensor(a, dtype=torch.float64),
                       torch.tensor(b, dtype=torch.float64)).numpy()
    np.testing.assert_array_equal(got, u(a, b))


def test_signed_identity_on_the_whole_int32_range():
    u = IntAmosUnit.identity(10)  # the converter's identity unit: clamp to 10 signed bits
    probe = np.array([-(2**31), -(2**20), -70_000, -513, -512, -3, 0, 5, 511, 512, 2**20,
                      2**31 - 1])
    np.testing.assert_array_equal(u(probe), np.clip(probe, -512, 511))  # the unit itself
    t = unit_table(u)
    assert t["lo"] == -(2**16) and len(t["table"]) == 2**17 + 1
    got = UnitTable(u)(torch.tensor(probe, dtype=torch.float64)).numpy()
    np.testing.assert_array_equal(got, u(probe))


def test_a_wide_unit_that_changes_beyond_the_window_is_refused():
    u = IntAmosUnit("late_step", [1], [100_000], [[0]], [1])
    with pytest.raises(ValueError, match="unit 'late_step': its output changes outside"):
        unit_table(u)


def test_one_input_gradient_is_zero_where_the_input_saturates():
    u = IntAmosUnit.relu(4)  # 0..15, a ramp in between; saturates below 0 and above 15
    u = IntAmosUnit("ramp", u.c, u.T, u.h, u.d, in_range=(-8, 24))
    v = torch.tensor([-30.0, -8.0, 7.0, 24.0, 40.0], requires_grad=True)
    UnitTable(u)(v).sum().backward()
    g = v.grad.numpy()
    assert g[0] == g[1] == g[3] == g[4] == 0.0
    assert g[2] == pytest.approx(1.0)  # the ramp's slope, the window inside it


def test_two_input_gradient_is_the_products():
    u = _random_unit(0, 2)
    k = u.in_scale * u.in2_scale / u.out_scale
    v1 = torch.tensor([-50.0, -3.0, 10.0, 31.0], requires_grad=True)
    v2 = torch.tensor([5.0, -30.0, 7.0, -2.0], requires_grad=True)
    UnitTable(u)(v1, v2).sum().backward()
    # -50 is below in_range (-40, 31), -30 below in2_range (-23, 17): no gradient there
    np.testing.assert_allclose(v1.grad.numpy(), [0.0, k * -23, k * 7, k * -2])
    np.testing.assert_allclose(v2.grad.numpy(), [k * -40, 0.0, k * 10, k * 31])
