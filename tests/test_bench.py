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
