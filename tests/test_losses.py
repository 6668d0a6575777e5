"""Every training objective against a slow reference: loops, torch.distributions, finite
differences in float64."""

import math

import pytest
import torch
from torch import nn

from entropic_ae import losses
from entropic_ae.compactifier import data_compactifier_loss, layer_compactifier_loss
from entropic_ae.models.conv import ConvAutoencoder, ConvVAE, SecondStageVAE
from entropic_ae.models.mlp import MLPAutoencoder

WIDTH = 1 / 32


def images(n=8, seed=0):
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def test_reconstruction_error_is_the_per_image_sum_averaged_over_the_batch():
    x, y = images(5, 0), images(5, 1)
    per_image = [sum(v * v for v in (a - b).flatten().tolist()) for a, b in zip(x, y, strict=True)]
    assert losses.reconstruction_error(x, y).item() == pytest.approx(sum(per_image) / 5, rel=1e-5)


def test_mlp_objectives_match_their_parts():
    torch.manual_seed(0)
    model = MLPAutoencoder([12, 6, 4, 6, 12])
    x = torch.rand(9, 12)
    assert losses.mse(model, x)["mse"].item() == pytest.approx(
        ((model(x) - x) ** 2).mean().item(), rel=1e-6)
    terms = losses.compactifier(model, x, layer=2, variant="both", alpha=0.5)
    reference = layer_compactifier_loss(model.linears[1], model.linears[2], "both", 0.5)
    assert terms["entropy"].item() == pytest.approx(reference.item(), rel=1e-5)


def test_data_compactifier_objective_matches_its_parts():
    torch.manual_seed(0)
    model = MLPAutoencoder([12, 6, 4, 6, 12], image_shape=(3, 2, 2)).double()
    x = torch.rand(9, 3, 2, 2, dtype=torch.float64)
    terms = losses.data_compactifier(model, x, layer=2, alpha=0.5)
    assert set(terms) == {"mse", "entropy"}
    assert terms["mse"].item() == pytest.approx(losses.mse(model, x)["mse"].item(), rel=1e-12)
    h = model.encode(x, 2)
    reference = data_compactifier_loss(h, model.linears[2], alpha=0.5)
    assert terms["entropy"].item() == pytest.approx(reference.item(), rel=1e-12)
    # gradients of the weighted sum equal those of the autograd reference
    params = list(model.parameters())
    got = torch.autograd.grad(terms["mse"] + 0.3 * terms["entropy"], params)
    want = torch.autograd.grad(nn.functional.mse_loss(model(x), x) + 0.3 * data_compactifier_loss(
        model.encode(x, 2), model.linears[2], alpha=0.5), params)
    for g, r in zip(got, want, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-14)


def test_the_mlp_objectives_check_the_layer():
    model = MLPAutoencoder([12, 6, 4, 6, 12])
    for bad in (0, 4, 1.0):
        with pytest.raises(ValueError, match="hidden node layer in 1..3"):
            losses.data_compactifier(model, torch.rand(3, 12), layer=bad)
        with pytest.raises(ValueError, match="hidden node layer in 1..3"):
            losses.compactifier(model, torch.rand(3, 12), layer=bad)


