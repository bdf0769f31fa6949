# amaranth: UnusedElaboratable=no
"""The input framer: every malformed pixel stream is repaired to whole n-byte images, checked
against the Python reference (frame_reference) beat for beat, with random stalls; and a network
stays aligned after a broken image.

The linter pragma above: the size check constructs a framer that raises in its constructor.
"""
import random

import numpy as np
import pytest

from amos_hw.lib.framer import PixelFramer, frame_reference
from amos_hw.lib.sim import run_simulation, stream_get_many, stream_put_many


def beats_of(images):
    """``images``: lists of byte values; a tuple ``(bytes, first, last)`` overrides the markers."""
    out = []
    for img in images:
        data, first, last = (img, True, True) if not isinstance(img, tuple) else img
        for k, v in enumerate(data):
            out.append({"data": v, "first": int(first and k == 0),
                        "last": int(last and k == len(data) - 1)})
    return out


def run_framer(n, beats, *, idle=0.0, backpressure=0.0, seed=0):
    dut = PixelFramer(n)
    expect, errors = frame_reference(beats, n)
    got = []
    seen = {}

    async def prod(ctx):
        await stream_put_many(ctx, dut.i, beats, rng=random.Random(seed), idle=idle)

    async def cons(ctx):
        got.extend(await stream_get_many(ctx, dut.o, len(expect), rng=random.Random(seed + 1),
                                         backpressure=backpressure))
        for _ in range(4):
            await ctx.tick()
        seen["errors"] = ctx.get(dut.frame_errors)

    run_simulation(dut, prod, cons, max_cycles=20 * len(beats) + 200)
    return [int(v) for v in got], seen["errors"], expect, errors


N = 5
CASES = {
    "well formed": [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]],
    "short by last": [[1, 2], [3, 4, 5, 6, 7]],
    "short by first": [([1, 2, 3], True, False), [4, 5, 6, 7, 8]],
    "long": [[1, 2, 3, 4, 5, 6, 7], [8, 9, 10, 11, 12]],
    "long then unmarked": [([1, 2, 3, 4, 5, 6], True, False), [7, 8, 9, 10, 11]],
    "no first": [([1, 2, 3, 4, 5], False, True), [6, 7, 8, 9, 10]],
    "one byte": [[9], [1, 2, 3, 4, 5]],
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("stalls", [(0.0, 0.0), (0.3, 0.4)])
def test_framer_cases(case, stalls):
    beats = beats_of(CASES[case])
    got, errors, expect, ref_errors = run_framer(N, beats, idle=stalls[0],
                                                 backpressure=stalls[1], seed=7)
    assert got == expect
    assert errors == ref_errors
    assert len(expect) % N == 0  # whole images only


def test_reference_by_hand():
    """The reference itself, on hand-worked cases (independent of the hardware)."""
    assert frame_reference(beats_of([[1, 2, 3, 4, 5]]), 5) == ([1, 2, 3, 4, 5], 0)
    assert frame_reference(beats_of([[1, 2]]), 5) == ([1, 2, 0, 0, 0], 1)
    assert frame_reference(beats_of([([1, 2], True, False), [3, 4, 5, 6, 7]]), 5) == (
        [1, 2, 0, 0, 0, 3, 4, 5, 6, 7], 1)
    assert frame_reference(beats_of([[1, 2, 3, 4, 5, 6, 7], [8, 9, 10, 11, 12]]), 5) == (
        [1, 2, 3, 4, 5, 8, 9, 10, 11, 12], 1)
    assert frame_reference(beats_of([([1, 2, 3, 4, 5], False, True)]), 5) == ([1, 2, 3, 4, 5], 1)


@pytest.mark.parametrize("seed", range(6))
def test_framer_random_streams(seed):
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(8):
        size = int(rng.choice([N, N, N, 1, 3, 7, 9]))
        data = rng.integers(0, 256, size).tolist()
        images.append((data, bool(rng.random() < 0.85), bool(rng.random() < 0.85)))
    beats = beats_of(images)
    got, errors, expect, ref_errors = run_framer(N, beats, idle=0.25, backpressure=0.25,
                                                 seed=seed)
    assert got == expect and errors == ref_errors


def test_framer_message():
    with pytest.raises(ValueError, match="image size must be a positive integer, not 0"):
        PixelFramer(0)
