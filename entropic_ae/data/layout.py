"""Where the datasets live and what their files must look like: names, splits, torchvision's
folder layout, the data root, the IDX format of MNIST-style files with the sizes, checksums and
array facts of the originals, and :func:`verify_raw_files`, which checks provisioned files.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from entropic_ae._io import atomic_write as _atomic_write

__all__ = [
    "DATASETS", "DATA_ROOT_ENV", "FASHION_RAW_MD5", "FASHION_REFERENCE", "IDX_FILES",
    "MNIST_RAW_MD5", "MNIST_REFERENCE", "SPLITS", "VERIFIED_STAMP", "DataCorruptedError",
    "DataUnavailableError", "IdxReference", "decode_idx", "default_data_root", "encode_idx",
    "is_available", "read_idx", "verify_idx_arrays", "verify_raw_files", "write_idx",
]

PathLike = str | os.PathLike


class _Dataset(NamedTuple):
    pretty: str  # its name in messages
    folder: str  # the folder below the data root that holds it (torchvision's layout)
    torchvision: str  # its class in torchvision.datasets
    splits: tuple[str, ...]


_INFO: dict[str, _Dataset] = {
    "mnist": _Dataset("MNIST", "MNIST", "MNIST", ("train", "test")),
    "fashion-mnist": _Dataset("Fashion-MNIST", "FashionMNIST", "FashionMNIST", ("train", "test")),
    "cifar10": _Dataset("CIFAR-10", "cifar-10-batches-py", "CIFAR10", ("train", "test")),
    "celeba": _Dataset("CelebA", "celeba", "CelebA", ("train", "valid", "test", "all")),
}
#: Dataset names accepted everywhere in this module.
DATASETS: tuple[str, ...] = tuple(_INFO)
#: Splits accepted per dataset.
SPLITS: dict[str, tuple[str, ...]] = {name: d.splits for name, d in _INFO.items()}
#: Environment variable that overrides the default data root.
DATA_ROOT_ENV = "ENTROPIC_AE_DATA"
_IDX_DATASETS = ("mnist", "fashion-mnist")
# The annotation files torchvision's CelebA needs next to its image folder.
_CELEBA_FILES = ("list_attr_celeba.txt", "identity_CelebA.txt", "list_bbox_celeba.txt",
                 "list_landmarks_align_celeba.txt", "list_eval_partition.txt")
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


class DataUnavailableError(RuntimeError):
    """A dataset could not be found or provisioned by any route; the message says how to fix it."""


class DataCorruptedError(DataUnavailableError, ValueError):
    """A dataset's files are in place but are not the original files (wrong size, wrong bytes,
    another dataset's files); the message names each file, what was expected, and the repair."""


#: File, inside a verified raw folder, that records the size, times and MD5 of each checked file.
VERIFIED_STAMP = ".entropic_ae-verified.json"


@dataclass(frozen=True)
class IdxReference:
    """Facts every genuine copy of an MNIST-format dataset satisfies (used to check our files)."""

    n_train: int
    n_test: int
    train_head: tuple[int, ...]
    test_head: tuple[int, ...]
    train_mean: float  # mean training pixel in [0, 1] (bytes / 255)
    mean_tol: float = 1e-4
    train_counts: tuple[int, ...] | None = None  # images per class 0..9, training split
    test_counts: tuple[int, ...] | None = None  # images per class 0..9, test split


MNIST_REFERENCE = IdxReference(
    60_000, 10_000, (5, 0, 4, 1, 9, 2, 1, 3, 1, 4), (7, 2, 1, 0, 4, 1, 4, 9, 5, 9), 0.1307,
    train_counts=(5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949),
    test_counts=(980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009))
FASHION_REFERENCE = IdxReference(
    60_000, 10_000, (9, 0, 0, 3, 0, 2, 7, 2, 5, 5), (9, 2, 1, 1, 6, 1, 4, 6, 5, 7), 0.2860,
    train_counts=(6000,) * 10, test_counts=(1000,) * 10)


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
    project = Path(__file__).resolve().parents[2]
    pyproject = project / "pyproject.toml"
    try:
        is_checkout = pyproject.is_file() and "entropic_ae" in pyproject.read_text(encoding="utf-8")
    except OSError:
        is_checkout = False
    return project / "data" if is_checkout else Path.home() / ".cache" / "entropic_ae" / "data"


def _resolve_root(root: PathLike | None) -> Path:
    return default_data_root() if root is None else Path(root).expanduser().resolve()


