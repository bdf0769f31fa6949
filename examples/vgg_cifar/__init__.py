"""A VGG-style CIFAR-10 network with max-pooling (``model.py``) and its training script."""
