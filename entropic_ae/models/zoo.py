r"""The systems of the EAE paper's Table 1 on one backbone, by name, with their reference weights.

Every system is a model from :mod:`entropic_ae.models.conv` with a loss from
:mod:`entropic_ae.losses`. All losses use the per-image summed squared error
:math:`\frac1B\sum_i\lVert\hat x_i - x_i\rVert^2` (``recon``); the regularisers' weights are
those of each model's reference implementation, **converted to that scale** (see
:data:`REFERENCE_WEIGHTS` and :data:`SOURCES`). The conversions:

* Ghosh et al.'s RAE code (AE, AE-L2, RAE, RAE-L2, RAE-GP, RAE-SN) averages the squared error
  over the :math:`N` pixels (MNIST is padded to 32×32, :math:`N = 1024`; CIFAR-10
  :math:`N = 3072`; CelebA :math:`N = 12288`) and penalises :math:`\beta\,\frac1d\lVert z\rVert^2`:
  multiplying the loss by :math:`N` gives our ``code_l2`` (:math:`\frac12\lVert z\rVert^2`) the
  weight :math:`2N\beta/d`, the decoder L2 the weight :math:`N\lambda`, and the gradient
  penalty (averaged over the :math:`d` code dimensions there) :math:`N\lambda/d`.
* Their VAE and CV-VAE sum the error over the pixels (per channel): their KL weight carries
  over (divided by 3 for colour images).
* Tolstikhin et al.'s WAE uses :math:`0.05\cdot` the summed error (MNIST, images in [0, 1]):
  dividing by 0.05 turns their :math:`\lambda = 10` into 200.
* Dai & Wipf's two-stage VAE learns the decoder variance :math:`\gamma`, so it has no weight to
  convert; its second stage is a 3 × 1024 fully connected VAE, also with a learned
  :math:`\gamma`.
* The EAE's :math:`\beta` multiplies the entropy in nats next to the same summed error
  (the paper's Eq. 2): :math:`\beta = 1` on MNIST (its Figure 1).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from entropic_ae import losses
from entropic_ae.models.conv import ConvAutoencoder, ConvVAE, TwoStageVAE

__all__ = [
    "CONV_MODEL_NAMES",
    "PAPER_MODEL_NAMES",
    "PRIOR_MODELS",
    "REFERENCE_WEIGHTS",
    "SOURCES",
    "ConvGenerativeModel",
    "build_conv_model",
    "reference_weights",
    "settings_table",
]

#: The systems, in the order of the book's tables.
CONV_MODEL_NAMES: tuple[str, ...] = (
    "AE", "AE-L2", "BN-AE", "EAE", "EAE-MB", "VAE", "CV-VAE", "WAE-MMD", "2SVAE",
    "RAE", "RAE-L2", "RAE-GP", "RAE-SN",
)

#: The twelve systems of the paper's Table 1 (EAE-MB is the book's own).
PAPER_MODEL_NAMES: tuple[str, ...] = tuple(n for n in CONV_MODEL_NAMES if n != "EAE-MB")

#: Systems trained to make :math:`\mathcal N(0, I)` (or, for 2SVAE, its second stage's
#: prior) the distribution to sample from; the others need a density fitted to their codes.
PRIOR_MODELS: tuple[str, ...] = ("BN-AE", "EAE", "EAE-MB", "VAE", "CV-VAE", "WAE-MMD", "2SVAE")

#: The CV-VAE's fixed posterior standard deviation (Ghosh et al.'s ``constant_sigma``).
CV_VAE_SIGMA = 0.7

#: Loss weights per dataset and system, in the book's summed-squared-error scale.
REFERENCE_WEIGHTS: dict[str, dict[str, dict[str, float]]] = {
    "mnist": {
        "AE": {},
        "AE-L2": {"decoder_l2": 1.024e-4},
        "BN-AE": {},
        "EAE": {"neg_entropy": 1.0},
        "EAE-MB": {"neg_entropy": 1.0},
        "VAE": {"kl": 0.312},
        "CV-VAE": {"kl": 0.039},
        "WAE-MMD": {"mmd": 200.0},
        "2SVAE": {"recon": 0.0, "nll": 1.0, "kl": 1.0},
        "RAE": {"code_l2": 0.064},
        "RAE-L2": {"code_l2": 0.0128, "decoder_l2": 1.024e-4},
        "RAE-GP": {"code_l2": 0.0128, "decoder_gp": 3.2e-6},
        "RAE-SN": {"code_l2": 1.152},
    },
    "cifar10": {
        "AE": {},
        "AE-L2": {"decoder_l2": 3.072e-3},
        "BN-AE": {},
        "EAE": {"neg_entropy": 0.5},
        "EAE-MB": {"neg_entropy": 0.5},
        "VAE": {"kl": 0.072},
        "CV-VAE": {"kl": 2.7e-3},
        "WAE-MMD": {"mmd": 18.4},
        "2SVAE": {"recon": 0.0, "nll": 1.0, "kl": 1.0},
        "RAE": {"code_l2": 0.48},
        "RAE-L2": {"code_l2": 0.048, "decoder_l2": 3.072e-3},
        "RAE-GP": {"code_l2": 0.0432, "decoder_gp": 0.0},
        "RAE-SN": {"code_l2": 1.44},
    },
    "celeba": {
        "AE": {},
        "AE-L2": {"decoder_l2": 1.2288e-3},
        "BN-AE": {},
        "EAE": {"neg_entropy": 1.0},
        "EAE-MB": {"neg_entropy": 1.0},
        "VAE": {"kl": 0.271},
        "CV-VAE": {"kl": 0.03},
        "WAE-MMD": {"mmd": 500.0},
        "2SVAE": {"recon": 0.0, "nll": 1.0, "kl": 1.0},
        "RAE": {"code_l2": 0.0384},
        "RAE-L2": {"code_l2": 0.0384, "decoder_l2": 1.2288e-3},
        "RAE-GP": {"code_l2": 0.0384, "decoder_gp": 1.92e-5},
        "RAE-SN": {"code_l2": 0.9216},
    },
}
# Fashion-MNIST has no reference configuration anywhere; it is MNIST's size and range.
REFERENCE_WEIGHTS["fashion-mnist"] = REFERENCE_WEIGHTS["mnist"]

#: Where each system's weights come from, and how they were converted (MNIST).
SOURCES: dict[str, str] = {
    "AE": "Ghosh et al. (2019), RAE code, MNIST config 7: no regulariser",
    "AE-L2": "RAE code, config 24: L2 1e-7 on the decoder kernels, × N = 1024",
    "BN-AE": "the EAE without its entropy term (the EAE paper's ablation)",
    "EAE": "Ghose et al. (2020), Eq. 2 and Figure 1: β = 1 on the summed error",
    "EAE-MB": "this book: the EAE's β for the minibatch surrogate (also in nats)",
    "VAE": "RAE code, config 1: KL weight 0.312 on the summed error",
    "CV-VAE": "RAE code, config 2: σ₀ = 0.7, KL weight 0.039 on the summed error",
    "WAE-MMD": "Tolstikhin et al. (2018), MNIST: λ = 10 next to 0.05 × summed error → 200",
    "2SVAE": "Dai & Wipf (2019): learned decoder variance γ, second stage 3 × 1024",
    "RAE": "RAE code, config 6: β = 5e-4 on (1/d)‖z‖², × 1024 → 0.064 on ½‖z‖²",
    "RAE-L2": "RAE code, config 4: β = 1e-4 → 0.0128; L2 1e-7 → 1.024e-4",
    "RAE-GP": "RAE code, config 3: β = 1e-4 → 0.0128; penalty 5e-8 × 1024 / 16 = 3.2e-6",
    "RAE-SN": "RAE code, config 5: β = 0.009 → 1.152; spectral norm (decoder, as in the paper)",
}


def reference_weights(name: str, dataset: str = "mnist") -> dict[str, float]:
    """A copy of the converted reference weights of system ``name`` on ``dataset``."""
    if name not in CONV_MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(CONV_MODEL_NAMES)}")
    if dataset not in REFERENCE_WEIGHTS:
        raise ValueError(f"no reference weights for dataset {dataset!r}; known: "
                         f"{', '.join(REFERENCE_WEIGHTS)}")
    return dict(REFERENCE_WEIGHTS[dataset][name])


@dataclass
class ConvGenerativeModel:
    """A system of Table 1: a model with its loss.

    ``loss_fn(model, x)`` returns named, unweighted scalar terms; the objective is
    :math:`\\sum_t w_t \\cdot \\text{term}_t` with ``weights`` (missing names weigh 1), which is
    what :func:`entropic_ae.training.train` minimises. ``prior_sampling`` says whether the
    system is trained towards a fixed prior to sample from. ``second_stage`` is the loss of
    the two-stage VAE's second VAE (trained on the first stage's codes), else None.
    """

    name: str
    model: nn.Module
    loss_fn: losses.LossFn
    weights: dict[str, float]
    prior_sampling: bool
    second_stage: losses.LossFn | None = None


def _check_float_dict(weights: object) -> dict[str, float]:
    if not isinstance(weights, dict):
        raise TypeError(f"weights must be a dict of term name to float, got "
                        f"{type(weights).__name__}")
    return {str(k): float(v) for k, v in weights.items()}


def _loss(name: str, weights: dict[str, float], k: int) -> losses.LossFn:
    if name == "EAE":
        base = losses.eae_loss(k)
    elif name == "EAE-MB":
        base = losses.eae_mb_loss
    elif name == "CV-VAE":
        base = losses.cv_vae_loss(CV_VAE_SIGMA)
    else:
        base = {"AE": losses.ae_loss, "BN-AE": losses.ae_loss, "AE-L2": losses.ae_l2_loss,
                "VAE": losses.vae_loss, "WAE-MMD": losses.wae_loss,
                "2SVAE": losses.two_stage_first_loss, "RAE": losses.rae_loss,
                "RAE-SN": losses.rae_loss, "RAE-L2": losses.rae_l2_loss,
                "RAE-GP": losses.rae_gp_loss}[name]
    if "decoder_l2" in weights and name not in ("AE-L2", "RAE-L2"):
        return losses.with_decoder_l2(base)
    return base


def build_conv_model(name: str, image_shape: tuple[int, int, int] = (1, 28, 28),
                     latent_dim: int = 16, width: float = 1.0,
                     weights: dict[str, float] | None = None, k: int = 1,
                     dataset: str = "mnist", decoder_spectral_norm: bool | None = None,
                     ) -> ConvGenerativeModel:
    """One of :data:`CONV_MODEL_NAMES` on the backbone, with its loss and reference weights.

    * ``AE``: no bottleneck normalisation, reconstruction only (Ghosh et al.'s AE).
    * ``AE-L2``: as AE plus an L2 penalty on the decoder's weights (``decoder_l2``).
    * ``BN-AE``: bottleneck batch norm without affine parameters, reconstruction only.
    * ``EAE``: bottleneck batch norm, reconstruction − β·KL entropy (``neg_entropy``).
    * ``EAE-MB``: as EAE with the minibatch entropy surrogate in place of the KL estimate.
    * ``VAE``: Gaussian posterior, reconstruction + β·KL(q(z|x) ‖ N(0, I)) (``kl``).
    * ``CV-VAE``: z = E(x) + σ₀ε with σ₀ = 0.7, reconstruction + β·½‖E(x)‖² (``kl``).
    * ``WAE-MMD``: reconstruction + λ·MMD² to N(0, I), IMQ kernel (``mmd``).
    * ``2SVAE``: a VAE with learned decoder variance (terms ``nll``, ``kl``), then a second
      VAE on its codes (``second_stage``).
    * ``RAE``: reconstruction + β·½‖z‖² (``code_l2``); ``RAE-L2`` adds λ·‖θ_D‖²
      (``decoder_l2``), ``RAE-GP`` λ·‖∇_z‖D(z)‖²‖² (``decoder_gp``), ``RAE-SN`` spectrally
      normalises the decoder.

    ``weights`` overrides entries of :func:`reference_weights` ``(name, dataset)``; a
    ``decoder_l2`` weight may be added to any system (the paper's EAE on CIFAR-10).
    ``decoder_spectral_norm`` (default: only for RAE-SN) spectrally normalises the decoder
    (the paper's EAE on CelebA). ``k`` is the EAE estimator's neighbour.
    """
    if name not in CONV_MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(CONV_MODEL_NAMES)}")
    merged = reference_weights(name, dataset)
    if weights is not None:
        extra = _check_float_dict(weights)
        unknown = set(extra) - set(merged) - {"recon", "decoder_l2"}
        if unknown:
            raise ValueError(f"{name} has no loss term(s) {sorted(unknown)}; its terms are "
                             f"{['recon', *merged]} (and optionally 'decoder_l2')")
        merged.update(extra)
    spectral = name == "RAE-SN" if decoder_spectral_norm is None else bool(decoder_spectral_norm)
    if name == "VAE":
        model: nn.Module = ConvVAE(image_shape, latent_dim, width)
    elif name == "2SVAE":
        model = TwoStageVAE(image_shape, latent_dim, width)
    else:
        model = ConvAutoencoder(image_shape, latent_dim, width,
                                bottleneck_norm=name in ("BN-AE", "EAE", "EAE-MB"),
                                decoder_spectral_norm=spectral)
    return ConvGenerativeModel(
        name, model, _loss(name, merged, k), merged, prior_sampling=name in PRIOR_MODELS,
        second_stage=losses.two_stage_second_loss if name == "2SVAE" else None)


_BOTTLENECK = {"BN-AE": "batch norm", "EAE": "batch norm", "EAE-MB": "batch norm",
               "VAE": "z = μ + σ ⊙ ε",
               "CV-VAE": "z = E(x) + σ₀ ε", "2SVAE": "z = μ + σ ⊙ ε"}
_TERMS = {"decoder_l2": "λ‖W_D‖²", "neg_entropy": "−β Ĥ(z)", "kl": "β KL",
          "mmd": "λ MMD²(z, N(0, I))", "code_l2": "β ½‖z‖²", "decoder_gp": "λ ‖∇_z‖D(z)‖²‖²",
          "nll": "−log N(x; D(z), γI)"}


def settings_table(dataset: str = "mnist"):
    """The systems' settings as a table (pandas): bottleneck, regularisers with their weights
    in the book's scale, and where the weights come from (:data:`SOURCES`)."""
    import pandas as pd

    rows = []
    for name in CONV_MODEL_NAMES:
        weights = {k: v for k, v in reference_weights(name, dataset).items() if k != "recon"}
        if name == "2SVAE":
            terms = "learned γ; second VAE on the codes"
        elif name in ("EAE", "EAE-MB"):
            estimate = "Ĥ_KL(z)" if name == "EAE" else "S(z), the minibatch surrogate"
            terms = f"−β {estimate}: {weights['neg_entropy']:g}"
        elif not weights:
            terms = "none"
        else:
            terms = ", ".join(f"{_TERMS[k]}: {v:g}" for k, v in weights.items())
        rows.append({"model": name, "bottleneck": _BOTTLENECK.get(name, "linear"),
                     "regularisers (weight)": terms + (" + spectral norm of D"
                                                       if name == "RAE-SN" else ""),
                     "reference and conversion": SOURCES[name]})
    return pd.DataFrame(rows).set_index("model")
