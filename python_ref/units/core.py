"""The AMOS unit of the paper (eqs. 2-7) in float numpy, its file format and the closed-form ReLU.

Neuron ``i`` (0-based) of a unit with ``K`` neurons fires

    z_i = Θ(c_i·x [+ c2_i·x2] − Σ_{j<i} h_ij·z_j − T_i),   Θ(u) = 1 if u >= 0 else 0,

and the unit outputs ``y = Σ_i d_i·z_i``. The paper's connection weight ``w`` (eq. 6) is folded
into the next layer, so it is not a parameter here.
"""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..quant import UnitParameters

__all__ = [
    "AmosUnit",
    "UnitFileError",
    "UNIT_DIR",
    "unit_path",
    "load_unit",
    "relu_unit",
]

UNIT_DIR = Path(__file__).resolve().parent


class UnitFileError(ValueError):
    """A unit file (``python_ref/units/<name>.json``) is unreadable or malformed.

    The message names the file and, where one is at fault, the field.
    """

    def __init__(self, path, field: str | None, problem: str):
        self.path = str(path)
        self.field = field
        where = f"unit file {self.path}" + (f", field '{field}'" if field else "")
        super().__init__(f"{where}: {problem}")


def _check_pos_int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{what} must be a positive integer, not {value!r}")
    return int(value)


def _frozen(a) -> np.ndarray:
    a = np.array(a, dtype=np.float64, copy=True)
    a.setflags(write=False)
    return a


def _float_arrays(c, T, h, d, c2) -> tuple:
    """A unit's ``c``, ``T``, ``h`` (strictly lower triangle), ``d`` and ``c2`` (or None) as
    finite float64 arrays of the shapes K neurons need (``K`` is the length of ``c``)."""
    c = np.asarray(c, dtype=np.float64)
    if c.ndim != 1 or c.size < 1:
        raise ValueError(f"c must be a non-empty 1-D sequence, not shape {c.shape}")
    K = c.size
    T = np.asarray(T, dtype=np.float64)
    d = np.asarray(d, dtype=np.float64)
    h = np.asarray(h, dtype=np.float64)
    arrays = {"c": c, "T": T, "d": d, "h": h}
    for what, arr in (("T", T), ("d", d)):
        if arr.shape != (K,):
            raise ValueError(f"{what} must have length K={K}, not shape {arr.shape}")
    if h.shape != (K, K):
        raise ValueError(f"h must have shape ({K}, {K}), not {h.shape}")
    if c2 is not None:
        c2 = np.asarray(c2, dtype=np.float64)
        if c2.shape != (K,):
            raise ValueError(f"c2 must have length K={K}, not shape {c2.shape}")
        arrays["c2"] = c2
    h = np.tril(h, -1)
    arrays["h"] = h
    for what, arr in arrays.items():
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{what} must hold finite numbers")
    return c, T, h, d, c2


def _check_domain(domain, inputs: int) -> tuple:
    """The input domain as ``inputs`` pairs ``(lo, hi)`` of finite floats with ``lo < hi``."""
    dom = np.asarray(domain, dtype=np.float64)
    if dom.shape != (inputs, 2):
        raise ValueError(
            f"domain must be {inputs} pair(s) [lo, hi], not shape {dom.shape}"
        )
    if not np.all(np.isfinite(dom)) or np.any(dom[:, 0] >= dom[:, 1]):
        raise ValueError(f"domain must hold finite pairs with lo < hi, not {dom.tolist()}")
    return tuple((float(lo), float(hi)) for lo, hi in dom)


def _file_header(data, source) -> tuple[str, int, int]:
    """The ``name``, ``K`` and ``inputs`` of a unit-file dict, once every required field is
    present and these three are valid."""
    if not isinstance(data, dict):
        raise UnitFileError(source, None, "top level must be a JSON object")
    for key in ("name", "K", "inputs", "domain", "c", "T", "h", "d"):
        if key not in data:
            raise UnitFileError(source, key, "missing")
    name = data["name"]
    if not isinstance(name, str) or not name:
        raise UnitFileError(source, "name", f"must be a non-empty string, not {name!r}")
    K = data["K"]
    if isinstance(K, bool) or not isinstance(K, int) or K < 1:
        raise UnitFileError(source, "K", f"must be a positive integer, not {K!r}")
    inputs = data["inputs"]
    if inputs not in (1, 2) or isinstance(inputs, bool):
        raise UnitFileError(source, "inputs", f"must be 1 or 2, not {inputs!r}")
    if inputs == 2 and "c2" not in data:
        raise UnitFileError(source, "c2", "missing (a two-input unit needs it)")
    if inputs == 1 and "c2" in data:
        raise UnitFileError(source, "c2", "present in a one-input unit")
    return name, K, inputs


