"""Tests for entropic_ae.paths.terms: regularisers around the optimiser's step, against float64
autograd references and against the plain loss term they stand for."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from entropic_ae.compactifier import fused_layer_compactifier_loss
from entropic_ae.models.mlp import MLPAutoencoder
from entropic_ae.paths import (
    Annealed,
    DataPathEntropyTerm,
    Decoupled,
    PathEntropyTerm,
    Regulariser,
    TermRegulariser,
    data_path_objective,
    linear_params,
    path_entropy,
)

pytestmark = pytest.mark.usefixtures("one_thread")

SIZES = [10, 6, 4, 6, 10]


def model(seed: int = 0, dtype: torch.dtype = torch.float32) -> MLPAutoencoder:
    torch.manual_seed(seed)
    return MLPAutoencoder(SIZES).to(dtype)


def batches(n: int = 8, seed: int = 0, dtype: torch.dtype = torch.float32) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.rand(12, SIZES[0], generator=gen, dtype=torch.float64).to(dtype)
            for _ in range(n)]


def reference_gradient(net: nn.Module, fn) -> tuple[float, list[torch.Tensor]]:
    """fn(net64) and its gradient for every parameter, in float64 on a copy."""
    net64 = copy.deepcopy(net).double()
    value = fn(net64)
    grads = torch.autograd.grad(value, list(net64.parameters()), allow_unused=True)
    return float(value.detach()), [torch.zeros_like(p) if g is None else g
                          for p, g in zip(net64.parameters(), grads, strict=True)]


def weight_entropy(net: nn.Module, alpha: float = 1.0) -> torch.Tensor:
    ws, bs = linear_params(net)
    return path_entropy(ws, bs, alpha=alpha)


def data_objective(x: torch.Tensor, **kwargs):
    def fn(net: nn.Module) -> torch.Tensor:
        ws, bs = linear_params(net)
        return data_path_objective(ws, bs, x.double(), **kwargs)

    return fn


def added_gradient(reg: Regulariser, net: nn.Module, step: int, x=None):
    """Run before_step on zeroed gradients; return its value and what it added to p.grad."""
    net.zero_grad(set_to_none=False)
    for p in net.parameters():
        p.grad = torch.zeros_like(p)
    value = reg.before_step(net, step, x)
    return value, [p.grad.clone() for p in net.parameters()]


def nudge(net: nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen).to(p.dtype))


def assert_grads(got, want, scale, rtol=1e-4, atol=1e-6):
    for g, r in zip(got, want, strict=True):
        torch.testing.assert_close(g.double(), scale * r, rtol=rtol, atol=atol)


# --------------------------------------------------------------------------------------------
# The gradient each step adds
# --------------------------------------------------------------------------------------------


def test_the_protocol_is_met():
    for reg in (PathEntropyTerm(0.1), DataPathEntropyTerm(0.1),
                Decoupled(lambda m, x: weight_entropy(m), 0.1, "h")):
        assert isinstance(reg, Regulariser)
        assert reg.name and reg.weight == 0.1


def test_evaluating_steps_add_w_times_the_float64_gradient():
    net, w = model(), 0.3
    reg = PathEntropyTerm(w, every=1)
    for step in range(3):
        want_value, want = reference_gradient(net, weight_entropy)
        value, got = added_gradient(reg, net, step)
        assert value == pytest.approx(want_value, rel=1e-5)
        assert_grads(got, want, w)
        nudge(net, step)
    assert reg.evaluations == 3


def test_float64_model_matches_the_reference_exactly():
    net, w = model(dtype=torch.float64), 0.7
    reg = PathEntropyTerm(w, alpha=2.0)
    _, want = reference_gradient(net, lambda m: weight_entropy(m, 2.0))
    _, got = added_gradient(reg, net, 0)
    assert_grads(got, want, w, rtol=1e-12, atol=1e-14)


def test_reuse_adds_the_stored_gradient_between_evaluations_and_returns_no_value():
    net, w, every = model(), 0.2, 3
    reg = PathEntropyTerm(w, every=every)
    stored = None
    for step in range(7):
        if step % every == 0:
            stored = reference_gradient(net, weight_entropy)
        value, got = added_gradient(reg, net, step)
        if step % every == 0:
            assert value == pytest.approx(stored[0], rel=1e-5)
        else:
            assert value is None
        assert_grads(got, stored[1], w)  # the gradient at the last evaluation, not at now
        nudge(net, step)
    assert reg.evaluations == 3 and reg.last_step == 6


def test_scale_adds_every_times_the_gradient_on_evaluating_steps_only():
    net, w, every = model(), 0.2, 4
    reg = PathEntropyTerm(w, every=every, mode="scale")
    for step in range(6):
        want = reference_gradient(net, weight_entropy)[1] if step % every == 0 else None
        value, got = added_gradient(reg, net, step)
        if want is None:
            assert value is None and all(float(g.abs().max()) == 0 for g in got)
        else:
            assert value is not None
            assert_grads(got, want, w * every)
        nudge(net, step)


def test_the_gradient_adds_to_what_the_loss_left_and_creates_missing_grads():
    net = model()
    reg = PathEntropyTerm(1.0)
    _, want = reference_gradient(net, weight_entropy)
    ones = [torch.ones_like(p) for p in net.parameters()]
    for p, o in zip(net.parameters(), ones, strict=True):
        p.grad = o.clone()
    reg.before_step(net, 0)
    for p, o, r in zip(net.parameters(), ones, want, strict=True):
        torch.testing.assert_close(p.grad.double() - o.double(), r, rtol=1e-4, atol=1e-6)
    net.zero_grad(set_to_none=True)
    reg.before_step(net, 1)  # reuse step on parameters without .grad
    assert all(p.grad is not None for p in net.parameters())


def test_reset_clears_the_stored_gradient_and_the_next_step_evaluates():
    net = model()
    reg = PathEntropyTerm(0.5, every=10)
    reg.before_step(net, 0)
    nudge(net, 1)
    reg.reset()
    assert reg.last is None and reg.last_step is None
    after = reference_gradient(net, weight_entropy)[1]
    value, got = added_gradient(reg, net, 3)  # not a multiple of every: evaluates anyway
    assert value is not None and reg.evaluations == 2
    assert_grads(got, after, 0.5)
    # a step count that goes back (a new epoch counted from 0) or another model evaluates too
    assert reg.before_step(net, 1) is not None
    assert reg.before_step(model(seed=1), 2) is not None
    assert reg.evaluations == 4


def test_weight_zero_evaluates_but_adds_nothing():
    net = model()
    reg = PathEntropyTerm(0.0)
    value, got = added_gradient(reg, net, 0)
    assert value is not None and all(float(g.abs().max()) == 0 for g in got)


# --------------------------------------------------------------------------------------------
# Decoupled
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["reuse", "scale"])
def test_decoupled_moves_the_parameters_by_minus_lr_w_gradient(mode):
    net, w, lr, every = model(dtype=torch.float64), 0.3, 0.01, 2
    reg = PathEntropyTerm(w, every=every, mode=mode, decoupled=True)
    stored = None
    for step in range(4):
        if step % every == 0:
            stored = reference_gradient(net, weight_entropy)[1]
        before = [p.detach().clone() for p in net.parameters()]
        _, got = added_gradient(reg, net, step)
        assert all(float(g.abs().max()) == 0 for g in got)  # the optimiser sees nothing
        reg.after_step(net, step, lr)
        factor = (every if step % every == 0 else 0) if mode == "scale" else 1
        for p, b, g in zip(net.parameters(), before, stored, strict=True):
            torch.testing.assert_close(p.detach() - b, -lr * w * factor * g, rtol=1e-10,
                                       atol=1e-15)


def test_after_step_without_before_step_does_nothing():
    net = model()
    reg = PathEntropyTerm(1.0, decoupled=True)
    before = [p.detach().clone() for p in net.parameters()]
    reg.after_step(net, 0, 0.1)
    reg.before_step(net, 0)
    reg.after_step(net, 0, 0.1)
    moved = [p.detach().clone() for p in net.parameters()]
    reg.after_step(net, 0, 0.1)  # a second after_step for the same step: no second move
    for a, b, c in zip(before, moved, net.parameters(), strict=True):
        assert not torch.equal(a, b) and torch.equal(b, c.detach())


def test_generic_decoupled_with_the_compactifier():
    net, w, lr = model(dtype=torch.float64), 0.3, 0.05

    def term(m, x):
        return fused_layer_compactifier_loss(m.linears[1], m.linears[2], "both", 0.5)

    reg = Decoupled(term, w, "entropy")
    want_value, want = reference_gradient(net, lambda m: term(m, None))
    before = [p.detach().clone() for p in net.parameters()]
    value = reg.before_step(net, 0, None)
    reg.after_step(net, 0, lr)
    assert value == pytest.approx(want_value, rel=1e-12)
    for p, b, g in zip(net.parameters(), before, want, strict=True):
        torch.testing.assert_close(p.detach() - b, -lr * w * g, rtol=1e-10, atol=1e-15)
    assert "decoupled=True" in repr(reg)


# --------------------------------------------------------------------------------------------
# In a training loop: every=1 is the plain loss term
# --------------------------------------------------------------------------------------------


def loop(net, regs, data, opt, lr):
    """The training loop's protocol with an MSE loss; returns the values per step."""
    values = []
    for r in regs:
        r.reset()
    for step, xb in enumerate(data):
        loss = nn.functional.mse_loss(net(xb), xb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        values.append([r.before_step(net, step, xb) for r in regs])
        opt.step()
        for r in regs:
            r.after_step(net, step, lr)
    return values


def test_coupled_every_one_equals_the_term_in_the_loss():
    data, w, lr = batches(6, dtype=torch.float64), 0.05, 0.01
    a, b = model(dtype=torch.float64), model(dtype=torch.float64)
    term = DataPathEntropyTerm(w, tau=0.3)
    loop(a, [term], data, torch.optim.Adam(a.parameters(), lr=lr), lr)
    opt = torch.optim.Adam(b.parameters(), lr=lr)
    for xb in data:
        ws, bs = linear_params(b)
        loss = nn.functional.mse_loss(b(xb), xb) + w * data_path_objective(ws, bs, xb, tau=0.3)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-9, atol=1e-12)


