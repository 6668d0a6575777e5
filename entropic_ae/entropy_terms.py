r"""Candidate entropy terms for training at batch size 100, and the instruments that compare them.

Every *term* here is a differentiable function of a batch of codes ``z`` (B × d) returning a
scalar that training **maximises**: larger means closer to :math:`\mathcal N(0, I)` (more
entropy at the moments batch norm fixes). The entropic autoencoder's loss with a term
:math:`T` is :math:`\text{recon} - \beta\,T` (loss term ``neg_entropy`` :math:`= -T`), as for the
paper's Kozachenko–Leonenko estimate and the book's minibatch surrogate, which stay the
reference points (:func:`candidate_terms`). The candidates:

1. :func:`log_det_correlation`, the decorrelation-only ablation
   :math:`\tfrac12\log\det\hat C_\lambda \le 0`, the Gaussian part of the entropy of codes with
   unit variances (the surrogate's log-det part alone);
2. :func:`sliced_gaussianity`, minus a 1-D goodness-of-fit divergence to :math:`\mathcal N(0, 1)`
   averaged over random directions and multiplied by :math:`d`:
   :math:`T = -d\cdot\frac1K\sum_{k=1}^K D(z\theta_k)`, with :math:`D` one of
   :func:`epps_pulley`, :func:`cramer_von_mises` or :func:`wasserstein_to_normal`. The
   projections are *not* standardized, so a direction whose variance differs from 1 (codes
   that are correlated) counts against the term, and by the Cramér–Wold theorem its
   population value is 0 only for :math:`\mathcal N(0, I)`. The factor :math:`d` gives it the
   growth with :math:`d` of a divergence of a product distribution;
3. :func:`entropic_ae.estimators.minibatch_entropy` with more spacings ``m`` and less
   ``shrinkage`` (its own parameters);
4. :class:`QueuedTerm`, any term evaluated on the batch together with the (detached) codes
   of the last ``K`` batches.

The instruments: :func:`ranking_study` and :func:`ranking_table` (does a term order
distributions with the same moments by their true entropy at :math:`B = 100`?),
:func:`term_costs` (seconds of forward and backward), and three checks of why a term works or
not: :func:`part_gradient_norms`, :func:`gradient_alignment` and :func:`hidden_by_whitening`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from scipy import special

from entropic_ae import synthetic
from entropic_ae._checks import check_int, check_matrix, check_real
from entropic_ae.estimators import (
    full_precision,
    kozachenko_leonenko,
    minibatch_entropy,
    minibatch_entropy_parts,
    random_rotation,
)
from entropic_ae.timing import threads
from entropic_ae.verdicts import decide

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "ROTATED",
    "STATISTICS",
    "QueuedTerm",
    "candidate_terms",
    "cramer_von_mises",
    "epps_pulley",
    "gradient_alignment",
    "hidden_by_whitening",
    "log_det_correlation",
    "part_gradient_norms",
    "random_directions",
    "ranking_study",
    "ranking_table",
    "sliced_gaussianity",
    "study_batch",
    "surrogate_part_terms",
    "term_costs",
    "wasserstein_to_normal",
]

Term = Callable[[torch.Tensor], torch.Tensor]


# --- input checks ---------------------------------------------------------------------------------


def _check_codes(z: object, least_rows: int = 2) -> torch.Tensor:
    """``z`` as a float tensor of shape (B, d), float32 for half-precision input."""
    check_matrix("z", z, "B")
    if z.shape[0] < least_rows:
        raise ValueError(f"need a batch of at least {least_rows} codes, got B={z.shape[0]}")
    if z.shape[1] < 1:
        raise ValueError("z has zero columns (d = 0)")
    if not torch.isfinite(z).all():
        raise ValueError("z contains NaN or infinite entries")
    return z.float() if z.dtype in (torch.float16, torch.bfloat16) else z


def _check_sample(x: object) -> torch.Tensor:
    """``x`` of shape (n,) or (n, k) as k rows of n values, (k, n), float32 for half input."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor of shape (n,) or (n, k), got "
                        f"{type(x).__name__}")
    if x.dim() not in (1, 2):
        raise ValueError(f"x must have shape (n,) or (n, k), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {x.dtype}")
    if x.shape[0] < 2:
        raise ValueError(f"need at least 2 values per sample, got n={x.shape[0]}")
    if not torch.isfinite(x).all():
        raise ValueError("x contains NaN or infinite entries")
    x = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    return x.reshape(x.shape[0], -1).T.contiguous()


def _check_generator(generator: object) -> torch.Generator | None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got "
                        f"{type(generator).__name__}")
    return generator


# --- 1. decorrelation only -----------------------------------------------------------------------


