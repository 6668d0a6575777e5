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


@pytest.mark.parametrize("where", ["under-a-file", "is-a-file"])
def test_an_unwritable_cache_fails_before_training(tmp_path, monkeypatch, where):
    (tmp_path / "file").write_text("not a folder")
    cache = tmp_path / "file" / "cache" if where == "under-a-file" else tmp_path / "file"
    calls = []
    monkeypatch.setattr(lenet, "load_images", lambda *a, **k: calls.append(1) or fake_digits(*a))
    with pytest.raises(ValueError, match="cache") as info:
        feature_network("mnist", cache_dir=cache, epochs=1, progress=False)
    assert str(cache) in str(info.value) and "cache_dir" in str(info.value)
    assert calls == [], "nothing is loaded or trained when the result cannot be kept"


def test_a_failed_save_keeps_the_trained_network(tmp_path, monkeypatch):
    monkeypatch.setattr(lenet, "load_images", fake_digits)

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(lenet.torch, "save", full_disk)
    with pytest.warns(UserWarning, match="No space left"):
        net, acc = feature_network("mnist", cache_dir=tmp_path, epochs=2, progress=False)
    assert isinstance(net, LeNetFeatures) and acc > 0.95
    assert not list(tmp_path.iterdir()), "no partial file is left"
