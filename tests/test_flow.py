"""The generator's steps: order, bad descriptions refused before hardware, budgets, folding."""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from amos_hw.cost import pipeline_ii
from amos_hw.flow import STEP_NAMES, BudgetError, FlowError, run_flow
from amos_hw.folding import apply, choose_for_target
from amos_hw.passes.common import FlowConfig


def write_description(path, nodes, units, arrays, outputs=("fc",), name="tiny"):
    """A description written as files without validation (so that bad ones can be made)."""
    doc = {"format": "amos_ir", "version": 1, "name": name, "outputs": list(outputs),
           "units": units, "nodes": nodes, "meta": {}}
    path.with_suffix(".json").write_text(json.dumps(doc))
    np.savez(path.with_suffix(".npz"), **arrays)
    return path


def conv_net(tmp_path, *, stride=1, unit=None, extra_units=None, op="conv"):
    rng = np.random.default_rng(0)
    ho = (8 + 2 - 3) // stride + 1
    nodes = [
        {"name": "input", "op": "input", "inputs": [], "shape": [8, 8, 1], "bits": 8},
        {"name": "c1", "op": op, "inputs": ["input"], "weight": "c1.w", "bias": "c1.b",
         "kernel": 3, "stride": stride, "padding": 1, "out_channels": 4},
        {"name": "a1", "op": "amos", "inputs": ["c1"], "unit": unit or "relu_k4",
         "rshift": [6]},
        {"name": "fc", "op": "dense", "inputs": ["a1"], "weight": "fc.w", "bias": "fc.b",
         "out_features": 3},
    ]
    units = {"relu_k4": {"kind": "relu", "K": 4}, **(extra_units or {})}
    arrays = {"c1.w": rng.integers(-127, 128, (4, 3, 3, 1)), "c1.b": rng.integers(-50, 50, 4),
              "fc.w": rng.integers(-127, 128, (3, ho * ho * 4)), "fc.b": np.zeros(3, np.int64)}
    return write_description(tmp_path / "tiny", nodes, units, arrays)


def cfg(model, **kw):
    return FlowConfig(model=str(model), quiet=True, **kw)


def test_step_order():
    assert STEP_NAMES == ("load", "infer", "parallelism", "memory", "estimate", "assemble",
                          "verilog")


def test_unknown_model_lists_known():
    with pytest.raises(FlowError, match=r"unknown model 'resnet9'; known models: .*digits"):
        run_flow(cfg("resnet9"))


def test_missing_description_path(tmp_path):
    with pytest.raises(FlowError, match="no description"):
        run_flow(cfg(tmp_path / "nothing.json"))


def test_unknown_op_names_layer(tmp_path):
    path = conv_net(tmp_path, op="pool")
    with pytest.raises(FlowError, match=r"layer 'c1': unknown op 'pool'"):
        run_flow(cfg(path, stop_after="infer"))


def test_unsupported_stride_names_layer(tmp_path):
    path = conv_net(tmp_path, stride=3)
    with pytest.raises(FlowError, match=r"layer 'c1': stride 3 is not supported by the conv "
                                        r"engine \(supported: 1, 2\)"):
        run_flow(cfg(path))


def _general_unit(tmp_path, c2=False):
    general = {"kind": "amos", "c": "u.c", "T": "u.T", "h": "u.h", "d": "u.d"}
    if c2:
        general["c2"] = "u.c2"
    path = conv_net(tmp_path, unit="swish", extra_units={"swish": general})
    arrays = dict(np.load(path.with_suffix(".npz")))
    arrays.update({"u.c": np.array([1, 1]), "u.T": np.array([2, 1]),
                   "u.h": np.array([[0, 0], [2, 0]]), "u.d": np.array([2, -1]),
                   "u.c2": np.array([1, 2])})
    np.savez(path.with_suffix(".npz"), **arrays)
    return path


def test_trained_unit_plans_as_its_own_layer(tmp_path):
    """A general (kind ``amos``) unit after a conv: the conv is raw, requantised by the unit's
    shift, and a unit layer emits y (-1..2: three signed bits) to the dense layer."""
    ctx = run_flow(cfg(_general_unit(tmp_path), stop_after="estimate"))
    kinds = [(s.name, s.kind, s.out_bits, s.out_signed) for s in ctx.plan.layers]
    assert kinds == [("c1", "conv", None, True), ("a1", "unit", 3, True),
                     ("fc", "dense", None, True)]
    assert ctx.plan.layer("c1").shift == 6 and ctx.plan.layer("fc").in_signed


def test_two_input_unit_without_hardware(tmp_path):
    path = _general_unit(tmp_path, c2=True).with_suffix(".json")
    desc = json.loads(path.read_text())
    c2 = {**desc["nodes"][1], "name": "c2"}  # a second conv of the input, the same weights
    desc["nodes"].insert(2, c2)
    desc["nodes"][3].update(inputs=["c1", "c2"], rshift=[6, 6])
    path.write_text(json.dumps(desc))
    with pytest.raises(FlowError, match=r"layer 'a1': a two-input amos op has no hardware"):
        run_flow(cfg(path))


