"""What a :class:`~amos_hw.engines.unit.UnitEngine` costs, from its parameters alone.

:class:`UnitParams` checks the engine's arguments exactly as its constructor does (same order,
same messages, each naming the layer) and states its figures before synthesis, as the
``...Params`` classes of :mod:`amos_hw.engines.figures` do for the other engines: the engine's
properties and its static ``figures(...)`` read the same formulas.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

from amos_hw.engines.figures import Figures, _check_name, _nonneg, _pos
from amos_hw.lib.amos_unit import AmosUnit, _widths
from amos_hw.lib.bram import MemShape
from amos_hw.lib.serial_unit import MAX_DEPTH, SerialAmosUnit
from python_ref.quant import IntAmosUnit, signed_width

__all__ = ["COUNT_WIDTH", "IN_WIDTH_RANGE", "UnitParams", "check_serial", "clamp_bounds",
           "const_mul_adders", "is_identity", "serial_depth", "serial_figures",
           "serial_multipliers"]

#: Signed widths of the raw value ``v`` on the engine's input port (inclusive).
IN_WIDTH_RANGE = (2, 32)
#: Width of the spike counter (:attr:`AmosUnit.spike_count <amos_hw.lib.amos_unit.AmosUnit>`).
COUNT_WIDTH = 32


def const_mul_adders(c: int) -> int:
    """Adders of a shift-and-add multiplication by the integer constant ``c``.

    The canonical signed-digit form of ``|c|`` has ``n`` non-zero digits (``+-2**k``); the
    product is their ``n - 1`` sums. ``0`` and ``+-2**k`` need none (a constant or a shift, as
    :func:`amos_hw.lib.amos_unit.const_mul` builds them).
    """
    mag = abs(int(c))
    digits = 0
    while mag:
        if mag & 1:
            digits += 1
            mag = mag + 1 if mag & 2 else mag - 1  # ...11 -> borrow (digit -1), ...01 -> +1
        mag >>= 1
    return max(0, digits - 1)


def is_identity(unit: IntAmosUnit) -> bool:
    """Whether ``unit`` is the closed-form signed identity of ``K`` neurons
    (:meth:`IntAmosUnit.identity <python_ref.quant.IntAmosUnit.identity>`: its ``c``, ``T``,
    ``h`` and ``d`` equal, whatever its scales and ``in_range``)."""
    if unit.inputs != 1 or unit.K < 2:
        return False
    ref = IntAmosUnit.identity(unit.K)
    return all((getattr(unit, k) == getattr(ref, k)).all() for k in ("c", "T", "h", "d"))


def clamp_bounds(unit: IntAmosUnit) -> tuple[int, int]:
    """``(a, b)`` with ``unit(v) == clamp(v, a, b)`` for every integer ``v``, for a signed
    identity unit (:func:`is_identity`): the unit saturates ``v`` to its ``in_range``
    ``[r_lo, r_hi]``, then the identity clamps to ``[-2**(K-1), 2**(K-1) - 1]``; both are
    monotone, so the composition is one clamp to the ends of ``in_range`` clamped."""
    lo, hi = -(2 ** (unit.K - 1)), 2 ** (unit.K - 1) - 1
    r_lo, r_hi = unit.in_range
    return min(max(r_lo, lo), hi), min(max(r_hi, lo), hi)


def serial_depth(K: int) -> int:
    """The default ``depth`` ``D`` of a serial unit of ``K`` neurons: the smallest ``D >= 3``
    with ``gcd(K, D) = 1`` (3 unless 3 divides ``K``). The engine paces its input to one word
    every ``K`` cycles; with ``gcd(K, D) = 1`` the slot at the ring's turn is free at every
    such cycle (value ``j`` enters slot ``jK mod D``, and no two of ``D`` consecutive values
    share a slot), so the pace is exact."""
    D = 3
    while math.gcd(K, D) != 1:
        D += 1
    return D


def serial_figures(unit: IntAmosUnit, in_width: int, depth: int, *,
                   in2_width: int | None = None) -> tuple[int, int]:
    """``(LUT4, flip-flops)`` that one serial unit adds to an engine of ``n`` of them: its
    :meth:`SerialAmosUnit.luts_for <amos_hw.lib.serial_unit.SerialAmosUnit.luts_for>`
    (``dsp=False``) and :meth:`~amos_hw.lib.serial_unit.SerialAmosUnit.flip_flops_for` less
    its output counter (``COUNT_WIDTH`` LUT4 and flip-flops: the engine reads only
    ``spike_count``, synthesis removes the unread counter), plus ``COUNT_WIDTH`` LUT4 for adding
    its spike count to the others' (the first unit's sum is its own: the engine subtracts
    that one adder)."""
    kw = {"in2_width": in2_width, "depth": depth, "count_width": COUNT_WIDTH}
    luts = SerialAmosUnit.luts_for(unit, in_width, **kw)  # - output counter + spike adder
    ffs = SerialAmosUnit.flip_flops_for(unit, in_width, **kw) - COUNT_WIDTH
    return luts, ffs


def serial_multipliers(unit: IntAmosUnit, in_width: int, depth: int, *,
                       in2_width: int | None = None) -> tuple[int, int]:
    """``(multipliers, LUT4)`` of one serial unit: its variable products ``c_s * x``
    (:meth:`SerialAmosUnit.multipliers_for
    <amos_hw.lib.serial_unit.SerialAmosUnit.multipliers_for>`, a ``MULT18X18D`` each on the
    ECP5) and the LUT4s that :func:`serial_figures` counts for them as LUT multipliers."""
    kw = {"in2_width": in2_width, "depth": depth, "count_width": COUNT_WIDTH}
    n = SerialAmosUnit.multipliers_for(unit, in_width, in2_width=in2_width, depth=depth)
    saved = (SerialAmosUnit.luts_for(unit, in_width, **kw)
             - SerialAmosUnit.luts_for(unit, in_width, dsp=True, **kw))
    return n, saved


def _pacer_bits(K: int) -> int:
    """Bits of the engine's pacer (cycles left until the next accepted word, ``0..K-1``)."""
    return max(1, (K - 1).bit_length())


