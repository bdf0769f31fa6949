"""The MobileNet-style network: a 3x3 stem, depthwise-separable blocks (depthwise 3x3 + batch
norm + ReLU6, pointwise 1x1 + batch norm + ReLU6), two of them with stride 2, a global average
pool and one linear classifier. Defined here, not in ``python_ref/models.py``: the project knows
nothing of it and takes it in through its ONNX export."""
from __future__ import annotations

from torch import nn

#: The stem's output channels.
STEM = 16
#: The depthwise-separable blocks: (output channels, stride of the depthwise convolution).
BLOCKS = ((32, 1), (64, 2), (64, 1), (128, 2), (128, 1))


def conv_bn(cin: int, cout: int, k: int, stride: int, groups: int = 1) -> list[nn.Module]:
    """A ``k`` x ``k`` convolution (zero padding ``k // 2``, no bias), batch norm, ReLU6."""
    return [nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout), nn.ReLU6(inplace=True)]


class MobileNetCifar(nn.Module):
    """MobileNet-style CIFAR-10 classifier.

    Parameters
    ----------
    stem : int
        Output channels of the 3x3 stem convolution (stride 1).
    blocks : tuple of (int, int)
        Each depthwise-separable block's output channels and depthwise stride.
    num_classes : int
        Width of the linear classifier.

    Notes
    -----
    The input is ``x / 255`` of the uint8 pixels, channels first (the project's convention).
    """

    def __init__(self, stem: int = STEM, blocks=BLOCKS, num_classes: int = 10):
        super().__init__()
        layers = conv_bn(3, stem, 3, 1)
        cin = stem
        for cout, stride in blocks:
            layers += conv_bn(cin, cin, 3, stride, groups=cin)  # depthwise
            layers += conv_bn(cin, cout, 1, 1)  # pointwise
            cin = cout
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(cin, num_classes)

    def forward(self, x):
        """Logits of a batch ``N x 3 x 32 x 32``."""
        return self.classifier(self.pool(self.features(x)).flatten(1))


def build() -> nn.Module:
    """The example's network, untrained."""
    return MobileNetCifar()
