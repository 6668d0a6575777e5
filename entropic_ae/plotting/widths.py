"""Figures of the width comparison: test error against active units with the Pareto frontier
of the methods, and the widths of every layer for several networks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ._common import _finish, _new_axes

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["layer_widths", "pareto_figure"]

_MARKERS = "osD^vP*Xh<>"


def pareto_figure(
    runs: pd.DataFrame,
    by: str | Sequence[str] = ("method", "setting"),
    units: str = "active_units",
    mse: str = "test_mse",
    ax: Axes | None = None,
    *,
    logy: bool = True,
    xlabel: str = "active units (mean ± sd over seeds)",
    ylabel: str = "test MSE (mean ± sd over seeds)",
    title: str | None = None,
) -> Figure:
    """Test error against active units: one point per group of runs (``by``, e.g. a method
    and its setting), at the means of ``units`` and ``mse`` over the group's runs with ±1 sd
    error bars in both directions, and the Pareto frontier of these means.

    The first column of ``by`` is the method: all settings of one method share a colour and a
    marker and are joined by a dotted line in order of their mean units (label: the method).
    The frontier (:func:`entropic_ae.width_learning.pareto_mask`: the non-dominated means,
    fewer units and lower MSE being better) is drawn as the dashed staircase
    ``u -> min{MSE of frontier points with units <= u}`` (gid ``"pareto-frontier"``) with its
    points ringed (gid ``"frontier-points"``). Numbers: :func:`~entropic_ae.width_learning.
    pareto_table` computes the same table, with each point's gap to the frontier.
    """
    from entropic_ae.width_learning import pareto_table

    keys = [by] if isinstance(by, str) else list(by)
    if not keys:
        raise ValueError("by must name at least one column")
    table = pareto_table(runs, keys, units, mse)
    if logy and (table["mse_mean"] <= 0).any():
        raise ValueError("logy needs positive mean MSEs")
    fig, ax = _new_axes(ax, (7.0, 4.4))
    method_of = table.index.get_level_values(0) if len(keys) > 1 else table.index
    for i, method in enumerate(dict.fromkeys(method_of)):
        part = table[np.asarray(method_of == method)].sort_values("units_mean")
        x, y, xerr, yerr = (part[c].to_numpy(dtype=np.float64) for c in
                            ("units_mean", "mse_mean", "units_sd", "mse_sd"))
        ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt=_MARKERS[i % len(_MARKERS)], linestyle=":",
                    color=f"C{i % 10}", capsize=2.5, markersize=5, linewidth=1, label=str(method))
    front = table[table["on_frontier"]].sort_values("units_mean")
    xs, ys = front["units_mean"].to_numpy(), front["mse_mean"].to_numpy()
    right = max(float(table["units_mean"].max()), float(xs[-1]))
    (stair,) = ax.step(np.append(xs, right), np.append(ys, ys[-1]), where="post", color="k",
                       linestyle="--", linewidth=1, label="Pareto frontier (of the means)")
    stair.set_gid("pareto-frontier")
    ring = ax.scatter(xs, ys, s=140, facecolors="none", edgecolors="k", linewidths=1, zorder=3)
    ring.set_gid("frontier-points")
    ax.legend(fontsize="small", frameon=False)
    _finish(ax, xlabel, ylabel, logy, title)
    return fig


def _layer_values(widths: Any, layers: list[int]) -> list[float]:
    if isinstance(widths, Mapping):
        missing = [l for l in layers if l not in widths]
        if missing:
            raise ValueError(f"widths has no entry for the layers {missing}")
    elif isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence):
        raise TypeError(f"widths must be a mapping layer -> width or a sequence indexed by "
                        f"layer, got {type(widths).__name__}")
    elif max(layers) >= len(widths):
        raise ValueError(f"widths has {len(widths)} entries but the layers go up to "
                         f"{max(layers)}")
    return [float(widths[l]) for l in layers]


def layer_widths(
    rows: pd.DataFrame,
    measures: Sequence[str] = ("active_units", "effective_nodes"),
    network: str = "network",
    layer: str = "layer",
    *,
    widths: Mapping[int, float] | Sequence[float] | None = None,
    kind: str = "line",
    labels: Mapping[str, str] | None = None,
    axes: Sequence[Axes] | None = None,
    title: str | None = None,
    reference: Mapping[str, float] | None = None,
) -> Figure:
    """Width of every layer for several networks: one panel per measure (e.g. active units,
    effective nodes), and in each panel, for every network, the mean over its rows (seeds) of
    the measure at each layer with ±1 sd error bars (``ddof = 1``).

    ``rows`` has one row per network, seed and layer (e.g. from
    :func:`entropic_ae.experiments.mlp.layer_rows` with a ``network`` column added).
    ``kind="line"``: one line with error bars per network (label: the network);
    ``kind="bar"``: grouped bars, one group per layer, one bar per network. ``widths`` (per
    layer) adds the layers' widths as a grey dashed line (gid ``"layer-widths"``). ``labels``
    maps a measure to its axis label (default: the column name with spaces). ``axes``: one
    Axes per measure to draw into. ``reference`` (label → value) adds black dotted horizontal
    lines (gid ``"reference"``), e.g. a known true width. Each panel's legend sits below its
    axes, where it cannot hide a point or an error bar.
    """
    names = list(measures) if not isinstance(measures, str) else [measures]
    missing = [c for c in [network, layer, *names] if c not in rows.columns]
    if missing:
        raise ValueError(f"rows has no columns {missing}; it has {list(rows.columns)}")
    if rows.empty:
        raise ValueError("rows is empty")
    if kind not in ("line", "bar"):
        raise ValueError(f"kind must be 'line' or 'bar', got {kind!r}")
    if axes is None:
        import matplotlib.pyplot as plt

        fig, axs = plt.subplots(1, len(names), figsize=(4.6 * len(names), 3.6), squeeze=False)
        axes = list(axs[0])
    else:
        axes = list(axes)
        if len(axes) != len(names):
            raise ValueError(f"axes has {len(axes)} entries for {len(names)} measures")
        fig = _new_axes(axes[0], (1.0, 1.0))[0]
    layers = sorted(int(l) for l in rows[layer].unique())
    nets = list(dict.fromkeys(rows[network]))
    stats = rows.groupby([network, layer], sort=False)[names].agg(["mean", "std"])
    for ax, name in zip(axes, names, strict=True):
        step = 0.8 / len(nets)
        for i, net in enumerate(nets):
            sub = stats.loc[net].reindex(layers)
            mean, sd = sub[(name, "mean")].to_numpy(), sub[(name, "std")].to_numpy()
            colour = f"C{i % 10}"
            if kind == "line":
                ax.errorbar(layers, mean, yerr=sd, fmt=_MARKERS[i % len(_MARKERS)] + "-",
                            color=colour, capsize=3, markersize=4, label=str(net))
            else:
                ax.bar(np.asarray(layers) - 0.4 + step * (i + 0.5), mean, width=step, yerr=sd,
                       color=colour, capsize=2, label=str(net))
        if widths is not None:
            (line,) = ax.plot(layers, _layer_values(widths, layers), color="0.6",
                              linestyle="--", marker="_", markersize=12, label="layer width")
            line.set_gid("layer-widths")
        for text, value in (reference or {}).items():
            ax.axhline(float(value), color="k", linestyle=":", linewidth=1,
                       label=str(text)).set_gid("reference")
        ax.set_xticks(layers)
        ax.set_xlabel("layer")
        ax.set_ylabel((labels or {}).get(name, name.replace("_", " ")) + " (mean ± sd)")
        ax.legend(fontsize="small", frameon=False, loc="upper center",
                  bbox_to_anchor=(0.5, -0.16), ncol=2)
    if title:
        fig.suptitle(title)
    return fig
