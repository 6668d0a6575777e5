r"""Synthetic code distributions with known entropies, and a study of entropy estimators on them.

Every distribution here has an exact differential entropy :math:`h` and an exact
:math:`\mathrm{KL}(q \,\Vert\, \mathcal N(0, I_d))`, so estimators can be checked against the
truth at the sizes they are used at. The *product* kinds have i.i.d. coordinates with mean 0 and
variance 1 (the moments batch norm gives the codes of an entropic autoencoder); the entropy
:math:`h_1` of one coordinate in nats:

- ``gaussian``: :math:`\mathcal N(0, 1)`, :math:`h_1 = \tfrac12\log(2\pi e) = 1.4189`;
- ``uniform``: :math:`U(-\sqrt3, \sqrt3)`, :math:`h_1 = \log(2\sqrt3) = 1.2425`;
- ``laplace``: scale :math:`b = 1/\sqrt2`, :math:`h_1 = 1 + \log(2b) = 1.3466`;
- ``two-bump``: :math:`\tfrac12\mathcal N(-m, 1-m^2) + \tfrac12\mathcal N(m, 1-m^2)`, :math:`h_1`
  by numerical integration (1.2297 at the default :math:`m = 0.9`);
- ``student-t``: :math:`t_\nu\cdot\sqrt{(\nu-2)/\nu}`, closed form in
  :func:`coordinate_entropy` (1.3721 at the default :math:`\nu = 5`).

The two-bump default :math:`m = 0.9` puts the bumps :math:`2m/\sqrt{1-m^2} = 4.1` component
standard deviations apart: clearly bimodal, yet with exactly the mean and variance of
:math:`\mathcal N(0, 1)`. Two more kinds are Gaussian but not standard:
``correlated-gaussian`` (unit variances, correlation matrix ``corr`` or, by default, the
equicorrelation :math:`C = (1-\rho) I + \rho\,\mathbf 1\mathbf 1^\top` with :math:`\rho = 0.5`)
and ``scaled-gaussian`` (:math:`\mathcal N(0, \sigma^2 I)`, :math:`\sigma = 1.5`).

For a product of standardized coordinates the cross-entropy under :math:`\mathcal N(0, I)` is
:math:`\mathbb E[\tfrac12\lVert z\rVert^2] + \tfrac d2\log 2\pi = \tfrac d2\log(2\pi e)`, hence
:math:`\mathrm{KL} = d\,(\tfrac12\log(2\pi e) - h_1)`; the Gaussian kinds' KL in closed form
are in :func:`kl_to_standard_normal`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from scipy import integrate, special

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["KINDS", "PRODUCT_KINDS", "batch_normalise", "coordinate_entropy", "entropy",
           "estimator_study", "kl_to_standard_normal", "random_layers", "sample"]

PRODUCT_KINDS = ("gaussian", "uniform", "laplace", "two-bump", "student-t")
KINDS = PRODUCT_KINDS + ("correlated-gaussian", "scaled-gaussian")
_HALF_LOG_2PIE = 0.5 * math.log(2.0 * math.pi * math.e)


def _check_kind(kind: str) -> str:
    if not isinstance(kind, str) or kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return kind


def _check_int(name: str, value: int, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < least:
        raise ValueError(f"{name} must be an int >= {least}, got {value!r}")
    return int(value)


def _check_real(name: str, value: float, low: float, high: float) -> float:
    """``value`` as a float in the open interval (low, high), or a clear ValueError."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not low < value < high:
        raise ValueError(f"{name} must lie in ({low}, {high}), got {value!r}")
    return value


def _correlation(d: int, rho: float, corr: np.ndarray | torch.Tensor | None) -> np.ndarray:
    """The correlation of ``correlated-gaussian``: ``corr`` if given, else equicorrelation."""
    if corr is None:
        low = -1.0 / (d - 1) if d > 1 else -1.0
        rho = _check_real("rho", rho, low, 1.0)
        return (1.0 - rho) * np.eye(d) + rho * np.ones((d, d))
    if isinstance(corr, torch.Tensor):
        corr = corr.detach().cpu().to(torch.float64).numpy()
    c = np.asarray(corr, dtype=np.float64)
    if c.shape != (d, d) or not np.isfinite(c).all():
        raise ValueError(f"corr must be a finite ({d}, {d}) matrix, got shape {c.shape}")
    if not np.allclose(c, c.T, atol=1e-12) or not np.allclose(np.diag(c), 1.0, atol=1e-12):
        raise ValueError("corr must be symmetric with unit diagonal (a correlation matrix)")
    if np.linalg.eigvalsh(c).min() <= 0:
        raise ValueError("corr must be positive definite")
    return c


