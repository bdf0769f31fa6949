"""Small networks with trained AMOS units (swish K = 12, sigmoid K = 8;
``rtl_tests/unit_network.py``, random int8 weights) generated and run on both simulators
(cocotb on Icarus, the native bench on Verilator): every logit and class equal to
python_ref.snn, every measured interval between results equal to the report's cycles per
image, the units' spikes (with ``--spike-counts``) equal to python_ref's per image; on
Verilator also with idle input cycles and backpressure."""
import numpy as np
import pytest

from rtl_tests.native import run_images
from rtl_tests.network import run_network
from rtl_tests.unit_network import UNIT_FOLDINGS, unit_network


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    root = tmp_path_factory.mktemp("units")
    for tail in ("dense", "gap"):
        unit_network(root / tail, tail=tail)
    x = np.random.default_rng(2).integers(0, 256, (6, 8, 8, 3)).astype(np.uint8)
    return root, (x, np.zeros(len(x), np.int64))


@pytest.mark.parametrize(("net", "k", "carry"),
                         [("dense", 0, None), ("dense", 1, None), ("dense", 2, "ecp5"),
                          ("gap", 0, None)],
                         ids=["folded", "lanes", "wide-ecp5carry", "signed-gap"])
def test_unit_network(sim, nets, net, k, carry):
    root, images = nets
    res = run_network(str(root / f"{net}.json"), 6, sim, images=images,
                      parallelism=UNIT_FOLDINGS[k], carry=carry)
    assert res["mismatches"] == 0
    assert res["cycles_per_image_measured"] == res["cycles_per_image_report"]


def test_unit_network_with_stalls(sim, nets):
    if sim != "verilator":
        pytest.skip("the native bench is Verilator's")
    root, (x, y) = nets
    res = run_images(str(root / "dense.json"), x, y, sim_seed=3, idle=0.3, stall=0.4,
                     parallelism=UNIT_FOLDINGS[1])
    assert res["images"] == 6
    assert res["mismatches"] == 0, res["first_mismatches"]


def test_unit_network_spike_counts(sim, nets):
    """The trained units count their neurons' spikes (not the bits of y): equal to
    python_ref's per image, with the ReLU layer's."""
    root, images = nets
    res = run_network(str(root / "dense.json"), 6, sim, images=images,
                      parallelism=UNIT_FOLDINGS[1], spike_counts=True)
    assert res["mismatches"] == 0
    assert res["spike_mismatches"] == 0
    assert res["spikes_per_image"] > 0
