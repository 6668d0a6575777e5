"""Figures used throughout the book (matplotlib, plus one ipywidgets UI).

Importing this module changes no global style. Every plotting function returns its
:class:`~matplotlib.figure.Figure` and, where it draws into a single panel, takes an optional
``ax``. Images are accepted as ``N×C×H×W`` (``C`` = 1 or 3), ``N×H×W``, or flat ``N×D`` with
``D`` a perfect square (read as ``1×√D×√D``), as torch tensors or NumPy arrays; values are
shown on a fixed [0, 1] scale (clipped).
"""

from __future__ import annotations

import base64
import functools
import html
import io
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    import ipywidgets
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from .training import History

__all__ = [
    "activity_bars",
    "image_grid",
    "interactive_sweep",
    "latent_sweep",
    "reconstructions",
    "training_curves",
]

Decoder = Callable[[torch.Tensor], torch.Tensor]


# --- helpers -------------------------------------------------------------------------------------


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


def _show(ax: Axes, canvas: np.ndarray, cmap: str) -> None:
    if canvas.shape[-1] == 1:
        ax.imshow(canvas[..., 0], cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(canvas, interpolation="nearest")
    for spine in ax.spines.values():
        spine.set_visible(False)


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


# --- latent sweeps -------------------------------------------------------------------------------


def _decoder_device(decode: Decoder, base: Any, device: Any) -> torch.device:
    if device is not None:
        return torch.device(device)
    if isinstance(base, torch.Tensor):
        return base.device
    owner = getattr(decode, "__self__", decode)
    if isinstance(owner, torch.nn.Module):
        first = next(owner.parameters(), None)
        if first is not None:
            return first.device
    return torch.device("cpu")


def _base_code(base: Any, latent_dim: int, device: torch.device) -> tuple[torch.Tensor, str]:
    if base is None or (isinstance(base, str) and base == "zeros"):
        return torch.zeros(latent_dim, device=device), "zeros"
    if isinstance(base, str):
        raise ValueError(f"base must be None, 'zeros' or a vector of length {latent_dim}, "
                         f"got {base!r}")
    vec = torch.as_tensor(_to_numpy(base, "base"), device=device).reshape(-1)
    if vec.numel() != latent_dim:
        raise ValueError(f"base must have {latent_dim} entries (latent_dim), got {vec.numel()}")
    if not torch.isfinite(vec).all():
        raise ValueError("base contains NaN or inf")
    return vec, "given vector"


def _check_units(units: Sequence[int] | None, latent_dim: int) -> list[int]:
    if isinstance(latent_dim, bool) or not isinstance(latent_dim, int) or latent_dim < 1:
        raise ValueError(f"latent_dim must be a positive int, got {latent_dim!r}")
    if units is None:
        return list(range(latent_dim))
    if isinstance(units, (torch.Tensor, np.ndarray)) and units.dtype in (torch.bool, np.bool_):
        if units.shape != (latent_dim,):
            raise ValueError(f"a boolean units mask must have shape ({latent_dim},), got "
                             f"{tuple(units.shape)}")
        units = [int(i) for i in np.flatnonzero(np.asarray(units))]
    out = [int(u) for u in units]
    if not out:
        raise ValueError("units is empty; pass None for all units")
    bad = [u for u in out if not 0 <= u < latent_dim]
    if bad:
        raise ValueError(f"units {bad} are outside 0..{latent_dim - 1}")
    return out


def _decode_images(decode: Decoder, codes: torch.Tensor, image_shape: Sequence[int] | None
                   ) -> np.ndarray:
    with torch.no_grad():
        out = decode(codes)
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"decode must return a tensor, got {type(out).__name__}")
    if out.shape[0] != codes.shape[0]:
        raise ValueError(f"decode returned {out.shape[0]} images for {codes.shape[0]} codes")
    return _as_images(out, "decoded images", image_shape)


