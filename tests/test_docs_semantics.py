"""docs/integer_semantics.md and docs/ir.md are enough to re-implement the integer network.

An outside implementer's version, written in plain numpy from the formulas of those two pages
only (explicit loops over kernel taps, no im2col, no python_ref helpers), is compared with the
reference :func:`python_ref.snn.run` (every traced tensor, the logits, the classes and the spike
counts, ``==``) on the shipped digits and ResNet8 descriptions, on CIFAR-10 test images when the
data set is present (random images otherwise), on a small network with general AMOS units,
a missing bias and a two-input unit, and on one with max and average pooling and a depthwise
conv.
"""
import math

import numpy as np
import pytest

from python_ref import ir, snn
from python_ref.convert import ZOO
from python_ref.data import DataError, load_cifar10, load_digits

# ---------------------------------------------------------------------------------------------
# The re-implementation, from the documents alone (one image at a time)
# ---------------------------------------------------------------------------------------------


def doc_windows(a, k, s, p):
    """``ap`` (``p`` zeros on all four sides) and, per tap ``(ky, kx)``, the ``(Ho, Wo, C)``
    values ``ap[oy*s + ky, ox*s + kx, c]``."""
    H, W, C = a.shape
    ap = np.zeros((H + 2 * p, W + 2 * p, C), np.int64)
    ap[p:p + H, p:p + W] = a
    Ho, Wo = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
    return {(ky, kx): ap[ky:ky + s * (Ho - 1) + 1:s, kx:kx + s * (Wo - 1) + 1:s]
            for ky in range(k) for kx in range(k)}


def doc_conv(a, wt, bias, s, p, groups=1):
    """``acc[oy, ox, o] = bias[o] + sum Wt[o, ky, kx, c] * ap[oy*s + ky, ox*s + kx, c]``;
    depthwise (``groups = C``): ``bias[c] + sum Wt[c, ky, kx, 0] * ap[.., .., c]``."""
    C = a.shape[2]
    O, k, k2, C2 = wt.shape
    assert k == k2 and (C == C2 if groups == 1 else (groups == C == O and C2 == 1))
    acc = 0
    for (ky, kx), rows in doc_windows(a, k, s, p).items():  # rows: (Ho, Wo, C)
        if groups == 1:
            acc = acc + rows @ wt[:, ky, kx, :].astype(np.int64).T
        else:
            acc = acc + rows * wt[:, ky, kx, 0].astype(np.int64)
    return acc + (0 if bias is None else bias.astype(np.int64))


def doc_pool(a, k, s, p, how):
    """``maxpool``: the max over the window of ``ap``; ``avgpool``: the sum, no division."""
    taps = list(doc_windows(a, k, s, p).values())
    return np.max(taps, axis=0) if how == "maxpool" else np.sum(taps, axis=0)


def doc_bits(doc, name):
    """The width of an unsigned activation: input bits, a ReLU unit's K, a maxpool's input's,
    an avgpool's input's + ceil(log2(k*k))."""
    n = {m["name"]: m for m in doc["nodes"]}[name]
    if n["op"] == "input":
        return n["bits"]
    if n["op"] == "amos":
        return doc["units"][n["unit"]]["K"]
    extra = math.ceil(math.log2(n["kernel"] ** 2)) if n["op"] == "avgpool" else 0
    return doc_bits(doc, n["inputs"][0]) + extra


def doc_dense(a, wt, bias):
    """``acc[o] = bias[o] + sum_i Wt[o, i] * f[i]``, ``f[(y*W + x)*C + c] = a[y, x, c]``."""
    shape = a.shape
    f = np.zeros(a.size, np.int64)
    if a.ndim == 3:
        H, W, C = shape
        for y in range(H):
            for x in range(W):
                for c in range(C):
                    f[(y * W + x) * C + c] = a[y, x, c]
    else:
        f[:] = a
    return wt.astype(np.int64) @ f + (0 if bias is None else bias.astype(np.int64))


