"""The shared engine's main memory: one port of 64-bit words for weights and activation maps."""
from __future__ import annotations

from amaranth.hdl import ClockSignal, Const, Instance, Module
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from amos_hw.shared.program import WORD_BITS

__all__ = ["MainMemory", "SPRAM_WORDS"]

#: Words of the UP5K's four SPRAM blocks side by side (16,384 x 64 bits).
SPRAM_WORDS = 16384


class MainMemory(wiring.Component):
    """One port of 64-bit words: a read (data the next cycle) or a write each cycle.

    Parameters
    ----------
    depth : int
        Words.
    init : list of int
        Initial contents (ignored with ``spram``: SPRAM has none).
    spram : bool
        Four ``SB_SPRAM256KA`` blocks side by side (iCE40 UP5K) instead of an inferred memory.

    Members
    -------
    addr : ``In(range(max(depth, 2)))``
    we : ``In(1)``, write ``wdata`` at ``addr`` (else read it)
    wdata : ``In(64)``
    rdata : ``Out(64)``, the word read the cycle before
    """

    def __init__(self, depth: int, init, spram: bool):
        self._depth, self._init, self._spram = depth, init, spram
        super().__init__({
            "addr": In(range(max(depth, 2))),
            "we": In(1),
            "wdata": In(WORD_BITS),
            "rdata": Out(WORD_BITS),
        })

    def elaborate(self, platform):
        m = Module()
        if self._spram:
            for k in range(WORD_BITS // 16):
                m.submodules[f"spram{k}"] = Instance(
                    "SB_SPRAM256KA",
                    i_ADDRESS=self.addr[:14], i_DATAIN=self.wdata[16 * k: 16 * k + 16],
                    i_MASKWREN=Const(0xF, 4), i_WREN=self.we, i_CHIPSELECT=Const(1, 1),
                    i_CLOCK=ClockSignal("sync"), i_STANDBY=Const(0, 1),
                    i_SLEEP=Const(0, 1), i_POWEROFF=Const(1, 1),
                    o_DATAOUT=self.rdata[16 * k: 16 * k + 16])
            return m
        m.submodules.mem = mem = Memory(shape=WORD_BITS, depth=self._depth, init=self._init)
        wp = mem.write_port()
        rp = mem.read_port(transparent_for=())
        m.d.comb += [wp.addr.eq(self.addr), wp.data.eq(self.wdata), wp.en.eq(self.we),
                     rp.addr.eq(self.addr), rp.en.eq(~self.we), self.rdata.eq(rp.data)]
        return m
