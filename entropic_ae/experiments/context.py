"""What a run needs besides its config: where the cache and the data are, the device, and
the training loop's common arguments; and the trained result handed from training to
measurement."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from entropic_ae.data import load_images
from entropic_ae.experiments.cache import RunCache
from entropic_ae.experiments.config import RunConfig
from entropic_ae.training import History

__all__ = ["RunContext", "Trained", "images"]


@dataclass(frozen=True)
class RunContext:
    """Where a run reads and writes, and on what it computes. None of this changes a result."""

    cache: RunCache
    data_root: Path | None
    device: torch.device
    progress: bool = False


@dataclass
class Trained:
    """A trained model and what training reports: its history, the checkpoints it lives in
    (``{stage: path}``), extra parts (e.g. a second stage) and the epochs it resumed from."""

    model: nn.Module
    history: History
    checkpoints: dict[str, Path]
    parts: Mapping[str, Any] = field(default_factory=dict)
    resumed_from: int = 0


@functools.lru_cache(maxsize=8)
def _cached_images(dataset: str, split: str, limit: int | None,
                   root: str | None) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = load_images(dataset, split, root=root, limit=limit)
    x.requires_grad_(False)
    return x, y


def images(config: RunConfig, split: str, ctx: RunContext,
           limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The images and labels of ``config.dataset``'s ``split`` (training split: its first
    ``config.n_train`` images), loaded once per process and shared: do not modify them."""
    if split == "train":
        limit = config.n_train
    root = None if ctx.data_root is None else str(ctx.data_root)
    return _cached_images(config.dataset, split, limit, root)
