"""Training speed on the current device: ``python -m entropic_ae.bench``.

Prints, for each system of chapters 4-5 and each width, the training throughput (images per
second through the training loop's own step: loss, backward, regularisers, the same fused Adam)
and the share of a step taken by the entropy terms, as medians of repeated blocks of steps
after a warm-up. Each (system, width) is measured in a fresh process of its own, so a figure
does not depend on what ran before it (allocator state, caches, thread pools)::

    python -m entropic_ae.bench --models EAE VAE RAE-GP --widths 0.0625 0.25 1 --batch-size 100

``python -m entropic_ae.bench --scaling`` instead times a small grid of runs on 1 and on 2
local workers (:func:`grid_scaling`): how much a second core speeds up the experiment layer.

:func:`step_seconds` and :func:`term_seconds` are the measurements, also used by the chapters'
cost sections.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import torch

from entropic_ae._checks import check_int
from entropic_ae.entropy_terms import log_det_correlation, sliced_gaussianity
from entropic_ae.estimators import kozachenko_leonenko, minibatch_entropy
from entropic_ae.timing import format_seconds, median_seconds
from entropic_ae.training import (
    _optimizer,
    _step,
    default_device,
    resolve_precision,
    set_seed,
    uses_channels_last,
)

__all__ = ["ENTROPY_TERMS", "grid_scaling", "isolated", "main", "scaling_grid",
           "scaling_summary", "step_seconds", "term_seconds"]


def _surrogate_m8(z: torch.Tensor) -> torch.Tensor:
    """The minibatch surrogate with 8 spacings (at most half the batch), as EAE-MB8 uses it."""
    return minibatch_entropy(z, m=min(8, z.shape[0] // 2))


def _log_det(z: torch.Tensor) -> torch.Tensor:
    """½ log det of the codes' correlation, as BN-AE+logdet uses it."""
    return log_det_correlation(z, shrinkage=0.0 if z.shape[0] > z.shape[1] else None)


#: The entropy terms compared: name → function of a batch of codes.
ENTROPY_TERMS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "Kozachenko–Leonenko": kozachenko_leonenko,
    "minibatch surrogate": minibatch_entropy,
    "surrogate, m = 8": _surrogate_m8,
    "sliced W2 + axes": partial(sliced_gaussianity, statistic="wasserstein", directions=64,
                                axes=True),
    "½ log det R": _log_det,
}


def step_seconds(config: Any, batch_size: int | None = None, device: str = "cpu",
                 repeats: int = 7, inner: int = 20, seed: int = 0,
                 precision: str | None = "auto") -> float:
    """Median seconds of one training step of ``config`` (a RunConfig): its system's model and
    objective through :func:`entropic_ae.training`'s own step, in the loop's layout and
    precision, on a random batch of ``batch_size`` inputs (default: the config's), ``inner``
    consecutive steps per timed block (so a regulariser evaluated every k steps is averaged
    in)."""
    from entropic_ae.experiments.families import image_shape
    from entropic_ae.systems import SYSTEMS

    dev = default_device(device)
    system = SYSTEMS[config.model]
    with torch.random.fork_rng(devices=[]):
        set_seed(seed)
        model = system.build(config, image_shape(config)).to(dev).train()
        x = torch.rand(batch_size or config.batch_size, *image_shape(config)).to(dev)
    if uses_channels_last(model, x):
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    objective = system.objective(config)
    opt = _optimizer(model, getattr(config.options, "optimizer", "adam"), config.lr,
                     objective.param_groups)
    counter = iter(range(10**9))
    bf16 = resolve_precision(precision, dev) == "bf16"
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16)
    torch.backends.cudnn.benchmark = dev.type == "cuda"

    def step() -> None:
        _step(model, objective.loss, x, objective.weights, opt, objective.regularisers,
              next(counter), autocast, {})

    return median_seconds(step, repeats=repeats, inner=inner, warmup=3, device=dev)


