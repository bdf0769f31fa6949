"""The EfficientNet-style zoo model ``effnet_cifar`` (python_ref.models.EffNetCifar): its size,
its maps (every average pooling over at most 8 x 8), the MBConv semantics (linear projection,
identity skip with no activation after the add), its ONNX export against onnxruntime and the
importer, and a few training steps through python_ref.train (one resumed)."""
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

from examples import common
from python_ref import train as T
from python_ref.checkpoint import float_graph, random_state_dict
from python_ref.convert import run_float
from python_ref.importers import import_onnx
from python_ref.importers.onnx_import import SUPPORTED_OPS
from python_ref.models import EffNetCifar, build_model, count_relu_gates

#: (cin, cout, expansion, squeezed channels or 0, output side) of the seven blocks, from the
#: architecture table of the EffNetCifar docstring (EfficientNet-B0's stages 1-4, expansion 4)
BLOCKS = [(16, 16, 1, 0, 32), (16, 24, 4, 0, 16), (24, 24, 4, 0, 16), (24, 40, 4, 6, 8),
          (40, 40, 4, 10, 8), (40, 64, 4, 10, 8), (64, 64, 4, 16, 8)]
#: the same for effnet_cifar_l: blocks 5 to 7 of 80 channels, a 320-channel head
BLOCKS_L = BLOCKS[:5] + [(40, 80, 4, 10, 8), (80, 80, 4, 20, 8), (80, 80, 4, 20, 8)]


def _bn(c):
    return 2 * c  # weight and bias (the running statistics are buffers)


def _block_params(cin, cout, e, r):
    mid = cin * e
    expand = cin * mid + _bn(mid) if e != 1 else 0
    dw = 9 * mid + _bn(mid)
    se = (mid * r + r) + (r * mid + mid) if r else 0
    return expand + dw + se + mid * cout + _bn(cout)


@pytest.mark.parametrize("name, blocks, head, count", [
    ("effnet_cifar", BLOCKS, 256, 123_700), ("effnet_cifar_l", BLOCKS_L, 320, 228_908)])
def test_parameter_count_is_the_architectures_and_under_300k(name, blocks, head, count):
    stem = 3 * 16 * 9 + _bn(16)
    cin = blocks[-1][1]
    want = stem + sum(_block_params(*b[:4]) for b in blocks) + cin * head + _bn(head) \
        + head * 10 + 10
    got = sum(p.numel() for p in build_model(name).parameters())
    assert got == want == count
    assert got <= 300_000


def _traced(model, x):
    """Per block: (input, projection output, output); every average pooling's input shape."""
    rec, pools = {}, []
    hooks = [m.register_forward_hook(lambda m, i, o: pools.append(tuple(i[0].shape)))
             for m in model.modules() if isinstance(m, torch.nn.AdaptiveAvgPool2d)]
    for k, blk in enumerate(model.blocks):
        hooks.append(blk.register_forward_hook(
            lambda m, i, o, k=k: rec.setdefault(k, {}).update(x=i[0], out=o)))
        hooks.append(blk.project.register_forward_hook(
            lambda m, i, o, k=k: rec.setdefault(k, {}).update(proj=o)))
        hooks.append(blk.project.bn.register_forward_hook(
            lambda m, i, o, k=k: rec.setdefault(k, {}).update(bn=o)))
    with torch.no_grad():
        logits = model(x)
    for h in hooks:
        h.remove()
    return logits, rec, pools


def test_maps_pools_and_block_semantics():
    torch.manual_seed(0)
    model = EffNetCifar()
    model.load_state_dict({k: torch.from_numpy(v).to(model.state_dict()[k].dtype)
                           for k, v in random_state_dict("effnet_cifar").items()})
    model.eval()
    logits, rec, pools = _traced(model, torch.rand(2, 3, 32, 32))
    assert logits.shape == (2, 10)
    assert [tuple(rec[k]["out"].shape[1:]) for k in range(len(BLOCKS))] == [
        (cout, side, side) for _, cout, _, _, side in BLOCKS]
    # four squeeze-and-excitations (blocks 3-6) and the final pooling, all over 8 x 8 maps
    assert [m.se.reduce.out_channels if m.se else 0 for m in model.blocks] == [
        b[3] for b in BLOCKS]
    assert pools == [(2, c * 4, 8, 8) for c in (24, 40, 40, 64)] + [(2, 256, 8, 8)]
    for k, (cin, cout, _, _, side) in enumerate(BLOCKS):
        r = rec[k]
        # the projection is linear: its output is its batch norm's, negative values kept
        assert torch.equal(r["proj"], r["bn"]) and r["proj"].min() < 0
        skip = cin == cout and side == r["x"].shape[-1]
        want = r["x"] + r["proj"] if skip else r["proj"]  # no activation after the add
        assert torch.equal(r["out"], want), f"block {k}"
    assert [cin == cout for cin, cout, *_ in BLOCKS] == [m.skip for m in model.blocks]