def doc_requant(acc, S):
    """``floor((acc + 2^(S-1)) / 2^S)``; ``acc`` for ``S = 0``."""
    if S == 0:
        return acc
    return np.floor_divide(acc + 2 ** (S - 1), 2**S)


def doc_unit(spec, arrays, vs):
    """The unit of a layer on its requantised inputs; returns (y, spike count per element)."""
    if spec["kind"] == "relu":
        K = spec["K"]
        y = np.minimum(np.maximum(vs[0], 0), 2**K - 1)
        z = np.stack([(y >> (K - 1 - t)) & 1 for t in range(K)], -1)
        return y, z.sum(-1)
    c = arrays[spec["c"]].astype(np.int64)
    K = len(c)
    T, d = arrays[spec["T"]].astype(np.int64), arrays[spec["d"]].astype(np.int64)
    h = arrays[spec["h"]].astype(np.int64)
    lo, hi = spec.get("in_range") or (-(2**31), 2**31 - 1)
    x = np.clip(vs[0], lo, hi)
    u0 = c[:, None] * x.reshape(1, -1)
    if spec.get("c2"):
        lo2, hi2 = spec.get("in2_range") or (lo, hi)
        x2 = np.clip(vs[1], lo2, hi2)
        u0 = u0 + arrays[spec["c2"]].astype(np.int64)[:, None] * x2.reshape(1, -1)
    z = np.zeros((K, x.size), np.int64)
    for i in range(K):
        inhib = sum(h[i, j] * z[j] for j in range(i))
        z[i] = (u0[i] - inhib - T[i]) >= 0
    y = (d[:, None] * z).sum(0).reshape(x.shape)
    return y, z.sum(0).reshape(x.shape)


def doc_run(doc, arrays, image):
    """One image through the description; returns (tensors, spikes per amos layer)."""
    vals, spikes = {}, {}
    for n in doc["nodes"]:
        ins = [vals[i] for i in n["inputs"]]
        bias = arrays[n["bias"]] if n.get("bias") is not None else None
        if n["op"] == "input":
            out = image.astype(np.int64)
        elif n["op"] == "conv":
            out = doc_conv(ins[0], arrays[n["weight"]], bias, n["stride"], n["padding"],
                           n.get("groups", 1))
        elif n["op"] in ("maxpool", "avgpool"):
            out = doc_pool(ins[0], n["kernel"], n["stride"], n["padding"], n["op"])
            assert 0 <= out.min() and out.max() < 2 ** doc_bits(doc, n["name"])
        elif n["op"] == "dense":
            out = doc_dense(ins[0], arrays[n["weight"]], bias)
        elif n["op"] == "add":
            out = sum(x * 2**sh for x, sh in zip(ins, n["lshift"], strict=True))
        elif n["op"] == "gap":
            out = ins[0].sum(axis=(0, 1))
        else:  # amos
            vs = [doc_requant(x, S) for x, S in zip(ins, n["rshift"], strict=True)]
            if len(vs) == 2:  # g of shape (C,) pairs x[h, w, c] with g[c]
                vs[1] = np.broadcast_to(vs[1], vs[0].shape)
            out, count = doc_unit(doc["units"][n["unit"]], arrays, vs)
            spikes[n["name"]] = int(count.sum())
        vals[n["name"]] = out
    return vals, spikes


def doc_class(logits):
    """Argmax, lowest index on ties."""
    best = 0
    for i in range(1, len(logits)):
        if logits[i] > logits[best]:
            best = i
    return best


def check_against_reference(g, images):
    ref = snn.run(g, images, trace=True)
    doc = g.to_json()
    for i, image in enumerate(images):
        vals, spikes = doc_run(doc, g.arrays, image)
        for name, v in vals.items():
            assert np.array_equal(v, ref.traces[name][i]), (name, i)
        assert np.array_equal(vals[doc["outputs"][0]], ref.logits[i])
        assert doc_class(vals[doc["outputs"][0]]) == ref.classes[i]
        assert spikes == {k: int(v[i]) for k, v in ref.spikes.items()}


