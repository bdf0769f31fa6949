# amaranth: UnusedElaboratable=no
"""BramFifo against amaranth.lib.fifo.SyncFIFOBuffered: the same outputs in every cycle under
random writes and reads, for depths with and without a power-of-two memory."""
from __future__ import annotations

import re

import numpy as np
import pytest
from amaranth.back import rtlil
from amaranth.hdl import Fragment, Module
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.sim import Simulator

from amos_hw.lib.bram_fifo import BramFifo, buffered_fifo

PORTS = ("w_rdy", "r_rdy", "r_data", "level")


@pytest.mark.parametrize("depth,column_bits", [(2, 0), (3, 0), (5, 0), (9, 0), (17, 0),
                                               (5, 3), (17, 2), (9, 8)])
def test_same_outputs_as_syncfifobuffered_every_cycle(depth, column_bits):
    m = Module()
    m.submodules.ref = ref = SyncFIFOBuffered(width=8, depth=depth)
    m.submodules.dut = dut = BramFifo(width=8, depth=depth, column_bits=column_bits)
    rng = np.random.default_rng(depth)
    seen = {"cycles": 0, "reads": 0}

    async def bench(ctx):
        for cycle in range(600):
            # phases: fill (mostly writes), drain (mostly reads), mixed
            p_w, p_r = [(0.9, 0.2), (0.2, 0.9), (0.6, 0.6)][(cycle // 100) % 3]
            w_en, r_en, data = int(rng.random() < p_w), int(rng.random() < p_r), int(
                rng.integers(0, 256))
            for f in (ref, dut):
                ctx.set(f.w_en, w_en)
                ctx.set(f.r_en, r_en)
                ctx.set(f.w_data, data)
            got = {p: ctx.get(getattr(dut, p)) for p in PORTS}
            want = {p: ctx.get(getattr(ref, p)) for p in PORTS}
            if not want["r_rdy"]:  # r_data is meaningful only while r_rdy
                got.pop("r_data")
                want.pop("r_data")
            assert got == want, f"cycle {cycle}"
            seen["reads"] += want["r_rdy"] and r_en
            seen["cycles"] += 1
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert seen["cycles"] == 600 and seen["reads"] > 100  # the bench ran and words moved


def test_bad_sizes_are_named():
    with pytest.raises(ValueError, match="depth must be an integer of at least 2, not 1"):
        BramFifo(width=8, depth=1)
    with pytest.raises(ValueError, match="width must be a positive integer, not 0"):
        BramFifo(width=0, depth=4)
    with pytest.raises(ValueError, match="column_bits must be an integer of at least 0, not -1"):
        BramFifo(width=8, depth=4, column_bits=-1)


def test_columns_are_memories_side_by_side():
    """8 bits in columns of 3: memories of 3, 3 and 2 bits, each ``depth - 1`` words."""
    text = rtlil.convert(BramFifo(width=8, depth=6, column_bits=3))
    assert sorted(re.findall(r"memory width (\d+) size (\d+)", text)) == [
        ("2", "5"), ("3", "5"), ("3", "5")]
    for column_bits in (0, 8, 12):  # no column narrower than the word: one memory
        whole = rtlil.convert(BramFifo(width=8, depth=6, column_bits=column_bits))
        assert re.findall(r"memory width (\d+) size (\d+) \\(\S+)", whole) == [
            ("8", "5", "storage")]


def test_buffered_fifo_picks_the_memory_form_from_two_words():
    one = buffered_fifo(width=8, depth=1)
    assert type(one) is SyncFIFOBuffered  # one register, no memory
    Fragment.get(one, None)  # elaborated: buffered_fifo's objects are built to be used
    for depth in (2, 3, 512):
        f = buffered_fifo(width=8, depth=depth, column_bits=2)
        assert type(f) is BramFifo and (f.width, f.depth, f.column_bits) == (8, depth, 2)
        Fragment.get(f, None)
    with pytest.raises(ValueError, match="FIFO depth must be a positive integer, not 0"):
        buffered_fifo(width=8, depth=0)
