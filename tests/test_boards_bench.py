"""amos_hw.bench: messages, and the table's goal lines from a report."""
import json

from amos_hw import bench


def test_bench_unknown_board(capsys):
    assert bench.main(["--board", "de10", "--model", "digits", "--no-build"]) == 2
    assert "unknown board 'de10'; known boards: hx8k, icebreaker" in capsys.readouterr().err


def test_bench_no_report(capsys, monkeypatch, tmp_path):
    from boards import build as bb
    monkeypatch.setattr(bb, "REPO", tmp_path)
    assert bench.main(["--board", "hx8k", "--model", "digits", "--no-build"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no build report at ")
    assert err.endswith("run `make bitstream BOARD=hx8k MODEL=digits` or drop --no-build")


def test_table_goals_from_committed_report():
    p = bench.RESULTS / "ulx3s-85f_resnet8.json"
    if not p.exists():
        import pytest
        pytest.skip("no committed ResNet8 result")
    r = json.loads(p.read_text())
    table = bench.render_table([r])
    line = next(ln for ln in table.splitlines() if ln.startswith("- resnet8 on ulx3s-85f"))
    ips = "met" if r["images_per_s"] >= 2500 else "missed"
    fmax = "met" if r["fmax_mhz"] >= 100 else "missed"
    lut = "met" if r["lut4"] <= 60000 else "missed"
    dsp = "met" if r["dsp"] == 0 else "missed"
    assert line.endswith(f"{ips} >= 2500 images/s; {dsp} 0 DSP; {lut} <= 60K LUT4; "
                         f"{fmax} Fmax >= 100 MHz")
    assert "| ulx3s-85f | resnet8 |" in table
    assert "fpgaConvNet, ResNet8 on a ZedBoard (Zynq-7020): 2,431 images/s" in table
    assert "hls4ml, ResNet8 on a Pynq-Z2 (Zynq-7020): 130.8 images/s" in table
