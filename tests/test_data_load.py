"""entropic_ae.data.load: argument checks, tensors from (synthetic stand-ins for) the torchvision
datasets, and the real files, which the test runner provisions beforehand with
``python -m entropic_ae.data`` (skipped only when they are absent)."""

from __future__ import annotations

import hashlib
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from entropic_ae.data import load
from entropic_ae.data.layout import (
    FASHION_RAW_MD5,
    MNIST_RAW_MD5,
    DataUnavailableError,
    default_data_root,
    is_available,
)
from entropic_ae.data.load import load_images
from entropic_ae.data.provision import ensure_dataset


def test_unknown_name_split_and_bad_limit(tmp_path):
    with pytest.raises(ValueError, match="mnist, fashion-mnist, cifar10, celeba"):
        load_images("svhn", root=tmp_path)
    with pytest.raises(ValueError, match="train, test"):
        load_images("mnist", split="valid", root=tmp_path)
    with pytest.raises(ValueError, match="train, valid, test, all"):
        load_images("celeba", split="val", root=tmp_path)
    for bad in (0, -3):
        with pytest.raises(ValueError, match="positive int"):
            load_images("mnist", limit=bad, root=tmp_path)
    for bad in (2.5, "10", True):
        with pytest.raises(TypeError, match="positive int"):
            load_images("mnist", limit=bad, root=tmp_path)
    with pytest.raises(ValueError, match="unknown dataset"):
        ensure_dataset("imagenet", root=tmp_path)
    assert not list(tmp_path.iterdir()), "argument errors must come before any file access"


def test_names_are_case_and_underscore_tolerant():
    assert load._check_name("Fashion_MNIST") == "fashion-mnist"


def test_download_false_without_files_raises(tmp_path):
    with pytest.raises(DataUnavailableError, match="download=False"):
        load_images("fashion-mnist", root=tmp_path, download=False)


def test_mnist_loading_reads_data_and_targets(tmp_path, monkeypatch):
    rng = np.random.default_rng(4)
    pixels = torch.from_numpy(rng.integers(0, 256, size=(6, 28, 28), dtype=np.uint8))
    targets = torch.tensor([3, 1, 4, 1, 5, 9])
    monkeypatch.setattr(load, "is_available", lambda name, root=None: True)
    fake = SimpleNamespace(data=pixels, targets=targets)
    monkeypatch.setattr(load, "_open_torchvision", lambda name, root, split, **kw: fake)
    images, labels = load_images("mnist", root=tmp_path, limit=4, download=False)
    assert images.shape == (4, 1, 28, 28) and images.dtype == torch.float32
    assert labels.dtype == torch.int64 and labels.tolist() == [3, 1, 4, 1]
    for i in range(4):  # per-item reference
        for r in range(28):
            for c in range(28):
                assert images[i, 0, r, c].item() == pytest.approx(int(pixels[i, r, c]) / 255)


def test_cifar10_loading_goes_to_nchw(tmp_path, monkeypatch):
    rng = np.random.default_rng(5)
    hwc = rng.integers(0, 256, size=(5, 32, 32, 3), dtype=np.uint8)
    monkeypatch.setattr(load, "is_available", lambda name, root=None: True)
    fake = SimpleNamespace(data=hwc, targets=[0, 9, 2, 3, 4])
    monkeypatch.setattr(load, "_open_torchvision", lambda name, root, split, **kw: fake)
    images, labels = load_images("cifar10", root=tmp_path, split="test", download=False)
    assert images.shape == (5, 3, 32, 32) and images.is_contiguous()
    assert labels.dtype == torch.int64 and labels.tolist() == [0, 9, 2, 3, 4]
    np.testing.assert_allclose(images[2, 1].numpy(), hwc[2, :, :, 1] / 255, rtol=1e-6)
    assert load_images("cifar10", root=tmp_path, limit=2, download=False)[0].shape[0] == 2


def test_celeba_loading_crops_resizes_and_gives_zero_labels(tmp_path, monkeypatch):
    from PIL import Image

    class FakeCelebA:
        def __init__(self, transform):
            self.transform = transform

        def __len__(self):
            return 3

        def __getitem__(self, i):
            pixels = np.full((218, 178, 3), 40 * i, dtype=np.uint8)
            return self.transform(Image.fromarray(pixels)), None

    monkeypatch.setattr(load, "is_available", lambda name, root=None: True)
    monkeypatch.setattr(load, "_open_torchvision",
                        lambda name, root, split, transform=None, **kw: FakeCelebA(transform))
    images, labels = load_images("celeba", root=tmp_path, limit=2, download=False)
    assert images.shape == (2, 3, 64, 64) and images.dtype == torch.float32
    assert labels.dtype == torch.int64 and labels.tolist() == [0, 0]
    assert torch.allclose(images[1], torch.full((3, 64, 64), 40 / 255))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "train_head", "test_head", "train_mean"),
    [("mnist", [5, 0, 4, 1, 9, 2, 1, 3, 1, 4], [7, 2, 1, 0, 4, 1, 4, 9, 5, 9], 0.1307),
     ("fashion-mnist", [9, 0, 0, 3, 0, 2, 7, 2, 5, 5], [9, 2, 1, 1, 6, 1, 4, 6, 5, 7], 0.2860)],
)
def test_real_datasets_load_through_torchvision(name, train_head, test_head, train_mean):
    if not is_available(name):
        pytest.skip(f"{name} raw files not found under {default_data_root()}; "
                    f"run `python -m entropic_ae.data {name}` first")
    for split, n, head in (("train", 60_000, train_head), ("test", 10_000, test_head)):
        images, labels = load_images(name, split, download=False)
        assert images.shape == (n, 1, 28, 28) and images.dtype == torch.float32
        assert labels.shape == (n,) and labels.dtype == torch.int64
        assert float(images.min()) == 0.0 and float(images.max()) == 1.0
        assert labels[:10].tolist() == head
        assert torch.bincount(labels, minlength=10).sum().item() == n
        if split == "train":
            assert abs(images.double().mean().item() - train_mean) < 1e-4
    first, _ = load_images(name, limit=3, download=False)
    assert first.shape == (3, 1, 28, 28)
    raw = default_data_root() / {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}[name] / "raw"
    expected = MNIST_RAW_MD5 if name == "mnist" else FASHION_RAW_MD5
    for file_name, md5 in expected.items():  # byte for byte the original files
        assert hashlib.md5((raw / file_name).read_bytes()).hexdigest() == md5
