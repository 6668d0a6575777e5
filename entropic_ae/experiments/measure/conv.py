"""Measurements of a conv run (chapters 4 and 5): samples decoded from N(0, I) and from a
Gaussian mixture fitted to the training codes, scored against held-out images; the
reconstruction error; how Gaussian the codes are; the active code dimensions.

The two-stage VAE's second stage is its sampler: a small VAE trained here on the first
stage's codes and stored beside the record (``sampler-<key>.pt``)."""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import torch
from torch import nn

from entropic_ae import losses
from entropic_ae.experiments.config import RunConfig
from entropic_ae.experiments.context import RunContext, images
from entropic_ae.metrics import (
    active_units,
    frechet_distance,
    image_features,
    inception_feature_extractor,
    kl_to_standard_normal,
    reconstruction_mse,
    unit_ablation,
)
from entropic_ae.models.conv import SecondStageVAE
from entropic_ae.models.lenet import feature_network
from entropic_ae.sampling import decode, encode, fit_gmm, sample_gmm, sample_normal
from entropic_ae.systems import SYSTEMS
from entropic_ae.training import train

__all__ = ["SAMPLERS", "measure", "posterior_codes", "prior_codes", "second_stage"]

#: The samplers of the results table: column suffix → label used in the book.
SAMPLERS = {"normal": "N(0,I)", "gmm": "GMM"}


@torch.no_grad()
def _posterior(model: nn.Module, x: torch.Tensor, device: torch.device,
               batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    parts = [model.posterior(x[i:i + batch_size].to(device)) for i in range(0, len(x), batch_size)]
    return torch.cat([p[0] for p in parts]).cpu(), torch.cat([p[1] for p in parts]).cpu()


def second_stage(config: RunConfig, model: nn.Module, ctx: RunContext, data: str
                 ) -> SecondStageVAE:
    """The two-stage VAE's sampler: a :class:`SecondStageVAE` trained on the first stage's
    posteriors of the training images (Dai & Wipf resample :math:`z` every batch), cached at
    the record's ``sampler`` path."""
    x, _ = images(config, "train", ctx.data_root)
    mu, logvar = _posterior(model.eval(), x, ctx.device)
    d = config.options.latent_dim
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        second = SecondStageVAE(d, d)
    m = config.measure
    train(second, losses.two_stage_second, torch.cat([mu, logvar], dim=1),
          epochs=m.second_epochs, lr=config.lr, batch_size=m.second_batch_size, seed=config.seed,
          device=ctx.device, checkpoint=ctx.cache.sampler_path(config, data))
    return second.eval()


@torch.no_grad()
def posterior_codes(config: RunConfig, model: nn.Module, x: torch.Tensor,
                    device: torch.device, seed: int) -> torch.Tensor:
    """Draws from the aggregate posterior :math:`q(z) = \\mathbb E_x q(z \\mid x)`, one per
    image: :math:`\\mu + \\sigma\\varepsilon` for the VAEs, :math:`E(x) + \\sigma_0\\varepsilon`
    for the CV-VAE, the deterministic code otherwise (eval mode)."""
    gen = torch.Generator().manual_seed(seed)
    if isinstance(model, nn.Module) and hasattr(model, "posterior"):
        mu, logvar = _posterior(model, x, device)
        return mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=gen)
    codes = encode(model, x)
    sigma = SYSTEMS[config.model].loss_params.get("sigma")
    if sigma is not None:
        codes = codes + sigma * torch.randn(codes.shape, generator=gen)
    return codes


@torch.no_grad()
def prior_codes(model: nn.Module, n: int, seed: int,
                second: SecondStageVAE | None = None) -> torch.Tensor:
    """``n`` codes from the system's isotropic sampler: :math:`z \\sim \\mathcal N(0, I)`, or
    for the two-stage VAE :math:`u \\sim \\mathcal N(0, I)` through its second decoder."""
    z = sample_normal(n, model.latent_dim, seed=seed)
    if second is not None:
        device = next(second.parameters()).device
        z = torch.cat([second.decode(z[i:i + 1000].to(device)).cpu() for i in range(0, n, 1000)])
    return z