def latent_sweep(
    decode: Decoder,
    latent_dim: int,
    units: Sequence[int] | None = None,
    values: Sequence[float] = (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0),
    base: Any = None,
    *,
    base_name: str | None = None,
    image_shape: Sequence[int] | None = None,
    device: str | torch.device | None = None,
    ax: Axes | None = None,
    cmap: str = "gray",
    title: str | None = None,
) -> Figure:
    """Decode ``base`` with one unit set to each value: row ``i`` shows ``decode(z)`` for
    ``z = base, z_i = v`` with ``v`` over ``values`` (columns).

    ``base`` is ``None``/``"zeros"`` (the all-zero code) or a vector of length ``latent_dim``
    (e.g. the mean code of the data; name it with ``base_name``). The title says which base was
    used. ``decode`` maps ``B×latent_dim`` codes to images; it runs without gradients, on
    ``device`` (default: the base's device, else the device of the module ``decode`` is bound to,
    else the CPU).
    """
    if not callable(decode):
        raise TypeError("decode must be callable: codes (B×latent_dim) -> images")
    unit_list = _check_units(units, latent_dim)
    vals = [float(v) for v in values]
    if not vals:
        raise ValueError("values is empty")
    dev = _decoder_device(decode, base, device)
    base_vec, default_name = _base_code(base, latent_dim, dev)
    codes = base_vec.repeat(len(unit_list) * len(vals), 1)
    rows = torch.tensor(unit_list, device=dev).repeat_interleave(len(vals))
    codes[torch.arange(codes.shape[0], device=dev), rows] = torch.tensor(
        vals, device=dev, dtype=codes.dtype).repeat(len(unit_list))
    imgs = _decode_images(decode, codes, image_shape)
    canvas, centres = _montage(imgs, len(vals), 2)
    fig, ax = _new_axes(ax, (0.9 * len(vals) + 1.0, 0.9 * len(unit_list) + 0.8))
    _show(ax, canvas, cmap)
    ax.set_xticks([c[0] for c in centres[: len(vals)]], labels=[f"{v:g}" for v in vals])
    ax.set_yticks([centres[r * len(vals)][1] for r in range(len(unit_list))],
                  labels=[str(u) for u in unit_list])
    ax.xaxis.tick_top()
    ax.tick_params(length=0, labelsize="small")
    ax.set_ylabel("latent unit")
    name = base_name or default_name
    ax.set_title(title or f"unit $i$ set to the value on top, other units = {name}",
                 fontsize="medium", pad=18)
    return fig


def _png(img: np.ndarray, scale: int, cmap: str) -> bytes:
    from matplotlib.image import imsave

    big = np.repeat(np.repeat(img, scale, axis=0), scale, axis=1)
    buf = io.BytesIO()
    if big.shape[-1] == 1:
        imsave(buf, big[..., 0], cmap=cmap, vmin=0.0, vmax=1.0, format="png")
    else:
        imsave(buf, big, format="png")
    return buf.getvalue()


STATIC_SWEEP_NOTE = (
    "<strong>Interactive figure.</strong> Its sliders need a running Python kernel, so this "
    "page shows only the image at their starting values. Open the chapter in Colab or Jupyter "
    "(the rocket button at the top of the page) and run it to move them."
)


@functools.cache
def _sweep_box_class() -> type:
    """``ipywidgets.HBox`` whose display also carries ``text/html``: a static fallback for
    pages without a kernel. Front ends with a kernel (JupyterLab, Colab, VS Code) draw the
    widget, which they rank above HTML; the HTML book ranks HTML first (``_config.yml``:
    ``nb_mime_priority_overrides``), since a saved widget's sliders could change nothing."""
    import ipywidgets as widgets

    class SweepBox(widgets.HBox):
        static_html: str = ""

        def _repr_mimebundle_(self, **kwargs: Any) -> dict | None:
            bundle = super()._repr_mimebundle_(**kwargs)
            if bundle is not None and self.static_html:
                bundle = {**bundle, "text/html": self.static_html}
            return bundle

    return SweepBox


