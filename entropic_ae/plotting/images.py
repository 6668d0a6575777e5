"""Image figures: a grid of images, and originals above their reconstructions."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ._common import _as_images, _montage, _new_axes, _show

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["image_grid", "reconstructions"]


# --- image grids ---------------------------------------------------------------------------------


def image_grid(
    images: Any,
    nrow: int = 8,
    titles: Sequence[str] | None = None,
    ax: Axes | None = None,
    *,
    cmap: str = "gray",
    pad: int = 2,
    title: str | None = None,
) -> Figure:
    """Tile images into one picture, ``nrow`` images per row (torchvision's convention).

    ``titles`` (one per image) are written above the tiles. The grid is a single ``imshow``
    in one Axes, so it can go into any subplot.
    """
    imgs = _as_images(images)
    if isinstance(nrow, bool) or not isinstance(nrow, int) or nrow < 1:
        raise ValueError(f"nrow (images per row) must be a positive int, got {nrow!r}")
    if titles is not None and len(titles) != len(imgs):
        raise ValueError(f"titles has {len(titles)} entries for {len(imgs)} images")
    ncol = min(nrow, len(imgs))
    rows = math.ceil(len(imgs) / ncol)
    h = imgs.shape[1]
    tile_pad = pad if titles is None else max(pad, h // 2)
    canvas, centres = _montage(imgs, ncol, tile_pad)
    fig, ax = _new_axes(ax, (1.1 * ncol, 1.1 * rows + (0.4 if title else 0.0)))
    _show(ax, canvas, cmap)
    ax.set_xticks([])
    ax.set_yticks([])
    if titles is not None:
        for (x, y), text in zip(centres, titles, strict=True):
            ax.text(x, y - h / 2 - 0.5, str(text), ha="center", va="bottom", fontsize="small")
    if title:
        ax.set_title(title)
    return fig


def reconstructions(
    originals: Any,
    recons: Any,
    n: int = 8,
    ax: Axes | None = None,
    *,
    labels: tuple[str, str] = ("original", "reconstruction"),
    cmap: str = "gray",
    title: str | None = None,
) -> Figure:
    """Two rows: the first ``n`` originals above their reconstructions."""
    a, b = _as_images(originals, "originals"), _as_images(recons, "recons")
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(f"originals and recons have different image shapes: "
                         f"{a.shape[1:]} vs {b.shape[1:]}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    n = min(n, len(a), len(b))
    canvas, centres = _montage(np.concatenate([a[:n], b[:n]]), n, 2)
    fig, ax = _new_axes(ax, (1.1 * n + 1.2, 2.4))
    _show(ax, canvas, cmap)
    ax.set_xticks([])
    ax.set_yticks([centres[0][1], centres[n][1]], labels=list(labels))
    ax.tick_params(length=0)
    if title:
        ax.set_title(title)
    return fig
