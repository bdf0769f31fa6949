"""python_ref.train: the distillation loss, the device-transfer format, a short CPU run with
resume, and the messages for a wrong teacher."""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from python_ref import train as T  # noqa: E402
from python_ref.data import DataError  # noqa: E402


def test_kd_loss_matches_definition():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(16, 10, generator=g)
    t = torch.randn(16, 10, generator=g)
    temp = 4.0
    pt = torch.softmax(t / temp, 1)
    manual = (pt * (torch.log(pt) - torch.log_softmax(s / temp, 1))).sum(1).mean() * temp**2
    assert torch.allclose(T.kd_loss(s, t, temp), manual, atol=1e-5)
    assert T.kd_loss(t, t, temp).abs().item() < 1e-5
    assert T.kd_loss(s, t, temp).item() > 0


def test_packed_format_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (7, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, 7).astype(np.uint8)
    T.pack_for_device(x, y, tmp_path)
    xs, ys = T._load_packed(tmp_path)
    # halves a = 0::2 and b = 1::2, read back in the original order
    assert np.array_equal(xs, x)
    assert np.array_equal(ys, y)


def test_short_digits_run_resumes(tmp_path):
    out = tmp_path / "run"
    T.train("digits", out=out, epochs=2, progress=False)
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["epoch"] for r in lines] == [1, 2]
    ck = torch.load(out / "digits.pt", weights_only=False)
    assert ck["arch"] == "digits" and ck["schedule"]["epochs"] == 2
    # resuming a finished run trains nothing more; with a larger count it continues at epoch 3
    st = torch.load(out / "last.pt", weights_only=False)
    st["cfg"]["epochs"] = 3
    torch.save(st, out / "last.pt")
    T.train("digits", out=out, resume=True, progress=False)
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["epoch"] for r in lines] == [1, 2, 3]


def test_overrides_and_teacher_recorded(tmp_path):
    out = tmp_path / "kd"
    T.train("digits", out=out, epochs=1, progress=False, overrides={"weight_decay": 1e-3},
            teacher=T.ZOO / "digits.pt")
    sch = torch.load(out / "digits.pt", weights_only=False)["schedule"]
    assert sch["weight_decay"] == 1e-3
    assert sch["teacher"] == "digits" and sch["kd_alpha"] == 0.9 and sch["kd_temperature"] == 4.0


def test_resnet8_schedule_names_its_teacher():
    sch = T.SCHEDULES["resnet8"]
    assert sch["teacher"] == "resnet14"
    assert (T.ZOO / "resnet14.pt").is_file()
    ck = torch.load(T.ZOO / "resnet8.pt", weights_only=False)
    # the committed weights were produced by the schedule kept in the repo
    assert {k: ck["schedule"][k] for k in sch} == sch


def test_teacher_for_another_dataset_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="trained on cifar10, not digits"):
        T.train("digits", out=tmp_path / "x", epochs=1, progress=False,
                teacher=T.ZOO / "resnet14.pt")
    with pytest.raises(SystemExit, match="no such file"):
        T.train("digits", out=tmp_path / "y", epochs=1, progress=False,
                teacher=tmp_path / "missing.pt")


def test_cli_rejects_teacher_and_no_teacher():
    with pytest.raises(SystemExit):
        T.main(["--model", "digits", "--teacher", "a.pt", "--no-teacher"])


def test_validation_split_is_balanced_disjoint_and_fixed():
    y = np.repeat(np.arange(10), 50)
    x = np.arange(500)
    xtr, ytr, xva, yva, idx = T.split_validation(x, y, 100)
    assert np.bincount(yva).tolist() == [10] * 10
    assert len(xtr) == 400 and not set(xtr.tolist()) & set(xva.tolist())
    assert sorted(xtr.tolist() + xva.tolist()) == x.tolist()
    assert np.array_equal(idx, T.split_validation(x, y, 100)[4])  # the same for every run
    for bad in (0, 15, 510):
        with pytest.raises(DataError, match=rf"--val {bad}: hold out a positive multiple"):
            T.split_validation(x, y, bad)
