"""The Fréchet distance and image features."""


import numpy as np
import pytest
import scipy.linalg
import scipy.stats
import torch

from entropic_ae.metrics import (
    frechet_distance,
    frechet_distance_images,
    gaussian_frechet_distance,
    image_features,
)


def reference_frechet(mu1, s1, mu2, s2):
    """The textbook formula with scipy's general matrix square root (float64)."""
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    covmean = np.real(covmean)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * covmean))


def random_spd(d, rng):
    a = rng.standard_normal((d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_analytic_value_for_diagonal_covariances():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    a, b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = 1.0 + 4.0 + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()  # = 5 + 4 + 1 + 0
    assert gaussian_frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected)


def test_matches_scipy_sqrtm_for_non_commuting_covariances():
    rng = np.random.default_rng(0)
    for d in (2, 5, 20):
        s1, s2 = random_spd(d, rng), random_spd(d, rng)
        mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
        assert gaussian_frechet_distance(mu1, s1, mu2, s2) == pytest.approx(
            reference_frechet(mu1, s1, mu2, s2), rel=1e-8, abs=1e-9)


def test_singular_covariances_stay_real_and_non_negative():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((3, 10))
    s = a.T @ a  # rank 3 in 10 dimensions
    assert gaussian_frechet_distance(np.zeros(10), s, np.zeros(10), s) == pytest.approx(0, abs=1e-7)


def test_samples_from_two_gaussians_approach_the_analytic_value():
    rng = np.random.default_rng(2)
    s1, s2 = random_spd(4, rng), random_spd(4, rng)
    mu1, mu2 = np.zeros(4), np.full(4, 0.5)
    x = rng.multivariate_normal(mu1, s1, size=200_000)
    y = rng.multivariate_normal(mu2, s2, size=200_000)
    assert frechet_distance(x, y) == pytest.approx(gaussian_frechet_distance(mu1, s1, mu2, s2),
                                                   rel=0.02)


def test_a_set_with_itself_is_zero_and_noise_increases_it():
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(2000, 16, generator=gen) @ torch.randn(16, 16, generator=gen)
    assert frechet_distance(feats, feats) == pytest.approx(0.0, abs=1e-6)
    noise = torch.randn(feats.shape, generator=gen)
    values = [frechet_distance(feats + s * noise, feats) for s in (0.1, 0.5, 1.0, 2.0)]
    assert all(a < b for a, b in zip(values, values[1:], strict=False))


def test_images_through_any_feature_extractor():
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(300, 1, 28, 28, generator=gen)
    proj = torch.randn(784, 8, generator=gen)

    def extractor(x):
        return x.flatten(1) @ proj

    assert frechet_distance_images(images, images, extractor) == pytest.approx(0, abs=1e-5)
    noisy = (images + 0.3 * torch.randn(images.shape, generator=gen)).clamp(0, 1)
    fd = frechet_distance_images(noisy, images, extractor, batch_size=64)
    ref_feats = image_features(images, extractor)
    assert fd > 0 and frechet_distance_images(noisy, ref_feats, extractor) == pytest.approx(fd)


# --- covariances must be covariances; thresholds must be numbers -----------------------------


@pytest.mark.parametrize(
    ("sigma", "message"),
    [(-5 * np.eye(3), "positive semi-definite"),
     (np.diag([1.0, 2.0, -0.5]), "positive semi-definite"),
     (np.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]), "symmetric")],
    ids=["minus-5-identity", "one-negative-eigenvalue", "asymmetric"],
)
def test_frechet_refuses_matrices_that_are_not_covariances(sigma, message):
    mu = np.zeros(3)
    for args in ((mu, sigma, mu, np.eye(3)), (mu, np.eye(3), mu, sigma), (mu, sigma, mu, sigma)):
        with pytest.raises(ValueError, match=message):
            gaussian_frechet_distance(*args)


def test_frechet_accepts_rounding_noise_of_real_covariances():
    rng = np.random.default_rng(3)
    feats = rng.standard_normal((50, 64)).astype(np.float32)  # N < F: singular
    s32 = np.cov(feats, rowvar=False).astype(np.float32)
    noisy = s32.astype(np.float64) * (1 + 1e-12 * rng.standard_normal(s32.shape))
    mu = feats.mean(0)
    for s in (s32, noisy):
        assert gaussian_frechet_distance(mu, s, mu, s) == pytest.approx(0.0, abs=1e-3)
    zero = np.zeros((3, 3))
    assert gaussian_frechet_distance(np.zeros(3), zero, np.ones(3), zero) == pytest.approx(3.0)
