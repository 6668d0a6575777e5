"""Chapter 4's analysis: the results of the Table-1 grid as tables, the paper's claims decided
by the book's rule, and the sentences the chapter writes from them.

Every claim carries a ``claim_id`` (the chapter selects claims by it, never by their text) and a
``family`` of the paper's claims it belongs to (``i`` … ``v``, ``width``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from entropic_ae.verdicts import HOLDS, NOT_HOLDS, UNDECIDED, claim_row, with_holm

__all__ = ["CLAIM_COLUMNS", "CLAIM_FAMILIES", "SAMPLERS", "convergence_table", "dataset_slug",
           "convergence_sentence", "failures_sentence", "lesson", "paper_claims",
           "sensitivity_sentence", "parts_table", "sampler_rows", "score_floor", "verdict_counts",
           "verdict_table", "width_claims", "yes_no"]

#: The samplers: column prefix in a run's metrics → label in the book.
SAMPLERS = {"normal": "N(0,I)", "gmm": "GMM"}
#: The columns of a sampler row taken from ``<prefix>_<name>``.
_SAMPLE_COLUMNS = ("score", "kid", "precision", "recall", "density", "coverage", "mean_pixel")
#: The columns of ``04_claims.csv``, in order.
CLAIM_COLUMNS = ["claim_id", "family", "claim", "dataset", "verdict", "effect", "spread",
                 "mean_better", "mean_worse", "seeds", "sd_better", "sd_worse", "p_value",
                 "floor", "p_holm"]
#: The paper's claims (and the book's), by family.
CLAIM_FAMILIES = {
    "i": "the EAE's N(0, I) samples beat those of the other prior-based systems",
    "ii": "a Gaussian mixture fitted to the codes improves every system's samples",
    "iii": "with the mixture, the EAE beats the regularised autoencoders",
    "iv": "the EAE's codes are closer to N(0, I) than without the entropy term",
    "v": "how much of the EAE's effect is decorrelation (BN-AE+logdet)",
}


def dataset_slug(dataset: str) -> str:
    """A dataset's name as a part of a claim identifier: ``fashion-mnist`` → ``fashion_mnist``."""
    return dataset.replace("-", "_")


def sampler_rows(table: pd.DataFrame) -> pd.DataFrame:
    """A conv grid's table (one row per run) as one row per run and sampler: a ``sampler``
    column (:data:`SAMPLERS` labels) and the sample columns ``score``, ``kid``,
    ``precision``, ``recall``, ``density``, ``coverage``, ``mean_pixel`` in place of the
    per-sampler ``normal_*``/``gmm_*`` columns; the run's other columns repeat."""
    wanted = [f"{k}_{c}" for k in SAMPLERS for c in _SAMPLE_COLUMNS]
    missing = [c for c in wanted if c not in table.columns]
    if missing:
        raise ValueError(f"the table lacks the columns {missing}; is it a conv grid's table?")
    parts = []
    for key, label in SAMPLERS.items():
        part = table.drop(columns=wanted).copy()
        part.insert(0, "sampler", label)
        for column in _SAMPLE_COLUMNS:
            part[column] = table[f"{key}_{column}"].to_numpy()
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def score_floor(floor_draws: Sequence[float], k: float = 2.0) -> float:
    r"""The smallest difference of two sample scores the metric itself resolves:
    :math:`k\sqrt2\,s`, with :math:`s` the sd of the score of real held-out images over
    disjoint random draws (``floor_draws``); used as the verdict rule's floor."""
    values = np.asarray(list(floor_draws), dtype=np.float64)
    if values.size < 2 or not np.isfinite(values).all():
        raise ValueError("floor_draws needs at least 2 finite scores of real images")
    return float(k * math.sqrt(2.0) * values.std(ddof=1))


