"""A two-block residual network (identity and projection shortcuts, gap, dense) with random int8
weights, generated and run under cocotb on both simulators: the cheap sibling of the ResNet8
runs (same engines and glue, a few thousand cycles per image)."""
import numpy as np
import pytest

from rtl_tests.network import run_network, tiny_resnet

FOLDING = {"stem.act": {"pe": 2, "simd": 3}, "b0.a1": {"pe": 4, "simd": 4},
           "b0.c2": {"pe": 4, "simd": 2}, "b0.a2": {"lanes": 2}, "b1.a1": {"pe": 4, "simd": 2},
           "b1.c2": {"pe": 8, "simd": 8}, "b1.sc": {"pe": 8, "simd": 4}, "b1.a2": {"lanes": 4},
           "gap": {"lanes": 2}, "fc": {"pe": 3, "simd": 8}}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny") / "tiny_resnet"
    tiny_resnet(path)
    x = np.random.default_rng(2).integers(0, 256, (12, 8, 8, 3)).astype(np.uint8)
    return path, (x, np.zeros(len(x), np.int64))


@pytest.mark.parametrize(("par", "carry"), [(None, None), (FOLDING, None), (FOLDING, "ecp5")],
                         ids=["folded", "mixed", "mixed-ecp5carry"])
def test_tiny_residual_network(sim, tiny, par, carry):
    """``mixed-ecp5carry``: the ECP5 carry form (CCU2C cells, their simulation model) in every
    paired layer of the network."""
    path, images = tiny
    res = run_network(str(path), 12, sim, images=images, parallelism=par, carry=carry)
    assert res["mismatches"] == 0
    assert (res["ccu2c_cells"] > 0) == (carry == "ecp5")
    assert res["cycles_per_image_measured"] == res["cycles_per_image_report"]
