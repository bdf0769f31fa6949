"""Unit engine: a trained one-input integer AMOS unit applied to a stream of raw values."""
from __future__ import annotations

import numpy as np
from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from amos_hw.engines.figures import Figures
from amos_hw.engines.unit_params import COUNT_WIDTH, UnitParams, clamp_bounds
from amos_hw.lib.amos_unit import AmosUnit
from amos_hw.lib.bram_fifo import buffered_fifo
from amos_hw.lib.serial_unit import SerialAmosUnit

__all__ = ["SerialLanes", "UnitEngine"]


class SerialLanes(wiring.Component):
    """``lanes`` :class:`~amos_hw.lib.serial_unit.SerialAmosUnit` s in lockstep behind a pacer,
    with :class:`~amos_hw.lib.amos_unit.AmosUnit`'s ports (``i.payload.x[n]`` and, for a
    two-input unit, ``x2[n]``; ``o.payload.y[n]``; ``spike_count``), so that an engine built
    around an ``AmosUnit`` takes it in its place.

    The units see the same valid and ready and so stay in lockstep: the first unit's handshake
    is the block's. The pacer lets a word in at most every ``K`` cycles (``K`` cycles after the
    last accepted one); with ``gcd(K, depth) = 1`` (the caller's check,
    :func:`~amos_hw.engines.unit_params.check_serial`) the units are then always free when it
    opens, so a word offered every cycle is accepted exactly every ``K`` cycles, never in
    bursts. Latency ``K * depth + 1`` (the units'); ``spike_count`` is the sum of the units'
    counters (a transfer counted two clock edges after it). The flip-flops and LUT4 are
    :attr:`UnitParams.flip_flops <amos_hw.engines.unit_params.UnitParams.flip_flops>`'s and
    :attr:`~amos_hw.engines.unit_params.UnitParams.luts`'s serial terms.

    Parameters
    ----------
    unit : python_ref.quant.IntAmosUnit
        One or two inputs.
    in_width, in2_width : int
        Signed widths of ``x`` and ``x2`` (``in2_width`` for a two-input unit only).
    lanes : int
        Serial units, one a lane.
    depth : int
        ``D`` of each unit.
    """

    def __init__(self, unit, in_width, *, in2_width=None, lanes=1, depth=3):
        self._unit, self._in_width, self._in2_width = unit, in_width, in2_width
        self._lanes, self._depth = lanes, depth
        self._units = [SerialAmosUnit(unit, in_width, in2_width=in2_width, depth=depth,
                                      count_width=COUNT_WIDTH) for _ in range(lanes)]
        u = self._units[0]
        fields = {"x": data.ArrayLayout(signed(in_width), lanes)}
        if unit.inputs == 2:
            fields["x2"] = data.ArrayLayout(signed(in2_width), lanes)
        super().__init__({
            "i": In(stream.Signature(data.StructLayout(fields))),
            "o": Out(stream.Signature(data.StructLayout(
                {"y": data.ArrayLayout(signed(u.y_width), lanes)}))),
            "spike_count": Out(COUNT_WIDTH),
        })

    y_width = property(lambda self: self._units[0].y_width, doc="Signed width of y.")
    latency = property(lambda self: self._units[0].latency,
                       doc="Cycles from an accepted word to its output word: K * D + 1.")

    def elaborate(self, platform):
        m = Module()
        units, K = self._units, self._unit.K
        for n, u in enumerate(units):
            m.submodules[f"serial{n}"] = u
        wait = Signal(range(K), name="pace")  # cycles until the next word may enter
        open_ = wait == 0
        m.d.comb += [self.i.ready.eq(open_ & units[0].i.ready),
                     self.o.valid.eq(units[0].o.valid)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += wait.eq(K - 1)
        with m.Elif(~open_):
            m.d.sync += wait.eq(wait - 1)
        for n, u in enumerate(units):
            m.d.comb += [
                u.i.valid.eq(self.i.valid & open_),
                u.i.payload.x[0].eq(self.i.payload.x[n]),
                self.o.payload.y[n].eq(u.o.payload.y[0]),
                u.o.ready.eq(self.o.ready),
            ]
            if self._unit.inputs == 2:
                m.d.comb += u.i.payload.x2[0].eq(self.i.payload.x2[n])
        m.d.comb += self.spike_count.eq(sum((u.spike_count for u in units[1:]),
                                            units[0].spike_count)[:COUNT_WIDTH])
        return m


class UnitEngine(wiring.Component):
    """``y = sum_i d_i z_i(v)`` of a trained integer AMOS unit, value by value.

    A convolution, dense layer or residual add followed by a non-ReLU one-input ``amos`` op
    (swish, sigmoid, the signed identity of a linear layer) emits its raw requantised value
    ``v = (acc + 2**(S-1)) >> S`` (``out_bits=None``); this engine applies the
    unit (:class:`python_ref.quant.IntAmosUnit`: ``v`` is first saturated to the unit's
    ``in_range``, then the ``K`` neurons fire in turn, ``z_k = [c_k*v - sum_{j<k} h_kj z_j >=
    T_k]``) and emits ``y = sum_i d_i z_i`` as a signed two's-complement word of ``y_width =
    signed_width(sum of the negative d_i, sum of the positive d_i)`` bits, which the next engine
    consumes bit-serially. Every lane of a word is one value, in stream order; the lanes are
    independent copies of the unit.

    The hardware is :class:`amos_hw.lib.amos_unit.AmosUnit`: ``K`` pipelined threshold stages
    and the output register. The engine adds no register: ``i.ready`` follows ``o.ready``
    combinationally, as the unit's does (the generator puts a skid buffer after every engine, so
    the ready path ends at the next one). The signed identity of a linear layer
    (:meth:`IntAmosUnit.identity <python_ref.quant.IntAmosUnit.identity>`, recognised by its
    arrays: :func:`~amos_hw.engines.unit_params.is_identity`) is built as what it computes, a
    saturating clamp into the output register (:attr:`params` ``.clamp``), its spikes counted
    as the ``K`` two's-complement digits of ``y``: no neuron stages.

    Throughput: one word (``lanes`` values) per cycle, :attr:`expected_cycles` =
    ``elements / lanes`` per image. Latency: the output word is valid :attr:`latency` =
    ``K + 2`` cycles (the clamp form: 1) after its input word was accepted (output not
    stalled).

    The serial form (``serial=n``): ``n`` :class:`~amos_hw.lib.serial_unit.SerialAmosUnit` s
    of ``depth`` ``D`` slots, one a lane (the word is ``n`` values, ``lanes = n``), evaluating
    one neuron a cycle each. They see the same valid and ready and so stay in lockstep: the
    first unit's handshake is the engine's. A pacer lets a word in at most every ``K`` cycles
    (``K`` cycles after the last accepted one); with ``gcd(K, D) = 1`` (checked; default ``D``:
    :func:`~amos_hw.engines.unit_params.serial_depth`) the units are then always free when it
    opens, so a word offered every cycle is accepted exactly every ``K`` cycles, never in
    bursts: :attr:`expected_cycles` = ``K * elements / lanes`` per image, one output word
    every ``K`` cycles, :attr:`latency` = ``K * D + 1``. Under input gaps the word waits for a
    free slot (at most ``D - 1`` cycles); order is kept, nothing is lost under stalls. The
    spike count is the sum of the units' counters. Not for the signed identity (a clamp).
    With ``buffer=B`` a FIFO of ``B`` words (:func:`~amos_hw.lib.bram_fifo.buffered_fifo`,
    ``SyncFIFOBuffered``'s timing) sits in front of the
    pacer, ``min(B, 2)`` more cycles of latency: a producer that emits its words in bursts (a
    depthwise conv emits a pixel's ``C / lanes`` channel groups back to back and stalls its whole
    pipeline while its output waits) then never waits on the units as long as a burst fits;
    the generator gives a serial unit layer fed by such an engine one pixel's words
    (:func:`amos_hw.folding.apply`).

    Parameters
    ----------
    unit : python_ref.quant.IntAmosUnit
        The integer unit; one input.
    in_width : int
        Signed width of the raw value ``v`` on the input port (2..32).
    lanes : int
        Values per stream word.
    name : str
        Layer name for error messages.
    elements : int, optional
        Values of one image (for :attr:`expected_cycles`); ``lanes`` must divide it. Default:
        one word (``lanes`` values).
    serial : int, optional
        ``n``: build ``n`` serial units (one a lane; ``lanes`` 1 or ``n``) instead of the
        pipelined :class:`~amos_hw.lib.amos_unit.AmosUnit`. Default ``None``: pipelined.
    depth : int, optional
        ``D`` of each serial unit (1..16, ``gcd(K, D) = 1``); serial form only.
    buffer : int
        Words of the serial form's input FIFO (0..4096), default 0: none.

    Members
    -------
    i : ``In(stream.Signature(ArrayLayout(signed(in_width), lanes)))``
        Raw values ``v``.
    o : ``Out(stream.Signature(ArrayLayout(signed(y_width), lanes)))``
        Outputs ``y``.
    spike_count : ``Out(32)``
        Spikes ``z`` of every output word handed on so far (wraps around); a transfer is
        included two clock edges after it, as in every engine with an AMOS unit
        (:mod:`amos_hw.lib.spike_tally`).
    """

    def __init__(self, unit, *, in_width, lanes=1, name="unit", elements=None, serial=None,
                 depth=None, buffer=0):
        p = UnitParams.check(unit, in_width=in_width, lanes=lanes, name=name, elements=elements,
                             serial=serial, depth=depth, buffer=buffer)
        self._p = p
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(signed(p.in_width), p.lanes))),
            "o": Out(stream.Signature(data.ArrayLayout(signed(p.y_width), p.lanes))),
            "spike_count": Out(COUNT_WIDTH),
        })

    @staticmethod
    def figures(unit, *, in_width, lanes=1, name="unit", elements=None, serial=None,
                depth=None, buffer=0) -> Figures:
        """The figures of the engine these arguments would build, without building it: the
        constructor's arguments and checks (same errors), then
        :meth:`amos_hw.engines.unit_params.UnitParams.figures`."""
        return UnitParams.check(unit, in_width=in_width, lanes=lanes, name=name,
                                elements=elements, serial=serial, depth=depth,
                                buffer=buffer).figures()

    params = property(lambda self: self._p, doc="The checked parameters (UnitParams).")
    name = property(lambda self: self._p.name)
    unit = property(lambda self: self._p.unit, doc="The integer unit (IntAmosUnit).")
    K = property(lambda self: self._p.K, doc="Neurons of the unit.")
    lanes = property(lambda self: self._p.lanes)
    serial = property(lambda self: self._p.serial,
                      doc="Serial units (one a lane), or None: the pipelined form.")
    depth = property(lambda self: self._p.depth, doc="D of the serial units (or None).")
    buffer = property(lambda self: self._p.buffer, doc="Words of the serial input FIFO.")
    pe = property(lambda self: self._p.lanes, doc="Output lanes (as the other engines' ``pe``).")
    simd = property(lambda self: self._p.lanes, doc="Input lanes.")
    elements = property(lambda self: self._p.elements, doc="Values of one image.")
    in_width = property(lambda self: self._p.in_width, doc="Signed width of v.")
    y_width = property(lambda self: self._p.y_width, doc="Signed width of y.")
    out_width = property(lambda self: self._p.y_width, doc="Signed width of y.")
    # the figures: UnitParams's formulas (see there)
    expected_cycles = property(lambda self: self._p.cycles,
                               doc="Cycles per image: one word per cycle (serial: per K).")
    latency = property(lambda self: self._p.latency,
                       doc="Cycles from an accepted input word to its output word: K + 2 "
                           "(the clamp form: 1, the serial form K * D + 1).")
    memories = property(lambda self: list(self._p.memories),
                        doc="None but the serial form's input FIFO (:attr:`memory_bits`).")
    memory_bits = property(lambda self: self._p.memory_bits,
                           doc="No memory (the pipeline is registers) but the serial input "
                               "FIFO.")
    flip_flops = property(lambda self: self._p.flip_flops,
                          doc="The AmosUnit's registers and counters.")
    luts = property(lambda self: self._p.luts, doc="LUT4 estimate (UnitParams.luts).")

    def model(self, v):
        """Bit-exact reference: ``y`` of :class:`~python_ref.quant.IntAmosUnit` for the raw
        values ``v`` (any shape; saturated to the unit's ``in_range``), int64, same shape.

        Raises
        ------
        TypeError
            ``v`` does not hold integers.
        ValueError
            A value does not fit the ``in_width``-bit signed input port.
        """
        p = self._p
        v = np.asarray(v)
        if v.dtype.kind not in "iu":
            raise TypeError(f"{p.name}: inputs must be integers, not {v.dtype}")
        lo, hi = -(2 ** (p.in_width - 1)), 2 ** (p.in_width - 1) - 1
        if v.size and (int(v.min()) < lo or int(v.max()) > hi):
            raise ValueError(f"{p.name}: inputs must lie in {lo}..{hi} (in_width "
                             f"{p.in_width}, signed)")
        return np.asarray(p.unit(v.astype(np.int64)), dtype=np.int64)

    def elaborate(self, platform):
        if self._p.serial:
            return self._elaborate_serial()
        if self._p.clamp:
            return self._elaborate_clamp()
        m = Module()
        p = self._p
        m.submodules.amos = amos = AmosUnit(p.unit, p.in_width, lanes=p.lanes,
                                            count_width=COUNT_WIDTH)
        if amos.y_width != p.y_width:  # one formula in both; a change in one must show here
            raise AssertionError(f"{p.name}: AmosUnit's y is {amos.y_width} bits, the engine's "
                                 f"{p.y_width}")
        m.d.comb += [
            amos.i.valid.eq(self.i.valid),
            self.i.ready.eq(amos.i.ready),
            self.o.valid.eq(amos.o.valid),
            amos.o.ready.eq(self.o.ready),
            self.spike_count.eq(amos.spike_count),
        ]
        for n in range(p.lanes):
            m.d.comb += [
                amos.i.payload.x[n].eq(self.i.payload[n]),
                self.o.payload[n].eq(amos.o.payload.y[n]),
            ]
        return m

    def _elaborate_serial(self):
        """``n`` serial units in lockstep behind a pacer (:class:`SerialLanes`), behind the
        input FIFO when ``buffer`` (see the class docstring)."""
        m = Module()
        p = self._p
        m.submodules.serial = ser = SerialLanes(p.unit, p.in_width, lanes=p.lanes,
                                                depth=p.depth)
        if ser.y_width != p.y_width:  # one formula in both; a change in one must show here
            raise AssertionError(f"{p.name}: SerialAmosUnit's y is {ser.y_width} bits, the "
                                 f"engine's {p.y_width}")
        valid, ready, payload = self.i.valid, self.i.ready, self.i.payload
        if p.buffer:
            width = p.lanes * p.in_width
            m.submodules.fifo = fifo = buffered_fifo(width=width, depth=p.buffer)
            m.d.comb += [fifo.w_data.eq(self.i.payload.as_value()), fifo.w_en.eq(self.i.valid),
                         self.i.ready.eq(fifo.w_rdy)]
            valid, ready = fifo.r_rdy, fifo.r_en
            payload = data.ArrayLayout(signed(p.in_width), p.lanes)(fifo.r_data)
        m.d.comb += [
            ser.i.valid.eq(valid),
            ready.eq(ser.i.ready),
            self.o.valid.eq(ser.o.valid),
            ser.o.ready.eq(self.o.ready),
            self.spike_count.eq(ser.spike_count),
        ]
        for n in range(p.lanes):
            m.d.comb += [ser.i.payload.x[n].eq(payload[n]),
                         self.o.payload[n].eq(ser.o.payload.y[n])]
        return m

    def _elaborate_clamp(self):
        """The signed identity as ``y = clamp(v, a, b)`` (:func:`clamp_bounds`) into the output
        register; its spikes, the ``K``-bit two's complement digits of ``y``, are counted as
        :class:`AmosUnit` counts (the popcount registered, then added)."""
        m = Module()
        p = self._p
        a, b = clamp_bounds(p.unit)
        valid = Signal()
        en = ~valid | self.o.ready
        m.d.comb += [self.i.ready.eq(en), self.o.valid.eq(valid)]
        with m.If(en):
            m.d.sync += valid.eq(self.i.valid)
            for n in range(p.lanes):
                v = self.i.payload[n]
                m.d.sync += self.o.payload[n].eq(Mux(v < a, a, Mux(v > b, b, v)))
        spikes = Signal(range(p.K * p.lanes + 1))
        m.d.comb += spikes.eq(sum(sum(self.o.payload[n][k] for k in range(p.K))
                                  for n in range(p.lanes)))
        taken = self.o.valid & self.o.ready
        spikes_r = Signal.like(spikes)
        m.d.sync += [spikes_r.eq(Mux(taken, spikes, 0)),
                     self.spike_count.eq(self.spike_count + spikes_r)]
        return m
