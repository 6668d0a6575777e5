"""fit and load_model through the run cache: trained once, resumed, never stale, never
corrupted by concurrent writers, damage named and repaired (entropic_ae.experiments.runner and
.cache)."""

import json
import multiprocessing
import os

import pytest
import torch

from entropic_ae.experiments import CorruptRunError, RunCache, RunConfig, context, fit, load_model
from entropic_ae.experiments import cache as cache_module

TOY = RunConfig.make("toy", "lin", n_train=256, epochs=3, batch_size=32, lr=1e-2, seed=0)


def folder_of(config, root):
    cache = RunCache(root)
    return cache.run_dir(config, context.data_fingerprint(config, None))


def test_fit_trains_once_then_reads_the_cache(tmp_path):
    first = fit(TOY, tmp_path)
    assert not first["cached"] and first["epochs"] == 3 and first["resumed_from"] == 0
    assert len(first["history"]["terms"]["mse"]) == 3 and first["seconds"] > 0
    again = fit(TOY, tmp_path)
    assert again["cached"] and again["metrics"] == first["metrics"]
    assert (folder_of(TOY, tmp_path) / "config.json").is_file()


def test_a_longer_run_resumes_the_longest_shorter_one_bit_identically(tmp_path):
    fit(TOY.replace(epochs=2), tmp_path / "a")
    fit(TOY, tmp_path / "a")  # resumes from 2
    longer = TOY.replace(epochs=5)
    resumed = fit(longer, tmp_path / "a")
    scratch = fit(longer, tmp_path / "b")
    assert resumed["resumed_from"] == 3 and scratch["resumed_from"] == 0
    assert resumed["metrics"] == scratch["metrics"]
    assert resumed["history"] == scratch["history"]
    assert fit(TOY, tmp_path / "a")["cached"]


def test_measurement_options_reuse_the_trained_model(tmp_path):
    fit(TOY, tmp_path)
    checkpoint = folder_of(TOY, tmp_path) / "checkpoint.pt"
    before = checkpoint.stat().st_mtime_ns
    other = fit(TOY.replace(n_eval=100), tmp_path)
    assert not other["cached"] and other["metrics"]["first_weight"] == fit(
        TOY, tmp_path)["metrics"]["first_weight"]
    assert checkpoint.stat().st_mtime_ns == before  # measured, not retrained


def test_a_code_change_retrains_and_a_measurement_code_change_only_remeasures(tmp_path,
                                                                              monkeypatch):
    fit(TOY, tmp_path)
    checkpoint = folder_of(TOY, tmp_path) / "checkpoint.pt"
    stamp = checkpoint.stat().st_mtime_ns
    monkeypatch.setattr(cache_module, "measure_code_digest", lambda: "another-metric")
    remeasured = fit(TOY, tmp_path)
    assert not remeasured["cached"] and checkpoint.stat().st_mtime_ns == stamp
    monkeypatch.setattr(cache_module, "training_code_digest", lambda family: "another-loss")
    retrained = fit(TOY, tmp_path)
    assert not retrained["cached"] and retrained["folder"] != str(checkpoint.parent)


def test_other_data_retrains(tmp_path, monkeypatch):
    first = fit(TOY, tmp_path)
    real = context.toy_data
    monkeypatch.setattr(context, "toy_data", lambda n, dim: real(n, dim) + 1.0)
    context._digest_of.cache_clear()
    try:
        moved = fit(TOY, tmp_path)
    finally:
        context._digest_of.cache_clear()
    assert not moved["cached"] and moved["folder"] != first["folder"]


def damage(path):
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))


def test_a_damaged_record_is_named_and_only_it_is_replaced(tmp_path):
    fit(TOY, tmp_path)
    other = TOY.replace(n_eval=64)
    fit(other, tmp_path)
    cache = RunCache(tmp_path)
    data = context.data_fingerprint(TOY, None)
    record = cache.record_path(TOY, data)
    stored = json.loads(record.read_text())
    stored["metrics"]["mse"] = 0.0
    record.write_text(json.dumps(stored))
    with pytest.raises(CorruptRunError, match=f"{record}.*checksum") as info:
        fit(TOY, tmp_path)
    assert info.value.path == record
    checkpoint = cache.run_dir(TOY, data) / "checkpoint.pt"
    stamp = checkpoint.stat().st_mtime_ns
    assert not fit(TOY, tmp_path, on_corrupt="retrain")["cached"]
    assert checkpoint.stat().st_mtime_ns == stamp  # the model was sound: not retrained
    assert fit(other, tmp_path)["cached"]  # the other record was left alone


