"""python -m entropic_ae.sweep: how values are read, one folder per combination, which runs
a rerun repeats, which tables are gathered, where the runs go (local processes, serial, a
Dask cluster, an unreachable one), and a real sweep of chapter 1 (smoke parameters, two seeds
on two workers) that a rerun skips.

Most tests run a throwaway two-cell notebook (about 2-3 s per papermill run)."""

import json
import math
import socket
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest

import entropic_ae.sweep as sweep_module
from entropic_ae.sweep import combinations, gather_tables, main, run_folder, sweep

ROOT = Path(__file__).resolve().parents[1]

_PARAMETERS = """\
x = 0  # swept in the tests
y = 0
z = 0
fail = False  # raise in the second cell
empty = False  # also write an empty CSV file
results_dir = "results"
checkpoint_dir = "checkpoints"
"""

_BODY = """\
import csv, os, pathlib
from ipykernel.kernelapp import IPKernelApp
if fail:
    raise RuntimeError("failing on purpose")
folder = pathlib.Path(results_dir)
folder.mkdir(parents=True, exist_ok=True)
row = {{"x_repr": repr(x), "y_repr": repr(y), "z_repr": repr(z), "version": {version},
       "scheduler": os.environ.get("ENTROPIC_AE_SCHEDULER"),
       "omp": os.environ.get("OMP_NUM_THREADS"), "gpu": os.environ.get("CUDA_VISIBLE_DEVICES"),
       "checkpoint_dir": checkpoint_dir, "transport": IPKernelApp.instance().transport,
       "sockets": IPKernelApp.instance().ip}}
with open(folder / "values.csv", "w", newline="") as fh:
    writer = csv.DictWriter(fh, fieldnames=list(row))
    writer.writeheader()
    writer.writerow(row)
if empty:
    (folder / "empty.csv").write_text("")
{extra}
"""


