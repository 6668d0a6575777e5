"""Numbers written the way the book's prose needs them (``1.03 × 10¹³``, ``3,200 years``,
``a, b and c``), so that glued sentences read like text."""

from __future__ import annotations

import math
from collections.abc import Iterable

from entropic_ae._checks import is_real

__all__ = ["duration_words", "extra_cost", "join_words", "ordinal", "power_of_ten"]

_SUPERSCRIPTS = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def power_of_ten(x: float, digits: int = 2) -> str:
    """``1.03e13 -> '1.03 × 10¹³'``: a positive number as mantissa × a power of ten."""
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x) or x <= 0:
        raise ValueError(f"x must be a positive finite number, got {x!r}")
    exponent = math.floor(math.log10(x))
    mantissa = x / 10**exponent
    if round(mantissa, digits) >= 10:  # 9.999 -> 10.00: carry into the exponent
        exponent, mantissa = exponent + 1, mantissa / 10
    return f"{mantissa:.{digits}f} × 10{str(exponent).translate(_SUPERSCRIPTS)}"


def duration_words(seconds: float) -> str:
    """A long duration in words: ``'5 hours'``, ``'17 days'``, ``'3,200 years'``."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        raise ValueError(f"seconds must be a non-negative number, got {seconds!r}")
    days = seconds / 86400
    if days >= 365.25:
        return f"{days / 365.25:,.0f} years"
    return f"{days:,.0f} days" if days >= 2 else f"{seconds / 3600:,.0f} hours"


def join_words(items: Iterable[object], conjunction: str = "and") -> str:
    """``'a'``, ``'a and b'``, ``'a, b and c'`` (``'none'`` for no items)."""
    words = [str(i) for i in items]
    if not words:
        return "none"
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + f" {conjunction} " + words[-1]


def ordinal(n: int) -> str:
    """``1 -> '1st'``, ``2 -> '2nd'``, ``11 -> '11th'``, ``23 -> '23rd'``."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int, got {type(n).__name__}")
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def extra_cost(seconds: float, baseline: float, resolution: float = 0.05) -> str:
    """The extra time of ``seconds`` over ``baseline`` as a percentage, ``'13 %'``; below
    ``resolution`` (a fraction: 0.05 is what wall-clock medians of a few repeats resolve on a
    shared machine) ``'under 5 % (within timing noise)'``, so that noise never reads as a
    saving."""
    for name, value in (("seconds", seconds), ("baseline", baseline)):
        if not is_real(value) or not math.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    if not is_real(resolution) or not 0 < resolution < 1:
        raise ValueError(f"resolution must be a fraction in (0, 1), got {resolution!r}")
    extra = seconds / baseline - 1
    if extra < resolution:
        return f"under {100 * resolution:g} % (within timing noise)"
    return f"{100 * extra:.0f} %"
