"""Synaptic operations (SynOps) beside the ANN's MACs: snn.run(..., synops=True), the fan-out
maps and python_ref.evaluate's per-layer table, against hand counts and brute-force counts."""
import numpy as np
import pytest

from python_ref import convert as cv
from python_ref import evaluate as ev
from python_ref import ir, snn
from python_ref.data import load_digits

BIAS2 = [1, 3, 7]  # block c2's constant outputs: 1, 2 and 3 spikes per position


def tiny_graph() -> ir.Graph:
    """input (4, 4, 2), 4 bits -> c1 (1x1 identity) -> a1 (ReLU, K = 4: y = pixel)
    -> c2 (3x3, stride 2, padding 1, 3 channels, zero weights, bias 1, 3, 7) -> a2 (y = bias)
    -> fc (dense, 5 outputs); a2 is also read by a gap and by an add (with c2) -> a3, which
    nothing reads."""
    nodes = [
        {"name": "input", "op": "input", "inputs": [], "shape": [4, 4, 2], "bits": 4},
        {"name": "c1", "op": "conv", "inputs": ["input"], "weight": "c1.w", "kernel": 1,
         "stride": 1, "padding": 0, "out_channels": 2},
        {"name": "a1", "op": "amos", "inputs": ["c1"], "unit": "r4", "rshift": [0]},
        {"name": "c2", "op": "conv", "inputs": ["a1"], "weight": "c2.w", "bias": "c2.b",
         "kernel": 3, "stride": 2, "padding": 1, "out_channels": 3},
        {"name": "a2", "op": "amos", "inputs": ["c2"], "unit": "r4", "rshift": [0]},
        {"name": "fc", "op": "dense", "inputs": ["a2"], "weight": "fc.w", "out_features": 5},
        {"name": "pool", "op": "gap", "inputs": ["a2"]},
        {"name": "skip", "op": "add", "inputs": ["c2", "a2"], "lshift": [0, 0]},
        {"name": "a3", "op": "amos", "inputs": ["skip"], "unit": "r4", "rshift": [0]},
    ]
    arrays = {
        "c1.w": np.eye(2, dtype=np.int8).reshape(2, 1, 1, 2),
        "c2.w": np.zeros((3, 3, 3, 2), np.int8),
        "c2.b": np.asarray(BIAS2, np.int32),
        "fc.w": np.ones((5, 12), np.int8),
    }
    return ir.Graph("tiny", nodes, {"r4": {"kind": "relu", "K": 4}}, arrays, ["fc"])


def tiny_images() -> np.ndarray:
    """Image 0: three spiking pixels (1, 2 and 4 spikes); image 1: all zero."""
    x = np.zeros((2, 4, 4, 2), np.uint8)
    x[0, 0, 0, 0] = 1   # 1 spike at (0, 0)
    x[0, 1, 1, 1] = 3   # 2 spikes at (1, 1)
    x[0, 3, 2, 0] = 15  # 4 spikes at (3, 2)
    return x


def test_tiny_network_by_hand():
    g = tiny_graph()
    res = snn.run(g, tiny_images(), synops=True)
    # c2: 3x3, stride 2, padding 1 on 4 rows: output rows 0 and 1 read input rows -1..1 and
    # 1..3, so the rows 0..3 are covered by 1, 2, 1, 1 windows (the same for columns). A spike
    # at (y, x) is multiplied with 3 * cover[y] * cover[x] weights.
    cover = [1, 2, 1, 1]
    c2 = [1 * 3 * cover[0] * cover[0] + 2 * 3 * cover[1] * cover[1]
          + 4 * 3 * cover[3] * cover[2], 0]                         # 3 + 24 + 12 = 39
    a2_spikes = 4 * (1 + 2 + 3)                                     # 2x2 positions, bias 1, 3, 7
    assert c2 == [39, 0]
    assert res.synops["c2"].tolist() == c2
    assert res.synops["fc"].tolist() == [a2_spikes * 5] * 2         # dense: n_out = 5
    assert res.synops["pool"].tolist() == [a2_spikes] * 2           # gap: 1
    assert res.synops["skip"].tolist() == [a2_spikes] * 2           # add: 1 (c2 is no spike map)
    assert set(res.synops) == {"c2", "fc", "pool", "skip"}          # c1 reads pixels, a3 nothing
    # c1 (1x1, 2 channels) reads the input bits: 7 spikes of image 0, fan-out 2 each
    assert res.input_synops["c1"].tolist() == [14, 0]
    # nothing else changes
    plain = snn.run(g, tiny_images())
    assert (plain.logits == res.logits).all() and plain.synops == {} == plain.input_synops
    assert {k: v.tolist() for k, v in plain.spikes.items()} == \
        {k: v.tolist() for k, v in res.spikes.items()}

    # the ANN: c1 4*4*2 * 1*1*2, c2 2*2*3 * 3*3*2, fc 12*5; skip (2-1)*12, gap 2*2*3 - 3
    ops = ev.layer_ops(g)
    assert {k: (v["macs"], v["adds"]) for k, v in ops.items()} == {
        "c1": (64, 0), "a1": (0, 0), "c2": (216, 0), "a2": (0, 0), "fc": (60, 0),
        "pool": (0, 9), "skip": (0, 12), "a3": (0, 0)}
    rows = {r["name"]: r for r in ev.per_layer(g, res)}
    assert rows["c2"] == {"name": "c2", "op": "conv", "spikes": 0.0, "synops": 19.5,
                          "macs": 216, "adds": 0}
    assert rows["a1"]["spikes"] == 3.5 and rows["a2"]["spikes"] == 24.0
    assert rows["a3"]["spikes"] == 4 * (1 + 2 + 3)  # y = 2 * bias: 2, 6, 14
    assert sum(r["synops"] for r in rows.values()) == (39 + 0) / 2 + 24 * 7