@full_precision
def log_det_correlation(z: torch.Tensor, *, shrinkage: float | None = None) -> torch.Tensor:
    r""":math:`\tfrac12\log\det\hat C_\lambda` of a batch of codes ``z`` (B × d), with
    :math:`\hat C = \hat z^\top\hat z/B` the batch correlation of the standardized codes and
    :math:`\hat C_\lambda = (1-\lambda)\hat C + \lambda I` (``shrinkage`` :math:`\lambda`,
    default :math:`d/(d+B)`, as :func:`~entropic_ae.estimators.minibatch_entropy`).

    At most 0 (Hadamard: :math:`\hat C_\lambda` has a unit diagonal), 0 iff the batch is
    exactly uncorrelated; it is :math:`h(\mathcal N(0, \hat C)) - \tfrac d2\log(2\pi e)`, the
    Gaussian part of the entropy at unit variances. It cannot see the shape of the marginals:
    every product distribution scores alike. Equal to the surrogate's ``log_det`` part
    (:func:`~entropic_ae.estimators.minibatch_entropy_parts`). Cost :math:`O(d^2B + d^3)`.
    """
    x = _check_codes(z, least_rows=3)
    b, d = x.shape
    lam = d / (d + b) if shrinkage is None else check_real("shrinkage", shrinkage, ge=0.0, lt=1.0)
    tiny = torch.finfo(x.dtype).tiny
    centred = x - x.mean(dim=0)
    zhat = centred / centred.pow(2).mean(dim=0).clamp_min(tiny).sqrt()
    corr = ((1.0 - lam) / b) * (zhat.T @ zhat)
    corr.diagonal().add_(lam)
    chol, info = torch.linalg.cholesky_ex(corr)
    if int(info) != 0:
        raise ValueError(f"the batch correlation is singular (B={b}, d={d}); use shrinkage > 0")
    return torch.log(torch.diagonal(chol)).sum().to(z.dtype)


# --- 2. one-dimensional goodness of fit to N(0, 1), sliced ---------------------------------------


def random_directions(d: int, n: int, *, generator: torch.Generator | None = None,
                      dtype: torch.dtype = torch.float32,
                      device: torch.device | str | None = None) -> torch.Tensor:
    r"""``n`` independent directions uniform on the unit sphere of :math:`\mathbb R^d`, as the
    columns of a :math:`d \times n` matrix: standard Gaussian vectors divided by their norms,
    drawn from ``generator`` (on its own device, then moved to ``device``) or from torch's
    global generator."""
    d, n = check_int("d", d, 1), check_int("n", n, 1)
    generator = _check_generator(generator)
    if generator is None:
        g = torch.randn(d, n, dtype=dtype, device=device)
    else:
        g = torch.randn(d, n, dtype=dtype, device=generator.device, generator=generator)
        g = g if device is None else g.to(device)
    return g / g.norm(dim=0, keepdim=True).clamp_min(torch.finfo(dtype).tiny)


def _sorted_rows(rows: torch.Tensor) -> torch.Tensor:
    """Each row sorted ascending, differentiably (the order found without gradient; on the CPU
    by NumPy's argsort, which with a gather is faster than torch's sort and its backward)."""
    det = rows.detach()
    if det.device.type == "cpu" and det.dtype in (torch.float32, torch.float64):
        order = torch.from_numpy(np.argsort(det.numpy(), axis=1))
    else:
        order = torch.argsort(det, dim=1)
    return torch.gather(rows, 1, order)


def _gaussian_kernel_block(rows: torch.Tensor, s2: float) -> torch.Tensor:
    """:math:`e^{-s^2(x_j - x_k)^2/2}` for every pair of values of each row (k × n × n)."""
    diff = rows[:, :, None] - rows[:, None, :]
    return torch.exp(diff.square_().mul_(-0.5 * s2))


