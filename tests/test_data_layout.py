"""entropic_ae.data.layout: the IDX format, the checks of the four arrays, the data root."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from entropic_ae.data import layout
from entropic_ae.data.layout import (
    DataCorruptedError,
    DataUnavailableError,
    decode_idx,
    default_data_root,
    encode_idx,
    read_idx,
    verify_idx_arrays,
    verify_raw_files,
    write_idx,
)

IDX_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


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
def test_idx_encode_matches_reference_and_round_trips(dtype, code, fmt, shape, reference_idx_bytes):
    rng = np.random.default_rng(0)
    if np.dtype(dtype).kind == "f":
        a = rng.normal(size=shape).astype(dtype)
    else:
        info = np.iinfo(dtype)
        a = rng.integers(info.min, int(info.max) + 1, size=shape).astype(dtype)
    raw = encode_idx(a)
    assert raw == reference_idx_bytes(a, code, fmt)
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


def test_root_from_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv(layout.DATA_ROOT_ENV, str(tmp_path / "somewhere"))
    assert default_data_root() == (tmp_path / "somewhere").resolve()
    assert not (tmp_path / "somewhere").exists(), "resolving the root must not create it"


def test_root_in_a_checkout_is_the_projects_data_folder(monkeypatch):
    monkeypatch.delenv(layout.DATA_ROOT_ENV, raising=False)
    project = Path(layout.__file__).resolve().parents[2]
    assert (project / "pyproject.toml").is_file()
    assert default_data_root() == project / "data"
    monkeypatch.setenv(layout.DATA_ROOT_ENV, "  ")
    assert default_data_root() == project / "data"


def test_root_outside_a_checkout_is_the_user_cache(tmp_path, monkeypatch):
    monkeypatch.delenv(layout.DATA_ROOT_ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    installed = tmp_path / "site-packages" / "entropic_ae" / "data" / "layout.py"
    monkeypatch.setattr(layout, "__file__", str(installed))
    assert default_data_root() == tmp_path / "home" / ".cache" / "entropic_ae" / "data"


# --- verifying the raw files of a provisioned dataset --------------------------------------------


@pytest.fixture
def tiny_mnist(tmp_path, monkeypatch):
    """A stand-in MNIST of 6 + 2 images under ``tmp_path/MNIST/raw``: the layout's sizes and
    checksums are patched to those of these files (Fashion-MNIST's to those of other files)."""
    rng = np.random.default_rng(7)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, size=(6, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": np.array([1, 0, 2, 9, 9, 3], dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, size=(2, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": np.array([4, 5], dtype=np.uint8),
    }
    raw = tmp_path / "MNIST" / "raw"
    files = {name: encode_idx(a) for name, a in arrays.items()}
    for name in files:
        write_idx(raw / name, arrays[name])
    monkeypatch.setattr(layout, "IDX_FILES", {n: len(b) for n, b in files.items()})
    monkeypatch.setattr(layout, "MNIST_RAW_MD5",
                        {n: hashlib.md5(b).hexdigest() for n, b in files.items()})
    other = {n: encode_idx(a[::-1].copy()) for n, a in arrays.items()}
    monkeypatch.setattr(layout, "FASHION_RAW_MD5",
                        {n: hashlib.md5(b).hexdigest() for n, b in other.items()})
    monkeypatch.setattr(layout, "MNIST_REFERENCE", layout.IdxReference(
        6, 2, (1, 0), (4, 5), 0.5, mean_tol=1.0,
        train_counts=(1, 1, 1, 1, 0, 0, 0, 0, 0, 2), test_counts=(0, 0, 0, 0, 1, 1, 0, 0, 0, 0)))
    return raw, arrays, other


def test_verify_accepts_the_originals_and_caches_the_result(tiny_mnist, tmp_path, monkeypatch):
    raw, _, _ = tiny_mnist
    assert verify_raw_files("mnist", tmp_path) == raw
    stamp = json.loads((raw / layout.VERIFIED_STAMP).read_text())
    assert stamp["dataset"] == "mnist"
    assert {n: f["md5"] for n, f in stamp["files"].items()} == layout.MNIST_RAW_MD5
    hashed = []
    monkeypatch.setattr(layout, "_file_md5", lambda path: hashed.append(path))
    verify_raw_files("mnist", tmp_path)
    assert hashed == [], "an unchanged, verified folder is not hashed again"


def test_verify_names_every_damaged_file_in_one_error(tiny_mnist, tmp_path):
    raw, _, other = tiny_mnist
    with open(raw / "train-images-idx3-ubyte", "r+b") as fh:
        fh.truncate(100)
    (raw / "t10k-labels-idx1-ubyte").write_bytes(other["t10k-labels-idx1-ubyte"])
    with pytest.raises(DataCorruptedError) as info:
        verify_raw_files("mnist", tmp_path)
    assert isinstance(info.value, ValueError) and isinstance(info.value, DataUnavailableError)
    message = str(info.value)
    assert "train-images-idx3-ubyte: 100 bytes, expected 4720" in message
    assert "t10k-labels-idx1-ubyte: this is Fashion-MNIST's file" in message
    assert "train-labels" not in message and "t10k-images" not in message
    assert "delete the folder" in message and "python -m entropic_ae.data mnist" in message


def test_verify_describes_a_wrong_header_and_bad_labels(tiny_mnist, tmp_path):
    raw, arrays, _ = tiny_mnist
    images = bytearray((raw / "train-images-idx3-ubyte").read_bytes())
    images[7] = 5  # first dimension 5 instead of 6
    (raw / "train-images-idx3-ubyte").write_bytes(bytes(images))
    labels = bytearray((raw / "t10k-labels-idx1-ubyte").read_bytes())
    labels[9] = 200
    (raw / "t10k-labels-idx1-ubyte").write_bytes(bytes(labels))
    with pytest.raises(DataCorruptedError) as info:
        verify_raw_files("mnist", tmp_path)
    message = str(info.value)
    assert "header says 0x00000803 (5, 28, 28), expected 0x00000803 (6, 28, 28)" in message
    assert "label 200 at index 1" in message and "outside 0..9" in message


def test_verify_notices_new_content_behind_an_old_timestamp(tiny_mnist, tmp_path):
    raw, _, _ = tiny_mnist
    verify_raw_files("mnist", tmp_path)
    target = raw / "train-labels-idx1-ubyte"
    before = target.stat()
    data = bytearray(target.read_bytes())
    data[-1] = 7
    target.write_bytes(bytes(data))
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))  # same size, same mtime
    with pytest.raises(DataCorruptedError, match="train-labels-idx1-ubyte"):
        verify_raw_files("mnist", tmp_path)


