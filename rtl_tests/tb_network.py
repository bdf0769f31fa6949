"""cocotb module: a generated network (``amos_<model>``) over real test images, bit for bit.

Started by :func:`rtl_tests.network.run_network` through :func:`rtl_tests.harness.run_cocotb`
for the Icarus runs and for the shared engine with its weights in an SPI flash (its flash model
is cocotb's); the other Verilator runs go to the native bench (:mod:`rtl_tests.native`).
The parameters name an ``.npz`` with the images (``x``, uint8, HWC), the reference logits and
classes from :func:`python_ref.snn.run` (``logits``, ``classes``) and the labels (``y``), and
a JSON path where the measured figures are written. For a network with spike counters
(``spike_layers`` in the parameters) the ``.npz`` also holds python_ref's spikes per image and
layer (``layer_spikes``), and every result beat's ``spikes`` and ``layer_spikes`` port are
compared with them (``spike_mismatches``).

The pixel stream is driven continuously (no idle) and the result is always ready, the condition
under which ``report.json``'s ``cycles_per_image`` holds. To keep a long run cheap the driver
only wakes on clock edges while a pixel is being transferred; while the network holds ``ready``
low it sleeps until ``ready`` rises, and the receiver sleeps until ``valid`` rises.
"""
from __future__ import annotations

import json
import time

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge, RisingEdge, with_timeout
from cocotb.utils import get_sim_time

from amos_hw.lib.spiflash import SpiFlashModel
from boards.tb_host import flash_pins
from rtl_tests.harness import test_params
from rtl_tests.streams import reset, start_clock

PERIOD_NS = 10


async def drive_pixels(dut, flat: np.ndarray, per_image: int) -> None:
    clk, valid, ready, payload = dut.clk, dut.pixels__valid, dut.pixels__ready, \
        dut.pixels__payload
    k, total = 0, flat.size
    while k < total:
        pos = k % per_image
        payload.value = int(flat[k]) | (int(pos == 0) << 8) | (int(pos == per_image - 1) << 9)
        valid.value = 1
        await FallingEdge(clk)
        if int(ready.value):
            await RisingEdge(clk)
            k += 1
        else:
            await RisingEdge(ready)
    valid.value = 0


def unpack_result(bits: int, width: int, n: int) -> tuple[int, list[int]]:
    cls = bits & 0xF
    logits = []
    for k in range(n):
        v = (bits >> (4 + k * width)) & ((1 << width) - 1)
        if v >> (width - 1):
            v -= 1 << width
        logits.append(v)
    return cls, logits


def read_spikes(dut, bits: int, width: int, n: int, layers: int) -> tuple:
    """The image's spikes (after the logits in the result payload) and the ``layer_spikes``
    port's 32-bit counts; ``()`` for a network without spike counters."""
    if not layers:
        return ()
    split = int(dut.layer_spikes.value)
    return ((bits >> (4 + n * width)) & 0xFFFFFFFF,
            [(split >> (32 * k)) & 0xFFFFFFFF for k in range(layers)])


async def receive(dut, count: int, width: int, n: int, log_every: int, out: list,
                  layers: int = 0) -> None:
    clk, valid, payload = dut.clk, dut.result__valid, dut.result__payload
    dut.result__ready.value = 1
    t0 = time.monotonic()
    while len(out) < count:
        if not int(valid.value):
            await RisingEdge(valid)
        await FallingEdge(clk)
        if int(valid.value):
            cycle = int(get_sim_time(unit="ns")) // PERIOD_NS
            bits = int(payload.value)
            out.append((cycle, *unpack_result(bits, width, n),
                        *read_spikes(dut, bits, width, n, layers)))
            if log_every and len(out) % log_every == 0:
                rate = len(out) / max(1e-9, time.monotonic() - t0)
                dut._log.info(f"{len(out)}/{count} images ({rate:.2f} images/s)")
        await RisingEdge(clk)


@cocotb.test()
async def network_images(dut):
    """All images streamed back to back: logits and class == python_ref, cycles measured."""
    p = test_params()
    d = np.load(p["data"])
    x, ref_logits, ref_cls, y = d["x"], d["logits"], d["classes"], d["y"]
    n, per_image = len(x), int(np.prod(x.shape[1:]))
    start_clock(dut, PERIOD_NS)
    dut.pixels__valid.value = 0
    dut.result__ready.value = 0
    if hasattr(dut, "load__valid"):  # the shared engine's weight port: preloaded, unused
        dut.load__valid.value = 0
    flash = None
    if p.get("flash"):  # the weights in an SPI flash (weights="flash")
        flash = SpiFlashModel(bytes.fromhex(p["flash"]["hex"]), base=p["flash"]["base"])
        dut.flash__cipo.value = 0
        cocotb.start_soon(flash_pins(dut, flash))
    await reset(dut)
    start = int(get_sim_time(unit="ns")) // PERIOD_NS
    got: list = []
    cocotb.start_soon(drive_pixels(dut, x.reshape(-1), per_image))
    budget = (p["latency_cycles"] * 4 + p["cycles_per_image"] * (n + 4)) * PERIOD_NS
    layers = len(p.get("spike_layers", []))
    await with_timeout(receive(dut, n, p["logit_width"], p["num_classes"], p.get("log_every", 0),
                               got, layers), budget, "ns")
    cycles = [g[0] for g in got]
    cls = np.array([g[1] for g in got], np.int64)
    logits = np.array([g[2] for g in got], np.int64)
    bad = [k for k in range(n) if cls[k] != ref_cls[k] or (logits[k] != ref_logits[k]).any()]
    intervals = [b - a for a, b in zip(cycles, cycles[1:], strict=False)]
    steady = intervals[p.get("warmup", 1):]
    summary = {
        "images": n,
        "mismatches": len(bad),
        "first_mismatches": [int(k) for k in bad[:10]],
        "cycles_per_image_measured": (max(set(steady), key=steady.count) if steady else None),
        "cycles_per_image_intervals": sorted(set(intervals)),
        "cycles_per_image_report": p["cycles_per_image"],
        "latency_cycles_measured": cycles[0] - start,
        "latency_cycles_report": p["latency_cycles"],
        "accuracy": float((cls == y).mean()),
        "reference_accuracy": float((ref_cls == y).mean()),
    }
    if flash is not None:
        summary["flash_errors"] = flash.errors[:10]
        summary["flash_reads"] = len(flash.reads)
    spike_bad = []
    if layers:
        want = d["layer_spikes"]
        spike_bad = [k for k in range(n) if got[k][3] != int(want[k].sum())
                     or got[k][4] != [int(v) for v in want[k]]]
        summary.update(spike_layers=p["spike_layers"], spike_mismatches=len(spike_bad),
                       first_spike_mismatches=spike_bad[:10],
                       spikes_total=int(sum(g[3] for g in got)),
                       spikes_per_image=float(np.mean([g[3] for g in got])))
    with open(p["summary"], "w") as f:
        json.dump(summary, f, indent=1, sort_keys=True)
    assert flash is None or not flash.errors, f"SPI flash protocol: {flash.errors[:3]}"
    assert not bad, f"{len(bad)} of {n} images differ from python_ref (first: {bad[:10]})"
    assert not spike_bad, (f"the spike counts of {len(spike_bad)} of {n} images differ from "
                           f"python_ref (first: {spike_bad[:10]})")
    if p.get("check_cycles", True):
        assert all(v == p["cycles_per_image"] for v in steady), (
            f"intervals between results {sorted(set(steady))} != report.json's "
            f"{p['cycles_per_image']} cycles per image")
