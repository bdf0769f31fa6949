"""What a :class:`~amos_hw.engines.gate.GateEngine` costs, from its parameters alone.

:class:`GateParams` checks the engine's arguments exactly as its constructor does (same order,
same messages, each naming the layer) and states its figures before synthesis, as
:class:`~amos_hw.engines.unit_params.UnitParams` does for the one-input unit engine: the
engine's properties and its static ``figures(...)`` read the same formulas.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass

from amos_hw.engines.figures import (
    Figures,
    _check_bool,
    _check_name,
    _nonneg,
    _pos,
    _with_lut_memories,
    mem_depth,
)
from amos_hw.engines.unit_params import (
    COUNT_WIDTH,
    _pacer_bits,
    check_serial,
    const_mul_adders,
    serial_figures,
    serial_multipliers,
)
from amos_hw.lib.amos_unit import AmosUnit, _widths
from amos_hw.lib.bram import MemShape, mark_lut
from amos_hw.lib.serial_unit import SerialAmosUnit
from python_ref.quant import IntAmosUnit, requant_shift, signed_width

__all__ = ["GATE_LATENCY_EXTRA", "PORT_WIDTH_RANGE", "GateParams", "port_range"]

#: Widths of a value on either input port (inclusive).
PORT_WIDTH_RANGE = (1, 32)
#: Cycles from the gate's last word to the unit's input: the start of the read (1), the
#: memories' registered read ports (1) and the register of ``v1`` / ``v2`` (1).
GATE_LATENCY_EXTRA = 3


def port_range(width: int, is_signed: bool) -> tuple[int, int]:
    """Inclusive range of a ``width``-bit port value, two's complement when ``is_signed``."""
    if is_signed:
        return -(2 ** (width - 1)), 2 ** (width - 1) - 1
    return 0, 2 ** width - 1


def _bits(n: int) -> int:
    """Bits of a counter over ``0..n-1`` (at least 1)."""
    return max(1, (n - 1).bit_length())


def _check_width(name: str, what: str, width) -> int:
    lo, hi = PORT_WIDTH_RANGE
    ok = (not isinstance(width, bool) and isinstance(width, numbers.Integral)
          and lo <= width <= hi)
    if not ok:
        raise ValueError(f"{name}: {what} must be an integer in {lo}..{hi}, not {width!r}")
    return int(width)


def _requant_range(rng: tuple[int, int], S: int) -> tuple[int, int]:
    """``requant_shift`` of an inclusive range (monotonic, so of its ends)."""
    lo, hi = (int(v) for v in requant_shift([rng[0], rng[1]], S))
    return lo, hi


