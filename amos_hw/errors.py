"""The generator's error types: bad input, named (the model, the layer, the option)."""
from __future__ import annotations

__all__ = ["FlowError", "BudgetError"]


class FlowError(ValueError):
    """Bad input to the generator: the message names the model, the layer or the option."""


class BudgetError(FlowError):
    """The design cannot meet the requested budget (board or frame rate)."""
