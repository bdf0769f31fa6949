"""Run a cocotb test module against emitted Verilog, from pytest, on Icarus or Verilator.

Every block's slow-tier test is two files:

* ``rtl_tests/tb_<block>.py``: the cocotb test module (``@cocotb.test()`` coroutines). It runs
  inside the simulator, reads its parameters with :func:`test_params` and drives the design
  with the helpers in :mod:`rtl_tests.streams`. Its name must not start with ``test_`` (pytest
  would collect it).
* ``rtl_tests/test_<block>.py``: the pytest entry. It takes the ``sim`` fixture (see
  ``rtl_tests/conftest.py``: one run per simulator named in ``$SIM``) and calls
  :func:`run_cocotb`::

      def test_compare(sim):
          run_cocotb(PipelinedCompare(8), toplevel="cmp8", test_module="rtl_tests.tb_smoke",
                     sim=sim, params={"width": 8, "count": 200, "seed": 1})

What :func:`run_cocotb` does: it emits the Verilog with
:func:`amos_hw.backend.verilog.to_verilog` (or takes Verilog text), picks the simulator and the
waveform switch from the environment, and hands the rest to the project's one cocotb runner,
:func:`amos_hw.backend.simbuild.cocotb_run`: the build directory
``build/rtl/<toplevel>-<sim>-<hash>`` (each distinct design is compiled once and reused by
later runs and other parameter sets), ``params`` written as JSON into a run directory inside it
(one per parameter set) with ``AMOS_RTL_PARAMS`` pointing at it, and
:class:`~amos_hw.backend.simbuild.RTLTestFailure` (an ``AssertionError``, so pytest reports a
failure) when the build failed, a cocotb test failed, the simulator died, or no test ran.

Give every ``@cocotb.test`` a ``timeout_time`` so that a handshake that never happens fails the
test instead of hanging the suite.

Environment: ``SIM`` (``icarus`` or ``verilator``; the ``sim`` fixture parametrises over a comma
list), ``WAVES=1`` (dump waveforms into the run directory; a separate build), ``AMOS_BUILD_DIR``
(build root, default ``build/rtl`` in the repository).
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from amos_hw.backend.simbuild import SIMULATORS, RTLTestFailure, check_simulator, cocotb_run
from amos_hw.backend.verilog import to_verilog

__all__ = [
    "PARAMS_ENV",
    "SIMULATORS",
    "RTLTestFailure",
    "build_root",
    "check_simulator",
    "run_cocotb",
    "test_params",
]

#: Environment variable that carries the path of the parameter JSON into the simulator.
PARAMS_ENV = "AMOS_RTL_PARAMS"

_REPO_ROOT = Path(__file__).resolve().parent.parent


def build_root() -> Path:
    """Root of the per-design build directories (``$AMOS_BUILD_DIR`` or ``build/rtl``)."""
    return Path(os.environ.get("AMOS_BUILD_DIR") or _REPO_ROOT / "build" / "rtl")


def test_params() -> dict:
    """Inside a cocotb test module: the ``params`` given to :func:`run_cocotb` (a dict).

    Raises
    ------
    RuntimeError
        When not started by :func:`run_cocotb` (``$AMOS_RTL_PARAMS`` unset).
    """
    path = os.environ.get(PARAMS_ENV)
    if not path:
        raise RuntimeError(
            f"{PARAMS_ENV} is not set: this cocotb module expects to be started by "
            f"rtl_tests.harness.run_cocotb"
        )
    with open(path) as f:
        return json.load(f)


test_params.__test__ = False  # a helper, not a pytest test


def run_cocotb(design, *, toplevel: str, test_module: str, sim: str | None = None,
               params: Mapping | None = None, testcase: str | Sequence[str] | None = None,
               seed: int | None = None, extra_sources: Sequence[str | os.PathLike] = (),
               build_args: Sequence[str] = (), waves: bool | None = None) -> Path:
    """Emit, build (once per design) and run a cocotb test module; fail loudly.

    Parameters
    ----------
    design : amaranth.lib.wiring.Component or str
        The component (emitted with ``to_verilog(design, toplevel)``) or Verilog text.
    toplevel : str
        Top module name.
    test_module : str
        Dotted name of the cocotb test module, e.g. ``"rtl_tests.tb_smoke"``.
    sim : str, optional
        ``"icarus"`` or ``"verilator"``; default ``$SIM`` or ``"icarus"``.
    params : mapping, optional
        JSON-serialisable parameters for the test module (:func:`test_params`).
    testcase : str or sequence of str, optional
        Run only these cocotb tests.
    seed : int, optional
        ``COCOTB_RANDOM_SEED``; test modules should still take their own seed from ``params``.
    extra_sources : sequence of paths
        More Verilog files (e.g. a hand-written wrapper).
    build_args : sequence of str
        Extra simulator build arguments, added to the defaults.
    waves : bool, optional
        Dump waveforms; default ``$WAVES``.

    Returns
    -------
    pathlib.Path
        The xUnit results file.

    Raises
    ------
    RTLTestFailure
        If any cocotb test failed, the simulator exited abnormally, or no test ran.
    """
    if sim is None:
        sim = os.environ.get("SIM", "").strip() or "icarus"
        if "," in sim:
            raise ValueError(
                f"$SIM names several simulators ({sim!r}): pass sim= to run_cocotb, e.g. from "
                f"the `sim` fixture, which runs the test once per simulator"
            )
    if waves is None:
        waves = os.environ.get("WAVES", "0") not in ("", "0")
    verilog = design if isinstance(design, str) else to_verilog(design, toplevel)
    params_text = json.dumps(dict(params or {}), sort_keys=True)
    with cocotb_run(verilog, toplevel=toplevel, sim=sim, root=build_root(),
                    run_key=(params_text, test_module, repr(testcase), repr(seed)),
                    extra_sources=extra_sources, build_args=build_args, waves=waves) as run:
        params_file = run.run_dir / "params.json"
        params_file.write_text(params_text)
        return run.test(test_module, extra_env={PARAMS_ENV: str(params_file)},
                        testcase=testcase, seed=seed)
