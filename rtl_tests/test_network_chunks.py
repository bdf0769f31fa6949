"""rtl_tests.network in chunks on Dask: the split, the merge, and digits equal to a single run."""
from __future__ import annotations

import pytest

from python_ref.data import load_digits
from rtl_tests import network as N

#: Figures of a run that depend on how it was split or timed, not on what it computed.
_TIMING = {"chunks", "generator_git", "sim_cycles", "sim_wall_s", "sim_cpu_s", "sim_cycles_per_s",
           "sim_images_per_s_per_core"}


def test_split_images_evenly():
    assert N.split_images(10, 4) == [(0, 4), (4, 7), (7, 10)]
    assert N.split_images(3, 250) == [(0, 3)]
    assert N.split_images(500, 250) == [(0, 250), (250, 500)]
    with pytest.raises(ValueError, match="chunk must be a positive integer, not 0"):
        N.split_images(10, 0)


def _part(images, correct, cycles=100, latency=150, bad=(), **more):
    return {"model": "m", "model_sha256": "ab", "simulator": "verilator", "images": images,
            "mismatches": len(bad), "first_mismatches": list(bad), "correct": correct,
            "reference_correct": correct, "accuracy": correct / images,
            "reference_accuracy": correct / images, "cycles_per_image_measured": cycles,
            "cycles_per_image_intervals": [cycles or 100], "cycles_per_image_report": 100,
            "latency_cycles_measured": latency, "latency_cycles_report": 160, **more}


def test_merge_adds_up_and_shifts_mismatches():
    parts = [_part(4, 3, latency=140, sim_cycles=500, sim_wall_s=1.0, sim_cpu_s=2.0),
             _part(3, 3, bad=(2,), latency=150, sim_cycles=400, sim_wall_s=1.0, sim_cpu_s=1.5),
             _part(3, 1, cycles=None, sim_cycles=300, sim_wall_s=2.0, sim_cpu_s=1.5)]
    r = N.merge_chunks(parts, [0, 4, 7])
    assert r["images"] == 10 and r["correct"] == 7 and r["accuracy"] == 0.7
    assert r["mismatches"] == 1 and r["first_mismatches"] == [6]
    assert r["cycles_per_image_measured"] == 100 and r["latency_cycles_measured"] == 150
    assert r["sim_cycles_per_s"] == 300 and r["sim_images_per_s_per_core"] == 2.0
    assert r["model"] == "m"


def test_merge_refuses_chunks_that_disagree():
    with pytest.raises(N.ChunkMergeError, match=r"disagree on cycles_per_image_measured "
                                                r"\(from image 0: 100, from image 4: 101\)"):
        N.merge_chunks([_part(4, 4), _part(4, 4, cycles=101)], [0, 4])
    with pytest.raises(N.ChunkMergeError, match="disagree on model_sha256"):
        N.merge_chunks([_part(4, 4), _part(4, 4, model_sha256="cd")], [0, 4])
    with pytest.raises(N.ChunkMergeError, match="disagree on verilog_sha256"):
        N.merge_chunks([_part(4, 4, verilog_sha256="v1"), _part(4, 4, verilog_sha256="v2")],
                       [0, 4])


def test_merge_keeps_the_label_of_a_commit_that_landed_mid_run():
    """The same Verilog in every chunk, the repository's commit moved on: one design, its
    first label kept and the others listed; without the Verilog's hash they must agree."""
    same = [_part(4, 4, verilog_sha256="v", generator_git="aaa"),
            _part(4, 4, verilog_sha256="v", generator_git="bbb+dirty")]
    r = N.merge_chunks(same, [0, 4])
    assert r["generator_git"] == "aaa" and r["generator_git_chunks"] == ["aaa", "bbb+dirty"]
    assert "generator_git_chunks" not in N.merge_chunks(
        [_part(4, 4, verilog_sha256="v", generator_git="aaa")] * 2, [0, 4])
    with pytest.raises(N.ChunkMergeError, match="disagree on generator_git"):
        N.merge_chunks([_part(4, 4, generator_git="aaa"), _part(4, 4, generator_git="bbb")],
                       [0, 4])


def test_cli_rejects_a_bad_chunk(capsys):
    with pytest.raises(SystemExit):
        N.main(["--model", "digits", "--chunk", "0"])
    assert "--chunk must be a positive integer, not 0" in capsys.readouterr().err


def test_cli_carry_needs_a_board(capsys):
    with pytest.raises(SystemExit):
        N.main(["--model", "resnet8", "--carry", "generic"])
    assert "--carry chooses the carry form of a board build's network: it needs --board" in \
        capsys.readouterr().err
    p = N._parser()
    args = p.parse_args(["--board", "ecp5-85f", "--carry", "generic"])
    assert N._flow_config(p, args) == {"board": "ecp5-85f", "carry": "generic"}


def test_cli_parallelism_is_the_whole_folding(capsys, tmp_path):
    """A folding file: portable adders unless --carry ecp5; not with a board, a target or the
    shared engine; a missing file named."""
    f = tmp_path / "x2.json"
    f.write_text("{}")
    p = N._parser()
    assert N._flow_config(p, p.parse_args(["--parallelism", str(f)])) == {
        "parallelism": str(f), "carry": "generic"}
    assert N._flow_config(p, p.parse_args(["--parallelism", str(f), "--carry", "ecp5"]))[
        "carry"] == "ecp5"
    for extra in (["--board", "ecp5-85f"], ["--target-cycles", "100"],
                  ["--architecture", "shared"]):
        with pytest.raises(SystemExit):
            N.main(["--model", "resnet8", "--parallelism", str(f), *extra])
        assert "--parallelism is the whole folding" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        N.main(["--model", "resnet8", "--parallelism", str(tmp_path / "none.json")])
    assert "--parallelism: no file" in capsys.readouterr().err


def test_digits_in_three_chunks_equal_one_run(sim):
    pytest.importorskip("distributed", reason="the cluster extra is not installed")
    x, y = N.pick_images(*load_digits("test"), 24, seed=3)
    single = N.run_network("digits", 24, sim, images=(x, y))
    merged = N.run_chunked("digits", sim, x, y, chunk=8, workers=2, progress=False)
    assert merged["chunks"] == 3 and merged["images"] == 24 and merged["mismatches"] == 0
    assert merged["cycles_per_image_measured"] == merged["cycles_per_image_report"]
    assert ({k: v for k, v in merged.items() if k not in _TIMING}
            == {k: v for k, v in single.items() if k not in _TIMING})