def test_relu_gate_count_is_refused():
    with pytest.raises(ValueError, match="model 'effnet_cifar' has no ReLU gates to count"):
        count_relu_gates("effnet_cifar")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A random-weight effnet_cifar (random batch-norm statistics), eval mode, and its ONNX
    export by the examples' exporter (opset 18, symbolic batch)."""
    torch.manual_seed(0)
    model = EffNetCifar()
    model.load_state_dict({k: torch.from_numpy(v).to(model.state_dict()[k].dtype)
                           for k, v in random_state_dict("effnet_cifar", seed=3).items()})
    model.eval()
    path = tmp_path_factory.mktemp("effnet") / "model.onnx"
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # progress and skipped torchvision ops
        common.export_onnx(model, path)
    x = np.random.default_rng(2).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    return model, path, x


def test_export_uses_only_imported_op_types(exported):
    _, path, _ = exported
    types = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert set(types) <= set(SUPPORTED_OPS), sorted(set(types) - set(SUPPORTED_OPS))
    assert {"Conv", "Sigmoid", "Mul", "Add", "Gemm"} <= set(types)
    assert "Relu" not in types and "Dropout" not in types
    assert types.count("Add") == 4  # the identity skips of blocks 0, 2, 4, 6
    pools = types.count("GlobalAveragePool") + types.count("ReduceMean")
    assert pools == 5


def test_export_equals_torch_in_onnxruntime(exported):
    model, path, x = exported
    xt = torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        want = model(xt).numpy()
    sess = ort.InferenceSession(str(path))
    got = sess.run(None, {sess.get_inputs()[0].name: xt.numpy()})[0]
    assert np.abs(want).max() > 0.1  # not a vanishing network
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4 * np.abs(want).max())


def test_imported_float_ops_equal_onnxruntime(exported):
    _, path, x = exported
    ops = import_onnx(str(path))
    assert sum(o["op"] == "add" for o in ops) == 4 and sum(o["op"] == "gate" for o in ops) == 4
    sess = ort.InferenceSession(str(path))
    want = sess.run(None, {sess.get_inputs()[0].name:
                           (torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255).numpy()})[0]
    got = run_float(ops, x, dtype=np.float64)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4 * np.abs(want).max())


def test_training_steps_change_the_weights():
    cfg = T._schedule("effnet_cifar", None, {"batch_size": 4})
    assert cfg["augment"] and cfg["teacher"] == "resnet20"
    run = T._setup("effnet_cifar", cfg, 0, torch.device("cpu"), None, True)
    before = {k: v.clone() for k, v in run.model.state_dict().items()}
    g = torch.Generator().manual_seed(0)
    xt = torch.rand(8, 3, 32, 32, generator=g)
    yt = torch.randint(0, 10, (8,), generator=g)
    # the warm-up's first step has learning rate 0; start mid-schedule
    loss, ok = T._train_epoch(run, 10, xt, yt, range(2))
    assert torch.isfinite(loss) and 0 <= ok.item() <= 8
    after = run.model.state_dict()
    for k in ("stem.conv.weight", "blocks.3.se.reduce.weight", "blocks.6.project.conv.weight",
              "blocks.6.dw.bn.running_mean", "fc.weight"):
        assert not torch.equal(before[k], after[k]), k


def test_short_run_resumes(tmp_path):
    rng = np.random.default_rng(0)
    T.pack_for_device(rng.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8),
                      rng.integers(0, 10, 64), tmp_path / "packed")
    out = tmp_path / "run"
    kw = dict(out=out, packed=tmp_path / "packed", device="cpu", progress=False,
              overrides={"batch_size": 32})
    with contextlib.redirect_stdout(io.StringIO()):
        T.train("effnet_cifar", epochs=1, **kw)
        st = torch.load(out / "last.pt", weights_only=False)
        st["cfg"]["epochs"] = 2
        torch.save(st, out / "last.pt")
        T.train("effnet_cifar", resume=True, **kw)
    lines = [json.loads(r) for r in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2]
    ck = torch.load(out / "effnet_cifar.pt", weights_only=False)
    assert ck["arch"] == "effnet_cifar" and ck["schedule"]["epochs"] == 2
    assert ck["schedule"]["batch_size"] == 32


def test_a_final_map_over_8x8_is_refused():
    with pytest.raises(ValueError, match=r"final pooling would average a 16 x 16 map, more "
                                         r"than 8 x 8; add a stride"):
        EffNetCifar(stages=((1, 16, 1, 1), (4, 24, 1, 2)))


def test_float_graph_names_its_layers_by_block():
    """The zoo conversion names effnet_cifar's ops by module (written out here for the first
    two blocks and the tail), not by the exporter's node numbers."""
    ops = float_graph("effnet_cifar", random_state_dict("effnet_cifar"))
    got = [(o["name"], o["op"]) for o in ops]
    assert got[:13] == [
        ("input", "input"), ("stem.conv", "conv"), ("stem.act", "swish"),
        ("block0.dw", "conv"), ("block0.dw.act", "swish"), ("block0.project", "conv"),
        ("block0.add", "add"), ("block1.expand", "conv"), ("block1.expand.act", "swish"),
        ("block1.dw", "conv"), ("block1.dw.act", "swish"), ("block1.project", "conv"),
        ("block2.expand", "conv")]
    byname = {o["name"]: o for o in ops}
    assert byname["block0.add"]["inputs"] == ["stem.act", "block0.project"]
    assert byname["block3.se.gate"]["inputs"] == ["block3.dw.act", "block3.se.sigmoid"]
    assert got[-4:] == [("head.conv", "conv"), ("head.act", "swish"), ("gap", "gap"),
                        ("fc", "dense")]
