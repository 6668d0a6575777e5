"""Measurements of a toy run: its mean squared error and its first weight (for exact checks)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from entropic_ae.experiments.config import RunConfig
from entropic_ae.experiments.context import RunContext, toy_data

__all__ = ["measure"]


@torch.no_grad()
def measure(config: RunConfig, model: nn.Module, ctx: RunContext, data: str
            ) -> tuple[dict[str, Any], list[str]]:
    """``mse`` on the first ``n_eval`` training points and the first weight's value."""
    x = toy_data(config.n_train, config.options.dim)[:config.measure.n_eval].to(ctx.device)
    return {"mse": float((model(x) - x).pow(2).mean()),
            "first_weight": float(next(model.parameters()).flatten()[0])}, []
