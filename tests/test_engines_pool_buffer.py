# amaranth: UnusedElaboratable=no
"""Fast tier: :class:`amos_hw.engines.image_buffer.ImageBuffer` (the whole-image buffer in front
of a dense layer fed by a map) in the Amaranth simulator: order kept under random stalls both
ways, an image leaves only once complete, gapless replay, its messages."""
from __future__ import annotations

import re

import numpy as np
import pytest
from amaranth.hdl import unsigned
from amaranth.lib import data

from amos_hw.engines.image_buffer import ImageBuffer
from amos_hw.lib.engine_sim import output_cycles, run_engine, to_words


@pytest.mark.parametrize(("words", "lanes"), [(5, 2), (1, 1), (8, 3)])
def test_order_kept_under_stalls(words, lanes):
    dut = ImageBuffer(data.ArrayLayout(unsigned(6), lanes), words)
    values = np.random.default_rng(words).integers(0, 64, 4 * words * lanes)
    hw = run_engine(dut, to_words(values, lanes), 4 * words, in_lanes=lanes, out_lanes=lanes,
                    seed=words, idle=0.4, backpressure=0.4)
    assert hw.tolist() == values.tolist()


def test_an_image_leaves_once_complete_and_back_to_back():
    """Input every cycle, output always ready: image ``n``'s first word leaves ``latency``
    cycles after its last word entered, and its words leave on consecutive cycles."""
    words = 6
    dut = ImageBuffer(data.ArrayLayout(unsigned(4), 1), words)
    values = list(range(3 * words))
    ins, outs = output_cycles(dut, to_words(values, 1), 3 * words)
    for n in range(3):
        last_in = ins[(n + 1) * words - 1]
        firsts = outs[n * words:(n + 1) * words]
        assert firsts[0] - last_in == dut.latency == ImageBuffer.latency
        assert np.diff(firsts).tolist() == [1] * (words - 1)


def test_figures_and_messages():
    mem = ImageBuffer.memory_for(12, 64)
    assert (mem.depth, mem.width, mem.rom) == (128, 12, False)
    assert ImageBuffer.flip_flops_for(12, 64) > 0 and ImageBuffer.luts_for(12, 64) > 0
    with pytest.raises(ValueError, match="^" + re.escape("words must be a positive integer, "
                                                         "not 0") + "$"):
        ImageBuffer(unsigned(4), 0)
