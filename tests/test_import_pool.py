"""MaxPool, AveragePool, depthwise Conv and Clip(0, a) / ReLU6 through the importer
(python_ref.importers) and the converter: tiny ONNX models built here with random weights against
onnxruntime, a torch module through from_torch and through its ONNX file, and every error."""
from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from python_ref import convert as cv
from python_ref import ir, snn
from python_ref.importers import ModelImportError, import_onnx

#: run_float (float64) against onnxruntime (float32) on the same float network
FLOAT_ATOL = 1e-4
#: the integer network's logits (times their scale) against onnxruntime, as a fraction of the
#: largest |logit|: K = 10 neurons per unit and 8-bit weights
INT_RTOL = 0.05


def _model(nodes, inits, shape=(1, 4, 6, 6)):
    """A float32 ONNX model, input ``x``, output ``y`` (opset 17)."""
    g = helper.make_graph(
        nodes, "pools", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "F"])],
        [numpy_helper.from_array(np.asarray(v, np.int64 if np.asarray(v).dtype.kind == "i"
                                            else np.float32), k) for k, v in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def _inits(seed, C=4, O=10, F=4 * 3 * 3, dw=False):
    rng = np.random.default_rng(seed)
    return {"w": rng.normal(0, 0.5, (C, 1 if dw else C, 3, 3)), "b": rng.normal(0, 0.1, C),
            "fw": rng.normal(0, 0.5, (O, F)), "fb": rng.normal(0, 0.1, O),
            "lo": np.array(0.0), "hi": np.array(0.5), "shape": np.array([-1, F])}


def _head(src):
    """Flatten ``src`` and a Gemm classifier to ``y``."""
    return [helper.make_node("Reshape", [src, "shape"], ["f"], name="flat"),
            helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], name="fc", transB=1)]


def _conv(name, src, dst, **kw):
    return helper.make_node("Conv", [src, "w", "b"], [dst], name=name, pads=[1, 1, 1, 1], **kw)


def _pixels(n, shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, *shape), dtype=np.uint8)


def _ort(model, x):
    sess = ort.InferenceSession(model.SerializeToString())
    nchw = x.transpose(0, 3, 1, 2).astype(np.float32) / 255
    return np.concatenate([sess.run(None, {"x": nchw[i:i + 1]})[0] for i in range(len(x))])


def _check_against_onnxruntime(model, hw=(6, 6, 4)):
    """The float ops equal onnxruntime; the converted integer network agrees within the
    quantisation error. Returns the float ops and the description."""
    ops = import_onnx(model)
    x = _pixels(6, hw, seed=1)
    want = _ort(model, x)
    np.testing.assert_allclose(cv.run_float(ops, x, dtype=np.float64), want, rtol=0,
                               atol=FLOAT_ATOL)
    g = cv.convert_ops(ops, _pixels(300, hw), progress=False)
    r = snn.run(g, x)
    got = r.logits * g.node[g.outputs[0]]["scale"]
    assert np.abs(got - want).max() <= INT_RTOL * np.abs(want).max(), (got, want)
    assert np.array_equal(snn.run(g, x, bitserial=True).logits, r.logits)
    return ops, g


def _kinds(ops):
    return [(o["name"], o["op"]) for o in ops]


def test_maxpool():
    m = _model([_conv("conv", "x", "c"), helper.make_node("Relu", ["c"], ["r"], name="act"),
                helper.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2, 2],
                                 strides=[2, 2])] + _head("p"), _inits(0))
    ops, g = _check_against_onnxruntime(m)
    assert _kinds(ops)[1:] == [("conv", "conv"), ("act", "relu"), ("pool", "maxpool"),
                               ("fc", "dense")]
    assert g.node["pool"] | {} == {"name": "pool", "op": "maxpool", "inputs": ["act"],
                                   "kernel": 2, "stride": 2, "padding": 0, "shape": [3, 3, 4],
                                   "scale": g.node["act"]["scale"]}


def test_maxpool_before_relu_moves_after_it():
    """Conv -> MaxPool (padded: ONNX pads with -inf) -> Relu becomes Conv -> Relu -> MaxPool."""
    m = _model([_conv("conv", "x", "c"),
                helper.make_node("MaxPool", ["c"], ["p"], name="pool", kernel_shape=[3, 3],
                                 strides=[2, 2], pads=[1, 1, 1, 1]),
                helper.make_node("Relu", ["p"], ["r"], name="act")] + _head("r"), _inits(1))
    ops, _ = _check_against_onnxruntime(m)
    assert _kinds(ops)[1:] == [("conv", "conv"), ("act", "relu"), ("pool", "maxpool"),
                               ("fc", "dense")]
    assert ops[3]["inputs"] == ["act"] and ops[2]["inputs"] == ["conv"]


