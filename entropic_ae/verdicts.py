r"""The book's rule for deciding a comparison over seeds, and the sentences that report it.

A claim compares a measurement of two configurations, each run with several seeds:
"A is better than B". With the seed means :math:`\bar a, \bar b`, the seed standard deviations
:math:`s_a, s_b` (``ddof=1``) and the pooled standard deviation
:math:`s_p = \sqrt{(s_a^2 + s_b^2)/2}`, the **effect** is the mean difference in the claimed
direction (:math:`\bar b - \bar a` when lower is better) and the **spread** is
:math:`2 s_p`. The claim

* **holds** when effect > spread,
* **does not hold** when effect < −spread (the opposite difference is that large),
* is **undecided** otherwise.

So a claim holds only when the difference exceeds twice the seed-to-seed spread; with three
seeds this is a demanding rule, and "undecided" is a fine answer. :func:`decide` applies it
to two lists of values; :func:`claim_row` to two selections of a results table; the writers
(:func:`verdict_phrase`, :func:`claim_sentence`, :func:`summarise`) turn rows of a claims
table into prose, so that no verdict in the book is typed by hand.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "HOLDS",
    "NOT_HOLDS",
    "UNDECIDED",
    "VERDICTS",
    "Decision",
    "claim_row",
    "claim_sentence",
    "decide",
    "mean_sd",
    "mean_sd_table",
    "summarise",
    "verdict_phrase",
]

HOLDS, NOT_HOLDS, UNDECIDED = "holds", "does not hold", "undecided"
VERDICTS = (HOLDS, NOT_HOLDS, UNDECIDED)


@dataclass(frozen=True)
class Decision:
    """The verdict on "A is better than B" and the numbers behind it."""

    verdict: str
    effect: float
    spread: float
    mean_a: float
    mean_b: float
    n_a: int
    n_b: int


def _values(name: str, values: Sequence[float]) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64).ravel()
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a sequence of numbers, got {values!r:.80}") from err
    if arr.size < 2:
        raise ValueError(f"{name} needs at least 2 values (seeds) to measure a spread, got "
                         f"{arr.size}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values: {arr.tolist()}")
    return arr


def decide(a: Sequence[float], b: Sequence[float], lower_is_better: bool = True,
           k: float = 2.0) -> Decision:
    r"""The verdict on "A is better than B" from per-seed values ``a`` and ``b``: effect
    :math:`\pm(\bar b - \bar a)` (positive in the claimed direction) against the spread
    :math:`k\,s_p`, :math:`s_p = \sqrt{(s_a^2 + s_b^2)/2}` (``k = 2``: the book's rule)."""
    if not isinstance(lower_is_better, bool):
        raise TypeError("lower_is_better must be True or False")
    if isinstance(k, bool) or not isinstance(k, int | float) or not k > 0:
        raise ValueError(f"k must be a positive number, got {k!r}")
    xa, xb = _values("a", a), _values("b", b)
    mean_a, mean_b = float(xa.mean()), float(xb.mean())
    effect = (mean_b - mean_a) if lower_is_better else (mean_a - mean_b)
    spread = k * math.sqrt((xa.var(ddof=1) + xb.var(ddof=1)) / 2.0)
    if effect > spread:
        verdict = HOLDS
    elif effect < -spread:
        verdict = NOT_HOLDS
    else:
        verdict = UNDECIDED
    return Decision(verdict, effect, spread, mean_a, mean_b, int(xa.size), int(xb.size))


def _select(table: pd.DataFrame, where: Mapping[str, Any], value: str) -> pd.Series:
    mask = pd.Series(True, index=table.index)
    for column, wanted in where.items():
        if column not in table.columns:
            raise ValueError(f"the table has no column {column!r}; columns: "
                             f"{list(table.columns)}")
        mask &= table[column] == wanted
    if value not in table.columns:
        raise ValueError(f"the table has no column {value!r}")
    chosen = table.loc[mask, value]
    if chosen.empty:
        raise ValueError(f"no rows of the table match {dict(where)}")
    return chosen


def claim_row(table: pd.DataFrame, claim: str, better: Mapping[str, Any],
              worse: Mapping[str, Any], value: str, lower_is_better: bool = True,
              **labels: Any) -> dict[str, Any]:
    """One row of a claims table: ``claim``, the extra ``labels`` (e.g. ``dataset=...``), and
    the :func:`decide` numbers for the ``value`` column of the rows matching ``better`` (the
    claimed better, one row per seed) against those matching ``worse``."""
    d = decide(_select(table, better, value), _select(table, worse, value), lower_is_better)
    return {"claim": claim, **labels, "verdict": d.verdict, "effect": d.effect,
            "spread": d.spread, "mean_better": d.mean_a, "mean_worse": d.mean_b,
            "seeds": min(d.n_a, d.n_b)}


def verdict_phrase(verdict: str) -> str:
    """``"holds"``, ``"does not hold"`` or ``"is undecided"`` for use after a subject."""
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {VERDICTS}, got {verdict!r}")
    return "is undecided" if verdict == UNDECIDED else verdict


def _figure(x: float, digits: int) -> str:
    """``x`` with ``digits`` significant digits, without an exponent for everyday sizes."""
    x = float(x)
    return f"{x:.0f}" if abs(x) >= 10 ** digits else f"{x:.{digits}g}"


def claim_sentence(row: Mapping[str, Any], digits: int = 3) -> str:
    """One claims-table row as a sentence, numbers to ``digits`` significant digits:
    ``'"EAE beats VAE" on mnist holds (262 against 487: a difference of 226 in its favour,
    threshold 172).'`` The means are left out when the row has no ``mean_better`` and
    ``mean_worse``; a negative effect reads "against it"."""
    where = f" on {row['dataset']}" if row.get("dataset") else ""
    effect = float(row["effect"])
    side = "in its favour" if effect >= 0 else "against it"
    means = ""
    if row.get("mean_better") is not None and row.get("mean_worse") is not None:
        better, worse = (_figure(row[k], digits) for k in ("mean_better", "mean_worse"))
        means = f"{better} against {worse}: "
    return (f"\u201c{row['claim']}\u201d{where} {verdict_phrase(row['verdict'])} ({means}a "
            f"difference of {_figure(abs(effect), digits)} {side}, threshold "
            f"{_figure(row['spread'], digits)}).")


def summarise(claims: pd.DataFrame, subject: str) -> str:
    """How many of ``claims`` hold, do not hold and stay undecided, as a sentence about
    ``subject``: ``'Of the 6 comparisons of claim (i), 4 hold, 1 does not hold and 1 is
    undecided.'`` (counts of zero are left out; "none" when the table is empty)."""
    if claims.empty:
        return f"No comparisons of {subject} could be made."
    counts = claims["verdict"].value_counts()
    parts = []
    for verdict in VERDICTS:
        n = int(counts.get(verdict, 0))
        if n:
            verb = {HOLDS: "hold" if n > 1 else "holds",
                    NOT_HOLDS: "do not hold" if n > 1 else "does not hold",
                    UNDECIDED: "are undecided" if n > 1 else "is undecided"}[verdict]
            parts.append(f"{n} {verb}")
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    total = len(claims)
    noun = "comparison" if total == 1 else "comparisons"
    return f"Of the {total} {noun} of {subject}, {listed}."


def mean_sd(values: Sequence[float], digits: int = 1) -> str:
    """``'12.3 ± 0.4'``: mean and seed standard deviation (``ddof=1``; ``± nan`` for one
    value); ``'–'`` when there are no finite values."""
    arr = np.asarray(values, dtype=np.float64).ravel()
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return "–"
    sd = float(arr.std(ddof=1)) if arr.size > 1 else math.nan
    return f"{arr.mean():.{digits}f} ± {sd:.{digits}f}"


def mean_sd_table(table: pd.DataFrame, index: str | Sequence[str],
                  columns: str | Sequence[str] | None, value: str, digits: int = 1,
                  order: Mapping[str, Sequence[Any]] | None = None) -> pd.DataFrame:
    """A pivot of ``value`` over the seeds: one ``'mean ± sd'`` cell per ``index`` × ``columns``
    group (:func:`mean_sd`); ``columns=None`` gives one column, named ``value``. ``order`` fixes
    the order of index/column labels (by name)."""
    if value not in table.columns:
        raise ValueError(f"the table has no column {value!r}")
    index = [index] if isinstance(index, str) else list(index)
    if columns is None:
        cells = table.groupby(index, sort=False)[value].agg(lambda v: mean_sd(v, digits))
        if order:
            for level, name in enumerate(index):
                if name in order:
                    labels = [v for v in order[name] if v in cells.index.get_level_values(level)]
                    cells = cells.reindex(labels, level=level if len(index) > 1 else None)
        return cells.to_frame(value)
    columns = [columns] if isinstance(columns, str) else list(columns)
    cells = (table.groupby(index + columns, sort=False)[value]
             .agg(lambda v: mean_sd(v, digits)).unstack(columns))
    for axis, names in (("index", index), ("columns", columns)):
        for level, name in enumerate(names):
            if order and name in order:
                labels = [v for v in order[name]
                          if v in getattr(cells, axis).get_level_values(level)]
                cells = cells.reindex(labels, axis=axis, level=level if len(names) > 1
                                      else None)
    return cells.fillna("–")
