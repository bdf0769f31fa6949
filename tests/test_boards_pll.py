"""The ECP5 and iCE40 PLLs: divider search (against hand-worked and published settings, and
IceStorm's ``icepll``), the clock they make, their messages, and board tops that instantiate
them with the clock constraint."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from boards.pll import PllError, ecp5_pll_params, ice40_pll_params


@pytest.mark.parametrize(("fout", "ref", "fb", "div"), [
    (50, 1, 2, 12),     # 25 / 1 * 2 = 50, VCO 600
    (62.5, 2, 5, 10),   # 25 / 2 * 5 = 62.5, VCO 625 (Trellis ecppll's setting)
    (100, 1, 4, 6),     # VCO 600
])
def test_known_settings(fout, ref, fb, div):
    p = ecp5_pll_params(25, fout)
    assert (p["CLKI_DIV"], p["CLKFB_DIV"], p["CLKOP_DIV"]) == (ref, fb, div)
    assert p["fout"] == fout
    assert p["CLKOP_CPHASE"] == (div - 1) // 2


@pytest.mark.parametrize("want", [33.3, 47.9, 61.0, 77.7, 123.4])
def test_never_above_the_request_and_within_limits(want):
    p = ecp5_pll_params(25, want)
    assert p["fout"] <= want
    assert want - p["fout"] < 0.05 * want  # close from below
    pfd = 25 / p["CLKI_DIV"]
    assert 3.125 <= pfd <= 400
    assert p["fout"] == pytest.approx(pfd * p["CLKFB_DIV"])
    assert 400 <= p["fout"] * p["CLKOP_DIV"] <= 800 and p["vco"] == pytest.approx(
        p["fout"] * p["CLKOP_DIV"])


def test_out_of_range():
    with pytest.raises(PllError, match="makes 3.125..400 MHz, not 1000"):
        ecp5_pll_params(25, 1000)
    with pytest.raises(PllError, match="not 1"):
        ecp5_pll_params(25, 1)


def _board_top_files(tmp_path, board_name: str, clock_mhz: float):
    """The digits network's BoardTop for ``board_name`` with a PLL at ``clock_mhz``, elaborated
    (no toolchain run): the top and its build files as text."""
    pytest.importorskip("amaranth_boards")
    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
    from amos_hw.flow import build_network
    from boards.catalog import get_board
    from boards.top import BoardTop

    board = get_board(board_name)
    top = BoardTop(build_network("digits"), baud=board.baud, name="digits", uart=board.uart,
                   led=board.led, led_field=board.led_field, clock_mhz=clock_mhz)
    plan = board.make_platform().build(top, name="top", build_dir=str(tmp_path),
                                       do_build=False)
    files = {k: v.decode() if isinstance(v, bytes) else v for k, v in dict(plan.files).items()}
    return top, files


def test_board_top_instantiates_the_pll(tmp_path):
    top, files = _board_top_files(tmp_path, "ulx3s-85f", 60)
    rtlil = files["top.il"]
    assert "EHXPLLL" in rtlil
    for name, value in (("CLKI_DIV", 5), ("CLKFB_DIV", 12), ("CLKOP_DIV", 10)):
        assert f"parameter \\{name} {value}" in rtlil
    assert top.core.clk_hz == 60_000_000  # the UART divisor follows the PLL clock
    # the design waits for the lock through the global set/reset, not a fabric reset that
    # would reach every flip-flop: the domain is reset-less
    assert "SGSR" in rtlil and "ResetSynchronizer" not in rtlil
    assert rtlil.count("cell \\FD1S3AX") == 2
    assert "\\rst" not in re.findall(r"module \\top\n(?:.*\n)*?end\n", rtlil)[0]
    lpf = files["top.lpf"]
    # the oscillator pin is constrained; nextpnr derives the PLL output's constraint from it
    assert "FREQUENCY PORT" in lpf and "25000000" in lpf
    assert "FREQUENCY NET" not in lpf


def _icepll():
    here = Path(sys.executable).parent / "yowasp-icepll"
    return str(here) if here.exists() else shutil.which("yowasp-icepll")


def _run_icepll(fin, fout) -> dict:
    out = subprocess.run([_icepll(), "-i", str(fin), "-o", str(fout)], capture_output=True,
                         text=True, timeout=300, check=True).stdout
    got = {k: int(v) for k, v in re.findall(r"^(DIVR|DIVF|DIVQ|FILTER_RANGE):\s*(\d+)", out,
                                            re.M)}
    got["fout"] = float(re.search(r"F_PLLOUT:\s*([\d.]+) MHz \(achieved\)", out).group(1))
    got["vco"] = float(re.search(r"F_VCO:\s*([\d.]+) MHz", out).group(1))
    return got


@pytest.mark.skipif(_icepll() is None, reason="yowasp-icepll (the fpga extra's yowasp-nextpnr-"
                    "ice40 package) is not installed: nothing to cross-check against")
@pytest.mark.parametrize(("fin", "fout"), [(12, 19.5), (12, 24), (12, 30), (12, 48), (12, 60),
                                            (12, 99), (25, 40), (25, 50), (100, 60)])
def test_ice40_matches_icepll(fin, fout):
    # targets where icepll's choice (the closest from either side) is not above the request;
    # 25 -> 40 it makes 39.844
    p = ice40_pll_params(fin, fout)
    ref = _run_icepll(fin, fout)
    assert {k: p[k] for k in ("DIVR", "DIVF", "DIVQ", "FILTER_RANGE")} == {
        k: ref[k] for k in ("DIVR", "DIVF", "DIVQ", "FILTER_RANGE")}
    assert p["fout"] == pytest.approx(ref["fout"], abs=5e-4) and p["fout"] <= fout
    assert p["vco"] == pytest.approx(ref["vco"], abs=5e-4)


@pytest.mark.parametrize(("fout", "divr", "divf", "divq", "made"), [
    (19.5, 0, 51, 5, 19.5),  # 12 * 52 / 32, VCO 624 (icepll -i 12 -o 19.5)
    (24, 0, 63, 5, 24.0),    # VCO 768
    (30, 0, 79, 5, 30.0),    # VCO 960
    (48, 0, 63, 4, 48.0),    # VCO 768
    (100, 0, 65, 3, 99.0),   # 12 * 66 / 8: icepll picks 100.5 (above); never above here
])
def test_ice40_known_settings(fout, divr, divf, divq, made):
    p = ice40_pll_params(12, fout)
    assert (p["DIVR"], p["DIVF"], p["DIVQ"], p["FILTER_RANGE"]) == (divr, divf, divq, 1)
    assert p["fout"] == made


@pytest.mark.parametrize("want", [17.3, 21.1, 33.3, 47.9, 77.7, 123.4, 250])
def test_ice40_never_above_the_request_and_within_limits(want):
    p = ice40_pll_params(12, want)
    assert p["fout"] <= want
    assert want - p["fout"] < 0.05 * want
    pfd = 12 / (p["DIVR"] + 1)
    assert 10 <= pfd <= 133
    assert p["vco"] == pytest.approx(pfd * (p["DIVF"] + 1)) and 533 <= p["vco"] <= 1066
    assert p["fout"] == pytest.approx(p["vco"] / 2 ** p["DIVQ"]) and 16 <= p["fout"] <= 275
    assert 1 <= p["DIVQ"] <= 6 and 0 <= p["DIVF"] <= 127 and 0 <= p["DIVR"] <= 15


@pytest.mark.parametrize(("fin", "fout", "filter_range"), [
    (12, 60, 1), (20, 60, 2), (30, 60, 3), (50, 50, 4), (80, 60, 5), (120, 60, 6),
    (100, 60, 2),  # DIVR 4: a 20 MHz phase detector
])
def test_ice40_filter_range_follows_the_phase_detector(fin, fout, filter_range):
    p = ice40_pll_params(fin, fout)
    assert p["fout"] == fout
    assert p["FILTER_RANGE"] == filter_range  # icepll's table: < 17, 26, 44, 66, 101 MHz


def test_ice40_out_of_range():
    with pytest.raises(PllError, match="makes 16..275 MHz, not 300"):
        ice40_pll_params(12, 300)
    with pytest.raises(PllError, match="makes 16..275 MHz, not 10"):
        ice40_pll_params(12, 10)
    with pytest.raises(PllError, match="takes 10..133 MHz in, not 8"):
        ice40_pll_params(8, 24)
    # 12 MHz in: 15.9375 is below the output range, 16.125 above the request
    with pytest.raises(PllError, match="no iCE40 PLL setting makes 16.1 MHz or just below"):
        ice40_pll_params(12, 16.1)


@pytest.mark.parametrize(("board_name", "primitive"), [("icebreaker", "SB_PLL40_PAD"),
                                                       ("hx8k", "SB_PLL40_CORE")])
def test_board_top_instantiates_the_ice40_pll(tmp_path, board_name, primitive):
    from boards.pll import Ice40Pll

    top, files = _board_top_files(tmp_path, board_name, 19.5)
    rtlil = files["top.il"]
    assert isinstance(top.pll, Ice40Pll) and top.pll.primitive == primitive
    assert primitive in rtlil
    for name, value in (("DIVR", 0), ("DIVF", 51), ("DIVQ", 5), ("FILTER_RANGE", 1)):
        assert f"parameter \\{name} {value}" in rtlil
    assert "parameter \\FEEDBACK_PATH \"SIMPLE\"" in rtlil
    assert top.core.clk_hz == 19_500_000  # the UART divisor follows the PLL clock
    pcf = files["top.pcf"]
    # the oscillator pin is constrained; nextpnr derives the PLL output's constraint from it
    assert re.search(r"set_frequency clk12_0__io 12\.0", pcf)
    assert pcf.count("set_frequency") == 1


def test_pll_range_checked_before_an_ice40_build():
    from boards.board import BoardError
    from boards.build import build

    with pytest.raises(BoardError, match="--clock-mhz 300: the iCE40 PLL makes 16..275 MHz"):
        build("icebreaker", "digits", clock_mhz=300)