@dataclass(frozen=True, eq=False)
class GateParams:
    """The checked arguments of a :class:`~amos_hw.engines.gate.GateEngine`, the widths they
    give and the engine's figures. Build it with :meth:`check`; the fields after ``shifts``
    are derived."""

    name: str
    unit: IntAmosUnit  # two inputs
    channels: int  # C: the gate vector's length, the map's last axis
    elements: int  # values of one map (H * W * C)
    lanes: int  # values a word, on both inputs and the output
    x_width: int  # width of a map value (the port)
    x_signed: bool
    g_width: int  # width of a gate value
    g_signed: bool
    shifts: tuple  # (S1, S2): v1 = requant_shift(x, S1), v2 = requant_shift(g, S2)
    v1_width: int  # signed width of v1 over the port's range
    v2_width: int
    y_width: int  # signed width of y: signed_width(sum d_i<0, sum d_i>0)
    unit_flip_flops: int  # AmosUnit.flip_flops_for(unit, v1_width, in2_width=v2_width, ...)
    serial: int | None = None  # n serial units (one a lane), or None: the pipelined AmosUnit
    depth: int | None = None  # D of each serial unit (serial form only)
    map_words: int | None = None  # words of the map memory; None: two maps
    lut_memories: tuple = ()  # memories kept out of block RAM (lib.bram.style_attrs)

    @classmethod
    def check(cls, unit, *, channels, elements, x_width, g_width, shifts=(0, 0), lanes=1,
              x_signed=True, g_signed=True, name="gate", serial=None,
              depth=None, map_words=None, lut_memories=()) -> GateParams:
        """Check the engine's arguments (raising as its constructor does) and derive the
        widths: the name, the unit (an :class:`~python_ref.quant.IntAmosUnit` of two inputs),
        ``channels`` and ``elements`` (``channels`` divides ``elements``), ``lanes`` (divides
        ``channels``; ``serial`` sets it, :func:`~amos_hw.engines.unit_params.check_serial`),
        the port widths (``1..32``) and signedness, the shifts (two integers
        ``0..62``), that the requantised ports reach the unit's ``in_range`` /
        ``in2_range``, and ``map_words`` (``None``, or ``words..2 * words``)."""
        _check_name(name)
        if not isinstance(unit, IntAmosUnit):
            raise TypeError(f"{name}: unit must be a python_ref.quant.IntAmosUnit, "
                            f"not {type(unit).__name__}")
        if unit.inputs != 2:
            raise ValueError(f"{name}: unit {unit.name!r} has {unit.inputs} input; the gate "
                             f"engine applies a two-input unit")
        channels = _pos(name, "channels", channels)
        elements = _pos(name, "elements", elements)
        if elements % channels:
            raise ValueError(f"{name}: the {elements} elements of a map are not a whole "
                             f"number of {channels}-channel pixels")
        lanes = _pos(name, "lanes", lanes)
        serial, depth, lanes = check_serial(name, unit, serial, depth, lanes)
        if channels % lanes:
            raise ValueError(f"{name}: lanes must divide the {channels} channels, not {lanes}")
        x_width = _check_width(name, "x_width", x_width)
        g_width = _check_width(name, "g_width", g_width)
        x_signed = _check_bool(name, "x_signed", x_signed)
        g_signed = _check_bool(name, "g_signed", g_signed)
        if (isinstance(shifts, (str, bytes)) or not hasattr(shifts, "__len__")
                or len(shifts) != 2):
            raise ValueError(f"{name}: shifts must be two integers (S1, S2), not {shifts!r}")
        shifts = tuple(_nonneg(name, f"shifts[{k}]", s, 62) for k, s in enumerate(shifts))
        v1 = _requant_range(port_range(x_width, x_signed), shifts[0])
        v2 = _requant_range(port_range(g_width, g_signed), shifts[1])
        v1_width, v2_width = signed_width(*v1), signed_width(*v2)
        try:
            unit_ff = AmosUnit.flip_flops_for(unit, v1_width, in2_width=v2_width, lanes=lanes,
                                              count_width=COUNT_WIDTH)
        except ValueError as err:  # a port that cannot reach the unit's range
            raise ValueError(f"{name}: {err}") from None
        d = [int(v) for v in unit.d]
        y_width = signed_width(sum(min(0, v) for v in d), sum(max(0, v) for v in d))
        if map_words is not None:
            words = elements // lanes
            map_words = _pos(name, "map_words", map_words, 2 * words)
            if map_words < words:
                raise ValueError(f"{name}: map_words must hold one map ({words} words), "
                                 f"not {map_words}")
        return _with_lut_memories(cls(
            name=name, unit=unit, channels=channels, elements=elements, lanes=lanes,
            x_width=x_width, x_signed=x_signed, g_width=g_width, g_signed=g_signed,
            shifts=shifts, v1_width=v1_width, v2_width=v2_width, y_width=y_width,
            unit_flip_flops=unit_ff, serial=serial, depth=depth, map_words=map_words),
            lut_memories)

    K = property(lambda self: self.unit.K, doc="Neurons of the unit (pipeline stages).")
    out_width = property(lambda self: self.y_width, doc="Signed width of one output y.")
    words = property(lambda self: self.elements // self.lanes, doc="Words of one map.")
    gate_words = property(lambda self: self.channels // self.lanes,
                          doc="Words of one gate vector.")
    map_depth = property(lambda self: self.map_words or 2 * self.words,
                         doc="Words of the map memory: ``map_words``, by default two maps.")

    @property
    def cycles(self) -> int:
        """Cycles per image: ``elements / lanes``. The map is written one word a cycle and
        read one word a cycle, into and out of two maps' worth of memory, so the writes of one
        image overlap the reads of the one before: ``max(words, words) = words``. A map word
        is taken while fewer than ``2 * words`` are held (the image waiting for its gate and
        the next map), so with the output not stalled the map's producer never waits as long
        as fewer than ``words`` words of the next map arrive up to the cycle of each image's
        last gate word (checked exactly in ``tests/test_engines_gate.py``): the squeeze-and-
        excitation path's latency must stay below one map's worth of words; a later gate
        holds the producer up (no deadlock: a gate needs only its own map). With
        ``map_words = words + s``, the words of the next map held at any time, less the
        words of this one already read, must stay at most ``s`` (the generator sizes ``s``
        so, :func:`amos_hw.buffers.gate_map_words`).

        The serial form (``serial=n``, :class:`~amos_hw.engines.unit.SerialLanes`): the reads
        are paced by the units, one word every ``K`` cycles: ``K * elements / lanes``; the
        writes stay one word a cycle, so the producer runs up to a map ahead."""
        return self.words * (self.K if self.serial else 1)

    @property
    def latency(self) -> int:
        """Cycles from the transfer of an image's last gate word (its map complete in the
        memory, the previous image read out, the output not stalled) to its first output
        word being valid: ``3 + K + 2`` (:data:`GATE_LATENCY_EXTRA`, then the unit's
        :meth:`AmosUnit.latency_for <amos_hw.lib.amos_unit.AmosUnit>`). A map's first word is
        never read before the gate's last word is in, so this is the figure the network's
        latency estimate (:func:`amos_hw.cost.latency`) adds to the later of the map's and the
        gate's last word. The serial form: ``3 + K * D + 1``
        (:meth:`SerialAmosUnit.latency_for
        <amos_hw.lib.serial_unit.SerialAmosUnit.latency_for>`), the pacer open (the unit idle
        for ``K`` cycles before)."""
        if self.serial:
            return GATE_LATENCY_EXTRA + SerialAmosUnit.latency_for(self.unit, self.depth)
        return GATE_LATENCY_EXTRA + AmosUnit.latency_for(self.unit)

    @property
    def memories(self) -> tuple:
        """The map memory (:attr:`map_depth` words of ``lanes * x_width`` bits) and the
        gate memory (two gate vectors, ``2 * channels / lanes`` words of ``lanes * g_width``
        bits), as :class:`~amos_hw.lib.bram.MemShape`."""
        return mark_lut((MemShape("map", self.map_depth, self.lanes * self.x_width),
                         MemShape("gate", mem_depth(2 * self.gate_words),
                                  self.lanes * self.g_width)), self.lut_memories)

    @property
    def memory_bits(self) -> int:
        """``map_depth * lanes * x_width + 2 * channels * g_width``: the map memory and two
        gate vectors."""
        return self.map_depth * self.lanes * self.x_width + 2 * self.channels * self.g_width

    @property
    def flip_flops(self) -> int:
        """The unit's registers (:meth:`AmosUnit.flip_flops_for
        <amos_hw.lib.amos_unit.AmosUnit>`), the ``v1`` / ``v2`` registers of every lane, the
        map's write and read addresses, fill count and word-in-map counters, the gate's write
        and read addresses,
        the two gate flags, the count of complete maps, the read flag and two valid flags. The
        serial form: ``n`` serial units (:func:`~amos_hw.engines.unit_params.serial_figures`)
        and the pacer in place of the unit's registers."""
        addr, gaddr = _bits(self.map_depth), _bits(2 * self.gate_words)
        fill = (self.map_depth).bit_length() + 2 * _bits(self.words)
        regs = self.lanes * (self.v1_width + self.v2_width)
        unit_ff = self.unit_flip_flops
        if self.serial:
            unit_ff = (self.serial * self._serial_figures()[1]) + _pacer_bits(self.K)
        return (unit_ff + regs + 2 * addr + fill + gaddr + _bits(self.gate_words)
                + 1 + 2 + 2 + 1 + 2)

    def _serial_figures(self) -> tuple[int, int]:
        return serial_figures(self.unit, self.v1_width, self.depth, in2_width=self.v2_width)

    def _unit_luts(self) -> int:
        """LUT4 of one lane of the two-input unit: the formula of
        :attr:`UnitParams.luts <amos_hw.engines.unit_params.UnitParams.luts>` with both input
        terms (``c_k * v1 + c2_k * v2``: the two shift-and-add products and their sum) and both
        saturations."""
        unit = self.unit
        w = _widths(unit, self.v1_width, self.v2_width)
        K = unit.K
        c = [int(v) for v in unit.c]
        c2 = [int(v) for v in unit.c2]
        T = [int(v) for v in unit.T]
        h = [[int(v) for v in row] for row in unit.h]
        d = [int(v) for v in unit.d]

        def term(k):
            return const_mul_adders(c[k]) + const_mul_adders(c2[k]) + (c[k] != 0 and c2[k] != 0)

        lut = 3 * self.v1_width if w.x_clamp else 0
        lut += 3 * self.v2_width if w.x2_clamp else 0
        if w.shared:
            lut += term(0) * w.res_width
            lut += sum((1 + (w.hcol[s] != 0)) * w.res_width for s in range(K))
        else:
            mw = w.mem_widths
            lut += sum((term(k) + (T[k] != 0)) * mw[k] for k in range(K))
            lut += sum(mw[k] for k in range(K) for s in range(k) if h[k][s])
        if not w.relu_like:
            lut += max(0, sum(v != 0 for v in d) - 1) * self.y_width
        return lut

    @property
    def luts(self) -> int:
        """LUT4 estimate (not yet checked on a synthesis): per lane the requantisation adders
        (``v1_width`` and ``v2_width`` bits, for a non-zero shift) and the unit
        (:meth:`_unit_luts`); the registered popcount of the ``K * lanes`` spikes, the 32-bit
        spike counter; two LUT4 a bit of each address and count (increment and compare) and
        16 of control. The serial form: ``n`` serial units
        (:func:`~amos_hw.engines.unit_params.serial_figures`, LUT multipliers) less one spike
        count adder, and the pacer (``bit_length(K - 1) + 2``), in place of the unit, its
        popcount and counter."""
        S1, S2 = self.shifts
        per_lane = (S1 != 0) * self.v1_width + (S2 != 0) * self.v2_width
        counters = (2 * _bits(self.map_depth) + self.map_depth.bit_length()
                    + 2 * _bits(self.words) + _bits(2 * self.gate_words)
                    + _bits(self.gate_words))
        if self.serial:
            unit = (self.serial * self._serial_figures()[0] - COUNT_WIDTH
                    + _pacer_bits(self.K) + 2)
        else:
            per_lane += self._unit_luts()
            unit = self.K * self.lanes + COUNT_WIDTH
        return self.lanes * per_lane + unit + 2 * counters + 16

    def figures(self) -> Figures:
        """The engine's :class:`~amos_hw.engines.figures.Figures` (the serial form's
        multipliers: :func:`~amos_hw.engines.unit_params.serial_multipliers` per unit)."""
        mults = mult_luts = 0
        if self.serial:
            n, saved = serial_multipliers(self.unit, self.v1_width, self.depth,
                                          in2_width=self.v2_width)
            mults, mult_luts = self.serial * n, self.serial * saved
        return Figures(cycles=self.cycles, latency=self.latency, luts=self.luts,
                       flip_flops=self.flip_flops, memory_bits=self.memory_bits,
                       memories=self.memories, out_width=self.out_width,
                       multipliers=mults, multiplier_luts=mult_luts)

