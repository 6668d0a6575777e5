"""Shannon and Rényi entropy against float64 references and closed forms."""

import math

import numpy as np
import pytest
import torch

from entropic_ae.entropy import renyi, shannon


def reference_renyi(p: np.ndarray, alpha: float) -> float:
    """Straight from the definitions, in float64, one vector at a time."""
    p = np.asarray(p, dtype=np.float64)
    nz = p[p > 0]
    if alpha == 0:
        return math.log(len(nz))
    if alpha == 1:
        return float(-(nz * np.log(nz)).sum())
    if math.isinf(alpha):
        return -math.log(p.max())
    return math.log((nz**alpha).sum()) / (1 - alpha)


def random_simplex(rng, shape, zeros=0.0):
    x = rng.exponential(size=shape)
    x[rng.random(shape) < zeros] = 0.0
    x[..., 0] += 1e-3  # keep every row non-empty
    return x / x.sum(-1, keepdims=True)


ORDERS = [0.0, 0.04, 0.5, 1.0, 1 + 5e-7, 2.0, 3.7, 50.0, math.inf]


@pytest.mark.parametrize("alpha", ORDERS)
def test_renyi_matches_reference(alpha):
    rng = np.random.default_rng(0)
    p = random_simplex(rng, (20, 7), zeros=0.3)
    got = renyi(torch.tensor(p), alpha).numpy()
    ref_alpha = 1.0 if abs(alpha - 1) < 1e-6 else alpha
    want = [reference_renyi(row, ref_alpha) for row in p]
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_shannon_is_renyi_order_one_and_the_limit():
    rng = np.random.default_rng(1)
    p = torch.tensor(random_simplex(rng, (5, 9)))
    np.testing.assert_allclose(shannon(p), renyi(p, 1.0), rtol=0, atol=0)
    # The limit alpha -> 1 from both sides approaches Shannon entropy.
    for eps in (1e-3, -1e-3):
        np.testing.assert_allclose(renyi(p, 1 + eps), shannon(p), atol=5e-3)


def test_bits_and_the_four_outcome_example():
    uniform = torch.full((4,), 0.25)
    assert shannon(uniform, base=2).item() == pytest.approx(2.0)
    skewed = torch.tensor([0.5, 0.25, 0.125, 0.125])
    # Optimal code lengths 1, 2, 3, 3 bits: expected length 1.75 bits = the entropy.
    assert shannon(skewed, base=2).item() == pytest.approx(1.75)
    assert shannon(skewed).item() == pytest.approx(1.75 * math.log(2))


def test_uniform_is_the_maximum_for_every_order():
    rng = np.random.default_rng(2)
    n = 6
    p = torch.tensor(random_simplex(rng, (200, n)))
    for alpha in ORDERS:
        assert (renyi(p, alpha) <= math.log(n) + 1e-12).all()
        assert renyi(torch.full((n,), 1.0 / n, dtype=torch.float64), alpha).item() == pytest.approx(
            math.log(n))


def test_monotone_non_increasing_in_alpha():
    rng = np.random.default_rng(3)
    p = torch.tensor(random_simplex(rng, (50, 8), zeros=0.2))
    values = torch.stack([renyi(p, a) for a in ORDERS if abs(a - 1) > 1e-3 or a == 1.0])
    assert (values[1:] <= values[:-1] + 1e-12).all()


def test_point_mass_has_zero_entropy():
    p = torch.tensor([0.0, 1.0, 0.0])
    for alpha in ORDERS:
        assert renyi(p, alpha).item() == pytest.approx(0.0, abs=1e-12)


def test_dim_argument_and_batch_shapes():
    rng = np.random.default_rng(4)
    p = torch.tensor(random_simplex(rng, (3, 4, 5)))
    h_last = renyi(p, 2.0)
    h_mid = renyi(p.transpose(1, 2), 2.0, dim=1)
    assert h_last.shape == (3, 4)
    torch.testing.assert_close(h_last, h_mid)


@pytest.mark.parametrize("alpha", [0.0, 0.04, 0.5, 1.0, 2.0, math.inf])
def test_zeros_give_finite_values_and_gradients(alpha):
    p = torch.tensor([0.0, 0.2, 0.0, 0.8], dtype=torch.float64, requires_grad=True)
    h = renyi(p, alpha)
    h.backward()
    assert torch.isfinite(h)
    assert torch.isfinite(p.grad).all()
    if 0 < alpha < math.inf:
        assert p.grad[0] == 0 and p.grad[2] == 0


