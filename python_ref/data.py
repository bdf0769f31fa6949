"""Data sets: CIFAR-10 (standard ``cifar-10-batches-py/`` or the ``train.npz``/``test.npz`` arrays)
and scikit-learn's bundled 8x8 digits.

Every loader returns ``(x, y)`` with ``x`` uint8 of shape ``(N, H, W, C)`` (HWC, RGB for CIFAR) and
``y`` int64 class indices. Pixels stay integers: the networks see ``x / 255`` and the hardware sees
the raw 8-bit values, so the first layer of the integer network consumes exactly these bytes.
Nothing is downloaded at run time.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np

__all__ = [
    "CIFAR10_CLASSES",
    "DataError",
    "default_cifar10_path",
    "load_cifar10",
    "load_digits",
    "load_dataset",
]

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)

_REPO_ROOT = Path(__file__).resolve().parent.parent


class DataError(ValueError):
    """A data set could not be found or read; the message names the path and what is wrong."""


def default_cifar10_path() -> list[Path]:
    """Candidate CIFAR-10 locations, in order: ``$AMOS_DATA``, then ``../shared/datasets/cifar10``
    beside the repository (where the shared copy lives on the development machines)."""
    cands = []
    if os.environ.get("AMOS_DATA"):
        cands.append(Path(os.environ["AMOS_DATA"]))
    cands.append(_REPO_ROOT.parent / "shared" / "datasets" / "cifar10")
    return cands


def _load_npz_split(path: Path, split: str):
    f = path / f"{split}.npz"
    try:
        with np.load(f) as d:
            missing = [k for k in ("x", "y") if k not in d.files]
            if missing:
                raise DataError(f"{f}: missing array(s) {missing}; expected 'x' and 'y'")
            x, y = d["x"], d["y"]
    except (OSError, ValueError) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"{f}: cannot be read as an .npz file ({e})") from e
    return x, y


def _load_batches_py(path: Path, split: str):
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    xs, ys = [], []
    for n in names:
        f = path / n
        if not f.is_file():
            raise DataError(f"{path}: CIFAR-10 batch file '{n}' is missing")
        try:
            with open(f, "rb") as fh:
                d = pickle.load(fh, encoding="bytes")
            data = np.asarray(d[b"data"], dtype=np.uint8)
            labels = np.asarray(d[b"labels"], dtype=np.int64)
        except (OSError, pickle.UnpicklingError, KeyError, EOFError) as e:
            raise DataError(f"{f}: not a CIFAR-10 python batch ({e!r})") from e
        xs.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        ys.append(labels)
    return np.concatenate(xs), np.concatenate(ys)


def _resolve(path: Path) -> tuple[str, Path] | None:
    if (path / "train.npz").is_file() or (path / "test.npz").is_file():
        return "npz", path
    if (path / "test_batch").is_file() or (path / "data_batch_1").is_file():
        return "batches", path
    if (path / "cifar-10-batches-py").is_dir():
        return _resolve(path / "cifar-10-batches-py")
    return None


def load_cifar10(path: str | os.PathLike | None = None, split: str = "test"):
    """Load one split (``"train"`` or ``"test"``) of CIFAR-10.

    ``path`` may be a folder holding ``train.npz``/``test.npz``, the ``cifar-10-batches-py/``
    folder itself, or a folder containing it. Without ``path``, ``$AMOS_DATA`` and then the shared
    copy beside the repository are tried.
    """
    if split not in ("train", "test"):
        raise DataError(f"split must be 'train' or 'test', not {split!r}")
    cands = [Path(path)] if path is not None else default_cifar10_path()
    for c in cands:
        found = _resolve(c) if c.is_dir() else None
        if found is None:
            continue
        kind, p = found
        x, y = _load_npz_split(p, split) if kind == "npz" else _load_batches_py(p, split)
        x = np.ascontiguousarray(x)
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (32, 32, 3):
            raise DataError(f"{p}: {split} images must be uint8 (N, 32, 32, 3), "
                            f"got {x.dtype} {x.shape}")
        y = np.asarray(y).astype(np.int64).reshape(-1)
        if len(y) != len(x):
            raise DataError(f"{p}: {split} has {len(x)} images but {len(y)} labels")
        if len(y) and (y.min() < 0 or y.max() > 9):
            raise DataError(f"{p}: {split} labels must lie in 0..9")
        return x, y
    tried = ", ".join(str(c) for c in cands)
    raise DataError(
        f"CIFAR-10 not found (tried: {tried}). Pass --data PATH or set AMOS_DATA to a folder "
        "holding train.npz/test.npz or cifar-10-batches-py/ (nothing is downloaded)."
    )


def load_digits(split: str = "test", test_fraction: float = 0.2, seed: int = 0):
    """scikit-learn's 8x8 digits as uint8 images ``(N, 8, 8, 1)`` in 0..255 (``16*v`` clipped),
    with a fixed, seeded, stratified split (``test_fraction`` of each class goes to ``"test"``)."""
    if split not in ("train", "test"):
        raise DataError(f"split must be 'train' or 'test', not {split!r}")
    # scikit-learn takes over a second to import and only the digits set needs it
    from sklearn.datasets import load_digits as _sk

    d = _sk()
    x = np.minimum(d.images * 16, 255).astype(np.uint8)[..., None]
    y = d.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    test_mask = np.zeros(len(y), bool)
    for c in range(10):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        test_mask[idx[: int(round(len(idx) * test_fraction))]] = True
    m = test_mask if split == "test" else ~test_mask
    return np.ascontiguousarray(x[m]), y[m]


def load_dataset(name: str, split: str, path=None):
    """Load ``"cifar10"`` or ``"digits"`` by name."""
    if name == "cifar10":
        return load_cifar10(path, split)
    if name == "digits":
        return load_digits(split)
    raise DataError(f"unknown data set {name!r}; known: cifar10, digits")
