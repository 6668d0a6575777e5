r"""Figures of chapter 5: what an entropy term does to the codes, and how terms rank
distributions.

- :func:`correlation_spectra`: the sorted eigenvalues of the correlation matrix of each
  model's codes, one line per model (all 1 for uncorrelated codes; a few large and many small
  ones for codes crowded onto a few directions), with the spectrum of as many
  :math:`\mathcal N(0, I)` draws for scale;
- :func:`marginal_shapes`: small multiples of the standardized coordinates of each model's
  codes, one row per model and one column per coordinate, as histograms against the
  :math:`\mathcal N(0, 1)` density or as QQ-plots against its quantiles;
- :func:`ranking_figure`: a :func:`entropic_ae.entropy_terms.ranking_study` as mean ± sd of
  each term per distribution, one panel per term and dimension.

Codes are N × d torch tensors or NumPy arrays, passed as a mapping ``{model name: codes}``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from scipy import special

from entropic_ae.plotting import _new_axes

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["correlation_spectra", "correlation_spectrum", "marginal_shapes", "ranking_figure"]


def _codes(codes: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The mapping's arrays in float64, checked: 2-d, at least 2 rows, finite, no constant
    column, and one code size for all."""
    if not isinstance(codes, Mapping) or not codes:
        raise TypeError("codes must be a non-empty mapping {model name: N × d codes}")
    out = {}
    for name, value in codes.items():
        if isinstance(value, torch.Tensor):
            value = value.detach().to("cpu", torch.float64).numpy()
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise TypeError(f"codes[{name!r}] must be numeric (a tensor or an array)") from err
        if arr.ndim != 2 or arr.shape[0] < 2 or arr.shape[1] < 1:
            raise ValueError(f"codes[{name!r}] must have shape (N >= 2, d >= 1), got {arr.shape}")
        if not np.isfinite(arr).all():
            raise ValueError(f"codes[{name!r}] contains NaN or inf")
        constant = np.flatnonzero(arr.std(axis=0) == 0)
        if constant.size:
            raise ValueError(f"codes[{name!r}] has constant coordinates {constant.tolist()}: "
                             "their correlation and shape are undefined")
        out[str(name)] = arr
    sizes = {a.shape[1] for a in out.values()}
    if len(sizes) > 1:
        raise ValueError(f"all models' codes must have the same size d, got {sorted(sizes)}")
    return out


def correlation_spectrum(codes: Any) -> np.ndarray:
    r"""The eigenvalues of the correlation matrix of ``codes`` (N × d), largest first (float64;
    they sum to d)."""
    arr = _codes({"codes": codes})["codes"]
    corr = np.atleast_2d(np.corrcoef(arr, rowvar=False))
    return np.sort(np.linalg.eigvalsh(corr))[::-1]


def correlation_spectra(codes: Mapping[str, Any], ax: Axes | None = None, *,
                        reference: bool = True, seed: int = 0,
                        title: str | None = None) -> Figure:
    r"""One line per model: the sorted eigenvalues (:func:`correlation_spectrum`) of the
    correlation matrix of its codes against their rank, on a log scale. With ``reference``,
    a dotted grey line gives the spectrum of as many :math:`\mathcal N(0, I)` codes (seeded by
    ``seed``; the sampling spread of the eigenvalues around 1, Marchenko–Pastur) and a dashed
    line the population value 1."""
    arrays = _codes(codes)
    fig, ax = _new_axes(ax, (5.0, 3.2))
    n_max = max(a.shape[0] for a in arrays.values())
    d = next(iter(arrays.values())).shape[1]
    rank = np.arange(1, d + 1)
    for name, arr in arrays.items():
        ax.plot(rank, np.clip(correlation_spectrum(arr), 1e-12, None), marker="o", markersize=3,
                label=name)
    if reference:
        ref = np.random.default_rng(seed).standard_normal((n_max, d))
        ax.plot(rank, np.clip(correlation_spectrum(ref), 1e-12, None), linestyle=":",
                color="0.5", label=f"N(0, I), N = {n_max}")
        ax.axhline(1.0, color="0.5", linestyle="--", linewidth=1)
    ax.set_yscale("log")
    ax.set_xlabel("rank")
    ax.set_ylabel("eigenvalue")
    ax.legend(fontsize="small", frameon=False)
    if title:
        ax.set_title(title)
    return fig


def _pick_dims(d: int, dims: int | Sequence[int] | None) -> list[int]:
    if dims is None:
        return list(range(min(d, 16)))
    if isinstance(dims, int | np.integer) and not isinstance(dims, bool):
        if not 1 <= dims <= d:
            raise ValueError(f"dims must be between 1 and d = {d}, got {dims}")
        return list(range(int(dims)))
    picked = [int(j) for j in dims]
    if not picked or any(not 0 <= j < d for j in picked):
        raise ValueError(f"dims must name coordinates in 0..{d - 1}, got {list(dims)}")
    return picked


