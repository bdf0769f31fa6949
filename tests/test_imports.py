"""The project's layering, read from the source with ``ast`` (nothing is imported).

The packages form layers, each importing only from the ones below it::

    python_ref  <  amos_hw  <  boards  <  rtl_tests

``python_ref`` (the integer truth) imports none of the others, the generator ``amos_hw`` neither
the boards nor the tests, ``boards`` not the tests. Inside ``amos_hw`` the modules import each
other without cycles (a package ``__init__`` importing its own submodules excepted). Every
``import`` statement counts, at module level and inside functions alike: an import deferred
into a function is still a dependency.
"""
from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

#: The packages, lowest layer first.
LAYERS = ("python_ref", "amos_hw", "boards", "rtl_tests")


def module_files(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file under each package of ``root``."""
    out = {}
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _resolve(name: str, known: Mapping[str, Path]) -> str | None:
    """The longest prefix of the dotted ``name`` that is a known module, or None."""
    parts = name.split(".")
    for k in range(len(parts), 0, -1):
        candidate = ".".join(parts[:k])
        if candidate in known:
            return candidate
    return None


def _imported_names(node: ast.AST, module: str, is_package: bool) -> list[str]:
    """The dotted names an import statement can load, relative imports resolved: for ``from
    p import x`` both ``p.x`` (when ``x`` is a module) and ``p``."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        base = package[:len(package) - (node.level - 1)]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module or ""
    return [f"{prefix}.{alias.name}" for alias in node.names] + [prefix]


def import_graph(root: Path, packages: Sequence[str]) -> dict[str, set[str]]:
    """Module -> the modules of ``packages`` it imports (anywhere in its source)."""
    files = module_files(root, packages)
    graph = {}
    for module, path in files.items():
        is_package = path.name == "__init__.py"
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            names = _imported_names(node, module, is_package)
            if isinstance(node, ast.ImportFrom):
                # `from p import x`: the module p.x when there is one, else the package p
                found = [_resolve(n, files) for n in names[:-1] if n in files]
                deps.update(found or [_resolve(names[-1], files)])
            else:
                deps.update(_resolve(n, files) for n in names)
        deps.discard(None)
        deps.discard(module)
        if is_package:  # a package's __init__ importing its own submodules
            deps = {d for d in deps if not d.startswith(module + ".")}
        graph[module] = deps
    return graph


def cycles(graph: Mapping[str, set[str]], within: str) -> list[tuple[list[str], list[str]]]:
    """The import cycles among the modules of package ``within``: for each strongly connected
    component of more than one module, ``(its modules, one cycle through them)``, the cycle a
    path of imports that returns to its start."""
    nodes = sorted(m for m in graph if m == within or m.startswith(within + "."))
    sub = {m: sorted(d for d in graph[m] if d in set(nodes)) for m in nodes}
    index, low, on_stack, stack, comps = {}, {}, set(), [], []

    def strongconnect(v):  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sub[v]:
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for v in nodes:
        if v not in index:
            strongconnect(v)
    return [(comp, _cycle_through(comp, sub)) for comp in sorted(comps)]


def _cycle_through(comp: list[str], sub: Mapping[str, list[str]]) -> list[str]:
    """A shortest import path from the component's first module back to itself."""
    start, members = comp[0], set(comp)
    paths, seen = [[start]], {start}
    while paths:
        nxt = []
        for path in paths:
            for w in sub[path[-1]]:
                if w == start:
                    return path + [start]
                if w in members and w not in seen:
                    seen.add(w)
                    nxt.append(path + [w])
        paths = nxt
    raise AssertionError(f"no cycle through {start} in {comp}")  # not a component


def wrong_way(graph: Mapping[str, set[str]], layers: Sequence[str]) -> list[str]:
    """Imports from a package into one of a higher layer, as ``"a.b -> c.d"``."""
    rank = {pkg: k for k, pkg in enumerate(layers)}
    out = []
    for module in sorted(graph):
        here = rank[module.split(".")[0]]
        for dep in sorted(graph[module]):
            if rank[dep.split(".")[0]] > here:
                out.append(f"{module} -> {dep}")
    return out


def _describe(found: list[tuple[list[str], list[str]]]) -> str:
    return "\n".join(f"  {len(comp)} modules import each other: {', '.join(comp)}; for "
                     f"example {' -> '.join(cycle)}" for comp, cycle in found)


# --- the project ---------------------------------------------------------------------------

def test_walker_reads_the_project():
    """The graph holds the project's own imports (a walker that read nothing would pass the
    checks below)."""
    graph = import_graph(REPO, LAYERS)
    assert "amos_hw.lib.hostproto" in graph["boards.host"]           # from amos_hw.lib import x
    assert "amos_hw.backend.simbuild" in graph["rtl_tests.harness"]  # from a.b import name
    assert "amos_hw.lib.checks" in graph["amos_hw.lib.hostlink"]


@pytest.mark.parametrize("package", ["amos_hw", "python_ref", "boards"])
def test_no_import_cycles(package):
    found = cycles(import_graph(REPO, LAYERS), package)
    assert not found, f"import cycles among {package} modules:\n{_describe(found)}"


def test_imports_point_down_the_layers():
    bad = wrong_way(import_graph(REPO, LAYERS), LAYERS)
    assert not bad, (f"imports against the layering {' < '.join(LAYERS)}:\n  "
                     + "\n  ".join(bad))


# --- the walker on a made-up project ---------------------------------------------------------

def _write(root: Path, files: Mapping[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_walker_reports_a_cycle_and_a_wrong_way_import(tmp_path):
    """A cycle through a relative import and an import inside a function, and a low layer
    importing a high one, are both reported; the package __init__ importing its submodules and
    a plain downward import are not."""
    _write(tmp_path, {
        "low/__init__.py": "from . import a, b\n",
        "low/a.py": "from . import b\n",
        "low/b.py": "def f():\n    from low.sub import c\n",
        "low/sub/__init__.py": "",
        "low/sub/c.py": "from ..a import name\nimport low.d\n",
        "low/d.py": "import high.e\n",
        "high/__init__.py": "",
        "high/e.py": "from low import d\nimport os\n",
    })
    graph = import_graph(tmp_path, ("low", "high"))
    assert graph["low"] == set()
    assert graph["low.a"] == {"low.b"}
    assert graph["low.b"] == {"low.sub.c"}
    assert graph["low.sub.c"] == {"low.a", "low.d"}
    assert cycles(graph, "low") == [(["low.a", "low.b", "low.sub.c"],
                                     ["low.a", "low.b", "low.sub.c", "low.a"])]
    assert cycles(graph, "high") == []
    assert wrong_way(graph, ("low", "high")) == ["low.d -> high.e"]
    assert wrong_way(graph, ("high", "low")) == ["high.e -> low.d"]
