"""Datasets as tensors: :func:`load_images` returns images in [0, 1] and labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from entropic_ae.data.layout import (
    _IDX_DATASETS,
    _INFO,
    DataCorruptedError,
    DataUnavailableError,
    PathLike,
    _check_limit,
    _check_name,
    _check_split,
    _manual_instructions,
    _open_torchvision,
    _present_raw_files,
    _repair_hint,
    _resolve_root,
    _verify_split_arrays,
    is_available,
    read_idx,
    verify_raw_files,
)
from entropic_ae.data.provision import ensure_dataset

__all__ = ["load_images"]


def load_images(name: str, split: str = "train", root: PathLike | None = None,
                limit: int | None = None, download: bool = True
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and labels of a dataset split as tensors.

    Returns ``(images, labels)``: images float32 in [0, 1] (``byte / 255``) shaped
    ``N x C x H x W`` (MNIST/Fashion-MNIST 1 x 28 x 28, CIFAR-10 3 x 32 x 32, CelebA 3 x 64 x 64
    after a 140-pixel center crop and resize), labels int64 class indices (CelebA: all zeros;
    it has no classes). ``limit`` keeps the first ``limit`` images of the split, in file order
    (all of them when the split is smaller). With ``download=True`` missing files are provisioned
    by :func:`ensure_dataset`; with ``download=False`` they must already be there.

    MNIST/Fashion-MNIST are read without torchvision (its import costs every worker ~1.2 s) by
    :func:`~entropic_ae.data.layout.read_idx`, after
    :func:`~entropic_ae.data.layout.verify_raw_files`; the loaded split's shape, labels 0..9 and
    images per class are checked too. Damage raises
    :class:`~entropic_ae.data.layout.DataCorruptedError` naming the file and the repair.
    CIFAR-10 and CelebA rely on torchvision's own integrity checks.
    """
    name = _check_name(name)
    split = _check_split(name, split)
    limit = _check_limit(limit)
    root = _resolve_root(root)
    if download:
        ensure_dataset(name, root)  # provisions what is missing, verifies what is there
    elif is_available(name, root) or _present_raw_files(name, root):
        verify_raw_files(name, root)  # damaged files: corrupt, not missing
    else:
        raise DataUnavailableError(
            f"{_INFO[name].pretty} is not under {root} and download=False. Run "
            f"`python -m entropic_ae.data {name} --root {root}` or call "
            f"ensure_dataset({name!r}). {_manual_instructions(name, root)}")
    if name in _IDX_DATASETS:
        data, targets = _read_idx_split(name, root, split)
        _verify_split_arrays(name, split, data, targets, root)
        images = data[:limit].unsqueeze(1).to(torch.float32).div_(255)
        return images, targets[:limit].to(torch.int64).clone()
    try:
        if name == "celeba":
            return _load_celeba(root, split, limit)
        dataset = _open_torchvision(name, root, split)
    except RuntimeError as err:  # torchvision: "Dataset not found or corrupted"
        raise DataUnavailableError(f"torchvision could not load {_INFO[name].pretty} from {root}: "
                                   f"{err}. {_manual_instructions(name, root)}") from err
    data = torch.from_numpy(np.asarray(dataset.data[:limit]))  # CIFAR-10: N x H x W x C uint8
    images = data.permute(0, 3, 1, 2).to(torch.float32).div_(255).contiguous()
    labels = torch.as_tensor(np.asarray(dataset.targets[:limit]), dtype=torch.int64)
    return images, labels


def _read_idx_split(name: str, root: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images N x 28 x 28 uint8, labels)`` of an MNIST-format split, read from its two IDX
    files; a file that does not parse raises DataCorruptedError naming it."""
    raw = root / _INFO[name].folder / "raw"
    arrays = []
    prefix = "train" if split == "train" else "t10k"
    for file_name in (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"):
        try:
            arrays.append(torch.from_numpy(read_idx(raw / file_name)))
        except ValueError as err:
            raise DataCorruptedError(f"could not parse {raw / file_name} ({err}). "
                                     f"{_repair_hint(name, root)}") from err
    return arrays[0], arrays[1]


def _load_celeba(root: Path, split: str, limit: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    from torchvision import transforms
    from tqdm.auto import tqdm

    transform = transforms.Compose(
        [transforms.CenterCrop(140), transforms.Resize(64), transforms.ToTensor()])
    dataset = _open_torchvision("celeba", root, split, transform=transform)
    n = len(dataset) if limit is None else min(limit, len(dataset))
    images = torch.empty((n, 3, 64, 64), dtype=torch.float32)
    for i in tqdm(range(n), desc=f"CelebA {split}", disable=n < 1000):
        images[i] = dataset[i][0]
    return images, torch.zeros(n, dtype=torch.int64)
