r"""Bottleneck objectives built from the data-dependent path mass or the layers' activations.

*Which batch-level quantity?* The per-input path distributions of
:mod:`~entropic_ae.paths.data` average to :math:`\bar P = \frac1B \sum_x p_x`, a mixture of Markov
chains and not itself one, so :math:`H(\bar P)` has no dynamic programme; but its node marginals
:math:`\bar m_l` and pair marginals (edge flows) :math:`\bar F_l` are batch averages of DP
quantities. The candidates are the objectives of :func:`data_path_objective`: the entropy of the
Markov chain :math:`Q` with these pair marginals, :math:`H(Q) \ge H(\bar P)`, and the sum of the
hidden layers' :math:`H(\bar m_l)` push *every* layer to narrow (the chain also the input and
output); the soft minimum pushes the layer that is already narrowest and leaves the others free:
"one bottleneck somewhere", with the network choosing where (the default).

*Why not the per-input entropy* :math:`\frac1B\sum_x H(p_x)`
(:func:`~entropic_ae.paths.data_path_example_entropy`)? It equals :math:`H(\bar P) - I(X;
\Gamma)`, the mutual information between the input and its path; per layer
:math:`\frac1B\sum_x H(m_{x,l}) = H(\bar m_l) - I(X; I_l)`. It is small when each input uses few
paths, *whichever* they are: a sparse code in which every input switches on a different unit of a
16-wide layer has per-input node entropy 0 while the batch uses all 16 units (:math:`H(\bar m_l) =
\log 16`). ReLU gates make such per-input sparsity cheap, so this target rewards it instead of a
bottleneck shared by all inputs.

Variants of the soft minimum (options of :func:`data_path_objective`):

* ``normalize=True`` divides each layer's entropy by :math:`\log n_l` before the minimum, so a
  64-wide layer spread over 8 units (0.5) counts as narrower than a 16-wide layer spread over 8
  (0.75): the soft minimum compares *fractions* of the widths, not numbers of units; ``tau`` is
  then a fraction too;
* ``measure="singular"`` or ``"variance"`` replaces the path-mass entropy by the log of the
  effective rank of the gain-weighted activations (:func:`layer_signals`). The weighting makes it
  invariant to every rescaling of ReLU units that leaves the function unchanged: rescaling
  unit :math:`j` of layer :math:`l` by :math:`c` multiplies :math:`h_j` by :math:`c` and
  :math:`t_l(j)` by :math:`1/c`, and rescaling a later unit changes no :math:`t_l`. Raw
  activations (``gain=False``) can be gamed: shrink all units but one and enlarge their
  out-weights. The rank counts *linear* dimensions: a layer holding a :math:`k`-dimensional
  code linearly has rank :math:`k`, a layer holding a curved (nonlinear) image of it more;
* an annealed temperature: :class:`Annealed` is a schedule :math:`\tau(s)` over training steps
  for the regularisers of :mod:`~entropic_ae.paths.terms` (start wide, near a sum that presses
  every layer, so that the layer that narrows most cheaply can win; end sharp, a minimum that
  releases the others).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from entropic_ae._checks import check_int, check_real
from entropic_ae.compactifier import SPECTRA, spectrum_entropy
from entropic_ae.paths.data import (
    check_layers,
    data_path_chain_entropy,
    data_path_example_entropy,
    node_entropies,
    prepare_data,
)
from entropic_ae.paths.network import SHANNON_TOL, Tensor, cast, check_alpha, check_base, to_base

__all__ = ["DATA_OBJECTIVES", "MEASURES", "Annealed", "data_layer_measures", "data_path_objective",
           "layer_signals"]

#: The batch-level objectives of :func:`data_path_objective`.
DATA_OBJECTIVES = ("softmin", "sum", "chain", "example")
#: The per-layer width measures: path-mass entropy, or a spectrum of the (gain-weighted)
#: activations (:data:`entropic_ae.compactifier.SPECTRA`).
MEASURES = ("path", *SPECTRA)


def check_tau(tau: float) -> float:
    """A finite positive temperature."""
    return check_real("tau", tau, gt=0)


@dataclass(frozen=True)
class Annealed:
    r"""A temperature schedule over training steps, geometric from ``start`` to ``end``:

    .. math:: \tau(s) = \tau_0\,(\tau_1/\tau_0)^{\min(s/S,\,1)},

    :math:`\tau_0` = ``start``, :math:`\tau_1` = ``end``, :math:`S` = ``steps``; constant
    :math:`\tau_1` after step :math:`S`. Call it with the (global) step number."""

    start: float
    end: float
    steps: int

    def __post_init__(self) -> None:
        check_tau(self.start)
        check_tau(self.end)
        check_int("steps", self.steps, 1)

    def __call__(self, step: int) -> float:
        step = check_int("step", step, 0)
        return self.start * (self.end / self.start) ** min(step / self.steps, 1.0)


def _softmin(h: Tensor, tau: float) -> Tensor:
    return -tau * (torch.logsumexp(-h / tau, 0) - math.log(h.numel()))


def _gains(ws: list[Tensor], gates: list[Tensor], dtype: torch.dtype) -> list[Tensor]:
    """Gated l1 gains t_l (B x n_l, or 1 x n_{L-1}) of the hidden layers 1..L-1, each divided
    by its (detached) largest entry: t_{L-1} = 1^T |W_L|, t_{l-1} = (g_l t_l) |W_l|."""
    device = ws[0].device
    t = cast(ws[-1], dtype, device).abs().sum(0, keepdim=True)
    out = [t / t.detach().amax().clamp_min(torch.finfo(dtype).tiny)]
    for l in range(len(ws) - 1, 1, -1):
        t = (cast(gates[l - 1], dtype, device) * out[0]) @ cast(ws[l - 1], dtype, device).abs()
        out.insert(0, t / t.detach().amax().clamp_min(torch.finfo(dtype).tiny))
    return out


def layer_signals(weights: Sequence[Tensor], biases: Sequence[Tensor | None] | None, x: Tensor,
                  gates: Sequence[Tensor] | None = None, *, gain: bool = True) -> list[Tensor]:
    r"""Activations of the hidden layers ``1..L-1`` on the batch ``x``, weighted by their gains:
    :math:`u_{x,l}(j) = h_{x,l}(j)\, t_{x,l}(j) / \max t_l`.

    :math:`h_l = g_l \odot (W_l h_{l-1} + b_l)` with the ``gates`` (default the ReLU gates of
    ``x``, so that :math:`h_l` is the ReLU network's activation), :math:`h_0 = x`;
    :math:`t_{x,l}` is the gated backward sum of :mod:`~entropic_ae.paths.data` (the
    :math:`\ell_1` gain of the paths from unit :math:`j` to the output), divided by its largest
    entry in the batch (one factor per layer, which no normalised spectrum sees).
    ``gain=False`` returns :math:`h_l`. Differentiable in the weights and biases; a list of
    B × n_l tensors."""
    ws, bs, xs, gs = prepare_data(weights, biases, x, gates)
    if len(ws) < 2:
        raise ValueError("the network has no hidden layer")
    dtype = torch.promote_types(ws[0].dtype, xs.dtype)
    h, out = cast(xs, dtype, ws[0].device), []
    for w, b, g in zip(ws[:-1], bs[:-1], gs, strict=True):
        pre = h @ cast(w, dtype, w.device).T
        if b is not None:
            pre = pre + cast(b, dtype, b.device)
        h = torch.where(g, pre, 0.0)
        out.append(h)
    if not gain:
        return out
    return [h * t for h, t in zip(out, _gains(ws, gs, dtype), strict=True)]


def data_layer_measures(
    weights: Sequence[Tensor],
    biases: Sequence[Tensor | None] | None,
    x: Tensor,
    gates: Sequence[Tensor] | None = None,
    *,
    measure: str = "path",
    alpha: float = 1.0,
    layers: Sequence[int] | None = None,
    normalize: bool = False,
    bias_paths: bool = True,
    gain: bool = True,
) -> Tensor:
    r"""One width measure per hidden layer in ``layers`` (default all), in nats:

    * ``"path"``: :math:`H_\alpha(\bar m_l)` of :func:`~entropic_ae.paths.data_node_entropies`;
    * ``"singular"`` / ``"variance"``: :func:`entropic_ae.compactifier.spectrum_entropy` of the
      gain-weighted activations :func:`layer_signals` (``gain``), i.e. the log of their
      effective rank (``"variance"`` with ``alpha=2``: of their participation ratio).

    ``normalize=True`` divides each by :math:`\log n_l` (a layer of width 1 gives 0).
    :math:`e^{\text{measure}}` is a number of units (path) or of directions (spectra)."""
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}")
    if not isinstance(normalize, bool):
        raise TypeError(f"normalize must be True or False, got {type(normalize).__name__}")
    ws, bs, xs, gs = prepare_data(weights, biases, x, gates)
    alpha = check_alpha(alpha)
    layers = check_layers(layers, len(ws))
    if measure == "path":
        h = node_entropies(ws, bs, xs, gs, layers, alpha, bias_paths)
    else:
        signals = layer_signals(ws, bs, xs, gs, gain=gain)
        h = torch.stack([spectrum_entropy(signals[l - 1], alpha, measure) for l in layers])
        if not bool(torch.isfinite(h.detach()).all()):
            raise ValueError("the spectrum entropies are not finite; check the weights")
    if normalize:
        logs = [math.log(ws[l - 1].shape[0]) for l in layers]
        h = h / h.new_tensor([v if v > 0 else 1.0 for v in logs])
    return h


def check_whole_network(objective: str, alpha: float, layers: Sequence[int] | None,
                        measure: str, normalize: bool) -> None:
    """``ValueError`` when ``"chain"`` or ``"example"`` gets options other than their own."""
    if objective not in ("chain", "example"):
        return
    if abs(alpha - 1.0) >= SHANNON_TOL:
        raise ValueError(f"objective {objective!r} is a Shannon entropy: alpha must be 1, "
                         f"got {alpha}")
    if layers is not None or measure != "path" or normalize:
        raise ValueError(f"objective {objective!r} is an entropy of whole paths through the whole "
                         "network: layers must be None, measure 'path' and normalize False, got "
                         f"layers={layers!r}, measure={measure!r}, normalize={normalize!r}")


def data_path_objective(
    weights: Sequence[Tensor],
    biases: Sequence[Tensor | None] | None,
    x: Tensor,
    gates: Sequence[Tensor] | None = None,
    *,
    objective: str = "softmin",
    alpha: float = 1.0,
    tau: float = 0.5,
    layers: Sequence[int] | None = None,
    bias_paths: bool = True,
    base: float | None = None,
    measure: str = "path",
    normalize: bool = False,
    gain: bool = True,
) -> Tensor:
    r"""A batch-level bottleneck objective, to be minimised (nats or ``base``).

    With :math:`H_l` the :func:`data_layer_measures` (``measure``, ``alpha``, ``normalize``,
    ``gain``) of the hidden ``layers`` (:math:`K` of them; default the path-mass entropy
    :math:`H_\alpha(\bar m_l)`):

    - ``"softmin"``: :math:`-\tau \log \frac1K \sum_l e^{-H_l/\tau}`, between
      :math:`\min_l H_l` and :math:`\min_l H_l + \tau \log K`. Its gradient is
      :math:`\sum_l \mathrm{softmax}(-H/\tau)_l \nabla H_l`: it pushes the currently narrowest
      layer, so *one* shared bottleneck forms, wherever the reconstruction allows it, and the
      other layers are free to stay wide. ``tau`` (in the units of :math:`H`) sets how sharply
      one layer is chosen.
    - ``"sum"``: :math:`\sum_l H_l`, narrows every layer at once.
    - ``"chain"``: :func:`~entropic_ae.paths.data_path_chain_entropy` (Shannon), by the chain
      rule :math:`H(\bar m_0) + \sum_l H(I_l \mid I_{l-1})` under :math:`Q`, which is at least
      :math:`H(\bar m_l)` for every :math:`l`, so like the weight-only path entropy it rewards
      narrowing *every* layer, including how many pixels are read and written.
    - ``"example"``: :func:`~entropic_ae.paths.data_path_example_entropy`, the mean per-input
      entropy; it rewards per-input sparsity, not a shared bottleneck (Shannon).

    ``"chain"`` and ``"example"`` take the whole network (``layers=None``, ``measure="path"``,
    ``normalize=False``, ``alpha=1``).
    """
    if objective not in DATA_OBJECTIVES:
        raise ValueError(f"objective must be one of {DATA_OBJECTIVES}, got {objective!r}")
    alpha = check_alpha(alpha)
    tau = check_tau(tau)
    check_base(base)
    check_whole_network(objective, alpha, layers, measure, normalize)
    if objective in ("chain", "example"):
        fn = data_path_chain_entropy if objective == "chain" else data_path_example_entropy
        h = fn(weights, biases, x, gates, bias_paths=bias_paths)
    else:
        hs = data_layer_measures(weights, biases, x, gates, measure=measure, alpha=alpha,
                                 layers=layers, normalize=normalize, bias_paths=bias_paths,
                                 gain=gain)
        h = _softmin(hs, tau) if objective == "softmin" else hs.sum()
    return to_base(h, base)
