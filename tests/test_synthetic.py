"""Synthetic distributions: exact entropies against scipy, quadrature on a grid and Monte Carlo;
samplers against their exact distributions; the estimator study's table."""

import math

import numpy as np
import pytest
import scipy.stats
import torch

from entropic_ae import synthetic as syn

SQRT3 = math.sqrt(3.0)


def two_bump_logpdf(x: np.ndarray, m: float) -> np.ndarray:
    s = math.sqrt(1 - m * m)
    return np.logaddexp(scipy.stats.norm.logpdf(x, -m, s), scipy.stats.norm.logpdf(x, m, s)) \
        - math.log(2)


def two_bump_cdf(x: np.ndarray, m: float = 0.9) -> np.ndarray:
    s = math.sqrt(1 - m * m)
    return 0.5 * (scipy.stats.norm.cdf(x, -m, s) + scipy.stats.norm.cdf(x, m, s))


# scipy's frozen distributions of one standardized coordinate (the two-bump has none)
SCIPY = {
    "gaussian": scipy.stats.norm(),
    "uniform": scipy.stats.uniform(-SQRT3, 2 * SQRT3),
    "laplace": scipy.stats.laplace(scale=1 / math.sqrt(2)),
    "student-t": scipy.stats.t(5, scale=math.sqrt(3 / 5)),
}


@pytest.mark.parametrize("kind", sorted(SCIPY))
def test_coordinate_entropy_matches_scipy(kind):
    assert syn.coordinate_entropy(kind) == pytest.approx(float(SCIPY[kind].entropy()), abs=1e-12)
    assert SCIPY[kind].var() == pytest.approx(1.0) and SCIPY[kind].mean() == pytest.approx(0.0)


def test_student_t_entropy_for_other_degrees_of_freedom():
    for nu in (2.5, 3.0, 10.0, 100.0):
        ref = scipy.stats.t(nu, scale=math.sqrt((nu - 2) / nu)).entropy()
        assert syn.coordinate_entropy("student-t", nu=nu) == pytest.approx(float(ref), abs=1e-10)


@pytest.mark.parametrize("m", [0.3, 0.8, 0.9, 0.99])
def test_two_bump_entropy_matches_a_fine_grid(m):
    # trapezoid rule on a grid much finer than the components' width: an independent quadrature
    s = math.sqrt(1 - m * m)
    x = np.linspace(-m - 14 * s, m + 14 * s, 400_001)
    lp = two_bump_logpdf(x, m)
    ref = -np.trapezoid(np.exp(lp) * lp, x)
    assert syn.coordinate_entropy("two-bump", m=m) == pytest.approx(ref, abs=1e-8)


def test_two_bump_entropy_matches_monte_carlo_and_limits():
    x = syn.sample("two-bump", 400_000, 1, seed=3).numpy().ravel()
    mc = -two_bump_logpdf(x, 0.9)
    assert syn.coordinate_entropy("two-bump") == pytest.approx(mc.mean(), abs=4 * mc.std() / 632)
    # m -> 0 is N(0, 1); large m is two separated bumps: log 2 + the entropy of one
    assert syn.coordinate_entropy("two-bump", m=1e-4) == pytest.approx(0.5 * math.log(
        2 * math.pi * math.e), abs=1e-7)
    m = 0.999
    assert syn.coordinate_entropy("two-bump", m=m) == pytest.approx(
        math.log(2) + 0.5 * math.log(2 * math.pi * math.e * (1 - m * m)), abs=1e-6)


def test_the_gaussian_has_the_largest_coordinate_entropy():
    top = syn.coordinate_entropy("gaussian")
    for kind in syn.PRODUCT_KINDS[1:]:
        assert syn.coordinate_entropy(kind) < top - 0.04


@pytest.mark.parametrize("kind", ["uniform", "laplace", "two-bump", "student-t"])
def test_kl_of_products_matches_monte_carlo(kind):
    """KL(q || N(0, I)) per coordinate = E_q[log q(x) - log phi(x)], by sampling."""
    x = syn.sample(kind, 400_000, 1, seed=4).numpy().ravel()
    logq = two_bump_logpdf(x, 0.9) if kind == "two-bump" else SCIPY[kind].logpdf(x)
    diff = logq - scipy.stats.norm.logpdf(x)
    want = syn.kl_to_standard_normal(kind, 3) / 3
    assert want == pytest.approx(diff.mean(), abs=4 * diff.std() / math.sqrt(len(x)))


def test_known_kl_values():
    assert syn.kl_to_standard_normal("uniform", 16) == pytest.approx(2.8238, abs=1e-4)
    assert syn.kl_to_standard_normal("gaussian", 64) == 0.0
    d, s = 16, 1.5
    assert syn.kl_to_standard_normal("scaled-gaussian", d, sigma=s) == pytest.approx(
        0.5 * d * (s * s - 1 - math.log(s * s)))
    # equicorrelation: log det C = (d-1) log(1-rho) + log(1 + (d-1) rho), checked by slogdet
    for d, rho in [(16, 0.3), (64, 0.5), (5, -0.2)]:
        c = (1 - rho) * np.eye(d) + rho
        assert syn.kl_to_standard_normal("correlated-gaussian", d, rho=rho) == pytest.approx(
            -0.5 * np.linalg.slogdet(c)[1], rel=1e-12)
        assert syn.entropy("correlated-gaussian", d, rho=rho) == pytest.approx(
            0.5 * np.linalg.slogdet(2 * math.pi * math.e * c)[1], rel=1e-12)


