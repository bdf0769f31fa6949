"""The generator's device table against the board package (the generator does not import it)."""
from __future__ import annotations

import pytest

from amos_hw.devices import BOARD_DEVICES, DEVICES, device, device_name
from amos_hw.passes.common import FlowError
from boards.board import BoardError
from boards.catalog import board_names, get_board


def test_board_devices_match_the_boards():
    want = {n: get_board(n).generator_device for n in board_names()
            if get_board(n).generator_device is not None}
    assert BOARD_DEVICES == want
    assert set(BOARD_DEVICES.values()) <= set(DEVICES)


@pytest.mark.parametrize(("name", "want"), [("ecp5-85f", "ecp5-85f"), ("85F", "ecp5-85f"),
                                            ("ulx3s-85f", "ecp5-85f"), ("icebreaker", "ice40-up5k"),
                                            (" up5k ", "ice40-up5k")])
def test_names(name, want):
    assert device_name(name) == want
    assert device(name)["name"] == want


def test_unknown_names_both_tables():
    with pytest.raises(FlowError, match=r"unknown board 'hx8k'; known: ecp5-25f.*\(devices\), "
                                        r"icebreaker.*\(boards\)"):
        device("hx8k")


def test_board_cli_names_the_boards_of_a_device():
    with pytest.raises(BoardError, match=r"'ecp5-85f' is a device, not a board: name the board "
                                         r"that carries it \(orangecrab-85f, ulx3s-85f\)"):
        get_board("ecp5-85f")
