"""Active code units: by the variance of a unit over the data, and by the rise of the
reconstruction error when the unit is set to its mean (ablation)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from entropic_ae._checks import check_real

__all__ = ["ablation_active_units", "active_units", "unit_ablation"]


def active_units(codes: torch.Tensor, threshold: float = 0.01) -> int:
    r"""Number of latent dimensions whose variance over the data exceeds ``threshold``.

    :math:`A = \#\{j : \operatorname{Var}_x[z_j(x)] > \delta\}` with :math:`\delta = 0.01`
    by default (Burda et al. 2015); the variance is the population variance over the rows of
    ``codes`` (N × d). For a stochastic encoder pass the means :math:`E[z \mid x]`. The threshold
    must be a finite number >= 0 (Python or NumPy).
    """
    if not isinstance(codes, torch.Tensor):
        raise TypeError(f"codes must be a torch.Tensor of shape (N, d), got {type(codes).__name__}")
    if codes.dim() != 2:
        raise ValueError(f"codes must have shape (N, d), got {tuple(codes.shape)}")
    if codes.shape[0] < 2:
        raise ValueError("need at least two codes to measure a variance")
    threshold = check_real("threshold", threshold, ge=0.0)
    codes = codes.detach().to(torch.float64)
    if not torch.isfinite(codes).all():
        raise ValueError("codes contain NaN or infinite entries")
    return int((codes.var(dim=0, unbiased=False) > threshold).sum())


Encoder = Callable[[torch.Tensor], torch.Tensor]
Decoder = Callable[[torch.Tensor], torch.Tensor]


def _squared_errors(decode: Decoder, codes: torch.Tensor, x: torch.Tensor,
                    what: str) -> torch.Tensor:
    r"""Per-row :math:`\lVert \mathrm{decode}(z) - x\rVert^2` in float64 (``x`` flat, one row
    per code); a ValueError naming ``what`` if one is not finite."""
    out = decode(codes)
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"decode must return a torch.Tensor, got {type(out).__name__}")
    if out.dim() < 1 or out.shape[0] != codes.shape[0] or out[0].numel() != x.shape[1]:
        raise ValueError(f"decode returned shape {tuple(out.shape)} for {codes.shape[0]} codes; "
                         f"expected {codes.shape[0]} reconstructions of {x.shape[1]} values each "
                         "(the size of one input)")
    diff = out.reshape(out.shape[0], -1).to(torch.float64) - x.to(out.device, torch.float64)
    errors = diff.pow(2).sum(1)
    if not torch.isfinite(errors).all():
        raise ValueError(f"the {what} contain NaN or infinite entries")
    return errors


@torch.no_grad()
def unit_ablation(encode: Encoder, decode: Decoder, x: torch.Tensor,
                  batch_size: int = 4096) -> torch.Tensor:
    r"""Relative rise of the reconstruction error when one code unit is set to its mean.

    With codes :math:`z = \mathrm{encode}(x)` (N × d), their mean :math:`\bar z` over the data,
    :math:`E_0 = \sum_n \lVert D(z_n) - x_n\rVert^2` and :math:`E_j` the same error after
    replacing unit :math:`j` of every code by :math:`\bar z_j` (all other units kept),

    .. math:: r_j = (E_j - E_0) / E_0 .

    A unit that the decoder ignores, or that is constant on the data (a dead ReLU unit is always
    0), has :math:`r_j = 0` exactly: a constant unit already sits at its mean, so it is not
    decoded again. Unlike the code variance, :math:`r_j` does not change when a ReLU unit is
    rescaled (:math:`h_j \to c\,h_j` with the decoder's weights out of it divided by
    :math:`c`): its mean scales by :math:`c` too and the decoder sees the same input. It can be
    negative (the mean fits better than the unit). If :math:`E_0 = 0` (perfect reconstruction)
    :math:`r_j` is :math:`+\infty` where :math:`E_j > 0` and 0 elsewhere.

    ``encode(x) -> codes`` (N × d) and ``decode(codes) -> reconstructions`` (N × anything with
    as many entries per row as one input) are any callables, e.g. for layer ``l`` of an
    :class:`~entropic_ae.models.mlp.MLPAutoencoder`
    ``lambda x: model.encode(x, l)`` and ``lambda h: model.decode_from(h, l)``; for a conv model
    ``model.encode`` and ``model.decode`` (put the model in eval mode first). Runs without
    gradients; ``x`` is passed to ``encode`` in chunks of ``batch_size`` rows, and the d
    ablated copies of a chunk of codes are decoded together, at most ``batch_size`` rows per
    call of ``decode`` (cost: about d decoder passes over the data). Errors are summed in
    float64. Returns a float64 tensor of length d on the CPU.
    """
    if not callable(encode) or not callable(decode):
        raise TypeError("encode and decode must be callables: encode(x) -> codes (N, d), "
                        "decode(codes) -> reconstructions")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor of inputs (N, ...), got {type(x).__name__}")
    if x.dim() < 2 or x.shape[0] < 2:
        raise ValueError(f"x must hold at least two inputs, shape (N >= 2, ...), "
                         f"got {tuple(x.shape)}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    n = x.shape[0]
    chunks = []
    for i in range(0, n, batch_size):
        xb = x[i:i + batch_size]
        c = encode(xb)
        if not isinstance(c, torch.Tensor) or c.dim() != 2 or c.shape[0] != xb.shape[0]:
            raise ValueError("encode must return a tensor of codes of shape (N, d), one row per "
                             f"input; got {getattr(c, 'shape', type(c).__name__)}")
        chunks.append(c)
    codes = torch.cat(chunks)
    if codes.shape[0] != n or codes.shape[1] < 1:
        raise ValueError(f"encode must return codes of shape ({n}, d >= 1), got "
                         f"{tuple(codes.shape)}")
    if not torch.isfinite(codes).all():
        raise ValueError("the codes contain NaN or infinite entries")
    d = codes.shape[1]
    mean = codes.to(torch.float64).mean(0).to(codes.dtype)
    constant = (codes == codes[:1]).all(0).cpu()  # dead or constant units: r_j = 0 exactly
    varying = torch.nonzero(~constant).flatten().tolist()
    flat = x.reshape(n, -1)

    base = torch.zeros((), dtype=torch.float64)
    rise = torch.zeros(d, dtype=torch.float64)
    for start in range(0, n, batch_size):
        z = codes[start:start + batch_size]
        xb = flat[start:start + batch_size]
        b = z.shape[0]
        e0 = _squared_errors(decode, z, xb, "reconstructions")
        base += e0.sum().cpu()
        group = max(1, batch_size // b)  # ablated copies decoded per call
        for g in range(0, len(varying), group):
            units = varying[g:g + group]
            k = len(units)
            zz = z.unsqueeze(0).repeat(k, 1, 1)  # (k, b, d): copy i has unit units[i] ablated
            cols = torch.tensor(units, device=z.device)
            zz[torch.arange(k, device=z.device), :, cols] = mean[cols].unsqueeze(1)
            ej = _squared_errors(decode, zz.reshape(k * b, d), xb.repeat(k, 1),
                                 "reconstructions of ablated codes").reshape(k, b)
            rise[units] += (ej - e0).sum(1).cpu()
    if base > 0:
        return rise / base
    return torch.where(rise > 0, math.inf, 0.0).to(torch.float64)


def ablation_active_units(encode: Encoder, decode: Decoder, x: torch.Tensor,
                          threshold: float = 0.01, batch_size: int = 4096) -> int:
    r"""Number of code units whose removal raises the reconstruction error by more than
    ``threshold`` (a fraction of the error): :math:`\#\{j : r_j > \delta\}` with :math:`r_j`
    from :func:`unit_ablation` (unit :math:`j` set to its mean over ``x``) and
    :math:`\delta = 0.01` by default.

    Invariant to rescaling ReLU units, zero for dead ones; see :func:`unit_ablation` for the
    arguments.
    """
    threshold = check_real("threshold", threshold, ge=0.0)
    return int((unit_ablation(encode, decode, x, batch_size) > threshold).sum())
