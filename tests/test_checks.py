"""The one integer-argument check and its messages."""
from __future__ import annotations

import numpy as np
import pytest

from amos_hw.lib.checks import positive_int


@pytest.mark.parametrize("value", [1, 7, np.int64(3)])
def test_accepts_positive_integers(value):
    assert positive_int("K", value) is value


@pytest.mark.parametrize("value", [0, -1, True, 2.0, "3", None])
def test_rejects_with_the_name(value):
    with pytest.raises(ValueError, match=rf"^K must be a positive integer, not {value!r}$"):
        positive_int("K", value)


def test_upper_bound_and_error_type():
    assert positive_int("lanes", 16, at_most=16) == 16
    with pytest.raises(TypeError, match=r"^lanes must be a positive integer of at most 16, "
                                        r"not 17$"):
        positive_int("lanes", 17, at_most=16, error=TypeError)
