"""The AMOS unit folded in time: one neuron per datapath pass, ``D`` values interleaved.

The integer semantics are fixed by :class:`python_ref.quant.IntAmosUnit` (see
``docs/integer_semantics.md``); :meth:`SerialAmosUnit.model` calls it and tests compare the
hardware with it bit for bit. ``docs/architecture.md``, "The time-serial AMOS unit",
describes the schedule and the costs.
"""
from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from amos_hw.lib.amos_unit import (
    _effective_range,
    clamped,
    const_mul,
    count_activity,
    unit_model,
)
from amos_hw.lib.checks import positive_int
from python_ref.quant import IntAmosUnit, signed_width

__all__ = ["SerialAmosUnit"]

#: Most slots (pipeline stages) a :class:`SerialAmosUnit` may interleave.
MAX_DEPTH = 16


@dataclass(frozen=True)
class _Leaf:
    """One term of the membrane sum ``u_s``, as a function of the neuron index ``s``.

    ``kind``: ``"x"`` (``c_s * x``), ``"x2"`` (``c2_s * x2``), ``"T"`` (``-T_s``) or ``"h"``
    (``-(z_j ? h_sj : 0)``, column ``j``); ``values``: the ROM contents indexed by ``s`` (the
    weights ``c_s``/``c2_s`` for a product, ``-T_s``, or ``-h_sj`` with the don't-care entries
    ``s <= j`` filled with ``-h_{j+1,j}``); ``lo``, ``hi``: the exact range of the term.
    """

    kind: str
    j: int
    values: tuple
    lo: int
    hi: int

    @property
    def uniform(self) -> bool:
        """All ``K`` ROM entries are equal: a constant, no ROM."""
        return len(set(self.values)) == 1

    @property
    def rom_width(self) -> int:
        """Signed width of one ROM entry."""
        return signed_width(min(self.values), max(self.values))


@dataclass(frozen=True)
class _Plan:
    """Everything the hardware and its estimates need, from the parameters alone."""

    K: int
    depth: int
    x_range: tuple
    x_clamp: bool
    x2_range: tuple | None
    x2_clamp: bool
    leaves: tuple  # of _Leaf
    levels: tuple  # levels[l]: (lo, hi) of the nodes after l pairwise additions; [0]: leaves
    cuts: tuple  # the tree level after which each of the depth - 1 pipeline registers sits
    y_mode: str  # "z": y is the spike word; "signed_z": its two's complement; "acc": sum d_s z_s
    y_width: int
    d: tuple

    x_width = property(lambda self: signed_width(*self.x_range))
    x2_width = property(lambda self: 0 if self.x2_range is None else signed_width(*self.x2_range))
    s_width = property(lambda self: (self.K - 1).bit_length())
    u_width = property(lambda self: signed_width(*self.levels[-1][0]))

    def widths(self, level: int) -> list[int]:
        """Signed widths of the tree's nodes at ``level``."""
        return [signed_width(lo, hi) for lo, hi in self.levels[level]]


def _args(unit, in_width, in2_width, depth, count_width):
    """The checked constructor arguments (``in2_width`` defaulted for two inputs)."""
    if not isinstance(unit, IntAmosUnit):
        raise TypeError(
            f"unit must be a python_ref.quant.IntAmosUnit, not {type(unit).__name__}"
        )
    in_width = int(positive_int("in_width", in_width, at_most=64))
    if unit.inputs == 1:
        if in2_width is not None:
            raise ValueError(f"unit {unit.name!r} has one input; in2_width must be None")
    else:
        in2_width = in_width if in2_width is None else in2_width
        in2_width = int(positive_int("in2_width", in2_width, at_most=64))
    depth = int(positive_int("depth", depth, at_most=MAX_DEPTH))
    count_width = int(positive_int("count_width", count_width, at_most=64))
    return in_width, in2_width, depth, count_width


def _product_leaf(kind, weights, rng) -> _Leaf:
    lo, hi = rng
    prods = [p for c in weights for p in (c * lo, c * hi)]
    return _Leaf(kind, -1, tuple(weights), min(prods), max(prods))


