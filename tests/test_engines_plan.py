"""The ResNet8 folding plan meets the throughput goal on the engines' own cycle figures."""
from __future__ import annotations

from amos_hw.engines.figures import out_size
from amos_hw.engines.plan import RESNET8_FOLDING, main, resnet8_figures


def test_every_resnet8_layer_meets_2500_images_per_second_at_100_mhz():
    figures = resnet8_figures(K=4)
    assert set(figures) == set(RESNET8_FOLDING)
    assert max(f.cycles for f in figures.values()) <= 100e6 / 2500
    macs = 0
    for spec in RESNET8_FOLDING.values():
        kind, H, W, cin, cout, k, s, p = spec[:8]
        if kind == "conv":
            ho, wo = out_size(H, k, s, p), out_size(W, k, s, p)
            macs += ho * wo * cout * k * k * cin
    assert 12.0e6 < macs < 13.0e6  # ResNet8's ~12.5 M MACs per image


def test_plan_cli_prints_the_bottleneck(capsys):
    assert main(["--K", "4"]) == 0
    assert "36864 cycles/image -> 2713 images/s at 100 MHz (K=4)" in capsys.readouterr().out
