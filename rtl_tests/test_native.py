"""The native Verilator bench (rtl_tests/native.py, rtl_tests/native/bench.cpp).

The whole digits test set under a seeded idle / backpressure pattern, on the layer-pipelined
network and on the shared engine, bit for bit; and the bench's refusals: a truncated image file,
a bench built from other Verilog than the design compared with, a top it does not drive. The
plain runs (no stall, cycles checked) are rtl_tests/test_network_digits.py and
test_network_tiny.py on Verilator, which go through the same bench.
"""
import dataclasses
import shutil

import numpy as np
import pytest

from amos_hw.flow import FlowConfig, run_flow
from amos_hw.passes.emit import top_name
from python_ref.data import load_digits
from rtl_tests.native import (
    BENCH_TOP,
    MAGIC,
    NativeBenchError,
    StaleBenchError,
    bench_top,
    build_bench,
    run_bench,
    run_images,
    write_images,
)


@pytest.fixture
def verilator(sim):
    if sim != "verilator":
        pytest.skip("the native bench is Verilator's")


@pytest.fixture(scope="module")
def digits():
    return load_digits("test")


@pytest.fixture(scope="module")
def digits_design():
    ctx = run_flow(FlowConfig(model="digits", quiet=True))
    return ctx, dict(toplevel=top_name(ctx.model_name), image_size=64,
                     logit_width=ctx.top.logit_width, num_classes=ctx.top.num_classes)


@pytest.mark.parametrize("architecture", ["pipelined", "shared"])
def test_digits_with_stalls(verilator, digits, architecture):
    """All 359 images with idle input cycles and result backpressure: every logit equal."""
    x, y = digits
    res = run_images("digits", x, y, sim_seed=5, idle=0.25, stall=0.4,
                     architecture=architecture)
    assert res["images"] == 359
    assert res["mismatches"] == 0, res["first_mismatches"]
    assert res["cycles_ok"] is None  # the report's figure holds without stalls only
    assert res["architecture"] == architecture
    assert res["sim_images_per_s_per_core"] > 0


def test_shared_engine_cycles(verilator, digits):
    """The shared engine without stalls: the report's cycles per image."""
    x, y = digits
    res = run_images("digits", x[:20], y[:20], architecture="shared")
    assert res["mismatches"] == 0
    assert res["cycles_ok"] is True
    assert res["cycles_per_image_measured"] == res["cycles_per_image_report"]


def test_truncated_image_file(verilator, digits, digits_design, tmp_path):
    ctx, geometry = digits_design
    bench = build_bench(ctx.verilog, **geometry)
    images = tmp_path / "images.bin"
    write_images(images, digits[0][:5])
    data = images.read_bytes()
    assert data[:8] == MAGIC
    images.write_bytes(data[:-10])
    with pytest.raises(NativeBenchError, match=r"is truncated: its header announces 5 images "
                                               r"of 64 bytes \(336 bytes with the header\), "
                                               r"the file has 326"):
        run_bench(bench, ctx.verilog, images, tmp_path / "out.txt")
    images.write_bytes(b"NOTIMAGE" + data[8:])
    with pytest.raises(NativeBenchError, match="does not start with the AMOSIMG1 header"):
        run_bench(bench, ctx.verilog, images, tmp_path / "out.txt")
    write_images(images, np.zeros((2, 8, 8, 2), np.uint8))
    with pytest.raises(NativeBenchError, match="holds images of 128 bytes; this bench was "
                                               "built for 64"):
        run_bench(bench, ctx.verilog, images, tmp_path / "out.txt")


def test_stale_bench(verilator, digits, digits_design, tmp_path):
    """A bench built from other Verilog than the design it is compared with is refused."""
    ctx, geometry = digits_design
    bench = build_bench(ctx.verilog, **geometry)
    images = tmp_path / "images.bin"
    write_images(images, digits[0][:2])
    newer = ctx.verilog.replace("module ", "/* regenerated */\nmodule ", 1)
    with pytest.raises(StaleBenchError, match=r"was built from Verilog [0-9a-f]{16}, not from "
                                              r"the design compared with"):
        run_bench(bench, newer, images, tmp_path / "out.txt")
    got = run_bench(bench, ctx.verilog, images, tmp_path / "out.txt")
    assert len(got["classes"]) == 2
    # the record beside the binary is what counts (a copy, as a binary rebuilt in place from
    # other Verilog would have it)
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy2(bench.path, copy / "bench")
    (copy / "verilog.sha256").write_text("0" * 64 + "\n")
    with pytest.raises(StaleBenchError, match="was built from Verilog 0000000000000000"):
        run_bench(dataclasses.replace(bench, path=copy / "bench"), ctx.verilog, images,
                  tmp_path / "out.txt")


def test_refuses_other_tops(tmp_path):
    """A top without the pixels / result streams, or with the SPI flash's pins."""
    uart = "module board(clk, rst, uart__rx, uart__tx);\nendmodule\n"
    with pytest.raises(NativeBenchError, match="board has no port.*pixels__payload.*not a "
                                               "board top"):
        build_bench(uart, toplevel="board", image_size=64, logit_width=8, num_classes=10,
                    root=tmp_path)
    ports = ("clk, rst, pixels__payload, pixels__valid, pixels__ready, result__payload, "
             "result__valid, result__ready, flash__cipo, flash__sck")
    flash = f"module net({ports});\nendmodule\n"
    with pytest.raises(NativeBenchError, match="net reads its weights from an SPI flash"):
        build_bench(flash, toplevel="net", image_size=64, logit_width=8, num_classes=10,
                    root=tmp_path)
    with pytest.raises(ValueError, match="threads must be a positive integer, not 0"):
        build_bench(flash, toplevel="net", image_size=64, logit_width=8, num_classes=10,
                    threads=0, root=tmp_path)


def test_bench_top_ties_reset(digits_design):
    """The bench top passes every port but ``rst`` through and ties ``rst`` low (every register
    starts at its reset value)."""
    ctx, geometry = digits_design
    text = bench_top(ctx.verilog, geometry["toplevel"])
    header = text.splitlines()[0]
    assert header.startswith(f"module {BENCH_TOP}(") and "rst" not in header
    assert "pixels__payload" in header and "result__payload" in header
    assert "  input [9:0] pixels__payload;" in text
    assert f"  {geometry['toplevel']} network (\n    .rst(1'b0)," in text
