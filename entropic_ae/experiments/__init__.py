"""The experiment layer: every training run a cached, parameterised task, run in parallel.

- :mod:`~entropic_ae.experiments.config`: :class:`RunConfig`, a run as a frozen value, and its
  content-addressed keys;
- :mod:`~entropic_ae.experiments.cache`: the store of checkpoints and records, with checksums;
- :mod:`~entropic_ae.experiments.runner`: :func:`fit` (train or load one run, measure it) and
  :func:`load_model`;
- :mod:`~entropic_ae.experiments.cluster`: :func:`run_grid` (many runs on a Dask cluster);
- the families: :mod:`~entropic_ae.experiments.mlp` (chapters 2–3),
  :mod:`~entropic_ae.experiments.conv` (chapter 4), :mod:`~entropic_ae.experiments.toy`
  (seconds-long runs for tests and for trying a cluster).

A chapter describes its runs as configs, hands them to :func:`run_grid`, and gets a table::

    from entropic_ae.experiments import RunConfig, grid, run_grid
    base = RunConfig.make("conv", "EAE", n_train=5000, epochs=3, batch_size=100,
                          width=1 / 16, latent_dim=16)
    table = run_grid(grid(base, model=["EAE", "BN-AE"], seed=[0, 1, 2]),
                     cache_dir="checkpoints")
"""

from entropic_ae.experiments.cache import CorruptRunError, RunCache
from entropic_ae.experiments.cluster import SCHEDULER_ENV, GridError, run_grid, shutdown
from entropic_ae.experiments.config import CACHE_VERSION, RunConfig, find, grid
from entropic_ae.experiments.runner import fit, load_model

__all__ = [
    "CACHE_VERSION",
    "SCHEDULER_ENV",
    "CorruptRunError",
    "GridError",
    "RunCache",
    "RunConfig",
    "find",
    "fit",
    "grid",
    "load_model",
    "run_grid",
    "shutdown",
]
