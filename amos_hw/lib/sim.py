"""Amaranth-simulator helpers shared by every block's fast-tier tests.

Stream transfers follow :mod:`amaranth.lib.stream`: a transfer happens on a clock edge where
``valid`` and ``ready`` are both high. The producer side raises ``valid`` without looking at
``ready`` and holds it and the payload until the transfer; idle cycles are inserted only *between*
transfers. The consumer side drops ``ready`` at random (backpressure) between transfers.

Use these inside testbenches added with ``Simulator.add_testbench`` (``async def tb(ctx)``), or run
a whole test with :func:`run_simulation`::

    rng = random.Random(1)

    async def producer(ctx):
        await stream_put_many(ctx, dut.i, items, rng=rng, idle=0.3)

    async def consumer(ctx):
        results.extend(await stream_get_many(ctx, dut.o, len(items), rng=rng, backpressure=0.3))

    run_simulation(dut, producer, consumer)

The cocotb counterparts for emitted Verilog are in ``rtl_tests/streams.py``.
"""
from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Iterable

from amaranth.sim import Simulator

__all__ = [
    "SimulationTimeout",
    "run_simulation",
    "stream_get",
    "stream_get_many",
    "stream_put",
    "stream_put_many",
]

Testbench = Callable[..., Awaitable[None]]


class SimulationTimeout(AssertionError):
    """The simulation ran past its cycle limit (usually: a stream that never handshakes)."""


def _check_probability(name: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1), not {value!r}")


async def _random_wait(ctx, rng: random.Random | None, probability: float) -> None:
    _check_probability("idle/backpressure", probability)
    if rng is None or probability == 0.0:
        return
    while rng.random() < probability:
        await ctx.tick()


async def stream_put(ctx, stream, payload, *, rng: random.Random | None = None,
                     idle: float = 0.0) -> None:
    """Send one ``payload`` on ``stream`` (the consumer is the design).

    Parameters
    ----------
    ctx : amaranth.sim.SimulatorContext
        The testbench context.
    stream : amaranth.lib.stream.Interface
        The design's input stream, e.g. ``dut.i``.
    payload : int, dict or data.Const
        Anything ``ctx.set`` accepts for the payload's shape (a dict for a struct layout).
    rng : random.Random, optional
        Source of the idle cycles; without it no idle cycle is inserted.
    idle : float
        Probability, checked once per cycle, of keeping ``valid`` low one more cycle before the
        payload is offered. In [0, 1).

    Returns once the transfer's clock edge has happened, with ``valid`` low again.
    """
    await _random_wait(ctx, rng, idle)
    ctx.set(stream.payload, payload)
    ctx.set(stream.valid, 1)
    await ctx.tick().until(stream.ready)
    ctx.set(stream.valid, 0)


async def stream_get(ctx, stream, *, rng: random.Random | None = None,
                     backpressure: float = 0.0):
    """Receive one payload from ``stream`` (the producer is the design).

    Parameters
    ----------
    ctx : amaranth.sim.SimulatorContext
        The testbench context.
    stream : amaranth.lib.stream.Interface
        The design's output stream, e.g. ``dut.o``.
    rng : random.Random, optional
        Source of the backpressure; without it ``ready`` is raised at once.
    backpressure : float
        Probability, checked once per cycle, of keeping ``ready`` low one more cycle. In [0, 1).

    Returns
    -------
    int or data.Const
        The payload as sampled on the transfer's clock edge (a ``data.Const`` for a layout).
    """
    await _random_wait(ctx, rng, backpressure)
    ctx.set(stream.ready, 1)
    (payload,) = await ctx.tick().sample(stream.payload).until(stream.valid)
    ctx.set(stream.ready, 0)
    return payload


async def stream_put_many(ctx, stream, payloads: Iterable, *, rng: random.Random | None = None,
                          idle: float = 0.0) -> None:
    """Send every item of ``payloads`` in order with :func:`stream_put`."""
    for payload in payloads:
        await stream_put(ctx, stream, payload, rng=rng, idle=idle)


async def stream_get_many(ctx, stream, count: int, *, rng: random.Random | None = None,
                          backpressure: float = 0.0) -> list:
    """Receive ``count`` payloads in order with :func:`stream_get` and return them."""
    return [await stream_get(ctx, stream, rng=rng, backpressure=backpressure)
            for _ in range(count)]


def run_simulation(dut, *testbenches: Testbench, background: Iterable[Testbench] = (),
                   max_cycles: int = 100_000, period: float = 1e-6,
                   vcd_file: str | None = None) -> None:
    """Simulate ``dut`` with a ``sync`` clock until every testbench has returned.

    Parameters
    ----------
    dut : amaranth.lib.wiring.Component
        The design under test.
    *testbenches : async callables taking ``ctx``
        Run concurrently; the simulation ends when all of them have returned.
    background : iterable of async callables taking ``ctx``
        Monitors that may run forever; they do not keep the simulation alive.
    max_cycles : int
        Guard against a hung handshake: :class:`SimulationTimeout` is raised after this many
        clock cycles.
    period : float
        Clock period in seconds.
    vcd_file : str, optional
        Write a waveform dump there.

    Raises
    ------
    SimulationTimeout
        If the testbenches have not returned after ``max_cycles`` cycles.
    """
    sim = Simulator(dut)
    sim.add_clock(period)
    for tb in testbenches:
        sim.add_testbench(tb)
    for tb in background:
        sim.add_testbench(tb, background=True)

    async def watchdog(ctx):
        # plain awaits: an async generator (``repeat``, ``async for``) left suspended when the
        # simulation ends is closed at garbage collection and raises there
        for _ in range(max_cycles):
            await ctx.tick()
        raise SimulationTimeout(
            f"simulation ran past max_cycles={max_cycles} cycles; a stream may never handshake"
        )

    sim.add_testbench(watchdog, background=True)
    try:
        if vcd_file is None:
            sim.run()
        else:
            with sim.write_vcd(vcd_file):
                sim.run()
    except BaseException:
        _close_testbenches(sim)
        raise


def _close_testbenches(sim: Simulator) -> None:
    """Close the testbenches that an exception left suspended.

    Otherwise Python closes them at garbage collection, where Amaranth's trigger objects raise
    (``aclose(): asynchronous generator is already running``, ``coroutine ... was never
    awaited``); pytest turns those into errors of whichever test happens to run next, hiding the
    real failure. Amaranth 0.5 has no public way to reach them, hence the private attributes.
    """
    engine = getattr(sim, "_engine", None)
    for attr in ("_testbenches", "_processes"):
        for process in list(getattr(engine, attr, ())):
            coroutine = getattr(process, "coroutine", None)
            if coroutine is not None:
                try:
                    coroutine.close()
                except RuntimeError:
                    pass
