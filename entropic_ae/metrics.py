"""Measurements of trained autoencoders: active units, reconstruction error, sample quality
(Fréchet distance in a feature space), and how Gaussian a set of codes is."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from scipy import special
from torch import nn

from entropic_ae._checks import is_integer, is_real
from entropic_ae.estimators import kozachenko_leonenko, m_spacing_entropy
from entropic_ae.sampling import as_float64_matrix

__all__ = [
    "FeatureExtractor",
    "ablation_active_units",
    "active_units",
    "code_moments",
    "frechet_distance",
    "frechet_distance_images",
    "gaussian_frechet_distance",
    "gaussianity",
    "image_features",
    "inception_feature_extractor",
    "kl_to_standard_normal",
    "knn_kl_to_standard_normal",
    "per_class_mse",
    "reconstruction_mse",
    "shrunk_correlation",
    "unit_ablation",
    "wishart_log_det_bias",
]


def active_units(codes: torch.Tensor, threshold: float = 0.01) -> int:
    r"""Number of latent dimensions whose variance over the data exceeds ``threshold``.

    :math:`A = \#\{j : \operatorname{Var}_x[z_j(x)] > \delta\}` with :math:`\delta = 0.01`
    by default (Burda et al. 2015); the variance is the population variance over the rows of
    ``codes`` (N × d). For a stochastic encoder pass the means :math:`E[z \mid x]`. The threshold
    must be a finite number >= 0 (Python or NumPy).
    """
    if not isinstance(codes, torch.Tensor):
        raise TypeError(f"codes must be a torch.Tensor of shape (N, d), got {type(codes).__name__}")
    if codes.dim() != 2:
        raise ValueError(f"codes must have shape (N, d), got {tuple(codes.shape)}")
    if codes.shape[0] < 2:
        raise ValueError("need at least two codes to measure a variance")
    if not is_real(threshold):
        raise TypeError(f"threshold must be a finite number >= 0, got "
                        f"{type(threshold).__name__}")
    if not math.isfinite(threshold) or threshold < 0:
        raise ValueError(f"threshold must be a finite number >= 0, got {threshold!r}")
    threshold = float(threshold)
    codes = codes.detach().to(torch.float64)
    if not torch.isfinite(codes).all():
        raise ValueError("codes contain NaN or infinite entries")
    return int((codes.var(dim=0, unbiased=False) > threshold).sum())


Encoder = Callable[[torch.Tensor], torch.Tensor]
Decoder = Callable[[torch.Tensor], torch.Tensor]


def _check_batch_size(batch_size: int) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    return batch_size


def _squared_errors(decode: Decoder, codes: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    r"""Per-row :math:`\lVert \mathrm{decode}(z) - x\rVert^2` in float64 (rows of ``codes``
    and ``x`` pair up; ``x`` is flat, one row per code)."""
    out = decode(codes)
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"decode must return a torch.Tensor, got {type(out).__name__}")
    if out.dim() < 1 or out.shape[0] != codes.shape[0] or out[0].numel() != x.shape[1]:
        raise ValueError(f"decode returned shape {tuple(out.shape)} for {codes.shape[0]} codes; "
                         f"expected {codes.shape[0]} reconstructions of {x.shape[1]} values each "
                         "(the size of one input)")
    diff = out.reshape(out.shape[0], -1).to(torch.float64) - x.to(out.device, torch.float64)
    return diff.pow(2).sum(1)


@torch.no_grad()
def unit_ablation(encode: Encoder, decode: Decoder, x: torch.Tensor,
                  batch_size: int = 4096) -> torch.Tensor:
    r"""Relative rise of the reconstruction error when one code unit is set to its mean.

    With codes :math:`z = \mathrm{encode}(x)` (N × d), their mean :math:`\bar z` over the data,
    :math:`E_0 = \sum_n \lVert D(z_n) - x_n\rVert^2` and :math:`E_j` the same error after
    replacing unit :math:`j` of every code by :math:`\bar z_j` (all other units kept),

    .. math:: r_j = (E_j - E_0) / E_0 .

    A unit that the decoder ignores, or that is constant on the data (a dead ReLU unit is always
    0), has :math:`r_j = 0` exactly: a constant unit already sits at its mean, so it is not
    decoded again. Unlike the code variance, :math:`r_j` does not change when a ReLU unit is
    rescaled (:math:`h_j \to c\,h_j` with the decoder's weights out of it divided by
    :math:`c`): its mean scales by :math:`c` too and the decoder sees the same input. It can be
    negative (the mean fits better than the unit). If :math:`E_0 = 0` (perfect reconstruction)
    :math:`r_j` is :math:`+\infty` where :math:`E_j > 0` and 0 elsewhere.

    ``encode(x) -> codes`` (N × d) and ``decode(codes) -> reconstructions`` (N × anything with
    as many entries per row as one input) are any callables, e.g. for layer ``l`` of an
    :class:`~entropic_ae.models.mlp.MLPAutoencoder`
    ``lambda x: model.encode(x, l)`` and ``lambda h: model.decode_from(h, l)``; for a conv model
    ``model.encode`` and ``model.decode`` (put the model in eval mode first). Runs without
    gradients; ``x`` is passed to ``encode`` in chunks of ``batch_size`` rows, and the d
    ablated copies of a chunk of codes are decoded together, at most ``batch_size`` rows per
    call of ``decode`` (cost: about d decoder passes over the data). Errors are summed in
    float64. Returns a float64 tensor of length d on the CPU.
    """
    if not callable(encode) or not callable(decode):
        raise TypeError("encode and decode must be callables: encode(x) -> codes (N, d), "
                        "decode(codes) -> reconstructions")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor of inputs (N, ...), got {type(x).__name__}")
    if x.dim() < 2 or x.shape[0] < 2:
        raise ValueError(f"x must hold at least two inputs, shape (N >= 2, ...), "
                         f"got {tuple(x.shape)}")
    batch_size = _check_batch_size(batch_size)
    n = x.shape[0]
    chunks = []
    for i in range(0, n, batch_size):
        xb = x[i:i + batch_size]
        c = encode(xb)
        if not isinstance(c, torch.Tensor) or c.dim() != 2 or c.shape[0] != xb.shape[0]:
            raise ValueError("encode must return a tensor of codes of shape (N, d), one row per "
                             f"input; got {getattr(c, 'shape', type(c).__name__)}")
        chunks.append(c)
    codes = torch.cat(chunks)
    if codes.shape[0] != n or codes.shape[1] < 1:
        raise ValueError(f"encode must return codes of shape ({n}, d >= 1), got "
                         f"{tuple(codes.shape)}")
    if not torch.isfinite(codes).all():
        raise ValueError("the codes contain NaN or infinite entries")
    d = codes.shape[1]
    mean = codes.to(torch.float64).mean(0).to(codes.dtype)
    constant = (codes == codes[:1]).all(0).cpu()  # dead or constant units: r_j = 0 exactly
    varying = torch.nonzero(~constant).flatten().tolist()
    flat = x.reshape(n, -1)

    base = torch.zeros((), dtype=torch.float64)
    rise = torch.zeros(d, dtype=torch.float64)
    for start in range(0, n, batch_size):
        z = codes[start:start + batch_size]
        xb = flat[start:start + batch_size]
        b = z.shape[0]
        e0 = _squared_errors(decode, z, xb)
        if not torch.isfinite(e0).all():
            raise ValueError("the reconstructions contain NaN or infinite entries")
        base += e0.sum().cpu()
        group = max(1, batch_size // b)  # ablated copies decoded per call
        for g in range(0, len(varying), group):
            units = varying[g:g + group]
            k = len(units)
            zz = z.unsqueeze(0).repeat(k, 1, 1)  # (k, b, d): copy i has unit units[i] ablated
            idx = torch.arange(k, device=z.device)
            cols = torch.tensor(units, device=z.device)
            zz[idx, :, cols] = mean[cols].unsqueeze(1)
            ej = _squared_errors(decode, zz.reshape(k * b, d), xb.repeat(k, 1)).reshape(k, b)
            if not torch.isfinite(ej).all():
                raise ValueError("the reconstructions of ablated codes contain NaN or infinite "
                                 "entries")
            rise[units] += (ej - e0).sum(1).cpu()
    if base > 0:
        return rise / base
    return torch.where(rise > 0, math.inf, 0.0).to(torch.float64)


def ablation_active_units(encode: Encoder, decode: Decoder, x: torch.Tensor,
                          threshold: float = 0.01, batch_size: int = 4096) -> int:
    r"""Number of code units whose removal raises the reconstruction error by more than
    ``threshold`` (a fraction of the error): :math:`\#\{j : r_j > \delta\}` with :math:`r_j`
    from :func:`unit_ablation` (unit :math:`j` set to its mean over ``x``) and
    :math:`\delta = 0.01` by default.

    Invariant to rescaling ReLU units, zero for dead ones; see :func:`unit_ablation` for the
    arguments.
    """
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise TypeError(f"threshold must be a number, got {type(threshold).__name__}")
    if not math.isfinite(threshold) or threshold < 0:
        raise ValueError(f"threshold must be a finite number >= 0, got {threshold!r}")
    return int((unit_ablation(encode, decode, x, batch_size) > threshold).sum())


def _as_float64_features(x: torch.Tensor | np.ndarray, name: str) -> np.ndarray:
    x = as_float64_matrix(x, name)
    if x.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 rows to estimate a covariance, got {x.shape[0]}")
    return x


def _covariance_tolerance(dtype: np.dtype) -> float:
    """Relative tolerance for the asymmetry and the negative eigenvalues of a covariance given
    in ``dtype``: 1000 machine epsilons, of float32 at least (a covariance computed in float32
    and converted keeps float32's rounding noise), so 1.2e-4 for float32 and float64."""
    eps = float(np.finfo(np.float32).eps)
    if np.issubdtype(dtype, np.floating):
        eps = max(eps, float(np.finfo(dtype).eps))
    return min(1e-2, 1000.0 * eps)


def _check_covariance(name: str, s: np.ndarray, tol: float) -> None:
    """ValueError unless ``s`` is symmetric and positive semi-definite, both within ``tol``
    relative to its scale (largest absolute entry; largest absolute eigenvalue)."""
    scale = float(np.abs(s).max()) if s.size else 0.0
    asym = float(np.abs(s - s.T).max()) if s.size else 0.0
    if asym > tol * scale:
        raise ValueError(f"{name} is not symmetric (|S - S^T| up to {asym:.3g} at scale "
                         f"{scale:.3g}); a covariance matrix must be symmetric")
    vals = np.linalg.eigvalsh((s + s.T) / 2)
    top = float(np.abs(vals).max()) if vals.size else 0.0
    if vals.size and vals[0] < -tol * top:
        raise ValueError(f"{name} is not positive semi-definite (smallest eigenvalue "
                         f"{vals[0]:.3g}, largest |eigenvalue| {top:.3g}); a covariance matrix "
                         "has no negative eigenvalues")


def _psd_sqrt(a: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix (negative rounding noise clipped)."""
    vals, vecs = np.linalg.eigh((a + a.T) / 2)
    return (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T


def gaussian_frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray,
                              sigma2: np.ndarray) -> float:
    r"""Fréchet (2-Wasserstein) distance² between :math:`\mathcal N(\mu_1, \Sigma_1)` and
    :math:`\mathcal N(\mu_2, \Sigma_2)`:
    :math:`\lVert\mu_1-\mu_2\rVert^2 + \operatorname{tr}(\Sigma_1 + \Sigma_2
    - 2(\Sigma_1\Sigma_2)^{1/2})`.

    The trace of :math:`(\Sigma_1\Sigma_2)^{1/2}` is computed as
    :math:`\sum_i \sqrt{\lambda_i}` over the eigenvalues of the symmetric PSD matrix
    :math:`\Sigma_1^{1/2}\Sigma_2\Sigma_1^{1/2}` (same spectrum as :math:`\Sigma_1\Sigma_2`), in
    float64, so no complex parts arise; tiny negative eigenvalues from rounding are clipped to 0.
    Both covariances must be symmetric and positive semi-definite up to rounding (within
    1000 float32 epsilons, 1.2e-4, of their largest entry / eigenvalue); anything else, e.g.
    :math:`-5I`, raises ``ValueError`` instead of returning a meaningless distance.
    """
    tols = [_covariance_tolerance(np.asarray(s).dtype) for s in (sigma1, sigma2)]
    mu1, mu2 = np.asarray(mu1, dtype=np.float64), np.asarray(mu2, dtype=np.float64)
    s1, s2 = np.asarray(sigma1, dtype=np.float64), np.asarray(sigma2, dtype=np.float64)
    f = mu1.shape[0]
    if mu1.shape != (f,) or mu2.shape != (f,) or s1.shape != (f, f) or s2.shape != (f, f):
        raise ValueError(f"need means (F,) and covariances (F, F) of one size; got "
                         f"{mu1.shape}, {s1.shape}, {mu2.shape}, {s2.shape}")
    for arr in (mu1, mu2, s1, s2):
        if not np.isfinite(arr).all():
            raise ValueError("means and covariances must be finite")
    _check_covariance("sigma1", s1, tols[0])
    _check_covariance("sigma2", s2, tols[1])
    root1 = _psd_sqrt(s1)
    middle = root1 @ s2 @ root1
    vals = np.linalg.eigvalsh((middle + middle.T) / 2)
    tr_cross = float(np.sqrt(np.clip(vals, 0.0, None)).sum())
    diff = mu1 - mu2
    value = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_cross)
    return max(value, 0.0)


def frechet_distance(x_features: torch.Tensor | np.ndarray,
                     y_features: torch.Tensor | np.ndarray) -> float:
    r"""Fréchet distance between two sets of feature vectors (N × F and M × F):
    :math:`\lVert\mu_x-\mu_y\rVert^2 + \operatorname{tr}(\Sigma_x + \Sigma_y
    - 2(\Sigma_x\Sigma_y)^{1/2})` with sample means and (unbiased) covariances, in float64.

    With Inception-v3 pool features this is the FID (Heusel et al. 2017); the book uses the
    features of a small digit classifier, see :func:`feature_network`.
    """
    x = _as_float64_features(x_features, "x_features")
    y = _as_float64_features(y_features, "y_features")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"feature dimensions differ: {x.shape[1]} vs {y.shape[1]}")
    return gaussian_frechet_distance(x.mean(0), np.cov(x, rowvar=False, ddof=1).reshape(
        x.shape[1], x.shape[1]), y.mean(0), np.cov(y, rowvar=False, ddof=1).reshape(
        y.shape[1], y.shape[1]))


FeatureExtractor = Callable[[torch.Tensor], torch.Tensor]


@torch.no_grad()
def image_features(images: torch.Tensor, feature_extractor: FeatureExtractor,
                   batch_size: int = 500) -> torch.Tensor:
    """``feature_extractor(images)`` batch by batch, without gradients, as float32 on the CPU.

    A ``nn.Module`` extractor is run in eval mode on its own device (and its mode restored).
    """
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ValueError("images must be a torch.Tensor of shape (N, C, H, W)")
    if not callable(feature_extractor):
        raise TypeError("feature_extractor must be callable: images (N, C, H, W) -> (N, F)")
    if not is_integer(batch_size) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    batch_size = int(batch_size)
    device = None
    was_training = False
    if isinstance(feature_extractor, nn.Module):
        first = next(feature_extractor.parameters(), None)
        device = first.device if first is not None else None
        was_training = feature_extractor.training
        feature_extractor.eval()
    try:
        out = []
        for i in range(0, len(images), batch_size):
            xb = images[i:i + batch_size]
            feats = feature_extractor(xb.to(device) if device is not None else xb)
            out.append(torch.as_tensor(feats).reshape(len(xb), -1).float().cpu())
    finally:
        if isinstance(feature_extractor, nn.Module):
            feature_extractor.train(was_training)
    return torch.cat(out)


def frechet_distance_images(generated: torch.Tensor, reference: torch.Tensor,
                            feature_extractor: FeatureExtractor, batch_size: int = 500) -> float:
    """Fréchet distance between images in the feature space of ``feature_extractor``.

    ``generated`` and ``reference`` are images (N, C, H, W); ``reference`` may also be features
    (M, F) computed once with :func:`image_features`. Any extractor works, e.g. this module's
    :class:`LeNetFeatures` for grey digits, or for the standard FID on CIFAR-10/CelebA
    Inception-v3's 2048-d pool features (``torchmetrics``'
    ``FrechetInceptionDistance`` wraps them; it needs the Inception weights, which must be
    downloaded).
    """
    gen = image_features(generated, feature_extractor, batch_size)
    if isinstance(reference, torch.Tensor) and reference.dim() == 2:
        ref = reference
    else:
        ref = image_features(reference, feature_extractor, batch_size)
    return frechet_distance(gen, ref)


def _as_code_matrix(codes: torch.Tensor) -> torch.Tensor:
    if not isinstance(codes, torch.Tensor):
        raise TypeError(f"codes must be a torch.Tensor of shape (N, d), got {type(codes).__name__}")
    if codes.dim() != 2 or codes.shape[0] < 3:
        raise ValueError(f"codes must have shape (N >= 3, d), got {tuple(codes.shape)}")
    codes = codes.detach().cpu().to(torch.float64)
    if not torch.isfinite(codes).all():
        raise ValueError("codes contain NaN or infinite entries")
    return codes


def _check_n_and_seed(n: object, seed: object) -> tuple[int, int]:
    if not is_integer(n) or n < 3:
        raise ValueError(f"n must be an int >= 3, got {n!r}")
    if not is_integer(seed) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    return int(n), int(seed)


def _subsample(z: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """At most ``n`` rows of ``z``, drawn without replacement with a generator seeded ``seed``."""
    n, seed = _check_n_and_seed(n, seed)
    if len(z) > n:
        idx = torch.randperm(len(z), generator=torch.Generator().manual_seed(int(seed)))[:int(n)]
        z = z[idx]
    return z


def wishart_log_det_bias(n: int, d: int) -> float:
    r""":math:`\mathbb E[\log\det\hat\Sigma] - \log\det\Sigma` for the unbiased sample covariance
    :math:`\hat\Sigma` of ``n`` Gaussian draws in ``d`` dimensions:
    :math:`\sum_{i=1}^d \psi(\tfrac{n-i}2) + d\log 2 - d\log(n-1)`, since
    :math:`(n-1)\hat\Sigma \sim \mathrm{Wishart}_d(\Sigma, n-1)` (about :math:`-d(d+1)/(2n)`)."""
    if isinstance(n, bool) or isinstance(d, bool) or not isinstance(n, int | np.integer) \
            or not isinstance(d, int | np.integer) or d < 1 or n <= d:
        raise ValueError(f"need ints d >= 1 and n > d, got n={n!r}, d={d!r}")
    psi = special.digamma((int(n) - np.arange(1, int(d) + 1)) / 2.0).sum()
    return float(psi + d * math.log(2.0) - d * math.log(n - 1.0))


def shrunk_correlation(x: np.ndarray) -> tuple[np.ndarray, float]:
    r"""Ledoit–Wolf shrinkage of the correlation of standardized ``x`` (n × d) toward
    :math:`I`: :math:`\tilde R = (1-\lambda)\hat R + \lambda I` with :math:`\hat R = x^\top x/n`
    and :math:`\lambda = \min\bigl(1, \sum_{i\ne j}\widehat{\operatorname{Var}}(\hat r_{ij}) /
    \sum_{i\ne j}\hat r_{ij}^2\bigr)`, :math:`\widehat{\operatorname{Var}}(\hat r_{ij}) =
    \frac1{n^2}\sum_k (x_{ki}x_{kj} - \hat r_{ij})^2`. Returns :math:`(\tilde R, \lambda)`;
    :math:`\lambda \approx 1` when the correlations are at the noise level."""
    n, d = x.shape
    r = x.T @ x / n
    if d == 1:
        return r, 1.0
    sq = x * x
    off = ~np.eye(d, dtype=bool)
    noise = float(((sq.T @ sq) / n - r * r)[off].sum()) / n
    signal = float((r[off] ** 2).sum())
    lam = 1.0 if signal <= noise else noise / signal
    return (1.0 - lam) * r + lam * np.eye(d), lam


def _kl_parts(z: np.ndarray, m: int | None, negentropy: bool = True) -> dict[str, float]:
    """The two terms of :func:`kl_to_standard_normal` for a float64 sample ``z`` (n × d):
    ``gaussian`` (from the moments) and, if ``negentropy``, ``non_gaussian``."""
    n, d = z.shape
    if n < d + 2:
        raise ValueError(f"need more codes than dimensions (n >= d + 2): got n={n}, d={d}")
    mu = z.mean(0)
    c = z - mu
    cov = c.T @ c / (n - 1)
    tr = float(np.trace(cov))
    sd = np.sqrt(np.diag(cov))
    degenerate = {"gaussian": math.inf, "non_gaussian": math.inf}
    if (sd <= 1e-12 * np.abs(z).max(0)).any():  # a constant code dimension (to rounding)
        return degenerate
    corr_eig = np.linalg.eigvalsh(cov / np.outer(sd, sd))
    if corr_eig[0] <= 1e-12:  # collinear code dimensions (to rounding)
        return degenerate
    log_det = 2.0 * float(np.log(sd).sum()) + float(np.log(corr_eig).sum())
    mean_sq = float(mu @ mu) - tr / n  # unbiased for |mu|^2
    parts = {"gaussian": 0.5 * (tr + mean_sq - d - (log_det - wishart_log_det_bias(n, d)))}
    if negentropy:
        x = c / np.sqrt((c * c).mean(0))
        corr, _ = shrunk_correlation(x)
        vals, vecs = np.linalg.eigh(corr)
        w = x @ ((vecs / np.sqrt(vals)) @ vecs.T)  # symmetric (ZCA) whitening: closest to x
        w = w / np.sqrt((w * w).mean(0))
        h = m_spacing_entropy(torch.from_numpy(np.ascontiguousarray(w)), m).numpy()
        parts["non_gaussian"] = float((0.5 * math.log(2.0 * math.pi * math.e) - h).sum())
    return parts


def kl_to_standard_normal(codes: torch.Tensor, n: int = 2000, seed: int = 0,
                          m: int | None = None) -> float:
    r"""Calibrated estimate of :math:`\mathrm{KL}(q \,\Vert\, \mathcal N(0, I_d))` from codes
    (N × d): moments in closed form plus the non-Gaussianity of the whitened marginals.

    With :math:`\mu, \Sigma` the mean and covariance of :math:`q` and :math:`g = \mathcal N(\mu,
    \Sigma)`, :math:`\log \mathcal N(z; 0, I)` and :math:`\log g` are quadratic in :math:`z`, so
    their expectations are the same under :math:`q` and :math:`g`, and (Pythagoras for KL)

    .. math::

        \mathrm{KL}(q \Vert \mathcal N(0, I)) = \underbrace{\tfrac12\bigl(\operatorname{tr}\Sigma
        + \mu^\top\mu - d - \log\det\Sigma\bigr)}_{\mathrm{KL}(g \,\Vert\, \mathcal N(0, I))}
        + \underbrace{\mathrm{KL}(q \,\Vert\, g)}_{J(q) \,\ge\, 0}.

    *Moments*: on ``n`` codes drawn without replacement (``seed``), with the sample mean
    :math:`\hat\mu` and unbiased covariance :math:`S`: :math:`\operatorname{tr} S` and
    :math:`\hat\mu^\top\hat\mu - \operatorname{tr} S/n` are unbiased for any :math:`q`, and
    :math:`\log\det S - b_{n,d}` for Gaussian :math:`q`, with the Wishart bias :math:`b_{n,d}`
    of :func:`wishart_log_det_bias` (:math:`-4.2` nats at :math:`n = 2000`, :math:`d = 128`).
    For independent coordinates with excess kurtosis :math:`\kappa` the log-det bias differs
    by about :math:`d\kappa/(2n)`: 0.01 nats of KL for a uniform product at :math:`d = 64`.

    *Negentropy* :math:`J` is affine invariant. For whitened :math:`w`,
    :math:`J(w) = \sum_j J(w_j) + \bigl[\sum_j h(w_j) - h(w)\bigr] \ge \sum_j J(w_j)`
    (the bracket is the total correlation, :math:`\ge 0`, zero iff the :math:`w_j` are
    independent), with the 1-D negentropy :math:`J(w_j) = \tfrac12\log(2\pi e) - h(w_j)` at unit
    variance. So :math:`\hat J = \sum_j [\tfrac12\log(2\pi e) - \hat h(w_j)]` with the m-spacing
    estimate :math:`\hat h` (:func:`~entropic_ae.estimators.m_spacing_entropy`, bias below
    0.002 nats per coordinate at :math:`n = 2000`) is a lower bound of :math:`J`, exact for
    independent non-Gaussian coordinates. The codes are standardized and whitened with the
    Ledoit–Wolf-shrunk correlation (:func:`shrunk_correlation`): whitening with the raw sample
    correlation mixes each coordinate with :math:`O(\sqrt{d/n})` of the others and, measured at
    :math:`n = 2000`, hides 11 % (:math:`d = 16`) to 33 % (:math:`d = 128`) of the
    non-Gaussianity of a uniform product; the shrinkage is near 1 (no mixing) when the
    correlations are at the noise level and near 0 (full whitening) when they are real.
    FastICA (a rotation chosen to maximise non-Gaussianity) is not used: at :math:`n = 2000` it
    reports 1.2 nats of non-Gaussianity for exact Gaussian codes at :math:`d = 64` (6 at
    :math:`d = 128`), takes seconds, and lost most of a uniform product's at :math:`d \ge 64`.

    Accuracy at :math:`n = 2000` (tests): within :math:`\max(0.35, 25\,\%)` of the exact value
    for :math:`\mathcal N(0, I)`, correlated and scaled Gaussians and standardized uniform,
    Laplace, Student-t and two-bump products at :math:`d = 16` and :math:`64`.

    *What it cannot see*: dependence beyond correlation that leaves the marginals of the
    whitened coordinates Gaussian (uncorrelated coordinates with Gaussian marginals but a
    non-Gaussian joint law, e.g. pairs :math:`(g, \pm g)`, or codes uniform on the sphere of
    radius :math:`\sqrt d`: true KL :math:`+\infty`, estimate about 0), and non-Gaussianity
    hidden by a rotation (a rotated product of uniforms scores near 0). All of it is missed,
    never invented, since :math:`\hat J` estimates a lower bound. When the codes are strongly
    correlated, the whitening noise still dilutes sharp-edged non-Gaussianity (an
    equicorrelated (0.3) uniform product at :math:`d = 64`: about 13 % low). A degenerate
    sample (a constant or collinear code dimension: a standard deviation below
    :math:`10^{-12}` of the largest value, or a correlation eigenvalue below :math:`10^{-12}`)
    has :math:`\mathrm{KL} = +\infty`, which is returned. The estimate is not clipped at 0, so
    near 0 it can be slightly negative. Runs in about 0.1 s at :math:`n = 2000`,
    :math:`d = 128`.
    """
    z = _subsample(_as_code_matrix(codes), n, seed)
    parts = _kl_parts(z.numpy(), m)
    if math.isinf(parts["gaussian"]):
        return math.inf
    return parts["gaussian"] + parts["non_gaussian"]


def knn_kl_to_standard_normal(codes: torch.Tensor, n: int = 2000, seed: int = 0,
                              k: int = 1) -> float:
    r"""*Illustration of the Kozachenko–Leonenko estimator's bias, not a calibrated score*:
    :math:`-\hat H(q) + \mathbb E_q[\tfrac12\lVert z\rVert^2] + \tfrac d2\log 2\pi` with
    :math:`\hat H` the Kozachenko–Leonenko estimate (k-th neighbour) on ``n`` codes drawn
    without replacement (``seed``) and the expectation their mean, in float64.

    This was the book's first Gaussianity score. At :math:`n = 2000` the estimator's bias
    depends on the shape more than the shapes' entropies differ: for :math:`d = 16` it gives
    about :math:`-0.3` both for :math:`\mathcal N(0, I)` and for a standardized uniform cube
    (true KL 0 and 2.82; −0.38 and −0.23 for one draw each): negative, which a KL cannot be,
    and blind to 2.8 nats of difference. Use :func:`kl_to_standard_normal`.
    """
    z = _subsample(_as_code_matrix(codes), n, seed)
    d = z.shape[1]
    h = float(kozachenko_leonenko(z, k=k))
    return -h + 0.5 * float((z * z).sum(1).mean()) + 0.5 * d * math.log(2 * math.pi)


def code_moments(codes: torch.Tensor) -> dict[str, np.ndarray]:
    r"""Per-dimension mean, variance, skewness :math:`E[(z-\mu)^3]/\sigma^3` and excess
    kurtosis :math:`E[(z-\mu)^4]/\sigma^4 - 3` (population moments, float64); all four are
    0, 1, 0, 0 for :math:`\mathcal N(0, I)`."""
    z = _as_code_matrix(codes)
    mean = z.mean(0)
    c = z - mean
    var = (c * c).mean(0)
    std = var.clamp_min(torch.finfo(torch.float64).tiny).sqrt()
    skew = (c ** 3).mean(0) / std ** 3
    kurt = (c ** 4).mean(0) / std ** 4 - 3.0
    return {"mean": mean.numpy(), "var": var.numpy(), "skew": skew.numpy(),
            "excess_kurtosis": kurt.numpy()}


def gaussianity(codes: torch.Tensor, n: int = 2000, seed: int = 0, k: int = 1
                ) -> dict[str, float]:
    r"""How close codes are to :math:`\mathcal N(0, I)`: a summary for a results table.

    - ``kl_to_normal``: the calibrated :func:`kl_to_standard_normal` on ``min(n, N)`` codes,
      split into ``kl_moments`` (the Gaussian part, from mean and covariance) and
      ``kl_non_gaussian`` (the negentropy of the whitened marginals); all three are
      :math:`+\infty` for a degenerate sample (a constant or collinear code dimension);
    - ``kl_reference``: the same score for ``min(n, N)`` draws of an exact standard normal (its
      noise level: values near it are as Gaussian as the score can tell);
    - ``knn_kl_to_normal`` and ``knn_kl_reference``: the same two with the biased
      Kozachenko–Leonenko score :func:`knn_kl_to_standard_normal` (an illustration, not a
      measurement);
    - the mean over dimensions of |mean|, variance, |skewness| and |excess kurtosis|
      (:func:`code_moments`).
    """
    z = _as_code_matrix(codes)
    sub = _subsample(z, n, seed)
    ref = torch.randn(len(sub), z.shape[1], generator=torch.Generator().manual_seed(seed + 1),
                      dtype=torch.float64)
    parts = _kl_parts(sub.numpy(), None)
    kl = math.inf if math.isinf(parts["gaussian"]) else parts["gaussian"] + parts["non_gaussian"]
    mom = code_moments(z)
    return {
        "kl_to_normal": kl,
        "kl_moments": parts["gaussian"],
        "kl_non_gaussian": parts["non_gaussian"],
        "kl_reference": kl_to_standard_normal(ref, n=n, seed=seed),
        "knn_kl_to_normal": knn_kl_to_standard_normal(z, n=n, seed=seed, k=k),
        "knn_kl_reference": knn_kl_to_standard_normal(ref, n=n, seed=seed, k=k),
        "abs_mean": float(np.abs(mom["mean"]).mean()),
        "var": float(mom["var"].mean()),
        "abs_skew": float(np.abs(mom["skew"]).mean()),
        "abs_excess_kurtosis": float(np.abs(mom["excess_kurtosis"]).mean()),
    }


@torch.no_grad()
def reconstruction_mse(model: nn.Module, images: torch.Tensor, batch_size: int = 500) -> float:
    r"""Mean squared error per pixel, :math:`\frac{1}{N\,CHW}\sum_i\lVert \hat x_i - x_i\rVert^2`,
    of ``model(images)`` in eval mode (the mode is restored)."""
    if not isinstance(images, torch.Tensor) or images.dim() < 2 or len(images) == 0:
        raise ValueError("images must be a non-empty torch.Tensor (N, ...)")
    first = next(model.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    total = 0.0
    try:
        for i in range(0, len(images), batch_size):
            xb = images[i:i + batch_size].to(device)
            total += float((model(xb) - xb).double().pow(2).sum())
    finally:
        model.train(was_training)
    return total / images.numel()


def inception_feature_extractor(device: str | torch.device | None = None) -> FeatureExtractor:
    """Inception-v3 pool features (2048-d) for the standard FID, through ``torchmetrics``.

    Optional: needs ``pip install torchmetrics[image]`` and the FID Inception weights, which
    ``torchmetrics`` downloads on first use (impossible offline). The returned callable maps
    images in [0, 1] (N, 3, H, W) to features; pass it to :func:`frechet_distance_images`.
    Raises ``ImportError`` (package missing) or ``RuntimeError`` (weights unavailable).
    """
    try:
        from torchmetrics.image.fid import FrechetInceptionDistance
    except ImportError as err:
        raise ImportError("the Inception FID needs torchmetrics: pip install 'torchmetrics[image]'"
                          ) from err
    try:
        inception = FrechetInceptionDistance(feature=2048, normalize=True).inception
    except Exception as err:  # noqa: BLE001 - download or weight-loading failure
        raise RuntimeError(f"could not load the FID Inception weights ({err}); they are "
                           "downloaded by torchmetrics on first use and need internet") from err
    inception = inception.to(device if device is not None else "cpu").eval()

    def extract(images: torch.Tensor) -> torch.Tensor:
        if images.shape[1] == 1:
            images = images.repeat(1, 3, 1, 1)
        as_bytes = (images.clamp(0, 1) * 255).round().to(torch.uint8)
        return inception(as_bytes.to(next(inception.parameters()).device))

    return extract



@torch.no_grad()
def per_class_mse(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                  batch_size: int = 500) -> dict[int, float]:
    r"""Mean squared error per pixel of ``model(images)`` within each class:
    :math:`\mathrm{MSE}_c = \frac{1}{N_c\,CHW}\sum_{i: y_i = c}\lVert \hat x_i - x_i\rVert^2`.

    Returns ``{label: mse}`` for the labels present, in increasing order; eval mode as in
    :func:`reconstruction_mse` (the mode is restored). Accumulates in float64.
    """
    if not isinstance(images, torch.Tensor) or images.dim() < 2 or len(images) == 0:
        raise ValueError("images must be a non-empty torch.Tensor (N, ...)")
    if not isinstance(labels, torch.Tensor) or labels.shape != (len(images),):
        raise ValueError(f"labels must be a tensor of shape ({len(images)},), one per image")
    if labels.is_floating_point() or labels.is_complex():
        raise TypeError(f"labels must be integers, got {labels.dtype}")
    first = next(model.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    per_image = []
    try:
        for i in range(0, len(images), batch_size):
            xb = images[i:i + batch_size].to(device)
            per_image.append((model(xb) - xb).double().pow(2).flatten(1).sum(1).cpu())
    finally:
        model.train(was_training)
    errors = torch.cat(per_image)
    pixels = images[0].numel()
    labels = labels.cpu()
    return {int(c): float(errors[labels == c].sum()) / (int((labels == c).sum()) * pixels)
            for c in torch.unique(labels).tolist()}
