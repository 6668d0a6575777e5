"""The verdicts page gathers the chapters' claims (entropic_ae.chapters.verdicts)."""

import pandas as pd
import pytest

from entropic_ae.chapters.verdicts import gather_claims, verdict_counts


def write(folder, chapter, verdicts, extra=None):
    rows = [{"claim_id": f"c{i}", "claim": f"claim {i}", "dataset": "mnist", "verdict": v,
             "effect": 1.0, "spread": 0.5, "seeds": 3, **(extra or {})}
            for i, v in enumerate(verdicts)]
    pd.DataFrame(rows).to_csv(folder / f"{chapter}_claims.csv", index=False)


def test_claims_are_gathered_per_source_and_missing_chapters_named(tmp_path):
    write(tmp_path, "02", ["holds", "undecided"])
    write(tmp_path, "04", ["does not hold"], {"p_holm": 0.2})
    claims, missing = gather_claims(tmp_path)
    assert missing == ["03", "05"]
    assert claims["chapter"].tolist() == ["02", "02", "04"]
    assert claims.loc[2, "p_holm"] == 0.2 and pd.isna(claims.loc[0, "p_holm"])
    counts = verdict_counts(claims)
    assert counts.loc[claims.loc[0, "source"]].tolist() == [1, 0, 1, 2]
    assert counts.loc[claims.loc[2, "source"], "does not hold"] == 1


def test_an_empty_folder_and_a_foreign_file(tmp_path):
    claims, missing = gather_claims(tmp_path)
    assert claims.empty and missing == ["02", "03", "04", "05"]
    pd.DataFrame({"claim": ["x"]}).to_csv(tmp_path / "02_claims.csv", index=False)
    with pytest.raises(ValueError, match="lacks the columns"):
        gather_claims(tmp_path)
