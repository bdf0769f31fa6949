"""The AMOS unit as hardware: K pipelined threshold stages with delay registers.

The integer semantics are fixed by :class:`python_ref.quant.IntAmosUnit` (see
``docs/integer_semantics.md``); :meth:`AmosUnit.model` calls it and tests compare the hardware
with it bit for bit.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from amos_hw.lib.checks import positive_int
from python_ref.quant import IntAmosUnit, signed_width

__all__ = ["AmosUnit", "clamped", "const_mul", "count_activity", "unit_model"]


def const_mul(x, c: int):
    """Multiply a value by an integer constant, without a multiplier where ``c`` allows it.

    ``0`` gives a zero constant, ``+-2**k`` a shift (and negation); other constants fall back to
    Amaranth's ``*`` (a constant multiplication, which synthesis turns into adders or a DSP).

    Parameters
    ----------
    x : amaranth value
        Signed or unsigned value.
    c : int
        Constant factor.
    """
    c = int(c)
    if c == 0:
        return Const(0, signed(2))
    mag = abs(c)
    if mag & (mag - 1) == 0:
        shifted = x.as_signed() if x.shape().signed else x.as_unsigned()
        k = mag.bit_length() - 1
        v = shifted.shift_left(k) if k else shifted
        return -v if c < 0 else v
    return x * c


def _unit_args(unit, in_width, in2_width, lanes, count_width):
    """The checked arguments of :class:`AmosUnit` (``in2_width`` defaulted for two inputs)."""
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
    lanes = int(positive_int("lanes", lanes, at_most=4096))
    count_width = int(positive_int("count_width", count_width, at_most=64))
    return in_width, in2_width, lanes, count_width


def _effective_range(unit, width: int, rng) -> tuple[tuple[int, int], bool]:
    """The part of ``rng`` a ``width``-bit signed input reaches, and whether it needs a clamp."""
    lo = max(-(2 ** (width - 1)), rng[0])
    hi = min(2 ** (width - 1) - 1, rng[1])
    if lo > hi:
        raise ValueError(
            f"unit {unit.name!r}: a {width}-bit signed input cannot reach its range {rng}"
        )
    clamp = lo > -(2 ** (width - 1)) or hi < 2 ** (width - 1) - 1
    return (lo, hi), clamp


def clamped(v, rng, clamp: bool):
    """``v`` saturated to ``rng = (lo, hi)`` when ``clamp`` (the port reaches beyond it)."""
    if not clamp:
        return v
    lo, hi = rng
    return Mux(v < lo, lo, Mux(v > hi, hi, v))


def unit_model(unit, x, x2=None):
    """Bit-exact reference of a unit's output port: the spike words (bit ``K-1-i`` is ``z_i``)
    and the outputs ``y`` of :class:`IntAmosUnit` for ``x`` (and ``x2``), both int64."""
    z = unit.spikes(x, x2).astype(np.int64)
    weights = np.int64(1) << np.arange(unit.K - 1, -1, -1, dtype=np.int64)
    return z @ weights, unit(x, x2)


def count_activity(m, unit, spikes) -> None:
    """The activity counters of a unit component ``unit`` (its ``o``, ``clear``,
    ``spike_count``, ``output_count``): ``spikes`` (the spikes of the output word) and one
    output are added two clock edges after a transfer. The popcount is registered before the
    wide add: on ECP5 the popcount and a 32-bit carry chain in one cycle were the critical path
    of a whole engine. Plain expressions, not If/Elif: with ``clear`` tied off by a parent,
    Yosys would keep an incomplete case statement that Verilator's lint reports."""
    taken = unit.o.valid & unit.o.ready
    spikes_r = Signal.like(spikes)
    taken_r = Signal()
    m.d.sync += [
        spikes_r.eq(Mux(taken & ~unit.clear, spikes, 0)),
        taken_r.eq(taken & ~unit.clear),
        unit.spike_count.eq(Mux(unit.clear, 0, unit.spike_count + spikes_r)),
        unit.output_count.eq(Mux(unit.clear, 0, unit.output_count + taken_r)),
    ]


