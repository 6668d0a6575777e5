"""Active units."""

import math

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
import torch
from torch import nn

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
    per_class_mse,
    reconstruction_mse,
    unit_ablation,
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
