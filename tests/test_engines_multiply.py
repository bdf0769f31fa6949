# amaranth: UnusedElaboratable=no
"""Fast tier: the products form of the matrix-vector unit (``multiply``: each weight times its
whole input word, a multiplier each, a ``MULT18X18D`` on the ECP5) in the Amaranth simulator,
bit for bit against python_ref with input gaps and output stalls, its cycles and latency equal
to the figures; its checks; its estimate and DSP count through the flow (``--parallelism``'s
``"multiply": true``). The whole-network check is ``tests/test_top.py``'s second tiny folding
(the stem, a projection and the logits in this form)."""
from __future__ import annotations

import numpy as np
import pytest

from amos_hw import cost
from amos_hw.engines.conv import ConvEngine
from amos_hw.engines.dense import DenseEngine
from amos_hw.engines.figures import DenseParams
from amos_hw.flow import BudgetError, FlowError, run_flow
from amos_hw.lib.engine_sim import output_cycles, run_engine, to_words
from amos_hw.passes.common import FlowConfig
from python_ref import snn
from python_ref.quant import IntAmosUnit, requant_shift


def reference(acc, shift, out_bits):
    """Requantisation then the ReLU AMOS unit, or the raw value (python_ref directly)."""
    if out_bits is None:
        return requant_shift(acc, shift)
    return snn.requant_unit([acc], [shift], IntAmosUnit.relu(out_bits))[0]


CASES = {
    # name: (n_out, n_in, pe, simd, in_bits, in_signed, out_bits, credits)
    "pixels_folded_relu": (6, 9, 2, 3, 8, False, 4, True),
    "pixels_serial_raw": (4, 6, 1, 1, 8, False, None, False),
    "spikes_parallel": (4, 8, 4, 8, 4, False, 3, False),
    "signed_odd_simd": (6, 9, 3, 3, 6, True, None, True),
}


def make(name, seed=0):
    n_out, n_in, pe, simd, in_bits, in_signed, out_bits, credits = CASES[name]
    rng = np.random.default_rng(seed + n_in)
    w = rng.integers(-127, 128, (n_out, n_in))
    w[0, 0], w[-1, -1] = -127, 127  # both ends of the product range
    b = rng.integers(-3000, 3001, n_out)
    dut = DenseEngine(w, b, in_bits=in_bits, shift=6, out_bits=out_bits, pe=pe, simd=simd,
                      credits=credits, in_signed=in_signed, multiply=True)
    lo, hi = (-(2 ** (in_bits - 1)), 2 ** (in_bits - 1)) if in_signed else (0, 2 ** in_bits)
    a = rng.integers(lo, hi, (5, n_in))
    a[0, 0], a[1, -1] = lo, hi - 1
    return dut, a


@pytest.mark.parametrize("name", CASES)
def test_products_against_reference(name):
    dut, a = make(name)
    n = a.shape[0] * dut.n_out // dut.pe
    hw = run_engine(dut, to_words(a, dut.simd), n, in_lanes=dut.simd, out_lanes=dut.pe,
                    seed=len(name)).reshape(a.shape[0], dut.n_out)
    assert hw.tolist() == reference(snn.dense(a, dut.weights, dut.bias), dut.shift,
                                    dut.out_bits).tolist()