@dataclass(frozen=True)
class _Widths:
    """What an :class:`AmosUnit`'s registers need, from its parameters alone."""

    x_range: tuple
    x_clamp: bool
    x2_range: tuple | None
    x2_clamp: bool
    shared: bool  # the stages share one residual (closed-form ReLU and alike)
    hcol: tuple | None  # shared: the constant column of h below the diagonal, per stage
    res_width: int | None  # shared: width of the residual
    mem_widths: tuple | None  # not shared: width of each neuron's membrane
    y_width: int
    relu_like: bool  # d_i = 2**(K-1-i): the output is the spike word


def _widths(unit, in_width: int, in2_width: int | None) -> _Widths:
    """Register widths of a unit with ``in_width``-bit (and ``in2_width``-bit) inputs."""
    K = unit.K
    x_range, x_clamp = _effective_range(unit, in_width, unit.in_range)
    x2_range, x2_clamp = None, False
    if unit.inputs == 2:
        x2_range, x2_clamp = _effective_range(unit, in2_width, unit.in2_range)
    c = [int(v) for v in unit.c]
    c2 = None if unit.c2 is None else [int(v) for v in unit.c2]
    h = [[int(v) for v in row] for row in unit.h]
    shared = (
        len(set(c)) == 1
        and (c2 is None or len(set(c2)) == 1)
        and all(len({h[i][j] for i in range(j + 1, K)}) <= 1 for j in range(K))
    )

    # exact ranges of the input terms c_k*x (+ c2_k*x2), neuron by neuron
    def term(k):
        lo, hi = x_range
        a = sorted((c[k] * lo, c[k] * hi))
        if c2 is not None:
            lo2, hi2 = x2_range
            b = sorted((c2[k] * lo2, c2[k] * hi2))
            a = [a[0] + b[0], a[1] + b[1]]
        return a

    hcol = res_width = mem_widths = None
    if shared:
        p_lo, p_hi = term(0)
        hcol = tuple(h[j + 1][j] if j + 1 < K else 0 for j in range(K))
        r_lo = p_lo - sum(max(0, v) for v in hcol)
        r_hi = p_hi - sum(min(0, v) for v in hcol)
        res_width = signed_width(r_lo, r_hi)
    else:
        widths = []
        for k in range(K):
            p_lo, p_hi = term(k)
            t = int(unit.T[k])
            widths.append(
                signed_width(
                    p_lo - t - sum(max(0, v) for v in h[k][:k]),
                    p_hi - t - sum(min(0, v) for v in h[k][:k]),
                )
            )
        mem_widths = tuple(widths)
    d = [int(v) for v in unit.d]
    y_width = signed_width(sum(min(0, v) for v in d), sum(max(0, v) for v in d))
    relu_like = d == [2 ** (K - 1 - i) for i in range(K)]
    return _Widths(x_range, x_clamp, x2_range, x2_clamp, shared, hcol, res_width, mem_widths,
                   y_width, relu_like)


def _flip_flops(K: int, lanes: int, count_width: int, w: _Widths) -> int:
    """Flip-flops of the pipeline registers and counters (an estimate before synthesis)."""
    if w.shared:
        per_lane = (K + 1) * w.res_width
    else:
        per_lane = sum(sum(w.mem_widths[s:]) for s in range(K + 1))
    per_lane += sum(range(K + 1)) + K + w.y_width
    popcount = (K * lanes).bit_length() + 1
    return lanes * per_lane + K + 2 + 2 * count_width + popcount


