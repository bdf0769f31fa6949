"""Run a layer engine in the Amaranth simulator: words in, words out, cycles measured.

Shared by the engines' fast-tier tests. Engine streams carry arrays of lanes (``simd`` inputs,
``pe`` outputs); these helpers turn numpy arrays into those words and back, drive the input with
random idle cycles and the output with random backpressure (:mod:`amos_hw.lib.sim`), and measure
the cycle of every output transfer when asked to run without stalls.
"""
from __future__ import annotations

import random

import numpy as np

from amos_hw.lib.sim import run_simulation, stream_get_many, stream_put_many

__all__ = ["to_words", "from_words", "run_engine", "output_cycles"]


def to_words(values, lanes: int) -> list[list[int]]:
    """Flatten ``values`` in order and cut it into words of ``lanes`` ints."""
    flat = np.asarray(values, dtype=np.int64).ravel()
    if flat.size % lanes:
        raise ValueError(f"{flat.size} values do not fill words of {lanes} lanes")
    return [[int(v) for v in flat[n:n + lanes]] for n in range(0, flat.size, lanes)]


def from_words(words, lanes: int) -> np.ndarray:
    """Received payloads (array layouts) as one flat int64 array."""
    return np.array([int(w[p]) for w in words for p in range(lanes)], dtype=np.int64)


def run_engine(dut, words, n_out: int, *, in_lanes: int, out_lanes: int, seed: int = 0,
               idle: float = 0.3, backpressure: float = 0.3, max_cycles: int = 200_000):
    """Stream ``words`` into ``dut.i`` and collect ``n_out`` words from ``dut.o``.

    Returns
    -------
    numpy.ndarray of int64
        The received lanes, flat, in order.
    """
    rng_in, rng_out = random.Random(seed), random.Random(seed + 1)
    got = []

    async def producer(ctx):
        await stream_put_many(ctx, dut.i, words, rng=rng_in, idle=idle)

    async def consumer(ctx):
        got.extend(await stream_get_many(ctx, dut.o, n_out, rng=rng_out,
                                         backpressure=backpressure))

    run_simulation(dut, producer, consumer, max_cycles=max_cycles)
    return from_words(got, out_lanes)


def output_cycles(dut, words, n_out: int, *, max_cycles: int = 200_000):
    """Cycles (from the first input offer) of every output transfer, with no idle and no stall.

    The input is offered every cycle and the output is always ready, which is the condition under
    which an engine's ``expected_cycles`` and ``latency`` hold exactly.

    Returns
    -------
    (list[int], list[int])
        Cycles of the input transfers and of the output transfers.
    """
    ins, outs = [], []

    async def tb(ctx):
        ctx.set(dut.o.ready, 1)
        n = 0
        cycle = 0
        while len(outs) < n_out:
            if n < len(words):
                ctx.set(dut.i.payload, words[n])
                ctx.set(dut.i.valid, 1)
            else:
                ctx.set(dut.i.valid, 0)
            _, _, iv, ir, ov = await ctx.tick().sample(dut.i.valid, dut.i.ready, dut.o.valid)
            if iv and ir:
                ins.append(cycle)
                n += 1
            if ov:
                outs.append(cycle)
            cycle += 1

    run_simulation(dut, tb, max_cycles=max_cycles)
    return ins, outs
