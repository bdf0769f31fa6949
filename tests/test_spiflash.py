# amaranth: UnusedElaboratable=no
"""The SPI flash weight reader (:mod:`amos_hw.lib.spiflash`) and the flash model it is
tested against.

The model is checked first against the protocol written out by hand (mode 0, FAST READ,
most significant bit first), so the reader and the model cannot share a bit-order mistake.
"""
from __future__ import annotations

import random

import pytest

from amos_hw.lib.sim import run_simulation, stream_get_many
from amos_hw.lib.spiflash import FAST_READ, SpiFlashModel, SpiFlashReader


def _clock_byte(flash, value):
    """Mode 0 by hand: set copi while sck is low, then raise sck; return the bits read."""
    got = 0
    for i in range(8):
        bit = (value >> (7 - i)) & 1
        flash.step(0, 0, bit)  # falling edge / low phase: the flash drives its next bit
        got = (got << 1) | flash.step(0, 1, bit)  # rising edge: both sides sample
    return got


def test_model_answers_fast_read_msb_first_from_the_address():
    data = bytes(range(256)) * 2
    flash = SpiFlashModel(data)
    flash.step(1, 0, 0)
    for byte in (0x0B, 0x00, 0x01, 0x23, 0x00):  # command, address 0x000123, dummy
        _clock_byte(flash, byte)
    got = [_clock_byte(flash, 0) for _ in range(4)]
    assert got == [0x23, 0x24, 0x25, 0x26]
    flash.step(1, 0, 0)
    assert flash.errors == [] and flash.reads == [0x123]


def test_model_records_protocol_errors():
    flash = SpiFlashModel(b"\x00" * 16)
    flash.step(1, 0, 0)
    _clock_byte(flash, 0x03)  # READ, not FAST READ
    flash.step(0, 0, 0)
    flash.step(0, 1, 0)  # a ninth bit, then deselect in the middle of the header's byte
    flash.step(1, 0, 0)
    flash.step(1, 1, 0)  # a clock while deselected
    assert flash.errors == [f"command 0x03, expected {FAST_READ:#04x}",
                            "deselected after 9 bits of the header", "clock while deselected"]


@pytest.mark.parametrize("div,depth,backpressure", [(1, 4, 0.0), (2, 2, 0.7), (1, 1, 0.3)])
def test_reader_streams_the_words_once_per_start(div, depth, backpressure):
    rng = random.Random(div * 10 + depth)
    words = [rng.getrandbits(64) for _ in range(7)]
    offset = 0x2345
    image = b"\xff" * offset + b"".join(w.to_bytes(8, "little") for w in words) + b"\xa5" * 8
    flash = SpiFlashModel(image)
    dut = SpiFlashReader(words=len(words), offset=offset, div=div, depth=depth)
    got = []
    busy_after = []

    async def tb(ctx):
        for _ in range(2):
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            beats = await stream_get_many(ctx, dut.o, len(words), rng=random.Random(3),
                                          backpressure=backpressure)
            got.append([int(b) for b in beats])
            for _ in range(4):
                await ctx.tick()
            busy_after.append(ctx.get(dut.busy))

    async def pins(ctx):
        async for _ in ctx.tick():
            ctx.set(dut.flash.cipo, flash.step(ctx.get(dut.flash.cs_n), ctx.get(dut.flash.sck),
                                               ctx.get(dut.flash.copi)))

    run_simulation(dut, tb, background=[pins], max_cycles=100_000)
    assert got == [words, words]
    assert flash.errors == [] and flash.reads == [offset, offset]
    assert flash.bits_out == 2 * 64 * len(words)  # no clock past the last word
    assert busy_after == [0, 0]  # deselected after each read


def test_reader_rejects_bad_parameters():
    with pytest.raises(ValueError, match="div must be an integer >= 1, not 0"):
        SpiFlashReader(words=4, div=0)
    with pytest.raises(ValueError, match="words must be an integer >= 1"):
        SpiFlashReader(words=0)
    with pytest.raises(ValueError, match=r"bytes 0xfffff8..0x1000018 pass the 16 MiB"):
        SpiFlashReader(words=4, offset=0xFFFFF8)
