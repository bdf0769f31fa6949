"""Train a float network: ``python -m python_ref.train --model resnet8 --data PATH``.

Seeded; SGD with Nesterov momentum, linear warm-up then cosine decay; standard CIFAR augmentation
(4-pixel zero-padded random crop and horizontal flip) done on tensors, on the GPU when there is one.
Every epoch writes ``<out>/last.pt`` (model, optimiser, RNG, epoch) and appends a line to
``<out>/metrics.jsonl``; ``--resume`` continues from ``last.pt`` so a long CPU run can span
sessions.
The schedules that produced the committed checkpoints are ``SCHEDULES`` below.

``--teacher CKPT`` adds knowledge distillation (Hinton et al. 2015): the loss becomes
``(1 - a) * CE(student, y) + a * T^2 * KL(softmax(teacher/T) || softmax(student/T))`` with the
teacher (a committed checkpoint of another architecture, for instance the ResNet14) run on the same
augmented batch. ``--weight-decay``, ``--label-smoothing``, ``--kd-alpha`` and ``--kd-temperature``
override the schedule; the schedule actually used is stored in the checkpoint.
"""
from __future__ import annotations

import argparse
import json
import lzma
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .checkpoint import ZOO
from .data import DataError, load_dataset
from .models import MODELS, build_model

# The schedules behind the committed checkpoints (python_ref/zoo/<model>.pt).
SCHEDULES = {
    # distilled from the committed ResNet14 (python_ref/zoo/resnet14.pt); 157 epochs is the count
    # the 440 s time budget fixed on the lent H200 (docs/training.md)
    "resnet8": dict(epochs=157, batch_size=256, lr=0.2, momentum=0.9, weight_decay=5e-4,
                    warmup_epochs=5, label_smoothing=0.0, augment=True,
                    teacher="resnet14", kd_alpha=0.9, kd_temperature=4.0),
    "resnet14": dict(epochs=300, batch_size=256, lr=0.2, momentum=0.9, weight_decay=5e-4,
                     warmup_epochs=5, label_smoothing=0.0, augment=True),
    "resnet20": dict(epochs=300, batch_size=256, lr=0.2, momentum=0.9, weight_decay=5e-4,
                     warmup_epochs=5, label_smoothing=0.0, augment=True),
    "digits": dict(epochs=200, batch_size=64, lr=0.05, momentum=0.9, weight_decay=1e-4,
                   warmup_epochs=2, label_smoothing=0.0, augment=False),
    # docs/training.md, "effnet_cifar": the ResNets' SGD schedule distilled from the ResNet20
    # (as the ResNet8 from the ResNet14), 80 epochs (about 2 h on 2 CPU threads; --resume)
    "effnet_cifar": dict(epochs=80, batch_size=256, lr=0.2, momentum=0.9, weight_decay=5e-4,
                         warmup_epochs=5, label_smoothing=0.0, augment=True,
                         teacher="resnet20", kd_alpha=0.9, kd_temperature=4.0),
    # the larger variant, no teacher, EfficientNet's label smoothing (run to epoch 36 of 80)
    "effnet_cifar_l": dict(epochs=200, batch_size=256, lr=0.2, momentum=0.9, weight_decay=5e-4,
                           warmup_epochs=5, label_smoothing=0.1, augment=True),
}


def _load_packed(path: Path):
    """Device-transfer format: ``train_{a,b}.xz`` hold planar uint8 images with a horizontal delta
    (lossless, about 2/3 of the raw size), ``train_{a,b}_y.npy`` the labels. The halves are
    interleaved back into the original order (so a validation split is the same images as on
    the unpacked set)."""
    xs, ys = [], []
    for part in ("a", "b"):
        raw = np.frombuffer(lzma.decompress((path / f"train_{part}.xz").read_bytes()), np.uint8)
        d = raw.reshape(-1, 3, 32, 32)
        xs.append(np.cumsum(d, axis=3, dtype=np.uint8).transpose(0, 2, 3, 1))
        ys.append(np.load(path / f"train_{part}_y.npy").astype(np.int64))
    x = np.empty((len(xs[0]) + len(xs[1]), *xs[0].shape[1:]), np.uint8)
    y = np.empty(len(x), np.int64)
    x[0::2], x[1::2], y[0::2], y[1::2] = xs[0], xs[1], ys[0], ys[1]
    return x, y


