"""Many runs at once: :func:`run_grid` sends configs to a Dask cluster and gathers a table.

Where the runs go (``client``):

* ``None`` (default): the scheduler at ``$ENTROPIC_AE_SCHEDULER`` if that is set (the value
  ``serial`` means in-process, as :mod:`entropic_ae.sweep` sets it for the chapters it runs), else a
  :class:`distributed.LocalCluster` on this machine with one worker *process* per core and one
  torch thread per worker (on two cores, two one-thread processes train about twice as fast
  as one process with two threads). On a machine with CUDA GPUs it has one worker per GPU,
  each declaring the Dask resource ``GPU=1``. The cluster is started once per Python process
  and reused by later grids; :func:`shutdown` stops it.
* ``"serial"``: in this process, one run after the other (for debugging, and for runs too
  small to be worth a cluster).
* a scheduler address (``"tcp://10.0.0.5:8786"``) or a :class:`distributed.Client`: an
  existing cluster — e.g. a Slurm or PBS allocation started with ``dask-jobqueue``
  (``SLURMCluster(...).scale(jobs=8)``, then pass ``cluster.scheduler_address``), a
  Kubernetes cluster (``dask-kubernetes``), or ``dask-cuda``'s ``LocalCUDACluster`` for a
  multi-GPU machine. Workers must have this package installed and see the same cache and
  data folders (a shared file system). Runs that ask for a GPU (``device="cuda"``) are sent
  with ``resources={"GPU": 1}``, so each holds one GPU; start such workers with
  ``--resources GPU=1``.

Bad requests fail at once, with the reason: ``workers`` below 1, ``device="cuda"`` where no
worker has a GPU, a scheduler address that does not answer within ``SCHEDULER_TIMEOUT``
seconds. The cache folder is resolved on the client, so workers on a shared file system write
where :func:`~entropic_ae.experiments.runner.load_model` later looks.

Every run writes its record to the cache as soon as it finishes, so a grid that is
interrupted — a worker killed, the machine rebooted — loses only the runs in flight, and
running the same grid again computes only what is missing. A run that raises is reported
with its parameters while the rest of the grid completes.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
import traceback
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from tqdm.auto import tqdm

from entropic_ae._checks import check_int
from entropic_ae.experiments.cache import CorruptRunError
from entropic_ae.experiments.config import RunConfig
from entropic_ae.experiments.context import data_fingerprint
from entropic_ae.experiments.runner import fit, flat_row, resolve_cache
from entropic_ae.training import default_device

__all__ = ["SCHEDULER_ENV", "SCHEDULER_TIMEOUT", "WORKER_CONFIG", "WORKER_ENVIRONMENT",
           "GridError", "run_grid", "shutdown"]

#: Environment variable naming the scheduler of an existing cluster.
SCHEDULER_ENV = "ENTROPIC_AE_SCHEDULER"
#: Seconds to wait for a scheduler to answer before giving up.
SCHEDULER_TIMEOUT = 10

_LOCAL: dict[str, Any] = {}  # the LocalCluster and Client this process started, if any
_LOCK = threading.Lock()


class GridError(RuntimeError):
    """Some runs of a grid failed; ``failures`` lists ``(config, message)`` for each."""

    def __init__(self, failures: list[tuple[RunConfig, str]], table: pd.DataFrame) -> None:
        self.failures = failures
        self.table = table
        lines = "\n".join(f"  - {c.describe()}:\n      {m.strip().splitlines()[-1]}"
                          for c, m in failures)
        super().__init__(f"{len(failures)} of {len(table)} runs failed (the others completed "
                         f"and are cached; fix the cause and run the grid again):\n{lines}")


def _execute(config_dict: dict[str, Any], cache_dir: str, data_root: str | None,
             device: str, on_corrupt: str) -> dict[str, Any]:
    """The task a worker runs: :func:`~entropic_ae.experiments.runner.fit`, with any
    exception turned into ``{"error": traceback}`` so that one run cannot stop the grid."""
    try:
        config = RunConfig.from_dict(config_dict)
        return {"record": fit(config, cache_dir, data_root, device, on_corrupt=on_corrupt)}
    except Exception:  # noqa: BLE001 - reported with the run's parameters by run_grid
        return {"error": traceback.format_exc(limit=8)}


#: The environment of the worker processes, set before they start (the interpreter and the C
#: allocator read it at start-up): one torch/BLAS thread each, and *not* Dask's default
#: ``MALLOC_TRIM_THRESHOLD_=65536``. A fixed trim threshold switches off glibc's adaptive
#: mmap threshold, so every large tensor of a training step is mapped, zero-filled and
#: unmapped again; measured here, it made a one-thread conv training step 1.7× slower.
WORKER_ENVIRONMENT: dict[str, str | None] = {
    "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
    "MALLOC_TRIM_THRESHOLD_": None,  # None: not set (the run tunes the allocator itself)
}


#: Dask settings of the local cluster (its scheduler, nannies and workers): no statistical
#: profiler, and slower housekeeping. With one worker per core, every background thread or
#: timer takes its time from a worker. Dask's profiler samples each worker's stack every 10 ms
#: (it made an 8-run grid 8 % slower on two workers); its event-loop tick (every 20 ms), system
#: monitor (500 ms) and memory monitor (100 ms) took 1.0 CPU-second per 10 idle seconds of a
#: 2-worker cluster, 2.4 per 22-second grid (0.18 and 0.45 at the values below). Measured
#: side by side, 3 alternating repeats of ``bench --scaling``: the 2-worker speed-up went from
#: 1.68 to 1.82 cold and 1.85 to 2.04 warm (medians). Coarser ticks only delay Dask's
#: "event loop unresponsive" diagnostics; the memory limit is still enforced every second.
WORKER_CONFIG: dict[str, Any] = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "500ms",
    "distributed.admin.system-monitor.interval": "2s",
    "distributed.worker.memory.monitor-interval": "1s",
}


@contextlib.contextmanager
def _worker_environment() -> Iterator[None]:
    """Start worker processes inside this block to give them :data:`WORKER_ENVIRONMENT` and
    :data:`WORKER_CONFIG`."""
    import dask

    saved = {k: os.environ.get(k) for k in WORKER_ENVIRONMENT}
    for key in [k for k, v in WORKER_ENVIRONMENT.items() if v is None]:  # workers inherit it
        os.environ.pop(key, None)
    spawn = {f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in WORKER_ENVIRONMENT.items()}
    try:
        with dask.config.set({**spawn, **WORKER_CONFIG}):
            yield
    finally:
        for key, value in saved.items():  # the Nanny writes its variables into os.environ
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _local_client(workers: int | None) -> Any:
    """The LocalCluster client of this process, started on first use."""
    from distributed import Client, LocalCluster

    with _LOCK:
        client = _LOCAL.get("client")
        if client is not None and client.status == "running":
            if workers in (None, _LOCAL["workers"]):
                return client
            shutdown()
        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        n = workers or gpus or os.cpu_count() or 1
        kwargs: dict[str, Any] = {"resources": {"GPU": 1}} if gpus else {}
        with warnings.catch_warnings(), _worker_environment():
            warnings.simplefilter("ignore")  # "port 8787 is already in use" and the like
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                   dashboard_address=None, silence_logs=logging.ERROR,
                                   **kwargs)
        client = Client(cluster, set_as_default=False)
        _LOCAL.update(cluster=cluster, client=client, workers=n)
        return client


def shutdown() -> None:
    """Stop the LocalCluster this process started (a no-op if there is none)."""
    things = (_LOCAL.get("client"), _LOCAL.get("cluster"))
    _LOCAL.clear()
    for thing in things:
        if thing is not None:
            with contextlib.suppress(Exception):  # best effort at exit
                thing.close()


atexit.register(shutdown)


def _connect(address: str) -> Any:
    """A client of the scheduler at ``address``, or a one-line ``ConnectionError`` after
    :data:`SCHEDULER_TIMEOUT` seconds."""
    from distributed import Client

    try:
        return Client(address, set_as_default=False, timeout=SCHEDULER_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as err:
        raise ConnectionError(f"no Dask scheduler answered at {address!r} within "
                              f"{SCHEDULER_TIMEOUT} s ({type(err).__name__}); check the "
                              f"address (or ${SCHEDULER_ENV}), or run with client='serial'"
                              ) from None


def _client(client: Any, workers: int | None) -> Any:
    from distributed import Client

    if client is None:  # run_grid found no scheduler in $ENTROPIC_AE_SCHEDULER
        return _local_client(workers)
    if isinstance(client, str):
        return _connect(client)
    if isinstance(client, Client):
        return client
    raise TypeError(f"client must be None, 'serial', a scheduler address or a "
                    f"distributed.Client, got {type(client).__name__}")


def _unique(configs: list[RunConfig]) -> list[RunConfig]:
    seen: dict[str, RunConfig] = {}
    for i, c in enumerate(configs):
        if not isinstance(c, RunConfig):
            raise TypeError(f"configs[{i}] must be a RunConfig, got {type(c).__name__}")
        seen.setdefault(c.key(), c)
    return list(seen.values())


def _check_request(client: Any, workers: int | None, device: str, errors: str,
                   on_corrupt: str) -> None:
    if errors not in ("raise", "report"):
        raise ValueError(f"errors must be 'raise' or 'report', got {errors!r}")
    if on_corrupt not in ("raise", "retrain"):
        raise ValueError(f"on_corrupt must be 'raise' or 'retrain', got {on_corrupt!r}")
    if workers is not None:
        check_int("workers", workers, 1)
    if isinstance(client, str) and not client.strip():
        raise ValueError("client must be a non-empty scheduler address, or 'serial'")
    if client is None or client == "serial":  # local workers: the device must exist here
        default_device(device)


def _stored(cache: Any, config: RunConfig, root: Any) -> dict[str, Any] | None:
    """The outcome ``{"record": ...}`` of ``config``'s run stored in ``cache``, None if none."""
    record = cache.load(config, data_fingerprint(config, root))
    return None if record is None else {"record": {**record, "cached": True}}


