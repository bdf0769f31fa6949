"""The boards amos_hw builds for, by name: every board module's ``BOARDS`` in one table."""
from __future__ import annotations

from boards import hx8k, icebreaker, orangecrab, ulx3s
from boards.board import Board, BoardError

__all__ = ["BOARDS", "board_names", "get_board"]

BOARDS: dict[str, Board] = {b.name: b for m in (hx8k, icebreaker, orangecrab, ulx3s)
                            for b in m.BOARDS}


def board_names() -> list[str]:
    return sorted(BOARDS)


def get_board(name: str) -> Board:
    """The board called ``name``; an unknown name lists the known ones, and a device name
    (as ``python -m amos_hw.generate --board`` takes) the boards that carry it."""
    key = str(name).strip().lower()
    if key not in BOARDS:
        carrying = sorted(n for n, b in BOARDS.items() if b.generator_device == key)
        if carrying:
            raise BoardError(f"{name!r} is a device, not a board: name the board that carries "
                             f"it ({', '.join(carrying)})")
        raise BoardError(f"unknown board {name!r}; known boards: {', '.join(sorted(BOARDS))}")
    return BOARDS[key]
