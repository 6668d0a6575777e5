"""Sample scores: KID, precision/recall/density/coverage, copies, reference draws."""

import contextlib
import io
import itertools
import math

import numpy as np
import pytest
import torch

from entropic_ae.metrics import (
    SAMPLE_SCORE,
    copy_fraction,
    frechet_distance,
    kid,
    precision_recall_density_coverage,
    reference_draw,
    sample_score,
    sample_scores,
)
from entropic_ae.metrics.samples import ReferenceSet


def test_reference_draw_is_disjoint_seeded_and_random():
    a, b = reference_draw(10_000, 2000, seed=0)
    assert len(a) == len(b) == 2000 and not set(a.tolist()) & set(b.tolist())
    again = reference_draw(10_000, 2000, seed=0)
    assert torch.equal(a, again[0]) and torch.equal(b, again[1])
    assert not torch.equal(a, reference_draw(10_000, 2000, seed=1)[0])
    assert a.float().mean() == pytest.approx(5000, rel=0.05)  # spread over the file, not a block
    three = reference_draw(30, 10, seed=2, parts=3)
    assert sorted(torch.cat(three).tolist()) == list(range(30))
    with pytest.raises(ValueError, match="disjoint"):
        reference_draw(100, 60, seed=0)


def brute_kid(x, y):
    f = x.shape[1]

    def k(a, b):
        return (float(a @ b) / f + 1.0) ** 3

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_kid_against_brute_force():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(12, 5)), rng.normal(0.3, 1.2, size=(9, 5))
    assert kid(x, y) == pytest.approx(brute_kid(x, y), rel=1e-10)
    assert kid(x, y) == pytest.approx(kid(y, x), rel=1e-12)
    ref = ReferenceSet(y)
    assert ref.kid(x) == pytest.approx(kid(x, y), rel=1e-12)
    assert ref.frechet(x) == pytest.approx(frechet_distance(x, y), rel=1e-12)


@pytest.mark.slow
def test_kid_equals_torchmetrics_poly_mmd():
    """(slow: importing torchmetrics takes seconds)"""
    kid_module = pytest.importorskip("torchmetrics.image.kid")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(12, 5)), rng.normal(0.3, 1.2, size=(9, 5))
    a, b = torch.from_numpy(x[:9]), torch.from_numpy(y)
    assert kid(a, b) == pytest.approx(float(kid_module.poly_mmd(a, b)), rel=1e-10)


def test_kid_is_unbiased_where_the_plug_in_is_not():
    """Two draws of one distribution: KID averages 0 over 400 pairs of sets of 20 (within 4
    standard errors), while the biased (V-statistic) version is clearly positive."""
    rng = np.random.default_rng(1)
    values, biased = [], []
    for _ in range(400):
        x, y = rng.normal(size=(20, 4)), rng.normal(size=(20, 4))
        values.append(kid(x, y))
        kxx, kyy, kxy = ((a @ b.T / 4 + 1) ** 3 for a, b in ((x, x), (y, y), (x, y)))
        biased.append(kxx.mean() + kyy.mean() - 2 * kxy.mean())
    assert abs(np.mean(values)) < 4 * np.std(values) / math.sqrt(400)
    assert np.mean(biased) > 10 * np.std(values) / math.sqrt(400)


def brute_prdc(real, fake, k):
    def dist(a, b):
        return float(np.sqrt(((a - b) ** 2).sum()))

    def kth(points, i):
        return sorted(dist(points[i], points[j]) for j in range(len(points)) if j != i)[k - 1]

    r = [kth(real, i) for i in range(len(real))]
    s = [kth(fake, j) for j in range(len(fake))]
    n, m = len(real), len(fake)
    precision = sum(any(dist(fake[j], real[i]) < r[i] for i in range(n)) for j in range(m)) / m
    recall = sum(any(dist(real[i], fake[j]) < s[j] for j in range(m)) for i in range(n)) / n
    density = sum(dist(fake[j], real[i]) < r[i] for i, j in itertools.product(range(n),
                                                                               range(m))) / (k * m)
    coverage = sum(min(dist(real[i], fake[j]) for j in range(m)) < r[i] for i in range(n)) / n
    return {"precision": precision, "recall": recall, "density": density, "coverage": coverage}