def _cached_records(unique: list[RunConfig], cache: Any, root: Any, on_corrupt: str,
                    results: dict) -> list[RunConfig]:
    """Fill ``results`` from the cache; return the configs still to run."""
    pending = []
    for config in unique:
        try:
            outcome = _stored(cache, config, root)
        except CorruptRunError as err:
            if on_corrupt == "raise":
                raise CorruptRunError(err.path, f"{err}; delete {err.path} or pass "
                                                "on_corrupt='retrain'") from err
            outcome = None
            warnings.warn(f"{err}; repairing it", stacklevel=3)
        if outcome is None:
            pending.append(config)
        else:
            results[config.key()] = outcome
    return pending


def _grouped(configs: Iterable[RunConfig] | Mapping[str, Iterable[RunConfig]]
             ) -> tuple[list[RunConfig], list[str] | None]:
    if isinstance(configs, Mapping):
        pairs = [(str(g), c) for g, part in configs.items() for c in part]
        return [c for _, c in pairs], [g for g, _ in pairs]
    return list(configs), None


def run_grid(configs: Iterable[RunConfig] | Mapping[str, Iterable[RunConfig]],
             client: Any = None, *,
             cache_dir: str | os.PathLike | None = None,
             data_root: str | os.PathLike | None = None, device: str = "auto",
             workers: int | None = None, errors: str = "raise", on_corrupt: str = "raise",
             progress: bool = True, desc: str = "runs") -> pd.DataFrame:
    """Train and measure every config (or read it from the cache); one table row per config.

    The rows, in the order of ``configs`` (duplicates are run once), hold each config's fields
    and options (:meth:`RunConfig.describe`), its metrics, ``train_seconds``, ``history``,
    ``cached`` and ``error`` (None for runs that succeeded). ``configs`` may be a dict of
    named groups, ``{"main": [...], "beta study": [...]}``: the table then has a ``group``
    column to select them by (a config in two groups is trained once and has two rows).
    ``client``: see the module docstring; ``workers`` sets the number of local worker
    processes. Runs already in the cache are read without starting a cluster. A progress bar
    counts finished runs.

    ``errors="raise"`` (default) raises :class:`GridError` after the whole grid has finished
    if any run failed, naming each failed run's parameters and error; ``errors="report"``
    warns and returns the table with the errors in it.
    """
    configs, groups = _grouped(configs)
    if client is None:
        client = os.environ.get(SCHEDULER_ENV, "").strip() or None
    _check_request(client, workers, device, errors, on_corrupt)
    unique = _unique(configs)
    cache = resolve_cache(cache_dir)
    cache_dir = str(cache.root)
    root = None if data_root is None else Path(data_root).expanduser().resolve()
    results: dict[str, dict[str, Any]] = {}  # config key -> {"record": ...} or {"error": ...}
    pending = _cached_records(unique, cache, root, on_corrupt, results)
    bar = tqdm(total=len(unique), initial=len(unique) - len(pending), desc=desc, unit="run",
               disable=not progress)
    args = (cache_dir, None if root is None else str(root), device, on_corrupt)
    try:
        if pending:
            runs = (((c, _execute(c.to_dict(), *args)) for c in pending) if client == "serial"
                    else _run_on_cluster(_client(client, workers), pending, *args))
            for config, outcome in runs:
                results[config.key()] = outcome
                bar.update(1)
    finally:
        bar.close()
    rows, failures = [], []
    for config in configs:
        outcome = results[config.key()]
        rows.append(flat_row(config, outcome.get("record"), outcome.get("error")))
        if "error" in outcome:
            failures.append((config, outcome["error"]))
    table = pd.DataFrame(rows)
    if groups is not None:
        table.insert(0, "group", groups)
    if failures:
        err = GridError(failures, table)
        if errors == "raise":
            raise err
        warnings.warn(str(err), stacklevel=2)
    return table