def _claims_for(rows: pd.DataFrame, dataset: str, floor: float) -> list[dict[str, Any]]:
    here = rows[rows["dataset"] == dataset]
    have = set(here["model"])
    out: list[dict[str, Any]] = []

    def add(family: str, claim_id: str, claim: str, better: dict, worse: dict, value: str,
            use_floor: bool = True) -> None:
        row = claim_row(here, claim, better, worse, value,
                        claim_id=f"{claim_id}_{dataset_slug(dataset)}",
                        floor=floor if use_floor else 0.0, dataset=dataset)
        out.append({"family": family, **row})

    prior, gmm = {"sampler": SAMPLERS["normal"]}, {"sampler": SAMPLERS["gmm"]}
    slug = {"CV-VAE": "cv_vae", "WAE-MMD": "wae", "2SVAE": "twostage", "BN-AE": "bnae",
            "BN-AE+logdet": "bnae_logdet", "AE-L2": "ae_l2", "RAE-L2": "rae_l2",
            "RAE-GP": "rae_gp", "RAE-SN": "rae_sn"}
    if "EAE" in have:
        for rival in ("VAE", "CV-VAE", "WAE-MMD", "2SVAE", "BN-AE", "AE"):
            if rival in have:
                add("i", f"eae_beats_{slug.get(rival, rival.lower())}_normal",
                    f"EAE beats {rival} with N(0,I)", {"model": "EAE", **prior},
                    {"model": rival, **prior}, "score")
        for rival in ("RAE", "RAE-L2", "RAE-GP", "RAE-SN", "AE", "AE-L2", "BN-AE"):
            if rival in have:
                add("iii", f"eae_beats_{slug.get(rival, rival.lower())}_gmm",
                    f"EAE beats {rival} with GMM", {"model": "EAE", **gmm},
                    {"model": rival, **gmm}, "score")
        if "BN-AE" in have:
            add("iv", "eae_codes_closer_than_bnae", "EAE codes closer to N(0,I) than BN-AE's",
                {"model": "EAE", **prior}, {"model": "BN-AE", **prior}, "kl_to_normal", False)
        if "BN-AE+logdet" in have:
            add("v", "eae_beats_bnae_logdet_normal", "EAE beats BN-AE+logdet with N(0,I)",
                {"model": "EAE", **prior}, {"model": "BN-AE+logdet", **prior}, "score")
            add("v", "eae_codes_closer_than_bnae_logdet",
                "EAE codes closer to N(0,I) than BN-AE+logdet's", {"model": "EAE", **prior},
                {"model": "BN-AE+logdet", **prior}, "kl_to_normal", False)
            if "BN-AE" in have:
                add("v", "bnae_logdet_beats_bnae_normal", "BN-AE+logdet beats BN-AE with N(0,I)",
                    {"model": "BN-AE+logdet", **prior}, {"model": "BN-AE", **prior}, "score")
    for name in sorted(have):
        add("ii", f"gmm_improves_{slug.get(name, name.lower())}", f"GMM improves {name}",
            {"model": name, **gmm}, {"model": name, **prior}, "score")
    return out


def paper_claims(rows: pd.DataFrame, floors: dict[str, float]) -> pd.DataFrame:
    """The paper's claims of Table 1 (and the book's on BN-AE+logdet), decided by the book's
    rule on one row per dataset × model × sampler × seed (:func:`sampler_rows`): "better" is
    a lower sample score or a lower KL divergence to :math:`\\mathcal N(0, I)`. A sample-score
    claim's threshold is at least ``floors[dataset]`` (:func:`score_floor`), the metric's own
    resolution. Columns :data:`CLAIM_COLUMNS`, ``p_holm`` from Holm's correction over the
    whole table."""
    claims = [c for dataset in dict.fromkeys(rows["dataset"])
              for c in _claims_for(rows, dataset, floors.get(dataset, 0.0))]
    table = with_holm(pd.DataFrame(claims))
    return table[CLAIM_COLUMNS]