def check_serial(name: str, unit: IntAmosUnit, serial, depth, lanes) -> tuple:
    """``(serial, depth, lanes)`` checked: ``serial`` ``None`` (the pipelined form; ``depth``
    must then be ``None``) or ``n >= 1`` serial units, one a lane (``lanes`` left at 1 or equal
    to ``n``), ``depth`` ``1..MAX_DEPTH`` with ``gcd(K, depth) = 1`` (default
    :func:`serial_depth`); not for the signed identity, which is a clamp."""
    if serial is None:
        if depth is not None:
            raise ValueError(f"{name}: depth is a parameter of the serial form; give serial too")
        return None, None, lanes
    serial = _pos(name, "serial", serial)
    if is_identity(unit):
        raise ValueError(f"{name}: the signed identity unit is built as a clamp; it has no "
                         "serial form")
    if lanes not in (1, serial):
        raise ValueError(f"{name}: serial={serial} units take a word of {serial} values; lanes "
                         f"must be 1 (default) or {serial}, not {lanes}")
    K = unit.K
    if depth is None:
        depth = serial_depth(K)
    depth = _pos(name, "depth", depth)
    if depth > MAX_DEPTH or math.gcd(K, depth) != 1:
        raise ValueError(f"{name}: depth must be in 1..{MAX_DEPTH} and have no common divisor "
                         f"with K = {K} (the exact pace of one word every K cycles needs it; "
                         f"e.g. {serial_depth(K)}), not {depth}")
    return serial, depth, serial


def _check_in_width(name: str, in_width) -> int:
    lo, hi = IN_WIDTH_RANGE
    ok = (not isinstance(in_width, bool) and isinstance(in_width, numbers.Integral)
          and lo <= in_width <= hi)
    if not ok:
        raise ValueError(f"{name}: in_width must be an integer in {lo}..{hi} (the signed width "
                         f"of the raw value v), not {in_width!r}")
    return int(in_width)


