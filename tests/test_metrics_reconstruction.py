"""Reconstruction errors."""


import pytest
import torch
from torch import nn

from entropic_ae.metrics import (
    per_class_mse,
    reconstruction_mse,
)


class Halve(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(0.5))

    def forward(self, x):
        return self.scale * x


def test_per_class_mse_matches_loop():
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(23, 1, 4, 4, generator=gen)
    labels = torch.randint(0, 3, (23,), generator=gen)
    labels[0] = 5
    got = per_class_mse(Halve(), images, labels, batch_size=4)
    assert list(got) == sorted(set(labels.tolist()))
    for c, value in got.items():
        chosen = [x for x, y in zip(images.tolist(), labels.tolist(), strict=True) if y == c]
        flat = [v for img in chosen for row in img[0] for v in row]
        want = sum((0.5 * v - v) ** 2 for v in flat) / len(flat)
        assert value == pytest.approx(want, rel=1e-12)


def test_per_class_mse_restores_mode_and_checks_input():
    model = Halve().train()
    images = torch.rand(6, 1, 2, 2)
    per_class_mse(model, images, torch.tensor([0, 1, 0, 1, 0, 1]))
    assert model.training
    with pytest.raises(ValueError, match="labels"):
        per_class_mse(model, images, torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="integers"):
        per_class_mse(model, images, torch.zeros(6))
    with pytest.raises(ValueError, match="non-empty"):
        per_class_mse(model, images[:0], torch.zeros(0, dtype=torch.long))


def test_reconstruction_mse():
    x = torch.rand(20, 1, 4, 4)
    assert reconstruction_mse(torch.nn.Identity(), x) == 0.0
    zero = torch.nn.Conv2d(1, 1, 1, bias=False)
    torch.nn.init.zeros_(zero.weight)
    assert reconstruction_mse(zero, x, batch_size=7) == pytest.approx(float(x.pow(2).mean()))
