r"""Every training objective of the book, as named loss terms.

A *loss function* maps ``(model, x, **params)`` to a dict of named, unweighted scalar terms;
:func:`entropic_ae.training.train` minimises :math:`\sum_t w_t\,\mathrm{term}_t`. Which
function, parameters and weights each system of the book uses is written in its record in
:mod:`entropic_ae.systems`; this module is the mathematics.

Fully connected autoencoders (chapters 2 and 3), on the mean squared error per pixel
:math:`\frac{1}{BP}\sum_i\lVert\hat x_i - x_i\rVert^2` (the first source document's
``nn.MSELoss``): :func:`mse`, :func:`compactifier`, :func:`data_compactifier`, :func:`gated`.
(The path entropies act through the training loop's regularisers,
:mod:`entropic_ae.paths`.)

Convolutional autoencoders (chapters 4 and 5), all on the *per-image summed* squared error
:math:`\frac1B\sum_i\lVert\hat x_i - x_i\rVert^2` of the EAE paper's Eq. (2) (term
``recon``): one function per system (``ae``, ``eae``, ``vae``, ...).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from entropic_ae.compactifier import fused_data_compactifier_loss, fused_layer_compactifier_loss
from entropic_ae.estimators import kozachenko_leonenko, minibatch_entropy

__all__ = ["LossFn", "ae", "ae_l2", "bn_decorrelation", "compactifier", "cv_vae",
           "data_compactifier", "decoder_gradient_penalty", "decoder_l2", "eae", "eae_mb", "eae_sw",
           "gated", "imq_mmd", "mse", "rae", "rae_gp", "rae_l2", "reconstruction_error",
           "squared_weights", "two_stage_first", "two_stage_second", "vae", "wae",
           "with_decoder_l2"]

LossFn = Callable[..., dict[str, torch.Tensor]]


# --- Fully connected autoencoders ----------------------------------------------------------------


def mse(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    r"""``{"mse": mean((model(x) - x)²)}``, the mean over pixels and batch."""
    return {"mse": nn.functional.mse_loss(model(x), x)}


def _hidden_layer(model: nn.Module, layer: int) -> int:
    if isinstance(layer, bool) or not isinstance(layer, int) or not 1 <= layer < len(
            model.linears):
        raise ValueError(f"layer must be a hidden node layer in 1..{len(model.linears) - 1} of "
                         f"this model, got {layer!r}")
    return layer


def compactifier(model: nn.Module, x: torch.Tensor, layer: int, variant: str = "both",
                 alpha: float = 1.0) -> dict[str, torch.Tensor]:
    r"""MSE and the compactifier penalty of hidden node layer ``layer`` of an MLP autoencoder:
    terms ``mse`` and ``entropy`` :math:`= H_\alpha(p)` of the weight activity ``variant``
    (:func:`entropic_ae.compactifier.fused_layer_compactifier_loss`), weighted
    :math:`\lambda_1, \lambda_2` as in the source document."""
    layer = _hidden_layer(model, layer)
    into, out_of = model.linears[layer - 1], model.linears[layer]
    return {"mse": nn.functional.mse_loss(model(x), x),
            "entropy": fused_layer_compactifier_loss(into, out_of, variant, alpha)}


def data_compactifier(model: nn.Module, x: torch.Tensor, layer: int,
                      alpha: float = 1.0) -> dict[str, torch.Tensor]:
    r"""MSE and the data-dependent compactifier penalty of hidden node layer ``layer``:
    ``entropy`` :math:`= H_\alpha(a / \sum a)` with :math:`a_j = \mathbb E_x|h_j(x)|\,\lVert
    W^{out}_{:,j}\rVert_1` over the batch
    (:func:`entropic_ae.compactifier.fused_data_compactifier_loss`), from the same forward
    pass as the MSE; a unit that never fires holds no activity."""
    layer = _hidden_layer(model, layer)
    outs = model.layer_outputs(x)
    return {"mse": nn.functional.mse_loss(outs[-1], outs[0]),
            "entropy": fused_data_compactifier_loss(outs[layer], model.linears[layer], alpha)}


def gated(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    r"""MSE and the expected number of open hard-concrete gates of the model (Louizos et al.
    2018), ``l0`` :math:`= \sum_j P(g_j \ne 0)` summed over its gates
    (:func:`entropic_ae.width_learning.l0_penalty`)."""
    from entropic_ae.width_learning import l0_penalty

    return {"mse": nn.functional.mse_loss(model(x), x), "l0": l0_penalty(model)}


# --- Building blocks of the convolutional models ------------------------------------------------


def reconstruction_error(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    r"""Squared error summed over an image's pixels, averaged over the batch:
    :math:`\frac1B\sum_i \lVert \hat x_i - x_i\rVert^2`."""
    return (x_hat - x).pow(2).flatten(1).sum(dim=1).mean()


def squared_weights(module: nn.Module, kinds: tuple[type, ...] = (
        nn.Conv2d, nn.ConvTranspose2d, nn.Linear)) -> torch.Tensor:
    r""":math:`\sum \lVert W\rVert^2` over the weights of the layers of ``module`` of the given
    ``kinds`` (default: conv, transposed-conv and linear layers; no biases, no batch-norm
    parameters)."""
    terms = [m.weight.pow(2).sum() for m in module.modules() if isinstance(m, kinds)]
    if not terms:
        raise ValueError(f"{type(module).__name__} has no layers of the kinds "
                         f"{[k.__name__ for k in kinds]}")
    return torch.stack(terms).sum()


def decoder_l2(model: nn.Module) -> torch.Tensor:
    r""":math:`\sum\lVert W\rVert^2` over the convolution kernels of the decoder (its transposed
    convolutions and its last convolution; not its first linear map), as Ghosh et al.'s RAE-L2
    and AE-L2 do for MNIST and CIFAR-10. (Most of these kernels are followed by batch norm,
    which makes the output invariant to their scale: there the penalty only shrinks weights
    whose size does not matter, which changes the effective learning rate.)"""
    return squared_weights(model.decoder.body, (nn.Conv2d, nn.ConvTranspose2d))


def with_decoder_l2(loss_fn: LossFn) -> LossFn:
    """``loss_fn`` with the extra term ``decoder_l2`` (:func:`decoder_l2`), e.g. for the EAE
    with L2 regularisation that the paper trains on CIFAR-10."""

    def loss(model: nn.Module, x: torch.Tensor, **params) -> dict[str, torch.Tensor]:
        return {**loss_fn(model, x, **params), "decoder_l2": decoder_l2(model)}

    loss.__name__ = f"{getattr(loss_fn, '__name__', 'loss')}+decoder_l2"
    return loss


def imq_mmd(z: torch.Tensor, y: torch.Tensor,
            scales: tuple[float, ...] = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)) -> torch.Tensor:
    r"""Unbiased estimate of :math:`\mathrm{MMD}^2` between samples ``z`` and ``y`` (N × d) with
    the inverse multiquadratic kernel :math:`k(a, b) = C / (C + \lVert a - b\rVert^2)`, summed
    over :math:`C = 2 d s` for each ``s`` in ``scales`` (Tolstikhin et al. 2018 use
    :math:`C = 2d\sigma^2` for a prior :math:`\mathcal N(0, \sigma^2 I)`, summed over these
    scales)."""
    if z.dim() != 2 or z.shape != y.shape or z.shape[0] < 2:
        raise ValueError(f"z and y must both have shape (N >= 2, d), got {tuple(z.shape)} "
                         f"and {tuple(y.shape)}")
    n, d = z.shape
    dzz, dyy, dzy = torch.cdist(z, z).pow(2), torch.cdist(y, y).pow(2), torch.cdist(z, y).pow(2)
    off = 1.0 - torch.eye(n, dtype=z.dtype, device=z.device)
    total = z.new_zeros(())
    for s in scales:
        c = 2.0 * d * s
        kzz, kyy, kzy = c / (c + dzz), c / (c + dyy), c / (c + dzy)
        total = total + ((kzz * off).sum() + (kyy * off).sum()) / (n * (n - 1)) - 2 * kzy.mean()
    return total


def decoder_gradient_penalty(z: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    r"""The gradient penalty of RAE-GP (Ghosh et al. 2019):
    :math:`\frac1B\sum_i \lVert \nabla_{z_i} \lVert D(z_i)\rVert^2 \rVert^2`, the squared norm of
    the gradient of the squared norm of the decoded image with respect to its code.

    ``z`` must require a gradient and ``x_hat = D(z)``; the penalty is differentiable (double
    backward). Each image depends only on its own code, so one backward pass of
    :math:`\sum_i \lVert D(z_i)\rVert^2` gives every :math:`\nabla_{z_i}`.
    """
    (grad,) = torch.autograd.grad(x_hat.pow(2).sum(), z, create_graph=True)
    return grad.pow(2).sum(dim=1).mean()


def _code_penalty(z: torch.Tensor) -> torch.Tensor:
    r""":math:`\frac1B\sum_i \tfrac12\lVert z_i\rVert^2`, the RAE code penalty."""
    return 0.5 * z.pow(2).sum(dim=1).mean()


def _gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    r""":math:`\frac1B\sum_i \mathrm{KL}(\mathcal N(\mu_i, \sigma_i^2) \,\Vert\, \mathcal N(0, I))
    = \frac1B\sum_i \tfrac12\sum_j (\mu_{ij}^2 + \sigma_{ij}^2 - 1 - \log\sigma_{ij}^2)`."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1).mean()