def test_avgpool_padded_folds_into_the_classifier():
    m = _model([_conv("conv", "x", "c"), helper.make_node("Relu", ["c"], ["r"], name="act"),
                helper.make_node("AveragePool", ["r"], ["p"], name="pool", kernel_shape=[3, 3],
                                 strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1),
                helper.make_node("Relu", ["p"], ["q"], name="noop")] + _head("q"), _inits(2))
    ops, g = _check_against_onnxruntime(m)
    assert _kinds(ops)[1:] == [("conv", "conv"), ("act", "relu"), ("pool", "avgpool"),
                               ("fc", "dense")]  # a ReLU of a pool of a ReLU is dropped
    assert g.node["pool"]["padding"] == 1 and ir.activation_bits(g, "pool") == 10 + 4


def test_avgpool_on_the_input_and_then_a_conv():
    """A stem AveragePool of the pixels (unpadded: count_include_pad does not matter); the conv
    after it carries the 1/(k*k)."""
    inits = _inits(3)
    m = _model([helper.make_node("AveragePool", ["x"], ["p"], name="pool", kernel_shape=[2, 2],
                                 strides=[2, 2]),
                helper.make_node("Conv", ["p", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
                helper.make_node("Relu", ["c"], ["r"], name="act")] + _head("r"), inits,
               shape=(1, 4, 6, 6))
    ops, g = _check_against_onnxruntime(m)
    assert _kinds(ops)[1:] == [("pool", "avgpool"), ("conv", "conv"), ("act", "relu"),
                               ("fc", "dense")]
    np.testing.assert_allclose(ops[2]["w"], inits["w"].transpose(0, 2, 3, 1) / 4, rtol=1e-6)


def test_depthwise_conv_and_relu6():
    """Depthwise Conv (group = C), BatchNormalization folded, Clip(0, 0.5): the unit's
    calibrated level is capped at 0.5."""
    inits = _inits(4, dw=True)
    rng = np.random.default_rng(5)
    inits.update({"s": rng.uniform(0.5, 1.5, 4), "bb": rng.normal(0, 0.1, 4),
                  "m": rng.normal(0, 0.1, 4), "v": rng.uniform(0.5, 2, 4),
                  "fw": rng.normal(0, 0.5, (10, 4 * 6 * 6)),
                  "shape": np.array([-1, 4 * 6 * 6])})
    m = _model([_conv("dw", "x", "c", group=4),
                helper.make_node("BatchNormalization", ["c", "s", "bb", "m", "v"], ["n"],
                                 name="bn"),
                helper.make_node("Clip", ["n", "lo", "hi"], ["r"], name="relu6")] + _head("r"),
               inits)
    ops, g = _check_against_onnxruntime(m)
    assert _kinds(ops)[1:] == [("dw", "conv"), ("relu6", "relu"), ("fc", "dense")]
    assert ops[1]["groups"] == 4 and ops[1]["w"].shape == (4, 3, 3, 1)
    assert ops[2]["cap"] == 0.5
    node = g.node["dw"]
    assert node["groups"] == 4 and g.arrays[node["weight"]].shape == (4, 3, 3, 1)
    act = g.node["relu6"]
    assert act["cap"] == 0.5 and act["alpha_cal"] <= 0.5


def test_cap_bounds_the_calibrated_level():
    """With every conv output far above the cap, the level is the cap itself."""
    inits = _inits(6)
    inits["b"] = np.full(4, 50.0)
    m = _model([_conv("conv", "x", "c"),
                helper.make_node("Clip", ["c", "lo", "hi"], ["r"], name="relu6")] + _head("r"),
               {**inits, "fw": np.ones((10, 4 * 36)), "shape": np.array([-1, 4 * 36])})
    ops = import_onnx(m)
    assert cv.calibrate(ops, _pixels(20, (6, 6, 4)), progress=False) == {"relu6": 0.5}


def test_depthwise_conv_takes_the_input_normalisation():
    """mean / std fold into an unpadded depthwise conv on the input, one channel each."""
    inits = _inits(7, dw=True)
    inits.update(fw=np.random.default_rng(8).normal(0, 0.5, (10, 4 * 4 * 4)),
                 shape=np.array([-1, 64]))
    m = _model([helper.make_node("Conv", ["x", "w", "b"], ["c"], name="dw", group=4),
                helper.make_node("Relu", ["c"], ["r"], name="act")] + _head("r"), inits)
    mean, std = np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.5, 0.25, 1.0, 2.0])
    ops = cv.import_ops(m, mean=mean, std=std)
    x = _pixels(4, (6, 6, 4), seed=9)
    sess = ort.InferenceSession(m.SerializeToString())
    nchw = ((x / 255 - mean) / std).transpose(0, 3, 1, 2).astype(np.float32)
    want = np.concatenate([sess.run(None, {"x": nchw[i:i + 1]})[0] for i in range(len(x))])
    np.testing.assert_allclose(cv.run_float(ops, x, dtype=np.float64), want, rtol=0,
                               atol=FLOAT_ATOL)


