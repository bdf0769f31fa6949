"""The zoo's EfficientNet-style ``effnet_cifar`` (trained, python_ref/zoo), fully folded, in
RTL over real CIFAR-10 test images, bit for bit, and its measured interval against the report:
every layer kind of issue 16 in one design (swish and sigmoid units, the K = 40 products of
four squeeze-and-excitation gates, depthwise and pointwise convolutions, identity skips).
Verilator runs 3 images on the native bench here (the cheap sibling); the 100-image run is
``python -m rtl_tests.network --model effnet_cifar --images 100``."""
import numpy as np
import pytest

from python_ref.checkpoint import ZOO
from python_ref.data import DataError, load_dataset
from rtl_tests.native import run_images

IMAGES = 3


@pytest.fixture(scope="module")
def effnet():
    try:
        x, y = load_dataset("cifar10", "test", None)
    except (DataError, OSError) as e:
        pytest.skip(f"CIFAR-10 arrays not available: {e}")
    pick = np.random.default_rng(5).choice(len(y), IMAGES, replace=False)
    return ZOO / "effnet_cifar", x[pick], y[pick]


def test_effnet_cifar_verilator(sim, effnet):
    """About 2 minutes of C++ build and 10 s of CPU per image (2,359,296 cycles)."""
    if sim != "verilator":
        pytest.skip("the native bench is Verilator's")
    stem, x, y = effnet
    res = run_images(str(stem) + ".json", x, y, warmup=1)
    assert res["images"] == IMAGES
    assert res["mismatches"] == 0, res["first_mismatches"]
    assert res["cycles_ok"] is True
    assert res["cycles_per_image_measured"] == res["cycles_per_image_report"]
