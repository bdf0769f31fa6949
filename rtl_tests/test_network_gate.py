"""The squeeze-and-excitation gate network (``rtl_tests/gate_network.py``: conv -> swish ->
[gap -> dense -> swish -> dense -> sigmoid] -> gate with the trained two-input multiplication
unit, K = 40 -> conv 1x1 -> ReLU -> gap -> dense, random int8 weights) generated and run on both
simulators (cocotb on Icarus, the native bench on Verilator): every logit and class equal to
python_ref.snn, every measured interval between results equal to the report's cycles per
image, the units' and the gate's spikes (with ``--spike-counts``) equal to python_ref's per
image; on Verilator also with idle input cycles and backpressure."""
import numpy as np
import pytest

from rtl_tests.gate_network import GATE_FOLDINGS, gate_network
from rtl_tests.native import run_images
from rtl_tests.network import run_network


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    root = tmp_path_factory.mktemp("gate")
    gate_network(root / "gate")
    x = np.random.default_rng(2).integers(0, 256, (5, 8, 8, 3)).astype(np.uint8)
    return root, (x, np.zeros(len(x), np.int64))


@pytest.mark.parametrize(("k", "carry"), [(0, None), (1, "ecp5"), (2, None)],
                         ids=["folded", "lanes-ecp5carry", "gate-near-bottleneck"])
def test_gate_network(sim, net, k, carry):
    root, images = net
    res = run_network(str(root / "gate.json"), 5, sim, images=images,
                      parallelism=GATE_FOLDINGS[k], carry=carry)
    assert res["mismatches"] == 0
    assert res["cycles_per_image_measured"] == res["cycles_per_image_report"]


def test_gate_network_with_stalls(sim, net):
    if sim != "verilator":
        pytest.skip("the native bench is Verilator's")
    root, (x, y) = net
    res = run_images(str(root / "gate.json"), x, y, sim_seed=3, idle=0.3, stall=0.4,
                     parallelism=GATE_FOLDINGS[1])
    assert res["images"] == 5
    assert res["mismatches"] == 0, res["first_mismatches"]


def test_gate_network_spike_counts(sim, net):
    """The gate counts its 40 neurons' spikes (not the bits of y): equal to python_ref's per
    image, with the other units' and the ReLU layer's."""
    root, images = net
    res = run_network(str(root / "gate.json"), 5, sim, images=images,
                      parallelism=GATE_FOLDINGS[1], spike_counts=True)
    assert res["mismatches"] == 0
    assert res["spike_mismatches"] == 0
    assert res["spikes_per_image"] > 0
