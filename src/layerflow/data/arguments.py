"""Checks of the integer arguments dataset operations take (sizes, counts), shared by every operation.

A leaf of ``layerflow.data``: ``dataset`` and ``combining`` both import it, it imports neither.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from layerflow.data.errors import DatasetArgumentError


def positive_int(name: str, value: Any) -> int:
    """``value`` as an int when it is an integer >= 1 (not a bool); otherwise a DatasetArgumentError naming ``name``.

    Args:
        name: the argument's name, for the message.
        value: what the caller passed.

    Returns:
        ``int(value)``.

    Example:
        >>> positive_int("batch_size", 32)
        32
    """
    return _integer_at_least(name, value, 1, "a positive integer")


def non_negative_int(name: str, value: Any) -> int:
    """``value`` as an int when it is an integer >= 0 (not a bool); otherwise a DatasetArgumentError naming ``name``.

    Args:
        name: the argument's name, for the message.
        value: what the caller passed.

    Returns:
        ``int(value)``.

    Example:
        >>> non_negative_int("count", 0)
        0
    """
    return _integer_at_least(name, value, 0, "a non-negative integer")


def _integer_at_least(name: str, value: Any, lowest: int, expected: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lowest:
        raise DatasetArgumentError(f"{name}={value!r} must be {expected}.")
    return int(value)
