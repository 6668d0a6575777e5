r"""Drawing latent codes for a trained autoencoder, and walking between codes.

Two priors for generation:

* the isotropic prior :math:`z \sim \mathcal N(0, I_d)`, the target of the VAE, the WAE and
  the entropic autoencoder;
* a Gaussian mixture fitted to the codes of the training set after training
  ("ex-post density estimation", Ghosh et al. 2019): 10 components with full covariance,
  :math:`p(z) = \sum_k \pi_k \mathcal N(z; \mu_k, \Sigma_k)`.

Both draw from their own seeded generators, so a given ``seed`` always gives the same codes
and nothing touches the global random state; :func:`interpolate` walks linearly between codes.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits

from entropic_ae._checks import check_int as _check_int

__all__ = ["decode", "encode", "fit_gmm", "interpolate", "sample_gmm", "sample_normal"]


def as_float64_matrix(codes: torch.Tensor | np.ndarray, name: str = "codes") -> np.ndarray:
    """``codes`` (tensor or array, N × d) as a finite float64 NumPy matrix, or a clear error."""
    if isinstance(codes, torch.Tensor):
        codes = codes.detach().cpu().to(torch.float64).numpy()
    elif not isinstance(codes, np.ndarray):
        raise TypeError(f"{name} must be a torch.Tensor or numpy array of shape (N, d), "
                        f"got {type(codes).__name__}")
    codes = np.asarray(codes, dtype=np.float64)
    if codes.ndim != 2:
        raise ValueError(f"{name} must have shape (N, d), got {codes.shape}")
    if not np.isfinite(codes).all():
        raise ValueError(f"{name} contain NaN or infinite entries")
    return codes


def sample_normal(n: int, latent_dim: int, seed: int = 0) -> torch.Tensor:
    r"""``n`` codes from :math:`\mathcal N(0, I_d)` (float32, CPU) from a generator seeded
    with ``seed``."""
    n = _check_int("n", n, 1)
    latent_dim = _check_int("latent_dim", latent_dim, 1)
    seed = _check_int("seed", seed, 0)
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, latent_dim, generator=gen)


def fit_gmm(codes: torch.Tensor | np.ndarray, n_components: int = 10,
            covariance_type: str = "full", seed: int = 0,
            reg_covar: float = 1e-6) -> GaussianMixture:
    r"""Fit :math:`\sum_k \pi_k \mathcal N(\mu_k, \Sigma_k)` to ``codes`` (N × d) by EM.

    scikit-learn's :class:`~sklearn.mixture.GaussianMixture` in float64 with
    ``random_state=seed`` (k-means initialisation), so the fit is reproducible. The fit runs
    with one BLAS/OpenMP thread: the matrices are small (d × d), and on a busy CPU
    multi-threaded BLAS made it 10–15 times slower without changing the result.
    """
    x = as_float64_matrix(codes)
    n_components = _check_int("n_components", n_components, 1)
    if x.shape[0] < n_components:
        raise ValueError(f"need at least n_components={n_components} codes to fit the mixture, "
                         f"got {x.shape[0]}")
    if covariance_type not in ("full", "tied", "diag", "spherical"):
        raise ValueError("covariance_type must be 'full', 'tied', 'diag' or 'spherical', "
                         f"got {covariance_type!r}")
    seed = _check_int("seed", seed, 0)
    gmm = GaussianMixture(n_components=n_components, covariance_type=covariance_type,
                          random_state=seed, reg_covar=reg_covar)
    with threadpool_limits(limits=1):
        gmm.fit(x)
    return gmm


def _full_covariances(gmm: GaussianMixture) -> np.ndarray:
    """The components' covariances as a (K, d, d) array, whatever ``covariance_type``."""
    k, d = gmm.means_.shape
    cov = np.asarray(gmm.covariances_, dtype=np.float64)
    if gmm.covariance_type == "full":
        return cov
    if gmm.covariance_type == "tied":
        return np.broadcast_to(cov, (k, d, d))
    return cov.reshape(k, 1, -1) * np.eye(d)  # diag (k, d) or spherical (k,): scaled identities


