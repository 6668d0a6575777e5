"""The package on the device the ``test_device`` fixture names (``$ENTROPIC_AE_TEST_DEVICE``,
default the CPU): training in fp32 and with bf16 autocast, every chapter-4 loss under
autocast, and the float64 parts of the entropy estimator and the Fréchet distance under
autocast. ``python -m entropic_ae.gpu_check`` runs these tests on CUDA (its part 1)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.linalg import sqrtm
from scipy.spatial import cKDTree
from scipy.special import digamma, gammaln

from entropic_ae.bench import step_seconds
from entropic_ae.estimators import kozachenko_leonenko, minibatch_entropy
from entropic_ae.experiments import RunConfig
from entropic_ae.experiments.families import image_shape
from entropic_ae.metrics import frechet_distance
from entropic_ae.systems import CONV
from entropic_ae.training import set_seed, train

pytestmark = pytest.mark.device


def bf16(device: torch.device) -> torch.autocast:
    return torch.autocast(device.type, dtype=torch.bfloat16)


def kl_kdtree(z: np.ndarray) -> float:
    """Kozachenko–Leonenko (k = 1) in float64 with scipy's k-d tree, an independent search."""
    n, d = z.shape
    eps = cKDTree(z).query(z, k=2)[0][:, 1]
    return float(digamma(n) - digamma(1) + 0.5 * d * math.log(math.pi) - gammaln(d / 2 + 1)
                 + d * np.log(eps).mean())


def tiny_conv(name: str, seed: int = 0):
    config = RunConfig.make("conv", name, batch_size=8, width=1 / 32, latent_dim=4)
    with torch.random.fork_rng(devices=[]):
        set_seed(seed)
        model = CONV[name].build(config, image_shape(config))
    return config, model


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.rand(48, 1, 28, 28, generator=torch.Generator().manual_seed(0))


def test_the_fixture_names_an_available_device(test_device):
    assert isinstance(test_device, torch.device)
    assert torch.zeros(2, device=test_device).device.type == test_device.type


def test_training_in_fp32_and_bf16_runs_where_asked_and_agrees(test_device, images):
    """Same weights, same batches: the bf16 run computes its decoder in bf16 (autocast is on),
    the fp32 run in float32, both end finite on the device, and their losses agree closely."""
    out = {}
    for precision in ("fp32", "bf16"):
        config, model = tiny_conv("EAE")
        seen = []

        def loss(model, x, _seen=seen):
            terms = CONV["EAE"].loss(model, x)
            _seen.append(model.decode(model.encode(x)).dtype)
            return terms

        history = train(model, loss, images, epochs=2, lr=1e-3, batch_size=16, seed=0,
                        device=test_device, precision=precision)
        assert next(model.parameters()).device.type == test_device.type
        assert set(seen) == {torch.bfloat16 if precision == "bf16" else torch.float32}
        assert all(math.isfinite(v) for v in history.last().values())
        if test_device.type == "cuda":  # the loop's CUDA layout
            conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
            assert conv.weight.is_contiguous(memory_format=torch.channels_last)
        out[precision] = history.last()
    scale = abs(out["fp32"]["recon"]) + abs(out["fp32"]["neg_entropy"])
    assert abs(out["bf16"]["loss"] - out["fp32"]["loss"]) <= 0.05 * scale


@pytest.mark.parametrize("name", list(CONV))
def test_every_chapter4_system_trains_under_bf16_autocast(test_device, images, name):
    config, model = tiny_conv(name)
    objective = CONV[name].objective(config)
    history = train(model, objective.loss, images[:16], epochs=1, lr=1e-3, batch_size=8,
                    seed=0, weights=objective.weights, device=test_device, precision="bf16")
    assert all(math.isfinite(v) for v in history.last().values())


def test_kozachenko_leonenko_keeps_float64_under_autocast(test_device):
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(300, 3, generator=gen, dtype=torch.float64)
    with bf16(test_device):
        got = kozachenko_leonenko(z.to(test_device))
    assert got.dtype == torch.float64
    assert float(got) == pytest.approx(kl_kdtree(z.numpy()), rel=1e-10, abs=1e-10)


def test_kozachenko_leonenko_searches_neighbours_in_float64_under_autocast(test_device):
    """Float32 codes around 1000, nearest neighbours ~3e-3 apart: their squared norms (~2e6)
    carry 0.25 of float32 rounding, so only a float64 search finds the right neighbours."""
    gen = torch.Generator().manual_seed(2)
    z = (1000.0 + 0.05 * torch.randn(300, 2, generator=gen, dtype=torch.float64)).float()
    with bf16(test_device):
        got = float(kozachenko_leonenko(z.to(test_device)))
    assert got == pytest.approx(kl_kdtree(z.double().numpy()), abs=1e-4)


def test_frechet_distance_of_device_features_is_float64_under_autocast(test_device):
    gen = torch.Generator().manual_seed(3)
    x = 1000.0 + torch.randn(1000, 6, generator=gen, dtype=torch.float64)
    y = 1000.3 + 0.9 * torch.randn(1000, 6, generator=gen, dtype=torch.float64)
    sx, sy = np.cov(x.numpy(), rowvar=False), np.cov(y.numpy(), rowvar=False)
    diff = (x.mean(0) - y.mean(0)).numpy()
    reference = diff @ diff + np.trace(sx + sy) - 2 * np.trace(sqrtm(sx @ sy).real)
    with bf16(test_device):
        got = frechet_distance(x.to(test_device), y.to(test_device))
    assert got == pytest.approx(reference, rel=1e-10)
    # the check can fail: float32 features move the distance by far more than 1e-10
    assert frechet_distance(x.float(), y.float()) != pytest.approx(reference, rel=1e-10)


def test_minibatch_entropy_under_autocast_is_finite_and_close_to_fp32(test_device):
    z = torch.randn(100, 16, generator=torch.Generator().manual_seed(4)).to(test_device)
    z.requires_grad_(True)
    plain = minibatch_entropy(z, generator=torch.Generator().manual_seed(0))
    with bf16(test_device):
        value = minibatch_entropy(z, generator=torch.Generator().manual_seed(0))
    value.backward()
    assert math.isfinite(float(value.detach())) and torch.isfinite(z.grad).all()
    assert float(value.detach()) == pytest.approx(float(plain.detach()), abs=0.05)


def test_bench_measures_a_step_on_the_device(test_device):
    config = RunConfig.make("conv", "EAE", batch_size=8, width=1 / 32, latent_dim=4)
    assert 0 < step_seconds(config, 8, str(test_device), repeats=2, inner=2) < 30
