"""Linear outputs in a user's model: a conv / dense / add with no activation that another layer
reads gets an ``identity`` op (python_ref.importers.common.insert_identities), quantised as the
signed identity unit (python_ref.quant.IntAmosUnit.identity, K = d_bits of --unit-bits): a true
MBConv block (linear 1x1 projection, identity skip ``x + proj``, nothing after the add) and a
linear layer feeding another one convert. Three small networks trained here on the 8x8 digits
go through torch.onnx.export and the CLI; the float ops are checked against onnxruntime, the
description's identity units against IntAmosUnit.identity and the converter's rules
(docs/integer_semantics.md), the integer SNN against the float model, and the refusals."""
from __future__ import annotations

import contextlib
import io

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import helper
from torch import nn

from python_ref import convert as cv
from python_ref import evaluate as ev
from python_ref import ir, snn
from python_ref.checkpoint import ConversionError
from python_ref.data import load_digits
from python_ref.importers import ModelImportError, import_onnx
from python_ref.importers.common import insert_identities
from python_ref.quant import IntAmosUnit, requant_shift
from tests.test_import_pool import _model, _ort, _pixels
from tests.test_import_se import _export, _nchw

#: run_float (float64) against onnxruntime (float32) on the same float network
FLOAT_ATOL = 1e-4
#: top-1 agreement of the integer SNN with the float model on the 359 test digits (default
#: unit bits); measured 0.992 (linear), 0.947 (mbconv), 0.986 (two blocks). Most of the
#: disagreement is the gates' K = 40 multiplication unit: with exact gate products the
#: agreement is 0.958 and 0.992, and d_bits 12 or 14 (the identities' K) change it by +-0.01.
AGREEMENT = 0.90
#: the SNN's accuracy at most this many points below the float model's; measured 0.6, 1.1, 0.6
#: (float 89.7, 94.4, 98.1 %)
ACCURACY_DROP = 3.0
#: K of every identity unit: the default unit bits' d_bits
D_BITS = cv.DEFAULT_UNIT_BITS[2]


class LinearNet(nn.Module):
    """5x5 conv-bn-ReLU, 1x1 conv-bn (linear), 1x1 conv-bn-ReLU, global average pooling,
    linear."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 16, 5, 1, 2, bias=False), nn.BatchNorm2d(16),
                                  nn.ReLU())
        self.lin = nn.Sequential(nn.Conv2d(16, 6, 1, bias=False), nn.BatchNorm2d(6))
        self.conv = nn.Sequential(nn.Conv2d(6, 16, 1, bias=False), nn.BatchNorm2d(16),
                                  nn.ReLU())
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        y = self.conv(self.lin(self.stem(x)))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(y, 1), 1))


class MBConv(nn.Module):
    """EfficientNet's block: 1x1 expansion-bn-SiLU, depthwise 3x3-bn-SiLU, squeeze-and-
    excitation (Sigmoid gate), 1x1 projection-bn with no activation, ``x + proj``."""

    def __init__(self, c: int, expand: int = 2, squeeze: int = 2):
        super().__init__()
        h = c * expand
        self.expand = nn.Sequential(nn.Conv2d(c, h, 1, bias=False), nn.BatchNorm2d(h),
                                    nn.SiLU())
        self.dw = nn.Sequential(nn.Conv2d(h, h, 3, 1, 1, groups=h, bias=False),
                                nn.BatchNorm2d(h), nn.SiLU())
        self.se = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(h, squeeze, 1), nn.SiLU(),
                                nn.Conv2d(squeeze, h, 1), nn.Sigmoid())
        self.project = nn.Sequential(nn.Conv2d(h, c, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        y = self.dw(self.expand(x))
        return x + self.project(y * self.se(y))


class MBNet(nn.Module):
    """conv-bn-SiLU stem, ``blocks`` MBConv blocks, global average pooling, linear."""

    def __init__(self, blocks: int):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8),
                                  nn.SiLU())
        self.blocks = nn.Sequential(*[MBConv(8) for _ in range(blocks)])
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        y = self.blocks(self.stem(x))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(y, 1), 1))


#: per network: the model, its training epochs and, per identity op in order, (its producer's
#: op, its readers' ops)
NETS = {
    "linear": (LinearNet, 8, [("conv", ["conv"])]),
    "mbconv": (lambda: MBNet(1), 8, [("add", ["gap"])]),
    "two_blocks": (lambda: MBNet(2), 12, [("add", ["conv", "add"]), ("add", ["gap"])]),
}


def _train(make, epochs: int) -> nn.Module:
    torch.manual_seed(0)
    x, y = load_digits("train")
    X, Y = _nchw(x), torch.from_numpy(y).long()
    model = make()
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    gen = torch.Generator().manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # these tiny layers train several times faster on one thread
    try:
        for _ in range(epochs):
            for idx in torch.randperm(len(X), generator=gen).split(32):
                opt.zero_grad()
                nn.functional.cross_entropy(model(X[idx]), Y[idx]).backward()
                opt.step()
    finally:
        torch.set_num_threads(threads)
    return model.eval()


@pytest.fixture(scope="module", params=list(NETS))
def net(request, tmp_path_factory):
    """The network trained, its ONNX file, the CLI's description, the test digits."""
    make, epochs, want = NETS[request.param]
    model = _train(make, epochs)
    d = tmp_path_factory.mktemp(request.param)
    _export(model, d / "m.onnx")
    x, y = load_digits("train")
    np.savez(d / "calib.npz", x=x, y=y)
    xt, yt = load_digits("test")
    np.savez(d / "test.npz", x=xt, y=yt)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        cv.main(["--onnx", str(d / "m.onnx"), "--calib", str(d / "calib.npz"),
                 "--out", str(d / "m"), "--calib-images", "500"])
    with torch.no_grad():
        float_logits = model(_nchw(xt)).numpy()
    return {"name": request.param, "want": want, "dir": d, "g": ir.load(d / "m"), "x": xt,
            "y": yt, "float": float_logits, "printed": out.getvalue()}


