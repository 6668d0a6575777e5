r"""Every system the book trains, one record each: what it minimises, with which weights and
from which reference, its bottleneck, how it is sampled, and how it is built.

``SYSTEMS[name]`` is a :class:`System`; ``RunConfig.model`` names one. A system's objective
is its loss function from :mod:`entropic_ae.losses` (the mathematics) with the weights of its
record (the numbers and their sources), plus, for some chapter-2/3 systems, a regulariser that
acts around the optimiser step (:class:`entropic_ae.training.Regulariser`). So "what does X
minimise, with which β, from which reference?" is answered by ``SYSTEMS["X"]`` here and the
function it names in ``losses``.

Conversions of the chapter-4 weights to the book's per-image *summed* squared error (the EAE
paper's Eq. 2):

* Ghosh et al.'s RAE code (AE, AE-L2, RAE, RAE-L2, RAE-GP, RAE-SN) averages the squared error
  over the :math:`N` pixels (MNIST padded to 32×32: :math:`N = 1024`; CIFAR-10 3072; CelebA
  12288) and penalises :math:`\beta\frac1d\lVert z\rVert^2`: multiplying the loss by :math:`N`
  gives ``code_l2`` (:math:`\frac12\lVert z\rVert^2`) the weight :math:`2N\beta/d`, the decoder
  L2 the weight :math:`N\lambda`, and the gradient penalty (averaged over the :math:`d` code
  dimensions there) :math:`N\lambda/d`.
* Their VAE and CV-VAE sum the error over the pixels (per channel): their KL weight carries
  over (divided by 3 for colour images).
* Tolstikhin et al.'s WAE uses :math:`0.05\cdot` the summed error on MNIST: dividing by 0.05
  turns their :math:`\lambda = 10` into 200.
* Dai & Wipf's two-stage VAE learns the decoder variance :math:`\gamma`: no weight to convert.
* The EAE's :math:`\beta` multiplies the entropy in nats next to the same summed error
  (the paper's Eq. 2): :math:`\beta = 1` on MNIST (its Figure 1).

Fashion-MNIST has no reference configuration anywhere: it takes MNIST's weights (same size and
range). "Reference settings" in the book means these loss weights; the optimisation (epochs,
learning rate, schedule) is the book's one stated policy for every system (chapter 4).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple

from torch import nn

from entropic_ae import losses
from entropic_ae.models.conv import ConvAutoencoder, ConvVAE

if TYPE_CHECKING:
    from entropic_ae.experiments.config import RunConfig

__all__ = ["CONV", "MLP", "SYSTEMS", "Objective", "System", "Weight", "settings_table"]


@dataclass(frozen=True)
class Weight:
    """A loss weight and where it comes from (reference and conversion)."""

    value: float
    source: str


class Objective(NamedTuple):
    """What :func:`entropic_ae.training.train` minimises for one config: the loss function
    ``loss(model, x)``, the term weights (missing terms weigh 1), the regularisers and, where
    parameter groups need their own settings, ``param_groups(model, lr)``."""

    loss: Callable[..., dict]
    weights: dict[str, float]
    regularisers: list
    param_groups: Callable[[nn.Module, float], list] | None = None


@dataclass(frozen=True)
class System:
    """One system (see the module docstring).

    ``loss`` is a function of :mod:`entropic_ae.losses` called with ``loss_params``;
    ``weights[dataset][term]`` its reference weights (``"*"``: every dataset), overridable per
    run with the option ``weights``; ``build(config, image_shape)`` makes the untrained model.
    ``sampler``: ``"prior"`` (trained towards :math:`\\mathcal N(0, I)`), ``"two-stage"`` (a
    second VAE fitted to the codes) or ``"fitted"`` (only a density fitted to the codes after
    training). Chapter-2/3 systems take their weights and regularisers from the run's options
    through ``objective_from``.
    """

    name: str
    family: str
    summary: str
    loss: Callable[..., dict]
    build: Callable[..., nn.Module]
    weights: Mapping[str, Mapping[str, Weight]] = field(default_factory=dict)
    loss_params: Mapping[str, Any] = field(default_factory=dict)
    bottleneck: str = "linear"
    sampler: str = "fitted"
    objective_from: Callable[[RunConfig], Objective] | None = None

    def _weights_on(self, dataset: str) -> Mapping[str, Weight]:
        return self.weights.get(dataset) or self.weights.get(
            "mnist" if dataset == "fashion-mnist" else "", None) or self.weights.get("*", {})

    def reference_weights(self, dataset: str) -> dict[str, float]:
        """The reference weights on ``dataset`` (Fashion-MNIST: MNIST's)."""
        return {term: w.value for term, w in self._weights_on(dataset).items()}

    def objective(self, config: RunConfig) -> Objective:
        """The loss, weights and regularisers that train ``config``."""
        if self.objective_from is not None:
            return self.objective_from(config)
        weights = self.reference_weights(config.dataset)
        loss = partial(self.loss, **self.loss_params) if self.loss_params else self.loss
        overrides = dict(config.options.weights)
        unknown = set(overrides) - set(weights) - {"recon", "decoder_l2"}
        if unknown:
            raise ValueError(f"{self.name} has no loss term(s) {sorted(unknown)}; its weighted "
                             f"terms are {['recon', *weights]} (and optionally 'decoder_l2')")
        if overrides.get("decoder_l2") and "decoder_l2" not in weights:
            loss = losses.with_decoder_l2(loss)
        weights.update(overrides)
        return Objective(loss, weights, [])


# --- Chapter 4: the systems of the EAE paper's Table 1 on one backbone -------------------------

def _conv(bottleneck_norm: bool, spectral_norm: bool = False) -> Callable[..., nn.Module]:
    def build(config: RunConfig, image_shape: tuple[int, int, int]) -> nn.Module:
        sn = config.options.spectral_norm
        return ConvAutoencoder(image_shape, config.options.latent_dim, config.options.width,
                               bottleneck_norm=bottleneck_norm,
                               decoder_spectral_norm=spectral_norm if sn is None else sn)
    return build


def _vae(learn_gamma: bool) -> Callable[..., nn.Module]:
    def build(config: RunConfig, image_shape: tuple[int, int, int]) -> nn.Module:
        return ConvVAE(image_shape, config.options.latent_dim, config.options.width,
                       learn_gamma=learn_gamma)
    return build


RAE_CODE = "Ghosh et al. (2019), RAE code"
_EAE_SOURCE = "Ghose et al. (2020), Eq. 2 and Figure 1: β = 1 on the summed error"
_MB_SOURCE = "this book: the EAE's β (also in nats)"


def _per_dataset(**terms: tuple[float, float, float, str]) -> dict[str, dict[str, Weight]]:
    """``term=(MNIST, CIFAR-10, CelebA, source)`` → ``{dataset: {term: Weight}}``."""
    return {dataset: {term: Weight(w[i], w[3]) for term, w in terms.items()}
            for i, dataset in enumerate(("mnist", "cifar10", "celeba"))}


_DECODER_L2 = (1.024e-4, 3.072e-3, 1.2288e-3, f"{RAE_CODE}: L2 1e-7 on the decoder kernels, × N")

CONV: dict[str, System] = {s.name: s for s in [
    System("AE", "conv", "reconstruction only", losses.ae, _conv(False), _per_dataset()),
    System("AE-L2", "conv", "reconstruction + λ‖W_D‖²", losses.ae_l2, _conv(False),
           _per_dataset(decoder_l2=_DECODER_L2)),
    System("BN-AE", "conv", "reconstruction only, batch-normalised codes", losses.ae,
           _conv(True), _per_dataset(), bottleneck="batch norm", sampler="prior"),
    System("EAE", "conv", "reconstruction − β · Kozachenko–Leonenko entropy of the batch's codes",
           losses.eae, _conv(True),
           _per_dataset(neg_entropy=(1.0, 0.5, 1.0, f"{_EAE_SOURCE} (CIFAR-10 0.5, CelebA 1: "
                                                    "its section 5)")),
           loss_params={"k": 1}, bottleneck="batch norm", sampler="prior"),
    System("BN-AE+logdet", "conv", "reconstruction − β · ½ log det of the codes' correlation "
           "(the EAE's term reduced to decorrelation)", losses.bn_decorrelation, _conv(True),
           _per_dataset(neg_logdet=(1.0, 0.5, 1.0, "this book: the EAE's β")),
           bottleneck="batch norm", sampler="prior"),
    System("EAE-MB", "conv", "reconstruction − β · the book's minibatch entropy surrogate",
           losses.eae_mb, _conv(True), _per_dataset(neg_entropy=(1.0, 0.5, 1.0, _MB_SOURCE)),
           bottleneck="batch norm", sampler="prior"),
    System("EAE-MB8", "conv", "reconstruction − β · the minibatch surrogate with m = 8 spacings",
           losses.eae_mb, _conv(True), _per_dataset(neg_entropy=(1.0, 0.5, 1.0, _MB_SOURCE)),
           loss_params={"m": 8}, bottleneck="batch norm", sampler="prior"),
    System("EAE-SW", "conv", "reconstruction + β · d · mean sliced W₂² of the codes to N(0, 1) "
           "over the axes and 64 random directions", losses.eae_sw, _conv(True),
           _per_dataset(neg_entropy=(10.0, 10.0, 10.0, "this book: its Gaussian-to-uniform gap "
                                     "is about 12× the surrogate's at d = 16; chapter 5 sweeps β")),
           bottleneck="batch norm", sampler="prior"),
    System("VAE", "conv", "reconstruction of z = μ + σε + β · KL(q(z|x) ‖ N(0, I))", losses.vae,
           _vae(False),
           _per_dataset(kl=(0.312, 0.072, 0.271, f"{RAE_CODE}: KL weight on the summed error")),
           bottleneck="z = μ + σ ⊙ ε", sampler="prior"),
    System("CV-VAE", "conv", "reconstruction of z = E(x) + σ₀ε + β · ½‖E(x)‖², σ₀ = 0.7",
           losses.cv_vae, _conv(False),
           _per_dataset(kl=(0.039, 2.7e-3, 0.03, f"{RAE_CODE}: constant_sigma 0.7, KL weight")),
           loss_params={"sigma": 0.7}, bottleneck="z = E(x) + σ₀ ε", sampler="prior"),
    System("WAE-MMD", "conv", "reconstruction + λ · MMD²(codes, N(0, I)), IMQ kernel",
           losses.wae, _conv(False),
           _per_dataset(mmd=(200.0, 18.4, 500.0, "Tolstikhin et al. (2018): λ next to 0.05 × "
                                                 "summed error → λ / 0.05")),
           sampler="prior"),
    System("2SVAE", "conv", "−log N(x; D(z), γI) + KL with learned γ; a second VAE on the codes",
           losses.two_stage_first, _vae(True),
           {"*": {"recon": Weight(0.0, "logged only"),
                  "nll": Weight(1.0, "Dai & Wipf (2019): learned decoder variance γ"),
                  "kl": Weight(1.0, "Dai & Wipf (2019)")}},
           bottleneck="z = μ + σ ⊙ ε", sampler="two-stage"),
    System("RAE", "conv", "reconstruction + β · ½‖z‖²", losses.rae, _conv(False),
           _per_dataset(code_l2=(0.064, 0.48, 0.0384, f"{RAE_CODE}: β on (1/d)‖z‖², × 2N/d"))),
    System("RAE-L2", "conv", "reconstruction + β · ½‖z‖² + λ‖W_D‖²", losses.rae_l2,
           _conv(False), _per_dataset(code_l2=(0.0128, 0.048, 0.0384, f"{RAE_CODE}: β × 2N/d"),
                                      decoder_l2=_DECODER_L2)),
    System("RAE-GP", "conv", "reconstruction + β · ½‖z‖² + λ‖∇_z‖D(z)‖²‖²", losses.rae_gp,
           _conv(False), _per_dataset(code_l2=(0.0128, 0.0432, 0.0384, f"{RAE_CODE}: β × 2N/d"),
                                      decoder_gp=(3.2e-6, 0.0, 1.92e-5,
                                                  f"{RAE_CODE}: penalty × N/d"))),
    System("RAE-SN", "conv", "reconstruction + β · ½‖z‖², spectrally normalised decoder",
           losses.rae, _conv(False, spectral_norm=True),
           _per_dataset(code_l2=(1.152, 1.44, 0.9216, f"{RAE_CODE}: β × 2N/d; spectral norm "
                                                      "of the decoder"))),
]}

#: The systems of the paper's Table 1 (BN-AE is its section 5.2's ablation).
PAPER_TABLE = ("AE", "AE-L2", "VAE", "CV-VAE", "WAE-MMD", "2SVAE", "RAE", "RAE-L2", "RAE-GP",
               "RAE-SN", "EAE")

# --- Chapters 2 and 3: fully connected autoencoders ----------------------------------------------


def _mlp_build(config: RunConfig, image_shape: tuple[int, ...]) -> nn.Module:
    from entropic_ae.models.mlp import MLPAutoencoder
    from entropic_ae.width_learning import HardConcreteGate, NestedDropout

    o = config.options
    gates = None
    if config.model in ("l0", "nested-dropout"):
        width = o.layer_sizes[_layer(config)]
        gates = {o.layer: HardConcreteGate(width, init_log_alpha=o.init_log_alpha)
                 if config.model == "l0" else NestedDropout(width, o.nested_p)}
    return MLPAutoencoder(list(o.layer_sizes), image_shape=image_shape,
                          linear_layers=list(o.linear_layers), gates=gates)


def _plain(config: RunConfig) -> Objective:
    return Objective(losses.mse, {"mse": config.options.w_mse}, [])


def _layer(config: RunConfig) -> int:
    if config.options.layer is None:
        raise ValueError(f"{config.model} needs the option layer (the regularised hidden layer)")
    return config.options.layer


def _entropy_objective(loss: Callable[..., dict], config: RunConfig, **params: Any) -> Objective:
    """MSE + λ₂ · an entropy term, inside the optimiser's step or as a decoupled step."""
    o = config.options
    full = partial(loss, **params)
    if not o.decoupled:
        return Objective(full, {"mse": o.w_mse, "entropy": o.w_reg}, [])
    from entropic_ae.paths import Decoupled

    term = Decoupled(lambda model, x: full(model, x)["entropy"], o.w_reg, name="entropy")
    return Objective(losses.mse, {"mse": o.w_mse}, [term])


def _compactifier(config: RunConfig) -> Objective:
    o = config.options
    return _entropy_objective(losses.compactifier, config, layer=_layer(config),
                              variant=o.variant, alpha=o.alpha)


def _data_compactifier(config: RunConfig) -> Objective:
    return _entropy_objective(losses.data_compactifier, config, layer=_layer(config),
                              alpha=config.options.alpha)


def _path(config: RunConfig) -> Objective:
    from entropic_ae.paths import PathEntropyTerm

    o = config.options
    term = PathEntropyTerm(weight=o.w_reg, every=o.path_every, alpha=o.alpha, mode=o.path_mode,
                           decoupled=o.decoupled)
    return Objective(losses.mse, {"mse": o.w_mse}, [term])


def _path_data(config: RunConfig) -> Objective:
    from entropic_ae.paths import Annealed, DataPathEntropyTerm

    o = config.options
    tau = o.tau if o.tau_end is None else Annealed(o.tau, o.tau_end, o.tau_steps)
    term = DataPathEntropyTerm(weight=o.w_reg, every=o.path_every, alpha=o.alpha,
                               mode=o.path_mode, decoupled=o.decoupled,
                               objective=o.path_objective, tau=tau, measure=o.path_measure,
                               normalize=o.path_normalize,
                               layers=None if o.path_layers is None else list(o.path_layers))
    return Objective(losses.mse, {"mse": o.w_mse}, [term])


def _l0(config: RunConfig) -> Objective:
    from entropic_ae.width_learning import param_groups

    o = config.options
    return Objective(losses.gated, {"mse": o.w_mse, "l0": o.w_reg}, [],
                     partial(param_groups, gate_lr=o.gate_lr))


def _group_lasso(config: RunConfig) -> Objective:
    from entropic_ae.width_learning import GroupLassoProx

    o = config.options
    return Objective(losses.mse, {"mse": o.w_mse}, [GroupLassoProx(_layer(config), o.w_reg)])


MLP: dict[str, System] = {s.name: s for s in [
    System("plain", "mlp", "mean squared error per pixel (λ₁ · MSE)", losses.mse, _mlp_build,
           objective_from=_plain),
    System("compactifier", "mlp", "λ₁ · MSE + λ₂ · H_α of one layer's weight activity "
           "(the first document's entropic compactifier)", losses.compactifier, _mlp_build,
           objective_from=_compactifier),
    System("compactifier-data", "mlp", "λ₁ · MSE + λ₂ · H_α of one layer's data-dependent "
           "activity E|h_j| ‖W_out[:, j]‖₁", losses.data_compactifier, _mlp_build,
           objective_from=_data_compactifier),
    System("path", "mlp", "λ₁ · MSE + λ₂ · the entropy of the weight path distribution "
           "(the first document's path entropy), every k steps", losses.mse, _mlp_build,
           objective_from=_path),
    System("path-data", "mlp", "λ₁ · MSE + λ₂ · a batch-level entropy of the data-dependent "
           "path mass, every k steps", losses.mse, _mlp_build, objective_from=_path_data),
    System("l0", "mlp", "λ₁ · MSE + λ₂ · expected number of open hard-concrete gates on one "
           "layer (Louizos et al. 2018)", losses.gated, _mlp_build, objective_from=_l0,
           bottleneck="hard-concrete gates"),
    System("group-lasso", "mlp", "λ₁ · MSE, with proximal steps of λ₂ · Σ_units ‖w_unit‖₂ on "
           "one layer's units (incoming row, bias, outgoing column)", losses.mse, _mlp_build,
           objective_from=_group_lasso),
    System("nested-dropout", "mlp", "λ₁ · MSE with nested dropout on one layer: units beyond a "
           "geometric cut are zeroed (Rippel et al. 2014)", losses.mse, _mlp_build,
           objective_from=_plain, bottleneck="nested dropout"),
]}

TOY: dict[str, System] = {"lin": System(
    "lin", "toy", "mean squared error of a linear autoencoder on synthetic data", losses.mse,
    lambda config, shape: nn.Sequential(nn.Linear(config.options.dim, config.options.latent),
                                        nn.Linear(config.options.latent, config.options.dim)),
    objective_from=lambda config: Objective(losses.mse, {}, []))}

#: Every system by name.
SYSTEMS: dict[str, System] = {**CONV, **MLP, **TOY}


def settings_table(dataset: str = "mnist", names: tuple[str, ...] | None = None) -> Any:
    """The chapter-4 systems' settings as a table (pandas): bottleneck, what each minimises,
    its weights on ``dataset`` and where they come from."""
    import pandas as pd

    rows = []
    for name in names or tuple(CONV):
        s = CONV[name]
        table = s._weights_on(dataset)
        rows.append({"model": name, "bottleneck": s.bottleneck, "minimises": s.summary,
                     "weights": ", ".join(f"{k} {w.value:g}" for k, w in table.items()
                                          if w.value) or "–",
                     "source": "; ".join(dict.fromkeys(w.source for w in table.values()))
                     or "–"})
    return pd.DataFrame(rows).set_index("model")
