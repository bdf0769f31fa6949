"""Squeeze-and-excitation in a user's model: ``x * Sigmoid(W2 SiLU(W1 mean_hw(x)))`` as torch
exports it becomes a gate, a two-input ``amos`` layer ``[x, s]`` with the library's trained
multiplication unit (python_ref/units/mult.json, K = 40), ``s`` of shape (C,) broadcast over the
map ``x`` (python_ref.importers, python_ref.convert, python_ref.quant.quantize_unit_for_inputs).
Two small networks trained here on the 8x8 digits (1x1 convs after GlobalAveragePool; Linear
layers after a mean and a broadcast view) go through torch.onnx.export and the converter; the
integer SNN is checked against the float model, the gate layer against the formulas of
docs/integer_semantics.md, the exact-product evaluation, and the refused Mul patterns."""
from __future__ import annotations

import contextlib
import io
import json
import math
import warnings

import numpy as np
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from python_ref import convert as cv
from python_ref import evaluate as ev
from python_ref import ir, snn
from python_ref.data import load_digits
from python_ref.finetune import build_net, export, float_ops_from_graph
from python_ref.importers import ModelImportError, import_onnx
from python_ref.quant import requant_shift
from python_ref.units import load_unit

#: run_float (float64) against onnxruntime (float32) on the same float network
FLOAT_ATOL = 1e-4
#: top-1 agreement of the integer SNN with the float model on the 359 test digits; measured
#: 0.964 (conv SE) and 0.955 (linear SE), default unit bits
AGREEMENT = 0.90
#: the SNN's accuracy at most this many points below the float model's; measured 0.3 / 0.6
ACCURACY_DROP = 3.0


class SEBlock(nn.Module):
    """Squeeze-and-excitation: ``x * sigmoid(W2 silu(W1 mean_hw(x)))``, with 1x1 convs after
    ``adaptive_avg_pool2d`` (``linear=False``) or Linear layers after a mean over H, W and a
    ``view`` back to ``N x C x 1 x 1``."""

    def __init__(self, c: int, r: int, linear: bool):
        super().__init__()
        self.linear = linear
        if linear:
            self.fc1, self.fc2 = nn.Linear(c, r), nn.Linear(r, c)
        else:
            self.fc1, self.fc2 = nn.Conv2d(c, r, 1), nn.Conv2d(r, c, 1)
        self.act, self.gate = nn.SiLU(), nn.Sigmoid()

    def forward(self, x):
        if self.linear:
            s = self.gate(self.fc2(self.act(self.fc1(x.mean((2, 3))))))
            return x * s.view(-1, x.shape[1], 1, 1)
        s = nn.functional.adaptive_avg_pool2d(x, 1)
        return x * self.gate(self.fc2(self.act(self.fc1(s))))


class SENet(nn.Module):
    """conv-bn-SiLU, SE, conv-bn-ReLU (stride 2), global average pooling, linear."""

    def __init__(self, linear: bool = False):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.act1 = nn.SiLU()
        self.se = SEBlock(8, 4, linear)
        self.conv2 = nn.Conv2d(8, 16, 3, 2, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(16)
        self.act2 = nn.ReLU()
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        y = self.se(self.act1(self.bn1(self.conv1(x))))
        y = self.act2(self.bn2(self.conv2(y)))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(y, 1), 1))


def _nchw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255


def _export(model: nn.Module, path) -> None:
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 1, 8, 8),), str(path), dynamo=True)


def _train(linear: bool, tmp) -> dict:
    torch.manual_seed(0)
    x, y = load_digits("train")
    X, Y = _nchw(x), torch.from_numpy(y).long()
    model = SENet(linear)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    gen = torch.Generator().manual_seed(0)
    for _ in range(8):
        for idx in torch.randperm(len(X), generator=gen).split(32):
            opt.zero_grad()
            nn.functional.cross_entropy(model(X[idx]), Y[idx]).backward()
            opt.step()
    model.eval()
    _export(model, tmp / "m.onnx")
    np.savez(tmp / "calib.npz", x=x, y=y)
    xt, yt = load_digits("test")
    np.savez(tmp / "test.npz", x=xt, y=yt)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        cv.main(["--onnx", str(tmp / "m.onnx"), "--calib", str(tmp / "calib.npz"),
                 "--out", str(tmp / "m"), "--calib-images", "500"])
    with torch.no_grad():
        float_logits = model(_nchw(xt)).numpy()
    return {"dir": tmp, "g": ir.load(tmp / "m"), "x": xt, "y": yt, "float": float_logits,
            "printed": out.getvalue()}


