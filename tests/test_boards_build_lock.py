"""The build folder's lock outlives a builder that dies mid-build.

A sweep's Dask worker killed while nextpnr runs leaves the build script's processes running.
The lock (``build.lock``) is handed to them (``boards.build._run_script``), so a retry of
the same build fails on it instead of clearing the folder under the running nextpnr.
"""
from __future__ import annotations

import fcntl
import subprocess
import sys
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _wait_for(condition, what: str, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _locked(path: Path) -> bool:
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
        return False


def test_lock_held_by_the_script_after_the_builder_is_killed(tmp_path):
    gw = tmp_path / "gateware"
    gw.mkdir()
    started, release = tmp_path / "started", tmp_path / "release"
    # the "build": marks that it runs, then waits until the test lets it end
    (gw / "build_top.sh").write_text(
        f"touch {started}\nwhile [ ! -e {release} ]; do sleep 0.05; done\n")
    lock = tmp_path / "build.lock"
    builder = textwrap.dedent(f"""
        import fcntl, os
        from pathlib import Path
        from boards.build import _run_script
        lock = open({str(lock)!r}, "w")
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        _run_script(Path({str(gw)!r}), "build_top.sh", dict(os.environ),
                    Path({str(tmp_path / "build.log")!r}), False, lock_fd=lock.fileno())
    """)
    proc = subprocess.Popen([sys.executable, "-c", builder], cwd=REPO)
    try:
        _wait_for(started.exists, "the build script to start")
        proc.kill()
        proc.wait(timeout=60)
        assert _locked(lock), "the lock went with the builder while its script still runs"
        release.touch()
        _wait_for(lambda: not _locked(lock), "the lock to be released when the script ends")
    finally:
        release.touch()
        if proc.poll() is None:
            proc.kill()
