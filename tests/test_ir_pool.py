"""The pooling ops (``maxpool``, ``avgpool``) and depthwise ``conv`` in the IR (python_ref.ir):
shapes, bounds, widths, and an error naming the layer for every bad field."""
import numpy as np
import pytest

from python_ref import ir


def pool_net():
    """input 6x6x2 (3 bits) -> conv 3x3 p1 (4 ch) -> relu K=3 -> maxpool 2/2 -> depthwise conv 3x3
    p1 -> relu K=4 -> avgpool 3/1 p1 -> dense 5; a side avgpool on the input feeds nothing."""
    rng = np.random.default_rng(0)
    arrays = {
        "c1.w": rng.integers(-9, 10, (4, 3, 3, 2)).astype(np.int8),
        "c1.b": rng.integers(-20, 21, 4).astype(np.int32),
        "dw.w": rng.integers(-9, 10, (4, 3, 3, 1)).astype(np.int8),
        "dw.b": rng.integers(-20, 21, 4).astype(np.int32),
        "fc.w": rng.integers(-127, 128, (5, 3 * 3 * 4)).astype(np.int8),
    }
    nodes = [
        {"name": "input", "op": "input", "inputs": [], "shape": [6, 6, 2], "bits": 3},
        {"name": "c1", "op": "conv", "inputs": ["input"], "weight": "c1.w", "bias": "c1.b",
         "kernel": 3, "stride": 1, "padding": 1, "out_channels": 4},
        {"name": "a1", "op": "amos", "inputs": ["c1"], "unit": "r3", "rshift": [2]},
        {"name": "mp", "op": "maxpool", "inputs": ["a1"], "kernel": 2, "stride": 2,
         "padding": 0},
        {"name": "dw", "op": "conv", "inputs": ["mp"], "weight": "dw.w", "bias": "dw.b",
         "kernel": 3, "stride": 1, "padding": 1, "out_channels": 4, "groups": 4},
        {"name": "a2", "op": "amos", "inputs": ["dw"], "unit": "r4", "rshift": [1]},
        {"name": "ap", "op": "avgpool", "inputs": ["a2"], "kernel": 3, "stride": 1,
         "padding": 1},
        {"name": "fc", "op": "dense", "inputs": ["ap"], "weight": "fc.w", "out_features": 5},
        {"name": "ip", "op": "avgpool", "inputs": ["input"], "kernel": 2, "stride": 2,
         "padding": 1},
    ]
    units = {"r3": {"kind": "relu", "K": 3}, "r4": {"kind": "relu", "K": 4}}
    return ir.Graph("pool", nodes, units, arrays, ["fc"])


def test_shapes_bounds_and_widths():
    g = pool_net()
    info = ir.validate(g)
    assert info["mp"]["shape"] == (3, 3, 4) and (info["mp"]["lo"], info["mp"]["hi"]) == (0, 7)
    assert info["dw"]["shape"] == (3, 3, 4)
    assert info["ap"]["shape"] == (3, 3, 4) and (info["ap"]["lo"], info["ap"]["hi"]) == (0, 135)
    assert info["ip"]["shape"] == (4, 4, 2) and info["ip"]["hi"] == 4 * 7
    # depthwise bounds by hand: per channel, positive/negative weight sums times the input range
    w = g.arrays["dw.w"].astype(np.int64).reshape(4, 9)
    b = g.arrays["dw.b"].astype(np.int64)
    hi = np.clip(w, 0, None).sum(1) * 7 + b
    lo = np.clip(w, None, 0).sum(1) * 7 + b
    assert (info["dw"]["lo"], info["dw"]["hi"]) == (int(lo.min()), int(hi.max()))
    bits = {n: ir.activation_bits(g, n) for n in ("input", "a1", "mp", "a2", "ap", "ip")}
    assert bits == {"input": 3, "a1": 3, "mp": 3, "a2": 4, "ap": 4 + 4, "ip": 3 + 2}
    assert g.neurons() == 6 * 6 * 4 * 3 + 3 * 3 * 4 * 4
    assert g.time_steps() == 7


def test_save_load_roundtrip_keeps_the_new_fields(tmp_path):
    g = pool_net()
    ir.save(g, tmp_path / "p")
    h = ir.load(tmp_path / "p")
    assert h.nodes == g.nodes
    assert ir.validate(h) == ir.validate(g)


def test_groups_field_defaults_to_one():
    g = pool_net()
    assert ir.conv_groups(g.node["c1"]) == 1 and ir.conv_groups(g.node["dw"]) == 4
    g.nodes[1]["groups"] = 1
    assert ir.validate(g)["c1"]["shape"] == (6, 6, 4)


