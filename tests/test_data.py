"""CIFAR-10 and digits loaders (python_ref.data)."""
import pickle

import numpy as np
import pytest

from python_ref.data import DataError, load_cifar10, load_dataset, load_digits


def _write_batches(root, n_per_batch=4, seed=0):
    """A synthetic cifar-10-batches-py folder: 5 training batches and a test batch."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    made = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n_per_batch)]
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": labels, b"batch_label": b"x"}, f)
        made[name] = (data, labels)
    return folder, made


def test_batches_folder_layout_and_values(tmp_path):
    folder, made = _write_batches(tmp_path)
    x, y = load_cifar10(tmp_path, "test")  # the folder that contains cifar-10-batches-py/
    data, labels = made["test_batch"]
    assert x.shape == (4, 32, 32, 3) and x.dtype == np.uint8 and y.dtype == np.int64
    # CIFAR rows are 1024 red, 1024 green, 1024 blue values, each row-major 32x32
    assert x[2, 5, 7, 0] == data[2, 5 * 32 + 7]
    assert x[2, 5, 7, 1] == data[2, 1024 + 5 * 32 + 7]
    assert x[3, 31, 0, 2] == data[3, 2048 + 31 * 32]
    assert list(y) == labels
    xt, yt = load_cifar10(folder, "train")  # the cifar-10-batches-py folder itself
    assert xt.shape == (20, 32, 32, 3)
    assert list(yt[4:8]) == made["data_batch_2"][1]


def test_npz_folder(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    y = np.arange(6) % 10
    np.savez(tmp_path / "test.npz", x=x, y=y)
    xl, yl = load_cifar10(tmp_path, "test")
    assert np.array_equal(xl, x) and np.array_equal(yl, y)


def test_amos_data_environment_variable(tmp_path, monkeypatch):
    _write_batches(tmp_path)
    monkeypatch.setenv("AMOS_DATA", str(tmp_path))
    x, _ = load_cifar10(None, "test")
    assert x.shape == (4, 32, 32, 3)


def test_missing_data_names_the_path(tmp_path):
    with pytest.raises(DataError, match=str(tmp_path / "nothing")) as e:
        load_cifar10(tmp_path / "nothing", "test")
    assert "--data" in str(e.value) and "AMOS_DATA" in str(e.value)


def test_missing_batch_file(tmp_path):
    folder, _ = _write_batches(tmp_path)
    (folder / "data_batch_3").unlink()
    with pytest.raises(DataError, match="batch file 'data_batch_3' is missing"):
        load_cifar10(folder, "train")


def test_corrupt_batch_file(tmp_path):
    folder, _ = _write_batches(tmp_path)
    (folder / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="test_batch: not a CIFAR-10 python batch"):
        load_cifar10(folder, "test")


def test_npz_errors(tmp_path):
    np.savez(tmp_path / "test.npz", images=np.zeros((1, 32, 32, 3), np.uint8))
    with pytest.raises(DataError, match=r"test.npz: missing array\(s\) \['x', 'y'\]"):
        load_cifar10(tmp_path, "test")
    np.savez(tmp_path / "test.npz", x=np.zeros((2, 32, 32), np.uint8), y=np.zeros(2))
    with pytest.raises(DataError, match=r"must be uint8 \(N, 32, 32, 3\)"):
        load_cifar10(tmp_path, "test")
    np.savez(tmp_path / "test.npz", x=np.zeros((2, 32, 32, 3), np.uint8), y=np.zeros(3))
    with pytest.raises(DataError, match="has 2 images but 3 labels"):
        load_cifar10(tmp_path, "test")
    np.savez(tmp_path / "test.npz", x=np.zeros((2, 32, 32, 3), np.uint8), y=[0, 10])
    with pytest.raises(DataError, match=r"labels must lie in 0..9"):
        load_cifar10(tmp_path, "test")
    (tmp_path / "test.npz").write_bytes(b"garbage")
    with pytest.raises(DataError, match="cannot be read as an .npz file"):
        load_cifar10(tmp_path, "test")


def test_split_name_checked(tmp_path):
    with pytest.raises(DataError, match="split must be 'train' or 'test', not 'val'"):
        load_cifar10(tmp_path, "val")
    with pytest.raises(DataError, match="split must be 'train' or 'test', not 'val'"):
        load_digits("val")
    with pytest.raises(DataError, match="unknown data set 'mnist'"):
        load_dataset("mnist", "test")


def test_digits_split():
    xte, yte = load_digits("test")
    xtr, ytr = load_digits("train")
    assert xte.shape[1:] == (8, 8, 1) and xte.dtype == np.uint8
    assert len(xte) + len(xtr) == 1797
    assert xtr.max() <= 255 and xte.max() > 200  # 16 * 16 = 256 is clipped to 255
    # stratified: about 20 % of every class is in the test split
    for c in range(10):
        frac = (yte == c).sum() / ((yte == c).sum() + (ytr == c).sum())
        assert 0.18 < frac < 0.22
    # deterministic and disjoint
    x2, y2 = load_digits("test")
    assert np.array_equal(x2, xte) and np.array_equal(y2, yte)
    from sklearn.datasets import load_digits as sk

    # the two splits partition the data set (as a multiset of image+label rows)
    d = sk()
    raw = np.minimum(d.images * 16, 255).astype(np.uint8)[..., None]
    rows = lambda x, y: sorted(r.tobytes() + bytes([int(t)]) for r, t in zip(x, y, strict=True))  # noqa: E731
    assert rows(np.concatenate([xtr, xte]), np.concatenate([ytr, yte])) == rows(raw, d.target)