# ---------------------------------------------------------------------------------------------
# The shipped networks
# ---------------------------------------------------------------------------------------------


def test_digits_from_the_docs():
    x, _ = load_digits("test")
    check_against_reference(ir.load(ZOO / "digits"), x[:8])


def _cifar_or_random(n):
    try:
        x, _ = load_cifar10(None, "test")
        return x[np.linspace(0, len(x) - 1, n).astype(int)]
    except DataError:
        return np.random.default_rng(1).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def test_resnet8_from_the_docs():
    """Two CIFAR-10 test images (random pixels when the data set is absent)."""
    check_against_reference(ir.load(ZOO / "resnet8"), _cifar_or_random(2))


# the table of docs/integer_semantics.md: largest |weight| (fine-tuned, plain conversion)
LARGEST_WEIGHT = {
    "stem.conv": (127, 127), "block0.conv1": (127, 127), "block0.conv2": (82, 82),
    "block1.conv1": (127, 127), "block1.conv2": (44, 43), "block1.shortcut": (127, 127),
    "block2.conv1": (127, 127), "block2.conv2": (127, 127), "block2.shortcut": (48, 47),
    "fc": (127, 127),
}


def test_largest_weight_table():
    for col, stem in enumerate(("resnet8", "resnet8_plain")):
        g = ir.load(ZOO / stem)
        got = {n["name"]: int(np.abs(g.arrays[n["weight"]]).max())
               for n in g.nodes if n["op"] in ("conv", "dense")}
        assert got == {k: v[col] for k, v in LARGEST_WEIGHT.items()}, stem


def test_resnet8_scales_as_documented():
    """Identity skip: s_acc = s_skip * 2^-lshift; projection: one accumulator scale; output
    scale s_acc * 2^S with alpha_cal <= alpha < 2 * alpha_cal."""
    g = ir.load(ZOO / "resnet8")
    node = g.node
    add = node["block0.add"]
    assert node["block0.conv2"]["scale"] * 2 ** add["lshift"][1] == pytest.approx(
        node["stem.act"]["scale"], rel=1e-12)
    for b in ("block1", "block2"):
        assert node[f"{b}.conv2"]["scale"] == node[f"{b}.shortcut"]["scale"]
    for n in g.amos_nodes():
        s_acc = node[n["inputs"][0]]["scale"]
        assert n["scale"] == pytest.approx(s_acc * 2 ** n["rshift"][0], rel=1e-12)
        assert n["alpha"] == pytest.approx(n["scale"] * 2**10, rel=1e-12)
        assert n["rshift"][0] >= 1 and n["alpha_cal"] <= n["alpha"] < 2 * n["alpha_cal"]


# ---------------------------------------------------------------------------------------------
# What the shipped networks do not exercise
# ---------------------------------------------------------------------------------------------


def test_rounding_ties_towards_plus_infinity():
    acc = np.array([1, 3, -1, -3])
    assert doc_requant(acc, 1).tolist() == [1, 2, 0, -1]
    assert np.array_equal(snn.requant_unit([acc], [1], ir.make_unit(
        "r", {"kind": "relu", "K": 4}, {}))[0], np.clip(doc_requant(acc, 1), 0, 15))


