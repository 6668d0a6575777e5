"""Figures of chapter 4's sample scores: how strongly each score punishes each kind of known
damage (:func:`damage_sensitivity`), what the damage looks like (:func:`damage_examples`), and
fidelity against coverage (:func:`fidelity_coverage`).

Importing this module changes no global style and does not import pyplot (the functions do,
when called, like those of :mod:`entropic_ae.plotting`); every function returns its
:class:`~matplotlib.figure.Figure`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from entropic_ae import damage as damage_module

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["NOISE_BAND", "damage_examples", "damage_sensitivity", "fidelity_coverage"]

NOISE_BAND = 2.0
"""Half-width of the shaded band of :func:`damage_sensitivity`, in real-vs-real standard
deviations: differences inside it are within two standard deviations of the score's noise."""


def _figure(nrows: int, ncols: int, size: tuple[float, float]) -> tuple[Figure, np.ndarray]:
    import matplotlib.pyplot as plt  # at call time: importing this module stays light

    return plt.subplots(nrows, ncols, figsize=size, squeeze=False, layout="constrained")


def damage_sensitivity(qualified: pd.DataFrame, metrics: Sequence[str] | None = None,
                       damages: Sequence[str] | None = None,
                       strengths: Mapping[str, Sequence[float]] | None = None,
                       ncols: int = 4) -> Figure:
    """One panel per damage: each score's punishment at strengths 0 (real images), 1, 2, 3, in
    units of its own real-vs-real standard deviation (``z_1..3`` of
    :func:`entropic_ae.metrics.validation.qualifies`; 0 at real images), on a symmetric-log
    axis, with the band :math:`|z| \\le` :data:`NOISE_BAND` shaded. A line that rises
    steadily out of the band punishes that damage; the heights compare the damages' costs.

    ``metrics`` (default: all in the table, in order) and ``damages`` choose and order the
    lines and panels; ``strengths`` label the x axis (default
    :data:`entropic_ae.damage.STRENGTHS`).
    """
    need = {"metric", "damage", "z_1"}
    if not need <= set(qualified.columns):
        raise ValueError(f"qualified must be a qualifies() table; missing {need - set(qualified)}")
    metrics = list(dict.fromkeys(qualified["metric"])) if metrics is None else list(metrics)
    damages = list(dict.fromkeys(qualified["damage"])) if damages is None else list(damages)
    strengths = damage_module.STRENGTHS if strengths is None else strengths
    levels = sorted(int(c[2:]) for c in qualified.columns if c.startswith("z_"))
    ncols = max(1, min(ncols, len(damages)))
    nrows = math.ceil(len(damages) / ncols)
    fig, axes = _figure(nrows, ncols, (3.3 * ncols, 2.9 * nrows))
    for ax in axes.flat[len(damages):]:
        ax.set_visible(False)
    for ax, kind in zip(axes.flat, damages, strict=False):
        rows = qualified[qualified["damage"] == kind].set_index("metric")
        ax.axhspan(-NOISE_BAND, NOISE_BAND, color="0.9", zorder=0)
        for metric in metrics:
            if metric not in rows.index:
                continue
            z = [0.0] + [float(rows.loc[metric, f"z_{lv}"]) for lv in levels]
            ax.plot(range(len(z)), z, marker="o", label=metric)
        labels = ["real"] + [f"{s:g}" for s in strengths.get(kind, levels)][:len(levels)]
        ax.set_xticks(range(len(labels)), labels)
        ax.set_yscale("symlog", linthresh=1.0)
        ax.set_title(kind)
        ax.set_xlabel("strength")
    for ax in axes[:, 0]:
        ax.set_ylabel("worse than real, in real-vs-real sd")
    handles, names = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, names, loc="outside lower center", ncols=min(4, len(names)),
                   fontsize=8)
    return fig


def _strip(images: torch.Tensor, count: int) -> np.ndarray:
    """The first ``count`` images (N, 1, H, W) side by side with a 1-pixel white gap."""
    imgs = images[:count, 0].detach().cpu().float().clamp(0, 1).numpy()
    h, w = imgs.shape[1:]
    canvas = np.ones((h, count * (w + 1) - 1), dtype=np.float32)
    for i, img in enumerate(imgs):
        canvas[:, i * (w + 1):i * (w + 1) + w] = img
    return canvas


def damage_examples(images: torch.Tensor, labels: torch.Tensor,
                    damages: Sequence[str] = damage_module.KINDS,
                    strengths: Mapping[str, Sequence[float]] | None = None, count: int = 6,
                    seed: int = 0, pool: torch.Tensor | None = None) -> Figure:
    """A grid of what the damage does: one row per damage, one column per strength (the real
    images first), each cell the first ``count`` images of the damaged set (grey, [0, 1]).

    ``images`` (N, 1, H, W) and ``labels`` are passed to :func:`entropic_ae.damage.damage`
    with ``seed``; ``pool`` (training images) is needed for ``copies`` (the row is left out
    without it). Damage that acts on the set, not the image (dropped classes, duplicates,
    copies), shows in which images appear.
    """
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 1:
        raise ValueError("images must be grey images (N, 1, H, W)")
    strengths = damage_module.STRENGTHS if strengths is None else strengths
    damages = [d for d in damages if d != "copies" or pool is not None]
    levels = max(len(strengths[d]) for d in damages)
    fig, axes = _figure(len(damages), levels + 1, (1.6 * count / 3 * (levels + 1),
                                                   0.75 * len(damages) + 0.4))
    for row, kind in enumerate(damages):
        cells = [("real", images)]
        for s in strengths[kind]:
            extra = pool if kind == "copies" else None
            cells.append((f"{s:g}", damage_module.damage(images, labels, kind, s, seed=seed,
                                                         pool=extra)))
        for col, ax in enumerate(axes[row]):
            ax.set_xticks([])
            ax.set_yticks([])
            if col >= len(cells):
                ax.set_visible(False)
                continue
            title, shown = cells[col]
            ax.imshow(_strip(shown, count), cmap="gray", vmin=0.0, vmax=1.0)
            ax.set_title(title, fontsize=8)
        axes[row, 0].set_ylabel(kind, rotation=0, ha="right", va="center", fontsize=9)
    return fig


def fidelity_coverage(table: pd.DataFrame, label: str = "model", x: str = "precision",
                      y: str = "coverage", ax: Axes | None = None) -> Figure:
    """Fidelity against coverage: one point per row of ``table`` at (``x``, ``y``) (default
    precision and coverage of :func:`entropic_ae.metrics.samples.sample_scores`), labelled
    with its ``label`` column; both axes from 0 to 1 plus a margin. Points at the top right are
    sharp *and* cover the data; a model high on the x axis only wins on fidelity."""
    for column in (label, x, y):
        if column not in table.columns:
            raise ValueError(f"the table has no column {column!r}")
    if ax is None:
        fig, axes = _figure(1, 1, (4.5, 4.0))
        ax = axes[0, 0]
    else:
        fig = ax.figure
    ax.scatter(table[x].to_numpy(float), table[y].to_numpy(float), s=18)
    for _, row in table.iterrows():
        ax.annotate(str(row[label]), (float(row[x]), float(row[y])), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")
    top = max(1.05, float(np.nanmax(table[[x, y]].to_numpy(float))) * 1.05) if len(table) \
        else 1.05
    ax.set(xlim=(0, top), ylim=(0, top), xlabel=x, ylabel=y)
    return fig