def test_kernel_one_pool_keeps_the_width():
    g = pool_net()
    g.node["ap"].update(kernel=1, padding=0)
    assert ir.activation_bits(g, "ap") == 4


def _broken(edit):
    g = pool_net()
    edit(g.index(), g)
    return g


@pytest.mark.parametrize("edit,msg", [
    (lambda n, g: n["dw"].update(groups=2),
     r"layer 'dw': groups must be 1 or the input channels \(4\), not 2"),
    (lambda n, g: n["dw"].update(groups="4"),
     r"layer 'dw': groups must be 1 or the input channels \(4\), not '4'"),
    (lambda n, g: n["dw"].update(groups=True),
     r"layer 'dw': groups must be 1 or the input channels \(4\), not True"),
    (lambda n, g: n["dw"].update(out_channels=8),
     r"layer 'dw': a depthwise conv \(groups = 4\) needs out_channels = in_channels = 4, not 8"),
    (lambda n, g: g.arrays.update({"dw.w": np.zeros((4, 3, 3, 4), np.int8)}),
     r"layer 'dw': weight shape \(4, 3, 3, 4\) does not match \(channels, kernel, kernel, 1\) "
     r"for a depthwise conv = \(4, 3, 3, 1\)"),
    (lambda n, g: n["mp"].update(inputs=["c1"]),
     r"layer 'mp': maxpool needs non-negative activations \(one of: relu, maxpool\), but its "
     r"input 'c1' is op 'conv'"),
    (lambda n, g: n["mp"].update(inputs=["input"]),
     r"layer 'mp': maxpool needs .* its input 'input' is op 'input'"),
    (lambda n, g: n["ip"].update(op="maxpool"),
     r"layer 'ip': maxpool needs .* its input 'input' is op 'input'"),
    (lambda n, g: g.units.update(r3={"kind": "amos", "c": "u.c", "T": "u.c", "h": "u.h",
                                     "d": "u.c"}) or g.arrays.update(
        {"u.c": np.array([2, 1]), "u.h": np.array([[0, 0], [1, 0]])}),
     r"layer 'mp': maxpool needs .* its input 'a1' is an amos layer with a non-ReLU unit"),
    (lambda n, g: n["ap"].update(inputs=["dw"]),
     r"layer 'ap': avgpool needs non-negative activations \(one of: relu, maxpool, avgpool, "
     r"input\), but its input 'dw' is op 'conv'"),
    (lambda n, g: n["mp"].update(kernel=0), r"layer 'mp': kernel must be >= 1, not 0"),
    (lambda n, g: n["mp"].update(stride=0), r"layer 'mp': stride must be >= 1, not 0"),
    (lambda n, g: n["mp"].update(padding=2),
     r"layer 'mp': padding must lie in 0..kernel-1 = 0..1, not 2"),
    (lambda n, g: n["ap"].update(padding=-1),
     r"layer 'ap': padding must lie in 0..kernel-1 = 0..2, not -1"),
    (lambda n, g: n["mp"].update(kernel=7, padding=0),
     r"layer 'mp': output would be empty \(0x0\)"),
    (lambda n, g: n["mp"].update(stride=2.0), r"layer 'mp': field 'stride' must be int"),
    (lambda n, g: n["ap"].pop("padding"), r"layer 'ap': missing field 'padding'"),
    (lambda n, g: n["ap"].update(inputs=["a2", "a2"]),
     r"layer 'ap': op 'avgpool' takes 1..1 inputs"),
    (lambda n, g: n["mp"].update(shape=[2, 2, 4]),
     r"layer 'mp': declared shape \(2, 2, 4\) but the inputs give \(3, 3, 4\)"),
])
def test_errors_name_the_layer(edit, msg):
    with pytest.raises(ir.IRError, match=msg):
        ir.validate(_broken(edit))


def test_pool_of_a_vector_is_an_error():
    g = pool_net()
    g.nodes[-1:] = [
        {"name": "a3", "op": "amos", "inputs": ["fc"], "unit": "r3", "rshift": [0]},
        {"name": "p3", "op": "maxpool", "inputs": ["a3"], "kernel": 1, "stride": 1,
         "padding": 0}]
    with pytest.raises(ir.IRError, match=r"layer 'p3': maxpool needs an \(H, W, C\) input, not "
                                         r"shape \(5,\)"):
        ir.validate(g)


def test_activation_bits_errors():
    g = pool_net()
    with pytest.raises(ir.IRError, match=r"layer 'nope': no such layer"):
        ir.activation_bits(g, "nope")
    with pytest.raises(ir.IRError, match=r"layer 'dw': op 'conv' does not carry unsigned"):
        ir.activation_bits(g, "dw")