def _identities(g) -> list:
    return [n for n in g.amos_nodes() if g.units[n["unit"]].get("source") == "identity"]


def test_float_ops_equal_onnxruntime(net):
    """The identity ops are the identity function: the float ops with and without them equal
    onnxruntime on the ONNX file."""
    ops = import_onnx(net["dir"] / "m.onnx")
    assert "identity" not in [o["op"] for o in ops]
    with_ids = insert_identities(ops)
    assert [o["op"] for o in with_ids].count("identity") == len(net["want"])
    x = net["x"][:20]
    sess = ort.InferenceSession(str(net["dir"] / "m.onnx"))
    name = sess.get_inputs()[0].name
    want = np.concatenate([sess.run(None, {name: _nchw(x[i:i + 1]).numpy()})[0]
                           for i in range(len(x))])
    for o in (ops, with_ids):
        np.testing.assert_allclose(cv.run_float(o, x, dtype=np.float64), want, rtol=0,
                                   atol=FLOAT_ATOL)


def test_identity_units_where_expected(net):
    """One identity unit per linear output that a layer reads as spikes, named after it, with
    the unit IntAmosUnit.identity(d_bits) at the layer's scale; the readers read it."""
    g = net["g"]
    info = ir.validate(g)
    idents = _identities(g)
    readers = {n["name"]: [m for m in g.nodes if n["name"] in m.get("inputs", [])]
               for n in idents}
    got = [(g.node[n["inputs"][0]]["op"], [m["op"] for m in readers[n["name"]]])
           for n in idents]
    assert got == net["want"]
    assert g.meta["unit_bits"]["d_bits"] == D_BITS
    for n in idents:
        src = g.node[n["inputs"][0]]
        assert n["name"] == src["name"] + ".id"
        assert n["unit"] == f"identity_k{D_BITS}.{n['name']}"
        spec, u = g.units[n["unit"]], g.unit(n["unit"])
        ref = IntAmosUnit.identity(D_BITS)
        assert spec["kind"] == "amos" and spec["source"] == "identity" == u.name
        for k in ("c", "T", "h", "d"):
            assert spec[k] == f"{n['unit']}.{k}"
            np.testing.assert_array_equal(g.arrays[spec[k]], getattr(ref, k))
        assert u.in_range == (-2**31, 2**31 - 1) and len(n["rshift"]) == 1
        v = np.array([-2**31, -513, -512, -1, 0, 1, 511, 512, 2**31 - 1])
        np.testing.assert_array_equal(u(v), np.clip(v, -512, 511))  # saturates by itself
        # the shift: the smallest S >= 0 with s_acc * 2^S >= input_cal / (2^(K-1) - 1)
        S, s_acc, cal = n["rshift"][0], src["scale"], n["input_cal"]
        step = cal / (2 ** (D_BITS - 1) - 1)
        assert s_acc * 2**S >= step and (S == 0 or s_acc * 2 ** (S - 1) < step)
        assert u.in_scale == u.out_scale == n["scale"] == pytest.approx(s_acc * 2**S,
                                                                        rel=1e-12)
        assert (info[n["name"]]["lo"], info[n["name"]]["hi"]) == (-512, 511)
        assert f"{n['name']}: identity unit (linear output), K = {D_BITS}" in net["printed"]


