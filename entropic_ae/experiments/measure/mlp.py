"""Measurements of an mlp run (chapters 2 and 3), listed in :func:`measure`; those on the
validation images serve to choose settings without the test images."""

from __future__ import annotations

import math
from typing import Any

import torch

from entropic_ae.compactifier import (
    data_activity,
    effective_rank,
    effective_units,
    incoming_activity,
    outgoing_activity,
)
from entropic_ae.experiments.config import RunConfig
from entropic_ae.experiments.context import RunContext, images
from entropic_ae.metrics import active_units, per_class_mse, reconstruction_mse, unit_ablation
from entropic_ae.models.mlp import MLPAutoencoder
from entropic_ae.paths import (
    data_effective_nodes,
    effective_nodes,
    linear_params,
    node_path_marginals,
    path_entropy,
)

__all__ = ["ACTIVE_THRESHOLD", "measure"]

#: A unit is active when setting it to its mean raises the reconstruction error by more than
#: this fraction (the book's ablation measure, chapter 2).
ACTIVE_THRESHOLD = 0.01


def _layer_rise(model: MLPAutoencoder, layer: int, x: torch.Tensor) -> torch.Tensor:
    return unit_ablation(lambda v: model.encode(v, layer), lambda h: model.decode_from(h, layer),
                         x, batch_size=512).cpu()


def _active(model: MLPAutoencoder, layer: int, x: torch.Tensor) -> int:
    return int((_layer_rise(model, layer, x) > ACTIVE_THRESHOLD).sum())


def _rank(codes: torch.Tensor) -> float:
    """Effective rank (Roy & Vetterli) of a layer's codes; 0 when the codes are constant."""
    if bool((codes == codes[:1]).all()):
        return 0.0
    return float(effective_rank(codes.double()))


def _compactifier_layer(model: MLPAutoencoder, layer: int, sample: torch.Tensor
                        ) -> dict[str, Any]:
    into, out_of = model.linears[layer - 1], model.linears[layer]
    a_in, a_out = incoming_activity(into).cpu(), outgoing_activity(out_of, into.bias).cpu()
    inactive = _layer_rise(model, layer, sample) <= ACTIVE_THRESHOLD
    a_data = data_activity(model.encode(sample, layer), out_of).cpu()
    return {"eff_in": effective_units(a_in), "eff_out": effective_units(a_out),
            "eff_data": effective_units(a_data),
            "inactive_share_in": float(a_in[inactive].sum() / a_in.sum()),
            "inactive_share_out": float(a_out[inactive].sum() / a_out.sum()),
            "inactive_share_data": float(a_data[inactive].sum() / a_data.sum()),
            "layer_active_units": int((~inactive).sum())}


def _validation(config: RunConfig, model: MLPAutoencoder, ctx: RunContext,
                layers: list[int]) -> dict[str, Any]:
    """``val_mse`` (all validation images) and ``val_active_units`` per analysed layer (on the
    first ``ablation_images`` of them); nothing when the run holds out no validation images."""
    if config.options.n_val == 0:
        return {}
    x_val, _ = images(config, "val", ctx.data_root)
    sample = x_val[:config.measure.ablation_images].to(ctx.device)
    return {"val_mse": reconstruction_mse(model, x_val),
            "val_active_units": [_active(model, l, sample) for l in layers]}


