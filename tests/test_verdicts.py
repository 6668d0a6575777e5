"""The verdict rule and the sentences written from it: one test per branch."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from entropic_ae.verdicts import (
    HOLDS,
    NOT_HOLDS,
    UNDECIDED,
    claim_id_from,
    claim_row,
    claim_sentence,
    decide,
    false_verdict_rate,
    flip_probabilities,
    holm,
    mean_sd,
    mean_sd_table,
    summarise,
    verdict_phrase,
    welch_p_value,
    with_holm,
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


# --- the rule's error rate, Welch p-values, Holm, flips --------------------------------------


def test_false_verdict_rate_closed_form():
    """2 P(t_{2n-2} > 2 sqrt(n/2)): P(|t_4| > 2.449) at 3 seeds, P(|t_8| > 3.162) at 5."""
    assert false_verdict_rate(3) == pytest.approx(2 * stats.t.sf(2 * math.sqrt(1.5), 4))
    assert false_verdict_rate(3) == pytest.approx(0.0705, abs=5e-4)
    assert false_verdict_rate(5) == pytest.approx(0.0134, abs=5e-4)
    assert false_verdict_rate(3, two_sided=False) == pytest.approx(false_verdict_rate(3) / 2)
    assert false_verdict_rate(10, k=1.0) > false_verdict_rate(10, k=2.0)
    for bad, error in ((1, ValueError), (3.0, TypeError), (True, TypeError)):
        with pytest.raises(error, match="n_seeds"):
            false_verdict_rate(bad)
    with pytest.raises(ValueError, match="k"):
        false_verdict_rate(3, k=0.0)


@pytest.mark.parametrize("n", [3, 5])
def test_false_verdict_rate_matches_simulation(n):
    """20,000 null claims with n normal seeds per side (seeded): the share of verdicts other
    than 'undecided' is within 4 binomial standard errors of the closed form, and the same
    holds with decide() itself on the first 2,000."""
    rng = np.random.default_rng(n)
    draws = 20_000
    a, b = rng.normal(3.0, 2.0, (draws, n)), rng.normal(3.0, 2.0, (draws, n))
    spread = 2 * np.sqrt((a.var(1, ddof=1) + b.var(1, ddof=1)) / 2)
    share = float((np.abs(b.mean(1) - a.mean(1)) > spread).mean())
    rate = false_verdict_rate(n)
    assert share == pytest.approx(rate, abs=4 * math.sqrt(rate * (1 - rate) / draws))
    by_rule = np.mean([decide(x, y).verdict != UNDECIDED
                       for x, y in zip(a[:2000], b[:2000], strict=True)])
    assert by_rule == pytest.approx(rate, abs=4 * math.sqrt(rate * (1 - rate) / 2000))


def test_welch_p_value_by_hand():
    a, b = [1.0, 2.0, 4.0], [3.0, 5.0, 9.0, 11.0]
    va, vb = np.var(a, ddof=1) / 3, np.var(b, ddof=1) / 4
    t = (np.mean(a) - np.mean(b)) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 3)
    assert welch_p_value(a, b) == pytest.approx(2 * stats.t.sf(abs(t), df))
    assert welch_p_value([1.0, 1.0], [1.0, 1.0]) == 1.0
    assert welch_p_value([1.0, 1.0], [2.0, 2.0]) == 0.0
    assert decide(a, b).p_value == pytest.approx(welch_p_value(a, b))
    assert welch_p_value(a, b) == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue)
    assert welch_p_value([0.0, 2.0], [10.0, 10.0]) == pytest.approx(
        2 * stats.t.sf(9.0, 1))  # t = (1 - 10) / sqrt(2 / 2); one side without spread: df = 1


def test_holm_by_hand():
    """m = 4: sorted 0.01, 0.02, 0.03, 0.5 -> 0.04, max(0.04, 0.06), max(0.06, 0.06), 0.5."""
    got = holm([0.03, 0.5, 0.01, 0.02])
    np.testing.assert_allclose(got, [0.06, 0.5, 0.04, 0.06])
    np.testing.assert_allclose(holm([0.4, 0.3]), [0.6, 0.6])  # monotone: max over the prefix
    np.testing.assert_allclose(holm([0.9, 0.8]), [1.0, 1.0])  # capped at 1
    assert holm([]).shape == (0,)
    with pytest.raises(ValueError, match="p_values"):
        holm([0.1, math.nan])
    with pytest.raises(ValueError, match="p_values"):
        holm([1.2])


def test_holm_against_statsmodels():
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    p = np.random.default_rng(0).uniform(0, 0.2, 30)
    np.testing.assert_allclose(holm(p), multitest.multipletests(p, method="holm")[1])


def test_holm_controls_the_family_wise_error():
    """2,000 tables of 20 true nulls (uniform p-values): at most 5 % have any p_holm <= 0.05
    (Holm: 4.9 % expected for independent p-values), while unadjusted ones nearly always do."""
    p = np.random.default_rng(1).uniform(size=(2000, 20))
    any_holm = np.mean([(holm(row) <= 0.05).any() for row in p])
    assert any_holm < 0.05 + 4 * math.sqrt(0.05 * 0.95 / 2000)
    assert (p <= 0.05).any(1).mean() > 0.6


def claims_table():
    table = pd.DataFrame({"model": ["A"] * 3 + ["B"] * 3 + ["C"] * 3, "seed": [0, 1, 2] * 3,
                          "fd": [1.0, 2.0, 3.0, 5.0, 6.0, 7.0, 2.9, 3.0, 3.1]})
    rows = [claim_row(table, "A beats B", {"model": "A"}, {"model": "B"}, "fd",
                      claim_id="a_beats_b", dataset="m"),
            claim_row(table, "A beats C", {"model": "A"}, {"model": "C"}, "fd",
                      claim_id="a_beats_c", dataset="m"),
            claim_row(table, "B higher than C", {"model": "B"}, {"model": "C"}, "fd",
                      lower_is_better=False, claim_id="b_above_c", dataset="m")]
    return pd.DataFrame(rows)


def test_claim_rows_carry_an_id_sds_and_a_p_value():
    claims = claims_table()
    assert list(claims.columns[:3]) == ["claim_id", "claim", "dataset"]
    assert list(claims["claim_id"]) == ["a_beats_b", "a_beats_c", "b_above_c"]
    row = claims.iloc[0]
    assert (row["sd_better"], row["sd_worse"]) == (1.0, 1.0)
    assert row["p_value"] == pytest.approx(welch_p_value([1, 2, 3], [5, 6, 7]))
    assert claim_sentence(row.to_dict()).startswith("\u201cA beats B\u201d on m holds")
    table = pd.DataFrame({"model": ["A", "A", "B", "B"], "fd": [1.0, 2.0, 3.0, 4.0]})
    legacy = claim_row(table, "EAE beats VAE with N(0,I)", {"model": "A"}, {"model": "B"}, "fd",
                       dataset="fashion-mnist")
    assert legacy["claim_id"] == "eae_beats_vae_with_n_0_i_fashion_mnist"
    assert claim_id_from("A  beats B!") == "a_beats_b"
    for bad in ("A beats B", "a__b", "_a", "", 3):
        with pytest.raises(ValueError, match="claim_id"):
            claim_row(table, "x", {"model": "A"}, {"model": "B"}, "fd", claim_id=bad)


def test_with_holm_adds_adjusted_p_values():
    claims = with_holm(claims_table())
    np.testing.assert_allclose(claims["p_holm"], holm(claims["p_value"]))
    assert list(claims["significant"]) == list(claims["p_holm"] <= 0.05)
    with pytest.raises(ValueError, match="p_value"):
        with_holm(claims.drop(columns="p_value"))


def test_flip_probabilities_follow_the_margin():
    """Far beyond the threshold: (almost) never flips; exactly at it: about half the time; a
    hand-made row without sd columns uses spread / 2; seeded and reproducible."""
    rows = pd.DataFrame([
        {"verdict": HOLDS, "effect": 40.0, "spread": 2.0, "mean_better": 0.0,
         "mean_worse": 40.0, "sd_better": 1.0, "sd_worse": 1.0, "seeds": 3},
        {"verdict": HOLDS, "effect": 2.0, "spread": 2.0, "mean_better": 0.0,
         "mean_worse": 2.0, "sd_better": 1.0, "sd_worse": 1.0, "seeds": 3},
        {"verdict": NOT_HOLDS, "effect": -40.0, "spread": 2.0, "mean_better": 40.0,
         "mean_worse": 0.0, "seeds": 3},  # lower is better, opposite difference; no sds
        {"verdict": HOLDS, "effect": 40.0, "spread": 2.0, "mean_better": 40.0,
         "mean_worse": 0.0, "seeds": 3},  # higher is better
    ])
    p = flip_probabilities(rows, draws=4000, seed=0)
    assert p[0] < 0.01 and p[2] < 0.01 and p[3] < 0.01
    assert 0.35 < p[1] < 0.65
    assert p.equals(flip_probabilities(rows, draws=4000, seed=0))
    with pytest.raises(ValueError, match="lacks"):
        flip_probabilities(rows.drop(columns="seeds"))
    real = flip_probabilities(claims_table(), draws=500)
    assert real.between(0, 1).all() and real.name == "flip_probability"