@pytest.fixture(scope="module", params=[False, True], ids=["conv_se", "linear_se"])
def net(request, tmp_path_factory):
    """SENet (1x1 conv or Linear SE) trained 8 epochs, its ONNX file, the CLI's description."""
    return _train(request.param, tmp_path_factory.mktemp("se"))


def _gate(g) -> dict:
    gates = [n for n in g.amos_nodes() if len(n["inputs"]) == 2]
    assert len(gates) == 1
    return gates[0]


def test_se_becomes_a_gate_op(net):
    ops = import_onnx(net["dir"] / "m.onnx")
    assert [o["op"] for o in ops] == ["input", "conv", "swish", "gap", "dense", "swish",
                                      "dense", "sigmoid", "gate", "conv", "relu", "gap",
                                      "dense"]
    gate = ops[8]
    assert gate["inputs"] == [ops[2]["name"], ops[7]["name"]]  # [x (the map), s]
    x = net["x"][:20]
    sess = ort.InferenceSession(str(net["dir"] / "m.onnx"))
    name = sess.get_inputs()[0].name
    want = np.concatenate([sess.run(None, {name: _nchw(x[i:i + 1]).numpy()})[0]
                           for i in range(len(x))])
    np.testing.assert_allclose(cv.run_float(ops, x, dtype=np.float64), want, rtol=0,
                               atol=FLOAT_ATOL)


def test_gate_layer_in_the_description(net):
    g = net["g"]
    info = ir.validate(g)
    n = _gate(g)
    spec, u = g.units[n["unit"]], g.unit(n["unit"])
    x_src, s_src = (g.node[i] for i in n["inputs"])
    assert g.units[x_src["unit"]]["source"] == "swish"
    assert g.units[s_src["unit"]]["source"] == "sigmoid"
    assert info[n["inputs"][0]]["shape"] == (8, 8, 8) and info[n["inputs"][1]]["shape"] == (8,)
    assert info[n["name"]]["shape"] == (8, 8, 8)
    assert spec["source"] == "mult" and u.K == 40 == load_unit("mult").K and u.inputs == 2
    # each input's step is its source tensor's scale times 2^S
    for s_in, src, S in ((u.in_scale, x_src, n["rshift"][0]),
                         (u.in2_scale, s_src, n["rshift"][1])):
        assert s_in == pytest.approx(src["scale"] * 2**S, rel=1e-12)
    # the domain [-1, 1] times the calibrated span, in steps of v: at most 12 signed bits
    for rng, step, span in ((u.in_range, u.in_scale, n["gate_spans"][0]),
                            (u.in2_range, u.in2_scale, n["gate_spans"][1])):
        assert rng == (round(-span / step), round(span / step))
        assert rng[1] <= 2047
    # output scale: the float unit's d step times both spans
    d = np.asarray(load_unit("mult").d)
    assert u.out_scale == pytest.approx(np.abs(d).max() / 511 * math.prod(n["gate_spans"]),
                                        rel=1e-12)
    assert info[n["name"]]["lo"] == int(u.d[u.d < 0].sum())
    assert info[n["name"]]["hi"] == int(u.d[u.d > 0].sum())
    assert "gate" in net["printed"] and "mult unit, K = 40" in net["printed"]


