"""AMOS conversion (python_ref.convert): folding, calibration, quantisation, errors."""
import math

import numpy as np
import pytest
import torch

from python_ref import convert as cv
from python_ref import ir
from python_ref.data import DataError
from python_ref.models import build_model


def _images(n, shape=(32, 32, 3), seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, *shape), dtype=np.uint8)


def _torch_model(arch, sd):
    m = build_model(arch).double()
    m.load_state_dict({k: torch.from_numpy(np.asarray(v)).to(m.state_dict()[k].dtype)
                       for k, v in sd.items()})
    return m.double().eval()


@pytest.fixture(scope="module")
def r8():
    sd = cv.random_state_dict("resnet8", seed=1)
    g = cv.convert("resnet8", sd=sd, calib_images=_images(16), progress=False)
    return sd, g


def test_folded_float_graph_equals_torch():
    sd = cv.random_state_dict("resnet8", seed=2)
    x = _images(4, seed=3)
    with torch.no_grad():
        want = _torch_model("resnet8", sd)(torch.from_numpy(x).permute(0, 3, 1, 2).double() / 255)
    got = cv.run_float(cv.float_graph("resnet8", sd), x, dtype=np.float64)
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-9, atol=1e-9)


def test_calibration_percentile_is_exact():
    sd = cv.random_state_dict("digits", seed=0)
    ops = cv.float_graph("digits", sd)
    x = _images(300, (8, 8, 1), seed=4)
    seen = []
    cv.run_float(ops, x, hook=lambda n, v: seen.append(v))
    for p in (99.99, 99.0, 75.0, 100.0):
        a = cv.calibrate(ops, x, p, batch_size=37, progress=False)["act1"]
        want = float(np.percentile(seen[0].astype(np.float64), p))
        assert want > 0 and a == pytest.approx(want, rel=1e-6)


def test_quantisation_rules(r8):
    sd, g = r8
    info = ir.validate(g)
    node = g.index()
    for n in g.nodes:
        if n["op"] in ("conv", "dense"):
            w = g.arrays[n["weight"]]
            assert w.dtype == np.int8 and np.abs(w).max() <= 127
            consumer = ([m for m in g.nodes if n["name"] in m.get("inputs", [])] or [n])[0]
            if consumer["op"] == "add" and any(s > 0 for s in consumer["lshift"]):
                # identity shortcut: accumulator scale pinned to the skip's scale / 2**shift
                amax = max(np.abs(g.arrays[node[t]["weight"]]).max()
                           for t in consumer["inputs"] if node[t]["op"] == "conv")
                assert 64 <= amax <= 127
            else:  # the layer's largest |weight| maps to 127
                terms = ([node[t] for t in consumer["inputs"] if node[t]["op"] == "conv"]
                         if consumer["op"] == "add" else [n])
                assert max(np.abs(g.arrays[t["weight"]]).max() for t in terms) == 127
        if n["op"] == "amos":
            assert n["alpha_cal"] <= n["alpha"] < 2 * n["alpha_cal"]
            src = node[n["inputs"][0]]
            assert n["scale"] == pytest.approx(src["scale"] * 2 ** n["rshift"][0], rel=1e-12)
        if n["op"] == "add":
            for t, s in zip(n["inputs"], n["lshift"], strict=True):
                assert node[t]["scale"] == pytest.approx(n["scale"] * 2**s, rel=1e-12)
    assert info["fc"]["shape"] == (10,)


def test_integer_reference_tracks_float_network(r8):
    """On the calibration-like random images the integer logits (times their scale) are close
    to the float ones: tolerance 2 % of the logit range."""
    from python_ref import snn

    sd, g = r8
    x = _images(8, seed=9)
    f = cv.run_float(cv.float_graph("resnet8", sd), x, dtype=np.float64)
    r = snn.run(g, x)
    err = np.abs(r.logits * g.index()["fc"]["scale"] - f).max()
    assert err <= 0.02 * (f.max() - f.min())


@pytest.mark.parametrize("arch,neurons", [("resnet8", 737_280), ("resnet14", 1_310_720),
                                          ("resnet20", 1_884_160)])
def test_neurons_from_description(arch, neurons):
    g = cv.convert(arch, sd=cv.random_state_dict(arch), calib_images=_images(2), progress=False)
    assert g.neurons() == neurons
    assert g.time_steps() == 10 * (1 + 2 * 3 * {"resnet8": 1, "resnet14": 2, "resnet20": 3}[arch])