@pytest.mark.parametrize("name", ["pixels_folded_relu", "pixels_serial_raw", "signed_odd_simd"])
def test_products_cycles_and_latency_exact(name):
    """Vectors back to back: the first output ``latency`` cycles after the first input, one
    vector every ``(N_out / pe) * (N_in / simd)`` cycles, as the figures say."""
    dut, a = make(name, seed=1)
    per_image = dut.n_out // dut.pe
    ins, outs = output_cycles(dut, to_words(a, dut.simd), len(a) * per_image)
    firsts = outs[::per_image]
    assert firsts[0] - ins[0] == dut.latency
    n_out, n_in, pe, simd, *_ = CASES[name]
    assert np.diff(firsts).tolist() == [(n_out // pe) * (n_in // simd)] * (len(a) - 1)
    p = dut.params
    assert p.tree_depth == 1 + int(np.ceil(np.log2(simd)))


def test_products_figures_against_gated_planes():
    """The stem's shape (27 -> 16, 8-bit pixels, pe 4, simd 3): the products form states
    pe * simd multipliers and the LUT4 they save, fewer LUT4 and flip-flops once those are
    on DSP blocks, the same cycles; the gated form states none."""
    rng = np.random.default_rng(0)
    w, b = rng.integers(-127, 128, (16, 27)), rng.integers(-3000, 3000, 16)
    kw = {"in_bits": 8, "shift": 8, "out_bits": 6, "pe": 4, "simd": 3, "carry": "ecp5"}
    gated = DenseEngine.figures(w, b, **kw)
    prod = DenseEngine.figures(w, b, **kw, multiply=True)
    assert (gated.multipliers, gated.multiplier_luts) == (0, 0)
    assert prod.multipliers == 12
    assert prod.cycles == gated.cycles
    assert prod.luts - prod.multiplier_luts < gated.luts
    assert prod.flip_flops < gated.flip_flops
    conv = ConvEngine.figures(w.reshape(16, 3, 3, 3), b, height=8, width=8, padding=1, **kw,
                              multiply=True)
    assert (conv.multipliers, conv.multiplier_luts) == (prod.multipliers, prod.multiplier_luts)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"in_bits": 8, "planes": 4}, r"d: multiply takes whole input words, all 8 planes in a "
                                  r"cycle \(planes = in_bits\), not planes = 4"),
    ({"in_bits": 18}, r"d: multiply needs operands of at most 18 signed bits .*the inputs "
                      r"take 19, the weights 8"),
    ({"in_bits": 4, "multiply": 1}, r"d: multiply must be a bool, not 1"),
])
def test_products_messages(kwargs, message):
    w = np.full((2, 4), -127)
    w[0, 0] = 127
    kwargs = {"multiply": True, **kwargs}
    with pytest.raises(ValueError, match=message):
        DenseParams.check(w, np.zeros(2, int), shift=0, out_bits=None, name="d", **kwargs)


def cfg(**kw):
    return FlowConfig(model="digits", stop_after="estimate", **kw)


def test_flow_products_on_dsp_blocks_on_the_ecp5():
    """``"multiply": true`` in a folding: the plan and the parallelism step carry it, the
    estimate on an ECP5 counts ``pe * simd`` DSP blocks and takes their LUT4 out; elsewhere
    (no device family) the products stay in the LUT4 and no DSP is counted; a device with
    fewer DSP blocks refuses the design, naming the layer."""
    par = {"act1": {"pe": 4, "simd": 8, "multiply": True}, "fc": {"pe": 2, "simd": 4}}
    ecp5 = run_flow(cfg(parallelism=par, board="ecp5-45f"))
    bare = run_flow(cfg(parallelism=par))
    gated = run_flow(cfg(parallelism={**par, "act1": {"pe": 4, "simd": 8}}, board="ecp5-45f"))
    rows = {name: {r["name"]: r for r in ctx.report["layers"]}
            for name, ctx in (("ecp5", ecp5), ("bare", bare), ("gated", gated))}
    assert rows["ecp5"]["act1"]["multiply"] is True and "multiply" not in rows["ecp5"]["fc"]
    assert ecp5.plan.layer("act1").as_dict()["multiply"] is True
    assert "multiply" not in gated.plan.layer("act1").as_dict()
    assert rows["ecp5"]["act1"]["est_dsp"] == 32 and rows["bare"]["act1"]["est_dsp"] == 0
    assert rows["gated"]["act1"]["est_dsp"] == 0
    assert rows["ecp5"]["act1"]["est_lut4"] < rows["bare"]["act1"]["est_lut4"]
    assert ecp5.report["est_dsp"] == 32
    assert rows["ecp5"]["act1"]["cycles_per_image"] == rows["gated"]["act1"]["cycles_per_image"]
    # the flow's layer rows are cost.layer_rows of the plan
    assert cost.layer_rows(ecp5.plan, ecp5.graph.arrays, "ecp5")[0]["est_dsp"] == 32
    with pytest.raises(BudgetError, match=r"needs 32 DSP blocks, budget 28: over by 4 "
                                          r"\(14%\), layer 'act1' dominates with 32"):
        run_flow(cfg(parallelism=par, board="ecp5-25f"))


@pytest.mark.parametrize(("par", "message"), [
    ({"act1": {"multiply": 1}}, r"layer 'act1': multiply must be true or false, not 1"),
    ({"act1": {"planes": 2, "multiply": True}},
     r"layer 'act1': multiply takes whole input words \(planes = \d+\), not planes = 2"),
    ({"act1": {"lanes": 2}}, r"layer 'act1' \(dense\) takes pe and simd and planes "
                             r"\(and multiply\)"),
])
def test_flow_products_messages(par, message):
    with pytest.raises(FlowError, match=message):
        run_flow(cfg(parallelism=par))