class _PairMean(torch.autograd.Function):
    r""":math:`\frac1{n^2}\sum_{j,k} e^{-s^2(x_j-x_k)^2/2}` per row, with the kernel matrix
    computed in blocks of rows, never stored, and recomputed for the gradient
    :math:`-\frac{2s^2}{n^2}\bigl(x_j\sum_k E_{jk} - \sum_k E_{jk}x_k\bigr)`; memory
    :math:`O(\text{block}\cdot n^2)`. First derivatives only."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, rows: torch.Tensor,
                s2: float) -> torch.Tensor:
        n = rows.shape[1]
        block = max(1, 2**18 // (n * n))
        ctx.save_for_backward(rows)
        ctx.s2, ctx.block = s2, block
        sums = [_gaussian_kernel_block(rows[i:i + block], s2).sum(dim=(1, 2))
                for i in range(0, rows.shape[0], block)]
        return torch.cat(sums) / (n * n)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: torch.autograd.function.FunctionCtx,
                 grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (rows,) = ctx.saved_tensors
        n = rows.shape[1]
        out = []
        for i in range(0, rows.shape[0], ctx.block):
            r = rows[i:i + ctx.block]
            e = _gaussian_kernel_block(r, ctx.s2)
            out.append(r * e.sum(dim=2) - torch.bmm(e, r.unsqueeze(2)).squeeze(2))
        return torch.cat(out) * (grad[:, None] * (-2.0 * ctx.s2 / (n * n))), None


def epps_pulley(x: torch.Tensor, width: float = 1.0) -> torch.Tensor:
    r"""Epps–Pulley divergence of each column of ``x`` (n, or n × k) from :math:`\mathcal N(0, 1)`:
    :math:`D = \int |\varphi_n(t) - e^{-t^2/2}|^2\, w(t)\,dt` with the empirical characteristic
    function :math:`\varphi_n(t) = \frac1n\sum_j e^{itx_j}` and the Gaussian weight
    :math:`w = \mathcal N(0, s^2)` (:math:`s` = ``width``). In closed form

    .. math:: D = \frac1{n^2}\sum_{j,k} e^{-s^2(x_j-x_k)^2/2}
              - \frac{2}{n\sqrt{1+s^2}}\sum_j e^{-s^2x_j^2/(2(1+s^2))} + \frac1{\sqrt{1+2s^2}},

    a squared maximum mean discrepancy with a Gaussian kernel; the textbook test statistic is
    :math:`nD`. Under :math:`\mathcal N(0, 1)` exactly
    :math:`\mathbb E D = (1 - (1+2s^2)^{-1/2})/n`. Smooth in :math:`x` (first derivatives
    only: the double sum has a hand-written backward). Cost :math:`O(kn^2)`, memory
    :math:`O(kn)`: for batches, not for large samples.
    """
    rows = _check_sample(x)
    s2 = check_real("width", width, gt=0.0) ** 2
    pair = _PairMean.apply(rows, s2)
    cross = torch.exp(rows.pow(2) * (-0.5 * s2 / (1.0 + s2))).mean(dim=1) / math.sqrt(1.0 + s2)
    value = pair - 2.0 * cross + 1.0 / math.sqrt(1.0 + 2.0 * s2)
    return value.reshape(x.shape[1:]).to(x.dtype)


def cramer_von_mises(x: torch.Tensor) -> torch.Tensor:
    r"""Cramér–von Mises divergence of each column of ``x`` (n, or n × k) from
    :math:`\mathcal N(0, 1)`: :math:`D = \int (F_n - \Phi)^2\, d\Phi
    = \frac1{12n^2} + \frac1n\sum_{i=1}^n \bigl(\Phi(x_{(i)}) - \tfrac{2i-1}{2n}\bigr)^2`
    (the textbook statistic is :math:`W^2 = nD`; under :math:`\mathcal N(0, 1)`,
    :math:`\mathbb E D = 1/(6n)`). Differentiable almost everywhere, through the sort.
    Cost :math:`O(kn\log n)`."""
    rows = _check_sample(x)
    n = rows.shape[1]
    grid = (2.0 * torch.arange(1, n + 1, dtype=rows.dtype, device=rows.device) - 1.0) / (2.0 * n)
    u = torch.special.ndtr(_sorted_rows(rows))
    value = (u - grid).pow(2).mean(dim=1) + 1.0 / (12.0 * n * n)
    return value.reshape(x.shape[1:]).to(x.dtype)


@functools.lru_cache(maxsize=64)
def _normal_bin_means(n: int) -> tuple[np.ndarray, float]:
    r"""The means :math:`\mu_i = n\,[\phi(\Phi^{-1}(\tfrac{i-1}n)) - \phi(\Phi^{-1}(\tfrac in))]` of
    :math:`\mathcal N(0, 1)` on its n quantile bins, and the within-bin variance
    :math:`1 - \frac1n\sum_i\mu_i^2` (float64)."""
    edges = special.ndtri(np.arange(n + 1) / n)  # -inf, ..., +inf
    pdf = np.exp(-0.5 * edges**2) / math.sqrt(2.0 * math.pi)  # 0 at both infinities
    means = n * (pdf[:-1] - pdf[1:])
    return means, float(1.0 - np.mean(means**2))


def wasserstein_to_normal(x: torch.Tensor) -> torch.Tensor:
    r"""Squared 2-Wasserstein distance of the empirical distribution of each column of ``x``
    (n, or n × k) to :math:`\mathcal N(0, 1)`, exactly:
    :math:`W_2^2 = \int_0^1 (F_n^{-1}(u) - \Phi^{-1}(u))^2\,du
    = \frac1n\sum_i (x_{(i)} - \mu_i)^2 + 1 - \frac1n\sum_i\mu_i^2`, with :math:`\mu_i` the mean
    of :math:`\mathcal N(0, 1)` on its :math:`i`-th quantile bin
    :math:`[\Phi^{-1}(\frac{i-1}n), \Phi^{-1}(\frac in)]`. Its gradient moves each sorted value
    towards :math:`\mu_i`. Differentiable almost everywhere, through the sort. Cost
    :math:`O(kn\log n)`."""
    rows = _check_sample(x)
    means, within = _normal_bin_means(rows.shape[1])
    mu = torch.as_tensor(means, dtype=rows.dtype, device=rows.device)
    value = (_sorted_rows(rows) - mu).pow(2).mean(dim=1) + within
    return value.reshape(x.shape[1:]).to(x.dtype)


#: The 1-D divergences from N(0, 1) that :func:`sliced_gaussianity` can slice, by name.
STATISTICS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "epps-pulley": epps_pulley,
    "cramer-von-mises": cramer_von_mises,
    "wasserstein": wasserstein_to_normal,
}


@full_precision
def sliced_gaussianity(z: torch.Tensor, statistic: str = "epps-pulley", *,
                       directions: int = 64, axes: bool = False,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Minus ``d`` times the mean 1-D divergence from :math:`\mathcal N(0, 1)` of the
    projections of the codes ``z`` (B × d) on random directions:
    :math:`T(z) = -\frac dK\sum_{k=1}^K D(z\theta_k)`, with :math:`K` = ``directions`` fresh
    directions uniform on the sphere (:func:`random_directions`, from ``generator`` or torch's
    global generator) and :math:`D` the divergence ``statistic`` (a key of
    :data:`STATISTICS`: ``"epps-pulley"``, ``"cramer-von-mises"``, ``"wasserstein"``). With
    ``axes`` the :math:`d` coordinate axes are added to the random directions
    (:math:`K \to K + d`).

    To be maximised; at most 0 in the population, and 0 only for :math:`\mathcal N(0, I)`
    (Cramér–Wold: every projection :math:`\mathcal N(0, 1)`); at finite :math:`B` a Gaussian batch
    scores slightly below 0 (:math:`\mathbb E D = O(1/B)`). The projections are not
    standardized: codes that are correlated have directions with variance
    :math:`\theta^\top\hat C\theta \ne 1`, which the divergence sees. Random projections of many
    independent non-Gaussian coordinates are nearly Gaussian (central limit theorem), which is
    what ``axes`` is for.
    """
    x = _check_codes(z)
    if not isinstance(statistic, str) or statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {sorted(STATISTICS)}, got {statistic!r}")
    directions = check_int("directions", directions, 0 if axes else 1)
    if not isinstance(axes, bool):
        raise TypeError(f"axes must be a bool, got {axes!r}")
    d = x.shape[1]
    parts = [x] if axes else []
    if directions:
        theta = random_directions(d, directions, generator=_check_generator(generator),
                                  dtype=x.dtype, device=x.device)
        parts.append(x @ theta)
    projections = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
    return (-d * STATISTICS[statistic](projections).mean()).to(z.dtype)


