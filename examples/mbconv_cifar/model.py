"""The MBConv example: EfficientNet-style blocks (1x1 expansion, depthwise 3x3,
squeeze-and-excitation, 1x1 projection) with SiLU (swish) and sigmoid, so that every trained
AMOS unit of the paper, the two-input multiplication of the squeeze-and-excitation gate
included, goes to the hardware (issue 16). Defined here, not in ``python_ref/models.py``: the
project takes it in through its ONNX export.

Two departures from EfficientNet, both because of what the hardware built when this example
was trained and measured: the projection is followed by batch norm and SiLU (EfficientNet's is
linear, which needed the signed identity unit), and the blocks have no identity skip (an add
of signed words had no engine). Both are built now (``docs/architecture.md``); the zoo's
``effnet_cifar`` (``python_ref/models.py``) has the true blocks. The example stays as measured
(``docs/results/example_mbconv_cifar.json``)."""
from __future__ import annotations

from torch import nn

#: (output channels, expansion, stride) of the MBConv blocks after the 3x3 stride-2 stem (16
#: channels, 16 x 16): every squeeze-and-excitation pools an 8 x 8 map, whose sums of 10-bit
#: unit outputs fit the engines' 16-bit inputs.
CONFIG = ((24, 4, 2), (48, 4, 1))


class SqueezeExcite(nn.Module):
    """``x * sigmoid(W2 swish(W1 mean(x)))`` with 1x1 convolutions on the pooled vector."""

    def __init__(self, channels: int, squeezed: int):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, squeezed, 1)
        self.act = nn.SiLU()
        self.expand = nn.Conv2d(squeezed, channels, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x):
        return x * self.gate(self.expand(self.act(self.reduce(self.pool(x)))))


def _conv_bn_silu(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> list:
    return [nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout), nn.SiLU()]


class MBConv(nn.Sequential):
    """1x1 expansion, depthwise 3x3 (``stride``), squeeze-and-excitation (a quarter of the
    block's input channels), 1x1 projection; each convolution with batch norm and SiLU."""

    def __init__(self, cin: int, cout: int, expansion: int, stride: int):
        mid = cin * expansion
        super().__init__(*_conv_bn_silu(cin, mid, 1),
                         *_conv_bn_silu(mid, mid, 3, stride, groups=mid),
                         SqueezeExcite(mid, max(1, cin // 4)),
                         *_conv_bn_silu(mid, cout, 1))


class MBConvCifar(nn.Module):
    """CIFAR-10 classifier: a 3x3 stride-2 stem (16 channels, batch norm, SiLU), MBConv blocks,
    global average pooling, a linear classifier. The input is ``x / 255``, channels first."""

    def __init__(self, config=CONFIG, num_classes: int = 10):
        super().__init__()
        layers, cin = _conv_bn_silu(3, 16, 3, stride=2), 16
        for cout, expansion, stride in config:
            layers.append(MBConv(cin, cout, expansion, stride))
            cin = cout
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(cin, num_classes)

    def forward(self, x):
        """Logits of a batch ``N x 3 x 32 x 32``."""
        return self.classifier(self.features(x))


def build() -> nn.Module:
    """The example's network, untrained."""
    return MBConvCifar()