def test_add_aligns_signed_skips_by_left_shifts(net):
    """An add's skip (a swish unit's or an identity unit's signed output) enters by a left
    shift that puts it on the accumulator's scale; the projection conv by shift 0."""
    g = net["g"]
    adds = [n for n in g.nodes if n["op"] == "add"]
    assert len(adds) == {"linear": 0, "mbconv": 1, "two_blocks": 2}[net["name"]]
    skips = []
    for n in adds:
        for i, sh in zip(n["inputs"], n["lshift"], strict=True):
            src = g.node[i]
            if src["op"] == "conv":
                assert sh == 0 and src["scale"] == n["scale"]
            else:
                assert src["scale"] == n["scale"] * 2**sh  # exact: powers of two
                skips.append(g.units[src["unit"]]["source"])
    assert skips == {"linear": [], "mbconv": ["swish"],
                     "two_blocks": ["swish", "identity"]}[net["name"]]
    tr = snn.run(g, net["x"][:3], trace=True).traces
    for n in adds:
        want = sum(tr[i] << sh for i, sh in zip(n["inputs"], n["lshift"], strict=True))
        np.testing.assert_array_equal(tr[n["name"]], want)


def test_identity_layer_is_clamp_of_the_shifted_accumulator(net):
    """docs/integer_semantics.md: y = clamp(floor((acc + 2^(S-1)) / 2^S), -2^(K-1),
    2^(K-1) - 1), and the spikes are y's K-bit two's complement, sign first."""
    g = net["g"]
    tr = snn.run(g, net["x"][:40], trace=True).traces
    lo, hi = -(2 ** (D_BITS - 1)), 2 ** (D_BITS - 1) - 1
    for n in _identities(g):
        acc, S = tr[n["inputs"][0]], n["rshift"][0]
        v = (acc + (2 ** (S - 1) if S else 0)) // 2**S
        np.testing.assert_array_equal(tr[n["name"]], np.clip(v, lo, hi))
        np.testing.assert_array_equal(requant_shift(acc, S), v)
        assert (v < 0).any() and (v > 0).any()  # a signed output
        z = snn.unit_spikes([acc], [S], g.unit(n["unit"]))
        bits = (np.clip(v, lo, hi)[..., None] % 2**D_BITS
                >> np.arange(D_BITS - 1, -1, -1)) & 1
        np.testing.assert_array_equal(z, bits)


def test_snn_tracks_the_float_model(net):
    g, y, fl = net["g"], net["y"], net["float"]
    r = snn.run(g, net["x"])
    ann = (fl.argmax(1) == y).mean() * 100
    acc = (r.classes == y).mean() * 100
    assert ann > 75, "the network did not train"
    assert (r.classes == fl.argmax(1)).mean() >= AGREEMENT
    assert acc >= ann - ACCURACY_DROP, (acc, ann)
    # the consumers read each identity's y through its spikes and d exactly
    assert np.array_equal(snn.run(g, net["x"][:40], bitserial=True).logits, r.logits[:40])


def test_evaluate_reports_the_description(net):
    d = net["dir"]
    r = ev.evaluate_description(d / "m", d / "test.npz", onnx=d / "m.onnx", progress=False)
    assert r["ann_top1"] == pytest.approx((net["float"].argmax(1) == net["y"]).mean())
    assert r["snn_top1"] == (snn.run(net["g"], net["x"]).classes == net["y"]).mean()
    # an identity layer's spikes: the one bits of y's K-bit two's complement
    tr = snn.run(net["g"], net["x"], trace=True).traces
    for n in _identities(net["g"]):
        y = tr[n["name"]].reshape(len(net["x"]), -1) % 2**D_BITS
        ones = sum((y >> b) & 1 for b in range(D_BITS)).sum(1)
        assert r["spikes_per_layer"][n["name"]] == pytest.approx(ones.mean(), rel=1e-12)


# ---------------------------------------------------------------------------------------------
# A dense layer feeding another (hand-written ONNX, random weights), the pass and the refusals
# ---------------------------------------------------------------------------------------------


