"""Convolutional autoencoders of the entropic-autoencoder chapter: shapes, losses, gradients."""

import math

import pytest
import torch

from entropic_ae.estimators import kozachenko_leonenko
from entropic_ae.models import (
    CONV_DEFAULT_WEIGHTS,
    CONV_MODEL_NAMES,
    ConvAutoencoder,
    ConvVAE,
    build_conv_model,
    conv_architecture,
    decoder_jacobian_penalty,
    imq_mmd,
)
from entropic_ae.training import train

WIDTH = 1 / 32  # 4, 8, 16, 32 channels: fast enough for unit tests

# (image shape, encoder output map) for MNIST, CIFAR-10 and CelebA
SHAPES = [((1, 28, 28), (2, 2)), ((3, 32, 32), (2, 2)), ((3, 64, 64), (4, 4))]


def images(shape, n=8, seed=0):
    return torch.rand(n, *shape, generator=torch.Generator().manual_seed(seed))


def test_paper_channel_layout():
    a28, a32, a64 = (conv_architecture(s) for s in (28, 32, 64))
    for a in (a28, a32, a64):
        assert a.encoder_channels == (128, 256, 512, 1024)
    assert a28.decoder_channels == a32.decoder_channels == (1024, 512, 256)
    assert a64.decoder_channels == (1024, 512, 256, 128)
    assert (a28.kernel, a32.kernel, a64.kernel) == (4, 4, 5)
    assert (a28.decoder_start, a32.decoder_start, a64.decoder_start) == (7, 8, 8)
    assert conv_architecture(28, width=0.125).encoder_channels == (16, 32, 64, 128)


@pytest.mark.parametrize("shape, enc_map", SHAPES)
def test_shapes(shape, enc_map):
    torch.manual_seed(0)
    model = ConvAutoencoder(shape, latent_dim=6, width=WIDTH)
    x = images(shape)
    assert model.encoder.feature_shape[1:] == enc_map
    assert model.encode(x).shape == model.encode(x, pre_norm=True).shape == (8, 6)
    out = model(x)
    assert out.shape == x.shape and 0 <= out.min() and out.max() <= 1
    assert model.decode(torch.randn(3, 6)).shape == (3, *shape)
    vae = ConvVAE(shape, latent_dim=6, width=WIDTH)
    mu, logvar = vae.posterior(x)
    assert mu.shape == logvar.shape == (8, 6) and vae(x).shape == x.shape


def test_paper_scale_layers_for_mnist():
    """Width 1: the paper's 28×28 network (conv 4×4 stride 2, 1024×7×7 decoder map)."""
    model = ConvAutoencoder((1, 28, 28), latent_dim=16, width=1.0)
    convs = [m for m in model.encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [128, 256, 512, 1024]
    assert all(c.kernel_size == (4, 4) and c.stride == (2, 2) for c in convs)
    assert model.decoder.start_shape == (1024, 7, 7)
    assert isinstance(model.bottleneck, torch.nn.BatchNorm1d) and not model.bottleneck.affine


def test_bottleneck_batch_norm_standardises_a_training_batch():
    torch.manual_seed(0)
    model = ConvAutoencoder((1, 28, 28), latent_dim=5, width=WIDTH).train()
    z = model.encode(images((1, 28, 28), n=64))
    assert torch.allclose(z.mean(0), torch.zeros(5), atol=1e-5)
    assert torch.allclose(z.var(0, unbiased=False), torch.ones(5), atol=1e-3)
    assert isinstance(ConvAutoencoder(bottleneck_norm=False, width=WIDTH).bottleneck,
                      torch.nn.Identity)


# every term's expected sign on a random batch
SIGNS = {"recon": 1, "weight_l2": 1, "decoder_l2": 1, "code_l2": 1, "kl": 1, "decoder_gp": 1}


@pytest.mark.parametrize("name", CONV_MODEL_NAMES)
def test_loss_finite_signed_and_reaching_both_halves(name):
    torch.manual_seed(0)
    spec = build_conv_model(name, (1, 28, 28), latent_dim=4, width=WIDTH)
    model = spec.model.train()
    x = images((1, 28, 28), n=16)
    terms = spec.loss_fn(model, x)
    assert set(terms) == {"recon", *CONV_DEFAULT_WEIGHTS[name]}
    for key, value in terms.items():
        assert value.dim() == 0 and torch.isfinite(value), key
        if key in SIGNS:
            assert value.item() > 0, key
    if name == "EAE":
        z = model.encode(x)
        assert terms["neg_entropy"].item() == pytest.approx(-kozachenko_leonenko(z).item(),
                                                            rel=1e-5)
    total = sum(spec.weights.get(k, 1.0) * v for k, v in terms.items())
    total.backward()
    first_conv = next(m for m in model.encoder.modules() if isinstance(m, torch.nn.Conv2d))
    last_conv = [m for m in model.decoder.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    for layer in (first_conv, model.encoder.linear, model.decoder.linear[0], last_conv):
        assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name, term", [("EAE", "neg_entropy"), ("VAE", "kl"),
                                        ("WAE-MMD", "mmd"), ("RAE-L2", "code_l2"),
                                        ("RAE-GP", "decoder_gp"), ("AE-L2", "weight_l2")])
