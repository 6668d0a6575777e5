"""entropic_ae.data.layout: the IDX format, the checks of the four arrays, the data root."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from entropic_ae.data import layout
from entropic_ae.data.layout import (
    decode_idx,
    default_data_root,
    encode_idx,
    read_idx,
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