# --- 4. a queue of recent codes ------------------------------------------------------------------


class QueuedTerm:
    r"""A term evaluated on the current batch stacked on the codes of the last ``batches``
    batches: :math:`T([z;\ z_{t-1};\ \dots;\ z_{t-K}])`, where only the current codes ``z``
    carry a gradient (the stored ones are detached copies).

    Calling it with codes that require a gradient, with gradients enabled (a training step),
    stores them afterwards and drops the oldest batch beyond ``batches``; other calls (no
    gradient, evaluation) leave the queue alone. :meth:`push` and :meth:`reset` manage it by
    hand. The queue is not part of a model's state: a resumed run starts with it empty.

    **Interaction with batch norm, and the bias.** Each stored batch was standardized with its
    own batch statistics, so with equal batch sizes the pool still has mean 0 and biased
    variance 1 in every coordinate exactly (the averages of the batches' zeros and ones): a
    term that standardizes its input sees the same moments as before. But the pool is not an
    i.i.d. sample of :math:`(K+1)B` codes: (a) every batch is centred and scaled on its own,
    which removes the batch-to-batch spread of means and variances that an i.i.d. pool would
    show (a small effect, :math:`O(1/B)` per coordinate); (b) the stored codes come from
    encoders up to :math:`K` steps old, so the term measures a mixture of the current and
    recent code distributions, and, since only the current batch moves, its gradient pushes the
    current codes to fill what the older ones lack (like the queue of momentum contrast; keep
    :math:`K` small against the number of steps over which the codes change); (c) the pooled
    term spreads its gradient over :math:`(K+1)B` codes, so the systematic force on each
    current code is about :math:`1/(K+1)` of the same term on the batch alone: multiply
    :math:`\beta` by about :math:`K+1` to compare at equal force. For spacing and
    nearest-neighbour estimates the pull of each code's close neighbours does not shrink with
    the pool, so their gradient on the current batch becomes mostly that pull
    (:func:`gradient_alignment`); for the sorted-quantile statistics it does not.
    """

    def __init__(self, term: Term, batches: int) -> None:
        if not callable(term):
            raise TypeError(f"term must be callable (codes -> scalar), got {type(term).__name__}")
        self.term = term
        self.batches = check_int("batches", batches, 1)
        self._queue: list[torch.Tensor] = []

    def __len__(self) -> int:
        """The number of stored batches."""
        return len(self._queue)

    def push(self, z: torch.Tensor) -> None:
        """Store a detached copy of ``z`` (B × d), dropping the oldest batch beyond
        ``batches``; a batch of another code size is refused."""
        z = _check_codes(z)
        if self._queue and self._queue[0].shape[1] != z.shape[1]:
            raise ValueError(f"codes of size {z.shape[1]} do not match the queue's "
                             f"{self._queue[0].shape[1]}")
        self._queue.append(z.detach().clone())
        del self._queue[:-self.batches]

    def reset(self) -> None:
        """Empty the queue."""
        self._queue.clear()

    def codes(self) -> torch.Tensor | None:
        """The stored codes, oldest first (None while empty)."""
        return torch.cat(self._queue) if self._queue else None

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        x = _check_codes(z)
        stored = self.codes()
        if stored is not None and stored.shape[1] != x.shape[1]:
            raise ValueError(f"codes of size {x.shape[1]} do not match the queue's "
                             f"{stored.shape[1]}")
        pooled = z if stored is None else torch.cat([z, stored.to(z.device, z.dtype)])
        value = self.term(pooled)
        if z.requires_grad and torch.is_grad_enabled():
            self.push(z)
        return value


# --- the candidates, named -----------------------------------------------------------------------


