"""Graded damage of images: each kind against a known answer, purity and seeding."""

import math
import subprocess
import sys

import pytest
import torch

from entropic_ae.damage import KINDS, STRENGTHS, damage


def tagged(n=40, classes=5, side=8, offset=0):
    """Images whose pixels (0, 0) and (0, 1) encode the label and a unique id, the rest 0.5."""
    labels = torch.arange(n) % classes
    images = torch.full((n, 1, side, side), 0.5)
    images[:, 0, 0, 0] = labels / 10.0
    images[:, 0, 0, 1] = (torch.arange(n) + offset) / 1000.0
    return images, labels


def ids(images):
    return torch.round(images[:, 0, 0, 1] * 1000).long()


def decoded_labels(images):
    return torch.round(images[:, 0, 0, 0] * 10).long()


@pytest.mark.parametrize("kind", KINDS)
def test_pure_seeded_and_shape_preserving(kind):
    images, labels = tagged()
    pool = tagged(60, offset=500)[0] if kind == "copies" else None
    before = images.clone()
    out = damage(images, labels, kind, STRENGTHS[kind][1], seed=3, pool=pool)
    assert out.shape == images.shape and out.dtype == images.dtype
    assert torch.equal(images, before), "the input is not changed"
    assert torch.equal(out, damage(images, labels, kind, STRENGTHS[kind][1], seed=3, pool=pool))
    assert not torch.equal(out, images)
    assert len(STRENGTHS[kind]) == 3 and list(STRENGTHS[kind]) == sorted(STRENGTHS[kind])


def test_blur_is_a_normalised_gaussian():
    """A bright pixel in the middle spreads into exp(-r^2 / 2 sigma^2) / (2 pi sigma^2) (to the
    kernel's truncation); a constant image stays constant; stronger blur, lower peak."""
    delta = torch.zeros(1, 1, 15, 15)
    delta[0, 0, 7, 7] = 1.0
    out = damage(delta, None, "blur", 1.0)
    assert float(out.sum()) == pytest.approx(1.0, abs=1e-5)
    ratio = float(out[0, 0, 7, 8] / out[0, 0, 7, 7])
    assert ratio == pytest.approx(math.exp(-0.5), rel=1e-4)
    flat = torch.full((2, 1, 9, 9), 0.3)
    torch.testing.assert_close(damage(flat, None, "blur", 1.5), flat)
    peaks = [float(damage(delta, None, "blur", s).max()) for s in STRENGTHS["blur"]]
    assert peaks == sorted(peaks, reverse=True)
    assert torch.equal(damage(delta, None, "blur", 0.0), delta)


def test_noise_has_the_stated_sd_and_stays_in_range():
    grey = torch.full((200, 1, 10, 10), 0.5)
    out = damage(grey, None, "noise", 0.1, seed=1)
    assert float((out - grey).std()) == pytest.approx(0.1, rel=0.03)
    loud = damage(grey, None, "noise", 5.0, seed=1)
    assert float(loud.min()) == 0.0 and float(loud.max()) == 1.0


def test_contrast_formula():
    x = torch.tensor([0.0, 0.25, 0.5, 0.6, 1.0]).reshape(1, 1, 1, 5)
    out = damage(x, None, "contrast", 2.0).flatten().tolist()
    assert out == pytest.approx([0.0, 0.0, 0.5, 0.7, 1.0])


def test_shift_moves_each_image_by_p_pixels_in_one_axis_direction():
    n, side, p = 64, 9, 2
    images = torch.zeros(n, 1, side, side)
    images[:, 0, 4, 4] = 1.0
    out = damage(images, None, "shift", p, seed=0)
    moves = set()
    for img in out[:, 0]:
        (y, x), = torch.nonzero(img).tolist()
        assert abs(y - 4) + abs(x - 4) == p and (y == 4 or x == 4)
        moves.add((y - 4, x - 4))
    assert moves == {(0, p), (0, -p), (p, 0), (-p, 0)}  # all four directions occur
    edge = torch.zeros(1, 1, 5, 5)
    edge[0, 0, 0, :] = 1.0
    assert float(damage(edge, None, "shift", 3, seed=0).sum()) in (0.0, 2.0, 5.0)


def test_dropped_classes_are_nested_and_replaced_from_the_pool():
    images, labels = tagged(100, classes=10)
    pool_images, pool_labels = tagged(300, classes=10, offset=500)
    kept = []
    for k in STRENGTHS["classes"]:
        out = damage(images, labels, "classes", k, seed=2, pool=(pool_images, pool_labels))
        present = set(decoded_labels(out).tolist())
        assert len(present) == 10 - k
        kept.append(present)
        assert len(set(ids(out).tolist())) == len(out), "no image twice"
        # the images of kept classes stay where they were; replacements come from the pool
        same = decoded_labels(images) == decoded_labels(out)
        assert torch.equal(ids(out)[same & (ids(out) < 500)], ids(images)[same & (ids(out) < 500)])
    assert kept[0] > kept[1] > kept[2], "dropped sets are nested"
    without_pool = damage(images, labels, "classes", 4, seed=2)
    assert len(set(decoded_labels(without_pool).tolist())) == 6
    with pytest.raises(ValueError, match="at least one"):
        damage(images, labels, "classes", 10)
    with pytest.raises(ValueError, match="pool holds"):
        damage(images, labels, "classes", 9, pool=tagged(5, classes=10, offset=500))


def test_duplicates_and_copies():
    images, labels = tagged(64)
    out = damage(images, labels, "duplicates", 16, seed=0)
    counts = torch.unique(ids(out), return_counts=True)[1]
    assert len(counts) == 4 and (counts == 16).all()
    train, _ = tagged(100, offset=500)
    for fraction in STRENGTHS["copies"]:
        out = damage(images, labels, "copies", fraction, seed=0, pool=train)
        copied = ids(out) >= 500
        assert int(copied.sum()) == round(fraction * 64)
        assert len(set(ids(out).tolist())) == 64, "copies are distinct"
    with pytest.raises(ValueError, match="pool"):
        damage(images, labels, "copies", 0.5)
    with pytest.raises(ValueError, match="holds"):
        damage(images, labels, "copies", 1.0, pool=train[:10])


@pytest.mark.parametrize("args, error, match", [
    ((torch.rand(3, 8, 8), None, "blur", 1.0), ValueError, "images"),
    ((torch.zeros(3, 1, 8, 8, dtype=torch.uint8), None, "blur", 1.0), TypeError, "floating"),
    ((torch.rand(3, 1, 8, 8), None, "smear", 1.0), ValueError, "kind"),
    ((torch.rand(3, 1, 8, 8), None, "blur", -1.0), ValueError, "strength"),
    ((torch.rand(3, 1, 8, 8), None, "shift", 1.5), TypeError, "strength"),
    ((torch.rand(3, 1, 8, 8), None, "shift", 8), ValueError, "strength"),
    ((torch.rand(3, 1, 8, 8), None, "classes", 1), ValueError, "labels"),
    ((torch.rand(3, 1, 8, 8), torch.zeros(3), "classes", 1), TypeError, "labels"),
    ((torch.rand(3, 1, 8, 8), None, "copies", 1.5), ValueError, "strength"),
])
def test_bad_arguments(args, error, match):
    with pytest.raises(error, match=match):
        damage(*args)


def test_importing_the_metrics_does_not_import_torchvision():
    """Every run imports the metrics (which import this module); torchvision's import costs
    about 1.2 s a process, so only blurring may import it."""
    code = ("import sys\n"
            "import entropic_ae.damage, entropic_ae.metrics, entropic_ae.experiments.measure\n"
            "print('torchvision' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"
