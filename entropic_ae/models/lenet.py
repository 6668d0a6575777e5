"""The LeNet feature network that defines the book's Fréchet distance on grey 28×28 images.

A small classifier is trained once per dataset (MNIST or Fashion-MNIST) and cached next to
the data; its 128-dimensional penultimate features replace Inception-v3's for digits and
clothes, on which Inception was never trained.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from entropic_ae.data import default_data_root, load_images

__all__ = ["LeNetFeatures", "feature_network"]


class LeNetFeatures(nn.Module):
    """Small LeNet-style classifier for 1 × 28 × 28 images; its features define the Fréchet
    distance of the book.

    conv 5×5 (16) → ReLU → max-pool 2 → conv 5×5 (32) → ReLU → max-pool 2 → linear 512 → 128
    → ReLU (the features) → linear 128 → 10 (the logits). ``forward`` returns the 128-d
    features, ``classify`` the logits.
    """

    feature_dim = 128

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 4 * 4, self.feature_dim), nn.ReLU())
        self.head = nn.Linear(self.feature_dim, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            raise ValueError(f"LeNetFeatures expects images (N, 1, 28, 28), got {tuple(x.shape)}")
        return self.body(x)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward(x))


def _train_lenet(images: torch.Tensor, labels: torch.Tensor, epochs: int, seed: int,
                 batch_size: int = 64, lr: float = 2e-3) -> LeNetFeatures:
    """Adam on cross-entropy, CPU, private RNG state: the same weights for the same inputs."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = LeNetFeatures()
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        gen = torch.Generator().manual_seed(seed)
        net.train()
        for _ in range(epochs):
            order = torch.randperm(len(images), generator=gen)
            for i in range(0, len(images), batch_size):
                idx = order[i:i + batch_size]
                loss = nn.functional.cross_entropy(net.classify(images[idx]), labels[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    return net.eval()


@torch.no_grad()
def _accuracy(net: LeNetFeatures, images: torch.Tensor, labels: torch.Tensor) -> float:
    correct = 0
    for i in range(0, len(images), 1000):
        correct += int((net.classify(images[i:i + 1000]).argmax(1) == labels[i:i + 1000]).sum())
    return correct / len(images)


def _check_writable(folder: Path) -> None:
    """Create ``folder`` if needed and write (then delete) a file in it; ValueError if either
    fails, so that nothing is trained whose result could not be kept."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise ValueError(f"cannot write the feature network's cache folder {folder} ({err}); "
                         "pass cache_dir= a writable folder (or root= a writable data root)"
                         ) from err


def feature_network(dataset: str = "mnist", root: str | Path | None = None,
                    cache_dir: str | Path | None = None, epochs: int = 2,
                    limit: int | None = None, seed: int = 0,
                    progress: bool = True) -> tuple[LeNetFeatures, float]:
    """The feature network for ``dataset`` ("mnist" or "fashion-mnist") and its test accuracy.

    Trained once on the CPU (``epochs`` of Adam at learning rate 0.002, batch 64, on the first
    ``limit`` training images, seeded with ``seed``) and cached as
    ``<cache_dir>/lenet-<dataset>-<hash of the settings>.pt``; later calls load it. The default
    ``cache_dir`` is ``<data root>/feature_nets`` (see :func:`entropic_ae.data.default_data_root`).
    The accuracy is measured on the full test split. Before anything is trained, the cache
    folder is created and test-written: an unwritable one raises ``ValueError`` at once. Should
    saving still fail afterwards (e.g. a full disk), a warning says so and the trained network
    is returned all the same.
    """
    if dataset not in ("mnist", "fashion-mnist"):
        raise ValueError(f"the LeNet feature network is for 'mnist' or 'fashion-mnist', got "
                         f"{dataset!r}; for colour images pass another feature extractor")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if cache_dir is None:
        cache_dir = (Path(root) if root is not None else default_data_root()) / "feature_nets"
    config = repr(sorted({"dataset": dataset, "epochs": epochs, "limit": limit, "seed": seed,
                          "arch": "lenet-16-32-128", "batch": 64, "lr": 2e-3}.items()))
    path = Path(cache_dir) / f"lenet-{dataset}-{hashlib.sha1(config.encode()).hexdigest()[:10]}.pt"
    net = LeNetFeatures()
    if path.exists():
        state = torch.load(path, map_location="cpu", weights_only=True)
        net.load_state_dict(state["model"])
        return net.eval(), float(state["test_accuracy"])
    _check_writable(path.parent)
    images, labels = load_images(dataset, "train", root=root, limit=limit)
    if progress:
        print(f"training the {dataset} feature network ({epochs} epochs on {len(images)} images)")
    net = _train_lenet(images, labels, epochs, seed)
    test_images, test_labels = load_images(dataset, "test", root=root)
    acc = _accuracy(net, test_images, test_labels)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save({"model": net.state_dict(), "test_accuracy": acc, "config": config}, tmp)
        tmp.replace(path)
    except OSError as err:
        warnings.warn(f"could not cache the trained feature network in {path} ({err}); it is "
                      "returned, but will be trained again next time", stacklevel=2)
    finally:
        tmp.unlink(missing_ok=True)
    return net, acc
