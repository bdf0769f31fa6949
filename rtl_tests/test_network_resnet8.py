"""The generated ResNet8 in RTL over real CIFAR-10 test images, bit for bit.

Verilator runs 100 images (a seeded subset across the classes) on the native bench
(:mod:`rtl_tests.native`), Icarus 2 under cocotb (marked slow); both
check every logit and class against python_ref.snn and the measured interval between results against
report.json's cycles per image. The folding is :data:`rtl_tests.network.CI_PARALLELISM`: small
enough that Verilator compiles it in a few minutes on two cores. The whole test set:
``python -m rtl_tests.network --model resnet8 --images 10000`` (docs/results/rtl_resnet8.json).
"""
import pytest

from amos_hw.zoo import known_models
from rtl_tests.network import ci_config, run_network

pytestmark = pytest.mark.skipif("resnet8" not in known_models(),
                                reason="python_ref/zoo/resnet8 not converted yet")


def test_resnet8_cifar10_verilator(sim):
    """100 images on Verilator's native bench: about 1 min of C++ build and 0.6 s of CPU per
    image."""
    if sim != "verilator":
        pytest.skip("the 100 ResNet8 images run on Verilator (Icarus: 2, marked slow)")
    res = run_network("resnet8", 100, "verilator", **ci_config("resnet8"))
    assert res["images"] == 100
    assert res["mismatches"] == 0
    assert res["cycles_per_image_measured"] == res["cycles_per_image_report"]


@pytest.mark.slow
def test_resnet8_cifar10_icarus(sim):
    """2 images on Icarus: about 4 min of CPU (5 to 10 min on two busy cores), so it runs in
    `make test-heavy`; the cheap siblings on Icarus are the whole digits test set and the
    two-block residual network (rtl_tests/test_network_tiny.py)."""
    if sim != "icarus":
        pytest.skip("ResNet8 on Icarus only (Verilator runs 100 images)")
    res = run_network("resnet8", 2, "icarus", **ci_config("resnet8"))
    assert res["images"] == 2
    assert res["mismatches"] == 0
    assert res["cycles_per_image_intervals"] == [res["cycles_per_image_report"]]
