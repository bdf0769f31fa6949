"""The shared engine's epilogue: from the lanes' accumulators to stored activations or logits.

For each lane in turn (the lanes shift ``acc[k+1]`` into ``acc[k]``, the epilogue reads
``acc0``): add the bias, then either

* ``act`` instructions: the requantising shift (rounding half up), clamped to the unit's input
  range, through the ReLU AMOS unit (``K`` stages), and each output written into its slot of
  the output map by a read-modify-write of its word (two cycles a lane); or
* ``logits``: the sum streamed to the :class:`ResultCollector`, which keeps the logits and
  their running argmax until the result is taken.
"""
from __future__ import annotations

from amaranth.hdl import Array, Module, Mux, Signal, signed

from amos_hw.lib.amos_unit import AmosUnit
from amos_hw.shared.arith import times
from amos_hw.shared.program import LANES, WORD_BITS, Program
from amos_hw.shared.table import EPI, NEXT, Control, InstrTable
from amos_hw.shared.walker import Walker
from python_ref.quant import IntAmosUnit

__all__ = ["Epilogue", "ResultCollector"]


class ResultCollector:
    """The logits, one a cycle in class order: a shift register and a running argmax (the
    lowest index on ties), held on the ``result`` stream until taken.

    Attributes
    ----------
    lg_take : Signal
        Take ``lg_in`` this cycle (only while :attr:`ovalid` is low).
    lg_in : Signal
        The next logit.
    ovalid : Signal
        A whole result is held.
    """

    def __init__(self, logit_width: int, num_classes: int):
        ncls = self.num_classes = num_classes
        self.lg = [Signal(signed(logit_width), name=f"logit{k}") for k in range(ncls)]
        self.best_v = Signal(signed(logit_width))
        self.best_i = Signal(range(max(ncls, 2)))
        self.lg_cnt = Signal(range(max(ncls, 2)))
        self.ovalid = Signal()
        self.lg_in = Signal(signed(logit_width))
        self.lg_take = Signal()

    def build(self, m: Module, result) -> None:
        """Drive the ``result`` stream (payload ``cls`` and ``logits``)."""
        ncls, lg = self.num_classes, self.lg
        m.d.comb += [result.valid.eq(self.ovalid), result.payload.cls.eq(self.best_i)]
        m.d.comb += [result.payload.logits[k].eq(lg[k]) for k in range(ncls)]
        with m.If(result.valid & result.ready):
            m.d.sync += self.ovalid.eq(0)
        with m.If(self.lg_take):
            m.d.sync += [lg[k].eq(lg[k + 1]) for k in range(ncls - 1)]
            m.d.sync += lg[ncls - 1].eq(self.lg_in)
            with m.If((self.lg_cnt == 0) | (self.lg_in > self.best_v)):
                m.d.sync += [self.best_v.eq(self.lg_in), self.best_i.eq(self.lg_cnt)]
            with m.If(self.lg_cnt == ncls - 1):
                m.d.sync += [self.lg_cnt.eq(0), self.ovalid.eq(1)]
            with m.Else():
                m.d.sync += self.lg_cnt.eq(self.lg_cnt + 1)