def _small_graph():
    """Input 5x5x2 -> two convs (3x3 and 2x2, stride 2, padding 1, one without bias) -> a
    two-input general unit and a one-input general unit -> add -> gap -> dense."""
    rng = np.random.default_rng(7)
    K = 5
    arrays = {
        "a.weight": rng.integers(-127, 128, (3, 3, 3, 2)).astype(np.int8),
        "a.bias": rng.integers(-300, 300, 3).astype(np.int32),
        "b.weight": rng.integers(-127, 128, (3, 2, 2, 2)).astype(np.int8),
        "fc.weight": rng.integers(-127, 128, (4, 3)).astype(np.int8),
        "u.c": np.array([1, 2, -1, 1, 3]), "u.c2": np.array([1, -1, 2, 1, 1]),
        "u.T": np.array([-2, 0, 1, 3, -1]), "u.h": rng.integers(-4, 5, (K, K)),
        "u.d": np.array([1, -2, 4, 3, -1]),
        "w.c": np.ones(K, np.int64), "w.T": np.array([-4, -2, 0, 2, 4]),
        "w.h": np.zeros((K, K), np.int64), "w.d": np.array([1, 2, 3, -1, 1]),
    }
    units = {
        "mul": {"kind": "amos", "c": "u.c", "c2": "u.c2", "T": "u.T", "h": "u.h", "d": "u.d",
                "in_range": [-7, 9], "in2_range": [-3, 12], "source": "product"},
        "odd": {"kind": "amos", "c": "w.c", "T": "w.T", "h": "w.h", "d": "w.d"},  # no in_range
    }
    nodes = [
        {"name": "input", "op": "input", "inputs": [], "shape": [5, 5, 2], "bits": 8},
        {"name": "a", "op": "conv", "inputs": ["input"], "weight": "a.weight", "bias": "a.bias",
         "kernel": 3, "stride": 2, "padding": 1, "out_channels": 3},
        {"name": "b", "op": "conv", "inputs": ["input"], "weight": "b.weight", "bias": None,
         "kernel": 2, "stride": 2, "padding": 1, "out_channels": 3},
        {"name": "m", "op": "amos", "inputs": ["a", "b"], "unit": "mul", "rshift": [12, 12]},
        {"name": "o", "op": "amos", "inputs": ["b"], "unit": "odd", "rshift": [11]},
        {"name": "s", "op": "add", "inputs": ["m", "o", "a"], "lshift": [3, 1, 0]},
        {"name": "gap", "op": "gap", "inputs": ["s"]},
        {"name": "fc", "op": "dense", "inputs": ["gap"], "weight": "fc.weight",
         "out_features": 4},
    ]
    return ir.Graph("small", nodes, units, arrays, ["fc"])


def test_general_units_missing_bias_and_odd_sizes_from_the_docs():
    g = _small_graph()
    info = ir.validate(g)
    assert info["a"]["shape"] == (3, 3, 3)  # floor((5 + 2 - 3) / 2) + 1
    # floor((5 + 2 - 2) / 2) + 1: the last padding row and column are not read
    assert info["b"]["shape"] == (3, 3, 3)
    x = np.random.default_rng(3).integers(0, 256, (6, 5, 5, 2), dtype=np.uint8)
    check_against_reference(g, x)
    # the inputs do leave the units' ranges, so saturation is exercised
    ref = snn.run(g, x, trace=["a", "b"])
    v = doc_requant(ref.traces["a"], 12)
    assert v.min() < -7 and v.max() > 9


def _gate_graph():
    """Input 5x5x2 -> conv -> one-input unit x (3 channels) -> gap -> dense -> one-input unit
    g (3 values) -> the gate, a two-input unit [x, g] with g broadcast over x -> gap -> dense."""
    g = _small_graph()
    rng = np.random.default_rng(11)
    g.arrays.update({"d.weight": rng.integers(-127, 128, (3, 3)).astype(np.int8),
                     "d.bias": rng.integers(-300, 300, 3).astype(np.int32)})
    g.nodes = g.nodes[:2] + [
        {"name": "x", "op": "amos", "inputs": ["a"], "unit": "odd", "rshift": [14]},
        {"name": "p", "op": "gap", "inputs": ["x"]},
        {"name": "d", "op": "dense", "inputs": ["p"], "weight": "d.weight", "bias": "d.bias",
         "out_features": 3},
        {"name": "s", "op": "amos", "inputs": ["d"], "unit": "odd", "rshift": [11]},
        {"name": "m", "op": "amos", "inputs": ["x", "s"], "unit": "mul", "rshift": [0, 1]},
        {"name": "gap", "op": "gap", "inputs": ["m"]},
        {"name": "fc", "op": "dense", "inputs": ["gap"], "weight": "fc.weight",
         "out_features": 4},
    ]
    return g


