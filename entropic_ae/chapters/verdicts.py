"""The book's verdicts page: every claim the chapters decided, gathered from their
``NN_claims.csv`` files."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from entropic_ae.verdicts import VERDICTS

__all__ = ["SOURCES", "gather_claims", "verdict_counts"]

#: Chapter (file prefix) → the source whose claims it decides.
SOURCES: dict[str, str] = {
    "02": "the first document: the entropic compactifier",
    "03": "the first document: the path entropy",
    "04": "the EAE paper (Ghose, Rashwan and Poupart)",
    "05": "this book: entropy terms at batch size 100",
}
_COLUMNS = ["claim_id", "claim", "dataset", "verdict", "effect", "spread", "seeds"]


def gather_claims(results: str | Path, sources: Mapping[str, str] = SOURCES
                  ) -> tuple[pd.DataFrame, list[str]]:
    """Every ``NN_claims.csv`` of ``sources`` found in ``results``, one table with the columns
    ``chapter, source`` and :data:`_COLUMNS` (plus ``p_holm`` where a chapter gives it), and
    the chapters whose file is missing (their chapter has not been run into ``results``)."""
    folder = Path(results)
    parts, missing = [], []
    for chapter, source in sources.items():
        files = sorted(folder.glob(f"{chapter}_claims.csv"))
        if not files:
            missing.append(chapter)
            continue
        table = pd.read_csv(files[0])
        absent = [c for c in _COLUMNS if c not in table.columns]
        if absent:
            raise ValueError(f"{files[0]} lacks the columns {absent}")
        keep = _COLUMNS + (["p_holm"] if "p_holm" in table.columns else [])
        parts.append(table[keep].assign(chapter=chapter, source=source))
    if not parts:
        return pd.DataFrame(columns=["chapter", "source", *_COLUMNS]), missing
    gathered = pd.concat(parts, ignore_index=True)
    return gathered[["chapter", "source", *[c for c in gathered.columns
                                            if c not in ("chapter", "source")]]], missing


def verdict_counts(claims: pd.DataFrame) -> pd.DataFrame:
    """Per source: how many claims hold, do not hold and are undecided."""
    counts = (claims.groupby(["source", "verdict"], sort=False).size()
              .unstack("verdict", fill_value=0).reindex(columns=list(VERDICTS), fill_value=0))
    counts["claims"] = counts.sum(axis=1)
    return counts
