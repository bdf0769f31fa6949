"""The generator as an ordered list of named steps over the description and its hardware plan.

=============== ===========================================================================
step            what it does (module in :mod:`amos_hw.passes`)
=============== ===========================================================================
``load``        find the description (zoo name or path), read and validate it (``load``)
``infer``       shapes, exact widths, the hardware layer list; refuse what has no engine
                (``infer``)
``parallelism`` fold every layer: explicit, for a frame rate, or to fit a board
                (``parallelism``)
``memory``      size the residual skip FIFOs, list the memories (``memory``)
``estimate``    cycles, latency, LUT4 / FF / BRAM / DSP per layer and in total (``estimate``)
``assemble``    build the :class:`~amos_hw.top.NetworkTop` (``assemble``)
``verilog``     emit the Verilog, ``report.json`` and ``manifest.json`` (``emit``)
=============== ===========================================================================

Every step returns a summary that :func:`run_flow` saves as ``steps/<n>_<step>.json`` in the
output folder (with ``write``), and ``stop_after`` ends the run after any step. The same inputs
give byte-identical files.
"""
from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

from tqdm import tqdm

from amos_hw.devices import device
from amos_hw.passes import shared
from amos_hw.passes.assemble import assemble
from amos_hw.passes.common import BudgetError, FlowConfig, FlowContext, FlowError, canonical_json
from amos_hw.passes.emit import verilog
from amos_hw.passes.estimate import estimate
from amos_hw.passes.infer import infer
from amos_hw.passes.load import load
from amos_hw.passes.memory import memory
from amos_hw.passes.parallelism import parallelism

__all__ = ["STEPS", "STEP_NAMES", "FlowConfig", "FlowContext", "FlowError", "BudgetError",
           "run_flow", "default_out", "build_network", "assemble_top"]

STEPS = (
    ("load", load),
    ("infer", infer),
    ("parallelism", parallelism),
    ("memory", memory),
    ("estimate", estimate),
    ("assemble", assemble),
    ("verilog", verilog),
)
STEP_NAMES = tuple(n for n, _ in STEPS)

_REPO = Path(__file__).resolve().parent.parent


def default_out(model_name: str) -> Path:
    """``build/<model>`` in the repository of a source checkout, else in the working folder
    (an installed package must not write into site-packages). ``<model>`` is the
    description's file name (``resnet8_kmix``), not the network's name inside it (the zoo's
    ResNet8 variants are all ``resnet8``: one would overwrite another's folder)."""
    base = _REPO if (_REPO / "pyproject.toml").is_file() else Path.cwd()
    return base / "build" / model_name


def _check_out(out) -> None:
    """A user's ``--out`` must be a folder or not exist yet."""
    p = Path(out)
    for q in (p, *p.parents):
        if q.exists():
            if not q.is_dir():
                raise FlowError(f"--out {str(out)!r}: {str(q)!r} is a file, not a folder")
            break


ARCHITECTURES = ("pipelined", "shared")
#: Where the shared engine's weights live (``FlowConfig.weights``).
WEIGHT_SOURCES = ("memory", "flash")


def run_flow(cfg: FlowConfig) -> FlowContext:
    """Run the steps in order (up to ``cfg.stop_after``); write files when ``cfg.write``.

    With ``cfg.architecture=None`` and ``cfg.board="ice40-up5k"``, a design whose pipelined
    form does not fit is generated on the shared engine instead (the report says which); with
    an ECP5 board, on the shared engine with its weights read from an SPI flash
    (``weights="flash"``: the 25F's block RAM cannot hold ResNet8's weights and maps).

    Raises
    ------
    FlowError
        Bad input (unknown model, unbuildable layer, impossible budget), naming what is wrong.
    """
    _check_options(cfg)
    if cfg.board is not None:
        cfg = dataclasses.replace(cfg, board=device(cfg.board)["name"])
    fallback = _fallback(cfg)
    if fallback is not None:
        try:
            return _run_flow(dataclasses.replace(cfg, architecture="pipelined"))
        except BudgetError as e:
            why = f"the layer-pipelined design does not fit: {e}"
            try:
                return _run_flow(dataclasses.replace(cfg, why=why, **fallback))
            except FlowError as shared_error:  # both refuse: say why each does
                if isinstance(shared_error, BudgetError):
                    raise
                raise FlowError(f"{why}; and the shared engine cannot build it: "
                                f"{shared_error}") from None
    return _run_flow(cfg)


