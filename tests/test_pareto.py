"""boards.pareto: a row reads the evaluation, the generator's estimate and the recorded builds
of its description; the figure is drawn."""
import json

from boards import pareto
from python_ref.checkpoint import ZOO


def test_row_holds_the_evaluation_the_estimate_and_null_placed_figures(tmp_path):
    r = pareto.row("resnet8", ZOO / "resnet8", "fine-tuned (zoo)", "ecp5-85f", limit=20,
                   progress=False)
    assert r["n_images"] == 20 and r["K"] == 10 and r["neurons"] == 737_280
    # the shipped ResNet8 on the ecp5-85f: the figures of its committed board result
    board = json.loads((pareto.REPO / "docs/results/boards/ulx3s-85f_resnet8.json").read_text())
    assert r["est_cycles_per_image"] == board["cycles_per_image"]
    # its placed figures: the committed PLL 100 MHz sweep with the weight ROMs in columns (of
    # the two three-seed K = 10 sweeps at 100 MHz, the one with the higher median Fmax)
    assert r["model_sha256"] == board["model_sha256"]
    assert r["images_per_s_board_clock"] == 1356.337
    assert (r["fmax_mhz"], r["fmax_mhz_min"]) == (113.49, 108.13)
    sweep = "sweeps/k10_pll100_romcols/ulx3s-85f_resnet8_pll100mhz"
    assert r["placed_builds"] == [f"{sweep}_resets8.json", f"{sweep}_seed2_resets8.json",
                                  f"{sweep}_seed3_resets8.json"]
    png = pareto.plot([r, dict(r, conversion="plain", K=6),
                       dict(r, conversion="per-layer K (zoo)", K={"stem.act": 6, "fc": 4})],
                      tmp_path / "p.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_per_layer_rows_are_zoo_descriptions_with_more_than_one_K():
    from python_ref import ir

    for name in pareto.PER_LAYER:
        g = ir.load(ZOO / name)
        assert len({u["K"] for u in g.units.values()}) > 1, name


def _build(tmp, name, **kw):
    rep = {"model_sha256": "aa", "board": "ulx3s-85f", "parallelism": "largest that fits x",
           "router": "router1", "timing_mhz": None, "carry": "ecp5", "variant": None,
           "fmax_constraint_mhz": 90.0, "fmax_mhz": 91.0, "meets_board_clock": True,
           "images_per_s_board_clock": 2000.0, "lut4": 1, "ff": 2, "bram": {"blocks": 3},
           "dsp": 0, **kw}
    (tmp / f"{name}.json").write_text(json.dumps(rep))


def test_placed_figures_come_from_plain_builds_of_the_same_description(tmp_path):
    """Seeds at the fastest build's clock target give the median and minimum Fmax; builds of
    another description, device, router or folding, or of another clock target, do not."""
    row = {"model_sha256": "aa", "board": "ecp5-85f"}
    assert all(v is None for v in pareto.placed(row, tmp_path).values())
    _build(tmp_path, "a_seed1", fmax_mhz=92.0, images_per_s_board_clock=2400.0, lut4=50)
    _build(tmp_path, "a_seed2", fmax_mhz=89.5, meets_board_clock=False,
           variant="PLL 90 MHz, nextpnr seed 2")
    _build(tmp_path, "a_seed3", fmax_mhz=95.0, variant="nextpnr seed 3")
    _build(tmp_path, "slow_target", fmax_constraint_mhz=75.0, fmax_mhz=70.0)
    _build(tmp_path, "router2", router="router2", fmax_mhz=120.0)
    _build(tmp_path, "other_model", model_sha256="bb", fmax_mhz=130.0)
    _build(tmp_path, "other_device", board="ulx3s-25f", fmax_mhz=140.0)
    _build(tmp_path, "folded", parallelism="explicit", fmax_mhz=150.0)
    _build(tmp_path, "old_generator", variant="generator 92d89da", fmax_mhz=160.0)
    got = pareto.placed(row, tmp_path)
    assert got == {"fmax_mhz": 92.0, "fmax_mhz_min": 89.5, "lut4": 50, "ff": 2, "bram": 3,
                   "dsp": 0, "images_per_s_board_clock": 2400.0,
                   "placed_builds": ["a_seed1.json", "a_seed2.json", "a_seed3.json"]}


def test_placed_without_a_build_that_meets_its_clock(tmp_path):
    row = {"model_sha256": "aa", "board": "ecp5-85f"}
    _build(tmp_path, "s1", fmax_mhz=89.0, meets_board_clock=False, lut4=7)
    _build(tmp_path, "s2", fmax_mhz=87.0, meets_board_clock=False, lut4=8)
    _build(tmp_path, "low", fmax_constraint_mhz=25.0, fmax_mhz=80.0, meets_board_clock=False)
    got = pareto.placed(row, tmp_path)
    assert got == {"fmax_mhz": 88.0, "fmax_mhz_min": 87.0, "lut4": 7, "ff": 2, "bram": 3,
                   "dsp": 0, "images_per_s_board_clock": None,
                   "placed_builds": ["s1.json", "s2.json"]}


def test_placed_reads_the_sweeps_builds(tmp_path):
    """A sweep's seeds (boards/sweeps/<sweep>/) count beside the bench's builds."""
    row = {"model_sha256": "aa", "board": "ecp5-85f"}
    sweep = tmp_path / "sweeps" / "k6"
    sweep.mkdir(parents=True)
    _build(tmp_path, "bench", fmax_mhz=90.0, meets_board_clock=False)
    _build(sweep, "s2", fmax_mhz=94.0, variant="PLL 90 MHz, nextpnr seed 2", lut4=9,
           images_per_s_board_clock=2100.0)
    _build(sweep, "s3", fmax_mhz=91.0, variant="PLL 90 MHz, nextpnr seed 3",
           images_per_s_board_clock=2000.0)
    got = pareto.placed(row, tmp_path)
    assert got["placed_builds"] == ["bench.json", "sweeps/k6/s2.json", "sweeps/k6/s3.json"]
    assert (got["fmax_mhz"], got["fmax_mhz_min"], got["lut4"]) == (91.0, 90.0, 9)


def test_placed_takes_the_seeds_of_one_generator_commit(tmp_path):
    """Builds of the same description from two generator commits (two netlists) are not one
    sample: Fmax is over the seeds of the commit whose build is chosen."""
    row = {"model_sha256": "aa", "board": "ecp5-85f"}
    for git, seeds in (("old", (88.0, 96.0)), ("new", (94.0, 99.0, 90.0))):
        for i, f in enumerate(seeds):
            _build(tmp_path, f"{git}{i}", git=git, fmax_constraint_mhz=100.0, fmax_mhz=f,
                   meets_board_clock=False, lut4=len(git))
    got = pareto.placed(row, tmp_path)
    assert got["placed_builds"] == ["new0.json", "new1.json", "new2.json"]
    assert (got["fmax_mhz"], got["fmax_mhz_min"], got["lut4"]) == (94.0, 90.0, 3)
    assert got["images_per_s_board_clock"] is None
    _build(tmp_path, "old2", git="old", fmax_constraint_mhz=100.0, fmax_mhz=101.0,
           images_per_s_board_clock=2700.0)  # meets its clock: its commit is taken
    got = pareto.placed(row, tmp_path)
    assert got["placed_builds"] == ["old0.json", "old1.json", "old2.json"]
    assert (got["fmax_mhz"], got["fmax_mhz_min"], got["images_per_s_board_clock"]) == \
        (96.0, 88.0, 2700.0)


def test_placed_prefers_the_netlist_with_more_seeds_at_equal_speed(tmp_path):
    """One seed of an older commit met the clock, and so did seeds of the newer one: the same
    images/s on the board clock, so the three-seed netlist gives the figures."""
    row = {"model_sha256": "aa", "board": "ecp5-85f"}
    _build(tmp_path, "a_single", git="old", fmax_constraint_mhz=100.0, fmax_mhz=102.6,
           images_per_s_board_clock=2712.7)
    for i, f in enumerate((100.4, 97.0, 101.1)):
        _build(tmp_path, f"b{i}", git="new", fmax_constraint_mhz=100.0, fmax_mhz=f,
               meets_board_clock=f >= 100.0, images_per_s_board_clock=2712.7)
    got = pareto.placed(row, tmp_path)
    assert got["placed_builds"] == ["b0.json", "b1.json", "b2.json"]
    assert (got["fmax_mhz"], got["fmax_mhz_min"]) == (100.4, 97.0)


def test_placed_counts_reset_fold_builds_as_their_own_netlist(tmp_path):
    """A build with small reset nets folded (an exact netlist pass) is a plain build, but its
    seeds are not one sample with the same commit's builds without the fold."""
    row = {"model_sha256": "aa", "board": "ecp5-85f"}
    fold = "PLL 100 MHz, nextpnr seed {}, resets of fewer than 8 flip-flops folded"
    for i, f in enumerate((108.1, 113.5, 104.0)):
        _build(tmp_path, f"fold{i}", git="c", fmax_constraint_mhz=100.0, fmax_mhz=f,
               variant=fold.format(i + 1), fold_resets=8, images_per_s_board_clock=1356.3)
    _build(tmp_path, "plain", git="c", fmax_constraint_mhz=100.0, fmax_mhz=90.0,
           meets_board_clock=False, variant="PLL 100 MHz, nextpnr seed 1")
    got = pareto.placed(row, tmp_path)
    assert got["placed_builds"] == ["fold0.json", "fold1.json", "fold2.json"]
    assert (got["fmax_mhz"], got["fmax_mhz_min"], got["images_per_s_board_clock"]) == \
        (108.1, 104.0, 1356.3)


def test_placed_prefers_the_faster_netlist_at_equal_speed_and_seeds(tmp_path):
    """Two commits, three seeds each, one seed of each meeting the clock: the same images/s
    and as many seeds, so the netlist with the higher median Fmax gives the figures."""
    row = {"model_sha256": "aa", "board": "ecp5-85f"}
    for git, seeds in (("old", (98.6, 88.4, 110.8)), ("new", (113.5, 108.1, 121.1))):
        for i, f in enumerate(seeds):
            _build(tmp_path, f"{git}{i}", git=git, fmax_constraint_mhz=100.0, fmax_mhz=f,
                   meets_board_clock=f >= 100.0, images_per_s_board_clock=1356.3)
    got = pareto.placed(row, tmp_path)
    assert got["placed_builds"] == ["new0.json", "new1.json", "new2.json"]
    assert (got["fmax_mhz"], got["fmax_mhz_min"]) == (113.5, 108.1)
