r"""The path mass a batch of inputs actually carries through the ReLU gates.

The weight-only path weight (:mod:`~entropic_ae.paths.weights`) cannot see that a ReLU unit with a
negative input passes nothing on, so a chain of large weights through units that never fire can
hold almost all of :math:`Z` (a decoy). For an input :math:`x` of a ReLU network, give a path the
weight it can actually carry,

.. math::
    w_x(i_0, \dots, i_L) = |x_{i_0}| \prod_{l=1}^{L} |W_l[i_l, i_{l-1}]|\, g_{x,l}(i_l),

with the gates :math:`g_{x,l}(i) = \mathbf 1[\text{pre-activation of unit } i > 0]` of the
hidden layers (:math:`g_{x,L} = 1`: the output has no gate). Biases are edges from a constant
node: a path may also start at the bias of a unit. The programme of the weight-only case runs
per input through the batch's gate pattern (forward sums :math:`f_{x,l} \ge |h_{x,l}|`, an
:math:`\ell_1` bound of the signal, and backward sums :math:`t_{x,l}`; the recursions, node
marginals and edge flows are in :func:`data_path_flows`).
Each path through a hidden unit uses exactly one edge into it (a weight or its bias) and one edge
out of it, so rescaling the unit (in-weights and bias :math:`\times c`, out-weights
:math:`\div c`) changes no path weight: the distribution is invariant, and a unit that never fires
carries no mass.

The batch-level quantities are averages over the inputs of the batch:
:math:`\bar m_l = \frac1B\sum_x m_{x,l}` (:func:`data_path_flows`, :func:`data_node_entropies`,
:func:`data_effective_nodes`), the entropy of the Markov chain with the averaged edge flows
(:func:`data_path_chain_entropy`) and the mean per-input entropy
(:func:`data_path_example_entropy`); which of them is a bottleneck objective is discussed in
:mod:`~entropic_ae.paths.objectives`.

*Caveats.* The mass is a sum of magnitudes: units whose contributions cancel, or an always-on unit
with a large bias compensated by the next layer's bias (a constant, no information), can still
carry mass at no cost to the reconstruction; ``bias_paths=False`` removes the second loophole.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

import torch

from entropic_ae._checks import check_int, is_integer
from entropic_ae.paths.network import (
    Tensor,
    cast,
    check_alpha,
    check_inputs,
    check_params,
    out_dtype,
    probs_entropy,
    raise_if_nonfinite,
    work_dtype,
    xlogx,
)

__all__ = ["DataPathFlows", "data_effective_nodes", "data_node_entropies",
           "data_path_chain_entropy", "data_path_example_entropy", "data_path_flows", "relu_gates"]


class DataPathFlows(NamedTuple):
    """Batch-averaged path mass of :func:`data_path_flows` (all entries sum to 1 per layer).

    ``nodes[l]`` (length :math:`n_l`, ``l = 0..L``): :math:`\\bar m_l`, mass through each unit.
    ``constant`` (length L): mass :math:`\\bar c_l` of the constant node of layers ``0..L-1``,
    i.e. of the paths that start at a bias of a later layer; :math:`\\sum_i \\bar m_l(i) + \\bar
    c_l = 1` (and :math:`\\sum_j \\bar m_L(j) = 1`). ``edges[l-1]`` (:math:`n_l \\times
    n_{l-1}`): :math:`\\bar F_l`, flow along each edge into layer ``l``; ``bias_edges[l-1]``
    (length :math:`n_l`): flow of the paths that start at the bias of each unit of layer ``l``.
    """

    nodes: list[Tensor]
    constant: Tensor
    edges: list[Tensor]
    bias_edges: list[Tensor]


def check_gates(gates: Sequence[Tensor], ws: list[Tensor], batch: int) -> list[Tensor]:
    """One boolean ``(batch, n_l)`` tensor per hidden layer, on the weights' device."""
    if isinstance(gates, Tensor) or not isinstance(gates, Iterable):
        raise TypeError("gates must be a sequence of boolean tensors, one (B, n_l) per hidden "
                        "layer, e.g. [h > 0 for h in model.layer_outputs(x)[1:-1]]")
    gs = list(gates)
    if len(gs) != len(ws) - 1:
        raise ValueError(f"need one gate tensor per hidden layer ({len(ws) - 1}), got {len(gs)}")
    for l, (g, w) in enumerate(zip(gs, ws, strict=False), start=1):
        if not isinstance(g, Tensor) or g.dtype != torch.bool:
            raise TypeError(f"gates of hidden layer {l} must be a boolean tensor (pre-activation "
                            f"> 0), got {getattr(g, 'dtype', type(g).__name__)}")
        if tuple(g.shape) != (batch, w.shape[0]):
            raise ValueError(f"gates of hidden layer {l} must have shape ({batch}, {w.shape[0]}),"
                             f" got {tuple(g.shape)}")
        if g.device != w.device:
            raise ValueError(f"gates of hidden layer {l} are on {g.device}, the weights on "
                             f"{w.device}")
    return gs


