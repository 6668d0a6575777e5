"""One run: :func:`fit` trains a :class:`~entropic_ae.experiments.config.RunConfig` (or finds it
in the cache), measures it, and returns its record; :func:`load_model` gives its model back.

Every chapter trains through :func:`fit` (directly, or many at once with
:func:`entropic_ae.experiments.cluster.run_grid`), so every run is named, cached and resumed by
the same rule (see :mod:`entropic_ae.experiments.config` and
:mod:`entropic_ae.experiments.cache`).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from entropic_ae.experiments import conv, mlp, toy
from entropic_ae.experiments.cache import CorruptRunError, RunCache
from entropic_ae.experiments.config import RunConfig
from entropic_ae.experiments.context import RunContext
from entropic_ae.timing import threads
from entropic_ae.training import default_device

__all__ = ["DEFAULT_CACHE", "fit", "load_model", "resolve_cache"]

#: The cache folder when none is given: ``$ENTROPIC_AE_CACHE``, else ``checkpoints``.
DEFAULT_CACHE = "checkpoints"

_FAMILIES: dict[str, ModuleType] = {"mlp": mlp, "conv": conv, "toy": toy}


def resolve_cache(cache_dir: str | os.PathLike | None) -> RunCache:
    """The :class:`RunCache` at ``cache_dir``, else ``$ENTROPIC_AE_CACHE``, else
    ``checkpoints`` (relative to the working directory)."""
    if cache_dir is None:
        cache_dir = os.environ.get("ENTROPIC_AE_CACHE", "").strip() or DEFAULT_CACHE
    return RunCache(cache_dir)


def _context(cache_dir: str | os.PathLike | None, data_root: str | os.PathLike | None,
             device: str | torch.device | None, progress: bool) -> RunContext:
    root = None if data_root is None else Path(data_root).expanduser()
    return RunContext(resolve_cache(cache_dir), root, default_device(device), progress)


def _check_config(config: Any) -> RunConfig:
    if not isinstance(config, RunConfig):
        raise TypeError(f"config must be a RunConfig, got {type(config).__name__}")
    return config


def fit(config: RunConfig, cache_dir: str | os.PathLike | None = None,
        data_root: str | os.PathLike | None = None, device: str | torch.device | None = "auto",
        progress: bool = False, on_corrupt: str = "raise", cpu_threads: int | None = 1,
        ) -> dict[str, Any]:
    """The record of ``config``: trained and measured now, or read from the cache.

    Returns a dict with ``metrics`` (the family's measurements), ``seconds`` (wall-clock
    training time summed over epochs, as recorded when it trained), ``epochs``, ``history``
    (the last epoch's loss terms), ``resumed_from`` (epochs taken over from a shorter run of
    the same lineage), ``cached`` (True when read from the cache), ``device`` and ``folder``.
    ``on_corrupt="retrain"`` deletes and retrains a run whose files fail their checksums
    (default: raise :class:`~entropic_ae.experiments.cache.CorruptRunError`). On the CPU the run
    uses ``cpu_threads`` torch threads (one by default: the fastest layout for these small
    networks, and needed for results that do not depend on where they ran).
    """
    config = _check_config(config)
    if on_corrupt not in ("raise", "retrain"):
        raise ValueError(f"on_corrupt must be 'raise' or 'retrain', got {on_corrupt!r}")
    ctx = _context(cache_dir, data_root, device, progress)
    try:
        found = ctx.cache.load(config)
    except CorruptRunError:
        if on_corrupt == "raise":
            raise
        ctx.cache.discard(config)
        found = None
    if found is not None:
        return {**found, "cached": True, "folder": str(ctx.cache.run_dir(config))}
    family = _FAMILIES[config.family]
    ctx.cache.write_config(config)
    start = time.perf_counter()
    with _cpu_threads(ctx.device, cpu_threads):
        trained = family.fit(config, ctx)
        metrics = family.measure(config, trained, ctx)
    history = trained.history
    record = {
        "metrics": metrics,
        "seconds": float(sum(history.epoch_seconds)),
        "wall_seconds": time.perf_counter() - start,
        "epochs": history.epochs,
        "history": history.last() if history.epochs else {},
        "resumed_from": trained.resumed_from,
        "device": str(ctx.device),
        "checkpoints": {k: str(v) for k, v in trained.checkpoints.items()},
    }
    stored = ctx.cache.save(config, record)
    return {**stored, "cached": False, "folder": str(ctx.cache.run_dir(config))}


def _cpu_threads(device: torch.device, n: int | None) -> contextlib.AbstractContextManager:
    return threads(n) if device.type == "cpu" and n is not None else contextlib.nullcontext()


def load_model(config: RunConfig, cache_dir: str | os.PathLike | None = None,
               data_root: str | os.PathLike | None = None,
               device: str | torch.device | None = "auto") -> nn.Module:
    """The trained model of ``config``, in eval mode, from the cache.

    Raises ``FileNotFoundError`` if it has not been trained yet (run :func:`fit` or
    :func:`~entropic_ae.experiments.cluster.run_grid` first). Multi-stage models come back whole
    (the two-stage VAE with its second stage).
    """
    config = _check_config(config)
    ctx = _context(cache_dir, data_root, device, False)
    path = ctx.cache.checkpoint(config)
    if not path.is_file():
        raise FileNotFoundError(f"{config.slug} (key {config.train_key()}) has not been trained:"
                                f" no {path}; run fit(config) or run_grid([config]) first")
    with _cpu_threads(ctx.device, 1):
        trained = _FAMILIES[config.family].fit(config, ctx)
    return trained.model.eval()


def flat_row(config: RunConfig, record: Mapping[str, Any] | None,
             error: str | None = None) -> dict[str, Any]:
    """One table row: the config's fields and options, the record's metrics (lists kept as
    they are), its training seconds and epochs, whether it came from the cache, and ``error``."""
    row = config.describe()
    if record is not None:
        row.update(record.get("metrics", {}))
        row["train_seconds"] = record.get("seconds")
        row["cached"] = record.get("cached")
    row["error"] = error
    return row