def pack_for_device(x: np.ndarray, y: np.ndarray, out: Path) -> None:
    """Write ``x`` (uint8 NHWC) and ``y`` in the device-transfer format :func:`_load_packed` reads:
    two interleaved halves (images ``0::2`` and ``1::2``), each small enough to travel alone."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for part, sel in (("a", slice(0, None, 2)), ("b", slice(1, None, 2))):
        planar = np.ascontiguousarray(x[sel].transpose(0, 3, 1, 2))
        delta = np.diff(planar, axis=3, prepend=np.zeros(planar.shape[:3] + (1,), np.uint8))
        (out / f"train_{part}.xz").write_bytes(lzma.compress(delta.astype(np.uint8).tobytes()))
        np.save(out / f"train_{part}_y.npy", np.asarray(y[sel], np.uint8))


def to_tensor(x: np.ndarray, device) -> torch.Tensor:
    """uint8 NHWC -> float NCHW in [0, 1] (the networks' input convention)."""
    return torch.from_numpy(x).to(device).permute(0, 3, 1, 2).float().div_(255.0)


def augment(xb: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random 4-pixel zero-padded crop and horizontal flip, per image, on xb's device."""
    b, c, h, w = xb.shape
    dev = xb.device
    xp = F.pad(xb, (4, 4, 4, 4))
    oy = torch.randint(0, 9, (b,), generator=gen, device="cpu").to(dev)
    ox = torch.randint(0, 9, (b,), generator=gen, device="cpu").to(dev)
    flip = torch.rand(b, generator=gen, device="cpu").to(dev) < 0.5
    ar = torch.arange(h, device=dev)
    rows = (oy[:, None] + ar)  # b, h
    cols = ox[:, None] + ar
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    bi = torch.arange(b, device=dev)[:, None, None]
    out = xp.permute(0, 2, 3, 1)[bi, rows[:, :, None], cols[:, None, :]]  # b,h,w,c
    return out.permute(0, 3, 1, 2).contiguous()


@torch.no_grad()
def evaluate(model, x: np.ndarray, y: np.ndarray, device, batch_size: int = 1000) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(x), batch_size):
        xb = to_tensor(x[i:i + batch_size], device)
        correct += (model(xb).argmax(1).cpu().numpy() == y[i:i + batch_size]).sum()
    return float(correct) / len(x)


def kd_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """``T^2 * KL(softmax(teacher/T) || softmax(student/T))``, batch mean (Hinton et al. 2015)."""
    t = temperature
    return F.kl_div(F.log_softmax(student / t, 1), F.log_softmax(teacher / t, 1),
                    reduction="batchmean", log_target=True) * (t * t)


def load_teacher(path: Path, dataset: str, device) -> tuple[torch.nn.Module, str]:
    """A committed checkpoint (``{"arch", "state_dict"}``) as a frozen eval-mode teacher."""
    if not path.is_file():
        raise SystemExit(f"error: teacher checkpoint {path}: no such file")
    ck = torch.load(path, map_location="cpu", weights_only=False)
    arch = ck.get("arch") if isinstance(ck, dict) else None
    if arch not in MODELS:
        raise SystemExit(f"error: teacher checkpoint {path}: no known 'arch' (got {arch!r})")
    if MODELS[arch]["dataset"] != dataset:
        raise SystemExit(f"error: teacher {path} ({arch}) is trained on "
                         f"{MODELS[arch]['dataset']}, not {dataset}")
    m = build_model(arch)
    m.load_state_dict(ck["state_dict"])
    m = m.to(device).eval()
    if device.type == "cuda":
        m = m.to(memory_format=torch.channels_last)
    for q in m.parameters():
        q.requires_grad_(False)
    return m, arch


def lr_at(step: float, steps_per_epoch: int, cfg: dict) -> float:
    e = step / steps_per_epoch
    if e < cfg["warmup_epochs"]:
        return cfg["lr"] * e / cfg["warmup_epochs"]
    t = (e - cfg["warmup_epochs"]) / max(1e-9, cfg["epochs"] - cfg["warmup_epochs"])
    return cfg["lr"] * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


@dataclass
class _Run:
    """A training run's state, as one epoch reads and updates it."""

    model: torch.nn.Module
    opt: torch.optim.Optimizer
    gen: torch.Generator
    cfg: dict
    dev: torch.device
    teacher: torch.nn.Module | None


def _schedule(model_name: str, epochs: int | None, overrides: dict | None) -> dict:
    """The model's schedule with the epoch count and the overrides given (None: keep)."""
    if model_name not in MODELS:
        raise SystemExit(f"error: unknown model {model_name!r}; known: {', '.join(MODELS)}")
    cfg = dict(SCHEDULES[model_name])
    if epochs is not None:
        cfg["epochs"] = epochs
    cfg.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return cfg


#: Seed of the validation split: every run holds out the same images.
VAL_SEED = 20261204


def split_validation(x: np.ndarray, y: np.ndarray, n: int) -> tuple:
    """Hold out ``n`` training images, the same number from every class (``n`` must be a
    multiple of the class count), drawn with :data:`VAL_SEED`: ``(x_train, y_train, x_val,
    y_val, val_indices)``. Runs are selected on the held-out images, never on the test set."""
    classes = np.unique(y)
    if n <= 0 or n % len(classes) or n // len(classes) > np.bincount(y).min():
        raise DataError(f"--val {n}: hold out a positive multiple of the {len(classes)} classes, "
                        f"at most {np.bincount(y).min()} images of each")
    rng = np.random.default_rng(VAL_SEED)
    per = n // len(classes)
    val = np.sort(np.concatenate([rng.choice(np.flatnonzero(y == c), per, replace=False)
                                  for c in classes]))
    keep = np.ones(len(y), bool)
    keep[val] = False
    return x[keep], y[keep], x[val], y[val], val


def _datasets(dataset: str, data, packed) -> tuple:
    """``(x_train, y_train, x_test, y_test)``; no test set from the device-transfer format."""
    if packed is not None:
        xtr, ytr = _load_packed(Path(packed))
        return xtr, ytr, None, None
    xtr, ytr = load_dataset(dataset, "train", data)
    xte, yte = load_dataset(dataset, "test", data)
    return xtr, ytr, xte, yte


def _setup_teacher(cfg: dict, teacher, no_teacher: bool, dataset: str, dev):
    """The distillation teacher (None without one): ``teacher``, else the schedule's own unless
    ``no_teacher``; records it and the distillation defaults in ``cfg``."""
    if teacher is None and cfg.get("teacher") and not no_teacher:
        teacher = ZOO / f"{cfg['teacher']}.pt"  # the schedule's own teacher
    if no_teacher:
        for k in ("teacher", "kd_alpha", "kd_temperature"):
            cfg.pop(k, None)
    if teacher is None:
        return None
    teacher_model, teacher_arch = load_teacher(Path(teacher), dataset, dev)
    cfg.setdefault("kd_alpha", 0.9)
    cfg.setdefault("kd_temperature", 4.0)
    cfg["teacher"] = teacher_arch
    cfg["teacher_checkpoint"] = Path(teacher).name
    return teacher_model


def _optimiser(model, cfg: dict) -> torch.optim.Optimizer:
    """SGD with Nesterov momentum; weight decay on the weights, not on biases and norms."""
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    return torch.optim.SGD([{"params": decay, "weight_decay": cfg["weight_decay"]},
                            {"params": no_decay, "weight_decay": 0.0}],
                           lr=cfg["lr"], momentum=cfg["momentum"], nesterov=True)


def _resume(ckpt: Path, run: _Run) -> int:
    """Load ``ckpt`` (model, optimiser, generator, schedule) into ``run``; returns the epoch
    to continue from."""
    st = torch.load(ckpt, map_location=run.dev, weights_only=False)
    run.model.load_state_dict(st["model"])
    run.opt.load_state_dict(st["opt"])
    run.gen.set_state(st["gen"])
    run.cfg = st["cfg"]  # the schedule the run started with (incl. a budget-fitted epoch count)
    print(f"resuming {ckpt} at epoch {st['epoch']}", file=sys.stderr)
    return st["epoch"]


def _step_loss(run: _Run, xb, yb):
    """The forward pass of one batch: the logits and the loss (distilled with a teacher)."""
    cfg = run.cfg
    with torch.autocast(run.dev.type, dtype=torch.bfloat16, enabled=run.dev.type == "cuda"):
        logits = run.model(xb)
        loss = F.cross_entropy(logits.float(), yb, label_smoothing=cfg["label_smoothing"])
        if run.teacher is not None:
            with torch.no_grad():
                t_logits = run.teacher(xb).float()
            loss = (1 - cfg["kd_alpha"]) * loss + cfg["kd_alpha"] * kd_loss(
                logits.float(), t_logits, cfg["kd_temperature"])
    return logits, loss


def _train_epoch(run: _Run, epoch: int, xt, yt, it) -> tuple:
    """One epoch over the batches ``it`` (of ``len(xt) // batch_size``, random order); returns
    the summed loss and correct count as tensors on the device."""
    cfg, dev = run.cfg, run.dev
    bs = cfg["batch_size"]
    spe = len(xt) // bs
    run.model.train()
    perm = torch.randperm(len(xt), generator=run.gen).to(dev)
    tot_loss = torch.zeros((), device=dev)
    tot_ok = torch.zeros((), device=dev)
    for s in it:
        for g in run.opt.param_groups:
            g["lr"] = lr_at(epoch * spe + s, spe, cfg)
        idx = perm[s * bs:(s + 1) * bs]
        xb, yb = xt[idx], yt[idx]
        if cfg["augment"]:
            xb = augment(xb, run.gen)
        if dev.type == "cuda":
            xb = xb.contiguous(memory_format=torch.channels_last)
        logits, loss = _step_loss(run, xb, yb)
        run.opt.zero_grad(set_to_none=True)
        loss.backward()
        run.opt.step()
        tot_loss += loss.detach() * len(yb)
        tot_ok += (logits.argmax(1) == yb).sum()
    return tot_loss, tot_ok


def _fit_budget(cfg: dict, epoch: int, per_epoch: float, time_budget_s: float) -> None:
    """Fit the schedule to a wall-clock budget (used on the lent GPU): the epoch count is fixed
    after three epochs, before the cosine decay starts to matter, and saved with the weights."""
    cfg["epochs"] = max(epoch + 1, min(cfg["epochs"], int(time_budget_s / per_epoch)))
    print(f"time budget {time_budget_s:.0f} s, {per_epoch:.2f} s/epoch: "
          f"{cfg['epochs']} epochs", file=sys.stderr)


def _finish(run: _Run, model_name: str, seed: int, out: Path, test) -> dict:
    """Save the final checkpoint ``<out>/<model>.pt`` and report (test accuracy when ``test``
    holds the test set)."""
    model, cfg = run.model, run.cfg
    sd = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    final = {"arch": model_name, "state_dict": sd, "schedule": cfg, "seed": seed}
    torch.save(final, out / f"{model_name}.pt")
    res = {"model": model_name, "epochs": cfg["epochs"],
           "checkpoint": str(out / f"{model_name}.pt")}
    if test is not None:
        res["test_acc"] = evaluate(model, *test, run.dev)
    print(json.dumps(res))
    return res


def _setup(model_name: str, cfg: dict, seed: int, dev, teacher, no_teacher: bool) -> _Run:
    """Seed, the teacher, the model and its optimiser (in this order: the teacher's and the
    model's construction draw from the seeded torch generator)."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    teacher_model = _setup_teacher(cfg, teacher, no_teacher, MODELS[model_name]["dataset"], dev)
    model = build_model(model_name).to(dev)
    if dev.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return _Run(model=model, opt=_optimiser(model, cfg),
                gen=torch.Generator().manual_seed(seed), cfg=cfg, dev=dev,
                teacher=teacher_model)


def train(model_name: str, data=None, out: Path | None = None, epochs: int | None = None,
          seed: int = 0, resume: bool = False, device: str | None = None,
          packed: Path | None = None,
          eval_every: int = 10, progress: bool = True, time_budget_s: float | None = None,
          overrides: dict | None = None, teacher: Path | None = None,
          no_teacher: bool = False, val: int = 0) -> dict:
    """Train ``model_name`` from scratch (or resume) and save ``<out>/<model>.pt``.

    Every epoch appends its record to ``<out>/metrics.jsonl`` and saves ``<out>/last.pt``.

    Parameters
    ----------
    model_name : str
        A key of :data:`python_ref.models.MODELS`; its schedule is ``SCHEDULES[model_name]``.
    data : path, optional
        The data folder (see :func:`python_ref.data.load_dataset`).
    out : path, optional
        The run folder (default ``runs/<model>``).
    epochs : int, optional
        Overrides the schedule's epoch count.
    seed : int
        Seeds torch, numpy and the batch-order generator.
    resume : bool
        Continue from ``<out>/last.pt`` when it exists (with the schedule saved there).
    device : str, optional
        Torch device (default CUDA when available, else the CPU).
    packed : path, optional
        Read the training set from the device-transfer format (:func:`pack_for_device`); there
        is then no test set.
    eval_every : int
        Measure the test accuracy every this many epochs (and after the last).
    progress : bool
        Show a progress bar per epoch.
    time_budget_s : float, optional
        Shorten a fresh run to fit this many seconds (fixed after three epochs).
    overrides : dict, optional
        Schedule fields to replace (None values are ignored).
    teacher : path, optional
        A checkpoint to distil from (default: the schedule's teacher, if any).
    no_teacher : bool
        Train without the schedule's teacher.
    val : int
        Hold out this many training images (:func:`split_validation`) and measure the
        accuracy on them (``val_acc``) instead of the test set's during training; the test
        accuracy is then measured once, at the end.

    Returns
    -------
    dict
        ``{"model", "epochs", "checkpoint"}`` and, with a test set, ``"test_acc"``.

    Raises
    ------
    SystemExit
        For an unknown model or an unusable teacher checkpoint.
    """
    cfg = _schedule(model_name, epochs, overrides)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    out = Path(out or f"runs/{model_name}")
    out.mkdir(parents=True, exist_ok=True)
    xtr, ytr, xte, yte = _datasets(MODELS[model_name]["dataset"], data, packed)
    xev, yev, key = xte, yte, "test_acc"
    if val:
        xtr, ytr, xev, yev, _ = split_validation(xtr, ytr, val)
        key = "val_acc"
        cfg["val"] = {"images": val, "seed": VAL_SEED}
    run = _setup(model_name, cfg, seed, dev, teacher, no_teacher)
    start_epoch = 0
    ckpt = out / "last.pt"
    if resume and ckpt.exists():
        start_epoch = _resume(ckpt, run)
    xt = to_tensor(xtr, dev)
    yt = torch.from_numpy(ytr).to(dev)
    t0 = time.time()
    epoch = start_epoch
    while epoch < run.cfg["epochs"]:
        cfg = run.cfg
        if time_budget_s and epoch == start_epoch + 3 and start_epoch == 0:
            _fit_budget(cfg, epoch, (time.time() - t0) / 3, time_budget_s)
        spe = len(xt) // cfg["batch_size"]  # drop the last partial batch: fixed step count
        it = range(spe)
        if progress:
            it = tqdm(it, desc=f"{model_name} epoch {epoch + 1}/{cfg['epochs']}", leave=False,
                      file=sys.stderr)
        tot_loss, tot_ok = _train_epoch(run, epoch, xt, yt, it)
        n = spe * cfg["batch_size"]
        rec = {"epoch": epoch + 1, "lr": lr_at((epoch + 1) * spe, spe, cfg),
               "train_loss": tot_loss.item() / n, "train_acc": tot_ok.item() / n,
               "elapsed_s": round(time.time() - t0, 1)}
        if xev is not None and ((epoch + 1) % eval_every == 0 or epoch + 1 == cfg["epochs"]):
            rec[key] = evaluate(run.model, xev, yev, dev)
        with open(out / "metrics.jsonl", "a") as metrics_f:
            metrics_f.write(json.dumps(rec) + "\n")
        print(json.dumps(rec), file=sys.stderr)
        torch.save({"model": run.model.state_dict(), "opt": run.opt.state_dict(),
                    "gen": run.gen.get_state(), "epoch": epoch + 1, "cfg": cfg}, ckpt)
        epoch += 1
    res = _finish(run, model_name, seed, out, None if xte is None else (xte, yte))
    if val:
        res["val_acc"] = evaluate(run.model, xev, yev, dev)
        print(json.dumps({"val_acc": res["val_acc"]}))
    return res


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m python_ref.train",
                                description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, choices=sorted(MODELS))
    p.add_argument("--data", default=None, help="data folder (default: $AMOS_DATA, then ../shared)")
    p.add_argument("--out", default=None, help="run folder (default runs/<model>)")
    p.add_argument("--epochs", type=int, default=None, help="override the schedule's epoch count")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from <out>/last.pt")
    p.add_argument("--device", default=None)
    p.add_argument("--packed", default=None, help=argparse.SUPPRESS)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--time-budget", type=float, default=None,
                   help="shorten the schedule to fit this many seconds (fixed after 3 epochs)")
    p.add_argument("--weight-decay", type=float, default=None, help="override the schedule's")
    p.add_argument("--label-smoothing", type=float, default=None, help="override the schedule's")
    p.add_argument("--teacher", default=None,
                   help="checkpoint to distil from (e.g. python_ref/zoo/resnet14.pt)")
    p.add_argument("--no-teacher", action="store_true",
                   help="train without the schedule's distillation teacher")
    p.add_argument("--kd-alpha", type=float, default=None,
                   help="weight of the distillation term (default 0.9 with --teacher)")
    p.add_argument("--kd-temperature", type=float, default=None,
                   help="softmax temperature of distillation (default 4)")
    p.add_argument("--val", type=int, default=0, metavar="N",
                   help="hold out N training images (the same from every class, a fixed "
                        "seed) and measure on them during training; select runs on these")
    a = p.parse_args(argv)
    if a.teacher and a.no_teacher:
        p.error("--teacher and --no-teacher exclude each other")
    overrides = {"weight_decay": a.weight_decay, "label_smoothing": a.label_smoothing,
                 "kd_alpha": a.kd_alpha, "kd_temperature": a.kd_temperature}
    try:
        train(a.model, a.data, a.out, a.epochs, a.seed, a.resume, a.device, a.packed,
              progress=not a.no_progress, time_budget_s=a.time_budget, overrides=overrides,
              teacher=a.teacher, no_teacher=a.no_teacher, val=a.val)
    except DataError as e:
        raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
    main()