@torch.no_grad()
def _relu_gates(ws: list[Tensor], bs: list[Tensor | None], x: Tensor) -> list[Tensor]:
    gates, h = [], x.to(ws[0].dtype)
    for w, b in zip(ws[:-1], bs[:-1], strict=True):
        z = h @ w.detach().T
        if b is not None:
            z = z + b.detach()
        gates.append(z > 0)
        h = torch.relu(z)
    return gates


def relu_gates(
    weights: Sequence[Tensor], biases: Sequence[Tensor | None] | None, x: Tensor
) -> list[Tensor]:
    """ReLU gates :math:`g_l = \\mathbf 1[W_l h_{l-1} + b_l > 0]` of the hidden layers
    ``1..L-1`` of a ReLU network, :math:`h_0 = x`, :math:`h_l = \\mathrm{relu}(W_l h_{l-1} + b_l)`.

    Returns one boolean tensor (B × n_l) per hidden layer; no gradients. For a model whose
    forward pass is at hand, ``[h > 0 for h in model.layer_outputs(x)[1:-1]]`` is the same.
    """
    ws, bs = check_params(weights, biases)
    return _relu_gates(ws, bs, check_inputs(x, ws[0].shape[1]).to(ws[0].device))


def prepare_data(weights, biases, x, gates):
    """Checked ``(weights, biases, x as B x n_0, gates)``; the gates of ``x`` if None."""
    ws, bs = check_params(weights, biases)
    xs = check_inputs(x, ws[0].shape[1])
    if xs.device != ws[0].device:
        raise ValueError(f"x is on {xs.device}, the weights on {ws[0].device}")
    gs = _relu_gates(ws, bs, xs) if gates is None else check_gates(gates, ws, xs.shape[0])
    return ws, bs, xs, gs


def check_layers(layers: Sequence[int] | None, n_layers: int | None = None) -> list[int] | None:
    """Hidden-layer indices (``1..n_layers - 1`` when ``n_layers`` is known); None stays None
    when ``n_layers`` is None and means all hidden layers otherwise."""
    if n_layers is not None and n_layers < 2:
        raise ValueError("the network has no hidden layer: a batch-level node entropy needs at "
                         "least two linear layers")
    if layers is None:
        return None if n_layers is None else list(range(1, n_layers))
    if isinstance(layers, (str, bytes, Tensor)) or not isinstance(layers, Iterable):
        raise TypeError("layers must be None or a sequence of hidden-layer indices")
    top = math.inf if n_layers is None else n_layers - 1
    out = []
    for l in layers:
        if not is_integer(l):
            raise TypeError(f"layers must hold ints, got {type(l).__name__}")
        if not 1 <= l <= top:
            bound = "L-1" if n_layers is None else top
            raise ValueError(f"layers must be hidden-layer indices in 1..{bound}, got {l}")
        out.append(int(l))
    if not out:
        raise ValueError("layers is empty: name at least one hidden layer")
    return out


def _rescale(v: Tensor) -> tuple[Tensor, Tensor]:
    """Divide each row of ``v`` by its (detached) maximum; rows of zeros are left alone.
    Returns the rescaled rows and the logarithms of the factors."""
    top = v.detach().amax(1, keepdim=True)
    top = top + (top == 0)  # rows of zeros: factor 1
    return v / top, top.log().squeeze(1)


