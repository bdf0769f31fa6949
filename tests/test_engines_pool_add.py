# amaranth: UnusedElaboratable=no
"""Fast tier: global average pooling and residual add engines in the Amaranth simulator."""
from __future__ import annotations

import random
import re

import numpy as np
import pytest
from amaranth.hdl import Fragment

from amos_hw.engines.gap import GlobalAvgPoolEngine
from amos_hw.engines.residual import ResidualAddEngine
from amos_hw.lib.engine_sim import from_words, output_cycles, run_engine, to_words
from amos_hw.lib.sim import run_simulation, stream_get_many, stream_put_many
from python_ref import snn
from python_ref.quant import IntAmosUnit, requant_shift

# -- global average pooling ---------------------------------------------------------------------


@pytest.mark.parametrize(("H", "W", "C", "lanes"), [(3, 4, 4, 2), (2, 2, 3, 1), (4, 4, 2, 2)])
def test_gap_random_against_reference(H, W, C, lanes):
    rng = np.random.default_rng(H * W * C)
    dut = GlobalAvgPoolEngine(height=H, width=W, channels=C, in_bits=4, lanes=lanes)
    a = rng.integers(0, 16, (3, H, W, C))
    hw = run_engine(dut, to_words(a, lanes), 3 * C // lanes, in_lanes=lanes, out_lanes=lanes,
                    seed=H)
    assert hw.tolist() == snn.gap(a).ravel().tolist()


@pytest.mark.parametrize(("H", "W", "C", "lanes"), [(3, 4, 4, 2), (4, 4, 2, 2)])
def test_gap_cycles_and_latency_exact(H, W, C, lanes):
    rng = np.random.default_rng(1)
    dut = GlobalAvgPoolEngine(height=H, width=W, channels=C, in_bits=4, lanes=lanes)
    a = rng.integers(0, 16, (3, H, W, C))
    ins, outs = output_cycles(dut, to_words(a, lanes), 3 * C // lanes)
    firsts = outs[:: C // lanes]
    assert firsts[0] - ins[0] == dut.latency
    assert np.diff(firsts).tolist() == [dut.expected_cycles] * 2 == [H * W * C // lanes] * 2


def test_gap_worst_case_sum_width():
    dut = GlobalAvgPoolEngine(height=3, width=3, channels=2, in_bits=4, lanes=2)
    assert dut.sum_bits == (9 * 15).bit_length() == 8
    a = np.full((2, 3, 3, 2), 15)
    hw = run_engine(dut, to_words(a, 2), 2, in_lanes=2, out_lanes=2)
    assert hw.tolist() == snn.gap(a).ravel().tolist() == [135] * 4


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"height": 0}, "g: height must be a positive integer, not 0"),
        ({"width": "2"}, "g: width must be a positive integer, not '2'"),
        ({"channels": 0}, "g: channels must be a positive integer, not 0"),
        ({"lanes": 3}, "g: lanes must divide the 4 channels, not 3"),
        ({"in_bits": 25}, "g: in_bits must be a positive integer of at most 24, not 25"),
    ],
)
def test_gap_bad_parameters(kwargs, message):
    ok = {"height": 2, "width": 2, "channels": 4, "in_bits": 4, "lanes": 2}
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        GlobalAvgPoolEngine(**{**ok, **kwargs}, name="g")


def test_gap_estimates_and_model_check():
    dut = GlobalAvgPoolEngine(height=2, width=2, channels=4, in_bits=4, lanes=2)
    assert dut.memory_bits == 0 and dut.flip_flops > 0 and dut.luts > 0
    with pytest.raises(ValueError, match=r"^gap: images must have shape \(N, 2, 2, 4\)$"):
        dut.model(np.zeros((1, 2, 2, 3), np.int64))
    Fragment.get(dut, None)


# -- residual add -------------------------------------------------------------------------------

ADD_CONFIGS = {
    # lanes, words/image, main width, skip bits, skip shift, S, out_bits, skip signed[, main
    # shift: a per-layer K made the main convolution's scale the coarser one]
    "relu": (2, 6, 12, 4, 5, 6, 4, False),
    "projection_raw": (1, 5, 10, 9, 0, 0, None, True),
    "projection_main_shifted": (2, 5, 10, 12, 0, 5, 3, True, 4),
}


def make_add(cfg, depth=4):
    lanes, wpi, mw, sb, ssh, S, K, sgn, *msh = cfg
    return ResidualAddEngine(lanes=lanes, words_per_image=wpi, main_width=mw, skip_bits=sb,
                             skip_shift=ssh, shift=S, out_bits=K, skip_depth=depth,
                             skip_signed=sgn, main_shift=msh[0] if msh else 0)


def add_stimulus(cfg, images, rng):
    lanes, wpi, mw, sb, *_ , sgn = cfg[:8]
    n = images * wpi * lanes
    main = rng.integers(-(2 ** (mw - 1)), 2 ** (mw - 1), n)
    if sgn:
        skip = rng.integers(-(2 ** (sb - 1)), 2 ** (sb - 1), n)
    else:
        skip = rng.integers(0, 2**sb, n)
    return main, skip


def add_reference(dut, main, skip):
    acc = snn.add([main, skip], [dut.main_shift, dut.skip_shift])
    if dut.out_bits is None:
        return requant_shift(acc, dut.shift)
    return snn.requant_unit([acc], [dut.shift], IntAmosUnit.relu(dut.out_bits))[0]