# IDX type code -> the big-endian dtype it stands for
_IDX_TYPES: dict[int, np.dtype] = {code: np.dtype(f">{t}") for code, t in (
    (0x08, "u1"), (0x09, "i1"), (0x0B, "i2"), (0x0C, "i4"), (0x0D, "f4"), (0x0E, "f8"))}
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


def write_idx(path: PathLike, array: np.ndarray) -> None:
    """Write ``array`` as an (uncompressed) IDX file at ``path``, atomically."""
    _atomic_write(Path(path), encode_idx(array))


def read_idx(path: PathLike) -> np.ndarray:
    """Read an IDX file; a name ending in ``.gz`` is decompressed first."""
    path = Path(path)
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    return decode_idx(data)


def _split_problems(split: str, shape: Sequence[int], labels: Any, n: int,
                    per_class: Sequence[int] | None) -> list[str]:
    """What is wrong with a split: an image shape other than ``(n, 28, 28)``, labels that are not
    ``n`` integers in 0..9, images per class other than ``per_class`` (where given)."""
    labels = np.asarray(labels)
    problems = []
    if tuple(shape) != (n, 28, 28):
        problems.append(f"{split} images have shape {tuple(shape)}, expected {(n, 28, 28)}")
    if labels.shape != (n,) or labels.dtype.kind not in "iu":
        return problems + [f"{split} labels are {labels.dtype} of shape {labels.shape}, "
                           f"expected {n} integers, shape {(n,)}"]
    bad = np.flatnonzero((labels < 0) | (labels > 9))
    if bad.size:
        i = int(bad[0])
        problems.append(f"{bad.size} {split} label(s) outside 0..9 (label {int(labels[i])} "
                        f"at index {i})")
    elif per_class is not None:
        counts = np.bincount(labels, minlength=10).tolist()
        if tuple(counts) != tuple(per_class):
            problems.append(f"{split} images per class {counts}, expected {list(per_class)}")
    return problems


def verify_idx_arrays(arrays: Mapping[str, np.ndarray], reference: IdxReference) -> None:
    """Check the four arrays (keyed by IDX file name) against ``reference``; ValueError if not.

    Images must be uint8 ``N x 28 x 28``, labels uint8 with every label in 0..9 (the images
    per class equal the reference's counts where it has them), N and the first labels as in the
    reference, and the mean training pixel, ``sum(bytes) / (255 * count)``, within
    ``reference.mean_tol`` of ``reference.train_mean``.
    """
    problems: list[str] = []
    missing = [k for k in IDX_FILES if k not in arrays]
    if missing:
        raise ValueError(f"missing arrays: {', '.join(missing)}")
    for split, n, head, per_class in (
            ("train", reference.n_train, reference.train_head, reference.train_counts),
            ("t10k", reference.n_test, reference.test_head, reference.test_counts)):
        images = arrays[f"{split}-images-idx3-ubyte"]
        labels = arrays[f"{split}-labels-idx1-ubyte"]
        problems += [f"{split} {kind}: expected uint8, got {a.dtype}"
                     for kind, a in (("images", images), ("labels", labels)) if a.dtype != np.uint8]
        problems += _split_problems(split, images.shape, labels, n, per_class)
        if labels.shape == (n,) and tuple(int(v) for v in labels[: len(head)]) != head:
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


def is_available(name: str, root: PathLike | None = None) -> bool:
    """True when ``name``'s files are in place under ``root`` (file checks only, no reading).

    MNIST/Fashion-MNIST: the four uncompressed IDX files with their exact sizes. CIFAR-10: the
    six batch files and ``batches.meta``. CelebA: the image folder and the five annotation
    files. (torchvision checks CIFAR-10's and CelebA's checksums when it loads them.)
    """
    name = _check_name(name)
    root = _resolve_root(root)
    folder = root / _INFO[name].folder
    if name in _IDX_DATASETS:
        _, missing, problems = _raw_file_status(name, root)
        return not missing and not problems
    if name == "cifar10":
        files = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
        return all((folder / f).is_file() for f in files)
    return (folder / "img_align_celeba").is_dir() and all((folder / f).is_file()
                                                          for f in _CELEBA_FILES)


def _raw_md5(name: str) -> Mapping[str, str]:
    return MNIST_RAW_MD5 if name == "mnist" else FASHION_RAW_MD5


def _reference(name: str) -> IdxReference:
    return MNIST_REFERENCE if name == "mnist" else FASHION_REFERENCE


