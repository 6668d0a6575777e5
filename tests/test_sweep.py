"""python -m entropic_ae.sweep: combinations, folders, gathered tables, and a real sweep of
chapter 1 (smoke parameters, two seeds on two workers) that a rerun skips."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from entropic_ae.sweep import combinations, gather_tables, main, run_folder

ROOT = Path(__file__).resolve().parents[1]


def test_combinations_in_order():
    combos = combinations([("a", [1, 2]), ("b", ["x", "y", "z"])])
    assert len(combos) == 6 and combos[:2] == [{"a": 1, "b": "x"}, {"a": 1, "b": "y"}]
    with pytest.raises(ValueError, match="twice"):
        combinations([("a", [1]), ("a", [2])])
    with pytest.raises(ValueError, match="at least one value"):
        combinations([("a", [])])


def test_run_folders_are_readable_and_distinct(tmp_path):
    a = run_folder(tmp_path, {"seed": 0, "dims": [1, 4], "device": "cpu"})
    assert a.name == "seed=0,dims=_1+4_,device=cpu"
    assert run_folder(tmp_path, {}) == tmp_path / "run"
    assert a != run_folder(tmp_path, {"seed": 0, "dims": [1, 5], "device": "cpu"})


def test_tables_get_one_column_per_swept_parameter(tmp_path):
    runs = []
    for seed in (0, 1):
        folder = tmp_path / f"seed={seed}"
        (folder / "results").mkdir(parents=True)
        pd.DataFrame({"x": [seed, seed + 10], "seed": [7, 7]}).to_csv(
            folder / "results" / "t.csv", index=False)
        runs.append(({"seed": seed}, folder))
    written = gather_tables(tmp_path, runs)
    table = pd.read_csv(written["t"])
    assert list(table.columns) == ["swept_seed", "x", "seed"]  # the chapter's own column kept
    assert table["swept_seed"].tolist() == [0, 0, 1, 1]


def test_bad_command_lines(capsys):
    nb = str(ROOT / "notebooks" / "01_entropy.ipynb")
    assert main([nb, "--out", "/tmp/x", "-p", "no_such_parameter", "1"]) == 2
    assert "has no parameter" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([nb, "--out", "/tmp/x", "-p", "seed"])
    assert main([str(ROOT / "nothing.ipynb"), "--out", "/tmp/x"]) == 2


@pytest.mark.notebooks
def test_sweep_of_chapter_one_over_two_seeds(tmp_path):
    command = [sys.executable, "-m", "entropic_ae.sweep", str(ROOT / "notebooks/01_entropy.ipynb"),
               "--out", str(tmp_path), "-f", str(ROOT / "notebooks/params/smoke/01_entropy.yaml"),
               "-p", "seed", "0", "1", "--workers", "2", "--no-progress"]
    first = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "ran 2, skipped 0" in first.stdout
    table = pd.read_csv(tmp_path / "01_kl_estimator.csv")
    assert sorted(table["seed"].unique()) == [0, 1]
    by_seed = table.groupby("seed")["estimate"].apply(list)
    assert by_seed[0] != by_seed[1]  # each run really used its own seed
    done = json.loads((tmp_path / "seed=1" / ".done").read_text())
    assert done["parameters"]["seed"] == 1
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "ran 0, skipped 2" in again.stdout
