"""A MobileNet-style CIFAR-10 network with depthwise-separable blocks and ReLU6 (``model.py``)
and its training script."""
