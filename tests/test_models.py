"""The float networks (python_ref.models)."""
import pytest
import torch

from python_ref.models import DigitsMLP, ResNetCifar, build_model, count_relu_gates


@pytest.mark.parametrize("name,gates", [("resnet8", 73_728), ("resnet14", 131_072),
                                        ("resnet20", 188_416), ("digits", 32)])
def test_relu_gates(name, gates):
    # ResNet8: stem 16*32*32 + block 2*16*32*32 + 2*32*16*16 + 2*64*8*8
    assert count_relu_gates(name) == gates


def test_forward_shapes():
    torch.manual_seed(0)
    assert ResNetCifar(1)(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    assert DigitsMLP()(torch.zeros(3, 1, 8, 8)).shape == (3, 10)
    assert ResNetCifar(2).depth == 14


def test_errors():
    with pytest.raises(ValueError, match="n must be a positive integer, not 0"):
        ResNetCifar(0)
    with pytest.raises(ValueError, match="unknown model 'vgg'"):
        build_model("vgg")
