"""The FPGAs the generator sizes designs for: resource budgets and default clocks.

Boards (``python -m boards list``) carry one of these devices; ``--board`` of the generator
takes a device name (``ecp5-85f``), a short alias (``85f``, ``up5k``) or a board name that
:mod:`boards` knows (``ulx3s-85f``, ``icebreaker``), which :data:`BOARD_DEVICES` maps to its
device (the generator does not import the board package; a test keeps the two tables equal).
"""
from __future__ import annotations

from amos_hw.errors import FlowError

__all__ = ["DEVICES", "BOARD_DEVICES", "LUT_FILL", "DEFAULT_CLOCK_MHZ", "device", "device_name",
           "board_budget", "clock_mhz", "family"]

#: Resource budgets: LUT4s, flip-flops, block RAM bits (EBR), DSP blocks, default clock (MHz).
DEVICES = {
    "ecp5-25f": {"family": "ecp5", "lut4": 24288, "ff": 24288, "bram_blocks": 56,
                 "bram_bits": 56 * 18432, "dsp": 28, "clock_mhz": 50.0},
    "ecp5-45f": {"family": "ecp5", "lut4": 43848, "ff": 43848, "bram_blocks": 108,
                 "bram_bits": 108 * 18432, "dsp": 72, "clock_mhz": 50.0},
    "ecp5-85f": {"family": "ecp5", "lut4": 83640, "ff": 83640, "bram_blocks": 208,
                 "bram_bits": 208 * 18432, "dsp": 156, "clock_mhz": 50.0},
    "ice40-up5k": {"family": "ice40", "lut4": 5280, "ff": 5280, "bram_blocks": 30,
                   "bram_bits": 30 * 4096, "dsp": 8, "clock_mhz": 24.0},
}
_ALIASES = {"up5k": "ice40-up5k", "ice40up5k": "ice40-up5k", "ecp5-25": "ecp5-25f",
            "ecp5-45": "ecp5-45f", "ecp5-85": "ecp5-85f", "25f": "ecp5-25f", "45f": "ecp5-45f",
            "85f": "ecp5-85f"}
#: The boards of :mod:`boards` and their devices (``tests/test_devices.py`` checks this against
#: the board package).
BOARD_DEVICES = {"icebreaker": "ice40-up5k", "ulx3s-25f": "ecp5-25f", "ulx3s-45f": "ecp5-45f",
                 "ulx3s-85f": "ecp5-85f", "orangecrab-25f": "ecp5-25f",
                 "orangecrab-85f": "ecp5-85f"}
#: Share of a device's LUTs a design may plan for (routing needs the rest).
LUT_FILL = 0.8
DEFAULT_CLOCK_MHZ = 50.0


def device_name(name: str) -> str:
    """The canonical device name of a device name, alias or board name."""
    key = str(name).strip().lower()
    key = _ALIASES.get(key, BOARD_DEVICES.get(key, key))
    if key not in DEVICES:
        raise FlowError(f"unknown board {name!r}; known: {', '.join(DEVICES)} (devices), "
                        f"{', '.join(BOARD_DEVICES)} (boards)")
    return key


def device(name: str) -> dict:
    """The budgets of a device (by device, alias or board name), with its canonical ``name``."""
    key = device_name(name)
    return {"name": key, **DEVICES[key]}


def board_budget(cfg) -> dict:
    """The budgets the network of a run may use on its board (``cfg.board``): the device's,
    less the block RAMs ``cfg.reserve_bram_blocks`` keeps for what surrounds the network."""
    dev = device(cfg.board)
    reserve = int(getattr(cfg, "reserve_bram_blocks", 0) or 0)
    if reserve < 0 or reserve >= dev["bram_blocks"]:
        raise FlowError(f"reserve_bram_blocks must lie in 0..{dev['bram_blocks'] - 1} for the "
                        f"{dev['name']}, not {reserve}")
    return {**dev, "bram_blocks": dev["bram_blocks"] - reserve}


def family(board: str | None) -> str | None:
    """The FPGA family of ``board`` (``None`` for no board)."""
    return None if board is None else device(board)["family"]


def clock_mhz(cfg) -> float:
    """The target clock of a run: ``cfg.clock_mhz``, else the board's default, else 50 MHz."""
    if cfg.clock_mhz is not None:
        c = cfg.clock_mhz
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not c > 0:
            raise FlowError(f"--clock-mhz must be a positive number, not {c!r}")
        return float(c)
    if cfg.board is not None:
        return device(cfg.board)["clock_mhz"]
    return DEFAULT_CLOCK_MHZ
