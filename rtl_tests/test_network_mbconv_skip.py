"""A true MBConv block (``rtl_tests/mbconv_network.py``, ``skip=True``: swish x -> 1x1 expansion
-> swish -> depthwise 3x3 -> swish -> linear 1x1 projection, ``add(proj, x)`` raw before the
signed identity unit, a 1x1 conv reading its two's-complement words -> ReLU -> gap -> dense;
``linear=True``: the projection through the identity unit, no skip; ``se=True``: the skip
block with squeeze-and-excitation before the projection) generated and run on
both simulators (cocotb on Icarus, the native bench on Verilator): every logit and class equal
to python_ref.snn, every measured interval between results equal to the report's cycles per
image, the units' spikes (the identity unit's included, with ``--spike-counts``) equal to
python_ref's per image; on Verilator also with idle input cycles and backpressure."""
import numpy as np
import pytest

from rtl_tests.mbconv_network import LINEAR_FOLDINGS, SE_FOLDINGS, SKIP_FOLDINGS, mbconv_network
from rtl_tests.native import run_images
from rtl_tests.network import run_network

IMAGES = 4


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    root = tmp_path_factory.mktemp("mbconv_skip")
    mbconv_network(root / "skip", skip=True)
    mbconv_network(root / "linear", linear=True)
    mbconv_network(root / "se", se=True)
    x = np.random.default_rng(2).integers(0, 256, (IMAGES, 8, 8, 3)).astype(np.uint8)
    return root, (x, np.zeros(len(x), np.int64))


@pytest.mark.parametrize(("net", "par"), [("skip", SKIP_FOLDINGS[1]),
                                          ("linear", LINEAR_FOLDINGS[1]),
                                          ("se", SE_FOLDINGS[1])],
                         ids=["skip", "linear", "se"])
def test_mbconv_block(sim, nets, net, par):
    root, images = nets
    res = run_network(str(root / f"{net}.json"), IMAGES, sim, images=images, parallelism=par,
                      spike_counts=True)
    assert res["mismatches"] == 0
    assert res["spike_mismatches"] == 0
    assert res["cycles_per_image_measured"] == res["cycles_per_image_report"]


@pytest.mark.parametrize(("net", "par"), [("skip", SKIP_FOLDINGS[1]), ("se", SE_FOLDINGS[0])],
                         ids=["skip", "se"])
def test_mbconv_skip_with_stalls(sim, nets, net, par):
    if sim != "verilator":
        pytest.skip("the native bench is Verilator's")
    root, (x, y) = nets
    res = run_images(str(root / f"{net}.json"), x, y, sim_seed=3, idle=0.3, stall=0.4,
                     parallelism=par)
    assert res["images"] == IMAGES
    assert res["mismatches"] == 0, res["first_mismatches"]
