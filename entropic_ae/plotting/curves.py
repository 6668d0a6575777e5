"""Per-unit bars and per-epoch curves: activity of each unit, training terms, validation
losses of several runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from entropic_ae._checks import check_real

from ._common import _finish, _new_axes, _to_numpy, select_units

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from entropic_ae.training import History

__all__ = ["activity_bars", "training_curves", "validation_curves"]


# --- activity and training -----------------------------------------------------------------------


def activity_bars(
    activity: Any,
    ax: Axes | None = None,
    threshold: float | None = None,
    *,
    active: Any = None,
    labels: Sequence[str] | None = None,
    xlabel: str = "unit",
    ylabel: str = "activity",
    title: str | None = None,
    logy: bool = False,
) -> Figure:
    """Bar plot of one activity value per unit (e.g. normalised node activity or code variance):
    bar ``i`` has height ``activity[i]``.

    Which units count as active, drawn in colour (the others in grey), comes from one of:

    * ``threshold``: units with ``activity >= threshold``; the threshold is drawn as a dashed
      line;
    * ``active``: the active units by another measure (e.g. the ablation measure), as indices
      or a boolean mask over the units (see :func:`~entropic_ae.plotting.select_units`; a list
      of booleans is refused).

    Without either every bar is coloured. The legend says how many units are active.
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
    if threshold is not None and active is not None:
        raise ValueError("pass either threshold or active (the units to colour), not both")
    if threshold is not None:
        threshold = check_real("threshold", threshold)
        on = act >= threshold
    elif active is not None:
        on = np.zeros(act.size, bool)
        on[select_units(active, act.size, "active")] = True
    else:
        on = np.ones(act.size, bool)
    fig, ax = _new_axes(ax, (max(4.0, 0.25 * act.size + 1.5), 2.8))
    x = np.arange(act.size)
    ax.bar(x, act, color=list(np.where(on, "C0", "0.75")))
    count = f"{int(on.sum())}/{act.size} active"
    if threshold is not None:
        ax.axhline(threshold, color="0.3", linestyle="--", linewidth=1,
                   label=f"threshold {threshold:g}: {count}")
        ax.legend(loc="upper right", fontsize="small", frameon=False)
    elif active is not None:
        from matplotlib.patches import Patch

        ax.legend(handles=[Patch(color="C0", label=count), Patch(color="0.75", label="inactive")],
                  loc="upper right", fontsize="small", frameon=False)
    ax.set_xticks(x, labels=list(labels) if labels is not None else [str(i) for i in x])
    if act.size > 32:
        ax.tick_params(axis="x", labelsize="x-small", rotation=90)
    _finish(ax, xlabel, ylabel, logy, title)
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
    series = getattr(history, "terms", None)
    if not isinstance(series, Mapping):
        if not isinstance(history, Mapping):
            raise TypeError(f"history must be a History or a mapping, got "
                            f"{type(history).__name__}")
        series = history["terms"] if isinstance(history.get("terms"), Mapping) else history
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
    ax.legend(fontsize="small", frameon=False)
    _finish(ax, "epoch", "value", logy, title, integer_x=True)
    return fig


def _curve(name: str, values: Any) -> np.ndarray:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence | np.ndarray):
        raise TypeError(f"curve {name!r} must be a sequence of per-epoch values, got "
                        f"{type(values).__name__}")
    y = _to_numpy(list(values), f"curve {name!r}").reshape(-1)
    if y.size == 0:
        raise ValueError(f"curve {name!r} has no epochs")
    if not np.isfinite(y).all():
        raise ValueError(f"curve {name!r} contains NaN or inf")
    return y


def validation_curves(
    curves: Mapping[str, Sequence[float]],
    methods: Mapping[str, str] | None = None,
    ax: Axes | None = None,
    *,
    logy: bool = False,
    xlabel: str = "epoch",
    ylabel: str = "validation loss",
    title: str | None = None,
) -> Figure:
    """Per-epoch curves of several runs, one line per run, coloured by method: the line of run
    ``r`` is ``(e, curves[r][e - 1])`` for epochs ``e = 1, 2, ...``, and every run of one
    method has that method's colour (``C0``, ``C1``, ... in order of first appearance).

    ``curves`` maps a run's name to its values (e.g. the validation loss after each epoch;
    runs may differ in length); ``methods`` maps each run to its method (default: every run is
    its own method). Each line's label is its run's name; the legend has one entry per method,
    with its number of runs. Use it to show that runs have converged.
    """
    if not isinstance(curves, Mapping) or not curves:
        raise TypeError(f"curves must be a non-empty mapping run -> per-epoch values, got "
                        f"{type(curves).__name__}" + (" (empty)" if isinstance(curves, Mapping)
                                                      else ""))
    if methods is None:
        methods = {run: str(run) for run in curves}
    if not isinstance(methods, Mapping):
        raise TypeError(f"methods must be a mapping run -> method, got {type(methods).__name__}")
    missing = [run for run in curves if run not in methods]
    if missing:
        raise ValueError(f"methods has no entry for the runs {missing}")
    series = {run: _curve(str(run), values) for run, values in curves.items()}
    if logy:
        bad = [run for run, y in series.items() if (y <= 0).any()]
        if bad:
            raise ValueError(f"logy needs positive values, but the runs {bad} have some <= 0")
    order = list(dict.fromkeys(methods[run] for run in curves))
    colour = {m: f"C{i % 10}" for i, m in enumerate(order)}
    fig, ax = _new_axes(ax, (5.5, 3.4))
    for run, y in series.items():
        ax.plot(np.arange(1, y.size + 1), y, color=colour[methods[run]], alpha=0.8,
                linewidth=1.2, marker="o" if y.size <= 30 else None, markersize=2.5, label=str(run))
    from matplotlib.lines import Line2D

    counts = {m: sum(methods[run] == m for run in curves) for m in order}
    handles = [Line2D([], [], color=colour[m], label=f"{m} ({counts[m]} run"
                      f"{'' if counts[m] == 1 else 's'})") for m in order]
    ax.legend(handles=handles, fontsize="small", frameon=False)
    _finish(ax, xlabel, ylabel, logy, title, integer_x=True)
    return fig
