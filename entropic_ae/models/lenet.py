"""The LeNet feature network that defines the book's sample scores on grey 28×28 images.

A small classifier is trained once per dataset (MNIST or Fashion-MNIST) and cached next to
the data; its 128-dimensional penultimate features replace Inception-v3's for digits and
clothes, on which Inception was never trained. Variants for the metric validation study of
chapter 4: other training seeds (:func:`feature_networks`), and training on randomly moved
copies of the images (``augment=True``, :func:`random_affine`), whose features move less under
a 1-pixel shift or blur.
"""

from __future__ import annotations

import hashlib
import io
import math
import warnings
from pathlib import Path

import torch
from torch import nn

from entropic_ae._io import atomic_write
from entropic_ae.data import default_data_root, load_images

__all__ = ["LeNetFeatures", "feature_network", "feature_networks", "random_affine"]


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


AUGMENT = {"shift": 2.0, "degrees": 10.0, "scale": 0.1}
"""The ranges of :func:`random_affine` used for ``augment=True``: shifts of up to 2 pixels,
rotations of up to 10 degrees and scalings by up to 10 %, each uniform and independent."""


def random_affine(images: torch.Tensor, generator: torch.Generator, shift: float = 2.0,
                  degrees: float = 10.0, scale: float = 0.1) -> torch.Tensor:
    r"""Each image moved by its own random affine map (bilinear resampling, zeros outside).

    For image :math:`i`, with :math:`\theta_i \sim U(-\text{degrees}, \text{degrees})`,
    :math:`s_i \sim U(1 - \text{scale}, 1 + \text{scale})` and a shift
    :math:`t_i \sim U(-\text{shift}, \text{shift})^2` pixels, the output at pixel position
    :math:`p` (centred coordinates) is the input at :math:`R(\theta_i)^{-1}(p - t_i)/s_i`: the
    content is rotated by :math:`\theta_i`, scaled by :math:`s_i` and shifted by :math:`t_i`.
    All draws come from ``generator``; ``images`` is (N, C, H, W) with H = W.
    """
    if (not isinstance(images, torch.Tensor) or images.dim() != 4
            or images.shape[2] != images.shape[3]):
        raise ValueError(f"images must be a tensor (N, C, H, H), got "
                         f"{getattr(images, 'shape', type(images).__name__)}")
    n, size = images.shape[0], images.shape[-1]
    u = torch.rand(n, 4, generator=generator, dtype=torch.float64) * 2.0 - 1.0
    angle = u[:, 0] * math.radians(degrees)
    factor = 1.0 + u[:, 1] * scale
    shift_xy = u[:, 2:] * shift * 2.0 / size  # pixels -> normalised coordinates [-1, 1]
    cos, sin = torch.cos(angle) / factor, torch.sin(angle) / factor
    # affine_grid maps output coordinates to input coordinates: the inverse map
    theta = torch.zeros(n, 2, 3, dtype=torch.float64)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = cos, sin, -sin, cos
    theta[:, :, 2] = -torch.einsum("nij,nj->ni", theta[:, :, :2], shift_xy)
    grid = nn.functional.affine_grid(theta.to(images.dtype), list(images.shape),
                                     align_corners=False)
    return nn.functional.grid_sample(images, grid, mode="bilinear", padding_mode="zeros",
                                     align_corners=False)


def _train_lenet(images: torch.Tensor, labels: torch.Tensor, epochs: int, seed: int,
                 batch_size: int = 64, lr: float = 2e-3, augment: bool = False
                 ) -> LeNetFeatures:
    """Adam on cross-entropy, CPU, private RNG state: the same weights for the same inputs.
    With ``augment`` every batch is moved by :func:`random_affine` at the :data:`AUGMENT`
    ranges."""
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
                batch = images[idx]
                if augment:
                    batch = random_affine(batch, gen, **AUGMENT)
                loss = nn.functional.cross_entropy(net.classify(batch), labels[idx])
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
        atomic_write(folder / ".write-test", b"").unlink(missing_ok=True)
    except OSError as err:
        raise ValueError(f"cannot write the feature network's cache folder {folder} ({err}); "
                         "pass cache_dir= a writable folder (or root= a writable data root)"
                         ) from err


def feature_network(dataset: str = "mnist", root: str | Path | None = None,
                    cache_dir: str | Path | None = None, epochs: int = 2,
                    limit: int | None = None, seed: int = 0,
                    progress: bool = True, augment: bool = False
                    ) -> tuple[LeNetFeatures, float]:
    """The feature network for ``dataset`` ("mnist" or "fashion-mnist") and its test accuracy.

    Trained once on the CPU (``epochs`` of Adam at learning rate 0.002, batch 64, on the first
    ``limit`` training images, seeded with ``seed``; with ``augment``, on batches moved by
    :func:`random_affine` at the :data:`AUGMENT` ranges) and cached as
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
    if not isinstance(augment, bool):
        raise TypeError(f"augment must be True or False, got {augment!r}")
    if cache_dir is None:
        cache_dir = (Path(root) if root is not None else default_data_root()) / "feature_nets"
    settings = {"dataset": dataset, "epochs": epochs, "limit": limit, "seed": seed,
                "arch": "lenet-16-32-128", "batch": 64, "lr": 2e-3}
    if augment:  # only then: the networks cached before this option keep their names
        settings["augment"] = repr(sorted(AUGMENT.items()))
    config = repr(sorted(settings.items()))
    path = Path(cache_dir) / f"lenet-{dataset}-{hashlib.sha1(config.encode()).hexdigest()[:10]}.pt"
    net = LeNetFeatures()
    if path.exists():
        state = torch.load(path, map_location="cpu", weights_only=True)
        net.load_state_dict(state["model"])
        return net.eval(), float(state["test_accuracy"])
    _check_writable(path.parent)
    images, labels = load_images(dataset, "train", root=root, limit=limit)
    if progress:
        what = "augmented " if augment else ""
        print(f"training the {what}{dataset} feature network ({epochs} epochs on "
              f"{len(images)} images, seed {seed})")
    net = _train_lenet(images, labels, epochs, seed, augment=augment)
    test_images, test_labels = load_images(dataset, "test", root=root)
    acc = _accuracy(net, test_images, test_labels)
    buffer = io.BytesIO()
    try:
        torch.save({"model": net.state_dict(), "test_accuracy": acc, "config": config}, buffer)
        atomic_write(path, buffer.getvalue())
    except OSError as err:
        warnings.warn(f"could not cache the trained feature network in {path} ({err}); it is "
                      "returned, but will be trained again next time", stacklevel=2)
    return net, acc


def feature_networks(dataset: str = "mnist", seeds: tuple[int, ...] | list[int] = (0, 1, 2),
                     **kwargs: object) -> list[LeNetFeatures]:
    """:func:`feature_network` for each of ``seeds`` (the other arguments shared), in order:
    the networks of a multi-seed feature space (their accuracies are dropped)."""
    seeds = list(seeds)
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
        raise ValueError(f"seeds must be a non-empty list of ints >= 0, got {seeds!r}")
    return [feature_network(dataset, seed=s, **kwargs)[0] for s in seeds]
