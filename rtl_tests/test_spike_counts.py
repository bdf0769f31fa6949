"""The hardware's own spike counts (``--spike-counts``, amos_hw.lib.spike_tally) in RTL, against
python_ref's ``SimResult.spikes``, image by image, in total and per AMOS layer.

* digits, a few dozen test images (the CI check of ``spike_mismatches``), on both simulators:
  cocotb (:mod:`rtl_tests.tb_network`) on Icarus, the native bench on Verilator;
* the two-block residual network (five AMOS layers: convolutions and residual adds, lane
  adapters of every kind) on both;
* digits under idle input cycles and heavy result backpressure on the native bench, which
  fills the pipeline up to the counters' limit of images in flight;
* the native bench's refusals for a spike-counting design.
"""
import numpy as np
import pytest

from python_ref import ir, snn
from python_ref.data import load_digits
from rtl_tests.native import NativeBenchError, build_bench, read_results, run_images
from rtl_tests.network import run_network, tiny_resnet
from rtl_tests.test_network_tiny import FOLDING


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits("test")
    return x[:40], y[:40]


def test_digits_spike_counts(sim, digits):
    x, y = digits
    res = run_network("digits", len(x), sim, images=(x, y), spike_counts=True)
    ref = snn.run(ir.load("python_ref/zoo/digits.json"), x)
    assert res["mismatches"] == 0
    assert res["spike_layers"] == ["act1"]
    assert res["spike_mismatches"] == 0, res["first_spike_mismatches"]
    assert res["spikes_total"] == int(ref.spikes_per_image.sum())
    assert res["cycles_per_image_measured"] == res["cycles_per_image_report"]


def test_tiny_residual_spike_counts(sim, tmp_path):
    path = tmp_path / "tiny_resnet"
    g = tiny_resnet(path)
    x = np.random.default_rng(4).integers(0, 256, (10, 8, 8, 3)).astype(np.uint8)
    res = run_network(str(path), len(x), sim, images=(x, np.zeros(len(x), np.int64)),
                      parallelism=FOLDING, spike_counts=True)
    ref = snn.run(g, x)
    assert res["mismatches"] == 0
    assert res["spike_layers"] == ["stem.act", "b0.a1", "b0.a2", "b1.a1", "b1.a2"]
    assert res["spike_mismatches"] == 0, res["first_spike_mismatches"]
    assert res["spikes_total"] == int(ref.spikes_per_image.sum())
    assert res["cycles_per_image_measured"] == res["cycles_per_image_report"]


@pytest.fixture
def verilator(sim):
    if sim != "verilator":
        pytest.skip("the native bench is Verilator's")


def test_digits_spikes_with_stalls(verilator):
    x, y = load_digits("test")
    res = run_images("digits", x[:150], y[:150], sim_seed=9, idle=0.2, stall=0.7,
                     spike_counts=True)
    ref = snn.run(ir.load("python_ref/zoo/digits.json"), x[:150])
    assert res["mismatches"] == 0
    assert res["spike_mismatches"] == 0, res["first_spike_mismatches"]
    assert res["layer_spikes_total"] == {"act1": int(ref.spikes["act1"].sum())}


def test_read_results_wants_the_spike_columns(tmp_path):
    """A result file without the spike columns a spike-counting bench writes is refused."""
    out = tmp_path / "results.txt"
    out.write_text("0 3 100 -1 1 2\ndone 1 500\n")
    with pytest.raises(NativeBenchError, match=r"expected 1 images of 2 logits and 1 layers' "
                                               r"spikes, the file has 1 result lines"):
        read_results(out, 1, 2, spike_layers=1)
    out.write_text("0 3 100 -1 1 2 17 17\ndone 1 500\n")
    got = read_results(out, 1, 2, spike_layers=1)
    assert got["spikes"].tolist() == [17] and got["layer_spikes"].tolist() == [[17]]


def test_layer_spikes_port_without_declaration(verilator, tmp_path):
    ports = ("clk, rst, pixels__payload, pixels__valid, pixels__ready, result__payload, "
             "result__valid, result__ready, layer_spikes")
    text = f"module net({ports});\nendmodule\n"
    with pytest.raises(NativeBenchError, match="net: no declaration of its port layer_spikes"):
        build_bench(text, toplevel="net", image_size=64, logit_width=8, num_classes=10,
                    root=tmp_path)
