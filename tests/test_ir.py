"""The SNN description format (python_ref.ir): files, validation, derived figures."""
import json

import numpy as np
import pytest

from python_ref import ir
from python_ref.convert import ZOO
from python_ref.quant import IntAmosUnit


def tiny(unit=None):
    """input 4x4x2 -> conv3x3 s2 p1 (3 ch) -> amos relu K=4 -> gap -> dense 5."""
    arrays = {
        "c.w": np.arange(-27, 27, dtype=np.int8).reshape(3, 3, 3, 2),
        "c.b": np.array([5, -7, 0], np.int32),
        "d.w": np.array([[1, -2, 3], [0, 1, 0], [-1, -1, -1], [2, 2, 2], [127, -127, 0]],
                        np.int8),
    }
    nodes = [
        {"name": "input", "op": "input", "inputs": [], "shape": [4, 4, 2], "bits": 3},
        {"name": "c", "op": "conv", "inputs": ["input"], "weight": "c.w", "bias": "c.b",
         "kernel": 3, "stride": 2, "padding": 1, "out_channels": 3},
        {"name": "a", "op": "amos", "inputs": ["c"], "unit": "r4", "rshift": [2]},
        {"name": "g", "op": "gap", "inputs": ["a"]},
        {"name": "d", "op": "dense", "inputs": ["g"], "weight": "d.w", "out_features": 5},
    ]
    return ir.Graph("tiny", nodes, {"r4": unit or {"kind": "relu", "K": 4}}, arrays, ["d"])


def test_shapes_and_exact_bounds():
    info = ir.validate(tiny())
    assert info["c"]["shape"] == (2, 2, 3)
    assert info["a"]["shape"] == (2, 2, 3) and (info["a"]["lo"], info["a"]["hi"]) == (0, 15)
    assert info["g"]["shape"] == (3,) and info["g"]["hi"] == 4 * 15
    # conv bounds by hand: channel 0 weights are -27, -24, ..., 24 (step 3, 18 values)
    w = np.arange(-27, 27).reshape(3, 3, 3, 2)
    pos = np.clip(w, 0, None).reshape(3, -1).sum(1)
    neg = np.clip(w, None, 0).reshape(3, -1).sum(1)
    assert info["c"]["hi"] == max(pos * 7 + np.array([5, -7, 0]))
    assert info["c"]["lo"] == min(neg * 7 + np.array([5, -7, 0]))
    # dense row [127, -127, 0] on inputs 0..60
    assert (info["d"]["lo"], info["d"]["hi"]) == (-127 * 60, 127 * 60)


def test_neurons_and_time_steps():
    g = tiny()
    assert g.neurons() == 2 * 2 * 3 * 4
    assert g.time_steps() == 4
    assert g.K_values() == {"a": 4}


def test_save_load_roundtrip(tmp_path):
    g = tiny()
    jp, zp = ir.save(g, tmp_path / "t")
    assert jp.name == "t.json" and zp.name == "t.npz"
    h = ir.load(tmp_path / "t.json")
    assert h.nodes == g.nodes and h.units == g.units and h.outputs == g.outputs
    for k, v in g.arrays.items():
        assert h.arrays[k].dtype == v.dtype and np.array_equal(h.arrays[k], v)
    assert json.loads(jp.read_text())["version"] == ir.IR_VERSION


def test_file_errors(tmp_path):
    with pytest.raises(ir.IRError, match=r"nope.json: no such file"):
        ir.load(tmp_path / "nope")
    ir.save(tiny(), tmp_path / "t")
    doc = json.loads((tmp_path / "t.json").read_text())
    (tmp_path / "t.json").write_text(json.dumps({**doc, "version": 99}))
    with pytest.raises(ir.IRError, match="format version 99 is not supported"):
        ir.load(tmp_path / "t")
    (tmp_path / "t.json").write_text(json.dumps({**doc, "format": "onnx"}))
    with pytest.raises(ir.IRError, match="not an amos_ir description"):
        ir.load(tmp_path / "t")
    (tmp_path / "t.json").write_text("{")
    with pytest.raises(ir.IRError, match="t.json: not valid JSON"):
        ir.load(tmp_path / "t")
    bad = {**doc}
    bad["nodes"][1]["out_channels"] = 4
    (tmp_path / "t.json").write_text(json.dumps(bad))
    with pytest.raises(ir.IRError, match=r"t.json: layer 'c': weight shape \(3, 3, 3, 2\)"):
        ir.load(tmp_path / "t")


def _broken(edit):
    g = tiny()
    edit(g)
    return g