def test_decoupled_every_one_under_sgd_equals_sgd_on_the_sum():
    data, w, lr = batches(5, dtype=torch.float64), 0.2, 0.05
    a, b = model(dtype=torch.float64), model(dtype=torch.float64)
    values = loop(a, [PathEntropyTerm(w, decoupled=True)], data,
                  torch.optim.SGD(a.parameters(), lr=lr), lr)
    assert all(v[0] is not None for v in values)
    opt = torch.optim.SGD(b.parameters(), lr=lr)
    for xb in data:
        loss = nn.functional.mse_loss(b(xb), xb) + w * weight_entropy(b)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-13)


def test_values_are_returned_on_evaluating_steps_in_a_loop():
    net, data = model(), batches(7)
    reg = DataPathEntropyTerm(0.01, every=3, measure="singular", normalize=True, tau=0.1)
    values = loop(net, [reg], data, torch.optim.Adam(net.parameters(), lr=1e-3), 1e-3)
    assert [v[0] is not None for v in values] == [True, False, False, True, False, False, True]
    assert all(math.isfinite(v[0]) for v in values if v[0] is not None)


# --------------------------------------------------------------------------------------------
# The data term: batch, schedule, value
# --------------------------------------------------------------------------------------------


def test_data_term_uses_the_batch_and_the_scheduled_temperature():
    net, data, w = model(), batches(5), 0.4
    schedule = Annealed(2.0, 0.05, steps=4)
    reg = DataPathEntropyTerm(w, every=2, tau=schedule, alpha=0.5)
    for step, xb in enumerate(data):
        if step % 2 == 0:
            want_value, want = reference_gradient(
                net, data_objective(xb, tau=schedule(step), alpha=0.5))
        value, got = added_gradient(reg, net, step, xb)
        if step % 2 == 0:
            assert value == pytest.approx(want_value, rel=1e-5)
        assert_grads(got, want, w)
        nudge(net, step)
    assert reg.temperature(10) == pytest.approx(0.05)


