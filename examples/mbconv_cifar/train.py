"""Train the MBConv example on CIFAR-10 on one CPU thread and export ``model.onnx``::

    python -m examples.mbconv_cifar.train            # about 6 minutes alone

Writes ``examples/mbconv_cifar/mbconv_cifar.pt``, ``model.onnx`` and ``metrics.jsonl``
(``--out`` for another folder); see ``examples/README.md`` for the conversion that follows.
"""
from __future__ import annotations

from pathlib import Path

from examples.common import main as train_main
from examples.mbconv_cifar.model import build

#: Epochs of the committed checkpoint.
EPOCHS = 30


def main(argv=None) -> dict:
    """Train, keep the best validation epoch, save and export (:func:`examples.common.main`)."""
    return train_main(argv, build, "mbconv_cifar", EPOCHS, Path(__file__).resolve().parent)


if __name__ == "__main__":
    main()
