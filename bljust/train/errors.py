"""Why training cannot go on: errors whose message says what to change (``bin/train.py`` prints it)."""
from __future__ import annotations


class TrainingError(RuntimeError):
    """Training cannot go on; the message says why and what to change."""


class NonFiniteError(TrainingError):
    """Too many steps in a row with a non-finite loss or gradient, or non-finite weights about to be saved."""
