"""Reading and rewriting Yosys's JSON netlist between synthesis and placement.

The passes that run there (:mod:`boards.outreg`, :mod:`boards.lsrfold`) share these helpers: a
cell's parameter as a string, the readers of every net bit, and the command line that rewrites a
netlist file in place and writes the pass's counts beside it.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

__all__ = ["new_bits", "param", "rewrite_main", "sinks"]


def param(cell: dict, name: str, default: str = "") -> str:
    """A cell parameter as a string; Yosys's JSON marks a string that reads as binary digits
    with a trailing space (``"1 "``: the string "1", not a one-bit constant)."""
    return str(cell.get("parameters", {}).get(name, default)).rstrip(" ")


def sinks(module: dict) -> dict:
    """net bit -> [(cell name, port)] of every cell input and module output reading it."""
    out = defaultdict(list)
    for name, cell in module["cells"].items():
        dirs = cell.get("port_directions", {})
        for port, bits in cell["connections"].items():
            if dirs.get(port) != "output":
                for b in bits:
                    if isinstance(b, int):
                        out[b].append((name, port))
    for pname, port in module.get("ports", {}).items():
        if port.get("direction") != "input":
            for b in port["bits"]:
                if isinstance(b, int):
                    out[b].append((None, pname))
    return out


def new_bits(module: dict):
    """An iterator of net bit numbers no cell, port or net name of ``module`` uses yet."""
    used = [b for c in module.get("cells", {}).values() for bits in c["connections"].values()
            for b in bits if isinstance(b, int)]
    used += [b for p in module.get("ports", {}).values() for b in p["bits"] if isinstance(b, int)]
    used += [b for n in module.get("netnames", {}).values() for b in n["bits"]
             if isinstance(b, int)]
    nxt = max(used, default=1) + 1
    while True:
        yield nxt
        nxt += 1


def rewrite_main(argv, *, prog: str, doc: str, rewrite: Callable[[dict, argparse.Namespace], dict],
                 summary: Callable[[dict], str],
                 options: Callable[[argparse.ArgumentParser], None] | None = None) -> int:
    """The command line of a netlist pass: read the JSON file, ``rewrite(netlist, args)`` it
    (in place; it returns the pass's counts), write the file back through a temporary file (a
    pass that fails leaves the netlist as it was), optionally the counts to ``--report``, and
    print ``summary(counts)``. Returns the exit status: 0, or 2 when the file cannot be read."""
    p = argparse.ArgumentParser(prog=prog, description=doc,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("netlist", type=Path, help="Yosys's JSON netlist (rewritten in place)")
    p.add_argument("--report", type=Path, default=None,
                   help="also write the counts as JSON to this file")
    if options is not None:
        options(p)
    a = p.parse_args(argv)
    try:
        netlist = json.loads(a.netlist.read_text())
    except (OSError, json.JSONDecodeError) as e:
        print(f"{prog}: cannot read the netlist {a.netlist}: {e}", file=sys.stderr)
        return 2
    counts = rewrite(netlist, a)
    tmp = a.netlist.with_suffix(".pass.tmp")
    tmp.write_text(json.dumps(netlist))
    tmp.replace(a.netlist)
    if a.report is not None:
        a.report.write_text(json.dumps(counts) + "\n")
    print(summary(counts))
    return 0