def _dense_head_model():
    rng = np.random.default_rng(3)
    inits = {"w": rng.normal(0, 0.5, (4, 4, 3, 3)), "b": rng.normal(0, 0.1, 4),
             "f1": rng.normal(0, 0.5, (6, 4)), "b1": rng.normal(0, 0.1, 6),
             "f2": rng.normal(0, 0.5, (10, 6)), "b2": rng.normal(0, 0.1, 10)}
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1] * 4),
             helper.make_node("Relu", ["c"], ["r"], name="act"),
             helper.make_node("GlobalAveragePool", ["r"], ["p"], name="gap"),
             helper.make_node("Flatten", ["p"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "f1", "b1"], ["h"], name="hidden", transB=1),
             helper.make_node("Gemm", ["h", "f2", "b2"], ["y"], name="fc", transB=1)]
    return _model(nodes, inits)


def test_dense_feeding_a_dense():
    model = _dense_head_model()
    x = _pixels(64, (6, 6, 4), seed=2)
    ops = import_onnx(model)
    want = _ort(model, x)
    np.testing.assert_allclose(cv.run_float(ops, x, dtype=np.float64), want, rtol=0,
                               atol=FLOAT_ATOL)
    g = cv.convert_ops(ops, x, progress=False)
    assert [(n["name"], n["op"]) for n in g.nodes[-3:]] == [
        ("hidden", "dense"), ("hidden.id", "amos"), ("fc", "dense")]
    assert g.node["fc"]["inputs"] == ["hidden.id"]
    assert g.units[g.node["hidden.id"]["unit"]]["source"] == "identity"
    got = snn.run(g, x).logits * g.node["fc"]["scale"]
    # the integer logits within a few per cent of their spread over the images
    spread = want.max(0) - want.min(0)
    assert np.abs(got - want).max() <= 0.05 * spread.max(), (np.abs(got - want).max(), spread)
    assert np.all(spread > 0.05 * spread.max())  # logits that depend on the image


def _op(name, op, inputs):
    return {"name": name, "op": op, "inputs": inputs}


def test_insert_identities_rules():
    """Not after a term of a single add (the ResNet shape), nor after the classifier; an add
    that also has another reader, a gap and a gate read the identity; the activations keep
    reading the accumulator; the pass is idempotent and names avoid clashes."""
    ops = [_op("input", "input", []), _op("c1", "conv", ["input"]),
           _op("c2", "conv", ["c1"]), _op("r", "relu", ["c2"]),  # c1: read by a conv
           _op("c3", "conv", ["r"]), _op("a", "add", ["c3", "r"]),  # c3: a's term only
           _op("c4", "conv", ["a"]), _op("s", "swish", ["c4"]),  # a: read by c4 and a2
           _op("a2", "add", ["a", "c4"]),  # c4: swish and a2
           _op("q", "gap", ["a2"]), _op("sg", "sigmoid", ["q"]),
           _op("gt", "gate", ["s", "sg"]), _op("c1.id", "conv", ["gt"]),  # a name clash
           _op("fc", "dense", ["c1.id"])]
    out = insert_identities(ops)
    got = [(o["name"], o["op"], o["inputs"]) for o in out]
    assert got == [
        ("input", "input", []), ("c1", "conv", ["input"]),
        ("c1.id_2", "identity", ["c1"]), ("c2", "conv", ["c1.id_2"]),
        ("r", "relu", ["c2"]), ("c3", "conv", ["r"]), ("a", "add", ["c3", "r"]),
        ("a.id", "identity", ["a"]), ("c4", "conv", ["a.id"]),
        ("c4.id", "identity", ["c4"]), ("s", "swish", ["c4"]),
        ("a2", "add", ["a.id", "c4.id"]), ("a2.id", "identity", ["a2"]),
        ("q", "gap", ["a2.id"]), ("sg", "sigmoid", ["q"]), ("gt", "gate", ["s", "sg"]),
        ("c1.id", "conv", ["gt"]), ("c1.id.id", "identity", ["c1.id"]),
        ("fc", "dense", ["c1.id.id"])]
    assert insert_identities(out) == out
    assert ops[3]["inputs"] == ["c2"] and ops[2]["inputs"] == ["c1"]  # ops left alone