def _repair_hint(name: str, root: Path) -> str:
    return (f"To repair it, delete the folder {root / _INFO[name].folder} and provision the "
            f"dataset again: `python -m entropic_ae.data {name} --root {root}`.")


def _corrupted(name: str, root: Path, problems: Sequence[str]) -> DataCorruptedError:
    lines = "\n".join(f"  - {p}" for p in problems)
    return DataCorruptedError(f"{_INFO[name].pretty} under {root / _INFO[name].folder / 'raw'} "
                              f"is not the original dataset:\n{lines}\n{_repair_hint(name, root)}")


def _raw_file_status(name: str, root: Path) -> tuple[dict[str, os.stat_result], list[str],
                                                     list[str]]:
    """``(stats of the present files, names of the missing ones, size problems)`` (stat only)."""
    raw = root / _INFO[name].folder / "raw"
    stats: dict[str, os.stat_result] = {}
    missing: list[str] = []
    problems: list[str] = []
    for file_name, size in IDX_FILES.items():
        try:
            st = (raw / file_name).stat()
        except FileNotFoundError:
            missing.append(file_name)
            continue
        except OSError as err:
            problems.append(f"{file_name}: cannot be read ({err})")
            continue
        if st.st_size != size:
            problems.append(f"{file_name}: {st.st_size} bytes, expected {size} "
                            "(truncated or damaged)")
        stats[file_name] = st
    return stats, missing, problems


def _raise_if_damaged(name: str, root: Path) -> None:
    """DataCorruptedError when a present raw file has the wrong size (files missing are fine)."""
    if name in _IDX_DATASETS:
        _, missing, problems = _raw_file_status(name, root)
        if problems:
            raise _corrupted(name, root, problems + [f"{f}: missing" for f in missing])


def _present_raw_files(name: str, root: Path) -> list[str]:
    """Names of the raw IDX files of ``name`` that exist (empty for CIFAR-10/CelebA)."""
    if name not in _IDX_DATASETS:
        return []
    _, missing, _ = _raw_file_status(name, root)
    return [f for f in IDX_FILES if f not in missing]


