r"""Code distributions that are *not* products of independent coordinates, with exact
:math:`\mathrm{KL}(q \,\Vert\, \mathcal N(0, I_d))`: the test bench of the dependence part of
the Gaussianity score (:func:`entropic_ae.metrics.gaussianity_parts`).

Every kind has mean 0 and unit variances, so the cross-entropy of :math:`\mathcal N(0, I)` under
it is :math:`\tfrac d2\log(2\pi e)` and :math:`\mathrm{KL} = \tfrac d2\log(2\pi e) - h(q)`; its
covariance :math:`\Sigma` is known too, which splits the KL into the moment part
:math:`-\tfrac12\log\det\Sigma` and the non-Gaussian rest (:func:`parts`):

- ``rotated-product``: a random rotation :math:`Q` (seeded by ``rotation_seed``) of a product of
  standardized ``marginal`` coordinates (:mod:`entropic_ae.synthetic`, default ``uniform``).
  A rotation keeps the entropy, so :math:`\mathrm{KL} = d(\tfrac12\log 2\pi e - h_1)`
  (2.82 nats for uniforms at :math:`d = 16`), :math:`\Sigma = I`; its marginals are nearly
  Gaussian (a sum of many coordinates), all its non-Gaussianity is in the dependence;
- ``student-t-joint``: the multivariate Student-t with :math:`\nu` (default 5) degrees of
  freedom scaled to unit covariance, :math:`x = G\sqrt{(\nu-2)/W}`, :math:`W \sim \chi^2_\nu`:
  spherically symmetric, its coordinates uncorrelated but dependent through the shared scale.
  Closed form: :math:`h = \tfrac d2\log((\nu-2)\pi) + \log\Gamma(\tfrac\nu2)
  - \log\Gamma(\tfrac{\nu+d}2) + \tfrac{\nu+d}2[\psi(\tfrac{\nu+d}2) - \psi(\tfrac\nu2)]`;
- ``scale-mixture``: :math:`x = sG` with :math:`s^2 = 1 - a` or :math:`1 + a` with equal
  probability (default :math:`a = 0.7`): spherically symmetric, entropy by one-dimensional
  quadrature over :math:`\lVert x\rVert^2` (:func:`_scale_mixture_entropy`);
- ``gaussian-copula``: :math:`z_j = F^{-1}(\Phi(g_j))`, :math:`g \sim \mathcal N(0, C)` with
  equicorrelation :math:`\rho` (default 0.5) and standardized uniform marginals :math:`F`.
  Monotone maps of the coordinates keep their total correlation,
  :math:`\sum_j h(z_j) - h(z) = -\tfrac12\log\det C`, so
  :math:`\mathrm{KL} = d(\tfrac12\log 2\pi e - h_1) - \tfrac12\log\det C`; its correlation is
  :math:`\tfrac6\pi\arcsin(\rho/2)` (Pearson's of uniform margins is Spearman's of the copula);
- ``sign-pairs``: :math:`d/2` independent pairs :math:`(a, |b|\operatorname{sign} a)` with
  :math:`a, b \sim \mathcal N(0, 1)`: each coordinate exactly :math:`\mathcal N(0, 1)`, the pair
  confined to two quadrants with density :math:`2\varphi(a)\varphi(b)`, so
  :math:`\mathrm{KL} = \tfrac d2\log 2` (5.55 nats at :math:`d = 16`); correlation
  :math:`2/\pi` within a pair. ``d`` must be even.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from scipy import integrate, special, stats

from entropic_ae import synthetic as products
from entropic_ae._checks import check_int, check_real
from entropic_ae.estimators import random_rotation
from entropic_ae.synthetic import PRODUCT_KINDS, coordinate_entropy
from entropic_ae.synthetic import sample as sample_product

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DEPENDENT_KINDS", "entropy", "kl_to_standard_normal", "parts", "parts_study",
           "sample"]

DEPENDENT_KINDS = ("rotated-product", "student-t-joint", "scale-mixture", "gaussian-copula",
                   "sign-pairs")
_HALF_LOG_2PIE = 0.5 * math.log(2.0 * math.pi * math.e)


def _check(kind: str, d: int) -> tuple[str, int]:
    if not isinstance(kind, str) or kind not in DEPENDENT_KINDS:
        raise ValueError(f"kind must be one of {DEPENDENT_KINDS}, got {kind!r}")
    d = check_int("d", d, minimum=2)
    if kind == "sign-pairs" and d % 2:
        raise ValueError(f"sign-pairs needs an even dimension d, got {d}")
    return kind, d


def _equicorrelation(d: int, rho: float) -> np.ndarray:
    rho = check_real("rho", rho, gt=-1.0 / (d - 1), lt=1.0)
    return (1.0 - rho) * np.eye(d) + rho * np.ones((d, d))


@functools.lru_cache(maxsize=64)
def _scale_mixture_entropy(d: int, a: float) -> float:
    r""":math:`-E\log p(x)` for :math:`p = \tfrac12\mathcal N(0, (1-a)I) + \tfrac12\mathcal N(0,
    (1+a)I)`: given the component :math:`k`, :math:`\lVert x\rVert^2 = s_k^2 U`,
    :math:`U \sim \chi^2_d`, and :math:`\log p` depends on :math:`x` through
    :math:`\lVert x\rVert^2` only, so each expectation is one integral over :math:`U`
    (adaptive quadrature; :math:`\log p` by log-sum-exp)."""
    scales = (1.0 - a, 1.0 + a)

    def log_p(r2: float) -> float:
        terms = [math.log(0.5) - 0.5 * d * math.log(2.0 * math.pi * s) - 0.5 * r2 / s
                 for s in scales]
        return float(np.logaddexp(*terms))

    total = 0.0
    chi2 = stats.chi2(d)
    for s in scales:
        value, error = integrate.quad(lambda u, s=s: chi2.pdf(u) * log_p(s * u), 0.0, math.inf,
                                      limit=200, epsabs=1e-12, epsrel=1e-11)
        if error > 1e-8:
            raise RuntimeError(f"quadrature of the scale-mixture entropy did not converge "
                               f"({error:.1e})")
        total += 0.5 * value
    return -total


def entropy(kind: str, d: int, *, marginal: str = "uniform", nu: float = 5.0, a: float = 0.7,
            rho: float = 0.5) -> float:
    """Exact differential entropy (nats) of ``kind`` in ``d`` dimensions (see the module)."""
    kind, d = _check(kind, d)
    if kind == "rotated-product":
        if marginal not in PRODUCT_KINDS:
            raise ValueError(f"marginal must be one of {PRODUCT_KINDS}, got {marginal!r}")
        return d * coordinate_entropy(marginal)
    if kind == "student-t-joint":
        nu = check_real("nu", nu, gt=2.0)
        half = 0.5 * (nu + d)
        return float(0.5 * d * math.log((nu - 2.0) * math.pi) + special.gammaln(0.5 * nu)
                     - special.gammaln(half)
                     + half * (special.digamma(half) - special.digamma(0.5 * nu)))
    if kind == "scale-mixture":
        return _scale_mixture_entropy(d, check_real("a", a, gt=0.0, lt=1.0))
    if kind == "gaussian-copula":
        log_det = float(np.linalg.slogdet(_equicorrelation(d, rho))[1])
        return d * coordinate_entropy("uniform") + 0.5 * log_det
    return d * _HALF_LOG_2PIE - 0.5 * d * math.log(2.0)  # sign-pairs


def kl_to_standard_normal(kind: str, d: int, **params: float | str) -> float:
    r"""Exact :math:`\mathrm{KL}(q \,\Vert\, \mathcal N(0, I_d)) = \tfrac d2\log(2\pi e) - h(q)`
    (every kind has mean 0 and unit variances)."""
    return d * _HALF_LOG_2PIE - entropy(kind, d, **params)


def _correlation(kind: str, d: int, rho: float) -> np.ndarray:
    """The exact correlation (= covariance) matrix of ``kind``."""
    if kind == "gaussian-copula":
        r = 6.0 / math.pi * math.asin(check_real("rho", rho, gt=-1.0 / (d - 1), lt=1.0) / 2.0)
        return (1.0 - r) * np.eye(d) + r * np.ones((d, d))
    if kind == "sign-pairs":
        c = np.eye(d)
        idx = np.arange(0, d, 2)
        c[idx, idx + 1] = c[idx + 1, idx] = 2.0 / math.pi
        return c
    return np.eye(d)


def parts(kind: str, d: int, **params: float | str) -> dict[str, float]:
    r"""The exact KL and its split: ``moment`` :math:`= -\tfrac12\log\det\Sigma` (the KL of the
    Gaussian with the same moments), ``non_gaussian`` = the rest (the negentropy, which the
    marginal and dependence parts of an estimate share), ``total``."""
    kind, d = _check(kind, d)
    total = kl_to_standard_normal(kind, d, **params)
    rho = float(params.get("rho", 0.5))
    moment = -0.5 * float(np.linalg.slogdet(_correlation(kind, d, rho))[1])
    return {"moment": moment, "non_gaussian": total - moment, "total": total}


def sample(kind: str, n: int, d: int, *, seed: int = 0, marginal: str = "uniform",
           nu: float = 5.0, a: float = 0.7, rho: float = 0.5, rotation_seed: int = 0
           ) -> torch.Tensor:
    """``n`` i.i.d. draws (float64, ``n`` × ``d``) of ``kind`` from a NumPy generator seeded
    ``seed`` (the rotation of ``rotated-product`` from ``rotation_seed``, fixed by default, so
    that every draw comes from one distribution)."""
    kind, d = _check(kind, d)
    n = check_int("n", n, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    rng = np.random.default_rng(seed)
    if kind == "rotated-product":
        if marginal not in PRODUCT_KINDS:
            raise ValueError(f"marginal must be one of {PRODUCT_KINDS}, got {marginal!r}")
        gen = torch.Generator().manual_seed(check_int("rotation_seed", rotation_seed, minimum=0))
        q = random_rotation(d, gen, dtype=torch.float64)
        return sample_product(marginal, n, d, seed=seed) @ q.T
    if kind == "student-t-joint":
        nu = check_real("nu", nu, gt=2.0)
        x = rng.standard_normal((n, d)) * np.sqrt((nu - 2.0) / rng.chisquare(nu, (n, 1)))
    elif kind == "scale-mixture":
        a = check_real("a", a, gt=0.0, lt=1.0)
        s2 = np.where(rng.random((n, 1)) < 0.5, 1.0 - a, 1.0 + a)
        x = rng.standard_normal((n, d)) * np.sqrt(s2)
    elif kind == "gaussian-copula":
        g = rng.standard_normal((n, d)) @ np.linalg.cholesky(_equicorrelation(d, rho)).T
        x = math.sqrt(3.0) * (2.0 * special.ndtr(g) - 1.0)
    else:  # sign-pairs
        g = rng.standard_normal((n, d))
        x = g.copy()
        x[:, 1::2] = np.abs(g[:, 1::2]) * np.sign(g[:, 0::2])
    return torch.from_numpy(x)


def _truth_and_draw(kind: str, d: int
                    ) -> tuple[dict[str, float], Callable[[int, int], torch.Tensor]]:
    """Exact parts and a sampler ``(n, seed) -> codes`` for a kind of this module or a kind of
    :mod:`entropic_ae.synthetic` (products: moment part 0; the Gaussians: all moment)."""
    if kind in DEPENDENT_KINDS:
        return parts(kind, d), lambda n, seed: sample(kind, n, d, seed=seed)
    if kind not in products.KINDS:
        raise ValueError(f"kind must be one of {DEPENDENT_KINDS + products.KINDS}, got {kind!r}")
    total = products.kl_to_standard_normal(kind, d)
    moment = total if kind in ("correlated-gaussian", "scaled-gaussian") else 0.0
    return ({"moment": moment, "non_gaussian": total - moment, "total": total},
            lambda n, seed: products.sample(kind, n, d, seed=seed))


def parts_study(estimate: Callable[[torch.Tensor], Mapping[str, float]],
                kinds: Sequence[str] = ("gaussian", "uniform") + DEPENDENT_KINDS, n: int = 2000,
                d: int = 16, seeds: Sequence[int] = (0, 1, 2, 3, 4)) -> pd.DataFrame:
    """``estimate`` (codes -> a mapping with ``moment``, ``marginal``, ``dependence`` and
    ``total``, e.g. :func:`entropic_ae.metrics.gaussianity_parts`) on ``n`` draws of each kind
    (this module's or :mod:`entropic_ae.synthetic`'s) per seed, next to the truth.

    Tidy: ``kind, seed, part, estimate, truth`` for the parts ``moment``, ``marginal``,
    ``dependence``, ``non_gaussian`` (marginal + dependence) and ``total``; the truth of
    ``marginal`` and ``dependence`` alone is NaN (their split depends on the basis; their sum,
    the negentropy, does not).
    """
    import pandas as pd  # noqa: F811 - at call time only: importing this module stays light

    if not callable(estimate):
        raise TypeError("estimate must be callable: codes (n, d) -> {'moment': ..., ...}")
    n, d = check_int("n", n, minimum=d + 2), check_int("d", d, minimum=2)
    rows = []
    for kind in kinds:
        truth, draw = _truth_and_draw(kind, d)
        for seed in seeds:
            got = estimate(draw(n, check_int("seed", seed, minimum=0)))
            values = {"moment": got["moment"], "marginal": got["marginal"],
                      "dependence": got["dependence"],
                      "non_gaussian": float(got["marginal"]) + float(got["dependence"]),
                      "total": got["total"]}
            for part, value in values.items():
                rows.append({"kind": kind, "seed": seed, "part": part, "estimate": float(value),
                             "truth": truth.get(part, math.nan)})
    return pd.DataFrame(rows, columns=["kind", "seed", "part", "estimate", "truth"])
