"""The skip FIFOs' sizes (amos_hw.buffers.skip_depth) on the zoo's effnet_cifar (random
weights): the rows each main path may hold, written out block by block from the architecture
table of python_ref.models.EffNetCifar, against what the generator assigns."""
from __future__ import annotations

import pytest

from amos_hw.buffers import (
    SLACK_ROWS,
    SLACK_WORDS,
    WINDOW_FIFO_ROWS,
    assign_skip_fifos,
    assign_window_fifos,
)
from amos_hw.plan import lower
from python_ref import convert as cv


@pytest.fixture(scope="module")
def effnet_plan():
    x = cv.calibration_images("effnet_cifar", n=8)
    g = cv.convert("effnet_cifar", sd=cv.random_state_dict("effnet_cifar"), calib_images=x,
                   progress=False)
    return lower(g)


def test_skip_fifos_hold_the_main_paths_rows(effnet_plan):
    """Per identity skip (lanes 1, so a row is ``width * channels`` words): a pointwise conv
    holds its FIFO's two rows, a 3x3 stride-1 depthwise conv four (``kernel + stride``), two
    rows of slack; a block with squeeze-and-excitation holds at least its whole 8-row image,
    the gate emitting nothing before its map is in."""
    windows = assign_window_fifos(effnet_plan)
    assert set(windows.values()) == {WINDOW_FIFO_ROWS} == {2}
    assert len(windows) == 1 + 6 + 7  # the head, six expansions, seven projections
    got = assign_skip_fifos(effnet_plan)
    # block: (side, channels, rows); blocks 0 and 2 have no squeeze-and-excitation
    want = {"block0.add": (32, 16, 4 + 2),  # no expansion: depthwise, projection
            "block2.add": (16, 24, 2 + 4 + 2),  # expansion, depthwise, projection
            "block4.add": (8, 40, max(2 + 4 + 2, 8)),  # and the gate: the whole image
            "block6.add": (8, 64, max(2 + 4 + 2, 8))}
    assert sorted(got) == sorted(want)
    for name, (side, channels, rows) in want.items():
        rows += SLACK_ROWS
        assert got[name]["skip_rows"] == rows, name
        assert got[name]["skip_depth_words"] == rows * side * channels + SLACK_WORDS, name
        assert effnet_plan.layer(name).skip_depth == got[name]["skip_depth_words"]