# ---------------------------------------------------------------------------------------------
# Errors, each naming the node
# ---------------------------------------------------------------------------------------------


def _pool_net(op="MaxPool", src="r", **attrs):
    attrs.setdefault("kernel_shape", [2, 2])
    return _model([_conv("conv", "x", "c"), helper.make_node("Relu", ["c"], ["r"], name="act"),
                   helper.make_node(op, [src], ["p"], name="pool", **attrs),
                   helper.make_node("GlobalAveragePool", ["p"], ["g"], name="gap"),
                   helper.make_node("Flatten", ["g"], ["f"], name="flat"),
                   helper.make_node("Gemm", ["f", "fw"], ["y"], name="fc", transB=1)],
                  {**_inits(0), "fw": np.ones((10, 4))})


@pytest.mark.parametrize("op,attrs,match", [
    ("MaxPool", {"kernel_shape": [2, 3]}, r"node 'pool' \(MaxPool\): kernel \[2, 3\] must be "
                                          r"square"),
    ("AveragePool", {"strides": [1, 2]}, r"node 'pool' \(AveragePool\): strides \[1, 2\] must "
                                         r"be equal"),
    ("MaxPool", {"pads": [0, 0, 1, 1]}, r"node 'pool' \(MaxPool\): asymmetric padding"),
    ("MaxPool", {"dilations": [2, 2]}, r"node 'pool' \(MaxPool\): dilation \[2, 2\]"),
    ("MaxPool", {"ceil_mode": 1}, r"node 'pool' \(MaxPool\): ceil_mode = 1 is not supported"),
    ("AveragePool", {"ceil_mode": 1},
     r"node 'pool' \(AveragePool\): ceil_mode = 1 is not supported"),
    ("MaxPool", {"storage_order": 1},
     r"node 'pool' \(MaxPool\): storage_order = 1 is not supported"),
    ("AveragePool", {"pads": [1, 1, 1, 1]},
     r"node 'pool' \(AveragePool\): count_include_pad = 0 with padding 1 is not supported"),
    ("MaxPool", {"auto_pad": "SAME_UPPER"}, r"node 'pool' \(MaxPool\): auto_pad SAME_UPPER"),
    ("MaxPool", {"kernel_shape": [2, 2], "pads": [2, 2, 2, 2]},
     r"node 'pool' \(MaxPool\): padding 2 must be smaller than the kernel 2"),
    ("MaxPool", {"kernel_shape": [7, 7]}, r"node 'pool' \(MaxPool\): the output would be empty"),
    ("MaxPool", {"src": "c"}, r"node 'pool' \(MaxPool\): its input \(node 'conv' \(Conv\), "
                              r"conv\) may be negative"),
    ("AveragePool", {"src": "c"}, r"node 'pool' \(AveragePool\): its input \(node 'conv' "
                                  r"\(Conv\), conv\) may be negative"),
    ("MaxPool", {"src": "x"}, r"node 'pool' \(MaxPool\): its input \(the input, input\)"),
])
def test_pool_errors(op, attrs, match):
    src = attrs.pop("src", "r")
    with pytest.raises(ModelImportError, match=match):
        import_onnx(_pool_net(op, src, **attrs))


def test_pool_indices_output_refused():
    m = _pool_net()
    m.graph.node[2].output.append("idx")
    with pytest.raises(ModelImportError, match=r"node 'pool' \(MaxPool\): the Indices output"):
        import_onnx(m)


def test_pool_of_a_flat_tensor_refused():
    m = _model([helper.make_node("Flatten", ["x"], ["f"], name="flat"),
                helper.make_node("MaxPool", ["f"], ["y"], name="pool", kernel_shape=[1, 1])],
               {})
    with pytest.raises(ModelImportError, match=r"node 'pool' \(MaxPool\): its input is flat"):
        import_onnx(m)


@pytest.mark.parametrize("group,w_shape,match", [
    (2, (4, 2, 3, 3), r"node 'conv' \(Conv\): group = 2 is not supported; only 1 or the input "
                      r"channels \(4, depthwise\)"),
    (4, (8, 1, 3, 3), r"node 'conv' \(Conv\): a depthwise conv \(group = 4\) needs 4 output "
                      r"channels, one per input channel, not weight shape \[8, 1, 3, 3\]"),
    (1, (4, 2, 3, 3), r"node 'conv' \(Conv\): weight has 2 input channels, the input 4"),
])
def test_conv_group_errors(group, w_shape, match):
    inits = {**_inits(0), "w": np.ones(w_shape), "b": np.zeros(w_shape[0])}
    m = _model([_conv("conv", "x", "c", group=group),
                helper.make_node("Relu", ["c"], ["y"], name="act")], inits)
    with pytest.raises(ModelImportError, match=match):
        import_onnx(m)


