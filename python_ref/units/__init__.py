"""AMOS units: the paper's small spiking circuits that replace an ANN gate (eqs. 2-7).

* :class:`AmosUnit` — float numpy unit for evaluation; :class:`TorchAmosUnit`
  (``python_ref.units.torch_unit``) — the same unit in torch for training.
* :func:`relu_unit` — the closed-form ReLU unit (section 1.2), error at most ``alpha·2^-K`` on
  ``(-inf, alpha]``.
* Trained units, fitted by ``python -m python_ref.units fit {sigmoid,swish,mult}`` and committed as
  ``python_ref/units/<name>.json``; :func:`load_unit` reads them.
* ``python -m python_ref.units table3 | plot | report``: Table 3 parameter counts, the paper's
  Figs. 3-6, and the integer-versus-float report (``docs/results/units.json``).

Unit file schema (JSON object)::

    {"name": str, "K": int, "inputs": 1 | 2,
     "domain": [[lo, hi], ...]          one pair per input: the domain of the fit,
     "c": [K floats], "c2": [K floats]  (c2 only for two-input units),
     "T": [K floats], "h": [[K x K floats]] (h[i][j] used only for j < i), "d": [K floats],
     "mse": float, "max_abs_err": float, "mean_abs_err": float, ...}

Extra fields (``seed``, ``steps``, ``init_mse``, ...) are kept in :attr:`AmosUnit.meta`.
A malformed file raises :class:`UnitFileError` (a ``ValueError``) naming the file and the field.
"""
from __future__ import annotations

from .core import UNIT_DIR, AmosUnit, UnitFileError, load_unit, relu_unit, unit_path

__all__ = [
    "AmosUnit",
    "UnitFileError",
    "UNIT_DIR",
    "TRAINED",
    "PAPER_K",
    "load_unit",
    "relu_unit",
    "unit_path",
    "table3",
]

#: Units fitted by backpropagation (committed JSON files).
TRAINED = ("sigmoid", "swish", "mult")
#: K of each unit in the paper's Table 3.
PAPER_K = {"sigmoid": 8, "relu": 10, "swish": 12, "mult": 40}


def table3() -> dict:
    """Table 3 of the paper, counted from the unit objects (closed-form ReLU, committed files).

    Returns
    -------
    dict
        ``{"sigmoid": {"K": 8, "params": ...}, "relu": ..., "swish": ..., "mult": ...}``
    """
    out = {}
    for name in ("sigmoid", "relu", "swish", "mult"):
        u = load_unit(name)
        out[name] = {"K": u.K, "params": u.param_count}
    return out
