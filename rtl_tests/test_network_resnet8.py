"""The generated ResNet8 under cocotb over real CIFAR-10 test images, bit for bit.

Verilator runs 100 images (a seeded subset across the classes), Icarus 2; both check every
logit and class against python_ref.snn and the measured interval between results against
report.json's cycles per image. The folding is :data:`rtl_tests.network.CI_PARALLELISM`: small
enough that Verilator compiles it in a few minutes on two cores. The whole test set:
``python -m rtl_tests.network --model resnet8 --images 10000`` (docs/results/rtl_resnet8.json).
"""
import pytest

from amos_hw.zoo import known_models
from rtl_tests.network import ci_config, run_network

IMAGES = {"verilator": 100, "icarus": 2}

pytestmark = pytest.mark.skipif("resnet8" not in known_models(),
                                reason="python_ref/zoo/resnet8 not converted yet")


def test_resnet8_cifar10(sim):
    n = IMAGES[sim]
    res = run_network("resnet8", n, sim, **ci_config("resnet8"))
    assert res["images"] == n
    assert res["mismatches"] == 0
    if n > 3:
        assert res["cycles_per_image_measured"] == res["cycles_per_image_report"]
