"""A small network with the windowed ops (conv -> amos -> maxpool -> depthwise conv -> amos ->
avgpool -> dense, ``rtl_tests/pool_network.py``, random int8 weights) generated and run on both
simulators (cocotb on Icarus, the native bench on Verilator): every logit and class equal to
python_ref.snn, every measured interval between results equal to the report's cycles per
image; and on Verilator the same images with idle input cycles and result backpressure. Also
conv -> maxpool -> dense (a VGG's classifier, the dense layer behind an image buffer) with the
dense layer and then the convolution the slowest."""
import numpy as np
import pytest

from rtl_tests.native import run_images
from rtl_tests.network import run_network
from rtl_tests.pool_network import CPD_FOLDINGS, POOL_FOLDINGS, conv_pool_dense, pool_network

#: 3x3 windows with padding and stride 2 (max pool, depthwise conv), a 3x3 stride-1 average pool
STRIDED = {"pool1": (3, 2, 1), "dw": (3, 2, 1), "pool2": (3, 1, 1)}


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    root = tmp_path_factory.mktemp("pool")
    pool_network(root / "pool_net")
    pool_network(root / "strided", seed=3, **STRIDED)
    conv_pool_dense(root / "cpd")
    x = np.random.default_rng(2).integers(0, 256, (8, 8, 8, 3)).astype(np.uint8)
    return root, (x, np.zeros(len(x), np.int64))


@pytest.mark.parametrize(("net", "k", "carry"),
                         [("pool_net", 0, None), ("pool_net", 1, None), ("pool_net", 2, "ecp5"),
                          ("strided", 1, None)],
                         ids=["folded", "lanes", "wide-ecp5carry", "strided"])
def test_pool_network(sim, nets, net, k, carry):
    root, images = nets
    res = run_network(str(root / f"{net}.json"), 8, sim, images=images,
                      parallelism=POOL_FOLDINGS[k], carry=carry)
    assert res["mismatches"] == 0
    assert res["cycles_per_image_measured"] == res["cycles_per_image_report"]
    assert (res["ccu2c_cells"] > 0) == (carry == "ecp5")


def test_pool_network_with_stalls(sim, nets):
    if sim != "verilator":
        pytest.skip("the native bench is Verilator's")
    root, (x, y) = nets
    res = run_images(str(root / "pool_net.json"), x, y, sim_seed=3, idle=0.3, stall=0.4,
                     parallelism=POOL_FOLDINGS[1])
    assert res["images"] == 8
    assert res["mismatches"] == 0, res["first_mismatches"]


@pytest.mark.parametrize("k", range(len(CPD_FOLDINGS)), ids=["dense-bound", "conv-bound"])
def test_dense_after_a_max_pool(sim, nets, k):
    root, images = nets
    res = run_network(str(root / "cpd.json"), 8, sim, images=images,
                      parallelism=CPD_FOLDINGS[k])
    assert res["mismatches"] == 0
    assert res["cycles_per_image_measured"] == res["cycles_per_image_report"]


def test_pool_network_spike_counts(sim, nets):
    """With --spike-counts the top reports each image's spikes: the two ReLU amos layers'
    (stem, depthwise conv), equal to python_ref's per image; the pools add none."""
    root, images = nets
    res = run_network(str(root / "pool_net.json"), 8, sim, images=images,
                      parallelism=POOL_FOLDINGS[1], spike_counts=True)
    assert res["mismatches"] == 0
    assert res["spike_mismatches"] == 0
    assert res["spikes_per_image"] > 0
