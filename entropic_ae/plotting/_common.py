"""Helpers shared by the figure modules (private): array conversion, image montages, axes and
the one rule by which every figure selects units."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from entropic_ae._checks import is_integer

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["select_units"]


def _to_numpy(x: Any, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float32).numpy()
    if isinstance(x, np.ndarray):
        return x.astype(np.float32, copy=False)
    if isinstance(x, (list, tuple)):
        try:
            return np.asarray(x, dtype=np.float32)
        except (TypeError, ValueError) as err:
            raise TypeError(f"{name} must be numeric, got a non-numeric sequence") from err
    raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")


def _as_images(images: Any, name: str = "images", image_shape: Sequence[int] | None = None
               ) -> np.ndarray:
    """``N×H×W×C`` float array (C = 1 or 3) from any of the accepted layouts."""
    arr = _to_numpy(images, name)
    if image_shape is not None and arr.ndim >= 1:
        try:
            arr = arr.reshape(arr.shape[0], *image_shape)
        except ValueError as err:
            raise ValueError(f"{name} of shape {arr.shape} cannot be viewed as "
                             f"N×{tuple(image_shape)}") from err
    if arr.ndim == 2:
        side = math.isqrt(arr.shape[1])
        if side * side != arr.shape[1]:
            raise ValueError(f"flat {name} need a perfect-square length per image, got "
                             f"{arr.shape[1]}; pass image_shape")
        arr = arr.reshape(arr.shape[0], 1, side, side)
    if arr.ndim == 3:
        arr = arr[:, None]
    if arr.ndim != 4 or arr.shape[1] not in (1, 3):
        raise ValueError(f"{name} must be N×1×H×W, N×3×H×W, N×H×W or N×D (D square), got "
                         f"shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contain NaN or inf")
    return np.clip(arr.transpose(0, 2, 3, 1), 0.0, 1.0)


def _montage(imgs: np.ndarray, ncol: int, pad: int) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Tile ``N×H×W×C`` images row-major into one array; also the (x, y) centre of each tile."""
    n, h, w, c = imgs.shape
    nrow = math.ceil(n / ncol)
    canvas = np.ones(((h + pad) * nrow + pad, (w + pad) * ncol + pad, c), dtype=np.float32)
    centres = []
    for k in range(n):
        r, q = divmod(k, ncol)
        y0, x0 = pad + r * (h + pad), pad + q * (w + pad)
        canvas[y0 : y0 + h, x0 : x0 + w] = imgs[k]
        centres.append((x0 + (w - 1) / 2, y0 + (h - 1) / 2))
    return canvas, centres


def _new_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        from matplotlib.axes import Axes as _Axes

        if not isinstance(ax, _Axes):
            raise TypeError(f"ax must be a matplotlib Axes, got {type(ax).__name__}")
        return ax.get_figure(), ax
    import matplotlib.pyplot as plt

    fig, new_ax = plt.subplots(figsize=figsize)
    return fig, new_ax


def _finish(ax: Axes, xlabel: str, ylabel: str, logy: bool, title: str | None,
            integer_x: bool = False) -> None:
    """Axis labels, a log y axis if asked, the title if there is one, and integer x ticks (epochs)
    if asked."""
    if integer_x:
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)


def _show(ax: Axes, canvas: np.ndarray, cmap: str) -> None:
    if canvas.shape[-1] == 1:
        ax.imshow(canvas[..., 0], cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(canvas, interpolation="nearest")
    for spine in ax.spines.values():
        spine.set_visible(False)


def select_units(units: Any, n_units: int, name: str = "units") -> list[int]:
    """The indices of the units a figure shows, from one of two unambiguous forms.

    * **indices**: a list, tuple, range or 1-d integer array/tensor of distinct indices in
      ``0..n_units-1``, shown in the given order;
    * **a boolean mask**: a NumPy array, torch tensor or pandas Series of dtype bool and
      length ``n_units``; the units where it is True, in increasing order.

    ``None`` selects every unit. A list or tuple that holds booleans (e.g.
    ``series.to_list()`` of an ``active`` column) is refused with a ``TypeError``: Python
    counts ``False``/``True`` as the indices 0 and 1, so such a list would silently select
    units 0 and 1 over and over. Floats, repeated indices, indices out of range and an empty
    selection are refused too.
    """
    if not is_integer(n_units) or n_units < 1:
        raise ValueError(f"the number of units must be a positive int, got {n_units!r}")
    n_units = int(n_units)
    if units is None:
        return list(range(n_units))
    if isinstance(units, (str, bytes, bool, np.bool_)) or is_integer(units):
        raise TypeError(f"{name} must be indices (a list of ints) or a boolean mask "
                        f"(array/tensor), got {type(units).__name__} {units!r}")
    if isinstance(units, (list, tuple, range)):
        if any(isinstance(u, (bool, np.bool_)) for u in units):
            raise TypeError(
                f"{name} is a {type(units).__name__} holding booleans, which Python reads as "
                "the indices 0 and 1; pass indices (e.g. [0, 3, 7]) or a boolean NumPy "
                "array/torch tensor/pandas Series as a mask")
        values = list(units)
    else:
        arr = units.detach().cpu().numpy() if isinstance(units, torch.Tensor) \
            else np.asarray(units)
        if arr.ndim != 1:
            raise ValueError(f"{name} must be 1-d, got shape {arr.shape}")
        if arr.dtype == np.bool_:
            if arr.shape != (n_units,):
                raise ValueError(f"a boolean {name} mask must have shape ({n_units},), got "
                                 f"{arr.shape}")
            values = np.flatnonzero(arr).tolist()
            if not values:
                raise ValueError(f"the boolean {name} mask selects no unit (all False)")
        elif np.issubdtype(arr.dtype, np.integer):
            values = arr.tolist()
        else:
            raise TypeError(f"{name} must hold integer indices or be a boolean mask, got "
                            f"dtype {arr.dtype}")
    bad_type = [u for u in values if not is_integer(u)]
    if bad_type:
        raise TypeError(f"{name} must hold integer indices, got {bad_type[:3]!r}")
    out = [int(u) for u in values]
    if not out:
        raise ValueError(f"{name} is empty; pass None for all units")
    bad = [u for u in out if not 0 <= u < n_units]
    if bad:
        raise ValueError(f"{name} {bad} are outside 0..{n_units - 1}")
    repeated = sorted({u for u in out if out.count(u) > 1})
    if repeated:
        raise ValueError(f"{name} repeats the units {repeated}; each unit may appear once")
    return out