def _leaves(unit, x_range, x2_range) -> list[_Leaf]:
    """The non-zero terms of ``u_s``: products, ``-T_s``, then one gated ``-h_sj`` per column."""
    K = unit.K
    leaves = []
    if any(int(v) for v in unit.c):
        leaves.append(_product_leaf("x", [int(v) for v in unit.c], x_range))
    if unit.c2 is not None and any(int(v) for v in unit.c2):
        leaves.append(_product_leaf("x2", [int(v) for v in unit.c2], x2_range))
    negT = tuple(-int(v) for v in unit.T)
    if any(negT):
        leaves.append(_Leaf("T", -1, negT, min(negT), max(negT)))
    for j in range(K - 1):
        col = [-int(unit.h[s][j]) for s in range(j + 1, K)]
        if not any(col):
            continue
        values = tuple([col[0]] * (j + 1) + col)  # s <= j: z_j is still 0, any value does
        leaves.append(_Leaf("h", j, values, min(0, *col), max(0, *col)))
    if not leaves:  # u_s = 0 for every s
        leaves.append(_Leaf("T", -1, (0,) * K, 0, 0))
    return leaves


def _y_mode(d: list[int]) -> str:
    K = len(d)
    powers = [2 ** (K - 1 - i) for i in range(K)]
    if d == powers:
        return "z"
    if K >= 2 and d == [-powers[0]] + powers[1:]:
        return "signed_z"
    return "acc"


