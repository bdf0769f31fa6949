"""The float (torch) networks that amos_hw converts.

* CIFAR ResNets of He et al. (2016), depth 6n+2 (ResNet8, 14, 20): a 3x3 stem of 16 channels,
  three stages of n basic blocks with 16/32/64 channels (the first block of stages 2 and 3 strides
  by 2 and uses a 1x1 convolution + batch norm on the shortcut), global average pooling and a
  dense layer.
  A ReLU follows the stem, the first convolution of every block and every residual add, so ResNet8
  has 73,728 ReLU gates and, at K = 10 neurons per AMOS unit, 737,280 neurons (the paper's Table 2).
* ``digits``: a small MLP for the 8x8 digits (64-32-10), small enough to unroll on an iCE40.

Inputs are raw pixels scaled by 1/255 (no mean subtraction), so the zero padding of the first
convolution is the pixel value 0 and the integer network can consume the 8-bit pixels as they are.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["BasicBlock", "ResNetCifar", "DigitsMLP", "MODELS", "build_model", "count_relu_gates"]


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, 0, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x, act=torch.relu):
        out = act(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        skip = x if self.shortcut is None else self.shortcut(x)
        return act(out + skip)


class ResNetCifar(nn.Module):
    """He et al.'s CIFAR ResNet of depth ``6n+2``."""

    def __init__(self, n: int, num_classes: int = 10, widths=(16, 32, 64)):
        super().__init__()
        if n < 1:
            raise ValueError(f"n must be a positive integer, not {n}")
        self.n = n
        self.depth = 6 * n + 2
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        blocks = []
        cin = widths[0]
        for s, w in enumerate(widths):
            for b in range(n):
                stride = 2 if (s > 0 and b == 0) else 1
                blocks.append(BasicBlock(cin, w, stride))
                cin = w
        self.blocks = nn.ModuleList(blocks)
        self.fc = nn.Linear(widths[-1], num_classes)

    def forward(self, x, act=torch.relu):
        x = act(self.bn1(self.conv1(x)))
        for blk in self.blocks:
            x = blk(x, act)
        x = x.mean(dim=(2, 3))
        return self.fc(x)


class DigitsMLP(nn.Module):
    """64-32-10 MLP for the 8x8 digits; one hidden ReLU layer of 32 gates."""

    def __init__(self, hidden: int = 32, num_classes: int = 10):
        super().__init__()
        self.fc1 = nn.Linear(64, hidden)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x, act=torch.relu):
        x = x.flatten(1)
        return self.fc2(act(self.fc1(x)))


MODELS = {
    "resnet8": dict(factory=lambda: ResNetCifar(1), dataset="cifar10", input_shape=(3, 32, 32)),
    "resnet14": dict(factory=lambda: ResNetCifar(2), dataset="cifar10", input_shape=(3, 32, 32)),
    "resnet20": dict(factory=lambda: ResNetCifar(3), dataset="cifar10", input_shape=(3, 32, 32)),
    "digits": dict(factory=lambda: DigitsMLP(), dataset="digits", input_shape=(1, 8, 8)),
}


def build_model(name: str) -> nn.Module:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    return MODELS[name]["factory"]()


def count_relu_gates(name: str) -> int:
    """Number of ReLU gates (activations) in one forward pass, counted by running the model."""
    model = build_model(name).eval()
    count = 0

    def act(t):
        nonlocal count
        count += t[0].numel()
        return torch.relu(t)

    with torch.no_grad():
        model(torch.zeros((1, *MODELS[name]["input_shape"])), act=act)
    return count
