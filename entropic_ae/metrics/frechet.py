"""The Fréchet distance between two sets of feature vectors (FID with Inception features; the
book uses a LeNet's, :mod:`entropic_ae.models.lenet`)."""

from __future__ import annotations

import numpy as np
import torch

from entropic_ae.metrics.features import FeatureExtractor, image_features
from entropic_ae.sampling import as_float64_matrix

__all__ = ["frechet_distance", "frechet_distance_images", "gaussian_frechet_distance"]


def _as_float64_features(x: torch.Tensor | np.ndarray, name: str) -> np.ndarray:
    x = as_float64_matrix(x, name)
    if x.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 rows to estimate a covariance, got {x.shape[0]}")
    return x


def _check_covariance(name: str, s: np.ndarray, dtype: np.dtype) -> None:
    """ValueError unless ``s`` is symmetric and positive semi-definite, both within a tolerance
    relative to its scale (largest absolute entry; largest absolute eigenvalue): 1000 machine
    epsilons of ``dtype`` (the one it was given in), of float32 at least (a covariance computed
    in float32 and converted keeps float32's rounding noise), at most 1e-2."""
    eps = float(np.finfo(np.float32).eps)
    if np.issubdtype(dtype, np.floating):
        eps = max(eps, float(np.finfo(dtype).eps))
    tol = min(1e-2, 1000.0 * eps)
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
    dtypes = [np.asarray(s).dtype for s in (sigma1, sigma2)]
    mu1, mu2 = np.asarray(mu1, dtype=np.float64), np.asarray(mu2, dtype=np.float64)
    s1, s2 = np.asarray(sigma1, dtype=np.float64), np.asarray(sigma2, dtype=np.float64)
    f = mu1.shape[0]
    if mu1.shape != (f,) or mu2.shape != (f,) or s1.shape != (f, f) or s2.shape != (f, f):
        raise ValueError(f"need means (F,) and covariances (F, F) of one size; got "
                         f"{mu1.shape}, {s1.shape}, {mu2.shape}, {s2.shape}")
    if not all(np.isfinite(arr).all() for arr in (mu1, mu2, s1, s2)):
        raise ValueError("means and covariances must be finite")
    _check_covariance("sigma1", s1, dtypes[0])
    _check_covariance("sigma2", s2, dtypes[1])
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
    features of a small digit classifier, see :func:`~entropic_ae.models.lenet.feature_network`.
    """
    x = _as_float64_features(x_features, "x_features")
    y = _as_float64_features(y_features, "y_features")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"feature dimensions differ: {x.shape[1]} vs {y.shape[1]}")
    return gaussian_frechet_distance(x.mean(0), np.cov(x, rowvar=False, ddof=1).reshape(
        x.shape[1], x.shape[1]), y.mean(0), np.cov(y, rowvar=False, ddof=1).reshape(
        y.shape[1], y.shape[1]))


def frechet_distance_images(generated: torch.Tensor, reference: torch.Tensor,
                            feature_extractor: FeatureExtractor, batch_size: int = 500) -> float:
    """Fréchet distance between images in the feature space of ``feature_extractor``.

    ``generated`` and ``reference`` are images (N, C, H, W); ``reference`` may also be features
    (M, F) computed once with :func:`image_features`. Any extractor works, e.g.
    :class:`~entropic_ae.models.lenet.LeNetFeatures` for grey digits, or for the standard FID
    Inception-v3's 2048-d pool features (:func:`inception_feature_extractor`, a download).
    """
    gen = image_features(generated, feature_extractor, batch_size)
    if not (isinstance(reference, torch.Tensor) and reference.dim() == 2):
        reference = image_features(reference, feature_extractor, batch_size)
    return frechet_distance(gen, reference)