def test_prdc_against_brute_force_and_the_prdc_package():
    rng = np.random.default_rng(2)
    real, fake = rng.normal(size=(30, 3)), rng.normal(0.5, 0.7, size=(25, 3))
    got = precision_recall_density_coverage(real, fake, k=3)
    want = brute_prdc(real, fake, 3)
    assert got == pytest.approx(want, rel=1e-12)
    prdc = pytest.importorskip("prdc")
    with contextlib.redirect_stdout(io.StringIO()):  # prdc prints the set sizes
        theirs = prdc.compute_prdc(real, fake, nearest_k=3)
    assert got == pytest.approx({k: float(v) for k, v in theirs.items()}, rel=1e-6)


def test_prdc_known_cases():
    rng = np.random.default_rng(3)
    real = rng.normal(size=(300, 2))
    same = precision_recall_density_coverage(real, real, k=5)
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0
    far = precision_recall_density_coverage(real, real + 100.0, k=5)
    assert far == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}
    # a fake set crowded at the mode: high fidelity, low recall and coverage (density stays
    # near 1: the real balls are small where the reals are dense)
    crowded = precision_recall_density_coverage(real, 0.1 * rng.normal(size=(300, 2)), k=5)
    assert crowded["precision"] > 0.95 and 0.8 < crowded["density"] < 1.5
    assert crowded["coverage"] < 0.3 and crowded["recall"] < 0.3
    with pytest.raises(ValueError, match="at least 6"):
        precision_recall_density_coverage(real[:5], real, k=5)


def test_copy_fraction():
    gen = torch.Generator().manual_seed(4)
    train = torch.rand(400, 1, 4, 4, generator=gen)
    held_out = torch.rand(300, 1, 4, 4, generator=gen)
    new = torch.rand(300, 1, 4, 4, generator=gen)
    assert copy_fraction(train[:50], train, held_out) == 1.0
    assert copy_fraction(new, train, held_out, quantile=0.1) == pytest.approx(0.1, abs=0.06)
    half = torch.cat([train[:150], new[:150]])
    assert copy_fraction(half, train, held_out) == pytest.approx(0.5, abs=0.03)
    with pytest.raises(ValueError, match="differ in size"):
        copy_fraction(torch.rand(3, 1, 2, 2), train, held_out)
    with pytest.raises(ValueError, match="quantile"):
        copy_fraction(new, train, held_out, quantile=1.0)


def projection(seed):
    w = torch.randn(16, 6, generator=torch.Generator().manual_seed(seed))
    return lambda images: images.flatten(1) @ w


def test_sample_score_and_every_column():
    gen = torch.Generator().manual_seed(5)
    real = torch.rand(200, 1, 4, 4, generator=gen)
    other = torch.rand(200, 1, 4, 4, generator=gen)
    dark = other * 0.5
    f = projection(0)
    assert SAMPLE_SCORE == "frechet"
    score = sample_score(other, real, f)
    assert score == pytest.approx(frechet_distance(f(other), f(real)))
    assert sample_score(dark, real, f) > score + 1
    # several extractors: the mean of their scores; precomputed reference features accepted
    nets = [projection(0), projection(1)]
    both = sample_score(dark, real, nets)
    assert both == pytest.approx(np.mean([frechet_distance(g(dark), g(real)) for g in nets]))
    assert sample_score(dark, [g(real) for g in nets], nets) == pytest.approx(both)
    cols = sample_scores(dark, real, nets, train=other)
    assert set(cols) == {"score", "frechet", "kid", "precision", "recall", "density",
                         "coverage", "copy_fraction"}
    assert cols["score"] == pytest.approx(both) and cols["copy_fraction"] < 0.05
    assert sample_scores(other, real, nets, train=other)["copy_fraction"] == 1.0
    with pytest.raises(TypeError, match="callable"):
        sample_score(dark, real, [])
    with pytest.raises(ValueError, match="reference_images"):
        sample_scores(dark, [g(real) for g in nets], nets, train=other)
