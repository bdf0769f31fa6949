# amaranth: UnusedElaboratable=no
"""amos_hw.lib.uart in the Amaranth simulator: loopback, bit timing, framing errors, overrun.

The linter pragma above: the divisor checks construct UARTs that raise in their constructor.
"""
import random

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from amos_hw.lib.sim import run_simulation, stream_get_many, stream_put_many
from amos_hw.lib.uart import UARTRx, UARTTx


class Loopback(wiring.Component):
    def __init__(self, divisor):
        self.divisor = divisor
        from amaranth.lib import stream
        super().__init__({"i": In(stream.Signature(8)), "o": Out(stream.Signature(8)),
                          "line": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.tx = tx = UARTTx(self.divisor)
        m.submodules.rx = rx = UARTRx(self.divisor)
        wiring.connect(m, wiring.flipped(self.i), tx.i)
        wiring.connect(m, rx.o, wiring.flipped(self.o))
        m.d.comb += [rx.rx.eq(tx.tx), self.line.eq(tx.tx)]
        return m


@pytest.mark.parametrize("divisor", [4, 5, 13])
def test_loopback(divisor):
    rng = random.Random(divisor)
    items = [0x00, 0xFF, 0xA5, 0x5A] + [rng.randrange(256) for _ in range(40)]
    dut = Loopback(divisor)
    got = []

    async def producer(ctx):
        await stream_put_many(ctx, dut.i, items, rng=rng, idle=0.3)

    async def consumer(ctx):
        got.extend(await stream_get_many(ctx, dut.o, len(items), rng=rng, backpressure=0.3))

    run_simulation(dut, producer, consumer, max_cycles=len(items) * 20 * divisor)
    assert got == items


def test_tx_waveform():
    """Start bit, LSB-first data, stop bit, each exactly `divisor` cycles."""
    divisor = 6
    dut = UARTTx(divisor)
    line = []

    async def tb(ctx):
        ctx.set(dut.i.payload, 0b1011_0010)
        ctx.set(dut.i.valid, 1)
        await ctx.tick().until(dut.i.ready)
        ctx.set(dut.i.valid, 0)
        for _ in range(12 * divisor):
            line.append(ctx.get(dut.tx))
            await ctx.tick()

    run_simulation(dut, tb)
    bits = [0] + [(0b1011_0010 >> i) & 1 for i in range(8)] + [1]
    want = [b for b in bits for _ in range(divisor)]
    assert line[:10 * divisor] == want
    assert set(line[10 * divisor:]) == {1}


async def _send_bits(ctx, dut, bits, divisor):
    for b in bits:
        ctx.set(dut.rx, b)
        for _ in range(divisor):
            await ctx.tick()


def test_rx_framing_error_and_recovery():
    divisor = 8
    dut = UARTRx(divisor)
    got = []
    errors = []

    async def driver(ctx):
        await ctx.tick()
        # 0x3C with a low stop bit, then a long break, then idle and a good 0xC3
        await _send_bits(ctx, dut, [0] + [(0x3C >> i) & 1 for i in range(8)] + [0] * 12, divisor)
        await _send_bits(ctx, dut, [1] * 3, divisor)
        await _send_bits(ctx, dut, [0] + [(0xC3 >> i) & 1 for i in range(8)] + [1] * 2, divisor)

    async def monitor(ctx):
        ctx.set(dut.o.ready, 1)
        while True:
            _, _, valid, fe, data = await ctx.tick().sample(dut.o.valid, dut.framing_error,
                                                            dut.o.payload)
            if fe:
                errors.append(1)
            if valid:
                got.append(data)

    run_simulation(dut, driver, background=[monitor])
    assert errors == [1]
    assert got == [0xC3]


def test_rx_ignores_glitch():
    divisor = 8
    dut = UARTRx(divisor)
    got = []

    async def driver(ctx):
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.rx, 0)   # a 2-cycle low glitch: shorter than half a bit
        await ctx.tick().repeat(2)
        ctx.set(dut.rx, 1)
        for _ in range(20 * divisor):
            await ctx.tick()
            if ctx.get(dut.o.valid):
                got.append(ctx.get(dut.o.payload))

    run_simulation(dut, driver)
    assert got == []


def test_rx_overrun():
    divisor = 4
    dut = UARTRx(divisor)
    overruns = []

    async def driver(ctx):
        await ctx.tick()
        for byte in (0x11, 0x22):
            await _send_bits(ctx, dut, [0] + [(byte >> i) & 1 for i in range(8)] + [1], divisor)
        await _send_bits(ctx, dut, [1] * 2, divisor)
        assert ctx.get(dut.o.valid) == 1
        assert ctx.get(dut.o.payload) == 0x22   # the newer byte replaced the unread one

    async def monitor(ctx):
        while True:
            _, _, ov = await ctx.tick().sample(dut.overrun)
            if ov:
                overruns.append(1)

    run_simulation(dut, driver, background=[monitor])
    assert overruns == [1]


@pytest.mark.parametrize("cls", [UARTRx, UARTTx])
@pytest.mark.parametrize("bad", [3, 0, 4.0, True])
def test_divisor_check(cls, bad):
    with pytest.raises(ValueError, match=rf"^divisor must be an integer of at least 4, not "
                                          rf"{bad!r}$"):
        cls(bad)
