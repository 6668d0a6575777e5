"""Reconstruction errors of an autoencoder: per pixel over a data set, and per class."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

__all__ = ["per_class_mse", "reconstruction_mse"]
_BAD_IMAGES = "images must be a non-empty torch.Tensor (N, ...)"


@torch.no_grad()
def _batch_errors(model: nn.Module, images: torch.Tensor, batch_size: int,
                  reduce: Callable[[torch.Tensor], Any]) -> list:
    """``reduce`` of the float64 squared errors of ``model(xb)`` for each batch ``xb`` of
    ``images``, with ``model`` in eval mode on its own device (the mode is restored)."""
    first = next(model.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    try:
        batches = (images[i:i + batch_size].to(device) for i in range(0, len(images), batch_size))
        return [reduce((model(xb) - xb).double().pow(2)) for xb in batches]
    finally:
        model.train(was_training)


def reconstruction_mse(model: nn.Module, images: torch.Tensor, batch_size: int = 500) -> float:
    r"""Mean squared error per pixel, :math:`\frac{1}{N\,CHW}\sum_i\lVert \hat x_i - x_i\rVert^2`,
    of ``model(images)`` in eval mode (the mode is restored)."""
    if not isinstance(images, torch.Tensor) or images.dim() < 2 or len(images) == 0:
        raise ValueError(_BAD_IMAGES)
    return sum(_batch_errors(model, images, batch_size, lambda e: float(e.sum()))) / images.numel()


def per_class_mse(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                  batch_size: int = 500) -> dict[int, float]:
    r"""Mean squared error per pixel of ``model(images)`` within each class:
    :math:`\mathrm{MSE}_c = \frac{1}{N_c\,CHW}\sum_{i: y_i = c}\lVert \hat x_i - x_i\rVert^2`.

    Returns ``{label: mse}`` for the labels present, in increasing order; eval mode as in
    :func:`reconstruction_mse` (the mode is restored). Accumulates in float64.
    """
    if not isinstance(images, torch.Tensor) or images.dim() < 2 or len(images) == 0:
        raise ValueError(_BAD_IMAGES)
    if not isinstance(labels, torch.Tensor) or labels.shape != (len(images),):
        raise ValueError(f"labels must be a tensor of shape ({len(images)},), one per image")
    if labels.is_floating_point() or labels.is_complex():
        raise TypeError(f"labels must be integers, got {labels.dtype}")
    errors = torch.cat(_batch_errors(model, images, batch_size,
                                     lambda e: e.flatten(1).sum(1).cpu()))
    pixels = images[0].numel()
    labels = labels.cpu()
    return {int(c): float(errors[labels == c].sum()) / (int((labels == c).sum()) * pixels)
            for c in torch.unique(labels).tolist()}