def _file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_stamp(raw: Path, name: str) -> Mapping[str, Any]:
    try:
        stamp = json.loads((raw / VERIFIED_STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    files = stamp.get("files") if isinstance(stamp, dict) and stamp.get("dataset") == name else {}
    return files if isinstance(files, dict) else {}


def _describe_damage(name: str, path: Path, md5: str) -> str:
    """Why a raw file of the right size is not the original: another dataset's file, a wrong
    header, labels outside 0..9, or other bytes; always with both MD5s."""
    file_name = path.name
    expected = _raw_md5(name)[file_name]
    sums = f"MD5 {md5}, expected {expected}"
    other = "fashion-mnist" if name == "mnist" else "mnist"
    if md5 == _raw_md5(other).get(file_name):
        return f"this is {_INFO[other].pretty}'s file, not {_INFO[name].pretty}'s ({sums})"
    n = _reference(name).n_train if file_name.startswith("train") else _reference(name).n_test
    magic, dims = (0x0803, (n, 28, 28)) if "images" in file_name else (0x0801, (n,))
    with open(path, "rb") as fh:
        head = fh.read(4 + 4 * 4)
    got_magic = int.from_bytes(head[:4], "big")
    ndim = min(got_magic & 0xFF, (len(head) - 4) // 4)
    got_dims = tuple(int.from_bytes(head[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if got_magic != magic or got_dims != dims:
        return (f"its header says 0x{got_magic:08x} {got_dims}, expected 0x{magic:08x} {dims} "
                f"({sums})")
    if "labels" in file_name:
        labels = np.frombuffer(path.read_bytes(), dtype=np.uint8, offset=8)
        bad = np.flatnonzero(labels > 9)
        if bad.size:
            i = int(bad[0])
            return (f"holds label {int(labels[i])} at index {i}, outside 0..9 ({bad.size} "
                    f"label(s) out of range; {sums})")
    return f"its bytes differ from the original's ({sums})"


def verify_raw_files(name: str, root: PathLike | None = None) -> Path | None:
    """Check that MNIST's or Fashion-MNIST's four raw files under ``root`` are the originals.

    Each file must have its exact size and the published MD5 (:data:`MNIST_RAW_MD5`,
    :data:`FASHION_RAW_MD5`). Once all four pass, their size, mtime, ctime, inode and MD5 are
    recorded in :data:`VERIFIED_STAMP` in the raw folder, and later calls only compare those
    (a ``stat`` per file) instead of hashing 55 MB again (a read-only folder is hashed every
    time). Returns the raw folder. Raises :class:`DataCorruptedError` naming every damaged file
    (wrong size, another dataset's file, a wrong header, labels outside 0..9, other bytes) and
    the repair, :class:`DataUnavailableError` if files are missing. CIFAR-10 and CelebA are left
    to torchvision's own integrity checks: nothing is read and ``None`` is returned.
    """
    name = _check_name(name)
    root = _resolve_root(root)
    if name not in _IDX_DATASETS:
        return None
    raw = root / _INFO[name].folder / "raw"
    stats, missing, problems = _raw_file_status(name, root)
    if missing and not problems:
        raise DataUnavailableError(
            f"{_INFO[name].pretty} under {raw} is incomplete: missing {', '.join(missing)}. Run "
            f"`python -m entropic_ae.data {name} --root {root}`. "
            f"{_manual_instructions(name, root)}")
    expected = _raw_md5(name)
    # ctime and inode change whenever the content is rewritten, even behind a restored mtime
    records = {f: {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns,
                   "inode": st.st_ino, "md5": expected[f]} for f, st in stats.items()}
    stamp = _read_stamp(raw, name)
    if not problems and all(stamp.get(f) == record for f, record in records.items()):
        return raw
    for file_name, st in stats.items():
        if st.st_size != IDX_FILES[file_name]:
            continue  # already reported
        md5 = _file_md5(raw / file_name)
        if md5 != expected[file_name]:
            problems.append(f"{file_name}: {_describe_damage(name, raw / file_name, md5)}")
    if problems:
        raise _corrupted(name, root, sorted(problems + [f"{f}: missing" for f in missing],
                                            key=lambda p: list(IDX_FILES).index(p.split(":")[0])))
    stamp_text = json.dumps({"format": 1, "dataset": name, "files": records}, indent=1)
    try:
        _atomic_write(raw / VERIFIED_STAMP, stamp_text.encode("utf-8"))
    except OSError:
        pass  # a read-only folder: verified all the same, hashed again next time
    return raw


def _verify_split_arrays(name: str, split: str, images: Any, labels: Any, root: Path) -> None:
    """DataCorruptedError unless a loaded MNIST/Fashion-MNIST split has the reference's shape
    ``N x 28 x 28``, N labels in 0..9 and the reference's images per class."""
    if name not in _IDX_DATASETS:
        return
    ref = _reference(name)
    n, per_class = ((ref.n_train, ref.train_counts) if split == "train"
                    else (ref.n_test, ref.test_counts))
    problems = _split_problems(split, images.shape, labels, n, per_class)
    if problems:
        raise _corrupted(name, root, problems)


def _manual_instructions(name: str, root: Path) -> str:
    if name in _IDX_DATASETS:
        raw = root / _INFO[name].folder / "raw"
        source = ("https://ossci-datasets.s3.amazonaws.com/mnist/" if name == "mnist" else
                  "https://github.com/zalandoresearch/fashion-mnist (data/fashion/)")
        return (f"To supply the files by hand, put the four uncompressed IDX files "
                f"{', '.join(IDX_FILES)} into {raw}/ (download the .gz files from {source} and "
                f"gunzip them), or point {DATA_ROOT_ENV} / root= at a folder that already holds "
                f"{_INFO[name].folder}/raw/.")
    if name == "cifar10":
        return (f"To supply the files by hand, put cifar-10-python.tar.gz "
                f"(https://www.cs.toronto.edu/~kriz/cifar.html) into {root}/ and extract it there, "
                f"giving {root / 'cifar-10-batches-py'}/data_batch_1..5 and test_batch.")
    return (f"To supply the files by hand, put into {root / 'celeba'}/ the folder "
            f"img_align_celeba/ (extracted from img_align_celeba.zip) and "
            f"{', '.join(_CELEBA_FILES)} (https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html). "
            "torchvision's own download needs `pip install gdown` and often hits Google Drive's "
            "quota.")


def _torchvision_class(name: str) -> type:
    import torchvision.datasets  # deferred: keeps `import entropic_ae.data` light

    return getattr(torchvision.datasets, _INFO[name].torchvision)


def _open_torchvision(name: str, root: Path, split: str, download: bool = False,
                      transform: Callable | None = None) -> Any:
    """The torchvision dataset object for ``name``/``split`` (downloads only if asked)."""
    cls = _torchvision_class(name)
    if name == "celeba":
        return cls(str(root), split=split, target_type=[], transform=transform, download=download)
    return cls(str(root), train=(split == "train"), transform=transform, download=download)
