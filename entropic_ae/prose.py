"""Numbers written the way the book's prose needs them (``1.03 × 10¹³``, ``3,200 years``,
``a, b and c``, ``13 %``), so that glued sentences read like text, and the qualitative words
next to numbers ("about one node", "much lower than", "no widths") chosen from the numbers by
documented thresholds, so that no hand-written word can contradict a glued number."""

from __future__ import annotations

import math
from collections.abc import Iterable

from entropic_ae._checks import is_real

__all__ = [
    "change_verb",
    "correlation_phrase",
    "count_phrase",
    "duration_words",
    "extra_cost",
    "growth_phrase",
    "how_often",
    "join_words",
    "listed",
    "nodes_phrase",
    "ordinal",
    "percent",
    "power_of_ten",
    "power_of_ten_above",
    "relative_phrase",
    "share_word",
]

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


def power_of_ten_above(x: float) -> float:
    """The smallest power of ten ``10^k`` with ``x < 10^k`` (k an integer): a bound on a
    float-rounding residue that reads the same whichever last digits a rerun produces.
    ``0 -> 1e-12`` (a residue that vanished is reported below the smallest bound)."""
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x) or x < 0:
        raise ValueError(f"x must be a non-negative finite number, got {x!r}")
    return 10.0 ** (math.floor(math.log10(x)) + 1) if x >= 1e-12 else 1e-12


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


# --- qualitative words chosen from numbers -------------------------------------------------------

#: ``nodes_phrase``: at most this many effective nodes is "about one node"
ONE_NODE = 1.5
#: ``nodes_phrase``: at most this many (and at most half the width) is "a few nodes"
FEW_NODES = 6.5
#: ``relative_phrase``: ratios ``max/min - 1`` below these are "about the same", "barely",
#: plain, and from the last one on "much"
SAME, BARELY, MUCH = 0.02, 0.10, 0.50


def _positive_numbers(name: str, values: object) -> list[float]:
    items = list(values) if isinstance(values, Iterable) and not isinstance(values, str) \
        else [values]
    if not items:
        raise ValueError(f"{name} is empty")
    for v in items:
        if not is_real(v) or not math.isfinite(v) or v <= 0:
            raise ValueError(f"{name} must hold positive finite numbers, got {v!r}")
    return [float(v) for v in items]


def _node_class(value: float, width: float) -> int:
    """0: about one node, 1: a few nodes, 2: at most half the width, 3: wide."""
    if value <= ONE_NODE:
        return 0
    if value <= width / 2:
        return 1 if value <= FEW_NODES else 2
    return 3


_NODE_PHRASES = ("collapses to about one node", "narrows to a few nodes",
                 "narrows to at most half its width", "stays wide")


def nodes_phrase(values: float | Iterable[float], width: float | Iterable[float]) -> str:
    """A singular verb phrase for how narrow layers are, from their effective nodes
    ``values`` and their ``width`` (one number, or one per value), true of every value:

    * ``"collapses to about one node"``: every value is at most :data:`ONE_NODE` (1.5);
    * ``"narrows to a few nodes"``: every value is at most :data:`FEW_NODES` (6.5) and at
      most half its layer's width;
    * ``"narrows to at most half its width"``: every value is at most half its width;
    * ``"stays wide"``: every value is above half its width;
    * ``"narrows in some layers only"``: some values are above half their width, others not.

    For several layers the phrase is that of the widest class among them (a layer of about one
    node also "narrows to a few nodes"), so ``"every hidden layer " + phrase`` is true.
    """
    vals = _positive_numbers("values", values)
    widths = _positive_numbers("width", width)
    if len(widths) == 1:
        widths = widths * len(vals)
    if len(widths) != len(vals):
        raise ValueError(f"width must be one number or one per value, got {len(widths)} "
                         f"widths for {len(vals)} values")
    bad = [(v, w) for v, w in zip(vals, widths, strict=True) if v > w * (1 + 1e-9)]
    if bad:
        raise ValueError(f"effective nodes cannot exceed the width, got {bad[0][0]:g} > "
                         f"{bad[0][1]:g}")
    classes = {_node_class(v, w) for v, w in zip(vals, widths, strict=True)}
    if 3 in classes and len(classes) > 1:
        return "narrows in some layers only"
    return _NODE_PHRASES[max(classes)]