def test_entropy_and_kl_are_consistent():
    """For mean 0 and unit variances, KL = (d/2) log(2 pi e) - h."""
    top = 0.5 * 7 * math.log(2 * math.pi * math.e)
    for kind in syn.PRODUCT_KINDS + ("correlated-gaussian",):
        assert syn.entropy(kind, 7) + syn.kl_to_standard_normal(kind, 7) == pytest.approx(top)
    assert syn.entropy("scaled-gaussian", 3, sigma=2.0) == pytest.approx(
        1.5 * math.log(2 * math.pi * math.e * 4.0))


@pytest.mark.parametrize("kind", syn.PRODUCT_KINDS)
def test_product_samples_follow_their_distribution(kind):
    x = syn.sample(kind, 20_000, 3, seed=5).numpy()
    cdf = two_bump_cdf if kind == "two-bump" else SCIPY[kind].cdf
    for j in range(3):
        assert scipy.stats.kstest(x[:, j], cdf).pvalue > 1e-3
    # the columns are independent: no correlation beyond the noise level
    assert np.abs(np.corrcoef(x.T)[np.triu_indices(3, 1)]).max() < 4 / math.sqrt(20_000)


def test_standardized_moments():
    x = torch.cat([syn.sample(k, 100_000, 2, seed=6) for k in syn.PRODUCT_KINDS], 1).numpy()
    np.testing.assert_allclose(x.mean(0), 0, atol=0.02)
    np.testing.assert_allclose(x.var(0), 1, atol=0.03)
    kurt = scipy.stats.kurtosis(x, axis=0)
    # excess kurtosis: 0, -1.2, 3, -2 m^4 (two-bump), 6 / (nu - 4) (Student-t, nu = 5: noisy)
    np.testing.assert_allclose(kurt[:8], [0, 0, -1.2, -1.2, 3, 3, -2 * 0.9**4, -2 * 0.9**4],
                               atol=0.1)
    assert kurt[8:].min() > 2


def test_correlated_and_scaled_gaussians():
    x = syn.sample("correlated-gaussian", 50_000, 4, seed=7, rho=0.3).numpy()
    np.testing.assert_allclose(np.cov(x.T), 0.7 * np.eye(4) + 0.3, atol=0.03)
    corr = np.array([[1.0, -0.5], [-0.5, 1.0]])
    y = syn.sample("correlated-gaussian", 50_000, 2, seed=7, corr=corr).numpy()
    np.testing.assert_allclose(np.cov(y.T), corr, atol=0.03)
    assert syn.kl_to_standard_normal("correlated-gaussian", 2, corr=corr) == pytest.approx(
        -0.5 * math.log(0.75))
    s = syn.sample("scaled-gaussian", 50_000, 3, seed=7, sigma=0.5).numpy()
    np.testing.assert_allclose(s.std(0), 0.5, rtol=0.02)


