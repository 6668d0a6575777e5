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
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Callable, Iterable, Sequence

import torch
from torch import nn

__all__ = [
    "PathEntropyTerm",
    "count_paths",
    "effective_nodes",
    "layer_sizes",
    "linear_params",
    "node_path_marginals",
    "path_entropy",
    "path_entropy_bruteforce",
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
        if not torch.is_grad_enabled():
            return self._entropy(model)[0].detach()
        self.calls += 1
        fresh = None
        if self.last is None or model is not self._model or self._since >= self.every:
            self._since = 0
            fresh, params = self._entropy(model)
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
