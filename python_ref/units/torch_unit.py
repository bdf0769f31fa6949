"""The AMOS unit in torch, for training by backpropagation with a triangle pseudo-derivative.

The forward pass is the exact unit (hard Heaviside); only the backward pass replaces Θ'(u) by
the triangle ``max(0, 1 - |u|/w) / w`` of half-width ``w`` (the paper's "triangle-shaped
pseudo-derivative").
"""
from __future__ import annotations

import torch
from torch import nn

from .core import AmosUnit

__all__ = ["HeavisideTriangle", "heaviside_triangle", "TorchAmosUnit"]


class HeavisideTriangle(torch.autograd.Function):
    """Θ(u) forward, triangle pseudo-derivative of half-width ``width`` backward."""

    @staticmethod
    def forward(ctx, u, width):
        ctx.save_for_backward(u)
        ctx.width = float(width)
        return (u >= 0).to(u.dtype)

    @staticmethod
    def backward(ctx, grad):
        (u,) = ctx.saved_tensors
        w = ctx.width
        return grad * torch.clamp(1.0 - u.abs() / w, min=0.0) / w, None


def heaviside_triangle(u: torch.Tensor, width: float) -> torch.Tensor:
    """Θ(u) with the triangle pseudo-derivative (see :class:`HeavisideTriangle`)."""
    return HeavisideTriangle.apply(u, width)


class TorchAmosUnit(nn.Module):
    """Trainable AMOS unit (eqs. 2-7); the same computation as :class:`AmosUnit`.

    Parameters
    ----------
    K : int
        Neurons.
    inputs : int
        1 or 2.
    init : AmosUnit, optional
        Starting parameters (otherwise zeros).
    dtype : torch.dtype
        Parameter dtype (float32 for training, float64 to compare with numpy).

    Members
    -------
    c, c2, T, h, d : torch.nn.Parameter
        ``c2`` is None for one-input units; only the strictly lower triangle of ``h`` is used.
    width : float
        Half-width of the triangle pseudo-derivative (set by the trainer, annealed).
    detach_inhibition : bool
        If set, the backward pass does not follow a spike into the later neurons' inhibition
        (``Σ h_ij z_j``): each spike is credited only with its direct effect on the output. The
        forward pass is unchanged.
    """

    def __init__(self, K: int, inputs: int = 1, init: AmosUnit | None = None,
                 dtype: torch.dtype = torch.float32):
        super().__init__()
        if isinstance(K, bool) or not isinstance(K, int) or K < 1:
            raise ValueError(f"K must be a positive integer, not {K!r}")
        if inputs not in (1, 2):
            raise ValueError(f"inputs must be 1 or 2, not {inputs!r}")
        self.K = K
        self.inputs = inputs
        self.width = 1.0
        self.detach_inhibition = False

        def param(values, shape):
            t = torch.zeros(shape, dtype=dtype) if values is None else torch.tensor(
                values, dtype=dtype)
            return nn.Parameter(t)

        if init is not None and (init.K != K or init.inputs != inputs):
            raise ValueError(f"init has K={init.K}, inputs={init.inputs}; expected {K}, {inputs}")
        g = (lambda a: None) if init is None else (lambda a: getattr(init, a))
        self.c = param(g("c"), (K,))
        self.c2 = param(g("c2"), (K,)) if inputs == 2 else None
        self.T = param(g("T"), (K,))
        self.h = param(g("h"), (K, K))
        self.d = param(g("d"), (K,))
        self.register_buffer("mask", torch.tril(torch.ones(K, K, dtype=dtype), -1))

    def spikes(self, x: torch.Tensor, x2: torch.Tensor | None = None) -> torch.Tensor:
        """Spikes (0./1. floats) of shape ``x.shape + (K,)``; differentiable via the triangle."""
        p = x[..., None] * self.c
        if self.c2 is not None:
            if x2 is None:
                raise ValueError("this unit has two inputs; x2 is missing")
            p = p + x2[..., None] * self.c2
        h = self.h * self.mask
        zs = []
        for i in range(self.K):
            u = p[..., i] - self.T[i]
            if i:
                prev = torch.stack(zs, -1)
                if self.detach_inhibition:
                    prev = prev.detach()
                u = u - prev @ h[i, :i]
            zs.append(heaviside_triangle(u, self.width))
        return torch.stack(zs, -1)

    def forward(self, x: torch.Tensor, x2: torch.Tensor | None = None) -> torch.Tensor:
        """Output ``Σ d_i z_i``."""
        return self.spikes(x, x2) @ self.d

    def to_unit(self, name: str, domain, meta: dict | None = None) -> AmosUnit:
        """The current parameters as a numpy :class:`AmosUnit` (float64)."""
        def a(t):
            return t.detach().to(torch.float64).cpu().numpy()

        return AmosUnit(
            name, c=a(self.c), T=a(self.T), h=a(self.h * self.mask), d=a(self.d),
            c2=None if self.c2 is None else a(self.c2), domain=domain, meta=meta,
        )
