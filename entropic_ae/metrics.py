"""Measurements of trained autoencoders: active units, reconstruction error, sample quality."""

from __future__ import annotations

import torch

__all__ = ["active_units"]


def active_units(codes: torch.Tensor, threshold: float = 0.01) -> int:
    r"""Number of latent dimensions whose variance over the data exceeds ``threshold``.

    :math:`A = \#\{j : \operatorname{Var}_x[z_j(x)] > \delta\}` with :math:`\delta = 0.01`
    by default (Burda et al. 2015); the variance is the population variance over the rows of
    ``codes`` (N × d). For a stochastic encoder pass the means :math:`E[z \mid x]`.
    """
    if not isinstance(codes, torch.Tensor):
        raise TypeError(f"codes must be a torch.Tensor of shape (N, d), got {type(codes).__name__}")
    if codes.dim() != 2:
        raise ValueError(f"codes must have shape (N, d), got {tuple(codes.shape)}")
    if codes.shape[0] < 2:
        raise ValueError("need at least two codes to measure a variance")
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or threshold < 0:
        raise ValueError(f"threshold must be a non-negative number, got {threshold!r}")
    codes = codes.detach().to(torch.float64)
    if not torch.isfinite(codes).all():
        raise ValueError("codes contain NaN or infinite entries")
    return int((codes.var(dim=0, unbiased=False) > threshold).sum())
