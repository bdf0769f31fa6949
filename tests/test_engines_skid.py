"""Fast tier: the skid buffer every engine ends in (:mod:`amos_hw.lib.skid`)."""
from __future__ import annotations

import random

from amaranth.hdl import signed

from amos_hw.lib.engine_sim import output_cycles
from amos_hw.lib.sim import run_simulation, stream_get_many, stream_put_many
from amos_hw.lib.skid import SkidBuffer


def test_order_and_values_under_idle_and_backpressure():
    dut = SkidBuffer(signed(9))
    items = [random.Random(1).randrange(-256, 256) for _ in range(300)]
    rng = random.Random(2)
    got = []

    async def producer(ctx):
        await stream_put_many(ctx, dut.i, items, rng=rng, idle=0.3)

    async def consumer(ctx):
        got.extend(await stream_get_many(ctx, dut.o, len(items), rng=rng, backpressure=0.5))

    run_simulation(dut, producer, consumer)
    assert got == items


def test_full_throughput_and_latency():
    dut = SkidBuffer(8)
    ins, outs = output_cycles(dut, list(range(20)), 20)
    assert ins == list(range(20))
    assert outs == [c + SkidBuffer.latency for c in ins]


def test_ready_does_not_follow_the_consumer_combinationally():
    dut = SkidBuffer(8)
    seen = []

    async def tb(ctx):
        ctx.set(dut.i.valid, 1)
        ctx.set(dut.i.payload, 5)
        ctx.set(dut.o.ready, 0)
        for _ in range(4):
            await ctx.tick()
            before = ctx.get(dut.i.ready)
            ctx.set(dut.o.ready, 1)  # the consumer changes its mind within the cycle ...
            seen.append((before, ctx.get(dut.i.ready)))  # ... and i.ready does not move
            ctx.set(dut.o.ready, 0)

    run_simulation(dut, tb)
    assert all(a == b for a, b in seen)
    assert seen[-1] == (0, 0)  # both registers full: the input waits
