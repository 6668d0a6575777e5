"""Active units."""

import math

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
import torch
from torch import nn

from entropic_ae.metrics import (
    active_units,
    code_moments,
    frechet_distance,
    frechet_distance_images,
    gaussian_frechet_distance,
    gaussianity,
    image_features,
    kl_to_standard_normal,
    per_class_mse,
    reconstruction_mse,
)


def test_counts_dimensions_above_threshold():
    gen = torch.Generator().manual_seed(0)
    codes = torch.randn(1000, 6, generator=gen)
    codes[:, 1] = 3.0  # constant: inactive
    codes[:, 4] *= 0.01  # variance 1e-4: inactive
    assert active_units(codes) == 4
    assert active_units(codes, threshold=0.0) == 5


@pytest.mark.parametrize(
    "codes, threshold, error",
    [
        (torch.randn(10), 0.01, ValueError),
        (torch.randn(1, 3), 0.01, ValueError),
        (torch.randn(10, 3), -1.0, ValueError),
        ([[0.0, 1.0]], 0.01, TypeError),
        (torch.tensor([[0.0, float("nan")], [1.0, 2.0]]), 0.01, ValueError),
    ],
)
def test_invalid_input(codes, threshold, error):
    with pytest.raises(error):
        active_units(codes, threshold)


class Halve(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(0.5))

    def forward(self, x):
        return self.scale * x


def test_per_class_mse_matches_loop():
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(23, 1, 4, 4, generator=gen)
    labels = torch.randint(0, 3, (23,), generator=gen)
    labels[0] = 5
    got = per_class_mse(Halve(), images, labels, batch_size=4)
    assert list(got) == sorted(set(labels.tolist()))
    for c, value in got.items():
        chosen = [x for x, y in zip(images.tolist(), labels.tolist(), strict=True) if y == c]
        flat = [v for img in chosen for row in img[0] for v in row]
        want = sum((0.5 * v - v) ** 2 for v in flat) / len(flat)
        assert value == pytest.approx(want, rel=1e-12)


def test_per_class_mse_restores_mode_and_checks_input():
    model = Halve().train()
    images = torch.rand(6, 1, 2, 2)
    per_class_mse(model, images, torch.tensor([0, 1, 0, 1, 0, 1]))
    assert model.training
    with pytest.raises(ValueError, match="labels"):
        per_class_mse(model, images, torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="integers"):
        per_class_mse(model, images, torch.zeros(6))
    with pytest.raises(ValueError, match="non-empty"):
        per_class_mse(model, images[:0], torch.zeros(0, dtype=torch.long))


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


def test_kl_to_normal_matches_the_analytic_kl():
    """KL(N(m, s² I) || N(0, I)) = ½ Σ (s² + m² − 1 − log s²)."""
    gen = torch.Generator().manual_seed(0)
    d, m, s = 2, 0.5, 1.5
    z = m + s * torch.randn(20_000, d, generator=gen, dtype=torch.float64)
    expected = 0.5 * d * (s**2 + m**2 - 1 - math.log(s**2))
    assert kl_to_standard_normal(z, n=5000) == pytest.approx(expected, abs=0.06)
    assert abs(kl_to_standard_normal(torch.randn(20_000, d, generator=gen), n=5000)) < 0.05


def test_gaussianity_summary():
    gen = torch.Generator().manual_seed(0)
    normal = torch.randn(3000, 4, generator=gen)
    skewed = torch.exp(torch.randn(3000, 4, generator=gen))
    skewed = (skewed - skewed.mean(0)) / skewed.std(0)
    g_normal, g_skewed = gaussianity(normal), gaussianity(skewed)
    assert g_normal["kl_to_normal"] < 0.1 and g_skewed["kl_to_normal"] > 0.3
    assert g_normal["kl_reference"] == pytest.approx(g_skewed["kl_reference"])
    assert g_skewed["abs_skew"] > 2 > 0.2 > g_normal["abs_skew"]
    assert g_normal["var"] == pytest.approx(1, abs=0.1)


def test_code_moments_match_scipy():
    z = torch.randn(500, 3, generator=torch.Generator().manual_seed(1)) ** 3
    mom = code_moments(z)
    x = z.double().numpy()
    np.testing.assert_allclose(mom["mean"], x.mean(0))
    np.testing.assert_allclose(mom["var"], x.var(0))
    np.testing.assert_allclose(mom["skew"], scipy.stats.skew(x, axis=0))
    np.testing.assert_allclose(mom["excess_kurtosis"], scipy.stats.kurtosis(x, axis=0))


def test_reconstruction_mse():
    x = torch.rand(20, 1, 4, 4)
    assert reconstruction_mse(torch.nn.Identity(), x) == 0.0
    zero = torch.nn.Conv2d(1, 1, 1, bias=False)
    torch.nn.init.zeros_(zero.weight)
    assert reconstruction_mse(zero, x, batch_size=7) == pytest.approx(float(x.pow(2).mean()))


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda: frechet_distance(torch.randn(10, 3), torch.randn(10, 4)), ValueError),
        (lambda: frechet_distance(torch.randn(1, 3), torch.randn(10, 3)), ValueError),
        (lambda: frechet_distance(torch.randn(10), torch.randn(10, 3)), ValueError),
        (lambda: frechet_distance([[1.0, 2.0]], torch.randn(10, 2)), TypeError),
        (lambda: frechet_distance(torch.full((5, 2), float("nan")), torch.randn(5, 2)),
         ValueError),
        (lambda: gaussian_frechet_distance(np.zeros(2), np.eye(3), np.zeros(2), np.eye(2)),
         ValueError),
        (lambda: kl_to_standard_normal(torch.randn(2, 3)), ValueError),
        (lambda: kl_to_standard_normal([[0.0]]), TypeError),
        (lambda: image_features(torch.rand(3, 28, 28), lambda x: x), ValueError),
    ],
)
def test_invalid_input_to_frechet_and_gaussianity(call, error):
    with pytest.raises(error):
        call()


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


@pytest.mark.parametrize(
    ("threshold", "error"),
    [(float("nan"), ValueError), (float("inf"), ValueError), (np.float64("nan"), ValueError),
     (-0.5, ValueError), (True, TypeError), ("0.01", TypeError), (None, TypeError)],
)
def test_active_units_threshold_must_be_finite_and_non_negative(threshold, error):
    with pytest.raises(error, match="threshold"):
        active_units(torch.randn(20, 3), threshold)


def test_numpy_scalars_are_accepted_as_numbers():
    gen = torch.Generator().manual_seed(0)
    codes = torch.randn(500, 3, generator=gen)
    assert active_units(codes, np.float32(0.01)) == active_units(codes, 0.01)
    assert active_units(codes, np.int64(0)) == 3
    z = torch.randn(300, 2, generator=gen, dtype=torch.float64)
    assert kl_to_standard_normal(z, n=np.int64(100), seed=np.int64(1), k=np.int64(2)) == \
        kl_to_standard_normal(z, n=100, seed=1, k=2)
    assert gaussianity(z, n=np.int64(100))["kl_to_normal"] == gaussianity(z, n=100)["kl_to_normal"]
    images = torch.rand(5, 1, 4, 4, generator=gen)
    assert image_features(images, lambda x: x.flatten(1), batch_size=np.int64(2)).shape == (5, 16)
    with pytest.raises(ValueError, match="n must be"):
        kl_to_standard_normal(z, n=True)
    with pytest.raises(ValueError, match="seed"):
        kl_to_standard_normal(z, seed=-1)