def test_gate_with_broadcast_from_the_docs():
    g = _gate_graph()
    info = ir.validate(g)
    assert info["m"]["shape"] == info["x"]["shape"] == (3, 3, 3) and info["s"]["shape"] == (3,)
    x = np.random.default_rng(5).integers(0, 256, (6, 5, 5, 2), dtype=np.uint8)
    check_against_reference(g, x)
    ref = snn.run(g, x, trace=["s", "m"])
    # g differs between the channels of an image (so a wrong pairing would show) and the gate
    # output is not constant
    assert any(len(set(row.tolist())) > 1 for row in ref.traces["s"])
    assert len(np.unique(ref.traces["m"])) > 2


def test_argmax_lowest_index_on_ties():
    g = ir.load(ZOO / "digits").copy()
    g.arrays["fc.weight"][:] = 0
    g.arrays["fc.bias"][:] = [0, 5, 3, 5, 5, 0, 0, 0, 0, 0]
    x, _ = load_digits("test")
    res = snn.run(g, x[:3])
    assert res.classes.tolist() == [1, 1, 1] == [doc_class(v) for v in res.logits]


def test_conv_is_torch_cross_correlation():
    """The documented conv is torch's conv2d with the weight moved from (O, C, kh, kw) to
    (O, kh, kw, C) and the input from NCHW to NHWC."""
    torch = pytest.importorskip("torch")  # the `train` extra
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (2, 9, 9, 3))
    w = rng.integers(-127, 128, (4, 3, 3, 3))  # torch layout
    for s, p in ((1, 1), (2, 1), (2, 0)):
        t = torch.nn.functional.conv2d(torch.from_numpy(a).permute(0, 3, 1, 2).double(),
                                       torch.from_numpy(w).double(), stride=s, padding=p)
        want = t.permute(0, 2, 3, 1).numpy().astype(np.int64)
        got = np.stack([doc_conv(im, w.transpose(0, 2, 3, 1), None, s, p) for im in a])
        assert np.array_equal(got, want), (s, p)


def test_activation_within_half_a_step_below_saturation():
    """y * s is within s/2 of ReLU(r) for r <= (2^K - 1/2) s, and 2^K - 1 above."""
    K, S = 10, 7
    acc = np.arange(-5000, 2 ** (K + S) + 5000)
    y = np.clip(doc_requant(acc, S), 0, 2**K - 1)
    r = acc / 2**S  # the accumulator's real value in output steps s
    below = r <= 2**K - 0.5
    assert np.abs(y[below] - np.maximum(r[below], 0)).max() == 0.5
    assert (y[~below] == 2**K - 1).all()


def _pool_graph():
    """Input 7x7x3 (8 bits) -> avgpool 2/1 (the pixels) -> conv 3x3 s1 p1 -> ReLU K=6 ->
    maxpool 3/2 p1 -> depthwise conv 3x3 s2 p1 -> ReLU K=5 -> maxpool 1/1 -> avgpool 3/1 p1
    -> dense."""
    rng = np.random.default_rng(11)
    arrays = {
        "c.weight": rng.integers(-127, 128, (4, 3, 3, 3)).astype(np.int8),
        "c.bias": rng.integers(-3000, 3000, 4).astype(np.int32),
        "dw.weight": rng.integers(-127, 128, (4, 3, 3, 1)).astype(np.int8),
        "dw.bias": rng.integers(-300, 300, 4).astype(np.int32),
        "fc.weight": rng.integers(-127, 128, (3, 2 * 2 * 4)).astype(np.int8),
    }
    nodes = [
        {"name": "input", "op": "input", "inputs": [], "shape": [7, 7, 3], "bits": 8},
        {"name": "ip", "op": "avgpool", "inputs": ["input"], "kernel": 2, "stride": 1,
         "padding": 0},
        {"name": "c", "op": "conv", "inputs": ["ip"], "weight": "c.weight", "bias": "c.bias",
         "kernel": 3, "stride": 1, "padding": 1, "out_channels": 4},
        {"name": "a", "op": "amos", "inputs": ["c"], "unit": "r6", "rshift": [9]},
        {"name": "mp", "op": "maxpool", "inputs": ["a"], "kernel": 3, "stride": 2,
         "padding": 1},
        {"name": "dw", "op": "conv", "inputs": ["mp"], "weight": "dw.weight",
         "bias": "dw.bias", "kernel": 3, "stride": 2, "padding": 1, "out_channels": 4,
         "groups": 4},
        {"name": "b", "op": "amos", "inputs": ["dw"], "unit": "r5", "rshift": [5]},
        {"name": "mp1", "op": "maxpool", "inputs": ["b"], "kernel": 1, "stride": 1,
         "padding": 0},
        {"name": "ap", "op": "avgpool", "inputs": ["mp1"], "kernel": 3, "stride": 1,
         "padding": 1},
        {"name": "fc", "op": "dense", "inputs": ["ap"], "weight": "fc.weight",
         "out_features": 3},
    ]
    units = {"r6": {"kind": "relu", "K": 6}, "r5": {"kind": "relu", "K": 5}}
    return ir.Graph("pools", nodes, units, arrays, ["fc"])


