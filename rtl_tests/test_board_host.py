"""``python -m boards.host classify --sim``: image files to classes through the iCEBreaker's
board top under Verilator, with the UART modelled bit by bit, against the integer reference.

The digits network's top compiles in about 30 s the first time (cached in ``build/sim``), then a
run takes a few seconds.
"""
import json
import os

import numpy as np
import pytest

from boards import host, sim


@pytest.fixture(scope="module")
def digit_files(tmp_path_factory):
    from PIL import Image

    from python_ref.data import load_digits
    x, y = load_digits("test")
    d = tmp_path_factory.mktemp("digits")
    rng = np.random.default_rng(7)
    pick = rng.choice(len(y), 4, replace=False)
    files = []
    for k in pick:
        p = d / f"digit{k}_{y[k]}.png"
        Image.fromarray(x[k, :, :, 0]).save(p)
        files.append(str(p))
    return files, x[pick]


def test_classify_sim_digits(digit_files, tmp_path, capsys):
    if "verilator" not in os.environ.get("SIM", "verilator"):
        pytest.skip("SIM does not name verilator; --sim runs the board top under Verilator")
    from python_ref import ir, snn
    files, pixels = digit_files
    out = tmp_path / "answers.json"
    assert host.main(["classify", "--sim", "--board", "icebreaker", "--model", "digits",
                      *files, "--json", str(out)]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[0] == host.NO_SPIKES  # built without spike counters
    printed = printed[1:]
    assert len(printed) == len(files)
    answers = json.loads(out.read_text())
    ref = snn.run(ir.load("python_ref/zoo/digits.json"), pixels)
    assert [a["cls"] for a in answers] == ref.classes.tolist()
    assert [list(a["logits"]) for a in answers] == ref.logits.tolist()
    for a in answers:
        assert a["cycles"] > 0 and a["round_trip_s"] > 0
        assert f"class {a['cls']}" in printed[answers.index(a)]


def test_classify_sim_digits_spikes(digit_files, tmp_path, capsys):
    """``--spike-counts``: the board top with the spike counters; each image's spikes come
    back through the UART and equal python_ref's."""
    if "verilator" not in os.environ.get("SIM", "verilator"):
        pytest.skip("SIM does not name verilator; --sim runs the board top under Verilator")
    from python_ref import ir, snn
    files, pixels = digit_files
    out = tmp_path / "answers.json"
    assert host.main(["classify", "--sim", "--board", "icebreaker", "--model", "digits",
                      "--spike-counts", *files, "--json", str(out)]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    answers = json.loads(out.read_text())
    ref = snn.run(ir.load("python_ref/zoo/digits.json"), pixels)
    assert [a["cls"] for a in answers] == ref.classes.tolist()
    assert [a["spikes"] for a in answers] == ref.spikes_per_image.tolist()
    assert [f"; {a['spikes']} spikes; " in line for a, line in zip(answers, printed,
                                                                   strict=True)] == [True] * 4


def test_classify_sim_bad_image(tmp_path, capsys):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    assert host.main(["classify", "--sim", "--model", "digits", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {bad}: not an image Pillow can read")


def test_classify_sim_missing_file(tmp_path, capsys):
    assert host.main(["classify", "--sim", "--model", "digits", str(tmp_path / "x.png")]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'x.png'}: no such file"


def classify_cifar_through_board(tmp_path, board: str, pick: list) -> list:
    """CIFAR-10 test images ``pick`` as PNG files through ``host classify --sim`` on ``board``'s
    ResNet8 top; checks classes and logits against the integer reference; returns the
    answers (skips without Verilator or without the CIFAR-10 arrays)."""
    if "verilator" not in os.environ.get("SIM", "verilator"):
        pytest.skip("SIM does not name verilator; --sim runs the board top under Verilator")
    from PIL import Image

    from python_ref import ir, snn
    data = os.path.join(os.environ.get("AMOS_DATA", "/work/shared/datasets/cifar10"),
                        "test.npz")
    if not os.path.exists(data):
        pytest.skip(f"CIFAR-10 test arrays not at {data}")
    d = np.load(data)
    files = []
    for k in pick:
        p = tmp_path / f"c{k}.png"
        Image.fromarray(d["x"][k]).save(p)
        files.append(str(p))
    out = tmp_path / "answers.json"
    assert host.main(["classify", "--sim", "--board", board, "--model", "resnet8",
                      *files, "--json", str(out)]) == 0
    answers = json.loads(out.read_text())
    ref = snn.run(ir.load("python_ref/zoo/resnet8.json"), d["x"][pick])
    assert [a["cls"] for a in answers] == ref.classes.tolist()
    assert [list(a["logits"]) for a in answers] == ref.logits.tolist()
    return answers


@pytest.mark.slow
def test_classify_sim_resnet8(tmp_path):
    """ResNet8 through the ULX3S-85F board top on the native UART bench, against the integer
    reference: 118 s with the Verilator build, 70 s with it cached (measured on the 2-core
    machine beside other jobs; under cocotb it was about 8 minutes of build, then about a
    minute per image)."""
    classify_cifar_through_board(tmp_path, "ulx3s-85f", [0, 5000])

def classify_straddle_through_board(tmp_path, board: str, seed: int):
    """Two images of the straddle network (tests.test_shared) through ``board``'s top on the
    shared engine as the board builds it, over the modelled UART; checks classes, logits and
    the board's own cycle count (first pixel offered to result taken, which equals the
    engine's exact interval: the link feeds a pixel a cycle and takes the result at once).
    Returns the graph, the board's INFO and the top."""
    if "verilator" not in os.environ.get("SIM", "verilator"):
        pytest.skip("SIM does not name verilator; --sim runs the board top under Verilator")
    from python_ref import snn
    from tests.test_shared import straddle_net

    g = straddle_net(tmp_path / "straddle")
    x = np.random.default_rng(seed).integers(0, 256, (2, 6, 6, 5), dtype=np.uint8)
    top = sim.board_top(board, str(tmp_path / "straddle.json"), "shared")
    info, results = sim.classify_top(top, list(x), board_name=board, progress=False)
    ref = snn.run(g, x)
    assert [r.cls for r, _ in results] == ref.classes.tolist()
    assert [list(r.logits) for r, _ in results] == ref.logits.tolist()
    assert [r.cycles for r, _ in results] == [info.cycles_per_image] * len(results)
    return g, info, top


def test_classify_sim_shared_engine_loads_weights(tmp_path):
    """The shared engine on the iCEBreaker's top, as built for the UP5K: SPRAM (the behavioural
    model in amos_hw/backend/sim_models), DSP-form lanes, weights sent over the modelled UART with
    CMD_LOAD, then images: logits and classes == python_ref.snn."""
    classify_straddle_through_board(tmp_path, "icebreaker", 11)


def test_classify_sim_flash_weights_on_the_25f(tmp_path):
    """The shared engine as the ULX3S-25F builds it: the weights in the configuration flash
    (the SPI flash model of amos_hw.lib.spiflash on the top's flash pins, the weights at the
    board's offset), images over the modelled UART: logits and classes == python_ref.snn, and
    the board's own cycle count is the model's, flash waits included."""
    from amos_hw.shared import program as P

    g, info, top = classify_straddle_through_board(tmp_path, "ulx3s-25f", 12)
    assert info.cycles_per_image > P.cycles(P.layout(P.lower(g)))  # the flash feeds the weights
    assert top.network.weights == "flash" and top.network.flash_params["offset"] == 0x200000


@pytest.mark.slow
def test_classify_sim_resnet8_ulx3s_25f(tmp_path):
    """ResNet8 through the ULX3S-25F board top as built (shared engine, weights read from the
    modelled configuration flash at 0x200000), two CIFAR-10 test images from PNG files over the
    modelled UART, against the integer reference."""
    answers = classify_cifar_through_board(tmp_path, "ulx3s-25f", [3, 7000])
    assert all(a["cycles"] == 2264402 for a in answers)  # the engine's count, flash included
