"""Bring your own model (python_ref.importers): a small user network, defined here, trained on the
8x8 digits, exported with torch.onnx.export, imported, converted, generated and simulated; the
same network through from_torch; and the importer's errors."""
from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from amos_hw.flow import build_network, run_flow
from amos_hw.lib.sim import run_simulation, stream_get_many, stream_put_many
from amos_hw.passes.common import FlowConfig
from python_ref import convert as cv
from python_ref import ir, snn
from python_ref.data import load_digits
from python_ref.importers import (
    ModelImportError,
    fold_input_normalisation,
    import_onnx,
    sanitise_name,
)

#: run_float (float64) against onnxruntime (float32) on the same float network
FLOAT_ATOL = 1e-4
#: integer SNN accuracy at most this many points below the float model's (359 test digits)
ACCURACY_DROP = 3.0


class UserNet(nn.Module):
    """A user's network, not one of python_ref.models: conv-bn-relu, a residual block, a strided
    conv with bias, global average pooling, dropout and a linear classifier."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(8)
        self.conv3 = nn.Conv2d(8, 16, 3, 2, 1)
        self.drop = nn.Dropout(0.1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = torch.relu(self.bn2(self.conv2(y)) + y)
        y = torch.relu(self.conv3(y))
        y = torch.flatten(nn.functional.adaptive_avg_pool2d(y, 1), 1)
        return self.fc(self.drop(y))


def _nchw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255


def _export(model: nn.Module, path) -> None:
    # the exporter prints progress and warns about torchvision ops it skips
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 1, 8, 8),), str(path), dynamo=True)


@pytest.fixture(scope="module")
def user(tmp_path_factory):
    """The trained UserNet, its ONNX file, the description converted by the CLI, test data."""
    torch.manual_seed(0)
    x, y = load_digits("train")
    X, Y = _nchw(x), torch.from_numpy(y).long()
    model = UserNet()
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    gen = torch.Generator().manual_seed(0)
    for _ in range(6):
        for idx in torch.randperm(len(X), generator=gen).split(32):
            opt.zero_grad()
            nn.functional.cross_entropy(model(X[idx]), Y[idx]).backward()
            opt.step()
    model.eval()
    d = tmp_path_factory.mktemp("user")
    _export(model, d / "user.onnx")
    np.savez(d / "calib.npz", x=x, y=y)
    cv.main(["--onnx", str(d / "user.onnx"), "--calib", str(d / "calib.npz"),
             "--out", str(d / "user"), "--calib-images", "500"])
    xt, yt = load_digits("test")
    return {"model": model, "dir": d, "g": ir.load(d / "user"), "x": xt, "y": yt, "calib": x}


def test_float_ops_equal_onnxruntime(user):
    ops = import_onnx(user["dir"] / "user.onnx")
    assert [o["op"] for o in ops] == ["input", "conv", "relu", "conv", "add", "relu", "conv",
                                      "relu", "gap", "dense"]
    x = user["x"][:20]
    got = cv.run_float(ops, x, dtype=np.float64)
    sess = ort.InferenceSession(str(user["dir"] / "user.onnx"))
    name = sess.get_inputs()[0].name
    want = np.concatenate([sess.run(None, {name: _nchw(x[i:i + 1]).numpy()})[0]
                           for i in range(len(x))])
    np.testing.assert_allclose(got, want, rtol=0, atol=FLOAT_ATOL)


def test_snn_accuracy_close_to_float(user):
    with torch.no_grad():
        ann = (user["model"](_nchw(user["x"])).argmax(1).numpy() == user["y"]).mean() * 100
    res = snn.run(user["g"], user["x"])
    acc = (res.classes == user["y"]).mean() * 100
    assert ann > 80, "the user network did not train"
    assert acc >= ann - ACCURACY_DROP, (acc, ann)


def test_cli_wrote_a_valid_description(user):
    g = user["g"]
    ir.validate(g)
    assert g.name == "user"
    assert g.meta["source"]["onnx"] == "user.onnx"
    assert g.meta["calibration"]["images"] == 500
    nodes = onnx.load(user["dir"] / "user.onnx").graph.node
    onnx_names = {sanitise_name(n.name, n.op_type) for n in nodes}
    assert {n["name"] for n in g.nodes} <= onnx_names | {"input"}


def test_from_torch_gives_the_same_description(user):
    g = cv.from_torch(user["model"], torch.zeros(1, 1, 8, 8), user["dir"] / "calib.npz",
                      name="user", n_calib=500, progress=False)
    want = user["g"]
    assert g.nodes == want.nodes and g.units == want.units and g.outputs == want.outputs
    assert g.arrays.keys() == want.arrays.keys()
    for k, v in want.arrays.items():
        np.testing.assert_array_equal(g.arrays[k], v)


def _simulate(top, images):
    beats = [{"data": int(v), "first": int(k == 0), "last": int(k == img.size - 1)}
             for img in images for k, v in enumerate(np.asarray(img).ravel())]
    got = []

    async def producer(ctx):
        await stream_put_many(ctx, top.pixels, beats)

    async def consumer(ctx):
        got.extend(await stream_get_many(ctx, top.result, len(images)))

    run_simulation(top, producer, consumer, max_cycles=400_000)
    return np.array([[int(v) for v in r.logits] for r in got], np.int64)


def test_generator_estimate(user):
    ctx = run_flow(FlowConfig(model=str(user["dir"] / "user.json"), quiet=True,
                              stop_after="estimate"))
    assert ctx.graph.name == "user"


@pytest.mark.parametrize("n", [1, pytest.param(4, marks=pytest.mark.slow)])
def test_hardware_bit_exact(user, n):
    """The generated network (every layer folded serially, the default) in the Amaranth
    simulator against python_ref, bit for bit: one image (about 20 s) in the default run, four
    in the slow one."""
    images = user["x"][:n]
    logits = _simulate(build_network(str(user["dir"] / "user.json")), images)
    assert (logits == snn.run(user["g"], images).logits).all()


# ---------------------------------------------------------------------------------------------
# Input normalisation
# ---------------------------------------------------------------------------------------------


def test_normalisation_folded_into_unpadded_conv():
    rng = np.random.default_rng(0)
    ops = [{"name": "input", "op": "input", "inputs": [], "shape": [4, 4, 3]},
           {"name": "c", "op": "conv", "inputs": ["input"], "w": rng.normal(size=(5, 3, 3, 3)),
            "b": rng.normal(size=5), "stride": 1, "padding": 0},
           {"name": "r", "op": "relu", "inputs": ["c"]},
           {"name": "fc", "op": "dense", "inputs": ["r"], "w": rng.normal(size=(2, 20)),
            "b": np.zeros(2)}]
    mean, std, s = np.array([0.4, 0.5, 0.6]), np.array([0.2, 0.25, 0.3]), 1 / 256
    folded = fold_input_normalisation(ops, s, mean, std)
    x = rng.integers(0, 256, (3, 4, 4, 3), dtype=np.uint8)
    # the model's own ops on its normalised input == the folded ops on x / 255 (run_float)
    ref = cv.run_float(ops, ((x * s - mean) / std * 255), dtype=np.float64)
    got = cv.run_float(folded, x, dtype=np.float64)
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-10)
    assert fold_input_normalisation(ops) == ops  # the defaults change nothing


def test_normalisation_refused_for_padded_conv():
    ops = [{"name": "input", "op": "input", "inputs": [], "shape": [4, 4, 1]},
           {"name": "stem", "op": "conv", "inputs": ["input"], "w": np.ones((2, 3, 3, 1)),
            "b": np.zeros(2), "stride": 1, "padding": 1}]
    with pytest.raises(ModelImportError, match="'stem': a non-zero mean cannot be folded into "
                                               "a zero-padded"):
        fold_input_normalisation(ops, mean=0.5)
    fold_input_normalisation(ops, std=0.5)  # a scale alone folds


# ---------------------------------------------------------------------------------------------
# Errors: tiny models built here with onnx.helper
# ---------------------------------------------------------------------------------------------


def _tiny(nodes, inits, outputs=("y",), shape=(1, 1, 4, 4)):
    g = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, ["N", "F"]) for o in outputs],
        [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


_W = {"w": np.ones((2, 1, 3, 3)), "fw": np.ones((10, 2))}


def test_unsupported_ops_all_listed():
    m = _tiny([helper.make_node("Conv", ["x", "w"], ["c"], name="stem", pads=[1, 1, 1, 1]),
               helper.make_node("Tanh", ["c"], ["s"], name="squash"),
               helper.make_node("Erf", ["s"], ["p"], name="pool"),
               helper.make_node("GlobalAveragePool", ["p"], ["g"], name="gap"),
               helper.make_node("Flatten", ["g"], ["f"], name="flat"),
               helper.make_node("Gemm", ["f", "fw"], ["y"], name="fc", transB=1)], _W)
    with pytest.raises(ModelImportError) as e:
        import_onnx(m)
    msg = str(e.value)
    assert "2 node(s) of an unsupported op type" in msg
    assert "node 'squash': Tanh" in msg and "node 'pool': Erf" in msg
    assert "supported: Conv, Gemm" in msg


def _conv_net(**conv_attrs):
    return _tiny([helper.make_node("Conv", ["x", "w"], ["c"], name="stem", **conv_attrs),
                  helper.make_node("Relu", ["c"], ["r"], name="act"),
                  helper.make_node("GlobalAveragePool", ["r"], ["g"], name="gap"),
                  helper.make_node("Flatten", ["g"], ["f"], name="flat"),
                  helper.make_node("Gemm", ["f", "fw"], ["y"], name="fc", transB=1)], _W)


def test_a_supported_tiny_model_imports():
    ops = import_onnx(_conv_net(pads=[1, 1, 1, 1]))
    assert [(o["name"], o["op"]) for o in ops] == [
        ("input", "input"), ("stem", "conv"), ("act", "relu"), ("gap", "gap"), ("fc", "dense")]
    np.testing.assert_allclose(ops[-1]["w"], np.full((10, 2), 1 / 16))  # gap's 1/(H*W)


@pytest.mark.parametrize("attrs,match", [
    ({"pads": [0, 0, 1, 1]}, r"node 'stem' \(Conv\): asymmetric padding \[0, 0, 1, 1\]"),
    ({"dilations": [2, 2]}, r"node 'stem' \(Conv\): dilation \[2, 2\]"),
    ({"strides": [1, 2]}, r"node 'stem' \(Conv\): strides \[1, 2\] must be equal"),
])
def test_unsupported_conv_attributes(attrs, match):
    with pytest.raises(ModelImportError, match=match):
        import_onnx(_conv_net(**attrs))


def test_unfoldable_batchnorm_refused():
    bn = {k: np.ones(1) for k in ("s", "b", "m", "v")}
    m = _tiny([helper.make_node("Relu", ["x"], ["r"], name="act"),
               helper.make_node("BatchNormalization", ["r", "s", "b", "m", "v"], ["y"],
                                name="bn")], bn)
    with pytest.raises(ModelImportError, match=r"node 'bn' \(BatchNormalization\): this "
                                               "BatchNormalization cannot be folded"):
        import_onnx(m)


def test_two_outputs_refused():
    m = _tiny([helper.make_node("Conv", ["x", "w"], ["c"], name="stem"),
               helper.make_node("Relu", ["c"], ["y"], name="act"),
               helper.make_node("Relu", ["c"], ["z"], name="act2")], _W, outputs=("y", "z"))
    with pytest.raises(ModelImportError, match="the model has 2 outputs"):
        import_onnx(m)


def test_missing_file(tmp_path):
    with pytest.raises(ModelImportError, match=r"nope.onnx: no such ONNX file"):
        import_onnx(tmp_path / "nope.onnx")


def test_cli_errors_are_one_line(tmp_path):
    onnx.save(_conv_net(pads=[0, 1, 0, 1]), tmp_path / "m.onnx")
    np.savez(tmp_path / "c.npz", x=np.zeros((4, 4, 4, 1), np.uint8))
    with pytest.raises(SystemExit, match=r"^error: node 'stem' \(Conv\): asymmetric padding"):
        cv.main(["--onnx", str(tmp_path / "m.onnx"), "--calib", str(tmp_path / "c.npz"),
                 "--out", str(tmp_path / "m")])
    with pytest.raises(SystemExit, match=r"missing.onnx: no such ONNX file"):
        cv.main(["--onnx", str(tmp_path / "missing.onnx"), "--calib", "digits",
                 "--out", str(tmp_path / "m")])
    assert not (tmp_path / "m.json").exists()


# ---------------------------------------------------------------------------------------------
# Other exports of the same ops: BatchNormalization nodes, MatMul + Add, Reshape of a map
# ---------------------------------------------------------------------------------------------


def _against_onnxruntime(model, shape):
    """run_float of the imported model against onnxruntime on random pixels, per image."""
    path_or_bytes = model if isinstance(model, str) else model.SerializeToString()
    sess = ort.InferenceSession(path_or_bytes)
    name = sess.get_inputs()[0].name
    x = np.random.default_rng(1).integers(0, 256, (4, *shape), dtype=np.uint8)
    want = np.concatenate([sess.run(None, {name: _nchw(x[i:i + 1]).numpy()})[0]
                           for i in range(len(x))])
    got = cv.run_float(import_onnx(model), x,
                       dtype=np.float64)
    np.testing.assert_allclose(got, want, rtol=0, atol=FLOAT_ATOL)


def test_batchnorm_nodes_folded(tmp_path):
    """The TorchScript exporter with batch norm kept as BatchNormalization nodes."""
    torch.manual_seed(1)
    model = UserNet().eval()
    for bn in (model.bn1, model.bn2):
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 2.0)
    path = str(tmp_path / "bn.onnx")
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 1, 8, 8),), path, dynamo=False,
                          training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False,
                          opset_version=13)
    assert "BatchNormalization" in {n.op_type for n in onnx.load(path).graph.node}
    _against_onnxruntime(path, (8, 8, 1))


def test_matmul_add_and_reshape_of_a_map():
    """A classifier on a flattened 2 x 2 x 3 map: the columns go from (C, H, W) to (H, W, C)."""
    rng = np.random.default_rng(2)
    m = _tiny([helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
               helper.make_node("Relu", ["c"], ["r"], name="act"),
               helper.make_node("Reshape", ["r", "shape"], ["f"], name="flat"),
               helper.make_node("MatMul", ["f", "m"], ["mm"], name="fc"),
               helper.make_node("Add", ["mm", "bias"], ["y"], name="fc_bias")],
              {"w": rng.normal(size=(3, 1, 3, 3)), "m": rng.normal(size=(12, 10)),
               "bias": rng.normal(size=10)})
    m.graph.initializer.append(numpy_helper.from_array(np.array([1, 12], np.int64), "shape"))
    ops = import_onnx(m)
    assert [(o["name"], o["op"]) for o in ops][1:] == [("conv", "conv"), ("act", "relu"),
                                                       ("fc", "dense")]
    _against_onnxruntime(m, (4, 4, 1))


def test_dynamic_spatial_dimension_refused():
    m = _tiny([helper.make_node("Relu", ["x"], ["y"], name="act")], {}, shape=(1, 1, "H", 4))
    with pytest.raises(ModelImportError, match=r"input 'x': shape \(1, 1, None, 4\) must be N x "
                                               "C x H x W with C, H and W fixed"):
        import_onnx(m)


def test_cli_with_normalisation_prints_what_it_did(tmp_path, capsys):
    onnx.save(_conv_net(), tmp_path / "m.onnx")
    x = np.random.default_rng(3).integers(0, 256, (50, 4, 4, 1), dtype=np.uint8)
    np.savez(tmp_path / "c.npz", x=x)
    cv.main(["--onnx", str(tmp_path / "m.onnx"), "--calib", str(tmp_path / "c.npz"),
             "--out", str(tmp_path / "m"), "--mean", "0.5", "--std", "0.25", "--K", "8"])
    out = capsys.readouterr().out
    assert "imported " in out and "4 float ops (conv 1, relu 1, gap 1, dense 1)" in out
    assert "calibrating on 50 images from" in out and "wrote " in out
    g = ir.load(tmp_path / "m")
    assert g.units == {"relu_k8": {"kind": "relu", "K": 8}}
    assert g.meta["source"]["mean"] == [0.5] and g.meta["source"]["std"] == [0.25]


def test_layer_names_sanitised():
    assert sanitise_name("/blocks.0/conv1/Conv", "x") == "blocks.0.conv1.Conv"
    assert sanitise_name("a::b c", "x") == "a.b_c"
    assert sanitise_name("", "Conv_3") == "Conv_3"
    assert sanitise_name("3x", "x") == "n3x"
    m = _tiny([helper.make_node("Conv", ["x", "w"], ["c"], name="input"),
               helper.make_node("Relu", ["c"], ["r"], name=""),
               helper.make_node("GlobalAveragePool", ["r"], ["g"], name="input"),
               helper.make_node("Flatten", ["g"], ["f"], name="flat"),
               helper.make_node("Gemm", ["f", "fw"], ["y"], name="fc", transB=1)], _W)
    assert [o["name"] for o in import_onnx(m)] == ["input", "input_2", "Relu_1", "input_3",
                                                   "fc"]


def test_batchnorm_not_folded_into_a_conv_read_twice():
    """Through an Identity, the conv's output is also read by a ReLU: folding the batch norm
    would change what the ReLU sees, so it is refused."""
    bn = {k: np.ones(2) for k in ("s", "b", "m", "v")}
    m = _tiny([helper.make_node("Conv", ["x", "w"], ["c"], name="stem"),
               helper.make_node("Identity", ["c"], ["i"], name="id"),
               helper.make_node("BatchNormalization", ["i", "s", "b", "m", "v"], ["n"],
                                name="bn"),
               helper.make_node("Relu", ["c"], ["r"], name="act"),
               helper.make_node("Add", ["n", "r"], ["y"], name="sum")], {**_W, **bn})
    with pytest.raises(ModelImportError, match=r"node 'bn' \(BatchNormalization\): this "
                                               "BatchNormalization cannot be folded"):
        import_onnx(m)
