"""Integer semantics of amos_hw, implemented once (see ``docs/integer_semantics.md``).

Everything a converted network computes in integers is defined here: the closed-form integer ReLU
unit and its spikes, the power-of-two requantisation, the general integer AMOS unit
(:class:`IntAmosUnit`, the golden model of the hardware's K pipelined stages), and the fixed-point
rule that turns a trained float unit into an integer one (:func:`quantize_unit`).

All arithmetic is exact int64. :class:`IntAmosUnit` checks at construction that no intermediate
sum can leave the int64 range over its input range, and reports the signed bit widths that the
hardware needs (:attr:`IntAmosUnit.widths`).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "relu_int",
    "relu_spikes",
    "requant_shift",
    "IntAmosUnit",
    "quantize_unit",
    "quantize_unit_for_input",
    "quantize_unit_for_inputs",
    "to_int_input",
    "signed_width",
]

_INT64_SAFE = 2**62


def _check_pos_int(value, what: str, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{what} must be a positive integer, not {value!r}")
    if hi is not None and value > hi:
        raise ValueError(f"{what} must be at most {hi}, not {value!r}")
    return int(value)


def _check_nonneg_int(value, what: str, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{what} must be a non-negative integer, not {value!r}")
    if hi is not None and value > hi:
        raise ValueError(f"{what} must be at most {hi}, not {value!r}")
    return int(value)


def _as_int64(a, what: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.dtype.kind not in "iub" and arr.size:
        raise TypeError(f"{what} must hold integers, not {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def signed_width(lo: int, hi: int) -> int:
    """Bits of the smallest two's-complement signed integer holding every value in ``[lo, hi]``.

    Parameters
    ----------
    lo, hi : int
        Inclusive range (``lo <= hi``).

    Returns
    -------
    int
        Width in bits, at least 1.
    """
    lo, hi = int(lo), int(hi)
    if lo > hi:
        raise ValueError(f"empty range [{lo}, {hi}]")
    w = 1
    while not (-(2 ** (w - 1)) <= lo and hi <= 2 ** (w - 1) - 1):
        w += 1
    return w


# ---------------------------------------------------------------------------------------------
# Closed-form integer ReLU unit and requantisation
# ---------------------------------------------------------------------------------------------


def relu_int(v, K: int) -> np.ndarray:
    """Closed-form integer ReLU AMOS unit with ``K`` neurons: ``clamp(v, 0, 2**K - 1)``.

    This is the fast path of ``IntAmosUnit.relu(K)(v)`` (a test proves they agree).

    Parameters
    ----------
    v : array_like of int
        Requantised accumulator values.
    K : int
        Neurons per unit (1..62).

    Returns
    -------
    numpy.ndarray of int64
    """
    K = _check_pos_int(K, "K", 62)
    return np.clip(_as_int64(v, "v"), 0, 2**K - 1)


def relu_spikes(a, K: int) -> np.ndarray:
    """Spikes of the closed-form ReLU unit for activations ``a`` (``0 <= a < 2**K``).

    Parameters
    ----------
    a : array_like of int
        Activations, the output of :func:`relu_int`.
    K : int
        Neurons per unit (1..62).

    Returns
    -------
    numpy.ndarray of uint8, shape ``a.shape + (K,)``
        ``out[..., t]`` is the spike at time step ``t``: bit ``K - 1 - t`` of ``a`` (MSB first).
    """
    K = _check_pos_int(K, "K", 62)
    a = _as_int64(a, "a")
    if a.size and (a.min() < 0 or a.max() > 2**K - 1):
        raise ValueError(f"activations must lie in 0..{2**K - 1} for K={K}")
    shifts = np.arange(K - 1, -1, -1, dtype=np.int64)
    return ((a[..., None] >> shifts) & 1).astype(np.uint8)


def requant_shift(acc, S: int) -> np.ndarray:
    """Power-of-two requantisation with round-half-up: ``(acc + 2**(S-1)) >> S``.

    The shift is arithmetic (floor), so negative values round half towards +inf.

    Parameters
    ----------
    acc : array_like of int
        Accumulator values.
    S : int
        Shift, ``0 <= S <= 62``; ``S == 0`` returns ``acc`` unchanged.

    Returns
    -------
    numpy.ndarray of int64
    """
    S = _check_nonneg_int(S, "S", 62)
    acc = _as_int64(acc, "acc")
    if S == 0:
        return acc.copy()
    return (acc + (np.int64(1) << np.int64(S - 1))) >> np.int64(S)


# ---------------------------------------------------------------------------------------------
# The integer AMOS unit
# ---------------------------------------------------------------------------------------------


def _read_only(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.int64, copy=True)
    a.setflags(write=False)
    return a


def _unit_arrays(c, T, h, d, c2) -> tuple:
    """A unit's ``c``, ``T``, ``h``, ``d`` and ``c2`` (or None) as int64 arrays of the shapes K
    neurons need (``K`` is the length of ``c``)."""
    c = _as_int64(c, "c")
    if c.ndim != 1 or c.size < 1:
        raise ValueError(f"c must be a non-empty 1-D sequence, not shape {c.shape}")
    K = c.size
    T = _as_int64(T, "T")
    d = _as_int64(d, "d")
    h = _as_int64(h, "h")
    for what, arr in (("T", T), ("d", d)):
        if arr.shape != (K,):
            raise ValueError(f"{what} must have length K={K}, not shape {arr.shape}")
    if h.shape != (K, K):
        raise ValueError(f"h must have shape ({K}, {K}), not {h.shape}")
    if c2 is not None:
        c2 = _as_int64(c2, "c2")
        if c2.shape != (K,):
            raise ValueError(f"c2 must have length K={K}, not shape {c2.shape}")
    return c, T, h, d, c2


class UnitParameters:
    """Read-only members shared by the float (:class:`python_ref.units.AmosUnit`) and the integer
    (:class:`IntAmosUnit`) AMOS unit: both keep ``_name``, ``_K``, ``_c``, ``_c2`` (``None`` for
    one input), ``_T``, ``_h`` and ``_d``."""

    name = property(lambda self: self._name)
    K = property(lambda self: self._K)
    inputs = property(lambda self: 1 if self._c2 is None else 2)
    c = property(lambda self: self._c)
    c2 = property(lambda self: self._c2)
    T = property(lambda self: self._T)
    h = property(lambda self: self._h)
    d = property(lambda self: self._d)

    @property
    def param_count(self) -> int:
        """Parameters held: c, c2, T, d and the strictly lower triangle of h."""
        n = self._c.size + self._T.size + self._d.size + self._K * (self._K - 1) // 2
        if self._c2 is not None:
            n += self._c2.size
        return int(n)


class IntAmosUnit(UnitParameters):
    """Integer AMOS unit: the golden model of the hardware's K pipelined neuron stages.

    Neuron ``i`` (0-based, in order) fires
    ``z_i = [c_i*x (+ c2_i*x2) - sum_{j<i} h_ij*z_j - T_i >= 0]`` and the unit outputs
    ``y = sum_i d_i*z_i``. Spike ``z_i`` is emitted at time step ``i``. Inputs outside
    :attr:`in_range` (:attr:`in2_range`) are first saturated to it.

    Parameters
    ----------
    name : str
        What the unit approximates (``"relu"``, ``"sigmoid"``, ...).
    c : sequence of int, length K
        Input weights.
    T : sequence of int, length K
        Thresholds.
    h : K x K ints
        Inhibition; only the strictly lower triangle (``h[i][j]``, ``j < i``) is used and kept
        (the rest is stored as zero).
    d : sequence of int, length K
        Output weights.
    c2 : sequence of int, length K, optional
        Weights of the second input (two-input units only).
    in_range : (int, int)
        Inclusive integer range of ``x``; inputs are saturated to it.
    in2_range : (int, int), optional
        Inclusive integer range of ``x2`` (two-input units only; defaults to ``in_range``).
    in_scale, in2_scale, out_scale : float
        Real value = integer * scale, for ``x``, ``x2`` and ``y``.

    Members
    -------
    name, K, inputs, c, c2, T, h, d, in_range, in2_range, in_scale, in2_scale, out_scale
        Read-only; the arrays are int64 numpy arrays with the write flag cleared.
    param_count : int
        Parameters the unit holds: ``c``, ``c2``, ``T``, ``d`` and the strictly lower triangle of
        ``h``.
    widths : dict
        Signed bit widths the hardware needs (see :meth:`widths`).
    """

    def __init__(
        self,
        name: str,
        c: Sequence[int],
        T: Sequence[int],
        h,
        d: Sequence[int],
        c2: Sequence[int] | None = None,
        in_range: tuple[int, int] = (-(2**31), 2**31 - 1),
        in2_range: tuple[int, int] | None = None,
        in_scale: float = 1.0,
        in2_scale: float | None = None,
        out_scale: float = 1.0,
    ):
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string, not {name!r}")
        c, T, h, d, c2 = _unit_arrays(c, T, h, d, c2)
        in_range = self._check_range(in_range, "in_range")
        if c2 is None:
            if in2_range is not None or in2_scale is not None:
                raise ValueError("in2_range and in2_scale need a two-input unit (c2)")
        else:
            in2_range = self._check_range(
                in_range if in2_range is None else in2_range, "in2_range"
            )
            in2_scale = float(in_scale if in2_scale is None else in2_scale)
        for what, s in (("in_scale", in_scale), ("out_scale", out_scale), ("in2_scale", in2_scale)):
            if s is not None and not (math.isfinite(float(s)) and float(s) > 0):
                raise ValueError(f"{what} must be a positive finite number, not {s!r}")

        self._name = name
        self._K = c.size
        self._c = _read_only(c)
        self._c2 = None if c2 is None else _read_only(c2)
        self._T = _read_only(T)
        self._h = _read_only(np.tril(h, -1))
        self._d = _read_only(d)
        self._in_range = in_range
        self._in2_range = in2_range
        self._in_scale = float(in_scale)
        self._in2_scale = in2_scale
        self._out_scale = float(out_scale)
        self._widths = self._compute_widths()

    @staticmethod
    def _check_range(r, what: str) -> tuple[int, int]:
        try:
            lo, hi = (int(v) for v in r)
        except (TypeError, ValueError):
            raise ValueError(f"{what} must be a pair of integers (lo, hi), not {r!r}") from None
        if lo > hi:
            raise ValueError(f"{what} must have lo <= hi, not ({lo}, {hi})")
        return lo, hi

    # -- read-only members ------------------------------------------------------------------
    in_range = property(lambda self: self._in_range)
    in2_range = property(lambda self: self._in2_range)
    in_scale = property(lambda self: self._in_scale)
    in2_scale = property(lambda self: self._in2_scale)
    out_scale = property(lambda self: self._out_scale)
    widths = property(lambda self: dict(self._widths))

    def __repr__(self) -> str:
        return (
            f"IntAmosUnit({self._name!r}, K={self._K}, inputs={self.inputs}, "
            f"in_range={self._in_range})"
        )

    # -- widths -----------------------------------------------------------------------------
    def _compute_widths(self) -> dict:
        """Exact ranges of every signal of the K stages, as signed widths; checks int64 safety."""
        lo, hi = self._in_range
        # range of c_i * x (+ c2_i * x2) for each neuron
        # Python integers (object arrays): these products may exceed int64 before the check
        c = self._c.astype(object)
        pmin = np.array([min(v * lo, v * hi) for v in c], dtype=object)
        pmax = np.array([max(v * lo, v * hi) for v in c], dtype=object)
        if self._c2 is not None:
            lo2, hi2 = self._in2_range
            c2 = self._c2.astype(object)
            pmin = pmin + np.array([min(v * lo2, v * hi2) for v in c2], dtype=object)
            pmax = pmax + np.array([max(v * lo2, v * hi2) for v in c2], dtype=object)
        hl = self._h.astype(object)
        inh_min = [sum(min(0, v) for v in hl[i, :i]) for i in range(self._K)]
        inh_max = [sum(max(0, v) for v in hl[i, :i]) for i in range(self._K)]
        # membrane u_i = input term - inhibition - T_i
        u_min = [pmin[i] - inh_max[i] - int(self._T[i]) for i in range(self._K)]
        u_max = [pmax[i] - inh_min[i] - int(self._T[i]) for i in range(self._K)]
        d = self._d.astype(object)
        y_min = sum(min(0, v) for v in d)
        y_max = sum(max(0, v) for v in d)
        every = [abs(v) for v in (*u_min, *u_max, y_min, y_max, *pmin, *pmax)]
        if max(every) >= _INT64_SAFE:
            raise ValueError(
                f"unit {self._name!r}: parameters times in_range can overflow int64"
            )
        w = {
            "x": signed_width(*self._in_range),
            "c": signed_width(int(self._c.min()), int(self._c.max())),
            "T": signed_width(int(self._T.min()), int(self._T.max())),
            "h": signed_width(int(hl.min()), int(hl.max())),
            "d": signed_width(int(self._d.min()), int(self._d.max())),
            "membrane": signed_width(min(u_min), max(u_max)),
            "y": signed_width(y_min, y_max),
        }
        if self._c2 is not None:
            w["x2"] = signed_width(*self._in2_range)
            w["c2"] = signed_width(int(self._c2.min()), int(self._c2.max()))
        return w

    # -- evaluation -------------------------------------------------------------------------
    def _inputs(self, x, x2):
        x = np.clip(_as_int64(x, "x"), *self._in_range)
        if self._c2 is None:
            if x2 is not None:
                raise ValueError(f"unit {self._name!r} has one input; x2 must be None")
            return x, None
        if x2 is None:
            raise ValueError(f"unit {self._name!r} has two inputs; x2 is missing")
        x2 = np.clip(_as_int64(x2, "x2"), *self._in2_range)
        x, x2 = np.broadcast_arrays(x, x2)
        return x, x2

    def spikes(self, x, x2=None) -> np.ndarray:
        """Spikes of the K neurons, computed neuron by neuron exactly as the spike rule says.

        Parameters
        ----------
        x : array_like of int
            First input (saturated to :attr:`in_range`).
        x2 : array_like of int, optional
            Second input (two-input units only; saturated to :attr:`in2_range`).

        Returns
        -------
        numpy.ndarray of uint8, shape ``x.shape + (K,)``
            ``out[..., i]`` is ``z_i``, the spike at time step ``i``.
        """
        x, x2 = self._inputs(x, x2)
        z = np.zeros(x.shape + (self._K,), dtype=np.int64)
        for i in range(self._K):
            u = self._c[i] * x - self._T[i]
            if x2 is not None:
                u = u + self._c2[i] * x2
            if i:
                u = u - z[..., :i] @ self._h[i, :i]
            z[..., i] = u >= 0
        return z.astype(np.uint8)

    def __call__(self, x, x2=None) -> np.ndarray:
        """Output ``y = sum_i d_i * z_i`` (int64, shape of ``x``)."""
        z = self.spikes(x, x2).astype(np.int64)
        return z @ self._d

    def real(self, x, x2=None) -> np.ndarray:
        """Output in real units, ``y * out_scale`` (float64)."""
        return self(x, x2).astype(np.float64) * self._out_scale

    @classmethod
    def relu(cls, K: int, alpha: float | None = None) -> IntAmosUnit:
        """Closed-form integer ReLU unit: ``c_i = 1``, ``T_i = h_ji = d_i = 2**(K-1-i)``.

        It outputs ``clamp(x, 0, 2**K - 1)`` for every int32 ``x`` (the range only sets widths:
        the closed form saturates by itself), and its spikes are the binary digits of the output,
        most significant first.

        Parameters
        ----------
        K : int
            Neurons (1..30).
        alpha : float, optional
            Clipping level in real units; sets ``in_scale = out_scale = alpha·2^-K`` (the
            activation step). Without it both scales are 1.
        """
        K = _check_pos_int(K, "K", 30)
        scale = 1.0
        if alpha is not None:
            if not (math.isfinite(alpha) and alpha > 0):
                raise ValueError(f"alpha must be a positive finite number, not {alpha!r}")
            scale = alpha * 2.0**-K
        p = 2 ** np.arange(K - 1, -1, -1, dtype=np.int64)
        h = np.tril(np.broadcast_to(p[None, :], (K, K)), -1)
        return cls("relu", c=np.ones(K, np.int64), T=p, h=h, d=p, in_scale=scale,
                   out_scale=scale)

    @classmethod
    def identity(cls, K: int, scale: float = 1.0) -> IntAmosUnit:
        """Closed-form signed identity unit: ``y = clamp(x, -2**(K-1), 2**(K-1) - 1)``, the
        spikes being the ``K`` binary digits of ``y`` in two's complement, most significant
        (the sign) first.

        Neuron 0 is the sign: ``c_0 = -1``, ``T_0 = 1`` (it fires when ``x <= -1``),
        ``d_0 = -2**(K-1)``. Neuron ``i >= 1`` weighs ``p_i = 2**(K-1-i)``: ``c_i = 1``,
        ``T_i = d_i = p_i``, ``h_i0 = -2**(K-1)`` (a fired sign adds ``2**(K-1)`` back:
        the rest codes ``x + 2**(K-1)`` in plain binary) and ``h_ij = p_j`` for ``1 <= j < i``.
        Like :meth:`relu` it saturates by itself for every int32 ``x``. It is the unit of a
        linear layer (no activation), whose output the next layer must read as spikes.

        Parameters
        ----------
        K : int
            Neurons, the sign included (2..30).
        scale : float
            ``in_scale = out_scale`` (the real value of one step).
        """
        K = _check_pos_int(K, "K", 30)
        if K < 2:
            raise ValueError(f"K of a signed identity unit must be at least 2, not {K}")
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be a positive finite number, not {scale!r}")
        p = 2 ** np.arange(K - 1, -1, -1, dtype=np.int64)
        p[0] = 0
        h = np.tril(np.broadcast_to(p[None, :], (K, K)), -1).copy()
        h[1:, 0] = -(2 ** (K - 1))
        c = np.ones(K, np.int64)
        c[0] = -1
        T = p.copy()
        T[0] = 1
        d = p.copy()
        d[0] = -(2 ** (K - 1))
        return cls("identity", c=c, T=T, h=h, d=d, in_scale=scale, out_scale=scale)


def quantize_unit(unit, in_bits: int = 12, w_bits: int = 12, d_bits: int = 12) -> IntAmosUnit:
    """Fixed-point version of a trained float unit (:class:`python_ref.units.AmosUnit`).

    The rule (all roundings are to nearest, ties to even, ``numpy.rint``; nothing saturates except
    the input):

    * **Input.** Input ``j`` with fit domain ``[lo, hi]`` gets the scale
      ``s_j = max(|lo|, |hi|) / (2^(in_bits-1) - 1)`` and the integer range
      ``[rint(lo/s_j), rint(hi/s_j)]`` (within ``in_bits`` signed bits); inputs outside the
      domain saturate to it (:class:`IntAmosUnit` clamps).
    * **Membrane.** One scale ``s_u`` for every neuron's membrane, chosen so that the largest input
      weight uses ``w_bits`` signed bits: ``s_u = max_i,j |c_ij|·s_j / (2^(w_bits-1) - 1)``;
      then ``c_int = rint(c·s_j/s_u)``, ``T_int = rint(T/s_u)``, ``h_int = rint(h/s_u)``. The
      widths of ``T``, ``h`` and the membrane follow from the values (see
      :attr:`IntAmosUnit.widths`); none is clipped.
    * **Output.** ``s_y = max_i |d_i| / (2^(d_bits-1) - 1)``, ``d_int = rint(d/s_y)``; the real
      output is ``y_int·s_y`` (``out_scale``).

    Parameters
    ----------
    unit : AmosUnit
        Float unit with a ``domain``.
    in_bits, w_bits, d_bits : int
        Signed widths of the input, the input weights and the output weights (2..32).

    Returns
    -------
    IntAmosUnit
    """
    in_bits = _check_pos_int(in_bits, "in_bits", 32)
    w_bits = _check_pos_int(w_bits, "w_bits", 32)
    d_bits = _check_pos_int(d_bits, "d_bits", 32)
    for what, b in (("in_bits", in_bits), ("w_bits", w_bits), ("d_bits", d_bits)):
        if b < 2:
            raise ValueError(f"{what} must be at least 2, not {b}")
    if unit.domain is None:
        raise ValueError(f"unit {unit.name!r} has no domain; cannot choose an input scale")
    cs = [np.asarray(unit.c, np.float64)]
    if unit.c2 is not None:
        cs.append(np.asarray(unit.c2, np.float64))
    scales, ranges = [], []
    for lo, hi in unit.domain:
        s = max(abs(lo), abs(hi)) / (2 ** (in_bits - 1) - 1)
        scales.append(s)
        ranges.append((int(np.rint(lo / s)), int(np.rint(hi / s))))
    big_c = max(float(np.max(np.abs(c))) * s for c, s in zip(cs, scales, strict=True))
    if big_c == 0:
        raise ValueError(f"unit {unit.name!r} has all input weights zero")
    s_u = big_c / (2 ** (w_bits - 1) - 1)
    c_int = [np.rint(c * s / s_u).astype(np.int64) for c, s in zip(cs, scales, strict=True)]
    T_int = np.rint(np.asarray(unit.T) / s_u).astype(np.int64)
    h_int = np.rint(np.tril(np.asarray(unit.h), -1) / s_u).astype(np.int64)
    d = np.asarray(unit.d, np.float64)
    big_d = float(np.max(np.abs(d)))
    s_y = (big_d if big_d > 0 else 1.0) / (2 ** (d_bits - 1) - 1)
    d_int = np.rint(d / s_y).astype(np.int64)
    two = unit.c2 is not None
    return IntAmosUnit(
        unit.name, c=c_int[0], T=T_int, h=h_int, d=d_int,
        c2=c_int[1] if two else None,
        in_range=ranges[0], in2_range=ranges[1] if two else None,
        in_scale=scales[0], in2_scale=scales[1] if two else None, out_scale=s_y,
    )


def quantize_unit_for_input(unit, in_scale: float, w_bits: int = 10,
                            d_bits: int = 10) -> IntAmosUnit:
    """Fixed-point version of a trained one-input float unit for a *given* input scale.

    A converted layer feeds the unit ``v = (acc + 2^(S-1)) >> S``, whose real value is
    ``v * in_scale`` (``in_scale = s_acc * 2^S``, chosen by the converter); this is
    :func:`quantize_unit` with that scale in place of the one derived from ``in_bits``
    (roundings to nearest, ties to even, ``numpy.rint``):

    * **Input.** ``s_v = in_scale``; the fit domain ``[lo, hi]`` becomes the integer range
      ``in_range = [rint(lo / s_v), rint(hi / s_v)]``; inputs outside it saturate
      (:class:`IntAmosUnit` clamps).
    * **Membrane.** ``s_u = max_i |c_i| * s_v / (2^(w_bits-1) - 1)``;
      ``c_int = rint(c * s_v / s_u)`` (so the largest ``|c_int|`` is ``2^(w_bits-1) - 1``),
      ``T_int = rint(T / s_u)``, ``h_int = rint(h / s_u)`` (strict lower triangle).
    * **Output.** ``s_y = max_i |d_i| / (2^(d_bits-1) - 1)``, ``d_int = rint(d / s_y)``; the
      real output is ``y * s_y`` (``out_scale``), ``y = sum_i d_int_i z_i`` a signed integer.

    Parameters
    ----------
    unit : AmosUnit
        One-input float unit with a ``domain``.
    in_scale : float
        Real value of one step of the integer input ``v`` (positive, finite).
    w_bits, d_bits : int
        Signed widths of the input weights ``c`` and the output weights ``d`` (2..32).

    Returns
    -------
    IntAmosUnit
        Named as ``unit``, with ``in_scale``, ``out_scale`` and ``in_range`` as above.
    """
    w_bits = _check_pos_int(w_bits, "w_bits", 32)
    d_bits = _check_pos_int(d_bits, "d_bits", 32)
    for what, b in (("w_bits", w_bits), ("d_bits", d_bits)):
        if b < 2:
            raise ValueError(f"{what} must be at least 2, not {b}")
    s_v = float(in_scale)
    if not (math.isfinite(s_v) and s_v > 0):
        raise ValueError(f"in_scale must be a positive finite number, not {in_scale!r}")
    if unit.c2 is not None:
        raise ValueError(f"unit {unit.name!r} has two inputs; quantize_unit_for_input takes "
                         "one-input units")
    if unit.domain is None:
        raise ValueError(f"unit {unit.name!r} has no domain; cannot choose its input range")
    c = np.asarray(unit.c, np.float64)
    big_c = float(np.max(np.abs(c)))
    if big_c == 0:
        raise ValueError(f"unit {unit.name!r} has all input weights zero")
    s_u = big_c * s_v / (2 ** (w_bits - 1) - 1)
    lo, hi = unit.domain[0]
    d = np.asarray(unit.d, np.float64)
    big_d = float(np.max(np.abs(d)))
    s_y = (big_d if big_d > 0 else 1.0) / (2 ** (d_bits - 1) - 1)
    return IntAmosUnit(
        unit.name, c=np.rint(c * s_v / s_u).astype(np.int64),
        T=np.rint(np.asarray(unit.T) / s_u).astype(np.int64),
        h=np.rint(np.tril(np.asarray(unit.h), -1) / s_u).astype(np.int64),
        d=np.rint(d / s_y).astype(np.int64),
        in_range=(int(np.rint(lo / s_v)), int(np.rint(hi / s_v))), in_scale=s_v,
        out_scale=s_y,
    )


def _check_bits(**bits) -> None:
    for what, b in bits.items():
        _check_pos_int(b, what, 32)
        if b < 2:
            raise ValueError(f"{what} must be at least 2, not {b}")


def _positive_pair(values, what: str) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be two positive finite numbers, not {values!r}") from None
    for v in (a, b):
        if not (math.isfinite(v) and v > 0):
            raise ValueError(f"{what} must be two positive finite numbers, not {values!r}")
    return a, b


def quantize_unit_for_inputs(unit, in_scales, spans=(1.0, 1.0), w_bits: int = 10,
                             d_bits: int = 10) -> IntAmosUnit:
    """Fixed-point version of a trained two-input float unit for *given* input scales.

    A converted two-input layer (the squeeze-and-excitation gate) feeds the unit
    ``v_j = (a_j + 2^(S_j-1)) >> S_j`` (``j = 1, 2``), of real value ``v_j * in_scales[j]``. The
    float unit works in its own units, its fit domain; ``spans[j]`` (``R_j``) is the real value
    of one such unit on input ``j``, so the unit reads ``v_j * t_j`` with
    ``t_j = in_scales[j] / R_j``. For a product unit (``mult``: ``u(a, b) ~ a*b``) the real
    output is then ``R_1 * R_2 * u(x_1 / R_1, x_2 / R_2) ~ x_1 * x_2``, so the output scale
    carries ``R_1 * R_2``. The rule, as :func:`quantize_unit_for_input` (roundings to nearest,
    ties to even, ``numpy.rint``):

    * **Inputs.** Input ``j``'s fit domain ``[lo_j, hi_j]`` becomes the integer range
      ``[rint(lo_j / t_j), rint(hi_j / t_j)]`` (``in_range``, ``in2_range``); inputs outside it
      saturate (:class:`IntAmosUnit` clamps).
    * **Membrane.** ``s_u = max_j (max_i |c_ji| * t_j) / (2^(w_bits-1) - 1)``;
      ``c_int = rint(c * t_1 / s_u)``, ``c2_int = rint(c2 * t_2 / s_u)`` (the largest of all
      ``|c_int|``, ``|c2_int|`` is ``2^(w_bits-1) - 1``), ``T_int = rint(T / s_u)``,
      ``h_int = rint(h / s_u)`` (strict lower triangle).
    * **Output.** ``d_int = rint(d / s_d)`` with ``s_d = max_i |d_i| / (2^(d_bits-1) - 1)``;
      the real output is ``y * s_y``, ``s_y = s_d * R_1 * R_2`` (``out_scale``),
      ``y = sum_i d_int_i z_i`` a signed integer.

    Parameters
    ----------
    unit : AmosUnit
        Two-input float unit with a ``domain``.
    in_scales : (float, float)
        Real value of one step of ``v_1`` and of ``v_2`` (positive, finite).
    spans : (float, float)
        ``R_1, R_2`` as above (positive, finite; ``(1, 1)``: the unit's own units).
    w_bits, d_bits : int
        Signed widths of the input weights ``c``, ``c2`` and of the output weights ``d``
        (2..32).

    Returns
    -------
    IntAmosUnit
        Named as ``unit``; ``in_scale``, ``in2_scale`` are ``in_scales`` and ``out_scale`` is
        ``s_y``.
    """
    _check_bits(w_bits=w_bits, d_bits=d_bits)
    s1, s2 = _positive_pair(in_scales, "in_scales")
    r1, r2 = _positive_pair(spans, "spans")
    if unit.c2 is None:
        raise ValueError(f"unit {unit.name!r} has one input; quantize_unit_for_inputs takes "
                         "two-input units (quantize_unit_for_input takes one)")
    if unit.domain is None:
        raise ValueError(f"unit {unit.name!r} has no domain; cannot choose its input ranges")
    t = (s1 / r1, s2 / r2)
    cs = (np.asarray(unit.c, np.float64), np.asarray(unit.c2, np.float64))
    big_c = max(float(np.max(np.abs(c))) * tj for c, tj in zip(cs, t, strict=True))
    if big_c == 0:
        raise ValueError(f"unit {unit.name!r} has all input weights zero")
    s_u = big_c / (2 ** (w_bits - 1) - 1)
    c_int = [np.rint(c * tj / s_u).astype(np.int64) for c, tj in zip(cs, t, strict=True)]
    ranges = [(int(np.rint(lo / tj)), int(np.rint(hi / tj)))
              for (lo, hi), tj in zip(unit.domain, t, strict=True)]
    d = np.asarray(unit.d, np.float64)
    big_d = float(np.max(np.abs(d)))
    s_d = (big_d if big_d > 0 else 1.0) / (2 ** (d_bits - 1) - 1)
    return IntAmosUnit(
        unit.name, c=c_int[0], c2=c_int[1],
        T=np.rint(np.asarray(unit.T) / s_u).astype(np.int64),
        h=np.rint(np.tril(np.asarray(unit.h), -1) / s_u).astype(np.int64),
        d=np.rint(d / s_d).astype(np.int64), in_range=ranges[0], in2_range=ranges[1],
        in_scale=s1, in2_scale=s2, out_scale=s_d * r1 * r2,
    )


def to_int_input(x, scale: float, in_range: tuple[int, int], rounding: str = "nearest"):
    """Real inputs to the integer grid of a unit: ``rint(x/scale)`` (or floor), saturated.

    Parameters
    ----------
    x : array_like of float
    scale : float
        Real value of one integer step.
    in_range : (int, int)
        Saturation range.
    rounding : {"nearest", "floor"}
        ``"nearest"``: ``numpy.rint`` (ties to even); ``"floor"``: round down. Neither is the
        requantisation of a converted network's layer, which rounds to nearest with ties towards
        +infinity (:func:`requant_shift`, ``docs/integer_semantics.md``).
    """
    q = np.asarray(x, dtype=np.float64) / scale
    if rounding == "nearest":
        q = np.rint(q)
    elif rounding == "floor":
        q = np.floor(q)
    else:
        raise ValueError(f"rounding must be 'nearest' or 'floor', not {rounding!r}")
    return np.clip(q, *in_range).astype(np.int64)
