"""Committed board baselines against fresh builds.

The slow test rebuilds the smallest committed design (digits on the iCEBreaker, about a minute
with YoWASP) when the YoWASP tools are installed (``pip install -e '.[fpga]'``) and compares it
with ``docs/results/boards/icebreaker_digits.json``. Tolerance: Fmax, LUT4 and FF within 5 % (with
a fixed seed and the pinned tools the build is bit-identical; the margin admits small changes in
the generated network), block RAMs and cycles per image exact. The cheap sibling runs by default:
it rebuilds the network for the board without synthesis and checks the exact figures.
"""
import json

import pytest
from amaranth.hdl import Fragment

from boards.board import BoardError
from boards.build import REPO, build, fit_check, toolchain_env
from boards.catalog import get_board

BASELINE = REPO / "docs" / "results" / "boards" / "icebreaker_digits.json"
TOLERANCE = 0.05


def _baseline() -> dict:
    if not BASELINE.exists():
        pytest.skip(f"no committed baseline at {BASELINE}")
    return json.loads(BASELINE.read_text())


def _tools_or_skip():
    try:
        toolchain_env(get_board("icebreaker"))
    except BoardError as e:
        pytest.skip(f"YoWASP tools absent, no bitstream build: {e}")


def test_baseline_network_figures():
    base = _baseline()
    board = get_board("icebreaker")
    net, est = fit_check(board, "digits", dict(board.fold))
    Fragment.get(net, None)  # a built network must be used
    assert net.cycles_per_image == base["cycles_per_image"]
    assert base["images_per_s"] == pytest.approx(base["fmax_mhz"] * 1e6 / base["cycles_per_image"],
                                                 rel=1e-3)


@pytest.mark.slow
def test_rebuild_matches_baseline(tmp_path):
    _tools_or_skip()
    base = _baseline()
    rep = build("icebreaker", "digits", progress=False, out=tmp_path / "icebreaker_digits")
    assert rep["device"] == base["device"]
    assert rep["cycles_per_image"] == base["cycles_per_image"]
    assert rep["bram"]["blocks"] == base["bram"]["blocks"]
    assert rep["dsp"] == base["dsp"]
    for key in ("fmax_mhz", "lut4", "ff"):
        assert rep[key] == pytest.approx(base[key], rel=TOLERANCE), key


def test_icebreaker_resnet8_shared_baseline_figures():
    """The committed ResNet8 build on the iCEBreaker (shared engine, PLL 19.5 MHz): the network
    the board build makes today has the committed cycle count, its memory fits the SPRAM, and
    the committed images/s follow from the clocks and that count."""
    p = REPO / "docs" / "results" / "boards" / "icebreaker_resnet8_pll19p5mhz.json"
    if not p.exists():
        pytest.skip(f"no committed baseline at {p}")
    base = json.loads(p.read_text())
    board = get_board("icebreaker")
    net, est = fit_check(board, "resnet8", dict(board.fold), lut_fill=1.0, shared_fallback=True)
    Fragment.get(net, None)  # a built network must be used
    assert est["architecture"] == "shared" and net.dsp_lanes
    assert net.program.depth <= 16384
    assert net.cycles_per_image == base["cycles_per_image"]
    assert (base["dsp"], base["spram"]["blocks"]) == (8, 4)
    assert base["meets_board_clock"] and base["fmax_mhz"] >= base["board_clock_mhz"]
    assert base["images_per_s_board_clock"] == pytest.approx(
        base["board_clock_mhz"] * 1e6 / base["cycles_per_image"], abs=0.05)