class DataSums:
    """Per-example forward and backward sums of the gated path mass, rescaled row by row.

    ``f[l]`` (B × n_l) and ``lf[l]`` (B) give :math:`f_l = f[l] \\cdot e^{lf[l]}`; ``t[l]``,
    ``lt[l]`` the same for :math:`t_l` (computed for the layers ``>= t_from``; ``t[L-1]`` is one
    row, the same for every input). ``log_z`` is :math:`\\log Z_x` (0 where :math:`Z_x = 0`),
    ``weight`` the averaging weight of each input (:math:`1/B'` for the :math:`B'` inputs with
    :math:`Z_x > 0`, else 0, or 1 and 0 with ``normalize=False``) and ``count`` :math:`B'`.
    The factors are constants for autograd; every quantity built from them is exact, because
    they cancel algebraically whatever their values. ``with_s`` also runs the expectation
    semiring (:math:`s_l`, the per-input sums of :math:`w \\log w`) and sets ``s_over_z``.
    """

    def __init__(self, ws, bs, x, gates, bias_paths: bool, dtype, *, t_from: int = 1,
                 normalize: bool = True, with_s: bool = False) -> None:
        device = ws[0].device
        self.n_layers = len(ws)
        self.a = [cast(w, dtype, device).abs() for w in ws]
        self.b = [None if b is None or not bias_paths else cast(b, dtype, device).abs()
                  for b in bs]
        self.g = [cast(g, dtype, device) for g in gates]
        self.with_s = with_s
        self._forward(cast(x, dtype, device).abs())
        self._backward(t_from, x.shape[0])
        self._totals(dtype, normalize)

    def _forward(self, f: Tensor) -> None:
        """f_0 = |x| (not rescaled: the inputs are finite), f_l = g_l (|W_l| f_{l-1} + |b_l|)."""
        lf = f.new_zeros(f.shape[0])
        self.f, self.lf = [f], [lf]
        if self.with_s:  # s_0 = |x| log |x|
            self.s = [xlogx(f)]
            self.alog = [xlogx(a) for a in self.a]
            self.blog = [None if b is None else xlogx(b) for b in self.b]
        for l in range(1, self.n_layers):
            a, b, g = self.a[l - 1], self.b[l - 1], self.g[l - 1]
            pre = f @ a.T
            if b is not None:
                inv = torch.exp(-lf).unsqueeze(1)
                pre = pre + b * inv
            if self.with_s:
                s_pre = self.s[-1] @ a.T + f @ self.alog[l - 1].T
                if b is not None:
                    s_pre = s_pre + self.blog[l - 1] * inv
            f, step = _rescale(g * pre)
            lf = lf + step
            self.f.append(f)
            self.lf.append(lf)
            if self.with_s:
                self.s.append(g * s_pre / step.exp().unsqueeze(1))

    def _backward(self, t_from: int, batch: int) -> None:
        """t_L = 1, t_{L-1} = 1^T |W_L| (no gate on the output), t_{l-1} = (g_l t_l) |W_l|."""
        last = self.n_layers - 1
        self.col = self.a[last].sum(0, keepdim=True)
        self.t: list[Tensor | None] = [None] * (self.n_layers + 1)
        self.lt: list[Tensor | None] = [None] * (self.n_layers + 1)
        t, lt = self.col, self.col.new_zeros(batch)
        self.t[last], self.lt[last] = t, lt
        for l in range(last, t_from, -1):
            t, step = _rescale((self.g[l - 1] * t) @ self.a[l - 1])
            lt = lt + step
            self.t[l - 1], self.lt[l - 1] = t, lt

    def _totals(self, dtype: torch.dtype, normalize: bool) -> None:
        """Z_x = f_{L-1} . t_{L-1} + sum |b_L| (in units of exp(lf[L-1])) and the weights."""
        last = self.n_layers - 1
        f_prev, b_last = self.f[last], self.b[last]
        z = (f_prev * self.col).sum(1)
        if b_last is not None:
            z = z + b_last.sum() * torch.exp(-self.lf[last])
        valid = z > 0
        self.log_z = torch.where(valid, torch.where(valid, z, 1.0).log() + self.lf[last], 0.0)
        self.count = valid.sum()
        self.weight = valid.to(dtype)
        if normalize:
            self.weight = self.weight / self.count.clamp_min(1).to(dtype)
        # log(weight_x / Z_x), -inf for inputs without mass (weight is a constant for autograd)
        self._log_wz = torch.where(valid, self.weight.log() - self.log_z, -math.inf)
        if self.with_s:  # S_x = s_{L-1} . t_{L-1} + f_{L-1} . colsum(|W_L| log|W_L|) + sum b log b
            sz = (self.s[last] * self.col).sum(1) + (f_prev * self.alog[last].sum(0)).sum(1)
            if b_last is not None:
                sz = sz + self.blog[last].sum() * torch.exp(-self.lf[last])
            self.s_over_z = torch.where(valid, sz / torch.where(valid, z, 1.0), 0.0)

    def coef(self, log_scale: Tensor) -> Tensor:
        """weight_x * exp(log_scale_x - log Z_x), 0 for inputs without mass."""
        return torch.exp(log_scale + self._log_wz)

    def node(self, l: int) -> Tensor:
        """Mass through the units of hidden layer l, summed over the batch with the weights."""
        return self.coef(self.lf[l] + self.lt[l]) @ (self.f[l] * self.t[l])

    def bias_edge(self, l: int) -> Tensor:
        """Flow of the paths that start at the biases of layer l (1..L)."""
        b = self.b[l - 1]
        if b is None:
            return self.a[l - 1].new_zeros(self.a[l - 1].shape[0])
        if l == self.n_layers:
            return b * self.coef(torch.zeros_like(self.log_z)).sum()
        return b * (self.coef(self.lt[l]) @ (self.g[l - 1] * self.t[l]))

    def edge(self, l: int) -> Tensor:
        """Flow along the edges into layer l (1..L), n_l x n_{l-1}."""
        a = self.a[l - 1]
        if l == self.n_layers:  # t_L = 1, no gate
            v = self.coef(self.lf[l - 1]) @ self.f[l - 1]
            return a * v.unsqueeze(0)
        u = self.coef(self.lf[l - 1] + self.lt[l]).unsqueeze(1) * (self.g[l - 1] * self.t[l])
        return a * (u.T @ self.f[l - 1])

    def constant(self, bias_edges: list[Tensor]) -> Tensor:
        """Mass c_l of the constant node of layers 0..L-1: the paths starting at later biases."""
        starts = torch.stack([e.sum() for e in bias_edges])  # mass starting at each layer
        return starts.flip(0).cumsum(0).flip(0)


