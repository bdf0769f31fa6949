"""The shared engine's walker: it steps through the program and issues word addresses.

The walker steps the instruction (the table's program counter), the group of
:data:`~amos_hw.shared.program.LANES` output channels and the output position; at each
position it walks the taps of every source, issuing one word address a cycle while the word
FIFO has room:

* a ``conv`` source: for each tap of the kernel inside the map, the tap's words (one cycle per
  word), and one cycle without a fetch for each tap outside it (the padding);
* a ``skip`` source: the skip activation of each lane, one word a lane.

Addresses are signed while they are formed: padding reaches below a map's base.
"""
from __future__ import annotations

from amaranth.hdl import Array, Module, Mux, Signal, signed

from amos_hw.shared.arith import times, uwidth
from amos_hw.shared.program import LANES, Program
from amos_hw.shared.table import FILL, INPUT, MAX_SOURCES, NEXT, START, Control, InstrTable

__all__ = ["Walker", "cache_addr_bits"]


def cache_addr_bits(p: Program) -> int:
    """Width of a weight-cache address (one bit of headroom)."""
    return uwidth(max(p.cache_depth, 1)) + 1


class Walker:
    """The registers that step through instructions, groups, positions and taps.

    Parameters
    ----------
    p : Program
        A laid-out program.
    table : InstrTable
        Its instruction table (the walker steps ``table.pc``).

    Attributes
    ----------
    g, gw, gs : Signal
        The channel group, and the word and slot of its first channel within a position.
    oy, ox, out_ptr : Signal
        The output position and its first word in the output map.
    lw, ls : Signal
        The word (from the position's first) and slot of the current lane's channel, for the
        skip fetches and the epilogue's write-back.
    wdone : Signal
        The position's last word has been issued.
    nl_cur : Signal
        Lanes of the current group (fewer than ``LANES`` in a last, partial group).
    """

    def __init__(self, p: Program, table: InstrTable):
        self.program, self.table = p, table
        ins = p.instrs
        addr_t = signed(uwidth(p.depth) + 3)
        max_hw = max(max(i.out_shape[0], i.out_shape[1]) for i in ins)
        max_in = max([max(s.shape[0], s.shape[1]) for i in ins for s in i.sources] + [2])
        max_k = max([max(s.kernel) for i in ins for s in i.sources] + [2])
        max_cw = max([p.words_per_pos(s.shape[2]) for i in ins for s in i.sources] + [2])
        coord = signed(uwidth(2 * max_in + max_k) + 1)

        # group and position
        self.g = Signal(range(max(max(i.groups for i in ins), 2) + 1))
        self.gw = Signal(range(p.depth + 1))  # word of channel g*P within a position
        self.gs = Signal(range(p.slots))
        self.oy = Signal(range(max_hw + 1))
        self.ox = Signal(range(max_hw + 1))
        self.out_ptr = Signal(range(p.depth + 1))
        # per source: the address of tap (0, 0) at this position and at the row's start, and
        # the input coordinates of tap (0, 0)
        self.origin = [Signal(addr_t, name=f"origin{k}") for k in range(MAX_SOURCES)]
        self.row_origin = [Signal(addr_t, name=f"row_origin{k}") for k in range(MAX_SOURCES)]
        self.iy0 = [Signal(coord, name=f"iy0_{k}") for k in range(MAX_SOURCES)]
        self.ix0 = [Signal(coord, name=f"ix0_{k}") for k in range(MAX_SOURCES)]

        # taps
        self.src = Signal(range(MAX_SOURCES + 1))
        self.ky = Signal(range(max_k + 1))
        self.kx = Signal(range(max_k + 1))
        self.wi = Signal(range(max_cw + 1))
        self.iy = Signal(coord)
        self.ix = Signal(coord)
        self.row_ptr = Signal(addr_t)
        self.col_ptr = Signal(addr_t)
        self.tapc = Signal(cache_addr_bits(p))
        self.lane = Signal(range(LANES + 1))
        self.lw = Signal(range(p.depth + 1))
        self.ls = Signal(range(p.slots))
        self.wdone = Signal()
        self.nl_cur = Signal(range(LANES + 1))
        self.rem = Signal(signed(16))

    def restart(self) -> list:
        """Statements: back to the first instruction's first group."""
        return [self.table.pc.eq(0), self.g.eq(0), self.gw.eq(0), self.gs.eq(0)]

    def first_position(self) -> list:
        """Statements: the current instruction's first output position."""
        t, sf = self.table, self.table.sources
        stmts = [self.oy.eq(0), self.ox.eq(0), self.out_ptr.eq(t.obase)]
        for k in range(MAX_SOURCES):
            stmts += [self.origin[k].eq(sf[k]["origin"]),
                      self.row_origin[k].eq(sf[k]["origin"]),
                      self.iy0[k].eq(-sf[k]["pad"]), self.ix0[k].eq(-sf[k]["pad"])]
        return stmts

    def load(self, k: int) -> list:
        """Statements: walk source ``k`` at the current position from its first tap."""
        sf = self.table.sources[k]
        return [self.src.eq(k), self.ky.eq(0), self.kx.eq(0), self.wi.eq(0),
                self.iy.eq(self.iy0[k]), self.ix.eq(self.ix0[k]),
                self.row_ptr.eq(self.origin[k]), self.col_ptr.eq(self.origin[k]),
                self.tapc.eq(sf["coff"]), self.lane.eq(0), self.lw.eq(self.gw),
                self.ls.eq(self.gs)]

    def rewind_slots(self) -> list:
        """Statements: ``lw`` and ``ls`` back to the group's first channel."""
        return [self.lw.eq(self.gw), self.ls.eq(self.gs)]

    def issue(self, m: Module, running, fifo, addr) -> None:
        """The RUN phase's walk: while ``running`` and ``fifo`` has credit, issue the next word
        (``addr`` and ``fifo.issue`` / ``fifo.issue_md``) or pass a tap outside the map."""
        t, S = self.table, self.program.slots
        sf = t.sources
        sel = {key: Array(sf[k][key] for k in range(MAX_SOURCES))[self.src] for key in sf[0]}
        credit = fifo.credit()
        issue, md = fifo.issue, fifo.issue_md
        m.d.comb += [self.rem.eq(t.out_c - times(self.g, LANES)),
                     self.nl_cur.eq(Mux(self.rem > LANES, LANES, self.rem))]
        with m.If(running & ~self.wdone & credit):
            with m.If(sel["skip"]):
                m.d.comb += [
                    issue.eq(1),
                    addr.eq(self.out_ptr + sel["delta"] + self.lw),
                    md.n.eq(1), md.slot0.eq(self.ls), md.cbase.eq(0),
                    md.skip.eq(1), md.lane.eq(self.lane), md.lshift.eq(sel["lshift"]),
                ]
                self.next_slot(m)
                m.d.sync += self.lane.eq(self.lane + 1)
                with m.If(self.lane == self.nl_cur - 1):
                    self._next_source(m)
            with m.Else():
                inb = Signal()
                m.d.comb += inb.eq((self.iy >= 0) & (self.iy < sel["H"]) & (self.ix >= 0)
                                   & (self.ix < sel["W"]))
                last_w = self.wi == sel["cw"] - 1
                with m.If(inb):
                    m.d.comb += [
                        issue.eq(1),
                        addr.eq(self.col_ptr + self.wi),
                        md.n.eq(Mux(last_w, sel["last_slots"], S)),
                        md.slot0.eq(0),
                        md.cbase.eq(self.tapc + times(self.wi, S)),
                        md.skip.eq(0), md.lane.eq(0), md.lshift.eq(0),
                    ]
                with m.If(inb & ~last_w):
                    m.d.sync += self.wi.eq(self.wi + 1)
                with m.Else():
                    self._next_tap(m, sel)

    def next_slot(self, m: Module) -> None:
        """``ls`` to the next slot, ``lw`` to the next word after the last slot."""
        with m.If(self.ls == self.program.slots - 1):
            m.d.sync += [self.ls.eq(0), self.lw.eq(self.lw + 1)]
        with m.Else():
            m.d.sync += self.ls.eq(self.ls + 1)

    def _next_source(self, m: Module) -> None:
        with m.If(self.src + 1 < self.table.n_sources):
            m.d.sync += self.load(1)
        with m.Else():
            m.d.sync += self.wdone.eq(1)

    def _next_tap(self, m: Module, sel: dict) -> None:
        """The next tap of the kernel (row-major), or the next source after its last."""
        m.d.sync += self.wi.eq(0)
        with m.If(~sel["wrap"]):
            m.d.sync += self.tapc.eq(self.tapc + sel["C"])
        with m.If(self.kx != sel["kw"] - 1):
            m.d.sync += [self.kx.eq(self.kx + 1), self.ix.eq(self.ix + 1),
                         self.col_ptr.eq(self.col_ptr + sel["cw"])]
        with m.Else():
            m.d.sync += [self.kx.eq(0), self.ix.eq(Array(self.ix0)[self.src])]
            with m.If(self.ky != sel["kh"] - 1):
                m.d.sync += [self.ky.eq(self.ky + 1), self.iy.eq(self.iy + 1),
                             self.row_ptr.eq(self.row_ptr + sel["row"]),
                             self.col_ptr.eq(self.row_ptr + sel["row"])]
            with m.Else():  # source done
                self._next_source(m)

    def step(self, m: Module, ctl: Control) -> None:
        """The NEXT phase: the next output position, else the next group (back to FILL), else
        the next instruction, else the end of the image (back to INPUT)."""
        t, sf, S = self.table, self.table.sources, self.program.slots
        with m.If(ctl.state == NEXT):
            m.d.sync += ctl.e.eq(0)
            last_x = self.ox == t.out_w - 1
            last_y = self.oy == t.out_h - 1
            with m.If(~last_x):
                m.d.sync += [self.ox.eq(self.ox + 1),
                             self.out_ptr.eq(self.out_ptr + t.out_words), ctl.state.eq(START)]
                for k in range(MAX_SOURCES):
                    m.d.sync += [self.origin[k].eq(self.origin[k] + sf[k]["step_x"]),
                                 self.ix0[k].eq(self.ix0[k] + sf[k]["stride"])]
            with m.Elif(~last_y):
                m.d.sync += [self.ox.eq(0), self.oy.eq(self.oy + 1),
                             self.out_ptr.eq(self.out_ptr + t.out_words), ctl.state.eq(START)]
                for k in range(MAX_SOURCES):
                    m.d.sync += [self.origin[k].eq(self.row_origin[k] + sf[k]["step_y"]),
                                 self.row_origin[k].eq(self.row_origin[k] + sf[k]["step_y"]),
                                 self.ix0[k].eq(-sf[k]["pad"]),
                                 self.iy0[k].eq(self.iy0[k] + sf[k]["stride"])]
            with m.Elif(self.g != t.groups - 1):
                m.d.sync += [self.g.eq(self.g + 1), ctl.state.eq(FILL)]
                nw, ns = divmod(LANES, S)
                with m.If(self.gs + ns >= S):
                    m.d.sync += [self.gs.eq(self.gs + ns - S), self.gw.eq(self.gw + nw + 1)]
                with m.Else():
                    m.d.sync += [self.gs.eq(self.gs + ns), self.gw.eq(self.gw + nw)]
            with m.Elif(t.pc != len(self.program.instrs) - 1):
                m.d.sync += [t.pc.eq(t.pc + 1), self.g.eq(0), self.gw.eq(0), self.gs.eq(0),
                             ctl.state.eq(FILL)]
            with m.Else():
                m.d.sync += [ctl.state.eq(INPUT), t.pc.eq(0)]
