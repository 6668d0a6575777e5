"""Figures used throughout the book (matplotlib, plus one ipywidgets UI).

Importing this package changes no global style. Every plotting function returns its
:class:`~matplotlib.figure.Figure` and, where it draws into a single panel, takes an optional
``ax``. Images are accepted as ``N×C×H×W`` (``C`` = 1 or 3), ``N×H×W``, or flat ``N×D`` with
``D`` a perfect square (read as ``1×√D×√D``), as torch tensors or NumPy arrays; values are
shown on a fixed [0, 1] scale (clipped).

Units are selected everywhere by one rule, :func:`select_units` (indices, or a boolean mask).

The modules: ``images`` (grids, reconstructions), ``sweeps`` (latent sweeps), ``curves``
(per-unit bars, training and validation curves), ``widths`` (the width comparison: the Pareto
figure, widths per layer).
"""

from __future__ import annotations

from ._common import _as_images, _montage, _new_axes, _show, _to_numpy, select_units
from .curves import activity_bars, training_curves, validation_curves
from .images import image_grid, reconstructions
from .sweeps import STATIC_SWEEP_NOTE, interactive_sweep, latent_sweep
from .widths import layer_widths, pareto_figure

__all__ = [
    "STATIC_SWEEP_NOTE", "activity_bars", "image_grid", "interactive_sweep", "latent_sweep",
    "layer_widths", "pareto_figure", "reconstructions", "select_units", "training_curves",
    "validation_curves",
]

# the private helpers stay importable from here for the figure modules of other chapters
_HELPERS = (_as_images, _montage, _new_axes, _show, _to_numpy)
