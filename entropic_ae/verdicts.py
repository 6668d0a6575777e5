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

So a claim holds only when the difference exceeds twice the seed-to-seed spread.
:func:`decide` applies it to two lists of values; :func:`claim_row` to two selections of a
results table; the writers (:func:`verdict_phrase`, :func:`claim_sentence`, :func:`summarise`)
turn rows of a claims table into prose, so that no verdict in the book is typed by hand.

**The rule's error rate.** With :math:`n` seeds on each side, normal seed-to-seed noise of one
variance and no true difference, :math:`s_p` is the pooled standard deviation of the
two-sample t test, so "effect > :math:`k s_p`" is the event
:math:`t_{2n-2} > k\sqrt{n/2}`. A verdict other than "undecided" on a null claim therefore
comes with probability :math:`2\,P(t_{2n-2} > k\sqrt{n/2})`
(:func:`false_verdict_rate`): 7.0 % for 3 seeds (:math:`P(|t_4| > 2.449)`), 1.3 % for 5.
It is not a demanding rule at 3 seeds: a table of 64 claims without real differences would
show about 4.5 verdicts. Beside the rule, a claims table carries a Welch test p-value per
claim (``p_value``), Holm's correction across the table (:func:`holm`, :func:`with_holm`),
and each verdict's chance of flipping in a rerun (:func:`flip_probabilities`, a parametric
bootstrap from the table's own means and spreads).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from entropic_ae._checks import check_int, check_real

__all__ = [
    "HOLDS", "NOT_HOLDS", "UNDECIDED", "VERDICTS", "Decision", "claim_id_from", "claim_row",
    "claim_sentence", "decide", "false_verdict_rate", "flip_probabilities", "holm", "mean_sd",
    "mean_sd_table", "summarise", "verdict_phrase", "welch_p_value", "with_holm",
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
    sd_a: float = math.nan
    sd_b: float = math.nan
    p_value: float = math.nan


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


def _verdict(effect: Any, spread: Any) -> np.ndarray:
    """The rule, elementwise: HOLDS where effect > spread, NOT_HOLDS where effect < -spread."""
    return np.where(effect > spread, HOLDS, np.where(effect < -spread, NOT_HOLDS, UNDECIDED))


def decide(a: Sequence[float], b: Sequence[float], lower_is_better: bool = True,
           k: float = 2.0, floor: float = 0.0) -> Decision:
    r"""The verdict on "A is better than B" from per-seed values ``a`` and ``b``: effect
    :math:`\pm(\bar b - \bar a)` (positive in the claimed direction) against the spread
    :math:`\max(k\,s_p, f)`, :math:`s_p = \sqrt{(s_a^2 + s_b^2)/2}` (``k = 2``: the book's
    rule; ``floor`` :math:`f`: the smallest difference the measurement itself resolves, e.g.
    twice the sd of the difference of two scores of real images)."""
    if not isinstance(lower_is_better, bool):
        raise TypeError("lower_is_better must be True or False")
    if isinstance(k, bool) or not isinstance(k, int | float) or not k > 0:
        raise ValueError(f"k must be a positive number, got {k!r}")
    xa, xb = _values("a", a), _values("b", b)
    mean_a, mean_b = float(xa.mean()), float(xb.mean())
    effect = (mean_b - mean_a) if lower_is_better else (mean_a - mean_b)
    floor = check_real("floor", floor, ge=0)
    spread = max(k * math.sqrt((xa.var(ddof=1) + xb.var(ddof=1)) / 2.0), floor)
    return Decision(str(_verdict(effect, spread)), effect, spread, mean_a, mean_b, int(xa.size),
                    int(xb.size), float(xa.std(ddof=1)), float(xb.std(ddof=1)),
                    welch_p_value(xa, xb))


def welch_p_value(a: Sequence[float], b: Sequence[float]) -> float:
    r"""Two-sided p-value of Welch's t test of equal means:
    :math:`t = (\bar a - \bar b)/\sqrt{s_a^2/n_a + s_b^2/n_b}` against Student's t with the
    Welch–Satterthwaite degrees of freedom
    :math:`\nu = (s_a^2/n_a + s_b^2/n_b)^2 / \bigl(\frac{(s_a^2/n_a)^2}{n_a-1}
    + \frac{(s_b^2/n_b)^2}{n_b-1}\bigr)` (what ``scipy.stats.ttest_ind(equal_var=False)``
    computes). Both sides without spread: 0 if the means differ, else 1."""
    xa, xb = _values("a", a), _values("b", b)
    va, vb = xa.var(ddof=1) / xa.size, xb.var(ddof=1) / xb.size
    if va + vb == 0:
        return 0.0 if xa.mean() != xb.mean() else 1.0
    t = (xa.mean() - xb.mean()) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (xa.size - 1) + vb**2 / (xb.size - 1))
    return float(2.0 * stats.t.sf(abs(t), df))


