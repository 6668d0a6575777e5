"""Reproducibility helpers and the one training loop every chapter uses."""

from __future__ import annotations

import random

import numpy as np
import torch

__all__ = ["default_device", "set_seed"]


def set_seed(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's random number generators (all devices)."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def default_device(prefer: str | torch.device | None = "auto") -> torch.device:
    """The device to compute on: ``"auto"``/None picks CUDA, then Apple MPS, then the CPU.

    Any other value (``"cpu"``, ``"cuda:1"``, a ``torch.device``) is returned as a device,
    after checking that it is available.
    """
    if prefer is None or prefer == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(prefer)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda[:n]' or 'mps', got {prefer!r}") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but no CUDA GPU is available; use 'auto'")
    if device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError("device 'mps' was requested but Apple MPS is not available; use 'auto'")
    return device