def test_per_layer_K(r8):
    sd, _ = r8
    g = cv.convert("resnet8", sd=sd, calib_images=_images(4), K_layers={"stem.act": 8},
                   progress=False)
    assert g.index()["stem.act"]["unit"] == "relu_k8"
    assert g.units["relu_k8"] == {"kind": "relu", "K": 8}
    assert g.neurons() == 737_280 - 2 * 16 * 32 * 32
    with pytest.raises(cv.ConversionError, match="K override for 'stem.relu': no such activation"):
        cv.convert("resnet8", sd=sd, calib_images=_images(2), K_layers={"stem.relu": 8},
                   progress=False)


@pytest.mark.parametrize("kl,shifted", [({"block0.act2": 6}, "block1.shortcut"),
                                        ({"block1.act1": 4}, "block1.conv2")])
def test_per_layer_K_aligns_the_terms_of_one_accumulator(r8, kl, shifted):
    """A K = 6 (or 4) layer under K = 10 elsewhere gives the convolution reading it a scale 16x
    (64x) coarser than its partner in the same add; the accumulator takes the finer term's scale and
    the coarser term a left shift (``ALIGN_BITS``), so every term keeps its weights' full range
    (at the coarser scale the finer one kept a few levels: 1.6 % top-1 on CIFAR-10), and the
    integer network still tracks the float one."""
    from python_ref import snn

    sd, _ = r8
    g = cv.convert("resnet8", sd=sd, calib_images=_images(16), K_layers=kl, progress=False)
    node = g.index()
    add = node["block1.add"]
    shifts = dict(zip(add["inputs"], add["lshift"], strict=True))
    assert shifts[shifted] >= 2 and min(shifts.values()) == 0
    for t in add["inputs"]:
        assert node[t]["scale"] == pytest.approx(add["scale"] * 2 ** shifts[t], rel=1e-12)
        assert 64 <= np.abs(g.arrays[node[t]["weight"]]).max() <= 127
    x = _images(8, seed=9)
    f = cv.run_float(cv.float_graph("resnet8", sd), x, dtype=np.float64)
    err = np.abs(snn.run(g, x).logits * node["fc"]["scale"] - f).max()
    assert err <= 0.02 * (f.max() - f.min())


@pytest.mark.parametrize("ratio,shared", [(1.0, True), (3.9, True), (4.0, False),
                                           (40.0, False)])
def test_terms_share_the_coarsest_scale_below_align_bits(ratio, shared):
    """Two conv terms whose own scales lie less than ``2**ALIGN_BITS`` apart share the coarser
    one, shift 0 (how every shipped description was made: their ratios are under 3); from
    that ratio on the accumulator takes the finer and the coarser term shifts left by
    ``ceil(log2(ratio))``."""
    assert cv.ALIGN_BITS == 2
    ops = [{"name": "a", "op": "input", "inputs": []}, {"name": "b", "op": "input", "inputs": []},
           {"name": "ca", "op": "conv", "inputs": ["a"], "w": np.array([127.0])},
           {"name": "cb", "op": "conv", "inputs": ["b"], "w": np.array([127.0])}]
    p = cv._Scales(byname={o["name"]: o for o in ops}, consumers={}, qmax=127, input_bits=8,
                   weight_bits=8, unit_bits=(8, 8, 8), scale={"a": 1.0, "b": ratio},
                   acc_scale={}, act={})
    s_acc, skip_lsh, conv_lsh = cv._accumulator_scale(p, ops[2:], [], "x")
    assert skip_lsh == []
    if shared:
        assert (s_acc, conv_lsh) == (ratio, [0, 0])
    else:
        assert (s_acc, conv_lsh) == (1.0, [0, math.ceil(math.log2(ratio))])


def _save_ckpt(path, arch, sd, **extra):
    torch.save({"arch": arch, "state_dict": {k: torch.from_numpy(np.asarray(v)).float()
                                             for k, v in sd.items()}, **extra}, path)


def test_checkpoint_of_another_architecture(tmp_path):
    sd14 = cv.random_state_dict("resnet14")
    _save_ckpt(tmp_path / "r14.pt", "resnet14", sd14)
    with pytest.raises(cv.ConversionError,
                       match="checkpoint is for architecture 'resnet14', not 'resnet8'"):
        cv.load_checkpoint(tmp_path / "r14.pt", "resnet8")
    torch.save({"state_dict": {k: torch.from_numpy(np.asarray(v)) for k, v in sd14.items()}},
               tmp_path / "noarch.pt")
    with pytest.raises(cv.ConversionError,
                       match="layer 'blocks.3.bn1' is not part of resnet8 .*another architecture"):
        cv.load_checkpoint(tmp_path / "noarch.pt", "resnet8")


