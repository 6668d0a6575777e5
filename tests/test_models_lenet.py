"""The LeNet feature network: features, its cache, determinism."""

import pytest
import torch

import entropic_ae.models.lenet as lenet
from entropic_ae.metrics import image_features
from entropic_ae.models.lenet import LeNetFeatures, feature_network


def test_lenet_features_shape_and_mode_restored():
    torch.manual_seed(0)
    net = LeNetFeatures().train()
    feats = image_features(torch.rand(10, 1, 28, 28), net, batch_size=4)
    assert feats.shape == (10, 128) and net.training
    assert net.classify(torch.rand(3, 1, 28, 28)).shape == (3, 10)
    with pytest.raises(ValueError):
        net(torch.rand(2, 3, 32, 32))


def fake_digits(name, split="train", root=None, limit=None):
    """Two separable classes of synthetic 'digits' instead of the real data set."""
    n = 256 if split == "train" else 128
    gen = torch.Generator().manual_seed(0 if split == "train" else 1)
    labels = torch.arange(n) % 2
    images = 0.2 * torch.rand(n, 1, 28, 28, generator=gen)
    images[labels == 1, :, 10:18, 10:18] += 0.8
    return images[:limit], labels[:limit]


def test_feature_network_is_trained_once_then_loaded(tmp_path, monkeypatch):
    monkeypatch.setattr(lenet, "load_images", fake_digits)
    net, acc = feature_network("mnist", cache_dir=tmp_path, epochs=2, progress=False)
    files = list(tmp_path.glob("lenet-mnist-*.pt"))
    assert len(files) == 1 and acc > 0.95
    calls = []
    monkeypatch.setattr(lenet, "load_images", lambda *a, **k: calls.append(1))
    again, acc2 = feature_network("mnist", cache_dir=tmp_path, epochs=2, progress=False)
    assert not calls and acc2 == acc
    x = torch.rand(5, 1, 28, 28)
    assert torch.equal(net(x), again(x))


def test_feature_network_is_deterministic(tmp_path, monkeypatch):
    monkeypatch.setattr(lenet, "load_images", fake_digits)
    a, _ = feature_network("mnist", cache_dir=tmp_path / "a", epochs=1, progress=False)
    b, _ = feature_network("mnist", cache_dir=tmp_path / "b", epochs=1, progress=False)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    with pytest.raises(ValueError):
        feature_network("cifar10", cache_dir=tmp_path)