def candidate_terms(seed: int = 0, *, directions: int = 64, history: int = 9,
                    small_shrinkage: float = 0.01) -> dict[str, Term]:
    r"""The terms of the chapter by name, each a function of a batch of codes returning the
    value to maximise, with its own ``torch.Generator`` (seeded from ``seed``) where it draws
    random directions, so that a study is reproducible:

    - ``KL (paper)``: :func:`~entropic_ae.estimators.kozachenko_leonenko` (k = 1);
    - ``surrogate``: :func:`~entropic_ae.estimators.minibatch_entropy` at its defaults
      (:math:`m = 2`, :math:`\lambda = d/(d+B)`, axes and one rotation);
    - ``surrogate, axes only`` (``rotate=False``); ``surrogate m=4``, ``surrogate m=8``;
      ``surrogate λ=0.01`` (``small_shrinkage``) and ``surrogate m=8, λ=0.01``;
    - ``log det``: :func:`log_det_correlation` (decorrelation only);
    - ``sliced EP``, ``sliced CvM``, ``sliced W2``: :func:`sliced_gaussianity` with
      ``directions`` random directions, and the same ``+ axes``;
    - ``surrogate + queue``, ``sliced W2 + axes + queue``: :class:`QueuedTerm` with
      ``history`` stored batches (fresh, empty queues: fill them before use).
    """
    seed = check_int("seed", seed, 0)
    directions = check_int("directions", directions, 1)
    history = check_int("history", history, 1)
    lam = check_real("small_shrinkage", small_shrinkage, gt=0.0, lt=1.0)
    gens = [torch.Generator().manual_seed(seed + i) for i in range(16)]
    terms: dict[str, Term] = {
        "KL (paper)": kozachenko_leonenko,
        "surrogate": functools.partial(minibatch_entropy, generator=gens[0]),
        "surrogate, axes only": functools.partial(minibatch_entropy, rotate=False),
        "surrogate m=4": functools.partial(minibatch_entropy, m=4, generator=gens[1]),
        "surrogate m=8": functools.partial(minibatch_entropy, m=8, generator=gens[2]),
        f"surrogate λ={lam:g}": functools.partial(minibatch_entropy, shrinkage=lam,
                                                  generator=gens[3]),
        f"surrogate m=8, λ={lam:g}": functools.partial(minibatch_entropy, m=8, shrinkage=lam,
                                                       generator=gens[4]),
        "log det": log_det_correlation,
    }
    short = {"epps-pulley": "EP", "cramer-von-mises": "CvM", "wasserstein": "W2"}
    for i, (statistic, name) in enumerate(short.items()):
        for j, axes in enumerate((False, True)):
            terms[f"sliced {name}" + (" + axes" if axes else "")] = functools.partial(
                sliced_gaussianity, statistic=statistic, directions=directions, axes=axes,
                generator=gens[5 + 2 * i + j])
    terms["surrogate + queue"] = QueuedTerm(
        functools.partial(minibatch_entropy, generator=gens[11]), history)
    terms["sliced W2 + axes + queue"] = QueuedTerm(
        functools.partial(sliced_gaussianity, statistic="wasserstein", directions=directions,
                          axes=True, generator=gens[12]), history)
    return terms


def surrogate_part_terms(seed: int = 0, **kwargs: object) -> dict[str, Term]:
    """The surrogate's ``log_det``, ``axes`` and ``rotated`` parts
    (:func:`~entropic_ae.estimators.minibatch_entropy_parts`, with ``kwargs``) as separate
    terms named ``surrogate: <part>``, each with its own generator seeded from ``seed``, for
    comparing what each part sees."""
    seed = check_int("seed", seed, 0)
    out = {}
    for i, part in enumerate(("log_det", "axes", "rotated")):
        gen = torch.Generator().manual_seed(seed + i)

        def term(z: torch.Tensor, part: str = part, gen: torch.Generator = gen) -> torch.Tensor:
            return minibatch_entropy_parts(z, generator=gen, **kwargs)[part]

        out[f"surrogate: {part}"] = term
    return out


# --- the synthetic ranking study -----------------------------------------------------------------

#: Product kinds whose samples :func:`study_batch` turns by a fixed random rotation: the same
#: entropy as the product, but the non-Gaussian directions no longer lie on the axes.
ROTATED = ("rotated-uniform", "rotated-two-bump")
_STUDY_PARAMS = {"correlated-gaussian": {"rho": 0.2}}


def _kind_code(kind: str) -> int:
    if kind in synthetic.KINDS:
        return synthetic.KINDS.index(kind)
    if kind in ROTATED:
        return 100 + ROTATED.index(kind)
    raise ValueError(f"kind must be one of {synthetic.KINDS + ROTATED}, got {kind!r}")


