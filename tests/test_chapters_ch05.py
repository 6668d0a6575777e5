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
    assert claims.loc["x_below_eae_samples_mnist", "term"] == "X"


def test_entropy_weight_reads_the_run_weights():
    from entropic_ae.experiments import RunConfig

    assert ch05.entropy_weight(RunConfig.make("conv", "EAE", weights={"neg_entropy": 3})) == 3.0
    assert ch05.entropy_weight(RunConfig.make("conv", "BN-AE+logdet",
                                              weights={"neg_logdet": 0.5})) == 0.5
    assert ch05.entropy_weight(RunConfig.make("conv", "BN-AE")) == 0.0


def test_ranking_inversions_sort_dimensions_by_the_rule():
    rows = []
    for d, gaussian in ((4, 1.0), (16, 0.5), (64, 0.0)):
        rows += [{"d": d, "kind": "gaussian", "mean": gaussian, "std": 0.05},
                 {"d": d, "kind": "uniform", "mean": 0.5, "std": 0.05},
                 {"d": d, "kind": "two-bump", "mean": 0.45, "std": 0.05}]
    table = pd.DataFrame(rows).set_index(["d", "kind"])
    assert ch05.ranking_inversions(table) == {"ranked": [4], "gaussian last": [64],
                                              "not ranked": [16]}
    with pytest.raises(ValueError, match="Gaussian"):
        ch05.ranking_inversions(table.drop(index="gaussian", level=1))


def test_the_surrogate_check_matches_the_derivation_on_large_batches():
    gaussian = ch05.surrogate_check("gaussian", 4000, 8, 0)
    assert gaussian["|sum of parts − surrogate|"] < 1e-4
    assert gaussian["½ log det Ĉ_λ"] == pytest.approx(0.0, abs=0.01)
    assert gaussian["axes part"] == pytest.approx(gaussian["½ Σ exact marginal entropies"],
                                                  abs=0.05)
    uniform = ch05.surrogate_check("uniform", 4000, 8, 0)
    assert uniform["axes part"] == pytest.approx(uniform["½ Σ exact marginal entropies"],
                                                 abs=0.05)
    correlated = ch05.surrogate_check("correlated-gaussian", 4000, 8, 0)
    # the sampling sd of a log det of 8 × 8 correlations from 4000 draws is about 0.06
    assert correlated["½ log det Ĉ_λ"] == pytest.approx(correlated["exact ½ log det C"],
                                                        abs=0.15)


def test_matched_weights_pick_the_closest_reconstruction():
    table = ch05.fronts(runs(EAE + [("X", 1.0, 0.0105, 50.0), ("X", 3.0, 0.013, 10.0),
                                    ("BN-AE", 0.0, 0.009, 70.0)]))
    assert ch05.matched_weights(table, "EAE", 1.0) == {"EAE": 1.0, "X": 3.0}
    with pytest.raises(ValueError, match="β = 2"):
        ch05.matched_weights(table, "EAE", 2.0)


def test_the_goal_sentence_follows_the_claims():
    good = [("X", 1.0, 0.011, 50.0), ("X", 3.0, 0.015, 40.0)]
    both = pd.concat([runs(EAE + good, "mnist"), runs(EAE + good, "fashion-mnist")])
    claims = ch05.front_claims({"samples": ch05.fronts(both)}, ["X"])
    assert "X beats the paper's EAE" in ch05.goal_sentence(claims, ["mnist", "fashion-mnist"])
    bad = [("Y", 1.0, 0.011, 60.0), ("Y", 3.0, 0.015, 50.0)]
    mixed = pd.concat([runs(EAE + good, "mnist"), runs(EAE + bad, "fashion-mnist")])
    claims = ch05.front_claims({"samples": ch05.fronts(mixed)}, ["X", "Y"])
    sentence = ch05.goal_sentence(claims, ["mnist", "fashion-mnist"])
    assert sentence.startswith("No term's front") and "Y lies above it" in sentence
    assert "For X the rule cannot decide" in sentence  # X was not trained on fashion-mnist
    assert "does not, at this scale" not in sentence  # undecided X: no general lesson
    losing = pd.concat([runs(EAE + bad, "mnist"), runs(EAE + bad, "fashion-mnist")])
    claims = ch05.front_claims({"samples": ch05.fronts(losing)}, ["Y"])
    sentence = ch05.goal_sentence(claims, ["mnist", "fashion-mnist"])
    assert "Y lies above it" in sentence and "does not, at this scale" in sentence
    assert "cannot decide" not in sentence
    two = pd.concat([runs(EAE + bad + [(m, b, v, s) for _, b, v, s in bad], ds)
                     for ds, m in (("mnist", "W"), ("fashion-mnist", "W"))])
    claims = ch05.front_claims({"samples": ch05.fronts(two)}, ["Y", "W"])
    assert "Y and W lie above it" in ch05.goal_sentence(claims, ["mnist", "fashion-mnist"])
    with pytest.raises(ValueError, match="samples"):
        ch05.goal_sentence(claims[claims.family == "gaussianity"], ["mnist"])


