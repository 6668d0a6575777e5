"""Argument checks shared by the whole package (private).

Python numbers and NumPy scalars are accepted alike; booleans (Python's and NumPy's) are never
numbers here, so ``True`` is not taken for 1. The ``check_*`` functions return the cleaned value
or raise one ``TypeError``/``ValueError`` whose message names the argument, the value and what
is allowed.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = ["check_int", "check_matrix", "check_real", "is_integer", "is_real"]


def is_real(value: object) -> bool:
    """True for an int, a float or a NumPy integer/floating scalar, but not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def is_integer(value: object) -> bool:
    """True for an int or a NumPy integer scalar, but not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def check_int(name: str, value: object, minimum: int | None = None,
              maximum: int | None = None) -> int:
    """``int(value)`` when ``value`` is an integer in ``[minimum, maximum]`` (bounds that are
    given); a float, even an integral one such as ``4.0``, is refused (TypeError)."""
    if not is_integer(value):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_real(name: str, value: object, *, gt: float | None = None, ge: float | None = None,
               lt: float | None = None, le: float | None = None) -> float:
    """``float(value)`` when ``value`` is a finite real number within the bounds that are given
    (``gt``: >, ``ge``: >=, ``lt``: <, ``le``: <=)."""
    if not is_real(value):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} ({value!r})")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    for op, bound, ok in ((">", gt, lambda v, b: v > b), (">=", ge, lambda v, b: v >= b),
                          ("<", lt, lambda v, b: v < b), ("<=", le, lambda v, b: v <= b)):
        if bound is not None and not ok(value, bound):
            raise ValueError(f"{name} must be {op} {bound:g}, got {value:g}")
    return value


def check_matrix(name: str, value: object, rows: str = "N") -> None:
    """Refuse anything but a floating-point ``torch.Tensor`` of shape ``(rows, d)``: TypeError
    for another type or an integer dtype, ValueError for another number of dimensions."""
    import torch  # local: the other checks here need no torch

    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape ({rows}, d), "
                        f"got {type(value).__name__}")
    if value.dim() != 2:
        raise ValueError(f"{name} must have shape ({rows}, d), got {tuple(value.shape)}")
    if not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {value.dtype}")
