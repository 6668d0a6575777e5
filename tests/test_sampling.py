"""Latent samplers: N(0, I), a Gaussian mixture fitted to codes, interpolation."""

import numpy as np
import pytest
import torch
from sklearn.mixture import GaussianMixture

from entropic_ae.sampling import decode, encode, fit_gmm, interpolate, sample_gmm, sample_normal


def clustered_codes(n: int = 600, d: int = 3, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[-4.0] * d, [0.0] * d, [4.0] * d])
    labels = torch.arange(n) % 3
    return centres[labels] + 0.5 * torch.randn(n, d, generator=gen)


def test_normal_shapes_and_reproducibility():
    z = sample_normal(500, 7, seed=3)
    assert z.shape == (500, 7) and z.dtype == torch.float32
    assert torch.equal(z, sample_normal(500, 7, seed=3))
    assert not torch.equal(z, sample_normal(500, 7, seed=4))
    state = torch.get_rng_state()
    sample_normal(10, 2, seed=0)
    assert torch.equal(state, torch.get_rng_state()), "must not touch the global generator"


def test_gmm_shapes_and_reproducibility():
    codes = clustered_codes()
    gmm = fit_gmm(codes, n_components=3, seed=0)
    assert isinstance(gmm, GaussianMixture) and gmm.covariance_type == "full"
    z = sample_gmm(gmm, 400, seed=1)
    assert z.shape == (400, 3) and z.dtype == torch.float32
    assert torch.equal(z, sample_gmm(gmm, 400, seed=1))
    assert not torch.equal(z, sample_gmm(gmm, 400, seed=2))
    # a refit with the same seed gives the same mixture, hence the same samples
    assert torch.equal(z, sample_gmm(fit_gmm(codes, n_components=3, seed=0), 400, seed=1))


def test_gmm_default_has_ten_full_components():
    gmm = fit_gmm(clustered_codes(n=300, d=2))
    assert gmm.n_components == 10 and gmm.covariances_.shape == (10, 2, 2)


def test_gmm_samples_follow_the_mixture():
    """Moments of many draws match the mixture's (float64 reference from its parameters)."""
    gmm = fit_gmm(clustered_codes(), n_components=3, seed=0)
    z = sample_gmm(gmm, 60_000, seed=0).double().numpy()
    w, mu, cov = gmm.weights_, gmm.means_, gmm.covariances_
    mean = (w[:, None] * mu).sum(0)
    second = sum(w[k] * (cov[k] + np.outer(mu[k], mu[k])) for k in range(len(w)))
    np.testing.assert_allclose(z.mean(0), mean, atol=0.05)
    np.testing.assert_allclose(z.T @ z / len(z), second, atol=0.15)
    # samples come in random order, not grouped by component
    first_half = z[:300, 0]
    assert (first_half < -2).any() and (first_half > 2).any()


@pytest.mark.parametrize("cov_type", ["diag", "spherical", "tied"])
def test_gmm_other_covariance_types(cov_type):
    gmm = fit_gmm(clustered_codes(), n_components=3, covariance_type=cov_type)
    assert sample_gmm(gmm, 50, seed=0).shape == (50, 3)


def test_interpolation():
    z0, z1 = torch.zeros(4), torch.arange(4.0)
    path = interpolate(z0, z1, steps=5)
    assert path.shape == (5, 4)
    assert torch.equal(path[0], z0) and torch.allclose(path[-1], z1)
    assert torch.allclose(path[2], 0.5 * z1)
    pairs = interpolate(torch.zeros(3, 2), torch.ones(3, 2), steps=4)
    assert pairs.shape == (3, 4, 2)
    assert torch.allclose(pairs[:, 1], torch.full((3, 2), 1 / 3))


class _Toy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 2)
        self.bn = torch.nn.BatchNorm1d(2, affine=False)

    def encode(self, x, pre_norm=False):
        h = self.lin(x.flatten(1))
        return h if pre_norm else self.bn(h)

    def decode(self, z):
        return z.repeat(1, 2).view(-1, 1, 2, 2)


def test_encode_decode_in_eval_mode_and_restore_mode():
    model = _Toy().train()
    x = torch.randn(7, 1, 2, 2)
    pre = encode(model, x, batch_size=3, pre_norm=True)
    post = encode(model, x, batch_size=3)
    assert pre.shape == post.shape == (7, 2)
    assert torch.allclose(post, pre / (1 + 1e-5) ** 0.5, atol=1e-6)  # running stats: 0 and 1
    assert model.training
    assert decode(model, post, batch_size=2).shape == (7, 1, 2, 2)


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda: sample_normal(0, 2), ValueError),
        (lambda: sample_normal(3, 2.5), TypeError),
        (lambda: fit_gmm(torch.randn(5, 2), n_components=10), ValueError),
        (lambda: fit_gmm(torch.randn(50)), ValueError),
        (lambda: fit_gmm(torch.full((50, 2), float("nan"))), ValueError),
        (lambda: fit_gmm([[0.0, 1.0]]), TypeError),
        (lambda: fit_gmm(torch.randn(50, 2), covariance_type="banana"), ValueError),
        (lambda: sample_gmm(GaussianMixture(), 5), ValueError),
        (lambda: sample_gmm("gmm", 5), TypeError),
        (lambda: interpolate(torch.zeros(3), torch.zeros(4)), ValueError),
        (lambda: interpolate(torch.zeros(3), torch.zeros(3), steps=1), ValueError),
    ],
)
def test_invalid_input(call, error):
    with pytest.raises(error):
        call()