def width_claims(rows: pd.DataFrame, dims: Sequence[int], floor: float) -> pd.DataFrame:
    """The bottleneck study (the paper's section 5.2, BN-AE without entropy): for each pair of
    neighbouring code sizes, "the smaller beats the larger" on N(0, I) samples and on the
    Gaussianity score per dimension."""
    shown = rows[rows["sampler"] == SAMPLERS["normal"]].copy()
    shown["kl_per_dim"] = shown["kl_to_normal"] / shown["latent_dim"]
    out = []
    for small, large in zip(dims[:-1], dims[1:], strict=True):
        for value, what, use_floor in (("score", "samples", True),
                                       ("kl_per_dim", "codes per dimension", False)):
            row = claim_row(shown, f"latent {small} beats {large} ({what})",
                            {"latent_dim": small}, {"latent_dim": large}, value,
                            claim_id=f"latent_{small}_beats_{large}_{value}",
                            floor=floor if use_floor else 0.0,
                            dataset=str(shown["dataset"].iloc[0]))
            out.append({"family": "width", **row})
    return pd.DataFrame(out)


def verdict_table(claims: pd.DataFrame) -> pd.DataFrame:
    """One row per claim (without its dataset), one column group per dataset: the verdict, the
    effect and the threshold, as short strings (``"holds"``, ``"+12.3"``, ``"4.5"``)."""
    cells = claims.assign(effect=claims["effect"].map(lambda v: f"{v:+.3g}"),
                          threshold=claims["spread"].map(lambda v: f"{v:.3g}"))
    table = cells.pivot_table(index=["family", "claim"], columns="dataset",
                              values=["verdict", "effect", "threshold"], aggfunc="first",
                              sort=False)
    return table.swaplevel(0, 1, axis=1).sort_index(axis=1, level=0, sort_remaining=False)


def convergence_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per run: epochs trained, whether the plateau rule stopped it (else it hit the epoch
    cap), the best validation error, and the relative improvement of the validation error over
    its last three epochs (small when it has plateaued)."""
    rows = []
    for _, run in table.iterrows():
        validation = list(run["history"]["validation"])
        tail = validation[-4:]
        change = (tail[0] - min(tail)) / tail[0] if len(tail) > 1 else math.nan
        rows.append({"dataset": run["dataset"], "model": run["model"], "seed": run["seed"],
                     "epochs": len(validation), "stopped by plateau": run["stopped"] is not None
                     and not (isinstance(run["stopped"], float) and math.isnan(run["stopped"])),
                     "best validation MSE": min(validation),
                     "improvement over the last 3 epochs": change})
    return pd.DataFrame(rows)


def verdict_counts(claims: pd.DataFrame, family: str) -> dict[str, int]:
    """How many claims of ``family`` hold, do not hold, and are undecided."""
    here = claims[claims["family"] == family]["verdict"]
    return {v: int((here == v).sum()) for v in (HOLDS, NOT_HOLDS, UNDECIDED)}


def yes_no(qualifies: bool) -> str:
    """``"qualifies"`` or ``"does not qualify"``."""
    if not isinstance(qualifies, bool):
        raise TypeError(f"qualifies must be a bool, got {type(qualifies).__name__}")
    return "qualifies" if qualifies else "does not qualify"


def parts_table(study: pd.DataFrame) -> pd.DataFrame:
    """A :func:`entropic_ae.synthetic.dependent.parts_study` table as one row per
    distribution: the true divergence, the estimated total (mean and sd over the seeds) and
    the mean moment, marginal and dependence parts."""
    need = {"kind", "part", "estimate", "truth"}
    if not need <= set(study.columns):
        raise ValueError(f"not a parts_study table: lacks {sorted(need - set(study.columns))}")
    wide = study.pivot_table(index="kind", columns="part", values="estimate", aggfunc="mean",
                             sort=False)
    total = study[study["part"] == "total"].groupby("kind", sort=False)
    return pd.DataFrame({"truth": total["truth"].first(), "total": wide["total"],
                         "sd": total["estimate"].std(), "moment": wide["moment"],
                         "marginal": wide["marginal"], "dependence": wide["dependence"]})


def _verdict(claims: pd.DataFrame, claim_id: str) -> str | None:
    row = claims[claims["claim_id"] == claim_id]
    return None if row.empty else str(row["verdict"].iloc[0])


def lesson(claims: pd.DataFrame, datasets: Sequence[str]) -> str:
    """What the decorrelation ablation says about the EAE's mechanism, per dataset, written
    from the claims of family ``v`` and ``iv``: whether the EAE's codes are more Gaussian
    than BN-AE's, and whether decorrelation alone (BN-AE+logdet) gives as good samples."""
    sentences = []
    for ds in datasets:
        slug = dataset_slug(ds)
        closer = _verdict(claims, f"eae_codes_closer_than_bnae_{slug}")
        beats = _verdict(claims, f"eae_beats_bnae_logdet_normal_{slug}")
        decorrelation = _verdict(claims, f"bnae_logdet_beats_bnae_normal_{slug}")
        if None in (closer, beats, decorrelation):
            continue
        gain = ("the EAE's codes are closer to N(0, I) than those without the entropy term"
                if closer == HOLDS else "the entropy term does not make the codes measurably "
                "closer to N(0, I)")
        if beats == HOLDS:
            part = ("and its samples beat those of decorrelation alone: the nearest-neighbour "
                    "term does more than decorrelate")
        elif beats == NOT_HOLDS:
            part = "and decorrelation alone gives better samples than the EAE"
        elif decorrelation == HOLDS:
            part = ("and decorrelation alone improves on BN-AE as far as the EAE does (the two "
                    "are not told apart): decorrelating the codes may be most of what the term "
                    "does for samples")
        else:
            part = "and neither the EAE nor decorrelation alone is told apart from the other"
        sentences.append(f"On {ds}, {gain}, {part}.")
    return " ".join(sentences) or "The grid lacks BN-AE, EAE or BN-AE+logdet."