def _width_method(config: RunConfig, model: MLPAutoencoder, ctx: RunContext,
                  x_test: torch.Tensor, sample: torch.Tensor) -> dict[str, Any]:
    """What a width-learning system left in its layer: ``open_gates`` (L0: eval-mode gates
    above 0), ``zero_groups`` (group lasso: units whose incoming row, bias and outgoing column
    are all 0), and for nested dropout the test MSE (``width_curve``), validation MSE
    (``width_curve_val``) and active units on test and validation images (``width_active``,
    ``width_active_val``) when only the first ``k`` units are kept, for ``k = 1 .. width``."""
    from entropic_ae.width_learning import GroupLassoProx, count_units, width_curve

    layer = config.options.layer
    if layer is None or not 1 <= layer < model.num_layers:
        return {}
    out: dict[str, Any] = {}
    if config.model == "l0":
        out["open_gates"] = int(model.gate(layer).active().sum())
    elif config.model == "group-lasso":
        out["zero_groups"] = int((GroupLassoProx(layer, 0.0).norms(model) == 0).sum())
    elif config.model == "nested-dropout":
        ks = list(range(1, model.layer_sizes[layer] + 1))
        out["width_curve"] = [width_curve(model, layer, x_test, ks)[k] for k in ks]
        out["width_active"] = [count_units(model, layer, sample, ACTIVE_THRESHOLD, keep=k)
                               .n_active for k in ks]
        if config.options.n_val:
            x_val = images(config, "val", ctx.data_root)[0].to(ctx.device)
            curve = width_curve(model, layer, x_val, ks)
            out["width_curve_val"] = [curve[k] for k in ks]
            val_sample = x_val[:config.measure.ablation_images]
            out["width_active_val"] = [count_units(model, layer, val_sample, ACTIVE_THRESHOLD,
                                                   keep=k).n_active for k in ks]
    return out


def _per_layer(model: MLPAutoencoder, layers: list[int], x_test: torch.Tensor,
               sample: torch.Tensor, threshold: float) -> dict[str, list]:
    """Active units (ablation), dead units (codes exactly 0 on the sample), the variance
    count and the effective rank of every analysed layer."""
    out: dict[str, list] = {"active_units": [], "dead_units": [], "active_units_variance": [],
                            "effective_rank": []}
    for l in layers:
        codes = model.encode(sample, l)
        out["active_units"].append(_active(model, l, sample))
        out["dead_units"].append(int((codes == 0).all(0).sum()))
        out["active_units_variance"].append(active_units(model.encode(x_test, l).cpu(),
                                                         threshold))
        out["effective_rank"].append(_rank(codes))
    return out


@torch.no_grad()
def measure(config: RunConfig, model: MLPAutoencoder, ctx: RunContext, data: str
            ) -> tuple[dict[str, Any], list[str]]:
    """Test MSE (also per digit), the weight path entropy, and per analysed hidden layer:
    active units by ablation (a unit is active when setting it to its mean over test images
    raises the reconstruction error by more than 1 %), dead units, the variance count, the
    effective rank of its codes, the effective nodes of the weight path mass and of the
    data-dependent path mass, and how often the weight path mass's heaviest node (the
    *carrier*) fires; ``chain_open``, the fraction of test images on which every hidden carrier
    fires; for the regularised layer, its activities and what a width-learning system left
    there; on the validation images (``n_val > 0``), the MSE and the active units."""
    m = config.measure
    x_test, y_test = images(config, "test", ctx.data_root, limit=m.n_test)
    x_test = x_test.to(ctx.device)
    layers = list(m.layers) if m.layers is not None else list(range(1, model.num_layers))
    sample = x_test[:m.ablation_images]
    ws, bs = linear_params(model)
    path_nodes = effective_nodes(ws, bs).tolist()
    carriers = [int(p.argmax()) for p in node_path_marginals(ws, bs)]
    outputs = model.layer_outputs(x_test)
    fires = [h[:, c] > 0 for h, c in zip(outputs, carriers, strict=True)]
    data_nodes = data_effective_nodes(ws, bs, sample.flatten(1)).tolist()
    per_class = per_class_mse(model, x_test, y_test)
    out: dict[str, Any] = {
        "test_mse": reconstruction_mse(model, x_test),
        "per_class_mse": [per_class.get(c, math.nan) for c in range(10)],
        "layers": layers, "widths": [model.layer_sizes[l] for l in layers],
        **_per_layer(model, layers, x_test, sample, m.variance_threshold),
        "effective_nodes": [float(path_nodes[l]) for l in layers],
        "carrier_fires": [float(fires[l].float().mean()) for l in layers],
        "data_effective_nodes": [float(data_nodes[l]) for l in layers],
        "path_entropy": float(path_entropy(ws, bs)),
        "chain_open": float(torch.stack(fires[1:-1]).all(0).float().mean()),
    }
    layer = config.options.layer
    if layer is not None and 1 <= layer < model.num_layers:
        out.update(_compactifier_layer(model, layer, sample))
    out.update(_validation(config, model, ctx, layers))
    out.update(_width_method(config, model, ctx, x_test, sample))
    return out, []
