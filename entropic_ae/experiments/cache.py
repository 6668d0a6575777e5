"""The content-addressed store of trained runs: checkpoints and records on disk.

Layout under the cache folder (one folder per trained model)::

    runs/<slug>-<lineage key>-e<epochs>/
        config.json        the RunConfig that trained it (measurement options left out)
        checkpoint.pt      entropic_ae.training.train's resumable checkpoint
        <stage>.pt         further checkpoints of multi-stage models (e.g. second.pt)
        record-<key>.json  one record per set of measurement options

A record is JSON with the run's metrics, the training seconds and history, the SHA-256 of
every checkpoint it was measured on, and the SHA-256 of its own content: a record whose
checksum or whose checkpoints' checksums do not match raises :class:`CorruptRunError` (or
is recomputed, when the caller asks for that) instead of being used. Every file is written to
a temporary name and renamed, so a run killed at any moment leaves no half-written file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from entropic_ae.experiments.config import RunConfig

__all__ = ["CorruptRunError", "RunCache", "file_sha256"]

_RECORD_FORMAT = 1


class CorruptRunError(ValueError):
    """A cached record or checkpoint does not match its checksum; the message says which file
    and how to repair it."""


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _content_sha256(record: Mapping[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, allow_nan=True).encode()).hexdigest()


class RunCache:
    """The runs under ``root`` (see the module docstring)."""

    def __init__(self, root: str | os.PathLike) -> None:
        if root is None or (isinstance(root, str) and not root.strip()):
            raise ValueError("the cache folder must be a path, got nothing")
        self.root = Path(root).expanduser()

    def __repr__(self) -> str:
        return f"RunCache({str(self.root)!r})"

    # -- paths ----------------------------------------------------------------------------------
    def run_dir(self, config: RunConfig) -> Path:
        """The folder of ``config``'s trained model."""
        return self.root / "runs" / f"{config.slug}-{config.lineage_key()}-e{config.epochs}"

    def checkpoint(self, config: RunConfig, stage: str = "checkpoint") -> Path:
        """A checkpoint file of ``config``'s model (``stage`` names further stages)."""
        if not re.fullmatch(r"[A-Za-z0-9_-]+", stage):
            raise ValueError(f"stage must be a simple name, got {stage!r}")
        return self.run_dir(config) / f"{stage}.pt"

    def record_path(self, config: RunConfig) -> Path:
        """The record file of ``config`` (its model and its measurement options)."""
        return self.run_dir(config) / f"record-{config.key()}.json"

    # -- resuming -------------------------------------------------------------------------------
    def shorter_run(self, config: RunConfig) -> tuple[int, Path] | None:
        """``(epochs, folder)`` of the longest cached run of ``config``'s lineage with fewer
        epochs whose checkpoint exists, or None."""
        prefix = f"{config.slug}-{config.lineage_key()}-e"
        best: tuple[int, Path] | None = None
        runs = self.root / "runs"
        if not runs.is_dir():
            return None
        for folder in runs.glob(prefix + "*"):
            tail = folder.name[len(prefix):]
            if not tail.isdigit() or not (folder / "checkpoint.pt").is_file():
                continue
            epochs = int(tail)
            if epochs < config.epochs and (best is None or epochs > best[0]):
                best = (epochs, folder)
        return best

    def start_from_shorter(self, config: RunConfig) -> int:
        """Copy the first-stage checkpoint of the longest shorter run of the lineage into
        ``config``'s folder (so training resumes from it); return its epochs (0 if none, or if
        ``config`` already has a checkpoint)."""
        target = self.checkpoint(config)
        if target.exists():
            return 0
        found = self.shorter_run(config)
        if found is None:
            return 0
        epochs, folder = found
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".checkpoint.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        try:
            shutil.copyfile(folder / "checkpoint.pt", tmp)
            os.replace(tmp, target)
        finally:
            Path(tmp).unlink(missing_ok=True)
        return epochs

    # -- records --------------------------------------------------------------------------------
    def write_config(self, config: RunConfig) -> None:
        """Write ``config.json`` (the training fields) next to the model, for a reader."""
        path = self.run_dir(config) / "config.json"
        if not path.exists():
            plain = config.replace(measure={k: None for k, _ in config.measure})
            _atomic_write_text(path, json.dumps(plain.to_dict(), indent=1) + "\n")

    def save(self, config: RunConfig, record: Mapping[str, Any]) -> dict[str, Any]:
        """Store ``record`` for ``config`` with the checksums of the files it names under
        ``"checkpoints"`` (``{stage: path}``, files in the run's folder; stored by name) and of
        its own content; return what was stored."""
        stored = dict(record)
        folder = self.run_dir(config)
        stored["format"] = _RECORD_FORMAT
        stored["key"] = config.key()
        stored["config"] = config.to_dict()
        stored["checkpoints"] = {stage: Path(path).name
                                 for stage, path in stored.get("checkpoints", {}).items()}
        stored["checkpoint_sha256"] = {stage: file_sha256(folder / name)
                                       for stage, name in stored["checkpoints"].items()}
        stored["sha256"] = _content_sha256(stored)
        _atomic_write_text(self.record_path(config), json.dumps(stored, indent=1) + "\n")
        return stored

    def load(self, config: RunConfig, verify_checkpoints: bool = True) -> dict[str, Any] | None:
        """The stored record of ``config``, or None if there is none.

        Raises :class:`CorruptRunError` when the record is unreadable, was written for another
        config, or its own or its checkpoints' checksums do not match.
        """
        path = self.record_path(config)
        if not path.exists():
            return None
        repair = f"delete {path.parent} to retrain this run"
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise CorruptRunError(f"cannot read the record {path}: {err}; {repair}") from err
        if not isinstance(record, dict) or record.get("format") != _RECORD_FORMAT:
            raise CorruptRunError(f"{path} is not a record of this version of entropic_ae "
                                  f"(format {_RECORD_FORMAT}); {repair}")
        if record.get("sha256") != _content_sha256(record):
            raise CorruptRunError(f"the record {path} does not match its checksum (edited or "
                                  f"damaged); {repair}")
        if record.get("key") != config.key():
            raise CorruptRunError(f"the record {path} was written for another config; {repair}")
        if verify_checkpoints:
            for stage, digest in record.get("checkpoint_sha256", {}).items():
                file = path.parent / record["checkpoints"][stage]
                if not file.is_file():
                    raise CorruptRunError(f"the checkpoint {file} of the record {path} is "
                                          f"missing; {repair}")
                if file_sha256(file) != digest:
                    raise CorruptRunError(f"the checkpoint {file} does not match the checksum "
                                          f"in {path} (damaged, or overwritten); {repair}")
        return record

    def discard(self, config: RunConfig) -> None:
        """Delete ``config``'s folder (model, checkpoints and every record of it)."""
        shutil.rmtree(self.run_dir(config), ignore_errors=True)