def test_identity_is_calibrated_on_the_absolute_value():
    """alpha_cal of an identity: the percentile of |v| (here 100: the largest), not of v."""
    ops = insert_identities(import_onnx(_dense_head_model()))
    x = _pixels(32, (6, 6, 4), seed=4)
    alphas = cv.calibrate(ops, x, percentile=100, progress=False)
    k = [o["name"] for o in ops].index("hidden")
    v = cv.run_float(ops[:k + 1], x)  # the linear layer's output
    assert v.min() < 0 < v.max() and -v.min() != v.max()
    assert alphas["hidden.id"] == pytest.approx(float(np.abs(v).max()), rel=1e-6)


def test_linear_output_read_by_a_maxpool_is_refused():
    rng = np.random.default_rng(0)
    inits = {"w": rng.normal(0, 0.5, (4, 4, 3, 3)), "b": np.zeros(4),
             "fw": rng.normal(0, 0.5, (10, 36)), "fb": np.zeros(10),
             "shape": np.array([-1, 36])}
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="lin", pads=[1] * 4),
             helper.make_node("MaxPool", ["c"], ["m"], name="mp", kernel_shape=[2, 2],
                              strides=[2, 2]),
             helper.make_node("Reshape", ["m", "shape"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], name="fc", transB=1)]
    with pytest.raises(ModelImportError, match=r"node 'mp' \(MaxPool\): its input \(node 'lin' "
                                               r"\(Conv\), conv\) may be negative"):
        import_onnx(_model(nodes, inits))
    # the float ops' pass refuses it too, naming the pool
    ops = [_op("input", "input", []), _op("lin", "conv", ["input"]),
           _op("mp", "maxpool", ["lin"]), _op("fc", "dense", ["mp"])]
    with pytest.raises(ConversionError, match=r"layer 'mp' \(maxpool\): its input 'lin' is a "
                                              r"linear output \(conv, no activation\)"):
        insert_identities(ops)


def test_k_override_of_an_identity_is_refused():
    ops = import_onnx(_dense_head_model())
    x = _pixels(8, (6, 6, 4))
    with pytest.raises(ConversionError, match=r"K override for 'hidden.id': the layer is the "
                                              r"signed identity unit"):
        cv.convert_ops(ops, x, K_layers={"hidden.id": 8}, progress=False)


def test_finetune_trains_through_identity_units(tmp_path):
    """--finetune with a linear output's signed identity unit in the network: the unit is its
    table in the loop (python_ref.unit_tables), kept as it was; the tuned description
    validates and runs."""
    onnx.save(_dense_head_model(), tmp_path / "m.onnx")
    x = _pixels(8, (6, 6, 4))
    np.savez(tmp_path / "c.npz", x=x)
    plain = tmp_path / "p"
    with contextlib.redirect_stdout(io.StringIO()):
        cv.main(["--onnx", str(tmp_path / "m.onnx"), "--calib", str(tmp_path / "c.npz"),
                 "--out", str(plain)])
    classes = int(ir.validate(ir.load(plain))[ir.load(plain).outputs[0]]["shape"][-1])
    np.savez(tmp_path / "t.npz", x=x, y=np.arange(len(x)) % classes)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        cv.main(["--onnx", str(tmp_path / "m.onnx"), "--calib", str(tmp_path / "c.npz"),
                 "--out", str(tmp_path / "m"), "--finetune", "1", "--train",
                 str(tmp_path / "t.npz")])
    tuned = ir.load(tmp_path / "m")
    assert tuned.meta["finetune"]["epochs"] == 1
    assert tuned.units == ir.load(tmp_path / "m_plain").units
    assert any(n["op"] == "amos" and tuned.units[n["unit"]].get("source") == "identity"
               for n in tuned.nodes)
    assert snn.run(tuned, x).logits.shape == (len(x), classes)


def test_identity_shift_guard():
    """An accumulator scale so fine that the level needs a shift beyond 62 is an error."""
    ops = [_op("input", "input", []), {**_op("c", "conv", ["input"]),
                                       "w": np.full((2, 1, 1, 1), 1e-30), "b": np.zeros(2),
                                       "stride": 1, "padding": 0},
           _op("c.id", "identity", ["c"]), _op("q", "gap", ["c.id"]),
           {**_op("fc", "dense", ["q"]), "w": np.ones((2, 2)), "b": np.zeros(2)}]
    ops[0]["shape"] = [2, 2, 1]
    with pytest.raises(ConversionError, match=r"layer 'c.id': the identity unit would need a "
                                              r"shift of \d+ \(more than 62\)"):
        cv.quantise(ops, {"c.id": 1.0})
