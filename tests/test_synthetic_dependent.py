"""Non-product code distributions with exact KL: each entropy checked by Monte Carlo."""

import math

import numpy as np
import pytest
import torch
from scipy import special, stats

from entropic_ae.estimators import random_rotation
from entropic_ae.synthetic import coordinate_entropy
from entropic_ae.synthetic import dependent as dep

D = 6  # small enough for the Monte Carlo checks to be sharp


def monte_carlo_entropy(log_p, x):
    """-mean log p(x) and its standard error."""
    values = -log_p(x)
    return values.mean(), values.std() / math.sqrt(len(values))


def log_p_rotated_uniform(x):
    q = random_rotation(D, torch.Generator().manual_seed(0), dtype=torch.float64).numpy()
    s = x @ q  # x = s q^T
    inside = (np.abs(s) <= math.sqrt(3.0)).all(1)
    return np.where(inside, -D * math.log(2.0 * math.sqrt(3.0)), -np.inf)


def log_p_student(x, nu=5.0):
    return stats.multivariate_t(loc=np.zeros(D), shape=(nu - 2) / nu * np.eye(D), df=nu).logpdf(x)


def log_p_mixture(x, a=0.7):
    r2 = (x * x).sum(1)
    return np.logaddexp(*[math.log(0.5) - 0.5 * D * math.log(2 * math.pi * s) - 0.5 * r2 / s
                          for s in (1 - a, 1 + a)])


def log_p_copula(x, rho=0.5):
    c = (1 - rho) * np.eye(D) + rho * np.ones((D, D))
    g = special.ndtri((x / math.sqrt(3.0) + 1.0) / 2.0)  # F(z) = (z/sqrt3 + 1)/2
    log_copula = (stats.multivariate_normal(np.zeros(D), c).logpdf(g)
                  - stats.norm.logpdf(g).sum(1))
    return log_copula - D * math.log(2.0 * math.sqrt(3.0))


def log_p_sign_pairs(x):
    a, b = x[:, 0::2], x[:, 1::2]
    ok = (np.sign(a) == np.sign(b)).all(1)
    return np.where(ok, (D // 2) * math.log(2.0) + stats.norm.logpdf(x).sum(1), -np.inf)


@pytest.mark.parametrize("kind, log_p", [("rotated-product", log_p_rotated_uniform),
                                         ("student-t-joint", log_p_student),
                                         ("scale-mixture", log_p_mixture),
                                         ("gaussian-copula", log_p_copula),
                                         ("sign-pairs", log_p_sign_pairs)])
def test_entropy_matches_monte_carlo(kind, log_p):
    """-E log p over 200,000 draws within 4 standard errors (and 0.01 nats) of the exact
    entropy; every draw has finite density (the sampler and the density agree)."""
    x = dep.sample(kind, 200_000, D, seed=1).numpy()
    assert np.isfinite(log_p(x)).all()
    h, se = monte_carlo_entropy(log_p, x)
    assert dep.entropy(kind, D) == pytest.approx(h, abs=max(4 * se, 0.01))


@pytest.mark.parametrize("kind", dep.DEPENDENT_KINDS)
def test_unit_variances_and_the_moment_part(kind):
    x = dep.sample(kind, 100_000, D, seed=2).numpy()
    assert np.abs(x.mean(0)).max() < 0.02
    np.testing.assert_allclose(x.var(0), 1.0, atol=0.03)
    p = dep.parts(kind, D)
    empirical = -0.5 * np.linalg.slogdet(np.corrcoef(x, rowvar=False))[1]
    assert p["moment"] == pytest.approx(empirical, abs=0.02)
    assert p["total"] == pytest.approx(p["moment"] + p["non_gaussian"])
    assert p["non_gaussian"] > 0.1  # every kind is far from Gaussian
    assert p["total"] == dep.kl_to_standard_normal(kind, D)


def test_known_values():
    uniform_kl = 0.5 * math.log(2 * math.pi * math.e) - coordinate_entropy("uniform")
    assert dep.kl_to_standard_normal("rotated-product", 16) == pytest.approx(16 * uniform_kl)
    assert dep.kl_to_standard_normal("sign-pairs", 16) == pytest.approx(8 * math.log(2))
    log_det = math.log(1 + 15 * 0.5) + 15 * math.log(0.5)
    assert dep.kl_to_standard_normal("gaussian-copula", 16) == pytest.approx(
        16 * uniform_kl - 0.5 * log_det)
    # the multivariate t tends to the Gaussian as nu grows
    assert dep.kl_to_standard_normal("student-t-joint", 16, nu=1e6) == pytest.approx(0, abs=1e-3)
    assert dep.kl_to_standard_normal("scale-mixture", 16, a=1e-3) == pytest.approx(0, abs=1e-4)


def test_samples_are_seeded_and_the_rotation_fixed():
    a = dep.sample("rotated-product", 10, 4, seed=3)
    assert torch.equal(a, dep.sample("rotated-product", 10, 4, seed=3))
    assert not torch.equal(a, dep.sample("rotated-product", 10, 4, seed=4))
    assert not torch.equal(a, dep.sample("rotated-product", 10, 4, seed=3, rotation_seed=1))


@pytest.mark.parametrize("call, error", [
    (lambda: dep.sample("spherical", 10, 4), ValueError),
    (lambda: dep.sample("sign-pairs", 10, 5), ValueError),
    (lambda: dep.sample("student-t-joint", 10, 4, nu=2.0), ValueError),
    (lambda: dep.sample("scale-mixture", 10, 4, a=1.0), ValueError),
    (lambda: dep.sample("gaussian-copula", 10, 4, rho=1.0), ValueError),
    (lambda: dep.sample("rotated-product", 10, 4, marginal="cauchy"), ValueError),
    (lambda: dep.sample("rotated-product", 10, 1), ValueError),
    (lambda: dep.entropy("sign-pairs", 3), ValueError),
])
def test_bad_arguments(call, error):
    with pytest.raises(error):
        call()


def test_parts_study_table():
    """The study calls the estimate once per kind and seed and pairs it with the truth."""
    calls = []

    def fake(codes):
        calls.append(codes.shape)
        return {"moment": 1.0, "marginal": 2.0, "dependence": 0.5, "total": 3.5}

    table = dep.parts_study(fake, kinds=("gaussian", "sign-pairs"), n=50, d=4, seeds=(0, 1))
    assert calls == [(50, 4)] * 4
    assert list(table.columns) == ["kind", "seed", "part", "estimate", "truth"]
    row = table[(table.kind == "sign-pairs") & (table.part == "non_gaussian")]
    assert (row["estimate"] == 2.5).all()
    assert row["truth"].iloc[0] == pytest.approx(dep.parts("sign-pairs", 4)["non_gaussian"])
    assert table[table.part == "marginal"]["truth"].isna().all()
    assert table[(table.kind == "gaussian") & (table.part == "total")]["truth"].eq(0).all()
    with pytest.raises(ValueError, match="kind"):
        dep.parts_study(fake, kinds=("nope",), n=50, d=4)
