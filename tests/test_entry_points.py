"""pyproject.toml's console scripts: each names a module's ``main(argv=None)``."""
import importlib
import inspect
import re
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def console_scripts() -> dict[str, str]:
    """``[project.scripts]`` of pyproject.toml, name -> ``module:function`` (read as text:
    ``tomllib`` is not in Python 3.10)."""
    text = PYPROJECT.read_text()
    section = re.search(r"^\[project\.scripts\]\n(.*?)(?=^\[)", text, re.M | re.S)
    assert section, "pyproject.toml has no [project.scripts] section"
    return dict(re.findall(r'^([\w-]+)\s*=\s*"([\w.]+:\w+)"', section.group(1), re.M))


def test_every_console_script_resolves_to_a_main_taking_argv():
    scripts = console_scripts()
    assert {"amos-generate", "amos-convert", "amos-evaluate", "amos-boards", "amos-bench",
            "amos-host", "amos-results"} <= set(scripts)
    for name, target in scripts.items():
        module, function = target.split(":")
        main = getattr(importlib.import_module(module), function, None)
        assert callable(main), f"{name}: {target} is not a callable"
        argv = inspect.signature(main).parameters.get("argv")
        assert argv is not None and argv.default is None, (
            f"{name}: {target} does not take argv=None")