def test_tiny_conv_net_plans(tmp_path):
    ctx = run_flow(cfg(conv_net(tmp_path, stride=2), stop_after="estimate"))
    kinds = [(s.name, s.kind, s.out_bits) for s in ctx.plan.layers]
    assert kinds == [("a1", "conv", 4), ("fc", "dense", None)]
    assert ctx.report["cycles_per_image"] >= 64


def big_dense(tmp_path):
    rng = np.random.default_rng(0)
    nodes = [
        {"name": "input", "op": "input", "inputs": [], "shape": [8, 8, 1], "bits": 8},
        {"name": "h", "op": "dense", "inputs": ["input"], "weight": "h.w", "bias": "h.b",
         "out_features": 512},
        {"name": "a", "op": "amos", "inputs": ["h"], "unit": "r", "rshift": [8]},
        {"name": "fc", "op": "dense", "inputs": ["a"], "weight": "fc.w", "out_features": 10},
    ]
    arrays = {"h.w": rng.integers(-127, 128, (512, 64)), "h.b": np.zeros(512, np.int64),
              "fc.w": rng.integers(-127, 128, (10, 512))}
    return write_description(tmp_path / "big", nodes, {"r": {"kind": "relu", "K": 8}}, arrays)


def test_board_too_small_says_by_how_much(tmp_path):
    with pytest.raises(BudgetError, match=r"does not fit ice40-up5k even fully folded: needs "
                                          r"\d+ SB_RAM40_4K block RAMs, budget 30: over by \d+ "
                                          r"\(\d+%\), layer 'a' dominates"):
        run_flow(cfg(big_dense(tmp_path), board="ice40-up5k", architecture="pipelined"))
    # without an architecture the UP5K falls back to the shared engine, which fits
    ctx = run_flow(cfg(big_dense(tmp_path), board="ice40-up5k", stop_after="estimate"))
    assert ctx.report["architecture"] == "shared"
    assert "even fully folded" in ctx.report["architecture_why"]


def test_board_fit_picks_fastest_that_fits():
    small = run_flow(cfg("digits", board="ice40-up5k", stop_after="estimate"))
    wide = run_flow(cfg("digits", board="ecp5-85f", stop_after="estimate"))
    assert small.report["board"]["fits"] and wide.report["board"]["fits"]
    assert small.report["est_lut4"] <= 0.8 * 5280
    assert wide.report["cycles_per_image"] <= small.report["cycles_per_image"]
    assert wide.report["cycles_per_image"] == 64  # the pixel input: nothing faster exists


def test_target_fps_too_high():
    with pytest.raises(BudgetError, match=r"limited by the pixel input"):
        run_flow(cfg("digits", target_fps=1e7, stop_after="parallelism"))


def test_target_fps_met():
    ctx = run_flow(cfg("digits", target_fps=100_000, stop_after="estimate"))
    assert ctx.report["images_per_s"] >= 100_000
    assert ctx.report["cycles_per_image"] <= 500


def test_choose_for_target_meets_target_in_the_pipeline():
    ctx = run_flow(cfg("digits", stop_after="infer"))
    for target in (2048, 1000, 300, 100):
        plan = apply(copy.deepcopy(ctx.plan), choose_for_target(ctx.plan, target))
        assert pipeline_ii(plan)[0] <= target


def test_parallelism_errors():
    with pytest.raises(FlowError, match=r"--parallelism: no layer 'nope'; layers: act1, fc"):
        run_flow(cfg("digits", parallelism={"nope": {"pe": 2}}, stop_after="parallelism"))
    with pytest.raises(FlowError, match=r"layer 'act1': pe must divide the 32 outputs, not 3"):
        run_flow(cfg("digits", parallelism={"act1": {"pe": 3}}, stop_after="parallelism"))
    with pytest.raises(FlowError, match=r"layer 'act1': pe must be a positive integer, not 0"):
        run_flow(cfg("digits", parallelism={"act1": {"pe": 0}}, stop_after="parallelism"))
    with pytest.raises(FlowError, match=r"--parallelism: not valid JSON"):
        run_flow(cfg("digits", parallelism="{pe", stop_after="parallelism"))
    with pytest.raises(FlowError, match=r"layer 'fc1' \(dense\) takes pe and simd"):
        run_flow(cfg("digits", parallelism={"fc1": {"lanes": 2}}, stop_after="parallelism"))


def test_parallelism_by_ir_name_and_file(tmp_path):
    f = tmp_path / "par.json"
    f.write_text(json.dumps({"fc1": {"pe": 4, "simd": 8}}))
    ctx = run_flow(cfg("digits", parallelism=str(f), stop_after="parallelism"))
    act1 = ctx.plan.layers[0]
    assert (act1.name, act1.pe, act1.simd) == ("act1", 4, 8)


def test_unknown_board_and_step():
    with pytest.raises(FlowError, match=r"unknown board 'ecp5-12f'; known: ecp5-25f"):
        run_flow(cfg("digits", board="ecp5-12f"))
    with pytest.raises(FlowError, match=r"--stop-after: unknown step 'synth'"):
        run_flow(cfg("digits", stop_after="synth"))
