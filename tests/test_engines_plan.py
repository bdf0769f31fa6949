"""The ResNet8 folding plan meets the throughput goal on the engines' own cycle figures."""
from __future__ import annotations

from amos_hw.engines.plan import RESNET8_FOLDING, main, resnet8_engines


def test_every_resnet8_layer_meets_2500_images_per_second_at_100_mhz():
    engines = resnet8_engines(K=4)
    assert set(engines) == set(RESNET8_FOLDING)
    assert max(e.expected_cycles for e in engines.values()) <= 100e6 / 2500
    macs = 0
    for name, spec in RESNET8_FOLDING.items():
        kind, cin, cout, k = spec[0], spec[3], spec[4], spec[5]
        if kind == "conv":
            ho, wo, _ = engines[name].out_shape
            macs += ho * wo * cout * k * k * cin
    assert 12.0e6 < macs < 13.0e6  # ResNet8's ~12.5 M MACs per image


def test_plan_cli_prints_the_bottleneck(capsys):
    assert main(["--K", "4"]) == 0
    assert "36864 cycles/image -> 2713 images/s at 100 MHz (K=4)" in capsys.readouterr().out