def test_value_reads_the_term_without_touching_the_state():
    net, xb = model(), batches(1)[0]
    reg = DataPathEntropyTerm(0.1, every=5)
    reg.before_step(net, 0, xb)
    state = (reg.last, reg.last_step, reg.evaluations)
    ws, bs = linear_params(net)
    held_out = batches(1, seed=3)[0]
    assert reg.value(net, held_out) == pytest.approx(
        float(data_path_objective(ws, bs, held_out).detach()), rel=1e-6)
    assert (reg.last, reg.last_step, reg.evaluations) == state
    with pytest.raises(TypeError, match="batch"):
        reg.value(net)
    weights_only = PathEntropyTerm(0.1)
    assert weights_only.value(net) == pytest.approx(float(weight_entropy(net).detach()), rel=1e-6)
    assert weights_only.evaluations == 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="mode"):
        PathEntropyTerm(0.1, mode="spike")
    with pytest.raises(ValueError, match="every"):
        PathEntropyTerm(0.1, every=0)
    with pytest.raises(TypeError, match="every"):
        PathEntropyTerm(0.1, every=2.0)
    with pytest.raises(ValueError, match="weight"):
        PathEntropyTerm(-1.0)
    with pytest.raises(TypeError, match="biases"):
        PathEntropyTerm(0.1, biases=1)
    with pytest.raises(ValueError, match="objective"):
        DataPathEntropyTerm(0.1, objective="min")
    with pytest.raises(ValueError, match="measure"):
        DataPathEntropyTerm(0.1, measure="rank")
    with pytest.raises(ValueError, match="Shannon"):
        DataPathEntropyTerm(0.1, objective="chain", alpha=2.0)
    with pytest.raises(ValueError, match="whole network"):
        DataPathEntropyTerm(0.1, objective="example", measure="singular")
    with pytest.raises(ValueError, match="tau"):
        DataPathEntropyTerm(0.1, tau=0.0)
    with pytest.raises(TypeError, match="tau"):
        DataPathEntropyTerm(0.1, tau="hot")
    with pytest.raises(ValueError, match="layers"):
        DataPathEntropyTerm(0.1, layers=[0])
    with pytest.raises(TypeError, match="term_fn"):
        Decoupled(3.0, 0.1, "x")
    with pytest.raises(TypeError, match="name"):
        TermRegulariser(weight_entropy, 0.1, "")
    with pytest.raises(ValueError, match="steps"):
        Annealed(1.0, 0.1, 0)
    reg = DataPathEntropyTerm(0.1)
    with pytest.raises(TypeError, match="batch"):
        reg.before_step(model(), 0)
    with pytest.raises(TypeError, match="nn.Module"):
        reg.before_step([torch.ones(2)], 0, batches(1)[0])
    with pytest.raises(ValueError, match="step"):
        reg.before_step(model(), -1, batches(1)[0])
    with pytest.raises(ValueError, match="1..3"):
        DataPathEntropyTerm(0.1, layers=[4]).before_step(model(), 0, batches(1)[0])
    frozen = model()
    for p in frozen.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="requires a gradient"):
        PathEntropyTerm(0.1).before_step(frozen, 0)
    with pytest.raises(TypeError, match="scalar"):
        TermRegulariser(lambda m, x: torch.ones(2), 0.1, "v").before_step(model(), 0)
    assert "softmin" in repr(reg) and "alpha=1.0" in repr(PathEntropyTerm(0.1))
