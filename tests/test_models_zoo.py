"""The systems of Table 1: every name builds, trains, and has its converted reference weights."""

import math

import pytest
import torch

from entropic_ae.estimators import kozachenko_leonenko
from entropic_ae.models.zoo import (
    CONV_MODEL_NAMES,
    PAPER_MODEL_NAMES,
    PRIOR_MODELS,
    REFERENCE_WEIGHTS,
    SOURCES,
    build_conv_model,
    reference_weights,
)
from entropic_ae.training import train

WIDTH = 1 / 32
SHAPES = [(1, 28, 28), (3, 32, 32), (3, 64, 64)]

# every term's expected sign on a random batch
POSITIVE = {"recon", "decoder_l2", "code_l2", "kl", "decoder_gp", "nll"}


def images(shape=(1, 28, 28), n=16, seed=0):
    return torch.rand(n, *shape, generator=torch.Generator().manual_seed(seed))


def test_the_twelve_systems_of_table_1_and_eae_mb():
    assert PAPER_MODEL_NAMES == ("AE", "AE-L2", "BN-AE", "EAE", "VAE", "CV-VAE", "WAE-MMD",
                                 "2SVAE", "RAE", "RAE-L2", "RAE-GP", "RAE-SN")
    assert set(CONV_MODEL_NAMES) == {*PAPER_MODEL_NAMES, "EAE-MB"}
    assert set(PRIOR_MODELS) <= set(CONV_MODEL_NAMES) and set(SOURCES) == set(CONV_MODEL_NAMES)
    for dataset, table in REFERENCE_WEIGHTS.items():
        assert set(table) == set(CONV_MODEL_NAMES), dataset


def test_reference_weights_are_the_converted_configurations():
    """The arithmetic of the conversions (Ghosh et al.'s per-pixel mean over N = 1024 padded
    MNIST pixels, d = 16; Tolstikhin et al.'s 0.05 × summed error)."""
    n, d = 1024, 16
    assert reference_weights("RAE")["code_l2"] == pytest.approx(2 * n * 5e-4 / d)
    assert reference_weights("RAE-L2") == pytest.approx(
        {"code_l2": 2 * n * 1e-4 / d, "decoder_l2": n * 1e-7})
    assert reference_weights("RAE-GP")["decoder_gp"] == pytest.approx(n * 0.5e-7 / d)
    assert reference_weights("RAE-SN")["code_l2"] == pytest.approx(2 * n * 0.009 / d)
    assert reference_weights("WAE-MMD")["mmd"] == pytest.approx(10 / 0.05)
    assert reference_weights("EAE") == {"neg_entropy": 1.0}
    copy = reference_weights("VAE")
    copy["kl"] = 5.0
    assert reference_weights("VAE")["kl"] == 0.312  # a copy, not the table
    assert reference_weights("AE", "fashion-mnist") == {}


@pytest.mark.parametrize("name", CONV_MODEL_NAMES)
def test_loss_finite_signed_and_reaching_both_halves(name):
    torch.manual_seed(0)
    spec = build_conv_model(name, (1, 28, 28), latent_dim=4, width=WIDTH)
    model = spec.model.train()
    x = images()
    terms = spec.loss_fn(model, x)
    assert set(terms) == {"recon", *spec.weights}
    for key, value in terms.items():
        assert value.dim() == 0 and torch.isfinite(value), key
        if key in POSITIVE:
            assert value.item() > 0, key
    if name == "EAE":
        z = model.encode(x)
        assert terms["neg_entropy"].item() == pytest.approx(-kozachenko_leonenko(z).item(),
                                                            rel=1e-5)
    if name == "EAE-MB":
        assert terms["neg_entropy"].item() < 0  # S(z) of 16 standardised codes is positive
    total = sum(spec.weights.get(k, 1.0) * v for k, v in terms.items())
    total.backward()
    first = model.first if name == "2SVAE" else model
    first_conv = next(m for m in first.encoder.modules() if isinstance(m, torch.nn.Conv2d))
    last_conv = [m for m in first.decoder.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    last_weight = (last_conv.parametrizations.weight.original if name == "RAE-SN"
                   else last_conv.weight)
    for weight in (first_conv.weight, first.encoder.linear.weight, last_weight):
        assert weight.grad is not None and weight.grad.abs().sum() > 0
    assert (spec.second_stage is not None) == (name == "2SVAE")
    assert spec.prior_sampling == (name in PRIOR_MODELS)


@pytest.mark.parametrize("name, term", [("EAE", "neg_entropy"), ("EAE-MB", "neg_entropy"),
                                        ("VAE", "kl"),
                                        ("CV-VAE", "kl"), ("WAE-MMD", "mmd"),
                                        ("RAE", "code_l2"), ("RAE-GP", "decoder_gp"),
                                        ("AE-L2", "decoder_l2"), ("2SVAE", "nll")])
def test_regulariser_decreases_under_its_own_gradient(name, term):
    """Right sign: a few gradient steps on the regulariser alone lower it (for EAE: raise the
    batch's estimated entropy)."""
    torch.manual_seed(0)
    spec = build_conv_model(name, (1, 28, 28), latent_dim=4, width=WIDTH)
    model = spec.model.train()
    x = images(n=32)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)

    def value():
        torch.manual_seed(1)  # same noise draws for the stochastic terms
        return spec.loss_fn(model, x)[term]

    before = value().item()
    for _ in range(5):
        opt.zero_grad()
        value().backward()
        opt.step()
    assert value().item() < before


def test_spectral_norm_and_extra_decoder_l2_for_the_papers_eae_variants():
    celeba = build_conv_model("EAE", (3, 64, 64), 4, WIDTH, dataset="celeba",
                              decoder_spectral_norm=True)
    assert celeba.model.decoder.spectral_norm
    assert not build_conv_model("EAE", width=WIDTH).model.decoder.spectral_norm
    assert build_conv_model("RAE-SN", width=WIDTH).model.decoder.spectral_norm
    cifar = build_conv_model("EAE", (3, 32, 32), 4, WIDTH, dataset="cifar10",
                             weights={"decoder_l2": 1e-3})
    assert cifar.weights == {"neg_entropy": 0.5, "decoder_l2": 1e-3}
    assert set(cifar.loss_fn(cifar.model.train(), images((3, 32, 32)))) == {
        "recon", "neg_entropy", "decoder_l2"}


@pytest.mark.parametrize("shape", SHAPES)
def test_every_model_trains_on_synthetic_images(shape):
    """The code paths of CIFAR-10 (3×32×32) and CelebA (3×64×64) on synthetic tensors."""
    data = images(shape, n=24, seed=3)
    names = CONV_MODEL_NAMES if shape[1] == 28 else ("EAE", "VAE", "2SVAE", "RAE-GP", "RAE-SN")
    for name in names:
        spec = build_conv_model(name, shape, latent_dim=4, width=WIDTH)
        history = train(spec.model, spec.loss_fn, data, epochs=1, weights=spec.weights,
                        batch_size=12, seed=0, device="cpu", progress=False)
        assert all(math.isfinite(v[-1]) for v in history.terms.values())


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda: build_conv_model("GAN"), ValueError),
        (lambda: build_conv_model("EAE", weights={"kl": 1.0}), ValueError),
        (lambda: build_conv_model("EAE", weights=[("neg_entropy", 1.0)]), TypeError),
        (lambda: reference_weights("EAE", "svhn"), ValueError),
        (lambda: reference_weights("GAN"), ValueError),
    ],
)
def test_invalid_input(call, error):
    with pytest.raises(error):
        call()