def data_guarded(compute: Callable[..., tuple], ws, bs, x, layers_checked=()) -> list[Tensor]:
    """Run ``compute(dtype) -> (outputs, count, layer_mass)`` with one host sync.

    Raises ``ValueError`` when no input has path mass, when a layer in ``layers_checked`` carries
    none, or for NaN/inf input; retries in float64 when float32 ran out of range.
    """
    dtype = torch.promote_types(work_dtype(ws, bs), x.dtype)
    result_dtype = torch.promote_types(out_dtype(ws, bs), x.dtype)
    for attempt in (dtype, torch.float64):
        outputs, count, layer_mass = compute(attempt)
        parts = [count.to(attempt).reshape(1)]
        if layer_mass is not None:
            parts.append(layer_mass.detach().amin().reshape(1).to(attempt))
        parts.append(torch.cat([t.detach().reshape(-1).to(attempt) for t in outputs]).sum()
                     .reshape(1))
        probe = torch.cat(parts).tolist()
        mass_ok = layer_mass is None or probe[1] > 0
        if probe[0] > 0 and mass_ok and math.isfinite(probe[-1]):
            return [t if t.dtype == result_dtype else t.to(result_dtype) for t in outputs]
        # something is wrong: find out what (slow path, only on failure)
        raise_if_nonfinite(ws, bs)
        if not bool(torch.isfinite(x).all()):
            raise ValueError("x contains NaN or inf")
        if probe[0] == 0:
            raise ValueError("no input of the batch has any path mass (every path has weight 0: "
                             "zero inputs, every unit of some layer off, no biases after it)")
        if not mass_ok:
            empty = [l for l, m in zip(layers_checked, layer_mass.tolist(), strict=True)
                     if not m > 0]
            raise ValueError(f"no path mass passes through the units of layer(s) {empty} on "
                             "this batch (all of them are off for every input, or cut off "
                             "from the output); their node entropy is undefined")
        if attempt == torch.float64 or ws[0].device.type == "mps":
            break
    raise FloatingPointError("data path sums left the floating-point range even in float64")


