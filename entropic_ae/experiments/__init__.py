"""The experiment layer: every training run a typed, cached value, run in parallel.

- :mod:`~entropic_ae.experiments.options`: each family's typed training and measurement
  options (a frozen dataclass each: defaults, allowed values, documentation);
- :mod:`~entropic_ae.experiments.config`: :class:`RunConfig`, a run as a frozen, checked value;
  :func:`grid` and :func:`find`;
- :mod:`~entropic_ae.experiments.cache`: the run cache, keyed by the config, the code and the
  data; one writer per run; checksums;
- :mod:`~entropic_ae.experiments.runner`: :func:`fit` (train or load one run, measure it) and
  :func:`load_model` (the trained model from its checkpoint; never trains);
- :mod:`~entropic_ae.experiments.cluster`: :func:`run_grid` (many runs on a Dask cluster);
- :mod:`~entropic_ae.experiments.families` (the untrained model of a run) and
  :mod:`~entropic_ae.experiments.measure` (what is measured on a trained run, per family).

What a system minimises is in its record, :mod:`entropic_ae.systems`. A chapter describes its
runs as configs, hands them to :func:`run_grid`, and gets a table::

    from entropic_ae.experiments import RunConfig, grid, run_grid
    base = RunConfig.make("conv", "EAE", n_train=5000, epochs=3, batch_size=100,
                          width=1 / 16, latent_dim=16)
    table = run_grid(grid(base, model=["EAE", "BN-AE"], seed=[0, 1, 2]),
                     cache_dir="checkpoints")
"""

from entropic_ae.experiments.cache import CorruptRunError, RunCache
from entropic_ae.experiments.cluster import SCHEDULER_ENV, GridError, run_grid, shutdown
from entropic_ae.experiments.config import RunConfig, find, grid
from entropic_ae.experiments.runner import fit, load_model

__all__ = ["SCHEDULER_ENV", "CorruptRunError", "GridError", "RunCache", "RunConfig", "find", "fit",
           "grid", "load_model", "run_grid", "shutdown"]
