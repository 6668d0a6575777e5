"""The systems registry: every record builds, has its converted reference weights, and its
objective trains (entropic_ae.systems)."""

import math

import pytest
import torch

from entropic_ae.estimators import kozachenko_leonenko
from entropic_ae.experiments import RunConfig
from entropic_ae.experiments.families import image_shape
from entropic_ae.systems import CONV, MLP, PAPER_TABLE, SYSTEMS, settings_table
from entropic_ae.training import train

WIDTH = 1 / 32
POSITIVE = {"recon", "decoder_l2", "code_l2", "kl", "decoder_gp", "nll"}


def conv(name, dataset="mnist", **options):
    return RunConfig.make("conv", name, dataset=dataset, width=WIDTH, latent_dim=4, **options)


def images(shape=(1, 28, 28), n=16, seed=0):
    return torch.rand(n, *shape, generator=torch.Generator().manual_seed(seed))


def built(config):
    torch.manual_seed(0)
    return SYSTEMS[config.model].build(config, image_shape(config)).train()


def test_the_paper_table_and_the_books_own_systems():
    assert set(PAPER_TABLE) < set(CONV) and len(PAPER_TABLE) == 11
    assert {"BN-AE", "BN-AE+logdet", "EAE-MB"} <= set(CONV) - set(PAPER_TABLE)
    assert all(s.family == "conv" for s in CONV.values())
    assert all(s.family == "mlp" for s in MLP.values())
    for s in CONV.values():
        assert s.sampler in ("prior", "two-stage", "fitted") and s.summary
        for table in s.weights.values():
            assert all(w.source for w in table.values()), s.name


def test_reference_weights_are_the_converted_configurations():
    """Ghosh et al.'s per-pixel mean over N = 1024 padded MNIST pixels with d = 16;
    Tolstikhin et al.'s 0.05 × summed error."""
    n, d = 1024, 16
    w = {name: CONV[name].reference_weights("mnist") for name in CONV}
    assert w["RAE"]["code_l2"] == pytest.approx(2 * n * 5e-4 / d)
    assert w["RAE-L2"] == pytest.approx({"code_l2": 2 * n * 1e-4 / d, "decoder_l2": n * 1e-7})
    assert w["RAE-GP"]["decoder_gp"] == pytest.approx(n * 0.5e-7 / d)
    assert w["RAE-SN"]["code_l2"] == pytest.approx(2 * n * 0.009 / d)
    assert w["WAE-MMD"]["mmd"] == pytest.approx(10 / 0.05)
    assert w["EAE"] == {"neg_entropy": 1.0} and w["AE"] == {}
    assert CONV["EAE"].reference_weights("fashion-mnist") == {"neg_entropy": 1.0}
    assert CONV["EAE"].reference_weights("cifar10") == {"neg_entropy": 0.5}


@pytest.mark.parametrize("name", list(CONV))
def test_every_conv_objective_is_finite_signed_and_reaches_encoder_and_decoder(name):
    config = conv(name)
    model, x = built(config), images()
    objective = SYSTEMS[name].objective(config)
    terms = objective.loss(model, x)
    assert set(objective.weights) <= set(terms)
    for key, value in terms.items():
        assert value.dim() == 0 and torch.isfinite(value), key
        if key in POSITIVE:
            assert value.item() > 0, key
    if name == "EAE":
        expected = -kozachenko_leonenko(model.encode(x)).item()
        assert terms["neg_entropy"].item() == pytest.approx(expected, rel=1e-5)
    if name == "BN-AE+logdet":
        assert terms["neg_logdet"].item() >= 0  # ½ log det R <= 0
    total = sum(objective.weights.get(k, 1.0) * v for k, v in terms.items())
    total.backward()
    first_conv = next(m for m in model.encoder.modules() if isinstance(m, torch.nn.Conv2d))
    assert first_conv.weight.grad.abs().sum() > 0
    last = [p for p in model.decoder.parameters() if p.dim() > 1][-1]
    assert last.grad is not None and last.grad.abs().sum() > 0


@pytest.mark.parametrize("name, term", [("EAE", "neg_entropy"), ("EAE-MB", "neg_entropy"),
                                        ("BN-AE+logdet", "neg_logdet"), ("VAE", "kl"),
                                        ("CV-VAE", "kl"), ("WAE-MMD", "mmd"),
                                        ("RAE", "code_l2"), ("RAE-GP", "decoder_gp"),
                                        ("AE-L2", "decoder_l2"), ("2SVAE", "nll")])