def _log_det_correlation(d: int, rho: float, corr: np.ndarray | torch.Tensor | None) -> float:
    r""":math:`\log\det C`; for equicorrelation :math:`(d-1)\log(1-\rho) + \log(1+(d-1)\rho)`."""
    if corr is None:
        rho = _check_real("rho", rho, -1.0 / (d - 1) if d > 1 else -1.0, 1.0)
        return (d - 1) * math.log1p(-rho) + math.log1p((d - 1) * rho)
    return float(np.linalg.slogdet(_correlation(d, rho, corr))[1])


@functools.lru_cache(maxsize=64)
def _two_bump_entropy(m: float) -> float:
    r""":math:`-\int p\log p` for
    :math:`p = \tfrac12\mathcal N(-m, s^2) + \tfrac12\mathcal N(m, s^2)`, :math:`s^2 = 1-m^2`,
    by adaptive quadrature (the integrand is even: twice the half line)."""
    s = math.sqrt(1.0 - m * m)
    log_norm = math.log(2.0 * s * math.sqrt(2.0 * math.pi))

    def integrand(x: float) -> float:  # -p log p
        lp = float(np.logaddexp(-0.5 * ((x - m) / s) ** 2, -0.5 * ((x + m) / s) ** 2)) - log_norm
        return -math.exp(lp) * lp

    upper = m + 40.0 * s  # beyond this the density is below e^-800: exactly 0 in float64
    value, error = integrate.quad(integrand, 0.0, upper, points=[m], limit=200,
                                  epsabs=1e-13, epsrel=1e-12)
    if error > 1e-9:
        raise RuntimeError(f"quadrature of the two-bump entropy did not converge ({error:.1e})")
    return 2.0 * value


def coordinate_entropy(kind: str, m: float = 0.9, nu: float = 5.0) -> float:
    r"""Exact differential entropy (nats) of one standardized coordinate of a product ``kind``.

    Gaussian :math:`\tfrac12\log(2\pi e)`; uniform on :math:`[-\sqrt3, \sqrt3]`:
    :math:`\log(2\sqrt3)`; Laplace with :math:`b = 1/\sqrt2`: :math:`1 + \log 2b`;
    two-bump: numerical integration;
    Student-t scaled by :math:`c = \sqrt{(\nu-2)/\nu}`:
    :math:`\tfrac{\nu+1}2[\psi(\tfrac{\nu+1}2) - \psi(\tfrac\nu2)] + \log(\sqrt\nu\,B(\tfrac\nu2,
    \tfrac12)) + \log c`.
    """
    kind = _check_kind(kind)
    if kind == "gaussian":
        return _HALF_LOG_2PIE
    if kind == "uniform":
        return math.log(2.0 * math.sqrt(3.0))
    if kind == "laplace":
        return 1.0 + math.log(2.0 / math.sqrt(2.0))
    if kind == "two-bump":
        return _two_bump_entropy(_check_real("m", m, 0.0, 1.0))
    if kind == "student-t":
        nu = _check_real("nu", nu, 2.0, math.inf)
        h = (0.5 * (nu + 1.0) * (special.digamma(0.5 * (nu + 1.0)) - special.digamma(0.5 * nu))
             + 0.5 * math.log(nu) + special.betaln(0.5 * nu, 0.5))
        return float(h) + 0.5 * math.log((nu - 2.0) / nu)
    raise ValueError(f"{kind!r} is not a product of standardized coordinates; "
                     f"coordinate_entropy needs one of {PRODUCT_KINDS}")


def entropy(kind: str, d: int, *, m: float = 0.9, nu: float = 5.0, rho: float = 0.5,
            sigma: float = 1.5, corr: np.ndarray | torch.Tensor | None = None) -> float:
    r"""Exact differential entropy (nats) of ``kind`` in ``d`` dimensions.

    Products: :math:`d\,h_1` (:func:`coordinate_entropy`); correlated Gaussian:
    :math:`\tfrac d2\log(2\pi e) + \tfrac12\log\det C`; scaled Gaussian:
    :math:`\tfrac d2\log(2\pi e\sigma^2)`.
    """
    kind = _check_kind(kind)
    d = _check_int("d", d, 1)
    if kind in PRODUCT_KINDS:
        return d * coordinate_entropy(kind, m=m, nu=nu)
    if kind == "correlated-gaussian":
        return d * _HALF_LOG_2PIE + 0.5 * _log_det_correlation(d, rho, corr)
    sigma = _check_real("sigma", sigma, 0.0, math.inf)
    return d * (_HALF_LOG_2PIE + math.log(sigma))


