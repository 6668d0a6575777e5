"""Active units."""

import math
import time

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
import torch
from torch import nn

from entropic_ae import synthetic
from entropic_ae.estimators import random_rotation
from entropic_ae.metrics import (
    ablation_active_units,
    active_units,
    code_moments,
    frechet_distance,
    frechet_distance_images,
    gaussian_frechet_distance,
    gaussianity,
    image_features,
    kl_to_standard_normal,
    knn_kl_to_standard_normal,
    per_class_mse,
    reconstruction_mse,
    shrunk_correlation,
    unit_ablation,
    wishart_log_det_bias,
)
from entropic_ae.models.mlp import MLPAutoencoder


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
    assert kl_to_standard_normal(z, n=5000) == pytest.approx(expected, abs=0.04)
    assert abs(kl_to_standard_normal(torch.randn(20_000, d, generator=gen), n=5000)) < 0.02


# Known answers at n = 2000 (synthetic.kl_to_standard_normal gives the exact values). Their
# true values are at least 0.19 nats apart in each dimension, so the ranking is tested too.
KNOWN = [("gaussian", {}), ("student-t", {}), ("laplace", {}),
         ("correlated-gaussian", {"rho": 0.3}), ("uniform", {}), ("two-bump", {}),
         ("scaled-gaussian", {"sigma": 1.5})]


@pytest.mark.parametrize("d", [16, 64])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_calibrated_kl_against_known_answers(d, seed):
    """Each single draw of n = 2000 within max(0.35 nats, 25 %) of the truth, and in the true
    order (ascending here)."""
    truths, estimates = [], []
    for kind, params in KNOWN:
        truth = synthetic.kl_to_standard_normal(kind, d, **params)
        est = kl_to_standard_normal(synthetic.sample(kind, 2000, d, seed=seed, **params))
        assert abs(est - truth) < max(0.35, 0.25 * truth), (kind, est, truth)
        truths.append(truth)
        estimates.append(est)
    assert truths == sorted(truths) and min(np.diff(truths)) > 0.19
    assert estimates == sorted(estimates)


def test_calibrated_kl_is_accurate_on_average():
    """Twenty draws at d = 64: the mean is within 0.05 nats of 0 for N(0, I) and within 1.5 %
    and 2.5 % of the truth for a uniform product (11.3 nats) and a correlated Gaussian (9.7
    nats; the noise of its largest covariance eigenvalue gives 0.33 nats of spread per draw)."""
    for kind, params, tol in [("gaussian", {}, 0.05), ("uniform", {}, 0.15),
                              ("correlated-gaussian", {"rho": 0.3}, 0.25)]:
        est = [kl_to_standard_normal(synthetic.sample(kind, 2000, 64, seed=s + 10, **params))
               for s in range(20)]
        assert np.mean(est) == pytest.approx(synthetic.kl_to_standard_normal(kind, 64, **params),
                                             abs=tol)


def test_old_knn_score_cannot_tell_a_cube_from_a_gaussian():
    """The Kozachenko–Leonenko score (kept as an illustration) at d = 16, n = 2000: negative
    for both, which a KL cannot be, and 2.82 nats of true difference shrink below 0.5; the
    calibrated score gets both right."""
    cube = synthetic.sample("uniform", 2000, 16, seed=0)
    normal = synthetic.sample("gaussian", 2000, 16, seed=0)
    knn_cube, knn_normal = knn_kl_to_standard_normal(cube), knn_kl_to_standard_normal(normal)
    assert knn_normal < -0.2 and knn_cube < -0.1 and abs(knn_cube - knn_normal) < 0.5
    assert kl_to_standard_normal(cube) > 2.5 > 0.05 > abs(kl_to_standard_normal(normal))


def test_calibrated_kl_cannot_see_a_rotated_product():
    """What it cannot see (documented): non-Gaussianity that a rotation hides from the
    marginals. A randomly rotated uniform product has the same KL as the product (2.82 nats)."""
    q = random_rotation(16, torch.Generator().manual_seed(0), dtype=torch.float64)
    cube = synthetic.sample("uniform", 2000, 16, seed=0)
    assert abs(kl_to_standard_normal(cube @ q)) < 0.35 < 2.5 < kl_to_standard_normal(cube)


