"""Reconstruction errors of an autoencoder: per pixel over a data set, and per class."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["per_class_mse", "reconstruction_mse"]


@torch.no_grad()
def reconstruction_mse(model: nn.Module, images: torch.Tensor, batch_size: int = 500) -> float:
    r"""Mean squared error per pixel, :math:`\frac{1}{N\,CHW}\sum_i\lVert \hat x_i - x_i\rVert^2`,
    of ``model(images)`` in eval mode (the mode is restored)."""
    if not isinstance(images, torch.Tensor) or images.dim() < 2 or len(images) == 0:
        raise ValueError("images must be a non-empty torch.Tensor (N, ...)")
    first = next(model.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    total = 0.0
    try:
        for i in range(0, len(images), batch_size):
            xb = images[i:i + batch_size].to(device)
            total += float((model(xb) - xb).double().pow(2).sum())
    finally:
        model.train(was_training)
    return total / images.numel()


@torch.no_grad()
def per_class_mse(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                  batch_size: int = 500) -> dict[int, float]:
    r"""Mean squared error per pixel of ``model(images)`` within each class:
    :math:`\mathrm{MSE}_c = \frac{1}{N_c\,CHW}\sum_{i: y_i = c}\lVert \hat x_i - x_i\rVert^2`.

    Returns ``{label: mse}`` for the labels present, in increasing order; eval mode as in
    :func:`reconstruction_mse` (the mode is restored). Accumulates in float64.
    """
    if not isinstance(images, torch.Tensor) or images.dim() < 2 or len(images) == 0:
        raise ValueError("images must be a non-empty torch.Tensor (N, ...)")
    if not isinstance(labels, torch.Tensor) or labels.shape != (len(images),):
        raise ValueError(f"labels must be a tensor of shape ({len(images)},), one per image")
    if labels.is_floating_point() or labels.is_complex():
        raise TypeError(f"labels must be integers, got {labels.dtype}")
    first = next(model.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    per_image = []
    try:
        for i in range(0, len(images), batch_size):
            xb = images[i:i + batch_size].to(device)
            per_image.append((model(xb) - xb).double().pow(2).flatten(1).sum(1).cpu())
    finally:
        model.train(was_training)
    errors = torch.cat(per_image)
    pixels = images[0].numel()
    labels = labels.cpu()
    return {int(c): float(errors[labels == c].sum()) / (int((labels == c).sum()) * pixels)
            for c in torch.unique(labels).tolist()}
