"""rtl_tests.network shards: which images a shard takes, and how the shard results add up."""
import json

import numpy as np
import pytest

from rtl_tests import network as N


def test_shards_partition_the_test_set():
    x = np.arange(10)[:, None]
    y = np.arange(10)
    parts = [N.pick_images(x, y, 0, shard=(i, 3))[1] for i in range(3)]
    assert sorted(np.concatenate(parts).tolist()) == list(range(10))
    assert parts[1].tolist() == [1, 4, 7]


def _shard(i, n, images, correct, mismatches=0, sha="ab" * 32, git="c0ffee"):
    return {"model": "m", "model_sha256": sha, "simulator": "verilator", "parallelism": "p",
            "est_lut4": 1, "clock_mhz": 50.0, "images_per_s_at_clock": 1.0,
            "cycles_per_image_report": 100, "latency_cycles_report": 150, "generator_git": git,
            "images": images, "shard": [i, n], "mismatches": mismatches,
            "first_mismatches": [i] * mismatches, "accuracy": correct / images,
            "reference_accuracy": correct / images, "cycles_per_image_measured": 100,
            "latency_cycles_measured": 140 + i}


def test_merge_adds_up(tmp_path, monkeypatch):
    monkeypatch.setattr(N, "SHARDS", tmp_path)
    for i, (imgs, ok) in enumerate([(4, 3), (3, 3), (3, 1)]):
        (tmp_path / f"m-x-{i}of3-verilator.json").write_text(json.dumps(_shard(i, 3, imgs, ok)))
    r = N.merge_shards("m", "verilator", 3)
    assert r["images"] == 10 and r["shards"] == 3
    assert r["accuracy"] == pytest.approx(0.7)  # (3 + 3 + 1) / 10
    assert r["mismatches"] == 0 and r["cycles_per_image_measured"] == 100
    assert r["latency_cycles_measured"] == 142


def test_merge_refuses_missing_or_mixed_shards(tmp_path, monkeypatch):
    monkeypatch.setattr(N, "SHARDS", tmp_path)
    with pytest.raises(ValueError, match="no shards of m on verilator split 2 ways"):
        N.merge_shards("m", "verilator", 2)
    (tmp_path / "m-x-0of2-verilator.json").write_text(json.dumps(_shard(0, 2, 5, 5)))
    # shard 1 from another generator commit does not complete the set
    (tmp_path / "m-y-1of2-verilator.json").write_text(json.dumps(_shard(1, 2, 5, 5, git="beef")))
    with pytest.raises(ValueError, match=r"shards \[1\] of 2 .* are not there yet"):
        N.merge_shards("m", "verilator", 2)


def test_cli_rejects_a_bad_shard():
    with pytest.raises(SystemExit):
        N.main(["--shard", "3/3"])
