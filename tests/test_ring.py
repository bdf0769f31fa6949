# amaranth: UnusedElaboratable=no
"""Fast tier: :class:`amos_hw.lib.ring.AccumulatorRing` in both forms against a Python model,
and the engines whose rings of per-channel accumulators go into a memory when large (global
average pooling, depthwise convolution, max / average pooling): bit-exact against python_ref
under random gaps and stalls, cycles and latency those of the register form, the memory in
their figures and not the registers."""
from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from amos_hw.engines.depthwise import DepthwiseConvEngine
from amos_hw.engines.gap import GlobalAvgPoolEngine
from amos_hw.engines.pool import MaxPoolEngine
from amos_hw.lib.engine_sim import output_cycles, run_engine, to_words
from amos_hw.lib.ring import (
    MEMORY_MIN_BITS,
    MEMORY_MIN_DEPTH,
    AccumulatorRing,
    in_memory,
    ring_flip_flops,
    ring_memories,
)
from python_ref import snn
from python_ref.quant import IntAmosUnit, requant_shift


class _Acc(wiring.Component):
    """``head`` out every cycle; on ``step``, ``head + x`` stored (modulo ``2**width``)."""

    def __init__(self, depth, width):
        self.depth, self.width = depth, width
        super().__init__({"step": In(1), "x": In(width), "head": Out(width)})

    def elaborate(self, platform):
        m = Module()
        ring = AccumulatorRing(m, self.depth, self.width, "r")
        self.memory = ring.memory
        new = Signal(self.width)
        m.d.comb += [new.eq(ring.head + self.x), self.head.eq(ring.head)]
        ring.step(self.step, new)
        return m


def _run_ring(depth, width, steps, xs):
    dut = _Acc(depth, width)
    seen = []

    async def bench(ctx):
        for s, x in zip(steps, xs, strict=True):
            ctx.set(dut.step, int(s))
            ctx.set(dut.x, int(x))
            seen.append(ctx.get(dut.head))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return seen, dut.memory


def _model(depth, width, steps, xs):
    ring, ptr, seen = [0] * depth, 0, []
    for s, x in zip(steps, xs, strict=True):
        seen.append(ring[ptr])
        if s:
            ring[ptr] = (ring[ptr] + int(x)) % 2**width
            ptr = (ptr + 1) % depth
    return seen


@pytest.mark.parametrize(("depth", "width", "memory"),
                         [(MEMORY_MIN_DEPTH, 64, True), (40, 60, True), (5, 8, False),
                          (MEMORY_MIN_DEPTH - 1, 100, False)])
def test_ring_equals_the_model(depth, width, memory):
    """The head seen in every cycle is the model's, steps and holds at random (the memory
    form reads one cycle ahead: a hold, a step after a hold, steps back to back)."""
    rng = np.random.default_rng(depth)
    n = 6 * depth
    steps = rng.random(n) < 0.7
    xs = rng.integers(0, 2**min(width, 62), n)
    seen, built_memory = _run_ring(depth, width, steps, xs)
    assert built_memory == memory == in_memory(depth, width)
    assert seen == _model(depth, width, steps, xs)


