"""Chapter 4's analysis on small tables with known answers (entropic_ae.chapters.ch04)."""

import math

import numpy as np
import pandas as pd
import pytest

from entropic_ae.chapters import ch04
from entropic_ae.verdicts import HOLDS, NOT_HOLDS, UNDECIDED

MODELS = ["AE", "BN-AE", "BN-AE+logdet", "EAE", "VAE", "RAE"]


def grid_table(score_of, kl_of, datasets=("mnist",), seeds=(0, 1, 2)):
    """A conv grid's table with chosen N(0, I) scores (GMM = N(0, I) − 5) and KLs."""
    rows = []
    for ds in datasets:
        for model in MODELS:
            for s in seeds:
                noise = 0.3 * (s - 1)
                row = {"dataset": ds, "model": model, "seed": s, "latent_dim": 16,
                       "kl_to_normal": kl_of[model] + noise, "recon_score": 10.0,
                       "history": {"validation": [1.0, 0.5, 0.4, 0.39, 0.39]}, "stopped": 5}
                for prefix, shift in (("normal", 0.0), ("gmm", -5.0)):
                    row.update({f"{prefix}_score": score_of[model] + shift + noise,
                                f"{prefix}_kid": 0.1, f"{prefix}_precision": 0.5,
                                f"{prefix}_recall": 0.5, f"{prefix}_density": 1.0,
                                f"{prefix}_coverage": 0.7, f"{prefix}_mean_pixel": 0.13})
                rows.append(row)
    return pd.DataFrame(rows)


SCORES = {"AE": 100.0, "BN-AE": 60.0, "BN-AE+logdet": 50.0, "EAE": 40.0, "VAE": 40.2,
          "RAE": 45.0}
KLS = {"AE": 10.0, "BN-AE": 5.0, "BN-AE+logdet": 4.0, "EAE": 2.0, "VAE": 1.0, "RAE": 9.0}


def test_sampler_rows_give_one_row_per_run_and_sampler():
    rows = ch04.sampler_rows(grid_table(SCORES, KLS))
    assert len(rows) == 2 * len(MODELS) * 3
    assert set(rows["sampler"]) == {"N(0,I)", "GMM"}
    eae = rows[(rows.model == "EAE") & (rows.seed == 1)].set_index("sampler")
    assert eae.loc["N(0,I)", "score"] == 40.0 and eae.loc["GMM", "score"] == 35.0
    assert "normal_score" not in rows.columns
    with pytest.raises(ValueError, match="conv grid"):
        ch04.sampler_rows(pd.DataFrame({"model": ["EAE"]}))


def test_the_floor_is_twice_root_two_times_the_real_vs_real_sd():
    assert ch04.score_floor([1.0, 3.0]) == pytest.approx(2 * math.sqrt(2) * math.sqrt(2))
    with pytest.raises(ValueError, match="at least 2"):
        ch04.score_floor([1.0])


def claims_of(floor=0.0, scores=SCORES):
    rows = ch04.sampler_rows(grid_table(scores, KLS))
    return ch04.paper_claims(rows, {"mnist": floor}).set_index("claim_id")


def test_paper_claims_decide_with_identifiers_families_and_holm():
    claims = claims_of()
    assert list(claims.reset_index().columns) == ch04.CLAIM_COLUMNS
    assert claims.loc["eae_beats_ae_normal_mnist", "verdict"] == HOLDS
    assert claims.loc["eae_beats_vae_normal_mnist", "verdict"] == UNDECIDED  # 0.2 < 2 sd
    assert claims.loc["eae_beats_rae_gmm_mnist", "verdict"] == HOLDS
    assert claims.loc["eae_codes_closer_than_bnae_mnist", "family"] == "iv"
    assert claims.loc["gmm_improves_vae_mnist", "verdict"] == HOLDS
    assert claims.loc["bnae_logdet_beats_bnae_normal_mnist", "verdict"] == HOLDS
    assert (claims["p_holm"] >= claims["p_value"]).all()
    assert set(claims["family"]) == {"i", "ii", "iii", "iv", "v"}


def test_the_floor_turns_a_small_difference_into_undecided_for_scores_only():
    assert claims_of(0.0).loc["eae_beats_rae_gmm_mnist", "verdict"] == HOLDS
    floored = claims_of(6.0)
    assert floored.loc["eae_beats_rae_gmm_mnist", "verdict"] == UNDECIDED  # 5 < 6
    assert floored.loc["eae_beats_rae_gmm_mnist", "spread"] == 6.0
    assert floored.loc["eae_codes_closer_than_bnae_mnist", "verdict"] == HOLDS  # KL: no floor


def test_the_verdict_table_has_one_row_per_claim_and_columns_per_dataset():
    rows = ch04.sampler_rows(grid_table(SCORES, KLS, datasets=("mnist", "fashion-mnist")))
    claims = ch04.paper_claims(rows, {})
    table = ch04.verdict_table(claims)
    assert table.shape[0] == len(claims) // 2
    assert set(table.columns.get_level_values(0)) == {"mnist", "fashion-mnist"}
    row = table.loc[("i", "EAE beats AE with N(0,I)")]
    assert row[("mnist", "verdict")] == HOLDS and row[("mnist", "effect")] == "+60"