def test_fan_out_borders_and_strides():
    assert snn.conv_cover(4, 3, 2, 1).tolist() == [1, 2, 1, 1]
    assert snn.conv_cover(5, 3, 1, 1).tolist() == [2, 3, 3, 3, 2]
    assert snn.conv_cover(4, 1, 2, 0).tolist() == [1, 0, 1, 0]   # 1x1 stride 2 skips odd rows
    assert snn.conv_cover(5, 3, 1, 0).tolist() == [1, 2, 3, 2, 1]
    fan = snn.fan_out((4, 4, 2), {"name": "c", "op": "conv", "kernel": 3, "stride": 2,
                                  "padding": 1, "out_channels": 3})
    assert fan.shape == (4, 4, 2) and fan[1, 1, 0] == fan[1, 1, 1] == 12 and fan[0, 3, 1] == 3
    with pytest.raises(ir.IRError, match="layer 'i': op 'input' does not read spikes"):
        snn.fan_out((4,), {"name": "i", "op": "input"})


def brute_force_synops(g: ir.Graph, x: np.ndarray) -> np.ndarray:
    """Per image: loop over every spike of every AMOS layer (popcount of its output, ReLU units)
    and enumerate the weights it is multiplied with (or the additions it enters)."""
    res = snn.run(g, x, trace=True)
    total = np.zeros(len(x), np.int64)
    for n in g.nodes:
        for src in n.get("inputs", []):
            if g.node[src]["op"] != "amos":
                continue
            spikes = np.bitwise_count(res.traces[src])
            for img in range(len(x)):
                for pos in zip(*np.nonzero(spikes[img]), strict=True):
                    for _ in range(int(spikes[img][pos])):
                        total[img] += _targets(g, n, spikes.shape[1:], pos)
    return total


def _targets(g: ir.Graph, n: dict, shape, pos) -> int:
    """How many weights (or additions) of layer ``n`` one spike at ``pos`` meets."""
    if n["op"] == "dense":
        return sum(1 for _ in range(n["out_features"]))
    if n["op"] != "conv":
        return 1
    y, x, _ = pos
    H, W, _ = shape
    k, s, p = n["kernel"], n["stride"], n["padding"]
    count = 0
    for oy in range((H + 2 * p - k) // s + 1):
        for ox in range((W + 2 * p - k) // s + 1):
            for _o in range(n["out_channels"]):
                for ky in range(k):
                    for kx in range(k):
                        count += oy * s + ky - p == y and ox * s + kx - p == x
    return count


def test_digits_totals_equal_a_brute_force_count():
    g = ir.load(cv.ZOO / "digits")
    g.index()
    x, _ = load_digits("test")
    x = x[:4]
    res = snn.run(g, x, synops=True)
    assert (sum(res.synops.values()) == brute_force_synops(g, x)).all()
    assert (res.synops["fc"] == 10 * res.spikes["act1"]).all()


def test_tiny_network_random_images_equal_a_brute_force_count():
    g = tiny_graph()
    g.arrays["c2.w"] = np.random.default_rng(1).integers(-3, 4, (3, 3, 3, 2)).astype(np.int8)
    g.index()
    x = np.random.default_rng(2).integers(0, 16, (3, 4, 4, 2)).astype(np.uint8)
    res = snn.run(g, x, synops=True)
    assert (sum(res.synops.values()) == brute_force_synops(g, x)).all()


def test_resnet8_conv_synops_equal_window_sums():
    """Each conv's SynOps counted from the other side: every output position's window gathers
    the spikes in it (a conv with all-one weights), times C_out."""
    g = ir.load(cv.ZOO / "resnet8")
    x = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    res = snn.run(g, x, trace=True, synops=True)
    for n in g.nodes:
        if n["op"] != "conv" or n["inputs"] == ["input"]:
            continue
        spikes = np.bitwise_count(res.traces[n["inputs"][0]]).astype(np.int64)
        ones = np.ones((1, n["kernel"], n["kernel"], spikes.shape[-1]), np.int64)
        window = snn.conv2d(spikes, ones, None, n["stride"], n["padding"])
        assert (res.synops[n["name"]] == n["out_channels"] * window.sum((1, 2, 3))).all(), \
            n["name"]
    assert (res.synops["gap"] == res.spikes["block2.act2"]).all()
    assert (res.synops["block0.add"] == res.spikes["stem.act"]).all()
