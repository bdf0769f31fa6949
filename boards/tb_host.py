"""cocotb side of ``host classify --sim``: the host, talking through modelled UART lines.

Reads the request written by :func:`boards.sim.classify` (``$AMOS_HOST_REQUEST``): the UART
divisor, the images, where to write the answer. Sends ``CMD_INFO`` and then one
``CMD_CLASSIFY`` per image with :func:`amos_hw.lib.hostproto.encode_frame`, bit by bit on
``rx``; decodes ``tx`` bit by bit into a :class:`amos_hw.lib.hostproto.FrameDecoder`. The
answer lists the raw ``RSP_RESULT`` payloads and the round trip of each in clock cycles.
"""
from __future__ import annotations

import json
import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge
from tqdm import tqdm

from amos_hw.lib import hostproto as hp
from amos_hw.lib.spiflash import SpiFlashModel

PERIOD_NS = 10


class UartModel:
    """Drives ``dut.rx`` and decodes ``dut.tx`` at ``divisor`` clock cycles per bit."""

    def __init__(self, dut, divisor: int):
        self.dut = dut
        self.divisor = divisor
        self.decoder = hp.FrameDecoder()
        self.frames = []
        self.cycle = 0

    async def count(self):
        while True:
            await RisingEdge(self.dut.clk)
            self.cycle += 1

    async def send(self, data: bytes):
        for byte in data:
            for bit in [0] + [(byte >> i) & 1 for i in range(8)] + [1]:
                self.dut.rx.value = bit
                await ClockCycles(self.dut.clk, self.divisor)

    async def receive(self):
        d = self.divisor
        while True:
            await FallingEdge(self.dut.tx)
            await ClockCycles(self.dut.clk, d // 2)
            if int(self.dut.tx.value) != 0:
                continue  # a glitch
            byte = 0
            for i in range(8):
                await ClockCycles(self.dut.clk, d)
                byte |= int(self.dut.tx.value) << i
            await ClockCycles(self.dut.clk, d)
            if int(self.dut.tx.value) != 1:
                raise AssertionError(f"framing error on tx after byte 0x{byte:02x}")
            self.frames.extend(self.decoder.feed(bytes([byte])))

    async def wait_frame(self, limit_cycles: int) -> hp.Frame:
        start = self.cycle
        while not self.frames:
            if self.cycle - start > limit_cycles:
                raise AssertionError(f"no answer from the board within {limit_cycles} cycles")
            await ClockCycles(self.dut.clk, self.divisor)
        return self.frames.pop(0)


async def flash_pins(dut, flash):
    """The board's SPI flash (:class:`amos_hw.lib.spiflash.SpiFlashModel`) on the top's flash
    pins: sampled mid-cycle, after the design's registers have settled."""
    while True:
        await FallingEdge(dut.clk)
        dut.flash__cipo.value = flash.step(int(dut.flash__cs_n.value), int(dut.flash__sck.value),
                                           int(dut.flash__copi.value))


@cocotb.test(timeout_time=4000, timeout_unit="sec")
async def classify(dut):
    req = json.loads(open(os.environ["AMOS_HOST_REQUEST"]).read())
    divisor = req["divisor"]
    uart = UartModel(dut, divisor)
    answer = {"results": []}
    cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns").start())
    dut.rx.value = 1
    dut.rst.value = 1
    await ClockCycles(dut.clk, 5)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 5)
    flash = None
    if req.get("flash"):  # the weights in the board's configuration flash
        flash = SpiFlashModel(bytes.fromhex(req["flash"]["hex"]), base=req["flash"]["base"])
        dut.flash__cipo.value = 0
        cocotb.start_soon(flash_pins(dut, flash))
    cocotb.start_soon(uart.count())
    cocotb.start_soon(uart.receive())
    byte_cycles = 10 * divisor

    await uart.send(hp.encode_frame(hp.CMD_INFO))
    f = await uart.wait_frame(200 * byte_cycles)
    assert f.cmd == hp.RSP_INFO, f"expected RSP_INFO, got {f}"
    info = hp.Info.from_payload(f.payload)
    assert f.payload.hex() == req["info"], "the simulated top answers a different INFO"
    answer["info"] = f.payload.hex()
    for k, chunk in enumerate(req.get("load", [])):  # run-time weights (CMD_LOAD), then images
        payload = bytes.fromhex(chunk)
        await uart.send(hp.encode_frame(hp.CMD_LOAD, payload))
        f = await uart.wait_frame(200 * byte_cycles)
        if f.cmd != hp.RSP_LOADED:
            answer["error"] = f"load chunk {k}: expected RSP_LOADED, got 0x{f.cmd:02x}"
            break
    limit = (info.input_size + 100) * byte_cycles + 4 * info.latency_cycles + 100_000
    bar = None
    if req.get("progress") and len(req["images"]) > 1:
        bar = tqdm(total=len(req["images"]), desc="sim classify", unit="image")
    for image in ([] if "error" in answer else req["images"]):
        t0 = uart.cycle
        await uart.send(hp.encode_frame(hp.CMD_CLASSIFY, bytes(image)))
        f = await uart.wait_frame(limit)
        if f.cmd != hp.RSP_RESULT:
            answer["error"] = f"expected RSP_RESULT, got command 0x{f.cmd:02x} {f.payload.hex()}"
            break
        answer["results"].append({"payload": f.payload.hex(),
                                  "round_trip_cycles": uart.cycle - t0})
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    if flash is not None and flash.errors and "error" not in answer:
        answer["error"] = f"SPI flash protocol: {'; '.join(flash.errors[:3])}"
    with open(req["response"], "w") as fh:
        json.dump(answer, fh)