def sample_gmm(gmm: GaussianMixture, n: int, seed: int = 0) -> torch.Tensor:
    r"""``n`` codes (float32, CPU) from a fitted mixture, in random order.

    Draw component :math:`c_i \sim \mathrm{Cat}(\pi)`, then
    :math:`z_i = \mu_{c_i} + L_{c_i}\varepsilon_i` with :math:`\Sigma_c = L_c L_c^\top`
    (Cholesky) and :math:`\varepsilon_i \sim \mathcal N(0, I)`, from a NumPy generator seeded
    with ``seed``. (scikit-learn's own ``sample`` returns the codes grouped by component.)
    """
    if not isinstance(gmm, GaussianMixture):
        raise TypeError(f"gmm must be a fitted sklearn GaussianMixture, got {type(gmm).__name__}")
    if not hasattr(gmm, "means_"):
        raise ValueError("gmm is not fitted yet; call fit_gmm(codes) first")
    n = _check_int("n", n, 1)
    seed = _check_int("seed", seed, 0)
    rng = np.random.default_rng(seed)
    weights = np.asarray(gmm.weights_, dtype=np.float64)
    weights = weights / weights.sum()
    comp = rng.choice(len(weights), size=n, p=weights)
    eps = rng.standard_normal((n, gmm.means_.shape[1]))
    chol = np.linalg.cholesky(_full_covariances(gmm))
    z = gmm.means_[comp] + np.einsum("nij,nj->ni", chol[comp], eps)
    return torch.from_numpy(z.astype(np.float32))


def interpolate(z0: torch.Tensor, z1: torch.Tensor, steps: int = 8) -> torch.Tensor:
    r"""Codes on the segment from ``z0`` to ``z1``: :math:`(1-t)z_0 + t z_1` for ``steps``
    values of :math:`t` evenly spaced in :math:`[0, 1]` (both ends included).

    ``z0`` and ``z1`` are (d,) or (P, d) (P pairs); the result is (steps, d) or
    (P, steps, d).
    """
    if not isinstance(z0, torch.Tensor) or not isinstance(z1, torch.Tensor):
        raise TypeError("z0 and z1 must be torch.Tensors of shape (d,) or (P, d)")
    if z0.shape != z1.shape or z0.dim() not in (1, 2):
        raise ValueError(f"z0 and z1 must have the same shape, (d,) or (P, d); "
                         f"got {tuple(z0.shape)} and {tuple(z1.shape)}")
    steps = _check_int("steps", steps, 2)
    t = torch.linspace(0.0, 1.0, steps, dtype=z0.dtype, device=z0.device)
    return (1.0 - t)[:, None] * z0.unsqueeze(-2) + t[:, None] * z1.unsqueeze(-2)  # (..., steps, d)


@torch.no_grad()
def _in_batches(model: torch.nn.Module, fn: Callable[[torch.Tensor], torch.Tensor],
                x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """``fn`` on ``x`` batch by batch on the model's device, in eval mode (the model's mode is
    restored afterwards), concatenated on the CPU."""
    batch_size = _check_int("batch_size", batch_size, 1)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        out = [fn(x[i:i + batch_size].to(device)).cpu() for i in range(0, len(x), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(out)


def encode(model: torch.nn.Module, images: torch.Tensor, batch_size: int = 500,
           pre_norm: bool = False) -> torch.Tensor:
    """Codes of ``images`` under ``model.encode`` in evaluation mode (CPU, float32).

    ``pre_norm=True`` returns the encoder's output before the bottleneck batch norm (for
    active units). The model's train/eval mode is restored afterwards.
    """
    return _in_batches(model, lambda b: model.encode(b, pre_norm=pre_norm), images, batch_size)


def decode(model: torch.nn.Module, codes: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Images ``model.decode(codes)`` in evaluation mode (CPU, float32), batch by batch."""
    batch_size = _check_int("batch_size", batch_size, 1)
    if not isinstance(codes, torch.Tensor) or codes.dim() != 2:
        raise ValueError("codes must be a torch.Tensor of shape (N, d)")
    return _in_batches(model, model.decode, codes, batch_size)
