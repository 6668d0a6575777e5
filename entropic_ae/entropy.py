r"""Shannon and Rényi entropy of discrete probability vectors.

For a probability vector :math:`p = (p_1, \dots, p_n)`:

* Shannon entropy: :math:`H(p) = -\sum_i p_i \log p_i`, with :math:`0 \log 0 = 0`.
* Rényi entropy of order :math:`\alpha \ge 0`:
  :math:`H_\alpha(p) = \frac{1}{1-\alpha} \log \sum_i p_i^\alpha`, with the limits
  :math:`H_0 = \log |\{i : p_i > 0\}|` (Hartley), :math:`H_1 = H` (Shannon) and
  :math:`H_\infty = -\log \max_i p_i` (min-entropy).

Both take the natural logarithm (nats) unless ``base`` is given; ``base=2`` gives bits.
Zero probabilities are allowed: values and gradients stay finite.
"""

from __future__ import annotations

import math

import torch

from entropic_ae._checks import is_real

__all__ = ["renyi", "renyi_unchecked", "shannon", "validate_probabilities"]

#: Orders closer than this to 1 are treated as Shannon entropy.
SHANNON_ORDER_TOLERANCE = 1e-6


def validate_probabilities(p: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Check that ``p`` holds probability vectors along ``dim``; return it as a float tensor.

    Raises ``TypeError`` for non-tensors and ``ValueError`` for empty input, NaN or infinite
    entries, negative entries, or slices along ``dim`` that do not sum to one: the sums (in
    float64) must be within ``eps * min(4 + sqrt(n), 1024)`` of 1, with ``n`` the length and
    ``eps`` the machine epsilon of ``p``'s dtype (at least float32's, as probabilities are often
    computed in float32 and then converted). That covers the rounding of normalising ``n``
    values (about ``sqrt(n) * eps``) and never exceeds 1024 eps, whatever ``n``: in float32 at
    most 1.2e-4, so a vector of a million entries summing to 1.05 is refused.
    """
    if not isinstance(p, torch.Tensor):
        raise TypeError(f"p must be a torch.Tensor of probabilities, got {type(p).__name__}")
    if not p.is_floating_point():
        p = p.to(torch.get_default_dtype())
    if p.dim() == 0:
        raise ValueError("p must have at least one dimension (a vector of probabilities)")
    if p.shape[dim] == 0:
        raise ValueError(f"p is empty along dim={dim}; a probability vector needs an entry")
    with torch.no_grad():
        if not torch.isfinite(p).all():
            raise ValueError("p contains NaN or infinite entries; probabilities must be finite")
        if (p < 0).any():
            raise ValueError(f"p has negative entries (min {p.min().item():.3g}); "
                             "probabilities must be >= 0")
        wide = torch.float32 if p.device.type == "mps" else torch.float64
        sums = p.sum(dim=dim, dtype=wide)
        worst = (sums - 1).abs().max().item()
        eps = max(torch.finfo(p.dtype).eps, torch.finfo(torch.float32).eps)
        tol = eps * min(4.0 + math.sqrt(p.shape[dim]), 1024.0)
        if worst > tol:
            raise ValueError(f"p does not sum to 1 along dim={dim} (off by up to {worst:.3g}; "
                             f"the tolerance for {p.shape[dim]} entries is {tol:.2g}); "
                             "normalise it first, e.g. p / p.sum(dim, keepdim=True)")
    return p


def _xlogx(p: torch.Tensor) -> torch.Tensor:
    """Elementwise p·log p with 0·log 0 = 0 and a finite (zero) gradient at p = 0."""
    positive = p > 0
    safe = torch.where(positive, p, torch.ones_like(p))
    return torch.where(positive, p * torch.log(safe), torch.zeros_like(p))


def _to_base(h: torch.Tensor, base: float | None) -> torch.Tensor:
    if base is None:
        return h
    if not is_real(base):
        raise TypeError(f"base must be a number or None, got {type(base).__name__}")
    base = float(base)
    if not base > 0 or base == 1 or math.isinf(base):
        raise ValueError(f"base must be a positive number other than 1, got {base}")
    return h / math.log(base)


def shannon(p: torch.Tensor, dim: int = -1, base: float | None = None) -> torch.Tensor:
    r"""Shannon entropy :math:`H(p) = -\sum_i p_i \log p_i` along ``dim``.

    ``base=None`` gives nats, ``base=2`` bits. Zero entries contribute zero (and zero gradient).
    """
    p = validate_probabilities(p, dim)
    return _to_base(-_xlogx(p).sum(dim=dim), base)


def _check_order(alpha: float) -> float:
    if isinstance(alpha, torch.Tensor):
        if alpha.numel() != 1:
            raise TypeError("alpha must be a single number, got a tensor with several entries")
        alpha = float(alpha)
    if not is_real(alpha):
        raise TypeError(f"alpha must be a number, got {type(alpha).__name__}")
    alpha = float(alpha)
    if math.isnan(alpha) or alpha < 0:
        raise ValueError(f"Rényi order alpha must be >= 0 (or inf), got {alpha}")
    return alpha


def renyi_unchecked(p: torch.Tensor, alpha: float, dim: int = -1) -> torch.Tensor:
    """Rényi entropy in nats without input validation (``alpha`` already checked).

    For hot loops whose caller guarantees valid probabilities; see :func:`renyi`.
    """
    if abs(alpha - 1.0) < SHANNON_ORDER_TOLERANCE:
        return -_xlogx(p).sum(dim=dim)
    if math.isinf(alpha):
        return -torch.log(p.amax(dim=dim))
    positive = p > 0
    if alpha == 0:
        support = positive.sum(dim=dim).to(p.dtype)
        # Add 0·p so that the result is connected to the graph (its gradient is zero).
        return torch.log(support) + 0.0 * p.sum(dim=dim)
    # log sum_i p_i^alpha as a log-sum-exp of alpha·log p_i: no underflow for large alpha.
    safe = torch.where(positive, p, torch.ones_like(p))
    scaled_logs = torch.where(positive, alpha * torch.log(safe), torch.full_like(p, -math.inf))
    return torch.logsumexp(scaled_logs, dim=dim) / (1.0 - alpha)


def renyi(p: torch.Tensor, alpha: float, dim: int = -1, base: float | None = None) -> torch.Tensor:
    r"""Rényi entropy :math:`H_\alpha(p) = \frac{1}{1-\alpha}\log\sum_i p_i^\alpha` along ``dim``.

    ``alpha = 0`` gives :math:`\log` (number of nonzero entries), ``alpha`` within ``1e-6`` of 1
    gives Shannon entropy, ``alpha = float("inf")`` gives the min-entropy
    :math:`-\log\max_i p_i`. Every other ``alpha > 0`` (e.g. the 0.04 of the compactifier
    experiments) uses the formula, evaluated as a log-sum-exp of :math:`\alpha\log p_i`.
    Zero entries are excluded from the power sum (:math:`0^\alpha = 0` for
    :math:`\alpha > 0`), so gradients stay finite.
    """
    alpha = _check_order(alpha)
    p = validate_probabilities(p, dim)
    return _to_base(renyi_unchecked(p, alpha, dim), base)
