# amaranth: UnusedElaboratable=no
"""Fast tier: a bit-serial dense layer after a global average pool. The pool emits its sums in a
burst during its last pixel; a dense layer reading fewer elements a cycle (``planes <
in_bits``) reads them through an image buffer (:meth:`amos_hw.plan.NetworkPlan.image_buffered`),
or the pool and the layers before it stalled on every image (a MobileNet measured 34,241 cycles
per image against 32,768 reported). The result intervals equal the report and the logits equal
python_ref.snn."""
from __future__ import annotations

import numpy as np
import pytest

from amos_hw.flow import build_network
from amos_hw.plan import lower
from python_ref import ir, snn
from tests.test_plan_pool import result_cycles, simulate


def conv_gap_dense(path, classes=2, channels=8) -> ir.Graph:
    """conv 1x1 -> ReLU -> gap -> dense on an 8x8x3 input, random int8 weights."""
    rng = np.random.default_rng(5)
    A = {"c.w": rng.integers(-127, 128, (channels, 1, 1, 3)),
         "c.b": rng.integers(-2000, 2000, channels),
         "fc.w": rng.integers(-127, 128, (classes, channels)),
         "fc.b": rng.integers(-1000, 1000, classes)}
    n = [{"name": "input", "op": "input", "inputs": [], "shape": [8, 8, 3], "bits": 8},
         {"name": "c", "op": "conv", "inputs": ["input"], "weight": "c.w", "bias": "c.b",
          "kernel": 1, "stride": 1, "padding": 0, "out_channels": channels},
         {"name": "c.act", "op": "amos", "inputs": ["c"], "unit": "r", "rshift": [9]},
         {"name": "g", "op": "gap", "inputs": ["c.act"]},
         {"name": "fc", "op": "dense", "inputs": ["g"], "weight": "fc.w", "bias": "fc.b",
          "out_features": classes}]
    g = ir.Graph("conv_gap_dense", n, {"r": {"kind": "relu", "K": 4}}, A, ["fc"])
    ir.validate(g)
    ir.save(g, path)
    return g


#: The convolution the slowest (a word a cycle, no slack), the dense layer bit-serial
#: (buffered) or bit-parallel (not buffered: it keeps up with the pool's burst).
FOLDINGS = [
    ({"c.act": {"pe": 1, "simd": 3}, "fc": {"pe": 2, "simd": 1, "planes": 1}}, True),
    ({"c.act": {"pe": 1, "simd": 3}, "fc": {"pe": 1, "simd": 1}}, False),
]


@pytest.mark.parametrize(("par", "buffered"), FOLDINGS, ids=["bit-serial", "bit-parallel"])
def test_dense_after_gap_meets_the_report(tmp_path, par, buffered):
    g = conv_gap_dense(tmp_path / "cgd")
    top = build_network(tmp_path / "cgd.json", parallelism=par)
    plan = lower(g)
    fc = top.plan.layer("fc")
    assert top.plan.image_buffered(fc) is buffered
    assert not plan.image_buffered(plan.layer("g")) and not plan.image_buffered(plan.layer("c.act"))
    x = np.random.default_rng(3).integers(0, 256, (3, 8, 8, 3)).astype(np.uint8)
    ref = snn.run(g, x)
    logits, cls = simulate(top, x, idle=0.2, backpressure=0.3, seed=4)
    assert (logits == ref.logits).all() and (cls == ref.classes).all()
    outs = result_cycles(top, x)
    slowest = max(top.plan.layers, key=lambda lay: lay.cycles)
    assert outs[2] - outs[1] == top.cycles_per_image == slowest.cycles
    assert slowest.name == "c.act"