def relative_phrase(a: float, b: float, higher: str = "higher", lower: str = "lower") -> str:
    """How ``a`` compares with ``b`` (positive numbers, e.g. two test errors), as a phrase
    that precedes ``b``: with ``r = max(a, b) / min(a, b) - 1``,

    * ``r < 0.02`` (:data:`SAME`): ``"about the same as"``;
    * ``r < 0.10`` (:data:`BARELY`): ``"barely higher than"`` / ``"barely lower than"``;
    * ``r < 0.50`` (:data:`MUCH`): ``"higher than"`` / ``"lower than"``;
    * otherwise: ``"much higher than"`` / ``"much lower than"``.

    The words are magnitudes, not verdicts: whether a difference is real is decided by
    :func:`entropic_ae.verdicts.decide` over seeds.
    """
    x, y = _positive_numbers("a", a)[0], _positive_numbers("b", b)[0]
    r = max(x, y) / min(x, y) - 1
    if r < SAME:
        return "about the same as"
    word = higher if x > y else lower
    if r < BARELY:
        return f"barely {word} than"
    return f"{word} than" if r < MUCH else f"much {word} than"


def count_phrase(n: int, noun: str, plural: str | None = None) -> str:
    """``0 -> 'no widths'``, ``1 -> 'one width'``, ``12 -> '12 widths'`` (plural: ``noun +
    's'`` unless given). Never "none" where a number or a noun is expected."""
    if not isinstance(noun, str) or not noun:
        raise TypeError(f"noun must be a non-empty string, got {noun!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be an int >= 0, got {n!r}")
    many = plural if plural is not None else noun + "s"
    if n == 0:
        return f"no {many}"
    return f"one {noun}" if n == 1 else f"{n:,} {many}"


def listed(items: Iterable[object], some: str, none: str, conjunction: str = "and",
           quote: bool = False) -> str:
    """A sentence (or clause) about a list that reads right when the list is empty:
    ``none`` if there are no items, else ``some`` with ``{items}`` replaced by
    :func:`join_words` of them (each in “quotes” with ``quote``, for names that hold commas)
    and ``{n}`` by their number. E.g.
    ``listed([4, 7], "No setting landed on k = {items}.", "Every width was reached.")``
    gives ``"No setting landed on k = 4 and 7."``, and the second sentence for ``[]``, never
    "k = none"."""
    if not isinstance(some, str) or not isinstance(none, str):
        raise TypeError("some and none must be strings")
    if "{items}" not in some and "{n}" not in some:
        raise ValueError("some must use {items} or {n}")
    words = [f"“{i}”" if quote else str(i) for i in items]
    if not words:
        return none
    return some.replace("{items}", join_words(words, conjunction)).replace("{n}", str(len(words)))


def percent(fraction: float, digits: int = 0) -> str:
    """A fraction as a percentage with its sign, ``0.132 -> '13 %'`` (``digits`` decimals):
    the string carries the only ``%``, so prose glues it as ``costs {x} of a step``, never
    ``{x} %``. A nonzero fraction that would round to 0 is not written as 0: ``'under 1 %'``
    when positive, ``'between -1 % and 0 %'`` when negative (``1`` is ``10**-digits``)."""
    if not is_real(fraction) or not math.isfinite(fraction):
        raise ValueError(f"fraction must be a finite number, got {fraction!r}")
    if isinstance(digits, bool) or not isinstance(digits, int) or not 0 <= digits <= 6:
        raise ValueError(f"digits must be an int in 0..6, got {digits!r}")
    value = 100 * float(fraction) + 0.0  # + 0.0: no '-0 %'
    if value != 0 and round(value, digits) == 0:
        unit = f"{10.0 ** -digits:g}"
        return f"under {unit} %" if value > 0 else f"between -{unit} % and 0 %"
    return f"{value:.{digits}f} %"