def data_path_flows(
    weights: Sequence[Tensor],
    biases: Sequence[Tensor | None] | None,
    x: Tensor,
    gates: Sequence[Tensor] | None = None,
    *,
    bias_paths: bool = True,
) -> DataPathFlows:
    r"""Batch-averaged node marginals and edge flows of the data-dependent path distribution.

    For input :math:`x` a path from pixel :math:`i_0` has weight
    :math:`|x_{i_0}| \prod_{l=1}^{L} |W_l[i_l, i_{l-1}]|\, g_l(i_l)`, a path that starts at the
    bias of unit :math:`j` of layer :math:`k` weight :math:`|b_k[j]|\, g_k(j) \prod_{l>k}
    |W_l[i_l, i_{l-1}]|\, g_l(i_l)` (``bias_paths=False`` drops these), with the ReLU gates
    :math:`g_l = \mathbf 1[\text{pre-activation} > 0]` (``gates``, default :func:`relu_gates`;
    :math:`g_L = 1`). Per input, :math:`p_x = w_x / Z_x`; with forward sums
    :math:`f_l = g_l \odot (|W_l| f_{l-1} + |b_l|)`, :math:`f_0 = |x|`, and backward sums
    :math:`t_L = 1`, :math:`t_{l-1} = |W_l|^\top (g_l \odot t_l)`,

    .. math::
        m_{x,l}(i) = \frac{f_l(i)\, t_l(i)}{Z_x}, \quad
        F_{x,l}(j, i) = \frac{f_{l-1}(i)\, |W_l[j,i]|\, g_l(j)\, t_l(j)}{Z_x}, \quad
        F^b_{x,l}(j) = \frac{|b_l[j]|\, g_l(j)\, t_l(j)}{Z_x},

    with :math:`Z_x = \mathbf 1^\top f_L`. Returns their means over the inputs with
    :math:`Z_x > 0` (a :class:`DataPathFlows`); inputs without any path are left out. The constant
    node of layer :math:`l` carries :math:`\bar c_l = \sum_{k > l} \sum_j \bar F^b_k(j)`.
    Differentiable in the weights and biases (gates held fixed: they are piecewise constant, so
    this is the gradient wherever it exists); cost: two batched passes of :math:`|W|`, like a
    forward and a backward pass, plus one :math:`n_l \times n_{l-1}` product per layer.
    """
    ws, bs, xs, gs = prepare_data(weights, biases, x, gates)
    n_layers = len(ws)

    def compute(dtype):
        sums = DataSums(ws, bs, xs, gs, bias_paths, dtype)
        edges = [sums.edge(l) for l in range(1, n_layers + 1)]
        bias_edges = [sums.bias_edge(l) for l in range(1, n_layers + 1)]
        nodes = [edges[0].sum(0)]
        nodes += [sums.node(l) for l in range(1, n_layers)]
        nodes.append(edges[-1].sum(1) + bias_edges[-1])
        return nodes + [sums.constant(bias_edges)] + edges + bias_edges, sums.count, None

    out = data_guarded(compute, ws, bs, xs)
    k = n_layers + 1
    return DataPathFlows(out[:k], out[k], out[k + 1:k + 1 + n_layers], out[k + 1 + n_layers:])


