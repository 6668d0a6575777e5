"""Kozachenko–Leonenko estimator against analytic entropies and a brute-force reference."""

import math

import numpy as np
import pytest
import torch
from scipy.special import digamma, gammaln

from entropic_ae.estimators import kozachenko_leonenko, log_unit_ball_volume


def reference_kl(z: np.ndarray, k: int = 1) -> float:
    """Brute force in float64: explicit distance loops, sorted neighbours."""
    n, d = z.shape
    log_eps = []
    for i in range(n):
        dist = np.sqrt(((z - z[i]) ** 2).sum(axis=1))
        dist = np.delete(dist, i)
        log_eps.append(math.log(np.sort(dist)[k - 1]))
    log_vd = d / 2 * math.log(math.pi) - gammaln(d / 2 + 1)
    return digamma(n) - digamma(k) + log_vd + d * float(np.mean(log_eps))


def gaussian_entropy(d: int, scale: float = 1.0) -> float:
    return 0.5 * d * math.log(2 * math.pi * math.e) + d * math.log(scale)


@pytest.mark.parametrize("k", [1, 3])
def test_matches_bruteforce_reference(k):
    rng = np.random.default_rng(0)
    z = rng.normal(size=(200, 3))
    got = kozachenko_leonenko(torch.tensor(z), k=k).item()
    assert got == pytest.approx(reference_kl(z, k), abs=1e-10)


@pytest.mark.parametrize("d", [1, 2, 4, 8])
def test_gaussian_accuracy(d):
    gen = torch.Generator().manual_seed(d)
    z = torch.randn(4000, d, generator=gen)
    assert abs(kozachenko_leonenko(z).item() - gaussian_entropy(d)) < 0.15


def test_uniform_cube_and_scaling():
    gen = torch.Generator().manual_seed(1)
    u = torch.rand(4000, 2, generator=gen, dtype=torch.float64)
    # Uniform on [0, 1]^2 has entropy 0 (boundary effects bias it slightly).
    assert abs(kozachenko_leonenko(u).item()) < 0.1
    # Scaling by c adds d·log c exactly: the estimator is scale-equivariant.
    h1 = kozachenko_leonenko(u).item()
    h3 = kozachenko_leonenko(3.0 * u).item()
    assert h3 - h1 == pytest.approx(2 * math.log(3.0), abs=1e-9)


def test_bits():
    z = torch.randn(500, 2, generator=torch.Generator().manual_seed(2))
    assert kozachenko_leonenko(z, base=2).item() == pytest.approx(
        kozachenko_leonenko(z).item() / math.log(2))


def test_unit_ball_volumes():
    assert math.exp(log_unit_ball_volume(1)) == pytest.approx(2.0)
    assert math.exp(log_unit_ball_volume(2)) == pytest.approx(math.pi)
    assert math.exp(log_unit_ball_volume(3)) == pytest.approx(4 / 3 * math.pi)


def test_gradient_is_finite_and_matches_finite_differences():
    z = torch.randn(30, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3),
                    requires_grad=True)
    assert torch.autograd.gradcheck(kozachenko_leonenko, (z,))


def test_gradient_spreads_points():
    # Maximising entropy pushes each point away from its neighbour.
    z = torch.tensor([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.0, 6.0]], requires_grad=True)
    kozachenko_leonenko(z).backward()
    assert z.grad[0, 0] < 0 < z.grad[1, 0]


def test_duplicate_rows_give_no_nan():
    z = torch.randn(50, 4, generator=torch.Generator().manual_seed(4))
    z[1] = z[0]
    z[7] = z[0]
    z.requires_grad_(True)
    h = kozachenko_leonenko(z)
    h.backward()
    assert torch.isfinite(h)
    assert torch.isfinite(z.grad).all()


@pytest.mark.parametrize(
    "z, k, error, message",
    [
        (torch.randn(10), 1, ValueError, "shape"),
        (torch.randn(3, 2), 3, ValueError, "more samples"),
        (torch.randn(5, 2), 0, ValueError, "k must be"),
        (torch.tensor([[0.0, float("nan")], [1.0, 1.0], [2.0, 0.0]]), 1, ValueError, "NaN"),
        (torch.ones(5, 2, dtype=torch.int64), 1, TypeError, "floating"),
        (np.zeros((5, 2)), 1, TypeError, "torch.Tensor"),
    ],
)
def test_invalid_input(z, k, error, message):
    with pytest.raises(error, match=message):
        kozachenko_leonenko(z, k=k)


def test_blockwise_search_matches_one_block():
    from entropic_ae.estimators import _kth_neighbours

    z = torch.randn(300, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    torch.testing.assert_close(_kth_neighbours(z, 2, block=64), _kth_neighbours(z, 2, block=4096))


def test_float32_large_sample_in_one_dimension_is_unbiased():
    # Regression: a float32 neighbour search picked wrong neighbours here (+0.19 nats).
    z = torch.randn(10000, 1, generator=torch.Generator().manual_seed(6))
    assert abs(kozachenko_leonenko(z).item() - gaussian_entropy(1)) < 0.05


# --- no overflow for large values; NumPy integers --------------------------------------------


@pytest.mark.parametrize("scale", [1e30, 1e-30, 1e18, 1e-18])
def test_float32_values_far_from_one_do_not_overflow(scale):
    gen = torch.Generator().manual_seed(7)
    z = (torch.randn(300, 3, generator=gen, dtype=torch.float64) * scale).float()
    z.requires_grad_(True)
    h = kozachenko_leonenko(z)
    h.backward()
    want = reference_kl(z.detach().double().numpy())  # float64 holds 1e60 and 1e-60
    assert math.isfinite(want)
    assert h.item() == pytest.approx(want, rel=1e-6, abs=1e-4)
    assert torch.isfinite(z.grad).all()


def test_float64_values_near_the_top_of_the_range():
    gen = torch.Generator().manual_seed(8)
    unit = torch.randn(200, 4, generator=gen, dtype=torch.float64)
    scale = 2.0**700  # squared distances would be 2**1400: inf in float64
    h = kozachenko_leonenko(unit * scale).item()
    # the entropy of a scaled sample shifts by d·log(scale) exactly
    assert h == pytest.approx(reference_kl(unit.numpy()) + 4 * 700 * math.log(2), rel=1e-12)


def test_ordinary_values_are_not_rescaled():
    """Codes of order one give bit-identical estimates to the unscaled computation."""
    z = torch.randn(100, 3, generator=torch.Generator().manual_seed(9))
    assert kozachenko_leonenko(z).item() == kozachenko_leonenko(z * 1.0).item()


def test_numpy_integers_are_accepted():
    z = torch.randn(50, 2, generator=torch.Generator().manual_seed(10), dtype=torch.float64)
    assert kozachenko_leonenko(z, k=np.int64(2)).item() == kozachenko_leonenko(z, k=2).item()
    assert kozachenko_leonenko(z, base=np.float32(2.0)).item() == pytest.approx(
        kozachenko_leonenko(z, base=2).item())
    assert log_unit_ball_volume(np.int64(3)) == log_unit_ball_volume(3)
    for bad in (True, np.bool_(True), 1.0):
        with pytest.raises(ValueError, match="k must be"):
            kozachenko_leonenko(z, k=bad)
    with pytest.raises(ValueError, match="dimension d"):
        log_unit_ball_volume(True)
