"""The float (torch) networks that amos_hw converts.

* CIFAR ResNets of He et al. (2016), depth 6n+2 (ResNet8, 14, 20): a 3x3 stem of 16 channels,
  three stages of n basic blocks with 16/32/64 channels (the first block of stages 2 and 3 strides
  by 2 and uses a 1x1 convolution + batch norm on the shortcut), global average pooling and a
  dense layer.
  A ReLU follows the stem, the first convolution of every block and every residual add, so ResNet8
  has 73,728 ReLU gates and, at K = 10 neurons per AMOS unit, 737,280 neurons (the paper's Table 2).
* ``digits``: a small MLP for the 8x8 digits (64-32-10), small enough to unroll on an iCE40.
* ``effnet_cifar``: an EfficientNet-B0-style network for CIFAR-10 (:class:`EffNetCifar`): MBConv
  blocks with squeeze-and-excitation, SiLU (swish) units, linear projections and identity skips,
  123,700 parameters, sized for the ECP5-85F's block RAM (issue 16); ``effnet_cifar_l`` the
  same with a wider last stage and head (228,908 parameters, :data:`EFFNET_L_STAGES`).

Inputs are raw pixels scaled by 1/255 (no mean subtraction), so the zero padding of the first
convolution is the pixel value 0 and the integer network can consume the 8-bit pixels as they are.
"""
from __future__ import annotations

import inspect

import torch
from torch import nn

__all__ = ["BasicBlock", "ResNetCifar", "DigitsMLP", "ConvBN", "SqueezeExcite", "MBConv",
           "EffNetCifar", "EFFNET_STAGES", "EFFNET_L_STAGES", "SE_MAX_MAP", "MODELS", "build_model",
           "count_relu_gates"]


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


#: Largest map side a squeeze-and-excitation (or the final pooling) may average: the engines take
#: at most 16-bit inputs, and a sum of 10-bit unit outputs over 8 x 8 positions needs 16 bits.
SE_MAX_MAP = 8

#: ``effnet_cifar_l``'s stages after the stem, as in EfficientNet-B0's table: ``(expansion,
#: output channels, blocks, stride of the first block)``. B0's first four stages with expansion
#: 4 instead of 6 (a CPU epoch costs 1.6 times less) and without their third stride (the maps
#: stay 8 x 8, the largest the pooling may average; see :data:`SE_MAX_MAP`).
EFFNET_L_STAGES = ((1, 16, 1, 1), (4, 24, 2, 2), (4, 40, 2, 2), (4, 80, 3, 1))

#: ``effnet_cifar``'s stages (:class:`EffNetCifar`'s default): :data:`EFFNET_L_STAGES` with a
#: last stage of two blocks of 64 channels instead of three of 80. With the 256-channel head it
#: halves the weights (123,700 parameters against 228,908): the larger network's estimate needs
#: 343 of the ECP5-85F's 208 DP16KD, about 100 of them for its 8-bit weights alone.
EFFNET_STAGES = ((1, 16, 1, 1), (4, 24, 2, 2), (4, 40, 2, 2), (4, 64, 2, 1))