def test_the_bn_ae_runs_are_the_eae_front_at_zero_weight():
    rows = runs(EAE + [("BN-AE", 0.0, 0.008, 70.0), ("X", 1.0, 0.009, 60.0)])
    extended = ch05.with_zero_weight(rows)
    assert len(extended) == len(rows) + 3  # BN-AE's 3 seeds, copied
    zero = extended[(extended.model == "EAE") & (extended.beta == 0.0)]
    assert zero["val_mse"].tolist() == [0.008] * 3
    assert (extended.model == "BN-AE").sum() == 3  # the original stays
    # X at 0.009 lies below the EAE's range (0.010-0.016): unmatched without BN-AE, matched
    # halfway between BN-AE (70) and the EAE at 0.3 (60) with it
    assert ch05.matched_points(ch05.fronts(rows), "X").empty
    matched = ch05.matched_points(ch05.fronts(extended), "X")
    assert matched["reference"].tolist() == pytest.approx([65.0])
    assert matched["effect"].tolist() == pytest.approx([5.0])
    with pytest.raises(ValueError, match="no run of 'BN-AE'"):
        ch05.with_zero_weight(runs(EAE))
    with pytest.raises(ValueError, match="already"):
        ch05.with_zero_weight(extended)
    with pytest.raises(ValueError, match="columns"):
        ch05.with_zero_weight(pd.DataFrame({"model": ["BN-AE"]}))


def ranked_table():
    rows = []
    for term, firsts in (("A", (True, True)), ("B", (True, False)), ("C", (False, False))):
        for d, first in zip((16, 128), firsts, strict=True):
            rows.append({"term": term, "d": d, "gaussian first": first})
    return pd.DataFrame(rows)


def test_ranking_groups_and_first_at_read_the_gaussian_first_column():
    ranked = ranked_table()
    assert ch05.first_at(ranked, "A") == [16, 128]
    assert ch05.first_at(ranked, "B") == [16]
    assert ch05.first_at(ranked, "C") == []
    assert ch05.ranking_groups(ranked) == {"every": ["A"], "some": ["B"], "none": ["C"]}
    with pytest.raises(ValueError, match="no term 'D'"):
        ch05.first_at(ranked, "D")
    with pytest.raises(ValueError, match="gaussian first"):
        ch05.first_at(ranked.drop(columns="gaussian first"), "A")
    with pytest.raises(ValueError, match="empty"):
        ch05.ranking_groups(ranked.iloc[:0])


def test_cost_groups_split_at_the_limit():
    costs = pd.DataFrame({"term": ["a", "a", "b", "b", "c", "c"], "d": [16, 128] * 3,
                          "share": [0.02, 0.03, 0.05, 0.10, 0.2, 0.01]})
    assert ch05.cost_groups(costs) == {"over": ["b", "c"], "under": ["a"]}  # 0.10 counts
    assert ch05.cost_groups(costs, limit=0.25) == {"over": [], "under": ["a", "b", "c"]}
    with pytest.raises(ValueError, match="share"):
        ch05.cost_groups(costs.drop(columns="share"))
    with pytest.raises(ValueError, match="limit"):
        ch05.cost_groups(costs, limit=10)


@pytest.mark.parametrize("cosine, word", [
    (-0.5, "pointing against it"), (-0.15, "pointing against it"), (-0.1, "unaligned"),
    (0.0, "unaligned"), (0.09, "unaligned"), (0.23, "weakly aligned"), (0.4, "partly aligned"),
    (0.62, "partly aligned"), (0.7, "well aligned"), (1.0, "well aligned")])
def test_alignment_words_follow_the_cosine(cosine, word):
    assert ch05.alignment_word(cosine) == word


def test_alignment_word_refuses_what_is_not_a_cosine():
    for bad in (1.5, -2, float("nan"), "0.3", True):
        with pytest.raises(ValueError, match="cosine"):
            ch05.alignment_word(bad)
