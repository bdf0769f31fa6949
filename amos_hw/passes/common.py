"""What the steps share: the flow's configuration and context, and its error type."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from amos_hw.errors import BudgetError, FlowError

__all__ = ["FlowConfig", "FlowContext", "FlowError", "BudgetError", "canonical_json"]


@dataclass
class FlowConfig:
    """Everything a generator run depends on (the manifest records all of it).

    Parameters
    ----------
    model : str or path
        Zoo name or description path.
    out : path or None
        Output folder (default ``build/<model>``); ``None`` with ``write=False`` writes nothing.
    parallelism : dict, str or None
        Per-layer folding: a dict, a JSON file path or JSON text.
    target_fps : float or None
        Throughput goal; chooses the folding.
    board : str or None
        Device whose LUT / memory budget the design must fit (``ecp5-25f``, ``ecp5-45f``,
        ``ecp5-85f``, ``ice40-up5k``).
    clock_mhz : float or None
        Target clock; default from the board, else 50 MHz.
    architecture : str or None
        ``"pipelined"`` (one engine per layer), ``"shared"`` (one engine runs every layer in
        turn, :mod:`amos_hw.shared`) or ``None``: pipelined, or shared when ``board`` is the
        iCE40 UP5K and the pipelined design does not fit it.
    carry : str or None
        How the matrix-vector units add spike-gated weights: ``"generic"`` (plain adders,
        portable Verilog), ``"ecp5"`` (the first adder level on ``CCU2C`` carry cells with the
        spike gates folded in, :mod:`amos_hw.engines.carry`) or ``None``: ``"ecp5"`` when
        ``board`` is an ECP5, else ``"generic"``.
    weights : str or None
        Shared engine only: ``"memory"`` (the default: weights and maps in its main memory) or
        ``"flash"`` (the weights read from an SPI flash once per image,
        :mod:`amos_hw.lib.spiflash`; the memory holds the maps alone).
    spike_counts : bool
        Layer-pipelined only: count each image's spikes in hardware and return them with its
        result (:class:`amos_hw.lib.spike_tally.SpikeTally`); off by default.
    stop_after : str or None
        Last step to run.
    quiet : bool
        No progress bar.
    write : bool
        Write the step intermediates and outputs into ``out``.
    """

    model: object
    out: object = None
    parallelism: object = None
    target_fps: float | None = None
    board: str | None = None
    clock_mhz: float | None = None
    architecture: str | None = None
    carry: str | None = None
    weights: str | None = None
    lut_fill: float | None = None  # shared engine: share of the LUT4s it may plan for (0.8)
    spike_counts: bool = False
    # block RAMs of the device taken by what surrounds the network (a board top's host link
    # buffer, boards.build): the layer-pipelined fit leaves them free
    reserve_bram_blocks: int = 0
    why: str | None = None  # set by run_flow when it chose the architecture (not a parameter)
    stop_after: str | None = None
    quiet: bool = False
    write: bool = False

    def as_dict(self) -> dict:
        par = self.parallelism
        if par is not None and not isinstance(par, dict):
            par = str(par)
        d = {"model": str(self.model), "parallelism": par, "target_fps": self.target_fps,
             "board": self.board, "clock_mhz": self.clock_mhz,
             "architecture": self.architecture, "carry": self.carry}
        if self.weights is not None:
            d["weights"] = self.weights
        if self.spike_counts:
            d["spike_counts"] = True
        return d


@dataclass
class FlowContext:
    """State the steps build up, in order."""

    config: FlowConfig
    model_name: str = ""
    model_path: Path | None = None
    model_hash: str = ""
    graph: object = None
    info: dict = field(default_factory=dict)
    plan: object = None  # NetworkPlan (pipelined) or the shared program's summary (dict)
    program: object = None
    report: dict = field(default_factory=dict)
    top: object = None
    verilog: str = ""
    files: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    out_dir: Path | None = None


def canonical_json(obj) -> str:
    """JSON with sorted keys and a trailing newline: the same object gives the same bytes."""
    return json.dumps(obj, indent=1, sort_keys=True, default=_default) + "\n"


def _default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, (tuple, set)):
        return list(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")
