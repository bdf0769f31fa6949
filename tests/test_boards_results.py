"""boards.results: the committed results page is the generated one, and each table says how."""
import json

from boards import results, table2


def _sections(page: str) -> dict[str, list[str]]:
    """The page's ``## `` sections, title -> lines."""
    out: dict[str, list[str]] = {}
    title = None
    for line in page.splitlines():
        if line.startswith("## "):
            title = line[3:]
            out[title] = []
        elif title is not None:
            out[title].append(line)
    return out


def test_committed_page_is_the_generated_one():
    assert results.PAGE.read_text() == results.render_page(), (
        "docs/results/README.md is stale: run python -m boards.results")
    assert results.main(["--check"]) == 0


def test_every_table_has_its_method_and_command():
    sections = _sections(results.render_page())
    assert len(sections) == 6
    for title, lines in sections.items():
        assert any(ln.startswith("| ") for ln in lines), f"{title}: no table"
        assert any(ln.startswith("Method: ") for ln in lines), f"{title}: no method line"
        command = [ln for ln in lines if ln.startswith("Command: ")]
        assert command and "`python -m boards.results`" in command[0], title


def test_figures_come_from_the_json(tmp_path):
    (tmp_path / "boards").mkdir()
    (tmp_path / "m.json").write_text(json.dumps({
        "model": "m", "dataset": "d", "n_images": 1234, "ann_top1": 0.5, "snn_top1": 0.25,
        "gap_points": 25.0, "agreement": 0.75, "spikes_per_image": 4321.25, "neurons": 99,
        "time_steps": 7}))
    run = {"model": "m", "simulator": "icarus", "images": 3, "mismatches": 0, "accuracy": 1.0,
           "reference_accuracy": 1.0, "cycles_per_image_measured": None,
           "cycles_per_image_report": 640, "latency_cycles_measured": 700,
           "latency_cycles_report": 710, "architecture": "shared"}
    (tmp_path / "rtl_m_shared.json").write_text(json.dumps({"runs": {"icarus": run}}))
    page = results.render_page(tmp_path)
    assert ("| `m.json` | m | plain conversion | d | 1,234 | 50.00 % | 25.00 % | 25.00 | "
            "75.00 % | 4,321.2 | 99 | 7 | - |") in page
    assert "| - / 640 | 700 / 710 |" in page
    assert "`python -m rtl_tests.network --model m --architecture shared --images 3 " \
           "--sim icarus`" in page
    assert "no build result yet" in page


def test_rtl_command_from_the_file_name():
    run = {"model": "resnet8", "images": 100, "simulator": "verilator",
           "parallelism": "largest that fits ecp5-85f", "cycles_per_image_report": 73728}
    assert results._rtl_command("rtl_resnet8_ecp5-85f.json", run) == (
        "`python -m rtl_tests.network --model resnet8 --board ecp5-85f --images 100 "
        "--sim verilator`")
    run = dict(run, parallelism="target 762.939 images/s (65536 cycles at 50 MHz)",
               cycles_per_image_report=65536)
    assert results._rtl_command("rtl_resnet8.json", run) == (
        "`python -m rtl_tests.network --model resnet8 --target-cycles 65536 --images 100 "
        "--sim verilator`")
    run = dict(run, parallelism="docs/results/foldings/x2.json", parallelism_file=True)
    assert results._rtl_command("rtl_resnet8_x2.json", run) == (
        "`python -m rtl_tests.network --model resnet8 --parallelism docs/results/foldings/x2.json "
        "--images 100 --sim verilator`")


def test_table2_is_generated_and_read_from_the_json(tmp_path):
    assert table2.PAGE.read_text() == table2.render_table2(), (
        "docs/results/table2.md is stale: run python -m boards.results")
    paper = {"ann_top1": 0.8722, "snn_top1": 0.8705, "neurons": 737280,
             "spikes_per_image": 103753}
    (tmp_path / "resnet8.json").write_text(json.dumps({
        "model": "resnet8", "n_images": 10000, "ann_top1": 0.5, "snn_top1": 0.25,
        "neurons": 99, "spikes_per_image": 4321.25, "time_steps": 7, "paper": paper,
        "synops_per_image": 2.5e6, "macs_per_image": 1.25e6}))
    (tmp_path / "table2_estimates.json").write_text(json.dumps({"models": {"resnet8": {
        "architecture": None, "cycles_per_image": 640, "images_per_s": 78125.0,
        "clock_mhz": 50.0, "est_lut4": 1234, "est_bram_blocks": 5, "est_dsp": 0}}}))
    page = table2.render_table2(tmp_path)
    assert ("| resnet8 | 50.00 % / 87.22 % | 25.00 % / 87.05 % | 99 / 737,280 | "
            "4,321 / 103,753 | 2.50 M | 1.25 M | 7 | 10,000 | layer-pipelined: 640 cycles, "
            "78,125.0 images/s at 50 MHz, 1,234 LUT4, 5 DP16KD, 0 DSP |") in page
    # the models without a result say so; the paper's ResNet50 row says why it is missing
    assert "| ResNet50 | - / 92.99 % |" in page
    assert "resnet14" not in page


def test_check_names_each_stale_page(tmp_path, monkeypatch, capsys):
    stale, current = tmp_path / "table2.md", tmp_path / "README.md"
    stale.write_text("old\n")
    current.write_text(results.render_page())
    monkeypatch.setattr(table2, "PAGE", stale)
    monkeypatch.setattr(results, "PAGE", current)
    monkeypatch.setattr(results, "REPO", tmp_path)
    assert results.main(["--check"]) == 1
    err = capsys.readouterr().err
    assert "table2.md is not the generated page" in err and "README.md" not in err


def test_estimate_errors_against_the_placed_design():
    builds = [{"lut4": 100, "ff": 200, "bram": {"blocks": 20},
               "generator_estimate": {"est_lut4": 110, "est_ff": 150, "est_bram_blocks": 25}},
              {"lut4": 50, "ff": 80, "bram": {"blocks": 8},
               "generator_estimate": {"est_lut4": 40}},
              {"lut4": 70, "ff": 70}]
    errs = results.estimate_errors(builds)
    assert errs == {"lut4": [0.1, -0.2], "ff": [-0.25], "bram_blocks": [0.25]}
    lines = results._error_lines(builds)
    assert lines[0].startswith("- LUT4: over 2 builds the estimate errs by -5.0 % (median), "
                               "from -20.0 % to +10.0 %")
    assert lines[1].startswith("- FF (with those in block RAM output registers): over 1 builds")


def test_estimate_errors_count_flip_flops_moved_into_block_ram():
    # 150 fabric flip-flops and 50 in block RAM output registers: the design has 200
    build = {"lut4": 100, "ff": 150, "outreg": {"blocks": 4, "flip_flops": 50},
             "generator_estimate": {"est_ff": 180}}
    assert results.estimate_errors([build])["ff"] == [-0.1]
