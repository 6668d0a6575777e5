"""The ``toy`` family: a tiny linear autoencoder on synthetic data, in seconds.

It exercises the experiment layer (caching, resuming, grids on a cluster, fault handling)
without any dataset, and checks that a new cluster works before real runs are sent to it.
Options: ``dim`` (data dimension, default 8), ``latent`` (default 2). The ``fault`` option
injects a failure for the experiment layer's tests: ``"raise"`` raises ``ValueError`` in
training, ``"kill-once:<file>"`` kills the worker process running it unless ``<file>``
exists (creating it first), as a crashing machine would.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import torch
from torch import nn

from entropic_ae.experiments.config import RunConfig
from entropic_ae.experiments.context import RunContext, Trained
from entropic_ae.training import set_seed, train

__all__ = ["fit", "measure"]


def _data(config: RunConfig) -> torch.Tensor:
    dim = int(config.option("dim", 8))
    n = config.n_train or 256
    gen = torch.Generator().manual_seed(1234)
    mixing = torch.randn(dim, dim, generator=gen)
    return torch.randn(n, dim, generator=gen) @ mixing / dim**0.5


def _model(config: RunConfig) -> nn.Module:
    dim, latent = int(config.option("dim", 8)), int(config.option("latent", 2))
    return nn.Sequential(nn.Linear(dim, latent), nn.Linear(latent, dim))


def _loss(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"mse": (model(x) - x).pow(2).mean()}


def _inject(fault: str | None) -> None:
    if fault is None:
        return
    if fault == "raise":
        raise ValueError("the toy run was asked to fail (fault='raise')")
    if fault.startswith("kill-once:"):
        marker = Path(fault.removeprefix("kill-once:"))
        if not marker.exists():
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return
    raise ValueError(f"unknown fault {fault!r}: use 'raise' or 'kill-once:<file>'")


def fit(config: RunConfig, ctx: RunContext) -> Trained:
    """Train (or load) the toy autoencoder of ``config``."""
    _inject(config.option("fault"))
    set_seed(config.seed)
    model = _model(config)
    path = ctx.cache.checkpoint(config)
    resumed = ctx.cache.start_from_shorter(config)
    history = train(model, _loss, _data(config), epochs=config.epochs, lr=config.lr,
                    batch_size=config.batch_size, seed=config.seed, device=ctx.device,
                    checkpoint=path, progress=False)
    return Trained(model, history, {"checkpoint": path}, resumed_from=resumed)


@torch.no_grad()
def measure(config: RunConfig, trained: Trained, ctx: RunContext) -> dict[str, float]:
    """``mse`` of the model on its training data, and the first weight (for exact checks)."""
    model = trained.model.eval()
    x = _data(config).to(ctx.device)
    return {"mse": float(_loss(model, x)["mse"]),
            "first_weight": float(next(model.parameters()).flatten()[0])}
