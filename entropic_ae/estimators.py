r"""Nearest-neighbour estimates of differential entropy.

The Kozachenko–Leonenko estimator of the differential entropy of a density :math:`q` on
:math:`\mathbb{R}^d` from a sample :math:`z_1, \dots, z_N` is

.. math::

    \hat H(z) = \psi(N) - \psi(k) + \log V_d + \frac{d}{N} \sum_{i=1}^N \log \varepsilon_i,

where :math:`\varepsilon_i` is the Euclidean distance from :math:`z_i` to its :math:`k`-th
nearest neighbour among the other points, :math:`\psi` is the digamma function and
:math:`V_d = \pi^{d/2} / \Gamma(d/2 + 1)` is the volume of the unit ball in :math:`d`
dimensions. The estimate is differentiable in :math:`z` (the neighbour indices are
piecewise constant), which makes it usable as a training loss. Cost: :math:`O(N^2 d)`.
"""

from __future__ import annotations

import math

import torch

from entropic_ae._checks import is_integer, is_real

__all__ = ["kozachenko_leonenko", "log_unit_ball_volume"]


def log_unit_ball_volume(d: int) -> float:
    r""":math:`\log V_d = \frac{d}{2}\log\pi - \log\Gamma(\frac{d}{2} + 1)`."""
    if not is_integer(d) or d < 1:
        raise ValueError(f"dimension d must be a positive int, got {d!r}")
    d = int(d)
    return 0.5 * d * math.log(math.pi) - math.lgamma(0.5 * d + 1.0)


def _digamma(n: int) -> float:
    return float(torch.special.digamma(torch.tensor(float(n), dtype=torch.float64)))


def _power_of_two_rescaling(z: torch.Tensor) -> tuple[torch.Tensor, int]:
    """``(z · 2**-e, e)`` with ``e`` chosen so that the largest |entry| lands in [1, 2) when it
    lies outside [2**(minexp/4), 2**(maxexp/4)] of the dtype (about 1e-10 to 4e9 in float32),
    else ``(z, 0)``. Multiplying by powers of two is exact, so distances scale exactly, and
    their squares neither overflow nor underflow."""
    top = float(z.detach().abs().max())
    info = torch.finfo(z.dtype)
    minexp, maxexp = math.frexp(info.tiny)[1], math.frexp(info.max)[1]  # float32: -125, 128
    if top == 0.0 or 2.0 ** (minexp / 4) <= top <= 2.0 ** (maxexp / 4):
        return z, 0
    e = math.frexp(top)[1] - 1  # top in [2**e, 2**(e+1))
    step = max(1, min(100, maxexp - 2))  # each factor representable in the dtype
    scaled, left = z, -e
    while left:
        k = max(-step, min(step, left))
        scaled = scaled * math.ldexp(1.0, k)
        left -= k
    return scaled, e


def _kth_neighbours(z: torch.Tensor, k: int, block: int = 2048) -> torch.Tensor:
    """Index of each row's k-th nearest other row, searched in row blocks (memory O(block·N))."""
    n = z.shape[0]
    sq_norms = (z * z).sum(dim=1)
    found = []
    for start in range(0, n, block):
        rows = slice(start, min(start + block, n))
        sq_dist = sq_norms[rows, None] + sq_norms[None, :] - 2.0 * (z[rows] @ z.T)
        local = torch.arange(rows.stop - rows.start, device=z.device)
        sq_dist[local, local + start] = math.inf  # a point is not its own neighbour
        found.append(torch.topk(sq_dist, k, dim=1, largest=False).indices[:, k - 1])
    return torch.cat(found)


def kozachenko_leonenko(z: torch.Tensor, k: int = 1, base: float | None = None) -> torch.Tensor:
    r"""Kozachenko–Leonenko estimate of the differential entropy of the rows of ``z`` (N × d).

    :math:`\hat H = \psi(N) - \psi(k) + \log V_d + \frac{d}{N}\sum_i \log\varepsilon_i`
    (nats; ``base=2`` gives bits). Neighbours are found without gradient from all pairwise
    distances (in float64) with the diagonal masked by :math:`+\infty`; each
    :math:`\varepsilon_i` is then recomputed exactly as
    :math:`\lVert z_i - z_{\mathrm{nn}_k(i)}\rVert` so gradients flow.
    Distances are floored at the dtype's smallest normal number, so duplicate rows give a very
    low but finite estimate and finite gradients, never NaN. Samples of very large or very
    small magnitude (e.g. 1e30 in float32, whose squared distances overflow) are first scaled by
    a power of two :math:`2^{-e}`, exactly, and :math:`d\,e\log 2` is added back
    (:math:`\hat H(cz) = \hat H(z) + d\log c`).
    """
    if not isinstance(z, torch.Tensor):
        raise TypeError(f"z must be a torch.Tensor of shape (N, d), got {type(z).__name__}")
    if z.dim() != 2:
        raise ValueError(f"z must have shape (N, d), got {tuple(z.shape)}")
    if not z.is_floating_point():
        raise TypeError(f"z must be a floating-point tensor, got {z.dtype}")
    n, d = z.shape
    if not is_integer(k) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    k = int(k)
    if n <= k:
        raise ValueError(f"need more samples than neighbours: got N={n} rows for k={k}")
    if d < 1:
        raise ValueError("z has zero columns; the entropy of a 0-dimensional sample is undefined")
    if not torch.isfinite(z).all():
        raise ValueError("z contains NaN or infinite entries")

    # Search in float64 where the device has it: in float32 the expanded form |a|²+|b|²−2a·b
    # loses small distances to cancellation (nearest neighbours of 10⁴ points in 1-D are
    # ~1e-4 apart), which picks wrong neighbours and biases the estimate upwards.
    if base is not None and (not is_real(base) or not base > 0 or base == 1
                             or not math.isfinite(base)):
        raise ValueError(f"base must be a positive number other than 1, got {base!r}")
    z, exponent = _power_of_two_rescaling(z)
    search = z.detach()
    if search.device.type != "mps":
        search = search.to(torch.float64)
    neighbours = _kth_neighbours(search, k)
    diff = z - z[neighbours]
    tiny = torch.finfo(z.dtype).tiny
    log_eps = 0.5 * torch.log((diff * diff).sum(dim=1).clamp_min(tiny))
    constant = _digamma(n) - _digamma(k) + log_unit_ball_volume(d)
    estimate = constant + d * log_eps.mean()
    if exponent:
        estimate = estimate + d * exponent * math.log(2.0)
    if base is not None:
        estimate = estimate / math.log(float(base))
    return estimate