def test_gradient_matches_finite_differences():
    # Inputs are unnormalised logits pushed through softmax, so perturbations stay valid.
    logits = torch.randn(6, dtype=torch.float64, requires_grad=True)
    for alpha in (0.04, 0.5, 1.0, 2.0):
        assert torch.autograd.gradcheck(lambda x, a=alpha: renyi(torch.softmax(x, 0), a), (logits,))


def test_float32_large_order_does_not_underflow():
    p = torch.full((64,), 1 / 64)
    assert renyi(p, 500.0).item() == pytest.approx(math.log(64), rel=1e-5)


@pytest.mark.parametrize(
    "p, message",
    [
        (torch.tensor([0.5, -0.1, 0.6]), "negative"),
        (torch.tensor([0.5, 0.4]), "sum to 1"),
        (torch.tensor([0.5, float("nan"), 0.5]), "NaN"),
        (torch.tensor([float("inf"), 0.0]), "NaN or infinite"),
        (torch.tensor(1.0), "at least one dimension"),
        (torch.empty(0), "empty"),
    ],
)
def test_invalid_probabilities_raise(p, message):
    with pytest.raises(ValueError, match=message):
        shannon(p)
    with pytest.raises(ValueError, match=message):
        renyi(p, 2.0)


@pytest.mark.parametrize("alpha", [-0.5, float("nan")])
def test_invalid_order_raises(alpha):
    with pytest.raises(ValueError, match="alpha must be >= 0"):
        renyi(torch.tensor([0.5, 0.5]), alpha)


def test_type_errors():
    with pytest.raises(TypeError, match="torch.Tensor"):
        shannon([0.5, 0.5])
    with pytest.raises(TypeError, match="alpha must be a number"):
        renyi(torch.tensor([0.5, 0.5]), "2")
    with pytest.raises(ValueError, match="base"):
        shannon(torch.tensor([0.5, 0.5]), base=1)


# --- the sum tolerance does not grow with the length --------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_long_vector_summing_to_1_05_is_refused(dtype):
    p = torch.full((10**6,), 1.05e-6, dtype=dtype)
    with pytest.raises(ValueError, match="sum to 1"):
        shannon(p)
    with pytest.raises(ValueError, match="sum to 1"):
        renyi(p, 2.0)


@pytest.mark.parametrize("n", [2, 7, 1000, 10**6, 10**7])
def test_long_float32_vectors_normalised_in_float32_are_accepted(n):
    gen = torch.Generator().manual_seed(n)
    x = torch.rand(n, generator=gen)
    for p in (x / x.sum(), torch.softmax(torch.randn(n, generator=gen), 0)):
        assert torch.isfinite(shannon(p))
        assert torch.isfinite(shannon(p.double())), "float32 probabilities converted to float64"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_short_vector_off_by_5e_5_is_refused(dtype):
    with pytest.raises(ValueError, match="sum to 1"):
        shannon(torch.tensor([0.5, 0.50005], dtype=dtype))
    shannon(torch.tensor([0.1] * 10, dtype=dtype))  # decimal rounding of each entry is fine


def test_numpy_scalars_are_accepted_as_numbers():
    p = torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64)
    assert renyi(p, np.float32(2.0)).item() == renyi(p, 2.0).item()
    assert renyi(p, np.int64(0)).item() == pytest.approx(math.log(3))
    assert renyi(p, np.float64(np.inf)).item() == pytest.approx(math.log(2))
    assert shannon(p, base=np.int64(2)).item() == pytest.approx(1.5)
    assert renyi(p, 0.5, base=np.float32(2.0)).item() == pytest.approx(renyi(p, 0.5, base=2))
    for bad in (True, np.bool_(True)):
        with pytest.raises(TypeError, match="alpha must be a number"):
            renyi(p, bad)
        with pytest.raises(TypeError, match="base must be a number"):
            shannon(p, base=bad)
    with pytest.raises(ValueError, match="alpha must be >= 0"):
        renyi(p, np.float32("nan"))
