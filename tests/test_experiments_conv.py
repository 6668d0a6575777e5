"""entropic_ae.experiments.conv: the results-table helpers of chapter 4, on made-up tables whose
verdicts are known by construction."""

import numpy as np
import pandas as pd
import pytest

from entropic_ae.experiments.conv import paper_claims, sampler_rows, surrogate_lesson

SEEDS = (0, 1, 2)
JITTER = np.array([-1.0, 0.0, 1.0])  # per-seed offsets: seed sd 1 before scaling


def _grid(fd_normal: dict, kl: dict, recon: dict, dataset: str = "mnist") -> pd.DataFrame:
    """One row per model and seed, in the layout run_grid gives the conv family."""
    rows = []
    for model, fd in fd_normal.items():
        for i, seed in enumerate(SEEDS):
            rows.append({"dataset": dataset, "model": model, "seed": seed,
                         "fd_normal": fd + JITTER[i], "fd_normal_sd": 0.5,
                         "fd_gmm": fd / 2 + JITTER[i], "fd_gmm_sd": 0.5,
                         "kl_to_normal": kl[model] + 0.01 * JITTER[i],
                         "recon_mse": recon[model] + 1e-4 * JITTER[i]})
    return pd.DataFrame(rows)


def test_sampler_rows_give_one_row_per_run_and_sampler():
    table = _grid({"EAE": 10.0}, {"EAE": 0.5}, {"EAE": 0.02})
    rows = sampler_rows(table)
    assert len(rows) == 2 * len(table)
    assert set(rows["sampler"]) == {"N(0,I)", "GMM"}
    gmm = rows[rows["sampler"] == "GMM"].sort_values("seed")
    np.testing.assert_allclose(gmm["frechet_distance"], table.sort_values("seed")["fd_gmm"])
    assert not any(c.startswith("fd_") for c in rows.columns)
    with pytest.raises(ValueError, match="lacks the columns"):
        sampler_rows(table.drop(columns=["fd_gmm_sd"]))


def _verdicts(fd, kl, recon):
    claims = paper_claims(sampler_rows(_grid(fd, kl, recon)), list(fd))
    assert list(claims.columns[:5]) == ["claim", "dataset", "verdict", "effect", "spread"]
    return dict(zip(claims["claim"], claims["verdict"], strict=True)), claims


def test_paper_claims_follow_the_rule():
    fd = {"EAE": 10.0, "VAE": 20.0, "BN-AE": 11.0, "EAE-MB": 30.0}
    kl = {"EAE": 0.5, "VAE": 1.0, "BN-AE": 3.0, "EAE-MB": 1.2}
    recon = {"EAE": 0.020, "VAE": 0.03, "BN-AE": 0.02, "EAE-MB": 0.021}
    verdict, claims = _verdicts(fd, kl, recon)
    assert verdict["EAE beats VAE with N(0,I)"] == "holds"            # 10 apart, spread 2
    assert verdict["EAE beats BN-AE with N(0,I)"] == "undecided"      # 1 apart, spread 2
    assert verdict["EAE-MB beats EAE with N(0,I)"] == "does not hold"
    assert verdict["EAE codes closer to N(0,I) than BN-AE codes"] == "holds"
    assert verdict["EAE-MB's reconstruction error below 1.1 × EAE's"] == "holds"  # 0.021 < 0.022
    row = claims.set_index("claim").loc["EAE-MB's reconstruction error below 1.1 × EAE's"]
    assert row["mean_worse"] == pytest.approx(0.022) and row["effect"] == pytest.approx(0.001)


def test_surrogate_lesson_reports_the_kl_numbers_and_the_verdict():
    fd = {"EAE": 10.0, "BN-AE": 12.0, "EAE-MB": 30.0}
    recon = dict.fromkeys(fd, 0.02)
    worse = {"EAE": 0.5, "BN-AE": 3.0, "EAE-MB": 1.2}
    rows = sampler_rows(_grid(fd, worse, recon))
    text = surrogate_lesson(rows, paper_claims(rows, list(fd)))
    assert "mnist: 3.00, 0.50 and 1.20 nats" in text and "repulsion" in text
    better = {"EAE": 0.5, "BN-AE": 3.0, "EAE-MB": 0.2}
    rows = sampler_rows(_grid(fd, better, recon))
    assert "carries over to training" in surrogate_lesson(rows, paper_claims(rows, list(fd)))
    close = {"EAE": 0.5, "BN-AE": 3.0, "EAE-MB": 0.5}
    rows = sampler_rows(_grid(fd, close, recon))
    assert "mixed or undecided" in surrogate_lesson(rows, paper_claims(rows, list(fd)))
    no_mb = rows[rows["model"] != "EAE-MB"]
    assert "lacks" in surrogate_lesson(no_mb, paper_claims(no_mb, ["EAE", "BN-AE"]))