def data_node_entropies(
    weights: Sequence[Tensor],
    biases: Sequence[Tensor | None] | None,
    x: Tensor,
    gates: Sequence[Tensor] | None = None,
    *,
    alpha: float = 1.0,
    layers: Sequence[int] | None = None,
    bias_paths: bool = True,
) -> Tensor:
    r"""Entropies :math:`H_\alpha(\bar m_l / \mathbf 1^\top \bar m_l)` of the batch-averaged node
    marginals of the hidden ``layers`` (default all, ``1..L-1``), in nats.

    :math:`\bar m_l = \frac1{B'}\sum_x m_{x,l}` as in :func:`data_path_flows`, restricted to the
    units of layer :math:`l` (the paths that start at a later bias do not pass through it) and
    renormalised: the distribution of the unit a path of the batch uses in layer :math:`l`.
    :math:`e^{H}` is the layer's effective number of units *for this data*. Cost: the gated
    forward pass :math:`f` and backward pass :math:`t` (the output layer costs only a column sum)
    and the backward pass of autograd through them. Raises ``ValueError`` if no path mass passes
    through a requested layer.
    """
    ws, bs, xs, gs = prepare_data(weights, biases, x, gates)
    return node_entropies(ws, bs, xs, gs, check_layers(layers, len(ws)), check_alpha(alpha),
                          bias_paths)


def node_entropies(ws, bs, xs, gs, layers, alpha, bias_paths) -> Tensor:
    """:func:`data_node_entropies` on checked, prepared arguments (shared with the objectives)."""

    def compute(dtype):
        sums = DataSums(ws, bs, xs, gs, bias_paths, dtype, t_from=min(layers))
        masses, entropies = [], []
        for l in layers:
            m = sums.node(l)
            masses.append(m.sum())
            entropies.append(probs_entropy(m / masses[-1], alpha))
        return [torch.stack(entropies)], sums.count, torch.stack(masses)

    return data_guarded(compute, ws, bs, xs, layers)[0]


def data_path_chain_entropy(
    weights: Sequence[Tensor],
    biases: Sequence[Tensor | None] | None,
    x: Tensor,
    gates: Sequence[Tensor] | None = None,
    *,
    bias_paths: bool = True,
) -> Tensor:
    r"""Entropy of the Markov chain with the batch-averaged edge flows (nats):

    .. math:: H(Q) = \sum_{l=1}^{L} H(\bar F_l) - \sum_{l=1}^{L-1} H(\bar m_l),

    where the flows and marginals include the constant (bias) nodes: :math:`\bar F_l` is the
    vector of the flows into layer :math:`l` (edges, bias edges and, for :math:`l < L`, the
    constant-to-constant edge carrying :math:`\bar c_l`), :math:`\bar m_l = (\bar m_l(i))_i
    \cup \bar c_l`. :math:`Q(\gamma) = \bar F_1(i_1, i_0) \prod_{l \ge 2} \bar F_l(i_l, i_{l-1})
    / \bar m_{l-1}(i_{l-1})` is the Markov chain with the same consecutive pair marginals as the
    batch mixture :math:`\bar P = \frac1{B'}\sum_x p_x`, so :math:`H(Q) - H(\bar P) =
    \mathrm{KL}(\bar P \Vert Q) \ge 0`: an exact upper bound of :math:`H(\bar P)`, equal to it for
    a batch of one input. Shannon only.
    """
    ws, bs, xs, gs = prepare_data(weights, biases, x, gates)
    n_layers = len(ws)

    def compute(dtype):
        sums = DataSums(ws, bs, xs, gs, bias_paths, dtype)
        edges = [sums.edge(l) for l in range(1, n_layers + 1)]
        bias_edges = [sums.bias_edge(l) for l in range(1, n_layers + 1)]
        constant = sums.constant(bias_edges)  # c_0 .. c_{L-1}
        h = 0.0
        for l in range(1, n_layers + 1):
            parts = [edges[l - 1].reshape(-1), bias_edges[l - 1]]
            if l < n_layers:
                parts.append(constant[l].reshape(1))
                node = torch.cat([sums.node(l), constant[l].reshape(1)])
                h = h - probs_entropy(node, 1.0)
            h = h + probs_entropy(torch.cat(parts), 1.0)
        return [h], sums.count, None

    return data_guarded(compute, ws, bs, xs)[0]