def _check_options(cfg: FlowConfig) -> None:
    if cfg.architecture is not None and cfg.architecture not in ARCHITECTURES:
        raise FlowError(f"--architecture: unknown {cfg.architecture!r}; known: "
                        f"{', '.join(ARCHITECTURES)}")
    if cfg.weights is not None and cfg.weights not in WEIGHT_SOURCES:
        raise FlowError(f"--weights: unknown {cfg.weights!r}; known: "
                        f"{', '.join(WEIGHT_SOURCES)}")
    if cfg.spike_counts and cfg.architecture == "shared":
        raise FlowError("--spike-counts: the shared engine has no spike counters; they are "
                        "built into the layer-pipelined top (--architecture pipelined)")
    if cfg.weights == "flash" and cfg.architecture != "shared":
        raise FlowError("--weights flash streams the weights into the shared engine: add "
                        "--architecture shared (the layer-pipelined engines keep their weights "
                        "in block RAM)")


def _fallback(cfg: FlowConfig) -> dict | None:
    """The shared-engine form to try when the pipelined design does not fit ``cfg.board``."""
    if cfg.architecture is not None or cfg.board is None or cfg.spike_counts:
        return None  # the spike counters are the layer-pipelined top's
    if cfg.board == "ice40-up5k":
        return {"architecture": "shared"}  # weights and maps in the SPRAM
    if cfg.board.startswith("ecp5") and cfg.parallelism is None and cfg.target_fps is None:
        return {"architecture": "shared", "weights": "flash"}
    return None


def _steps(cfg: FlowConfig) -> tuple:
    if cfg.architecture == "shared":
        return tuple((n, shared.STEPS.get(n, f)) for n, f in STEPS)
    return STEPS


class _Writer:
    """Writes a run's step intermediates and output files into its output folder."""

    def __init__(self, cfg: FlowConfig):
        self.cfg = cfg
        self.out_dir: Path | None = None

    def step(self, ctx: FlowContext, n: int, name: str, summary: dict) -> None:
        if self.out_dir is None:  # the model's file (the default folder) is known now
            cfg = self.cfg
            stem = ctx.model_path.name if ctx.model_path is not None else ctx.model_name
            self.out_dir = Path(cfg.out) if cfg.out else default_out(stem)
            (self.out_dir / "steps").mkdir(parents=True, exist_ok=True)
            for old in (self.out_dir / "steps").glob("*.json"):
                old.unlink()
        (self.out_dir / "steps" / f"{n}_{name}.json").write_text(canonical_json(summary))

    def files(self, files: dict) -> None:
        for fname, text in files.items():
            if isinstance(text, bytes):
                (self.out_dir / fname).write_bytes(text)
            else:
                (self.out_dir / fname).write_text(text)


def _run_flow(cfg: FlowConfig) -> FlowContext:
    if cfg.stop_after is not None and cfg.stop_after not in STEP_NAMES:
        raise FlowError(f"--stop-after: unknown step {cfg.stop_after!r}; steps: "
                        f"{', '.join(STEP_NAMES)}")
    if cfg.write and cfg.out:
        _check_out(cfg.out)
    ctx = FlowContext(config=cfg)
    steps = _steps(cfg)
    if cfg.stop_after is not None:
        steps = steps[: STEP_NAMES.index(cfg.stop_after) + 1]
    writer = _Writer(cfg) if cfg.write else None
    with tqdm(total=len(steps), desc="generate", unit="step", file=sys.stderr,
              disable=cfg.quiet) as bar:
        for n, (name, step) in enumerate(steps):
            bar.set_postfix_str(name)
            t0 = time.perf_counter()
            summary = step(ctx)
            ctx.timings[name] = time.perf_counter() - t0
            if writer is not None:
                writer.step(ctx, n, name, summary)
            bar.update(1)
    if writer is not None and ctx.files:
        writer.files(ctx.files)
    ctx.out_dir = None if writer is None else writer.out_dir
    return ctx


def assemble_top(ctx: FlowContext):
    """Run the ``assemble`` step of ``ctx``'s architecture on a context that stopped after
    ``estimate`` (a fit check first, the hardware only once it fits); return the top level."""
    steps = _steps(ctx.config)
    dict(steps)["assemble"](ctx)
    return ctx.top


def build_network(model_name_or_path, parallelism=None, carry=None):
    """Run the generator's steps up to ``assemble`` and return the top level
    (:class:`amos_hw.top.NetworkTop`).

    Parameters
    ----------
    model_name_or_path : str or path
        A zoo name (``"resnet8"``, ``"digits"``) or the path of a converted description.
    parallelism : dict, str or None
        Per-layer folding (``{"layer": {"pe": 4, "simd": 2}}``, or a JSON file path / text), or
        ``None`` for the defaults (:mod:`amos_hw.folding`).
    carry : str or None
        ``"generic"`` (default) or ``"ecp5"``: the matrix-vector units' first adder level on
        ECP5 carry cells (:mod:`amos_hw.engines.carry`).
    """
    ctx = run_flow(FlowConfig(model=model_name_or_path, parallelism=parallelism, carry=carry,
                              stop_after="assemble", quiet=True))
    return ctx.top
