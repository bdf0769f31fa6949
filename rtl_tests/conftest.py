"""pytest set-up for the slow tier.

``$SIM`` picks the simulators: ``icarus`` (default), ``verilator``, or a comma list
(``icarus,verilator``, which ``make test`` uses). Every test that takes the ``sim`` fixture is run
once per simulator named, with ids ``[icarus]`` / ``[verilator]``. Every test here is marked
``rtl``, so ``pytest -m "not rtl"`` leaves the tier out.
"""
import os
from pathlib import Path

import pytest

from rtl_tests.harness import SIMULATORS

_HERE = Path(__file__).resolve().parent


def _simulators() -> list[str]:
    raw = os.environ.get("SIM", "").strip() or "icarus"
    names = [s.strip() for s in raw.split(",") if s.strip()]
    unknown = [s for s in names if s not in SIMULATORS]
    if unknown or not names:
        raise pytest.UsageError(
            f"SIM must be one of {', '.join(SIMULATORS)} or a comma list of them, not {raw!r}"
        )
    return list(dict.fromkeys(names))


def pytest_generate_tests(metafunc):
    if "sim" in metafunc.fixturenames:
        metafunc.parametrize("sim", _simulators())


def pytest_collection_modifyitems(config, items):
    for item in items:
        if _HERE in Path(item.fspath).resolve().parents:
            item.add_marker(pytest.mark.rtl)