def _static_sweep_html(png: bytes, units: Sequence[int], values: Sequence[float],
                       note: str) -> str:
    start = ", ".join(f"z[{u}] = {v:.2f}" for u, v in zip(units, values, strict=True))
    data = base64.b64encode(png).decode("ascii")
    return (
        '<div class="entropic-ae-static-sweep" style="display:flex; gap:1.5em; '
        'align-items:center; flex-wrap:wrap">'
        f'<img src="data:image/png;base64,{data}" alt="decoded image at {html.escape(start)}" '
        'style="image-rendering:pixelated; border:1px solid #ccc">'
        f'<div style="max-width:32em"><p>{note}</p>'
        f"<p>Starting values: {html.escape(start)}.</p></div></div>"
    )


def interactive_sweep(
    decode: Decoder,
    latent_dim: int,
    units: Sequence[int] | None = None,
    base: Any = None,
    value_range: tuple[float, float] = (-3.0, 3.0),
    *,
    step: float = 0.05,
    image_shape: Sequence[int] | None = None,
    device: str | torch.device | None = None,
    scale: int = 8,
    cmap: str = "gray",
    static_note: str | None = None,
) -> ipywidgets.Widget:
    """An ipywidgets UI: one slider per unit in ``units`` (default: all) and the live image
    ``decode(z)``, where ``z`` is ``base`` (zeros by default) with the sliders' units replaced
    by the slider values.

    Returns the top-level widget, an ``ipywidgets.HBox`` with extra attributes ``sliders`` (the
    ``FloatSlider`` list, in the order of ``units``), ``image`` (an ``ipywidgets.Image`` holding
    the PNG), ``reset_button`` and ``static_html``. Without a front end (e.g. under papermill)
    nothing fails: the widget is built, drawn once and returned.

    Displayed, it also offers ``text/html`` for pages without a kernel (the HTML book): the
    image at the starting values, ``static_note`` (HTML; default :data:`STATIC_SWEEP_NOTE`,
    which says that the sliders need a running kernel and where to get one) and the starting
    values. Front ends with a kernel show the widget instead.
    """
    import ipywidgets as widgets

    if static_note is not None and not isinstance(static_note, str):
        raise TypeError(f"static_note must be an HTML string or None, got "
                        f"{type(static_note).__name__}")
    if not callable(decode):
        raise TypeError("decode must be callable: codes (B×latent_dim) -> images")
    unit_list = _check_units(units, latent_dim)
    if len(value_range) != 2 or not value_range[0] < value_range[1]:
        raise ValueError(f"value_range must be (low, high) with low < high, got {value_range}")
    if not step > 0:
        raise ValueError(f"step must be > 0, got {step}")
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be a positive int, got {scale!r}")
    dev = _decoder_device(decode, base, device)
    base_vec, base_name = _base_code(base, latent_dim, dev)
    lo, hi = float(value_range[0]), float(value_range[1])

    sliders = [
        widgets.FloatSlider(
            value=float(min(max(base_vec[u].item(), lo), hi)), min=lo, max=hi, step=step,
            description=f"z[{u}]", continuous_update=True, readout_format=".2f",
            layout=widgets.Layout(width="320px"),
        )
        for u in unit_list
    ]

    def render() -> bytes:
        z = base_vec.clone()
        for u, s in zip(unit_list, sliders, strict=True):
            z[u] = s.value
        return _png(_decode_images(decode, z[None], image_shape)[0], scale, cmap)

    image = widgets.Image(value=render(), format="png")
    reset = widgets.Button(description=f"reset to base ({base_name})",
                           layout=widgets.Layout(width="320px"))

    def update(_change: Any = None) -> None:
        image.value = render()

    def on_reset(_button: Any) -> None:
        for u, s in zip(unit_list, sliders, strict=True):
            s.value = float(min(max(base_vec[u].item(), lo), hi))

    for s in sliders:
        s.observe(update, names="value")
    reset.on_click(on_reset)
    box = _sweep_box_class()([widgets.VBox([*sliders, reset]), image])
    box.add_class("entropic-sweep")  # a stable handle for front-end tests (tests/lab_check.py)
    box.sliders = sliders
    box.image = image
    box.reset_button = reset
    box.static_html = _static_sweep_html(image.value, unit_list, [s.value for s in sliders],
                                         STATIC_SWEEP_NOTE if static_note is None
                                         else static_note)
    return box