class ConvBN(nn.Module):
    """Convolution (no bias), batch norm, then SiLU when ``act`` (a linear projection: none)."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1,
                 act: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = nn.SiLU() if act else nn.Identity()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class SqueezeExcite(nn.Module):
    """``x * sigmoid(expand(silu(reduce(mean(x)))))``: ``reduce`` and ``expand`` are 1x1
    convolutions with bias on the pooled ``C x 1 x 1`` vector (``channels -> squeezed ->
    channels``); the gate multiplies each channel of the map."""

    def __init__(self, channels: int, squeezed: int):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, squeezed, 1)
        self.act = nn.SiLU()
        self.expand = nn.Conv2d(squeezed, channels, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x):
        return x * self.gate(self.expand(self.act(self.reduce(self.pool(x)))))


class MBConv(nn.Module):
    """EfficientNet's mobile inverted bottleneck (Tan & Le 2019).

    1x1 expansion to ``cin * expansion`` channels with SiLU (none when ``expansion == 1``),
    depthwise 3x3 (``stride``) with SiLU, squeeze-and-excitation on ``max(1, cin // 4)``
    channels when ``se``, then the **linear** 1x1 projection (batch norm, no activation). With
    ``stride == 1`` and ``cin == cout`` the block adds its input: ``out = x + project(...)``,
    no activation after the add.
    """

    def __init__(self, cin: int, cout: int, expansion: int, stride: int, se: bool):
        super().__init__()
        mid = cin * expansion
        self.expand = ConvBN(cin, mid, 1) if expansion != 1 else None
        self.dw = ConvBN(mid, mid, 3, stride, groups=mid)
        self.se = SqueezeExcite(mid, max(1, cin // 4)) if se else None
        self.project = ConvBN(mid, cout, 1, act=False)
        self.skip = stride == 1 and cin == cout

    def forward(self, x):
        out = x if self.expand is None else self.expand(x)
        out = self.dw(out)
        if self.se is not None:
            out = self.se(out)
        out = self.project(out)
        return x + out if self.skip else out


class EffNetCifar(nn.Module):
    """An EfficientNet-B0-style CIFAR-10 classifier, sized to train on a 2-core CPU.

    Stem: 3x3 convolution, stride 1, 3 -> 16 channels, batch norm, SiLU. Then the MBConv blocks
    of ``stages`` (:data:`EFFNET_STAGES`; :class:`MBConv`); head: 1x1 convolution to
    ``head_channels``, batch norm, SiLU; global average pooling; a dense layer to the logits.
    The input is ``pixel / 255``, channels first. With the defaults (123,700 parameters; the
    ``effnet_cifar_l`` of :data:`MODELS` has blocks 5 to 7 of 80 channels and a 320-channel
    head, 228,908 parameters):

    ======  =====================  =========  ============  ==================
    block   in -> out (expansion)  stride     output map    squeeze-excitation
    ======  =====================  =========  ============  ==================
    stem    3 -> 16                1          32 x 32       -
    0       16 -> 16 (1), skip     1          32 x 32       no
    1       16 -> 24 (4)           2          16 x 16       no
    2       24 -> 24 (4), skip     1          16 x 16       no
    3       24 -> 40 (4)           2          8 x 8         yes (96 -> 6)
    4       40 -> 40 (4), skip     1          8 x 8         yes (160 -> 10)
    5       40 -> 64 (4)           1          8 x 8         yes (160 -> 10)
    6       64 -> 64 (4), skip     1          8 x 8         yes (256 -> 16)
    head    64 -> 256              1          8 x 8         -
    ======  =====================  =========  ============  ==================

    Hardware constraints the design keeps:

    * Every average pooling (each squeeze-and-excitation's and the final one) averages a map of
      at most ``SE_MAX_MAP`` x ``SE_MAX_MAP`` (8 x 8): the engines take at most 16-bit inputs,
      and a sum of 10-bit unit outputs over 8 x 8 positions needs 16 bits. A block has
      squeeze-and-excitation **only when its depthwise output map is at most 8 x 8** (blocks 3
      to 7); the 32 x 32 and 16 x 16 blocks have none (EfficientNet-B0 has it in every block).
      The stem keeps stride 1: a stride-2 stem saves only 28 % of a CPU epoch (most of the time
      is spent on the 8 x 8 blocks) and loses the 32 x 32 detail that CIFAR-10 accuracy needs.
    * No dropout or stochastic depth: the exported eval-mode graph is exactly the trained one.
    * Exports to ONNX (``torch.onnx.export``, opset 18) as Conv (batch norm folded by the
      exporter; a BatchNormalization node is folded by the importer), Sigmoid and Mul (SiLU and
      the gates), ReduceMean (the poolings), Add (the skips), Reshape and Gemm. ``forward``
      has no ``act`` argument: there are no ReLU gates (:func:`count_relu_gates` refuses).
    """

    def __init__(self, stages=EFFNET_STAGES, stem_channels: int = 16, head_channels: int = 256,
                 num_classes: int = 10):
        super().__init__()
        self.stem = ConvBN(3, stem_channels, 3)
        blocks, cin, side = [], stem_channels, 32
        for expansion, cout, repeats, stride in stages:
            for i in range(repeats):
                s = stride if i == 0 else 1
                side = -(-side // s)
                blocks.append(MBConv(cin, cout, expansion, s, se=side <= SE_MAX_MAP))
                cin = cout
        if side > SE_MAX_MAP:
            raise ValueError(f"EffNetCifar: the final pooling would average a {side} x {side} "
                             f"map, more than {SE_MAX_MAP} x {SE_MAX_MAP}; add a stride")
        self.blocks = nn.ModuleList(blocks)
        self.head = ConvBN(cin, head_channels, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(head_channels, num_classes)

    def forward(self, x):
        """Logits of a batch ``N x 3 x 32 x 32``."""
        x = self.stem(x)
        for blk in self.blocks:
            x = blk(x)
        return self.fc(self.pool(self.head(x)).flatten(1))


MODELS = {
    "resnet8": dict(factory=lambda: ResNetCifar(1), dataset="cifar10", input_shape=(3, 32, 32)),
    "resnet14": dict(factory=lambda: ResNetCifar(2), dataset="cifar10", input_shape=(3, 32, 32)),
    "resnet20": dict(factory=lambda: ResNetCifar(3), dataset="cifar10", input_shape=(3, 32, 32)),
    "digits": dict(factory=lambda: DigitsMLP(), dataset="digits", input_shape=(1, 8, 8)),
    "effnet_cifar": dict(factory=lambda: EffNetCifar(), dataset="cifar10",
                         input_shape=(3, 32, 32)),
    "effnet_cifar_l": dict(factory=lambda: EffNetCifar(EFFNET_L_STAGES, head_channels=320),
                           dataset="cifar10", input_shape=(3, 32, 32)),
}


def build_model(name: str) -> nn.Module:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    return MODELS[name]["factory"]()


def count_relu_gates(name: str) -> int:
    """Number of ReLU gates (activations) in one forward pass, counted by running the model.

    Raises
    ------
    ValueError
        For a model without ReLU gates (one whose ``forward`` takes no ``act``, e.g.
        ``effnet_cifar``, whose units are SiLU, sigmoid and signed identities).
    """
    model = build_model(name).eval()
    if "act" not in inspect.signature(model.forward).parameters:
        raise ValueError(f"model {name!r} has no ReLU gates to count (its forward takes no "
                         "'act'; its activations are not ReLUs)")
    count = 0

    def act(t):
        nonlocal count
        count += t[0].numel()
        return torch.relu(t)

    with torch.no_grad():
        model(torch.zeros((1, *MODELS[name]["input_shape"])), act=act)
    return count