def kl_to_standard_normal(kind: str, d: int, *, m: float = 0.9, nu: float = 5.0,
                          rho: float = 0.5, sigma: float = 1.5,
                          corr: np.ndarray | torch.Tensor | None = None) -> float:
    r"""Exact :math:`\mathrm{KL}(q \,\Vert\, \mathcal N(0, I_d))` (nats) of ``kind``.

    Products: :math:`d(\tfrac12\log(2\pi e) - h_1)`; correlated Gaussian:
    :math:`-\tfrac12\log\det C`; scaled Gaussian: :math:`\tfrac d2(\sigma^2 - 1 - \log\sigma^2)`.
    """
    kind = _check_kind(kind)
    d = _check_int("d", d, 1)
    if kind in PRODUCT_KINDS:
        return d * (_HALF_LOG_2PIE - coordinate_entropy(kind, m=m, nu=nu))
    if kind == "correlated-gaussian":
        return -0.5 * _log_det_correlation(d, rho, corr)
    sigma = _check_real("sigma", sigma, 0.0, math.inf)
    return 0.5 * d * (sigma * sigma - 1.0 - 2.0 * math.log(sigma))


def sample(kind: str, n: int, d: int, *, seed: int = 0, dtype: torch.dtype = torch.float64,
           m: float = 0.9, nu: float = 5.0, rho: float = 0.5, sigma: float = 1.5,
           corr: np.ndarray | torch.Tensor | None = None) -> torch.Tensor:
    r"""``n`` i.i.d. draws (``n`` × ``d`` tensor on the CPU) of ``kind``, from a NumPy generator
    seeded with ``seed`` (reproducible; no global state is touched).

    Uniform :math:`\sqrt3(2U-1)`; Laplace :math:`(E_1 - E_2)/\sqrt2` with :math:`E_i` standard
    exponential; two-bump :math:`\pm m + \sqrt{1-m^2}\,G` with a fair sign; Student-t
    :math:`G/\sqrt{\chi^2_\nu/\nu}\cdot\sqrt{(\nu-2)/\nu}`; correlated Gaussian :math:`G L^\top`
    with :math:`LL^\top = C` (Cholesky); scaled Gaussian :math:`\sigma G`.
    """
    kind = _check_kind(kind)
    n = _check_int("n", n, 1)
    d = _check_int("d", d, 1)
    seed = _check_int("seed", seed, 0)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point torch.dtype, got {dtype!r}")
    rng = np.random.default_rng(seed)
    if kind == "gaussian":
        x = rng.standard_normal((n, d))
    elif kind == "uniform":
        x = math.sqrt(3.0) * (2.0 * rng.random((n, d)) - 1.0)
    elif kind == "laplace":
        x = (rng.standard_exponential((n, d)) - rng.standard_exponential((n, d))) / math.sqrt(2.0)
    elif kind == "two-bump":
        m = _check_real("m", m, 0.0, 1.0)
        signs = 2.0 * rng.integers(0, 2, size=(n, d)) - 1.0
        x = m * signs + math.sqrt(1.0 - m * m) * rng.standard_normal((n, d))
    elif kind == "student-t":
        nu = _check_real("nu", nu, 2.0, math.inf)
        x = rng.standard_t(nu, size=(n, d)) * math.sqrt((nu - 2.0) / nu)
    elif kind == "correlated-gaussian":
        chol = np.linalg.cholesky(_correlation(d, rho, corr))
        x = rng.standard_normal((n, d)) @ chol.T
    else:
        sigma = _check_real("sigma", sigma, 0.0, math.inf)
        x = sigma * rng.standard_normal((n, d))
    return torch.from_numpy(x).to(dtype)


def batch_normalise(z: torch.Tensor) -> torch.Tensor:
    r"""Each column of ``z`` (N × d) to mean 0 and biased variance 1, what a batch norm without
    affine parameters does in training mode:
    :math:`\hat z_{ij} = (z_{ij} - \bar z_j) / \sqrt{\tfrac1N \sum_i (z_{ij} - \bar z_j)^2}`.

    Differentiable. Unlike ``torch.nn.BatchNorm1d`` on the CPU, whose reductions split the
    batch across threads, the result does not depend on the number of torch threads, so an
    optimisation through it gives the same numbers whatever the thread count.
    """
    if not isinstance(z, torch.Tensor) or not z.is_floating_point() or z.dim() != 2:
        raise TypeError("z must be a floating-point torch.Tensor of shape (N, d), got "
                        f"{type(z).__name__} {tuple(getattr(z, 'shape', ()))}")
    if z.shape[0] < 2:
        raise ValueError(f"need at least 2 rows to standardise, got {z.shape[0]}")
    centred = z - z.mean(0)
    scale = centred.pow(2).mean(0).sqrt()
    if not bool((scale > 0).all()):
        raise ValueError("a column of z is constant; it has no variance to normalise")
    return centred / scale


