"""Tests for entropic_ae.synthetic.known_bottleneck: the known answers hold."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from entropic_ae.models.mlp import MLPAutoencoder
from entropic_ae.synthetic.known_bottleneck import (
    AE_SIZES,
    known_bottleneck_decoder,
    make_known_bottleneck,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def hand_autoencoder(info) -> MLPAutoencoder:
    """The hand-sized autoencoder whose layers layer+1..L are the generator (float64)."""
    model = MLPAutoencoder(info["hand_sizes"]).double()
    linears = [m for m in info["decoder"] if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for target, source in zip(model.linears[info["layer"]:], linears, strict=True):
            target.weight.copy_(source.weight)
            target.bias.copy_(source.bias)
    return model


@pytest.mark.parametrize("k, layer", [(4, 3), (6, 3), (3, 2), (5, 4)])
def test_the_decoder_half_of_the_hand_sized_autoencoder_is_the_generator(k, layer):
    x, info = make_known_bottleneck(300, k, seed=2, layer=layer, dtype=torch.float64)
    assert info["hand_sizes"][layer] == k and info["layer"] == layer
    assert info["generator_sizes"] == [k, *AE_SIZES[layer + 1:]]
    model = hand_autoencoder(info)
    # a uniform code is non-negative: the ReLU layer holds it exactly
    torch.testing.assert_close(model.decode_from(info["z"], layer), x, rtol=0, atol=1e-12)


@pytest.mark.parametrize("k", [1, 4, 6, 8])
def test_the_data_are_a_k_dimensional_manifold(k):
    x, info = make_known_bottleneck(10, k, seed=0, dtype=torch.float64)
    g = info["decoder"]
    for z in info["z"]:
        jac = torch.autograd.functional.jacobian(lambda v: g(v.unsqueeze(0))[0], z)
        s = torch.linalg.svdvals(jac)  # 784 x k: full column rank
        assert s.shape == (k,) and float(s[-1]) > 1e-4 * float(s[0])
    # locally, the images of nearby codes span k directions (PCA of a small neighbourhood)
    centre = info["z"][0].clamp(0.1, 0.9)
    gen = torch.Generator().manual_seed(5)
    near = centre + 1e-4 * (torch.rand(200, k, generator=gen, dtype=torch.float64) - 0.5)
    with torch.no_grad():
        images = g(near)
    s = torch.linalg.svdvals(images - images.mean(0))
    explained = (s[:k] ** 2).sum() / (s**2).sum()
    assert float(explained) > 1 - 1e-6
    if k < 6:
        assert float(s[k]) < 1e-3 * float(s[k - 1])


def test_every_generator_unit_is_used_and_pixels_vary():
    x, info = make_known_bottleneck(4000, 4, seed=1)
    h = info["z"]
    for module in info["decoder"]:
        h = module(h)
        if isinstance(module, nn.ReLU):
            on = (h > 0).double().mean(0)
            assert float(on[:4].min()) == 1.0  # k units always on
            assert float(on[4:].min()) > 0.15 and float(on[4:].max()) < 0.85
    assert float(x.min()) > 0 and float(x.max()) < 1
    assert float(x.std(0).min()) > 0.02  # no constant pixel
    assert x.dtype == torch.float32 and x.shape == (4000, 784)


def test_seeds():
    a, info_a = make_known_bottleneck(50, 4, seed=3)
    b, _ = make_known_bottleneck(50, 4, seed=3)
    assert torch.equal(a, b)
    c, _ = make_known_bottleneck(50, 4, seed=4)
    assert not torch.allclose(a, c)
    # same generator, fresh codes
    d, info_d = make_known_bottleneck(50, 4, seed=3, data_seed=99)
    assert not torch.allclose(a, d)
    with torch.no_grad():
        torch.testing.assert_close(info_a["decoder"](info_d["z"]).float(), d)
    state = torch.get_rng_state()
    known_bottleneck_decoder(4, 3)
    assert torch.equal(state, torch.get_rng_state())  # the global RNG is not touched


def test_gaussian_codes():
    x, info = make_known_bottleneck(100, 3, seed=0, latent="gaussian")
    assert info["latent"] == "gaussian" and float(info["z"].min()) < 0
    assert torch.isfinite(x).all()


def test_bad_arguments():
    with pytest.raises(ValueError, match="k=17"):
        make_known_bottleneck(10, 17)
    with pytest.raises(ValueError, match="layer"):
        make_known_bottleneck(10, 4, layer=6)
    with pytest.raises(ValueError, match="layer"):
        make_known_bottleneck(10, 4, layer=0)
    with pytest.raises(ValueError, match="latent"):
        make_known_bottleneck(10, 4, latent="cauchy")
    with pytest.raises(ValueError, match="n"):
        make_known_bottleneck(0, 4)
    with pytest.raises(TypeError, match="k"):
        make_known_bottleneck(10, 4.0)
    with pytest.raises(ValueError, match="contrast"):
        make_known_bottleneck(10, 4, contrast=0.0)
    with pytest.raises(TypeError, match="dtype"):
        make_known_bottleneck(10, 4, dtype=torch.int64)
    with pytest.raises(ValueError, match="three"):
        make_known_bottleneck(10, 1, layer_sizes=[4, 4])
