"""cocotb tests for :class:`amos_hw.lib.smoke.PipelinedCompare` (started by test_smoke.py).

Parameters (``test_params()``): ``width``, ``count``, ``seed``, ``idle``, ``backpressure``,
``latency`` (the component's ``latency`` property) and ``invert`` (compare against a wrong
reference on purpose: the harness self-check expects that run to fail).
"""
import random

import cocotb

from amos_hw.lib.smoke import PipelinedCompare
from rtl_tests.harness import test_params
from rtl_tests.streams import StreamDriver, StreamMonitor, StreamReceiver, reset, start_clock


def _pairs(width, count, rng):
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    corners = [(lo, lo), (lo, hi), (hi, lo), (hi, hi), (0, 0), (-1, 0), (0, -1)]
    pairs = [(a, b) for a, b in corners if lo <= a <= hi and lo <= b <= hi]
    return pairs + [(rng.randint(lo, hi), rng.randint(lo, hi)) for _ in range(count - len(pairs))]


async def _run(dut, p, idle, backpressure, monitors=False):
    rng = random.Random(p["seed"])
    layout = PipelinedCompare.operand_layout(p["width"])
    driver = StreamDriver(dut, "i", shape=layout, rng=random.Random(rng.random()), idle=idle)
    receiver = StreamReceiver(dut, "o", rng=random.Random(rng.random()),
                              backpressure=backpressure)
    start_clock(dut)
    await reset(dut)
    mons = (StreamMonitor(dut, "i", shape=layout).start(), StreamMonitor(dut, "o").start()) \
        if monitors else None
    pairs = _pairs(p["width"], p["count"], rng)
    sending = cocotb.start_soon(driver.send([{"a": a, "b": b} for a, b in pairs]))
    got = await receiver.receive(len(pairs))
    await sending
    return pairs, got, mons


@cocotb.test(timeout_time=5, timeout_unit="ms")
async def random_traffic(dut):
    """Random operands under random idle cycles and backpressure; results == model."""
    p = test_params()
    pairs, got, _ = await _run(dut, p, p["idle"], p["backpressure"])
    expected = [PipelinedCompare.model(a, b) for a, b in pairs]
    if p.get("invert"):
        expected = [1 - e for e in expected]
    assert got == expected


@cocotb.test(timeout_time=5, timeout_unit="ms")
async def latency_full_throughput(dut):
    """Without idle cycles or backpressure: one result per cycle, each `latency` cycles after
    its operands."""
    p = test_params()
    pairs, got, (mon_i, mon_o) = await _run(dut, p, 0.0, 0.0, monitors=True)
    assert got == [PipelinedCompare.model(a, b) for a, b in pairs]
    cycles_i = [c for c, _ in mon_i.transfers]
    cycles_o = [c for c, _ in mon_o.transfers]
    assert [v for _, v in mon_i.transfers] == [{"a": a, "b": b} for a, b in pairs]
    assert [o - i for i, o in zip(cycles_i, cycles_o, strict=True)] == \
        [p["latency"]] * len(pairs)
    assert cycles_i == list(range(cycles_i[0], cycles_i[0] + len(pairs)))