def test_missing_layer_and_wrong_shape(tmp_path):
    sd = cv.random_state_dict("resnet8")
    del sd["blocks.1.shortcut.1.running_var"]
    _save_ckpt(tmp_path / "a.pt", "resnet8", sd)
    with pytest.raises(cv.ConversionError, match="layer 'blocks.1.shortcut.1' is missing"):
        cv.load_checkpoint(tmp_path / "a.pt", "resnet8")
    sd = cv.random_state_dict("resnet8")
    sd["fc.weight"] = np.zeros((100, 64))
    _save_ckpt(tmp_path / "b.pt", "resnet8", sd)
    with pytest.raises(cv.ConversionError,
                       match=r"layer 'fc': 'fc.weight' has shape \(100, 64\), resnet8 expects "
                             r"\(10, 64\)"):
        cv.load_checkpoint(tmp_path / "b.pt", "resnet8")


def test_unreadable_checkpoints(tmp_path):
    with pytest.raises(cv.ConversionError, match="no such checkpoint"):
        cv.load_checkpoint(tmp_path / "nope.pt", "resnet8")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(cv.ConversionError, match="junk.pt: cannot be read as a torch checkpoint"):
        cv.load_checkpoint(tmp_path / "junk.pt", "resnet8")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(cv.ConversionError, match="list.pt: not a python_ref checkpoint"):
        cv.load_checkpoint(tmp_path / "list.pt", "resnet8")
    with pytest.raises(cv.ConversionError, match="unknown model 'vgg'"):
        cv.load_checkpoint(tmp_path / "list.pt", "vgg")


def test_cli_converts_digits_like_the_zoo(tmp_path, capsys):
    """The committed digits description is what the converter makes from the committed
    checkpoint (so the zoo is current)."""
    cv.main(["--model", "digits", "--out", str(tmp_path / "d")])
    assert "320 neurons, 10 time steps" in capsys.readouterr().out
    _assert_equivalent(ir.load(tmp_path / "d"), ir.load(cv.ZOO / "digits"))


def _assert_equivalent(fresh, zoo):
    """The same integer network: alpha_cal (the float calibration level, recorded for
    information) comes from float32 sums whose last bits depend on the CPU's BLAS code path:
    equal to 1e-6 relative; everything the integer network is made of (every other field,
    every array) exactly equal."""
    assert [{k: v for k, v in n.items() if k != "alpha_cal"} for n in fresh.nodes] == \
        [{k: v for k, v in n.items() if k != "alpha_cal"} for n in zoo.nodes]
    for a, b in zip(fresh.nodes, zoo.nodes, strict=True):
        assert ("alpha_cal" in a) == ("alpha_cal" in b)
        if "alpha_cal" in a:
            assert math.isclose(a["alpha_cal"], b["alpha_cal"], rel_tol=1e-6), a["name"]
    assert fresh.units == zoo.units
    assert fresh.arrays.keys() == zoo.arrays.keys()
    for k in zoo.arrays:
        assert np.array_equal(fresh.arrays[k], zoo.arrays[k]) and \
            fresh.arrays[k].dtype == zoo.arrays[k].dtype


@pytest.mark.slow
@pytest.mark.parametrize("arch,shipped", [("resnet8", "resnet8_plain"), ("resnet14", "resnet14")])
def test_zoo_resnets_through_the_importer(arch, shipped):
    """The shipped plain conversions are what the converter (now through torch.export and the
    ONNX importer) makes from the committed checkpoints and 2,000 CIFAR-10 training images;
    digits, the cheap sibling, is test_cli_converts_digits_like_the_zoo."""
    try:
        x = cv.calibration_images(arch)
    except DataError as e:
        pytest.skip(f"CIFAR-10 not found: {e}")
    _assert_equivalent(cv.convert(arch, calib_images=x, progress=False), ir.load(cv.ZOO / shipped))


def test_cli_errors(tmp_path):
    with pytest.raises(SystemExit, match="error: .*nope.pt: no such checkpoint"):
        cv.main(["--model", "resnet8", "--checkpoint", str(tmp_path / "nope.pt")])
    with pytest.raises(SystemExit, match="--K-layer wants NAME=K, not 'stem.act'"):
        cv.main(["--model", "digits", "--K-layer", "stem.act", "--out", str(tmp_path / "x")])


def test_pow2_guard():
    assert cv._pow2_exp(8.0) == 3 and cv._pow2_exp(0.25) == -2
    with pytest.raises(cv.ConversionError, match="not a power of two"):
        cv._pow2_exp(3.0)
    assert math.isclose(2.0 ** cv._pow2_exp(2 ** -7 * (1 + 1e-12)), 2 ** -7)
