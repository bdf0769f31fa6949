"""Fitting the trained AMOS units (sigmoid K=8, swish K=12, multiplication K=40).

Procedure (``python -m python_ref.units fit NAME``):

1. **Initialisation: a successive-approximation staircase.** The unit is first built so that it
   performs a binary search on the *output*: neuron ``i`` adds ``d_i = δ·2^(n-1-i)`` and fires
   when the target exceeds the partial output plus ``d_i - δ/2`` (rounding to the nearest level).
   For a monotone target this decision is a threshold on ``x`` that depends on the earlier
   spikes; it is fitted as ``T_i + Σ_j h_ij z_j`` by weighted least squares over the prefix cells.
   A target that is not monotone is split at its extremum by a *branch* neuron ``[x >= m]`` that
   gates two staircases (one per monotone piece) through large inhibitory weights. The
   multiplication uses ``x·y = ((x+y)² - (x-y)²)/4``: two groups of 20 neurons that see
   ``x+y`` (``c = c2``) and ``x-y`` (``c = -c2``).
2. **Backpropagation** (Adam, cosine learning rate) of the mean squared error over random samples
   of the domain, through the hard forward pass with the triangle pseudo-derivative, whose
   half-width is annealed geometrically. For sigmoid and mult the backward pass credits each
   spike only with its direct effect on the output (``detach_inhibition``: the gradient does not
   run through ``Σ h_ij z_j`` into later neurons). With the full chain the multiplication unit got
   worse than its initialisation (grid MSE from 1e-3 up to 3e-3..6e-3 in 500 steps, lr 1e-2);
   detached, it reached 1.1e-4 (lr 1e-3). For swish both variants end near the same error;
   the full chain gave the lower maximum error.
3. **Evaluation** with the hard Heaviside on a dense grid of the domain; the best parameters seen
   at the periodic evaluations are kept. Everything is seeded and runs on one CPU thread.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from .core import AmosUnit, unit_path

__all__ = ["FitSpec", "FIT_SPECS", "target", "grid", "unit_errors", "staircase_init", "fit_unit"]


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _swish(x):
    return x * _sigmoid(x)


def _mult(x, y):
    return x * y


@dataclass(frozen=True)
class Piece:
    """One monotone piece of a staircase group: ``n`` neurons anchored at ``anchor``."""

    lo: float
    hi: float
    anchor: str  # "lo" or "hi": where the staircase starts (output 0 there)
    n: int
    radix: float = 2.0  # ratio of successive d_i; below 2 the search is redundant


@dataclass(frozen=True)
class Group:
    """Neurons that see the projection ``s = a·x (+ b·x2)`` and approximate ``g(s)``."""

    g: object  # callable on a float array
    lo: float
    hi: float
    pieces: tuple[Piece, ...]
    proj: tuple[float, ...] = (1.0,)
    branch: float | None = None  # split point m of the branch neuron [s >= m]


@dataclass(frozen=True)
class FitSpec:
    """What to fit: target, K, domain, staircase groups and training schedule."""

    name: str
    K: int
    domain: tuple[tuple[float, float], ...]
    groups: tuple[Group, ...]
    steps: int
    batch: int
    lr: float
    width: tuple[float, float]  # pseudo-derivative half-width, start -> end (in units of s)
    detach_inhibition: bool = False
    eval_every: int = 250
    grid_n: int = 20001  # 1-D grid points (2-D: grid_n2 per axis)
    grid_n2: int = 401
    seed: int = 0
    notes: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def inputs(self) -> int:
        return len(self.domain)


_SWISH_MIN = -1.2784645427610738  # argmin of x·sigmoid(x)

FIT_SPECS: dict[str, FitSpec] = {
    "sigmoid": FitSpec(
        name="sigmoid", K=8, domain=((-6.0, 6.0),),
        groups=(Group(_sigmoid, -6.0, 6.0, (Piece(-6.0, 6.0, "lo", 8),)),),
        steps=8000, batch=4096, lr=1e-2, width=(0.3, 0.01), detach_inhibition=True,
        notes="sigmoid(x) = 1/(1+exp(-x)) on x in [-6, 6]",
    ),
    "swish": FitSpec(
        name="swish", K=12, domain=((-6.0, 6.0),),
        groups=(Group(_swish, -6.0, 6.0,
                      (Piece(-6.0, _SWISH_MIN, "lo", 3), Piece(_SWISH_MIN, 6.0, "lo", 8)),
                      branch=_SWISH_MIN),),
        steps=8000, batch=4096, lr=1e-2, width=(0.3, 0.01),
        notes="swish(x) = x·sigmoid(x) on x in [-6, 6]",
    ),
    # sigmoid with half again the neurons of the paper's: a squeeze-and-excitation gate
    # multiplies whole channels by it, and K = 8 cost effnet_cifar about a point
    "sigmoid_k12": FitSpec(
        name="sigmoid", K=12, domain=((-6.0, 6.0),),
        groups=(Group(_sigmoid, -6.0, 6.0, (Piece(-6.0, 6.0, "lo", 12),)),),
        steps=8000, batch=4096, lr=1e-2, width=(0.3, 0.01), detach_inhibition=True,
        notes="sigmoid(x) = 1/(1+exp(-x)) on x in [-6, 6]",
    ),
    # swish up to the calibrated input level of an EfficientNet layer (effnet_cifar: 4 to 26):
    # clipping at 6 cost the converted network 2.5 points of validation accuracy; the
    # increasing piece gets 4 more neurons for the wider range (8,000 steps at 1e-2 left a
    # mean error of 0.019, these 0.018)
    "swish_wide": FitSpec(
        name="swish", K=16, domain=((-6.0, 26.0),),
        groups=(Group(_swish, -6.0, 26.0,
                      (Piece(-6.0, _SWISH_MIN, "lo", 3), Piece(_SWISH_MIN, 26.0, "lo", 12)),
                      branch=_SWISH_MIN),),
        steps=20000, batch=4096, lr=3e-3, width=(0.3, 0.01),
        notes="swish(x) = x·sigmoid(x) on x in [-6, 26]",
    ),
    "mult": FitSpec(
        name="mult", K=40, domain=((-1.0, 1.0), (-1.0, 1.0)),
        groups=(
            Group(lambda s: s * s / 4, -2.0, 2.0,
                  (Piece(-2.0, 0.0, "hi", 9), Piece(0.0, 2.0, "lo", 10)),
                  proj=(1.0, 1.0), branch=0.0),
            Group(lambda s: -s * s / 4, -2.0, 2.0,
                  (Piece(-2.0, 0.0, "hi", 9), Piece(0.0, 2.0, "lo", 10)),
                  proj=(1.0, -1.0), branch=0.0),
        ),
        steps=2000, batch=8192, lr=1e-3, width=(0.05, 0.005), detach_inhibition=True,
        notes="x·y on (x, y) in [-1, 1]^2",
    ),
}


def target(name: str, x, x2=None) -> np.ndarray:
    """The function a unit approximates (``relu``, ``sigmoid``, ``swish``, ``mult``)."""
    x = np.asarray(x, dtype=np.float64)
    if name == "relu":
        return np.maximum(x, 0.0)
    if name == "sigmoid":
        return _sigmoid(x)
    if name == "swish":
        return _swish(x)
    if name == "mult":
        return _mult(x, np.asarray(x2, dtype=np.float64))
    raise ValueError(f"unknown unit {name!r}; expected relu, sigmoid, swish or mult")


def grid(domain, n1: int = 20001, n2: int = 401):
    """Dense evaluation grid of a domain: ``(x,)`` (n1 points) or ``(x, x2)`` (n2 x n2 mesh)."""
    if len(domain) == 1:
        return (np.linspace(*domain[0], n1),)
    a = np.linspace(*domain[0], n2)
    b = np.linspace(*domain[1], n2)
    xx, yy = np.meshgrid(a, b, indexing="ij")
    return xx.ravel(), yy.ravel()


def unit_errors(unit: AmosUnit, name: str | None = None, n1: int = 20001, n2: int = 401) -> dict:
    """Errors of a unit against its target on the dense grid of its domain (hard Heaviside).

    Returns
    -------
    dict
        ``mse``, ``max_abs_err``, ``mean_abs_err`` and the grid size ``grid_points``.
    """
    name = name or unit.name
    pts = grid(unit.domain, n1, n2)
    err = unit(*pts) - target(name, *pts)
    return {
        "mse": float(np.mean(err**2)),
        "max_abs_err": float(np.max(np.abs(err))),
        "mean_abs_err": float(np.mean(np.abs(err))),
        "grid_points": int(err.size),
    }


# ---------------------------------------------------------------------------------------------
# Staircase (successive-approximation) initialisation
# ---------------------------------------------------------------------------------------------


def _fit_piece(t: np.ndarray, g: np.ndarray, n: int, radix: float = 2.0):
    """SAR staircase on an increasing coordinate ``t`` for ``g >= 0`` increasing with ``t``.

    Returns (T, h, d) with h an (n, n) strictly lower-triangular array, for neurons that fire
    when ``t - T_i - Σ_j h_ij z_j >= 0``.
    """
    R = float(g.max())
    powers = radix ** np.arange(n - 1, -1, -1)
    delta = R / powers.sum()
    d = delta * powers
    T = np.zeros(n)
    h = np.zeros((n, n))
    z = np.zeros((t.size, n))
    span = float(t.max() - t.min())
    gap = span / max(t.size - 1, 1)
    for i in range(n):
        P = z[:, :i] @ d[:i]
        level = P + d[i] - delta / 2
        codes = z[:, :i]
        keys, inv = np.unique(codes, axis=0, return_inverse=True)
        inv = inv.ravel()
        feats, tgt, wts = [], [], []
        for k in range(keys.shape[0]):
            sel = inv == k
            tk, fire = t[sel], g[sel] >= level[sel]
            if fire.all():
                thr, w = tk.min() - gap, 0.05
            elif not fire.any():
                thr, w = tk.max() + gap, 0.05
            else:
                thr, w = tk[fire].min() - gap / 2, 1.0
            feats.append(np.concatenate([[1.0], keys[k]]))
            tgt.append(thr)
            wts.append(w * sel.sum())
        A = np.array(feats) * np.sqrt(wts)[:, None]
        b = np.array(tgt) * np.sqrt(wts)
        sol = np.linalg.lstsq(A, b, rcond=None)[0]
        T[i] = sol[0]
        h[i, :i] = sol[1:]
        z[:, i] = t - T[i] - z[:, :i] @ h[i, :i] >= 0
    return T, h, d


def staircase_init(spec: FitSpec, n_grid: int = 4001) -> AmosUnit:
    """The successive-approximation staircase unit that starts the fit (see module docstring)."""
    c, c2, T, d = [], [], [], []
    K = spec.K
    h = np.zeros((K, K))
    base = 0
    for grp in spec.groups:
        a = grp.proj[0]
        b = grp.proj[1] if len(grp.proj) > 1 else None
        big = 4.0 * (grp.hi - grp.lo)
        b_idx = None
        if grp.branch is not None:  # z_b = [s >= m]; adds g(m) on the right
            b_idx = base
            c.append(a)
            c2.append(b)
            T.append(grp.branch)
            d.append(float(grp.g(np.array([grp.branch]))[0]) if grp.pieces[1].anchor == "lo"
                     else 0.0)
            base += 1
        for pi, pc in enumerate(grp.pieces):
            s = np.linspace(pc.lo, pc.hi, n_grid)
            anchor = pc.lo if pc.anchor == "lo" else pc.hi
            direction = 1.0 if pc.anchor == "lo" else -1.0
            diff = grp.g(s) - float(grp.g(np.array([anchor]))[0])
            sign = 1.0 if diff.sum() >= 0 else -1.0
            Tp, hp, dp = _fit_piece(direction * s, sign * diff, pc.n, pc.radix)
            rows = slice(base, base + pc.n)
            h[rows, rows] = hp
            Tp = Tp.copy()
            if b_idx is not None:
                right = pi == 1
                # right piece: silent while z_b = 0; left piece: silent while z_b = 1
                if right:
                    Tp += big
                    h[rows, b_idx] = -big
                else:
                    h[rows, b_idx] = big
            c.extend([direction * a] * pc.n)
            c2.extend([None if b is None else direction * b] * pc.n)
            T.extend(Tp.tolist())
            d.extend((sign * dp).tolist())
            base += pc.n
    if base != K:
        raise AssertionError(f"staircase for {spec.name} has {base} neurons, not K={K}")
    two = spec.inputs == 2
    return AmosUnit(spec.name, c=c, T=T, h=h, d=d, c2=c2 if two else None, domain=spec.domain)


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


def fit_unit(spec: FitSpec, steps: int | None = None, seed: int | None = None,
             progress: bool = True) -> AmosUnit:
    """Fit a unit by backpropagation and return it with its recorded errors (``meta``).

    Parameters
    ----------
    spec : FitSpec
        What to fit (see :data:`FIT_SPECS`).
    steps : int, optional
        Adam steps (default ``spec.steps``).
    seed : int, optional
        Seed of torch and numpy (default ``spec.seed``).
    progress : bool
        Show a tqdm progress bar.
    """
    # torch (the `train` extra) only for fitting: the unit files, their evaluation and
    # python_ref.units.report load without it
    import torch

    steps = spec.steps if steps is None else steps
    seed = spec.seed if seed is None else seed
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the machines are shared; one thread is also deterministic
    try:
        return _train(spec, steps, seed, progress)
    finally:
        torch.set_num_threads(threads)


def _train(spec: FitSpec, steps: int, seed: int, progress: bool) -> AmosUnit:
    # the `train` extra, imported here only: see fit()
    import torch

    from .torch_unit import TorchAmosUnit

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    t0 = time.time()

    init = staircase_init(spec)
    init_err = unit_errors(init, spec.name, spec.grid_n, spec.grid_n2)
    model = TorchAmosUnit(spec.K, spec.inputs, init=init, dtype=torch.float32)
    model.detach_inhibition = spec.detach_inhibition
    opt = torch.optim.Adam(model.parameters(), lr=spec.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda k: 0.5 * (1 + math.cos(math.pi * min(k, steps) / max(steps, 1))))
    lo = np.array([p[0] for p in spec.domain])
    hi = np.array([p[1] for p in spec.domain])

    best = (init_err["mse"], init)
    w0, w1 = spec.width
    bar = tqdm(range(steps), desc=f"fit {spec.name}", disable=not progress, mininterval=1.0)
    for k in bar:
        model.width = w0 * (w1 / w0) ** (k / max(steps - 1, 1))
        pts = rng.uniform(lo, hi, size=(spec.batch, spec.inputs))
        xs = [torch.tensor(pts[:, j], dtype=torch.float32) for j in range(spec.inputs)]
        y_t = torch.tensor(target(spec.name, *[pts[:, j] for j in range(spec.inputs)]),
                           dtype=torch.float32)
        loss = torch.mean((model(*xs) - y_t) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if (k + 1) % spec.eval_every == 0 or k == steps - 1:
            cand = model.to_unit(spec.name, spec.domain)
            e = unit_errors(cand, spec.name, spec.grid_n, spec.grid_n2)
            if e["mse"] < best[0]:
                best = (e["mse"], cand)
            bar.set_postfix(mse=f"{e['mse']:.3g}", best=f"{best[0]:.3g}")
    unit = best[1]
    err = unit_errors(unit, spec.name, spec.grid_n, spec.grid_n2)
    meta = {
        "mse": err["mse"],
        "max_abs_err": err["max_abs_err"],
        "mean_abs_err": err["mean_abs_err"],
        "grid_points": err["grid_points"],
        "init_mse": init_err["mse"],
        "init_max_abs_err": init_err["max_abs_err"],
        "target": spec.notes,
        "seed": seed,
        "steps": steps,
        "fit_seconds": round(time.time() - t0, 1),
        "method": "staircase init + Adam, triangle pseudo-derivative, hard-Heaviside grid eval",
    }
    return AmosUnit(unit.name, c=unit.c, T=unit.T, h=unit.h, d=unit.d, c2=unit.c2,
                    domain=spec.domain, meta=meta)


def fit_and_save(name: str, steps: int | None = None, seed: int | None = None,
                 progress: bool = True, path=None) -> AmosUnit:
    """Fit ``FIT_SPECS[name]``; write it to ``path`` (default ``python_ref/units/<name>.json``)."""
    unit = fit_unit(FIT_SPECS[name], steps=steps, seed=seed, progress=progress)
    unit.save(unit_path(name) if path is None else path)
    return unit