@dataclass(frozen=True, eq=False)
class UnitParams:
    """The checked arguments of a :class:`~amos_hw.engines.unit.UnitEngine`, the widths they
    give and the engine's figures. Build it with :meth:`check`; the fields after ``elements``
    are derived."""

    name: str
    unit: IntAmosUnit  # one input
    in_width: int  # signed width of v
    lanes: int
    elements: int  # values of one image
    y_width: int  # signed width of y = sum_i d_i z_i: signed_width(sum d_i<0, sum d_i>0)
    unit_flip_flops: int  # AmosUnit.flip_flops_for(unit, in_width, lanes=lanes)
    clamp: bool = False  # the signed identity: built as a saturating clamp (is_identity)
    serial: int | None = None  # n serial units (one a lane), or None: the pipelined AmosUnit
    depth: int | None = None  # D of each serial unit (serial form only)
    buffer: int = 0  # words of the input FIFO in front of the serial units (0: none)

    @classmethod
    def check(cls, unit, *, in_width, lanes=1, name="unit", elements=None, serial=None,
              depth=None, buffer=0) -> UnitParams:
        """Check the engine's arguments (raising as its constructor does) and derive the
        widths: the name, the unit (an :class:`~python_ref.quant.IntAmosUnit` of one input),
        ``in_width`` (``2..32``), ``lanes``, the serial form (:func:`check_serial`: ``serial``
        sets ``lanes``), ``elements`` (``lanes`` must divide it; ``None``: one word, ``lanes``
        values), ``buffer`` (serial form only, ``0..4096`` words) and that an ``in_width``-bit
        input reaches the unit's ``in_range``."""
        _check_name(name)
        if not isinstance(unit, IntAmosUnit):
            raise TypeError(f"{name}: unit must be a python_ref.quant.IntAmosUnit, "
                            f"not {type(unit).__name__}")
        if unit.inputs != 1:
            raise ValueError(f"{name}: unit {unit.name!r} has {unit.inputs} inputs; the unit "
                             "engine applies a one-input unit")
        in_width = _check_in_width(name, in_width)
        lanes = _pos(name, "lanes", lanes)
        serial, depth, lanes = check_serial(name, unit, serial, depth, lanes)
        buffer = _nonneg(name, "buffer", buffer, at_most=4096)
        if buffer and not serial:
            raise ValueError(f"{name}: buffer is a parameter of the serial form; give serial too")
        elements = lanes if elements is None else _pos(name, "elements", elements)
        if elements % lanes:
            raise ValueError(f"{name}: lanes must divide the {elements} elements of an image, "
                             f"not {lanes}")
        try:
            unit_ff = AmosUnit.flip_flops_for(unit, in_width, lanes=lanes,
                                              count_width=COUNT_WIDTH)
        except ValueError as err:  # a port that cannot reach the unit's in_range
            raise ValueError(f"{name}: {err}") from None
        d = [int(v) for v in unit.d]
        y_width = signed_width(sum(min(0, v) for v in d), sum(max(0, v) for v in d))
        return cls(name=name, unit=unit, in_width=in_width, lanes=lanes, elements=elements,
                   y_width=y_width, unit_flip_flops=unit_ff, clamp=is_identity(unit),
                   serial=serial, depth=depth, buffer=buffer)

    K = property(lambda self: self.unit.K, doc="Neurons of the unit (pipeline stages).")
    out_width = property(lambda self: self.y_width, doc="Signed width of one output y.")
    words = property(lambda self: self.elements // self.lanes, doc="Words of one image.")

    @property
    def cycles(self) -> int:
        """Cycles per image: one word (``lanes`` values) a cycle, ``elements / lanes``; the
        serial form one word every ``K`` cycles, ``K * elements / lanes``."""
        return self.words * (self.K if self.serial else 1)

    @property
    def latency(self) -> int:
        """Cycles from an accepted input word to its output word being valid (no stall): the
        unit's ``K + 2`` (:meth:`AmosUnit.latency_for <amos_hw.lib.amos_unit.AmosUnit>`); 1
        for the clamp form of the signed identity (its output register); ``K * D + 1`` for the
        serial form (:meth:`SerialAmosUnit.latency_for
        <amos_hw.lib.serial_unit.SerialAmosUnit.latency_for>`), plus its input FIFO's
        ``min(buffer, 2)`` (measured: an empty ``SyncFIFOBuffered`` of one word passes a word
        on after one cycle, a deeper one after two)."""
        if self.serial:
            fifo = min(self.buffer, 2)  # SyncFIFOBuffered: its register, and its memory
            return SerialAmosUnit.latency_for(self.unit, self.depth) + fifo
        return 1 if self.clamp else AmosUnit.latency_for(self.unit)

    @property
    def memories(self) -> tuple:
        """None (the pipeline is registers) but the serial form's input FIFO (a
        ``SyncFIFOBuffered``, its memory ``buffer - 1`` words of ``lanes * in_width`` bits)."""
        if self.buffer > 1:
            return (MemShape("unit_fifo", self.buffer - 1, self.lanes * self.in_width),)
        return ()

    @property
    def memory_bits(self) -> int:
        """Bits of the serial form's input FIFO (``buffer * lanes * in_width``), else 0."""
        return self.buffer * self.lanes * self.in_width

    def _fifo_ff_lut(self) -> tuple[int, int]:
        """Flip-flops and LUT4 of the input FIFO's control and output register."""
        if not self.buffer:
            return 0, 0
        bits = max(1, math.ceil(math.log2(self.buffer + 1)))
        return self.lanes * self.in_width + 2 * bits + 4, 4 * bits + 8

    @property
    def flip_flops(self) -> int:
        """The unit's pipeline registers, delay registers, output and counters
        (:meth:`AmosUnit.flip_flops_for <amos_hw.lib.amos_unit.AmosUnit>`); the engine adds
        none. The clamp form: its output register (``y_width`` a lane), the valid bit, the
        registered popcount of the ``K * lanes`` spikes and the spike counter. The serial
        form: ``n`` times :func:`serial_figures`'s flip-flops and the pacer (``bit_length(K -
        1)`` bits, at least 1) and with a ``buffer`` its FIFO's output register (``lanes *
        in_width``), levels and control (``2 * ceil(log2(buffer + 1)) + 4``)."""
        if self.serial:
            return (self.serial * serial_figures(self.unit, self.in_width, self.depth)[1]
                    + _pacer_bits(self.K) + self._fifo_ff_lut()[0])
        if self.clamp:
            return (self.lanes * self.y_width + 1 + (self.K * self.lanes).bit_length() + 1
                    + COUNT_WIDTH)
        return self.unit_flip_flops

    @property
    def luts(self) -> int:
        """LUT4 estimate, one LUT4 per adder or comparator bit (carry chains), per lane:

        * the saturation to ``in_range`` when the port reaches beyond it: two comparisons and
          a multiplexer of ``in_width`` bits, ``3 * in_width``;
        * stage 0, per neuron ``k``: ``c_k * x`` as shift-and-add (:func:`const_mul_adders`
          adders) and ``- T_k`` (one adder when ``T_k != 0``), each of the membrane's width;
        * stage ``s``, per later neuron ``k`` with ``h_ks != 0``: ``u_k - (z_s ? h_ks : 0)``,
          one adder of the membrane's width (the gated constant folds into the adder's LUT);
          the comparison with zero is the membrane's sign bit, free;
        * with a shared residual (``c``, ``h`` columns constant: ReLU-like units) instead one
          shift-and-add of ``c * x`` and per stage a comparison with ``T_s`` and the
          subtraction of ``h``, each of the residual's width;
        * the output ``y = sum_i d_i z_i``: an adder of ``y_width`` per non-zero ``d_i`` after
          the first (none for the ReLU unit, whose spike word is ``y``).

        Then the registered popcount of the ``K * lanes`` spikes (one LUT4 a spike), the 32-bit
        spike counter and 8 of control. The clamp form of the signed identity
        (:attr:`clamp`): ``3 * in_width`` a lane (two comparisons, a multiplexer), the
        popcount, the counter and control. Checked on one synthesis (Yosys 0.70 ``synth_ecp5
        -nodsp``, the swish unit quantised 8/8/8, ``in_width=10``, one lane): 454 LUT4 and 549
        CCU2C, 1,552 LUT4 with two a carry cell, against 1,559 estimated. Synthesis may put the
        constant multiplications into DSP blocks (ECP5), fewer LUT4 then.

        The serial form: ``n`` times :func:`serial_figures`'s LUT4 less one ``COUNT_WIDTH``
        adder (``n - 1`` adders sum the units' spike counts) and the pacer (``bit_length(K -
        1) + 2``: its decrement and the zero test), with a ``buffer`` its FIFO's counters and
        control (``4 * ceil(log2(buffer + 1)) + 8``). Its products ``c_s * x`` are counted in
        LUTs (``dsp=False``); Yosys's default ECP5 mapping puts each variable one into a
        ``MULT18X18D``, fewer LUT4 then.
        """
        if self.serial:
            return (self.serial * serial_figures(self.unit, self.in_width, self.depth)[0]
                    - COUNT_WIDTH + _pacer_bits(self.K) + 2 + self._fifo_ff_lut()[1])
        if self.clamp:  # two comparisons and a multiplexer a lane, the popcount, the counter
            return self.lanes * 3 * self.in_width + self.K * self.lanes + COUNT_WIDTH + 8
        unit, w = self.unit, _widths(self.unit, self.in_width, None)
        K = unit.K
        c = [int(v) for v in unit.c]
        T = [int(v) for v in unit.T]
        h = [[int(v) for v in row] for row in unit.h]
        d = [int(v) for v in unit.d]
        per_lane = 3 * self.in_width if w.x_clamp else 0
        if w.shared:
            per_lane += const_mul_adders(c[0]) * w.res_width
            per_lane += sum((1 + (w.hcol[s] != 0)) * w.res_width for s in range(K))
        else:
            mw = w.mem_widths
            per_lane += sum((const_mul_adders(c[k]) + (T[k] != 0)) * mw[k] for k in range(K))
            per_lane += sum(mw[k] for k in range(K) for s in range(k) if h[k][s])
        if not w.relu_like:
            per_lane += max(0, sum(v != 0 for v in d) - 1) * self.y_width
        return self.lanes * per_lane + K * self.lanes + COUNT_WIDTH + 8

    def figures(self) -> Figures:
        """The engine's :class:`~amos_hw.engines.figures.Figures` (the serial form's
        multipliers: :func:`serial_multipliers` per unit)."""
        mults = mult_luts = 0
        if self.serial:
            n, saved = serial_multipliers(self.unit, self.in_width, self.depth)
            mults, mult_luts = self.serial * n, self.serial * saved
        return Figures(cycles=self.cycles, latency=self.latency, luts=self.luts,
                       flip_flops=self.flip_flops, memory_bits=self.memory_bits,
                       memories=self.memories, out_width=self.out_width,
                       multipliers=mults, multiplier_luts=mult_luts)
