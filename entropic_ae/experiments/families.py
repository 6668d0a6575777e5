"""The untrained model of a run, per family: built from its system's record with the global
RNGs seeded by the run's seed (so the same config starts from the same weights), or, for an
mlp fine-tuning run, the trained parent with its inactive units removed."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from entropic_ae.experiments.config import RunConfig
from entropic_ae.experiments.context import RunContext, images
from entropic_ae.systems import SYSTEMS
from entropic_ae.training import set_seed

__all__ = ["image_shape", "initial_model", "inject_fault"]


def image_shape(config: RunConfig) -> tuple[int, ...]:
    """The shape of one input of ``config``'s data."""
    if config.family == "toy":
        return (config.options.dim,)
    return {"cifar10": (3, 32, 32), "celeba": (3, 64, 64)}.get(config.dataset, (1, 28, 28))


def inject_fault(fault: str | None) -> None:
    """The toy family's ``fault`` option, for the experiment layer's tests: ``"raise"`` raises
    ``ValueError``; ``"kill-once:<file>"`` kills this process unless ``<file>`` exists
    (creating it first), as a crashing machine would."""
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


def initial_model(config: RunConfig, ctx: RunContext,
                  parent_model: Callable[[RunConfig], nn.Module]) -> nn.Module:
    """The model ``config`` starts training from. ``parent_model(parent_config)`` returns a
    trained parent (the runner trains it or loads it)."""
    if config.family == "toy":
        inject_fault(config.options.fault)
    parent = getattr(config.options, "parent", None)
    if parent is None:
        with torch.random.fork_rng(devices=[]):
            set_seed(config.seed)
            return SYSTEMS[config.model].build(config, image_shape(config))
    from entropic_ae.metrics import unit_ablation
    from entropic_ae.models.mlp import prune

    if parent.family != "mlp":
        raise ValueError(f"{config.slug}: option parent must be an mlp RunConfig")
    if config.options.layer is None or config.options.prune is None:
        raise ValueError(f"{config.slug}: fine-tuning a parent needs the options layer and prune")
    source = parent_model(parent).to(ctx.device).eval()
    layer = config.options.layer
    x, _ = images(parent, "train", ctx.data_root)
    sample = x[:2000].to(ctx.device)
    rise = unit_ablation(lambda v: source.encode(v, layer),
                         lambda h: source.decode_from(h, layer), sample, batch_size=512)
    quiet = [int(i) for i in torch.nonzero(rise <= config.options.prune).flatten()]
    pruned, _ = prune(source, sample, layers=[layer], remove={layer: quiet})
    return pruned