def study_batch(kind: str, batch_size: int, d: int, seed: int, repeat: int,
                extra: int = 0) -> torch.Tensor:
    r"""The batch-normalised float32 batch ``repeat`` of a ``kind`` in the study (``extra`` > 0:
    the ``extra``-th earlier batch a queue holds). For the kinds of
    :mod:`entropic_ae.synthetic` and ``extra = 0`` it is exactly the batch
    :func:`entropic_ae.synthetic.estimator_study` draws (``correlated-gaussian`` here with
    :math:`\rho = 0.2`); ``rotated-*`` kinds are the product times a Haar rotation fixed by
    ``(seed, d)``."""
    code = _kind_code(kind)
    words = [seed, code, batch_size, d, repeat] + ([extra] if extra else [])
    state = int(np.random.SeedSequence(words).generate_state(1)[0])
    base = kind.removeprefix("rotated-") if kind in ROTATED else kind
    z = synthetic.sample(base, batch_size, d, seed=state, dtype=torch.float32,
                         **_STUDY_PARAMS.get(base, {}))
    if kind in ROTATED:
        rotation_seed = np.random.SeedSequence([seed, d, 7]).generate_state(1)[0]
        gen = torch.Generator().manual_seed(int(rotation_seed))
        z = z @ random_rotation(d, gen, dtype=torch.float32)
    return synthetic.batch_normalise(z)


def _truth(kind: str, d: int) -> float:
    base = kind.removeprefix("rotated-") if kind in ROTATED else kind
    return synthetic.entropy(base, d, **_STUDY_PARAMS.get(base, {}))


def ranking_study(terms: Mapping[str, Term], *,
                  kinds: Sequence[str] = ("gaussian", "laplace", "uniform", "two-bump"),
                  dims: Sequence[int] = (16, 128), batch_size: int = 100, repeats: int = 10,
                  seed: int = 0) -> pd.DataFrame:
    """Every term on ``repeats`` batch-normalised batches (:func:`study_batch`) of each kind and
    dimension: a DataFrame with columns ``term, kind, d, repeat, value, truth`` (``truth``: the
    exact entropy of the kind). A :class:`QueuedTerm` is emptied and filled with ``batches``
    earlier batches of the same kind before each evaluation. Values are computed without
    gradient; a non-finite value raises."""
    import pandas as pd  # noqa: F811 - at call time only: importing this module stays light

    if not isinstance(terms, Mapping) or not terms:
        raise TypeError("terms must be a non-empty mapping of names to callables")
    for name, fn in terms.items():
        if not callable(fn):
            raise TypeError(f"term {name!r} is not callable")
    kinds = list(kinds)
    for kind in kinds:
        _kind_code(kind)
    dims = [check_int("dimension", d, 1) for d in dims]
    batch_size = check_int("batch_size", batch_size, 3)
    repeats = check_int("repeats", repeats, 2)
    seed = check_int("seed", seed, 0)
    rows = []
    for kind in kinds:
        for d in dims:
            truth = _truth(kind, d)
            for r in range(repeats):
                z = study_batch(kind, batch_size, d, seed, r)
                for name, fn in terms.items():
                    if isinstance(fn, QueuedTerm):
                        fn.reset()
                        for j in range(fn.batches, 0, -1):
                            fn.push(study_batch(kind, batch_size, d, seed, r, extra=j))
                    with torch.no_grad():
                        value = float(fn(z))
                    if not math.isfinite(value):
                        raise ValueError(f"term {name!r} returned {value} for {kind}, d={d}")
                    rows.append({"term": name, "kind": kind, "d": d, "repeat": r,
                                 "value": value, "truth": truth})
    return pd.DataFrame(rows, columns=["term", "kind", "d", "repeat", "value", "truth"])


def ranking_table(study: pd.DataFrame, k: float = 2.0) -> pd.DataFrame:
    r"""Per term and dimension of a :func:`ranking_study`: the mean and sd of the value per
    kind (columns ``<kind> mean``, ``<kind> sd``) and the verdicts on its ordering, each pair
    judged by the book's rule (:func:`entropic_ae.verdicts.decide`, higher is better, spread
    :math:`k` pooled sds): ``gaussian first`` (the Gaussian beats every other kind),
    ``pairs right`` / ``pairs reversed`` / ``pairs`` (pairs of kinds whose true entropies
    differ by more than 1e-9, ordered as their truths / significantly the wrong way / in all),
    ``ranks right`` (every pair right) and ``power`` (the smallest effect of the Gaussian over
    another kind in pooled sds, :math:`k\cdot\text{effect}/\text{spread}`; negative when a
    kind scores above the Gaussian)."""
    import pandas as pd  # noqa: F811

    need = {"term", "kind", "d", "value", "truth"}
    if not isinstance(study, pd.DataFrame) or not need <= set(study.columns):
        raise ValueError(f"study must be a ranking_study DataFrame with columns {sorted(need)}")
    out = []
    for (term, d), cell in study.groupby(["term", "d"], sort=False):
        kinds = list(dict.fromkeys(cell["kind"]))
        values = {kd: cell.loc[cell["kind"] == kd, "value"].to_numpy() for kd in kinds}
        truth = {kd: float(cell.loc[cell["kind"] == kd, "truth"].iloc[0]) for kd in kinds}
        row: dict[str, object] = {"term": term, "d": int(d)}
        for kd in kinds:
            row[f"{kd} mean"] = float(values[kd].mean())
            row[f"{kd} sd"] = float(values[kd].std(ddof=1))
        right = reversed_ = total = 0
        for i, a in enumerate(kinds):
            for b in kinds[i + 1:]:
                if abs(truth[a] - truth[b]) <= 1e-9:
                    continue
                hi, lo = (a, b) if truth[a] > truth[b] else (b, a)
                verdict = decide(values[hi], values[lo], lower_is_better=False, k=k).verdict
                total += 1
                right += verdict == "holds"
                reversed_ += verdict == "does not hold"
        if "gaussian" in kinds and len(kinds) > 1:
            others = [decide(values["gaussian"], values[kd], lower_is_better=False, k=k)
                      for kd in kinds if kd != "gaussian"]
            row["gaussian first"] = all(o.verdict == "holds" for o in others)
            row["power"] = min(k * o.effect / o.spread if o.spread > 0 else math.copysign(
                math.inf, o.effect) for o in others)
        row.update({"pairs right": right, "pairs reversed": reversed_, "pairs": total,
                    "ranks right": right == total})
        out.append(row)
    return pd.DataFrame(out)


