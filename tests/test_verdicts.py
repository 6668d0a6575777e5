"""The verdict rule and the sentences written from it: one test per branch."""

import math

import pandas as pd
import pytest

from entropic_ae.verdicts import (
    HOLDS,
    NOT_HOLDS,
    UNDECIDED,
    claim_row,
    claim_sentence,
    decide,
    mean_sd,
    mean_sd_table,
    summarise,
    verdict_phrase,
)


def test_holds_when_the_difference_exceeds_two_pooled_sds():
    d = decide([1.0, 2.0, 3.0], [5.0, 6.0, 7.0])  # sd 1 each: spread 2, effect 4
    assert (d.verdict, d.effect, d.spread) == (HOLDS, 4.0, 2.0)
    assert (d.mean_a, d.mean_b, d.n_a, d.n_b) == (2.0, 6.0, 3, 3)


def test_does_not_hold_when_the_opposite_difference_is_that_large():
    assert decide([5.0, 6.0, 7.0], [1.0, 2.0, 3.0]).verdict == NOT_HOLDS


def test_undecided_in_between_including_the_boundary():
    assert decide([1.0, 2.0, 3.0], [2.5, 3.5, 4.5]).verdict == UNDECIDED
    assert decide([1.0, 2.0, 3.0], [3.0, 4.0, 5.0]).verdict == UNDECIDED  # effect == spread


def test_higher_is_better_flips_the_direction():
    assert decide([5.0, 6.0, 7.0], [1.0, 2.0, 3.0], lower_is_better=False).verdict == HOLDS


def test_pooled_sd_of_unequal_spreads():
    d = decide([0.0, 2.0], [10.0, 10.0])  # variances 2 and 0: s_p = 1, spread 2
    assert d.spread == pytest.approx(2.0) and d.verdict == HOLDS


@pytest.mark.parametrize("a, b, error", [([1.0], [1.0, 2.0], ValueError),
                                         ([1.0, math.nan], [1.0, 2.0], ValueError),
                                         (["x", "y"], [1.0, 2.0], TypeError)])
def test_bad_values(a, b, error):
    with pytest.raises(error):
        decide(a, b)


def test_claim_rows_from_a_results_table():
    table = pd.DataFrame({"model": ["A"] * 3 + ["B"] * 3, "seed": [0, 1, 2] * 2,
                          "fd": [1.0, 2.0, 3.0, 5.0, 6.0, 7.0]})
    row = claim_row(table, "A beats B", {"model": "A"}, {"model": "B"}, "fd", dataset="mnist")
    assert row["verdict"] == HOLDS and row["dataset"] == "mnist" and row["seeds"] == 3
    with pytest.raises(ValueError, match="no rows"):
        claim_row(table, "x", {"model": "C"}, {"model": "B"}, "fd")
    with pytest.raises(ValueError, match="no column"):
        claim_row(table, "x", {"size": 1}, {"model": "B"}, "fd")


@pytest.mark.parametrize("verdict, phrase", [(HOLDS, "holds"), (NOT_HOLDS, "does not hold"),
                                             (UNDECIDED, "is undecided")])
def test_sentences_for_every_verdict(verdict, phrase):
    row = {"claim": "EAE beats VAE", "dataset": "mnist", "verdict": verdict, "effect": 4.04,
           "spread": 2.0}
    assert verdict_phrase(verdict) == phrase
    assert claim_sentence(row) == (f"\u201cEAE beats VAE\u201d on mnist {phrase} (a difference "
                                   "of 4.04 in its favour, threshold 2).")
    row.update(effect=-0.00039, spread=0.000914, mean_better=0.02702, mean_worse=0.024212)
    assert claim_sentence(row) == (f"\u201cEAE beats VAE\u201d on mnist {phrase} (0.027 against "
                                   "0.0242: a difference of 0.00039 against it, threshold "
                                   "0.000914).")
    row.update(effect=12345.6, spread=2.5e-6)
    assert "a difference of 12346 in its favour, threshold 2.5e-06)" in claim_sentence(row)
    with pytest.raises(ValueError):
        verdict_phrase("maybe")


def test_summaries_count_each_verdict_in_order():
    claims = pd.DataFrame({"verdict": [HOLDS, UNDECIDED, HOLDS, NOT_HOLDS]})
    assert summarise(claims, "claim (i)") == ("Of the 4 comparisons of claim (i), 2 hold, 1 does "
                                              "not hold and 1 is undecided.")
    assert summarise(claims.iloc[:1], "x") == "Of the 1 comparison of x, 1 holds."
    assert summarise(pd.DataFrame({"verdict": [UNDECIDED] * 2}), "x") == (
        "Of the 2 comparisons of x, 2 are undecided.")
    assert summarise(pd.DataFrame({"verdict": [NOT_HOLDS] * 2}), "x") == (
        "Of the 2 comparisons of x, 2 do not hold.")
    assert summarise(pd.DataFrame({"verdict": []}), "x") == "No comparisons of x could be made."


def test_mean_sd_cells_and_tables():
    assert mean_sd([1.0, 2.0, 3.0]) == "2.0 ± 1.0"
    assert mean_sd([1.0]) == "1.0 ± nan" and mean_sd([]) == "–"
    table = pd.DataFrame({"model": ["A", "A", "B", "B"], "ds": ["m"] * 4,
                          "fd": [1.0, 3.0, 5.0, 7.0]})
    cells = mean_sd_table(table, "model", "ds", "fd", order={"model": ["B", "A"]})
    assert cells.loc["B", "m"] == "6.0 ± 1.4" and list(cells.index) == ["B", "A"]
    one = mean_sd_table(table, "model", None, "fd", order={"model": ["B", "A"]})
    assert list(one.columns) == ["fd"] and one.loc["A", "fd"] == "2.0 ± 1.4"
    assert list(one.index) == ["B", "A"]
