"""Measurements of an mlp run (chapters 2 and 3): test error, per-layer widths by four
measures, and the regularised layer's activities."""

from __future__ import annotations

import math
from typing import Any

import torch

from entropic_ae.compactifier import (
    data_activity,
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

__all__ = ["measure"]


def _layer_rise(model: MLPAutoencoder, layer: int, x: torch.Tensor) -> torch.Tensor:
    return unit_ablation(lambda v: model.encode(v, layer), lambda h: model.decode_from(h, layer),
                         x, batch_size=512).cpu()


def _compactifier_layer(model: MLPAutoencoder, layer: int, sample: torch.Tensor
                        ) -> dict[str, Any]:
    into, out_of = model.linears[layer - 1], model.linears[layer]
    a_in, a_out = incoming_activity(into).cpu(), outgoing_activity(out_of, into.bias).cpu()
    inactive = _layer_rise(model, layer, sample) <= 0.01
    a_data = data_activity(model.encode(sample, layer), out_of).cpu()
    return {"eff_in": effective_units(a_in), "eff_out": effective_units(a_out),
            "eff_data": effective_units(a_data),
            "inactive_share_in": float(a_in[inactive].sum() / a_in.sum()),
            "inactive_share_out": float(a_out[inactive].sum() / a_out.sum()),
            "inactive_share_data": float(a_data[inactive].sum() / a_data.sum()),
            "layer_active_units": int((~inactive).sum())}


@torch.no_grad()
def measure(config: RunConfig, model: MLPAutoencoder, ctx: RunContext, data: str
            ) -> tuple[dict[str, Any], list[str]]:
    """Test MSE (also per digit), the weight path entropy, and per analysed hidden layer:
    active units by ablation (a unit is active when setting it to its mean over test images
    raises the reconstruction error by more than 1 %), the variance count, the effective nodes
    of the weight path mass and of the data-dependent path mass, and how often the weight path
    mass's heaviest node (the *carrier*) fires; ``chain_open``, the fraction of test images on
    which every hidden carrier fires; for the regularised layer, its activities."""
    m = config.measure
    x_test, y_test = images(config, "test", ctx.data_root, limit=m.n_test)
    layers = list(m.layers) if m.layers is not None else list(range(1, model.num_layers))
    sample = x_test[:m.ablation_images].to(ctx.device)
    ws, bs = linear_params(model)
    path_nodes = effective_nodes(ws, bs).tolist()
    carriers = [int(p.argmax()) for p in node_path_marginals(ws, bs)]
    outputs = model.layer_outputs(x_test.to(ctx.device))
    fires = [h[:, c] > 0 for h, c in zip(outputs, carriers, strict=True)]
    data_nodes = data_effective_nodes(ws, bs, sample.flatten(1)).tolist()
    per_class = per_class_mse(model, x_test, y_test)
    out: dict[str, Any] = {
        "test_mse": reconstruction_mse(model, x_test),
        "per_class_mse": [per_class.get(c, math.nan) for c in range(10)],
        "layers": layers, "widths": [model.layer_sizes[l] for l in layers],
        "active_units": [int((_layer_rise(model, l, sample) > 0.01).sum()) for l in layers],
        "active_units_variance": [active_units(model.encode(x_test.to(ctx.device), l).cpu(),
                                               m.variance_threshold) for l in layers],
        "effective_nodes": [float(path_nodes[l]) for l in layers],
        "carrier_fires": [float(fires[l].float().mean()) for l in layers],
        "data_effective_nodes": [float(data_nodes[l]) for l in layers],
        "path_entropy": float(path_entropy(ws, bs)),
        "chain_open": float(torch.stack(fires[1:-1]).all(0).float().mean()),
    }
    layer = config.options.layer
    if layer is not None and 1 <= layer < model.num_layers:
        out.update(_compactifier_layer(model, layer, sample))
    return out, []