def test_ring_figures():
    assert not in_memory(MEMORY_MIN_DEPTH, MEMORY_MIN_BITS // MEMORY_MIN_DEPTH - 1)
    assert in_memory(MEMORY_MIN_DEPTH, MEMORY_MIN_BITS // MEMORY_MIN_DEPTH)
    assert ring_flip_flops(8, 10) == 80 and ring_memories(8, 10) == ()
    assert ring_flip_flops(320, 20) == 9 + 20  # the pointer and the read word
    (mem,) = ring_memories(320, 20, "sums")
    assert (mem.name, mem.depth, mem.width, mem.rom) == ("sums", 320, 20, False)
    with pytest.raises(ValueError, match=r"^r: a ring needs depth and width >= 1, not 0, 4$"):
        AccumulatorRing(Module(), 0, 4, "r")


def test_gap_sums_in_memory():
    """128 channels of 16-bit words over 2x2: 128 sums of 18 bits, in a memory."""
    H, W, C = 2, 2, 128
    dut = GlobalAvgPoolEngine(height=H, width=W, channels=C, in_bits=16)
    assert [m.name for m in dut.memories] == ["sums"] and dut.memory_bits == C * 18
    assert dut.flip_flops < 200
    rng = np.random.default_rng(3)
    a = rng.integers(0, 2**16, (3, H, W, C))
    a[0] = 2**16 - 1  # the sums' upper bound
    hw = run_engine(dut, to_words(a, 1), 3 * C, in_lanes=1, out_lanes=1, seed=4)
    assert hw.tolist() == snn.gap(a).ravel().tolist()
    ins, outs = output_cycles(dut, to_words(a, 1), 3 * C)
    firsts = outs[::C]
    assert firsts[0] - ins[0] == dut.latency
    assert np.diff(firsts).tolist() == [dut.expected_cycles] * 2 == [H * W * C] * 2


def test_signed_gap_sums_in_memory():
    H, W, C, lanes = 2, 3, 96, 2
    dut = GlobalAvgPoolEngine(height=H, width=W, channels=C, in_bits=20, lanes=lanes,
                              in_signed=True)
    assert [m.name for m in dut.memories] == ["sums"]
    rng = np.random.default_rng(5)
    a = rng.integers(-2**19, 2**19, (2, H, W, C))
    a[1, :, :, :2] = -2**19
    hw = run_engine(dut, to_words(a, lanes), 2 * C // lanes, in_lanes=lanes, out_lanes=lanes,
                    seed=6)
    assert hw.tolist() == snn.gap(a).ravel().tolist()


def test_depthwise_accumulators_in_memory():
    """96 channels, 3x3, 12-bit inputs: 96 accumulators of 26 bits, in a memory; ReLU out."""
    H, W, C = 3, 3, 96
    rng = np.random.default_rng(7)
    w = rng.integers(-127, 128, (C, 3, 3, 1))
    b = rng.integers(-1000, 1001, C)
    dut = DepthwiseConvEngine(w, b, height=H, width=W, stride=1, padding=1, in_bits=12,
                              shift=14, out_bits=4)
    assert [m.name for m in dut.memories] == ["lines", "weights", "biases", "accs"]
    a = rng.integers(0, 2**12, (2, H, W, C))
    hw = run_engine(dut, to_words(a, 1), 2 * H * W * C, in_lanes=1, out_lanes=1, seed=8)
    acc = snn.conv2d(a, w, b, 1, 1, groups=C)
    ref = snn.requant_unit([acc], [14], IntAmosUnit.relu(4))[0]
    assert hw.tolist() == ref.ravel().tolist()
    assert ref.min() == 0 and ref.max() == 15
    ins, outs = output_cycles(dut, to_words(a, 1), 2 * H * W * C)
    assert outs[0] - ins[0] == dut.latency
    assert outs[H * W * C] - outs[0] == dut.expected_cycles == H * W * 9 * C


def test_signed_raw_depthwise_accumulators_in_memory():
    H, W, C, lanes = 4, 3, 96, 2
    rng = np.random.default_rng(9)
    w = rng.integers(-127, 128, (C, 3, 3, 1))
    b = rng.integers(-1000, 1001, C)
    dut = DepthwiseConvEngine(w, b, height=H, width=W, stride=2, padding=1, in_bits=16,
                              shift=3, out_bits=None, lanes=lanes, in_signed=True)
    assert dut.memories[-1].name == "accs"
    a = rng.integers(-2**15, 2**15, (2, H, W, C))
    ho, wo, _ = dut.out_shape
    hw = run_engine(dut, to_words(a, lanes), 2 * ho * wo * C // lanes, in_lanes=lanes,
                    out_lanes=lanes, seed=10)
    ref = requant_shift(snn.conv2d(a, w, b, 2, 1, groups=C), 3)
    assert hw.tolist() == ref.ravel().tolist()


def test_maxpool_results_in_memory():
    H, W, C = 4, 4, 128
    dut = MaxPoolEngine(height=H, width=W, channels=C, kernel=2, stride=2, in_bits=16)
    assert dut.memories[-1].name == "accs"
    rng = np.random.default_rng(11)
    a = rng.integers(0, 2**16, (2, H, W, C))
    hw = run_engine(dut, to_words(a, 1), 2 * 2 * 2 * C, in_lanes=1, out_lanes=1, seed=12)
    assert hw.tolist() == snn.maxpool2d(a, 2, 2, 0).ravel().tolist()
