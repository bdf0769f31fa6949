"""python -m python_ref.evaluate --description STEM --data DATA [--onnx MODEL.onnx]: a user's
converted description (not a zoo name) evaluated, its ANN through onnxruntime, and the errors."""
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from python_ref import convert as cv
from python_ref import evaluate as ev
from python_ref import ir, snn
from python_ref.data import load_digits


def _user_model():
    """Conv 3x3 -> Relu -> MaxPool 2 -> Gemm on 8x8 digits, random weights (batch fixed 1,
    as torch.onnx.export writes it)."""
    rng = np.random.default_rng(0)
    inits = {"w": rng.normal(0, 0.5, (4, 1, 3, 3)), "b": rng.normal(0, 0.1, 4),
             "fw": rng.normal(0, 0.5, (10, 4 * 4 * 4)), "fb": rng.normal(0, 0.1, 10)}
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="act"),
             helper.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2, 2],
                              strides=[2, 2]),
             helper.make_node("Flatten", ["p"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], name="fc", transB=1)]
    g = helper.make_graph(
        nodes, "user", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
        [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


@pytest.fixture(scope="module")
def user(tmp_path_factory):
    d = tmp_path_factory.mktemp("evaluser")
    onnx.save(_user_model(), d / "m.onnx")
    cv.main(["--onnx", str(d / "m.onnx"), "--calib", "digits", "--out", str(d / "mine"),
             "--std", "0.5", "--calib-images", "300"])
    x, y = load_digits("test")
    np.savez(d / "test.npz", x=x[:60], y=y[:60])
    return {"dir": d, "x": x[:60], "y": y[:60]}


def test_cli_evaluates_a_users_description(user, tmp_path, capsys):
    d = user["dir"]
    out, per = tmp_path / "r.json", tmp_path / "per.npz"
    ev.main(["--description", str(d / "mine"), "--data", str(d / "test.npz"), "--onnx",
             str(d / "m.onnx"), "--json", str(out), "--per-image", str(per), "--no-progress"])
    r = json.loads(out.read_text())
    g = ir.load(d / "mine")
    x, y = user["x"], user["y"]
    s = snn.run(g, x)
    sess = ort.InferenceSession(str(d / "m.onnx"))
    nchw = (x.transpose(0, 3, 1, 2) / 255 / 0.5).astype(np.float32)  # the recorded std 0.5
    ann = np.concatenate([sess.run(None, {"x": nchw[i:i + 1]})[0] for i in range(len(x))])
    assert r["model"] == "mine" and r["n_images"] == 60
    assert r["snn_top1"] == float((s.classes == y).mean())
    assert r["ann_top1"] == float((ann.argmax(1) == y).mean())
    assert r["agreement"] == float((ann.argmax(1) == s.classes).mean())
    assert r["spikes_per_image"] == float(s.spikes_per_image.mean())
    assert r["neurons"] == g.neurons() and r["time_steps"] == g.time_steps()
    rows = {row["name"]: row for row in r["per_layer"]}
    assert rows["pool"]["op"] == "maxpool" and rows["pool"]["adds"] == 3 * 4 * 4 * 4
    assert rows["conv"]["macs"] == 8 * 8 * 4 * 9
    z = np.load(per)
    assert np.array_equal(z["logits"], s.logits)
    assert np.array_equal(z["ann_class"], ann.argmax(1))
    printed = capsys.readouterr().out
    assert "mine" in printed and f"{100 * r['snn_top1']:.2f}%" in printed


def test_without_onnx_the_ann_figures_are_empty(user, capsys):
    r = ev.evaluate_description(user["dir"] / "mine.json", "digits", limit=30, progress=False,
                                per_image=user["dir"] / "p.npz")
    x, y = load_digits("test")
    idx = ev.subset(len(y), 30)
    s = snn.run(ir.load(user["dir"] / "mine"), x[idx])
    assert r["snn_top1"] == float((s.classes == y[idx]).mean())
    assert r["ann_top1"] is None and r["agreement"] is None and r["gap_points"] is None
    assert (np.load(user["dir"] / "p.npz")["ann_class"] == -1).all()
    assert f"{'-':>8}" in ev.table_row(r)


def test_errors_name_the_file(user, tmp_path):
    d = user["dir"]
    good = ["--data", str(d / "test.npz"), "--no-progress"]
    with pytest.raises(SystemExit, match=r"nope.json: no such file"):
        ev.main(["--description", str(tmp_path / "nope"), *good])
    (tmp_path / "bad.json").write_text("{")
    (tmp_path / "bad.npz").write_bytes((d / "mine.npz").read_bytes())
    with pytest.raises(SystemExit, match=r"bad.json: not valid JSON"):
        ev.main(["--description", str(tmp_path / "bad"), *good])
    (tmp_path / "bad.json").write_text((d / "mine.json").read_text())
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(SystemExit, match=r"bad.npz: cannot be read as an .npz"):
        ev.main(["--description", str(tmp_path / "bad"), *good])
    mine = ["--description", str(d / "mine"), "--no-progress"]
    with pytest.raises(SystemExit, match=r"--data is needed with a description of your own"):
        ev.main(mine)
    with pytest.raises(SystemExit, match=r"missing.npz: no such test-data file or folder"):
        ev.main([*mine, "--data", str(tmp_path / "missing.npz")])
    np.savez(tmp_path / "noy.npz", x=user["x"])
    with pytest.raises(SystemExit, match=r"noy.npz: not an .npz with arrays 'x'"):
        ev.main([*mine, "--data", str(tmp_path / "noy.npz")])
    np.savez(tmp_path / "float.npz", x=user["x"].astype(np.float32), y=user["y"])
    with pytest.raises(SystemExit, match=r"float.npz: x must be uint8 N x H x W x C"):
        ev.main([*mine, "--data", str(tmp_path / "float.npz")])
    np.savez(tmp_path / "big.npz", x=np.zeros((2, 9, 9, 1), np.uint8), y=np.zeros(2))
    with pytest.raises(SystemExit, match=r"big.npz: images of shape \(9, 9, 1\); description "
                                         r"'mine' takes \(8, 8, 1\)"):
        ev.main([*mine, "--data", str(tmp_path / "big.npz")])
    with pytest.raises(SystemExit, match=r"absent.onnx: no such ONNX file"):
        ev.main([*mine, *good, "--onnx", str(tmp_path / "absent.onnx")])
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    with pytest.raises(SystemExit, match=r"junk.onnx: cannot be read as an ONNX model"):
        ev.main([*mine, *good, "--onnx", str(tmp_path / "junk.onnx")])


def test_cli_usage_errors(capsys):
    with pytest.raises(SystemExit):
        ev.main(["--no-progress"])
    assert "give --model (a zoo network) or --description STEM" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        ev.main(["--model", "digits", "--onnx", "m.onnx"])
    assert "--onnx is for your own description" in capsys.readouterr().err
