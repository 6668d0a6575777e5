"""Fully connected autoencoders (chapters 2 and 3) and exact pruning of their hidden neurons.

An autoencoder is described only by its list of layer widths, e.g.
``[784, 64, 16, 16, 16, 64, 784]``. There is no fixed encoder/decoder split: the run of
narrow layers in the middle is the "extended latent space", and the entropic regularisers decide
where inside it the real bottleneck ends up. Layer ``l`` (0..L) means the activations after the
``l``-th linear map (layer 0 is the input), so ``linears[l - 1]`` maps layer ``l - 1`` to ``l``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

__all__ = ["MLPAutoencoder", "PruneReport", "prune"]


def _check_layer_sizes(layer_sizes: Sequence[int]) -> tuple[int, ...]:
    if isinstance(layer_sizes, (str, bytes)) or not isinstance(layer_sizes, Sequence):
        raise TypeError(f"layer_sizes must be a sequence of ints such as [784, 64, 16, 64, 784], "
                        f"got {type(layer_sizes).__name__}")
    sizes = tuple(layer_sizes)
    if len(sizes) < 2:
        raise ValueError(f"layer_sizes needs at least 2 entries (input and output width), "
                         f"got {list(sizes)}")
    for i, s in enumerate(sizes):
        if isinstance(s, bool) or not isinstance(s, int):
            raise TypeError(f"layer_sizes[{i}] must be an int, got {type(s).__name__} ({s!r})")
        if s <= 0:
            raise ValueError(f"layer_sizes[{i}] must be a positive width, got {s}")
    if sizes[0] != sizes[-1]:
        raise ValueError(f"an autoencoder's output width must equal its input width, got input "
                         f"{sizes[0]} and output {sizes[-1]}")
    return sizes


def _hidden_indices(name: str, indices: Sequence[int], n_layers: int) -> tuple[int, ...]:
    if isinstance(indices, (str, bytes)) or not isinstance(indices, Sequence):
        raise TypeError(f"{name} must be a sequence of hidden-layer indices, got "
                        f"{type(indices).__name__}")
    out = tuple(indices)
    for i in out:
        if isinstance(i, bool) or not isinstance(i, int) or not 1 <= i <= n_layers - 1:
            raise ValueError(f"{name} must hold hidden-layer indices in 1..{n_layers - 1}, "
                             f"got {list(out)}")
    return out


def _check_gates(gates: Mapping[int, nn.Module] | None, sizes: tuple[int, ...]
                 ) -> dict[int, nn.Module]:
    if gates is None:
        return {}
    if not isinstance(gates, Mapping):
        raise TypeError(f"gates must be a mapping {{layer: nn.Module}}, got {type(gates).__name__}")
    _hidden_indices("gates", list(gates), len(sizes) - 1)
    for layer, gate in gates.items():
        if not isinstance(gate, nn.Module):
            raise TypeError(f"gates[{layer}] must be an nn.Module, got {type(gate).__name__}")
        n = getattr(gate, "n_units", None)
        if n is not None and n != sizes[layer]:
            raise ValueError(f"gates[{layer}] has {n} units but layer {layer} has width "
                             f"{sizes[layer]}")
    return dict(gates)


def _default_latent_layers(sizes: tuple[int, ...]) -> tuple[int, ...]:
    """Hidden layers whose width is the smallest hidden width (all of them if there are none)."""
    hidden = range(1, len(sizes) - 1)
    narrowest = min((sizes[i] for i in hidden), default=0)
    return tuple(i for i in hidden if sizes[i] == narrowest)


class MLPAutoencoder(nn.Module):
    """Fully connected autoencoder ``x -> sigmoid(W_L relu(... relu(W_1 x + b_1) ...) + b_L)``.

    Parameters
    ----------
    layer_sizes:
        Widths of layers ``0..L``; input and output width must be equal. ``nn.Linear`` maps
        consecutive widths, ReLU follows every hidden layer and a sigmoid the output layer.
    latent_layers:
        Indices (``1..L-1``) of the hidden layers that form the "extended latent space". Default:
        every hidden layer of the smallest hidden width. Informational only (plots, pruning
        reports, chapters); the computation does not depend on it.
    image_shape:
        Shape of one sample without the batch dimension, e.g. ``(1, 28, 28)``. Used by
        :meth:`decode_from` to return images; default: flat vectors. :meth:`forward` always
        returns the shape of its input.
    linear_layers:
        Hidden layers (``1..L-1``) without the ReLU: ``h_l = W_l h_{l-1} + b_l``. A linear
        bottleneck's units cannot die (a ReLU unit whose input is negative on every image
        outputs 0 and gets no gradient again). Default: none.
    gates:
        ``{layer: module}``: a module applied to the activations of a hidden layer,
        ``h_l = gate(act(W_l h_{l-1} + b_l))`` (``N×width -> N×width``), e.g.
        :class:`~entropic_ae.width_learning.HardConcreteGate` or
        :class:`~entropic_ae.width_learning.NestedDropout` (both stochastic in training mode).
        Gated activations are the layer's output everywhere (see :meth:`decode_from`); the
        weight-based measures read ``linears`` only and do not see the gates. Default: no
        gates, and then no ``gates`` entries in the ``state_dict`` (old checkpoints load).
    """

    def __init__(self, layer_sizes: Sequence[int], latent_layers: Sequence[int] | None = None,
                 image_shape: Sequence[int] | None = None, *, linear_layers: Sequence[int] = (),
                 gates: Mapping[int, nn.Module] | None = None) -> None:
        super().__init__()
        sizes = _check_layer_sizes(layer_sizes)
        n_layers = len(sizes) - 1
        latent = (_default_latent_layers(sizes) if latent_layers is None
                  else _hidden_indices("latent_layers", latent_layers, n_layers))
        linear = _hidden_indices("linear_layers", linear_layers, n_layers)
        gate_map = _check_gates(gates, sizes)
        if image_shape is not None:
            image_shape = tuple(int(s) for s in image_shape)
            if math.prod(image_shape) != sizes[0]:
                raise ValueError(f"image_shape {image_shape} has {math.prod(image_shape)} entries "
                                 f"but the input width is {sizes[0]}")
        self.latent_layers: tuple[int, ...] = latent
        self.image_shape: tuple[int, ...] | None = image_shape
        self.linear_layers: tuple[int, ...] = tuple(sorted(set(linear)))
        self.linears = nn.ModuleList(nn.Linear(a, b)
                                     for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        if gate_map:  # registered only when present, so a plain model's state_dict is unchanged
            self.gates = nn.ModuleDict({str(l): g for l, g in sorted(gate_map.items())})

    # -- structure ------------------------------------------------------------------------------
    @property
    def layer_sizes(self) -> tuple[int, ...]:
        """Widths of layers ``0..L`` as the weights currently define them."""
        return (self.linears[0].in_features, *(lin.out_features for lin in self.linears))

    @property
    def num_layers(self) -> int:
        """``L``, the number of linear maps (layer indices run from 0 to ``L``)."""
        return len(self.linears)

    @property
    def gate_layers(self) -> tuple[int, ...]:
        """The hidden layers that have a gate (see ``gates``), in increasing order."""
        gates = self._modules.get("gates")
        return () if gates is None else tuple(sorted(int(k) for k in gates))

    def gate(self, layer: int) -> nn.Module | None:
        """The gate module of ``layer``, or ``None`` if it has none."""
        gates = self._modules.get("gates")
        return None if gates is None or str(layer) not in gates else gates[str(layer)]

    def extra_repr(self) -> str:
        text = f"layer_sizes={list(self.layer_sizes)}, latent_layers={list(self.latent_layers)}"
        if self.linear_layers:
            text += f", linear_layers={list(self.linear_layers)}"
        return text

    def _check_layer(self, layer: int) -> int:
        if isinstance(layer, bool) or not isinstance(layer, int):
            raise TypeError(f"layer must be an int, got {type(layer).__name__}")
        if not 0 <= layer <= self.num_layers:
            raise ValueError(f"layer must be in 0..{self.num_layers}, got {layer}")
        return layer

    def _flatten(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() < 1:
            raise ValueError("x must have a batch dimension, got a 0-d tensor")
        flat = x.reshape(x.shape[0], -1) if x.dim() != 1 else x.reshape(1, -1)
        if flat.shape[1] != self.layer_sizes[0]:
            raise ValueError(f"each sample must have {self.layer_sizes[0]} entries, got shape "
                             f"{tuple(x.shape)} ({flat.shape[1]} per sample)")
        return flat

    def _step(self, i: int, h: Tensor) -> Tensor:
        """Layer ``i + 1`` from layer ``i``: ReLU (or nothing, for a linear layer) and the gate
        for hidden layers, sigmoid for the output."""
        z = self.linears[i](h)
        layer = i + 1
        if layer == self.num_layers:
            return torch.sigmoid(z)
        if layer not in self.linear_layers:
            z = torch.relu(z)
        gate = self.gate(layer)
        return z if gate is None else gate(z)

    # -- computation ----------------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        """Reconstruction of ``x``, in the shape of ``x`` (e.g. ``N×1×28×28`` or ``N×784``)."""
        return self.encode(x, self.num_layers).reshape(x.shape)

    def layer_outputs(self, x: Tensor) -> list[Tensor]:
        """Activations ``[h_0, h_1, ..., h_L]`` (flat, ``N×width``, gated where a layer has a
        gate); ``h_0`` is the input."""
        h = self._flatten(x)
        outs = [h]
        for i in range(self.num_layers):
            h = self._step(i, h)
            outs.append(h)
        return outs

    def encode(self, x: Tensor, layer: int) -> Tensor:
        """Codes at ``layer``: ``h_layer`` (``N×layer_sizes[layer]``), post-activation and, if
        the layer has a gate, gated (in eval mode a gate is deterministic)."""
        self._check_layer(layer)
        h = self._flatten(x)
        for i in range(layer):
            h = self._step(i, h)
        return h

    def decode_from(self, h: Tensor, layer: int) -> Tensor:
        """Run layers ``layer+1..L`` on codes ``h`` of layer ``layer``; returns the output.

        The output is ``N×layer_sizes[-1]``, or ``N×image_shape`` if the model has one. The codes
        are fed in as they are (no ReLU and no gate of ``layer`` is applied to them first), so
        negative values are allowed, as in latent sweeps; the gates of later layers apply.
        """
        self._check_layer(layer)
        if not isinstance(h, Tensor):
            raise TypeError(f"h must be a torch.Tensor, got {type(h).__name__}")
        width = self.layer_sizes[layer]
        if h.dim() == 1:
            h = h.unsqueeze(0)
        if h.dim() != 2 or h.shape[1] != width:
            raise ValueError(f"codes for layer {layer} must have shape N×{width}, "
                             f"got {tuple(h.shape)}")
        for i in range(layer, self.num_layers):
            h = self._step(i, h)
        if self.image_shape is not None:
            h = h.reshape(h.shape[0], *self.image_shape)
        return h


@dataclass
class PruneReport:
    """What :func:`prune` did.

    ``kept[l]`` and ``removed[l]`` are the original indices of the neurons of layer ``l`` that
    survived or were removed (input and output layers are never pruned); ``reasons[l][i]`` says
    why neuron ``i`` was removed (``"dead"``, ``"constant"``, ``"no incoming weights"``,
    ``"no outgoing weights"`` or ``"requested"``, as listed in :func:`prune`).
    """

    old_sizes: tuple[int, ...]
    new_sizes: tuple[int, ...]
    kept: list[list[int]]
    removed: list[list[int]] = field(default_factory=list)
    reasons: list[dict[int, str]] = field(default_factory=list)

    def summary(self) -> str:
        """One line per pruned layer, e.g. ``layer 3: 16 -> 10 (6 dead)``."""
        lines = []
        for layer, reasons in enumerate(self.reasons):
            if reasons:
                counts = sorted(Counter(reasons.values()).items())
                detail = ", ".join(f"{n} {why}" for why, n in counts)
                lines.append(f"layer {layer}: {self.old_sizes[layer]} -> "
                             f"{self.new_sizes[layer]} ({detail})")
        return "\n".join(lines) if lines else "nothing pruned"


def _activation(linear: set[int], l: int, z: Tensor) -> Tensor:
    """The activation of hidden layer ``l``: the identity for linear layers, else ReLU."""
    return z if l in linear else torch.relu(z)


def _data_stats(model: MLPAutoencoder, data: Tensor, weights: list[Tensor],
                biases: list[Tensor], batch_size: int
                ) -> tuple[dict[int, Tensor], dict[int, Tensor]]:
    """Per-neuron mean and max deviation from it over ``data``, for every hidden layer, in
    float64 through the (gate-folded) ``weights`` and ``biases``."""
    if not isinstance(data, Tensor):
        raise TypeError(f"data must be a torch.Tensor of inputs, got {type(data).__name__}")
    if data.shape[0] == 0:
        raise ValueError("data is empty; pass at least one sample or data=None")
    hidden = range(1, model.num_layers)
    linear = set(model.linear_layers)
    device = weights[0].device
    sums = {l: torch.zeros_like(biases[l - 1]) for l in hidden}  # float64, on the weights' device
    lo = {l: torch.full_like(sums[l], math.inf) for l in hidden}
    hi = {l: torch.full_like(sums[l], -math.inf) for l in hidden}
    for start in range(0, data.shape[0], batch_size):
        h = model._flatten(data[start : start + batch_size].to(device)).double()
        for l in hidden:
            h = _activation(linear, l, h @ weights[l - 1].T + biases[l - 1])
            sums[l] += h.sum(0)
            lo[l] = torch.minimum(lo[l], h.min(0).values)
            hi[l] = torch.maximum(hi[l], h.max(0).values)
    means = {l: sums[l] / data.shape[0] for l in hidden}
    spread = {l: torch.maximum(hi[l] - means[l], means[l] - lo[l]) for l in hidden}
    return means, spread


def _fold_gates(model: MLPAutoencoder, weights: list[Tensor], biases: list[Tensor]) -> None:
    """Multiply the incoming rows and biases of each gated layer by its gate's eval scale
    (in place, float64): ``g * act(z) = act(g * z)`` for ``g >= 0`` (any ``g`` if linear)."""
    for l in model.gate_layers:
        gate = model.gate(l)
        scale_fn = getattr(gate, "eval_scale", None)
        if not callable(scale_fn):
            raise TypeError(f"prune can fold only gates with an eval_scale() method (a fixed "
                            f"per-unit scale in eval mode); the gate of layer {l} is "
                            f"{type(gate).__name__}")
        g = torch.as_tensor(scale_fn()).detach().to(weights[l - 1].device, torch.float64)
        if g.shape != (weights[l - 1].shape[0],):
            raise ValueError(f"the gate of layer {l} gave an eval scale of shape "
                             f"{tuple(g.shape)}, expected ({weights[l - 1].shape[0]},)")
        if l not in model.linear_layers and (g < 0).any():
            raise ValueError(f"the gate of ReLU layer {l} has negative eval scales; they cannot "
                             "be folded into the weights")
        weights[l - 1] = weights[l - 1] * g[:, None]
        biases[l - 1] = biases[l - 1] * g


def _check_prune_args(model: MLPAutoencoder, tol: float, weight_tol: float,
                      layers: Sequence[int] | None, remove: dict[int, Sequence[int]] | None
                      ) -> tuple[list[int], dict[int, Sequence[int]]]:
    """The arguments of :func:`prune` checked: the layers to prune and the requested removals."""
    if not isinstance(model, MLPAutoencoder):
        raise TypeError(f"prune needs an MLPAutoencoder, got {type(model).__name__}")
    for name, value in (("tol", tol), ("weight_tol", weight_tol)):
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    n_layers = model.num_layers
    hidden = list(range(1, n_layers))
    layers = hidden if layers is None else list(layers)
    bad = [l for l in layers if l not in hidden]
    if bad:
        raise ValueError(f"layers must be hidden-layer indices in 1..{n_layers - 1}, got {bad}")
    remove = {} if remove is None else dict(remove)
    for l, idx in remove.items():
        if l not in hidden:
            raise ValueError(f"remove: {l} is not a hidden-layer index (1..{n_layers - 1})")
        if any(not 0 <= int(i) < model.layer_sizes[l] for i in idx):
            raise ValueError(f"remove[{l}] holds indices outside 0..{model.layer_sizes[l] - 1}")
    return layers, remove


@torch.no_grad()
def prune(model: MLPAutoencoder, data: Tensor | None = None, *, tol: float = 1e-6,
          weight_tol: float = 0.0, layers: Sequence[int] | None = None,
          remove: dict[int, Sequence[int]] | None = None, batch_size: int = 4096
          ) -> tuple[MLPAutoencoder, PruneReport]:
    """A physically smaller copy of ``model`` without its inactive hidden neurons.

    Neuron ``i`` of hidden layer ``l`` (activation ``h_i = relu(w_i·h_{l-1} + b_i)``) is removed
    when any of these holds:

    * its incoming weights are negligible, ``max_j |W^l_ij| <= weight_tol``: then
      ``h_i = relu(b_i)`` for every input ("no incoming weights");
    * its outgoing weights are negligible, ``max_k |W^{l+1}_ki| <= weight_tol``
      ("no outgoing weights");
    * ``data`` is given and ``h_i`` is constant on it, ``max_n |h_i(x_n) - mean_n h_i| <= tol``
      ("dead" if the mean is 0, else "constant");
    * ``i`` is listed in ``remove[l]`` ("requested"; this can change the outputs).

    Removing neuron ``i`` deletes row ``i`` of ``W^l, b^l`` and column ``i`` of ``W^{l+1}`` and
    folds its mean output into the next bias, ``b^{l+1} += W^{l+1}_{:,i} · mean(h_i)``, so the
    network function is unchanged wherever the removed neurons take their mean value. That is
    exact (up to float rounding and ``tol``) on ``data``; on other inputs it is exact for the
    weight-based criteria and for neurons that are constant everywhere, but a neuron that merely
    happened to be constant on ``data`` may not be. At least one neuron of every layer is kept.

    A linear layer (``linear_layers``) is pruned the same way, with the identity in place of
    the ReLU. **Gates** are first folded into the weights at their eval-mode value: a gate must
    then act as a fixed per-unit scale ``g`` (its method ``eval_scale()`` returns it, ``g >= 0``
    on ReLU layers), and ``g_i h_i`` becomes the unit with incoming row and bias multiplied by
    ``g_i``; a closed gate (``g_i = 0``) leaves a unit with no incoming weights, which is
    removed. The pruned model has no gates and computes the eval-mode function of ``model``.

    Returns the pruned model (a new :class:`MLPAutoencoder` on the same device, in eval mode,
    with the same ``latent_layers``, ``linear_layers`` and ``image_shape``) and a
    :class:`PruneReport`.
    """
    layers, remove = _check_prune_args(model, tol, weight_tol, layers, remove)
    n_layers = model.num_layers
    hidden = list(range(1, n_layers))

    # Work in float64 so folding constants adds no rounding of its own.
    weights = [lin.weight.detach().double().clone() for lin in model.linears]
    biases = [lin.bias.detach().double().clone() for lin in model.linears]
    _fold_gates(model, weights, biases)
    linear = set(model.linear_layers)
    means, spread = ({}, {}) if data is None else _data_stats(model, data, weights, biases,
                                                             batch_size)

    kept: list[list[int]] = [list(range(s)) for s in model.layer_sizes]
    removed: list[list[int]] = [[] for _ in model.layer_sizes]
    reasons: list[dict[int, str]] = [{} for _ in model.layer_sizes]
    for l in hidden:
        if l not in layers and l not in remove:
            continue
        w_in, b_in, w_out = weights[l - 1], biases[l - 1], weights[l]
        width = w_in.shape[0]
        why: dict[int, str] = {}
        const = means[l].clone() if l in means else torch.zeros_like(b_in)  # folded outputs
        if l in layers:
            no_in = w_in.abs().amax(dim=1) <= weight_tol
            no_out = w_out.abs().amax(dim=0) <= weight_tol
            for i in range(width):
                if no_in[i]:
                    why[i] = "no incoming weights"
                    const[i] = _activation(linear, l, b_in[i])
                elif l in spread and spread[l][i] <= tol:
                    why[i] = "dead" if means[l][i] == 0 else "constant"
                elif no_out[i]:
                    why[i] = "no outgoing weights"
        for i in remove.get(l, ()):
            why.setdefault(int(i), "requested")
        if len(why) == width:  # keep the most variable neuron so the layer is not empty
            keep_one = int(torch.argmax(spread[l])) if l in spread else 0
            del why[keep_one]
        gone = sorted(why)
        keep = [i for i in range(width) if i not in why]
        if gone:
            gone_t = torch.tensor(gone, device=w_in.device)
            biases[l] = biases[l] + w_out[:, gone_t] @ const[gone_t]
        keep_t = torch.tensor(keep, device=w_in.device)
        weights[l - 1] = w_in[keep_t]
        biases[l - 1] = b_in[keep_t]
        weights[l] = w_out[:, keep_t]
        kept[l], removed[l], reasons[l] = keep, gone, {i: why[i] for i in gone}

    new_sizes = (weights[0].shape[1], *(w.shape[0] for w in weights))
    param = model.linears[0].weight
    pruned = MLPAutoencoder(list(new_sizes), model.latent_layers, model.image_shape,
                            linear_layers=model.linear_layers).to(param.device, param.dtype)
    for lin, w, b in zip(pruned.linears, weights, biases, strict=True):
        lin.weight.copy_(w.to(param.dtype))
        lin.bias.copy_(b.to(param.dtype))
    pruned.eval()
    return pruned, PruneReport(old_sizes=model.layer_sizes, new_sizes=tuple(new_sizes), kept=kept,
                               removed=removed, reasons=reasons)
