"""Fine-tuning with the AMOS units in the loop (python_ref.finetune) mirrors the integer scheme."""
import numpy as np
import pytest
import torch

from python_ref import convert as cv
from python_ref import finetune as ft
from python_ref import ir, snn
from python_ref import train as T
from python_ref.data import load_digits


def _net(model, g):
    sd, _ = cv.load_checkpoint(cv.ZOO / f"{model}.pt", model)
    return ft.build_net(g, cv.float_graph(model, sd))


def test_fake_quant_forward_equals_integer_reference_digits():
    g = ir.load(cv.ZOO / "digits")
    net = _net("digits", g).double()
    x, _ = load_digits("test")
    h = ft.export(net, g)
    with torch.no_grad():
        f = net(torch.from_numpy(x).permute(0, 3, 1, 2).double()).numpy()
    out_scale = g.index()["fc"]["scale"]
    # float64 on integer values below 2**53 is exact: equal after undoing the output scale
    assert np.array_equal(np.rint(f / out_scale).astype(np.int64), snn.run(h, x).logits)
    # the export of the untrained net is the converter's quantisation up to ties in rounding
    for k in g.arrays:
        assert np.abs(h.arrays[k].astype(np.int64) - g.arrays[k]).max() <= 1


def test_fake_quant_forward_equals_integer_reference_resnet8():
    x = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    sd = cv.random_state_dict("resnet8", seed=5)
    g = cv.convert("resnet8", sd=sd, calib_images=x, progress=False)
    net = ft.build_net(g, cv.float_graph("resnet8", sd)).double()
    h = ft.export(net, g)
    with torch.no_grad():
        f = net(torch.from_numpy(x).permute(0, 3, 1, 2).double()).numpy()
    assert np.array_equal(np.rint(f / g.index()["fc"]["scale"]).astype(np.int64),
                          snn.run(h, x).logits)


def test_finetune_runs_and_exports_a_valid_description(tmp_path):
    h, hist = ft.finetune("digits", epochs=1, limit=512, batch_size=64, progress=False)
    assert len(hist) == 1 and np.isfinite(hist[0]["loss"])
    ir.validate(h)
    x, y = load_digits("test")
    assert (snn.run(h, x).classes == y).mean() > 0.9
    ir.save(h, tmp_path / "d")
    assert ir.load(tmp_path / "d").meta["finetune"]["epochs"] == 1


def test_continuing_from_a_description_starts_where_it_left_off():
    """Float weights rebuilt from a description quantise back to exactly its integers."""
    g = ir.load(cv.ZOO / "digits")
    net = ft.build_net(g, ft.float_ops_from_graph(g))
    h = ft.export(net, g)
    for k in g.arrays:
        assert np.array_equal(h.arrays[k], g.arrays[k])


def test_convert_cli_with_finetune(tmp_path, capsys):
    cv.main(["--model", "digits", "--out", str(tmp_path / "d"), "--finetune", "1"])
    plain, tuned = ir.load(tmp_path / "d_plain"), ir.load(tmp_path / "d")
    assert "finetune" in tuned.meta and "finetune" not in plain.meta
    assert plain.nodes == tuned.nodes  # scales, shifts and units are kept
    assert any(not np.array_equal(plain.arrays[k], tuned.arrays[k]) for k in plain.arrays)


def test_finetune_selects_the_epoch_on_held_out_digits():
    """``val`` holds out training images (python_ref.train.split_validation), measures each
    epoch on them and keeps the best epoch's description; the test split is never read."""
    h, hist = ft.finetune("digits", epochs=2, limit=600, batch_size=64, progress=False,
                          val=100)
    assert [r["epoch"] for r in hist] == [1, 2]
    assert all(0.0 <= r["val_acc"] <= 1.0 for r in hist)
    sel = h.meta["finetune"]["val"]
    assert sel["images"] == 100
    assert sel["selected_epoch"] == max(hist, key=lambda r: (r["val_acc"], -r["epoch"]))["epoch"]
    # the held-out images are the split's, and none of them is trained on
    x, y = load_digits("train")
    xt, yt, held = ft._training_set("digits", None, None, 0, 100)
    want = T.split_validation(x, y, 100)
    np.testing.assert_array_equal(held[0], want[2])
    np.testing.assert_array_equal(xt, want[0])
    assert len(xt) + len(held[0]) == len(x)


@pytest.mark.parametrize("model, images", [("digits", 0), ("effnet_cifar", 5000)])
def test_finetune_holds_out_what_the_checkpoint_held_out(monkeypatch, model, images):
    """By default ``val`` is what the checkpoint's training held out: none for the digits,
    the 5,000 validation images of effnet_cifar's run (its schedule's ``val``)."""
    seen = {}

    def spy(dataset, data, limit, seed, val=0):
        seen["val"] = val
        raise RuntimeError("stop")

    monkeypatch.setattr(ft, "_training_set", spy)
    with pytest.raises(RuntimeError, match="stop"):
        ft.finetune(model, epochs=1, progress=False)
    assert seen["val"] == images
