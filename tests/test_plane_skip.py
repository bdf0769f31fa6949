"""amos_hw.plane_skip: the skippable passes it counts equal a plain loop over the engines'
schedule (windows, words, passes), on hand-made and random activations."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from amos_hw import plane_skip as ps
from boards.results import plane_skip_table


def test_nonzero_passes_by_hand():
    a = np.array([0b0101, 0b0001, 0, 0b1000]).reshape(1, 1, 1, 4)
    # word 0 = channels 0, 1: ones in bits 0 and 2; word 1 = channels 2, 3: bit 3 only
    assert ps.nonzero_passes(a, 2, 4, 1).ravel().tolist() == [2, 1]
    assert ps.nonzero_passes(a, 2, 4, 2).ravel().tolist() == [2, 1]
    assert ps.nonzero_passes(a, 2, 4, 4).ravel().tolist() == [1, 1]
    assert ps.nonzero_passes(a, 4, 4, 1).ravel().tolist() == [3]
    # a two's-complement word: -1 has a one in every plane, -8 only in the sign plane
    neg = np.array([-1, -8]).reshape(1, 1, 1, 2)
    assert ps.nonzero_passes(neg, 1, 4, 1).ravel().tolist() == [4, 1]


def test_nonzero_passes_refuses_a_folding_that_does_not_divide():
    with pytest.raises(ValueError, match="simd 3 must divide the 4 channels"):
        ps.nonzero_passes(np.zeros((1, 1, 1, 4), int), 3, 4, 1)
    with pytest.raises(ValueError, match="planes 3 must divide the 4 bits"):
        ps.nonzero_passes(np.zeros((1, 1, 1, 4), int), 2, 4, 3)


def test_window_sum_counts_taps_inside_the_image():
    ones = np.ones((1, 3, 3, 1), dtype=np.int64)
    # 3x3 image, 3x3 kernel, padding 1: 4 corners x 4 taps + 4 edges x 6 + centre 9
    assert ps.window_sum(ones, 3, 1, 1).tolist() == [49]
    # stride 2: output pixels (0,0), (0,2), (2,0), (2,2), each a corner
    assert ps.window_sum(ones, 3, 2, 1).tolist() == [16]
    assert ps.window_sum(ones, 1, 1, 0).tolist() == [9]


def _loop(a, lay, planes):
    """The schedule spelled out: every output fold, output pixel, tap, word and pass."""
    n, h, w, c = a.shape
    k, s, p = lay.kernel, lay.stride, lay.padding
    oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    passes = lay.in_bits // planes
    fixed, needed, inside = 0, np.zeros(n, dtype=np.int64), 0
    for _fold in range(lay.c_out // lay.pe):
        for oy in range(oh):
            for ox in range(ow):
                for ky in range(k):
                    for kx in range(k):
                        y, x = oy * s - p + ky, ox * s - p + kx
                        for g in range(c // lay.simd):
                            for q in range(passes):
                                fixed += 1
                                if not (0 <= y < h and 0 <= x < w):
                                    continue  # a padding word: zero, always skippable
                                inside += 1
                                bits = (a[:, y, x, g * lay.simd:(g + 1) * lay.simd]
                                        >> (q * planes)) & ((1 << planes) - 1)
                                needed += (bits != 0).any(-1)
    return fixed, inside, needed


@pytest.mark.parametrize("kernel, stride, padding, simd, planes", [
    (3, 1, 1, 2, 1), (3, 2, 1, 4, 2), (1, 2, 0, 1, 3), (3, 1, 0, 4, 6)])
def test_layer_counts_equal_the_schedule_loop(kernel, stride, padding, simd, planes):
    rng = np.random.default_rng(kernel * 100 + stride * 10 + simd)
    # sparse 6-bit activations: most zero, the rest mostly small, as after a ReLU unit
    a = np.where(rng.random((3, 5, 6, 8)) < 0.6, 0, rng.integers(0, 64, (3, 5, 6, 8)) >> 3)
    lay = SimpleNamespace(kernel=kernel, stride=stride, padding=padding, simd=simd, pe=2,
                          c_out=4, in_bits=6)
    got = ps.layer_counts(a, lay, planes)
    fixed, inside, needed = _loop(a, lay, planes)
    assert got["fixed"] == fixed
    assert got["padding"] == inside
    assert got["needed"].tolist() == needed.tolist()
    assert (got["needed"] <= got["padding"]).all() and got["padding"] <= got["fixed"]


def _layer(name, cycles, opts=None, bits=6):
    row = {"layer": name, "kind": "conv" if opts else "unit", "cycles": cycles}
    if opts:
        row.update(in_bits=bits, options=[
            {"planes": p, "padding_ratio": r[0], "mean_ratio": r[1], "worst_ratio": r[2]}
            for p, r in opts.items()])
    return row


def test_summarise_takes_the_slowest_layer_at_each_option():
    layers = [
        _layer("a", 100, {1: (0.9, 0.5, 0.7), 2: (0.9, 0.8, 0.9), 4: (0.9, 0.9, 0.9)}, bits=4),
        _layer("b", 100, {1: (1.0, 0.6, 0.65), 3: (1.0, 0.95, 1.0), 6: (1.0, 1.0, 1.0)}),
        _layer("u", 70),
    ]
    rows = {r["planes"]: r for r in ps.summarise(layers)}
    assert sorted(rows) == [1, 2, 3, 4, 6]
    assert (rows[1]["mean_cycles"], rows[1]["mean_layer"]) == (70.0, "u")
    assert (rows[1]["worst_cycles"], rows[1]["worst_layer"]) == (70.0, "a")
    assert (rows[1]["padding_cycles"], rows[1]["padding_layer"]) == (100.0, "b")
    # planes 2: a at 2 planes (0.8); b has no 2-plane option and stays bit-parallel (1.0)
    assert (rows[2]["mean_cycles"], rows[2]["mean_layer"]) == (100.0, "b")
    assert (rows[3]["mean_cycles"], rows[3]["mean_layer"]) == (95.0, "b")


def test_measure_on_a_small_data_file(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    np.savez(tmp_path / "train.npz", x=x, y=np.zeros(3, dtype=np.int64))
    doc = ps.measure("resnet8_k6", board="ecp5-85f", images=2, data=tmp_path, batch=2,
                     progress=False)
    assert doc["images"] == 2 and doc["split"] == "train"
    assert doc["cycles_per_image"] == 36864
    convs = [r for r in doc["layers"] if "options" in r]
    assert [r["layer"] for r in convs][:2] == ["stem.act", "block0.act1"]
    stem = convs[0]
    assert [o["planes"] for o in stem["options"]] == [1, 2, 4, 8]
    # 32x32, 3x3, padding 1: 900 windows of 9 taps, 120 of 6, 4 of 4 inside; 1024 x 9 in all
    assert stem["options"][-1]["padding_ratio"] == round((900 * 9 + 120 * 6 + 4 * 4) / 9216, 4)
    for r in convs:
        for o in r["options"]:
            assert 0 < o["mean_ratio"] <= o["worst_ratio"] <= o["padding_ratio"] <= 1
    assert json.loads(json.dumps(doc)) == doc
    assert ps.table({**doc, "command": "c"}).count("\n| stem.act |") == 4


def test_command_line_errors_name_the_problem(tmp_path, capsys):
    assert ps.main(["--model", "no_such_model", "--out", str(tmp_path / "o.json")]) == 2
    assert "unknown model 'no_such_model'" in capsys.readouterr().err
    assert ps.main(["--model", "digits", "--dataset", "digits", "--images", "3",
                    "--out", str(tmp_path / "o.json")]) == 2
    assert "digits: no convolution layer to count" in capsys.readouterr().err
    assert ps.main(["--model", "resnet8_k6", "--images", "0",
                    "--out", str(tmp_path / "o.json")]) == 2
    assert "images must be a positive integer, not 0" in capsys.readouterr().err
    assert not (tmp_path / "o.json").exists()


def test_results_page_row():
    doc = {"model": "m", "board": "ecp5-85f", "parallelism": None, "images": 1000,
           "split": "train", "cycles_per_image": 1000,
           "pipeline": [{"planes": 1, "padding_cycles": 960.0, "padding_layer": "a",
                         "mean_cycles": 800.0, "mean_layer": "b", "worst_cycles": 900.0,
                         "worst_layer": "a"},
                        {"planes": 2, "padding_cycles": 960.0, "padding_layer": "a",
                         "mean_cycles": 950.0, "mean_layer": "a", "worst_cycles": 960.0,
                         "worst_layer": "a"}]}
    lines = plane_skip_table([("plane_skip_m.json", doc)])
    assert lines[-1] == ("| [`plane_skip_m.json`](plane_skip_m.md) | m | chosen for ecp5-85f | "
                         "1,000 train | 1,000 | 960 (1.04x) | 800 (1.25x, b) | "
                         "900 (1.11x, a) |")
