"""One run: :func:`fit` (train or find in the cache, measure) and :func:`load_model` (never trains).

Training a run, in full: build the system's model (:mod:`entropic_ae.experiments.families`),
take its objective from its record (:meth:`entropic_ae.systems.System.objective`), and hand both
to :func:`entropic_ae.training.train` with the run's data, schedule and checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

import torch
from threadpoolctl import threadpool_limits
from torch import nn

from entropic_ae._alloc import tune_allocator
from entropic_ae._io import atomic_write
from entropic_ae.checkpoints import CheckpointError, load_checkpoint
from entropic_ae.experiments.cache import CorruptRunError, RunCache
from entropic_ae.experiments.config import RunConfig
from entropic_ae.experiments.context import RunContext, data_fingerprint, train_and_validation
from entropic_ae.experiments.families import initial_model
from entropic_ae.systems import SYSTEMS
from entropic_ae.timing import threads
from entropic_ae.training import History, Plateau, default_device, train

__all__ = ["DEFAULT_CACHE", "fit", "flat_row", "load_model", "resolve_cache", "validation_mse"]

#: The cache folder when none is given: ``$ENTROPIC_AE_CACHE``, else ``checkpoints``.
DEFAULT_CACHE = "checkpoints"


def resolve_cache(cache_dir: str | os.PathLike | None) -> RunCache:
    """The :class:`RunCache` at ``cache_dir``, else ``$ENTROPIC_AE_CACHE``, else
    ``checkpoints``; a relative path is resolved against the current directory here."""
    if cache_dir is None:
        cache_dir = os.environ.get("ENTROPIC_AE_CACHE", "").strip() or DEFAULT_CACHE
    return RunCache(cache_dir)


def _context(cache_dir, data_root, device, progress) -> RunContext:
    root = None if data_root is None else Path(data_root).expanduser().resolve()
    return RunContext(resolve_cache(cache_dir), root, default_device(device), progress)


def _check_config(config: Any) -> RunConfig:
    if not isinstance(config, RunConfig):
        raise TypeError(f"config must be a RunConfig, got {type(config).__name__}")
    return config


@contextlib.contextmanager
def _limits(device: torch.device, n: int | None):
    """``n`` torch and BLAS/OpenMP threads for the run (on the CPU)."""
    if device.type != "cpu" or n is None:
        yield
        return
    with threads(n), threadpool_limits(limits=n):
        yield


@torch.no_grad()
def validation_mse(model: nn.Module, x: torch.Tensor, batch_size: int = 500) -> float:
    """Mean squared error per pixel of ``model(x)`` against ``x`` in eval mode (a VAE decodes
    its posterior mean): the validation value that decides convergence."""
    device = next(model.parameters()).device
    was = model.training
    model.eval()
    total = 0.0
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size].to(device)
        total += float((model(xb).float() - xb).pow(2).sum(dtype=torch.float64))
    model.train(was)
    return total / x.numel()


def _times(folder: Path, history: History, resumed: int) -> list[float]:
    """Wall-clock seconds per epoch, kept in ``times.json`` beside the checkpoint."""
    path = folder / "times.json"
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = []
    fresh = history.epoch_seconds
    start = history.epochs - len(fresh)
    times = (known + [float("nan")] * start)[:start] + list(fresh)
    atomic_write(path, json.dumps(times))
    return times


def _train(config: RunConfig, ctx: RunContext, data: str, on_corrupt: str
           ) -> tuple[nn.Module, History, int]:
    cache, folder = ctx.cache, ctx.cache.run_dir(config, data)
    cache.write_config(config, data)
    resumed = cache.start_from_shorter(config, data)
    x, x_val = train_and_validation(config, ctx.data_root)
    model = initial_model(config, ctx, lambda parent: _parent_model(parent, ctx))
    objective = SYSTEMS[config.model].objective(config)
    o = config.options
    patience = getattr(o, "patience", None)
    plateau = Plateau(patience, o.decay, o.cuts, o.min_delta) if patience else None
    kwargs = dict(epochs=config.epochs, lr=config.lr, batch_size=config.batch_size,
                  seed=config.seed, weights=objective.weights, device=ctx.device,
                  optimizer=getattr(o, "optimizer", "adam"),
                  regularisers=objective.regularisers, param_groups=objective.param_groups,
                  validate=None if x_val is None else partial(validation_mse, x=x_val),
                  plateau=plateau, checkpoint=folder / "checkpoint.pt", progress=ctx.progress,
                  desc=config.slug)
    try:
        history = train(model, objective.loss, x, **kwargs)
    except CheckpointError as err:
        if on_corrupt == "raise":
            raise CorruptRunError(err.path, f"{err}; or pass on_corrupt='retrain'") from err
        err.path.unlink(missing_ok=True)
        model = initial_model(config, ctx, lambda parent: _parent_model(parent, ctx))
        history, resumed = train(model, objective.loss, x, **kwargs), 0
    return model, history, resumed


def _parent_model(parent: RunConfig, ctx: RunContext) -> nn.Module:
    fit(parent, ctx.cache.root, ctx.data_root, ctx.device)
    return load_model(parent, ctx.cache.root, ctx.data_root, ctx.device)


def _cached(ctx: RunContext, config: RunConfig, data: str, on_corrupt: str) -> dict | None:
    try:
        return ctx.cache.load(config, data)
    except CorruptRunError as err:
        if on_corrupt == "raise":
            raise CorruptRunError(err.path, f"{err}; delete {err.path} or pass "
                                            "on_corrupt='retrain'") from err
        ctx.cache.repair(err, config, data)
        return None


def fit(config: RunConfig, cache_dir: str | os.PathLike | None = None,
        data_root: str | os.PathLike | None = None, device: str | torch.device | None = "auto",
        progress: bool = False, on_corrupt: str = "raise", cpu_threads: int | None = 1,
        ) -> dict[str, Any]:
    """The record of ``config``: trained and measured now, or read from the cache.

    Keys: ``metrics`` (the family's measurements), ``history`` (per-epoch terms, validation
    values and learning rates), ``epochs`` (trained), ``stopped`` (the epoch a plateau ended
    training, or None), ``seconds`` (training wall-clock time, summed over epochs, as recorded
    when it trained), ``resumed_from`` (epochs taken over from a shorter run of the lineage),
    ``cached``, ``device`` and ``folder``. A damaged record or checkpoint raises
    :class:`~entropic_ae.experiments.cache.CorruptRunError` naming the file;
    ``on_corrupt="retrain"`` replaces only what is damaged. The run uses ``cpu_threads`` torch
    and BLAS threads on the CPU (one by default: the fastest layout for these small networks).
    """
    config = _check_config(config)
    if on_corrupt not in ("raise", "retrain"):
        raise ValueError(f"on_corrupt must be 'raise' or 'retrain', got {on_corrupt!r}")
    ctx = _context(cache_dir, data_root, device, progress)
    tune_allocator()
    data = data_fingerprint(config, ctx.data_root)
    folder = ctx.cache.run_dir(config, data)
    with _limits(ctx.device, cpu_threads), ctx.cache.lock(config, data):
        found = _cached(ctx, config, data, on_corrupt)
        if found is not None:
            return {**found, "cached": True, "folder": str(folder)}
        from entropic_ae.experiments.measure import measure

        start = time.perf_counter()
        model, history, resumed = _train(config, ctx, data, on_corrupt)
        times = _times(folder, history, resumed)
        metrics, files = measure(config, model, ctx, data)
        record = {"metrics": metrics, "history": history.to_dict(), "epochs": history.epochs,
                  "stopped": history.stopped, "seconds": float(sum(t for t in times if t == t)),
                  "wall_seconds": time.perf_counter() - start, "resumed_from": resumed,
                  "device": str(ctx.device), "files": ["checkpoint.pt", *files]}
        stored = ctx.cache.save(config, data, record)
    return {**stored, "cached": False, "folder": str(folder)}


def trained_state(config: RunConfig, ctx: RunContext, data: str) -> dict[str, torch.Tensor]:
    """The trained weights of ``config`` from its checkpoint (the best validation epoch's
    under a plateau policy); FileNotFoundError if it was never trained, ValueError if its
    training is unfinished."""
    path = ctx.cache.run_dir(config, data) / "checkpoint.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{config.slug} has not been trained: no {path}; run "
                                "fit(config) or run_grid([config]) first")
    try:
        state = load_checkpoint(path, ctx.device)
    except CheckpointError as err:
        raise CorruptRunError(err.path, str(err)) from err
    if state["epoch"] < config.epochs and state["history"].get("stopped") is None:
        raise ValueError(f"{path} holds {state['epoch']} of the {config.epochs} epochs of "
                         f"{config.slug}: its training is unfinished; run fit(config) to finish "
                         "it (load_model never trains)")
    plateau = state.get("plateau")
    best = plateau.get("best_state") if plateau else None
    return best if best is not None else state["model"]


def load_model(config: RunConfig, cache_dir: str | os.PathLike | None = None,
               data_root: str | os.PathLike | None = None,
               device: str | torch.device | None = "auto") -> nn.Module:
    """The trained model of ``config`` in eval mode: built from its system's record and loaded
    with the weights of its checkpoint. Never trains: ``FileNotFoundError`` if it was not
    trained, ``ValueError`` if its training is unfinished."""
    config = _check_config(config)
    ctx = _context(cache_dir, data_root, device, False)
    data = data_fingerprint(config, ctx.data_root)
    state = trained_state(config, ctx, data)
    model = initial_model(config, ctx, lambda parent: load_model(parent, cache_dir, data_root,
                                                                 device))
    model.load_state_dict(state)
    return model.to(ctx.device).eval()


def flat_row(config: RunConfig, record: Mapping[str, Any] | None,
             error: str | None = None) -> dict[str, Any]:
    """One table row: the config's fields and options, the record's metrics (lists kept as
    they are), its training seconds, epochs, stop, history, whether it came from the cache,
    and ``error``."""
    row = config.describe()
    if record is not None:
        row.update(record.get("metrics", {}))
        row.update(train_seconds=record.get("seconds"), epochs_trained=record.get("epochs"),
                   stopped=record.get("stopped"), history=record.get("history"),
                   cached=record.get("cached"))
    return {**row, "error": error}
