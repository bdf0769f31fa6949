"""Small arithmetic helpers shared by the shared engine's builders."""
from __future__ import annotations

from amaranth.hdl import Const

__all__ = ["uwidth", "times"]


def uwidth(v) -> int:
    """Bits of the unsigned integer ``v``, at least 1."""
    return max(1, int(v).bit_length())


def times(x, k: int):
    """``x * k`` for a constant ``k``, written as the sum of shifted copies of ``x``.

    Yosys maps even a multiplication by a small constant to an ECP5 DSP block; the sum of
    shifts stays in LUTs.

    Parameters
    ----------
    x : amaranth value
        The variable factor.
    k : int
        The constant factor (``0`` gives a one-bit zero).
    """
    terms = [x << b for b in range(k.bit_length()) if (k >> b) & 1]
    if not terms:
        return Const(0, 1)
    out = terms[0]
    for t in terms[1:]:
        out = out + t
    return out
