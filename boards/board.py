"""What a board is to amos_hw: its amaranth-boards platform, device resources, UART, LED and
programmer. Each board module (``boards.icebreaker``, ...) lists its boards in ``BOARDS``;
:mod:`boards.catalog` finds them by name."""
from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Board", "BoardError", "Tool"]


class BoardError(ValueError):
    """Bad board input: unknown board, a model that does not fit, a missing programmer."""


@dataclass(frozen=True)
class Tool:
    """An external program a board needs, the variable that names it (as amaranth-boards reads
    it) and the package that provides it."""

    command: str
    env: str
    package: str

    def resolve(self) -> str | None:
        """The command to run (``$ENV`` if set, else ``command`` on ``PATH``), or None."""
        name = os.environ.get(self.env, self.command)
        return shutil.which(name)

    def missing_message(self, what: str) -> str:
        return (f"{self.command} not found (needed to {what}): install the Debian/Ubuntu package "
                f"'{self.package}' (sudo apt-get install --no-install-recommends {self.package}) "
                f"or set {self.env} to its path")


@dataclass(frozen=True)
class Board:
    """One supported board.

    Members
    -------
    name : str
        The name used on the command line (``ulx3s-85f``).
    title : str
        Human name.
    platform : callable
        The amaranth-boards platform class.
    family : str
        ``"ice40"`` or ``"ecp5"``.
    device : str
        The FPGA.
    generator_device : str or None
        The name :mod:`amos_hw.passes.estimate` knows the device by (its budget check and the
        folding it chooses for it); None where it has no entry (then the budget is checked here).
    resources : dict
        ``lut4``, ``ff``, ``bram_blocks``, ``bram_block_bits``, ``spram_blocks``,
        ``spram_block_bits``, ``dsp`` of the device.
    baud : int
        UART bit rate of the board top.
    programmer : Tool
        What ``make flash`` runs.
    build_tools : tuple of Tool
        Non-YoWASP programs the platform's build runs (OrangeCrab: ``dfu-suffix``).
    uart, led : tuple
        ``(resource, number)`` of the UART and the activity LED.
    led_field : str or None
        Subsignal of an RGB LED to use.
    add_resources : callable or None
        Adds resources the platform lacks (a UART on header pins) to a platform instance.
    notes : str
        What the user must know (wiring of an external UART adapter, ...).
    fold : dict or None
        Default folding passed to the generator; None lets the generator choose for
        ``generator_device``. ``{}`` folds every layer completely (one PE, one SIMD lane).
    weight_flash : tuple or None
        ``(resource name, number)`` of the configuration flash's data pins: a model whose
        weights fit no on-chip memory runs on the shared engine with its weights read from
        there (:mod:`amos_hw.lib.spiflash`). None: no such fallback.
    weight_flash_offset : int
        Byte address of the weights in that flash (past the bitstream).
    weight_flash_cmd : tuple
        The programmer's arguments that write ``weights.bin`` there (``{file}`` is replaced).
    """

    name: str
    title: str
    platform: Callable
    family: str
    device: str
    generator_device: str | None
    resources: dict
    baud: int
    programmer: Tool
    build_tools: tuple = ()
    uart: tuple = ("uart", 0)
    led: tuple = ("led", 0)
    led_field: str | None = None
    add_resources: Callable | None = None
    notes: str = ""
    flash_args: tuple = field(default=())
    fold: object = None
    weight_flash: tuple | None = None
    weight_flash_offset: int = 0
    weight_flash_cmd: tuple = ()

    @property
    def bram_bits(self) -> int:
        return self.resources["bram_blocks"] * self.resources["bram_block_bits"]

    @property
    def spram_bits(self) -> int:
        return self.resources.get("spram_blocks", 0) * self.resources.get("spram_block_bits", 0)

    def make_platform(self):
        plat = self.platform()
        if self.add_resources is not None:
            self.add_resources(plat)
        return plat
