r"""The entropic compactifier: entropy of how "active" the neurons of one layer are.

Take a hidden layer with neurons :math:`j = 1..n`, the linear map *into* it
(weight :math:`W^{in}`, shape :math:`n \times m`, bias :math:`b`) and the linear map *out of* it
(weight :math:`W^{out}`, shape :math:`k \times n`). Two measures of how much neuron :math:`j`
is used:

* incoming activity :math:`a^{in}_j = \sum_i |W^{in}_{ji}| + |b_j|` ("the previous layer
  feeds this node"), the source document's "right value" (the node sits right of
  :math:`W^{in}`);
* outgoing activity :math:`a^{out}_j = \sum_k |W^{out}_{kj}| + |b_j|` ("the next layer reads
  this node"), the document's "left value" (the node sits left of :math:`W^{out}`).

Normalising an activity vector, :math:`p_j = a_j / \sum_l a_l`, gives a probability vector
whose Shannon or Rényi entropy is small when a few neurons carry all the activity. The
compactifier loss is that entropy, in one of four variants:

============  ==========================================================
``"in"``      :math:`H_\alpha(a^{in} / \sum a^{in})`
``"out"``     :math:`H_\alpha(a^{out} / \sum a^{out})`
``"both"``    :math:`H_\alpha(a^{in}/\sum a^{in}) + H_\alpha(a^{out}/\sum a^{out})`
``"cumulative"``  :math:`H_\alpha((a^{in}+a^{out}) / \sum (a^{in}+a^{out}))`
============  ==========================================================

(the bias is counted in both activities, so twice in the cumulative variant, as in the
source document). Minimising it pushes the network to switch neurons off.

These activities depend on weight magnitudes only, so a unit that never fires can hold any
amount of them (a "decoy"), and rescaling a ReLU unit changes them at no cost; the
*data-dependent* :func:`data_activity` does neither (its entropy: :func:`data_compactifier_loss`,
:func:`fused_data_compactifier_loss`). :func:`effective_rank` counts the *directions* the
layer's activations span instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ._checks import check_matrix
from .entropy import SHANNON_ORDER_TOLERANCE, _check_order, _to_base, renyi_unchecked

__all__ = ["SPECTRA", "VARIANTS", "activity_entropy", "compactifier_loss", "data_activity",
           "data_compactifier_loss", "effective_rank", "effective_units",
           "fused_data_compactifier_loss", "fused_layer_compactifier_loss", "incoming_activity",
           "layer_compactifier_loss", "outgoing_activity", "spectrum_entropy"]

VARIANTS = ("in", "out", "both", "cumulative")

LayerLike = nn.Linear | tuple[torch.Tensor, torch.Tensor | None]


def _weight_bias(layer: LayerLike, name: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The weight (checked 2-D) and bias of an ``nn.Linear`` or ``(weight, bias)`` tuple."""
    if isinstance(layer, nn.Linear):
        return layer.weight, layer.bias
    if isinstance(layer, tuple) and len(layer) == 2 and isinstance(layer[0], torch.Tensor):
        weight, bias = layer
        if bias is not None and not isinstance(bias, torch.Tensor):
            raise TypeError(f"{name}: bias must be a tensor or None, got {type(bias).__name__}")
        if weight.dim() != 2:
            raise ValueError(f"{name} weight must be 2-D (out_features × in_features), "
                             f"got shape {tuple(weight.shape)}")
        return weight, bias
    raise TypeError(f"{name} must be an nn.Linear or a (weight, bias) tuple of tensors, "
                    f"got {type(layer).__name__}")


def _plus_bias(activity: torch.Tensor, bias: torch.Tensor | None, hint: str = "") -> torch.Tensor:
    """``activity + |bias|``, or ``activity`` when ``bias`` is None."""
    if bias is None:
        return activity
    if bias.shape != activity.shape:
        raise ValueError(f"bias has shape {tuple(bias.shape)}, expected "
                         f"{tuple(activity.shape)}{hint}")
    return activity + bias.abs()


