"""Image features for sample scores: any extractor run batch by batch, and the Inception-v3
features of the standard FID (optional, needs ``torchmetrics`` and a download)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from entropic_ae._checks import is_integer

__all__ = ["FeatureExtractor", "image_features", "inception_feature_extractor"]

FeatureExtractor = Callable[[torch.Tensor], torch.Tensor]


@torch.no_grad()
def image_features(images: torch.Tensor, feature_extractor: FeatureExtractor,
                   batch_size: int = 500) -> torch.Tensor:
    """``feature_extractor(images)`` batch by batch, without gradients, as float32 on the CPU.

    A ``nn.Module`` extractor is run in eval mode on its own device (and its mode restored).
    """
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ValueError("images must be a torch.Tensor of shape (N, C, H, W)")
    if not callable(feature_extractor):
        raise TypeError("feature_extractor must be callable: images (N, C, H, W) -> (N, F)")
    if not is_integer(batch_size) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    batch_size = int(batch_size)
    module = feature_extractor if isinstance(feature_extractor, nn.Module) else None
    first = next(module.parameters(), None) if module is not None else None
    device = first.device if first is not None else None  # x.to(None) is x itself
    was_training = module is not None and module.training
    if module is not None:
        module.eval()
    try:
        batches = (images[i:i + batch_size] for i in range(0, len(images), batch_size))
        out = [torch.as_tensor(feature_extractor(xb.to(device))).reshape(len(xb), -1).float().cpu()
               for xb in batches]
    finally:
        if module is not None:
            module.train(was_training)
    return torch.cat(out)


def inception_feature_extractor(device: str | torch.device | None = None) -> FeatureExtractor:
    """Inception-v3 pool features (2048-d) for the standard FID, through ``torchmetrics``.

    Optional: needs ``pip install torchmetrics[image]`` and the FID Inception weights, which
    ``torchmetrics`` downloads on first use (impossible offline). The returned callable maps
    images in [0, 1] (N, 3, H, W) to features; pass it to :func:`frechet_distance_images`.
    Raises ``ImportError`` (package missing) or ``RuntimeError`` (weights unavailable).
    """
    try:
        from torchmetrics.image.fid import FrechetInceptionDistance
    except ImportError as err:
        raise ImportError("the Inception FID needs torchmetrics: pip install 'torchmetrics[image]'"
                          ) from err
    try:
        inception = FrechetInceptionDistance(feature=2048, normalize=True).inception
    except Exception as err:  # noqa: BLE001 - download or weight-loading failure
        raise RuntimeError(f"could not load the FID Inception weights ({err}); they are "
                           "downloaded by torchmetrics on first use and need internet") from err
    inception = inception.to(device if device is not None else "cpu").eval()

    def extract(images: torch.Tensor) -> torch.Tensor:
        if images.shape[1] == 1:
            images = images.repeat(1, 3, 1, 1)
        as_bytes = (images.clamp(0, 1) * 255).round().to(torch.uint8)
        return inception(as_bytes.to(next(inception.parameters()).device))

    return extract
