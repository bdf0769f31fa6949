"""The integer SNN reference: runs a description (:mod:`python_ref.ir`) exactly, in numpy integers.

This is the golden model of every hardware test. :func:`run` evaluates a whole network over a batch
of images and returns logits, classes, spike counts per layer and (on request) every intermediate
tensor. The per-op functions (:func:`conv2d`, :func:`dense`, :func:`add`, :func:`gap`,
:func:`maxpool2d`, :func:`avgpool2d`, :func:`requant_unit`) evaluate single layers, and
:func:`conv2d_bitserial` / :func:`dense_bitserial` evaluate a layer from its input spikes time step
by time step (MSB first), which is how the hardware consumes them; ``run(..., bitserial=True)`` uses
that path everywhere a layer reads spikes.

The integer semantics (requantisation, the units, their spikes) come from
:mod:`python_ref.quant`; nothing here redefines them.

Exactness of the fast path: a dot product of integers is computed with float64 BLAS only when
``max|a| * max_o sum_i |w_oi| < 2**53`` (checked on every call, else int64 matmul is used). Every
partial sum of such a product is then an integer of magnitude below ``2**53``, which float64
represents exactly, so the result equals the int64 one bit for bit. For ResNet8 at K = 10 the
largest bound is ``1023 * 127 * 576 < 2**27``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from . import ir as _ir
from .quant import IntAmosUnit, relu_int, relu_spikes, requant_shift, signed_width

__all__ = [
    "SimResult",
    "im2col",
    "conv2d",
    "dense",
    "add",
    "gap",
    "maxpool2d",
    "avgpool2d",
    "requant_unit",
    "unit_spikes",
    "conv2d_bitserial",
    "dense_bitserial",
    "input_spikes",
    "conv_cover",
    "fan_out",
    "run",
]

_EXACT = 2**53


def im2col(a: np.ndarray, kernel: int, stride: int, padding: int, dtype=None) -> np.ndarray:
    """Patches of an ``(N, H, W, C)`` tensor as rows ``(N*Ho*Wo, kernel*kernel*C)``, ordered
    ``(ky, kx, c)`` to match weights ``(O, ky, kx, C)``; ``padding`` zeros on all four sides,
    ``Ho = (H + 2*padding - kernel) // stride + 1`` (the same for ``Wo``)."""
    if a.ndim != 4:
        raise ValueError(f"conv input must be (N, H, W, C), not shape {a.shape}")
    N, H, W, C = a.shape
    if padding:
        a = np.pad(a, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    Ho = (H + 2 * padding - kernel) // stride + 1
    Wo = (W + 2 * padding - kernel) // stride + 1
    win = np.lib.stride_tricks.sliding_window_view(a, (kernel, kernel), axis=(1, 2))
    win = win[:, : (Ho - 1) * stride + 1 : stride, : (Wo - 1) * stride + 1 : stride]
    cols = np.empty((N, Ho, Wo, kernel, kernel, C), dtype=dtype or a.dtype)
    cols[...] = win.transpose(0, 1, 2, 4, 5, 3)
    return cols.reshape(N * Ho * Wo, kernel * kernel * C), (N, Ho, Wo)


def _int_matmul(cols: np.ndarray, wmat: np.ndarray) -> np.ndarray:
    """Exact ``cols @ wmat.T`` for integer arrays (float64 BLAS when provably exact)."""
    wmat = np.asarray(wmat, dtype=np.int64)
    amax = int(np.abs(cols).max()) if cols.size else 0
    wsum = int(np.abs(wmat).sum(1).max()) if wmat.size else 0
    if amax * wsum < _EXACT:
        out = cols.astype(np.float64, copy=False) @ wmat.T.astype(np.float64)
        return out.astype(np.int64)  # exact integers, so the cast does not round
    return cols.astype(np.int64, copy=False) @ wmat.T


def _check_int(a, what: str) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype.kind not in "iub":
        raise TypeError(f"{what} must hold integers, not {a.dtype}")
    return a


def conv2d(a, w, bias=None, stride: int = 1, padding: int = 0, groups: int = 1) -> np.ndarray:
    """Integer 2-D convolution: ``acc = conv(a, W) + bias``, exact int64.

    A cross-correlation (the kernel is not flipped):
    ``acc[n, oy, ox, o] = bias[o] + sum_{ky, kx, c} w[o, ky, kx, c] *
    a_pad[n, oy*stride + ky, ox*stride + kx, c]``, with ``a_pad`` the input with ``padding``
    zeros on all four sides (``docs/integer_semantics.md``). Depthwise (``groups = C``):
    ``acc[n, oy, ox, c] = bias[c] + sum_{ky, kx} w[c, ky, kx, 0] *
    a_pad[n, oy*stride + ky, ox*stride + kx, c]``.

    Parameters
    ----------
    a : array of int, shape (N, H, W, C)
        Input activations (channels last).
    w : array of int, shape (O, k, k, C), or (C, k, k, 1) when depthwise
        Weights: output channel, kernel row, kernel column, input channel.
    bias : array of int, shape (O,), optional
        None adds nothing.
    stride, padding : int
        Stride in both directions; zeros added on each of the four sides.
    groups : int
        1, or ``C`` for a depthwise convolution.

    Returns
    -------
    numpy.ndarray of int64, shape (N, Ho, Wo, O)
    """
    a = _check_int(a, "a")
    w = _check_int(w, "w")
    depthwise = groups != 1
    if depthwise and (a.ndim != 4 or groups != a.shape[3]):
        raise ValueError(f"conv2d: groups must be 1 or the input channels, not {groups}")
    want_c = 1 if depthwise else a.shape[-1]
    if (a.ndim != 4 or w.ndim != 4 or w.shape[1] != w.shape[2] or w.shape[3] != want_c
            or (depthwise and w.shape[0] != groups)):
        raise ValueError(f"conv2d: input {a.shape} and weight {w.shape} "
                         f"({'(C, k, k, 1)' if depthwise else '(O, k, k, C)'}) disagree")
    cols, (N, Ho, Wo) = im2col(a, w.shape[1], stride, padding)
    if depthwise:
        kk, C = w.shape[1] * w.shape[2], w.shape[0]
        out = np.einsum("mjc,cj->mc", cols.reshape(-1, kk, C).astype(np.int64, copy=False),
                        w.reshape(C, kk).astype(np.int64)).reshape(N, Ho, Wo, C)
    else:
        out = _int_matmul(cols, w.reshape(w.shape[0], -1)).reshape(N, Ho, Wo, w.shape[0])
    if bias is not None:
        out += _check_int(bias, "bias").astype(np.int64)
    return out


def dense(a, w, bias=None) -> np.ndarray:
    """Integer dense layer on ``a`` flattened per image (``(N, ...)`` -> ``(N, O)``), int64.

    ``acc[n, o] = bias[o] + sum_i w[o, i] * f[n, i]`` with ``f`` the row-major flattening of each
    image (for ``(H, W, C)``: ``f[(y*W + x)*C + c] = a[y, x, c]``); ``bias=None`` adds nothing."""
    a = _check_int(a, "a")
    w = _check_int(w, "w")
    a2 = a.reshape(a.shape[0], -1)
    if w.ndim != 2 or w.shape[1] != a2.shape[1]:
        raise ValueError(f"dense: input of {a2.shape[1]} features and weight {w.shape} disagree")
    out = _int_matmul(a2, w)
    if bias is not None:
        out += _check_int(bias, "bias").astype(np.int64)
    return out


def add(xs, lshifts) -> np.ndarray:
    """Residual add into accumulator units: ``sum_k xs[k] << lshifts[k]`` (int64)."""
    if len(xs) != len(lshifts):
        raise ValueError("add: one lshift per input")
    out = np.zeros(np.broadcast_shapes(*(np.shape(x) for x in xs)), np.int64)
    for x, s in zip(xs, lshifts, strict=True):
        out += _check_int(x, "add input").astype(np.int64) << np.int64(s)
    return out


def gap(a) -> np.ndarray:
    """Global average pooling as a sum over positions: ``(N, H, W, C)`` -> ``(N, C)`` int64
    (the 1/(H*W) lives in the next layer's weights)."""
    a = _check_int(a, "a")
    return a.astype(np.int64).sum(axis=(1, 2))


def _pool_windows(a, kernel: int, stride: int, padding: int) -> np.ndarray:
    """The ``kernel x kernel`` windows of a zero-padded ``(N, H, W, C)`` map as
    ``(N, Ho, Wo, C, kernel*kernel)`` int64."""
    a = _check_int(a, "a")
    if a.ndim != 4:
        raise ValueError(f"pool input must be (N, H, W, C), not shape {a.shape}")
    N, _, _, C = a.shape
    cols, (N, Ho, Wo) = im2col(a.astype(np.int64), kernel, stride, padding)
    return cols.reshape(N, Ho, Wo, kernel * kernel, C).swapaxes(-1, -2)


def maxpool2d(a, kernel: int, stride: int, padding: int = 0) -> np.ndarray:
    """Max pooling of non-negative integers: ``out[n, oy, ox, c]`` is the largest of
    ``a_pad[n, oy*stride + ky, ox*stride + kx, c]`` over ``ky, kx`` in ``0..kernel-1``, with
    ``a_pad`` the input with ``padding`` zeros on all four sides; ``(N, Ho, Wo, C)`` int64 with
    ``Ho`` as for :func:`conv2d`."""
    return _pool_windows(a, kernel, stride, padding).max(-1)


def avgpool2d(a, kernel: int, stride: int, padding: int = 0) -> np.ndarray:
    """Average pooling as a window sum: ``out[n, oy, ox, c]`` is the sum of
    ``a_pad[n, oy*stride + ky, ox*stride + kx, c]`` over ``ky, kx`` in ``0..kernel-1`` (padding
    zeros counted, no division: the ``1/kernel**2`` lives in the next layer's weights)."""
    return _pool_windows(a, kernel, stride, padding).sum(-1)


def requant_inputs(accs, rshifts) -> list:
    """The inputs ``v_k = requant_shift(accs[k], rshifts[k])`` of a unit, the second one
    broadcast against the first.

    A two-input unit's second input ``g`` has the first's shape or fewer axes: with one axis
    it pairs with the first input's last axis (numpy broadcasting: ``x[..., c]`` with
    ``g[c]``); with two or more it keeps its first (image) axis and its other axes pair with
    the first input's trailing axes, so ``g`` of shape ``(N, C)`` becomes ``(N, 1, 1, C)``
    against ``x`` of shape ``(N, H, W, C)`` (``x[n, h, w, c]`` pairs with ``g[n, c]``, the
    squeeze-and-excitation gate; ``docs/integer_semantics.md``).

    Returns
    -------
    list of numpy.ndarray of int64
        Not yet saturated to the unit's input ranges (:class:`~python_ref.quant.IntAmosUnit`
        does that).
    """
    if len(accs) != len(rshifts):
        raise ValueError(f"one rshift per unit input: {len(accs)} input(s), "
                         f"{len(rshifts)} shift(s)")
    v = [requant_shift(acc, S) for acc, S in zip(accs, rshifts, strict=True)]
    if len(v) == 2 and 2 <= v[1].ndim < v[0].ndim:
        g = v[1]
        v[1] = g.reshape(g.shape[:1] + (1,) * (v[0].ndim - g.ndim) + g.shape[1:])
    if len(v) == 2:
        try:
            np.broadcast_shapes(v[0].shape, v[1].shape)
        except ValueError:
            raise ValueError(f"unit inputs of shapes {v[0].shape} and {v[1].shape} do not "
                             "broadcast") from None
        v[1] = np.broadcast_to(v[1], v[0].shape)
    return v


def requant_unit(accs, rshifts, unit: IntAmosUnit, closed_form_relu: bool | None = None):
    """Requantise each input by its shift and apply the AMOS unit.

    Parameters
    ----------
    accs : list of int arrays
        One accumulator tensor per unit input (1 or 2); for two, the second is broadcast
        against the first (:func:`requant_inputs`; the outputs have the first's shape).
    rshifts : list of int
        The per-input power-of-two shift ``S`` (``(acc + 2**(S-1)) >> S``).
    unit : IntAmosUnit
    closed_form_relu : bool, optional
        Use :func:`~python_ref.quant.relu_int` (the proven-equal fast path) for a ReLU unit;
        by default when ``unit.name == "relu"`` and the unit has one input. The name alone
        decides: a general unit named ``"relu"`` is evaluated as ``clamp(v, 0, 2**K - 1)``
        whatever its arrays (``docs/ir.md``, "Units").

    Returns
    -------
    y : numpy.ndarray of int64
        Unit outputs, the shape of the inputs.
    spikes : numpy.ndarray of int64
        Number of spikes each unit emitted (same shape).
    """
    v = requant_inputs(accs, rshifts)
    if closed_form_relu is None:
        closed_form_relu = unit.name == "relu" and unit.inputs == 1
    if closed_form_relu:
        y = relu_int(v[0], unit.K)
        return y, np.bitwise_count(y)  # ReLU spikes are the binary digits of y
    z = unit.spikes(*v)
    return z.astype(np.int64) @ unit.d, z.sum(-1, dtype=np.int64)


def unit_spikes(accs, rshifts, unit: IntAmosUnit) -> np.ndarray:
    """Spikes ``(..., K)`` (time step last) of a unit after requantisation (a second input
    broadcast as in :func:`requant_inputs`)."""
    v = requant_inputs(accs, rshifts)
    if unit.name == "relu" and unit.inputs == 1:
        return relu_spikes(relu_int(v[0], unit.K), unit.K)
    return unit.spikes(*v)


def exact_gate(accs, rshifts, unit: IntAmosUnit) -> np.ndarray:
    """A two-input unit's exact product in place of its spikes (reference-only evaluation).

    ``v1, v2`` are the unit's inputs as the unit sees them (:func:`requant_inputs`, each
    saturated to ``unit.in_range`` / ``unit.in2_range``); the output is
    ``y = rint(v1 * v2 * (in_scale * in2_scale / out_scale))``, the real product
    ``(v1 * in_scale) * (v2 * in2_scale)`` on the unit's output grid, computed in float64
    (``v1 * v2`` is exact there when ``|v1 * v2| < 2**53``; one rounding of the product with the
    scale ratio, then ``numpy.rint``, ties to even). This replaces only the trained
    multiplication unit's approximation; the requantisation and the saturation of the inputs
    are those of the unit. No hardware computes it (``run(..., exact_gates=True)``).

    Returns
    -------
    numpy.ndarray of int64, the shape of the first input
    """
    if unit.inputs != 2:
        raise ValueError(f"unit {unit.name!r} has one input; an exact gate needs two")
    v1, v2 = requant_inputs(accs, rshifts)
    v1 = np.clip(v1, *unit.in_range).astype(np.float64)
    v2 = np.clip(v2, *unit.in2_range).astype(np.float64)
    k = unit.in_scale * unit.in2_scale / unit.out_scale
    return np.rint(v1 * v2 * k).astype(np.int64)


def exact_gate_range(unit: IntAmosUnit) -> tuple[int, int]:
    """The bounds ``(lo, hi)`` of :func:`exact_gate`'s output over the unit's input ranges
    (its value at the corners of ``in_range x in2_range``, where a product is extreme)."""
    vals = [int(exact_gate([np.int64(a), np.int64(b)], [0, 0], unit))
            for a in unit.in_range for b in unit.in2_range]
    return min(vals + [0]), max(vals + [0])


def signed_spikes(y, width: int) -> tuple[np.ndarray, np.ndarray]:
    """A signed integer as the spikes of its two's-complement word, MSB first.

    Returns
    -------
    z : numpy.ndarray of uint8, shape ``y.shape + (width,)``
        ``z[..., t]`` is bit ``width - 1 - t`` of ``y mod 2**width``.
    d : numpy.ndarray of int64, shape (width,)
        The bits' weights: ``-2**(width-1)``, then ``2**(width-2), ..., 1``, so
        ``z @ d == y`` for every ``y`` in ``[-2**(width-1), 2**(width-1) - 1]``.
    """
    y = np.asarray(y, np.int64)
    lo, hi = -(2 ** (width - 1)), 2 ** (width - 1) - 1
    if y.size and (y.min() < lo or y.max() > hi):
        raise ValueError(f"values outside [{lo}, {hi}] do not fit a {width}-bit word")
    d = 2 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    d[0] = -d[0]
    return relu_spikes(y & ((1 << width) - 1), width), d


def input_spikes(x, bits: int) -> np.ndarray:
    """The input pixels as spike trains: bits MSB first, ``(..., bits)``, and their weights."""
    return relu_spikes(x, bits), 2 ** np.arange(bits - 1, -1, -1, dtype=np.int64)


def conv2d_bitserial(z, d, w, bias=None, stride: int = 1, padding: int = 0,
                     groups: int = 1) -> np.ndarray:
    """Convolution from input spikes, one time step at a time.

    ``acc = sum_t d[t] * conv(z[..., t], W) + bias``: at time step ``t`` the layer adds the
    weights of the inputs that spiked, scaled by the producing unit's output weight ``d[t]``.
    For a ReLU unit ``d[t] = 2**(K-1-t)``, which the hardware realises as shift-and-add (Horner:
    ``acc = 2*acc + partial_t``); the two forms are equal in integers.

    Parameters
    ----------
    z : array of 0/1, shape (N, H, W, C, K)
        Spikes, time step last (MSB first for ReLU).
    d : array of int, shape (K,)
        Output weights of the producing unit.
    w, bias, stride, padding, groups
        As :func:`conv2d`.
    """
    z = _check_int(z, "z")
    d = np.asarray(d, np.int64)
    if z.shape[-1] != d.size:
        raise ValueError(f"spikes have {z.shape[-1]} time steps but d has {d.size}")
    acc = None
    for t in range(d.size):
        part = conv2d(z[..., t], w, None, stride, padding, groups)
        acc = d[t] * part if acc is None else acc + d[t] * part
    if bias is not None:
        acc += _check_int(bias, "bias").astype(np.int64)
    return acc


def dense_bitserial(z, d, w, bias=None) -> np.ndarray:
    """Dense layer from input spikes ``z`` (``(N, ..., K)``), time step by time step; see
    :func:`conv2d_bitserial`."""
    z = _check_int(z, "z")
    d = np.asarray(d, np.int64)
    if z.shape[-1] != d.size:
        raise ValueError(f"spikes have {z.shape[-1]} time steps but d has {d.size}")
    acc = None
    for t in range(d.size):
        part = dense(z[..., t], w, None)
        acc = d[t] * part if acc is None else acc + d[t] * part
    if bias is not None:
        acc += _check_int(bias, "bias").astype(np.int64)
    return acc


def conv_cover(n: int, kernel: int, stride: int, padding: int) -> np.ndarray:
    """How many output positions of a convolution read each input position, along one axis.

    Output position ``o`` (``0 <= o < (n + 2*padding - kernel) // stride + 1``) reads the input
    positions ``o*stride - padding .. o*stride - padding + kernel - 1`` that lie in ``0..n-1``
    (the others are padding zeros), so the count is exact at the borders and for any stride.

    Returns
    -------
    numpy.ndarray of int64, shape (n,)
    """
    cover = np.zeros(n, np.int64)
    for o in range((n + 2 * padding - kernel) // stride + 1):
        lo = o * stride - padding
        cover[max(lo, 0):min(lo + kernel, n)] += 1
    return cover


def fan_out(shape, consumer: dict, out_shape=None) -> np.ndarray:
    """The fan-out of each element of a spike map read by one consumer layer.

    The number of operations one spike at that element causes in ``consumer``: for a ``conv``,
    the number of (output position, output channel) pairs whose window covers the element's
    position, ``out_channels * conv_cover(H)[y] * conv_cover(W)[x]`` (each is one weight the
    spike is multiplied with), without the ``out_channels`` factor for a depthwise conv (one
    output channel per input channel); for a ``maxpool`` or ``avgpool``, the number of windows
    that cover the element, ``conv_cover(H)[y] * conv_cover(W)[x]``; for a ``dense``,
    ``out_features``; for an ``add``, a ``gap`` or an ``amos`` layer, 1 (one addition), except
    for the broadcast input ``g`` of a two-input ``amos`` layer (the squeeze-and-excitation gate,
    ``g`` of shape ``(C,)`` against ``x`` of shape ``(H, W, C)``): each ``g[c]`` feeds the
    ``H*W`` units of channel ``c``, one addition into each unit's membrane, so its fan-out is
    ``prod(out_shape) / prod(shape)`` = ``H*W``. A map read by several consumers (or twice by
    one) has the sum of their fan-outs (``docs/integer_semantics.md``, "Synaptic operations").

    Parameters
    ----------
    shape : tuple of int
        The spike map's shape without the image axis (``(H, W, C)`` for a conv input).
    consumer : dict
        The consuming layer's node.
    out_shape : tuple of int, optional
        The consumer's output shape without the image axis; needed only for an ``amos`` layer
        whose input is smaller than its output (a broadcast ``g``), taken as ``shape``
        when absent.

    Returns
    -------
    numpy.ndarray of int64, shape ``shape``
    """
    shape = tuple(shape)
    op = consumer["op"]
    if op in ("conv", "maxpool", "avgpool"):
        H, W, _ = shape
        k, s, p = consumer["kernel"], consumer["stride"], consumer["padding"]
        per = consumer["out_channels"] if op == "conv" and _ir.conv_groups(consumer) == 1 else 1
        fan = (per * conv_cover(H, k, s, p)[:, None, None]
               * conv_cover(W, k, s, p)[None, :, None])
        return np.broadcast_to(fan, shape).astype(np.int64)
    if op == "dense":
        return np.full(shape, consumer["out_features"], np.int64)
    if op == "amos" and out_shape is not None and tuple(out_shape) != shape:
        per = math.prod(out_shape) // math.prod(shape)
        if per * math.prod(shape) != math.prod(out_shape):
            raise _ir.IRError(f"layer {consumer['name']!r}: an input of shape {shape} does not "
                              f"broadcast to the output shape {tuple(out_shape)}")
        return np.full(shape, per, np.int64)
    if op in ("add", "gap", "amos"):
        return np.ones(shape, np.int64)
    raise _ir.IRError(f"layer {consumer['name']!r}: op {op!r} does not read spikes")


_PRODUCERS = ("input", "amos", "maxpool", "avgpool")


def _fan_outs(g: _ir.Graph) -> dict:
    """Spike producer (the ``input``, an ``amos``, ``maxpool`` or ``avgpool`` layer) ->
    ``[(consumer, fan-out map)]``."""
    shapes = {k: v["shape"] for k, v in _ir.validate(g).items()}
    producers = {n["name"] for n in g.nodes if n["op"] in _PRODUCERS}
    fans: dict[str, list] = {}
    for n in g.nodes:
        for i in n.get("inputs", []):
            if i in producers:
                fans.setdefault(i, []).append((n["name"], fan_out(shapes[i], n,
                                                                  shapes[n["name"]])))
    return fans


def _record_synops(state: dict, name: str, count: np.ndarray, into: str) -> None:
    """Add each consumer's ``sum(count * fan-out)`` per image to ``state[into]``."""
    fans = state.get("fans")
    if not fans:
        return
    flat = count.reshape(len(count), -1).astype(np.int64)
    for consumer, fan in fans.get(name, ()):
        per = flat @ fan.reshape(-1)
        state[into][consumer] = state[into].get(consumer, 0) + per


@dataclass
class SimResult:
    """What :func:`run` returns.

    Members
    -------
    logits : numpy.ndarray of int64, shape (N, classes)
        The output layer's accumulators.
    classes : numpy.ndarray of int64, shape (N,)
        Argmax of the logits, lowest index on ties.
    spikes : dict
        AMOS layer name -> spikes per image, int64 ``(N,)``: the units' spike counts summed over
        the layer's elements (``popcount(y)`` per element for ReLU units).
    traces : dict
        Layer name -> its integer output ``(N, ...)`` for the traced layers.
    synops : dict
        With ``run(..., synops=True)``: consuming layer name -> int64 ``(N,)``, the synaptic
        operations it does per image on the spikes of the ``amos`` layers it reads, each spike
        times its fan-out into that layer (:func:`fan_out`); layers reading no spikes are
        absent. Empty otherwise. The output bits of a ``maxpool`` or ``avgpool`` count as
        spikes (``popcount`` of each value) of a producer too, though ``spikes`` does not count
        them.
    input_synops : dict
        The same for the input pixels' bits taken as spikes (``popcount`` of each pixel), which
        ``spikes`` does not count, and for the output bits of pools that read the pixels
        (through pools only).
    """

    logits: np.ndarray
    classes: np.ndarray
    spikes: dict = field(default_factory=dict)
    traces: dict = field(default_factory=dict)
    synops: dict = field(default_factory=dict)
    input_synops: dict = field(default_factory=dict)

    @property
    def spikes_per_image(self) -> np.ndarray:
        """Total spikes of all AMOS units, per image."""
        return sum(self.spikes.values()) if self.spikes else np.zeros(len(self.logits), np.int64)


def _check_input(g: _ir.Graph, x) -> np.ndarray:
    inp = g.nodes[0]
    x = np.asarray(x)
    want = tuple(inp["shape"])
    if x.ndim != len(want) + 1 or tuple(x.shape[1:]) != want:
        dims = ", ".join(map(str, want))
        raise _ir.IRError(f"layer {inp['name']!r}: images must have shape (N, {dims}), "
                          f"not {x.shape}")
    if x.dtype.kind not in "iub":
        raise _ir.IRError(f"layer {inp['name']!r}: images must hold integers, not {x.dtype}")
    hi = 2 ** inp["bits"] - 1
    if x.size and (x.min() < 0 or x.max() > hi):
        raise _ir.IRError(f"layer {inp['name']!r}: pixel values must lie in 0..{hi}")
    return x


def _consumer_counts(g: _ir.Graph) -> dict:
    """Tensor name -> how many layers read it."""
    consumers: dict[str, int] = {}
    for n in g.nodes:
        for i in n.get("inputs", []):
            consumers[i] = consumers.get(i, 0) + 1
    return consumers


def _weighted(g: _ir.Graph, n: dict, ins: list, spk: dict, bitserial: bool) -> np.ndarray:
    """A ``conv`` or ``dense`` layer, from its input's spikes when ``bitserial`` and it has
    them."""
    w = g.arrays[n["weight"]]
    b = g.arrays[n["bias"]] if n.get("bias") else None
    src = n["inputs"][0]
    conv = n["op"] == "conv"
    if bitserial and src in spk:
        z, d = spk[src]
        if conv:
            return conv2d_bitserial(z, d, w, b, n["stride"], n["padding"], _ir.conv_groups(n))
        return dense_bitserial(z, d, w, b)
    if conv:
        return conv2d(ins[0], w, b, n["stride"], n["padding"], _ir.conv_groups(n))
    return dense(ins[0], w, b)


def _pool_root(g: _ir.Graph, n: dict) -> dict:
    """The node a chain of pools starts from (``n`` itself when it is no pool)."""
    while n["op"] in ("maxpool", "avgpool"):
        n = g.node[n["inputs"][0]]
    return n


def _pool(g: _ir.Graph, n: dict, a: np.ndarray, state: dict, bitserial: bool) -> np.ndarray:
    """A ``maxpool`` or ``avgpool`` layer: its output, the SynOps of its consumers (its output
    bits are spikes, counted with the pixels' when the pools read the input) and, when
    ``bitserial``, its output as spikes, MSB first, in ``state["spk"]``."""
    pool = maxpool2d if n["op"] == "maxpool" else avgpool2d
    out = pool(a, n["kernel"], n["stride"], n["padding"])
    into = "input_synops" if _pool_root(g, n)["op"] == "input" else "synops"
    _record_synops(state, n["name"], np.bitwise_count(out), into)
    if bitserial:
        state["spk"][n["name"]] = input_spikes(out, _ir.activation_bits(g, n["name"]))
    return out


def _run_node(g: _ir.Graph, units: dict, n: dict, ins: list, x: np.ndarray, state: dict,
              bitserial: bool) -> np.ndarray:
    """One layer's output; records an ``amos`` layer's spike count per image in
    ``state["spikes"]``, when ``bitserial`` the spikes a layer emits in ``state["spk"]`` and,
    when ``state["fans"]`` holds the fan-outs, the synaptic operations of its consumers in
    ``state["synops"]`` / ``state["input_synops"]``."""
    op, name = n["op"], n["name"]
    spk = state["spk"]
    if op == "input":
        out = x.astype(np.int64)
        _record_synops(state, name, np.bitwise_count(out), "input_synops")
        if bitserial:
            spk[name] = input_spikes(out, n["bits"])
    elif op in ("conv", "dense"):
        out = _weighted(g, n, ins, spk, bitserial)
    elif op == "add":
        out = add(ins, n["lshift"])
    elif op == "gap":
        out = gap(ins[0])
    elif op in ("maxpool", "avgpool"):
        out = _pool(g, n, ins[0], state, bitserial)
    else:
        out = _amos(n, units[n["unit"]], ins, len(x), state, bitserial)
    return out


def _amos(n: dict, unit: IntAmosUnit, ins: list, batch: int, state: dict,
          bitserial: bool) -> np.ndarray:
    """An ``amos`` layer: its output, its spike count per image in ``state["spikes"]``, its
    consumers' SynOps and, when ``bitserial``, its spikes in ``state["spk"]``. When
    ``bitserial`` an input that arrives as spikes is rebuilt from them (``z @ d``), so a
    two-input unit (the gate) reads the words its producers emit. With
    ``state["exact_gates"]`` a two-input unit computes :func:`exact_gate` instead and emits
    its output as a two's-complement word (:func:`signed_spikes`; its spikes are that word's
    one bits)."""
    name, spk = n["name"], state["spk"]
    if bitserial:
        ins = [spk[i][0].astype(np.int64) @ spk[i][1] if i in spk else a
               for i, a in zip(n["inputs"], ins, strict=True)]
    if unit.inputs == 2 and state.get("exact_gates"):
        out = exact_gate(ins, n["rshift"], unit)
        z, d = signed_spikes(out, signed_width(*exact_gate_range(unit)))
        count = z.sum(-1, dtype=np.int64)
    else:
        out, count = requant_unit(ins, n["rshift"], unit)
        z, d = (unit_spikes(ins, n["rshift"], unit), unit.d) if bitserial else (None, None)
    state["spikes"][name] = count.reshape(batch, -1).sum(1)
    _record_synops(state, name, count, "synops")
    if bitserial:
        spk[name] = (z, d)
    return out


def _run_batch(g: _ir.Graph, units: dict, x: np.ndarray, want_trace, bitserial: bool,
               fans: dict | None = None, exact_gates: bool = False):
    vals: dict[str, np.ndarray] = {}
    # spk: layer -> (spikes (..., K), d) for bit-serial consumers; spikes: count per image;
    # fans: producer -> [(consumer, fan-out map)] when SynOps are counted, into (input_)synops
    # exact_gates: two-input units compute exact_gate
    state: dict = {"spk": {}, "spikes": {}, "fans": fans or {}, "synops": {},
                   "input_synops": {}, "exact_gates": exact_gates}
    consumers = _consumer_counts(g)
    keep = set(g.outputs) | (set(want_trace) if want_trace is not True else set(vals))
    for n in g.nodes:
        ins = [vals[i] for i in n.get("inputs", [])]
        vals[n["name"]] = _run_node(g, units, n, ins, x, state, bitserial)
        # free inputs that no later layer reads
        for i in n.get("inputs", []):
            consumers[i] -= 1
            if consumers[i] == 0 and want_trace is not True and i not in keep:
                vals.pop(i, None)
                state["spk"].pop(i, None)
    if want_trace is True:
        traces = vals
    else:
        traces = {k: vals[k] for k in want_trace}
    return vals[g.outputs[0]], state, traces


def _traced(g: _ir.Graph, trace):
    """``trace`` as :func:`_run_batch` takes it: ``True`` or a list of layer names."""
    if trace not in (True, False):
        trace = list(trace)
        names = {n["name"] for n in g.nodes}
        for t in trace:
            if t not in names:
                raise _ir.IRError(f"cannot trace layer {t!r}: no such layer")
    return True if trace is True else (trace or [])


def _check_gate_scales(g: _ir.Graph) -> None:
    """Every two-input unit an ``amos`` layer uses states the scales :func:`exact_gate`
    needs."""
    for n in g.amos_nodes():
        spec = g.units[n["unit"]]
        if spec.get("kind") == "amos" and spec.get("c2"):
            missing = [k for k in ("in_scale", "in2_scale", "out_scale") if spec.get(k) is None]
            if missing:
                raise _ir.IRError(f"layer {n['name']!r}: exact_gates needs the unit "
                                  f"{n['unit']!r} to give {', '.join(missing)}")


def run(g: _ir.Graph, x, *, batch_size: int = 100, trace=False, bitserial: bool = False,
        progress: bool = False, check: bool = True, synops: bool = False,
        exact_gates: bool = False) -> SimResult:
    """Run an integer SNN description on images.

    Parameters
    ----------
    g : Graph
        The description (validated first unless ``check=False``).
    x : array of int, shape (N, *input shape)
        Raw pixels (uint8 for CIFAR-10 and digits, ``(N, H, W, C)``).
    batch_size : int
        Images per vectorised step (memory grows linearly with it).
    trace : bool or list of str
        ``True``: return every layer's output; a list: those layers only.
    bitserial : bool
        Feed every layer that reads spikes (the input pixels' bits, every AMOS layer's output
        and every pool's output bits, MSB first) through :func:`conv2d_bitserial` /
        :func:`dense_bitserial`, time step by time step.
    progress : bool
        Show a tqdm bar over batches.
    check : bool
        Validate ``g`` first.
    synops : bool
        Also count the synaptic operations (each spike times its fan-out) per consuming layer
        and image, in integers, into ``SimResult.synops`` and ``SimResult.input_synops``;
        nothing else in the result changes.
    exact_gates : bool
        Reference-only evaluation, no hardware mode: every two-input ``amos`` layer (the
        squeeze-and-excitation gate) computes the exact product of its requantised, saturated
        inputs on its output grid (:func:`exact_gate`) instead of its trained unit, so the
        accuracy the multiplication unit costs can be measured. Each such unit must give
        ``in_scale``, ``in2_scale`` and ``out_scale`` in the description. Its spikes (and the
        SynOps of its consumers) are then the one bits of the output's two's-complement word.

    Returns
    -------
    SimResult
    """
    if check:
        _ir.validate(g)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, not {batch_size!r}")
    x = _check_input(g, x)
    want = _traced(g, trace)
    units = {u: g.unit(u) for u in g.units}
    if exact_gates:
        _check_gate_scales(g)
    fans = _fan_outs(g) if synops else None
    logits = []
    per: dict[str, dict] = {"spikes": {}, "traces": {}, "synops": {}, "input_synops": {}}
    it = range(0, len(x), batch_size)
    if progress:
        it = tqdm(it, desc=f"SNN {g.name}", unit="batch")
    for s in it:
        lo, state, tr = _run_batch(g, units, x[s:s + batch_size], want, bitserial, fans,
                                   exact_gates)
        logits.append(lo)
        for key, got in (("spikes", state["spikes"]), ("traces", tr),
                         ("synops", state["synops"]), ("input_synops", state["input_synops"])):
            for k, v in got.items():
                per[key].setdefault(k, []).append(v)
    if not logits:
        raise ValueError("run needs at least one image")
    logits = np.concatenate(logits)
    cat = {key: {k: np.concatenate(v) for k, v in d.items()} for key, d in per.items()}
    return SimResult(logits=logits, classes=np.argmax(logits, axis=1).astype(np.int64), **cat)