def test_gate_layer_equals_the_documented_formula(net):
    """docs/integer_semantics.md, "The gate": v_j = requant_shift(a_j, S_j) saturated, g
    broadcast over H, W, the neurons in order, y = sum d_i z_i."""
    g = net["g"]
    n = _gate(g)
    spec = g.units[n["unit"]]
    c, c2, T, h, d = (np.asarray(g.arrays[spec[k]], np.int64) for k in ("c", "c2", "T", "h",
                                                                          "d"))
    res = snn.run(g, net["x"][:3], trace=[n["name"], *n["inputs"]])
    a, s = (res.traces[i] for i in n["inputs"])
    v1 = np.clip(requant_shift(a, n["rshift"][0]), *spec["in_range"])
    v2 = np.clip(requant_shift(s, n["rshift"][1]), *spec["in2_range"])[:, None, None, :]
    want = np.zeros(a.shape, np.int64)
    for idx in np.ndindex(a.shape):
        zs = []
        for i in range(len(c)):
            u = (c[i] * v1[idx] + c2[i] * v2[idx[0], 0, 0, idx[3]] - T[i]
                 - sum(h[i, j] * zs[j] for j in range(i)))
            zs.append(int(u >= 0))
        want[idx] = sum(di * z for di, z in zip(d, zs, strict=True))
    np.testing.assert_array_equal(res.traces[n["name"]], want)


def test_snn_agrees_with_float_and_bitserial(net):
    g, y = net["g"], net["y"]
    res = snn.run(g, net["x"])
    agree = float((res.classes == net["float"].argmax(1)).mean())
    drop = 100 * float((net["float"].argmax(1) == y).mean() - (res.classes == y).mean())
    assert agree >= AGREEMENT, agree
    assert drop <= ACCURACY_DROP, drop
    bs = snn.run(g, net["x"][:20], bitserial=True, synops=True)
    plain = snn.run(g, net["x"][:20], synops=True)
    np.testing.assert_array_equal(bs.logits, plain.logits)
    for k in plain.synops:
        np.testing.assert_array_equal(bs.synops[k], plain.synops[k])