@pytest.mark.parametrize("edit,msg", [
    (lambda g: g.nodes[1].update(out_channels=4),
     r"layer 'c': weight shape \(3, 3, 3, 2\) does not match \(out_channels, kernel, kernel, "
     r"in_channels\) = \(4, 3, 3, 2\)"),
    (lambda g: g.nodes[0].update(shape=[4, 4, 3]),
     r"layer 'c': weight shape .* = \(3, 3, 3, 3\)"),
    (lambda g: g.nodes[4].update(out_features=6), r"layer 'd': weight shape \(5, 3\) does not "),
    (lambda g: g.nodes[2].update(shape=[9, 9, 9]),
     r"layer 'a': declared shape \(9, 9, 9\) but the inputs give \(2, 2, 3\)"),
    (lambda g: g.nodes[3].update(inputs=["missing"]),
     r"layer 'g': input 'missing' is not an earlier layer"),
    (lambda g: g.nodes[1].update(op="pool"), r"layer 'c': unknown op 'pool'"),
    (lambda g: g.units.update(r4={"kind": "swish", "K": 4}),
     r"layer 'a': unit 'r4' has unknown kind 'swish'; known: relu, amos"),
    (lambda g: g.nodes[2].update(unit="r9"), r"layer 'a': unit 'r9' is not in the unit library"),
    (lambda g: g.arrays.pop("c.b"), r"layer 'c': bias array 'c.b' is missing from the arrays"),
    (lambda g: g.nodes[1].pop("stride"), r"layer 'c': missing field 'stride'"),
    (lambda g: g.arrays.update({"c.w": g.arrays["c.w"].astype(np.float32)}),
     r"layer 'c': weight array 'c.w' must hold integers"),
    (lambda g: g.arrays.update({"d.w": g.arrays["d.w"].astype(np.int32) * 2}),
     r"layer 'd': weights must lie in -127..127"),
    (lambda g: g.nodes[4].update(weight_bits=1),
     r"layer 'd': weight_bits must be an integer 2..32, not 1"),
    (lambda g: (g.nodes[4].update(weight_bits=6), g.arrays["d.w"].__setitem__((0, 0), 32)),
     r"layer 'd': weights must lie in -31..31 \(6-bit symmetric\)"),
    (lambda g: g.nodes[2].update(rshift=[2, 2]), r"layer 'a': rshift must hold one integer"),
    (lambda g: g.nodes.insert(4, {"name": "s", "op": "add", "inputs": ["a", "c"],
                                  "lshift": [0]}),
     r"layer 's': lshift must hold one non-negative integer per input"),
    (lambda g: g.nodes.insert(4, {"name": "s", "op": "add", "inputs": ["a", "g"],
                                  "lshift": [0, 0]}),
     r"layer 's': add inputs have different shapes"),
    (lambda g: g.nodes.append({"name": "d", "op": "gap", "inputs": ["a"]}),
     r"layer 'd': duplicate name"),
    (lambda g: g.outputs.append("zz"), r"output 'zz' is not a layer"),
])
def test_validation_errors_name_the_layer(edit, msg):
    with pytest.raises(ir.IRError, match=msg):
        ir.validate(_broken(edit))


def test_general_amos_unit_two_inputs():
    """A trained-style unit (explicit c, c2, T, h, d) fits the format: a two-input unit on two
    accumulators."""
    K = 5
    rng = np.random.default_rng(0)
    arrays = {"u.c": rng.integers(-3, 4, K), "u.c2": rng.integers(-3, 4, K),
              "u.T": rng.integers(-5, 6, K), "u.h": np.tril(rng.integers(-4, 5, (K, K)), -1),
              "u.d": rng.integers(-8, 9, K)}
    spec = {"kind": "amos", "source": "mul", "c": "u.c", "c2": "u.c2", "T": "u.T", "h": "u.h",
            "d": "u.d", "in_range": [-16, 15], "in2_range": [-16, 15]}
    g = tiny()
    g.arrays.update(arrays)
    g.units["m"] = spec
    g.nodes.insert(3, {"name": "m", "op": "amos", "inputs": ["c", "c"], "unit": "m",
                       "rshift": [3, 4]})
    g.nodes[4]["inputs"] = ["m"]  # gap reads the product unit
    info = ir.validate(g)
    u = g.unit("m")
    assert isinstance(u, IntAmosUnit) and u.inputs == 2 and u.K == K
    assert info["m"]["lo"] == int(np.clip(arrays["u.d"], None, 0).sum())
    assert g.neurons() == 2 * 2 * 3 * 4 + 2 * 2 * 3 * K
    assert g.time_steps() == K  # the output path runs through "m" only
    g.units["m"] = {**spec, "c2": None, "in2_range": None}
    with pytest.raises(ir.IRError, match=r"layer 'm': unit 'm' takes 1 input\(s\), the layer "
                                         r"gives 2"):
        ir.validate(g)
    g.units["m"] = {**spec, "T": "u.nothing"}
    with pytest.raises(ir.IRError, match=r"unit 'm': missing field or array 'u.nothing'"):
        ir.validate(g)


def test_zoo_descriptions_load():
    d = ir.load(ZOO / "digits")
    assert d.neurons() == 32 * 10 and d.time_steps() == 10
    for name, neurons, steps in (("resnet8", 737_280, 70), ("resnet14", 1_310_720, 130),
                                 # swish K = 16 (swish_wide), sigmoid K = 12, mult K = 40
                                 ("effnet_cifar", 6_703_648, 582),
                                 ("effnet_cifar_plain", 6_703_648, 582)):
        if (ZOO / f"{name}.json").is_file():
            r = ir.load(ZOO / name)
            assert r.neurons() == neurons and r.time_steps() == steps


def test_imports_without_torch():
    import subprocess
    import sys

    code = ("import sys; sys.modules['torch'] = None\n"
            "import python_ref.ir, python_ref.snn\n"
            "from python_ref.convert import ZOO\n"
            "g = python_ref.ir.load(ZOO / 'digits')\n"
            "import numpy as np\n"
            "print(python_ref.snn.run(g, np.zeros((1, 8, 8, 1), np.uint8)).classes[0] >= 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