def test_reproducible_dtype_and_no_global_state():
    state = torch.get_rng_state()
    a = syn.sample("laplace", 10, 3, seed=1)
    assert torch.get_rng_state().equal(state)
    assert a.dtype == torch.float64 and a.shape == (10, 3)
    assert torch.equal(a, syn.sample("laplace", 10, 3, seed=1))
    assert not torch.equal(a, syn.sample("laplace", 10, 3, seed=2))
    assert syn.sample("uniform", 5, 2, dtype=torch.float32).dtype == torch.float32
    assert syn.sample("uniform", 1000, 2, seed=0).abs().max() <= SQRT3


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: syn.sample("cauchy", 10, 2), ValueError, "kind must be one of"),
        (lambda: syn.sample("gaussian", 0, 2), ValueError, "n must be"),
        (lambda: syn.sample("gaussian", 10, 0), ValueError, "d must be"),
        (lambda: syn.sample("gaussian", 10, 2, seed=-1), ValueError, "seed"),
        (lambda: syn.sample("gaussian", 10, 2, dtype=torch.int64), TypeError, "dtype"),
        (lambda: syn.sample("two-bump", 10, 2, m=1.0), ValueError, "m must lie"),
        (lambda: syn.entropy("student-t", 2, nu=2.0), ValueError, "nu must lie"),
        (lambda: syn.entropy("scaled-gaussian", 2, sigma=0.0), ValueError, "sigma"),
        (lambda: syn.entropy("correlated-gaussian", 3, rho=-0.6), ValueError, "rho"),
        (lambda: syn.kl_to_standard_normal("correlated-gaussian", 2,
                                           corr=np.array([[1.0, 2.0], [2.0, 1.0]])),
         ValueError, "positive definite"),
        (lambda: syn.sample("correlated-gaussian", 5, 3, corr=np.eye(2)), ValueError, "corr"),
        (lambda: syn.coordinate_entropy("scaled-gaussian"), ValueError, "product"),
        (lambda: syn.entropy("gaussian", 2.5), ValueError, "d must be"),
    ],
)
def test_invalid_input(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_estimator_study_table():
    seen = []

    def record(z):
        seen.append(z)
        return z.sum() * 0 + 1.5

    df = syn.estimator_study(record, batch_sizes=(10, 20), dims=(2, 3), repeats=2)
    assert list(df.columns) == ["kind", "B", "d", "repeat", "estimate", "truth"]
    assert len(df) == 3 * 2 * 2 * 2 and (df.estimate == 1.5).all()
    for row in df.itertuples():
        assert row.truth == pytest.approx(syn.entropy(row.kind, row.d))
    # batch-normalised float32 batches of the right shapes
    assert all(z.dtype == torch.float32 for z in seen)
    assert {tuple(z.shape) for z in seen} == {(10, 2), (10, 3), (20, 2), (20, 3)}
    for z in seen:
        torch.testing.assert_close(z.mean(0), torch.zeros(z.shape[1]), atol=1e-6, rtol=0)
        torch.testing.assert_close(z.var(0, unbiased=False), torch.ones(z.shape[1]))


def test_estimator_study_cells_do_not_depend_on_the_grid():
    def first_entry(z):
        return z[0, 0]

    small = syn.estimator_study(first_entry, kinds=("uniform",), batch_sizes=(50,), dims=(4,),
                                repeats=3, batch_norm=False)
    big = syn.estimator_study(first_entry, batch_sizes=(50, 100), dims=(4, 8), repeats=5,
                              batch_norm=False)
    cell = big[(big.kind == "uniform") & (big.B == 50) & (big.d == 4) & (big.repeat < 3)]
    np.testing.assert_array_equal(cell.estimate.to_numpy(), small.estimate.to_numpy())
    assert small.estimate.nunique() == 3  # the repeats are different batches


def test_estimator_study_rejects_bad_input():
    with pytest.raises(TypeError, match="callable"):
        syn.estimator_study(3.0)
    with pytest.raises(ValueError, match="repeats"):
        syn.estimator_study(lambda z: 0.0, repeats=0)
    with pytest.raises(ValueError, match="returned nan"):
        syn.estimator_study(lambda z: float("nan"), batch_sizes=(10,), dims=(2,), repeats=1)


def test_random_layers_shapes_zeros_and_determinism():
    ws, bs = syn.random_layers([3, 4, 2], seed=1)
    assert [tuple(w.shape) for w in ws] == [(4, 3), (2, 4)] and [b.shape[0] for b in bs] == [4, 2]
    again, _ = syn.random_layers([3, 4, 2], seed=1)
    assert all(torch.equal(a, b) for a, b in zip(ws, again, strict=True))
    dense, none = syn.random_layers([50, 50], seed=2, biases=False, zero_fraction=0.0)
    sparse, _ = syn.random_layers([50, 50], seed=2, zero_fraction=0.5)
    assert none is None and (dense[0] == 0).sum() == 0
    assert 0.4 < (sparse[0] == 0).double().mean() < 0.6
    with pytest.raises(ValueError):
        syn.random_layers([3])


def test_batch_normalise_matches_a_batch_norm_without_affine_parameters():
    z = torch.randn(300, 5, dtype=torch.float64) * 3 + 7
    norm = torch.nn.BatchNorm1d(5, affine=False, track_running_stats=False, eps=1e-300).double()
    out = syn.batch_normalise(z)
    torch.testing.assert_close(out, norm(z), rtol=0, atol=1e-12)
    torch.testing.assert_close(out.mean(0), torch.zeros(5, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(out.pow(2).mean(0), torch.ones(5, dtype=torch.float64), rtol=0,
                               atol=1e-12)


def test_batch_normalise_gives_the_same_bits_and_gradients_with_one_or_two_threads():
    from entropic_ae.estimators import kozachenko_leonenko
    from entropic_ae.timing import threads

    z = torch.randn(500, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    results = []
    for n in (1, 2):
        with threads(n):
            x = z.clone().requires_grad_(True)
            h = kozachenko_leonenko(syn.batch_normalise(x))
            h.backward()
            results.append((h.detach(), x.grad))
    assert torch.equal(results[0][0], results[1][0])
    assert torch.equal(results[0][1], results[1][1])


@pytest.mark.parametrize("bad, error, match", [
    (torch.ones(4, 2, dtype=torch.int64), TypeError, "floating-point"),
    (torch.ones(4), TypeError, r"shape \(N, d\)"),
    (torch.ones(1, 3), ValueError, "at least 2 rows"),
    (torch.tensor([[1.0, 2.0], [1.0, 3.0]]), ValueError, "constant"),
])
def test_batch_normalise_rejects_what_it_cannot_normalise(bad, error, match):
    with pytest.raises(error, match=match):
        syn.batch_normalise(bad)
