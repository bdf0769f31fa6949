"""ECP5 synchronous resets of small flip-flop groups folded into a LUT before the flip-flop.

::

    python -m boards.lsrfold top.json --min-group 8   # rewrites top.json in place

Yosys's ``synth_ecp5`` turns every register that the logic sets to a constant under a
condition (a state machine's return to its first state, a counter's clear) into flip-flops
whose ``LSR`` pin takes that condition (``SRMODE = "LSR_OVER_CE"``): a synchronous set or
reset that costs no LUT. But an ECP5 logic tile (4 slices, 8 flip-flops) has one ``LSR``
signal for all its flip-flops (nextpnr: ``slices_compatible`` in ``ecp5/arch_place.cc``; a
flip-flop without a reset has the constant net there, so it cannot share a tile with one that
has a reset either). A reset net shared by 2 flip-flops therefore takes a whole tile's
flip-flops, and in a design whose flip-flops fill most tiles the placer may find that tile
tens of columns away from the flip-flops' logic: ResNet8 K = 6 at 100 MHz ended on such a
flip-flop (a host link state bit, its reset net shared by 2, 9.5-13.7 ns of routing;
``docs/notes/board_builds.md``). Folding every reset into logic costs too much (+7,398 LUT4
on that design); folding only the nets that cannot fill a tile costs one LUT4 per flip-flop.

:func:`fold` does that on Yosys's JSON netlist, for every reset net that only synchronous
``TRELLIS_FF`` cells read through ``LSR`` (no ``SRMODE = "ASYNC"``, no ``LSRMODE = "PRLD"``)
and that fewer than ``min_group`` of them read. Each such flip-flop, with ``r`` its reset
(``LSR``, or ``~LSR`` under ``LSRMUX = "INV"``), ``v`` its reset value (1 for ``REGSET =
"SET"``, else 0) and ``e`` its enable (``1``, ``0``, ``CE`` or ``~CE`` after ``CEMUX``) loads
on every clock edge ``v`` if ``r``, else ``DI`` if ``e``, else keeps ``Q``. After the fold a
new ``LUT4`` computes exactly that, ``Z = r ? v : (e ? DI : Q)`` (inputs ``A = DI``, ``B =
LSR``, ``C = CE``, ``D = Q``; the inputs a case does not need tied to 0), the flip-flop loads
``Z`` on every edge (``CEMUX = "1"``, ``LSR`` tied to 0, ``SRMODE`` as before). ``REGSET`` and
``GSR`` stay, so the power-on and global-reset value (both ``REGSET``) is unchanged: the same
values every cycle. ``tests/test_lsrfold.py`` proves that with Yosys (a miter of the netlist
before and after, on the flip-flops' own simulation models).
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter

from amos_hw.lib.checks import positive_int
from boards.netlist import new_bits, param, rewrite_main

__all__ = ["MIN_GROUP", "fold", "lut_init", "main"]

#: Flip-flops in an ECP5 logic tile, which share one ``LSR`` net: a net read by fewer leaves
#: part of its tile's flip-flops unusable for anything else.
MIN_GROUP = 8

_FF = "TRELLIS_FF"


def _foldable(ff: dict) -> bool:
    return (param(ff, "SRMODE", "LSR_OVER_CE") == "LSR_OVER_CE"
            and param(ff, "LSRMODE", "LSR") == "LSR"
            and param(ff, "LSRMUX", "LSR") in ("LSR", "INV")
            and param(ff, "CEMUX", "1") in ("1", "0", "CE", "INV"))


def lut_init(*, lsr_inv: bool, set_value: int, cemux: str) -> str:
    """The 16-bit ``INIT`` (``INIT[15]`` first, as Yosys writes it) of the fold's LUT4:
    ``Z = r ? v : (e ? A : D)`` with ``r = B`` (``~B`` when ``lsr_inv``), ``v = set_value``
    and ``e`` from ``cemux`` (``"1"``, ``"0"``, ``"CE"``: ``C``, ``"INV"``: ``~C``); the index
    of an entry is ``{D, C, B, A}``, as in the ``LUT4`` model."""
    bits = []
    for i in range(16):
        a, b, c, d = i & 1, (i >> 1) & 1, (i >> 2) & 1, (i >> 3) & 1
        r = b ^ lsr_inv
        e = {"1": 1, "0": 0, "CE": c, "INV": 1 - c}[cemux]
        bits.append(set_value if r else (a if e else d))
    return "".join(str(v) for v in reversed(bits))


def _groups(cells: dict) -> dict:
    """reset net bit -> [names of the TRELLIS_FF cells reading it through LSR]."""
    groups: dict = {}
    for name, cell in cells.items():
        if cell["type"] == _FF:
            bit = cell["connections"].get("LSR", ["0"])[0]
            if isinstance(bit, int):
                groups.setdefault(bit, []).append(name)
    return groups


def fold(netlist: dict, min_group: int = MIN_GROUP) -> dict:
    """Fold the synchronous resets of every reset net read by fewer than ``min_group``
    flip-flops into a LUT4 before each of them (the module docstring gives the conditions and
    the function). ``netlist`` is Yosys's JSON, changed in place. Returns the counts:
    ``lsr_nets`` before and after, ``nets_folded``, ``flip_flops`` (folded), ``luts_added``
    (one LUT4 each), ``min_group`` and ``group_sizes`` (flip-flops per reset net -> nets,
    before)."""
    positive_int("min_group", min_group)
    nets = folded = before = 0
    sizes: Counter = Counter()
    for module in netlist["modules"].values():
        cells = module.get("cells", {})
        groups = _groups(cells)
        before += len(groups)
        sizes.update(len(g) for g in groups.values())
        fresh = new_bits(module)
        for bit, names in groups.items():
            if len(names) >= min_group or not all(_foldable(cells[n]) for n in names):
                continue
            for name in names:
                _fold_one(module, name, bit, next(fresh))
            nets += 1
            folded += len(names)
    return {"lsr_nets": before, "lsr_nets_after": before - nets, "nets_folded": nets,
            "flip_flops": folded, "luts_added": folded, "min_group": min_group,
            "group_sizes": {str(k): v for k, v in sorted(sizes.items())}}


def _fold_one(module: dict, name: str, lsr_bit: int, z_bit: int) -> None:
    ff = module["cells"][name]
    conn = ff["connections"]
    cemux = param(ff, "CEMUX", "1")
    uses_ce = cemux in ("CE", "INV")
    keeps_q = cemux != "1"
    lut = {
        "hide_name": 1, "type": "LUT4",
        "parameters": {"INIT": lut_init(lsr_inv=param(ff, "LSRMUX", "LSR") == "INV",
                                        set_value=int(param(ff, "REGSET", "RESET") == "SET"),
                                        cemux=cemux)},
        "attributes": {"src": "boards/lsrfold.py"},
        "port_directions": {p: "input" for p in "ABCD"} | {"Z": "output"},
        "connections": {"A": list(conn.get("DI", ["0"])) if cemux != "0" else ["0"],
                        "B": [lsr_bit],
                        "C": list(conn.get("CE", ["0"])) if uses_ce else ["0"],
                        "D": list(conn["Q"]) if keeps_q else ["0"],
                        "Z": [z_bit]},
    }
    module["cells"][f"{name}$lsrfold"] = lut
    module.setdefault("netnames", {})[f"{name}$lsrfold$d"] = {"hide_name": 1, "bits": [z_bit]}
    conn["DI"] = [z_bit]
    conn["LSR"] = ["0"]
    conn.pop("CE", None)
    ff.get("port_directions", {}).pop("CE", None)
    ff["parameters"]["CEMUX"] = "1 "  # Yosys's JSON: a string of binary digits ends in a space
    ff["parameters"]["LSRMUX"] = "LSR"


def _min_group(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = text
    return positive_int("--min-group", value, error=argparse.ArgumentTypeError)


def main(argv=None) -> int:
    """The command line: rewrite a netlist in place; the exit status."""
    def options(p):
        p.add_argument("--min-group", type=_min_group, default=MIN_GROUP,
                       help=f"fold reset nets read by fewer flip-flops than this "
                            f"(default {MIN_GROUP}: one logic tile)")

    return rewrite_main(
        argv, prog="python -m boards.lsrfold", doc=__doc__, options=options,
        rewrite=lambda netlist, a: fold(netlist, a.min_group),
        summary=lambda c: (f"boards.lsrfold: {c['flip_flops']} flip-flops of {c['nets_folded']} "
                           f"reset nets read by fewer than {c['min_group']} folded into a LUT4 "
                           f"each ({c['lsr_nets']} -> {c['lsr_nets_after']} reset nets)"))


if __name__ == "__main__":
    sys.exit(main())