def false_verdict_rate(n_seeds: int, k: float = 2.0, two_sided: bool = True) -> float:
    r"""Probability that the rule gives a verdict ("holds" or "does not hold") on a claim whose
    two sides do not differ, with ``n_seeds`` seeds on each side and normal noise of one
    variance: :math:`2\,P(T > k\sqrt{n/2})`, :math:`T \sim t_{2n-2}`
    (``two_sided=False``: only a false "holds", :math:`P(T > k\sqrt{n/2})`).

    Why: :math:`s_p^2 = (s_a^2 + s_b^2)/2` is the pooled variance of the two-sample t test
    when both sides have :math:`n` values, so
    :math:`(\bar b - \bar a)/(s_p\sqrt{2/n}) \sim t_{2n-2}`, and effect > :math:`k s_p` is
    :math:`t > k\sqrt{n/2}`. For :math:`k = 2`: 0.0705 at 3 seeds, 0.0134 at 5.
    """
    n = check_int("n_seeds", n_seeds, minimum=2)
    k = check_real("k", k, gt=0)
    if not isinstance(two_sided, bool):
        raise TypeError(f"two_sided must be True or False, got {two_sided!r}")
    one = float(stats.t.sf(k * math.sqrt(n / 2.0), df=2 * n - 2))
    return 2.0 * one if two_sided else one


def holm(p_values: Sequence[float]) -> np.ndarray:
    r"""Holm's step-down adjusted p-values, in the input order: with the p-values sorted,
    :math:`p_{(1)} \le \dots \le p_{(m)}`,
    :math:`\tilde p_{(i)} = \max_{j \le i} \min\bigl(1, (m - j + 1)\,p_{(j)}\bigr)`.
    Rejecting the claims with :math:`\tilde p \le \alpha` keeps the chance of any false
    rejection among all :math:`m` at most :math:`\alpha` (family-wise error rate), whatever
    their dependence. NaN p-values are not allowed."""
    p = np.asarray(p_values, dtype=np.float64).ravel()
    if p.size and (not np.isfinite(p).all() or (p < 0).any() or (p > 1).any()):
        raise ValueError(f"p_values must be numbers in [0, 1], got {p.tolist()}")
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted


