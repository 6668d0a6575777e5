"""Measurements of a conv run (chapters 4 and 5), listed in :func:`measure`; the scores of the
reconstructions are the ceiling a sampler could reach.

The reference set is a random, seeded draw of ``n_test`` test images (the same for every run,
so every run is scored against the same images), and the reconstructions are of a disjoint
draw of as many. The two-stage VAE's second stage is its sampler: a small VAE trained here on
the first stage's codes and stored beside the record (``sampler-<key>.pt``)."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch
from torch import nn

from entropic_ae import losses
from entropic_ae.experiments.config import RunConfig
from entropic_ae.experiments.context import RunContext, images
from entropic_ae.metrics import (
    active_units,
    gaussianity_parts,
    image_features,
    inception_feature_extractor,
    reconstruction_mse,
    reference_draw,
    sample_scores,
    unit_ablation,
)
from entropic_ae.models.conv import SecondStageVAE
from entropic_ae.models.lenet import feature_network
from entropic_ae.sampling import decode, encode, fit_gmm, sample_gmm, sample_normal
from entropic_ae.systems import SYSTEMS
from entropic_ae.training import train

__all__ = ["REFERENCE_SEED", "SAMPLERS", "measure", "posterior_codes", "prior_codes",
           "reference_images", "sample_images", "sampler_codes", "second_stage"]

#: The samplers of the results table: column prefix → label used in the book.
SAMPLERS = {"normal": "N(0,I)", "gmm": "GMM"}
#: Seed of the random draw of the reference and comparison test images (shared by all runs).
REFERENCE_SEED = 0


@torch.no_grad()
def _posterior(model: nn.Module, x: torch.Tensor, device: torch.device,
               batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    parts = [model.posterior(x[i:i + batch_size].to(device)) for i in range(0, len(x), batch_size)]
    return torch.cat([p[0] for p in parts]).cpu(), torch.cat([p[1] for p in parts]).cpu()


def second_stage(config: RunConfig, model: nn.Module, ctx: RunContext, data: str,
                 train_missing: bool = True) -> SecondStageVAE:
    """The two-stage VAE's sampler: a :class:`SecondStageVAE` with ``second_hidden`` units per
    layer, trained for ``second_epochs`` at ``second_lr`` on the first stage's posteriors of
    the training images (Dai & Wipf resample :math:`z` every batch), cached at the record's
    ``sampler`` path (``train_missing=False``: load it, never train)."""
    m, d = config.measure, config.options.latent_dim
    path = ctx.cache.sampler_path(config, data)
    if not train_missing and not path.is_file():
        raise FileNotFoundError(f"{config.slug}: its sampler was not trained (no {path}); run "
                                "fit(config) first")
    x, _ = images(config, "train", ctx.data_root)
    mu, logvar = _posterior(model.eval(), x, ctx.device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        second = SecondStageVAE(d, d, hidden=m.second_hidden)
    with torch.enable_grad():
        train(second, losses.two_stage_second, torch.cat([mu, logvar], dim=1),
              epochs=m.second_epochs, lr=m.second_lr, batch_size=m.second_batch_size,
              seed=config.seed, device=ctx.device, checkpoint=path)
    return second.eval()


@torch.no_grad()
def posterior_codes(config: RunConfig, model: nn.Module, x: torch.Tensor,
                    device: torch.device, seed: int) -> torch.Tensor:
    """Draws from the aggregate posterior :math:`q(z) = \\mathbb E_x q(z \\mid x)`, one per
    image: :math:`\\mu + \\sigma\\varepsilon` for the VAEs, :math:`E(x) + \\sigma_0\\varepsilon`
    for the CV-VAE, the deterministic code otherwise (eval mode)."""
    gen = torch.Generator().manual_seed(seed)
    if hasattr(model, "posterior"):
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


def sampler_codes(config: RunConfig, model: nn.Module, ctx: RunContext, data: str, n: int,
                  seed: int, second: SecondStageVAE | None = None) -> dict[str, torch.Tensor]:
    """``n`` codes from each sampler of :data:`SAMPLERS`: the isotropic one
    (:func:`prior_codes`) and a Gaussian mixture of ``gmm_components`` fitted (seeded) to the
    training codes."""
    x_train, _ = images(config, "train", ctx.data_root)
    gmm = fit_gmm(encode(model, x_train), n_components=config.measure.gmm_components, seed=seed)
    return {"normal": prior_codes(model, n, seed, second), "gmm": sample_gmm(gmm, n, seed=seed)}


@functools.lru_cache(maxsize=4)
def _extractor(dataset: str, epochs: int, limit: int | None, root: Any, device: str) -> Any:
    if dataset in ("mnist", "fashion-mnist"):
        with torch.enable_grad():
            net, _ = feature_network(dataset, root=root, epochs=epochs, limit=limit, seed=0,
                                     progress=False)
        return net.to(device)
    try:
        return inception_feature_extractor(device)
    except (ImportError, RuntimeError):
        return None


def reference_images(config: RunConfig, root: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference and the comparison test images of ``config``'s dataset: two disjoint,
    random (seeded :data:`REFERENCE_SEED`) draws of ``n_test`` test images."""
    x_test, _ = images(config, "test", root)
    ref, comparison = reference_draw(len(x_test), config.measure.n_test, REFERENCE_SEED)
    return x_test[ref], x_test[comparison]