def incoming_activity(layer: LayerLike) -> torch.Tensor:
    r"""Activity of the neurons a layer feeds: :math:`a_j = \sum_i |W_{ji}| + |b_j|`.

    ``layer`` is the ``nn.Linear`` into the neurons (or a ``(weight, bias)`` tuple, weight
    shaped out × in). Returns a vector of length ``out_features``.
    """
    weight, bias = _weight_bias(layer, "layer")
    return _plus_bias(weight.abs().sum(dim=1), bias)


def outgoing_activity(next_layer: LayerLike, bias: torch.Tensor | None = None) -> torch.Tensor:
    r"""Activity of the neurons a layer reads: :math:`a_j = \sum_k |W_{kj}| + |b_j|`.

    ``next_layer`` is the ``nn.Linear`` out of the neurons; ``bias`` is the neurons' own bias
    (the bias of the layer *into* them), or None to leave it out. Returns a vector of length
    ``in_features`` of ``next_layer``.
    """
    weight, _ = _weight_bias(next_layer, "next_layer")
    return _plus_bias(weight.abs().sum(dim=0), bias, " to match the next layer's in_features")


def activity_entropy(activity: torch.Tensor, alpha: float = 1.0,
                     base: float | None = None) -> torch.Tensor:
    r"""Entropy :math:`H_\alpha(a / \sum_j a_j)` of a non-negative activity vector.

    ``alpha = 1`` is Shannon entropy; any other order is Rényi entropy (see
    :func:`entropic_ae.entropy.renyi`).
    """
    alpha = _check_order(alpha)
    if not isinstance(activity, torch.Tensor) or activity.dim() != 1:
        raise ValueError("activity must be a 1-D tensor (one entry per neuron)")
    with torch.no_grad():
        if not torch.isfinite(activity).all():
            raise ValueError("activity contains NaN or infinite entries: check the weights")
        if (activity < 0).any():
            raise ValueError("activity must be non-negative")
        if activity.sum() <= 0:
            raise ValueError("all activities are zero: the entropy of their distribution is "
                             "undefined (every neuron of the layer is switched off)")
    p = activity / activity.sum()
    return _to_base(renyi_unchecked(p, alpha), base)


def effective_units(activity: torch.Tensor, alpha: float = 1.0) -> float:
    r"""Effective number of neurons, :math:`\exp H_\alpha(a/\sum a)` (a perplexity).

    Equals the number of neurons when activity is spread evenly and 1 when one neuron
    carries it all.
    """
    return float(torch.exp(activity_entropy(activity.detach(), alpha)))


