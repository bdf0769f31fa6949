"""A closed-form two-input AMOS unit for the product ``x * g`` of a squeeze-and-excitation gate.

The paper's multiplication unit (``mult.json``, K = 40) is trained on ``[-1, 1]^2`` through
``x*y = ((x+y)^2 - (x-y)^2) / 4``; its error is absolute (about 0.01 of the domain), so on the
small products a gate mostly computes (``x`` a few percent of its calibrated span, ``g`` a
sigmoid in ``[0, 1]``) it is tens of percent. A gate's second input is never negative, and its
first is a swish output (at least -0.28). This unit uses that and is built, like the paper's
ReLU unit, without training: **long multiplication with spikes**.

With ``m`` gate bits and ``x`` coded on ``[-a, 1]`` (``A = 1 + a``, ``x' = x + a``):

* Neurons ``0..m-1`` code ``g`` (``c2 = 1``) in binary, rounding to nearest, on the levels
  ``j / (2^m - 1)`` (so the largest code is 1): with ``G = 2^m / (2^m - 1)`` neuron ``k`` (bit
  weight ``w_k = G 2^-(k+1)``) fires when ``g - Σ_{j<k} w_j b_j - (w_k - w_{m-1} / 2) >= 0``.
* For each gate bit ``k`` a group of ``n_k = n - k`` neurons codes ``x'`` (``c = 1``) in binary
  on the levels ``A j / (2^n_k - 1)``, also rounding to nearest, **gated by** ``b_k``: each
  has the weight ``h = -M`` from ``b_k`` (excitatory; ``M = 2A``) and ``M`` added to its
  threshold, so it can fire only when ``b_k`` did. With ``X_k = A 2^n_k / (2^n_k - 1)``,
  neuron ``l`` of group ``k`` (bit weight ``u_l = X_k 2^-(l+1)``) fires when
  ``x + a - Σ_{l'<l} u_l' z_kl' - (u_l - u_{n_k-1} / 2) + M (b_k - 1) >= 0``.
* Output: ``d = w_k u_l`` for neuron ``l`` of group ``k`` and ``d = -a w_k`` for gate bit
  ``k``, so ``y = Σ_k w_k b_k (x'_k - a)``: the gate rounded to ``m`` bits times ``x``
  rounded to ``n_k`` bits in group ``k``.

The groups shrink by one bit per gate bit, so each contributes about the same rounding error:
``|y - x g| <= G 2^-(m+1) + Σ_k w_k X_k 2^-(n_k+1)`` on the domain
(:func:`gate_product_bound`; ``x`` above 1 or ``g`` above 1 saturate to the largest code,
the same value). K = 40 (``m = 5``, ``n = 9``, the library's ``mult_gate``) is the paper's
multiplication budget: the same time steps and stages; bound 0.0188, mean error 0.0038 on
the domain against the paper's unit's 0.0090 on its own.
"""
from __future__ import annotations

import numpy as np

from .core import AmosUnit

__all__ = ["GATE_PRODUCT", "gate_product_unit", "gate_product_bound"]

#: The committed library unit ``python_ref/units/mult_gate.json``: ``m``, ``n`` and ``a``.
GATE_PRODUCT = {"g_bits": 5, "x_bits": 9, "x_min": 1.0 / 16}


def _check(g_bits: int, x_bits: int, x_min: float) -> None:
    for what, v in (("g_bits", g_bits), ("x_bits", x_bits)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{what} must be a positive integer, not {v!r}")
    if x_bits < g_bits:
        raise ValueError(f"x_bits ({x_bits}) must be at least g_bits ({g_bits}): group k "
                         "codes x on x_bits - k bits")
    if not (np.isfinite(x_min) and 0 <= x_min < 1):
        raise ValueError(f"x_min must be a number in [0, 1), not {x_min!r}")


def gate_product_unit(g_bits: int = 5, x_bits: int = 9, x_min: float = 1.0 / 16) -> AmosUnit:
    """The unit above for ``(x, g)`` on ``[-x_min, 1] x [0, 1]``, named ``mult`` (it replaces
    the library's multiplication unit wherever the second input is a gate in ``[0, 1]``).

    ``K = g_bits + Σ_{k<g_bits} (x_bits - k)``."""
    _check(g_bits, x_bits, x_min)
    m, n, a = int(g_bits), int(x_bits), float(x_min)
    M = 2.0 * (1.0 + a)
    w, X, sizes = _scales(m, n, a)
    K = m + sum(sizes)
    c, c2, T, d = (np.zeros(K) for _ in range(4))
    h = np.zeros((K, K))
    for k in range(m):  # the gate's bits
        c2[k], T[k], d[k] = 1.0, w[k] - w[-1] / 2, -a * w[k]
        h[k, :k] = w[:k]
    i = m
    for k, nk in enumerate(sizes):  # x + a on nk bits, gated by gate bit k
        xw = X[k] * 2.0 ** -np.arange(1, nk + 1)
        for bit in range(nk):
            c[i] = 1.0
            T[i] = xw[bit] - xw[-1] / 2 - a + M
            h[i, k] = -M
            h[i, i - bit:i] = xw[:bit]
            d[i] = xw[bit] * w[k]
            i += 1
    meta = {"closed_form": "python_ref.units.gate_product.gate_product_unit",
            "g_bits": m, "x_bits": n, "x_min": a,
            "error_bound": gate_product_bound(m, n, a)}
    return AmosUnit("mult", c=c, T=T, h=h, d=d, c2=c2, domain=[(-a, 1.0), (0.0, 1.0)],
                    meta=meta)


def gate_product_bound(g_bits: int, x_bits: int, x_min: float) -> float:
    """Largest ``|y - x g|`` on the domain from the rounding of both codes (module docstring):
    ``G 2^-(m+1) + Σ_k w_k X_k 2^-(n_k+1)``."""
    _check(g_bits, x_bits, x_min)
    w, X, sizes = _scales(g_bits, x_bits, x_min)
    return float(w[-1] / 2 + sum(wk * Xk * 2.0 ** -(nk + 1)
                                 for wk, Xk, nk in zip(w, X, sizes, strict=True)))


def _scales(m: int, n: int, a: float) -> tuple:
    """The gate bits' weights ``w_k = G 2^-(k+1)``, ``G = 2^m / (2^m - 1)`` (so that the code's
    levels ``j / (2^m - 1)`` reach 1 exactly), each group's range ``X_k = A 2^n_k / (2^n_k - 1)``
    (levels reaching ``A = 1 + a``) and the group sizes ``n_k = n - k``."""
    sizes = [n - k for k in range(m)]
    w = 2.0**m / (2.0**m - 1) * 2.0 ** -np.arange(1, m + 1)
    X = [(1.0 + a) * 2.0**nk / (2.0**nk - 1) for nk in sizes]
    return w, X, sizes
