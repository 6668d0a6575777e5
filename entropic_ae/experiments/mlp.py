"""The ``mlp`` family: fully connected autoencoders with the compactifier or the path entropy
(chapters 2 and 3).

Training options (``RunConfig.options``):

* ``layer_sizes`` — widths of layers 0..L, e.g. ``[784, 64, 16, 16, 16, 64, 784]``;
* ``objective`` — ``"plain"`` (MSE only), ``"compactifier"`` (MSE + entropy of one layer's
  weight activity), ``"compactifier-data"`` (MSE + entropy of its data-dependent activity
  :math:`a_j = \\mathbb E_x|h_j(x)|\\,\\lVert W^{out}_{:,j}\rVert_1`), ``"path"`` (MSE + path
  entropy of the weights);
* ``w_mse`` (λ₁, default 1), ``w_reg`` (λ₂, the regulariser's weight);
* ``layer`` — the compactifier's node layer; ``variant`` (``"in"``, ``"out"``, ``"both"``,
  ``"cumulative"``) and ``alpha`` (Rényi order, default 1 = Shannon);
* ``path_every`` — evaluate a path entropy every k-th step (default 20); ``path_mode``
  ``"reuse"`` (default: its stored gradient added in every step in between) or ``"scale"``
  (k times the gradient on the evaluating steps only), see
  :class:`entropic_ae.paths.PathEntropyTerm`;
* ``optimizer`` — ``"adam"`` (default: the regulariser's gradient inside Adam's normalised
  step), ``"decoupled"`` (Adam on the MSE; the regulariser as a separate plain gradient step,
  :math:`\\theta \\leftarrow \\theta - \\eta\\lambda\\nabla R`, as AdamW decouples weight
  decay) or ``"sgd"`` (SGD with momentum 0.9 on the whole loss);
* ``parent`` and ``prune`` — a fine-tuning run: train ``parent`` (a RunConfig), remove the
  units of its layer ``layer`` that are inactive by the ablation measure (``prune`` is its
  threshold, e.g. 0.01), then train the smaller network with this config's objective.

Measurement options (``RunConfig.measure``): ``n_test`` (test images, default 10000),
``layers`` (hidden layers to analyse, default all), ``ablation_images`` (default 2000),
``variance_threshold`` (default 0.01).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import torch

from entropic_ae import losses
from entropic_ae.compactifier import (
    data_activity,
    effective_units,
    incoming_activity,
    outgoing_activity,
)
from entropic_ae.experiments.config import RunConfig
from entropic_ae.experiments.context import RunContext, Trained, images
from entropic_ae.metrics import active_units, per_class_mse, reconstruction_mse, unit_ablation
from entropic_ae.models.mlp import MLPAutoencoder, prune
from entropic_ae.paths import (
    DataPathEntropyTerm,
    PathEntropyTerm,
    data_effective_nodes,
    effective_nodes,
    linear_params,
    node_path_marginals,
    path_entropy,
)
from entropic_ae.training import set_seed, train

__all__ = ["LAYER_COLUMNS", "OBJECTIVES", "OPTIMIZERS", "bottleneck_goal", "carrier_table", "fit",
           "layer_rows", "measure", "unit_table", "width_goal"]

OBJECTIVES = ("plain", "compactifier", "compactifier-data", "path", "path-data")
OPTIMIZERS = ("adam", "decoupled", "sgd")


def _option(config: RunConfig, name: str, kinds: tuple[type, ...], default: Any = None) -> Any:
    value = config.option(name, default)
    if value is None or not isinstance(value, kinds) or isinstance(value, bool):
        raise ValueError(f"{config.slug}: option {name!r} must be "
                         f"{' or '.join(k.__name__ for k in kinds)}, got {value!r}")
    return value


def _objective(config: RunConfig, model: MLPAutoencoder
               ) -> tuple[losses.LossFn, dict[str, float], PathEntropyTerm | None]:
    """The loss function, its weights and (for path objectives) the term to attach."""
    objective = config.option("objective", "plain")
    if objective not in OBJECTIVES:
        raise ValueError(f"{config.slug}: objective must be one of {OBJECTIVES}, got "
                         f"{objective!r}")
    w_mse = float(_option(config, "w_mse", (int, float), 1.0))
    if objective == "plain":
        return losses.mse, {"mse": w_mse}, None
    w_reg = float(_option(config, "w_reg", (int, float)))
    alpha = float(_option(config, "alpha", (int, float), 1.0))
    if objective == "compactifier":
        layer = int(_option(config, "layer", (int,)))
        variant = _option(config, "variant", (str,), "both")
        return (losses.compactifier_objective(layer, variant, alpha),
                {"mse": w_mse, "entropy": w_reg}, None)
    if objective == "compactifier-data":
        layer = int(_option(config, "layer", (int,)))
        return (losses.data_compactifier_objective(layer, alpha),
                {"mse": w_mse, "entropy": w_reg}, None)
    every = int(_option(config, "path_every", (int,), 20))
    mode = _option(config, "path_mode", (str,), "reuse")
    weights = {"mse": w_mse, "path_entropy": w_reg}
    if objective == "path":
        term = PathEntropyTerm(every=every, alpha=alpha, mode=mode)
        return losses.path_entropy_objective(term), weights, term
    layers = config.option("path_layers")
    term = DataPathEntropyTerm(every=every, objective=_option(config, "path_objective", (str,),
                                                              "softmin"),
                               alpha=alpha, tau=float(_option(config, "tau", (int, float), 0.5)),
                               layers=None if layers is None else list(layers), mode=mode)
    return losses.data_path_entropy_objective(term), weights, term


def _base_model(config: RunConfig, ctx: RunContext) -> MLPAutoencoder:
    parent = config.option("parent")
    if parent is None:
        set_seed(config.seed)  # the same initial weights for the same architecture and seed
        return MLPAutoencoder(list(_option(config, "layer_sizes", (tuple,))),
                              image_shape=(1, 28, 28))
    if not isinstance(parent, RunConfig) or parent.family != "mlp":
        raise ValueError(f"{config.slug}: option 'parent' must be an mlp RunConfig")
    source = fit(parent, ctx).model
    layer = int(_option(config, "layer", (int,)))
    threshold = float(_option(config, "prune", (int, float)))
    x, _ = images(parent, "train", ctx)
    sample = x[:2000].to(ctx.device)
    rise = unit_ablation(lambda v: source.encode(v, layer),
                         lambda h: source.decode_from(h, layer), sample)
    quiet = [int(i) for i in torch.nonzero(rise <= threshold).flatten()]
    pruned, _ = prune(source, sample, layers=[layer], remove={layer: quiet})
    return pruned


def fit(config: RunConfig, ctx: RunContext) -> Trained:
    """Train (or load from its checkpoint) the MLP autoencoder of ``config``."""
    model = _base_model(config, ctx)
    loss_fn, weights, term = _objective(config, model)
    optimizer = config.option("optimizer", "adam")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"{config.slug}: optimizer must be one of {OPTIMIZERS}, got "
                         f"{optimizer!r}")
    make_opt = None
    if optimizer == "sgd":
        def make_opt(params):  # noqa: E306
            return torch.optim.SGD(params, lr=config.lr, momentum=0.9)
    elif optimizer == "decoupled":
        loss_fn, make_opt = losses.decoupled(loss_fn, weights, config.lr)
    if term is not None and optimizer != "decoupled" and term.mode == "reuse":
        inner = make_opt

        def make_opt(params):  # noqa: E306
            base = (inner(params) if inner is not None else
                    torch.optim.Adam(params, lr=config.lr, fused=ctx.device.type in
                                     ("cpu", "cuda")))
            return term.attach(base)

    x, _ = images(config, "train", ctx)
    path = ctx.cache.checkpoint(config)
    resumed = ctx.cache.start_from_shorter(config)
    history = train(model, loss_fn, x, epochs=config.epochs, weights=weights, lr=config.lr,
                    batch_size=config.batch_size, seed=config.seed, device=ctx.device,
                    checkpoint=path, progress=ctx.progress, optimizer=make_opt,
                    callback=(lambda epoch, h: term.reset()) if term is not None else None,
                    desc=config.slug)
    return Trained(model, history, {"checkpoint": path}, resumed_from=resumed)


@torch.no_grad()
def measure(config: RunConfig, trained: Trained, ctx: RunContext) -> dict[str, Any]:
    """Test MSE (also per digit), the weight path entropy, and per analysed hidden layer: active
    units by ablation (a unit is active when setting it to its mean over test images raises the
    reconstruction error by more than 1 %), the old variance count, the effective nodes of the
    weight path mass and how often its heaviest node (the *carrier*) fires; ``chain_open``, the
    fraction of test images on which every hidden carrier fires; for the compactifier's layer,
    the effective units of its activities and the shares its inactive units hold."""
    model: MLPAutoencoder = trained.model.eval()
    x_test, y_test = images(config, "test", ctx, limit=config.measure_option("n_test", 10000))
    hidden = list(range(1, model.num_layers))
    layers = list(config.measure_option("layers", hidden))
    sample = x_test[: config.measure_option("ablation_images", 2000)].to(ctx.device)
    threshold = float(config.measure_option("variance_threshold", 0.01))
    ws, bs = linear_params(model)
    path_nodes = effective_nodes(ws, bs).tolist()
    carriers = [int(m.argmax()) for m in node_path_marginals(ws, bs)]
    outputs = model.layer_outputs(x_test.to(ctx.device))
    fires = [h[:, c] > 0 for h, c in zip(outputs, carriers, strict=True)]
    data_nodes = data_effective_nodes(ws, bs, sample.flatten(1)).tolist()
    per_class = per_class_mse(model, x_test, y_test)
    out: dict[str, Any] = {
        "test_mse": reconstruction_mse(model, x_test),
        "per_class_mse": [per_class.get(c, math.nan) for c in range(10)],
        "layers": layers,
        "widths": [model.layer_sizes[l] for l in layers],
        "active_units": [], "active_units_variance": [], "effective_nodes": [],
        "carrier_fires": [], "data_effective_nodes": [],
        "path_entropy": float(path_entropy(ws, bs)),
        # the fraction of test images on which the heaviest path's hidden nodes all fire
        "chain_open": float(torch.stack(fires[1:-1]).all(0).float().mean()),
    }
    for l in layers:
        rise = unit_ablation(lambda v, l=l: model.encode(v, l),
                             lambda h, l=l: model.decode_from(h, l), sample)
        codes = model.encode(x_test.to(ctx.device), l)
        out["active_units"].append(int((rise > 0.01).sum()))
        out["active_units_variance"].append(active_units(codes.cpu(), threshold))
        out["effective_nodes"].append(float(path_nodes[l]))
        out["carrier_fires"].append(float(fires[l].float().mean()))
        out["data_effective_nodes"].append(float(data_nodes[l]))
    layer = config.option("layer")
    if isinstance(layer, int) and 1 <= layer < model.num_layers:
        into, out_of = model.linears[layer - 1], model.linears[layer]
        a_in, a_out = incoming_activity(into).cpu(), outgoing_activity(out_of, into.bias).cpu()
        rise = unit_ablation(lambda v: model.encode(v, layer),
                             lambda h: model.decode_from(h, layer), sample).cpu()
        inactive = rise <= 0.01
        h = model.encode(sample, layer)
        a_data = data_activity(h, out_of).cpu()
        out.update(eff_in=effective_units(a_in), eff_out=effective_units(a_out),
                   eff_data=effective_units(a_data),
                   inactive_share_in=float(a_in[inactive].sum() / a_in.sum()),
                   inactive_share_out=float(a_out[inactive].sum() / a_out.sum()),
                   inactive_share_data=float(a_data[inactive].sum() / a_data.sum()),
                   layer_active_units=int((~inactive).sum()))
    return out


@torch.no_grad()
def unit_table(model: MLPAutoencoder, layer: int, x: torch.Tensor,
               threshold: float = 0.01) -> pd.DataFrame:
    """One row per unit of hidden layer ``layer``: its shares of the incoming, outgoing and
    data-dependent activity, its bias, its largest pre-activation on ``x`` (negative: it never
    fires), the variance of its code, the relative rise of the reconstruction error when it is
    set to its mean (:func:`entropic_ae.metrics.unit_ablation`) and whether that exceeds
    ``threshold`` (``active``)."""
    model = model.eval()
    into, out_of = model.linears[layer - 1], model.linears[layer]
    before = model.encode(x, layer - 1)
    pre = into(before)
    h = torch.relu(pre)
    a_in, a_out = incoming_activity(into), outgoing_activity(out_of, into.bias)
    a_data = data_activity(h, out_of)
    rise = unit_ablation(lambda v: model.encode(v, layer), lambda c: model.decode_from(c, layer),
                         x)
    table = pd.DataFrame({
        "share in": (a_in / a_in.sum()).cpu().numpy(),
        "share out": (a_out / a_out.sum()).cpu().numpy(),
        "share data": (a_data / a_data.sum()).cpu().numpy(),
        "bias": into.bias.cpu().numpy(), "largest pre-activation": pre.amax(0).cpu().numpy(),
        "code variance": h.var(0, unbiased=False).cpu().numpy(),
        "error rise when removed": rise.cpu().numpy(), "active": (rise > threshold).cpu().numpy()})
    table.index.name = "unit"
    return table


def width_goal(pruned: pd.DataFrame, hand: pd.DataFrame, tolerance: float = 0.05
               ) -> pd.DataFrame:
    """For each latent width k of the hand-sized networks: the best setting of the pruned and
    fine-tuned compactifiers whose runs landed on exactly k active units, against the
    hand-sized plain autoencoders of width k.

    ``pruned`` has one row per run with columns ``variant``, ``w_reg``, ``seed``, ``k`` (its
    active units after pruning and fine-tuning) and ``test_mse``; ``hand`` one row per run with
    ``k`` and ``test_mse``. A setting (variant, λ) *lands on k* with the runs of it that ended
    at k units (at least one); its MSE is their mean. The row says whether the best such
    setting is within ``tolerance`` of the hand-sized networks' mean MSE (``met``), with the
    seed spreads of both."""
    rows = []
    for k, group in hand.groupby("k"):
        ref = group["test_mse"]
        here = pruned[pruned["k"] == k]
        row = {"k": int(k), "hand MSE": ref.mean(), "hand sd": ref.std(ddof=1),
               "hand runs": len(ref), "variant": None, "λ₂": math.nan, "MSE": math.nan,
               "sd": math.nan, "runs": 0, "gap": math.nan, "met": False}
        if not here.empty:
            settings = here.groupby(["variant", "w_reg"])["test_mse"].agg(["mean", "std",
                                                                          "count"])
            (variant, w_reg), best = min(settings.iterrows(), key=lambda kv: kv[1]["mean"])
            gap = best["mean"] / ref.mean() - 1.0
            row.update({"variant": variant, "λ₂": w_reg, "MSE": best["mean"], "sd": best["std"],
                        "runs": int(best["count"]), "gap": gap, "met": bool(gap <= tolerance)})
        rows.append(row)
    return pd.DataFrame(rows).set_index("k")


@torch.no_grad()
def carrier_table(model: MLPAutoencoder, x: torch.Tensor, threshold: float = 0.01
                  ) -> pd.DataFrame:
    """The *carriers* of the weight path mass: for every hidden layer, its node with the largest
    share of the mass (:func:`entropic_ae.paths.node_path_marginals`), that share, the
    fraction of the inputs ``x`` on which the node fires, how large its summed incoming and
    outgoing weights are against the layer's median, and the relative rise of the
    reconstruction error when it is set to its mean (next to the median rise for the layer's
    other active units, those above ``threshold``)."""
    ws, bs = linear_params(model)
    marginals = [m.cpu() for m in node_path_marginals(ws, bs)]
    outputs = [h.cpu() for h in model.layer_outputs(x)]
    rows = []
    for l in range(1, model.num_layers):
        top = int(marginals[l].argmax())
        w_in, w_out = ws[l - 1].abs().sum(1).cpu(), ws[l].abs().sum(0).cpu()
        rise = unit_ablation(lambda v, l=l: model.encode(v, l),
                             lambda h, l=l: model.decode_from(h, l), x).cpu()
        others = [float(rise[u]) for u in range(len(rise)) if u != top and rise[u] > threshold]
        rows.append({"layer": l, "carrier": top,
                     "share of the path mass": float(marginals[l][top]),
                     "fires on": float((outputs[l][:, top] > 0).float().mean()),
                     "Σ|W| in ÷ median": float(w_in[top] / w_in.median()),
                     "Σ|W| out ÷ median": float(w_out[top] / w_out.median()),
                     "error rise, carrier at its mean": float(rise[top]),
                     "error rise, other active units (median)":
                         float(torch.tensor(others).median()) if others else math.nan})
    return pd.DataFrame(rows).set_index("layer")


def bottleneck_goal(data_rows: pd.DataFrame, hand_mse: float, inner: list[int],
                    nodes_within: float = 1.0, ratio: float = 2.0, mse_within: float = 0.10
                    ) -> dict[str, Any]:
    """Whether the data-dependent path entropy formed one bottleneck that carries the signal.

    ``data_rows`` has one row per (seed, layer) with ``layer``, ``data_effective_nodes``,
    ``active_units`` and ``test_mse``; the means over the seeds decide. The bottleneck is the
    inner layer with the fewest effective nodes; the goal holds when its effective nodes are
    within ``nodes_within`` of its active units, every other inner layer has at least
    ``ratio`` times as many effective nodes, and the test MSE is within ``mse_within`` of
    ``hand_mse`` (the hand-sized network with that bottleneck)."""
    means = data_rows.groupby("layer")[["data_effective_nodes", "active_units",
                                        "test_mse"]].mean()
    inside = means.loc[inner]
    layer = int(inside["data_effective_nodes"].idxmin())
    nodes = float(inside.loc[layer, "data_effective_nodes"])
    active = float(inside.loc[layer, "active_units"])
    others = inside.drop(index=layer)["data_effective_nodes"]
    mse = float(means["test_mse"].iloc[0])
    checks = {"carries the signal": abs(nodes - active) <= nodes_within,
              "the only narrow layer": bool((others >= ratio * nodes).all()),
              "reconstructs as well": mse <= (1 + mse_within) * hand_mse}
    return {"layer": layer, "effective_nodes": nodes, "active_units": active,
            "others_min": float(others.min()), "test_mse": mse, "hand_mse": hand_mse,
            **checks, "met": all(checks.values())}


#: The per-layer measurements of an mlp run (lists aligned with its ``layers``).
LAYER_COLUMNS = ("widths", "active_units", "active_units_variance", "effective_nodes",
                 "data_effective_nodes", "carrier_fires")


def layer_rows(table: pd.DataFrame, keep: tuple[str, ...] = ()) -> pd.DataFrame:
    """An mlp grid's table (one row per run, per-layer measurements as lists) as one row per
    run and layer: columns ``layer``, ``width`` and the measurements of :data:`LAYER_COLUMNS`
    (scalars), the run's ``seed`` and ``test_mse``, and the columns named in ``keep`` (None
    where the table has no such column: an option that no run of the grid set)."""
    missing = [c for c in ("layers", *LAYER_COLUMNS) if c not in table.columns]
    if missing:
        raise ValueError(f"the table lacks {missing}; is it an mlp grid's table?")
    rows = []
    for _, run in table.iterrows():
        for i, layer in enumerate(run["layers"]):
            row = {k: run.get(k) for k in ("seed", *keep)}
            row.update({"layer": layer, "width": run["widths"][i], "test_mse": run["test_mse"]})
            row.update({c: run[c][i] for c in LAYER_COLUMNS if c != "widths"})
            rows.append(row)
    return pd.DataFrame(rows)