# --- costs ---------------------------------------------------------------------------------------


def term_costs(terms: Mapping[str, Term], *, dims: Sequence[int] = (16, 128),
               batch_size: int = 100, repeats: int = 30, seed: int = 0,
               step_seconds: float | None = None) -> pd.DataFrame:
    """Median seconds of one forward and backward pass of each term on a random batch of
    ``batch_size`` standard normal codes, on one CPU thread: columns ``term, d, seconds`` and,
    given ``step_seconds`` (a training step, e.g.
    ``entropic_ae.bench.step_seconds("EAE", width=0.0625)``), ``share`` (seconds /
    step_seconds). After two warm-up rounds the terms take turns, one call each per round, for
    ``repeats`` rounds, so that a busy machine slows all of them alike; a :class:`QueuedTerm`
    is first filled with ``batches`` batches. Wall-clock medians: they vary with the machine
    and its load."""
    import time

    import pandas as pd  # noqa: F811

    dims = [check_int("dimension", d, 1) for d in dims]
    batch_size = check_int("batch_size", batch_size, 3)
    repeats = check_int("repeats", repeats, 1)
    gen = torch.Generator().manual_seed(check_int("seed", seed, 0))
    runs = []
    for name, fn in terms.items():
        for d in dims:
            z = torch.randn(batch_size, d, generator=gen).requires_grad_(True)
            queue = None
            if isinstance(fn, QueuedTerm):
                queue = [torch.randn(batch_size, d, generator=gen) for _ in range(fn.batches)]
            runs.append((name, d, fn, z, queue))
    times: list[list[float]] = [[] for _ in runs]
    with threads(1):
        for round_ in range(repeats + 2):
            for k, (_, _, fn, z, queue) in enumerate(runs):
                if queue is not None:  # the queue holds the batches of this code size
                    fn.reset()
                    for q in queue:
                        fn.push(q)
                start = time.perf_counter()
                fn(z).backward()
                if round_ >= 2:
                    times[k].append(time.perf_counter() - start)
    table = pd.DataFrame([{"term": name, "d": d, "seconds": float(np.median(t))}
                          for (name, d, *_), t in zip(runs, times, strict=True)],
                         columns=["term", "d", "seconds"])
    if step_seconds is not None:
        table["share"] = table["seconds"] / check_real("step_seconds", step_seconds, gt=0.0)
    return table


# --- why a term works or not ---------------------------------------------------------------------


def _encoder_gradient(term: Term, z: torch.Tensor) -> torch.Tensor:
    """The gradient the encoder's output ``h`` gets from ``term(batch_normalise(h))`` at a
    batch-normalised ``h = z`` (float64): batch norm's backward removes each column's mean and
    scale components, which the codes cannot change."""
    h = z.detach().to(torch.float64).requires_grad_(True)
    (grad,) = torch.autograd.grad(term(synthetic.batch_normalise(h)), h)
    return grad


def part_gradient_norms(*, kinds: Sequence[str] = ("gaussian", "uniform", "two-bump",
                                                  "correlated-gaussian"),
                        dims: Sequence[int] = (16, 128), shrinkages: Sequence[float | None] = (
                            None, 0.01), m: int | None = None, batch_size: int = 100,
                        repeats: int = 10, seed: int = 0) -> pd.DataFrame:
    r"""Frobenius norm of the gradient that each part of the surrogate
    (:func:`~entropic_ae.estimators.minibatch_entropy_parts`: ``log_det``, ``axes``,
    ``rotated``) sends to the encoder's output through batch norm, on the study's batches
    (:func:`study_batch`), for each ``shrinkage`` (None: :math:`d/(d+B)`). Columns
    ``kind, d, shrinkage, part, repeat, norm``; ``shrinkage`` is the value used."""
    import pandas as pd  # noqa: F811

    rows = []
    for kind in kinds:
        for d in dims:
            for lam in shrinkages:
                used = d / (d + batch_size) if lam is None else float(lam)
                for r in range(check_int("repeats", repeats, 1)):
                    z = study_batch(kind, batch_size, d, seed, r)
                    for part in ("log_det", "axes", "rotated"):
                        def fn(x: torch.Tensor, part: str = part, r: int = r,
                               used: float = used) -> torch.Tensor:
                            gen = torch.Generator().manual_seed(seed + r)
                            return minibatch_entropy_parts(x, m=m, shrinkage=used,
                                                           generator=gen)[part]

                        norm = float(_encoder_gradient(fn, z).norm())
                        rows.append({"kind": kind, "d": d, "shrinkage": used, "part": part,
                                     "repeat": r, "norm": norm})
    return pd.DataFrame(rows, columns=["kind", "d", "shrinkage", "part", "repeat", "norm"])


