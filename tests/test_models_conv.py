"""The convolutional backbone: the paper's layout, shapes, batch norm, spectral norm, VAEs."""

import pytest
import torch

from entropic_ae.models.conv import (
    ConvAutoencoder,
    ConvVAE,
    SecondStageVAE,
    conv_architecture,
)

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


def test_spectral_norm_bounds_every_decoder_map():
    """After enough power iterations each normalised decoder weight has spectral norm ~1."""
    torch.manual_seed(0)
    model = ConvAutoencoder((1, 28, 28), latent_dim=4, width=WIDTH, bottleneck_norm=False,
                            decoder_spectral_norm=True).train()
    z = torch.randn(16, 4)
    for _ in range(30):  # each training-mode forward pass runs one power iteration
        model.decode(z)
    linear = model.decoder.linear[0]
    sigma = torch.linalg.matrix_norm(linear.weight.detach(), ord=2)
    assert sigma.item() == pytest.approx(1.0, abs=1e-2)
    parametrized = [m for m in model.decoder.modules() if hasattr(m, "parametrizations")]
    assert len(parametrized) == 4  # the linear map, two transposed convs, the last conv
    assert not any(hasattr(m, "parametrizations") for m in model.encoder.modules())


def test_learned_gamma_and_the_two_stage_model():
    torch.manual_seed(0)
    first = ConvVAE(latent_dim=3, width=WIDTH, learn_gamma=True)
    assert first.log_gamma.item() == 0.0 and first.log_gamma.requires_grad
    assert ConvVAE(latent_dim=3, width=WIDTH).log_gamma is None
    second = SecondStageVAE(3, hidden=8, depth=3)
    assert second.decode(torch.randn(5, 3)).shape == (5, 3)
    linears = [m for m in second.encoder if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linears] == [8, 8, 8, 6]
    mu, logvar = second.posterior(torch.randn(4, 3))
    assert mu.shape == logvar.shape == (4, 3)


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda: ConvAutoencoder((1, 30, 30)), ValueError),
        (lambda: ConvAutoencoder((1, 28, 32)), ValueError),
        (lambda: ConvAutoencoder("mnist"), TypeError),
        (lambda: ConvAutoencoder(latent_dim=0), ValueError),
        (lambda: conv_architecture(28, width=0), ValueError),
        (lambda: ConvAutoencoder(width=WIDTH).encode(torch.rand(2, 3, 28, 28)), ValueError),
        (lambda: ConvAutoencoder(width=WIDTH).decode(torch.rand(2, 5)), ValueError),
        (lambda: SecondStageVAE(4, hidden=0), ValueError),
        (lambda: SecondStageVAE(4, hidden=8).decode(torch.rand(2, 3)), ValueError),
    ],
)
def test_invalid_input(call, error):
    with pytest.raises(error):
        call()