def test_vae_kl_matches_torch_distributions():
    torch.manual_seed(0)
    model = ConvVAE(latent_dim=3, width=WIDTH)
    x = images()
    mu, logvar = model.posterior(x)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    expected = torch.distributions.kl_divergence(q, p).sum(1).mean()
    assert losses.vae(model, x)["kl"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_gaussian_decoder_nll_matches_torch_distributions():
    """The two-stage VAE's decoder term is -log N(x; x̂, γ I) per sample."""
    torch.manual_seed(0)
    x, x_hat = torch.rand(4, 1, 3, 3), torch.rand(4, 1, 3, 3)
    log_gamma = torch.tensor(-1.3)
    expected = -torch.distributions.Normal(x_hat, torch.exp(0.5 * log_gamma)).log_prob(x)
    got = losses._gaussian_nll(x_hat, x, log_gamma)
    assert got.item() == pytest.approx(expected.flatten(1).sum(1).mean().item(), rel=1e-5)


def test_cv_vae_adds_fixed_noise_and_penalises_the_mean():
    torch.manual_seed(0)
    model = ConvAutoencoder(latent_dim=3, width=WIDTH, bottleneck_norm=False).eval()
    x = images()
    torch.manual_seed(5)
    terms = losses.cv_vae(model, x, sigma=0.7)
    mu = model.encode(x)
    torch.manual_seed(5)
    z = mu + 0.7 * torch.randn_like(mu)
    assert terms["kl"].item() == pytest.approx(0.5 * mu.pow(2).sum(1).mean().item(), rel=1e-6)
    assert terms["recon"].item() == pytest.approx(
        losses.reconstruction_error(model.decode(z), x).item(), rel=1e-6)


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
    assert losses.imq_mmd(z, y, scales).item() == pytest.approx(reference_mmd(z, y, scales),
                                                                rel=1e-5)
    same = losses.imq_mmd(torch.randn(500, 4, generator=gen), torch.randn(500, 4, generator=gen))
    shifted = losses.imq_mmd(torch.randn(500, 4, generator=gen) + 1,
                             torch.randn(500, 4, generator=gen))
    assert abs(same.item()) < 0.02 < shifted.item()
    with pytest.raises(ValueError):
        losses.imq_mmd(torch.randn(4, 2), torch.randn(5, 2))


def test_gradient_penalty_matches_finite_differences_in_float64():
    """Reference: ∇_z ‖D(z)‖² by central differences, then its squared norm, averaged."""
    torch.manual_seed(0)
    model = ConvAutoencoder(latent_dim=3, width=WIDTH, bottleneck_norm=False).double().eval()
    z = torch.randn(2, 3, dtype=torch.float64)
    h, expected = 1e-6, 0.0
    with torch.no_grad():
        for i in range(2):
            grad = []
            for j in range(3):
                e = torch.zeros(3, dtype=torch.float64)
                e[j] = h
                up = model.decode((z[i] + e)[None]).pow(2).sum()
                down = model.decode((z[i] - e)[None]).pow(2).sum()
                grad.append(((up - down) / (2 * h)).item())
            expected += sum(g * g for g in grad) / 2
    zz = z.clone().requires_grad_(True)
    penalty = losses.decoder_gradient_penalty(zz, model.decode(zz))
    assert penalty.item() == pytest.approx(expected, rel=1e-6)
    penalty.backward()  # differentiable: the double backward reaches the decoder
    assert model.decoder.linear[0].weight.grad.abs().sum() > 0


def test_decoder_l2_sums_the_decoder_kernels_only():
    torch.manual_seed(0)
    model = ConvAutoencoder(latent_dim=3, width=WIDTH)
    kernels = [m.weight for m in model.decoder.body.modules()
               if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
    assert len(kernels) == 3
    expected = sum(float(w.detach().double().pow(2).sum()) for w in kernels)
    assert losses.decoder_l2(model).item() == pytest.approx(expected, rel=1e-5)
    assert losses.squared_weights(model).item() > losses.decoder_l2(model).item()
    with pytest.raises(ValueError, match="no layers"):
        losses.squared_weights(nn.ReLU())
    wrapped = losses.with_decoder_l2(losses.ae)(model, images())
    assert set(wrapped) == {"recon", "decoder_l2"}


def test_second_stage_loss_resamples_the_first_stage_codes():
    torch.manual_seed(0)
    second = SecondStageVAE(4, hidden=8, depth=3)
    posterior = torch.cat([torch.randn(16, 4), torch.full((16, 4), -2.0)], dim=1)
    torch.manual_seed(1)
    terms = losses.two_stage_second(second, posterior)
    torch.manual_seed(1)
    z = posterior[:, :4] + math.exp(-1.0) * torch.randn(16, 4)
    mu, logvar = second.posterior(z)
    u = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    nll = losses._gaussian_nll(second.decode(u), z, second.log_gamma)
    assert terms["nll"].item() == pytest.approx(nll.item(), rel=1e-6)
    assert terms["kl"].item() >= 0 and math.isfinite(terms["kl"].item())
    with pytest.raises(ValueError, match="mu"):
        losses.two_stage_second(second, torch.randn(16, 4))
