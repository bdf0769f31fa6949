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
    # SynOps: each act1 spike meets fc's 10 weights; the input bits meet fc1's 32 (apart)
    assert r["synops_per_image"] == float((10 * s.spikes["act1"]).mean())
    assert r["input_synops_per_image"] == float(32 * np.bitwise_count(x).sum((1, 2, 3)).mean())
    assert r["macs_per_image"] == 64 * 32 + 32 * 10 and r["adds_per_image"] == 0
    assert [row["name"] for row in r["per_layer"]] == ["fc1", "act1", "fc"]
    assert r["per_layer"][2]["synops"] == r["synops_per_image"]
    assert r["per_layer"][1]["spikes"] == r["spikes_per_image"]
    assert {"synops_per_image", "macs_per_image", "adds_per_image", "per_layer"} \
        <= r["definitions"].keys()
    row = capsys.readouterr().out
    assert f"{100 * r['snn_top1']:.2f}%" in row and "# neurons" in row
    assert "SynOps" in row and f"{r['synops_per_image']:,.0f}" in row


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


def test_parse_indices():
    assert ev.parse_indices("9000:9200", 10000).tolist() == list(range(9000, 9200))
    assert ev.parse_indices("0:100,150", 10000).tolist() == [*range(100), 150]
    assert ev.parse_indices(" 7, 3 ,0:2", 10).tolist() == [7, 3, 0, 1]  # order kept
    assert ev.parse_indices(":2,8:", 10).tolist() == [0, 1, 8, 9]
    assert ev.parse_indices("9", 10).dtype == np.int64


@pytest.mark.parametrize("spec, message", [
    ("", r"indices must be a non-empty string like '9000:9200' or '0:100,150', not ''"),
    ("0:5,", r"indices '0:5,': part '' is neither an index nor a range START:END"),
    ("-5", r"part '-5' is neither an index nor a range START:END \(non-negative integers"),
    ("1.5", r"part '1.5' is neither an index"),
    ("a:b", r"part 'a:b' is neither an index"),
    ("0:2:1", r"part '0:2:1' is neither an index"),
    ("3,360", r"indices '3,360': part '360': index 360 is outside the test set of 360 images "
              r"\(indices 0..359\)"),
    ("300:400", r"part '300:400': END 400 is past the test set of 360 images \(a range "
                r"START:END excludes END, so END is at most 360\)"),
    ("5:5", r"part '5:5' is an empty range \(START must be below END; the test set has 360"),
    ("9:2", r"part '9:2' is an empty range"),
    ("0:10,5", r"indices '0:10,5': image 5 is selected twice \(in part '0:10' and in part '5'\)"),
])
def test_parse_indices_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        ev.parse_indices(spec, 360)


def test_indices_errors_on_the_command_line(tmp_path, capsys):
    with pytest.raises(SystemExit, match=r"error: indices '0:5000': part '0:5000': END 5000 is "
                                         r"past the test set of 359 images"):
        ev.main(["--model", "digits", "--indices", "0:5000", "--no-progress"])
    with pytest.raises(SystemExit):  # argparse: --limit and --indices exclude each other
        ev.main(["--model", "digits", "--indices", "0:5", "--limit", "5", "--no-progress"])
    assert "not allowed with argument" in capsys.readouterr().err
    with pytest.raises(ValueError, match="give limit .* or indices .*, not both"):
        ev.evaluate("digits", limit=5, indices="0:5", progress=False)


def test_per_image_file_equals_the_reference(tmp_path):
    """--indices and --per-image on digits; every array recomputed independently here."""
    spec = "300:340,5,17:20"
    want_idx = [*range(300, 340), 5, 17, 18, 19]
    per = tmp_path / "sub" / "digits_images.npz"
    out = tmp_path / "r.json"
    ev.main(["--model", "digits", "--indices", spec, "--per-image", str(per), "--json", str(out),
             "--no-progress"])
    x, y = load_digits("test")
    assert len(y) == 359
    x, y = x[want_idx], y[want_idx]
    g = ir.load(cv.ZOO / "digits")
    s = snn.run(g, x)
    f = ev.ann_logits("digits", cv.ZOO / "digits.pt", x)
    with np.load(per, allow_pickle=False) as z:
        got = {k: z[k] for k in z.files}
    assert set(got) == {"index", "label", "snn_class", "logits", "ann_class", "layers", "spikes"}
    n = len(want_idx)
    assert got["index"].tolist() == want_idx and got["index"].dtype == np.int64
    assert np.array_equal(got["label"], y) and got["label"].shape == (n,)
    assert np.array_equal(got["logits"], s.logits) and got["logits"].shape == (n, 10)
    assert got["logits"].dtype == np.int64
    assert np.array_equal(got["snn_class"], np.argmax(s.logits, axis=1))
    assert np.array_equal(got["ann_class"], f.argmax(1))
    assert got["layers"].tolist() == ["act1"]
    assert got["spikes"].shape == (n, 1) and got["spikes"].dtype == np.int64
    assert np.array_equal(got["spikes"][:, 0], s.spikes["act1"])
    # the spikes of act1 are the popcount of its activations, computed here from scratch
    acc = x.reshape(n, -1).astype(np.int64) @ g.arrays["fc1.weight"].T.astype(np.int64)
    acc += g.arrays["fc1.bias"]
    act = np.clip((acc + 2**7) >> 8, 0, 1023)
    assert g.node["act1"]["rshift"] == [8]
    assert np.array_equal(got["spikes"][:, 0], np.bitwise_count(act).sum(1))
    r = json.loads(out.read_text())
    assert r["n_images"] == n and r["indices"] == spec and r["per_image"] == str(per)
    assert r["snn_top1"] == float((got["snn_class"] == y).mean())


@pytest.mark.slow
def test_full_resnet8_result_reproduces(tmp_path):
    """The committed docs/results/resnet8.json is what a full run gives now."""
    from pathlib import Path

    committed = json.loads((Path(__file__).parent.parent / "docs/results/resnet8.json")
                           .read_text())
    r = ev.evaluate("resnet8", progress=False)
    for k in ("n_images", "ann_top1", "snn_top1", "neurons", "spikes_per_image", "time_steps"):
        assert r[k] == committed[k], k