def layer_compactifier_loss(into: LayerLike, out_of: LayerLike, variant: str = "both",
                            alpha: float = 1.0, base: float | None = None) -> torch.Tensor:
    """Compactifier loss of the neurons between the linear maps ``into`` and ``out_of``.

    ``variant`` is one of ``"in"``, ``"out"``, ``"both"``, ``"cumulative"`` (see the module
    docstring for the formulas); ``alpha`` is the Rényi order (1 = Shannon).
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    w_in, b_in = _weight_bias(into, "into")
    w_out, _ = _weight_bias(out_of, "out_of")
    if w_out.shape[1] != w_in.shape[0]:
        raise ValueError(f"layers do not chain: 'into' has {w_in.shape[0]} outputs but 'out_of' "
                         f"has {w_out.shape[1]} inputs")
    alpha = _check_order(alpha)
    # Activities built from absolute values are non-negative by construction, so the hot path
    # skips activity_entropy's validation (one device sync per check). All-zero activity
    # gives NaN, which the training loop reports by the term's name.
    a_in = incoming_activity((w_in, b_in))
    a_out = outgoing_activity((w_out, None), b_in)
    if variant == "in":
        loss = _entropy_of_activity(a_in, alpha)
    elif variant == "out":
        loss = _entropy_of_activity(a_out, alpha)
    elif variant == "both":
        loss = _entropy_of_activity(a_in, alpha) + _entropy_of_activity(a_out, alpha)
    else:
        loss = _entropy_of_activity(a_in + a_out, alpha)
    return _to_base(loss, base)


def _entropy_of_activity(activity: torch.Tensor, alpha: float) -> torch.Tensor:
    return renyi_unchecked(activity / activity.sum(), alpha)


def compactifier_loss(linears: Sequence[nn.Linear], layers: int | Sequence[int],
                      variant: str = "both", alpha: float = 1.0,
                      base: float | None = None) -> torch.Tensor:
    r"""Sum of :func:`layer_compactifier_loss` over the hidden node layers ``layers``.

    ``linears`` are a feed-forward net's linear maps in order; node layer :math:`k` (0 = input)
    sits between ``linears[k-1]`` and ``linears[k]``, so ``k`` must be in ``1..len(linears)-1``.
    """
    if isinstance(layers, int):
        layers = [layers]
    if len(linears) < 2:
        raise ValueError("need at least two linear layers to have a hidden node layer")
    if len(layers) == 0:
        raise ValueError("layers is empty: name at least one hidden node layer")
    total = None
    for k in layers:
        if not isinstance(k, int) or not 1 <= k <= len(linears) - 1:
            raise ValueError(f"hidden node layer index must be in 1..{len(linears) - 1}, got {k!r}")
        term = layer_compactifier_loss(linears[k - 1], linears[k], variant, alpha, base)
        total = term if total is None else total + term
    return total


# --- Fused training-time loss (chapter 2) --------------------------------------------------------
# On one small layer a step's cost is all autograd overhead (~30 tiny kernels); the fused version
# computes the entropy and its closed-form gradient in one pass, and its backward is three products.

def _entropy_and_grad(a: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Rows' entropies :math:`H_\alpha(a/S)` (summed) and :math:`\partial H/\partial a` by the
    closed forms of :func:`fused_layer_compactifier_loss`. Zero entries are left out of the sums,
    as in :func:`entropic_ae.entropy.renyi_unchecked`, which fixes their gradient to the limit
    of the formula without the first term."""
    s = a.sum(-1, keepdim=True)
    p = a / s
    if alpha == 1.0:
        positive = p > 0
        logp = torch.log(torch.where(positive, p, torch.ones_like(p)))
        h = -(p * logp).sum(-1, keepdim=True)
        grad = torch.where(positive, -(logp + h), 1.0 - h) / s
        return h.sum(), grad
    c = alpha / (1.0 - alpha)
    q = p.pow(alpha)
    qs = q.sum(-1, keepdim=True)
    h = torch.log(qs).sum() / (1.0 - alpha)
    grad = torch.nan_to_num(q / (a * qs), nan=0.0).sub_(s.reciprocal()).mul_(c)
    return h, grad


def _fused_order(alpha: float, reference: str) -> float:
    """The order for a fused loss: ``0 < alpha < inf`` (1 within the Shannon tolerance)."""
    alpha = _check_order(alpha)
    if alpha == 0 or math.isinf(alpha):
        raise ValueError(f"the fused loss needs 0 < alpha < inf (its gradient is 0 or a "
                         f"subgradient otherwise), got {alpha}; use {reference}")
    return 1.0 if abs(alpha - 1.0) < SHANNON_ORDER_TOLERANCE else alpha


class _FusedCompactifier(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w_in, b_in, w_out, variant, alpha):  # type: ignore[override]
        ab = b_in.abs()
        a_in = w_in.abs().sum(1) + ab
        a_out = w_out.abs().sum(0) + ab
        if variant == "both":
            h, (g_in, g_out) = _entropy_and_grad(torch.stack((a_in, a_out)), alpha)
        elif variant == "cumulative":
            h, g_in = _entropy_and_grad(a_in + a_out, alpha)
            g_out = g_in
        else:  # one side only: the other gets no gradient
            h, g = _entropy_and_grad(a_in if variant == "in" else a_out, alpha)
            g_in, g_out = (g, torch.zeros_like(g)) if variant == "in" else (torch.zeros_like(g), g)
        ctx.save_for_backward(w_in.sign().mul_(g_in[:, None]), b_in.sign().mul_(g_in + g_out),
                              w_out.sign().mul_(g_out))
        return h

    @staticmethod
    def backward(ctx, grad_output):  # type: ignore[override]
        g_w_in, g_b, g_w_out = ctx.saved_tensors
        return grad_output * g_w_in, grad_output * g_b, grad_output * g_w_out, None, None


