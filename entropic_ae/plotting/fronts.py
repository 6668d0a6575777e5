"""The figure of chapter 5's fronts: reconstruction error against a quality score, one line per
entropy term through its weights β."""

from __future__ import annotations

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from entropic_ae.plotting._common import _new_axes

__all__ = ["front_figure"]


def front_figure(points: pd.DataFrame, ax: Axes | None = None, *,
                 reference: str = "EAE") -> Figure:
    """One line per model of a :func:`entropic_ae.chapters.ch05.fronts` table (one dataset):
    its points at (``val_mse``, ``value``) with error bars of one sd in both directions, joined
    in the order of ``val_mse``, each labelled with its β; the ``reference`` model's line
    drawn thicker and black. Lower left is better."""
    need = {"model", "beta", "val_mse", "val_sd", "value", "sd"}
    if not need <= set(points.columns):
        raise ValueError(f"points lack the columns {sorted(need - set(points.columns))}; "
                         "pass a ch05.fronts() table")
    if points["dataset"].nunique() > 1 if "dataset" in points else False:
        raise ValueError("points hold several datasets; select one")
    fig, ax = _new_axes(ax, (6.0, 4.0))
    for model, part in points.groupby("model", sort=False):
        part = part.sort_values("val_mse")
        style = {"color": "black", "lw": 2.2, "zorder": 3} if model == reference else {}
        x, y, xerr, yerr = (part[c].to_numpy(float) for c in ("val_mse", "value", "val_sd",
                                                               "sd"))
        ax.errorbar(x, y, xerr=xerr, yerr=yerr, marker="o", capsize=2, label=model, **style)
        for _, p in part.iterrows():
            ax.annotate(f"β={p['beta']:g}", (p["val_mse"], p["value"]), fontsize=6,
                        xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("validation reconstruction MSE per pixel")
    ax.legend(fontsize=7)
    return fig
