"""fit and load_model: training through the cache, resuming a lineage, integrity checks."""

import json

import pytest
import torch

from entropic_ae.experiments import CorruptRunError, RunCache, RunConfig, fit, load_model

TOY = RunConfig.make("toy", "lin", n_train=256, epochs=3, batch_size=32, lr=1e-2, seed=0)


def test_fit_trains_once_then_reads_the_cache(tmp_path):
    first = fit(TOY, tmp_path)
    assert not first["cached"] and first["epochs"] == 3 and first["resumed_from"] == 0
    again = fit(TOY, tmp_path)
    assert again["cached"] and again["metrics"] == first["metrics"]
    assert (RunCache(tmp_path).run_dir(TOY) / "config.json").is_file()


def test_a_longer_run_resumes_the_shorter_one_bit_identically(tmp_path):
    fit(TOY, tmp_path / "a")
    longer = TOY.replace(epochs=5)
    resumed = fit(longer, tmp_path / "a")
    scratch = fit(longer, tmp_path / "b")
    assert resumed["resumed_from"] == 3 and scratch["resumed_from"] == 0
    assert resumed["metrics"] == scratch["metrics"]
    assert fit(TOY, tmp_path / "a")["cached"]  # the shorter run is still there, untouched


def test_measurement_options_reuse_the_trained_model(tmp_path):
    fit(TOY, tmp_path)
    other = fit(TOY.replace(measure={"unused": 1}), tmp_path)
    assert not other["cached"] and other["metrics"] == fit(TOY, tmp_path)["metrics"]


def test_a_damaged_record_or_checkpoint_is_never_used(tmp_path):
    fit(TOY, tmp_path)
    cache = RunCache(tmp_path)
    record = cache.record_path(TOY)
    data = json.loads(record.read_text())
    data["metrics"]["mse"] = 0.0
    record.write_text(json.dumps(data))
    with pytest.raises(CorruptRunError, match="checksum"):
        fit(TOY, tmp_path)
    assert not fit(TOY, tmp_path, on_corrupt="retrain")["cached"]
    checkpoint = cache.checkpoint(TOY)
    raw = bytearray(checkpoint.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    checkpoint.write_bytes(bytes(raw))
    with pytest.raises(CorruptRunError, match="does not match"):
        fit(TOY, tmp_path)


def test_load_model_returns_the_trained_weights(tmp_path):
    with pytest.raises(FileNotFoundError, match="not been trained"):
        load_model(TOY, tmp_path)
    record = fit(TOY, tmp_path)
    model = load_model(TOY, tmp_path, device="cpu")
    assert next(model.parameters()).flatten()[0].item() == record["metrics"]["first_weight"]
    assert not model.training


def test_failures_are_clear(tmp_path):
    with pytest.raises(ValueError, match="asked to fail"):
        fit(TOY.replace(options={"fault": "raise"}), tmp_path)
    with pytest.raises(TypeError, match="RunConfig"):
        fit({"family": "toy"}, tmp_path)
    with pytest.raises(ValueError, match="on_corrupt"):
        fit(TOY, tmp_path, on_corrupt="ignore")


def test_mlp_and_conv_families_run_end_to_end(tmp_path, monkeypatch):
    """Tiny runs on synthetic stand-ins for MNIST: every measurement comes back finite."""
    from entropic_ae.experiments import context

    def fake(dataset, split, limit, root):
        n = 64 if split == "train" else 40
        gen = torch.Generator().manual_seed(0 if split == "train" else 1)
        x = torch.rand(n, 1, 28, 28, generator=gen)
        return x[:limit], torch.arange(n)[:limit] % 10

    monkeypatch.setattr(context, "_cached_images", fake)
    mlp = RunConfig.make("mlp", "compactifier", n_train=64, epochs=1, batch_size=32,
                         layer_sizes=[784, 8, 4, 8, 784], objective="compactifier", layer=2,
                         w_reg=0.1, alpha=0.5, measure={"n_test": 40, "ablation_images": 40})
    record = fit(mlp, tmp_path)
    m = record["metrics"]
    assert m["layers"] == [1, 2, 3] and len(m["active_units"]) == 3 and m["test_mse"] > 0
    assert 0 <= m["layer_active_units"] <= 4 and 1 <= m["eff_in"] <= 4
    path = mlp.replace(model="path", options={"objective": "path", "path_every": 2,
                                              "layer": None, "alpha": None})
    assert fit(path, tmp_path)["metrics"]["effective_nodes"][1] >= 1
    import entropic_ae.experiments.conv as conv_family

    monkeypatch.setattr(conv_family, "_extractor", lambda config, ctx: torch.nn.Flatten())
    for name in ("EAE", "2SVAE"):
        conv = RunConfig.make("conv", name, n_train=64, epochs=1, batch_size=32, width=1 / 32,
                              latent_dim=3, measure={"n_test": 40, "n_samples": 40,
                                                     "gmm_components": 2, "kl_codes": 64,
                                                     "bootstrap": 3, "ablation_images": 20})
        m = fit(conv, tmp_path)["metrics"]
        assert all(m[k] > 0 for k in ("fd_normal", "fd_gmm", "recon_mse", "fd_normal_sd"))
        assert 0 <= m["active_units"] <= 3
