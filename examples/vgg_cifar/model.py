"""The VGG-style network: six 3x3 convolutions with batch norm and ReLU, three 2x2 max-pools,
a flatten and one linear classifier. Defined here, not in ``python_ref/models.py``: the project
knows nothing of it and takes it in through its ONNX export."""
from __future__ import annotations

from torch import nn

#: Output channels of the convolutions, ``"M"`` a 2x2 max-pool (stride 2).
CONFIG = (16, 16, "M", 32, 32, "M", 64, 64, "M")


class VGGCifar(nn.Module):
    """VGG-style CIFAR-10 classifier.

    Parameters
    ----------
    config : tuple
        Output channels of each 3x3 convolution (padding 1, then batch norm and ReLU) and
        ``"M"`` for a 2x2 max-pool.
    num_classes : int
        Width of the linear classifier.

    Notes
    -----
    The input is ``x / 255`` of the uint8 pixels, channels first (the project's convention,
    which the converter's default ``--input-scale`` matches); a 32 x 32 image leaves the last
    pool as ``C x 4 x 4``, flattened into the classifier.
    """

    def __init__(self, config=CONFIG, num_classes: int = 10):
        super().__init__()
        layers, cin, side = [], 3, 32
        for v in config:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
                side //= 2
            else:
                layers += [nn.Conv2d(cin, v, 3, padding=1, bias=False), nn.BatchNorm2d(v),
                           nn.ReLU(inplace=True)]
                cin = v
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(cin * side * side, num_classes)

    def forward(self, x):
        """Logits of a batch ``N x 3 x 32 x 32``."""
        return self.classifier(self.features(x).flatten(1))


def build() -> nn.Module:
    """The example's network, untrained."""
    return VGGCifar()
