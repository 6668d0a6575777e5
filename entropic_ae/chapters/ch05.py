"""Chapter 5's analysis: entropy terms compared on their fronts of reconstruction against
sample quality (and against Gaussianity), at matched reconstruction, by the book's rule.

A *front* is a term's runs at several weights β: each point is the mean (and sd over seeds)
of the validation reconstruction error and of a quality score. Another term's point is
*matched* on the EAE's front by linear interpolation in the reconstruction error (only inside
the EAE front's range); at every matched point the rule decides whether the term's score is
lower, and the claim "its front lies below the EAE's" holds when at least one matched point
holds and none goes the other way, does not hold in the mirror case, and is undecided
otherwise."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from entropic_ae.verdicts import HOLDS, NOT_HOLDS, UNDECIDED, with_holm

__all__ = ["CLAIM_COLUMNS", "front_claims", "fronts", "matched_points", "validation_error"]

CLAIM_COLUMNS = ["claim_id", "family", "claim", "dataset", "verdict", "effect", "spread",
                 "mean_better", "mean_worse", "seeds", "sd_better", "sd_worse", "p_value",
                 "floor", "p_holm", "matched_points"]


def validation_error(history: dict[str, Any]) -> float:
    """A run's validation reconstruction error: its best epoch's (the weights it keeps)."""
    values = list(history["validation"])
    if not values:
        raise ValueError("the run has no validation errors: train it with n_val > 0")
    return float(min(values))


def fronts(rows: pd.DataFrame, score: str = "score") -> pd.DataFrame:
    """One point per dataset × model × β: the mean and sd over seeds of the validation
    reconstruction error ``val_mse`` and of ``score``, with the number of seeds. ``rows``: one
    row per run (N(0, I) sampler) with ``dataset, model, beta, seed, val_mse`` and ``score``."""
    need = {"dataset", "model", "beta", "seed", "val_mse", score}
    if not need <= set(rows.columns):
        raise ValueError(f"rows lack the columns {sorted(need - set(rows.columns))}")
    grouped = rows.groupby(["dataset", "model", "beta"], sort=False)
    out = grouped.agg(val_mse=("val_mse", "mean"), val_sd=("val_mse", "std"),
                      value=(score, "mean"), sd=(score, "std"), seeds=("seed", "count"))
    return out.reset_index().sort_values(["dataset", "model", "val_mse"], kind="stable")


def _interpolate(front: pd.DataFrame, x: float) -> tuple[float, float] | None:
    """The reference front's value and sd at reconstruction ``x`` (linear between the two
    points that bracket it), or None outside its range."""
    xs, ys, sds = (front[c].to_numpy(float) for c in ("val_mse", "value", "sd"))
    if len(xs) == 0 or x < xs.min() or x > xs.max():
        return None
    if len(xs) == 1:
        return float(ys[0]), float(sds[0])
    return float(np.interp(x, xs, ys)), float(np.interp(x, xs, sds))


def _welch_from_moments(m1: float, s1: float, n1: int, m2: float, s2: float, n2: int) -> float:
    va, vb = s1 * s1 / n1, s2 * s2 / n2
    if va + vb == 0:
        return 0.0 if m1 != m2 else 1.0
    t = (m1 - m2) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (n1 - 1) + vb**2 / (n2 - 1))
    return float(2.0 * stats.t.sf(abs(t), df))


def matched_points(points: pd.DataFrame, term: str, reference: str = "EAE", k: float = 2.0,
                   floor: float = 0.0) -> pd.DataFrame:
    """Every point of ``term``'s front (a :func:`fronts` table of one dataset) matched on
    ``reference``'s front at the same reconstruction: the term's score, the interpolated
    reference score, the effect (reference − term; positive: the term is better) and the
    threshold :math:`\\max(k\\sqrt{(s_t^2 + s_r^2)/2}, f)`, with the verdict. Points outside
    the reference front's range are left out."""
    ref = points[points["model"] == reference].sort_values("val_mse")
    rows = []
    for _, p in points[points["model"] == term].iterrows():
        found = _interpolate(ref, float(p["val_mse"]))
        if found is None:
            continue
        value, sd = found
        effect = value - float(p["value"])
        spread = max(k * math.sqrt((float(p["sd"]) ** 2 + sd**2) / 2.0), floor)
        verdict = HOLDS if effect > spread else NOT_HOLDS if effect < -spread else UNDECIDED
        n = int(p["seeds"])
        rows.append({"beta": p["beta"], "val_mse": p["val_mse"], "term": float(p["value"]),
                     "term_sd": float(p["sd"]), "reference": value, "reference_sd": sd,
                     "effect": effect, "spread": spread, "verdict": verdict, "seeds": n,
                     "p_value": _welch_from_moments(float(p["value"]), float(p["sd"]), n,
                                                    value, sd, n)})
    return pd.DataFrame(rows)


def _front_claim(matched: pd.DataFrame) -> str:
    if matched.empty:
        return UNDECIDED
    verdicts = set(matched["verdict"])
    if HOLDS in verdicts and NOT_HOLDS not in verdicts:
        return HOLDS
    if NOT_HOLDS in verdicts and HOLDS not in verdicts:
        return NOT_HOLDS
    return UNDECIDED


def front_claims(points: dict[str, pd.DataFrame], terms: Sequence[str],
                 floors: dict[str, float] | None = None, reference: str = "EAE"
                 ) -> pd.DataFrame:
    """For each score (``points``: name → :func:`fronts` table, e.g. ``{"samples": …,
    "gaussianity": …}``), dataset and term: "``term``'s front lies below ``reference``'s at
    matched reconstruction" (see the module docstring), with the matched point of the largest
    effect as the row's numbers. ``floors[dataset]`` is the sample score's own resolution,
    applied to the ``samples`` score only. Columns :data:`CLAIM_COLUMNS`."""
    floors = floors or {}
    out = []
    for score, table in points.items():
        for dataset, here in table.groupby("dataset", sort=False):
            for term in terms:
                matched = matched_points(here, term, reference,
                                         floor=floors.get(dataset, 0.0) if score == "samples"
                                         else 0.0)
                best = (matched.iloc[int(np.argmax(matched["effect"].abs().to_numpy()))]
                        if not matched.empty else None)
                slug = term.lower().replace("-", "_").replace("+", "_")
                out.append({
                    "claim_id": f"{slug}_below_eae_{score}_{dataset.replace('-', '_')}",
                    "family": score, "claim": f"{term}'s front lies below the EAE's ({score})",
                    "dataset": dataset, "verdict": _front_claim(matched),
                    "effect": math.nan if best is None else float(best["effect"]),
                    "spread": math.nan if best is None else float(best["spread"]),
                    "mean_better": math.nan if best is None else float(best["term"]),
                    "mean_worse": math.nan if best is None else float(best["reference"]),
                    "seeds": 0 if best is None else int(best["seeds"]),
                    "sd_better": math.nan if best is None else float(best["term_sd"]),
                    "sd_worse": math.nan if best is None else float(best["reference_sd"]),
                    "p_value": 1.0 if best is None else float(best["p_value"]),
                    "floor": floors.get(dataset, 0.0) if score == "samples" else 0.0,
                    "matched_points": len(matched)})
    return with_holm(pd.DataFrame(out))[CLAIM_COLUMNS]
