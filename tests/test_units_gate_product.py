"""The closed-form gate product unit (python_ref/units/gate_product.py, the library file
python_ref/units/mult_gate.json): long multiplication with spikes, ``x * g`` for ``x`` in
``[-1/16, 1]`` and a gate ``g`` in ``[0, 1]``; its error bound on a dense grid, its structure
(a group of neurons fires only after its gate bit), the committed file against its command,
the integer unit at a converted layer's scales, the converter's refusal of inputs below the
domain, and the bad arguments."""
from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest

from python_ref import convert as cv
from python_ref.quant import quantize_unit_for_inputs
from python_ref.units import load_unit, unit_path
from python_ref.units.__main__ import main as units_main
from python_ref.units.gate_product import GATE_PRODUCT, gate_product_bound, gate_product_unit


def _grid(unit, n=257):
    (xl, xh), (gl, gh) = unit.domain
    x, g = np.meshgrid(np.linspace(xl, xh, n), np.linspace(gl, gh, n), indexing="ij")
    return x.ravel(), g.ravel()


@pytest.mark.parametrize("m, n, a", [(5, 9, 1 / 16), (3, 6, 0.0), (4, 8, 0.25), (1, 1, 0.5)])
def test_error_within_the_documented_bound(m, n, a):
    """|y - x g| <= G 2^-(m+1) + sum_k G 2^-(k+1) X_k 2^-(n-k+1) on the whole domain, with
    G = 2^m / (2^m - 1) and X_k = (1 + a) 2^(n-k) / (2^(n-k) - 1) (restated here from the
    module's docstring)."""
    u = gate_product_unit(m, n, a)
    G = 2.0**m / (2.0**m - 1)
    bound = G * 2.0 ** -(m + 1) + sum(
        G * 2.0 ** -(k + 1) * (1 + a) * 2.0 ** (n - k) / (2.0 ** (n - k) - 1)
        * 2.0 ** -(n - k + 1) for k in range(m))
    assert gate_product_bound(m, n, a) == pytest.approx(bound, rel=1e-12)
    assert u.K == m + sum(n - k for k in range(m))
    x, g = _grid(u)
    err = np.abs(u(x, g) - x * g)
    assert err.max() <= bound + 1e-12
    assert err.max() > bound / 8  # the bound is not loose by orders of magnitude


def test_exact_points_and_structure():
    u = gate_product_unit(**GATE_PRODUCT)
    assert (u.K, u.name, u.domain) == (40, "mult", ((-1 / 16, 1.0), (0.0, 1.0)))
    x = np.linspace(-1 / 16, 1, 101)
    assert np.all(u(x, np.zeros_like(x)) == 0)  # no gate bit, no spike, y = 0
    assert np.all(u(np.full(5, 2.0), np.full(5, 3.0)) == pytest.approx(1.0))  # saturates at 1*1
    z = u.spikes(*_grid(u, 65))
    gate_bits, groups = z[:, :5], z[:, 5:]
    sizes = [9, 8, 7, 6, 5]
    start = np.cumsum([0, *sizes])
    for k in range(5):
        fired = groups[:, start[k]:start[k + 1]].any(axis=1)
        assert np.all(gate_bits[fired, k] == 1)  # a group fires only after its gate bit
        assert fired.any()


def test_committed_file_is_its_command(tmp_path):
    """python -m python_ref.units build mult_gate reproduces the committed unit file."""
    out = tmp_path / "mult_gate.json"
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        assert units_main(["build", "mult_gate", "--out", str(out)]) == 0
    assert json.loads(out.read_text()) == json.loads(unit_path("mult_gate").read_text())
    assert json.loads(printed.getvalue())["K"] == 40
    paper = load_unit("mult")
    mine = load_unit("mult_gate")
    assert mine.meta["mse"] < paper.meta["mse"] / 4  # on their own domains


def test_integer_unit_at_layer_scales():
    """Quantised as a converted gate does (12-bit inputs reaching the domain's bounds, 12-bit
    weights): the integer product stays within the float bound plus a few input steps."""
    fu = load_unit("mult_gate")
    spans = (8.66, 0.95)  # effnet_cifar's block 3 gate: |x| and |g| calibration levels
    steps = (spans[0] / 2047, spans[1] / 2047)
    iu = quantize_unit_for_inputs(fu, steps, spans, 12, 12)
    assert iu.in2_range == (0, 2047) and iu.in_range[0] == round(-2047 / 16)
    rng = np.random.default_rng(0)
    v1 = rng.integers(*iu.in_range, 20000, endpoint=True)
    v2 = rng.integers(*iu.in2_range, 20000, endpoint=True)
    y = iu(v1, v2) * iu.out_scale
    want = v1 * steps[0] * v2 * steps[1]
    bound = fu.meta["error_bound"] * spans[0] * spans[1]
    assert np.abs(y - want).max() <= 1.05 * bound


@pytest.mark.parametrize("kw, match", [
    ({"g_bits": 0}, "g_bits must be a positive integer"),
    ({"x_bits": 3, "g_bits": 4}, r"x_bits \(3\) must be at least g_bits \(4\)"),
    ({"x_min": 1.0}, r"x_min must be a number in \[0, 1\)"),
    ({"x_min": -0.1}, r"x_min must be a number in \[0, 1\)"),
])
def test_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        gate_product_unit(**kw)


def test_converter_refuses_inputs_below_a_one_sided_domain(tmp_path):
    """A gate whose map can go below the unit's domain (a swish output, about -0.28, against a
    product unit that takes x >= 0) is refused with the layer, the input and the file named;
    the library's mult_gate (x >= -1/16 of the span) converts effnet_cifar's gates."""
    f = tmp_path / "mult_x0.json"
    gate_product_unit(5, 9, 0.0).save(f)
    with pytest.raises(SystemExit, match=(
            r"layer 'block3.se.gate': input 'block3.dw.act' reaches -0\.2\d+, below 0, the "
            r"least value the mult unit '.*mult_x0.json' takes there")):
        cv.main(["--model", "effnet_cifar", "--unit", f"mult={f}",
                 "--out", str(tmp_path / "e"), "--calib-images", "64"])
    assert not (tmp_path / "e.json").exists()


def test_build_options(tmp_path, capsys):
    """--x-min and the bit counts build another unit, only into a file of the user's."""
    assert units_main(["build", "mult_gate", "--x-min", "0.25"]) == 2
    assert "need --out" in capsys.readouterr().err
    out = tmp_path / "m.json"
    assert units_main(["build", "mult_gate", "--x-min", "0.25", "--g-bits", "4",
                       "--out", str(out)]) == 0
    u = load_unit(out)
    assert u.domain[0] == (-0.25, 1.0) and u.K == 4 + 9 + 8 + 7 + 6
    assert units_main(["build", "mult_gate", "--x-bits", "2", "--out", str(out)]) == 2
    assert "x_bits (2) must be at least g_bits (5)" in capsys.readouterr().err
