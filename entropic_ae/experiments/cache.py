"""The run cache: trained models and their measurement records, keyed by content.

Layout under the cache folder::

    runs/<slug>-<lineage>-e<epochs>/      one trained model
        checkpoint.pt                     the training loop's checkpoint (entropic_ae.checkpoints)
        times.json                        wall-clock seconds of its epochs (outside the key)
        config.json                       the training config, for a reader
        record-<key>.json                 one measurement of it, per set of measurement options
        sampler-<key>.pt                  a trained sampler (the two-stage VAE's second stage)
        .lock                             held while the model is trained or measured

**What invalidates what.** The *lineage* digest covers every training field of the config
except ``epochs``, the digest of the package's training code for the run's family
(:func:`training_code_digest`: every source file except the measurement and presentation
modules and those only other families train with, blind to comments and docstrings), torch's
version, and the digest of the run's training and validation data
(:func:`~entropic_ae.experiments.context.data_fingerprint`). A change of any of them is a new
folder, so it retrains. A record's key adds the measurement options and the digest of the
measurement code (:func:`measure_code_digest`): a new metric re-measures the stored model
without retraining it. Changes to presentation code (plots, prose, chapters' claim writers,
the sweep, the benchmark) invalidate nothing.

**One writer.** Training and measuring a run hold a cross-process file lock (``filelock``) on
its folder, and the checkpoint's bytes do not depend on wall-clock time; every file is written
atomically. A record stores the SHA-256 of the checkpoint it was measured on and of its own
content; loading checks both.
"""

from __future__ import annotations

import functools
import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock

import entropic_ae
from entropic_ae._io import atomic_write, digest, file_sha256, source_digest
from entropic_ae.checkpoints import CheckpointError, load_checkpoint
from entropic_ae.experiments.config import RunConfig

__all__ = ["MEASUREMENT_CODE", "OTHER_FAMILIES_CODE", "PRESENTATION_CODE", "CorruptRunError",
           "RunCache", "measure_code_digest", "training_code_digest"]

_RECORD_FORMAT = 2
#: Modules that never change a result (relative to the package folder).
PRESENTATION_CODE = ("plotting/", "prose.py", "chapters/", "sweep.py", "bench.py",
                     "gpu_check.py", "verdicts.py", "parameters.py", "experiments/cluster.py",
                     "timing.py", "__main__.py", "data/__main__.py")
#: Modules that change measurements, not trained models.
MEASUREMENT_CODE = ("metrics/", "sampling.py", "damage.py", "models/lenet.py",
                    "experiments/measure/")
#: Modules one family's training never runs (so that editing chapter 3's path entropy does not
#: retrain chapter 4's networks, and the other way round).
OTHER_FAMILIES_CODE = {
    "conv": ("paths/", "compactifier.py", "width_learning.py", "models/mlp.py",
             "synthetic/known_bottleneck.py"),
    "mlp": ("models/conv.py", "entropy_terms.py", "estimators.py", "synthetic/dependent.py"),
    "toy": ("paths/", "compactifier.py", "width_learning.py", "models/mlp.py",
            "synthetic/known_bottleneck.py", "models/conv.py", "entropy_terms.py",
            "estimators.py", "synthetic/dependent.py"),
}


class CorruptRunError(ValueError):
    """A cached record or checkpoint fails its checks; ``path`` names the damaged file and the
    message says how to repair it."""

    def __init__(self, path: Path, message: str) -> None:
        self.path = Path(path)
        super().__init__(message)


@functools.cache
def training_code_digest(family: str = "conv") -> str:
    """Digest of the code that determines a trained model of ``family`` (once per process)."""
    return source_digest(Path(entropic_ae.__file__).parent,
                         PRESENTATION_CODE + MEASUREMENT_CODE
                         + OTHER_FAMILIES_CODE.get(family, ()))[:16]


@functools.cache
def measure_code_digest() -> str:
    """Digest of the code that determines a measurement (once per process)."""
    return source_digest(Path(entropic_ae.__file__).parent, PRESENTATION_CODE)[:16]


def _content_sha256(record: Mapping[str, Any]) -> str:
    return digest({k: v for k, v in record.items() if k != "sha256"})