def test_regulariser_decreases_under_its_own_gradient(name, term):
    """Right sign: a few gradient steps on the regulariser alone lower it (for EAE: raise the
    batch's estimated entropy)."""
    torch.manual_seed(0)
    spec = build_conv_model(name, (1, 28, 28), latent_dim=4, width=WIDTH)
    model = spec.model.train()
    x = images((1, 28, 28), n=32)
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)

    def value():
        torch.manual_seed(1)  # same noise draws for the stochastic terms
        return spec.loss_fn(model, x)[term]

    before = value().item()
    for _ in range(5):
        opt.zero_grad()
        value().backward()
        opt.step()
    assert value().item() < before


def test_vae_kl_matches_torch_distributions():
    torch.manual_seed(0)
    spec = build_conv_model("VAE", (1, 28, 28), latent_dim=3, width=WIDTH)
    x = images((1, 28, 28))
    mu, logvar = spec.model.posterior(x)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    expected = torch.distributions.kl_divergence(q, p).sum(1).mean()
    assert spec.loss_fn(spec.model, x)["kl"].item() == pytest.approx(expected.item(), rel=1e-5)


def reference_mmd(z, y, scales):
    """Unbiased MMD² with double loops, float64."""
    n, d = z.shape
    z, y = z.double(), y.double()
    total = 0.0
    for s in scales:
        c = 2 * d * s

        def k(a, b, c=c):
            return c / (c + ((a - b) ** 2).sum().item())

        kzz = sum(k(z[i], z[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
        kyy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
        kzy = sum(k(z[i], y[j]) for i in range(n) for j in range(n)) / n**2
        total += kzz + kyy - 2 * kzy
    return total


def test_imq_mmd_against_loops_and_behaviour():
    gen = torch.Generator().manual_seed(0)
    z, y = torch.randn(12, 3, generator=gen), torch.randn(12, 3, generator=gen) + 1.0
    scales = (0.5, 1.0, 2.0)
    assert imq_mmd(z, y, scales).item() == pytest.approx(reference_mmd(z, y, scales), rel=1e-5)
    same = imq_mmd(torch.randn(500, 4, generator=gen), torch.randn(500, 4, generator=gen))
    shifted = imq_mmd(torch.randn(500, 4, generator=gen) + 1, torch.randn(500, 4, generator=gen))
    assert abs(same.item()) < 0.02 < shifted.item()


def test_jacobian_penalty_is_unbiased_for_the_frobenius_norm():
    """Reference: the Jacobian by central differences in float64."""
    torch.manual_seed(0)
    model = ConvAutoencoder((1, 28, 28), latent_dim=3, width=WIDTH, bottleneck_norm=False)
    model = model.double().eval()
    z = torch.randn(2, 3, dtype=torch.float64)
    h, exact = 1e-5, 0.0
    with torch.no_grad():
        for j in range(3):
            e = torch.zeros(3, dtype=torch.float64)
            e[j] = h
            exact += ((model.decode(z + e) - model.decode(z - e)) / (2 * h)).pow(2).sum().item()
    exact /= 2  # mean over the two codes
    draws = []
    for _ in range(8):  # each draw averages 100 copies of both codes, each with its own v
        zz = z.repeat(100, 1).requires_grad_(True)
        draws.append(decoder_jacobian_penalty(model, zz, model.decode(zz)).item())
    mean = sum(draws) / len(draws)
    sd = (sum((d - mean) ** 2 for d in draws) / (len(draws) - 1)) ** 0.5
    assert abs(mean - exact) < 4 * sd / math.sqrt(len(draws))


@pytest.mark.parametrize("shape", [s for s, _ in SHAPES])
def test_every_model_trains_on_synthetic_images(shape):
    """The code paths of CIFAR-10 (3×32×32) and CelebA (3×64×64) on synthetic tensors."""
    data = images(shape, n=24, seed=3)
    names = CONV_MODEL_NAMES if shape[1] == 28 else ("EAE", "VAE", "RAE-GP")
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
        (lambda: ConvAutoencoder((1, 30, 30)), ValueError),
        (lambda: ConvAutoencoder((1, 28, 32)), ValueError),
        (lambda: ConvAutoencoder("mnist"), TypeError),
        (lambda: ConvAutoencoder(latent_dim=0), ValueError),
        (lambda: conv_architecture(28, width=0), ValueError),
        (lambda: ConvAutoencoder(width=WIDTH).encode(torch.rand(2, 3, 28, 28)), ValueError),
        (lambda: ConvAutoencoder(width=WIDTH).decode(torch.rand(2, 5)), ValueError),
        (lambda: imq_mmd(torch.randn(4, 2), torch.randn(5, 2)), ValueError),
    ],
)
def test_invalid_input(call, error):
    with pytest.raises(error):
        call()