def estimator_study(estimator: Callable[[torch.Tensor], torch.Tensor | float], *,
                    kinds: Sequence[str] = ("gaussian", "uniform", "two-bump"),
                    batch_sizes: Sequence[int] = (100, 400, 1600),
                    dims: Sequence[int] = (4, 16, 64, 128), repeats: int = 10, seed: int = 0,
                    batch_norm: bool = True, dtype: torch.dtype = torch.float32,
                    m: float = 0.9) -> pd.DataFrame:
    r"""``estimator`` on batches of standardized ``kinds`` over the grid ``batch_sizes`` ×
    ``dims`` with ``repeats`` independent batches per cell.

    Returns a DataFrame with columns ``kind, B, d, repeat, estimate, truth``; ``truth`` is the
    exact entropy of the population (:func:`entropy`). Batch ``r`` of cell ``(kind, B, d)`` is
    :func:`sample` with a seed derived from ``(seed, kind, B, d, r)``, so a cell does not change
    when the grid does. With ``batch_norm`` (default) each batch is normalised per column to
    mean 0 and variance 1 before it is passed on, as the entropic autoencoder's batch norm does;
    ``dtype`` is the batch's dtype (float32, as in training). A randomised estimator should draw
    from its own generator, e.g. ``lambda z: minibatch_entropy(z, generator=g)``, to keep the
    study reproducible. Use fewer ``repeats`` (or a smaller grid) for a quick look: the cost is
    dominated by the largest cell (the Kozachenko–Leonenko estimator is :math:`O(B^2 d)`).
    """
    import pandas as pd  # noqa: F811 - at call time only: importing this module stays light

    if not callable(estimator):
        raise TypeError("estimator must be callable: a batch (B, d) -> a scalar estimate")
    kinds = [_check_kind(k) for k in kinds]
    batch_sizes = [_check_int("batch size", b, 2) for b in batch_sizes]
    dims = [_check_int("dimension", d, 1) for d in dims]
    repeats = _check_int("repeats", repeats, 1)
    seed = _check_int("seed", seed, 0)
    if not kinds or not batch_sizes or not dims:
        raise ValueError("kinds, batch_sizes and dims must each name at least one value")
    rows = []
    for kind in kinds:
        for b in batch_sizes:
            for d in dims:
                truth = entropy(kind, d, m=m)
                for r in range(repeats):
                    state = np.random.SeedSequence([seed, KINDS.index(kind), b, d, r])
                    z = sample(kind, b, d, seed=int(state.generate_state(1)[0]), dtype=dtype, m=m)
                    if batch_norm:
                        z = batch_normalise(z)
                    with torch.no_grad():
                        value = float(estimator(z))
                    if not math.isfinite(value):
                        raise ValueError(f"estimator returned {value} for {kind}, B={b}, d={d}")
                    rows.append((kind, b, d, r, value, truth))
    return pd.DataFrame(rows, columns=["kind", "B", "d", "repeat", "estimate", "truth"])


def random_layers(sizes: Sequence[int], seed: int = 0, dtype: torch.dtype = torch.float64,
                  biases: bool = True, zero_fraction: float = 0.2
                  ) -> tuple[list[torch.Tensor], list[torch.Tensor] | None]:
    """Weights (``out × in``, standard normal with a fraction ``zero_fraction`` of exact zeros)
    and biases (0.3 × standard normal, or None) of a random network with node-layer widths
    ``sizes``: inputs for checking path computations against enumeration."""
    sizes = [_check_int(f"sizes[{i}]", n, 1) for i, n in enumerate(sizes)]
    if len(sizes) < 2:
        raise ValueError(f"need at least two layer widths, got {sizes}")
    if isinstance(zero_fraction, bool) or not isinstance(zero_fraction, int | float) \
            or not 0 <= zero_fraction < 1:
        raise ValueError(f"zero_fraction must be a number in [0, 1), got {zero_fraction!r}")
    gen = torch.Generator().manual_seed(_check_int("seed", seed, 0))
    ws = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        w = torch.randn(n_out, n_in, generator=gen, dtype=dtype)
        ws.append(w * (torch.rand(n_out, n_in, generator=gen, dtype=dtype) >= zero_fraction))
    bs = [0.3 * torch.randn(n, generator=gen, dtype=dtype) for n in sizes[1:]] if biases else None
    return ws, bs
