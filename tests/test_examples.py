"""The four "bring your own model" examples (examples/): each network, defined outside the project
and untrained (seeded random weights and batch-norm statistics), exports to ONNX with the
examples' own export and goes through the importer and the converter on a handful of random
calibration images. No training here: examples/*/train.py is run by hand (examples/README.md)."""
from __future__ import annotations

import contextlib
import io
import json
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from examples import common, record
from examples.mbconv_cifar import model as mbconv
from examples.mobilenet_cifar import model as mobilenet
from examples.mobilenet_cifar import train as mobilenet_train
from examples.swish_cifar import model as swish
from examples.vgg_cifar import model as vgg
from python_ref import convert as cv
from python_ref import ir, snn
from python_ref.importers import import_onnx

#: run_float (float64) against onnxruntime (float32) on the same float network
FLOAT_ATOL = 1e-4
#: calibration images (random pixels: the test needs no data set)
CALIB = 8

#: Each example's float ops as the importer gives them, in order.
EXPECTED_OPS = {
    "vgg_cifar": ["input"] + ["conv", "relu", "conv", "relu", "maxpool"] * 3 + ["dense"],
    "mobilenet_cifar": ["input", "conv", "relu"] + ["conv", "relu"] * 10 + ["gap", "dense"],
    "swish_cifar": ["input"] + ["conv", "swish"] * 5 + ["gap", "dense", "sigmoid", "dense"],
    "mbconv_cifar": ["input", "conv", "swish"] + (["conv", "swish"] * 2 + [
        "gap", "dense", "swish", "dense", "sigmoid", "gate", "conv", "swish"]) * 2
    + ["gap", "dense"],
}
BUILDERS = {"vgg_cifar": vgg.build, "mobilenet_cifar": mobilenet.build,
            "swish_cifar": swish.build, "mbconv_cifar": mbconv.build}


def _randomise_batchnorm(model: torch.nn.Module, gen: torch.Generator) -> None:
    """Batch-norm statistics and affine parameters away from the identity, so that folding
    them is exercised."""
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(0.1 * torch.randn(c, generator=gen))
            m.running_var.copy_(0.5 + torch.rand(c, generator=gen))
            m.weight.data.copy_(0.5 + torch.rand(c, generator=gen))
            m.bias.data.copy_(0.1 * torch.randn(c, generator=gen))


def _nchw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def example(request, tmp_path_factory):
    """An untrained example network, its ONNX export, random calibration pixels and the
    description the CLI converted from them."""
    name = request.param
    torch.manual_seed(0)
    model = BUILDERS[name]()
    _randomise_batchnorm(model, torch.Generator().manual_seed(1))
    model.eval()
    d = tmp_path_factory.mktemp(name)
    # the exporter prints progress and warns about torchvision ops it skips
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        path = common.export_onnx(model, d / "model.onnx")
    x = np.random.default_rng(2).integers(0, 256, (CALIB, 32, 32, 3), dtype=np.uint8)
    np.savez(d / "calib.npz", x=x)
    with contextlib.redirect_stdout(io.StringIO()):
        cv.main(["--onnx", str(path), "--calib", str(d / "calib.npz"), "--out", str(d / name)])
    return {"name": name, "model": model, "onnx": path, "dir": d, "x": x,
            "g": ir.load(d / name)}


def test_export_has_a_symbolic_batch(example):
    dims = onnx.load(example["onnx"]).graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [3, 32, 32]


def test_imported_ops(example):
    ops = import_onnx(example["onnx"])
    assert [o["op"] for o in ops] == EXPECTED_OPS[example["name"]]


def test_float_ops_equal_onnxruntime(example):
    got = cv.run_float(import_onnx(example["onnx"]), example["x"], dtype=np.float64)
    sess = ort.InferenceSession(str(example["onnx"]))
    want = sess.run(None, {sess.get_inputs()[0].name: _nchw(example["x"]).numpy()})[0]
    np.testing.assert_allclose(got, want, rtol=0, atol=FLOAT_ATOL)


def test_description_valid_and_runs(example):
    g = example["g"]
    ir.validate(g)
    assert g.name == example["name"]
    assert g.meta["source"]["onnx"] == "model.onnx"
    assert g.meta["calibration"]["images"] == CALIB
    res = snn.run(g, example["x"][:2])
    assert res.logits.shape == (2, 10)