def _pixels(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(x).permute(0, 3, 1, 2).double()


def _int_logits(fq, x: np.ndarray) -> np.ndarray:
    """The integer logits of the fake-quantised network (its output is in real units: the
    integers times the output scale, divided back here up to float64 rounding)."""
    return np.rint(fq(_pixels(x)).numpy() / fq.out_scale).astype(np.int64)


def test_finetune_net_with_trained_units_is_the_snn(net):
    """python_ref.finetune's fake-quantised network (swish, sigmoid and the gate's mult unit
    as tables, python_ref.unit_tables) computes the integer SNN exactly in float64; a few
    training steps move the weights before the gate (the gradient passes the units), and the
    exported description's SNN is the trained network again."""
    g, x = net["g"], net["x"][:40]
    fq = build_net(g, float_ops_from_graph(g)).double()
    with torch.no_grad():
        np.testing.assert_array_equal(_int_logits(fq, x), snn.run(g, x).logits)
    first = next(n["name"] for n in g.nodes if n["op"] == "conv")
    before = fq.qweights(first)[0].detach().clone()
    opt = torch.optim.Adam(fq.parameters(), lr=0.5)
    for _ in range(3):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(fq(_pixels(x)), torch.from_numpy(net["y"][:40])
                                          .long()).backward()
        opt.step()
    assert not torch.equal(fq.qweights(first)[0], before)
    tuned = export(fq, g)
    with torch.no_grad():
        np.testing.assert_array_equal(_int_logits(fq, x), snn.run(tuned, x).logits)


def test_evaluate_exact_gates(net, capsys):
    d = net["dir"]
    ev.main(["--description", str(d / "m"), "--data", str(d / "test.npz"), "--onnx",
             str(d / "m.onnx"), "--exact-gates", "--no-progress", "--json",
             str(d / "r.json")])
    r = json.loads((d / "r.json").read_text())
    exact = snn.run(net["g"], net["x"], exact_gates=True)
    assert r["snn_exact_mult_top1"] == float((exact.classes == net["y"]).mean())
    assert r["exact_mult_gates"] == [_gate(net["g"])["name"]]
    # the exact products track the float model at least as well as the SNN less a margin
    assert r["snn_exact_mult_top1"] >= r["ann_top1"] - ACCURACY_DROP / 100
    assert "exact gate products (reference only)" in capsys.readouterr().out


def test_exact_gates_is_refused_for_the_zoo():
    err = io.StringIO()
    with pytest.raises(SystemExit), contextlib.redirect_stderr(err):
        ev.main(["--model", "digits", "--exact-gates"])
    assert "--exact-gates is for a description of your own (--description)" in err.getvalue()


# ---------------------------------------------------------------------------------------------
# Refused Mul patterns (hand-written ONNX graphs)
# ---------------------------------------------------------------------------------------------


def _model(nodes, inits=None):
    rng = np.random.default_rng(0)
    inits = {"w": rng.normal(size=(4, 1, 3, 3)), "b": np.zeros(4),
             "w2": rng.normal(size=(4, 4, 1, 1)), "b2": np.zeros(4), "k": np.array(2.0),
             "fw": rng.normal(size=(10, 4)), **(inits or {})}
    body = [helper.make_node("GlobalAveragePool", [nodes[-1].output[0]], ["gp"], name="gp"),
            helper.make_node("Flatten", ["gp"], ["f"], name="flat"),
            helper.make_node("Gemm", ["f", "fw"], ["y"], name="fc", transB=1)]
    g = helper.make_graph(
        list(nodes) + body, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                               [1, 1, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
        [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])


def _node(op, ins, out, name=None, **kw):
    return helper.make_node(op, ins, [out], name=name or out, **kw)


_CONV = _node("Conv", ["x", "w", "b"], "c", "conv", pads=[1] * 4)
_SILU = [_node("Sigmoid", ["c"], "cs", "sg"), _node("Mul", ["c", "cs"], "m", "silu")]
_SQUEEZE = [_node("GlobalAveragePool", ["m"], "p", "pool"), _node("Conv", ["p", "w2", "b2"], "q"),
            _node("Sigmoid", ["q"], "s", "sig")]


def test_hand_written_se_imports():
    ops = import_onnx(_model([_CONV, *_SILU, *_SQUEEZE, _node("Mul", ["s", "m"], "gt")]))
    assert [(o["name"], o["op"]) for o in ops[1:7]] == [
        ("conv", "conv"), ("silu", "swish"), ("pool", "gap"), ("q", "dense"),
        ("sig", "sigmoid"), ("gt", "gate")]
    assert ops[6]["inputs"] == ["silu", "sig"]


@pytest.mark.parametrize("nodes,match", [
    # the map is a conv output, not a trained unit's
    ([_CONV, *_SILU, *_SQUEEZE, _node("Mul", ["c", "s"], "gt")],
     r"node 'gt' \(Mul\): only x \* Sigmoid\(x\) .* squeeze-and-excitation gate .* here x is "
     r"node 'conv' \(Conv\) \(conv\)"),
    # the gate is a SiLU output, not a Sigmoid's
    ([_CONV, *_SILU, _node("GlobalAveragePool", ["m"], "p", "pool"),
      _node("Conv", ["p", "w2", "b2"], "q"), _node("Sigmoid", ["q"], "qs", "sq"),
      _node("Mul", ["q", "qs"], "s", "sw2"), _node("Mul", ["m", "s"], "gt")],
     r"node 'gt' \(Mul\): .* s is node 'sq' \(Sigmoid\) and node 'sw2' \(Mul\) \(swish\)"),
    # a product by a constant
    ([_CONV, *_SILU, _node("Mul", ["m", "k"], "gt")],
     r"node 'gt' \(Mul\): only x \* Sigmoid\(x\) .*; a product by a constant \('k'\)"),
    # shapes that do not broadcast: a pooled vector against a vector of another length
    ([_CONV, *_SILU, _node("MaxPool", ["c"], "mp", "mp", kernel_shape=[2, 2], strides=[2, 2]),
      _node("Relu", ["mp"], "r", "act"), *_SQUEEZE, _node("Mul", ["s", "m"], "gt"),
      _node("Mul", ["gt", "r"], "bad")],
     r"node 'bad' \(Mul\): .* not inputs of shapes \(4, 6, 6\) and \(4, 3, 3\)"),
    # a 1x1 conv on a flattened map (not a pooled vector)
    ([_CONV, _node("Flatten", ["c"], "fl", "fl"), _node("Conv", ["fl", "w2", "b2"], "q")],
     r"node 'q' \(Conv\): its input is flat"),
])
def test_refused_mul_patterns_name_the_node(nodes, match):
    with pytest.raises(ModelImportError, match=match):
        import_onnx(_model(nodes))
