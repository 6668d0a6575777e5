"""The LeNet feature network: features, its cache, determinism."""

import hashlib

import pytest
import torch

import entropic_ae.models.lenet as lenet
from entropic_ae.metrics import image_features
from entropic_ae.models.lenet import (
    LeNetFeatures,
    feature_network,
    feature_networks,
    random_affine,
)


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


# --- augmentation and several seeds ----------------------------------------------------------


def test_random_affine_without_ranges_is_the_identity():
    x = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    out = random_affine(x, torch.Generator().manual_seed(1), shift=0.0, degrees=0.0, scale=0.0)
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)


def test_random_affine_shifts_by_the_drawn_amount():
    """A blob away from the border: its centre of mass moves by the drawn shift (replayed from
    the same generator state: u = 2 U - 1, shift = 2 u pixels, x then y)."""
    x = torch.zeros(6, 1, 28, 28)
    x[:, 0, 11:17, 9:15] = 1.0
    out = random_affine(x, torch.Generator().manual_seed(7), shift=2.0, degrees=0.0, scale=0.0)
    u = torch.rand(6, 4, generator=torch.Generator().manual_seed(7), dtype=torch.float64) * 2 - 1
    grid = torch.arange(28, dtype=torch.float32)

    def centre(images):
        mass = images[:, 0].sum((1, 2))
        return ((images[:, 0].sum(1) * grid).sum(1) / mass,
                (images[:, 0].sum(2) * grid).sum(1) / mass)

    (x0, y0), (x1, y1) = centre(x), centre(out)
    torch.testing.assert_close((x1 - x0).double(), 2.0 * u[:, 2], atol=1e-4, rtol=0)
    torch.testing.assert_close((y1 - y0).double(), 2.0 * u[:, 3], atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="images"):
        random_affine(torch.rand(2, 1, 28, 20), torch.Generator())


def test_augmented_networks_are_cached_apart_and_plain_names_are_unchanged(tmp_path,
                                                                          monkeypatch):
    monkeypatch.setattr(lenet, "load_images", fake_digits)
    plain, _ = feature_network("mnist", cache_dir=tmp_path, epochs=1, progress=False)
    aug, acc = feature_network("mnist", cache_dir=tmp_path, epochs=3, progress=False,
                               augment=True)  # moved squares take 3 epochs (1, 2: 50 %)
    assert len(list(tmp_path.glob("lenet-mnist-*.pt"))) == 2 and acc > 0.9
    assert not torch.equal(plain.head.weight, aug.head.weight)
    old_config = repr(sorted({"dataset": "mnist", "epochs": 1, "limit": None, "seed": 0,
                              "arch": "lenet-16-32-128", "batch": 64, "lr": 2e-3}.items()))
    name = f"lenet-mnist-{hashlib.sha1(old_config.encode()).hexdigest()[:10]}.pt"
    assert (tmp_path / name).exists(), "the networks cached before augment= keep their names"
    with pytest.raises(TypeError, match="augment"):
        feature_network("mnist", cache_dir=tmp_path, augment="yes")


def test_feature_networks_one_per_seed(tmp_path, monkeypatch):
    monkeypatch.setattr(lenet, "load_images", fake_digits)
    nets = feature_networks("mnist", seeds=[0, 1], cache_dir=tmp_path, epochs=1, progress=False)
    assert len(nets) == 2 and not torch.equal(nets[0].head.weight, nets[1].head.weight)
    again, _ = feature_network("mnist", seed=1, cache_dir=tmp_path, epochs=1, progress=False)
    assert torch.equal(again.head.weight, nets[1].head.weight)
    for bad in ([], [-1], [0.5]):
        with pytest.raises(ValueError, match="seeds"):
            feature_networks("mnist", seeds=bad, cache_dir=tmp_path)
