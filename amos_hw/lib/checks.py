"""Argument checks shared by every component, so that each message reads the same."""
from __future__ import annotations

import numbers

__all__ = ["positive_int"]


def positive_int(what: str, value, *, at_most: int | None = None, error=ValueError):
    """Return ``value`` when it is an integer (Python or NumPy, not ``bool``) of at least 1 and,
    with ``at_most``, no more than that; otherwise raise ``error`` naming ``what``::

        K must be a positive integer, not 0
        K must be a positive integer of at most 16, not 17
    """
    ok = (not isinstance(value, bool) and isinstance(value, numbers.Integral) and value >= 1
          and (at_most is None or value <= at_most))
    if not ok:
        bound = f" of at most {at_most}" if at_most is not None else ""
        raise error(f"{what} must be a positive integer{bound}, not {value!r}")
    return value