def _plan(unit, in_width, in2_width, depth) -> _Plan:
    """The unit's terms, adder tree, pipeline cuts and widths (see :class:`_Plan`)."""
    x_range, x_clamp = _effective_range(unit, in_width, unit.in_range)
    x2_range, x2_clamp = None, False
    if unit.inputs == 2:
        x2_range, x2_clamp = _effective_range(unit, in2_width, unit.in2_range)
    leaves = _leaves(unit, x_range, x2_range)
    levels = [tuple((lf.lo, lf.hi) for lf in leaves)]
    while len(levels[-1]) > 1:
        cur = levels[-1]
        nxt = [(a[0] + b[0], a[1] + b[1]) for a, b in zip(cur[0::2], cur[1::2], strict=False)]
        if len(cur) % 2:
            nxt.append(cur[-1])
        levels.append(tuple(nxt))
    L = len(levels) - 1
    cuts = tuple(min(L, -(-i * L // depth)) for i in range(1, depth))
    d = [int(v) for v in unit.d]
    y_width = signed_width(sum(min(0, v) for v in d), sum(max(0, v) for v in d))
    return _Plan(unit.K, depth, x_range, x_clamp, x2_range, x2_clamp, tuple(leaves),
                 tuple(levels), cuts, _y_mode(d), y_width, tuple(d))


def _state_bits(p: _Plan) -> int:
    """Bits of one slot's state: busy, x, x2, s, the spike word and the ``y`` accumulator."""
    return (1 + p.x_width + p.x2_width + p.s_width + p.K
            + (p.y_width if p.y_mode == "acc" else 0))


def _flip_flops(p: _Plan, count_width: int) -> int:
    ring = p.depth * _state_bits(p)
    cuts = sum(sum(p.widths(level)) for level in p.cuts)
    out = 1 + p.K + p.y_width
    popcount = p.K.bit_length()
    return ring + cuts + out + popcount + 1 + 2 * count_width


def _rom_luts(entries: int, width: int) -> int:
    """LUT4 of a ``entries``-word constant ROM: one LUT4 per 16 words and bit (the wider
    multiplexers are the slices' PFUMX/L6MUX, not LUT4)."""
    return -(-entries // 16) * width


def _multipliers(p: _Plan) -> int:
    """Variable products ``c_s * x`` (``c_s`` not all equal)."""
    return sum(lf.kind in ("x", "x2") and not lf.uniform for lf in p.leaves)


def _luts(p: _Plan, in_width: int, in2_width: int | None, count_width: int,
          dsp: bool = False) -> int:
    """LUT4 estimate (see :meth:`SerialAmosUnit.luts_for`)."""
    K = p.K
    total = 3 * in_width if p.x_clamp else 0
    total += 3 * in2_width if p.x2_clamp else 0
    for lf in p.leaves:
        if lf.kind in ("x", "x2"):
            xw = p.x_width if lf.kind == "x" else p.x2_width
            if lf.uniform:
                total += _const_mul_adders(lf.values[0]) * signed_width(lf.lo, lf.hi)
            else:
                total += _rom_luts(K, lf.rom_width)
                total += 0 if dsp else 5 * lf.rom_width * xw // 2
        elif not lf.uniform:
            total += _rom_luts(K, lf.rom_width)
    total += sum(sum(p.widths(level)[: len(p.levels[level - 1]) // 2])
                 for level in range(1, len(p.levels)))
    if p.y_mode == "acc":
        total += p.y_width + _rom_luts(K, signed_width(min(p.d), max(p.d)))
    # the s counter, the spike word's decoder (one LUT4 per bit, two with a wide s) and the
    # load multiplexers of x, x2 (one LUT4 per bit)
    total += p.s_width + K * (1 + (p.s_width > 2)) + p.x_width + p.x2_width
    return total + K + 2 * count_width + 8


def _const_mul_adders(c: int) -> int:
    """Adders of a shift-and-add multiplication by ``c`` (canonical signed digits - 1)."""
    mag, digits = abs(int(c)), 0
    while mag:
        if mag & 1:
            digits += 1
            mag = mag + 1 if mag & 2 else mag - 1
        mag >>= 1
    return max(0, digits - 1)


class SerialAmosUnit(wiring.Component):
    """An integer AMOS unit of ``K`` neurons evaluated one neuron per datapath pass.

    Each value in flight (a *slot*) holds its clamped input(s), the index ``s`` of its next
    neuron, the spikes so far (bit ``K-1-j`` is ``z_j``) and, for a general output, the sum
    ``y``. One pass computes, with the parameters read from ROMs indexed by ``s``,

    ``u_s = c_s*x (+ c2_s*x2) - T_s - sum_{j<s} (z_j ? h_sj : 0)``, ``z_s = [u_s >= 0]``,
    ``y += z_s ? d_s : 0``

    as a balanced adder tree over the non-zero terms (one gated term per column ``j`` of ``h``,
    a multiplication ``c_s * x`` by Amaranth's ``*``: Yosys maps it to a DSP block or LUTs; a
    constant one where all ``c_s`` are equal). The tree is cut into ``depth`` (``D``) pipeline
    stages; ``D`` slots circulate round-robin through them, so the loop ``z_s -> u_{s+1}`` spans
    ``D`` cycles. A value enters a slot when the slot passes the ring's turn (stage ``D-1`` back
    to stage 0) free, and leaves into the output register after its ``K``-th pass.

    This is bit-exact to :class:`~python_ref.quant.IntAmosUnit`: inputs outside ``in_range``
    (``in2_range``) are saturated first; the output ``y`` is ``sum_s d_s z_s`` (the spike word
    itself when ``d_s = 2**(K-1-s)``, its two's complement for the signed identity).

    Throughput: :attr:`interval` = ``K`` cycles per value at steady state (``D`` values every
    ``K*D`` cycles, accepted in bursts of up to ``D``). Latency: :attr:`latency` =
    ``K*D + 1`` cycles from an accepted input to its output being valid, when the output is not
    stalled. Backpressure stalls the whole ring when a finished value meets a full output
    register (nothing is lost, order is kept; ``i.ready`` follows ``o.ready`` combinationally).
    Outputs leave in input order. Only one value stream (``lanes`` = 1).

    Parameters
    ----------
    unit : python_ref.quant.IntAmosUnit
        Integer parameters (``c``, ``c2``, ``T``, ``h``, ``d``).
    in_width : int
        Signed width of ``x`` on the input port (1..64).
    in2_width : int, optional
        Signed width of ``x2`` (two-input units only; defaults to ``in_width``).
    depth : int
        ``D``: pipeline stages and slots (1..16), default 3.
    count_width : int
        Width of the wrapping :attr:`spike_count` counter, default 32.

    Members
    -------
    i : ``In(stream.Signature(in_layout))``
        Inputs: a struct with ``x`` (an array of one signed value) and, for a two-input unit,
        ``x2``: the layout of :class:`~amos_hw.lib.amos_unit.AmosUnit` with one lane.
    o : ``Out(stream.Signature(out_layout))``
        Outputs: ``z``, an array of one ``K``-bit spike word (bit ``K-1-i`` is ``z_i``), and
        ``y``, an array of one signed output ``sum_i d_i*z_i``.
    spike_count : ``Out(count_width)``
        Spikes of all outputs handed on so far (wraps around); both counters include a transfer
        two clock edges after it (the popcount is registered).
    output_count : ``Out(count_width)``
        Outputs handed on so far (wraps around).
    clear : ``In(1)``
        Synchronous clear of both counters; a transfer in the cycle of ``clear`` or the one
        before is not counted.
    """

    @staticmethod
    def interval_for(unit) -> int:
        """Cycles per value at steady state: ``K``."""
        return unit.K

    @staticmethod
    def latency_for(unit, depth: int = 3) -> int:
        """Cycles from an accepted input to its output being valid (no stall): ``K*D + 1``."""
        return unit.K * int(positive_int("depth", depth, at_most=MAX_DEPTH)) + 1

    @staticmethod
    def flip_flops_for(unit, in_width, *, in2_width=None, depth=3, count_width=32) -> int:
        """Flip-flops of the unit these arguments would build (the constructor's checks):

        ``D * (1 + w_x + w_x2 + w_s + K + w_y')`` for the ``D`` slots (busy, clamped inputs of
        their range's widths, ``s`` of ``ceil(log2 K)`` bits, the spike word, the sum ``y``
        where it is not the spike word), the pipeline registers (the widths of the adder
        tree's nodes at each cut), the output register (``1 + K + w_y``), the registered
        popcount and its valid (``bit_length(K) + 1``) and the two counters.
        """
        in_width, in2_width, depth, count_width = _args(unit, in_width, in2_width, depth,
                                                        count_width)
        return _flip_flops(_plan(unit, in_width, in2_width, depth), count_width)

    @staticmethod
    def multipliers_for(unit, in_width, *, in2_width=None, depth=3) -> int:
        """:attr:`multipliers` of the unit these arguments would build (the constructor's
        checks)."""
        in_width, in2_width, depth, _ = _args(unit, in_width, in2_width, depth, 32)
        return _multipliers(_plan(unit, in_width, in2_width, depth))

    @staticmethod
    def luts_for(unit, in_width, *, in2_width=None, depth=3, count_width=32,
                 dsp=False) -> int:
        """LUT4 estimate of the unit these arguments would build, one LUT4 per adder bit as
        :class:`~amos_hw.engines.unit_params.UnitParams` counts (a carry cell ``CCU2C`` is two
        LUT4):

        * the saturation of each input that the port lets beyond its range, ``3 * in_width``;
        * per term of ``u_s`` whose ROM is not constant, ``ceil(K/16)`` LUT4 per ROM bit;
        * per product ``c_s * x`` with varying ``c_s``: ``floor(5 * w_c * w_x / 2)`` (Yosys's
          LUT multiplier, ``synth_ecp5 -nodsp``), 0 with ``dsp`` (one ``MULT18X18D`` each,
          :attr:`multipliers`, Yosys's default); with one ``c`` for all ``s``: shift-and-add
          adders of the term's width;
        * the adder tree: each sum node's width (the gates ``z_j ? h : 0`` fold into the adder
          LUTs; ``u_s >= 0`` is the sign bit);
        * the ``y`` accumulator and the ``d`` ROM where ``y`` is not the spike word;
        * the ``s`` counter (``w_s``), the spike word's write decoder (``K``, ``2K`` for
          ``w_s > 2``), the load multiplexers of ``x`` and ``x2`` (their widths);
        * the popcount (``K``), the counters (``2 * count_width``) and 8 of control.

        Checked on synthesis (Yosys 0.70 ``synth_ecp5``, the flow of
        :mod:`amos_hw.engines.synth_probe`, ``D = 3``), LUT4 + 2 CCU2C against the estimate:
        swish quantised 12/10/8, ``in_width=12``: 915 against 923 (``-nodsp``), 626 and one
        MULT18X18D against 623 (``dsp``); mult quantised 10/8/8, 10-bit inputs: 3,112 against
        3,286 (``-nodsp``), 2,676 and two MULT18X18D against 2,886 (``dsp``).
        """
        in_width, in2_width, depth, count_width = _args(unit, in_width, in2_width, depth,
                                                        count_width)
        return _luts(_plan(unit, in_width, in2_width, depth), in_width, in2_width, count_width,
                     bool(dsp))

    def __init__(self, unit, in_width, *, in2_width=None, depth=3, count_width=32):
        in_width, in2_width, depth, count_width = _args(unit, in_width, in2_width, depth,
                                                        count_width)
        self._unit = unit
        self._K = unit.K
        self._in_width = in_width
        self._in2_width = in2_width
        self._depth = depth
        self._count_width = count_width
        self._p = _plan(unit, in_width, in2_width, depth)

        fields = {"x": data.ArrayLayout(signed(in_width), 1)}
        if unit.inputs == 2:
            fields["x2"] = data.ArrayLayout(signed(in2_width), 1)
        self._in_layout = data.StructLayout(fields)
        self._out_layout = data.StructLayout({
            "z": data.ArrayLayout(unsigned(self._K), 1),
            "y": data.ArrayLayout(signed(self._p.y_width), 1),
        })
        super().__init__({
            "i": In(stream.Signature(self._in_layout)),
            "o": Out(stream.Signature(self._out_layout)),
            "spike_count": Out(count_width),
            "output_count": Out(count_width),
            "clear": In(1),
        })

    # -- read-only properties ---------------------------------------------------------------
    unit = property(lambda self: self._unit, doc="The integer unit (IntAmosUnit).")
    K = property(lambda self: self._K, doc="Neurons (datapath passes per value).")
    depth = property(lambda self: self._depth, doc="D: pipeline stages and slots.")
    lanes = property(lambda self: 1, doc="Values per transfer: always 1.")
    in_width = property(lambda self: self._in_width, doc="Signed width of x.")
    in2_width = property(lambda self: self._in2_width, doc="Signed width of x2 (or None).")
    y_width = property(lambda self: self._p.y_width, doc="Signed width of y.")
    in_layout = property(lambda self: self._in_layout, doc="Payload layout of ``i``.")
    out_layout = property(lambda self: self._out_layout, doc="Payload layout of ``o``.")
    interval = property(lambda self: self._K,
                        doc="Cycles per value at steady state: ``K`` (:meth:`interval_for`).")
    latency = property(lambda self: self._K * self._depth + 1,
                       doc="Cycles from an accepted input to its output being valid (no "
                           "stall): ``K*D + 1`` (:meth:`latency_for`).")
    flip_flops = property(lambda self: _flip_flops(self._p, self._count_width),
                          doc="Flip-flop estimate (:meth:`flip_flops_for`).")
    luts = property(lambda self: _luts(self._p, self._in_width, self._in2_width,
                                       self._count_width),
                    doc="LUT4 estimate without DSP blocks (:meth:`luts_for`).")
    multipliers = property(lambda self: _multipliers(self._p),
                           doc="Variable products ``c_s * x`` (``c_s`` not all equal): the "
                               "DSP blocks of Yosys's default ECP5 mapping.")

    def model(self, x, x2=None):
        """Bit-exact reference: spike words and outputs from :class:`IntAmosUnit`.

        Parameters
        ----------
        x, x2 : array_like of int
            Inputs (``x2`` only for a two-input unit).

        Returns
        -------
        (numpy.ndarray, numpy.ndarray)
            Spike words (bit ``K-1-i`` is ``z_i``) and outputs ``y``, both int64.
        """
        return unit_model(self._unit, x, x2)

    # -- hardware ---------------------------------------------------------------------------
    def _slot(self, name):
        p = self._p
        st = {
            "busy": Signal(name=f"{name}_busy"),
            "x": Signal(signed(p.x_width), name=f"{name}_x"),
            "s": Signal(p.s_width, name=f"{name}_s"),
            "z": Signal(p.K, name=f"{name}_z"),
        }
        if p.x2_range is not None:
            st["x2"] = Signal(signed(p.x2_width), name=f"{name}_x2")
        if p.y_mode == "acc":
            st["y"] = Signal(signed(p.y_width), name=f"{name}_y")
        return st

    def _leaf_value(self, m, lf: _Leaf, st):
        """The term ``lf`` of slot state ``st`` (a signal of the term's exact width)."""
        out = Signal(signed(signed_width(lf.lo, lf.hi)), name=f"t_{lf.kind}{max(lf.j, 0)}")
        rom_shape = signed(lf.rom_width)
        rom = (Const(lf.values[0], rom_shape) if lf.uniform
               else Array(Const(v, rom_shape) for v in lf.values)[st["s"]])
        if lf.kind in ("x", "x2"):
            v = const_mul(st[lf.kind], lf.values[0]) if lf.uniform else rom * st[lf.kind]
        elif lf.kind == "T":
            v = rom
        else:
            v = Mux(st["z"][self._K - 1 - lf.j], rom, 0)
        m.d.comb += out.eq(v)
        return out

    def _membrane(self, m, en, ring):
        """``u_s`` of the slot in the last stage: the adder tree over the terms of the slot in
        stage 0, registered at the plan's cuts (one stage each)."""
        p = self._p
        nodes = [self._leaf_value(m, lf, ring[0]) for lf in p.leaves]
        cuts = list(p.cuts)
        stage = 0

        def cut(level, nodes):
            nonlocal stage
            while cuts and cuts[0] == level:
                cuts.pop(0)
                stage += 1
                regs = [Signal.like(n, name=f"p{stage}_{k}") for k, n in enumerate(nodes)]
                with m.If(en):
                    m.d.sync += [r.eq(n) for r, n in zip(regs, nodes, strict=True)]
                nodes = regs
            return nodes

        nodes = cut(0, nodes)
        for level in range(1, len(p.levels)):
            widths = p.widths(level)
            nxt = []
            for k in range(len(nodes) // 2):
                s = Signal(signed(widths[k]), name=f"sum{level}_{k}")
                m.d.comb += s.eq(nodes[2 * k] + nodes[2 * k + 1])
                nxt.append(s)
            if len(nodes) % 2:
                nxt.append(nodes[-1])
            nodes = cut(level, nxt)
        assert stage == p.depth - 1 and len(nodes) == 1
        return nodes[0]

    def _turn(self, m, en, ring, fire):
        """The last stage's update, the output register and the loading of stage 0."""
        p, K = self._p, self._K
        last = ring[-1]
        finishing = last["busy"] & (last["s"] == K - 1)
        z_new = Signal(K)
        m.d.comb += z_new.eq(Cat(last["z"][b] | (fire & (last["s"] == K - 1 - b))
                                 for b in range(K)))
        y_new = None
        if p.y_mode == "acc":
            d_rom = Array(Const(v, signed(p.y_width)) for v in p.d)[last["s"]]
            y_new = Signal(signed(p.y_width))
            m.d.comb += y_new.eq(last["y"] + Mux(fire, d_rom, 0))
        out_free = ~self.o.valid | self.o.ready
        free = ~last["busy"] | finishing
        m.d.comb += [
            en.eq(~finishing | out_free),
            self.i.ready.eq(en & free),
        ]
        first = ring[0]
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(en):
            with m.If(finishing):
                y = {"acc": y_new, "z": z_new, "signed_z": z_new.as_signed()}[p.y_mode]
                m.d.sync += [self.o.valid.eq(1), self.o.payload.z[0].eq(z_new),
                             self.o.payload.y[0].eq(y)]
            with m.If(self.i.valid & free):
                m.d.sync += [first["busy"].eq(1), first["s"].eq(0), first["z"].eq(0),
                             first["x"].eq(clamped(self.i.payload.x[0], p.x_range,
                                                         p.x_clamp))]
                if "x2" in first:
                    m.d.sync += first["x2"].eq(clamped(self.i.payload.x2[0], p.x2_range,
                                                             p.x2_clamp))
                if "y" in first:
                    m.d.sync += first["y"].eq(0)
            with m.Else():
                m.d.sync += [first["busy"].eq(last["busy"] & ~finishing),
                             first["s"].eq(last["s"] + 1), first["z"].eq(z_new),
                             first["x"].eq(last["x"])]
                if "x2" in first:
                    m.d.sync += first["x2"].eq(last["x2"])
                if "y" in first:
                    m.d.sync += first["y"].eq(y_new)

    def _counters(self, m):
        K = self._K
        spikes = Signal(range(K + 1))
        m.d.comb += spikes.eq(sum((self.o.payload.z[0][b] for b in range(K)), Const(0, 1)))
        count_activity(m, self, spikes)

    def elaborate(self, platform):
        m = Module()
        en = Signal()
        ring = [self._slot(f"slot{k}") for k in range(self._depth)]
        with m.If(en):
            for k in range(self._depth - 1):
                m.d.sync += [ring[k + 1][f].eq(ring[k][f]) for f in ring[k]]
        u = self._membrane(m, en, ring)
        fire = Signal()
        m.d.comb += fire.eq(~u[-1])
        self._turn(m, en, ring, fire)
        self._counters(m)
        return m
