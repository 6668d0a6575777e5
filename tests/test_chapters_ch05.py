"""Chapter 5's front comparisons on small tables with known answers
(entropic_ae.chapters.ch05)."""

import math

import pandas as pd
import pytest

from entropic_ae.chapters import ch05
from entropic_ae.verdicts import HOLDS, NOT_HOLDS, UNDECIDED


def runs(points, dataset="mnist"):
    """One row per seed around each (model, beta, val_mse, score) with sd 0.1 in the score."""
    rows = []
    for model, beta, val, score in points:
        for s, noise in enumerate((-0.1, 0.0, 0.1)):
            rows.append({"dataset": dataset, "model": model, "beta": beta, "seed": s,
                         "val_mse": val, "score": score + noise})
    return pd.DataFrame(rows)


EAE = [("EAE", 0.3, 0.010, 60.0), ("EAE", 1.0, 0.012, 50.0), ("EAE", 3.0, 0.016, 40.0)]


def test_validation_error_is_the_best_epochs():
    assert ch05.validation_error({"validation": [0.3, 0.1, 0.2]}) == 0.1
    with pytest.raises(ValueError, match="n_val"):
        ch05.validation_error({"validation": []})


def test_fronts_average_over_seeds_and_sort_by_reconstruction():
    table = ch05.fronts(runs(EAE))
    assert table["val_mse"].tolist() == pytest.approx([0.010, 0.012, 0.016])
    assert table["value"].tolist() == pytest.approx([60.0, 50.0, 40.0])
    assert table["sd"].tolist() == pytest.approx([0.1, 0.1, 0.1])
    with pytest.raises(ValueError, match="lack"):
        ch05.fronts(pd.DataFrame({"model": []}))


def test_matched_points_interpolate_the_reference_front():
    table = ch05.fronts(runs(EAE + [("X", 1.0, 0.011, 50.0), ("X", 3.0, 0.020, 10.0)]))
    matched = ch05.matched_points(table, "X")
    assert len(matched) == 1  # 0.020 is outside the EAE's range
    point = matched.iloc[0]
    assert point["reference"] == pytest.approx(55.0)  # halfway between 60 and 50
    assert point["effect"] == pytest.approx(5.0) and point["verdict"] == HOLDS
    assert point["spread"] == pytest.approx(0.2)
    assert ch05.matched_points(table, "X", floor=6.0).iloc[0]["verdict"] == UNDECIDED


def test_front_claims_aggregate_the_matched_points():
    better = [("X", 1.0, 0.011, 50.0), ("X", 3.0, 0.015, 40.0)]  # 5 and 2.5 below the EAE
    worse = [("Y", 1.0, 0.011, 60.0), ("Y", 3.0, 0.015, 50.0)]
    mixed = [("Z", 1.0, 0.011, 50.0), ("Z", 3.0, 0.015, 50.0)]
    table = ch05.fronts(runs(EAE + better + worse + mixed))
    claims = ch05.front_claims({"samples": table}, ["X", "Y", "Z", "W"],
                               floors={"mnist": 0.5}).set_index("claim_id")
    assert list(claims.reset_index().columns) == ch05.CLAIM_COLUMNS
    assert claims.loc["x_below_eae_samples_mnist", "verdict"] == HOLDS
    assert claims.loc["y_below_eae_samples_mnist", "verdict"] == NOT_HOLDS
    assert claims.loc["z_below_eae_samples_mnist", "verdict"] == UNDECIDED
    absent = claims.loc["w_below_eae_samples_mnist"]
    assert absent["verdict"] == UNDECIDED and absent["matched_points"] == 0
    assert math.isnan(absent["effect"])
    assert claims.loc["x_below_eae_samples_mnist", "effect"] == pytest.approx(5.0)
    assert claims.loc["x_below_eae_samples_mnist", "floor"] == 0.5