class AmosUnit(wiring.Component):
    """An integer AMOS unit of ``K`` neurons as a pipeline of ``K`` threshold stages.

    Stage ``i`` holds the membrane value of neuron ``i``, ``c_i*x (+ c2_i*x2) - H_i - T_i`` with
    ``H_i = sum_{j<i} h_ij*z_j``, compares it with zero and emits ``z_i``; it passes on the
    membranes of the later neurons, already reduced by ``h_ki*z_i``, and the spikes so far (the
    delay registers that align the ``K`` spikes of one input). When all ``c_i`` (and ``c2_i``)
    are equal and each column of ``h`` is constant below the diagonal, as in the closed-form
    ReLU (``c_i = 1``, ``T_i = h_ji = d_i = 2**(K-1-i)``), the stages share a single residual
    ``r = c*x - H`` and compare it with the constant ``T_i``: the ReLU unit has no multiplier,
    only comparisons and subtractions of powers of two.

    Inputs outside the unit's ``in_range`` are saturated to it first, as
    :class:`~python_ref.quant.IntAmosUnit` does.

    Throughput: one input (of ``lanes`` values) per cycle. Latency: :attr:`latency` cycles
    (``K + 2``) from an accepted input to its output being valid, when the output is not stalled.
    Backpressure stalls the whole pipeline (``i.ready`` follows ``o.ready`` combinationally).

    Parameters
    ----------
    unit : python_ref.quant.IntAmosUnit
        Integer parameters (``c``, ``c2``, ``T``, ``h``, ``d``).
    in_width : int
        Signed width of ``x`` on the input port (1..64).
    in2_width : int, optional
        Signed width of ``x2`` (two-input units only; defaults to ``in_width``).
    lanes : int
        Independent units sharing one stream (same parameters), default 1.
    count_width : int
        Width of the wrapping :attr:`spike_count` counter, default 32.

    Members
    -------
    i : ``In(stream.Signature(in_layout))``
        Inputs: a struct with ``x`` (an array of ``lanes`` signed values) and, for a two-input
        unit, ``x2``.
    o : ``Out(stream.Signature(out_layout))``
        Outputs: ``z``, an array of ``lanes`` ``K``-bit spike words (bit ``K-1-i`` is ``z_i``,
        so a ReLU unit's spike word is its activation), and ``y``, an array of ``lanes`` signed
        outputs ``sum_i d_i*z_i``.
    spike_count : ``Out(count_width)``
        Spikes of all outputs handed on so far (wraps around); the unit reports its activity.
        Both counters include a transfer two clock edges after it (the popcount is registered).
    output_count : ``Out(count_width)``
        Outputs (of ``lanes`` values) handed on so far (wraps around).
    clear : ``In(1)``
        Synchronous clear of both counters; a transfer in the cycle of ``clear`` or the one
        before is not counted.
    """

    @staticmethod
    def latency_for(unit) -> int:
        """Cycles from an accepted input to its output being valid (no stall), for ``unit``:
        ``K + 2``."""
        return unit.K + 2

    @staticmethod
    def flip_flops_for(unit, in_width, *, in2_width=None, lanes=1, count_width=32) -> int:
        """Flip-flop estimate of the unit these arguments would build (the constructor's
        arguments and checks), without building it."""
        in_width, in2_width, lanes, count_width = _unit_args(unit, in_width, in2_width, lanes,
                                                             count_width)
        return _flip_flops(unit.K, lanes, count_width, _widths(unit, in_width, in2_width))

    def __init__(self, unit, in_width, *, in2_width=None, lanes=1, count_width=32):
        in_width, in2_width, lanes, count_width = _unit_args(unit, in_width, in2_width, lanes,
                                                             count_width)
        self._unit = unit
        self._K = unit.K
        self._in_width = in_width
        self._in2_width = in2_width
        self._lanes = lanes
        self._count_width = count_width
        self._w = _widths(unit, in_width, in2_width)

        fields = {"x": data.ArrayLayout(signed(in_width), lanes)}
        if unit.inputs == 2:
            fields["x2"] = data.ArrayLayout(signed(in2_width), lanes)
        self._in_layout = data.StructLayout(fields)
        self._out_layout = data.StructLayout(
            {
                "z": data.ArrayLayout(unsigned(self._K), lanes),
                "y": data.ArrayLayout(signed(self._w.y_width), lanes),
            }
        )
        super().__init__(
            {
                "i": In(stream.Signature(self._in_layout)),
                "o": Out(stream.Signature(self._out_layout)),
                "spike_count": Out(count_width),
                "output_count": Out(count_width),
                "clear": In(1),
            }
        )

    # -- read-only properties ---------------------------------------------------------------
    unit = property(lambda self: self._unit, doc="The integer unit (IntAmosUnit).")
    K = property(lambda self: self._K, doc="Neurons (pipeline stages).")
    lanes = property(lambda self: self._lanes, doc="Parallel lanes.")
    in_width = property(lambda self: self._in_width, doc="Signed width of x.")
    in2_width = property(lambda self: self._in2_width, doc="Signed width of x2 (or None).")
    y_width = property(lambda self: self._w.y_width, doc="Signed width of y.")
    shared_residual = property(
        lambda self: self._w.shared,
        doc="True when the stages share one residual (closed-form ReLU and alike).",
    )
    in_layout = property(lambda self: self._in_layout, doc="Payload layout of ``i``.")
    out_layout = property(lambda self: self._out_layout, doc="Payload layout of ``o``.")

    @property
    def latency(self) -> int:
        """Cycles from an accepted input to its output being valid (no stall): ``K + 2``
        (:meth:`latency_for`)."""
        return AmosUnit.latency_for(self._unit)

    @property
    def flip_flops(self) -> int:
        """Flip-flops of the pipeline registers and counters (an estimate before synthesis;
        :meth:`flip_flops_for`)."""
        return _flip_flops(self._K, self._lanes, self._count_width, self._w)

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
    def elaborate(self, platform):
        m = Module()
        K, unit = self._K, self._unit
        c = [int(v) for v in unit.c]
        c2 = None if unit.c2 is None else [int(v) for v in unit.c2]
        T = [int(v) for v in unit.T]
        h = [[int(v) for v in row] for row in unit.h]
        d = [int(v) for v in unit.d]

        en = Signal()
        valid = [Signal(name=f"valid_{s}") for s in range(K + 2)]
        m.d.comb += [
            en.eq(~valid[K + 1] | self.o.ready),
            self.i.ready.eq(en),
            self.o.valid.eq(valid[K + 1]),
        ]
        with m.If(en):
            m.d.sync += valid[0].eq(self.i.valid)
            m.d.sync += [valid[s + 1].eq(valid[s]) for s in range(K + 1)]

        for lane in range(self._lanes):
            x = clamped(self.i.payload.x[lane], self._w.x_range, self._w.x_clamp)
            x2 = None
            if c2 is not None:
                x2 = clamped(self.i.payload.x2[lane], self._w.x2_range, self._w.x2_clamp)

            def input_term(k, x=x, x2=x2):
                t = const_mul(x, c[k])
                if x2 is not None:
                    t = t + const_mul(x2, c2[k])
                return t

            # zs[s] holds the spikes of neurons < s at bits K-1-j (delay registers)
            zs = [Signal(K, name=f"z_{lane}_{s}") for s in range(K + 1)]
            if self._w.shared:
                res = [
                    Signal(signed(self._w.res_width), name=f"r_{lane}_{s}") for s in range(K + 1)
                ]
                with m.If(en):
                    m.d.sync += [res[0].eq(input_term(0)), zs[0].eq(0)]
                    for s in range(K):
                        fire = res[s] >= T[s]
                        nxt = res[s] - Mux(fire, self._w.hcol[s], 0) if self._w.hcol[s] else res[s]
                        m.d.sync += [
                            res[s + 1].eq(nxt),
                            zs[s + 1].eq(zs[s] | (fire << (K - 1 - s))),
                        ]
            else:
                # mem[s][k] for k >= s: membrane of neuron k after the spikes of neurons < s
                mem = [
                    {
                        k: Signal(signed(self._w.mem_widths[k]), name=f"u_{lane}_{s}_{k}")
                        for k in range(s, K)
                    }
                    for s in range(K + 1)
                ]
                with m.If(en):
                    m.d.sync += zs[0].eq(0)
                    m.d.sync += [mem[0][k].eq(input_term(k) - T[k]) for k in range(K)]
                    for s in range(K):
                        fire = ~mem[s][s][-1]  # membrane >= 0
                        m.d.sync += zs[s + 1].eq(zs[s] | (fire << (K - 1 - s)))
                        for k in range(s + 1, K):
                            hk = h[k][s]
                            nxt = mem[s][k] - Mux(fire, hk, 0) if hk else mem[s][k]
                            m.d.sync += mem[s + 1][k].eq(nxt)

            with m.If(en):
                m.d.sync += self.o.payload.z[lane].eq(zs[K])
                if self._w.relu_like:
                    y = zs[K]
                else:
                    y = sum(
                        (Mux(zs[K][K - 1 - i], d[i], 0) for i in range(K) if d[i]),
                        Const(0, signed(2)),
                    )
                m.d.sync += self.o.payload.y[lane].eq(y)

        # activity statistics
        spikes = Signal(range(K * self._lanes + 1))
        z = self.o.payload.z
        if K * self._lanes <= 128:
            count = sum(z[lane][b] for lane in range(self._lanes) for b in range(K))
        else:  # per lane first: a flat chain of K * lanes adds overflows Python's recursion
            count = sum(sum(z[lane][b] for b in range(K)) for lane in range(self._lanes))
        m.d.comb += spikes.eq(count)
        count_activity(m, self, spikes)
        return m
