"""Type predicates shared by the argument checks of the package (private).

Python numbers and NumPy scalars are accepted alike; booleans (Python's and NumPy's) are never
numbers here, so ``True`` is not taken for 1.
"""

from __future__ import annotations

import numbers

import numpy as np


def is_real(value: object) -> bool:
    """True for an int, a float or a NumPy integer/floating scalar, but not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def is_integer(value: object) -> bool:
    """True for an int or a NumPy integer scalar, but not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))
