"""cocotb module shared by the layer engines' slow tier: a bank of engines against python_ref.

Started by ``rtl_tests/test_engine_*.py`` through :func:`rtl_tests.harness.run_cocotb`. For every
engine of the bank the parameters carry its input streams (port name, lanes, lane width, words),
its output stream (port, lanes, width, signedness) and the reference output words that the pytest
side computed with python_ref, and the engine's ``expected_cycles`` and ``latency``.
"""
from __future__ import annotations

import random

import cocotb
from amaranth.hdl import signed, unsigned
from amaranth.lib import data
from cocotb.triggers import RisingEdge

from rtl_tests.harness import test_params
from rtl_tests.scoreboard import Scoreboard
from rtl_tests.streams import StreamDriver, StreamMonitor, StreamReceiver, reset, start_clock


def layout(port: dict):
    shape = signed(port["width"]) if port.get("signed") else unsigned(port["width"])
    return data.ArrayLayout(shape, port["lanes"])


async def start(dut, engines):
    start_clock(dut)
    for e in engines:
        for port in e["inputs"]:
            getattr(dut, f"{e['name']}_{port['port']}__valid").value = 0
        getattr(dut, f"{e['name']}_{e['output']['port']}__ready").value = 0
    await reset(dut)


def launch(dut, e, rng=None, idle=0.0, backpressure=0.0):
    """Start the drivers of every input and the receiver of the output; return its task."""
    for port in e["inputs"]:
        driver = StreamDriver(dut, f"{e['name']}_{port['port']}", shape=layout(port), rng=rng,
                              idle=idle)
        cocotb.start_soon(driver.send(port["words"]))
    out = e["output"]
    receiver = StreamReceiver(dut, f"{e['name']}_{out['port']}", shape=layout(out), rng=rng,
                              backpressure=backpressure)
    return cocotb.start_soon(receiver.receive(len(e["expected"])))


def to_lists(words, lanes):
    return [[w[p] for p in range(lanes)] for w in words]


@cocotb.test()
async def random_idle_and_backpressure(dut):
    """Every engine at once, random idle cycles and backpressure; scoreboard against python_ref."""
    p = test_params()
    engines = p["engines"]
    await start(dut, engines)
    tasks = [
        launch(dut, e, random.Random(p["seed"] * 1000 + k), p["idle"], p["backpressure"])
        for k, e in enumerate(engines)
    ]
    board = Scoreboard("engines")
    for e, task in zip(engines, tasks, strict=True):
        got = to_lists(await task, e["output"]["lanes"])
        for n, (g, x) in enumerate(zip(got, e["expected"], strict=True)):
            board.compare(f"{e['name']} word {n}", g, x)
    board.finish()


@cocotb.test()
async def cycles_per_image_exact(dut):
    """No idle, no backpressure: the first output of each image comes ``latency`` cycles after the
    first input and ``expected_cycles`` after the previous image's."""
    p = test_params()
    engines = p["engines"]
    await start(dut, engines)
    monitors = []
    for e in engines:
        first_in = e["inputs"][0]
        mi = StreamMonitor(dut, f"{e['name']}_{first_in['port']}", shape=layout(first_in)).start()
        mo = StreamMonitor(dut, f"{e['name']}_{e['output']['port']}",
                           shape=layout(e["output"])).start()
        monitors.append((mi, mo, launch(dut, e)))
    board = Scoreboard("cycles")
    for e, (_, _, task) in zip(engines, monitors, strict=True):
        got = to_lists(await task, e["output"]["lanes"])
        board.compare(f"{e['name']} outputs", got, e["expected"])
    await RisingEdge(dut.clk)
    for e, (mi, mo, _) in zip(engines, monitors, strict=True):
        per_image = len(e["expected"]) // e["images"]
        firsts = [c for c, _ in mo.transfers][::per_image]
        start_cycle = mi.transfers[0][0]
        board.compare(f"{e['name']} latency", firsts[0] - start_cycle, e["latency"])
        board.compare(f"{e['name']} cycles per image",
                      [b - a for a, b in zip(firsts, firsts[1:], strict=False)],
                      [e["expected_cycles"]] * (e["images"] - 1))
    board.finish()