def test_verify_reports_missing_files_as_missing(tiny_mnist, tmp_path):
    raw, _, _ = tiny_mnist
    (raw / "t10k-images-idx3-ubyte").unlink()
    with pytest.raises(DataUnavailableError) as info:
        verify_raw_files("mnist", tmp_path)
    assert not isinstance(info.value, DataCorruptedError)
    assert "t10k-images-idx3-ubyte" in str(info.value) and "missing" in str(info.value)


def test_verify_leaves_cifar10_and_celeba_to_torchvision(tmp_path):
    for name in ("cifar10", "celeba"):
        assert verify_raw_files(name, tmp_path) is None
    assert not list(tmp_path.iterdir())


def test_verify_idx_arrays_checks_class_counts():
    labels = np.array([0, 1, 1, 2], dtype=np.uint8)
    arrays = {"train-images-idx3-ubyte": np.zeros((4, 28, 28), np.uint8),
              "train-labels-idx1-ubyte": labels,
              "t10k-images-idx3-ubyte": np.zeros((1, 28, 28), np.uint8),
              "t10k-labels-idx1-ubyte": np.array([3], dtype=np.uint8)}
    counts = (1, 2, 1, 0, 0, 0, 0, 0, 0, 0)
    test_counts = (0, 0, 0, 1, 0, 0, 0, 0, 0, 0)
    ref = layout.IdxReference(4, 1, (), (), 0.0, train_counts=counts, test_counts=test_counts)
    verify_idx_arrays(arrays, ref)
    wrong = layout.IdxReference(4, 1, (), (), 0.0, train_counts=(2, 1, 1, 0, 0, 0, 0, 0, 0, 0),
                                test_counts=test_counts)
    with pytest.raises(ValueError, match="images per class"):
        verify_idx_arrays(arrays, wrong)


def test_the_references_hold_the_published_class_counts():
    assert sum(layout.MNIST_REFERENCE.train_counts) == 60_000
    assert sum(layout.MNIST_REFERENCE.test_counts) == 10_000
    assert layout.FASHION_REFERENCE.train_counts == (6000,) * 10
    assert layout.FASHION_REFERENCE.test_counts == (1000,) * 10