def test_maxpool_read_twice_cannot_move_after_the_relu():
    m = _model([_conv("conv", "x", "c"),
                helper.make_node("MaxPool", ["c"], ["p"], name="pool", kernel_shape=[2, 2]),
                helper.make_node("Relu", ["p"], ["r"], name="act"),
                helper.make_node("Add", ["p", "r"], ["y"], name="sum")], _inits(0))
    with pytest.raises(ModelImportError, match=r"node 'act' \(Relu\): the MaxPool before it "
                                               r"\(node 'pool' \(MaxPool\)\) is also read"):
        import_onnx(m)


def test_clip_errors():
    def net(lo, hi, pool=False):
        pre = [helper.make_node("AveragePool", ["r0"], ["c"], name="pool", kernel_shape=[2, 2])]
        return _model([_conv("conv", "x", "c0" if pool else "c"),
                       *([helper.make_node("Relu", ["c0"], ["r0"], name="act0")] + pre
                         if pool else []),
                       helper.make_node("Clip", ["c", "lo", "hi"], ["y"], name="relu6")],
                      {**_inits(0), "lo": np.array(lo), "hi": np.array(hi)})
    with pytest.raises(ModelImportError, match=r"node 'relu6' \(Clip\): min -1.0 is not"):
        import_onnx(net(-1.0, 6.0))
    with pytest.raises(ModelImportError, match=r"node 'relu6' \(Clip\): max 0.0 must be "
                                               "positive"):
        import_onnx(net(0.0, 0.0))
    with pytest.raises(ModelImportError, match=r"node 'pool' \(AveragePool\) -> node 'relu6' "
                                               r"\(Clip\): an activation after an average pool"):
        import_onnx(net(0.0, 6.0, pool=True))


# ---------------------------------------------------------------------------------------------
# A torch module with the new layers: from_torch and its ONNX file give the same description
# ---------------------------------------------------------------------------------------------


class PoolNet(nn.Module):
    """A user's network with max-pooling, average pooling, a depthwise-separable block and
    ReLU6 (not one of python_ref.models)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, 1, 1)
        self.bn = nn.BatchNorm2d(8)
        self.pool1 = nn.MaxPool2d(2)
        self.dw = nn.Conv2d(8, 8, 3, 1, 1, groups=8, bias=False)
        self.bn_dw = nn.BatchNorm2d(8)
        self.act_dw = nn.ReLU6()
        self.pw = nn.Conv2d(8, 12, 1)
        self.pool2 = nn.AvgPool2d(2)
        self.fc = nn.Linear(12 * 2 * 2, 10)

    def forward(self, x):
        y = self.pool1(torch.relu(self.bn(self.conv(x))))
        y = self.act_dw(self.bn_dw(self.dw(y)))
        y = self.pool2(torch.relu(self.pw(y)))
        return self.fc(torch.flatten(y, 1))


def test_from_torch_and_onnx_file_give_the_same_description(tmp_path):
    torch.manual_seed(0)
    model = PoolNet()
    for bn in (model.bn, model.bn_dw):
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 2.0)
    model.eval()
    calib = _pixels(200, (8, 8, 3))
    np.savez(tmp_path / "calib.npz", x=calib)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 3, 8, 8),), str(tmp_path / "p.onnx"),
                          dynamo=True)
    cv.main(["--onnx", str(tmp_path / "p.onnx"), "--calib", str(tmp_path / "calib.npz"),
             "--out", str(tmp_path / "p")])
    a = ir.load(tmp_path / "p")
    b = cv.from_torch(model, torch.zeros(1, 3, 8, 8), calib, name="p", progress=False)
    assert [n["op"] for n in a.nodes] == ["input", "conv", "amos", "maxpool", "conv", "amos",
                                          "conv", "amos", "avgpool", "dense"]
    assert a.nodes == b.nodes and a.units == b.units
    assert a.arrays.keys() == b.arrays.keys()
    assert all(np.array_equal(a.arrays[k], b.arrays[k]) for k in a.arrays)
    dw = a.nodes[4]
    assert dw["groups"] == 8 and a.nodes[5]["cap"] == 6.0
    x = _pixels(5, (8, 8, 3), seed=2)
    with torch.no_grad():
        want = model(torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255).numpy()
    got = snn.run(a, x).logits * a.nodes[-1]["scale"]
    assert np.abs(got - want).max() <= INT_RTOL * np.abs(want).max()