def share_word(k: int, n: int) -> str:
    """How many of ``n`` things ``k`` is, as a word for "``word`` of the 16 units":
    ``"none"`` (k = 0), ``"all"`` (k = n), ``"most"`` (k/n > 0.6), ``"about half"``
    (0.4 <= k/n <= 0.6), ``"some"`` (0.15 <= k/n < 0.4), ``"a few"`` (below)."""
    for name, value in (("k", k), ("n", n)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    if n == 0 or k > n:
        raise ValueError(f"need 0 <= k <= n and n >= 1, got k = {k}, n = {n}")
    if k == 0:
        return "none"
    if k == n:
        return "all"
    share = k / n
    if share > 0.6:
        return "most"
    if share >= 0.4:
        return "about half"
    return "some" if share >= 0.15 else "a few"


def correlation_phrase(r: float) -> str:
    """How alike two orderings or series are from their correlation ``r`` in [-1, 1], for
    "the two networks order the digits ``phrase``": ``"almost identically"`` (r >= 0.9),
    ``"much alike"`` (r >= 0.7), ``"somewhat alike"`` (r >= 0.3), ``"with little relation"``
    (|r| < 0.3), ``"in roughly opposite ways"`` (r <= -0.3)."""
    if not is_real(r) or not -1 - 1e-12 <= r <= 1 + 1e-12:
        raise ValueError(f"r must be a correlation in [-1, 1], got {r!r}")
    if r >= 0.9:
        return "almost identically"
    if r >= 0.7:
        return "much alike"
    if r >= 0.3:
        return "somewhat alike"
    return "with little relation" if r > -0.3 else "in roughly opposite ways"


def change_verb(before: float, after: float, up: str = "rises", down: str = "falls") -> str:
    """The verb for "the test MSE ``verb`` from ``before`` to ``after``" (positive numbers),
    with ``r = max/min - 1`` and the thresholds of :func:`relative_phrase`: ``"barely
    changes"`` (r < 0.02), ``"rises"``/``"falls"`` (r < 0.5), ``"rises sharply"``/``"falls
    sharply"`` (r >= 0.5)."""
    a, b = _positive_numbers("before", before)[0], _positive_numbers("after", after)[0]
    r = max(a, b) / min(a, b) - 1
    if r < SAME:
        return "barely changes"
    verb = up if b > a else down
    return f"{verb} sharply" if r >= MUCH else verb


def how_often(fraction: float) -> str:
    """A frequency word for a fraction of cases, for "the chain is ``word`` traversed":
    ``"never"`` (0), ``"almost never"`` (< 1 %), ``"rarely"`` (< 10 %), ``"sometimes"``
    (< 50 %), ``"mostly"`` (< 90 %), ``"almost always"`` (< 100 %), ``"always"`` (1)."""
    if not is_real(fraction) or not 0 <= fraction <= 1:
        raise ValueError(f"fraction must be a number in [0, 1], got {fraction!r}")
    if fraction == 0:
        return "never"
    if fraction == 1:
        return "always"
    for bound, word in ((0.01, "almost never"), (0.10, "rarely"), (0.50, "sometimes"),
                        (0.90, "mostly")):
        if fraction < bound:
            return word
    return "almost always"


def growth_phrase(exponent: float, tolerance: float = 0.15) -> str:
    """How a cost grows with a size, from the exponent of a log-log fit, for "the time grows
    ``phrase`` the number of paths": ``"in proportion to"`` when ``|exponent - 1| <
    tolerance``, else ``"as the 1.62 power of"`` (the exponent, two decimals)."""
    if not is_real(exponent) or not math.isfinite(exponent):
        raise ValueError(f"exponent must be a finite number, got {exponent!r}")
    if not is_real(tolerance) or not 0 < tolerance < 1:
        raise ValueError(f"tolerance must be in (0, 1), got {tolerance!r}")
    if abs(exponent - 1) < tolerance:
        return "in proportion to"
    return f"as the {exponent:.2f} power of"