class RunCache:
    """The runs under ``root`` (see the module docstring); ``root`` is made absolute here."""

    def __init__(self, root: str | os.PathLike) -> None:
        if root is None or (isinstance(root, str) and not root.strip()):
            raise ValueError("the cache folder must be a path, got nothing")
        self.root = Path(root).expanduser().resolve()

    def __repr__(self) -> str:
        return f"RunCache({str(self.root)!r})"

    # -- keys and paths -------------------------------------------------------------------------
    @staticmethod
    def lineage_key(config: RunConfig, data: str) -> str:
        """Digest of the training fields (not ``epochs``), the training code and the data."""
        return digest({"fields": config.training_dict(),
                       "code": training_code_digest(config.family),
                       "torch": torch.__version__.split("+")[0], "data": data}, 16)

    def run_dir(self, config: RunConfig, data: str) -> Path:
        """The folder of ``config``'s trained model (``data``: its data fingerprint)."""
        name = f"{config.slug}-{self.lineage_key(config, data)}-e{config.epochs}"
        return self.root / "runs" / name

    def record_key(self, config: RunConfig, data: str) -> str:
        """Digest of the trained model's folder, the measurement options and code."""
        return digest({"run": self.run_dir(config, data).name, "code": measure_code_digest(),
                       "measure": config.measure.to_dict()}, 16)

    def record_path(self, config: RunConfig, data: str) -> Path:
        """The record file of ``config``."""
        return self.run_dir(config, data) / f"record-{self.record_key(config, data)}.json"

    def sampler_path(self, config: RunConfig, data: str) -> Path:
        """Where a trained sampler of ``config``'s record lives."""
        return self.run_dir(config, data) / f"sampler-{self.record_key(config, data)}.pt"

    def lock(self, config: RunConfig, data: str) -> FileLock:
        """The cross-process lock of ``config``'s folder."""
        folder = self.run_dir(config, data)
        folder.mkdir(parents=True, exist_ok=True)
        return FileLock(str(folder / ".lock"))

    # -- resuming -------------------------------------------------------------------------------
    def start_from_shorter(self, config: RunConfig, data: str) -> int:
        """Copy the checkpoint of the longest shorter run of the lineage whose checkpoint is
        sound into ``config``'s folder; return its epochs (0 if none, or if ``config`` has a
        checkpoint already). Damaged shorter checkpoints are skipped with a warning naming
        them."""
        target = self.run_dir(config, data) / "checkpoint.pt"
        if target.exists():
            return 0
        prefix = f"{config.slug}-{self.lineage_key(config, data)}-e"
        found = []
        for folder in (self.root / "runs").glob(prefix + "*"):
            tail = folder.name[len(prefix):]
            path = folder / "checkpoint.pt"
            if tail.isdigit() and int(tail) < config.epochs and path.is_file():
                found.append((int(tail), path))
        for _, path in sorted(found, reverse=True):
            try:
                state = load_checkpoint(path)
            except CheckpointError as err:
                warnings.warn(f"not resuming from {path}: {err}", stacklevel=3)
                continue
            atomic_write(target, path.read_bytes())
            return int(state["epoch"])
        return 0

    # -- records --------------------------------------------------------------------------------
    def write_config(self, config: RunConfig, data: str) -> None:
        """``config.json`` next to the model, for a reader."""
        path = self.run_dir(config, data) / "config.json"
        if not path.exists():
            atomic_write(path, json.dumps({**config.training_dict(), "epochs": config.epochs,
                                           "data": data}, indent=1) + "\n")

    def save(self, config: RunConfig, data: str, record: Mapping[str, Any]) -> dict[str, Any]:
        """Store ``record`` with the checksums of the files it names under ``"files"``
        (names in the run's folder) and of its own content; return what was stored."""
        folder = self.run_dir(config, data)
        stored = {**record, "format": _RECORD_FORMAT, "key": self.record_key(config, data),
                  "config": config.to_dict()}
        stored["files_sha256"] = {name: file_sha256(folder / name)
                                  for name in stored.get("files", [])}
        stored["sha256"] = _content_sha256(stored)
        atomic_write(self.record_path(config, data), json.dumps(stored, indent=1) + "\n")
        return stored

    def load(self, config: RunConfig, data: str) -> dict[str, Any] | None:
        """The stored record of ``config``, None if there is none; :class:`CorruptRunError`
        naming the damaged file when the record or a file it names fails its checks."""
        path = self.record_path(config, data)
        if not path.exists():
            return None
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise CorruptRunError(path, f"cannot read the record {path}: {err}") from err
        if not isinstance(record, dict) or record.get("format") != _RECORD_FORMAT:
            raise CorruptRunError(path, f"{path} is not a record of format {_RECORD_FORMAT}")
        if record.get("sha256") != _content_sha256(record):
            raise CorruptRunError(path, f"the record {path} does not match its checksum "
                                        "(edited or damaged)")
        if record.get("key") != self.record_key(config, data):
            raise CorruptRunError(path, f"the record {path} was written for another config")
        for name, sha in record.get("files_sha256", {}).items():
            file = path.parent / name
            if not file.is_file():
                raise CorruptRunError(file, f"{file}, measured by the record {path}, is missing")
            if file_sha256(file) != sha:
                raise CorruptRunError(file, f"{file} does not match the checksum in the record "
                                            f"{path} (damaged, or overwritten)")
        return record

    def repair(self, err: CorruptRunError, config: RunConfig, data: str) -> None:
        """Delete only what ``err`` names as damaged: a record, or a checkpoint with the
        records and samplers measured on it."""
        folder = self.run_dir(config, data)
        if err.path.suffix == ".pt":
            for f in [*folder.glob("record-*.json"), *folder.glob("sampler-*.pt")]:
                f.unlink(missing_ok=True)
        err.path.unlink(missing_ok=True)
        if err.path.name == "checkpoint.pt":
            (folder / "times.json").unlink(missing_ok=True)
