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

from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from . import ir as _ir
from .quant import IntAmosUnit, relu_int, relu_spikes, requant_shift

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


def requant_unit(accs, rshifts, unit: IntAmosUnit, closed_form_relu: bool | None = None):
    """Requantise each input by its shift and apply the AMOS unit.

    Parameters
    ----------
    accs : list of int arrays
        One accumulator tensor per unit input (1 or 2).
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
    v = [requant_shift(acc, S) for acc, S in zip(accs, rshifts, strict=True)]
    if closed_form_relu is None:
        closed_form_relu = unit.name == "relu" and unit.inputs == 1
    if closed_form_relu:
        y = relu_int(v[0], unit.K)
        return y, np.bitwise_count(y)  # ReLU spikes are the binary digits of y
    z = unit.spikes(*v)
    return z.astype(np.int64) @ unit.d, z.sum(-1, dtype=np.int64)


def unit_spikes(accs, rshifts, unit: IntAmosUnit) -> np.ndarray:
    """Spikes ``(..., K)`` (time step last) of a unit after requantisation."""
    v = [requant_shift(acc, S) for acc, S in zip(accs, rshifts, strict=True)]
    if unit.name == "relu" and unit.inputs == 1:
        return relu_spikes(relu_int(v[0], unit.K), unit.K)
    return unit.spikes(*v)


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


def fan_out(shape, consumer: dict) -> np.ndarray:
    """The fan-out of each element of a spike map read by one consumer layer.

    The number of operations one spike at that element causes in ``consumer``: for a ``conv``,
    the number of (output position, output channel) pairs whose window covers the element's
    position, ``out_channels * conv_cover(H)[y] * conv_cover(W)[x]`` (each is one weight the
    spike is multiplied with), without the ``out_channels`` factor for a depthwise conv (one
    output channel per input channel); for a ``maxpool`` or ``avgpool``, the number of windows
    that cover the element, ``conv_cover(H)[y] * conv_cover(W)[x]``; for a ``dense``,
    ``out_features``; for an ``add``, a ``gap`` or an ``amos`` layer, 1 (one addition). A map read
    by several consumers (or twice by one) has
    the sum of their fan-outs (``docs/integer_semantics.md``, "Synaptic operations").

    Parameters
    ----------
    shape : tuple of int
        The spike map's shape without the image axis (``(H, W, C)`` for a conv input).
    consumer : dict
        The consuming layer's node.

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
                fans.setdefault(i, []).append((n["name"], fan_out(shapes[i], n)))
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
    else:  # amos
        unit = units[n["unit"]]
        out, count = requant_unit(ins, n["rshift"], unit)
        state["spikes"][name] = count.reshape(len(x), -1).sum(1)
        _record_synops(state, name, count, "synops")
        if bitserial:
            spk[name] = (unit_spikes(ins, n["rshift"], unit), unit.d)
    return out


def _run_batch(g: _ir.Graph, units: dict, x: np.ndarray, want_trace, bitserial: bool,
               fans: dict | None = None):
    vals: dict[str, np.ndarray] = {}
    # spk: layer -> (spikes (..., K), d) for bit-serial consumers; spikes: count per image;
    # fans: producer -> [(consumer, fan-out map)] when SynOps are counted, into (input_)synops
    state: dict[str, dict] = {"spk": {}, "spikes": {}, "fans": fans or {}, "synops": {},
                              "input_synops": {}}
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


def run(g: _ir.Graph, x, *, batch_size: int = 100, trace=False, bitserial: bool = False,
        progress: bool = False, check: bool = True, synops: bool = False) -> SimResult:
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
    fans = _fan_outs(g) if synops else None
    logits = []
    per: dict[str, dict] = {"spikes": {}, "traces": {}, "synops": {}, "input_synops": {}}
    it = range(0, len(x), batch_size)
    if progress:
        it = tqdm(it, desc=f"SNN {g.name}", unit="batch")
    for s in it:
        lo, state, tr = _run_batch(g, units, x[s:s + batch_size], want, bitserial, fans)
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
