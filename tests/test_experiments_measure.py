"""What is measured on trained runs, per family, on synthetic stand-ins for the datasets
(entropic_ae.experiments.measure)."""

import math

import pytest
import torch

from entropic_ae.experiments import RunConfig, context, fit, load_model
from entropic_ae.experiments.measure import conv as conv_measure


@pytest.fixture
def fake_images(monkeypatch):
    def fake(dataset, split, root):
        n = 96
        gen = torch.Generator().manual_seed(0 if split == "train" else 1)
        return torch.rand(n, 1, 28, 28, generator=gen), torch.arange(n) % 10

    monkeypatch.setattr(context, "_split", fake)
    context._digest_of.cache_clear()
    yield
    context._digest_of.cache_clear()


def test_an_mlp_run_reports_widths_per_layer(tmp_path, fake_images):
    config = RunConfig.make("mlp", "compactifier", n_train=64, epochs=1, batch_size=32,
                            layer_sizes=[784, 8, 4, 8, 784], layer=2, w_reg=0.1, alpha=0.5,
                            n_val=16, patience=1, measure={"n_test": 40, "ablation_images": 40})
    m = fit(config, tmp_path)["metrics"]
    assert m["layers"] == [1, 2, 3] and m["widths"] == [8, 4, 8] and m["test_mse"] > 0
    assert len(m["active_units"]) == 3 and 0 <= m["layer_active_units"] <= 4
    assert 1 <= m["eff_in"] <= 4 and len(m["per_class_mse"]) == 10


@pytest.mark.parametrize("name", ["EAE", "2SVAE", "CV-VAE"])
def test_a_conv_run_scores_its_samples(tmp_path, fake_images, monkeypatch, name):
    monkeypatch.setattr(conv_measure, "_extractor", lambda *args: torch.nn.Flatten())
    config = RunConfig.make("conv", name, n_train=64, epochs=1, batch_size=32, width=1 / 32,
                            latent_dim=3, measure={"n_test": 20, "n_samples": 40,
                                                   "gmm_components": 2, "kl_codes": 64,
                                                   "ablation_images": 20, "second_epochs": 1,
                                                   "second_hidden": 8})
    record = fit(config, tmp_path)
    m = record["metrics"]
    for prefix in ("normal", "gmm", "recon"):
        assert m[f"{prefix}_score"] == m[f"{prefix}_frechet"] > 0
        assert 0 <= m[f"{prefix}_precision"] <= 1 and 0 <= m[f"{prefix}_coverage"] <= 1
    assert m["recon_mse"] > 0 and 0 <= m["normal_mean_pixel"] <= 1
    assert m["kl_to_normal"] == pytest.approx(m["kl_moment"] + m["kl_marginal"]
                                              + m["kl_dependence"])
    assert len(m["correlation_eigenvalues"]) == 3 and len(m["code_sd"]) == 3
    assert 0 <= m["active_units"] <= 3 and math.isfinite(m["kl_to_normal"])
    assert any(f.startswith("sampler-") for f in record["files"]) == (name == "2SVAE")
    assert not load_model(config, tmp_path).training


def test_sample_images_come_from_the_stored_run_without_training(tmp_path, fake_images,
                                                                  monkeypatch):
    monkeypatch.setattr(conv_measure, "_extractor", lambda *args: torch.nn.Flatten())
    config = RunConfig.make("conv", "2SVAE", n_train=64, epochs=1, batch_size=32, width=1 / 32,
                            latent_dim=3, measure={"n_test": 20, "n_samples": 40,
                                                   "gmm_components": 2, "kl_codes": 64,
                                                   "ablation_images": 20, "second_epochs": 1,
                                                   "second_hidden": 8})
    with pytest.raises(FileNotFoundError):
        conv_measure.sample_images(config, tmp_path, device="cpu")
    fit(config, tmp_path, device="cpu")
    shown = conv_measure.sample_images(config, tmp_path, device="cpu", n=5)
    assert set(shown) == {"N(0,I)", "GMM", "test", "reconstruction"}
    assert all(v.shape == (5, 1, 28, 28) for v in shown.values())
    again = conv_measure.sample_images(config, tmp_path, device="cpu", n=5)
    assert torch.equal(again["N(0,I)"], shown["N(0,I)"])


@pytest.mark.parametrize("model, options", [
    ("nested-dropout", {"linear_layers": [2], "nested_p": 0.2}),
    ("l0", {"w_reg": 1e-3}),
    ("group-lasso", {"w_reg": 1.0}),
])
def test_an_mlp_width_method_reports_its_layer_and_validation(tmp_path, fake_images, model,
                                                              options):
    config = RunConfig.make("mlp", model, n_train=64, epochs=1, batch_size=32,
                            layer_sizes=[784, 8, 4, 8, 784], layer=2, n_val=16,
                            measure={"n_test": 40, "ablation_images": 40, "layers": [2]},
                            **options)
    m = fit(config, tmp_path)["metrics"]
    assert m["layers"] == [2] and 0 < m["val_mse"] < 1 and len(m["val_active_units"]) == 1
    assert 0 <= m["dead_units"][0] <= 4 and 0 <= m["effective_rank"][0] <= 4
    if model == "nested-dropout":
        curve, active = m["width_curve"], m["width_active"]
        assert len(curve) == len(active) == len(m["width_curve_val"]) == 4
        assert len(m["width_active_val"]) == 4
        assert curve[-1] == pytest.approx(m["test_mse"])  # k = width keeps every unit
        assert all(0 <= a <= k for k, a in zip(range(1, 5), active, strict=True))
    elif model == "l0":
        assert 0 <= m["open_gates"] <= 4
    else:
        assert 0 <= m["zero_groups"] <= 4


def test_an_mlp_run_without_validation_reports_no_validation_numbers(tmp_path, fake_images):
    config = RunConfig.make("mlp", "plain", n_train=64, epochs=1, batch_size=32,
                            layer_sizes=[784, 8, 4, 8, 784],
                            measure={"n_test": 40, "ablation_images": 40})
    m = fit(config, tmp_path)["metrics"]
    assert "val_mse" not in m and "width_curve" not in m and len(m["dead_units"]) == 3
