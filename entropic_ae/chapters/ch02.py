"""Chapter 2's analysis (the entropic compactifier): per-layer and per-unit tables of trained
networks, the units a latent sweep shows, the width comparison at equal active units (the
runs of every method regrouped by the units they ended with, the frontier of the baselines,
the 2-sd verdict at every width), the chapter's claims and the sentences it writes from them.

Every choice of setting is made on the validation images (``val_mse``, ``val_active_units``);
test numbers are reported once. Claims carry explicit ``claim_id``s."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from entropic_ae.compactifier import data_activity, incoming_activity, outgoing_activity
from entropic_ae.metrics import unit_ablation
from entropic_ae.models.mlp import MLPAutoencoder
from entropic_ae.prose import count_phrase, listed, relative_phrase
from entropic_ae.verdicts import (
    HOLDS,
    NOT_HOLDS,
    UNDECIDED,
    claim_id_from,
    claim_row,
    decide,
    with_holm,
)

__all__ = ["CLAIM_COLUMNS", "LAYER_COLUMNS", "PILOT", "choose_on_validation", "claims_table",
           "decoy_sentence", "fraction_word", "goal_sentence", "layer_rows", "setting_claims",
           "setting_label", "setting_sentence", "setting_verdicts",
           "share_bars", "sweep_units", "unit_table", "width_claims", "width_runs",
           "width_verdicts"]

#: The per-layer measurements of an mlp run (lists aligned with its ``layers``).
LAYER_COLUMNS = ("active_units", "dead_units", "active_units_variance", "effective_rank",
                 "effective_nodes", "data_effective_nodes", "carrier_fires")
#: The columns of ``02_claims.csv`` / ``03_claims.csv`` (chapter 4's format), in order.
CLAIM_COLUMNS = ["claim_id", "claim", "dataset", "verdict", "effect", "spread", "mean_better",
                 "mean_worse", "seeds", "sd_better", "sd_worse", "p_value", "p_holm",
                 "significant"]


#: How the width comparison's settings were placed: single-seed (seed 0) pilot runs at the
#: chapter's defaults (all 55,000 training images, 20 epochs), judged on the 5,000 validation
#: images only — their MSE (``val_mse``; for nested dropout, the mean over kept widths 4..12)
#: and the latent layer's active units on them (``val_units``; nested dropout: at k = 12).
#: The pruning thresholds come from the plain network's error rises on the training images
#: (2 dead units, 2 below 0.04, the others 0.28 to 1.12). The defaults train two settings per
#: method (``used``), a wider and a narrower one; an earlier default also trained group lasso
#: 1.2, L0 0.002 and λ = 300 (3 to 5 units).
PILOT: tuple[dict[str, Any], ...] = tuple(
    {"method": m, "setting": s, "val_mse": v, "val_units": u, "used": used}
    for m, s, v, u, used in (
        ("hand-sized", "k = 4", 0.0332, 4, True), ("hand-sized", "k = 8", 0.0240, 8, True),
        ("hand-sized", "k = 12", 0.0207, 12, False),
        ("nested dropout", "p = 0.05", 0.0297, 11, False),
        ("nested dropout", "p = 0.1", 0.0293, 9, True),
        ("nested dropout", "p = 0.2", 0.0314, 7, False),
        ("pruned + fine-tuned", "threshold 1 %", 0.0201, 14, False),
        ("pruned + fine-tuned", "threshold 5 %", 0.0202, 12, True),
        ("pruned + fine-tuned", "threshold 15 %", 0.0202, 12, False),
        ("group lasso", "λ = 0.3", 0.0240, 11, True), ("group lasso", "λ = 0.6", 0.0294, 6, True),
        ("group lasso", "λ = 1", 0.0313, 6, False), ("group lasso", "λ = 1.5", 0.0412, 3, False),
        ("group lasso", "λ = 3", 0.0556, 2, False),
        ("L0 gates", "λ = 0.0001", 0.0206, 15, False), ("L0 gates", "λ = 0.0003", 0.0203, 13, True),
        ("L0 gates", "λ = 0.001", 0.0252, 7, True), ("L0 gates", "λ = 0.003", 0.0492, 1, False),
        ("compactifier (data activity)", "λ = 0.3 to 10", 0.0207, 16, False),
        ("compactifier (data activity)", "λ = 30", 0.0252, 11, True),
        ("compactifier (data activity)", "λ = 100", 0.0331, 7, True),
        ("compactifier (data activity)", "λ = 300", 0.0417, 3, False),
        ("compactifier (data activity)", "ReLU layer, λ = 10", 0.0554, 1, False),
        ("compactifier (data activity)", "inside Adam, λ = 0.001", 0.0209, 16, False),
        ("compactifier (data activity)", "inside Adam, λ = 0.01", 0.0239, 12, False),
        ("compactifier (weight activity)", "the document's", 0.0425, 3, True)))


def layer_rows(table: pd.DataFrame, keep: Sequence[str] = ()) -> pd.DataFrame:
    """An mlp grid's table (one row per run, per-layer measurements as lists) as one row per
    run and layer: ``layer``, ``width``, the measurements of :data:`LAYER_COLUMNS` and
    ``val_active_units`` where the table has them (scalars), the run's ``seed``, ``test_mse``
    and the columns named in ``keep`` (None where the table lacks one)."""
    missing = [c for c in ("layers", "widths", "active_units", "seed", "test_mse")
               if c not in table.columns]
    if missing:
        raise ValueError(f"the table lacks {missing}; is it an mlp grid's table?")
    columns = [c for c in (*LAYER_COLUMNS, "val_active_units") if c in table.columns]
    rows = []
    for _, run in table.iterrows():
        for i, layer in enumerate(run["layers"]):
            row = {k: run.get(k) for k in ("seed", *keep)}
            row.update({"layer": int(layer), "width": int(run["widths"][i]),
                        "test_mse": float(run["test_mse"])})
            row.update({c: run[c][i] for c in columns if isinstance(run[c], list)})
            rows.append(row)
    return pd.DataFrame(rows)


@torch.no_grad()
def unit_table(model: MLPAutoencoder, layer: int, x: torch.Tensor,
               threshold: float = 0.01) -> pd.DataFrame:
    """One row per unit of hidden layer ``layer``: its shares of the incoming, outgoing and
    data-dependent activity (:mod:`entropic_ae.compactifier`), its bias, its largest
    pre-activation :math:`W^{in}_j h + b_j` on ``x`` (negative: a ReLU unit that never fires),
    the variance of its code, the relative rise :math:`r_j` of the reconstruction error when it
    is set to its mean (:func:`entropic_ae.metrics.unit_ablation`) and ``active``
    (:math:`r_j >` ``threshold``)."""
    if not isinstance(model, MLPAutoencoder):
        raise TypeError(f"model must be an MLPAutoencoder, got {type(model).__name__}")
    if not 1 <= layer < model.num_layers:
        raise ValueError(f"layer must be a hidden layer in 1..{model.num_layers - 1}, got {layer}")
    model = model.eval()
    into, out_of = model.linears[layer - 1], model.linears[layer]
    pre = into(model.encode(x, layer - 1))
    h = model.encode(x, layer)
    a_in, a_out = incoming_activity(into), outgoing_activity(out_of, into.bias)
    a_data = data_activity(h, out_of)
    rise = unit_ablation(lambda v: model.encode(v, layer), lambda c: model.decode_from(c, layer),
                         x)
    table = pd.DataFrame({
        "share in": (a_in / a_in.sum()).cpu().numpy(),
        "share out": (a_out / a_out.sum()).cpu().numpy(),
        "share data": (a_data / a_data.sum().clamp_min(1e-300)).cpu().numpy(),
        "bias": into.bias.cpu().numpy(), "largest pre-activation": pre.amax(0).cpu().numpy(),
        "code variance": h.var(0, unbiased=False).cpu().numpy(),
        "error rise when removed": rise.cpu().numpy(),
        "active": (rise > threshold).cpu().numpy()})
    table.index.name = "unit"
    return table


def share_bars(shares: Any, active: Any, ax: Any, title: str,
               ylabel: str = "share p_j") -> Any:
    """:func:`entropic_ae.plotting.activity_bars` of one layer's activity shares with the
    active units (a boolean mask) in colour and the others grey, also when *no* unit is active
    (all bars grey, legend ``0/n active``), which ``activity_bars`` refuses as an empty
    selection. Returns the figure."""
    from matplotlib.patches import Patch

    from entropic_ae.plotting import activity_bars

    mask = np.asarray(active, dtype=bool).reshape(-1)
    values = np.asarray(shares, dtype=np.float64).reshape(-1)
    if mask.shape != values.shape:
        raise ValueError(f"active has {mask.size} entries for {values.size} shares")
    if mask.any():
        return activity_bars(values, ax=ax, active=mask, ylabel=ylabel, title=title)
    fig = activity_bars(values, ax=ax, ylabel=ylabel, title=title)
    for bar in ax.patches:
        bar.set_color("0.75")
    ax.legend(handles=[Patch(color="C0", label=f"0/{values.size} active"),
                       Patch(color="0.75", label="inactive")], loc="upper right",
              fontsize="small", frameon=False)
    return fig


def sweep_units(rise: Any, threshold: float = 0.01, fallback: int = 3
                ) -> tuple[list[int], bool]:
    """The units a latent sweep shows, most important first: the active units
    (:math:`r_j >` ``threshold``) in decreasing order of their error rise :math:`r_j`, and
    True; if no unit is active, the ``fallback`` units with the largest positive rise (at
    least the one with the largest rise, so a sweep always has a row), and False."""
    r = np.asarray(rise, dtype=np.float64).reshape(-1)
    if r.size == 0 or not np.isfinite(r).all():
        raise ValueError(f"rise must be a non-empty sequence of finite numbers, got {rise!r:.80}")
    if isinstance(fallback, bool) or not isinstance(fallback, int) or fallback < 1:
        raise ValueError(f"fallback must be an int >= 1, got {fallback!r}")
    order = [int(i) for i in np.argsort(-r, kind="stable")]
    active = [i for i in order if r[i] > threshold]
    if active:
        return active, True
    positive = [i for i in order if r[i] > 0][:fallback]
    return (positive or order[:1]), False


def setting_label(row: Mapping[str, Any]) -> str:
    """A short label of a width-comparison run's setting from its config row
    (:meth:`~entropic_ae.experiments.RunConfig.describe` columns): the width ``k`` of a
    hand-sized network, the threshold of a pruned one, ``p`` of nested dropout, else λ."""
    if row.get("parent") not in (None, "") and row.get("prune") is not None \
            and not (isinstance(row.get("prune"), float) and math.isnan(row["prune"])):
        return f"threshold {100 * float(row['prune']):g} %"
    model = row.get("model")
    if model == "nested-dropout":
        return f"p = {float(row['nested_p']):g}"
    if model == "plain":
        sizes = row.get("layer_sizes")
        if isinstance(sizes, str):
            sizes = [int(s) for s in sizes.strip("[]").split(",")]
        return f"k = {min(sizes[1:-1])}" if sizes else "plain"
    return f"λ = {float(row['w_reg']):g}"


def width_runs(table: pd.DataFrame, layer: int, widths: Sequence[int] | None = None
               ) -> pd.DataFrame:
    """A width grid's table (one row per run, a ``group`` column naming the method) as one row
    per trained width: ``method``, ``config`` (:func:`setting_label`), ``setting`` (the same, for
    nested dropout with the width: ``"p = …, first k"``), ``seed``, ``units`` (the
    active units of ``layer`` on the *validation* images: the width the run ended with),
    ``test_units``, ``val_mse`` and ``test_mse``. A nested-dropout run gives one row per kept
    width ``k`` in ``widths`` (default: all), with ``kept = k`` (missing for the others)."""
    need = ["group", "model", "seed", "layers", "active_units", "test_mse", "val_mse",
            "val_active_units"]
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise ValueError(f"the table lacks {missing}; run the width grid with n_val > 0")
    rows = []
    for _, run in table.iterrows():
        label = setting_label(run)
        base = {"method": run["group"], "config": label, "setting": label,
                "seed": int(run["seed"])}
        if run["model"] == "nested-dropout":
            ks = range(1, len(run["width_curve"]) + 1) if widths is None else widths
            for k in ks:
                rows.append({**base, "setting": f"{base['setting']}, first {k}", "kept": k,
                             "units": int(run["width_active_val"][k - 1]),
                             "test_units": int(run["width_active"][k - 1]),
                             "val_mse": float(run["width_curve_val"][k - 1]),
                             "test_mse": float(run["width_curve"][k - 1])})
            continue
        i = list(run["layers"]).index(layer)
        rows.append({**base, "units": int(run["val_active_units"][i]),
                     "test_units": int(run["active_units"][i]),
                     "val_mse": float(run["val_mse"]), "test_mse": float(run["test_mse"])})
    return pd.DataFrame(rows)


def choose_on_validation(runs: pd.DataFrame, method: str, knob: str, within: Sequence[int],
                         by: str = "units") -> tuple[Any, pd.Series]:
    """The value of ``knob`` (a column) for ``method`` with the lowest mean validation MSE over
    its rows whose column ``by`` (the active units, or a nested-dropout model's kept width
    ``kept``) is in ``within``, and the mean per value (a Series). Raises ``ValueError`` when
    the method has no such rows."""
    if by not in runs.columns or knob not in runs.columns:
        raise ValueError(f"runs need the columns {knob!r} and {by!r}")
    rows = runs[(runs["method"] == method) & runs[by].isin(list(within))]
    if rows.empty:
        raise ValueError(f"{method!r} has no runs with {by} in {list(within)}")
    means = rows.groupby(knob, sort=True)["val_mse"].mean()
    return means.idxmin(), means


def _groups(runs: pd.DataFrame, min_runs: int) -> dict[tuple[str, int], pd.DataFrame]:
    return {(str(m), int(u)): g for (m, u), g in runs.groupby(["method", "units"], sort=False)
            if len(g) >= min_runs}


def _unit_label(key: tuple[str, int]) -> str:
    """``("hand-sized", 4)`` → ``"hand-sized, 4 units"`` (``"…, 1 unit"``)."""
    return f"{key[0]}, {key[1]} unit{'' if key[1] == 1 else 's'}"


def _reference_runs(groups: Mapping[tuple[str, int], pd.DataFrame], verdict: pd.Series
                    ) -> pd.DataFrame:
    """The runs of a verdict row's frontier group (its ``ref_method``, ``ref_units``), marked
    ``side="frontier"`` for :func:`entropic_ae.verdicts.claim_row`."""
    return groups[(verdict["ref_method"], int(verdict["ref_units"]))].assign(side="frontier")


def _best(groups: Mapping[tuple[str, int], pd.DataFrame], keys: list[tuple[str, int]]
          ) -> tuple[str, int] | None:
    """The key whose group has the lowest mean validation MSE (the choice is made there)."""
    return min(keys, key=lambda k: groups[k]["val_mse"].mean()) if keys else None


def width_verdicts(runs: pd.DataFrame, entropy_methods: Sequence[str], widths: Sequence[int],
                   min_runs: int = 2) -> pd.DataFrame:
    r"""The width comparison at equal active units, one row per width :math:`k`.

    The runs (:func:`width_runs`) are regrouped by method and by the active units they ended
    with; groups of fewer than ``min_runs`` runs are left out (a spread needs two). At width
    :math:`k` the *entropy side* is the group of an entropy method (``entropy_methods``) with
    exactly :math:`k` units and the lowest mean validation MSE; the *frontier* is the group of
    a baseline (every other method) with at most :math:`k` units and the lowest mean
    validation MSE. Their test MSEs are compared by the book's rule
    (:func:`entropic_ae.verdicts.decide`, "the frontier reconstructs better"): the entropy side
    is ``within_rule`` unless that claim holds. Columns: ``width``, ``method``, ``n``,
    ``mse``, ``sd``, ``reference`` (method and units, in words; ``ref_method`` and
    ``ref_units`` the same as data), ``ref_mse``, ``ref_n``,
    ``relative_gap`` (:math:`\bar m / \bar m_{ref} - 1`), ``verdict``, ``within_rule`` (missing,
    NaN or None, where a side is missing)."""
    entropy = set(entropy_methods)
    groups = _groups(runs, min_runs)
    out = []
    for k in widths:
        row: dict[str, Any] = {"width": int(k), "method": None, "n": 0, "mse": math.nan,
                               "sd": math.nan, "reference": None, "ref_method": None,
                               "ref_units": None, "ref_mse": math.nan, "ref_n": 0,
                               "relative_gap": math.nan, "verdict": None, "within_rule": None}
        side = _best(groups, [g for g in groups if g[0] in entropy and g[1] == k])
        ref = _best(groups, [g for g in groups if g[0] not in entropy and g[1] <= k])
        if side is not None:
            values = groups[side]["test_mse"].to_numpy()
            row.update(method=side[0], n=len(values), mse=float(values.mean()),
                       sd=float(values.std(ddof=1)))
        if ref is not None:
            ref_values = groups[ref]["test_mse"].to_numpy()
            row.update(reference=_unit_label(ref), ref_method=ref[0], ref_units=ref[1],
                       ref_mse=float(ref_values.mean()), ref_n=len(ref_values))
        if side is not None and ref is not None:
            d = decide(ref_values, values)
            row.update(relative_gap=row["mse"] / row["ref_mse"] - 1, verdict=d.verdict,
                       within_rule=d.verdict != HOLDS)
        out.append(row)
    return pd.DataFrame(out).set_index("width")


def width_claims(runs: pd.DataFrame, verdicts: pd.DataFrame, dataset: str = "mnist",
                 min_runs: int = 2) -> list[dict[str, Any]]:
    """The claims behind :func:`width_verdicts`, one per width with both sides, as
    :func:`entropic_ae.verdicts.claim_row` rows: ``baseline_beats_entropy_k<k>`` — "at k
    active units the best baseline (at most k units) reconstructs the test images better than
    the best entropy variant (exactly k units)"; it *holds* where the entropy variant is off
    the frontier."""
    groups = _groups(runs, min_runs)
    rows = []
    for k, v in verdicts.iterrows():
        if pd.isna(v["verdict"]):
            continue
        side = groups[(v["method"], int(k))].assign(side="entropy")
        both = pd.concat([_reference_runs(groups, v), side], ignore_index=True)
        rows.append(claim_row(
            both, f"at {k} active units the best baseline reconstructs better than the best "
                  "entropy variant", {"side": "frontier"}, {"side": "entropy"}, "test_mse",
            claim_id=f"baseline_beats_entropy_k{int(k)}", dataset=dataset))
    return rows


def setting_verdicts(runs: pd.DataFrame, entropy_methods: Sequence[str], min_runs: int = 2
                     ) -> pd.DataFrame:
    r"""Each setting of an entropy method against the frontier at its own width, one row per
    setting (``method``, ``config``) with at least ``min_runs`` runs.

    The seeds of one setting end with different numbers of active units, so regrouping by
    units (:func:`width_verdicts`) splits them; here they stay together and are compared at the
    median :math:`\tilde k` of their units (rounded down) with the frontier group there: the
    baseline group of at least ``min_runs`` runs with at most :math:`\tilde k` units and the
    lowest mean validation MSE. The book's rule decides "the frontier reconstructs the test
    images better" (:func:`entropic_ae.verdicts.decide`); the setting is ``within_rule`` unless
    that holds. Columns: ``method``, ``config``, ``n``, ``units`` (:math:`\tilde k`),
    ``units_range``, ``mse``, ``sd``, ``reference``, ``ref_method``, ``ref_units``, ``ref_mse``,
    ``ref_n``, ``relative_gap``, ``verdict``, ``within_rule`` (missing where no baseline group
    has at most :math:`\tilde k` units)."""
    missing = [c for c in ("method", "config", "units", "val_mse", "test_mse")
               if c not in runs.columns]
    if missing:
        raise ValueError(f"runs lack the columns {missing}; pass width_runs' table")
    entropy = set(entropy_methods)
    unknown = sorted(entropy - set(runs["method"]))
    if unknown:
        raise ValueError(f"no runs of the entropy methods {unknown}")
    groups = _groups(runs, min_runs)
    out = []
    for (method, config), side in runs[runs["method"].isin(entropy)].groupby(
            ["method", "config"], sort=False):
        if len(side) < min_runs:
            continue
        k = int(math.floor(float(np.median(side["units"]))))
        values = side["test_mse"].to_numpy(dtype=np.float64)
        row: dict[str, Any] = {
            "method": method, "config": config, "n": len(values), "units": k,
            "units_range": f"{int(side['units'].min())} to {int(side['units'].max())}",
            "mse": float(values.mean()), "sd": float(values.std(ddof=1)), "reference": None,
            "ref_method": None, "ref_units": None, "ref_mse": math.nan, "ref_n": 0,
            "relative_gap": math.nan, "verdict": None, "within_rule": None}
        ref = _best(groups, [g for g in groups if g[0] not in entropy and g[1] <= k])
        if ref is not None:
            ref_values = groups[ref]["test_mse"].to_numpy(dtype=np.float64)
            d = decide(ref_values, values)
            row.update(reference=_unit_label(ref), ref_method=ref[0], ref_units=ref[1],
                       ref_mse=float(ref_values.mean()), ref_n=len(ref_values),
                       relative_gap=row["mse"] / ref_values.mean() - 1,
                       verdict=d.verdict, within_rule=d.verdict != HOLDS)
        out.append(row)
    return pd.DataFrame(out)


def setting_claims(runs: pd.DataFrame, verdicts: pd.DataFrame, dataset: str = "mnist",
                   min_runs: int = 2) -> list[dict[str, Any]]:
    """The claims behind :func:`setting_verdicts`, one per setting with a reference, as
    :func:`entropic_ae.verdicts.claim_row` rows with the id
    ``frontier_beats_<method>_<setting>`` ("the best baseline with at most k units
    reconstructs better than <method>, <setting>")."""
    groups = _groups(runs, min_runs)
    rows = []
    for _, v in verdicts.iterrows():
        if pd.isna(v["verdict"]):
            continue
        side = runs[(runs["method"] == v["method"]) & (runs["config"] == v["config"])]
        both = pd.concat([_reference_runs(groups, v), side.assign(side="entropy")],
                         ignore_index=True)
        text = (f"the best baseline with at most {int(v['units'])} active units reconstructs "
                f"better than the {v['method']}, {v['config']}")
        rows.append(claim_row(both, text, {"side": "frontier"}, {"side": "entropy"},
                              "test_mse", claim_id=claim_id_from(
                                  f"frontier beats {v['method']} {v['config']}"),
                              dataset=dataset))
    return rows


def setting_sentence(verdicts: pd.DataFrame) -> str:
    """:func:`setting_verdicts` in words: for each setting, its median active units, its test
    MSE relative to the frontier there and what the rule says ("off the frontier" where the
    frontier is better by the rule, "within the rule of the frontier", "better than the
    frontier")."""
    words = {HOLDS: "off the frontier", UNDECIDED: "within the rule of the frontier",
             NOT_HOLDS: "better than the frontier"}
    parts = []
    for _, v in verdicts.iterrows():
        if pd.isna(v["verdict"]):
            parts.append(f"{v['method']}, {v['config']} ({v['units']} units): no baseline "
                         "group with so few units")
            continue
        mse, ref = float(v["mse"]), float(v["ref_mse"])
        parts.append(f"{v['method']}, {v['config']} ({v['units']} units): test MSE {mse:.4f}, "
                     f"{relative_phrase(mse, ref)} the frontier's {ref:.4f} "
                     f"({v['reference']}), {words[v['verdict']]}")
    if not parts:
        return "No entropy setting has enough runs to be compared."
    return "Setting by setting: " + "; ".join(parts) + "."


def claims_table(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Claim rows (:func:`entropic_ae.verdicts.claim_row`) as a claims table in chapter 4's
    format (:data:`CLAIM_COLUMNS`), with Holm's correction over the table
    (:func:`entropic_ae.verdicts.with_holm`). Claim ids must be unique."""
    table = pd.DataFrame(list(rows))
    if table.empty:
        return pd.DataFrame(columns=CLAIM_COLUMNS)
    duplicated = table["claim_id"][table["claim_id"].duplicated()].tolist()
    if duplicated:
        raise ValueError(f"claim ids must be unique, got {duplicated} more than once")
    if "dataset" not in table.columns:
        table["dataset"] = None
    return with_holm(table)[CLAIM_COLUMNS]


def fraction_word(fraction: float) -> str:
    """A word for how much of something a fraction in [0, 1] is, for "its inactive units hold
    ``word`` of the activity": ``"none"`` (0), ``"all"`` (1), ``"most"`` (> 0.6), ``"about
    half"`` (0.4 to 0.6), ``"some"`` (0.15 to 0.4), ``"little"`` (below 0.15)."""
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) \
            or not 0 <= fraction <= 1:
        raise ValueError(f"fraction must be a number in [0, 1], got {fraction!r}")
    if fraction == 0:
        return "none"
    if fraction == 1:
        return "all"
    if fraction > 0.6:
        return "most"
    if fraction >= 0.4:
        return "about half"
    return "some" if fraction >= 0.15 else "little"


def decoy_sentence(n_in: int, n_out: int, width: int) -> str:
    """How many inactive units hold more than the average share ``1/width`` of the incoming
    (``n_in``) and of the outgoing (``n_out``) weight activity, as a sentence: the *decoys*
    of the weight-activity compactifier, or that there are none."""
    for name, value in (("n_in", n_in), ("n_out", n_out), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    share = f"1/{width}"
    if n_in == 0 and n_out == 0:
        return (f"No inactive unit holds more than the average share {share} of the incoming "
                "or of the outgoing activity: this network has no decoys.")
    verb = "holds" if n_in == 1 else "hold"
    return (f"{count_phrase(n_in, 'inactive unit').capitalize()} {verb} more than the average "
            f"share {share} of the incoming activity, and {count_phrase(n_out, 'inactive unit')} "
            "more than the average share of the outgoing activity: these are *decoys*.")


def goal_sentence(verdicts: pd.DataFrame, needed: int) -> str:
    """The goal of the width comparison in words, from :func:`width_verdicts`: at how many of
    its widths an entropy variant is within the 2-sd rule of the frontier (listing them),
    whether that reaches ``needed``, and at which widths no entropy group of enough runs
    landed."""
    if isinstance(needed, bool) or not isinstance(needed, int) or needed < 1:
        raise ValueError(f"needed must be an int >= 1, got {needed!r}")
    within = [int(k) for k, v in verdicts["within_rule"].items() if v is True]
    missing = [int(k) for k, v in verdicts["method"].items() if pd.isna(v)]
    n = len(verdicts)
    head = listed(within, "An entropy variant is within the rule of the frontier at "
                  f"{count_phrase(len(within), 'width')} of the {n} (k = {{items}})",
                  f"An entropy variant is within the rule of the frontier at none of the {n} "
                  "widths")
    met = "meets" if len(within) >= needed else "does not meet"
    tail = listed(missing, "; no entropy variant ended with k = {items} active units in "
                  "enough runs to be compared", "")
    return f"{head}, so it {met} the goal of at least {needed}{tail}."

