"""Tests for the helpers added for chapter 3 (path entropy): ``paths.PathEntropyTerm``."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from entropic_ae.paths import PathEntropyTerm, linear_params, path_entropy
from entropic_ae.training import train

pytestmark = pytest.mark.usefixtures("one_thread")


def small_net(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 5))


def reference_grads(net: nn.Module, biases: bool = True, alpha: float = 1.0) -> list[torch.Tensor]:
    ws, bs = linear_params(net)
    params = ws + (bs if biases else [])
    h = path_entropy(ws, bs if biases else None, alpha=alpha)
    return list(torch.autograd.grad(h, params))


def term_grads(term_value: torch.Tensor, net: nn.Module, biases: bool = True) -> list[torch.Tensor]:
    ws, bs = linear_params(net)
    params = ws + (bs if biases else [])
    if not term_value.requires_grad:
        return [torch.zeros_like(p) for p in params]
    grads = torch.autograd.grad(term_value, params, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads, strict=True)]


def nudge(net: nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))


@pytest.mark.parametrize("mode", ["reuse", "scale"])
@pytest.mark.parametrize("biases", [True, False])
def test_every_one_is_the_plain_path_entropy(mode, biases):
    net = small_net()
    term = PathEntropyTerm(every=1, mode=mode, biases=biases, alpha=0.5)
    for step in range(3):
        value = term(net)
        ws, bs = linear_params(net)
        expected = path_entropy(ws, bs if biases else None, alpha=0.5)
        torch.testing.assert_close(value, expected.detach())
        pairs = zip(term_grads(value, net, biases), reference_grads(net, biases, 0.5), strict=True)
        for g, r in pairs:
            torch.testing.assert_close(g, r)
        nudge(net, step)
    assert term.calls == 3 and term.evaluations == 3


def test_reuse_returns_the_stored_value_and_gradient_between_evaluations():
    net = small_net()
    term = PathEntropyTerm(every=3)
    stored_value, stored_grads = None, None
    for step in range(7):
        value = term(net)
        grads = term_grads(value, net)
        if step % 3 == 0:  # an evaluation: value and gradient at the current weights
            ws, bs = linear_params(net)
            stored_value = path_entropy(ws, bs).detach()
            stored_grads = reference_grads(net)
        torch.testing.assert_close(value.detach(), stored_value)
        for g, r in zip(grads, stored_grads, strict=True):
            torch.testing.assert_close(g, r)
        nudge(net, step)  # weights move, the stored gradient stays
    assert term.evaluations == 3 and term.calls == 7


def test_scale_puts_every_times_the_gradient_on_evaluation_steps_only():
    net = small_net()
    term = PathEntropyTerm(every=4, mode="scale")
    for step in range(8):
        value = term(net)
        if step % 4 == 0:
            ws, bs = linear_params(net)
            torch.testing.assert_close(value.detach(), path_entropy(ws, bs).detach())
            for g, r in zip(term_grads(value, net), reference_grads(net), strict=True):
                torch.testing.assert_close(g, 4 * r)
        else:
            assert not value.requires_grad
            torch.testing.assert_close(value, term.last)
        nudge(net, step)
    assert term.evaluations == 2


def test_reuse_gradient_reaches_parameter_grads_with_the_loss_weight():
    net = small_net()
    term = PathEntropyTerm(every=2)
    x = torch.rand(8, 5)
    term(net)  # evaluation
    net.zero_grad()
    loss = F.mse_loss(net(x), x) + 0.5 * term(net)  # a stored-gradient step
    loss.backward()
    net2 = small_net()
    ws, bs = linear_params(net2)
    (F.mse_loss(net2(x), x) + 0.5 * path_entropy(ws, bs)).backward()
    for p, q in zip(net.parameters(), net2.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad)


def test_no_grad_computes_afresh_and_counts_nothing():
    net = small_net()
    term = PathEntropyTerm(every=5)
    term(net)
    nudge(net, 0)
    with torch.no_grad():
        value = term(net)
    ws, bs = linear_params(net)
    torch.testing.assert_close(value, path_entropy(ws, bs).detach())
    assert term.calls == 1 and term.evaluations == 1


def test_reset_and_a_new_model_trigger_an_evaluation():
    net = small_net()
    term = PathEntropyTerm(every=10)
    term(net)
    term(net)
    term.reset()
    assert term.calls == 0
    term(net)
    assert term.evaluations == 2
    other = small_net(seed=1)
    value = term(other)
    ws, bs = linear_params(other)
    torch.testing.assert_close(value.detach(), path_entropy(ws, bs).detach())
    assert term.evaluations == 3


def test_bad_arguments():
    with pytest.raises(ValueError, match="every"):
        PathEntropyTerm(every=0)
    with pytest.raises(TypeError, match="every"):
        PathEntropyTerm(every=2.0)
    with pytest.raises(ValueError, match="mode"):
        PathEntropyTerm(mode="sometimes")
    with pytest.raises(ValueError, match="alpha"):
        PathEntropyTerm(alpha=-1.0)
    with pytest.raises(TypeError, match="nn.Module"):
        PathEntropyTerm()([torch.ones(2, 2)])


def test_train_with_the_term_resumes_bit_identically(tmp_path):
    data = torch.rand(64, 5)

    def run(epochs: int, checkpoint):
        net = small_net()
        term = PathEntropyTerm(every=3)

        def loss_fn(model, x):
            return {"mse": F.mse_loss(model(x), x), "path_entropy": term(model)}

        history = train(net, loss_fn, data, epochs=epochs, batch_size=16, weights={
            "path_entropy": 0.01}, device="cpu", progress=False, checkpoint=checkpoint,
            callback=lambda epoch, hist: term.reset())
        return net, history

    straight, h1 = run(4, None)
    run(2, tmp_path / "ck.pt")
    resumed, h2 = run(4, tmp_path / "ck.pt")
    for p, q in zip(straight.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(p, q)
    assert h1.terms == h2.terms


@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
def test_attached_optimiser_takes_the_same_steps(opt_name):
    data = torch.rand(6, 16, 5)

    def run(attach: bool) -> nn.Module:
        net = small_net()
        term = PathEntropyTerm(every=3)
        opt = (torch.optim.SGD(net.parameters(), lr=0.05) if opt_name == "sgd"
               else torch.optim.Adam(net.parameters(), lr=0.01))
        if attach:
            term.attach(opt)
        for x in data:
            loss = F.mse_loss(net(x), x) + 0.5 * term(net)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        assert term.evaluations == 2
        return net

    for p, q in zip(run(False).parameters(), run(True).parameters(), strict=True):
        torch.testing.assert_close(p, q)


def test_attached_steps_return_the_value_without_gradient():
    net = small_net()
    term = PathEntropyTerm(every=4)
    term.attach(torch.optim.SGD(net.parameters(), lr=0.1))
    x = torch.rand(8, 5)
    (F.mse_loss(net(x), x) + 2.0 * term(net)).backward()  # evaluation: weight 2 is read off
    value = term(net)
    assert not value.requires_grad
    torch.testing.assert_close(value, term.last)


def test_attach_bad_arguments():
    with pytest.raises(TypeError, match="Optimizer"):
        PathEntropyTerm().attach(object())
    net = small_net()
    with pytest.raises(ValueError, match="reuse"):
        PathEntropyTerm(mode="scale").attach(torch.optim.SGD(net.parameters(), lr=0.1))


def test_train_with_an_attached_optimiser_matches_the_autograd_route():
    data = torch.rand(64, 5)

    def run(attach: bool) -> nn.Module:
        net = small_net()
        term = PathEntropyTerm(every=3)

        def loss_fn(model, x):
            return {"mse": F.mse_loss(model(x), x), "path_entropy": term(model)}

        def make_optimizer(params):
            opt = torch.optim.Adam(params, lr=0.01)
            return term.attach(opt) if attach else opt

        train(net, loss_fn, data, epochs=3, batch_size=16, weights={"path_entropy": 0.05},
              device="cpu", progress=False, optimizer=make_optimizer,
              callback=lambda epoch, hist: term.reset())
        return net

    for p, q in zip(run(False).parameters(), run(True).parameters(), strict=True):
        torch.testing.assert_close(p, q)
