"""What a run needs besides its config: where the cache and the data are, the device; and the
run's data, loaded once per process.

The training split of a dataset is cut in two, always the same way: its last ``n_val`` images
(the option of the same name) are the validation set, used to decide when training has
converged and to choose settings; the first ``n_train`` of the others are the training images.
The test split is only measured on.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

from entropic_ae.checkpoints import hash_tensor
from entropic_ae.data import load_images
from entropic_ae.experiments.config import RunConfig

__all__ = ["RunContext", "data_fingerprint", "images", "toy_data", "train_and_validation"]


@dataclass(frozen=True)
class RunContext:
    """Where a run reads and writes, and on what it computes; none of this changes a result.
    ``cache`` is an :class:`~entropic_ae.experiments.cache.RunCache`."""

    cache: object
    data_root: Path | None
    device: torch.device
    progress: bool = False


@functools.lru_cache(maxsize=8)
def _split(dataset: str, split: str, root: str | None) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = load_images(dataset, split, root=root)
    x.requires_grad_(False)
    return x, y


def toy_data(n: int | None, dim: int) -> torch.Tensor:
    """The toy family's data: ``n`` (default 256) Gaussian points in ``dim`` dimensions,
    correlated by a fixed mixing matrix (the same for every seed)."""
    gen = torch.Generator().manual_seed(1234)
    mixing = torch.randn(dim, dim, generator=gen)
    return torch.randn(n or 256, dim, generator=gen) @ mixing / dim**0.5


#: Size of the known-bottleneck dataset's "training split" and "test split", as MNIST's.
KNOWN_BOTTLENECK_SIZES = {"train": 60000, "test": 10000}


@functools.lru_cache(maxsize=4)
def _known_bottleneck(k: int, seed: int, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    from entropic_ae.synthetic.known_bottleneck import make_known_bottleneck

    # the test split's codes come from another seed than the training split's
    data_seed = 2 * seed + (1 if split == "train" else 2) + 1000
    x, _ = make_known_bottleneck(KNOWN_BOTTLENECK_SIZES[split], k, seed, data_seed=data_seed)
    x = x.reshape(-1, 1, 28, 28)
    return x, torch.zeros(len(x), dtype=torch.long)


def images(config: RunConfig, split: str, root: Path | None,
           limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and labels of ``config.dataset``: ``split`` is ``"train"`` (the training
    images), ``"val"`` (the validation images) or ``"test"`` (its first ``limit``). Shared
    within a process: do not modify them."""
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    part = "test" if split == "test" else "train"
    if config.dataset == "known-bottleneck":
        x, y = _known_bottleneck(config.options.bottleneck_k, config.options.bottleneck_seed,
                                 part)
    else:
        x, y = _split(config.dataset, part, None if root is None else str(root))
    if split == "test":
        return x[:limit], y[:limit]
    n_val, n_train = config.options.n_val, config.n_train
    end = len(x) - n_val
    if end <= 1:
        raise ValueError(f"n_val = {n_val} leaves no training images of the {len(x)} in "
                         f"{config.dataset}'s training split")
    if n_train is not None and n_train > end:
        raise ValueError(f"n_train = {n_train} is more than the {end} training images of "
                         f"{config.dataset} (after holding out n_val = {n_val})")
    if split == "val":
        return x[end:], y[end:]
    stop = end if n_train is None else n_train
    return x[:stop], y[:stop]


def train_and_validation(config: RunConfig, root: Path | None
                         ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The training inputs and the validation inputs (None when ``n_val`` is 0)."""
    if config.family == "toy":
        return toy_data(config.n_train, config.options.dim), None
    x, _ = images(config, "train", root)
    return x, images(config, "val", root)[0] if config.options.n_val else None


@functools.lru_cache(maxsize=32)
def _digest_of(config: RunConfig, root: Path | None) -> str:
    h = hashlib.sha256()
    for part in train_and_validation(config, root):
        if part is None:
            continue
        h.update(f"{tuple(part.shape)} {part.dtype};".encode())
        hash_tensor(h, part)
    return h.hexdigest()[:16]


def data_fingerprint(config: RunConfig, root: Path | None) -> str:
    """A digest of the bytes of ``config``'s training and validation inputs (computed once per
    process and data selection): part of the run's cache key, so that other data never reuses
    a result."""
    o = config.options
    # only the fields that select the data: one digest per selection, not per config
    if config.family == "toy":
        probe = RunConfig.make("toy", "lin", dataset="synthetic", n_train=config.n_train,
                               dim=o.dim)
    elif config.dataset == "known-bottleneck":
        probe = RunConfig.make("mlp", "plain", dataset=config.dataset, n_train=config.n_train,
                               n_val=o.n_val, bottleneck_k=o.bottleneck_k,
                               bottleneck_seed=o.bottleneck_seed)
    else:
        probe = RunConfig.make(config.family, "plain" if config.family == "mlp" else "AE",
                               dataset=config.dataset, n_train=config.n_train, n_val=o.n_val)
    return _digest_of(probe, root)