def term_seconds(fn: Callable[[torch.Tensor], torch.Tensor], batch_size: int = 100,
                 dim: int = 16, device: str | torch.device = "cpu",
                 repeats: int = 30, seed: int = 0) -> float:
    """Median seconds of the forward and backward pass of ``fn`` on ``batch_size`` codes of
    ``dim`` dimensions."""
    dev = default_device(device)
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(batch_size, dim, generator=gen).to(dev).requires_grad_(True)

    def run() -> None:
        fn(z).backward()

    return median_seconds(run, repeats=repeats, warmup=2, device=dev)


def _in_child(fn: Callable[..., Any], threads: int | None, args: tuple, kwargs: dict) -> Any:
    if threads is not None:
        torch.set_num_threads(threads)
    return fn(*args, **kwargs)


def isolated(fn: Callable[..., Any], *args: Any, threads: int | None = 1, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` in a fresh (spawned) process with ``threads`` torch threads."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        return pool.submit(_in_child, fn, threads, args, kwargs).result()


def scaling_grid() -> list[Any]:
    """The grid :func:`grid_scaling` times by default: 8 chapter-4 runs (AE, BN-AE, EAE, VAE,
    seeds 0 and 1) at width 1/16, 2,000 training images, one epoch."""
    from entropic_ae.experiments import RunConfig, grid

    base = RunConfig.make("conv", "EAE", n_train=2000, epochs=1, batch_size=100,
                          width=1 / 16, latent_dim=16)
    return grid(base, model=["AE", "BN-AE", "EAE", "VAE"], seed=[0, 1])


def grid_scaling(workers: Sequence[int] = (1, 2), repeats: int = 3,
                 configs: Sequence[Any] | None = None, data_root: Any = None
                 ) -> list[dict[str, Any]]:
    """Wall-clock seconds of ``configs`` (default :func:`scaling_grid`) on a fresh local
    cluster of each size in ``workers``, each time into a fresh cache: ``cold`` (the cluster's
    start, the workers' imports and data loading included) and ``warm`` (the same grid once
    more, into another fresh cache, on the started cluster). The sizes take turns (1, 2, 1, 2,
    ...) ``repeats`` times, so that a drift of the machine's speed touches every size alike.
    One row per (repeat, size); :func:`scaling_summary` gives the speed-ups."""
    from entropic_ae.experiments import run_grid, shutdown
    from entropic_ae.experiments.cluster import SCHEDULER_ENV

    repeats = check_int("repeats", repeats, 1)
    sizes = [check_int("workers", n, 1) for n in workers]
    if os.environ.get(SCHEDULER_ENV, "").strip():
        raise ValueError(f"grid_scaling times local clusters; unset {SCHEDULER_ENV}")
    configs = list(scaling_grid() if configs is None else configs)
    rows = []
    for repeat in range(repeats):
        for n in sizes:
            row: dict[str, Any] = {"workers": n, "repeat": repeat}
            shutdown()
            try:
                for phase in ("cold", "warm"):
                    with tempfile.TemporaryDirectory() as folder:
                        start = time.perf_counter()
                        run_grid(configs, cache_dir=folder, data_root=data_root, workers=n,
                                 device="cpu", progress=False)
                        row[phase] = time.perf_counter() - start
            finally:
                shutdown()
            rows.append(row)
    return rows


def scaling_summary(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per cluster size: the median ``cold`` and ``warm`` seconds of :func:`grid_scaling`'s
    rows and the speed-ups :math:`\\tilde t_{\\min} / \\tilde t_n` over the smallest size
    (medians :math:`\\tilde t`), with the per-repeat ratios."""
    sizes = sorted({r["workers"] for r in rows})
    if not sizes:
        raise ValueError("no rows to summarise")
    by = {n: sorted((r for r in rows if r["workers"] == n), key=lambda r: r["repeat"])
          for n in sizes}
    base = by[sizes[0]]
    out = []
    for n in sizes:
        entry: dict[str, Any] = {"workers": n}
        for phase in ("cold", "warm"):
            median = statistics.median(r[phase] for r in by[n])
            entry[phase] = median
            entry[f"{phase}_speedup"] = statistics.median(r[phase] for r in base) / median
            pairs = zip(base, by[n], strict=True)
            entry[f"{phase}_ratios"] = [a[phase] / b[phase] for a, b in pairs]
        out.append(entry)
    return out


def _print_scaling(repeats: int) -> None:
    rows = grid_scaling(repeats=repeats)
    for row in rows:
        print(f"repeat {row['repeat']}, {row['workers']} worker(s): cold {row['cold']:.1f} s, "
              f"warm {row['warm']:.1f} s", flush=True)
    for s in scaling_summary(rows):
        print(f"{s['workers']} worker(s), medians: cold {s['cold']:.1f} s "
              f"(speed-up {s['cold_speedup']:.2f}), warm {s['warm']:.1f} s "
              f"(speed-up {s['warm_speedup']:.2f}); per repeat, warm "
              + ", ".join(f"{r:.2f}" for r in s["warm_ratios"]))


def _parser() -> argparse.ArgumentParser:
    from entropic_ae.systems import CONV

    parser = argparse.ArgumentParser(prog="python -m entropic_ae.bench",
                                     description=__doc__.split("::")[0].strip())
    parser.add_argument("--models", nargs="+", default=["BN-AE", "EAE", "VAE", "RAE-GP"],
                        choices=list(CONV), metavar="MODEL")
    parser.add_argument("--widths", nargs="+", type=float, default=[0.0625, 0.25])
    parser.add_argument("--latent-dim", type=int, default=16)
    parser.add_argument("--dataset", default="mnist", choices=["mnist", "cifar10", "celeba"])
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=None,
                        help="blocks of steps per figure (default 7); with --scaling, turns "
                             "per cluster size (default 3)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's own choice)")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    parser.add_argument("--scaling", action="store_true",
                        help="time scaling_grid() on 1 and 2 local workers instead")
    return parser


def bench(models: Sequence[str], widths: Sequence[float], dataset: str = "mnist",
          latent_dim: int = 16, batch_size: int = 100, device: str = "auto", repeats: int = 7,
          threads: int | None = None) -> list[dict[str, Any]]:
    """One row per (system, width): step seconds and images per second, each measured in a
    fresh process."""
    from entropic_ae.experiments import RunConfig

    dev = str(default_device(device))
    rows = []
    for width in widths:
        for name in models:
            config = RunConfig.make("conv", name, dataset=dataset, batch_size=batch_size,
                                    width=width, latent_dim=latent_dim)
            seconds = isolated(step_seconds, config, batch_size, dev, repeats, threads=threads)
            rows.append({"model": name, "width": width, "step_seconds": seconds,
                         "images_per_second": batch_size / seconds})
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """The command line (see the module docstring)."""
    args = _parser().parse_args(argv)
    if args.scaling:
        _print_scaling(3 if args.repeats is None else args.repeats)
        return 0
    device = default_device(args.device)
    print(f"device {device}, batch {args.batch_size}, dataset {args.dataset}, code size "
          f"{args.latent_dim}")
    terms = {n: isolated(term_seconds, fn, args.batch_size, args.latent_dim, str(device),
                         threads=args.threads) for n, fn in ENTROPY_TERMS.items()}
    for name, seconds in terms.items():
        print(f"entropy term {name}: {format_seconds(seconds)} (forward + backward)")
    rows = bench(args.models, args.widths, args.dataset, args.latent_dim, args.batch_size,
                 str(device), 7 if args.repeats is None else args.repeats, args.threads)
    print(f"{'model':12s} {'width':>7s} {'step':>10s} {'images/s':>10s} "
          + " ".join(f"{n[:14]:>16s}" for n in terms))
    for row in rows:
        shares = " ".join(f"{100 * t / row['step_seconds']:15.1f}%" for t in terms.values())
        print(f"{row['model']:12s} {row['width']:7.4g} {format_seconds(row['step_seconds']):>10s}"
              f" {row['images_per_second']:10.0f} {shares}", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"device": str(device), "terms": terms, "steps": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
