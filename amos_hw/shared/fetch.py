"""The shared engine's fetch: weight words into the weight cache, activation words to the lanes.

Weights: at the start of every group (the FILL phase) the group's weight words, ``taps`` of
them, are copied from the main memory (or taken from the flash reader's stream) into the weight
cache, one a cycle.

Activations: the walker issues one word address a cycle with a description of the word
(:data:`md_layout`: the slots to use, the first weight-cache address, a skip beat's lane and
shift); the word arrives from the memory the next cycle and waits in a FIFO of
:data:`FIFO_DEPTH` words, which hands one activation a cycle, with its weight word from the
cache, to the lanes through one register stage.
"""
from __future__ import annotations

from amaranth.hdl import Array, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data

from amos_hw.shared.arith import uwidth
from amos_hw.shared.program import LANES, WORD_BITS, Program
from amos_hw.shared.table import FILL, START, Control, InstrTable
from amos_hw.shared.walker import Walker, cache_addr_bits

__all__ = ["FIFO_DEPTH", "WordFifo", "fill_cache", "md_layout"]

#: Words the walker may have fetched ahead of the lanes.
FIFO_DEPTH = 3


def md_layout(p: Program) -> data.StructLayout:
    """What the lanes need to know of a fetched word: ``n`` activations from slot ``slot0``, the
    weight-cache address ``cbase`` of the first, and for a skip beat its ``lane`` and
    ``lshift``."""
    S = p.slots
    return data.StructLayout({
        "n": unsigned(uwidth(S)), "slot0": unsigned(uwidth(S)),
        "cbase": unsigned(cache_addr_bits(p)), "skip": unsigned(1),
        "lane": unsigned(uwidth(LANES)), "lshift": unsigned(6)})


def fill_cache(m: Module, ctl: Control, table: InstrTable, walker: Walker, main, c_wp,
               reader=None) -> None:
    """The FILL phase: the group's ``taps`` weight words into the cache (port ``c_wp``), read
    from ``main`` at ``ctl.wptr`` or taken from ``reader.o``; then the instruction's first
    position (START)."""
    e, taps, wptr = ctl.e, table.taps, ctl.wptr
    with m.If(ctl.state == FILL):
        if reader is None:
            with m.If(e < taps):
                m.d.comb += main.addr.eq(wptr + e)
            with m.If(e != 0):
                m.d.comb += [c_wp.addr.eq(e - 1), c_wp.data.eq(main.rdata), c_wp.en.eq(1)]
        else:
            m.d.comb += [reader.o.ready.eq(e < taps), c_wp.addr.eq(e),
                         c_wp.data.eq(reader.o.payload),
                         c_wp.en.eq(reader.o.valid & (e < taps))]
        with m.If(e == taps):
            m.d.sync += [e.eq(0), ctl.state.eq(START), wptr.eq(wptr + taps),
                         *walker.first_position()]
        with m.Elif(Const(1, 1) if reader is None else reader.o.valid):
            m.d.sync += e.eq(e + 1)


class WordFifo:
    """The activation words between the memory and the lanes.

    Attributes
    ----------
    issue : Signal
        The walker issues a word this cycle, described by ``issue_md``.
    inflight : Signal
        A word is being read (it arrives, with ``md_fl``, in ``rdata`` this cycle).
    level, kbeat : Signal
        Words in the FIFO; activations of the head word already handed on.
    valid_r : Signal
        The lanes' register holds an activation.
    """

    def __init__(self, p: Program):
        self.program = p
        md = md_layout(p)
        self.issue = Signal()
        self.issue_md = Signal(md)
        self.inflight = Signal()
        self.md_fl = Signal(md)
        self.fifo_data = [Signal(WORD_BITS, name=f"fifo_d{k}") for k in range(FIFO_DEPTH)]
        self.fifo_md = [Signal(md, name=f"fifo_m{k}") for k in range(FIFO_DEPTH)]
        self.level = Signal(range(FIFO_DEPTH + 1))
        self.head = Signal(range(FIFO_DEPTH))
        self.tail = Signal(range(FIFO_DEPTH))
        self.kbeat = Signal(range(p.slots + 1))
        # the lanes' input register
        self.act_r = Signal(p.act_bits)
        self.skip_r = Signal()
        self.lane_r = Signal(range(LANES))
        self.lshift_r = Signal(6)
        self.valid_r = Signal()

    def credit(self):
        """Room for one more word: the FIFO's and the one being read count."""
        return (self.level + self.inflight) < FIFO_DEPTH

    def drained(self, cond):
        """``cond`` and nothing left in the read, the FIFO or the lanes' register."""
        return cond & ~self.inflight & (self.level == 0) & ~self.valid_r

    def track(self, m: Module) -> None:
        """The issued word is read during the next cycle."""
        m.d.sync += self.inflight.eq(self.issue)
        m.d.sync += self.md_fl.eq(self.issue_md)

    def feed(self, m: Module, rdata, c_rp, lanes) -> None:
        """Push the word read (``rdata``), hand the head word's activations one a cycle to the
        ``lanes`` with the weight word read at ``cbase + kbeat`` through ``c_rp``."""
        S, A = self.program.slots, self.program.act_bits
        push = self.inflight
        h_md = Array(self.fifo_md)[self.head]
        h_data = Array(self.fifo_data)[self.head]
        beat = self.level != 0
        slot = Signal(range(S + 1))
        m.d.comb += slot.eq(h_md.slot0 + self.kbeat)
        pop = beat & (self.kbeat == h_md.n - 1)
        with m.If(push):
            for k in range(FIFO_DEPTH):
                with m.If(self.tail == k):
                    m.d.sync += [self.fifo_data[k].eq(rdata), self.fifo_md[k].eq(self.md_fl)]
            m.d.sync += self.tail.eq(Mux(self.tail == FIFO_DEPTH - 1, 0, self.tail + 1))
        with m.If(pop):
            m.d.sync += [self.head.eq(Mux(self.head == FIFO_DEPTH - 1, 0, self.head + 1)),
                         self.kbeat.eq(0)]
        with m.Elif(beat):
            m.d.sync += self.kbeat.eq(self.kbeat + 1)
        m.d.sync += self.level.eq(self.level + push - pop)
        act_now = Array(h_data.word_select(s, A) for s in range(S))[slot]
        m.d.comb += c_rp.addr.eq(h_md.cbase + self.kbeat)
        m.d.sync += [self.valid_r.eq(beat), self.act_r.eq(act_now), self.skip_r.eq(h_md.skip),
                     self.lane_r.eq(h_md.lane), self.lshift_r.eq(h_md.lshift)]
        m.d.comb += [lanes.valid.eq(self.valid_r), lanes.act.eq(self.act_r),
                     lanes.skip.eq(self.skip_r), lanes.lane.eq(self.lane_r),
                     lanes.lshift.eq(self.lshift_r), lanes.weights.eq(c_rp.data)]