def marginal_shapes(codes: Mapping[str, Any], dims: int | Sequence[int] | None = None, *,
                    style: str = "hist", bins: int = 30, limit: float = 4.0,
                    panel_size: float = 0.9) -> Figure:
    r"""Small multiples of the marginal shapes of each model's codes: one row per model, one
    column per coordinate in ``dims`` (an int: the first that many; default: the first 16).
    Each coordinate is standardized (mean 0, sd 1), so only its shape shows. ``style="hist"``:
    a density histogram on ``bins`` bins over :math:`[-\text{limit}, \text{limit}]` with the
    :math:`\mathcal N(0, 1)` density as a grey line; ``style="qq"``: the sorted values
    against the :math:`\mathcal N(0, 1)` quantiles :math:`\Phi^{-1}((i - \tfrac12)/N)`, with
    the diagonal in grey. Rows are labelled with the model, columns with ``z<j>``."""
    import matplotlib.pyplot as plt

    arrays = _codes(codes)
    if style not in ("hist", "qq"):
        raise ValueError(f"style must be 'hist' or 'qq', got {style!r}")
    if isinstance(bins, bool) or not isinstance(bins, int | np.integer) or bins < 1:
        raise ValueError(f"bins must be a positive int, got {bins!r}")
    if not isinstance(limit, int | float) or isinstance(limit, bool) or not limit > 0:
        raise ValueError(f"limit must be a positive number, got {limit!r}")
    d = next(iter(arrays.values())).shape[1]
    cols = _pick_dims(d, dims)
    fig, axes = plt.subplots(len(arrays), len(cols), squeeze=False, sharex=True, sharey=True,
                             figsize=(panel_size * len(cols) + 0.8, panel_size * len(arrays)))
    grid = np.linspace(-limit, limit, 201)
    for i, (name, arr) in enumerate(arrays.items()):
        std = (arr - arr.mean(axis=0)) / arr.std(axis=0)
        for k, j in enumerate(cols):
            ax = axes[i, k]
            if style == "hist":
                ax.hist(std[:, j], bins=int(bins), range=(-limit, limit), density=True,
                        color=f"C{i}")
                ax.plot(grid, np.exp(-0.5 * grid**2) / math.sqrt(2 * math.pi), color="0.3",
                        linewidth=0.8)
            else:
                n = std.shape[0]
                q = special.ndtri((np.arange(1, n + 1) - 0.5) / n)
                ax.plot(q, np.sort(std[:, j]), ".", markersize=1.5, color=f"C{i}")
                ax.plot([-limit, limit], [-limit, limit], color="0.3", linewidth=0.8)
                ax.set_ylim(-limit, limit)
            ax.set_xlim(-limit, limit)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"z{j}", fontsize="small")
        axes[i, 0].set_ylabel(name, fontsize="small", rotation=0, ha="right", va="center")
    fig.subplots_adjust(wspace=0.05, hspace=0.08, left=0.15)
    return fig


def ranking_figure(study: pd.DataFrame, terms: Sequence[str] | None = None,
                   kinds: Sequence[str] | None = None, *, panel_size: tuple[float, float] = (
                       3.0, 1.6)) -> Figure:
    """The values of a :func:`entropic_ae.entropy_terms.ranking_study` as mean ± sd (error bars)
    per distribution: one panel per term (rows, in ``terms`` order, default: the study's) and
    dimension (columns). In each panel the distributions (``kinds``, default: the study's)
    stand left to right in the order of their true entropy, highest first, each in its colour
    of the legend above the panels, and a dotted line marks the Gaussian's mean (if the study
    has it): a term ranks right when the points fall from left to right. The panel title
    names the term and d."""
    import matplotlib.pyplot as plt

    need = {"term", "kind", "d", "value", "truth"}
    if not hasattr(study, "columns") or not need <= set(study.columns):
        raise ValueError(f"study must be a ranking_study DataFrame with columns {sorted(need)}")
    terms = list(dict.fromkeys(study["term"])) if terms is None else list(terms)
    kinds = list(dict.fromkeys(study["kind"])) if kinds is None else list(kinds)
    for what, wanted, have in (("terms", terms, set(study["term"])),
                               ("kinds", kinds, set(study["kind"]))):
        if not wanted or set(wanted) - have:
            raise ValueError(f"{what} must be non-empty and in the study; unknown: "
                             f"{sorted(set(wanted) - have)}")
    dims = sorted(set(study["d"]))
    fig, axes = plt.subplots(len(terms), len(dims), squeeze=False,
                             figsize=(panel_size[0] * len(dims),
                                      panel_size[1] * len(terms) + 0.6))
    for i, term in enumerate(terms):
        for k, d in enumerate(dims):
            ax = axes[i, k]
            cell = study[(study["term"] == term) & (study["d"] == d)]
            truth = cell.groupby("kind")["truth"].first()
            order = sorted((kd for kd in kinds if kd in truth.index), key=lambda kd: -truth[kd])
            stats = cell.groupby("kind")["value"].agg(["mean", "std"]).reindex(order)
            for x, kd in enumerate(order):
                ax.errorbar([x], [stats.loc[kd, "mean"]], yerr=[stats.loc[kd, "std"]],
                            fmt="o", capsize=3, color=f"C{kinds.index(kd)}", label=kd)
            if "gaussian" in order:
                ax.axhline(stats.loc["gaussian", "mean"], color="0.6", linestyle=":",
                           linewidth=1)
            ax.set_xticks([])
            ax.set_xlim(-0.5, len(order) - 0.5)
            ax.tick_params(axis="y", labelsize="x-small")
            ax.set_title(f"{term}, d = {d}", fontsize="small")
    handles = [plt.Line2D([], [], marker="o", linestyle="", color=f"C{j}") for j in range(len(
        kinds))]
    fig.legend(handles, kinds, loc="upper center", ncol=min(len(kinds), 4), fontsize="small",
               frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.6 / fig.get_figheight()))
    return fig
