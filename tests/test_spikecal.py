"""python_ref.spikecal: the greedy clipping-level search on the digits network (seconds)."""
import json

import numpy as np
import pytest

from python_ref import snn, spikecal
from python_ref.checkpoint import ZOO, ConversionError, float_graph, load_checkpoint
from python_ref.convert import calibrate, calibration_images, quantise
from python_ref.data import load_dataset


@pytest.fixture(scope="module")
def digits():
    sd, _ = load_checkpoint(ZOO / "digits.pt", "digits")
    ops = float_graph("digits", sd)
    alphas = calibrate(ops, calibration_images("digits"), progress=False)
    x, y = load_dataset("digits", "train")
    return ops, alphas, x[:300], y[:300]


def test_trials_are_plain_conversions_and_the_choice_keeps_accuracy(digits):
    ops, alphas, x, y = digits
    base, best, trials = spikecal.search(ops, alphas, x, y, K=6, scales=(1, 2, 4),
                                         tolerance=0.01, progress=False)
    assert trials[0] is base and base["scales"] == {}
    for t in (base, best, trials[-1]):
        g = quantise(ops, {k: a * t["scales"].get(k, 1.0) for k, a in alphas.items()}, K=6,
                     K_layers=t["K_layers"])
        r = snn.run(g, x)
        assert t["top1"] == float((r.classes == y).mean())
        assert t["spikes_per_image"] == float(r.spikes_per_image.mean())
    assert best["top1"] >= base["top1"] - 0.01
    assert best["spikes_per_image"] <= base["spikes_per_image"]
    # a larger clipping level never adds spikes in the digits network's one ReLU layer
    assert trials[1]["scales"] == {"act1": 4} and trials[1]["spikes_per_image"] < \
        base["spikes_per_image"]


def test_k_pass_keeps_the_smallest_k_within_the_tolerance(digits):
    ops, alphas, x, y = digits
    base, best, trials = spikecal.search(ops, alphas, x, y, K=8, scales=(1,), ks=(2, 4, 6),
                                         tolerance=0.02, progress=False)
    tried = [t["K_layers"].get("act1", 8) for t in trials[1:]]
    assert tried == [2, 4, 6][:len(tried)]
    ok = [t for t in trials[1:] if t["top1"] >= base["top1"] - 0.02]
    assert best is (ok[0] if ok else base)
    if ok:
        assert best["neurons"] < base["neurons"] and best is trials[-1]


@pytest.mark.parametrize(("kw", "msg"), [({"scales": (0.5, 2)}, "factors of at least 1"),
                                         ({"tolerance": 1.5}, "tolerance must lie")])
def test_bad_search_arguments(digits, kw, msg):
    ops, alphas, x, y = digits
    with pytest.raises(ConversionError, match=msg):
        spikecal.search(ops, alphas, x, y, progress=False, **kw)


def test_command_line_writes_the_description_and_the_search(tmp_path):
    out, js = tmp_path / "d", tmp_path / "d_search.json"
    assert spikecal.main(["--model", "digits", "--out", str(out), "--json", str(js),
                          "--val", "100", "--scales", "1", "2", "--no-progress"]) == 0
    doc = json.loads(js.read_text())
    assert doc["chosen"]["top1"] >= doc["baseline"]["top1"] - doc["tolerance"]
    assert (tmp_path / "d.json").is_file() and (tmp_path / "d.npz").is_file()
    meta = json.loads((tmp_path / "d.json").read_text())["meta"]
    assert meta["spikecal"]["scales"] == doc["chosen"]["scales"]
    assert np.isfinite(doc["seconds"])


def test_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    assert spikecal.main(["--model", "digits", "--out", str(tmp_path / "d"),
                          "--checkpoint", str(tmp_path / "none.pt"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "none.pt" in err and not (tmp_path / "d.json").exists()