# --- activity and training -----------------------------------------------------------------------


def activity_bars(
    activity: Any,
    ax: Axes | None = None,
    threshold: float | None = None,
    *,
    labels: Sequence[str] | None = None,
    xlabel: str = "unit",
    ylabel: str = "activity",
    title: str | None = None,
    logy: bool = False,
) -> Figure:
    """Bar plot of one activity value per unit (e.g. normalised node activity or code variance).

    Units with ``activity < threshold`` are drawn in grey and the threshold as a dashed line.
    """
    act = _to_numpy(activity, "activity")
    if act.ndim != 1:
        raise ValueError(f"activity must be 1-d (one value per unit), got shape {act.shape}")
    if act.size == 0:
        raise ValueError("activity is empty")
    if not np.isfinite(act).all():
        raise ValueError("activity contains NaN or inf")
    if labels is not None and len(labels) != act.size:
        raise ValueError(f"labels has {len(labels)} entries for {act.size} units")
    if logy and (act <= 0).any():
        raise ValueError("logy needs positive activity values")
    fig, ax = _new_axes(ax, (max(4.0, 0.25 * act.size + 1.5), 2.8))
    active = np.ones(act.size, bool) if threshold is None else act >= threshold
    colors = np.where(active, "C0", "0.75")
    x = np.arange(act.size)
    ax.bar(x, act, color=list(colors))
    if threshold is not None:
        ax.axhline(threshold, color="0.3", linestyle="--", linewidth=1,
                   label=f"threshold {threshold:g}: {int(active.sum())}/{act.size} active")
        ax.legend(loc="upper right", fontsize="small", frameon=False)
    ax.set_xticks(x, labels=list(labels) if labels is not None else [str(i) for i in x])
    if act.size > 32:
        ax.tick_params(axis="x", labelsize="x-small", rotation=90)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    return fig


def training_curves(
    history: History | Mapping[str, Any],
    terms: Sequence[str] | None = None,
    ax: Axes | None = None,
    logy: bool = False,
    *,
    title: str | None = None,
) -> Figure:
    """One line per term against the (1-based) epoch, from a :class:`~entropic_ae.training.History`,
    its ``to_dict()``, or a mapping ``{term: per-epoch values}``. Default: every term."""
    if hasattr(history, "terms") and isinstance(history.terms, Mapping):
        series: Mapping[str, Any] = history.terms
    elif isinstance(history, Mapping) and "terms" in history and isinstance(history["terms"],
                                                                            Mapping):
        series = history["terms"]
    elif isinstance(history, Mapping):
        series = history
    else:
        raise TypeError(f"history must be a History or a mapping, got {type(history).__name__}")
    names = list(series) if terms is None else list(terms)
    missing = [n for n in names if n not in series]
    if missing:
        raise ValueError(f"unknown terms {missing}; available: {list(series)}")
    if not names:
        raise ValueError("no terms to plot")
    fig, ax = _new_axes(ax, (5.0, 3.2))
    for name in names:
        y = _to_numpy(list(series[name]), name).reshape(-1)
        if y.size == 0:
            raise ValueError(f"term {name!r} has no epochs")
        if logy and (y <= 0).any():
            raise ValueError(f"logy needs positive values, but {name!r} has min {y.min():g}")
        ax.plot(np.arange(1, y.size + 1), y, marker="o" if y.size <= 30 else None,
                markersize=3, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("value")
    if logy:
        ax.set_yscale("log")
    ax.legend(fontsize="small", frameon=False)
    if title:
        ax.set_title(title)
    return fig
