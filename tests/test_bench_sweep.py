"""boards.sweep through a local Dask cluster, with a fake build: results, retries, failures."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from amos_hw.backend.cluster import ClusterError
from boards import bench, results, sweep
from boards.board import BoardError

pytest.importorskip("distributed", reason="the cluster extra (dask[distributed]) is not installed")


def fake_build(board, model, *, parallelism, clock_mhz, seed, out, progress, fold_resets):
    """A build report in a few milliseconds; ``hx8k`` seed 2 fails on its first try and the
    model ``broken`` always."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if model == "broken":
        raise RuntimeError("nextpnr: no placement found")
    if board == "hx8k" and seed == 2 and not (out / "tried").exists():
        (out / "tried").write_text("")
        raise RuntimeError("a passing failure")
    cycles = 1000 if parallelism is None else 500
    fmax = 40.0 + seed + (board == "hx8k")
    return {"board": board, "model": model, "seed": seed, "pll": None, "fmax_mhz": fmax,
            "lut4": 1234, "ff": 567, "bram": {"blocks": 8, "bits": 32768},
            "cycles_per_image": cycles, "images_per_s": fmax * 1e6 / cycles,
            "meets_board_clock": True, "build_wall_s": 0.1, "git": "c0ffee",
            "elaborate_wall_s": 0.01, "fold_resets": fold_resets}


def _sweep_file(tmp_path, **spec) -> Path:
    f = tmp_path / "s1.json"
    f.write_text(json.dumps(spec))
    return f


def _run(f, tmp_path, **kw):
    return sweep.run_sweep(f, bench.save_result, workers=2, build_fn=fake_build,
                           results=tmp_path / "out", builds=tmp_path / "builds", progress=False,
                           **kw)


def test_two_boards_two_seeds_one_retried(tmp_path):
    f = _sweep_file(tmp_path, boards=["icebreaker", "hx8k"], models=["digits"], seeds=[1, 2],
                    foldings=[None, {"fc": 2}])
    out = _run(f, tmp_path)
    doc = json.loads(out.read_text())
    assert out == tmp_path / "out" / "s1.json"
    assert doc["complete"] is True and doc["missing"] == [] and doc["failures"] == {}
    assert len(doc["builds"]) == 8
    assert (tmp_path / "builds" / "s1" / "hx8k_digits_board_seed2" / "tried").exists()  # retried
    hx = [g for g in doc["summary"] if g["board"] == "hx8k" and g["folding"] == "board"]
    assert hx == [{"board": "hx8k", "model": "digits", "folding": "board", "seeds": [1, 2],
                   "fmax_mhz_median": 42.5, "fmax_mhz_min": 42.0, "fmax_mhz_max": 43.0,
                   "lut4": [1234], "cycles_per_image": [1000],
                   "images_per_s_at_median_fmax": 42500.0}]
    assert doc["foldings"] == {"board": None, "folding1": {"fc": 2}}
    first = doc["builds"][0]
    assert first["result"] == "s1/icebreaker_digits.json" and first["bram_blocks"] == 8
    saved = json.loads((tmp_path / "out" / "s1" / "hx8k_digits_folding1_seed2.json").read_text())
    assert saved["variant"] == "folding1, nextpnr seed 2" and "elaborate_wall_s" not in saved
    page = "\n".join(results.sweeps_table([("s1.json", doc)]))
    assert "| `s1.json` | hx8k | digits | board | 1, 2 | 42.5 | 42.0 | 1,234 | 1,000 |" in page


def test_fold_resets_reaches_every_build(tmp_path):
    f = _sweep_file(tmp_path, boards=["ulx3s-85f"], models=["digits"], seeds=[1, 2],
                    fold_resets=8)
    doc = json.loads(_run(f, tmp_path).read_text())
    assert [b["result"] for b in doc["builds"]] == ["s1/ulx3s-85f_digits_resets8.json",
                                                    "s1/ulx3s-85f_digits_seed2_resets8.json"]


def test_a_build_that_always_fails_is_named_and_nothing_claims_completeness(tmp_path):
    f = _sweep_file(tmp_path, boards=["icebreaker"], models=["digits", "broken"], seeds=[1])
    with pytest.raises(ClusterError, match=r"icebreaker/broken/board/seed1: RuntimeError: "
                                           r"nextpnr: no placement found"):
        _run(f, tmp_path, retries=1)
    doc = json.loads((tmp_path / "out" / "s1.json").read_text())
    assert doc["complete"] is False and "summary" not in doc
    assert doc["missing"] == ["icebreaker/broken/board/seed1"]
    assert [b["model"] for b in doc["builds"]] == ["digits"]
    lines = results.sweeps_table([("s1.json", doc)])
    assert "- `s1.json`: 1 builds missing (icebreaker/broken/board/seed1)" in lines


@pytest.mark.parametrize("spec, message", [
    ({"boards": ["de10"], "models": ["digits"], "seeds": [1]}, "unknown board 'de10'"),
    ({"boards": ["hx8k"], "models": ["digits"], "seeds": [0]},
     "each of 'seeds' must be a positive integer, not 0"),
    ({"boards": ["hx8k"], "models": ["digits"]}, "'seeds' must be a non-empty list, not None"),
    ({"boards": ["hx8k"], "models": ["digits"], "seeds": [1, 1]}, "'seeds' lists an entry twice"),
    ({"boards": ["hx8k"], "models": ["digits"], "seeds": [1], "seed": 2}, "unknown keys"),
    ({"boards": ["hx8k"], "models": ["digits"], "seeds": [1], "foldings": [3]},
     "each of 'foldings' is a parallelism object or null, not 3"),
    ({"boards": ["hx8k"], "models": ["digits"], "seeds": [1], "clock_mhz": -5},
     "'clock_mhz' must be a positive number or null, not -5"),
    ({"boards": ["hx8k"], "models": ["digits"], "seeds": [1], "fold_resets": 0},
     "'fold_resets' must be a positive integer, not 0"),
])
def test_bad_sweep_files(tmp_path, spec, message):
    with pytest.raises(BoardError, match=message):
        sweep.load_sweep(_sweep_file(tmp_path, **spec))


def test_cli_sweep_takes_no_board_options(capsys):
    with pytest.raises(SystemExit):
        bench.main(["--sweep", "s.json", "--board", "hx8k"])
    assert "leave out --board" in capsys.readouterr().err


def test_cli_reports_a_bad_sweep_file(tmp_path, capsys):
    f = _sweep_file(tmp_path, boards=["de10"], models=["digits"], seeds=[1])
    assert bench.main(["--sweep", str(f)]) == 2
    assert "unknown board 'de10'" in capsys.readouterr().err
