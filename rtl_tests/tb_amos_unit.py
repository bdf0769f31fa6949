"""cocotb module: a bank of AMOS units (emitted Verilog) against python_ref, bit for bit.

Started by ``rtl_tests/test_amos_unit.py`` through :func:`rtl_tests.harness.run_cocotb`. The
parameters carry, for every unit of the bank, its port widths, the stimuli and the reference
outputs that the pytest side computed with :class:`python_ref.quant.IntAmosUnit`.
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

LATENCY_ITEMS = 64


def layouts(u: dict):
    fields = {"x": data.ArrayLayout(signed(u["in_width"]), u["lanes"])}
    if u["in2_width"]:
        fields["x2"] = data.ArrayLayout(signed(u["in2_width"]), u["lanes"])
    out = data.StructLayout({
        "z": data.ArrayLayout(unsigned(u["K"]), u["lanes"]),
        "y": data.ArrayLayout(signed(u["y_width"]), u["lanes"]),
    })
    return data.StructLayout(fields), out


def stimuli(u: dict) -> list[dict]:
    items = []
    for n, xs in enumerate(u["x"]):
        item = {"x": xs}
        if u["in2_width"]:
            item["x2"] = u["x2"][n]
        items.append(item)
    return items


async def start(dut, units):
    start_clock(dut)
    for u in units:
        getattr(dut, f"{u['name']}_clear").value = 0
        getattr(dut, f"{u['name']}_i__valid").value = 0
        getattr(dut, f"{u['name']}_o__ready").value = 0
    await reset(dut)


@cocotb.test()
async def random_idle_and_backpressure(dut):
    """Every unit at once, random idle cycles and backpressure; scoreboard against python_ref."""
    p = test_params()
    units = p["units"]
    await start(dut, units)
    receivers = []
    for k, u in enumerate(units):
        lin, lout = layouts(u)
        rng = random.Random(p["seed"] * 1000 + k)
        driver = StreamDriver(dut, f"{u['name']}_i", shape=lin, rng=rng, idle=p["idle"])
        receiver = StreamReceiver(dut, f"{u['name']}_o", shape=lout, rng=rng,
                                  backpressure=p["backpressure"])
        cocotb.start_soon(driver.send(stimuli(u)))
        receivers.append(cocotb.start_soon(receiver.receive(len(u["x"]))))
    board = Scoreboard("amos units")
    for u, task in zip(units, receivers, strict=True):
        got = await task
        for n, item in enumerate(got):
            for lane in range(u["lanes"]):
                board.compare(f"{u['name']}[{n}].z[{lane}]", item["z"][lane], u["z"][n][lane])
                board.compare(f"{u['name']}[{n}].y[{lane}]", item["y"][lane], u["y"][n][lane])
    for _ in range(2):
        await RisingEdge(dut.clk)
    for u in units:
        count = int(getattr(dut, f"{u['name']}_spike_count").value)
        board.compare(f"{u['name']}.spike_count", count, u["spikes"])
    board.finish()


@cocotb.test()
async def latency_and_throughput(dut):
    """No idle, no backpressure: one input per cycle, every output ``latency`` cycles later
    (the first ``LATENCY_ITEMS`` inputs of every unit)."""
    p = test_params()
    units = [{**u, "x": u["x"][:LATENCY_ITEMS],
              "x2": None if u["x2"] is None else u["x2"][:LATENCY_ITEMS],
              "z": u["z"][:LATENCY_ITEMS]} for u in p["units"]]
    await start(dut, units)
    board = Scoreboard("latency")
    monitors = []
    for u in units:
        lin, lout = layouts(u)
        mi = StreamMonitor(dut, f"{u['name']}_i", shape=lin).start()
        mo = StreamMonitor(dut, f"{u['name']}_o", shape=lout).start()
        monitors.append((mi, mo))
        cocotb.start_soon(StreamDriver(dut, f"{u['name']}_i", shape=lin).send(stimuli(u)))
        cocotb.start_soon(StreamReceiver(dut, f"{u['name']}_o", shape=lout).receive(len(u["x"])))
    for _ in range(max(len(u["x"]) + u["latency"] for u in units) + 5):
        await RisingEdge(dut.clk)
    for u, (mi, mo) in zip(units, monitors, strict=True):
        cin = [c for c, _ in mi.transfers]
        cout = [c for c, _ in mo.transfers]
        board.compare(f"{u['name']} input cycles", cin, list(range(cin[0], cin[0] + len(u["x"]))))
        board.compare(f"{u['name']} output cycles", cout, [c + u["latency"] for c in cin])
        board.compare(f"{u['name']} outputs", [t["z"][0] for _, t in mo.transfers],
                      [z[0] for z in u["z"]])
    board.finish()
