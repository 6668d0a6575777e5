"""Latent sweeps: decode a code while one unit runs over a range of values (a static grid),
or while sliders set the units (an ipywidgets UI with a static HTML fallback)."""

from __future__ import annotations

import base64
import functools
import html
import io
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from entropic_ae._checks import check_int, check_real

from ._common import _as_images, _montage, _new_axes, _show, _to_numpy, select_units

if TYPE_CHECKING:
    import ipywidgets
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["STATIC_SWEEP_NOTE", "interactive_sweep", "latent_sweep"]

Decoder = Callable[[torch.Tensor], torch.Tensor]


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


def _check_values(values: Any) -> list[float]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence | np.ndarray
                                                          | torch.Tensor):
        raise TypeError(f"values must be a sequence of numbers, got {type(values).__name__}")
    vals = [check_real(f"values[{i}]", v if not isinstance(v, torch.Tensor) else v.item())
            for i, v in enumerate(values)]
    if not vals:
        raise ValueError("values is empty")
    return vals


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
    units: Any = None,
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
    """Decode ``base`` with one unit set to each value: the row of unit ``i`` shows
    ``decode(z)`` for ``z = base, z_i = v`` with ``v`` over ``values`` (columns).

    ``units`` selects the rows (default: all units), as indices in the order given or as a
    boolean mask over the ``latent_dim`` units (NumPy array, tensor or pandas Series), see
    :func:`~entropic_ae.plotting.select_units`; a list of booleans is refused. The row labels
    are the unit indices.

    ``base`` is ``None``/``"zeros"`` (the all-zero code) or a vector of length ``latent_dim``
    (e.g. the mean code of the data; name it with ``base_name``). The title says which base was
    used. ``decode`` maps ``B×latent_dim`` codes to images; it runs without gradients, on
    ``device`` (default: the base's device, else the device of the module ``decode`` is bound to,
    else the CPU).
    """
    if not callable(decode):
        raise TypeError("decode must be callable: codes (B×latent_dim) -> images")
    unit_list = select_units(units, check_int("latent_dim", latent_dim, minimum=1))
    vals = _check_values(values)
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


def _static_sweep_html(png: bytes, units: Sequence[int], values: Sequence[float], note: str) -> str:
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
    units: Any = None,
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
    by the slider values. ``units`` are indices or a boolean mask, as for
    :func:`latent_sweep`.

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
    unit_list = select_units(units, check_int("latent_dim", latent_dim, minimum=1))
    if len(value_range) != 2 or not value_range[0] < value_range[1]:
        raise ValueError(f"value_range must be (low, high) with low < high, got {value_range}")
    if not step > 0:
        raise ValueError(f"step must be > 0, got {step}")
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be a positive int, got {scale!r}")
    dev = _decoder_device(decode, base, device)
    base_vec, base_name = _base_code(base, latent_dim, dev)
    lo, hi = float(value_range[0]), float(value_range[1])
    start = [float(min(max(base_vec[u].item(), lo), hi)) for u in unit_list]
    sliders = [widgets.FloatSlider(value=v, min=lo, max=hi, step=step, description=f"z[{u}]",
                                   continuous_update=True, readout_format=".2f",
                                   layout=widgets.Layout(width="320px"))
               for u, v in zip(unit_list, start, strict=True)]

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
        for s, v in zip(sliders, start, strict=True):
            s.value = v

    for s in sliders:
        s.observe(update, names="value")
    reset.on_click(on_reset)
    box = _sweep_box_class()([widgets.VBox([*sliders, reset]), image],
                             layout=widgets.Layout(align_items="flex-start"))  # image unstretched
    box.add_class("entropic-sweep")  # a stable handle for front-end tests (tests/lab_check.py)
    box.sliders = sliders
    box.image = image
    box.reset_button = reset
    box.static_html = _static_sweep_html(image.value, unit_list, [s.value for s in sliders],
                                         STATIC_SWEEP_NOTE if static_note is None
                                         else static_note)
    return box