def _file_vector(data: dict, key: str, shape: tuple, source) -> np.ndarray:
    """Field ``key`` of a unit-file dict as a finite float64 array of ``shape``."""
    try:
        arr = np.asarray(data[key], dtype=np.float64)
    except (TypeError, ValueError):
        raise UnitFileError(source, key, "must hold numbers") from None
    if arr.shape != shape:
        raise UnitFileError(
            source, key, f"must have shape {list(shape)}, not {list(arr.shape)}"
        )
    if not np.all(np.isfinite(arr)):
        raise UnitFileError(source, key, "holds a non-finite number")
    return arr


class AmosUnit(UnitParameters):
    """Float AMOS unit (numpy, float64) for evaluation.

    Parameters
    ----------
    name : str
        What the unit approximates (``"sigmoid"``, ``"swish"``, ``"mult"``, ``"relu"``, ...).
    c, T, d : sequence of float, length K
        Input weights, thresholds and output weights.
    h : K x K floats
        Inhibition weights; only the strictly lower triangle is used and kept.
    c2 : sequence of float, length K, optional
        Weights of the second input (two-input units, eq. 7).
    domain : sequence of (lo, hi), optional
        Input domain of the fit, one pair per input.
    meta : dict, optional
        Extra fields of the unit file (recorded errors, seed, ...), kept verbatim.

    Members
    -------
    name, K, inputs, c, c2, T, h, d, domain, meta
        Read-only; arrays are float64 with the write flag cleared.
    param_count : int
        Parameters held: ``c``, ``c2``, ``T``, ``d`` and the strictly lower triangle of ``h``.
    """

    def __init__(
        self,
        name: str,
        c: Sequence[float],
        T: Sequence[float],
        h,
        d: Sequence[float],
        c2: Sequence[float] | None = None,
        domain: Sequence[Sequence[float]] | None = None,
        meta: dict | None = None,
    ):
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string, not {name!r}")
        c, T, h, d, c2 = _float_arrays(c, T, h, d, c2)
        if domain is not None:
            domain = _check_domain(domain, 1 if c2 is None else 2)
        self._name = name
        self._K = c.size
        self._c = _frozen(c)
        self._c2 = None if c2 is None else _frozen(c2)
        self._T = _frozen(T)
        self._h = _frozen(h)
        self._d = _frozen(d)
        self._domain = domain
        self._meta = dict(meta or {})

    domain = property(lambda self: self._domain)
    meta = property(lambda self: dict(self._meta))

    def __repr__(self) -> str:
        return f"AmosUnit({self._name!r}, K={self._K}, inputs={self.inputs})"

    # -- evaluation ---------------------------------------------------------------------------
    def membrane_input(self, x, x2=None) -> np.ndarray:
        """``c_i·x (+ c2_i·x2)`` for every neuron, shape ``x.shape + (K,)``."""
        x = np.asarray(x, dtype=np.float64)
        if self._c2 is None:
            if x2 is not None:
                raise ValueError(f"unit {self._name!r} has one input; x2 must be None")
            return x[..., None] * self._c
        if x2 is None:
            raise ValueError(f"unit {self._name!r} has two inputs; x2 is missing")
        x, x2 = np.broadcast_arrays(x, np.asarray(x2, dtype=np.float64))
        return x[..., None] * self._c + x2[..., None] * self._c2

    def spikes(self, x, x2=None) -> np.ndarray:
        """Spikes ``z`` of the K neurons (hard Heaviside), uint8 of shape ``x.shape + (K,)``."""
        p = self.membrane_input(x, x2)
        z = np.zeros(p.shape, dtype=np.float64)
        for i in range(self._K):
            u = p[..., i] - self._T[i]
            if i:
                u = u - z[..., :i] @ self._h[i, :i]
            z[..., i] = u >= 0
        return z.astype(np.uint8)

    def __call__(self, x, x2=None) -> np.ndarray:
        """Output ``y = Σ d_i z_i`` (float64, shape of the broadcast inputs)."""
        return self.spikes(x, x2).astype(np.float64) @ self._d

    # -- file format --------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The unit-file dict (schema in ``python_ref/units/__init__.py``)."""
        out = {"name": self._name, "K": self._K, "inputs": self.inputs}
        if self._domain is not None:
            out["domain"] = [list(p) for p in self._domain]
        out["c"] = self._c.tolist()
        if self._c2 is not None:
            out["c2"] = self._c2.tolist()
        out["T"] = self._T.tolist()
        out["h"] = self._h.tolist()
        out["d"] = self._d.tolist()
        out.update(self._meta)
        return out

    def save(self, path) -> None:
        """Write the unit file (JSON, indented)."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def from_dict(cls, data, source="<dict>") -> AmosUnit:
        """Build a unit from a unit-file dict, raising :class:`UnitFileError` on any defect."""
        name, K, inputs = _file_header(data, source)
        domain = _file_vector(data, "domain", (inputs, 2), source)
        if np.any(domain[:, 0] >= domain[:, 1]):
            raise UnitFileError(source, "domain", f"needs lo < hi, not {domain.tolist()}")
        arrays = {k: _file_vector(data, k, (K,), source) for k in ("c", "T", "d")}
        arrays["h"] = _file_vector(data, "h", (K, K), source)
        if inputs == 2:
            arrays["c2"] = _file_vector(data, "c2", (K,), source)
        known = {"name", "K", "inputs", "domain", "c", "c2", "T", "h", "d"}
        meta = {k: v for k, v in data.items() if k not in known}
        return cls(name, domain=domain, meta=meta, **arrays)

    @classmethod
    def load(cls, path) -> AmosUnit:
        """Read a unit file, raising :class:`UnitFileError` on any defect."""
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as e:
            raise UnitFileError(path, None, f"cannot be read ({e.strerror})") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise UnitFileError(
                path, None, f"is not valid JSON ({e.msg}, line {e.lineno})"
            ) from None
        return cls.from_dict(data, path)

    # -- the closed form ----------------------------------------------------------------------
    @classmethod
    def relu(cls, K: int, alpha: float = 1.0) -> AmosUnit:
        """Closed-form ReLU unit of section 1.2, for inputs in ``(-inf, alpha]``.

        ``c_i = 1`` and ``T_i = h_ji = d_i = alpha·2^-(i+1)`` (0-based), so the unit performs a
        successive-approximation analog-to-digital conversion of ``x`` and its error is at most
        ``alpha·2^-K`` on ``(-inf, alpha]``.

        Parameters
        ----------
        K : int
            Neurons.
        alpha : float
            Clipping level (positive, finite).
        """
        K = _check_pos_int(K, "K")
        if not (math.isfinite(alpha) and alpha > 0):
            raise ValueError(f"alpha must be a positive finite number, not {alpha!r}")
        p = alpha * 2.0 ** -np.arange(1, K + 1)
        h = np.tril(np.broadcast_to(p[None, :], (K, K)), -1)
        return cls("relu", c=np.ones(K), T=p, h=h, d=p, domain=[(-alpha, alpha)],
                   meta={"alpha": alpha})


def relu_unit(K: int = 10, alpha: float = 1.0) -> AmosUnit:
    """The closed-form ReLU unit (see :meth:`AmosUnit.relu`)."""
    return AmosUnit.relu(K, alpha)


def unit_path(name: str) -> Path:
    """Path of the committed unit file ``python_ref/units/<name>.json``."""
    return UNIT_DIR / f"{name}.json"


def load_unit(name_or_path) -> AmosUnit:
    """Load a fitted unit by name (``"sigmoid"``, ``"swish"``, ``"mult"``) or path.

    ``"relu"`` gives the closed-form unit with K = 10 (no file).
    """
    if name_or_path == "relu":
        return relu_unit(10)
    p = Path(name_or_path)
    if p.suffix != ".json" and not p.exists():
        p = unit_path(str(name_or_path))
    return AmosUnit.load(p)