def _renamed(g: ir.Graph) -> tuple:
    """The description's nodes, arrays, units and outputs with every layer named by its
    position: the exporter numbers its nodes differently for a fixed and a symbolic batch."""
    names = {n["name"]: f"layer{i}" for i, n in enumerate(g.nodes)}

    def rename(v):
        if isinstance(v, str):
            head, dot, tail = v.partition(".")
            return names.get(v) or (names[head] + dot + tail if head in names else v)
        if isinstance(v, list):
            return [rename(e) for e in v]
        return v

    nodes = [{k: rename(v) for k, v in n.items()} for n in g.nodes]
    arrays = {rename(k): v for k, v in g.arrays.items()}
    return nodes, arrays, g.units, rename(list(g.outputs))


@pytest.mark.slow  # a second export of each network; the ONNX route above is the cheap sibling
def test_from_torch_gives_the_same_description(example):
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        g = cv.from_torch(example["model"], torch.zeros(1, 3, 32, 32),
                          example["dir"] / "calib.npz", name=example["name"], progress=False)
    nodes, arrays, units, outputs = _renamed(g)
    want_nodes, want_arrays, want_units, want_outputs = _renamed(example["g"])
    assert nodes == want_nodes and units == want_units and outputs == want_outputs
    assert arrays.keys() == want_arrays.keys()
    for k, v in want_arrays.items():
        np.testing.assert_array_equal(arrays[k], v)


REPORT = {k: 1 for k in record.ESTIMATE_FIELDS} | {"model": "net", "model_sha256": "ab"}


def test_record_merges_estimate_and_rtl(tmp_path):
    (tmp_path / "r.json").write_text(json.dumps({"model": "net", "snn_top1": 0.5}))
    (tmp_path / "report.json").write_text(json.dumps(REPORT | {"layers": []}))
    rtl = {"command": "c", "model_sha256": "ab", "runs": {"verilator": {"mismatches": 0}}}
    (tmp_path / "rtl.json").write_text(json.dumps(rtl))
    record.main(["--json", str(tmp_path / "r.json"), "--report", str(tmp_path / "report.json"),
                 "--report-command", "gen", "--rtl", str(tmp_path / "rtl.json"),
                 "--rtl-command", "sim", "--command", "eval", "--out", str(tmp_path / "o.json")])
    out = json.loads((tmp_path / "o.json").read_text())
    assert json.loads((tmp_path / "r.json").read_text()) == {"model": "net", "snn_top1": 0.5}
    assert out["snn_top1"] == 0.5 and out["command"] == "eval"
    assert out["estimate"] == {k: REPORT[k] for k in record.ESTIMATE_FIELDS} | {"command": "gen"}
    assert out["rtl"] == {"command": "sim", "runs": rtl["runs"]}
    assert record.record({"model": "net"}, rtl=rtl)["rtl"]["command"] == "c"


def test_record_updates_the_result_in_place(tmp_path):
    (tmp_path / "r.json").write_text(json.dumps({"model": "net"}))
    record.main(["--json", str(tmp_path / "r.json"), "--command", "eval"])
    assert json.loads((tmp_path / "r.json").read_text()) == {"model": "net", "command": "eval"}


@pytest.mark.parametrize("report, rtl, match", [
    ({"model": "net"}, None, "not a generator report.json"),
    (REPORT | {"model": "other"}, None, "--report is of model 'other'"),
    (None, {"model_sha256": "ab"}, "not an rtl_tests.network result"),
    (REPORT, {"model_sha256": "cd", "runs": {}}, "--rtl ran the description cd"),
])
def test_record_refuses_other_descriptions(report, rtl, match):
    with pytest.raises(record.RecordError, match=match):
        record.record({"model": "net"}, report, rtl)


def test_record_file_errors(tmp_path):
    with pytest.raises(SystemExit, match="--json .*none.json: no such file"):
        record.main(["--json", str(tmp_path / "none.json")])
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(SystemExit, match="--json .*bad.json: not a JSON file"):
        record.main(["--json", str(tmp_path / "bad.json")])


def test_train_cli_rejects_zero_epochs(capsys):
    with pytest.raises(SystemExit):
        mobilenet_train.main(["--epochs", "0"])
    assert "--epochs must be at least 1, not 0" in capsys.readouterr().err
