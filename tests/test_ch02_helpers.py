"""Helpers added for chapter 2: the fused compactifier loss and the per-class error."""

import math

import pytest
import torch
from torch import nn

from entropic_ae.compactifier import fused_layer_compactifier_loss, layer_compactifier_loss
from entropic_ae.metrics import per_class_mse


def pair(seed: int = 0, dead_row: bool = True):
    torch.manual_seed(seed)
    into = nn.Linear(7, 5).double()
    out_of = nn.Linear(5, 3).double()
    if dead_row:
        with torch.no_grad():  # neuron 2 has no incoming activity at all
            into.weight[2].zero_()
            into.bias[2] = 0.0
    return into, out_of


def grads(loss, params):
    got = torch.autograd.grad(loss, params, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for g, p in zip(got, params, strict=True)]


@pytest.mark.parametrize("dead_row", [False, True])
@pytest.mark.parametrize("alpha", [0.04, 0.5, 1.0, 1.0 + 1e-8, 2.0, 7.0])
@pytest.mark.parametrize("variant", ["in", "out", "both", "cumulative"])
def test_fused_matches_autograd_reference(variant, alpha, dead_row):
    into, out_of = pair(dead_row=dead_row)
    params = [into.weight, into.bias, out_of.weight]
    want = layer_compactifier_loss(into, out_of, variant, alpha)
    got = fused_layer_compactifier_loss(into, out_of, variant, alpha)
    assert got.item() == pytest.approx(want.item(), rel=1e-12, abs=1e-12)
    for g_got, g_want in zip(grads(3.0 * got, params), grads(3.0 * want, params), strict=True):
        torch.testing.assert_close(g_got, g_want, rtol=1e-9, atol=1e-12)


def test_fused_gradient_by_finite_differences():
    into, out_of = pair(seed=1, dead_row=False)
    assert torch.autograd.gradcheck(
        lambda w, b, v: fused_layer_compactifier_loss(
            _linear(w, b), _linear(v, out_of.bias), "both", 0.04),
        (into.weight.detach().clone().requires_grad_(),
         into.bias.detach().clone().requires_grad_(),
         out_of.weight.detach().clone().requires_grad_()))


def _linear(weight, bias):
    lin = nn.Linear(weight.shape[1], weight.shape[0]).double()
    del lin.weight, lin.bias
    lin.weight, lin.bias = weight, bias  # plain tensors, so gradcheck sees through them
    return lin


def test_fused_float32_close_to_float64():
    into, out_of = pair(dead_row=False)
    h64 = fused_layer_compactifier_loss(into, out_of, "both", 0.04).item()
    h32 = fused_layer_compactifier_loss(into.float(), out_of.float(), "both", 0.04).item()
    assert h32 == pytest.approx(h64, rel=1e-5)


@pytest.mark.parametrize("alpha", [0.0, math.inf])
def test_fused_rejects_orders_without_a_gradient(alpha):
    into, out_of = pair()
    with pytest.raises(ValueError, match="0 < alpha < inf"):
        fused_layer_compactifier_loss(into, out_of, "both", alpha)


def test_fused_rejects_bad_input():
    into, out_of = pair()
    with pytest.raises(ValueError, match="variant"):
        fused_layer_compactifier_loss(into, out_of, "sideways", 0.5)
    with pytest.raises(TypeError, match="nn.Linear"):
        fused_layer_compactifier_loss((into.weight, into.bias), out_of, "both", 0.5)
    with pytest.raises(ValueError, match="do not chain"):
        fused_layer_compactifier_loss(into, nn.Linear(4, 3).double(), "both", 0.5)
    with pytest.raises(ValueError, match="alpha"):
        fused_layer_compactifier_loss(into, out_of, "both", -1.0)
    with pytest.raises(ValueError, match="bias"):
        fused_layer_compactifier_loss(nn.Linear(7, 5, bias=False), out_of, "both", 0.5)


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
