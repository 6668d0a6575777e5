"""python -m entropic_ae.bench: the measurements and the command line (tiny sizes)."""

import json

import pytest

from entropic_ae.bench import ENTROPY_TERMS, bench, isolated, main, step_seconds, term_seconds
from entropic_ae.experiments import RunConfig


def test_measurements_are_positive_seconds():
    conv = RunConfig.make("conv", "EAE", batch_size=8, width=1 / 32, latent_dim=4)
    assert 0 < step_seconds(conv, repeats=2, inner=2) < 10
    mlp = RunConfig.make("mlp", "compactifier", batch_size=8, layer_sizes=[784, 8, 4, 8, 784],
                         layer=2, w_reg=0.1)
    assert 0 < step_seconds(mlp, repeats=2, inner=2) < 1
    for fn in ENTROPY_TERMS.values():
        assert 0 < term_seconds(fn, batch_size=20, dim=4, repeats=2) < 1


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def test_isolated_runs_in_a_fresh_process_with_the_threads_asked_for():
    assert isolated(_threads, threads=1) == 1


@pytest.mark.slow
def test_command_line_prints_a_table_and_writes_json(capsys, tmp_path, monkeypatch):
    # one entropy term instead of five: each is timed in a fresh process (seconds apiece)
    from entropic_ae import bench as bench_module

    monkeypatch.setattr(bench_module, "ENTROPY_TERMS",
                        {"minibatch surrogate": ENTROPY_TERMS["minibatch surrogate"]})
    out_file = tmp_path / "bench.json"
    assert main(["--models", "EAE-MB", "--widths", "0.03125", "--batch-size", "8",
                 "--latent-dim", "4", "--repeats", "2", "--device", "cpu", "--threads", "1",
                 "--json", str(out_file)]) == 0
    out = capsys.readouterr().out
    assert "images/s" in out and "EAE-MB" in out and "minibatch surrogate" in out
    report = json.loads(out_file.read_text())
    assert [r["model"] for r in report["steps"]] == ["EAE-MB"]
    assert list(report["terms"]) == ["minibatch surrogate"]


def test_bench_rows_do_not_depend_on_order():
    """Each figure comes from a fresh process: the same system measured alone or after another
    gives a step time of the same order (the old in-process bench differed by 1.35×)."""
    rows = bench(["RAE-GP", "AE"], [1 / 32], latent_dim=4, batch_size=8, device="cpu",
                 repeats=3, threads=1)
    assert [r["model"] for r in rows] == ["RAE-GP", "AE"]
    assert all(r["images_per_second"] > 0 for r in rows)


def test_bad_model_name_is_refused():
    with pytest.raises(SystemExit):
        main(["--models", "GAN"])


def test_grid_scaling_takes_turns_with_fresh_clusters_and_caches(monkeypatch):
    """Sizes alternate (1, 2, 1, 2), each size on a fresh cluster, cold then warm, and every
    grid writes into a cache folder of its own."""
    import entropic_ae.experiments as experiments
    from entropic_ae.bench import grid_scaling, scaling_grid

    calls, events = [], []
    monkeypatch.setattr(experiments, "shutdown", lambda: events.append("shutdown"))

    def fake_run_grid(configs, cache_dir, data_root, workers, device, progress):
        calls.append((workers, cache_dir, len(configs)))
        events.append(f"grid {workers}")

    monkeypatch.setattr(experiments, "run_grid", fake_run_grid)
    monkeypatch.delenv("ENTROPIC_AE_SCHEDULER", raising=False)
    rows = grid_scaling(workers=(1, 2), repeats=2)
    assert [c[0] for c in calls] == [1, 1, 2, 2, 1, 1, 2, 2]
    assert len({c[1] for c in calls}) == 8, "a fresh cache folder for every grid"
    assert {c[2] for c in calls} == {len(scaling_grid())} == {8}
    assert events[:4] == ["shutdown", "grid 1", "grid 1", "shutdown"]
    assert [(r["workers"], r["repeat"]) for r in rows] == [(1, 0), (2, 0), (1, 1), (2, 1)]
    assert all(r["cold"] >= 0 and r["warm"] >= 0 for r in rows)


def test_scaling_summary_takes_medians_and_pairs_repeats():
    from entropic_ae.bench import scaling_summary

    rows = [{"workers": 2, "repeat": 1, "cold": 30.0, "warm": 20.0},
            {"workers": 1, "repeat": 0, "cold": 50.0, "warm": 40.0},
            {"workers": 2, "repeat": 0, "cold": 25.0, "warm": 25.0},
            {"workers": 1, "repeat": 1, "cold": 54.0, "warm": 44.0},
            {"workers": 1, "repeat": 2, "cold": 58.0, "warm": 42.0},
            {"workers": 2, "repeat": 2, "cold": 29.0, "warm": 21.0}]
    one, two = scaling_summary(rows)
    assert one["workers"] == 1 and one["warm_speedup"] == 1.0
    assert two["cold"] == 29.0 and two["warm"] == 21.0
    assert two["cold_speedup"] == pytest.approx(54 / 29)
    assert two["warm_speedup"] == pytest.approx(42 / 21)
    assert two["warm_ratios"] == pytest.approx([40 / 25, 44 / 20, 42 / 21])
    with pytest.raises(ValueError, match="no rows"):
        scaling_summary([])


def test_grid_scaling_refuses_bad_input(monkeypatch):
    from entropic_ae.bench import grid_scaling

    with pytest.raises(ValueError, match="repeats"):
        grid_scaling(repeats=0)
    with pytest.raises(ValueError, match="workers"):
        grid_scaling(workers=(1, 0))
    monkeypatch.setenv("ENTROPIC_AE_SCHEDULER", "tcp://127.0.0.1:1")
    with pytest.raises(ValueError, match="ENTROPIC_AE_SCHEDULER"):
        grid_scaling()


def test_scaling_command_takes_repeats_as_given(monkeypatch, capsys):
    """--repeats reaches the scaling study as typed (7 included); 3 turns when not given."""
    import entropic_ae.bench as bench_module

    seen = []
    monkeypatch.setattr(bench_module, "_print_scaling", seen.append)
    assert main(["--scaling"]) == 0 and main(["--scaling", "--repeats", "7"]) == 0
    assert seen == [3, 7]
