r"""A network as the path computations see it: its weight matrices, their checks and numerics.

A network with :math:`L` linear layers has node layers :math:`0, \dots, L` of widths
:math:`n_0, \dots, n_L`; layer :math:`l` maps layer :math:`l-1` to layer :math:`l` with a weight
matrix :math:`W_l` of shape :math:`n_l \times n_{l-1}` (the layout of ``nn.Linear.weight``) and an
optional bias :math:`b_l`. :func:`linear_params` reads them off a model; everything else here is
shared by :mod:`~entropic_ae.paths.weights` and :mod:`~entropic_ae.paths.data`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from entropic_ae._checks import check_int
from entropic_ae.entropy import SHANNON_ORDER_TOLERANCE, _check_order, _to_base, renyi_unchecked

__all__ = ["layer_sizes", "linear_params"]

Tensor = torch.Tensor

# re-exported for the other modules of the package
check_alpha = _check_order
to_base = _to_base
SHANNON_TOL = SHANNON_ORDER_TOLERANCE
#: Shannon / Rényi entropy (nats) of a probability vector, 0 log 0 = 0 (``alpha`` checked).
probs_entropy = renyi_unchecked


def linear_params(
    module_or_layers: nn.Module | Iterable[nn.Linear],
) -> tuple[list[Tensor], list[Tensor | None]]:
    """Weights and biases of the ``nn.Linear`` layers of a model, in order.

    ``module_or_layers`` is an ``nn.Module`` (its ``nn.Linear`` submodules are taken in
    registration order, which is the forward order for ``nn.Sequential``; a layer that is
    registered twice counts once) or an iterable of ``nn.Linear`` layers. Returns
    ``(weights, biases)`` ready for :func:`~entropic_ae.paths.path_entropy`; a layer without bias
    gives ``None``.
    """
    if isinstance(module_or_layers, nn.Linear):
        layers = [module_or_layers]
    elif isinstance(module_or_layers, nn.Module):
        layers = [m for m in module_or_layers.modules() if isinstance(m, nn.Linear)]
    elif isinstance(module_or_layers, Iterable) and not isinstance(module_or_layers, Tensor):
        layers = list(module_or_layers)
        for k, layer in enumerate(layers):
            if not isinstance(layer, nn.Linear):
                raise TypeError(
                    f"linear_params expects nn.Linear layers; item {k} is {type(layer).__name__}"
                )
    else:
        raise TypeError(
            "linear_params expects an nn.Module or an iterable of nn.Linear layers, got "
            f"{type(module_or_layers).__name__}"
        )
    if not layers:
        raise ValueError("no nn.Linear layers found")
    return [layer.weight for layer in layers], [layer.bias for layer in layers]


def layer_sizes(weights: Sequence[Tensor]) -> list[int]:
    """Node-layer widths ``[n_0, ..., n_L]`` of weight matrices shaped ``(n_l, n_{l-1})``."""
    ws, _ = check_params(weights, None)
    return [ws[0].shape[1]] + [w.shape[0] for w in ws]


def _check_weight_list(weights: Sequence[Tensor]) -> list[Tensor]:
    if isinstance(weights, nn.Module):
        raise TypeError("weights must be a sequence of weight tensors, not an nn.Module; "
                        "use `weights, biases = linear_params(model)`")
    if isinstance(weights, Tensor):
        raise TypeError("weights must be a sequence (list/tuple) of 2-D weight tensors, one per "
                        "layer, not a single tensor")
    if not isinstance(weights, Iterable):
        raise TypeError(f"weights must be a sequence of tensors, got {type(weights).__name__}")
    ws = list(weights)
    if not ws:
        raise ValueError("weights is empty: need at least one layer")
    for l, w in enumerate(ws, start=1):
        if isinstance(w, nn.Linear):
            raise TypeError(f"layer {l} is an nn.Linear module; pass tensors, e.g. via "
                            "linear_params(layers)")
        if not isinstance(w, Tensor):
            raise TypeError(f"weight of layer {l} must be a torch.Tensor, got {type(w).__name__}")
        if w.ndim != 2:
            raise ValueError(f"weight of layer {l} must be 2-D (out x in, as nn.Linear.weight), "
                             f"got shape {tuple(w.shape)}")
        if not w.is_floating_point():
            raise TypeError(f"weight of layer {l} must be floating point, got {w.dtype}")
        if w.shape[0] == 0 or w.shape[1] == 0:
            raise ValueError(f"weight of layer {l} has an empty dimension: {tuple(w.shape)}")
        if w.device != ws[0].device:
            raise ValueError(f"all weights must be on one device: layer 1 is on {ws[0].device}, "
                             f"layer {l} on {w.device}")
        if l > 1 and w.shape[1] != ws[l - 2].shape[0]:
            raise ValueError(f"shapes do not chain: layer {l} has {w.shape[1]} inputs but layer "
                             f"{l - 1} has {ws[l - 2].shape[0]} outputs (weights are out x in)")
    return ws


def check_params(
    weights: Sequence[Tensor], biases: Sequence[Tensor | None] | None
) -> tuple[list[Tensor], list[Tensor | None]]:
    """Validate shapes, types and devices; return ``(weights, biases)`` as lists (biases
    ``[None] * L`` when ``biases`` is None)."""
    ws = _check_weight_list(weights)
    if biases is None:
        return ws, [None] * len(ws)
    if isinstance(biases, (Tensor, nn.Module)) or not isinstance(biases, Iterable):
        raise TypeError("biases must be None or a sequence with one 1-D tensor (or None) per "
                        f"layer, got {type(biases).__name__}")
    bs = list(biases)
    if len(bs) != len(ws):
        raise ValueError(f"got {len(bs)} biases for {len(ws)} weight matrices")
    for l, (w, b) in enumerate(zip(ws, bs, strict=True), start=1):
        if b is None:
            continue
        if not isinstance(b, Tensor):
            raise TypeError(f"bias of layer {l} must be a tensor or None, got {type(b).__name__}")
        if not b.is_floating_point():
            raise TypeError(f"bias of layer {l} must be floating point, got {b.dtype}")
        if tuple(b.shape) != (w.shape[0],):
            raise ValueError(f"bias of layer {l} must have shape ({w.shape[0]},), got "
                             f"{tuple(b.shape)}")
        if b.device != w.device:
            raise ValueError(f"bias of layer {l} is on {b.device}, its weight on {w.device}")
    return ws, bs


def check_node(index: int | None, width: int, name: str, layer: str) -> int | None:
    """``index`` as an int node index of a layer of ``width`` nodes, or None."""
    if index is None:
        return None
    index = check_int(name, index)
    if not 0 <= index < width:
        raise ValueError(f"{name}={index} is out of range for the {layer} layer of width {width}")
    return index


def check_base(base: float | None) -> float | None:
    """Validate a logarithm base (None: nats) and return it."""
    _to_base(torch.zeros(()), base)
    return base


def check_inputs(x: Tensor, width: int) -> Tensor:
    """A batch of inputs ``(B, ...)`` with ``width`` entries each, as a detached ``B x width``."""
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor of inputs (B, ...), got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"x must be floating point, got {x.dtype}")
    if x.dim() < 2 or x.shape[0] < 1 or math.prod(x.shape[1:]) != width:
        raise ValueError(f"x must hold a batch of inputs with {width} entries each, shape "
                         f"(B >= 1, ...), got {tuple(x.shape)}")
    return x.detach().reshape(x.shape[0], width)


def raise_if_nonfinite(ws: list[Tensor], bs: list[Tensor | None]) -> None:
    """``ValueError`` naming the first weight or bias with a NaN or infinite entry."""
    for l, (w, b) in enumerate(zip(ws, bs, strict=True), start=1):
        if not bool(torch.isfinite(w.detach()).all()):
            raise ValueError(f"weight of layer {l} contains NaN or inf")
        if b is not None and not bool(torch.isfinite(b.detach()).all()):
            raise ValueError(f"bias of layer {l} contains NaN or inf")


def out_dtype(ws: list[Tensor], bs: list[Tensor | None]) -> torch.dtype:
    """The promoted dtype of all weights and biases (the dtype of the results)."""
    return functools.reduce(torch.promote_types, [t.dtype for t in ws + bs if t is not None])


def work_dtype(ws: list[Tensor], bs: list[Tensor | None]) -> torch.dtype:
    """:func:`out_dtype`, but at least float32: half precision has far too little range for
    products of many layers."""
    return torch.promote_types(out_dtype(ws, bs), torch.float32)


def cast(t: Tensor, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``t`` in ``dtype`` on ``device`` (no copy when it already is)."""
    return t if t.dtype == dtype and t.device == device else t.to(device=device, dtype=dtype)


def xlogx(a: Tensor) -> Tensor:
    """a log a with 0 log 0 = 0 (a >= 0), in one fused pass.

    Adding the smallest normal number changes no normal entry (it is far below their last
    bit) and keeps the logarithm and its gradient finite at 0.
    """
    return a * (a + torch.finfo(a.dtype).tiny).log()


def masked_pow(a: Tensor, alpha: float) -> Tensor:
    """Elementwise a**alpha with 0**alpha = 0 (also for alpha = 0) and finite gradients."""
    pos = a > 0
    return torch.where(pos, torch.exp(alpha * torch.log(torch.where(pos, a, 1.0))), 0.0)


def sum_log(scales: list[Tensor]) -> Tensor | float:
    """The sum of the logarithms of the rescaling factors (0 for none)."""
    return torch.stack(scales).log().sum() if scales else 0.0
