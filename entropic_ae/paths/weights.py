r"""Exact entropy of the distribution over paths through a network, weighted by its weights.

For the layers of :mod:`~entropic_ae.paths.network` (weights :math:`W_l`, biases :math:`b_l`),
a *path* picks one node per layer, :math:`(i_0, \dots, i_L)`, and has weight

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
from collections.abc import Callable, Iterable, Sequence

import torch

from entropic_ae._checks import check_int
from entropic_ae.paths.network import (
    SHANNON_TOL,
    Tensor,
    cast,
    check_alpha,
    check_base,
    check_node,
    check_params,
    masked_pow,
    out_dtype,
    probs_entropy,
    raise_if_nonfinite,
    sum_log,
    to_base,
    work_dtype,
    xlogx,
)

__all__ = ["count_paths", "effective_nodes", "node_path_marginals", "path_entropy",
           "path_entropy_bruteforce"]


def _prepare(weights, biases, source, target):
    ws, bs = check_params(weights, biases)
    source = check_node(source, ws[0].shape[1], "source", "input")
    target = check_node(target, ws[-1].shape[0], "target", "output")
    return ws, bs, source, target


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
        a = cast(w, dtype, device).abs()
        if b is not None:
            a = a + cast(b, dtype, device).abs().unsqueeze(1)
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


def _shannon(mats: list[Tensor]) -> Tensor:
    """log Z - S/Z via the one-pass recursion for (f, s); see the module docstring."""
    a = mats[0]
    if len(mats) == 1:
        z = a.sum()
        return z.log() - xlogx(a).sum() / z
    # f_0 = 1, s_0 = 0: the first layer is a row sum
    f = a.sum(1)
    s = xlogx(a).sum(1)
    scales = []
    for k, a in enumerate(mats[1:], start=2):
        c = f.detach().amax()
        scales.append(c)
        f = f / c
        s = s / c
        if k < len(mats):
            f, s = a @ f, torch.addmv(a @ s, xlogx(a), f)
        else:
            # only 1^T f_L and 1^T s_L are needed: use column sums (cheaper to differentiate)
            col = a.sum(0)
            z = col @ f
            total_s = col @ s + xlogx(a).sum(0) @ f
    return z.log() + sum_log(scales) - total_s / z


def _log_mass(mats: list[Tensor], alpha: float | None = None) -> Tensor:
    """log of 1^T M_L ... M_1 1 with M_l = A_l (or A_l**alpha), rescaling after each layer."""
    scales = []
    for k, a in enumerate(mats):
        if alpha is not None:
            a = masked_pow(a, alpha)
        if k == 0:
            f = a.sum(1)
        else:
            c = f.detach().amax()
            scales.append(c)
            # the last layer only needs 1^T A f: a column sum is cheaper to differentiate
            f = a @ (f / c) if k < len(mats) - 1 else (a.sum(0) @ (f / c)).unsqueeze(0)
    return f.sum().log() + sum_log(scales)


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
    if abs(alpha - 1.0) < SHANNON_TOL:
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


@torch.no_grad()
def _has_path(ws, bs, source, target) -> bool:
    """Exact test (boolean reachability) whether some path has nonzero weight."""
    mats, _ = _edge_matrices(ws, bs, source, target, torch.float64, torch.device("cpu"), False)
    reach = mats[0].sum(1) > 0
    for a in mats[1:]:
        reach = (a > 0).to(torch.float64) @ reach.to(torch.float64) > 0
    return bool(reach.any())


def _guarded(compute: Callable[..., tuple], ws, bs, source, target) -> list[Tensor]:
    """Run ``compute(dtype, device) -> (tensors, tops)``; check all is finite with one sync.

    On failure, find the cause: non-finite parameters or zero total path mass raise
    ``ValueError``; otherwise the float32 range was exceeded and we retry in float64 (on the
    CPU if the device has no float64, as Apple's MPS).
    """
    dtype = work_dtype(ws, bs)
    result_dtype = out_dtype(ws, bs)
    device = ws[0].device
    tensors, tops = compute(dtype, device)
    # NaN/inf anywhere in the outputs or the matrices makes this probe NaN/inf
    probe = torch.cat([t.detach().reshape(-1) for t in tensors]).sum()
    probe = probe + 0.0 * torch.stack(tops).amax()
    if math.isfinite(probe.item()):
        return [t if t.dtype == result_dtype else t.to(result_dtype) for t in tensors]
    raise_if_nonfinite(ws, bs)
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
            return [t.to(device=device, dtype=result_dtype) for t in tensors]
    raise FloatingPointError(
        "path sums left the floating-point range even in float64; the weights span too many "
        "orders of magnitude"
    )


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
    alpha = check_alpha(alpha)
    check_base(base)

    shannon = abs(alpha - 1.0) < SHANNON_TOL

    def compute(dtype: torch.dtype, device: torch.device) -> tuple[list[Tensor], list[Tensor]]:
        mats, tops = _edge_matrices(ws, bs, source, target, dtype, device, not shannon)
        return [_entropy_nats(mats, alpha)], tops

    (h,) = _guarded(compute, ws, bs, source, target)
    return to_base(h, base)


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
    alpha = check_alpha(alpha)
    check_base(base)
    sizes = [ws[0].shape[1]] + [w.shape[0] for w in ws]
    n_paths = count_paths(sizes, source, target)
    if n_paths > max_paths:
        raise ValueError(
            f"the network has {n_paths} paths, more than max_paths={max_paths}; "
            "brute force is only for small networks (use path_entropy)"
        )
    raise_if_nonfinite(ws, bs)

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
        edge = cast(wl, torch.float64, cpu)[dst, src].abs()
        if bl is not None:
            edge = edge + cast(bl, torch.float64, cpu)[dst].abs()
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
    elif abs(alpha - 1.0) < SHANNON_TOL:
        h = -(p * p.log()).sum()
    else:
        h = (p**alpha).sum().log() / (1.0 - alpha)
    return to_base(h, base)


def count_paths(
    layer_sizes: Sequence[int], source: int | None = None, target: int | None = None
) -> int:
    """Number of paths through node layers of widths ``[n_0, ..., n_L]``: :math:`\\prod_l n_l`.

    With ``source`` (``target``) the first (last) factor is 1. Exact Python int.
    """
    if isinstance(layer_sizes, (str, bytes)) or not isinstance(layer_sizes, Iterable):
        raise TypeError("layer_sizes must be a sequence of positive ints")
    sizes = [check_int(f"layer_sizes[{k}]", n) for k, n in enumerate(layer_sizes)]
    for k, n in enumerate(sizes):
        if n <= 0:
            raise ValueError(f"layer_sizes[{k}] must be positive, got {n}")
    if len(sizes) < 2:
        raise ValueError(
            f"need at least two node layers (input and output), got {len(sizes)} sizes"
        )
    if check_node(source, sizes[0], "source", "input") is not None:
        sizes[0] = 1
    if check_node(target, sizes[-1], "target", "output") is not None:
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
    alpha = check_alpha(alpha)
    ms = node_path_marginals(weights, biases, source, target)
    return torch.stack([probs_entropy(m, alpha).exp() for m in ms])

