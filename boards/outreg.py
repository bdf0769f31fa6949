"""ECP5 block RAM output registers: the flip-flops right after a ``DP16KD`` moved into it.

::

    python -m boards.outreg top.json          # rewrites top.json in place, prints the count

Yosys maps a synchronous read port to a ``DP16KD`` in ``REGMODE = "NOREG"``: the data leave the
block 5.61 ns after the clock edge (nextpnr's timing model, speed grade 6), more than half of a
100 MHz cycle before any routing. The block has its own output register (``REGMODE =
"OUTREG"``; 0.5 ns clock-to-out), but Yosys's memory mapping never uses it
(``share/lattice/brams_16kd.txt`` has no such option). The generator registers every memory's
output once more in the fabric anyway (the weight operand register, stage R; the bias behind
it), so that register can move into the block: same cycles, same values, and the 5 ns leave the
critical path.

:func:`absorb` does that on Yosys's JSON netlist, between synthesis and placement, where it is
exact, and only there:

* a read port (``A`` or ``B`` of a true dual-port block; both halves of a 36-bit pseudo
  dual-port one, read through port ``B``) whose every used output bit drives one ``TRELLIS_FF``
  and nothing else;
* each such flip-flop clocked by the port's clock on the same edge (``CLKMUX = "CLK"``, the
  block's ``CLKxMUX`` not inverted), without a local set or reset (``LSR`` tied to 0: the
  board tops reset through the ECP5's global set/reset, ``SGSR``), initialised to 0
  (``REGSET = "RESET"``: the output register starts at 0), all with the same clock enable
  (``CEMUX = "CE"`` on one net, or ``"1"``) and the block's global-reset setting (``GSR``: with
  it the output register clears on the global reset as the flip-flops do);
* the port's own reset ``RSTx`` tied to 0.

Then ``REGMODE`` becomes ``OUTREG`` (both in the pseudo dual-port form, as Lattice's
``PDPW16KD`` with ``REGMODE = "OUTREG"`` sets them), the output clock enable ``OCEx`` takes the
flip-flops' enable, each output bit drives the flip-flop's output net and the flip-flop is
removed. Anything else is left as it was. Yosys's DP16KD simulation model is a black box, so the
rewritten netlist is not simulated here; the conditions above are the whole argument, and
``tests/test_outreg.py`` checks each of them on netlists Yosys wrote.
"""
from __future__ import annotations

import sys

from boards.netlist import param as _param
from boards.netlist import rewrite_main
from boards.netlist import sinks as _sinks

__all__ = ["absorb", "main"]

_BITS = 18  # output bits per port


def _width(cell: dict, port: str) -> int:
    raw = _param(cell, f"DATA_WIDTH_{port}", "0")
    return int(raw, 2) if set(raw) <= {"0", "1"} else int(raw)


def _group(cell: dict) -> list[tuple[str, list[str], str]]:
    """The read ports of a block: (port letter for REGMODE/OCE/RST/CLK, its output pins,
    which REGMODEs change)."""
    if _width(cell, "A") == 36:  # pseudo dual-port: port B reads all 36 bits
        return [("B", [f"DO{p}{i}" for p in "AB" for i in range(_BITS)], "AB")]
    return [(p, [f"DO{p}{i}" for i in range(_BITS)], p) for p in "AB"]


def _flops(module: dict, sinks: dict, cell: dict, pins: list[str], clk):
    """The flip-flop behind each used output pin, or None where the port cannot take them."""
    found = []
    for pin in pins:
        bits = cell["connections"].get(pin, [])
        if not bits or not isinstance(bits[0], int):
            continue
        readers = sinks.get(bits[0], [])
        if not readers:  # an output bit nothing reads
            continue
        if len(readers) != 1 or readers[0][0] is None or readers[0][1] != "DI":
            return None
        ff_name = readers[0][0]
        ff = module["cells"][ff_name]
        if ff["type"] != "TRELLIS_FF":
            return None
        c = ff["connections"]
        if (_param(ff, "CLKMUX", "CLK") != "CLK" or c.get("CLK") != clk
                or c.get("LSR", ["0"]) != ["0"]
                or _param(ff, "REGSET", "RESET") != "RESET"
                or _param(ff, "CEMUX", "CE") not in ("CE", "1")
                or _param(ff, "GSR", "ENABLED") != _param(cell, "GSR", "ENABLED")):
            return None
        ce = ["1"] if _param(ff, "CEMUX", "CE") == "1" else c.get("CE", ["1"])
        found.append((pin, ff_name, ce))
    if not found or len({tuple(ce) for _, _, ce in found}) != 1:
        return None
    return found


def absorb(netlist: dict) -> dict:
    """Move the flip-flops behind every ``DP16KD`` read port that can take them into its output
    register (the module docstring gives the conditions). ``netlist`` is Yosys's JSON, changed
    in place. Returns ``{"blocks": ports rewritten, "flip_flops": flip-flops removed}``."""
    blocks = flops = 0
    for module in netlist["modules"].values():
        cells = module.get("cells", {})
        sinks = _sinks(module)
        for cell in list(cells.values()):
            if cell["type"] != "DP16KD":
                continue
            for port, pins, modes in _group(cell):
                if any(_param(cell, f"REGMODE_{m}", "NOREG") != "NOREG" for m in modes):
                    continue
                if cell["connections"].get(f"RST{port}", ["0"]) != ["0"]:
                    continue
                if _param(cell, f"CLK{port}MUX", f"CLK{port}") != f"CLK{port}":
                    continue  # an inverted block clock: the flip-flops' edge is the other one
                found = _flops(module, sinks, cell, pins, cell["connections"].get(f"CLK{port}"))
                if found is None:
                    continue
                ce = found[0][2]
                for m in modes:
                    cell["parameters"][f"REGMODE_{m}"] = "OUTREG"
                    cell["connections"][f"OCE{m}"] = list(ce)
                for pin, ff_name, _ in found:
                    cell["connections"][pin] = list(cells[ff_name]["connections"]["Q"])
                    del cells[ff_name]
                blocks += 1
                flops += len(found)
    return {"blocks": blocks, "flip_flops": flops}


def main(argv=None) -> int:
    """The command line: rewrite a netlist in place; the exit status."""
    return rewrite_main(
        argv, prog="python -m boards.outreg", doc=__doc__,
        rewrite=lambda netlist, _args: absorb(netlist),
        summary=lambda c: (f"boards.outreg: {c['flip_flops']} flip-flops moved into the output "
                           f"registers of {c['blocks']} DP16KD read ports"))


if __name__ == "__main__":
    sys.exit(main())
