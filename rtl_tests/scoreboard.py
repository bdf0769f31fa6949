"""A scoreboard for cocotb tests: compare every observed value with its reference, report all.

Hardware against reference is exact equality (``==``). Mismatches are collected (the first ones
are logged) and :meth:`Scoreboard.finish` fails the test with a summary, so one run shows every
wrong output rather than the first.
"""
from __future__ import annotations

import cocotb

__all__ = ["Scoreboard"]


class Scoreboard:
    """Collects comparisons of observed values with reference values.

    Parameters
    ----------
    name : str
        What is being checked (for messages).
    show : int
        Mismatches logged in full.
    """

    def __init__(self, name: str, show: int = 10):
        self.name = name
        self.show = show
        self.checked = 0
        self.mismatches: list[str] = []

    def compare(self, what: str, got, expected) -> None:
        """Record one comparison ``got == expected``."""
        self.checked += 1
        if got != expected:
            line = f"{what}: got {got!r}, expected {expected!r}"
            if len(self.mismatches) < self.show:
                cocotb.log.error("%s: %s", self.name, line)
            self.mismatches.append(line)

    def finish(self) -> None:
        """Fail (``AssertionError``) if anything mismatched or nothing was checked."""
        assert self.checked, f"{self.name}: nothing was checked"
        assert not self.mismatches, (
            f"{self.name}: {len(self.mismatches)} of {self.checked} comparisons failed; first: "
            + "; ".join(self.mismatches[:3])
        )
        cocotb.log.info("%s: %d comparisons, all equal", self.name, self.checked)