def convergence_sentence(converged: pd.DataFrame, cap: int) -> str:
    """Whether every run of a :func:`convergence_table` was stopped by the plateau rule before
    the epoch cap ``cap``, and what that means for the verdicts."""
    stopped = int(converged["stopped by plateau"].sum())
    total = len(converged)
    if stopped == total:
        return (f"All {total} runs were stopped by the plateau rule, none by the cap of {cap} "
                "epochs: the differences below are between converged models, not between a "
                "trained model and an unfinished one.")
    late = converged.loc[~converged["stopped by plateau"], ["model", "dataset", "seed"]]
    names = ", ".join(f"{r.model} ({r.dataset}, seed {r.seed})" for r in late.itertuples())
    return (f"{stopped} of the {total} runs were stopped by the plateau rule; {total - stopped} "
            f"reached the cap of {cap} epochs still improving ({names}): their verdicts compare "
            "an unfinished model.")


def sensitivity_sentence(fd_rows: pd.DataFrame) -> str:
    """Which of blur and contrast the score punishes more at the weakest strength, from a
    :func:`entropic_ae.metrics.qualifies` table of one score indexed by damage (``z_1``: the
    distance from real images in real-vs-real sds)."""
    blur, contrast = float(fd_rows.loc["blur", "z_1"]), float(fd_rows.loc["contrast", "z_1"])
    if blur > contrast:
        return ("The weakest blur costs more than the weakest contrast stretch: **a blurry "
                "decoder loses to a saturated one** of the same coverage.")
    if contrast > blur:
        return ("The weakest contrast stretch costs more than the weakest blur: a saturated "
                "decoder loses to a blurry one of the same coverage.")
    return "The weakest blur and the weakest contrast stretch cost the same."


def failures_sentence(qualified: pd.DataFrame, scores: Sequence[str],
                      exclude: Sequence[str] = ("copies",)) -> str:
    """For each score of a :func:`entropic_ae.metrics.qualifies` table (by its ``metric``),
    the damages on which it does not qualify (it is not worse than real images at every
    strength, or not monotone), as one sentence."""
    parts = []
    for metric in scores:
        rows = qualified[(qualified["metric"] == metric) & ~qualified["damage"].isin(exclude)]
        if rows.empty:
            raise ValueError(f"the table has no rows of {metric!r}")
        failed = list(rows.loc[~rows["qualifies"], "damage"])
        name = metric.split("[")[0]
        parts.append(f"{name} fails on {', '.join(failed)}" if failed
                     else f"{name} qualifies on every damage")
    return "Beside it: " + "; ".join(parts) + "."