def test_pools_and_depthwise_conv_from_the_docs():
    g = _pool_graph()
    info = ir.validate(g)
    assert info["ip"]["shape"] == (6, 6, 3) and info["mp"]["shape"] == (3, 3, 4)
    assert info["dw"]["shape"] == (2, 2, 4) and info["ap"]["shape"] == (2, 2, 4)
    doc = g.to_json()
    for name in ("input", "ip", "a", "mp", "b", "mp1", "ap"):
        assert doc_bits(doc, name) == ir.activation_bits(g, name), name
    x = np.random.default_rng(4).integers(0, 256, (5, 7, 7, 3), dtype=np.uint8)
    check_against_reference(g, x)
    ref = snn.run(g, x, trace=["a", "b"])
    assert ref.traces["a"].max() > 0 and ref.traces["b"].max() > 0  # not a dead network
    assert np.array_equal(snn.run(g, x, bitserial=True).logits, ref.logits)


def test_depthwise_conv_is_torch_grouped_conv():
    """The documented depthwise conv is torch's conv2d with groups = C, the weight moved from
    (C, 1, kh, kw) to (C, kh, kw, 1)."""
    torch = pytest.importorskip("torch")  # the `train` extra
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (2, 8, 7, 3))
    w = rng.integers(-127, 128, (3, 1, 3, 3))  # torch layout
    for s, p in ((1, 1), (2, 1), (2, 0)):
        t = torch.nn.functional.conv2d(torch.from_numpy(a).permute(0, 3, 1, 2).double(),
                                       torch.from_numpy(w).double(), stride=s, padding=p,
                                       groups=3)
        want = t.permute(0, 2, 3, 1).numpy().astype(np.int64)
        got = np.stack([doc_conv(im, w.transpose(0, 2, 3, 1), None, s, p, 3) for im in a])
        assert np.array_equal(got, want), (s, p)


def test_pools_are_torch_pools():
    """maxpool is torch's max_pool2d (its -inf padding) on non-negative maps; avgpool is k*k
    times torch's avg_pool2d with count_include_pad."""
    torch = pytest.importorskip("torch")
    a = np.random.default_rng(2).integers(0, 64, (2, 7, 6, 3))
    t = torch.from_numpy(a).permute(0, 3, 1, 2).double()
    for k, s, p in ((2, 2, 0), (3, 2, 1), (3, 1, 1)):
        mx = torch.nn.functional.max_pool2d(t, k, s, p).permute(0, 2, 3, 1).numpy()
        av = torch.nn.functional.avg_pool2d(t, k, s, p, count_include_pad=True)
        av = np.rint(av.permute(0, 2, 3, 1).numpy() * k * k)
        assert np.array_equal(np.stack([doc_pool(im, k, s, p, "maxpool") for im in a]), mx)
        assert np.array_equal(np.stack([doc_pool(im, k, s, p, "avgpool") for im in a]), av)