def test_a_damaged_checkpoint_is_named_and_retrained(tmp_path):
    first = fit(TOY, tmp_path)
    checkpoint = folder_of(TOY, tmp_path) / "checkpoint.pt"
    damage(checkpoint)
    with pytest.raises(CorruptRunError, match="checkpoint.pt does not match") as info:
        fit(TOY, tmp_path)
    assert info.value.path == checkpoint
    again = fit(TOY, tmp_path, on_corrupt="retrain")
    assert not again["cached"] and again["metrics"] == first["metrics"]


def test_a_damaged_shorter_run_is_skipped_with_its_name_not_resumed(tmp_path):
    fit(TOY.replace(epochs=2), tmp_path)
    shorter = folder_of(TOY.replace(epochs=2), tmp_path) / "checkpoint.pt"
    damage(shorter)
    with pytest.warns(UserWarning, match=f"not resuming from {shorter}"):
        longer = fit(TOY, tmp_path)
    assert longer["resumed_from"] == 0
    assert longer["metrics"] == fit(TOY, tmp_path / "clean")["metrics"]


def test_load_model_loads_the_checkpoint_and_never_trains(tmp_path):
    with pytest.raises(FileNotFoundError, match="has not been trained"):
        load_model(TOY, tmp_path)
    record = fit(TOY.replace(epochs=2), tmp_path)
    cache = RunCache(tmp_path)
    data = context.data_fingerprint(TOY, None)
    assert cache.start_from_shorter(TOY, data) == 2  # a partial checkpoint of the 3-epoch run
    with pytest.raises(ValueError, match="2 of the 3 epochs.*never trains"):
        load_model(TOY, tmp_path)
    model = load_model(TOY.replace(epochs=2), tmp_path, device="cpu")
    assert next(model.parameters()).flatten()[0].item() == record["metrics"]["first_weight"]
    assert not model.training


def _fit_in_process(args):
    config_dict, root = args
    torch.set_num_threads(1)
    record = fit(RunConfig.from_dict(config_dict), root)
    return record["cached"], record["metrics"]["first_weight"]


@pytest.mark.slow
def test_concurrent_processes_training_one_model_corrupt_nothing(tmp_path):
    """Configs that differ only in measurement options share one training run."""
    base = TOY.replace(n_train=4000, epochs=4)
    configs = [base.replace(n_eval=n) for n in (16, 32, 64, 128, 256, 512)]
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        results = pool.map(_fit_in_process, [(c.to_dict(), str(tmp_path)) for c in configs])
    assert len({w for _, w in results}) == 1  # one trained model
    for config in configs:  # every record loads: none bound to a checkpoint it did not see
        assert fit(config, tmp_path)["cached"]


def test_a_relative_cache_folder_is_resolved_where_it_is_given(tmp_path, monkeypatch):
    from entropic_ae.experiments import cluster, run_grid

    (tmp_path / "client").mkdir()
    (tmp_path / "worker").mkdir()
    monkeypatch.chdir(tmp_path / "client")
    real = cluster._execute

    def elsewhere(*args):  # a worker whose working directory is another one
        os.chdir(tmp_path / "worker")
        try:
            return real(*args)
        finally:
            os.chdir(tmp_path / "client")

    monkeypatch.setattr(cluster, "_execute", elsewhere)
    run_grid([TOY], "serial", cache_dir="rel", progress=False)
    assert (tmp_path / "client" / "rel" / "runs").is_dir()
    assert not (tmp_path / "worker" / "rel").exists()
    assert load_model(TOY, "rel").training is False


def test_failures_are_clear(tmp_path):
    with pytest.raises(ValueError, match="asked to fail"):
        fit(TOY.replace(fault="raise"), tmp_path)
    with pytest.raises(TypeError, match="RunConfig"):
        fit({"family": "toy"}, tmp_path)
    with pytest.raises(ValueError, match="on_corrupt"):
        fit(TOY, tmp_path, on_corrupt="ignore")


def test_each_family_digests_only_the_code_it_trains_with(tmp_path):
    import shutil

    import entropic_ae

    package = tmp_path / "entropic_ae"
    shutil.copytree(os.path.dirname(entropic_ae.__file__), package,
                    ignore=shutil.ignore_patterns("__pycache__"))
    from entropic_ae._io import source_digest

    def digests():
        return {family: source_digest(package, cache_module.PRESENTATION_CODE
                                      + cache_module.MEASUREMENT_CODE
                                      + cache_module.OTHER_FAMILIES_CODE[family])
                for family in ("conv", "mlp")}

    before = digests()
    (package / "paths" / "weights.py").write_text(
        (package / "paths" / "weights.py").read_text() + "\nX = 1\n")
    after = digests()
    assert after["conv"] == before["conv"] and after["mlp"] != before["mlp"]
    (package / "training.py").write_text((package / "training.py").read_text() + "\nY = 2\n")
    assert all(v != after[k] for k, v in digests().items())