def test_width_claims_compare_neighbouring_code_sizes():
    rows = []
    for dim, score, kl in ((8, 50.0, 1.6), (16, 60.0, 4.8), (32, 61.0, 9.6)):
        for s in range(3):
            rows.append({"dataset": "mnist", "sampler": "N(0,I)", "latent_dim": dim, "seed": s,
                         "score": score + 0.1 * s, "kl_to_normal": kl + 0.01 * s})
    claims = ch04.width_claims(pd.DataFrame(rows), [8, 16, 32], floor=2.0).set_index("claim_id")
    assert claims.loc["latent_8_beats_16_score", "verdict"] == HOLDS
    assert claims.loc["latent_16_beats_32_score", "verdict"] == UNDECIDED  # 1 < floor 2
    assert claims.loc["latent_8_beats_16_kl_per_dim", "verdict"] == HOLDS  # 0.2 < 0.3 per dim
    assert claims.loc["latent_16_beats_32_kl_per_dim", "verdict"] == UNDECIDED


def test_convergence_table_reads_the_histories():
    table = ch04.convergence_table(grid_table(SCORES, KLS))
    assert (table["epochs"] == 5).all() and table["stopped by plateau"].all()
    first = table["improvement over the last 3 epochs"].iloc[0]
    assert first == pytest.approx((0.5 - 0.39) / 0.5)


def test_the_lesson_follows_the_verdicts():
    claims = claims_of()
    text = ch04.lesson(claims.reset_index(), ["mnist"])
    assert text.startswith("On mnist, the EAE's codes are closer")
    assert "beat those of decorrelation alone" in text
    worse = dict(SCORES, EAE=70.0)
    text = ch04.lesson(claims_of(scores=worse).reset_index(), ["mnist"])
    assert "decorrelation alone gives better samples" in text
    same = dict(SCORES, EAE=50.0)
    text = ch04.lesson(claims_of(scores=same).reset_index(), ["mnist"])
    assert "as far as the EAE does" in text
    assert ch04.lesson(claims.reset_index(), ["svhn"]).startswith("The grid lacks")


def test_small_helpers():
    assert ch04.yes_no(True) == "qualifies" and ch04.yes_no(False) == "does not qualify"
    with pytest.raises(TypeError):
        ch04.yes_no(1)
    assert ch04.dataset_slug("fashion-mnist") == "fashion_mnist"
    counts = ch04.verdict_counts(claims_of().reset_index(), "i")
    assert counts == {HOLDS: 2, NOT_HOLDS: 0, UNDECIDED: 1}  # vs AE, BN-AE; VAE within noise


def test_parts_table_averages_the_study():
    study = pd.DataFrame([{"kind": k, "seed": s, "part": p, "estimate": v + s, "truth": t}
                          for k, t in (("gaussian", 0.0), ("uniform", 2.8)) for s in (0, 1)
                          for p, v in (("moment", 0.1), ("marginal", 1.0), ("dependence", 0.2),
                                       ("total", 1.3))])
    table = ch04.parts_table(study)
    assert list(table.index) == ["gaussian", "uniform"]
    assert table.loc["uniform", "truth"] == 2.8
    assert table.loc["uniform", "total"] == pytest.approx(1.8)
    assert table.loc["gaussian", "sd"] == pytest.approx(np.std([1.3, 2.3], ddof=1))
    with pytest.raises(ValueError, match="parts_study"):
        ch04.parts_table(pd.DataFrame({"kind": []}))


def test_the_convergence_sentence_names_runs_that_hit_the_cap():
    table = ch04.convergence_table(grid_table(SCORES, KLS))
    assert ch04.convergence_sentence(table, 40).startswith(f"All {len(table)} runs")
    table.loc[0, "stopped by plateau"] = False
    text = ch04.convergence_sentence(table, 40)
    assert text.startswith(f"{len(table) - 1} of the {len(table)}") and "AE (mnist, seed 0)" in text


def test_the_sensitivity_sentence_follows_the_weakest_strengths():
    rows = pd.DataFrame({"z_1": [5.0, 1.0]}, index=["blur", "contrast"])
    assert "blurry decoder loses" in ch04.sensitivity_sentence(rows)
    assert "saturated decoder loses" in ch04.sensitivity_sentence(rows.iloc[::-1].set_axis(
        ["blur", "contrast"]))
    assert "the same" in ch04.sensitivity_sentence(pd.DataFrame({"z_1": [1.0, 1.0]},
                                                                index=["blur", "contrast"]))


def test_the_failures_sentence_lists_the_damages_each_score_fails():
    q = pd.DataFrame({"metric": ["fd[lenet]"] * 3 + ["precision[lenet]"] * 3,
                      "damage": ["blur", "noise", "copies"] * 2,
                      "qualifies": [True, True, False, False, True, False]})
    text = ch04.failures_sentence(q, ["fd[lenet]", "precision[lenet]"])
    assert text == "Beside it: fd qualifies on every damage; precision fails on blur."
    with pytest.raises(ValueError, match="kid"):
        ch04.failures_sentence(q, ["kid[lenet]"])
