"""Fine-tuning an imported ONNX model (``python -m python_ref.convert --onnx ... --finetune
EPOCHS --train TRAIN``): the fake-quantised network with conv, maxpool, avgpool, depthwise conv,
ReLU and dense equals the integer reference, the float teacher equals the float ops, and the CLI
writes a fine-tuned description that differs from the plain one only in weights and biases."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from python_ref import convert as cv
from python_ref import finetune as ft
from python_ref import ir, snn
from python_ref.data import DataError

HWC = (8, 8, 3)
CLASSES = 5


def _model(seed: int = 0):
    """Conv 3->4 3x3, ReLU, MaxPool 2, depthwise Conv 3x3, ReLU, AveragePool 2, Gemm to 5."""
    rng = np.random.default_rng(seed)
    inits = {"w1": rng.normal(0, 0.4, (4, 3, 3, 3)), "b1": rng.normal(0, 0.1, 4),
             "w2": rng.normal(0, 0.4, (4, 1, 3, 3)), "b2": rng.normal(0, 0.1, 4),
             "fw": rng.normal(0, 0.4, (CLASSES, 16)), "fb": rng.normal(0, 0.1, CLASSES)}
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1] * 4),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2],
                         strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], name="dw", pads=[1] * 4, group=4),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("AveragePool", ["r2"], ["p2"], name="pool2", kernel_shape=[2, 2],
                         strides=[2, 2]),
        helper.make_node("Flatten", ["p2"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], name="fc", transB=1),
    ]
    g = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, CLASSES])],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def _pixels(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, *HWC), dtype=np.uint8)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("ft_onnx")
    (d / "m.onnx").write_bytes(_model().SerializeToString())
    np.savez(d / "calib.npz", x=_pixels(64, seed=1))
    rng = np.random.default_rng(2)
    np.savez(d / "train.npz", x=_pixels(48, seed=3), y=rng.integers(0, CLASSES, 48))
    return d


def _nchw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(x).permute(0, 3, 1, 2).double()


def test_imported_ops_include_pool_and_depthwise(files):
    ops = cv.import_ops(files / "m.onnx")
    assert {o["op"] for o in ops} == {"input", "conv", "relu", "maxpool", "avgpool", "dense"}
    assert any(o.get("groups", 1) == 4 for o in ops)


@pytest.mark.parametrize("cap", [None, 0.3])
def test_float_teacher_equals_float_ops(files, cap):
    """With and without a ReLU6 / Clip(0, a) cap on the first ReLU."""
    ops = cv.import_ops(files / "m.onnx")
    ops[2] = dict(ops[2], cap=cap)
    x = _pixels(6, seed=4)
    with torch.no_grad():
        t = ft.FloatNet(ops)(_nchw(x).float() / 255).numpy()
    np.testing.assert_allclose(t, cv.run_float(ops, x, dtype=np.float64), rtol=0, atol=1e-5)


def test_fake_quant_forward_equals_integer_reference(files):
    ops = cv.import_ops(files / "m.onnx")
    g = cv.convert_ops(ops, _pixels(64, seed=1), progress=False)
    net = ft.build_net(g, ops).double()
    h = ft.export(net, g)
    x = _pixels(8, seed=5)
    with torch.no_grad():
        f = net(_nchw(x)).numpy()
    out_scale = g.node[g.outputs[0]]["scale"]
    assert np.array_equal(np.rint(f / out_scale).astype(np.int64), snn.run(h, x).logits)


def test_cli_finetunes_an_onnx_model(files, capsys):
    out = files / "tuned"
    cv.main(["--onnx", str(files / "m.onnx"), "--calib", str(files / "calib.npz"),
             "--out", str(out), "--K", "6", "--finetune", "1",
             "--train", str(files / "train.npz")])
    assert "fine-tuning 1 epoch(s) on 48 images" in capsys.readouterr().out
    plain, tuned = ir.load(files / "tuned_plain"), ir.load(out)
    ir.validate(tuned)
    assert plain.nodes == tuned.nodes and plain.units == tuned.units  # shifts, K, scales kept
    assert "finetune" not in plain.meta
    meta = tuned.meta["finetune"]
    assert (meta["epochs"], meta["train_images"], meta["train"]) == \
        (1, 48, str(files / "train.npz"))
    assert {k: v for k, v in tuned.meta.items() if k != "finetune"} == plain.meta
    assert sorted(plain.arrays) == sorted(tuned.arrays)
    changed = [k for k in plain.arrays if not np.array_equal(plain.arrays[k], tuned.arrays[k])]
    assert changed and all(k.endswith((".weight", ".bias")) for k in changed)
    for k in plain.arrays:
        assert tuned.arrays[k].dtype == plain.arrays[k].dtype
        assert tuned.arrays[k].shape == plain.arrays[k].shape
    x = _pixels(4, seed=6)
    r = snn.run(tuned, x)
    assert r.logits.shape == (4, CLASSES)
    assert np.array_equal(snn.run(tuned, x, bitserial=True).logits, r.logits)


def _cli(files, *extra):
    return ["--onnx", str(files / "m.onnx"), "--calib", str(files / "calib.npz"),
            "--out", str(files / "bad"), *extra]


def test_finetune_without_train_refused(files):
    with pytest.raises(SystemExit, match="--finetune needs --train"):
        cv.main(_cli(files, "--finetune", "1"))
    assert not (files / "bad.json").exists() and not (files / "bad_plain.json").exists()


def test_train_with_a_zoo_model_refused(files):
    with pytest.raises(SystemExit, match="--train is for --onnx"):
        cv.main(["--model", "digits", "--out", str(files / "z"), "--finetune", "1",
                 "--train", str(files / "train.npz")])


@pytest.mark.parametrize("arrays, match", [
    (None, "no such training file"),
    ({"x": _pixels(8)}, "not an .npz with arrays 'x'"),
    ({"x": _pixels(8).astype(np.float32), "y": np.zeros(8, np.int64)}, "'x' must be uint8"),
    ({"x": _pixels(8), "y": np.zeros(7, np.int64)}, "'y' must hold 8 integer labels"),
    ({"x": _pixels(8), "y": np.full(8, CLASSES)}, r"8 labels in 0\.\.4 wanted"),
    ({"x": np.zeros((8, 4, 4, 3), np.uint8), "y": np.zeros(8, np.int64)},
     r"takes N x 8 x 8 x 3"),
    ({"x": np.zeros((0, 8, 8, 3), np.uint8), "y": np.zeros(0, np.int64)}, "none"),
])
def test_bad_train_file_refused(files, arrays, match):
    path = files / "t_bad.npz"
    path.unlink(missing_ok=True)
    if arrays is not None:
        np.savez(path, **arrays)
    with pytest.raises(SystemExit, match=match) as e:
        cv.main(_cli(files, "--finetune", "1", "--train", str(path)))
    assert str(path) in str(e.value)
    assert not (files / "bad.json").exists() and not (files / "bad_plain.json").exists()


def test_not_an_npz_refused(files):
    path = files / "t.txt"
    path.write_text("not an archive")
    with pytest.raises(DataError, match=r"t\.txt: not an \.npz"):
        ft.load_training(path)


def test_unsupported_ops_named(files):
    ops = cv.import_ops(files / "m.onnx")
    g = cv.convert_ops(ops, _pixels(64, seed=1), progress=False)
    h = g.copy()
    h.node["pool1"]["op"] = "softmax"
    with pytest.raises(ValueError, match="layer 'pool1'.*'softmax'"):
        ft.build_net(h, ops)
    bad = [dict(o) for o in ops]
    bad[3]["op"] = "softmax"
    with pytest.raises(ValueError, match=f"layer {bad[3]['name']!r}.*'softmax'"):
        ft.FloatNet(bad)


def test_train_from_a_cifar10_folder_and_digits(tmp_path):
    """A CIFAR-10 folder gives its training split (augmented); the test split is never read."""
    rng = np.random.default_rng(7)
    x = rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, 20)
    np.savez(tmp_path / "train.npz", x=x, y=y)
    np.savez(tmp_path / "test.npz", x=x[:0], y=y[:0])
    xt, yt, where, cifar = ft.load_training(tmp_path)
    assert np.array_equal(xt, x) and np.array_equal(yt, y) and cifar
    assert "CIFAR-10 train" in where
    xd, yd, where, cifar = ft.load_training("digits")
    assert xd.shape[1:] == (8, 8, 1) and len(yd) == len(xd) and not cifar
    assert where == "digits (train)"


def test_finetune_ops_with_augmentation_and_without_teacher():
    model = _model(seed=1)
    ops = cv.import_ops(model)
    g = cv.convert_ops(ops, _pixels(32, seed=1), progress=False)
    x, y = _pixels(16, seed=8), np.random.default_rng(9).integers(0, CLASSES, 16)
    h, hist = ft.finetune_ops(g, ops, x, y, epochs=2, batch_size=8, distill=0.0,
                              augment=True, progress=False)
    assert len(hist) == 2 and all(np.isfinite(r["loss"]) for r in hist)
    assert h.meta["finetune"]["teacher"] is None and h.meta["finetune"]["augment"]
    assert h.meta["finetune"]["batch_size"] == 8
    assert h.nodes == g.nodes
    assert snn.run(h, x).logits.shape == (16, CLASSES)
