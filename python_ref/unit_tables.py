"""Trained AMOS units as lookup tables, for fine-tuning with the units in the loop.

An integer unit (:class:`~python_ref.quant.IntAmosUnit`) maps integer inputs, saturated to its
input range, to an integer output ``y = sum_i d_i z_i``. Over a bounded range that map is a
table: one entry per input value (one-input units: sigmoid, swish, the signed identity) or per
pair of values (the two-input multiplication unit of a squeeze-and-excitation gate). The tables
are filled by the reference's own :meth:`IntAmosUnit.__call__`, so a table lookup is the
reference's output exactly.

:class:`UnitTable` applies a table in torch with a smooth gradient in the backward pass (the
forward pass is the exact integer unit):

* one input: the table's central difference over a window of ``max(1, width // 64)`` input
  steps (a staircase has a zero derivative almost everywhere; the window's slope follows the
  function the unit approximates), zero where the input is saturated;
* two inputs: the partial derivatives of the product the unit approximates,
  ``dy/dx1 = k * x2`` and ``dy/dx2 = k * x1`` with ``k = in_scale * in2_scale / out_scale``
  (the grid factor of :func:`python_ref.snn.exact_gate`), zero where that input is saturated.

A one-input unit whose input range is wider than ``2**17`` values (the signed identity's is
the whole int32 range) is tabulated over ``[-2**16, 2**16]`` after checking that its output at
the range's ends and at points far beyond that window equals the window's edge values; if not,
:class:`ValueError` names the unit.
"""
from __future__ import annotations

import numpy as np
import torch

from .quant import IntAmosUnit

__all__ = ["UnitTable", "unit_table"]

#: widest one-input table; wider input ranges must be constant beyond it
_HALF = 2**16
#: rows of a two-input table filled per call of the reference unit (bounds its memory)
_ROWS = 256


def _input_window(unit: IntAmosUnit) -> tuple[int, int]:
    """The input values the table holds: the input range, or ``[-2**16, 2**16]`` within it
    when the range is wider, checked to be constant beyond."""
    lo, hi = unit.in_range
    if hi - lo <= 2 * _HALF:
        return lo, hi
    a, b = max(lo, -_HALF), min(hi, _HALF)
    probes = np.array([lo, b + 1, 2 * _HALF, 2**24, hi] + [a - 1, -2 * _HALF, -(2**24)],
                      np.int64)
    probes = np.clip(probes, lo, hi)
    y, edge = unit(probes), unit(np.array([b, a], np.int64))
    want = np.where(probes > b, edge[0], edge[1])
    if not np.array_equal(y, want):
        raise ValueError(f"unit {unit.name!r}: its output changes outside the inputs "
                         f"[{a}, {b}], too wide a range to tabulate for fine-tuning")
    return a, b


def _one_input(unit: IntAmosUnit) -> dict:
    lo, hi = _input_window(unit)
    x = np.arange(lo, hi + 1, dtype=np.int64)
    y = unit(x).astype(np.float64)
    w = max(1, (hi - lo) // 64)
    up = np.concatenate([y[w:], np.full(w, y[-1])])
    down = np.concatenate([np.full(w, y[0]), y[:-w]])
    slope = (up - down) / (2 * w)
    # saturated inputs: no gradient (the unit's own range, not the tabulated window's)
    sat = (x <= unit.in_range[0]) | (x >= unit.in_range[1])
    slope[sat] = 0.0
    return {"lo": lo, "table": torch.tensor(y, dtype=torch.float32),
            "slope": torch.tensor(slope, dtype=torch.float32)}


def _two_inputs(unit: IntAmosUnit) -> dict:
    (lo, hi), (lo2, hi2) = unit.in_range, unit.in2_range
    x2 = np.arange(lo2, hi2 + 1, dtype=np.int64)
    rows = []
    for start in range(lo, hi + 1, _ROWS):
        x = np.arange(start, min(hi, start + _ROWS - 1) + 1, dtype=np.int64)
        rows.append(unit(np.repeat(x[:, None], len(x2), 1),
                         np.repeat(x2[None, :], len(x), 0)).astype(np.int32))
    return {"lo": lo, "lo2": lo2, "table": torch.from_numpy(np.concatenate(rows)),
            "k": unit.in_scale * unit.in2_scale / unit.out_scale}


def unit_table(unit: IntAmosUnit) -> dict:
    """The table of ``unit`` (see the module docstring) as a dict for :class:`UnitTable`."""
    t = _two_inputs(unit) if unit.inputs == 2 else _one_input(unit)
    t["name"] = unit.name
    t["inputs"] = unit.inputs
    return t


class _Lookup1(torch.autograd.Function):
    @staticmethod
    def forward(ctx, v, table, slope, lo: int):
        idx = (torch.clamp(v, lo, lo + len(table) - 1) - lo).long()
        ctx.save_for_backward(slope[idx])
        return table[idx]

    @staticmethod
    def backward(ctx, grad):
        (s,) = ctx.saved_tensors
        return grad * s, None, None, None


class _Lookup2(torch.autograd.Function):
    @staticmethod
    def forward(ctx, v1, v2, table, lo: int, lo2: int, k: float):
        n1, n2 = table.shape
        a = torch.clamp(v1, lo, lo + n1 - 1)
        b = torch.clamp(v2, lo2, lo2 + n2 - 1)
        ctx.save_for_backward(a, b, (a == v1), (b == v2))
        ctx.k = k
        return table[(a - lo).long(), (b - lo2).long()].to(v1.dtype)

    @staticmethod
    def backward(ctx, grad):
        a, b, in1, in2 = ctx.saved_tensors
        k = ctx.k
        return grad * k * b * in1, grad * k * a * in2, None, None, None, None


class UnitTable(torch.nn.Module):
    """A trained unit in the loop: ``forward(v)`` or ``forward(v1, v2)`` on requantised integer
    inputs (float tensors holding integers; ``v2`` broadcast against ``v1`` by the caller)
    returns the unit's integer outputs as floats, exactly the reference's; the backward pass
    is the module docstring's."""

    def __init__(self, unit: IntAmosUnit):
        super().__init__()
        t = unit_table(unit)
        self.inputs, self.unit_name, self.lo = t["inputs"], t["name"], t["lo"]
        self.register_buffer("table", t["table"], persistent=False)
        if self.inputs == 2:
            self.lo2, self.k = t["lo2"], t["k"]
        else:
            self.register_buffer("slope", t["slope"], persistent=False)

    def forward(self, v, v2=None):
        if self.inputs == 2:
            return _Lookup2.apply(v, v2, self.table, self.lo, self.lo2, self.k)
        return _Lookup1.apply(v, self.table, self.slope, self.lo)
