"""The estimators of the dependence part: ranks, the copula term, nearest neighbours, ICA."""

import math

import numpy as np
import pytest
import torch

from entropic_ae import synthetic
from entropic_ae.estimators import kozachenko_leonenko, random_rotation
from entropic_ae.metrics.dependence import (
    copula_correlation_term,
    ica_unmixing,
    knn_entropy,
    knn_negentropy,
    rank_gaussianise,
)
from entropic_ae.synthetic import dependent


def test_rank_gaussianise_by_hand():
    y = np.array([[3.0, 10.0], [1.0, 30.0], [2.0, 20.0]])
    u = rank_gaussianise(y)
    q = [-0.6744897501960817, 0.0, 0.6744897501960817]  # Phi^-1(1/4), Phi^-1(2/4), Phi^-1(3/4)
    np.testing.assert_allclose(u[:, 0], [q[2], q[0], q[1]])
    np.testing.assert_allclose(u[:, 1], [q[0], q[2], q[1]])
    # monotone maps of a column change nothing
    np.testing.assert_allclose(rank_gaussianise(np.exp(y)), u)
    with pytest.raises(ValueError):
        rank_gaussianise(np.zeros(4))


def test_copula_term_of_a_gaussian_copula():
    """z = F^{-1}(Phi(g)), g ~ N(0, C): u is g up to the ranks' noise, so the term is
    1/2 (log det R_z - log det C), from the exact correlations (0.11 nats at d = 8); for a
    correlated Gaussian it is 0."""
    z = dependent.sample("gaussian-copula", 20_000, 8, rho=0.5, seed=0).numpy()
    value, u = copula_correlation_term(z)
    c = 0.5 * np.eye(8) + 0.5
    r = 6 / math.pi * math.asin(0.25)
    rz = (1 - r) * np.eye(8) + r
    want = 0.5 * (np.linalg.slogdet(rz)[1] - np.linalg.slogdet(c)[1])
    assert value == pytest.approx(want, abs=0.01)
    assert u.shape == z.shape
    gauss = synthetic.sample("correlated-gaussian", 2000, 8, rho=0.5, seed=1).numpy()
    assert abs(copula_correlation_term(gauss)[0]) < 0.01


def test_knn_entropy_matches_the_torch_estimator():
    x = synthetic.sample("laplace", 500, 3, seed=2)
    for k in (1, 4):
        assert knn_entropy(x.numpy(), k) == pytest.approx(float(kozachenko_leonenko(x, k=k)),
                                                         rel=1e-10)


@pytest.mark.parametrize("d, n", [(2, 5000), (16, 2000)])
def test_knn_negentropy_is_zero_for_gaussians(d, n):
    """Mean over 10 draws within 0.015 of 0, each within 0.08 (sd about 0.01 at d = 2,
    0.02 at d = 16); correlated Gaussians too (it whitens first)."""
    values = [knn_negentropy(np.random.default_rng(s).standard_normal((n, d))) for s in range(10)]
    assert abs(np.mean(values)) < 0.015 and max(map(abs, values)) < 0.08
    corr = synthetic.sample("correlated-gaussian", n, d, rho=0.6, seed=3).numpy()
    assert abs(knn_negentropy(corr)) < 0.08


def test_knn_negentropy_sees_sign_pairs_in_two_dimensions():
    """(a, |b| sign a): Gaussian marginals, KL log 2 = 0.69 of which 0.26 is correlation;
    the rank-Gaussianised pair keeps the rest, J = 0.43, which 2-D neighbours see."""
    pair = dependent.sample("sign-pairs", 5000, 2, seed=4).numpy()
    truth = dependent.parts("sign-pairs", 2)["non_gaussian"]
    assert knn_negentropy(pair) == pytest.approx(truth, abs=0.05)
    with pytest.raises(ValueError, match="more samples"):
        knn_negentropy(pair[:2])


def test_ica_unmixing_recovers_a_rotated_product():
    """Fitted on one sample, applied to another: the rotated coordinates are the product's
    up to order and sign (each row of the overall map has one entry near +-1)."""
    q = random_rotation(6, torch.Generator().manual_seed(0), dtype=torch.float64).numpy()
    s = synthetic.sample("uniform", 4000, 6, seed=5).numpy()
    mean, m = ica_unmixing(s[:2000] @ q.T, seed=0)
    overall = q.T @ m  # sources -> recovered coordinates
    assert np.sort(np.abs(overall).max(0)).min() > 0.95
    y = (s[2000:] @ q.T - mean) @ m
    np.testing.assert_allclose(np.cov(y, rowvar=False), np.eye(6), atol=0.1)
