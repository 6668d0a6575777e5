r"""Exact entropy of the distribution over paths through a feed-forward network.

A network with :math:`L` linear layers has node layers :math:`0, \dots, L` of widths
:math:`n_0, \dots, n_L`; layer :math:`l` maps layer :math:`l-1` to layer :math:`l` with a weight
matrix :math:`W_l` of shape :math:`n_l \times n_{l-1}` (the layout of ``nn.Linear.weight``) and an
optional bias :math:`b_l`. A *path* picks one node per layer, :math:`(i_0, \dots, i_L)`, and has
weight

.. math::
    w(i_0, \dots, i_L) = \prod_{l=1}^{L} A_l[i_l, i_{l-1}], \qquad
    A_l = |W_l| + |b_l| \mathbf{1}^\top ,

so the bias of the node a path enters is added to the edge it uses. Normalising,
:math:`p = w / Z` with :math:`Z = \sum w`, gives a distribution over all
:math:`n_0 n_1 \cdots n_L` paths (or over the paths from one ``source`` input node and/or to one
``target`` output node). Its entropy is small when the mass concentrates on few paths.

Nothing here enumerates paths. With the forward sums :math:`f_l(j)` (mass of the partial paths
that end at node :math:`j` of layer :math:`l`) and :math:`s_l(j)` (the same sum of
:math:`w \log w`), extending every partial path by one edge gives the recursions

.. math::
    f_l = A_l f_{l-1}, \qquad
    s_l = A_l s_{l-1} + (A_l \circ \log A_l) f_{l-1}, \qquad f_0 = \mathbf{1},\ s_0 = 0,

because :math:`\log w` of the extended path is :math:`\log w + \log A_l[j, i]`. Then
:math:`Z = \mathbf{1}^\top f_L`, :math:`S = \sum w \log w = \mathbf{1}^\top s_L` and the Shannon
entropy is :math:`H = \log Z - S / Z` (one pass of matrix-vector products; this is the
"expectation semiring" form of the forward-backward identity
:math:`S = \sum_l g_l^\top (A_l \circ \log A_l) f_{l-1}` with backward sums
:math:`g_{l-1} = A_l^\top g_l`, :math:`g_L = \mathbf{1}`). Likewise
:math:`\sum_{\text{paths}} w^\alpha = \mathbf{1}^\top A_L^{\circ\alpha} \cdots
A_1^{\circ\alpha} \mathbf{1}` gives the Rényi entropy
:math:`H_\alpha = (\log \sum w^\alpha - \alpha \log Z) / (1 - \alpha)`, and a (max, ×) pass gives
the heaviest path and the min-entropy :math:`H_\infty = \log Z - \log \max w`. The fraction of
mass through node :math:`i` of layer :math:`l` is :math:`m_l(i) = f_l(i)\, g_l(i) / Z`.

Numerics. Products of :math:`L` matrices over- or underflow quickly, so the forward (and
backward) vectors are divided by their maximum after each layer and the logarithms of these
factors are added up; for the Rényi and min-entropies every :math:`A_l` is also divided by its
largest entry (:math:`A^{\circ\alpha}` overflows easily). The entropy does not depend on any of
these factors, and autograd may treat them as constants: :math:`Z` is homogeneous of degree 1 in
each :math:`A_l` and in each intermediate vector, so the value and the gradient are exact. If
float32 still leaves its range (weights spanning more than ~30 orders of magnitude), the
computation is repeated in float64, with gradients flowing through the cast. Zero entries
contribute :math:`0 \log 0 = 0` and get finite gradients (the gradient of :math:`|x|` at 0 is
0, as in PyTorch). Cost: a few matrix-vector products per layer, nothing larger than the weight
matrices is built, and there is a single device-to-host synchronisation (the finiteness check).

Data-dependent path mass
------------------------
The weight-only path weight cannot see that a ReLU unit with a negative input passes nothing on,
so a chain of large weights through units that never fire can hold almost all of :math:`Z`
(a decoy). For an input :math:`x` of a ReLU network, give a path the weight it can actually carry,

.. math::
    w_x(i_0, \dots, i_L) = |x_{i_0}| \prod_{l=1}^{L} |W_l[i_l, i_{l-1}]|\, g_{x,l}(i_l),

with the gates :math:`g_{x,l}(i) = \mathbf 1[\text{pre-activation of unit } i > 0]` of the
hidden layers (:math:`g_{x,L} = 1`: the output has no gate). Biases are edges from a constant
node: a path may also start at the bias of unit :math:`j` of layer :math:`k`, with weight
:math:`|b_k[j]|\, g_{x,k}(j) \prod_{l>k} |W_l[i_l, i_{l-1}]|\, g_{x,l}(i_l)`. The programme is
the same as above, run per input through the batch's gate pattern:
:math:`f_{x,0} = |x|`, :math:`f_{x,l} = g_{x,l} \odot (|W_l| f_{x,l-1} + |b_l|)`,
:math:`t_{x,L} = 1`, :math:`t_{x,l-1} = |W_l|^\top (g_{x,l} \odot t_{x,l})`,
:math:`Z_x = \mathbf 1^\top f_{x,L}`; node marginals
:math:`m_{x,l} = f_{x,l} \odot t_{x,l} / Z_x` and edge flows
:math:`F_{x,l}(j,i) = f_{x,l-1}(i) |W_l[j,i]| g_{x,l}(j) t_{x,l}(j) / Z_x` (one batched matrix
product per layer; :math:`f_{x,l} \ge |h_{x,l}|`, an :math:`\ell_1` bound of the signal).
Each path through a hidden unit uses exactly one edge into it (a weight or its bias) and one edge
out of it, so rescaling the unit (in-weights and bias :math:`\times c`, out-weights
:math:`\div c`) changes no path weight: the distribution is invariant, and a unit that never fires
carries no mass.

*Which batch-level quantity?* Average the per-input distributions, :math:`\bar P =
\frac1B \sum_x p_x`. :math:`\bar P` is a mixture of Markov chains and not itself one, so
:math:`H(\bar P)` has no dynamic programme; but its node marginals
:math:`\bar m_l = \frac1B\sum_x m_{x,l}` and pair marginals (edge flows) :math:`\bar F_l` are
batch averages of DP quantities. Candidates:

* the Markov chain :math:`Q` with these pair marginals (:func:`data_path_chain_entropy`),
  :math:`H(Q) = \sum_l H(\bar F_l) - \sum_{0<l<L} H(\bar m_l) = H(\bar P) +
  \mathrm{KL}(\bar P \Vert Q) \ge H(\bar P)`. By the chain rule it is
  :math:`H(\bar m_0) + \sum_l H(I_l \mid I_{l-1})`, at least :math:`H(\bar m_l)` for every
  :math:`l`, and it counts how many pixels are read and written: like the weight-only entropy
  it pushes *every* layer (and the input and output) to narrow;
* :math:`\sum_l H(\bar m_l)` over the hidden layers: also narrows all of them;
* a soft minimum over the hidden layers, :math:`-\tau \log \frac1K \sum_l e^{-H(\bar m_l)/\tau}`:
  its gradient weights layer :math:`l` by :math:`\mathrm{softmax}(-H/\tau)_l`, so it pushes the
  layer that is already narrowest and leaves the others free. That is "one bottleneck somewhere",
  with the network choosing where; it is the recommended objective (:func:`data_path_objective`).

*Why not the per-input entropy* :math:`\frac1B\sum_x H(p_x)` (:func:`data_path_example_entropy`)?
It equals :math:`H(\bar P) - I(X; \Gamma)`, the mutual information between the input and its
path; per layer :math:`\frac1B\sum_x H(m_{x,l}) = H(\bar m_l) - I(X; I_l)`. It is small when
each input uses few paths, *whichever* they are: a sparse code in which every input switches on
a different unit of a 16-wide layer has per-input node entropy 0 while the batch uses all 16 units
(:math:`H(\bar m_l) = \log 16`). ReLU gates make such per-input sparsity cheap, so this target
rewards it instead of a bottleneck shared by all inputs.

*Caveats.* The mass is a sum of magnitudes: units whose contributions cancel, or an always-on unit
with a large bias compensated by the next layer's bias (a constant, no information), can still
carry mass at no cost to the reconstruction; ``bias_paths=False`` removes the second loophole.
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

import torch
from torch import nn

__all__ = [
    "DATA_OBJECTIVES",
    "DataPathEntropyTerm",
    "DataPathFlows",
    "PathEntropyTerm",
    "count_paths",
    "data_effective_nodes",
    "data_node_entropies",
    "data_path_chain_entropy",
    "data_path_example_entropy",
    "data_path_flows",
    "data_path_objective",
    "effective_nodes",
    "layer_sizes",
    "linear_params",
    "node_path_marginals",
    "path_entropy",
    "path_entropy_bruteforce",
    "relu_gates",
]

Tensor = torch.Tensor

# |alpha - 1| below this counts as Shannon (alpha = 1).
_SHANNON_TOL = 1e-6


# --------------------------------------------------------------------------------------------
# Input handling
# --------------------------------------------------------------------------------------------


def linear_params(
    module_or_layers: nn.Module | Iterable[nn.Linear],
) -> tuple[list[Tensor], list[Tensor | None]]:
    """Weights and biases of the ``nn.Linear`` layers of a model, in order.

    ``module_or_layers`` is an ``nn.Module`` (its ``nn.Linear`` submodules are taken in
    registration order, which is the forward order for ``nn.Sequential``; a layer that is
    registered twice counts once) or an iterable of ``nn.Linear`` layers. Returns
    ``(weights, biases)`` ready for :func:`path_entropy`; a layer without bias gives ``None``.
    """
    if isinstance(module_or_layers, nn.Linear):
        layers = [module_or_layers]
    elif isinstance(module_or_layers, nn.Module):
        layers = [m for m in module_or_layers.modules() if isinstance(m, nn.Linear)]
    elif isinstance(module_or_layers, Iterable) and not isinstance(module_or_layers, Tensor):
        layers = list(module_or_layers)
        for k, layer in enumerate(layers):
            if not isinstance(layer, nn.Linear):
                raise TypeError(
                    f"linear_params expects nn.Linear layers; item {k} is {type(layer).__name__}"
                )
    else:
        raise TypeError(
            "linear_params expects an nn.Module or an iterable of nn.Linear layers, got "
            f"{type(module_or_layers).__name__}"
        )
    if not layers:
        raise ValueError("no nn.Linear layers found")
    return [layer.weight for layer in layers], [layer.bias for layer in layers]


def layer_sizes(weights: Sequence[Tensor]) -> list[int]:
    """Node-layer widths ``[n_0, ..., n_L]`` of weight matrices shaped ``(n_l, n_{l-1})``."""
    ws, _ = _check_params(weights, None)
    return [ws[0].shape[1]] + [w.shape[0] for w in ws]


def _check_params(
    weights: Sequence[Tensor], biases: Sequence[Tensor | None] | None
) -> tuple[list[Tensor], list]:
    """Validate shapes, types and devices; return ``(weights, biases)`` as lists."""
    if isinstance(weights, nn.Module):
        raise TypeError(
            "weights must be a sequence of weight tensors, not an nn.Module; "
            "use `weights, biases = linear_params(model)`"
        )
    if isinstance(weights, Tensor):
        raise TypeError(
            "weights must be a sequence (list/tuple) of 2-D weight tensors, one per layer, "
            "not a single tensor"
        )
    if not isinstance(weights, Iterable):
        raise TypeError(f"weights must be a sequence of tensors, got {type(weights).__name__}")
    ws = list(weights)
    if not ws:
        raise ValueError("weights is empty: need at least one layer")
    for l, w in enumerate(ws, start=1):
        if isinstance(w, nn.Linear):
            raise TypeError(
                f"layer {l} is an nn.Linear module; pass tensors, e.g. via linear_params(layers)"
            )
        if not isinstance(w, Tensor):
            raise TypeError(f"weight of layer {l} must be a torch.Tensor, got {type(w).__name__}")
        if w.ndim != 2:
            raise ValueError(
                f"weight of layer {l} must be 2-D (out x in, as nn.Linear.weight), "
                f"got shape {tuple(w.shape)}"
            )
        if not w.is_floating_point():
            raise TypeError(f"weight of layer {l} must be floating point, got {w.dtype}")
        if w.shape[0] == 0 or w.shape[1] == 0:
            raise ValueError(f"weight of layer {l} has an empty dimension: {tuple(w.shape)}")
        if w.device != ws[0].device:
            raise ValueError(
                f"all weights must be on one device: layer 1 is on {ws[0].device}, "
                f"layer {l} on {w.device}"
            )
        if l > 1 and w.shape[1] != ws[l - 2].shape[0]:
            raise ValueError(
                f"shapes do not chain: layer {l} has {w.shape[1]} inputs but layer {l - 1} "
                f"has {ws[l - 2].shape[0]} outputs (weights are out x in)"
            )
    if biases is None:
        return ws, [None] * len(ws)
    if isinstance(biases, (Tensor, nn.Module)) or not isinstance(biases, Iterable):
        raise TypeError(
            "biases must be None or a sequence with one 1-D tensor (or None) per layer, "
            f"got {type(biases).__name__}"
        )
    bs = list(biases)
    if len(bs) != len(ws):
        raise ValueError(f"got {len(bs)} biases for {len(ws)} weight matrices")
    for l, (w, b) in enumerate(zip(ws, bs, strict=True), start=1):
        if b is None:
            continue
        if not isinstance(b, Tensor):
            raise TypeError(f"bias of layer {l} must be a tensor or None, got {type(b).__name__}")
        if not b.is_floating_point():
            raise TypeError(f"bias of layer {l} must be floating point, got {b.dtype}")
        if tuple(b.shape) != (w.shape[0],):
            raise ValueError(
                f"bias of layer {l} must have shape ({w.shape[0]},), got {tuple(b.shape)}"
            )
        if b.device != w.device:
            raise ValueError(f"bias of layer {l} is on {b.device}, its weight on {w.device}")
    return ws, bs


def _check_node(index: int | None, width: int, name: str, layer: str) -> int | None:
    if index is None:
        return None
    if isinstance(index, bool):
        raise TypeError(f"{name} must be an int node index or None, got a bool")
    try:
        index = operator.index(index)
    except TypeError:
        raise TypeError(
            f"{name} must be an int node index or None, got {type(index).__name__}"
        ) from None
    if not 0 <= index < width:
        raise ValueError(f"{name}={index} is out of range for the {layer} layer of width {width}")
    return index


def _check_alpha(alpha: float) -> float:
    if isinstance(alpha, Tensor):
        if alpha.numel() != 1:
            raise ValueError(f"alpha must be a scalar, got a tensor of shape {tuple(alpha.shape)}")
        alpha = alpha.item()
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
        raise TypeError(f"alpha must be a real number, got {type(alpha).__name__}")
    alpha = float(alpha)
    if math.isnan(alpha):
        raise ValueError("alpha must be a number >= 0 (or math.inf), got NaN")
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0 (or math.inf), got {alpha}")
    return alpha


def _log_base(base: float | None) -> float:
    if base is None:
        return 1.0
    if isinstance(base, bool) or not isinstance(base, numbers.Real):
        raise TypeError(f"base must be None or a real number, got {type(base).__name__}")
    base = float(base)
    if not (math.isfinite(base) and base > 0 and base != 1):
        raise ValueError(f"base must be a finite positive number other than 1, got {base}")
    return math.log(base)


def _prepare(weights, biases, source, target):
    ws, bs = _check_params(weights, biases)
    source = _check_node(source, ws[0].shape[1], "source", "input")
    target = _check_node(target, ws[-1].shape[0], "target", "output")
    return ws, bs, source, target


def _work_dtype(ws: list[Tensor], bs: list) -> torch.dtype:
    dtype = ws[0].dtype
    for t in ws[1:] + [b for b in bs if b is not None]:
        dtype = torch.promote_types(dtype, t.dtype)
    # half precision has far too little range for products of many layers
    return torch.promote_types(dtype, torch.float32)


def _out_dtype(ws: list[Tensor], bs: list) -> torch.dtype:
    dtype = ws[0].dtype
    for t in ws[1:] + [b for b in bs if b is not None]:
        dtype = torch.promote_types(dtype, t.dtype)
    return dtype


# --------------------------------------------------------------------------------------------
# The dynamic programmes
# --------------------------------------------------------------------------------------------


def _edge_matrices(
    ws, bs, source, target, dtype: torch.dtype, device: torch.device, normalize: bool
) -> tuple[list[Tensor], list[Tensor]]:
    """Matrices A_l = |W_l| + |b_l|, restricted to source/target (and divided by their max).

    Also returns the largest entry of each unrestricted A_l (NaN or inf when A_l has a NaN or
    inf entry), so that bad input is caught by the single check in :func:`_guarded`.
    """
    mats, tops = [], []
    last = len(ws) - 1
    for l, (w, b) in enumerate(zip(ws, bs, strict=True)):
        a = _cast(w, dtype, device).abs()
        if b is not None:
            a = a + _cast(b, dtype, device).abs().unsqueeze(1)
        full = a
        if l == 0 and source is not None:
            a = a[:, source : source + 1]
        if l == last and target is not None:
            a = a[target : target + 1, :]
        top = full.detach().amax()  # NaN if any entry is NaN
        tops.append(top)
        if normalize:
            a = a / (top if a is full else a.detach().amax())
        mats.append(a)
    return mats, tops


def _cast(t: Tensor, dtype: torch.dtype, device: torch.device) -> Tensor:
    return t if t.dtype == dtype and t.device == device else t.to(device=device, dtype=dtype)


def _sum_log(scales: list[Tensor]) -> Tensor | float:
    return torch.stack(scales).log().sum() if scales else 0.0


def _xlogx(a: Tensor) -> Tensor:
    """a log a with 0 log 0 = 0 (a >= 0).

    Adding the smallest normal number changes no normal entry (it is far below their last
    bit) and keeps the logarithm and its gradient finite at 0.
    """
    return a * (a + torch.finfo(a.dtype).tiny).log()


def _shannon(mats: list[Tensor]) -> Tensor:
    """log Z - S/Z via the one-pass recursion for (f, s); see the module docstring."""
    a = mats[0]
    if len(mats) == 1:
        z = a.sum()
        return z.log() - _xlogx(a).sum() / z
    # f_0 = 1, s_0 = 0: the first layer is a row sum
    f = a.sum(1)
    s = _xlogx(a).sum(1)
    scales = []
    for k, a in enumerate(mats[1:], start=2):
        c = f.detach().amax()
        scales.append(c)
        f = f / c
        s = s / c
        if k < len(mats):
            f, s = a @ f, torch.addmv(a @ s, _xlogx(a), f)
        else:
            # only 1^T f_L and 1^T s_L are needed: use column sums (cheaper to differentiate)
            col = a.sum(0)
            z = col @ f
            total_s = col @ s + _xlogx(a).sum(0) @ f
    return z.log() + _sum_log(scales) - total_s / z


def _masked_pow(a: Tensor, alpha: float) -> Tensor:
    """Elementwise a**alpha with 0**alpha = 0 (also for alpha = 0) and finite gradients."""
    pos = a > 0
    return torch.where(pos, torch.exp(alpha * torch.log(torch.where(pos, a, 1.0))), 0.0)


def _log_mass(mats: list[Tensor], alpha: float | None = None) -> Tensor:
    """log of 1^T M_L ... M_1 1 with M_l = A_l (or A_l**alpha), rescaling after each layer."""
    scales = []
    for k, a in enumerate(mats):
        if alpha is not None:
            a = _masked_pow(a, alpha)
        if k == 0:
            f = a.sum(1)
        else:
            c = f.detach().amax()
            scales.append(c)
            # the last layer only needs 1^T A f: a column sum is cheaper to differentiate
            f = a @ (f / c) if k < len(mats) - 1 else (a.sum(0) @ (f / c)).unsqueeze(0)
    return f.sum().log() + _sum_log(scales)


def _log_max_path(mats: list[Tensor]) -> Tensor:
    """log of the largest path weight: a (max, +) pass over log A (log 0 = -inf)."""
    lf = None
    for a in mats:
        pos = a > 0
        la = torch.where(pos, torch.log(torch.where(pos, a, 1.0)), -math.inf)
        lf = la.amax(1) if lf is None else (la + lf).amax(1)
    return lf.amax()


def _entropy_nats(mats: list[Tensor], alpha: float) -> Tensor:
    if math.isinf(alpha):
        return _log_mass(mats) - _log_max_path(mats)
    if abs(alpha - 1.0) < _SHANNON_TOL:
        return _shannon(mats)
    return (_log_mass(mats, alpha) - alpha * _log_mass(mats)) / (1.0 - alpha)


def _marginals(mats: list[Tensor]) -> list[Tensor]:
    """m_l = f_l * g_l / (f_l . g_l) with rescaled forward and backward sums."""
    fs = [mats[0].new_ones(mats[0].shape[1])]
    for a in mats:
        f = a @ fs[-1]
        fs.append(f / f.detach().amax())
    gs = [mats[-1].new_ones(mats[-1].shape[0])]
    for a in reversed(mats):
        g = gs[-1] @ a
        gs.append(g / g.detach().amax())
    gs.reverse()
    out = []
    for f, g in zip(fs, gs, strict=True):
        fg = f * g
        out.append(fg / fg.sum())
    return out


# --------------------------------------------------------------------------------------------
# Guarding against bad input and floating-point range problems
# --------------------------------------------------------------------------------------------


def _raise_if_nonfinite(ws, bs) -> None:
    for l, (w, b) in enumerate(zip(ws, bs, strict=True), start=1):
        if not bool(torch.isfinite(w.detach()).all()):
            raise ValueError(f"weight of layer {l} contains NaN or inf")
        if b is not None and not bool(torch.isfinite(b.detach()).all()):
            raise ValueError(f"bias of layer {l} contains NaN or inf")


def _has_path(ws, bs, source, target) -> bool:
    """Exact test (boolean reachability) whether some path has nonzero weight."""
    reach = None
    last = len(ws) - 1
    for l, (w, b) in enumerate(zip(ws, bs, strict=True)):
        nz = w.detach().cpu() != 0
        if b is not None:
            nz = nz | (b.detach().cpu() != 0).unsqueeze(1)
        if l == 0 and source is not None:
            nz = nz[:, source : source + 1]
        if l == last and target is not None:
            nz = nz[target : target + 1, :]
        nz = nz.to(torch.float64)
        reach = nz.sum(1) > 0 if reach is None else (nz @ reach.to(torch.float64)) > 0
    return bool(reach.any())


def _guarded(compute: Callable[..., tuple], ws, bs, source, target) -> list[Tensor]:
    """Run ``compute(dtype, device) -> (tensors, tops)``; check all is finite with one sync.

    On failure, find the cause: non-finite parameters or zero total path mass raise
    ``ValueError``; otherwise the float32 range was exceeded and we retry in float64 (on the
    CPU if the device has no float64, as Apple's MPS).
    """
    dtype = _work_dtype(ws, bs)
    out_dtype = _out_dtype(ws, bs)
    device = ws[0].device
    tensors, tops = compute(dtype, device)
    # NaN/inf anywhere in the outputs or the matrices makes this probe NaN/inf
    probe = torch.cat([t.detach().reshape(-1) for t in tensors]).sum()
    probe = probe + 0.0 * torch.stack(tops).amax()
    if math.isfinite(probe.item()):
        return [t if t.dtype == out_dtype else t.to(out_dtype) for t in tensors]
    _raise_if_nonfinite(ws, bs)
    if not _has_path(ws, bs, source, target):
        where = ""
        if source is not None or target is not None:
            where = f" (source={source}, target={target})"
        raise ValueError(
            "all paths have zero weight" + where + ": the path distribution and its entropy "
            "are undefined"
        )
    if dtype != torch.float64:
        device64 = torch.device("cpu") if device.type == "mps" else device
        tensors, _ = compute(torch.float64, device64)
        if all(bool(torch.isfinite(t).all()) for t in tensors):
            return [t.to(device=device, dtype=out_dtype) for t in tensors]
    raise FloatingPointError(
        "path sums left the floating-point range even in float64; the weights span too many "
        "orders of magnitude"
    )


# --------------------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------------------


def path_entropy(
    weights: Sequence[Tensor],
    biases: Sequence[Tensor | None] | None = None,
    alpha: float = 1.0,
    source: int | None = None,
    target: int | None = None,
    base: float | None = None,
) -> Tensor:
    r"""Exact entropy of the path distribution :math:`p = w / \sum w`, by dynamic programming.

    Path weight :math:`w(i_0..i_L) = \prod_l (|W_l[i_l, i_{l-1}]| + |b_l[i_l]|)`, bias terms
    omitted where ``biases`` (or an entry of it) is None. ``weights`` are tensors shaped like
    ``nn.Linear.weight`` (out x in), see :func:`linear_params`. ``source`` / ``target`` keep only
    the paths that start at that input node / end at that output node.

    - ``alpha == 1`` (within 1e-6): Shannon, :math:`H = -\sum p \log p = \log Z - S/Z`.
    - ``alpha > 0``: Rényi, :math:`H_\alpha = \log(\sum p^\alpha) / (1 - \alpha)`.
    - ``alpha == 0``: :math:`\log` (number of paths with nonzero weight).
    - ``alpha == inf``: min-entropy :math:`-\log \max p`.

    Natural log, or log base ``base`` (``base=2``: bits). Returns a differentiable 0-d tensor
    in the weights' dtype; cost is a few matrix-vector products per layer and one host sync
    (the check that the result is finite). Near (but not at) ``alpha = 1`` the Rényi
    formula cancels; prefer float64 there. Raises ``ValueError`` for bad shapes, NaN/inf
    entries, or when every path has zero weight.
    """
    ws, bs, source, target = _prepare(weights, biases, source, target)
    alpha = _check_alpha(alpha)
    scale = _log_base(base)

    shannon = abs(alpha - 1.0) < _SHANNON_TOL

    def compute(dtype: torch.dtype, device: torch.device) -> tuple[list[Tensor], list[Tensor]]:
        mats, tops = _edge_matrices(ws, bs, source, target, dtype, device, not shannon)
        return [_entropy_nats(mats, alpha)], tops

    (h,) = _guarded(compute, ws, bs, source, target)
    return h / scale if base is not None else h


def path_entropy_bruteforce(
    weights: Sequence[Tensor],
    biases: Sequence[Tensor | None] | None = None,
    alpha: float = 1.0,
    source: int | None = None,
    target: int | None = None,
    base: float | None = None,
    *,
    max_paths: int = 2_000_000,
) -> Tensor:
    r"""Reference for :func:`path_entropy`: enumerate every path, entropy from the definition.

    Path weights are products of ``|W| + |b|`` entries in float64; then :math:`p = w / \sum w`
    and :math:`-\sum p \log p`, :math:`\log(\sum p^\alpha)/(1-\alpha)`,
    :math:`\log \#\{p > 0\}` or :math:`-\log \max p`. Differentiable, float64. Exponential
    cost: raises ``ValueError`` if there are more than ``max_paths`` paths. Computed on the CPU
    (gradients still reach parameters on other devices).
    """
    ws, bs, source, target = _prepare(weights, biases, source, target)
    alpha = _check_alpha(alpha)
    scale = _log_base(base)
    sizes = [ws[0].shape[1]] + [w.shape[0] for w in ws]
    n_paths = count_paths(sizes, source, target)
    if n_paths > max_paths:
        raise ValueError(
            f"the network has {n_paths} paths, more than max_paths={max_paths}; "
            "brute force is only for small networks (use path_entropy)"
        )
    _raise_if_nonfinite(ws, bs)

    # every path (i_0, ..., i_L) as a row of node indices
    cpu = torch.device("cpu")
    choices = [torch.arange(n) for n in sizes]
    if source is not None:
        choices[0] = choices[0][source : source + 1]
    if target is not None:
        choices[-1] = choices[-1][target : target + 1]
    grids = torch.meshgrid(*choices, indexing="ij")
    nodes = torch.stack([g.reshape(-1) for g in grids], dim=1)

    w = torch.ones(nodes.shape[0], dtype=torch.float64)
    for l, (wl, bl) in enumerate(zip(ws, bs, strict=True)):
        dst, src = nodes[:, l + 1], nodes[:, l]
        edge = _cast(wl, torch.float64, cpu)[dst, src].abs()
        if bl is not None:
            edge = edge + _cast(bl, torch.float64, cpu)[dst].abs()
        w = w * edge
    z = w.sum()
    if not z > 0:
        raise ValueError("all paths have zero weight: the path entropy is undefined")
    p = w / z
    p = p[p > 0]
    if alpha == 0:
        h = torch.log(torch.tensor(float(p.numel()), dtype=torch.float64)) + 0 * p.sum()
    elif math.isinf(alpha):
        h = -p.max().log()
    elif abs(alpha - 1.0) < _SHANNON_TOL:
        h = -(p * p.log()).sum()
    else:
        h = (p**alpha).sum().log() / (1.0 - alpha)
    return h / scale if base is not None else h


def count_paths(
    layer_sizes: Sequence[int], source: int | None = None, target: int | None = None
) -> int:
    """Number of paths through node layers of widths ``[n_0, ..., n_L]``: :math:`\\prod_l n_l`.

    With ``source`` (``target``) the first (last) factor is 1. Exact Python int.
    """
    if isinstance(layer_sizes, (str, bytes)) or not isinstance(layer_sizes, Iterable):
        raise TypeError("layer_sizes must be a sequence of positive ints")
    sizes = []
    for k, n in enumerate(layer_sizes):
        if isinstance(n, bool):
            raise TypeError(f"layer_sizes[{k}] must be an int, got a bool")
        try:
            n = operator.index(n)
        except TypeError:
            raise TypeError(f"layer_sizes[{k}] must be an int, got {type(n).__name__}") from None
        if n <= 0:
            raise ValueError(f"layer_sizes[{k}] must be positive, got {n}")
        sizes.append(n)
    if len(sizes) < 2:
        raise ValueError(
            f"need at least two node layers (input and output), got {len(sizes)} sizes"
        )
    if _check_node(source, sizes[0], "source", "input") is not None:
        sizes[0] = 1
    if _check_node(target, sizes[-1], "target", "output") is not None:
        sizes[-1] = 1
    return math.prod(sizes)


def node_path_marginals(
    weights: Sequence[Tensor],
    biases: Sequence[Tensor | None] | None = None,
    source: int | None = None,
    target: int | None = None,
) -> list[Tensor]:
    """Fraction of path mass through each node: :math:`m_l(i) = f_l(i)\\, g_l(i) / Z`.

    Returns one vector per node layer ``0..L`` (lengths ``n_0..n_L``), each summing to 1.
    :math:`f_l` is the mass of partial paths from the input (or ``source``) to node ``i`` of
    layer ``l``, :math:`g_l` the mass from there to the output (or ``target``). With ``source``
    (``target``) the first (last) vector is one-hot. Differentiable.
    """
    ws, bs, source, target = _prepare(weights, biases, source, target)

    def compute(dtype: torch.dtype, device: torch.device) -> tuple[list[Tensor], list[Tensor]]:
        mats, tops = _edge_matrices(ws, bs, source, target, dtype, device, True)
        return _marginals(mats), tops

    ms = _guarded(compute, ws, bs, source, target)
    # restricted end layers were computed with width 1: put that back as a one-hot vector
    for k, node, width in ((0, source, ws[0].shape[1]), (-1, target, ws[-1].shape[0])):
        if node is not None:
            one_hot = ms[k].new_zeros(width)
            one_hot[node] = 1.0
            ms[k] = one_hot
    return ms


def _probs_entropy(p: Tensor, alpha: float) -> Tensor:
    """Shannon / Rényi entropy (nats) of a probability vector, 0 log 0 = 0."""
    if math.isinf(alpha):
        return -p.amax().log()
    if abs(alpha - 1.0) < _SHANNON_TOL:
        return -(p * p.clamp_min(torch.finfo(p.dtype).tiny).log()).sum()
    return _masked_pow(p, alpha).sum().log() / (1.0 - alpha)


def effective_nodes(
    weights: Sequence[Tensor],
    biases: Sequence[Tensor | None] | None = None,
    alpha: float = 1.0,
    source: int | None = None,
    target: int | None = None,
) -> Tensor:
    """Effective number of nodes per layer: :math:`\\exp H_\\alpha(m_l)` (the perplexity).

    :math:`m_l` are the :func:`node_path_marginals`. The value lies between 1 (all path mass
    goes through one node of the layer) and the width :math:`n_l` (mass spread uniformly), so a
    layer that the paths squeeze through few nodes shows up as a bottleneck. Returns a tensor
    of length ``L + 1`` (``.tolist()`` for plain floats); ``alpha`` as in :func:`path_entropy`.
    """
    alpha = _check_alpha(alpha)
    ms = node_path_marginals(weights, biases, source, target)
    return torch.stack([_probs_entropy(m, alpha).exp() for m in ms])


# --------------------------------------------------------------------------------------------
# Data-dependent path mass: the paths a batch of inputs actually uses
# --------------------------------------------------------------------------------------------

DATA_OBJECTIVES = ("softmin", "sum", "chain", "example")


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


def _check_inputs(x: Tensor, width: int) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor of inputs (B, ...), got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"x must be floating point, got {x.dtype}")
    if x.dim() < 2 or x.shape[0] < 1 or math.prod(x.shape[1:]) != width:
        raise ValueError(f"x must hold a batch of inputs with {width} entries each, shape "
                         f"(B >= 1, ...), got {tuple(x.shape)}")
    return x.detach().reshape(x.shape[0], width)


def _check_gates(gates, ws: list[Tensor], batch: int) -> list[Tensor]:
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
def _relu_gates(ws: list[Tensor], bs: list, x: Tensor) -> list[Tensor]:
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
    ws, bs = _check_params(weights, biases)
    return _relu_gates(ws, bs, _check_inputs(x, ws[0].shape[1]).to(ws[0].device))


def _prepare_data(weights, biases, x, gates):
    ws, bs = _check_params(weights, biases)
    xs = _check_inputs(x, ws[0].shape[1])
    if xs.device != ws[0].device:
        raise ValueError(f"x is on {xs.device}, the weights on {ws[0].device}")
    gs = _relu_gates(ws, bs, xs) if gates is None else _check_gates(gates, ws, xs.shape[0])
    return ws, bs, xs, gs


def _check_layers(layers, n_layers: int) -> list[int]:
    if n_layers < 2:
        raise ValueError("the network has no hidden layer: a batch-level node entropy needs at "
                         "least two linear layers")
    if layers is None:
        return list(range(1, n_layers))
    out = _check_layer_list(layers)
    for l in out:
        if l > n_layers - 1:
            raise ValueError(f"layers must be hidden-layer indices in 1..{n_layers - 1}, got {l}")
    return out


def _check_layer_list(layers) -> list[int]:
    if isinstance(layers, (str, bytes, Tensor)) or not isinstance(layers, Iterable):
        raise TypeError("layers must be None or a sequence of hidden-layer indices")
    out = []
    for l in layers:
        if isinstance(l, bool) or not isinstance(l, numbers.Integral):
            raise TypeError(f"layers must hold ints, got {type(l).__name__}")
        if l < 1:
            raise ValueError(f"layers must be hidden-layer indices >= 1, got {l}")
        out.append(int(l))
    if not out:
        raise ValueError("layers is empty: name at least one hidden layer")
    return out


def _check_tau(tau: float) -> float:
    if isinstance(tau, bool) or not isinstance(tau, numbers.Real):
        raise TypeError(f"tau must be a positive number, got {type(tau).__name__}")
    tau = float(tau)
    if not (math.isfinite(tau) and tau > 0):
        raise ValueError(f"tau must be a finite positive number (nats), got {tau}")
    return tau


def _rescale(v: Tensor) -> tuple[Tensor, Tensor]:
    """Divide each row of ``v`` by its (detached) maximum; rows of zeros are left alone.
    Returns the rescaled rows and the logarithms of the factors."""
    top = v.detach().amax(1, keepdim=True)
    top = top + (top == 0)  # rows of zeros: factor 1
    return v / top, top.log().squeeze(1)


class _DataSums:
    """Per-example forward and backward sums of the gated path mass, rescaled row by row.

    ``f[l]`` (B × n_l) and ``lf[l]`` (B) give :math:`f_l = f[l] \\cdot e^{lf[l]}`; ``t[l]``,
    ``lt[l]`` the same for :math:`t_l` (computed for the layers asked for; ``t[L-1]`` is one row,
    the same for every input). ``log_z`` is :math:`\\log Z_x` (0 where :math:`Z_x = 0`),
    ``weight`` the averaging weight of each input (:math:`1/B'` for the :math:`B'` inputs with
    :math:`Z_x > 0`, else 0, or 1 and 0 with ``normalize=False``) and ``count`` :math:`B'`.
    The factors are constants for autograd; every quantity built from them is exact, because
    they cancel algebraically whatever their values.
    """

    def __init__(self, ws, bs, x, gates, bias_paths: bool, dtype, *, t_from: int = 1,
                 normalize: bool = True, with_s: bool = False) -> None:
        n_layers = len(ws)
        device = ws[0].device
        self.n_layers = n_layers
        self.a = [_cast(w, dtype, device).abs() for w in ws]
        self.b = [None if b is None or not bias_paths else _cast(b, dtype, device).abs()
                  for b in bs]
        self.g = [_cast(g, dtype, device) for g in gates]
        last = n_layers - 1
        f = _cast(x, dtype, device).abs()  # f_0 = |x|, not rescaled (the inputs are finite)
        lf = f.new_zeros(f.shape[0])
        self.f, self.lf = [f], [lf]
        if with_s:  # s_0 = |x| log |x|
            self.s = [_xlogx(f)]
            self.alog = [_xlogx(a) for a in self.a]
            self.blog = [None if b is None else _xlogx(b) for b in self.b]
        for l in range(1, n_layers):
            a, b, g = self.a[l - 1], self.b[l - 1], self.g[l - 1]
            pre = f @ a.T
            if b is not None:
                inv = torch.exp(-lf).unsqueeze(1)
                pre = pre + b * inv
            if with_s:
                s_pre = self.s[-1] @ a.T + f @ self.alog[l - 1].T
                if b is not None:
                    s_pre = s_pre + self.blog[l - 1] * inv
            f, step = _rescale(g * pre)
            lf = lf + step
            self.f.append(f)
            self.lf.append(lf)
            if with_s:
                self.s.append(g * s_pre / step.exp().unsqueeze(1))
        # backward sums: t_L = 1, t_{L-1} = 1^T |W_L| (no gate on the output layer)
        batch = x.shape[0]
        col = self.a[last].sum(0, keepdim=True)
        self.t: list[Tensor | None] = [None] * (n_layers + 1)
        self.lt: list[Tensor | None] = [None] * (n_layers + 1)
        self.t[last] = col
        self.lt[last] = col.new_zeros(batch)
        t = col
        lt = self.lt[last]
        for l in range(last, t_from, -1):  # t_{l-1} = (g_l * t_l) |W_l|
            t, step = _rescale((self.g[l - 1] * t) @ self.a[l - 1])
            lt = lt + step
            self.t[l - 1], self.lt[l - 1] = t, lt
        # Z_x = f_{L-1} . t_{L-1} + sum |b_L|, in units of exp(lf[L-1])
        f_prev = self.f[last]
        z = (f_prev * col).sum(1)
        b_last = self.b[last]
        if b_last is not None:
            z = z + b_last.sum() * torch.exp(-self.lf[last])
        valid = z > 0
        self.log_z = torch.where(valid, torch.where(valid, z, 1.0).log() + self.lf[last], 0.0)
        self.count = valid.sum()
        if normalize:
            self.weight = valid.to(dtype) / self.count.clamp_min(1).to(dtype)
        else:
            self.weight = valid.to(dtype)
        # log(weight_x / Z_x), -inf for inputs without mass (weight is a constant for autograd)
        self._log_wz = torch.where(valid, self.weight.log() - self.log_z, -math.inf)
        if with_s:  # S_x = s_{L-1} . t_{L-1} + f_{L-1} . colsum(|W_L| log |W_L|) + sum b log b
            sz = (self.s[last] * col).sum(1) + (f_prev * self.alog[last].sum(0)).sum(1)
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


def _data_guarded(compute: Callable[..., tuple], ws, bs, x, layers_checked=()) -> list[Tensor]:
    """Run ``compute(dtype) -> (outputs, count, layer_mass)`` with one host sync.

    Raises ``ValueError`` when no input has path mass, when a layer in ``layers_checked`` carries
    none, or for NaN/inf input; retries in float64 when float32 ran out of range.
    """
    dtype = torch.promote_types(_work_dtype(ws, bs), x.dtype)
    out_dtype = torch.promote_types(_out_dtype(ws, bs), x.dtype)
    for attempt in (dtype, torch.float64):
        outputs, count, layer_mass = compute(attempt)
        parts = [count.to(attempt).reshape(1)]
        if layer_mass is not None:
            parts.append(layer_mass.detach().amin().reshape(1))
        parts.append(torch.cat([t.detach().reshape(-1) for t in outputs]).sum().reshape(1))
        probe = torch.cat(parts).tolist()
        mass_ok = layer_mass is None or probe[1] > 0
        if probe[0] > 0 and mass_ok and math.isfinite(probe[-1]):
            return [t if t.dtype == out_dtype else t.to(out_dtype) for t in outputs]
        # something is wrong: find out what (slow path, only on failure)
        _raise_if_nonfinite(ws, bs)
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
    ws, bs, xs, gs = _prepare_data(weights, biases, x, gates)
    n_layers = len(ws)

    def compute(dtype):
        sums = _DataSums(ws, bs, xs, gs, bias_paths, dtype)
        edges = [sums.edge(l) for l in range(1, n_layers + 1)]
        bias_edges = [sums.bias_edge(l) for l in range(1, n_layers + 1)]
        starts = torch.stack([e.sum() for e in bias_edges])  # mass starting at each layer
        # c_l = sum_{k > l} starts_k for l = 0..L-1
        constant = starts.flip(0).cumsum(0).flip(0)
        nodes = [edges[0].sum(0)]
        nodes += [sums.node(l) for l in range(1, n_layers)]
        nodes.append(edges[-1].sum(1) + bias_edges[-1])
        return nodes + [constant] + edges + bias_edges, sums.count, None

    out = _data_guarded(compute, ws, bs, xs)
    k = n_layers + 1
    return DataPathFlows(out[:k], out[k], out[k + 1:k + 1 + n_layers], out[k + 1 + n_layers:])


def _hidden_entropies(sums: _DataSums, layers: list[int], alpha: float) -> tuple[Tensor, Tensor]:
    masses, entropies = [], []
    for l in layers:
        m = sums.node(l)
        total = m.sum()
        masses.append(total)
        entropies.append(_probs_entropy(m / total, alpha))
    return torch.stack(entropies), torch.stack(masses)


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
    ws, bs, xs, gs = _prepare_data(weights, biases, x, gates)
    alpha = _check_alpha(alpha)
    layers = _check_layers(layers, len(ws))

    def compute(dtype):
        sums = _DataSums(ws, bs, xs, gs, bias_paths, dtype, t_from=min(layers))
        h, masses = _hidden_entropies(sums, layers, alpha)
        return [h], sums.count, masses

    return _data_guarded(compute, ws, bs, xs, layers)[0]


def _softmin(h: Tensor, tau: float) -> Tensor:
    return -tau * (torch.logsumexp(-h / tau, 0) - math.log(h.numel()))


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
    ws, bs, xs, gs = _prepare_data(weights, biases, x, gates)
    n_layers = len(ws)

    def compute(dtype):
        sums = _DataSums(ws, bs, xs, gs, bias_paths, dtype)
        edges = [sums.edge(l) for l in range(1, n_layers + 1)]
        bias_edges = [sums.bias_edge(l) for l in range(1, n_layers + 1)]
        starts = torch.stack([e.sum() for e in bias_edges])
        constant = starts.flip(0).cumsum(0).flip(0)  # c_0 .. c_{L-1}
        h = 0.0
        for l in range(1, n_layers + 1):
            parts = [edges[l - 1].reshape(-1), bias_edges[l - 1]]
            if l < n_layers:
                parts.append(constant[l].reshape(1))
                node = torch.cat([sums.node(l), constant[l].reshape(1)])
                h = h - _probs_entropy(node, 1.0)
            h = h + _probs_entropy(torch.cat(parts), 1.0)
        return [h], sums.count, None

    return _data_guarded(compute, ws, bs, xs)[0]


def data_path_example_entropy(
    weights: Sequence[Tensor],
    biases: Sequence[Tensor | None] | None,
    x: Tensor,
    gates: Sequence[Tensor] | None = None,
    *,
    bias_paths: bool = True,
) -> Tensor:
    r"""Mean over the batch of the per-input path entropy :math:`\frac1{B'}\sum_x H(p_x)` (nats).

    Per input, the expectation-semiring recursion of :func:`path_entropy` through the gates:
    :math:`s_l = g_l \odot (|W_l| s_{l-1} + (|W_l| \circ \log|W_l|) f_{l-1} + |b_l| \log|b_l|)`,
    :math:`s_0 = |x| \log|x|`, and :math:`H(p_x) = \log Z_x - \mathbf 1^\top s_L / Z_x`. Inputs
    without path mass are left out. This is *not* a bottleneck objective: it is small when each
    input uses few paths, whichever they are (see the module notes on the data-dependent mass).
    """
    ws, bs, xs, gs = _prepare_data(weights, biases, x, gates)

    def compute(dtype):
        sums = _DataSums(ws, bs, xs, gs, bias_paths, dtype, t_from=len(ws) - 1, with_s=True)
        h = (sums.weight * (sums.log_z - sums.s_over_z)).sum()
        return [h], sums.count, None

    return _data_guarded(compute, ws, bs, xs)[0]


def data_path_objective(
    weights: Sequence[Tensor],
    biases: Sequence[Tensor | None] | None,
    x: Tensor,
    gates: Sequence[Tensor] | None = None,
    *,
    objective: str = "softmin",
    alpha: float = 1.0,
    tau: float = 0.5,
    layers: Sequence[int] | None = None,
    bias_paths: bool = True,
    base: float | None = None,
) -> Tensor:
    r"""A batch-level entropy of the data-dependent path mass, to be minimised (nats or ``base``).

    With :math:`H_l = H_\alpha(\bar m_l)` from :func:`data_node_entropies` over the hidden
    ``layers`` (:math:`K` of them):

    - ``"softmin"`` (recommended): :math:`-\tau \log \frac1K \sum_l e^{-H_l/\tau}`, between
      :math:`\min_l H_l` and :math:`\min_l H_l + \tau \log K`. Its gradient is
      :math:`\sum_l \mathrm{softmax}(-H/\tau)_l \nabla H_l`: it pushes the currently narrowest
      layer, so *one* shared bottleneck forms, wherever the reconstruction allows it, and the
      other layers are free to stay wide. ``tau`` (nats) sets how sharply one layer is chosen.
    - ``"sum"``: :math:`\sum_l H_l`, narrows every layer at once.
    - ``"chain"``: :func:`data_path_chain_entropy` (Shannon), by the chain rule
      :math:`H(\bar m_0) + \sum_l H(I_l \mid I_{l-1})` under :math:`Q`, which is at least
      :math:`H(\bar m_l)` for every :math:`l`, so like the weight-only path entropy it rewards
      narrowing *every* layer, including how many pixels are read and written.
    - ``"example"``: :func:`data_path_example_entropy`, the mean per-input entropy; it rewards
      per-input sparsity, not a shared bottleneck (Shannon).
    """
    if objective not in DATA_OBJECTIVES:
        raise ValueError(f"objective must be one of {DATA_OBJECTIVES}, got {objective!r}")
    alpha = _check_alpha(alpha)
    tau = _check_tau(tau)
    scale = _log_base(base)
    if objective in ("chain", "example"):
        if abs(alpha - 1.0) >= _SHANNON_TOL:
            raise ValueError(f"objective {objective!r} is a Shannon entropy: alpha must be 1, "
                             f"got {alpha}")
        if layers is not None:
            raise ValueError(f"objective {objective!r} covers the whole network; layers must be "
                             "None")
        fn = data_path_chain_entropy if objective == "chain" else data_path_example_entropy
        h = fn(weights, biases, x, gates, bias_paths=bias_paths)
    else:
        hs = data_node_entropies(weights, biases, x, gates, alpha=alpha, layers=layers,
                                 bias_paths=bias_paths)
        h = _softmin(hs, tau) if objective == "softmin" else hs.sum()
    return h / scale if base is not None else h


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
    ws, bs = _check_params(weights, biases)
    alpha = _check_alpha(alpha)
    xs = _check_inputs(x, ws[0].shape[1])
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if gates is not None:
        gates = _check_gates(gates, ws, xs.shape[0])
    n_layers = len(ws)
    totals = None
    count = 0
    for start in range(0, xs.shape[0], batch_size):
        chunk = xs[start:start + batch_size]
        gs = None if gates is None else [g[start:start + batch_size] for g in gates]
        ws_, bs_, chunk, gs = _prepare_data(ws, bs, chunk, gs)

        def compute(dtype, ws_=ws_, bs_=bs_, chunk=chunk, gs=gs):
            sums = _DataSums(ws_, bs_, chunk, gs, bias_paths, dtype, normalize=False)
            nodes = [sums.edge(1).sum(0)]
            nodes += [sums.node(l) for l in range(1, n_layers)]
            nodes.append(sums.edge(n_layers).sum(1) + sums.bias_edge(n_layers))
            return nodes + [sums.count.to(dtype).reshape(1)], sums.count.new_ones(()), None

        out = _data_guarded(compute, ws_, bs_, chunk)
        part = [t.to(torch.float64) for t in out[:-1]]
        totals = part if totals is None else [a + b for a, b in zip(totals, part, strict=True)]
        count += int(out[-1].item())
    if totals is None or count == 0:
        raise ValueError("no input of x has any path mass: effective nodes are undefined")
    out = []
    for m in totals:
        total = m.sum()
        if not total > 0:  # no unit of this layer carries any mass of x
            out.append(total.new_zeros(()))
            continue
        out.append(_probs_entropy(m / total, alpha).exp())
    return torch.stack(out)


# --------------------------------------------------------------------------------------------
# The path entropy as a training-loss term, evaluated only every k-th step
# --------------------------------------------------------------------------------------------

_TERM_MODES = ("reuse", "scale")


class _StoredGradient(torch.autograd.Function):
    """Forward: a copy of ``value``. Backward: the stored ``grads`` times the incoming gradient,
    which is also recorded on ``owner`` (it is the weight the loss gave the term)."""

    @staticmethod
    def forward(ctx, value: Tensor, owner: PathEntropyTerm, grads: tuple[Tensor, ...],
                *params: Tensor) -> Tensor:
        ctx.owner, ctx.grads = owner, grads
        return value.detach().clone()

    @staticmethod
    def backward(ctx, grad_out: Tensor) -> tuple:
        ctx.owner._weight = grad_out.detach()
        return (None, None, None, *torch._foreach_mul(ctx.grads, grad_out))


class PathEntropyTerm:
    r"""The path entropy of a model's ``nn.Linear`` layers as a loss term, computed every k calls.

    ``term(model)`` returns a 0-d tensor to put into a ``loss_fn``'s dict of terms. The exact
    :func:`path_entropy` (with the layers' biases unless ``biases=False``) is computed on the
    first call and then on every ``every``-th call. Two ways to fill the steps in between
    (``mode``):

    - ``"reuse"`` (default): every call returns a tensor whose *value* is the path entropy
      :math:`H(\theta_s)` of the last evaluation (step :math:`s`) and whose *gradient* is
      :math:`\nabla H(\theta_s)`, stored at that evaluation. Every optimiser step thus sees the
      regulariser's gradient, at most ``every - 1`` steps stale.
    - ``"scale"``: an evaluation call returns :math:`H` with gradient
      :math:`\text{every} \cdot \nabla H`, the other calls the last value without gradient. The
      gradient summed over ``every`` steps is the same, which suffices for plain SGD; adaptive
      optimisers such as Adam divide by a running RMS of the gradient, which the spikes inflate
      by about :math:`\sqrt{\text{every}}`, so there the regulariser acts more weakly.

    With ``every=1`` both modes are the plain term ``path_entropy(...)``. The value is always a
    true path entropy (at most ``every - 1`` steps old), so the logged loss stays honest.

    In ``"reuse"`` mode the stored gradient reaches the parameters through an autograd node,
    which costs a dozen small tensor operations per step. :meth:`attach` an optimiser to add it
    in the optimiser's step instead, with one fused operation: the steps between evaluations
    then return the value without gradient, and the optimiser adds ``w`` times the stored
    gradient, where ``w`` is the weight the loss gave the term at the last evaluation (read off
    that step's backward pass). With :func:`entropic_ae.training.train`:
    ``train(..., optimizer=lambda params: term.attach(torch.optim.Adam(params, lr)))``.

    Under ``torch.no_grad()`` (e.g. in :func:`entropic_ae.training.evaluate`) the entropy is
    computed afresh and no call is counted. Call :meth:`reset` at each epoch's end
    (``train(..., callback=lambda epoch, history: term.reset())``) so every epoch starts with an
    evaluation: a run resumed from a checkpoint then takes the same steps as an uninterrupted
    one, and a weight that a schedule changes between epochs is read afresh. Attributes:
    ``calls`` (since the last reset), ``evaluations`` (in all), ``last`` (the detached value of
    the last evaluation).
    """

    def __init__(
        self,
        every: int = 1,
        alpha: float = 1.0,
        biases: bool = True,
        mode: str = "reuse",
        base: float | None = None,
    ) -> None:
        if isinstance(every, bool) or not isinstance(every, int):
            raise TypeError(f"every must be a positive int, got {type(every).__name__}")
        if every < 1:
            raise ValueError(f"every must be a positive int (1 = every step), got {every}")
        if mode not in _TERM_MODES:
            raise ValueError(f"mode must be one of {_TERM_MODES}, got {mode!r}")
        if not isinstance(biases, bool):
            raise TypeError(f"biases must be True or False, got {type(biases).__name__}")
        self.every = every
        self.alpha = _check_alpha(alpha)
        _log_base(base)  # validate
        self.base = base
        self.biases = biases
        self.mode = mode
        self.calls = 0
        self.evaluations = 0
        self.last: Tensor | None = None
        self._since = 0
        self._grads: tuple[Tensor, ...] | None = None
        self._params: list[Tensor] | None = None
        self._model: nn.Module | None = None
        self._weight: Tensor | None = None  # the loss weight, read off an evaluation's backward
        self._scaled: list[Tensor] | None = None  # weight * stored gradient
        self._attached = False
        self._pending = False

    def __repr__(self) -> str:
        return (f"PathEntropyTerm(every={self.every}, alpha={self.alpha}, biases={self.biases}, "
                f"mode={self.mode!r})")

    def reset(self) -> None:
        """Forget the stored value and gradient: the next call evaluates the entropy."""
        self.calls = 0
        self._since = 0
        self.last = None
        self._grads = None
        self._scaled = None
        self._weight = None
        self._pending = False

    def attach(self, optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
        """Let ``optimizer`` add the stored gradient before each step (``"reuse"`` mode only).

        Registers a step pre-hook and returns the optimiser. The optimiser must own the model's
        linear-layer parameters.
        """
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"attach needs a torch Optimizer, got {type(optimizer).__name__}")
        if self.mode != "reuse":
            raise ValueError("attach only applies to mode='reuse'")
        optimizer.register_step_pre_hook(self._inject)
        self._attached = True
        return optimizer

    def _inject(self, optimizer: torch.optim.Optimizer, args: tuple, kwargs: dict) -> None:
        if not self._pending:
            return
        self._pending = False
        if self._scaled is None:
            self._scaled = torch._foreach_mul(self._grads, self._weight)
        for p in self._params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        torch._foreach_add_([p.grad for p in self._params], self._scaled)

    def _entropy(self, model: nn.Module) -> tuple[Tensor, list[Tensor]]:
        ws, bs = linear_params(model)
        h = path_entropy(ws, bs if self.biases else None, alpha=self.alpha, base=self.base)
        params = ws + ([b for b in bs if b is not None] if self.biases else [])
        return h, params

    def __call__(self, model: nn.Module) -> Tensor:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        return self._step(model, lambda: self._entropy(model))

    def _step(self, model: nn.Module,
              evaluate: Callable[[], tuple[Tensor, list[Tensor]]]) -> Tensor:
        """One call: ``evaluate() -> (entropy, params)`` runs only when an evaluation is due."""
        if not torch.is_grad_enabled():
            return evaluate()[0].detach()
        self.calls += 1
        fresh = None
        if self.last is None or model is not self._model or self._since >= self.every:
            self._since = 0
            fresh, params = evaluate()
            self.evaluations += 1
            self.last = fresh.detach()
            self._model, self._params = model, params
            self._scaled = None
            self._weight = None
            self._pending = False
            if self.mode == "reuse":
                grads = torch.autograd.grad(fresh, params, allow_unused=True)
                self._grads = tuple(torch.zeros_like(p) if g is None else g
                                    for p, g in zip(params, grads, strict=True))
        self._since += 1
        if self.mode == "scale":
            if fresh is None:
                return self.last.clone()
            return self.every * fresh - (self.every - 1) * self.last
        if fresh is None and self._attached and self._weight is not None:
            self._pending = True  # the optimiser's pre-hook adds the stored gradient
            return self.last.clone()
        return _StoredGradient.apply(self.last, self, self._grads, *self._params)


def _gates_from_outputs(layer_outputs, n_layers: int) -> list[Tensor]:
    if isinstance(layer_outputs, Tensor) or not isinstance(layer_outputs, Sequence):
        raise TypeError("layer_outputs must be the list [h_0, ..., h_L] of model.layer_outputs(x)")
    if len(layer_outputs) != n_layers + 1:
        raise ValueError(f"layer_outputs must hold {n_layers + 1} tensors [h_0, ..., h_L], got "
                         f"{len(layer_outputs)}")
    return [h.detach() > 0 for h in layer_outputs[1:-1]]


class DataPathEntropyTerm(PathEntropyTerm):
    r"""A batch-level entropy of the *data-dependent* path mass as a loss term, every k calls.

    ``term(model, x)`` returns :func:`data_path_objective` of the model's ``nn.Linear`` layers
    on the batch ``x`` (``objective``, ``alpha``, ``tau``, ``layers``; biases are path sources
    unless ``biases=False``), with the ReLU gates of ``x``: pass
    ``layer_outputs=model.layer_outputs(x)`` to take them from the step's own forward pass
    instead of recomputing them. Evaluation schedule, ``mode`` (``"reuse"``: the stored
    gradient of the last evaluation in every step; ``"scale"``), :meth:`attach`, :meth:`reset`
    and the attributes are those of :class:`PathEntropyTerm`. Between evaluations ``x`` is not
    looked at: the value is that of the last evaluated batch and the gradient was computed on it,
    so the term acts with a gradient at most ``every - 1`` steps (and batches) old.

    Cost (784-64-16-16-16-64-784, batch 128, Adam, one CPU thread, thread CPU time averaged over
    the cycle): one evaluation with its gradient costs about as much as a plain training step
    (~1100 small tensor operations; the two 128 × 784 × 64 products are a sixth of it), so in
    every step the term adds ~130 %; with ``every=10`` and :meth:`attach` ~15 %, with
    ``every=20`` and :meth:`attach` ~7 %.
    """

    def __init__(
        self,
        every: int = 1,
        objective: str = "softmin",
        alpha: float = 1.0,
        tau: float = 0.5,
        biases: bool = True,
        layers: Sequence[int] | None = None,
        mode: str = "reuse",
        base: float | None = None,
    ) -> None:
        super().__init__(every=every, alpha=alpha, biases=biases, mode=mode, base=base)
        if objective not in DATA_OBJECTIVES:
            raise ValueError(f"objective must be one of {DATA_OBJECTIVES}, got {objective!r}")
        if objective in ("chain", "example"):
            if abs(self.alpha - 1.0) >= _SHANNON_TOL:
                raise ValueError(f"objective {objective!r} is a Shannon entropy: alpha must be "
                                 f"1, got {alpha}")
            if layers is not None:
                raise ValueError(f"objective {objective!r} covers the whole network; layers "
                                 "must be None")
        self.objective = objective
        self.tau = _check_tau(tau)
        self.layers = None if layers is None else _check_layer_list(layers)

    def __repr__(self) -> str:
        return (f"DataPathEntropyTerm(every={self.every}, objective={self.objective!r}, "
                f"alpha={self.alpha}, tau={self.tau}, biases={self.biases}, "
                f"layers={self.layers}, mode={self.mode!r})")

    def _data_entropy(self, model: nn.Module, x: Tensor,
                      gates: list[Tensor] | None) -> tuple[Tensor, list[Tensor]]:
        ws, bs = linear_params(model)
        h = data_path_objective(ws, bs, x, gates, objective=self.objective, alpha=self.alpha,
                                tau=self.tau, layers=self.layers, bias_paths=self.biases,
                                base=self.base)
        params = ws + ([b for b in bs if b is not None] if self.biases else [])
        return h, params

    def __call__(self, model: nn.Module, x: Tensor, *,  # type: ignore[override]
                 layer_outputs: Sequence[Tensor] | None = None) -> Tensor:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a torch.Tensor batch of inputs, got {type(x).__name__}")

        def evaluate() -> tuple[Tensor, list[Tensor]]:
            gates = None  # only looked at when an evaluation is due
            if layer_outputs is not None:
                gates = _gates_from_outputs(layer_outputs, len(linear_params(model)[0]))
            return self._data_entropy(model, x, gates)

        return self._step(model, evaluate)
