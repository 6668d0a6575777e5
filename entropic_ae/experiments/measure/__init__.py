"""What is measured on a trained run, per family: :func:`measure` returns the metrics of a
record and the names of the extra files it wrote into the run's folder (a trained sampler).

Measurements shared by many runs (the test images' features, the feature network) are
computed once per process."""

from __future__ import annotations

import importlib
from typing import Any

from torch import nn

from entropic_ae.experiments.config import RunConfig
from entropic_ae.experiments.context import RunContext

__all__ = ["measure"]


def measure(config: RunConfig, model: nn.Module, ctx: RunContext, data: str
            ) -> tuple[dict[str, Any], list[str]]:
    """``(metrics, files)`` of the trained ``model`` of ``config`` (its family's measure)."""
    family = importlib.import_module(f"entropic_ae.experiments.measure.{config.family}")
    return family.measure(config, model.eval(), ctx, data)