def with_holm(claims: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """A copy of a claims table with ``p_holm`` (:func:`holm` of its ``p_value`` column, over
    the whole table) and ``significant`` (``p_holm <= alpha``)."""
    alpha = check_real("alpha", alpha, gt=0, lt=1)
    if "p_value" not in claims.columns:
        raise ValueError("the claims table has no 'p_value' column (claim_row writes it)")
    out = claims.copy()
    out["p_holm"] = holm(out["p_value"].to_numpy())
    out["significant"] = out["p_holm"] <= alpha
    return out


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


_CLAIM_ID = re.compile(r"^[a-z0-9]+(_[a-z0-9]+)*$")


def claim_id_from(claim: str, **labels: Any) -> str:
    """A short stable identifier from a claim's text and labels: lower case, every run of
    other characters one ``_``, the labels' values appended in order:
    ``claim_id_from("EAE beats VAE with N(0,I)", dataset="mnist")`` is
    ``'eae_beats_vae_with_n_0_i_mnist'``."""
    text = " ".join([str(claim), *(str(v) for v in labels.values())])
    slug = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    if not slug:
        raise ValueError(f"cannot make an identifier from the claim {claim!r}")
    return slug


def claim_row(table: pd.DataFrame, claim: str, better: Mapping[str, Any],
              worse: Mapping[str, Any], value: str, lower_is_better: bool = True, *,
              claim_id: str | None = None, floor: float = 0.0, **labels: Any
              ) -> dict[str, Any]:
    """One row of a claims table: ``claim_id``, ``claim``, the extra ``labels`` (e.g.
    ``dataset=...``), and the :func:`decide` numbers for the ``value`` column of the rows
    matching ``better`` (the claimed better, one row per seed) against those matching
    ``worse``: verdict, effect, spread, the means and seed standard deviations of both sides,
    the number of seeds and the Welch p-value.

    ``claim_id`` is a short stable identifier (lower-case letters, digits and single
    underscores, e.g. ``"eae_beats_vae_normal"``); new code passes one. Without it the row
    gets :func:`claim_id_from` of the claim and the labels. ``floor``: see :func:`decide`.
    """
    if claim_id is None:
        claim_id = claim_id_from(claim, **labels)
    elif not isinstance(claim_id, str) or not _CLAIM_ID.match(claim_id):
        raise ValueError(f"claim_id must be lower-case letters and digits joined by single "
                         f"underscores, e.g. 'eae_beats_vae_normal'; got {claim_id!r}")
    d = decide(_select(table, better, value), _select(table, worse, value), lower_is_better,
               floor=floor)
    return {"claim_id": claim_id, "claim": claim, **labels, "verdict": d.verdict,
            "effect": d.effect, "spread": d.spread, "mean_better": d.mean_a,
            "mean_worse": d.mean_b, "sd_better": d.sd_a, "sd_worse": d.sd_b,
            "seeds": min(d.n_a, d.n_b), "p_value": d.p_value, "floor": float(floor)}


def flip_probabilities(claims: pd.DataFrame, draws: int = 2000, seed: int = 0,
                       k: float = 2.0) -> pd.Series:
    r"""For each row of a claims table, the probability that a rerun with new seeds gives
    another verdict, by a parametric bootstrap that takes the table's numbers as the truth:
    ``draws`` times, ``seeds`` values per side from
    :math:`\mathcal N(\bar a, s_a^2)` and :math:`\mathcal N(\bar b, s_b^2)`
    (``mean_better``/``sd_better``, ``mean_worse``/``sd_worse``; without sd columns both are
    ``spread / k``), decided again by the rule (with the row's ``floor``, if it has one); the
    share of draws whose verdict differs from
    the row's. The sum over the rows is the expected number of verdicts that would change.

    A verdict far beyond the threshold scores near 0; one at the threshold near 1/2; an
    undecided claim whose means hardly differ also near 0 (it stays undecided). It measures
    the rule's noise at the measured effect sizes, not whether the effect is real.
    Seeded (``seed``): the same table gives the same numbers.
    """
    draws = check_int("draws", draws, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    k = check_real("k", k, gt=0)
    need = {"verdict", "effect", "spread", "mean_better", "mean_worse", "seeds"}
    if not need <= set(claims.columns):
        raise ValueError(f"the claims table lacks the columns {sorted(need - set(claims.columns))}")
    rng = np.random.default_rng(seed)
    out = []
    for _, row in claims.iterrows():
        n = check_int("seeds", int(row["seeds"]), minimum=2)
        sds = row.get("sd_better"), row.get("sd_worse")  # without them: both spread / k
        if not all(v is not None and np.isfinite(v) for v in sds):
            sds = (float(row["spread"]) / k,) * 2
        sd_a, sd_b = float(sds[0]), float(sds[1])
        a = rng.normal(row["mean_better"], sd_a, size=(draws, n))
        b = rng.normal(row["mean_worse"], sd_b, size=(draws, n))
        # the direction: effect = +(b - a) when lower is better, which the row's sign tells
        sign = 1.0 if math.isclose(row["effect"], row["mean_worse"] - row["mean_better"],
                                   rel_tol=1e-9, abs_tol=1e-12) else -1.0
        effect = sign * (b.mean(1) - a.mean(1))
        floor = float(row["floor"]) if "floor" in row and np.isfinite(row["floor"]) else 0.0
        spread = np.maximum(k * np.sqrt((a.var(1, ddof=1) + b.var(1, ddof=1)) / 2.0), floor)
        out.append(float((_verdict(effect, spread) != row["verdict"]).mean()))
    return pd.Series(out, index=claims.index, name="flip_probability")


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
    plural = {HOLDS: "hold", NOT_HOLDS: "do not hold", UNDECIDED: "are undecided"}
    parts = [f"{n} {plural[v] if n > 1 else verdict_phrase(v)}" for v in VERDICTS
             if (n := int(counts.get(v, 0)))]
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
    cols = [] if columns is None else [columns] if isinstance(columns, str) else list(columns)
    cells = table.groupby(index + cols, sort=False)[value].agg(lambda v: mean_sd(v, digits))
    if columns is not None:
        cells = cells.unstack(cols)
    for axis, names in (("index", index), ("columns", cols)):
        for level, name in enumerate(names):
            if order and name in order:
                labels = [v for v in order[name]
                          if v in getattr(cells, axis).get_level_values(level)]
                cells = cells.reindex(labels, axis=axis, level=level if len(names) > 1
                                      else None)
    return cells.to_frame(value) if columns is None else cells.fillna("–")