@pytest.mark.parametrize("name", ADD_CONFIGS)
def test_add_random_against_reference(name):
    cfg = ADD_CONFIGS[name]
    rng = np.random.default_rng(len(name))
    dut = make_add(cfg)
    main, skip = add_stimulus(cfg, 3, rng)
    r = random.Random(4)
    got = []

    async def put_main(ctx):
        await stream_put_many(ctx, dut.i, to_words(main, dut.lanes), rng=r, idle=0.4)

    async def put_skip(ctx):
        await stream_put_many(ctx, dut.skip, to_words(skip, dut.lanes), rng=r, idle=0.2)

    async def get(ctx):
        got.extend(await stream_get_many(ctx, dut.o, len(main) // dut.lanes, rng=r,
                                         backpressure=0.3))

    run_simulation(dut, put_main, put_skip, get)
    assert from_words(got, dut.lanes).tolist() == add_reference(dut, main, skip).tolist()


def add_one_lane(dut, main, skip) -> list:
    """The sums of a one-lane add engine for ``main`` and ``skip``, no idle cycles."""
    got = []

    async def put_main(ctx):
        await stream_put_many(ctx, dut.i, to_words(main, 1))

    async def put_skip(ctx):
        await stream_put_many(ctx, dut.skip, to_words(skip, 1))

    async def get(ctx):
        got.extend(await stream_get_many(ctx, dut.o, len(main)))

    run_simulation(dut, put_main, put_skip, get)
    return from_words(got, 1).tolist()


def test_add_worst_case_sum():
    cfg = (1, 4, 10, 4, 6, 0, None, False)
    dut = make_add(cfg)
    main = np.array([511, -512, 511, 0])
    skip = np.array([15, 0, 0, 15])
    assert dut.sum_width == 12  # 511 + 15*64 = 1471 needs 12 signed bits
    got = add_one_lane(dut, main, skip)
    assert got == add_reference(dut, main, skip).tolist()
    assert got == [1471, -512, 511, 960]


def test_add_worst_case_sum_with_main_shift():
    """The main term shifted left: the sum's width covers ``main << main_shift`` at both ends,
    and the engine's sums equal ``python_ref.snn.add`` with the same shifts."""
    dut = ResidualAddEngine(lanes=1, words_per_image=4, main_width=6, skip_bits=9, skip_shift=0,
                            shift=0, out_bits=None, skip_depth=4, skip_signed=True,
                            main_shift=5)
    main = np.array([31, -32, 31, 0])
    skip = np.array([255, -256, -256, 255])
    assert dut.sum_width == 12  # 31*32 + 255 = 1247, -32*32 - 256 = -1280: 12 signed bits
    got = add_one_lane(dut, main, skip)
    assert got == add_reference(dut, main, skip).tolist()
    assert got == [1247, -1280, 736, 255]


@pytest.mark.parametrize("name", ADD_CONFIGS)
def test_add_cycles_and_latency_exact(name):
    cfg = ADD_CONFIGS[name]
    dut = make_add(cfg)
    main, skip = add_stimulus(cfg, 3, np.random.default_rng(0))
    main_w, skip_w = to_words(main, dut.lanes), to_words(skip, dut.lanes)
    ins, outs = [], []

    async def skip_tb(ctx):
        await stream_put_many(ctx, dut.skip, skip_w)

    async def tb(ctx):
        ctx.set(dut.o.ready, 1)
        n = cycle = 0
        while len(outs) < len(main_w):
            ctx.set(dut.i.valid, n < len(main_w))
            if n < len(main_w):
                ctx.set(dut.i.payload, main_w[n])
            _, _, iv, ir, ov = await ctx.tick().sample(dut.i.valid, dut.i.ready, dut.o.valid)
            if iv and ir:
                ins.append(cycle)
                n += 1
            if ov:
                outs.append(cycle)
            cycle += 1

    run_simulation(dut, tb, skip_tb)
    wpi = cfg[1]
    firsts = outs[::wpi]
    assert outs[0] - ins[0] == dut.latency
    assert np.diff(firsts).tolist() == [dut.expected_cycles] * 2 == [wpi] * 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lanes": 0}, "r: lanes must be a positive integer, not 0"),
        ({"words_per_image": 0}, "r: words_per_image must be a positive integer, not 0"),
        ({"main_width": 65}, "r: main_width must be a positive integer of at most 64, not 65"),
        ({"skip_bits": 0}, "r: skip_bits must be a positive integer of at most 64, not 0"),
        ({"skip_shift": 31}, "r: skip_shift must be a non-negative integer of at most 30, not 31"),
        ({"shift": -1}, "r: shift must be a non-negative integer of at most 62, not -1"),
        ({"out_bits": 17}, "r: out_bits must be a positive integer of at most 16, not 17"),
        ({"skip_depth": 0}, "r: skip_depth must be a positive integer, not 0"),
        ({"skip_signed": 1}, "r: skip_signed must be a bool, not 1"),
    ],
)
def test_add_bad_parameters(kwargs, message):
    ok = {"lanes": 2, "words_per_image": 4, "main_width": 12, "skip_bits": 4, "skip_shift": 2,
          "shift": 3, "out_bits": 4, "skip_depth": 8}
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        ResidualAddEngine(**{**ok, **kwargs}, name="r")


def test_add_estimates():
    dut = make_add(ADD_CONFIGS["relu"], depth=16)
    assert dut.memory_bits == 16 * 2 * 4
    assert dut.flip_flops > 0 and dut.luts > 0
    Fragment.get(dut, None)