@functools.lru_cache(maxsize=4)
def _reference_features(key: tuple, extractor: Any) -> torch.Tensor:
    dataset, n_test, root = key
    probe = RunConfig.make("conv", "AE", dataset=dataset, measure={"n_test": n_test})
    return image_features(reference_images(probe, root)[0], extractor)


def _scores(prefix: str, generated: torch.Tensor, reference: torch.Tensor, extractor: Any
            ) -> dict[str, float]:
    scores = sample_scores(generated, [reference], extractor)
    return {f"{prefix}_{k}": float(v) for k, v in scores.items()}


def _code_statistics(codes: torch.Tensor) -> dict[str, Any]:
    z = codes.double().numpy()
    corr = np.corrcoef(z, rowvar=False).reshape(z.shape[1], z.shape[1])
    return {"code_sd": [float(s) for s in z.std(0, ddof=1)],
            "correlation_eigenvalues": sorted(float(v) for v in np.linalg.eigvalsh(corr))}


@torch.no_grad()
def measure(config: RunConfig, model: nn.Module, ctx: RunContext, data: str
            ) -> tuple[dict[str, Any], list[str]]:
    """Per sampler (``normal``, ``gmm``): the sample score and KID of ``n_samples`` decoded
    codes against the reference images, with precision, recall, density and coverage, and the
    mean pixel of the samples; ``recon_*``: the same scores of the reconstructions of the
    comparison images; ``recon_mse`` (test, per pixel); the Gaussianity of the aggregate
    posterior's codes, split (``kl_moment``, ``kl_marginal``, ``kl_dependence``, their sum
    ``kl_to_normal``); the codes' sd and correlation eigenvalues; active code dimensions by
    ablation (and the variance count)."""
    m, seed = config.measure, config.seed
    x_train, _ = images(config, "train", ctx.data_root)
    ref_images, comparison = reference_images(config, ctx.data_root)
    files, second = [], None
    if SYSTEMS[config.model].sampler == "two-stage":
        second = second_stage(config, model, ctx, data)
        files.append(ctx.cache.sampler_path(config, data).name)
    out: dict[str, Any] = {"recon_mse": reconstruction_mse(model, comparison)}
    extractor = _extractor(config.dataset, m.feature_epochs, m.feature_limit, ctx.data_root,
                           str(ctx.device))
    if extractor is not None:
        reference = _reference_features((config.dataset, m.n_test, ctx.data_root), extractor)
        recon = decode(model, encode(model, comparison))
        out.update(_scores("recon", recon, reference, extractor))
        for sampler, z in sampler_codes(config, model, ctx, data, m.n_samples, seed,
                                        second).items():
            generated = decode(model, z)
            out.update(_scores(sampler, generated, reference, extractor))
            out[f"{sampler}_mean_pixel"] = float(generated.mean())
    drawn = posterior_codes(config, model, x_train[:m.kl_codes], ctx.device, seed)
    parts = gaussianity_parts(drawn, n=min(m.kl_codes, len(drawn)), seed=seed)
    out.update({"kl_moment": parts["moment"], "kl_marginal": parts["marginal"],
                "kl_dependence": parts["dependence"], "kl_to_normal": parts["total"]})
    out.update(_code_statistics(encode(model, x_train[:m.kl_codes])))
    sample = ref_images[:m.ablation_images].to(ctx.device)
    out["active_units"] = int((unit_ablation(model.encode, model.decode, sample,
                                             batch_size=512) > 0.01).sum())
    out["active_units_variance"] = active_units(encode(model, x_train[:m.kl_codes],
                                                       pre_norm=True), 0.01)
    return out, files


def sample_images(config: RunConfig, cache_dir: Any = None, data_root: Any = None,
                  device: Any = "auto", n: int = 8, seed: int = 0) -> dict[str, torch.Tensor]:
    """``n`` images of a trained run (never trains): decoded draws of each sampler
    (``"N(0,I)"``, ``"GMM"``), and the first ``n`` comparison test images with their
    reconstructions (``"test"``, ``"reconstruction"``)."""
    from entropic_ae.experiments.context import data_fingerprint
    from entropic_ae.experiments.runner import _context, load_model

    model = load_model(config, cache_dir, data_root, device)
    ctx = _context(cache_dir, data_root, device, False)
    data = data_fingerprint(config, ctx.data_root)
    second = (second_stage(config, model, ctx, data, train_missing=False)
              if SYSTEMS[config.model].sampler == "two-stage" else None)
    codes = sampler_codes(config, model, ctx, data, n, seed, second)
    test = reference_images(config, ctx.data_root)[1][:n]
    return {**{SAMPLERS[k]: decode(model, z) for k, z in codes.items()}, "test": test,
            "reconstruction": decode(model, encode(model, test))}