def _run_on_cluster(client: Any, pending: list[RunConfig], cache_dir: str, root: str | None,
                    device: str, on_corrupt: str) -> Iterator[tuple[RunConfig, dict[str, Any]]]:
    """Each pending config with its outcome, as the cluster finishes it."""
    from distributed import as_completed

    try:
        info = client.scheduler_info()["workers"]
    except Exception:  # noqa: BLE001 - an unusual scheduler: assume no GPUs
        info = {}
    has_gpus = any("GPU" in w.get("resources", {}) for w in info.values())
    if device.startswith("cuda") and not has_gpus:
        raise ValueError(f"device={device!r} was asked for, but no worker of the cluster has a "
                         "GPU (start workers with `--resources GPU=1` on GPU machines), so no "
                         "run could start; use device='cpu' or 'auto'")
    gpu = device.startswith("cuda") or (device == "auto" and has_gpus)
    futures = {client.submit(_execute, config.to_dict(), cache_dir, root, device, on_corrupt,
                             key=f"entropic_ae-run-{config.key()}", pure=False,
                             resources={"GPU": 1} if gpu else None): config
               for config in pending}
    for future in as_completed(futures, loop=client.loop):
        config = futures[future]
        try:
            outcome = future.result()
        except Exception as err:  # noqa: BLE001 - e.g. KilledWorker after repeated crashes
            outcome = _outcome_of_lost_task(config, cache_dir, root, err)
        future.release()
        yield config, outcome


def _outcome_of_lost_task(config: RunConfig, cache_dir: str, root: str | None,
                          err: Exception) -> dict[str, Any]:
    """What became of a run whose task raised outside the run itself (its worker died).

    A worker can die just after a run finished and stored its record, while the "finished"
    message is still in the worker's send buffer; the stored record is then the run's result.
    Otherwise the run failed with ``err``."""
    try:
        outcome = _stored(resolve_cache(cache_dir), config, root)
    except CorruptRunError:
        outcome = None
    return outcome or {"error": f"{type(err).__name__}: {err}"}