def test_calibrated_kl_is_fast_at_the_book_scale():
    """About 0.05 s warm at n = 2000, d = 128 (it is called for every model of a chapter)."""
    z = synthetic.sample("two-bump", 2000, 128, seed=0)
    kl_to_standard_normal(z[:500, :8])  # warm up (first calls set up BLAS and caches)
    start = time.perf_counter()
    value = kl_to_standard_normal(z)
    assert time.perf_counter() - start < 1.0
    assert value == pytest.approx(synthetic.kl_to_standard_normal("two-bump", 128), rel=0.1)


def test_calibrated_kl_of_degenerate_codes_is_infinite():
    z = torch.randn(500, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    z[:, 2] = 0.3  # an inactive code dimension
    assert kl_to_standard_normal(z) == math.inf
    z[:, 2] = z[:, 0] - z[:, 1]  # collinear
    assert kl_to_standard_normal(z) == math.inf
    with pytest.raises(ValueError, match="more codes than dimensions"):
        kl_to_standard_normal(torch.randn(10, 9))


def test_wishart_log_det_bias_matches_monte_carlo():
    rng = np.random.default_rng(0)
    n, d, draws = 30, 6, 20_000
    x = rng.standard_normal((draws, n, d))
    c = x - x.mean(1, keepdims=True)
    log_dets = np.linalg.slogdet(np.einsum("kni,knj->kij", c, c) / (n - 1))[1]
    assert wishart_log_det_bias(n, d) == pytest.approx(log_dets.mean(),
                                                       abs=4 * log_dets.std() / math.sqrt(draws))
    # the large-n expansion -d(d+1)/(2n)
    assert wishart_log_det_bias(2000, 128) == pytest.approx(-128 * 129 / 4000, rel=0.05)
    with pytest.raises(ValueError):
        wishart_log_det_bias(5, 5)


def test_shrunk_correlation():
    rng = np.random.default_rng(1)
    # the Ledoit–Wolf weight, written out with loops over pairs and samples
    x = rng.standard_normal((40, 3))
    x = (x - x.mean(0)) / x.std(0)
    r = x.T @ x / 40
    noise = sum(((x[:, i] * x[:, j] - r[i, j]) ** 2).sum() / 40**2
                for i in range(3) for j in range(3) if i != j)
    signal = sum(r[i, j] ** 2 for i in range(3) for j in range(3) if i != j)
    got, lam = shrunk_correlation(x)
    assert lam == pytest.approx(min(1.0, noise / signal))
    np.testing.assert_allclose(got, (1 - lam) * r + lam * np.eye(3))
    # independent coordinates: shrink (nearly) all the way; real correlation: hardly at all
    assert shrunk_correlation(synthetic.sample("uniform", 2000, 16).numpy())[1] > 0.8
    corr = synthetic.sample("correlated-gaussian", 2000, 16, rho=0.3).numpy()
    assert shrunk_correlation(corr / corr.std(0))[1] < 0.1


def test_gaussianity_summary():
    gen = torch.Generator().manual_seed(0)
    normal = torch.randn(3000, 4, generator=gen)
    skewed = torch.exp(torch.randn(3000, 4, generator=gen))
    skewed = (skewed - skewed.mean(0)) / skewed.std(0)
    g_normal, g_skewed = gaussianity(normal), gaussianity(skewed)
    # a standardized log-normal(0, 1) coordinate: h = ½ log(2πe) − ½ log((e − 1) e), so the KL
    # per coordinate is ½ log((e − 1) e) = 0.771
    lognormal = 4 * 0.5 * math.log((math.e - 1) * math.e)
    assert abs(g_normal["kl_to_normal"]) < 0.05
    assert g_skewed["kl_to_normal"] == pytest.approx(lognormal, rel=0.1)
    assert abs(g_normal["kl_reference"]) < 0.05
    assert g_normal["kl_reference"] == pytest.approx(g_skewed["kl_reference"])
    for g, z in ((g_normal, normal), (g_skewed, skewed)):
        assert g["kl_to_normal"] == pytest.approx(kl_to_standard_normal(z))
        assert g["kl_to_normal"] == pytest.approx(g["kl_moments"] + g["kl_non_gaussian"])
        assert g["knn_kl_to_normal"] == pytest.approx(knn_kl_to_standard_normal(z))
    # the skewed codes are standardized: their divergence is all non-Gaussianity
    assert abs(g_skewed["kl_moments"]) < 0.05
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
        (lambda: kl_to_standard_normal(torch.randn(20, 2), n=2), ValueError),
        (lambda: kl_to_standard_normal(torch.randn(20, 2), seed=-1), ValueError),
        (lambda: kl_to_standard_normal(torch.randn(20, 2), m=11), ValueError),
        (lambda: knn_kl_to_standard_normal(torch.randn(2, 3)), ValueError),
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
    assert kl_to_standard_normal(z, n=np.int64(100), seed=np.int64(1), m=np.int64(2)) == \
        kl_to_standard_normal(z, n=100, seed=1, m=2)
    assert gaussianity(z, n=np.int64(100))["kl_to_normal"] == gaussianity(z, n=100)["kl_to_normal"]
    images = torch.rand(5, 1, 4, 4, generator=gen)
    assert image_features(images, lambda x: x.flatten(1), batch_size=np.int64(2)).shape == (5, 16)
    with pytest.raises(ValueError, match="n must be"):
        kl_to_standard_normal(z, n=True)
    with pytest.raises(ValueError, match="seed"):
        kl_to_standard_normal(z, seed=-1)


# --- Ablation-based active units -----------------------------------------------------------


def reference_ablation(encode, decode, x):
    """One unit at a time over the whole data set, float64: (E_j - E_0) / E_0."""
    with torch.no_grad():
        z = encode(x).double()
        flat = x.reshape(len(x), -1).double()

        def error(codes):
            return float(((decode(codes).reshape(len(x), -1).double() - flat) ** 2).sum())

        e0 = error(z)
        out = []
        for j in range(z.shape[1]):
            zj = z.clone()
            zj[:, j] = z[:, j].mean()
            out.append((error(zj) - e0) / e0)
    return torch.tensor(out, dtype=torch.float64)


def float64_mlp(seed=0, sizes=(12, 8, 5, 8, 12)):
    torch.manual_seed(seed)
    model = MLPAutoencoder(list(sizes)).double()
    with torch.no_grad():
        model.linears[1].bias[2] = -100.0  # unit 2 of layer 2 never fires: dead
    return model


def test_linear_autoencoder_with_a_known_answer():
    """Codes are scaled copies of coordinates 0, 1 (and a dead unit); the decoder undoes the
    scale and fills coordinates 2, 3 with their means. Then E_0 = N (v_2 + v_3) and ablating
    unit j adds N v_j, so r_j = v_j / (v_2 + v_3), with v the population variances."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(500, 4, generator=gen, dtype=torch.float64) * torch.tensor(
        [1.0, 0.3, 0.5, 0.7], dtype=torch.float64) + 2.0
    scale = torch.tensor([5.0, 0.01], dtype=torch.float64)
    mean = x.mean(0)

    def encode(v):
        return torch.cat([v[:, :2] * scale, torch.zeros(len(v), 1, dtype=v.dtype)], dim=1)

    def decode(z):
        rest = mean[2:].expand(len(z), 2)
        return torch.cat([z[:, :2] / scale, rest + 0 * z[:, 2:3]], dim=1)

    var = x.var(0, unbiased=False)
    want = torch.stack([var[0], var[1], torch.zeros((), dtype=torch.float64)]) / (var[2] + var[3])
    for batch_size in (1000, 64, 7):
        got = unit_ablation(encode, decode, x, batch_size=batch_size)
        torch.testing.assert_close(got, want, rtol=1e-10, atol=0)
        assert got[2] == 0.0  # the dead unit: exactly zero
    # r = (0.09, 1, 0) * v/(0.25 + 0.49) ~ (1.35, 0.12, 0): thresholds pick them apart
    assert ablation_active_units(encode, decode, x) == 2
    assert ablation_active_units(encode, decode, x, threshold=float(want[1]) * 1.01) == 1
    assert ablation_active_units(encode, decode, x, threshold=100.0) == 0


def test_matches_one_unit_at_a_time_reference_for_any_chunking():
    model = float64_mlp()
    x = torch.rand(37, 12, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for layer in (1, 2, 3):
        def encode(v, layer=layer):
            return model.encode(v, layer)

        def decode(h, layer=layer):
            return model.decode_from(h, layer)

        want = reference_ablation(encode, decode, x)
        for batch_size in (4096, 37, 10, 1):
            torch.testing.assert_close(unit_ablation(encode, decode, x, batch_size), want,
                                       rtol=1e-9, atol=1e-12)


def test_dead_unit_is_exactly_zero_and_float32_works():
    model = float64_mlp().float()
    x = torch.rand(50, 12, generator=torch.Generator().manual_seed(2))
    codes = model.encode(x, 2)
    assert (codes[:, 2] == 0).all()
    r = unit_ablation(lambda v: model.encode(v, 2), lambda h: model.decode_from(h, 2), x)
    assert r.dtype == torch.float64 and r.shape == (5,)
    constant = (codes == codes[0]).all(0)
    assert constant[2] and not constant.all()
    assert (r[constant] == 0).all() and (r[~constant] != 0).all()


def test_invariant_under_relu_rescaling_unlike_the_variance():
    """h_j -> c h_j (in-weights and bias times c, out-weights divided by c) leaves the function,
    and hence r_j, unchanged; the code variance grows by c**2."""
    model = float64_mlp(seed=3)
    x = torch.rand(200, 12, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    layer, unit, c = 2, 1, 40.0

    def run(m):
        return (unit_ablation(lambda v: m.encode(v, layer), lambda h: m.decode_from(h, layer), x),
                active_units(m.encode(x, layer)))

    before, au_before = run(model)
    with torch.no_grad():
        model.linears[layer - 1].weight[unit] *= c
        model.linears[layer - 1].bias[unit] *= c
        model.linears[layer].weight[:, unit] /= c
    after, au_after = run(model)
    torch.testing.assert_close(after, before, rtol=1e-10, atol=1e-14)
    variance = model.encode(x, layer).var(0, unbiased=False)
    assert variance[unit] > 0.01  # the rescaled unit now counts as active by its variance
    assert au_after >= au_before


def test_perfect_reconstruction_gives_infinite_rise():
    x = torch.rand(10, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    x[:, 2] = 0.5
    r = unit_ablation(lambda v: v, lambda z: z, x)
    assert r[0] == math.inf and r[1] == math.inf and r[2] == 0.0
    assert ablation_active_units(lambda v: v, lambda z: z, x) == 2


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"x": [[0.0, 1.0]] * 3}, TypeError, "torch.Tensor"),
        ({"x": torch.rand(1, 4)}, ValueError, "at least two"),
        ({"x": torch.rand(5)}, ValueError, "at least two"),
        ({"encode": "encoder"}, TypeError, "callables"),
        ({"encode": lambda v: v[:, 0]}, ValueError, "shape"),
        ({"encode": lambda v: v[:1]}, ValueError, "shape"),
        ({"encode": lambda v: v * float("nan")}, ValueError, "NaN"),
        ({"decode": lambda z: z[:, :2]}, ValueError, "reconstructions"),
        ({"decode": lambda z: z * float("inf")}, ValueError, "NaN or infinite"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"batch_size": 2.0}, ValueError, "batch_size"),
        ({"threshold": -0.1}, ValueError, "threshold"),
        ({"threshold": float("nan")}, ValueError, "threshold"),
        ({"threshold": "1%"}, TypeError, "threshold"),
        ({"threshold": True}, TypeError, "threshold"),
    ],
)
def test_ablation_invalid_input(kwargs, error, match):
    args = {"encode": lambda v: v, "decode": lambda z: z + 0.1, "x": torch.rand(6, 4)}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        ablation_active_units(**args)


def test_moment_part_is_unbiased_for_gaussian_samples():
    """The closed-form part (Wishart log-det bias, tr S / n) is unbiased for Gaussian data even
    at n = 30, d = 5, where the plug-in value is 0.33 nats too high for N(0, I)."""
    from entropic_ae.metrics import _kl_parts

    rng = np.random.default_rng(0)
    d, n, draws, mu, s = 5, 30, 4000, 0.3, 1.2
    truth = 0.5 * d * (s * s + mu * mu - 1 - math.log(s * s))
    for m0, s0, want in [(0.0, 1.0, 0.0), (mu, s, truth)]:
        parts = [_kl_parts(m0 + s0 * rng.standard_normal((n, d)), None, negentropy=False)
                 ["gaussian"]
                 for _ in range(draws)]
        assert np.mean(parts) == pytest.approx(want, abs=4 * np.std(parts) / math.sqrt(draws))