def _gaussian_nll(x_hat: torch.Tensor, x: torch.Tensor, log_gamma: torch.Tensor) -> torch.Tensor:
    r"""Negative log-likelihood of ``x`` under :math:`\mathcal N(\hat x, \gamma I)`, per sample:
    :math:`\frac{1}{2\gamma}\lVert x - \hat x\rVert^2 + \frac D2\log(2\pi\gamma)`."""
    dims, se = x[0].numel(), reconstruction_error(x_hat, x)
    return 0.5 * se * torch.exp(-log_gamma) + 0.5 * dims * (log_gamma + math.log(2 * math.pi))


# --- The losses of the convolutional models ------------------------------------------------------


def ae(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    r"""AE and BN-AE: ``recon`` :math:`=\frac1B\sum_i\lVert D(E(x_i)) - x_i\rVert^2` alone."""
    return {"recon": reconstruction_error(model(x), x)}


def ae_l2(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    r"""AE-L2: ``recon`` and ``decoder_l2`` (:func:`decoder_l2`)."""
    return {"recon": reconstruction_error(model(x), x), "decoder_l2": decoder_l2(model)}


def eae(model: nn.Module, x: torch.Tensor, k: int = 1) -> dict[str, torch.Tensor]:
    r"""The entropic autoencoder, Eq. (2) of the paper:
    :math:`\frac1B\sum_i\lVert D(z_i) - x_i\rVert^2 - \beta \hat H(z_1, \dots, z_B)`, with
    :math:`z_i` the batch-normalised codes of the batch and :math:`\hat H` the
    Kozachenko–Leonenko estimate (``k``-th neighbour). Terms ``recon`` and ``neg_entropy``
    :math:`= -\hat H` (weight :math:`\beta`)."""
    z = model.encode(x)
    return {"recon": reconstruction_error(model.decode(z), x),
            "neg_entropy": -kozachenko_leonenko(z, k=k)}


def eae_mb(model: nn.Module, x: torch.Tensor, m: int | None = None) -> dict[str, torch.Tensor]:
    r"""EAE-MB: the EAE with the book's minibatch surrogate :math:`S`
    (:func:`entropic_ae.estimators.minibatch_entropy` with ``m`` spacings, a fresh random
    rotation from torch's global generator each step) in place of the Kozachenko–Leonenko
    estimate. Terms ``recon`` and ``neg_entropy`` :math:`= -S`. (At most :math:`B/2`
    spacings fit a batch of :math:`B` codes: ``m`` is capped there.)"""
    z = model.encode(x)
    m = None if m is None else min(m, z.shape[0] // 2)
    return {"recon": reconstruction_error(model.decode(z), x),
            "neg_entropy": -minibatch_entropy(z, m=m)}


def eae_sw(model: nn.Module, x: torch.Tensor, directions: int = 64) -> dict[str, torch.Tensor]:
    r"""EAE-SW: the EAE with a sliced Wasserstein term in place of the entropy estimate:
    ``neg_entropy`` :math:`= -T(z)`, :math:`T(z) = -\frac dK\sum_k W_2^2(z\theta_k,
    \mathcal N(0,1))` over the ``d`` axes and ``directions`` fresh random directions
    (:func:`entropic_ae.entropy_terms.sliced_gaussianity`), maximal (0) only for codes whose
    projections are all standard normal."""
    from entropic_ae.entropy_terms import sliced_gaussianity

    z = model.encode(x)
    term = sliced_gaussianity(z, "wasserstein", directions=directions, axes=True)
    return {"recon": reconstruction_error(model.decode(z), x), "neg_entropy": -term}


def bn_decorrelation(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    r"""BN-AE + decorrelation, the EAE's entropy term reduced to its Gaussian part:
    ``recon`` and ``neg_logdet`` :math:`= -\tfrac12\log\det R(z)` with :math:`R` the batch's
    code correlation (:func:`entropic_ae.entropy_terms.log_det_correlation`; at most 0, and
    0 only for uncorrelated codes): the codes are pushed to be uncorrelated and nothing else.
    Without shrinkage when the batch has more codes than dimensions (the chapters' B = 100,
    d = 16); a smaller batch, whose correlation is singular, takes the default shrinkage."""
    from entropic_ae.entropy_terms import log_det_correlation

    z = model.encode(x)
    shrinkage = 0.0 if z.shape[0] > z.shape[1] else None
    return {"recon": reconstruction_error(model.decode(z), x),
            "neg_logdet": -log_det_correlation(z, shrinkage=shrinkage)}


def vae(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    r"""VAE: ``recon`` of :math:`z = \mu + \sigma\odot\varepsilon` and ``kl``
    :math:`= \mathrm{KL}(q(z\mid x)\,\Vert\,\mathcal N(0, I))`, averaged over the batch."""
    mu, logvar = model.posterior(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    return {"recon": reconstruction_error(model.decode(z), x), "kl": _gaussian_kl(mu, logvar)}


def cv_vae(model: nn.Module, x: torch.Tensor, sigma: float = 0.7) -> dict[str, torch.Tensor]:
    r"""The constant-variance VAE: :math:`z = E(x) + \sigma_0\varepsilon` during training,
    terms ``recon`` and ``kl`` :math:`= \frac1B\sum_i\tfrac12\lVert E(x_i)\rVert^2` (the KL
    divergence to :math:`\mathcal N(0, I)` of :math:`\mathcal N(E(x), \sigma_0^2 I)` up to a
    constant, since :math:`\sigma_0` is fixed)."""
    mu = model.encode(x)
    z = mu + sigma * torch.randn_like(mu)
    return {"recon": reconstruction_error(model.decode(z), x), "kl": _code_penalty(mu)}


def wae(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    r"""WAE-MMD: ``recon`` and ``mmd`` :math:`=\widehat{\mathrm{MMD}}^2` between the batch's codes
    and as many draws from :math:`\mathcal N(0, I)` (:func:`imq_mmd`)."""
    z = model.encode(x)
    return {"recon": reconstruction_error(model.decode(z), x),
            "mmd": imq_mmd(z, torch.randn_like(z))}


def rae(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    r"""RAE (and RAE-SN, whose decoder is spectrally normalised): ``recon`` and ``code_l2``
    :math:`= \frac1B\sum_i\frac12\lVert z_i\rVert^2`."""
    z = model.encode(x)
    return {"recon": reconstruction_error(model.decode(z), x), "code_l2": _code_penalty(z)}


def rae_l2(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    r"""RAE-L2: ``recon``, ``code_l2`` and ``decoder_l2`` :math:`=\sum\lVert W_D\rVert^2`."""
    z = model.encode(x)
    return {"recon": reconstruction_error(model.decode(z), x), "code_l2": _code_penalty(z),
            "decoder_l2": decoder_l2(model)}


def rae_gp(model: nn.Module, x: torch.Tensor, penalty_codes: int = 25
           ) -> dict[str, torch.Tensor]:
    r"""RAE-GP: ``recon``, ``code_l2`` and ``decoder_gp`` (:func:`decoder_gradient_penalty`).
    The penalty is the batch mean of a per-code quantity; it is estimated on the batch's first
    ``penalty_codes`` codes (the batches are shuffled, so this is an unbiased estimate of the
    batch mean), because its double backward pass made a training step 3.5 times as long as
    the other systems' (measured at width 1/32 on the CPU: 138 against 40 s a run)."""
    z = model.encode(x)
    x_hat = model.decode(z)
    if penalty_codes < z.shape[0]:
        part = z[:penalty_codes]
        penalty = decoder_gradient_penalty(part, model.decode(part))
    else:
        penalty = decoder_gradient_penalty(z, x_hat)
    return {"recon": reconstruction_error(x_hat, x), "code_l2": _code_penalty(z),
            "decoder_gp": penalty}


def two_stage_first(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    r"""First stage of the two-stage VAE: :math:`-\log p_\gamma(x\mid z) + \mathrm{KL}` with the
    Gaussian decoder's variance :math:`\gamma` learned (terms ``nll``, ``kl``; ``recon`` is
    logged for comparison with the other systems, at weight 0)."""
    mu, logvar = model.posterior(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    x_hat = model.decode(z)
    return {"recon": reconstruction_error(x_hat, x),
            "nll": _gaussian_nll(x_hat, x, model.log_gamma), "kl": _gaussian_kl(mu, logvar)}


def two_stage_second(model: nn.Module, posterior: torch.Tensor) -> dict[str, torch.Tensor]:
    r"""Second stage of the two-stage VAE: a VAE with a learned Gaussian decoder variance on
    first-stage codes :math:`z = \mu + \sigma\odot\varepsilon`, drawn afresh for every
    batch from the first stage's posteriors (``posterior`` is ``[μ | log σ²]``, B × 2d, as
    Dai & Wipf resample them). Terms ``nll`` and ``kl``; ``model`` is the
    :class:`~entropic_ae.models.conv.SecondStageVAE`."""
    if posterior.dim() != 2 or posterior.shape[1] != 2 * model.code_dim:
        raise ValueError(f"posterior must be [mu | logvar] of shape (B, {2 * model.code_dim}), "
                         f"got {tuple(posterior.shape)}")
    mu_z, logvar_z = posterior.chunk(2, dim=1)
    z = mu_z + torch.exp(0.5 * logvar_z) * torch.randn_like(mu_z)
    mu, logvar = model.posterior(z)
    u = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    return {"nll": _gaussian_nll(model.decode(u), z, model.log_gamma),
            "kl": _gaussian_kl(mu, logvar)}
