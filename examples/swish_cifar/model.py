"""The swish example: an all-convolutional network with SiLU (swish) activations and a sigmoid
between its two linear layers, the trained AMOS units of the paper (issue 16). Defined here, not
in ``python_ref/models.py``: the project takes it in through its ONNX export."""
from __future__ import annotations

from torch import nn

#: (output channels, stride) of the 3x3 convolutions, each with batch norm and SiLU.
CONFIG = ((16, 1), (32, 2), (32, 1), (64, 2), (64, 1))


class SwishCifar(nn.Module):
    """CIFAR-10 classifier: 3x3 convolutions (padding 1, batch norm, SiLU), global average
    pooling, a linear layer with a sigmoid, the linear classifier.

    Parameters
    ----------
    config : tuple of (int, int)
        Output channels and stride of each convolution.
    hidden : int
        Width of the sigmoid layer.
    num_classes : int
        Width of the classifier.

    Notes
    -----
    The input is ``x / 255`` of the uint8 pixels, channels first (the converter's default
    ``--input-scale``). No max-pool: the trained units' signed outputs feed convolutions and the
    global pool, not window ops (``docs/architecture.md``).
    """

    def __init__(self, config=CONFIG, hidden: int = 64, num_classes: int = 10):
        super().__init__()
        layers, cin = [], 3
        for cout, stride in config:
            layers += [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
                       nn.BatchNorm2d(cout), nn.SiLU()]
            cin = cout
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(cin, hidden), nn.Sigmoid(),
                                  nn.Linear(hidden, num_classes))

    def forward(self, x):
        """Logits of a batch ``N x 3 x 32 x 32``."""
        return self.head(self.features(x))


def build() -> nn.Module:
    """The example's network, untrained."""
    return SwishCifar()