def data_path_example_entropy(
    weights: Sequence[Tensor],
    biases: Sequence[Tensor | None] | None,
    x: Tensor,
    gates: Sequence[Tensor] | None = None,
    *,
    bias_paths: bool = True,
) -> Tensor:
    r"""Mean over the batch of the per-input path entropy :math:`\frac1{B'}\sum_x H(p_x)` (nats).

    Per input, the expectation-semiring recursion of :func:`~entropic_ae.paths.path_entropy`
    through the gates: :math:`s_l = g_l \odot (|W_l| s_{l-1} + (|W_l| \circ \log|W_l|) f_{l-1} +
    |b_l| \log|b_l|)`, :math:`s_0 = |x| \log|x|`, and :math:`H(p_x) = \log Z_x - \mathbf 1^\top
    s_L / Z_x`. Inputs without path mass are left out. This is *not* a bottleneck objective: it
    is small when each input uses few paths, whichever they are (see
    :mod:`~entropic_ae.paths.objectives`).
    """
    ws, bs, xs, gs = prepare_data(weights, biases, x, gates)

    def compute(dtype):
        sums = DataSums(ws, bs, xs, gs, bias_paths, dtype, t_from=len(ws) - 1, with_s=True)
        h = (sums.weight * (sums.log_z - sums.s_over_z)).sum()
        return [h], sums.count, None

    return data_guarded(compute, ws, bs, xs)[0]


def _chunk_node_mass(ws, bs, chunk, gs, bias_paths: bool) -> tuple[list[Tensor], int]:
    """Summed (not averaged) node mass of every layer over one chunk of inputs, float64."""
    n_layers = len(ws)

    def compute(dtype):
        sums = DataSums(ws, bs, chunk, gs, bias_paths, dtype, normalize=False)
        nodes = [sums.edge(1).sum(0)]
        nodes += [sums.node(l) for l in range(1, n_layers)]
        nodes.append(sums.edge(n_layers).sum(1) + sums.bias_edge(n_layers))
        return nodes + [sums.count.to(dtype).reshape(1)], sums.count.new_ones(()), None

    out = data_guarded(compute, ws, bs, chunk)
    return [t.to(torch.float64) for t in out[:-1]], int(out[-1].item())


@torch.no_grad()
def data_effective_nodes(
    weights: Sequence[Tensor],
    biases: Sequence[Tensor | None] | None,
    x: Tensor,
    gates: Sequence[Tensor] | None = None,
    *,
    alpha: float = 1.0,
    bias_paths: bool = True,
    batch_size: int = 1024,
) -> Tensor:
    r"""Effective number of units per layer for the data ``x``: :math:`\exp H_\alpha(\bar m_l /
    \mathbf 1^\top \bar m_l)`, ``l = 0..L`` (a tensor of length L + 1).

    :math:`\bar m_l` is the data-dependent node marginal of :func:`data_path_flows`, averaged over
    all of ``x`` (processed ``batch_size`` inputs at a time, accumulated in float64) and
    restricted to the layer's units. Between 1 (the data's path mass passes one unit) and
    :math:`n_l`; a unit that never fires on ``x`` counts for nothing, and a layer none of whose
    units carries any mass of ``x`` (all off, or all paths start at later biases) gets 0. For
    reporting: no gradients.
    """
    ws, bs = check_params(weights, biases)
    alpha = check_alpha(alpha)
    xs = check_inputs(x, ws[0].shape[1])
    batch_size = check_int("batch_size", batch_size, 1)
    if gates is not None:
        gates = check_gates(gates, ws, xs.shape[0])
    totals, count = None, 0
    for start in range(0, xs.shape[0], batch_size):
        gs = None if gates is None else [g[start:start + batch_size] for g in gates]
        ws_, bs_, chunk, gs = prepare_data(ws, bs, xs[start:start + batch_size], gs)
        part, n = _chunk_node_mass(ws_, bs_, chunk, gs, bias_paths)
        totals = part if totals is None else [a + b for a, b in zip(totals, part, strict=True)]
        count += n
    if totals is None or count == 0:
        raise ValueError("no input of x has any path mass: effective nodes are undefined")
    # 0 for a layer none of whose units carries any mass of x
    return torch.stack([probs_entropy(m / m.sum(), alpha).exp() if m.sum() > 0
                        else m.new_zeros(()) for m in totals])
