"""Evaluation CLI (python_ref.evaluate): numbers are recomputed, definitions, errors."""
import json

import numpy as np
import pytest

from python_ref import convert as cv
from python_ref import evaluate as ev
from python_ref import ir, snn
from python_ref.data import load_digits

KEYS = {"model", "dataset", "n_images", "ann_top1", "snn_top1", "K", "neurons",
        "spikes_per_image", "time_steps"}


def test_cli_recomputes_the_numbers(tmp_path, capsys):
    out = tmp_path / "digits.json"
    # a stale result file with impossible numbers must not leak into the new result
    out.write_text(json.dumps({k: -1 for k in KEYS}))
    ev.main(["--model", "digits", "--limit", "120", "--json", str(out), "--no-progress"])
    r = json.loads(out.read_text())
    assert KEYS <= r.keys()
    x, y = load_digits("test")
    idx = ev.subset(len(y), 120)
    assert len(set(y[idx])) == 10 and len(set(idx)) == 120
    x, y = x[idx], y[idx]
    g = ir.load(cv.ZOO / "digits")
    s = snn.run(g, x)
    f = ev.ann_logits("digits", cv.ZOO / "digits.pt", x)
    assert r["n_images"] == 120 and r["dataset"] == "digits" and r["model"] == "digits"
    assert r["snn_top1"] == float((s.classes == y).mean())
    assert r["ann_top1"] == float((f.argmax(1) == y).mean())
    assert r["spikes_per_image"] == float(s.spikes_per_image.mean())
    assert r["neurons"] == 320 and r["K"] == 10 and r["time_steps"] == 10
    row = capsys.readouterr().out
    assert f"{100 * r['snn_top1']:.2f}%" in row and "# neurons" in row


def test_a_changed_description_changes_the_result(tmp_path):
    g = ir.load(cv.ZOO / "digits").copy()
    base = ev.evaluate("digits", limit=100, progress=False)
    g.arrays["fc.weight"] = -g.arrays["fc.weight"]  # anti-classifier
    g.arrays["fc.bias"] = -g.arrays["fc.bias"]
    ir.save(g, tmp_path / "neg")
    worse = ev.evaluate("digits", limit=100, description=tmp_path / "neg", progress=False)
    assert worse["ann_top1"] == base["ann_top1"]
    assert worse["snn_top1"] < 0.1 < 0.9 < base["snn_top1"]


def test_resnet8_neurons_and_steps_from_the_description():
    """737,280 neurons at K = 10, computed from the (zoo or freshly converted) description."""
    if (cv.ZOO / "resnet8.json").is_file():
        g = ir.load(cv.ZOO / "resnet8")
    else:
        x = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
        g = cv.convert("resnet8", sd=cv.random_state_dict("resnet8"), calib_images=x,
                       progress=False)
    assert g.neurons() == 737_280
    assert g.time_steps() == 70


def test_table_row():
    r = {"model": "resnet8", "ann_top1": 0.8722, "snn_top1": 0.8705, "neurons": 737280,
         "spikes_per_image": 103753.4, "time_steps": 70,
         "paper": {"ann_top1": 0.8722, "snn_top1": 0.8705, "neurons": 737280,
                   "spikes_per_image": 103753}}
    lines = ev.table_row(r).splitlines()
    assert lines[1].split() == ["resnet8", "87.22%", "87.05%", "737,280", "103,753", "70"]
    assert lines[2].startswith("(paper)")


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="limit must be a positive integer, not 0"):
        ev.evaluate("digits", limit=0, progress=False)
    with pytest.raises(SystemExit, match="error: .*nope.json: no such file"):
        ev.main(["--model", "digits", "--description", str(tmp_path / "nope"), "--no-progress"])
    with pytest.raises(SystemExit, match=r"error: .*is for 'digits', not 'resnet8'"):
        ev.main(["--model", "resnet8", "--description", str(cv.ZOO / "digits"),
                 "--no-progress", "--data", str(tmp_path)])


@pytest.mark.slow
def test_full_resnet8_result_reproduces(tmp_path):
    """The committed docs/results/resnet8.json is what a full run gives now."""
    from pathlib import Path

    committed = json.loads((Path(__file__).parent.parent / "docs/results/resnet8.json")
                           .read_text())
    r = ev.evaluate("resnet8", progress=False)
    for k in ("n_images", "ann_top1", "snn_top1", "neurons", "spikes_per_image", "time_steps"):
        assert r[k] == committed[k], k