def fused_layer_compactifier_loss(into: nn.Linear, out_of: nn.Linear, variant: str = "both",
                                  alpha: float = 1.0) -> torch.Tensor:
    r""":func:`layer_compactifier_loss` (in nats) with a hand-written gradient, for training.

    Same value and gradient (to rounding) for every ``variant`` and every order
    :math:`0 < \alpha < \infty`, computed as one pass over the activities: with :math:`S`,
    :math:`p = a/S` and :math:`Q = \sum_i p_i^\alpha`,
    :math:`\partial H_\alpha / \partial a_j = \frac{\alpha}{1-\alpha}(p_j^\alpha / (a_j Q) - 1/S)`
    (Shannon: :math:`-(\log p_j + H)/S`), and :math:`\partial a_j / \partial W_{ji} =
    \operatorname{sign} W_{ji}`. ``into`` and ``out_of`` must be ``nn.Linear`` maps with a bias
    on ``into``. No per-call validation of values: all-zero activity gives NaN, which
    :func:`entropic_ae.training.train` reports.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    if not isinstance(into, nn.Linear) or not isinstance(out_of, nn.Linear):
        raise TypeError("into and out_of must be nn.Linear maps; for (weight, bias) tuples use "
                        "layer_compactifier_loss")
    if into.bias is None:
        raise ValueError("into has no bias; use layer_compactifier_loss")
    if out_of.in_features != into.out_features:
        raise ValueError(f"layers do not chain: 'into' has {into.out_features} outputs but "
                         f"'out_of' has {out_of.in_features} inputs")
    alpha = _fused_order(alpha, "layer_compactifier_loss")
    return _FusedCompactifier.apply(into.weight, into.bias, out_of.weight, variant, alpha)


# --- Data-dependent activity ---------------------------------------------------------------------


def _check_codes(h: torch.Tensor, weight: torch.Tensor) -> None:
    check_matrix("h", h, "B")
    if h.shape[0] < 1:
        raise ValueError("h must have shape (B >= 1, n): one row of the layer's activations "
                         "per input, got an empty batch")
    if h.shape[1] != weight.shape[1]:
        raise ValueError(f"h has {h.shape[1]} units but next_layer has {weight.shape[1]} "
                         "in_features")


def data_activity(h: torch.Tensor, next_layer: LayerLike) -> torch.Tensor:
    r"""Data-dependent activity :math:`a_j = \mathbb E_x|h_j(x)| \cdot
    \sum_k |W^{out}_{kj}|` of the units of a hidden layer.

    ``h`` holds the layer's activations on a batch (B × n, e.g. ``model.layer_outputs(x)[l]``),
    ``next_layer`` is the linear map out of the layer (``nn.Linear`` or ``(weight, bias)``,
    weight k × n); the expectation is the batch mean. Differentiable in ``h`` (hence in every
    earlier parameter) and in :math:`W^{out}`. Returns a vector of length n.

    *Meaning.* :math:`|h_j(x)| \lVert W^{out}_{:,j}\rVert_1 = \lVert W^{out}_{:,j}\,h_j(x)
    \rVert_1`, so :math:`a_j` is the mean :math:`\ell_1` size of what unit :math:`j` adds to the
    next layer's pre-activations.

    *Dead units.* If :math:`h_j(x) = 0` for every input (a ReLU unit that never fires),
    :math:`a_j = 0` however large its weights are: a decoy holds no activity.

    *Rescaling.* Multiply unit :math:`j`'s incoming weights and bias by :math:`c > 0` and its
    outgoing weights :math:`W^{out}_{:,j}` by :math:`1/c`. The ReLU is positively homogeneous,
    :math:`\mathrm{relu}(c\,t) = c\,\mathrm{relu}(t)`, so :math:`h_j \to c\,h_j`, the next
    layer's input :math:`W^{out}_{:,j} h_j` is unchanged (the network computes the same function)
    and :math:`a_j \to c\,\mathbb E|h_j| \cdot \lVert W^{out}_{:,j}\rVert_1 / c = a_j`; the
    other units' activities do not involve :math:`c`. Hence :math:`a`, and every entropy of
    :math:`a / \sum a`, is invariant. (It is *not* invariant to rescaling a unit :math:`k` of the
    next layer, which multiplies row :math:`W^{out}_{k,:}` by :math:`c_k`: a next-layer ReLU
    unit that reads mainly from unit :math:`j` can still inflate :math:`a_j` at no cost.)
    """
    weight, _ = _weight_bias(next_layer, "next_layer")
    _check_codes(h, weight)
    return h.abs().mean(0) * weight.abs().sum(0)


def data_compactifier_loss(h: torch.Tensor, next_layer: LayerLike, alpha: float = 1.0,
                           base: float | None = None) -> torch.Tensor:
    r"""Entropy :math:`H_\alpha(a / \sum_j a_j)` of the :func:`data_activity` :math:`a`, by
    autograd (the reference for :func:`fused_data_compactifier_loss`).

    Validates its input: raises ``ValueError`` when every activity is zero (no unit fires on
    the batch, or the next layer ignores all of them) or any is NaN/inf.
    """
    return activity_entropy(data_activity(h, next_layer), alpha, base)


class _FusedDataCompactifier(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, w_out, alpha):  # type: ignore[override]
        mean_abs = h.abs().mean(0)
        col = w_out.abs().sum(0)
        a = mean_abs * col
        # No unit active on this batch (all activities 0): nothing to concentrate, so the
        # penalty is 0 and pushes nowhere, instead of 0/0 = NaN spreading into the weights.
        alive = (a.sum() > 0).to(a.dtype)
        entropy, g = _entropy_and_grad(torch.where(alive > 0, a, torch.ones_like(a)), alpha)
        g = g * alive
        ctx.save_for_backward(h, w_out, g * col / h.shape[0], g * mean_abs)
        return entropy * alive

    @staticmethod
    def backward(ctx, grad_output):  # type: ignore[override]
        h, w_out, g_h, g_w = ctx.saved_tensors
        need_h, need_w = ctx.needs_input_grad[:2]
        return (h.sign().mul_(g_h * grad_output) if need_h else None,
                w_out.sign().mul_(g_w * grad_output) if need_w else None, None)


def fused_data_compactifier_loss(h: torch.Tensor, out_of: nn.Linear,
                                 alpha: float = 1.0) -> torch.Tensor:
    r""":func:`data_compactifier_loss` (nats) with a hand-written gradient, for training.

    With :math:`a_j = \bar h_j c_j`, :math:`\bar h_j = \frac1B\sum_b |h_{bj}|` and
    :math:`c_j = \sum_k |W^{out}_{kj}|`, the chain rule gives
    :math:`\partial H/\partial h_{bj} = g_j\, c_j \operatorname{sign}(h_{bj}) / B` and
    :math:`\partial H/\partial W^{out}_{kj} = g_j\, \bar h_j \operatorname{sign}
    W^{out}_{kj}` with :math:`g = \partial H_\alpha/\partial a` in closed form (see
    :func:`fused_layer_compactifier_loss`), so the whole term is a few reductions over ``h``
    (B × n) and :math:`W^{out}` and its backward two multiplications; the gradient into ``h``
    joins the training step's own backward pass. ``h`` are the layer's activations from the
    step's forward pass (``model.layer_outputs(x)[l]``), ``out_of`` the ``nn.Linear`` out of
    the layer; :math:`0 < \alpha < \infty`. No per-call validation of values; a batch on which
    no unit of the layer fires (every activity 0) gives the value 0 and no gradient, since there
    is nothing left to concentrate (the validating :func:`data_compactifier_loss` raises
    instead).
    """
    if not isinstance(out_of, nn.Linear):
        raise TypeError("out_of must be an nn.Linear; for (weight, bias) tuples use "
                        "data_compactifier_loss")
    _check_codes(h, out_of.weight)
    alpha = _fused_order(alpha, "data_compactifier_loss")
    return _FusedDataCompactifier.apply(h, out_of.weight, alpha)


# --- Effective rank of a layer's activations -----------------------------------------------------

#: How :func:`spectrum_entropy` turns the singular values into a probability vector.
SPECTRA = ("singular", "variance")


def spectrum_entropy(h: torch.Tensor, alpha: float = 1.0, spectrum: str = "singular",
                     center: bool = True) -> torch.Tensor:
    r"""Entropy :math:`H_\alpha(p)` (nats) of the normalised spectrum of a batch of activations.

    ``h`` is B × n (one row per input). With :math:`\tilde h = h - \bar h` (the batch mean of
    each unit subtracted; ``center=False`` keeps :math:`h`) and its singular values
    :math:`\sigma_1 \ge \dots \ge \sigma_r`, :math:`r = \min(B, n)`:

    * ``spectrum="singular"``: :math:`p_i = \sigma_i / \sum_j \sigma_j` (Roy & Vetterli's
      effective rank uses :math:`\alpha = 1`);
    * ``spectrum="variance"``: :math:`p_i = \sigma_i^2 / \sum_j \sigma_j^2`, the shares of the
      variance along the principal axes (eigenvalues of the covariance); :math:`\alpha = 2` gives
      the log of the participation ratio :math:`(\sum\lambda)^2 / \sum\lambda^2`.

    Singular values at rounding level (:math:`\le \sigma_1 \max(B, n)\,\epsilon`) count as 0,
    so that :math:`\alpha < 1` (and :math:`\alpha = 0`, the log of the numerical rank) do not
    count the rounding noise of a rank-deficient batch. Differentiable in ``h`` (through
    ``torch.linalg.svdvals``, whose gradient needs no singular vector gaps). Invariant to
    rotations of the units (:math:`h \to h Q`), to a common scale :math:`h \to c h` and,
    centred, to adding a constant to a unit; *not* to rescaling single units. Raises for input
    that is not B × n floating point with B >= 2 (B >= 1 uncentred), holds NaN/inf, or is
    constant (all singular values 0).
    """
    alpha = _check_order(alpha)
    if spectrum not in SPECTRA:
        raise ValueError(f"spectrum must be one of {SPECTRA}, got {spectrum!r}")
    if not isinstance(center, bool):
        raise TypeError(f"center must be True or False, got {type(center).__name__}")
    check_matrix("h", h, "B")
    least = 2 if center else 1
    if h.shape[0] < least or h.shape[1] < 1:
        raise ValueError(f"h must have shape (B >= {least}, n >= 1): one row of activations per "
                         f"input, got {tuple(h.shape)}")
    sigma = _singular_values(h - h.mean(0, keepdim=True) if center else h)
    weights = sigma if spectrum == "singular" else sigma * sigma
    total = weights.sum()
    if not bool(total > 0):
        raise ValueError("the activations are constant over the batch (every singular value is "
                         "0): their spectrum has no distribution")
    return renyi_unchecked(weights / total, alpha)


def _singular_values(h: torch.Tensor) -> torch.Tensor:
    r"""Singular values of ``h``, those at rounding level (at most :math:`\sigma_1 \max(B, n)
    \epsilon`, NumPy's ``matrix_rank`` rule) set to 0; a NaN or infinite entry raises
    ``ValueError``."""
    if not bool(torch.isfinite(h.detach()).all()):
        raise ValueError("h contains NaN or infinite entries")
    sigma = torch.linalg.svdvals(h)
    tol = sigma.detach().amax() * max(h.shape) * torch.finfo(h.dtype).eps
    return torch.where(sigma.detach() > tol, sigma, 0.0)


def effective_rank(h: torch.Tensor, alpha: float = 1.0, spectrum: str = "singular",
                   center: bool = True) -> torch.Tensor:
    r"""Effective rank :math:`\exp H_\alpha(p)` of a batch of activations ``h`` (B × n), with
    :math:`p` the normalised spectrum of :func:`spectrum_entropy`.

    Between 1 (the centred activations lie on one line) and :math:`\min(B, n)` (all singular
    values equal); a layer whose activations span exactly :math:`k` orthogonal directions of
    equal size has effective rank :math:`k` for every ``alpha`` and ``spectrum``. With the defaults
    it is the effective rank of Roy & Vetterli (2007), :math:`\exp(-\sum_i p_i\log p_i)`,
    :math:`p_i = \sigma_i / \sum_j \sigma_j`; ``alpha=2, spectrum="variance"`` is the
    participation ratio :math:`(\sum_i\sigma_i^2)^2 / \sum_i\sigma_i^4`. A 0-d tensor,
    differentiable; ``float(...)`` for a number.
    """
    return spectrum_entropy(h, alpha, spectrum, center).exp()
