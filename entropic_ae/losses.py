r"""Every training objective of the book, as named loss terms.

A *loss function* maps ``(model, x)`` to a dict of named, unweighted scalar terms;
:func:`entropic_ae.training.train` minimises :math:`\sum_t w_t\,\mathrm{term}_t` with the weights
it is given (missing names weigh 1). Keeping the terms apart lets the history log each of them.

Fully connected autoencoders (chapters 2 and 3):

* :func:`mse` — the mean squared error per pixel, :math:`\frac{1}{BP}\sum_i\lVert\hat x_i -
  x_i\rVert^2` (the first source document's ``nn.MSELoss``);
* :func:`compactifier_objective` — MSE and the entropy of one layer's neuron activity;
* :func:`path_entropy_objective` — MSE and the path entropy of the whole network;
* :func:`data_compactifier_objective` and :func:`data_path_entropy_objective` — the same two
  regularisers measured on the batch's activations, so that units that never fire count for
  nothing.

Convolutional autoencoders (chapter 4), all on the *per-image summed* squared error
:math:`\frac1B\sum_i\lVert\hat x_i - x_i\rVert^2` of the EAE paper's Eq. (2) (term ``recon``):
one function per model (``ae_loss``, ``eae_loss``, ``vae_loss``, ...);
:mod:`entropic_ae.models.zoo` pairs them with their models and weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from entropic_ae.compactifier import fused_data_compactifier_loss, fused_layer_compactifier_loss
from entropic_ae.estimators import kozachenko_leonenko, minibatch_entropy
from entropic_ae.paths import DataPathEntropyTerm, PathEntropyTerm

__all__ = [
    "LossFn",
    "ae_l2_loss",
    "ae_loss",
    "compactifier_objective",
    "cv_vae_loss",
    "data_compactifier_objective",
    "data_path_entropy_objective",
    "decoder_gradient_penalty",
    "decoder_l2",
    "decoupled",
    "eae_loss",
    "eae_mb_loss",
    "imq_mmd",
    "mse",
    "path_entropy_objective",
    "rae_gp_loss",
    "rae_l2_loss",
    "rae_loss",
    "reconstruction_error",
    "squared_weights",
    "two_stage_first_loss",
    "two_stage_second_loss",
    "vae_loss",
    "wae_loss",
    "with_decoder_l2",
]

LossFn = Callable[[nn.Module, torch.Tensor], dict[str, torch.Tensor]]


# --- Fully connected autoencoders ----------------------------------------------------------------


def mse(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    r"""``{"mse": mean((model(x) - x)²)}``, the mean over pixels and batch."""
    return {"mse": nn.functional.mse_loss(model(x), x)}


def compactifier_objective(layer: int, variant: str = "both",
                           alpha: float = 1.0) -> LossFn:
    r"""MSE and the compactifier penalty of hidden node layer ``layer`` of an MLP autoencoder:
    terms ``mse`` and ``entropy`` :math:`= H_\alpha(p)` of the activity ``variant``
    (:func:`entropic_ae.compactifier.fused_layer_compactifier_loss`).
    Weight them :math:`\lambda_1, \lambda_2` as in the source document."""

    def loss(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
        into, out_of = model.linears[layer - 1], model.linears[layer]
        return {"mse": nn.functional.mse_loss(model(x), x),
                "entropy": fused_layer_compactifier_loss(into, out_of, variant, alpha)}

    return loss


def _check_hidden_layer(layer: int) -> int:
    if isinstance(layer, bool) or not isinstance(layer, int):
        raise TypeError(f"layer must be an int (a hidden node layer), got {type(layer).__name__}")
    if layer < 1:
        raise ValueError(f"layer must be a hidden node layer index >= 1, got {layer}")
    return layer


def data_compactifier_objective(layer: int, alpha: float = 1.0) -> LossFn:
    r"""MSE and the data-dependent compactifier penalty of hidden node layer ``layer``.

    Terms ``mse`` (the mean per-pixel squared error, as :func:`mse`) and ``entropy``
    :math:`= H_\alpha(a / \sum a)` with :math:`a_j = \mathbb E_x|h_j(x)| \lVert
    W^{out}_{:,j}\rVert_1` over the batch
    (:func:`entropic_ae.compactifier.fused_data_compactifier_loss`), both from *one* forward
    pass, ``model.layer_outputs(x)``; ``model`` is an
    :class:`~entropic_ae.models.mlp.MLPAutoencoder`. The penalty adds a few reductions over the
    batch's B × n activations and a two-multiplication backward, about as much as the
    weight-only :func:`compactifier_objective`: measured at batch 128 on the
    784-64-16-16-16-64-784 network, Adam, one CPU thread (thread CPU time, interleaved steps),
    a step cost about 13 % more than a plain step (three runs: 12.9-13.8 %), against about 9 %
    for the weight-only fused penalty in the same runs (the extra: its gradient enters the
    step's backward pass through the activations).
    """
    layer = _check_hidden_layer(layer)

    def loss(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if not 1 <= layer < len(model.linears):
            raise ValueError(f"layer must be a hidden node layer in 1..{len(model.linears) - 1}"
                             f" of this model, got {layer}")
        outs = model.layer_outputs(x)
        return {"mse": nn.functional.mse_loss(outs[-1], outs[0]),
                "entropy": fused_data_compactifier_loss(outs[layer], model.linears[layer],
                                                        alpha)}

    return loss


def path_entropy_objective(term: PathEntropyTerm) -> LossFn:
    r"""MSE and the path entropy of the model's linear layers (terms ``mse``, ``path_entropy``),
    evaluated by the :class:`~entropic_ae.paths.PathEntropyTerm` ``term``."""

    def loss(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"mse": nn.functional.mse_loss(model(x), x), "path_entropy": term(model)}

    return loss


def data_path_entropy_objective(term: DataPathEntropyTerm) -> LossFn:
    r"""MSE and a batch-level entropy of the data-dependent path mass (terms ``mse`` and
    ``path_entropy``), evaluated by the :class:`~entropic_ae.paths.DataPathEntropyTerm` ``term``
    on the batch, with the ReLU gates of the same forward pass (``model.layer_outputs(x)``);
    ``model`` is an :class:`~entropic_ae.models.mlp.MLPAutoencoder`. One evaluation costs about
    a plain training step at batch 128; ``DataPathEntropyTerm(every=20)`` attached to the
    optimiser keeps the average overhead near 7 % (``every=10``: ~15 %), e.g.
    ``train(..., optimizer=lambda p: term.attach(torch.optim.Adam(p, lr)),
    callback=lambda epoch, history: term.reset())``."""
    if not isinstance(term, DataPathEntropyTerm):
        raise TypeError(f"term must be a DataPathEntropyTerm, got {type(term).__name__}")

    def loss(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
        outs = model.layer_outputs(x)
        return {"mse": nn.functional.mse_loss(outs[-1], outs[0]),
                "path_entropy": term(model, x, layer_outputs=outs)}

    return loss


def decoupled(loss_fn: LossFn, weights: dict[str, float], lr: float,
              keep: tuple[str, ...] = ("mse",)) -> tuple[LossFn, Callable]:
    r"""Apply every term of ``loss_fn`` except those in ``keep`` as a *decoupled* step.

    Returns ``(loss_fn', make_optimizer)``. ``loss_fn'`` returns the same terms, but the
    regularisers detached, so the optimiser's normalised step (Adam's
    :math:`\hat m / (\sqrt{\hat v} + \epsilon)`) sees only the kept terms; each call stores
    :math:`g = \sum_t w_t \nabla \mathrm{term}_t` of the others, and the optimiser built by
    ``make_optimizer(params)`` (Adam at ``lr``) then takes the plain gradient step
    :math:`\theta \leftarrow \theta - \eta\, g` after its own, as AdamW decouples weight
    decay from Adam. Under Adam a regulariser's step is about :math:`\eta` per parameter
    whatever its weight (the gradient is divided by its own running scale); decoupled, it is
    proportional to :math:`\eta\lambda`.
    """
    stored: dict[str, list[torch.Tensor] | None] = {"grads": None}
    params: list[nn.Parameter] = []

    def loss(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
        terms = loss_fn(model, x)
        regs = [(name, t) for name, t in terms.items() if name not in keep]
        if torch.is_grad_enabled() and regs:
            if not params:
                params.extend(p for p in model.parameters() if p.requires_grad)
            total = sum(weights.get(name, 1.0) * t for name, t in regs)
            grads = torch.autograd.grad(total, params, retain_graph=True, allow_unused=True)
            stored["grads"] = [torch.zeros_like(p) if g is None else g
                               for p, g in zip(params, grads, strict=True)]
        return {name: (t if name in keep else t.detach()) for name, t in terms.items()}

    def step_hook(optimizer: torch.optim.Optimizer, args: tuple, kwargs: dict) -> None:
        grads = stored["grads"]
        if grads is not None:
            with torch.no_grad():
                torch._foreach_add_(params, grads, alpha=-lr)
            stored["grads"] = None

    def make_optimizer(model_params: Any) -> torch.optim.Optimizer:
        optimizer = torch.optim.Adam(model_params, lr=lr)
        optimizer.register_step_post_hook(step_hook)
        return optimizer

    return loss, make_optimizer


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
    decoder = model.first.decoder if hasattr(model, "first") else model.decoder
    return squared_weights(decoder.body, (nn.Conv2d, nn.ConvTranspose2d))


def with_decoder_l2(loss_fn: LossFn) -> LossFn:
    """``loss_fn`` with the extra term ``decoder_l2`` (:func:`decoder_l2`), e.g. for the EAE
    with L2 regularisation that the paper trains on CIFAR-10."""

    def loss(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {**loss_fn(model, x), "decoder_l2": decoder_l2(model)}

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
    dims = x[0].numel()
    se = (x_hat - x).pow(2).flatten(1).sum(dim=1).mean()
    return 0.5 * se * torch.exp(-log_gamma) + 0.5 * dims * (log_gamma + math.log(2 * math.pi))


# --- The losses of the convolutional models ------------------------------------------------------


def ae_loss(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    r"""AE and BN-AE: ``{"recon": ...}``, the reconstruction error alone."""
    return {"recon": reconstruction_error(model(x), x)}


def ae_l2_loss(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    r"""AE-L2: ``recon`` and ``decoder_l2`` (:func:`decoder_l2`)."""
    return {"recon": reconstruction_error(model(x), x), "decoder_l2": decoder_l2(model)}


def eae_loss(k: int = 1) -> LossFn:
    r"""Loss of the entropic autoencoder, Eq. (2) of the paper:
    :math:`\frac1B\sum_i\lVert D(z_i) - x_i\rVert^2 - \beta \hat H(z_1, \dots, z_B)`, with
    :math:`z_i` the batch-normalised codes of the batch and :math:`\hat H` the
    Kozachenko–Leonenko estimate (k-th neighbour). Terms ``recon`` and
    ``neg_entropy`` :math:`= -\hat H` (weight it with :math:`\beta`)."""

    def loss(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
        z = model.encode(x)
        return {"recon": reconstruction_error(model.decode(z), x),
                "neg_entropy": -kozachenko_leonenko(z, k=k)}

    return loss


def eae_mb_loss(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    r"""EAE-MB, the EAE with the minibatch entropy surrogate in place of the Kozachenko–Leonenko
    estimate: :math:`\frac1B\sum_i\lVert D(z_i) - x_i\rVert^2 - \beta S(z_1, \dots, z_B)` with
    :math:`S` :func:`entropic_ae.estimators.minibatch_entropy` (a fresh random rotation from
    torch's global generator each step). Terms ``recon`` and ``neg_entropy`` :math:`= -S`."""
    z = model.encode(x)
    return {"recon": reconstruction_error(model.decode(z), x),
            "neg_entropy": -minibatch_entropy(z)}


def vae_loss(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    r"""VAE: ``recon`` of :math:`z = \mu + \sigma\odot\varepsilon` and ``kl``
    :math:`= \mathrm{KL}(q(z\mid x)\,\Vert\,\mathcal N(0, I))`, averaged over the batch."""
    mu, logvar = model.posterior(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    return {"recon": reconstruction_error(model.decode(z), x), "kl": _gaussian_kl(mu, logvar)}


def cv_vae_loss(sigma: float) -> LossFn:
    r"""The constant-variance VAE: :math:`z = E(x) + \sigma_0\varepsilon` during training,
    terms ``recon`` and ``kl`` :math:`= \frac1B\sum_i\tfrac12\lVert E(x_i)\rVert^2` (the KL
    divergence to :math:`\mathcal N(0, I)` of :math:`\mathcal N(E(x), \sigma_0^2 I)` up to a
    constant, since :math:`\sigma_0` is fixed)."""
    if isinstance(sigma, bool) or not isinstance(sigma, int | float) or not sigma > 0:
        raise ValueError(f"sigma must be a positive number, got {sigma!r}")

    def loss(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
        mu = model.encode(x)
        z = mu + sigma * torch.randn_like(mu)
        return {"recon": reconstruction_error(model.decode(z), x), "kl": _code_penalty(mu)}

    return loss


def wae_loss(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    r"""WAE-MMD: ``recon`` and ``mmd`` :math:`=\widehat{\mathrm{MMD}}^2` between the batch's codes
    and as many draws from :math:`\mathcal N(0, I)` (:func:`imq_mmd`)."""
    z = model.encode(x)
    return {"recon": reconstruction_error(model.decode(z), x),
            "mmd": imq_mmd(z, torch.randn_like(z))}


def rae_loss(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    r"""RAE: ``recon`` and ``code_l2`` :math:`= \frac1B\sum_i\frac12\lVert z_i\rVert^2`."""
    z = model.encode(x)
    return {"recon": reconstruction_error(model.decode(z), x), "code_l2": _code_penalty(z)}


def rae_l2_loss(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    r"""RAE-L2: ``recon``, ``code_l2`` and ``decoder_l2`` :math:`=\sum\lVert W_D\rVert^2` over the
    decoder's weights."""
    z = model.encode(x)
    return {"recon": reconstruction_error(model.decode(z), x), "code_l2": _code_penalty(z),
            "decoder_l2": decoder_l2(model)}


def rae_gp_loss(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    r"""RAE-GP: ``recon``, ``code_l2`` and ``decoder_gp`` (:func:`decoder_gradient_penalty`)."""
    z = model.encode(x)
    x_hat = model.decode(z)
    return {"recon": reconstruction_error(x_hat, x), "code_l2": _code_penalty(z),
            "decoder_gp": decoder_gradient_penalty(z, x_hat)}


def two_stage_first_loss(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    r"""First stage of the two-stage VAE: :math:`-\log p_\gamma(x\mid z) + \mathrm{KL}`, with the
    Gaussian decoder's variance :math:`\gamma` learned (terms ``nll``, ``kl``; ``recon`` is
    logged for comparison with the other models, at weight 0)."""
    first = model.first
    mu, logvar = first.posterior(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    x_hat = first.decode(z)
    return {"recon": reconstruction_error(x_hat, x),
            "nll": _gaussian_nll(x_hat, x, first.log_gamma), "kl": _gaussian_kl(mu, logvar)}


def two_stage_second_loss(model: nn.Module, posterior: torch.Tensor) -> dict[str, torch.Tensor]:
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