def _notebook(path: Path, version: int = 1, extra: str = "") -> Path:
    """A two-cell chapter stand-in: its parameters, then a cell that writes values.csv (the
    reprs of x, y, z and the run's environment) into results_dir."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python",
                                 "display_name": "Python 3"}
    params = nbformat.v4.new_code_cell(_PARAMETERS)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("A stand-in chapter."), params,
                nbformat.v4.new_code_cell(_BODY.format(version=version, extra=extra))]
    nbformat.write(nb, path)
    return path


# --- values, folders, combinations (no runs) -----------------------------------------------


def test_combinations_in_order_and_repeated_values_run_once():
    combos = combinations([("a", [1, 2]), ("b", ["x", "y", "z"])])
    assert len(combos) == 6 and combos[:2] == [{"a": 1, "b": "x"}, {"a": 1, "b": "y"}]
    with pytest.raises(ValueError, match="twice"):
        combinations([("a", [1]), ("a", [2])])
    with pytest.raises(ValueError, match="at least one value"):
        combinations([("a", [])])
    with pytest.warns(UserWarning, match="repeated"):
        assert combinations([("seed", [0, 0, 1])]) == [{"seed": 0}, {"seed": 1}]
    # values Python calls equal but papermill passes differently are distinct runs
    assert len(combinations([("v", [1, 1.0, True, "1", 0.0, -0.0])])) == 6


def test_run_folders_are_readable_and_never_shared():
    a = run_folder("/o", {"seed": 0, "dims": [1, 4], "device": "cpu"}, "01.ipynb")
    assert a.name.startswith("seed=0,dims=_1,4_,device=cpu-") and len(a.name.split("-")[-1]) == 8
    assert a == run_folder("/o", {"seed": 0, "dims": [1, 4], "device": "cpu"}, "01.ipynb")
    assert run_folder("/o", {}).name.startswith("run-")
    distinct = [{"name": "a/b"}, {"name": "a_b"}, {"v": 1}, {"v": 1.0}, {"v": "1"},
                {"v": True}, {"v": [1, 2]}, {"v": "[1, 2]"}, {"v": {"a": 1}}, {"v": None},
                {"v": "None"}]
    folders = {run_folder("/o", p, "01.ipynb") for p in distinct}
    assert len(folders) == len(distinct)
    assert run_folder("/o", {"seed": 0}, "01.ipynb") != run_folder("/o", {"seed": 0}, "02.ipynb")


def test_values_are_read_as_papermill_reads_them(monkeypatch, tmp_path):
    seen = {}

    def fake_sweep(notebook, out, axes, base=None, **kwargs):
        seen["axes"] = axes
        return {"ran": [], "skipped": [], "failed": {}, "tables": {}}

    monkeypatch.setattr(sweep_module, "sweep", fake_sweep)
    nb = str(tmp_path / "n.ipynb")
    assert main([nb, "--out", str(tmp_path), "-p", "x", "1e-3", "010", "[1, 2]", "null",
                 "None", "true", "True", "word", "-1", "nan"]) == 0
    (name, values), = seen["axes"]
    expected = [0.001, 10, "[1, 2]", "null", None, "true", True, "word", -1]
    assert name == "x" and values[:-1] == expected
    assert [type(v) for v in values[:-1]] == [type(v) for v in expected]
    assert isinstance(values[-1], float) and math.isnan(values[-1])
    # -y reads YAML (papermill -y), -r keeps strings (papermill -r); axes keep their order
    assert main([nb, "--out", str(tmp_path), "-r", "z", "010", "1e-3", "-p", "x", "2",
                 "-y", "y", "[1, 2]", "{a: 1}", "1e-3", "2020-01-01"]) == 0
    assert seen["axes"] == [("z", ["010", "1e-3"]), ("x", [2]),
                            ("y", [[1, 2], {"a": 1}, "1e-3", "2020-01-01"])]


def test_results_dir_and_bad_command_lines_are_refused(tmp_path, capsys):
    nb = str(_notebook(tmp_path / "n.ipynb"))
    params = tmp_path / "p.yaml"
    params.write_text("results_dir: shared\n")
    out = str(tmp_path / "out")
    assert main([nb, "--out", out, "-f", str(params), "-p", "x", "1", "2"]) == 2
    assert "results_dir cannot be given" in capsys.readouterr().err
    assert main([nb, "--out", out, "-p", "results_dir", "a", "b"]) == 2
    assert "results_dir cannot be swept" in capsys.readouterr().err
    assert main([nb, "--out", out, "-p", "checkpoint_dir", "a", "b"]) == 2
    assert "checkpoint_dir cannot be swept" in capsys.readouterr().err
    assert main([nb, "--out", out, "-p", "no_such_parameter", "1"]) == 2
    assert "has no parameter" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing ran
    with pytest.raises(SystemExit):
        main([nb, "--out", out, "-p", "seed"])
    with pytest.raises(SystemExit):
        main([nb, "--out", out, "-y", "x", "[1,"])
    assert main([str(tmp_path / "nothing.ipynb"), "--out", out]) == 2
    with pytest.raises(ValueError, match="not both"):
        sweep(nb, out, [], workers=2, scheduler="serial")


def test_gathering_names_unreadable_tables_and_keeps_the_rest(tmp_path):
    folders = []
    for seed, csv in ((0, "x,seed\n0,7\n10,7\n"), (1, "")):  # seed 1 wrote an empty file
        folder = tmp_path / f"run{seed}"
        (folder / "results").mkdir(parents=True)
        (folder / "results" / "t.csv").write_text(csv)
        (folder / "results" / "u.csv").write_text(f"y\n{seed}\n")
        (folder / "results" / "stray.csv").write_text("z\n1\n")  # not listed in .done
        (folder / "params.json").write_text(json.dumps({"swept": {"seed": seed}}))
        (folder / ".done").write_text(json.dumps({"tables": ["t.csv", "u.csv"]}))
        folders.append(folder)
    with pytest.warns(UserWarning, match=r"run1/results/t\.csv"):
        written = gather_tables(tmp_path, folders)
    assert sorted(written) == ["t", "u"]
    table = pd.read_csv(written["t"])
    assert list(table.columns) == ["swept_seed", "x", "seed"]  # the chapter's own column kept
    assert table["swept_seed"].tolist() == [0, 0] and table["x"].tolist() == [0, 10]
    assert pd.read_csv(written["u"]).to_dict("list") == {"seed": [0, 1], "y": [0, 1]}


# --- sweeps of the stand-in notebook --------------------------------------------------------


@pytest.mark.slow
def test_values_that_read_alike_run_in_folders_of_their_own(tmp_path, monkeypatch, capsys):
    """``a/b`` and ``a_b`` have one slug but their own folders and rows; a repeated value runs
    once; two local runs at once each get their own GPU, one thread, the serial scheduler and
    kernel sockets in a folder of their own, not TCP ports another run may take first."""
    monkeypatch.setattr(sweep_module, "_gpu_ids", lambda: ["7", "9"], raising=False)
    nb = _notebook(tmp_path / "n.ipynb")
    out = tmp_path / "out"
    assert main([str(nb), "--out", str(out), "-p", "x", "a/b", "a_b", "a_b",
                 "--workers", "2", "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "ran 2, skipped 0" in captured.out and "repeated" in captured.err
    table = pd.read_csv(out / "values.csv")
    pairs = sorted(zip(table["x"], table["x_repr"], strict=True))
    assert pairs == [("a/b", "'a/b'"), ("a_b", "'a_b'")]
    assert set(table["scheduler"]) == {"serial"} and set(table["omp"]) == {1}
    assert sorted(table["gpu"]) == [7, 9]
    assert set(table["transport"]) == {"ipc"} and table["sockets"].nunique() == 2
    assert not any(Path(ip).parent.exists() for ip in table["sockets"])  # removed afterwards
    assert set(table["checkpoint_dir"]) == {str(out / "checkpoints")}
    for value in ("a/b", "a_b"):
        saved = json.loads((run_folder(out, {"x": value}, "n.ipynb") / "params.json").read_text())
        assert saved["swept"] == {"x": value} and saved["parameters"]["x"] == value


@pytest.mark.slow
def test_values_reach_the_notebook_exactly_and_an_empty_table_is_named(tmp_path, capsys):
    nb = _notebook(tmp_path / "n.ipynb")
    out = tmp_path / "out"
    assert main([str(nb), "--out", str(out), "-p", "x", "1e-10", "-r", "y", "2020-01-01",
                 "-y", "z", "[1, 2.0, null, yes]", "-p", "empty", "True",
                 "--scheduler", "serial", "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "empty.csv" in captured.err and "not a readable CSV" in captured.err
    assert "table values:" in captured.out and "table empty" not in captured.out
    reprs = {"x_repr": str, "y_repr": str, "z_repr": str}
    row = pd.read_csv(out / "values.csv", dtype=reprs).iloc[0]
    assert (row["x_repr"], row["y_repr"], row["z_repr"]) == (
        "1e-10", "'2020-01-01'", "[1, 2.0, None, True]")
    assert row["x"] == 1e-10 and row["z"] == "[1, 2.0, null, true]"  # lists as JSON


@pytest.mark.slow
def test_reruns_follow_the_notebook_and_the_package(tmp_path, monkeypatch, capsys):
    """A rerun skips an unchanged run, and reruns one whose notebook code or package changed;
    only the tables the current runs wrote are gathered (not leftovers, nor earlier tables)."""
    nb = tmp_path / "n.ipynb"
    _notebook(nb, version=1, extra="(folder / 'old.csv').write_text('a\\n1\\n')")
    out = tmp_path / "out"
    command = [str(nb), "--out", str(out), "-p", "x", "1", "--scheduler", "serial",
               "--no-progress"]
    assert main(command) == 0 and "ran 1, skipped 0" in capsys.readouterr().out
    results = run_folder(out, {"x": 1}, "n.ipynb") / "results"
    assert sorted(p.name for p in results.iterdir()) == ["old.csv", "values.csv"]
    (results / "leftover.csv").write_text("b\n2\n")
    assert main(command) == 0 and "ran 0, skipped 1" in capsys.readouterr().out
    assert not (out / "leftover.csv").exists()

    _notebook(nb, version=2)  # edited code: no old.csv any more
    assert main(command) == 0 and "ran 1, skipped 0" in capsys.readouterr().out
    assert sorted(p.name for p in results.iterdir()) == ["values.csv"]
    assert pd.read_csv(out / "values.csv")["version"].tolist() == [2]
    assert not (out / "old.csv").exists()

    monkeypatch.setattr(sweep_module, "_package_digest", lambda: "an edited package",
                        raising=False)
    monkeypatch.setenv("ENTROPIC_AE_SCHEDULER", "serial")
    command = command[:-3] + ["--no-progress"]  # the scheduler from the environment
    assert main(command) == 0 and "ran 1, skipped 0" in capsys.readouterr().out
    assert main(command) == 0 and "ran 0, skipped 1" in capsys.readouterr().out


@pytest.mark.slow
def test_a_dask_cluster_runs_the_sweep_and_a_failure_is_reported(tmp_path, capsys):
    from distributed import LocalCluster

    nb = _notebook(tmp_path / "n.ipynb")
    out = tmp_path / "out"
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                      dashboard_address=None) as cluster:
        code = main([str(nb), "--out", str(out), "-p", "fail", "False", "True",
                     "--scheduler", cluster.scheduler_address, "--no-progress"])
    captured = capsys.readouterr()
    assert code == 1 and "ran 1, skipped 0 (already done), failed 1" in captured.out
    assert "RuntimeError: failing on purpose" in captured.err
    table = pd.read_csv(out / "values.csv")
    assert table["fail"].tolist() == [False] and table["scheduler"].tolist() == ["serial"]
    assert not (run_folder(out, {"fail": True}, "n.ipynb") / ".done").exists()


@pytest.mark.slow
def test_an_unreachable_scheduler_fails_fast_in_one_line(tmp_path):
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    nb = _notebook(tmp_path / "n.ipynb")
    address = f"tcp://127.0.0.1:{port}"
    script = ("import sys, entropic_ae.sweep as s; s.CONNECT_TIMEOUT_S = 1; "
              "sys.exit(s.main(sys.argv[1:]))")
    done = subprocess.run([sys.executable, "-c", script, str(nb), "--out", str(tmp_path / "o"),
                           "-p", "x", "1", "--scheduler", address, "--no-progress"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0, done.stderr
    assert done.stderr.startswith("error: cannot reach the Dask scheduler") and address in \
        done.stderr


# --- the real chapter -----------------------------------------------------------------------


@pytest.mark.notebooks
def test_sweep_of_chapter_one_over_two_seeds(tmp_path):
    command = [sys.executable, "-m", "entropic_ae.sweep", str(ROOT / "notebooks/01_entropy.ipynb"),
               "--out", str(tmp_path), "-f", str(ROOT / "notebooks/params/smoke/01_entropy.yaml"),
               "-p", "seed", "0", "1", "--workers", "2", "--no-progress"]
    first = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "ran 2, skipped 0" in first.stdout
    table = pd.read_csv(tmp_path / "01_kl_estimator.csv")
    assert sorted(table["seed"].unique()) == [0, 1]
    by_seed = table.groupby("seed")["estimate"].apply(list)
    assert by_seed[0] != by_seed[1]  # each run really used its own seed
    saved = json.loads((run_folder(tmp_path, {"seed": 1}, "01_entropy.ipynb")
                        / "params.json").read_text())
    assert saved["parameters"]["seed"] == 1
    again = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0 and "ran 0, skipped 2" in again.stdout
