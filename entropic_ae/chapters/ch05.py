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

from entropic_ae.prose import join_words
from entropic_ae.verdicts import HOLDS, NOT_HOLDS, UNDECIDED, with_holm

__all__ = ["ALIGNMENT_WORDS", "CLAIM_COLUMNS", "alignment_word", "cost_groups", "entropy_weight",
           "first_at", "front_claims", "fronts", "goal_sentence", "matched_points",
           "matched_weights", "ranking_groups", "ranking_inversions", "score_floor",
           "surrogate_check", "validation_error", "with_zero_weight"]

CLAIM_COLUMNS = ["claim_id", "family", "claim", "term", "dataset", "verdict", "effect", "spread",
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


def with_zero_weight(rows: pd.DataFrame, zero: str = "BN-AE", term: str = "EAE"
                     ) -> pd.DataFrame:
    """``rows`` (one row per run, with ``model`` and ``beta``) plus a copy of every run of
    ``zero`` relabelled as ``term`` at β = 0: the EAE without its entropy term *is* BN-AE (same
    network, same batch norm, loss = reconstruction − 0 · entropy), so BN-AE's runs are the
    β = 0 end of the EAE's front. Raises ``ValueError`` when ``rows`` has no ``zero`` run."""
    if not {"model", "beta"} <= set(rows.columns):
        raise ValueError("rows need the columns 'model' and 'beta' (one row per run)")
    if not (rows["model"] == zero).any():
        raise ValueError(f"rows have no run of {zero!r}, the β = 0 point of {term!r}'s front")
    if ((rows["model"] == term) & (rows["beta"] == 0.0)).any():
        raise ValueError(f"rows already have {term!r} at β = 0")
    copies = rows[rows["model"] == zero].assign(model=term, beta=0.0)
    return pd.concat([rows, copies], ignore_index=True)


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
                    "term": term, "dataset": dataset, "verdict": _front_claim(matched),
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


def entropy_weight(config: Any) -> float:
    """The weight β of a run's entropy-like term (``neg_entropy`` or ``neg_logdet``; 0 for a
    system without one)."""
    weights = dict(config.options.weights)
    return float(weights.get("neg_entropy", weights.get("neg_logdet", 0.0)))


def ranking_inversions(table: pd.DataFrame, k: float = 2.0) -> dict[str, list[int]]:
    """Per dimension of an estimator study's table indexed by ``(d, kind)`` with ``mean`` and
    ``std`` over its batches: where the Gaussian scores above every other kind by the
    book's rule (``ranked``), below every other kind (``gaussian last``), or neither
    (``not ranked``)."""
    out: dict[str, list[int]] = {"ranked": [], "gaussian last": [], "not ranked": []}
    for d in dict.fromkeys(table.index.get_level_values(0)):
        here = table.loc[d]
        if "gaussian" not in here.index or len(here) < 2:
            raise ValueError(f"d = {d}: the table needs the Gaussian and another kind")
        g = here.loc["gaussian"]
        margins = []
        for _, row in here.drop(index="gaussian").iterrows():
            spread = k * math.sqrt((g["std"] ** 2 + row["std"] ** 2) / 2.0)
            margins.append((g["mean"] - row["mean"], spread))
        if all(m > s for m, s in margins):
            out["ranked"].append(int(d))
        elif all(m < -s for m, s in margins):
            out["gaussian last"].append(int(d))
        else:
            out["not ranked"].append(int(d))
    return out


def _check_ranked(ranked: pd.DataFrame) -> None:
    need = {"term", "d", "gaussian first"}
    if not need <= set(ranked.columns):
        raise ValueError(f"ranked lacks the columns {sorted(need - set(ranked.columns))}: "
                         "pass an entropy_terms.ranking_table")
    if ranked.empty:
        raise ValueError("the ranking table is empty")


def first_at(ranked: pd.DataFrame, term: str) -> list[int]:
    """The dimensions d at which ``term`` ranks the Gaussian first by the book's rule, from an
    :func:`entropic_ae.entropy_terms.ranking_table` (its ``gaussian first`` column)."""
    _check_ranked(ranked)
    rows = ranked[ranked["term"] == term]
    if rows.empty:
        raise ValueError(f"no term {term!r} in the ranking table; it has "
                         f"{sorted(set(ranked['term']))}")
    return [int(d) for d, first in zip(rows["d"], rows["gaussian first"], strict=True) if first]


def ranking_groups(ranked: pd.DataFrame) -> dict[str, list[str]]:
    """The terms of an :func:`entropic_ae.entropy_terms.ranking_table` that rank the Gaussian
    first at every dimension of the table (``every``), at some (``some``) and at none
    (``none``), each in the table's order."""
    _check_ranked(ranked)
    out: dict[str, list[str]] = {"every": [], "some": [], "none": []}
    n_dims = ranked["d"].nunique()
    for term, rows in ranked.groupby("term", sort=False):
        n = int(rows["gaussian first"].sum())
        out["every" if n == n_dims else "none" if n == 0 else "some"].append(term)
    return out


def cost_groups(costs: pd.DataFrame, limit: float = 0.1) -> dict[str, list[str]]:
    """The terms of an :func:`entropic_ae.entropy_terms.term_costs` table whose ``share`` of a
    training step reaches ``limit`` at some dimension (``over``) and the rest (``under``), in
    the table's order."""
    if not {"term", "share"} <= set(costs.columns):
        raise ValueError("costs need the columns 'term' and 'share': pass term_costs(..., "
                         "step_seconds=...)")
    if not 0 < limit < 1:
        raise ValueError(f"limit must be a share of a step in (0, 1), got {limit!r}")
    over = set(costs.loc[costs["share"] >= limit, "term"])
    terms = list(dict.fromkeys(costs["term"]))
    return {"over": [t for t in terms if t in over], "under": [t for t in terms if t not in over]}


#: Upper bounds of the cosine for each word of :func:`alignment_word` (negative cosines below
#: -0.15 point against the Gaussianising direction).
ALIGNMENT_WORDS = ((0.15, "unaligned"), (0.4, "weakly aligned"), (0.7, "partly aligned"),
                   (math.inf, "well aligned"))


def alignment_word(cosine: float) -> str:
    """How a gradient lines up with the Gaussianising direction, from their mean cosine:
    ``"pointing against it"`` (below -0.15), ``"unaligned"`` (|cos| < 0.15), ``"weakly
    aligned"`` (< 0.4), ``"partly aligned"`` (< 0.7), ``"well aligned"`` (up to 1)."""
    if isinstance(cosine, bool) or not isinstance(cosine, (int, float, np.floating)) or not (
            -1 - 1e-9 <= cosine <= 1 + 1e-9):
        raise ValueError(f"cosine must be a number in [-1, 1], got {cosine!r}")
    if cosine <= -ALIGNMENT_WORDS[0][0]:
        return "pointing against it"
    return next(word for bound, word in ALIGNMENT_WORDS if cosine < bound)


def surrogate_check(kind: str, n: int, d: int, seed: int) -> dict[str, Any]:
    """The surrogate's parts on ``n`` batch-normalised draws of a synthetic ``kind``, next to
    what the derivation says they approach for large ``n``: ``½ log det C`` (0 for products;
    for the correlated Gaussian its entropy minus the uncorrelated one's) and half the sum of
    the exact marginal entropies; and how far the parts' sum is from the surrogate itself."""
    import torch

    from entropic_ae import synthetic
    from entropic_ae.estimators import minibatch_entropy, minibatch_entropy_parts

    z = synthetic.batch_normalise(synthetic.sample(kind, n, d, seed=seed))
    parts = minibatch_entropy_parts(z, generator=torch.Generator().manual_seed(seed))
    total = minibatch_entropy(z, generator=torch.Generator().manual_seed(seed))
    gaussian = 0.5 * math.log(2 * math.pi * math.e)
    correlated = kind == "correlated-gaussian"
    marginal = gaussian if correlated else synthetic.coordinate_entropy(kind)
    return {"distribution": kind,
            "|sum of parts − surrogate|": abs(float(sum(parts.values())) - float(total)),
            "½ log det Ĉ_λ": float(parts["log_det"]),
            "exact ½ log det C": (synthetic.entropy(kind, d) - d * gaussian) if correlated
            else 0.0,
            "axes part": float(parts["axes"]), "½ Σ exact marginal entropies": 0.5 * d * marginal,
            "rotated part": float(parts["rotated"])}


def score_floor(dataset: str, n_test: int, draws: int, feature_epochs: int,
                feature_limit: int | None, root: Any, seed: int) -> float:
    """The sample score's own resolution on ``dataset``: :func:`entropic_ae.chapters.ch04.
    score_floor` of the scores of ``draws`` random draws of ``n_test`` real test images against
    disjoint draws of as many (chapter 4's LeNet feature network)."""
    from entropic_ae.chapters.ch04 import score_floor as floor_of
    from entropic_ae.data import load_images
    from entropic_ae.metrics import reference_draw, sample_score
    from entropic_ae.models.lenet import feature_network

    net, _ = feature_network(dataset, root=root, epochs=feature_epochs, limit=feature_limit,
                             progress=False)
    x, _ = load_images(dataset, "test", root=root)
    values = []
    for i in range(draws):
        ref, comparison = reference_draw(len(x), n_test, seed + i)
        values.append(sample_score(x[comparison], x[ref], net))
    return floor_of(values)


def matched_weights(points: pd.DataFrame, reference: str = "EAE", beta: float = 1.0
                    ) -> dict[str, float]:
    """For ``reference`` at ``beta`` and every other model of a :func:`fronts` table (one
    dataset) that has several weights: the weight whose validation reconstruction error is
    closest to the reference's (models with one point keep it)."""
    ref = points[(points["model"] == reference) & (points["beta"] == beta)]
    if ref.empty:
        raise ValueError(f"the table has no {reference} at β = {beta:g}")
    target = float(ref["val_mse"].iloc[0])
    out = {reference: float(beta)}
    for model, part in points.groupby("model", sort=False):
        if model == reference or model in ("BN-AE", "BN-AE+logdet"):
            continue
        best = part.iloc[int(np.argmin((part["val_mse"] - target).abs().to_numpy()))]
        out[model] = float(best["beta"])
    return out


def goal_sentence(claims: pd.DataFrame, datasets: Sequence[str]) -> str:
    """The chapter's goal, judged from its claims (a :func:`front_claims` table): a term whose
    sample-score front lies below the EAE's on every dataset; else which terms lie above it on
    some dataset and which the rule cannot decide. The general lesson (better shape measurement
    does not give better samples) is stated only when every term lies above on some dataset."""
    samples = claims[claims["family"] == "samples"]
    if samples.empty:
        raise ValueError("the claims have no sample-score ('samples') rows")
    by_term = dict(iter(samples.groupby("term", sort=False)))
    winners = [t for t, part in by_term.items()
               if set(part["dataset"]) >= set(datasets) and (part["verdict"] == HOLDS).all()]
    if winners:
        verb = "beats" if len(winners) == 1 else "beat"
        return (f"{join_words(winners)} {verb} the paper's EAE on N(0, I) samples at matched "
                f"reconstruction on {' and '.join(datasets)} by the book's rule: the goal is met.")
    losers = [t for t, part in by_term.items() if (part["verdict"] == NOT_HOLDS).any()]
    open_ = [t for t in by_term if t not in losers]
    out = ("No term's front lies below the EAE's on every dataset by the book's rule, so the "
           "goal is not met.")
    if losers:
        out += (f" {join_words(losers)} lie{'s' if len(losers) == 1 else ''} above it on at least "
                "one dataset.")
    if open_:
        out += (f" For {join_words(open_)} the rule cannot decide (matched points within the "
                "threshold, or none inside the EAE's range).")
    else:
        out += (" A term that measures the codes' shape better at batch size 100 does not, at "
                "this scale, make better samples than the paper's nearest-neighbour repulsion.")
    return out