def test_each_regulariser_decreases_under_its_own_gradient(name, term):
    config = conv(name)
    model, x = built(config), images(n=32)
    loss = SYSTEMS[name].objective(config).loss
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)

    def value():
        torch.manual_seed(1)  # the same noise for the stochastic terms
        return loss(model, x)[term]

    before = value().item()
    for _ in range(5):
        opt.zero_grad()
        value().backward()
        opt.step()
    assert value().item() < before


def test_weight_overrides_spectral_norm_and_an_extra_decoder_l2():
    cifar = conv("EAE", dataset="cifar10", weights={"decoder_l2": 1e-3})
    objective = SYSTEMS["EAE"].objective(cifar)
    assert objective.weights == {"neg_entropy": 0.5, "decoder_l2": 1e-3}
    assert "decoder_l2" in objective.loss(built(cifar), images((3, 32, 32)))
    assert built(conv("RAE-SN")).decoder.spectral_norm
    assert not built(conv("EAE")).decoder.spectral_norm
    assert built(conv("EAE", spectral_norm=True)).decoder.spectral_norm
    with pytest.raises(ValueError, match="has no loss term"):
        SYSTEMS["EAE"].objective(conv("EAE", weights={"kl": 1.0}))


@pytest.mark.parametrize("shape, dataset", [((1, 28, 28), "mnist"), ((3, 32, 32), "cifar10"),
                                            ((3, 64, 64), "celeba")])
def test_conv_systems_train_on_synthetic_images_of_every_dataset_shape(shape, dataset):
    data = images(shape, n=32, seed=3)
    names = list(CONV) if dataset == "mnist" else ["EAE", "VAE", "2SVAE", "RAE-GP", "RAE-SN"]
    for name in names:
        config = conv(name, dataset=dataset)
        objective = SYSTEMS[name].objective(config)
        history = train(built(config), objective.loss, data, epochs=1, lr=1e-3, batch_size=16,
                        seed=0, weights=objective.weights)
        assert all(math.isfinite(v[-1]) for v in history.terms.values()), name


def test_mlp_objectives_follow_the_options():
    base = RunConfig.make("mlp", "compactifier", layer_sizes=[784, 8, 4, 8, 784], layer=2,
                          w_mse=0.7, w_reg=0.3, variant="in", alpha=0.5)
    objective = SYSTEMS["compactifier"].objective(base)
    assert objective.weights == {"mse": 0.7, "entropy": 0.3} and objective.regularisers == []
    model = built(base)
    terms = objective.loss(model, images(n=8))
    assert set(terms) == {"mse", "entropy"} and terms["entropy"] > 0
    with pytest.raises(ValueError, match="needs the option layer"):
        SYSTEMS["compactifier"].objective(base.replace(layer=None))
    assert SYSTEMS["plain"].objective(base.replace(model="plain")).weights == {"mse": 0.7}


def test_the_settings_table_lists_every_system_with_its_source():
    table = settings_table()
    assert list(table.index) == list(CONV)
    assert table.loc["EAE", "weights"] == "neg_entropy 1"
    assert "Ghose" in table.loc["EAE", "source"] and table.loc["AE", "weights"] == "–"


@pytest.mark.parametrize("name", ["l0", "group-lasso", "nested-dropout"])
def test_the_standard_width_learners_train_and_keep_their_parts(name):
    config = RunConfig.make("mlp", name, layer_sizes=[784, 16, 8, 16, 784], layer=2,
                            w_reg=0.01, linear_layers=[2])
    model = built(config)
    objective = SYSTEMS[name].objective(config)
    history = train(model, objective.loss, images(n=64).flatten(1), epochs=2, lr=1e-3,
                    batch_size=16, seed=0, weights=objective.weights,
                    regularisers=objective.regularisers, param_groups=objective.param_groups)
    assert all(math.isfinite(v[-1]) for v in history.terms.values())
    if name == "l0":
        assert "l0" in history.terms and model.gate(2) is not None
        assert len(objective.param_groups(model, 1e-3)) == 2  # the gates' own learning rate
    if name == "group-lasso":
        assert history.terms["group_lasso"][-1] > 0
    if name == "nested-dropout":
        assert model.gate(2) is not None
