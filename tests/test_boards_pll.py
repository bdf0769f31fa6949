"""The ECP5 PLL: divider search (against hand-worked and published settings), the clock it
makes, its messages, and a board top that instantiates it with the clock constraint."""
import os

import pytest

from boards.pll import PllError, ecp5_pll_params


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


def test_board_top_instantiates_the_pll(tmp_path):
    pytest.importorskip("amaranth_boards")
    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
    from amos_hw.top import build_network
    from boards.board import get_board
    from boards.top import BoardTop

    board = get_board("ulx3s-85f")
    top = BoardTop(build_network("digits"), baud=board.baud, name="digits", uart=board.uart,
                   led=board.led, led_field=board.led_field, clock_mhz=60)
    plan = board.make_platform().build(top, name="top", build_dir=str(tmp_path),
                                       do_build=False)
    files = dict(plan.files)
    rtlil = files["top.il"]
    rtlil = rtlil.decode() if isinstance(rtlil, bytes) else rtlil
    assert "EHXPLLL" in rtlil
    for name, value in (("CLKI_DIV", 5), ("CLKFB_DIV", 12), ("CLKOP_DIV", 10)):
        assert f"parameter \\{name} {value}" in rtlil
    assert top.core.clk_hz == 60_000_000  # the UART divisor follows the PLL clock
    lpf = files["top.lpf"]
    lpf = lpf.decode() if isinstance(lpf, bytes) else lpf
    # the oscillator pin is constrained; nextpnr derives the PLL output's constraint from it
    assert "FREQUENCY PORT" in lpf and "25000000" in lpf
    assert "FREQUENCY NET" not in lpf


def test_pll_refused_on_ice40():
    from boards.board import BoardError
    from boards.build import build

    with pytest.raises(BoardError, match="needs the ECP5 PLL; icebreaker is an ice40 board"):
        build("icebreaker", "digits", clock_mhz=30)
