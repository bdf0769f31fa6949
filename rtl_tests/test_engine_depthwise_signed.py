"""Slow tier: the depthwise convolution of an MBConv block with trained units (issue 16), as
Verilog on Icarus and Verilator.

The engine alone (cocotb, ``rtl_tests/tb_engine.py``, one bank, one build per simulator): a 3x3
stride-1 padded depthwise conv on 8-bit two's-complement words with its ReLU unit, and a 3x3
stride-2 one with raw outputs requantised by a shift (what a trained unit after it reads), the
inputs including the most negative word and -1; values against python_ref, cycles and latency
exact. ``verilator --lint-only -Wall`` (the project's waivers) over the signed engines. Then
the network of ``rtl_tests/mbconv_network.py`` (conv -> ReLU -> 1x1 expansion -> swish ->
depthwise 3x3 -> swish -> 1x1 projection -> ReLU -> gap -> dense) with the depthwise conv at
stride 1 and 2, through :func:`rtl_tests.network.run_network` (cocotb on Icarus, the native
bench on Verilator): every logit and class equal to python_ref.snn, the measured interval
between results equal to the report's cycles per image; on Verilator also with idle input
cycles and backpressure.
"""
from __future__ import annotations

import numpy as np
import pytest

from amos_hw.backend.lint import lint_verilog
from amos_hw.backend.verilog import to_verilog
from amos_hw.engines.depthwise import DepthwiseConvEngine
from amos_hw.lib.bank import Bank
from python_ref import snn
from python_ref.quant import IntAmosUnit, requant_shift
from rtl_tests.engine_spec import VERILATOR_ARGS, engine_spec
from rtl_tests.harness import run_cocotb
from rtl_tests.mbconv_network import MBCONV_FOLDINGS, mbconv_network
from rtl_tests.native import run_images
from rtl_tests.network import run_network

DEPTHWISE = {
    # name: (H, W, C, k, stride, padding, lanes, in_bits, shift, out_bits)
    "dws1relu": (5, 6, 4, 3, 1, 1, 2, 8, 8, 4),
    "dws2raw": (6, 5, 4, 3, 2, 1, 4, 8, 6, None),
}


def signed_words(rng, shape, bits):
    """Random ``bits`` two's-complement values, the most negative one and -1 among them."""
    a = rng.integers(-(2 ** (bits - 1)), 2 ** (bits - 1), shape)
    flat = a.reshape(-1)
    flat[::5] = -(2 ** (bits - 1))
    flat[1::7] = -1
    return a


def depthwise_reference(dut, a):
    acc = snn.conv2d(a, dut.weights, dut.bias, dut.stride, dut.padding, groups=a.shape[3])
    if dut.out_bits is None:
        return requant_shift(acc, dut.shift)
    return snn.requant_unit([acc], [dut.shift], IntAmosUnit.relu(dut.out_bits))[0]


def signed_depthwise_bank():
    rng = np.random.default_rng(31)
    duts, specs = {}, []
    for name, (H, W, C, k, s, p, lanes, bits, shift, out_bits) in DEPTHWISE.items():
        dut = DepthwiseConvEngine(rng.integers(-127, 128, (C, k, k, 1)),
                                  rng.integers(-1000, 1001, C), height=H, width=W, stride=s,
                                  padding=p, in_bits=bits, shift=shift, out_bits=out_bits,
                                  lanes=lanes, in_signed=True)
        a = signed_words(rng, (3, H, W, C), bits)
        ref = depthwise_reference(dut, a)
        if out_bits is None:  # raw values of both signs
            assert ref.min() < 0 < ref.max()
        else:  # both ends of the ReLU unit
            assert (ref.min(), ref.max()) == (0, 2**out_bits - 1)
        duts[name] = dut
        specs.append(engine_spec(name, dut, [("i", lanes, bits, a, True)], ref, images=3,
                                 out_signed=out_bits is None))
    return Bank(duts), specs


def test_signed_depthwise_engines(sim):
    bank, specs = signed_depthwise_bank()
    run_cocotb(bank, toplevel="dw_signed_bank", test_module="rtl_tests.tb_engine", sim=sim,
               build_args=VERILATOR_ARGS if sim == "verilator" else (),
               params={"engines": specs, "seed": 13, "idle": 0.3, "backpressure": 0.3})


def lint_designs():
    rng = np.random.default_rng(2)
    return {
        "dwconv_signed": lambda: DepthwiseConvEngine(
            rng.integers(-127, 128, (4, 3, 3, 1)), rng.integers(-9, 9, 4), height=5, width=5,
            stride=1, padding=1, in_bits=6, shift=4, out_bits=3, lanes=2, in_signed=True),
        "dwconv_signed_raw": lambda: DepthwiseConvEngine(
            rng.integers(-127, 128, (2, 3, 3, 1)), np.zeros(2, int), height=6, width=5,
            stride=2, padding=1, in_bits=8, shift=7, out_bits=None, lanes=1, in_signed=True),
    }


@pytest.mark.parametrize("name", list(lint_designs()))
def test_signed_depthwise_lint_clean(name, tmp_path):
    path = tmp_path / f"{name}.v"
    path.write_text(to_verilog(lint_designs()[name](), name))
    clean, output = lint_verilog(path, name)
    assert clean, output


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    root = tmp_path_factory.mktemp("mbconv")
    for s in (1, 2):
        mbconv_network(root / f"s{s}", dw_stride=s)
    x = np.random.default_rng(4).integers(0, 256, (5, 8, 8, 3)).astype(np.uint8)
    return root, (x, np.zeros(len(x), np.int64))


@pytest.mark.parametrize(("stride", "k"), [(1, 0), (2, 1)], ids=["s1-lanes2", "s2-adapters"])
def test_mbconv_network(sim, nets, stride, k):
    root, images = nets
    res = run_network(str(root / f"s{stride}.json"), 5, sim, images=images,
                      parallelism=MBCONV_FOLDINGS[k])
    assert res["mismatches"] == 0
    assert res["cycles_per_image_measured"] == res["cycles_per_image_report"]


def test_mbconv_network_with_stalls(sim, nets):
    if sim != "verilator":
        pytest.skip("the native bench is Verilator's")
    root, (x, y) = nets
    res = run_images(str(root / "s1.json"), x, y, sim_seed=5, idle=0.3, stall=0.4,
                     parallelism=MBCONV_FOLDINGS[1])
    assert res["images"] == len(x)
    assert res["mismatches"] == 0, res["first_mismatches"]