class Epilogue:
    """The EPI phase: bias, requantisation, the AMOS unit, and the write-back or the logits.

    Parameters
    ----------
    p : Program
        A laid-out program.
    table : InstrTable
        Its instruction table.
    K : int
        Stages of the (one) ReLU AMOS unit.
    acc_width : int
        Signed width of an accumulator.
    """

    def __init__(self, p: Program, table: InstrTable, K: int, acc_width: int):
        self.program, self.table, self.K, self.acc_width = p, table, K, acc_width
        # the unit saturates its input to [0, 2**K - 1]: clamping the requantised value to
        # [-1, 2**K] first changes no output and keeps the K stages K + 2 bits wide
        self.v_w = K + 2
        self.n_lanes = Signal(range(LANES + 1))
        self.ys = [Signal(p.act_bits, name=f"y{k}") for k in range(LANES)]
        self.ycnt = Signal(range(LANES + 1))
        self.rmw_lane = Signal(range(LANES + 1))
        self.rmw_phase = Signal()
        self.rmw_on = Signal()
        self.au = None

    def add_unit(self, m: Module) -> None:
        """The ReLU AMOS unit, idle unless the epilogue feeds it."""
        m.submodules.unit = self.au = AmosUnit(IntAmosUnit.relu(self.K), self.v_w)
        m.d.comb += [self.au.i.valid.eq(0), self.au.o.ready.eq(1)]

    def begin(self, n_lanes) -> list:
        """Statements: start the epilogue of a group of ``n_lanes`` lanes."""
        return [self.n_lanes.eq(n_lanes), self.ycnt.eq(0), self.rmw_lane.eq(0),
                self.rmw_phase.eq(0), self.rmw_on.eq(0)]

    def build(self, m: Module, ctl: Control, walker: Walker, lanes, b_rp, main,
              results: ResultCollector) -> None:
        """The EPI phase (step counter ``ctl.e``): ``acc0`` of ``lanes`` plus the bias read
        through ``b_rp``, to ``results`` or through the unit into ``main``; then NEXT."""
        t, e = self.table, ctl.e
        bias_sum = lanes.acc0 + b_rp.data
        m.d.comb += b_rp.addr.eq(t.bbase + times(walker.g, LANES) + e)
        b_stall = Signal()
        m.d.comb += b_rp.en.eq(~b_stall)
        v_full = Signal(signed(self.acc_width + 2))
        m.d.comb += v_full.eq((bias_sum + t.rounding) >> t.shift)
        v = Signal(signed(self.v_w))
        m.d.comb += v.eq(Mux(v_full < 0, -1, Mux(v_full > (1 << self.K), 1 << self.K, v_full)))
        with m.If(ctl.state == EPI):
            feeding = (e >= 1) & (e <= self.n_lanes)
            with m.If(t.logits):
                with m.If(feeding):
                    m.d.comb += [results.lg_take.eq(~results.ovalid), results.lg_in.eq(bias_sum),
                                 b_stall.eq(results.ovalid)]
                with m.If(~feeding | ~results.ovalid):
                    m.d.sync += e.eq(e + 1)
                    with m.If(feeding):
                        m.d.comb += lanes.shift.eq(1)
                    with m.If(e == self.n_lanes):
                        m.d.sync += ctl.state.eq(NEXT)
            with m.Else():
                m.d.sync += e.eq(e + 1)
                with m.If(feeding):
                    m.d.comb += [self.au.i.valid.eq(1), self.au.i.payload.x[0].eq(v),
                                 lanes.shift.eq(1)]
                with m.If(self.au.o.valid):
                    for k in range(LANES):
                        with m.If(self.ycnt == k):
                            m.d.sync += self.ys[k].eq(self.au.o.payload.z[0])
                    m.d.sync += [self.ycnt.eq(self.ycnt + 1), self.rmw_on.eq(1)]
                with m.If(self.rmw_on):
                    self._write_back(m, ctl, walker, main)

    def _write_back(self, m: Module, ctl: Control, walker: Walker, main) -> None:
        """Read-modify-write of the word of lane ``rmw_lane``'s output: read it (phase 0), then
        write it with the output in slot ``walker.ls`` (phase 1); NEXT after the last lane."""
        S, A = self.program.slots, self.program.act_bits
        m.d.comb += main.addr.eq(walker.out_ptr + walker.lw)
        with m.If(self.rmw_phase):
            y_now = Array(self.ys)[self.rmw_lane]
            merged = Signal(WORD_BITS)
            m.d.comb += merged.eq(main.rdata)
            for s in range(S):
                with m.If(walker.ls == s):
                    m.d.comb += merged.word_select(s, A).eq(y_now)
            m.d.comb += [main.we.eq(1), main.wdata.eq(merged)]
            m.d.sync += [self.rmw_phase.eq(0), self.rmw_lane.eq(self.rmw_lane + 1)]
            walker.next_slot(m)
            with m.If(self.rmw_lane == self.n_lanes - 1):
                m.d.sync += [ctl.state.eq(NEXT), self.rmw_on.eq(0)]
        with m.Else():
            m.d.sync += self.rmw_phase.eq(1)