def _transport_direction(z: torch.Tensor) -> torch.Tensor:
    """Per column, the move of each code to the mean of N(0, 1) on the quantile bin of its rank
    (minus the gradient of the columns' W2² to N(0, 1)), projected like batch norm's backward
    (column means and the components along the column removed)."""
    n = z.shape[0]
    means = torch.as_tensor(_normal_bin_means(n)[0], dtype=z.dtype)
    ranks = torch.argsort(torch.argsort(z, dim=0), dim=0)
    t = means[ranks] - z
    t = t - t.mean(dim=0)
    return t - z * (t * z).mean(dim=0) / z.pow(2).mean(dim=0)


def gradient_alignment(terms: Mapping[str, Term], *,
                       kinds: Sequence[str] = ("uniform", "two-bump", "laplace"),
                       dims: Sequence[int] = (16, 128), batch_size: int = 100,
                       repeats: int = 10, seed: int = 0) -> pd.DataFrame:
    r"""Cosine between the gradient each term sends to the encoder's output (through batch
    norm) and the direction that makes every coordinate more Gaussian: each code moved to the
    mean of :math:`\mathcal N(0, 1)` on the quantile bin of its rank in its column (the descent
    direction of the coordinates' :math:`W_2^2` to :math:`\mathcal N(0, 1)`, in batch norm's
    tangent space). On batch-normalised products of non-Gaussian coordinates (whose
    non-Gaussianity lies along the axes) near 1 means the term's step Gaussianizes the
    marginals; near 0, that the gradient is mostly a force of the batch's own configuration
    (spacings, nearest neighbours) that averages out only over many batches. Columns
    ``term, kind, d, repeat, cosine``."""
    import pandas as pd  # noqa: F811

    rows = []
    for kind in kinds:
        for d in dims:
            for r in range(check_int("repeats", repeats, 1)):
                z = study_batch(kind, batch_size, d, seed, r).to(torch.float64)
                target = _transport_direction(z)
                for name, fn in terms.items():
                    if isinstance(fn, QueuedTerm):
                        fn.reset()
                        for j in range(fn.batches, 0, -1):
                            fn.push(study_batch(kind, batch_size, d, seed, r, extra=j))
                    grad = _encoder_gradient(fn, z)
                    cos = float((grad * target).sum() / (grad.norm() * target.norm()
                                                         ).clamp_min(1e-300))
                    rows.append({"term": name, "kind": kind, "d": d, "repeat": r,
                                 "cosine": cos})
    return pd.DataFrame(rows, columns=["term", "kind", "d", "repeat", "cosine"])


def hidden_by_whitening(kind: str = "uniform", d: int = 16, *, batch_size: int = 100,
                        repeats: int = 20, method: str = "cholesky", shrinkage: float | None = None,
                        seed: int = 0) -> dict[str, float]:
    r"""How much of a product's marginal non-Gaussianity the batch's own whitening hides.

    On ``repeats`` study batches of ``kind`` and of ``gaussian`` (:func:`study_batch`), the
    summed estimated negentropy :math:`N = \sum_j (\tfrac12\log 2\pi e - \hat h(u_j))` of the
    standardized columns :math:`u` of the codes (``standardized``) and of the codes whitened
    with :math:`\hat C_\lambda^{-1/2}` (``whitened``: ``method`` ``"cholesky"``,
    :math:`L^{-1}\hat z` with :math:`LL^\top = \hat C_\lambda`, or ``"symmetric"``), each minus
    the same for the Gaussian batches (the estimator's offset); ``hidden`` is
    :math:`1 - \text{whitened}/\text{standardized}`."""
    from entropic_ae.estimators import m_spacing_entropy

    if method not in ("cholesky", "symmetric"):
        raise ValueError(f"method must be 'cholesky' or 'symmetric', got {method!r}")
    half_log_2pie = 0.5 * math.log(2.0 * math.pi * math.e)
    lam = d / (d + batch_size) if shrinkage is None else check_real(
        "shrinkage", shrinkage, gt=0.0, lt=1.0)
    sums = {}
    for which in (kind, "gaussian"):
        std, white = [], []
        for r in range(check_int("repeats", repeats, 1)):
            z = study_batch(which, batch_size, d, seed, r).to(torch.float64)
            corr = (1.0 - lam) * (z.T @ z) / batch_size + lam * torch.eye(d, dtype=z.dtype)
            if method == "cholesky":
                w = torch.linalg.solve_triangular(torch.linalg.cholesky(corr), z.T,
                                                  upper=False).T
            else:
                vals, vecs = torch.linalg.eigh(corr)
                w = z @ (vecs * vals.rsqrt()) @ vecs.T
            w = w / w.pow(2).mean(dim=0).sqrt()
            std.append(float((half_log_2pie - m_spacing_entropy(z)).sum()))
            white.append(float((half_log_2pie - m_spacing_entropy(w)).sum()))
        sums[which] = (float(np.mean(std)), float(np.mean(white)))
    standardized = sums[kind][0] - sums["gaussian"][0]
    whitened = sums[kind][1] - sums["gaussian"][1]
    return {"standardized": standardized, "whitened": whitened,
            "hidden": 1.0 - whitened / standardized}
