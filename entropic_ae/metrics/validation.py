r"""Which sample score to trust: scores of real held-out images against graded, known damage.

:func:`damage_study` draws, for each seed, a reference set and a disjoint comparison set of real
held-out images at random (:func:`~entropic_ae.metrics.samples.reference_draw`), damages the
comparison set by each kind of :mod:`entropic_ae.damage` at each strength, and scores every set
against the reference in every feature space. Its tidy table has one row per seed, damage,
strength, feature space and score. :func:`qualifies` then asks, per score and damage, the two
questions a verdict score must answer yes to:

- **real best**: do undamaged real images score better than every damaged set?
- **monotone**: does the score get strictly worse with each step of strength?

and states how strongly each damage is punished in units of the score's own real-vs-real spread
(its standard deviation over the seeds' disjoint draws), so that a reader knows what a
difference means. Copies of training images are real images: no score of distributions can
punish them (:func:`qualifies` reports them, :func:`verdict_scores` leaves them out), and the
``copy_fraction`` column, in pixel space, is the one that sees them.

Measured at the chapter's sizes (sets of 2,000 test images, 3 seeds, 10 real-vs-real draws,
the book's LeNet; 51 s of one CPU core per dataset): the Fréchet distance of real held-out
images is 3.2 ± 1.1 on MNIST and 1.09 ± 0.35 on Fashion-MNIST (random draws; the first 2,000
training against the first 2,000 test images give 14.6 on MNIST, whose test file is ordered by
writer group). The Fréchet distance and the KID qualify on both datasets (also in the features
of three LeNet seeds, averaged, and of LeNets trained on moved images, which changed nothing
that matters); precision and density do not (blur and noise *raise* them: blurred digits sit
where real ones are dense), nor do recall (contrast, shift) and, on MNIST, coverage (weak
noise). :data:`entropic_ae.metrics.samples.SAMPLE_SCORE` says which score the chapter uses.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from entropic_ae import damage as damage_module
from entropic_ae._checks import check_int
from entropic_ae.metrics.features import FeatureExtractor, image_features
from entropic_ae.metrics.frechet import frechet_distance
from entropic_ae.metrics.samples import (
    ReferenceSet,
    copy_fraction,
    kid,
    precision_recall_density_coverage,
    reference_draw,
)

__all__ = ["HIGHER_IS_BETTER", "UNPUNISHABLE", "damage_study", "qualifies", "verdict_scores"]

HIGHER_IS_BETTER = {"fd": False, "kid": False, "fd_concat": False, "kid_concat": False,
                    "precision": True, "recall": True, "density": True, "coverage": True,
                    "copy_fraction": False}
"""The direction of each score of :func:`damage_study`."""

UNPUNISHABLE = ("copies",)
"""Damage that no score of distributions can see: copies of training images are real."""


def _scores_in_space(gen: list[torch.Tensor], refs: list[ReferenceSet], prdc_k: int | None,
                     concat: bool) -> dict[str, float]:
    """FD and KID (means over the nets; with several nets also each net's, as ``fd/i`` and
    ``kid/i``, and with ``concat`` the two in the concatenated features);
    precision/recall/density/coverage (if ``prdc_k``) in the first or concatenated features."""
    fds = [r.frechet(g) for g, r in zip(gen, refs, strict=True)]
    kids = [r.kid(g) for g, r in zip(gen, refs, strict=True)]
    out = {"fd": float(np.mean(fds)), "kid": float(np.mean(kids))}
    if len(gen) > 1:
        for i, (f, k) in enumerate(zip(fds, kids, strict=True)):
            out[f"fd/{i}"], out[f"kid/{i}"] = f, k
    joined = None
    if len(gen) > 1 and (concat or prdc_k is not None):
        joined = torch.cat(gen, 1), torch.cat([r.features for r in refs], 1)
    if concat and joined is not None:
        out["fd_concat"] = frechet_distance(*joined)
        out["kid_concat"] = kid(*joined)
    if prdc_k is not None:
        g, r = joined if joined is not None else (gen[0], refs[0].features)
        out.update(precision_recall_density_coverage(r, g, prdc_k))
    return out


def _damaged_sets(images: torch.Tensor, labels: torch.Tensor, comparison: torch.Tensor,
                  pool: torch.Tensor, train: torch.Tensor | None, damages: Sequence[str],
                  strengths: Mapping[str, Sequence[float]], seed: int
                  ) -> Iterable[tuple[str, int, float, torch.Tensor]]:
    """(damage, level, strength, images): the undamaged comparison set first (level 0)."""
    base, base_labels = images[comparison], labels[comparison]
    yield "none", 0, 0.0, base
    for kind in damages:
        for level, strength in enumerate(strengths[kind], start=1):
            if kind == "copies":
                if train is None:
                    continue
                extra = train
            elif kind == "classes":
                extra = (images[pool], labels[pool])
            else:
                extra = None
            yield kind, level, float(strength), damage_module.damage(
                base, base_labels, kind, strength, seed=seed, pool=extra)


def _check_spaces(feature_spaces: object) -> dict[str, list[FeatureExtractor]]:
    if not isinstance(feature_spaces, Mapping) or not feature_spaces:
        raise TypeError("feature_spaces must be a non-empty mapping name -> list of feature "
                        "extractors (one for a single network, several for a multi-seed space)")
    spaces = {}
    for name, nets in feature_spaces.items():
        nets = [nets] if callable(nets) else list(nets)
        if not nets or not all(callable(f) for f in nets):
            raise TypeError(f"feature space {name!r} must be a callable or a non-empty list of "
                            "callables (images -> features)")
        spaces[str(name)] = nets
    return spaces


def _rows_for_set(spaces: dict[str, list[FeatureExtractor]], nets: dict[int, FeatureExtractor],
                  refs: dict[int, ReferenceSet], images: torch.Tensor, here: dict,
                  prdc_spaces: set[str], prdc_k: int | None, concat: bool) -> list[dict]:
    """The rows of one image set: every score in every feature space (each net run once)."""
    feats = {key: image_features(images, f) for key, f in nets.items()}
    rows = []
    for name, fs in spaces.items():
        values = _scores_in_space([feats[id(f)] for f in fs], [refs[id(f)] for f in fs],
                                  prdc_k if name in prdc_spaces else None, concat)
        for score, value in values.items():
            score, _, net = score.partition("/")
            rows.append({**here, "features": f"{name}/{net}" if net else name, "score": score,
                         "value": value})
    return rows


def damage_study(images: torch.Tensor, labels: torch.Tensor,
                 feature_spaces: Mapping[str, FeatureExtractor | Sequence[FeatureExtractor]], *,
                 train_images: torch.Tensor | None = None,
                 damages: Sequence[str] = damage_module.KINDS,
                 strengths: Mapping[str, Sequence[float]] | None = None, n: int = 2000,
                 seeds: Sequence[int] = (0, 1, 2), floor_draws: int = 10,
                 prdc_k: int | None = 5, prdc_spaces: Sequence[str] | None = None,
                 concat: bool = False, progress: bool = False) -> pd.DataFrame:
    """Scores of real held-out images and of their graded damage, in every feature space.

    ``images``/``labels``: held-out real images (e.g. a test split) and their labels. For each
    draw: a reference set and a comparison set of ``n`` images each, disjoint and drawn at
    random (:func:`~entropic_ae.metrics.samples.reference_draw` with the draw's seed); the rest
    of ``images`` is the pool that replaces dropped classes. For each of ``seeds`` the
    comparison set is scored as it is (damage ``"none"``, level 0) and after each of
    ``damages`` at each of its ``strengths`` (default :data:`entropic_ae.damage.STRENGTHS`;
    levels 1, 2, … weakest first), the damage seeded with the seed. ``floor_draws`` draws in
    all (the seeds, then further seeds) score undamaged real images only: the score's
    real-vs-real spread, from more draws than the damage needs. ``copies`` come from
    ``train_images`` (left out without them).

    ``feature_spaces`` maps a name to one feature network or to several (a multi-seed space).
    Scores per space: ``fd`` and ``kid``, for several networks the mean of their scores (and
    each network's, as space ``"name/i"``), with ``concat`` also ``fd_concat`` and
    ``kid_concat`` in the concatenated features; for the spaces in ``prdc_spaces`` (default:
    all) ``precision``, ``recall``, ``density`` and ``coverage`` with ``prdc_k`` neighbours
    (``prdc_k=None``: none). With ``train_images``, ``copy_fraction`` (pixel space, space name
    ``"pixels"``) for the undamaged, ``copies`` and ``duplicates`` sets. Each image set is
    embedded once per network, shared between spaces; each reference once per draw.

    Returns a tidy table: ``seed, damage, level, strength, features, score, metric, value``
    (``metric`` is ``"score[features]"``).
    """
    spaces = _check_spaces(feature_spaces)
    if prdc_k is not None:
        prdc_k = check_int("prdc_k", prdc_k, minimum=1)
    n = check_int("n", n, minimum=prdc_k + 1 if prdc_k else 2)
    seeds = [check_int("seed", s, minimum=0) for s in seeds]
    floor_draws = check_int("floor_draws", floor_draws, minimum=len(seeds))
    extra = [max(seeds, default=-1) + 1 + i for i in range(floor_draws - len(seeds))]
    strengths = dict(damage_module.STRENGTHS if strengths is None else strengths)
    unknown = [d for d in damages if d not in damage_module.KINDS or d not in strengths]
    if unknown:
        raise ValueError(f"unknown damage kinds or kinds without strengths: {unknown}; known: "
                         f"{damage_module.KINDS}")
    prdc_spaces = set(spaces if prdc_spaces is None else prdc_spaces)
    nets = {id(f): f for fs in spaces.values() for f in fs}
    rows: list[dict] = []
    bar = tqdm(total=len(seeds) * sum(len(strengths[d]) for d in damages) + floor_draws,
               desc="damage study", disable=not progress)
    for seed in seeds + extra:
        reference, comparison = reference_draw(len(images), n, seed)
        refs = {key: ReferenceSet(image_features(images[reference], f))
                for key, f in nets.items()}
        pool = torch.ones(len(images), dtype=torch.bool)
        pool[torch.cat([reference, comparison])] = False
        sets = _damaged_sets(images, labels, comparison, torch.nonzero(pool).flatten(),
                             train_images, damages if seed in seeds else (), strengths, seed)
        for kind, level, strength, damaged in sets:
            here = {"seed": seed, "damage": kind, "level": level, "strength": strength}
            rows += _rows_for_set(spaces, nets, refs, damaged, here, prdc_spaces, prdc_k,
                                  concat)
            if train_images is not None and seed in seeds and kind in ("none", "copies",
                                                                      "duplicates"):
                rows.append({**here, "features": "pixels", "score": "copy_fraction",
                             "value": copy_fraction(damaged, train_images, images[reference])})
            bar.update()
    bar.close()
    table = pd.DataFrame(rows)
    table["metric"] = table["score"] + "[" + table["features"] + "]"
    return table


def _badness(score: str) -> float:
    """+1 when a larger value is worse, -1 when larger is better."""
    if score not in HIGHER_IS_BETTER:
        raise ValueError(f"unknown score {score!r}; known: {sorted(HIGHER_IS_BETTER)}")
    return -1.0 if HIGHER_IS_BETTER[score] else 1.0


def _per_seed_monotone(real: pd.Series, damaged: pd.DataFrame, sign: float) -> bool:
    """Whether, for every seed, real < level 1 < level 2 < ... in badness."""
    wide = damaged.pivot_table(index="seed", columns="level", values="value")
    steps = np.column_stack([real.reindex(wide.index).to_numpy(), wide.to_numpy()]) * sign
    return bool((np.diff(steps, axis=1) > 0).all())


def qualifies(table: pd.DataFrame) -> pd.DataFrame:
    """Per metric × damage of a :func:`damage_study` table: ``real`` and ``real_sd`` (the
    undamaged comparison set's mean and standard deviation over the seeds), the damaged means
    ``value_1..3`` and their distance from ``real`` in units of ``real_sd`` in the worse
    direction, ``z_1..3`` (a negative z: scored *better* than real images); ``real_best``
    (real images score better than every strength), ``monotone`` (strictly worse at each step,
    on the means over the seeds), ``monotone_every_seed`` (the same, seed by seed, each against
    its own real value) and ``qualifies`` (``real_best`` and ``monotone``)."""
    need = {"seed", "damage", "level", "score", "features", "metric", "value"}
    if not need <= set(table.columns):
        raise ValueError(f"not a damage_study table: columns {sorted(need - set(table.columns))} "
                         "are missing")
    out = []
    for metric, rows in table.groupby("metric", sort=False):
        score, features = rows["score"].iloc[0], rows["features"].iloc[0]
        sign = _badness(score)
        real_rows = rows[rows["damage"] == "none"].set_index("seed")["value"]
        if real_rows.empty:
            raise ValueError(f"{metric}: the table has no undamaged ('none') rows")
        real, real_sd = float(real_rows.mean()), float(real_rows.std(ddof=1))
        for kind, damaged in rows[rows["damage"] != "none"].groupby("damage", sort=False):
            means = damaged.groupby("level")["value"].mean().sort_index()
            worse = sign * (means.to_numpy() - real)
            row = {"metric": metric, "features": features, "score": score, "damage": kind,
                   "real": real, "real_sd": real_sd}
            for level, (value, w) in enumerate(zip(means, worse, strict=True), start=1):
                row[f"value_{level}"] = float(value)
                row[f"z_{level}"] = float(w / real_sd) if real_sd > 0 else math.copysign(
                    math.inf, w) if w else 0.0
            row["real_best"] = bool((worse > 0).all())
            row["monotone"] = bool((np.diff(worse) > 0).all())
            row["monotone_every_seed"] = _per_seed_monotone(real_rows, damaged, sign)
            row["qualifies"] = row["real_best"] and row["monotone"]
            out.append(row)
    return pd.DataFrame(out)


def verdict_scores(qualified: pd.DataFrame, exclude: Sequence[str] = UNPUNISHABLE,
                   band: float = 2.0) -> pd.DataFrame:
    """Per metric of a :func:`qualifies` table: ``qualifies`` on every damage but ``exclude``
    (copies of training images, which no distribution score can see), how many damages it
    passes, on how many it is monotone seed by seed, on how many the weakest strength already
    lies beyond ``band`` real-vs-real standard deviations (``detected_at_1``: the damage is
    resolved from the score's own noise), and the weakest and strongest punishment at the
    first strength (``z_1``) over those damages (their ratio is how many times more one damage
    costs than another)."""
    kept = qualified[~qualified["damage"].isin(exclude)]
    out = []
    for metric, rows in kept.groupby("metric", sort=False):
        z1 = rows["z_1"].to_numpy()
        out.append({"metric": metric, "features": rows["features"].iloc[0],
                    "score": rows["score"].iloc[0], "qualifies": bool(rows["qualifies"].all()),
                    "damages_passed": int(rows["qualifies"].sum()), "damages": len(rows),
                    "monotone_every_seed": int(rows["monotone_every_seed"].sum()),
                    "detected_at_1": int((z1 > band).sum()),
                    "weakest_z_1": float(z1.min()), "strongest_z_1": float(z1.max())})
    return pd.DataFrame(out)
