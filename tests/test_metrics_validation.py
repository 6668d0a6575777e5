"""The damage study and the qualification of scores, on tiny synthetic images."""

import numpy as np
import pandas as pd
import pytest
import torch

from entropic_ae.damage import STRENGTHS
from entropic_ae.metrics.validation import damage_study, qualifies, verdict_scores


def toy_images(n=240, side=8, seed=0):
    """Four classes: a bright 3x3 square at one of four places, plus faint noise."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 4
    images = 0.05 * torch.rand(n, 1, side, side, generator=gen)
    for c, (y, x) in enumerate([(1, 1), (1, 4), (4, 1), (4, 4)]):
        images[labels == c, 0, y:y + 3, x:x + 3] += 0.9
    return images.clamp(0, 1), labels


def projection(seed):
    w = torch.randn(64, 5, generator=torch.Generator().manual_seed(seed))
    return lambda images: images.flatten(1) @ w


SMALL = {"blur": (0.5, 1.0, 1.5), "classes": (1, 2, 3), "duplicates": (2, 4, 8),
         "copies": (0.25, 0.5, 1.0)}


def test_study_table_layout():
    images, labels = toy_images(600)
    train, _ = toy_images(80, seed=1)
    spaces = {"one": projection(0), "two": [projection(0), projection(1)]}
    table = damage_study(images, labels, spaces, train_images=train, damages=list(SMALL),
                         strengths=SMALL, n=60, seeds=(0, 1), floor_draws=3, prdc_k=3,
                         prdc_spaces=["one"])
    assert list(table.columns) == ["seed", "damage", "level", "strength", "features", "score",
                                   "value", "metric"]
    none = table[table.damage == "none"]
    assert sorted(none.seed.unique()) == [0, 1, 2]  # 3 real-vs-real draws
    damaged = table[table.damage != "none"]
    assert sorted(damaged.seed.unique()) == [0, 1]  # damage only for the seeds
    assert set(zip(damaged.damage, damaged.level, damaged.strength, strict=True)) == {
        (k, i + 1, float(s)) for k, v in SMALL.items() for i, s in enumerate(v)}
    scores = table.groupby("features")["score"].unique().apply(set).to_dict()
    assert scores["one"] == {"fd", "kid", "precision", "recall", "density", "coverage"}
    assert scores["two"] == {"fd", "kid"} and scores["two/0"] == scores["two/1"] == {"fd", "kid"}
    assert scores["pixels"] == {"copy_fraction"}
    pixels = table[table.features == "pixels"]
    assert set(pixels.damage) == {"none", "copies", "duplicates"}
    assert set(pixels.seed) == {0, 1}
    copies = pixels[(pixels.damage == "copies") & (pixels.level == 3)]
    assert (copies.value == 1.0).all()
    # the two-net space is the mean of its nets, and net 0 is the one-net space's network
    rows = table.set_index(["seed", "damage", "level", "metric"])["value"]
    key = (0, "blur", 2)
    assert rows[(*key, "fd[two]")] == pytest.approx(
        (rows[(*key, "fd[two/0]")] + rows[(*key, "fd[two/1]")]) / 2)
    assert rows[(*key, "kid[two/0]")] == pytest.approx(rows[(*key, "kid[one]")])
    with pytest.raises(ValueError, match="unknown damage"):
        damage_study(images, labels, spaces, damages=["smear"], n=60)
    with pytest.raises(TypeError, match="feature_spaces"):
        damage_study(images, labels, {}, n=60)


def handmade(values_a, values_b, real_a, real_b):
    """A study table of two scores, one damage, two seeds: a (lower is better, fd) and b
    (higher is better, coverage)."""
    rows = []
    for seed in (0, 1):
        for score, real, values in (("fd", real_a, values_a), ("coverage", real_b, values_b)):
            rows.append({"seed": seed, "damage": "none", "level": 0, "strength": 0.0,
                         "features": "f", "score": score, "value": real[seed]})
            for level, v in enumerate(values, start=1):
                rows.append({"seed": seed, "damage": "blur", "level": level,
                             "strength": float(level), "features": "f", "score": score,
                             "value": v[seed]})
    table = pd.DataFrame(rows)
    table["metric"] = table["score"] + "[" + table["features"] + "]"
    return table


def test_qualifies_by_hand():
    table = handmade(values_a=[(2, 2), (3, 5), (6, 6)], real_a=(1, 1.2),
                     values_b=[(0.8, 0.8), (0.9, 0.85), (0.5, 0.5)], real_b=(0.95, 0.97))
    q = qualifies(table).set_index("metric")
    a, b = q.loc["fd[f]"], q.loc["coverage[f]"]
    sd = np.std([1, 1.2], ddof=1)
    assert a["real"] == pytest.approx(1.1) and a["real_sd"] == pytest.approx(sd)
    assert a["z_1"] == pytest.approx((2 - 1.1) / sd) and a["value_2"] == 4
    assert a["real_best"] and a["monotone"] and a["qualifies"]
    assert a["monotone_every_seed"]
    # coverage: higher is better; level 2 is better than level 1: not monotone
    assert b["real_best"] and not b["monotone"] and not b["qualifies"]
    assert b["z_1"] == pytest.approx((0.96 - 0.8) / np.std([0.95, 0.97], ddof=1))


def test_monotone_on_the_means_but_not_seed_by_seed():
    table = handmade(values_a=[(2, 3), (3, 2.5), (4, 4)], real_a=(1, 1),
                     values_b=[(0.8, 0.8)] * 3, real_b=(0.9, 0.9))
    a = qualifies(table).set_index("metric").loc["fd[f]"]
    assert a["monotone"] and not a["monotone_every_seed"]


def test_verdict_scores_leave_copies_out():
    q = pd.DataFrame([
        {"metric": "fd[f]", "features": "f", "score": "fd", "damage": "blur",
         "qualifies": True, "monotone_every_seed": True, "z_1": 5.0},
        {"metric": "fd[f]", "features": "f", "score": "fd", "damage": "copies",
         "qualifies": False, "monotone_every_seed": False, "z_1": 0.1},
        {"metric": "fd[f]", "features": "f", "score": "fd", "damage": "noise",
         "qualifies": True, "monotone_every_seed": False, "z_1": 2.0},
    ])
    v = verdict_scores(q).iloc[0]
    assert v["qualifies"] and v["damages"] == 2 and v["damages_passed"] == 2
    assert (v["weakest_z_1"], v["strongest_z_1"]) == (2.0, 5.0)
    assert v["monotone_every_seed"] == 1 and v["detected_at_1"] == 1  # z_1 = 2 is in the band
    assert not verdict_scores(q, exclude=()).iloc[0]["qualifies"]


def test_real_images_win_on_the_toy_data():
    """A study at a toy size: real images score best and blur is punished monotonically by
    the KID of a random projection."""
    images, labels = toy_images(600)
    table = damage_study(images, labels, {"p": projection(2)}, damages=["blur"],
                         strengths={"blur": STRENGTHS["blur"]}, n=200, seeds=(0, 1),
                         floor_draws=2, prdc_k=None)
    row = qualifies(table).set_index("metric").loc["kid[p]"]
    assert row["qualifies"]