@functools.lru_cache(maxsize=4)
def _extractor(dataset: str, epochs: int, limit: int | None, root: Any, device: str) -> Any:
    if dataset in ("mnist", "fashion-mnist"):
        net, _ = feature_network(dataset, root=root, epochs=epochs, limit=limit, seed=0,
                                 progress=False)
        return net.to(device)
    try:
        return inception_feature_extractor(device)
    except (ImportError, RuntimeError):
        return None


@functools.lru_cache(maxsize=4)
def _reference(config_key: tuple, extractor: Any) -> torch.Tensor:
    dataset, n_test, root = config_key
    probe = RunConfig.make("conv", "AE", dataset=dataset)
    x_test, _ = images(probe, "test", root, limit=n_test)
    return image_features(x_test, extractor)


def _frechet(generated: torch.Tensor, reference: torch.Tensor, resamples: int,
             seed: int) -> tuple[float, float]:
    """The Fréchet distance and its bootstrap standard deviation (both sets resampled)."""
    fd = frechet_distance(generated, reference)
    if resamples < 2:
        return fd, math.nan
    rng = np.random.default_rng(seed)
    g, r = generated.numpy(), reference.numpy()
    draws = [frechet_distance(g[rng.integers(0, len(g), len(g))],
                              r[rng.integers(0, len(r), len(r))]) for _ in range(resamples)]
    return fd, float(np.std(draws, ddof=1))


@torch.no_grad()
def measure(config: RunConfig, model: nn.Module, ctx: RunContext, data: str
            ) -> tuple[dict[str, Any], list[str]]:
    """Fréchet distances of samples from N(0, I) (``fd_normal``) and from a Gaussian mixture
    fitted to the training codes (``fd_gmm``), each with a bootstrap spread; the test
    reconstruction error per pixel; the calibrated KL of the aggregate posterior's codes to
    N(0, I); active code dimensions by ablation (and the variance count)."""
    m, seed = config.measure, config.seed
    x_train, _ = images(config, "train", ctx.data_root)
    x_test, _ = images(config, "test", ctx.data_root, limit=m.n_test)
    files = []
    second = None
    if SYSTEMS[config.model].sampler == "two-stage":
        with torch.enable_grad():
            second = second_stage(config, model, ctx, data)
        files.append(ctx.cache.sampler_path(config, data).name)
    codes = encode(model, x_train)
    gmm = fit_gmm(codes, n_components=m.gmm_components, seed=seed)
    samplers = {"normal": prior_codes(model, m.n_samples, seed, second),
                "gmm": sample_gmm(gmm, m.n_samples, seed=seed)}
    out: dict[str, Any] = {"recon_mse": reconstruction_mse(model, x_test)}
    with torch.enable_grad():  # the feature network trains on first use
        extractor = _extractor(config.dataset, m.feature_epochs, m.feature_limit,
                               ctx.data_root, str(ctx.device))
    reference = (None if extractor is None else
                 _reference((config.dataset, m.n_test, ctx.data_root), extractor))
    for sampler, z in samplers.items():
        if reference is None:
            out[f"fd_{sampler}"], out[f"fd_{sampler}_sd"] = math.nan, math.nan
            continue
        generated = image_features(decode(model, z), extractor)
        out[f"fd_{sampler}"], out[f"fd_{sampler}_sd"] = _frechet(generated, reference,
                                                                 m.bootstrap, seed)
    drawn = posterior_codes(config, model, x_train[:m.kl_codes], ctx.device, seed)
    out["kl_to_normal"] = kl_to_standard_normal(drawn)
    sample = x_test[:m.ablation_images].to(ctx.device)
    rise = unit_ablation(model.encode, model.decode, sample, batch_size=512)
    out["active_units"] = int((rise > 0.01).sum())
    out["active_units_variance"] = active_units(encode(model, x_train[:m.kl_codes],
                                                       pre_norm=True), 0.01)
    return out, files
