"""Tests for entropic_ae.paths: the dynamic programme against brute-force enumeration."""

from __future__ import annotations

import itertools
import math
import statistics
import time

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from entropic_ae.losses import data_path_entropy_objective
from entropic_ae.models.mlp import MLPAutoencoder
from entropic_ae.paths import (
    DataPathEntropyTerm,
    PathEntropyTerm,
    count_paths,
    data_effective_nodes,
    data_node_entropies,
    data_path_chain_entropy,
    data_path_example_entropy,
    data_path_flows,
    data_path_objective,
    effective_nodes,
    layer_sizes,
    linear_params,
    node_path_marginals,
    path_entropy,
    path_entropy_bruteforce,
    relu_gates,
)
from entropic_ae.training import train

pytestmark = pytest.mark.usefixtures("one_thread")


ALPHAS = [0.0, 0.04, 0.5, 1.0, 1.0 + 1e-7, 2.0, 3.5, math.inf]
AE_SIZES = [784, 64, 16, 16, 16, 64, 784]


def random_net(gen: torch.Generator, dtype=torch.float64, max_layers=4, max_width=5):
    """Random small net: weights with some exact zeros, biases on some layers (or none)."""
    n_layers = int(torch.randint(3, max_layers + 2, (1,), generator=gen)) - 1  # 2..max_layers
    sizes = torch.randint(1, max_width + 1, (n_layers + 1,), generator=gen).tolist()
    ws = []
    for n_in, n_out in itertools.pairwise(sizes):
        w = torch.randn(n_out, n_in, generator=gen, dtype=dtype)
        w[torch.rand(n_out, n_in, generator=gen) < 0.25] = 0.0
        ws.append(w)
    kind = int(torch.randint(3, (1,), generator=gen))
    if kind == 0:
        bs = None
    else:
        bs = []
        for n_out in sizes[1:]:
            if kind == 2 and float(torch.rand(1, generator=gen)) < 0.5:
                bs.append(None)
            else:
                b = torch.randn(n_out, generator=gen, dtype=dtype)
                b[torch.rand(n_out, generator=gen) < 0.25] = 0.0
                bs.append(b)
    return ws, bs, sizes


def endpoints(gen: torch.Generator, sizes: list[int]):
    """All four source/target variants, with random nodes."""
    s = int(torch.randint(sizes[0], (1,), generator=gen))
    t = int(torch.randint(sizes[-1], (1,), generator=gen))
    return [(None, None), (s, None), (None, t), (s, t)]


def brute_marginals(ws, bs, source=None, target=None) -> list[torch.Tensor]:
    """Node marginals by enumerating every path with itertools.product (float64)."""
    sizes = [ws[0].shape[1]] + [w.shape[0] for w in ws]
    ranges = [range(n) for n in sizes]
    if source is not None:
        ranges[0] = [source]
    if target is not None:
        ranges[-1] = [target]
    mass = [torch.zeros(n, dtype=torch.float64) for n in sizes]
    for path in itertools.product(*ranges):
        w = 1.0
        for l in range(len(ws)):
            edge = abs(float(ws[l][path[l + 1], path[l]]))
            if bs is not None and bs[l] is not None:
                edge += abs(float(bs[l][path[l + 1]]))
            w *= edge
        for l, i in enumerate(path):
            mass[l][i] += w
    return [m / m.sum() for m in mass]


# --------------------------------------------------------------------------------------------
# Exactness against enumeration
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("base", [None, 2])
@pytest.mark.parametrize("alpha", ALPHAS)
def test_matches_bruteforce(alpha, base):
    gen = torch.Generator().manual_seed(1234)
    checked = 0
    for _ in range(25):
        ws, bs, sizes = random_net(gen)
        for source, target in endpoints(gen, sizes):
            try:
                ref = path_entropy_bruteforce(ws, bs, alpha, source, target, base)
            except ValueError as err:  # no path with nonzero weight: both must refuse
                assert "zero weight" in str(err)
                with pytest.raises(ValueError, match="zero weight"):
                    path_entropy(ws, bs, alpha, source, target, base)
                continue
            got = path_entropy(ws, bs, alpha, source, target, base)
            assert got.dtype == torch.float64 and got.ndim == 0
            assert got.item() == pytest.approx(ref.item(), abs=1e-6, rel=1e-6), (
                sizes,
                source,
                target,
            )
            checked += 1
    assert checked > 60


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0, math.inf])
def test_gradients_match_bruteforce(alpha):
    gen = torch.Generator().manual_seed(7)
    for _ in range(10):
        ws, bs, sizes = random_net(gen)
        # no exact zeros here: away from the kink of |x| the gradient is unique
        ws = [(w + 0.1 * torch.sign(w) + 0.05).requires_grad_() for w in ws]
        bs = None if bs is None else [None if b is None else b.requires_grad_() for b in bs]
        for source, target in endpoints(gen, sizes):
            leaves = ws + [b for b in (bs or []) if b is not None]
            g_dp = torch.autograd.grad(path_entropy(ws, bs, alpha, source, target), leaves)
            g_bf = torch.autograd.grad(
                path_entropy_bruteforce(ws, bs, alpha, source, target), leaves
            )
            for a, b in zip(g_dp, g_bf, strict=True):
                torch.testing.assert_close(a, b, atol=1e-8, rtol=1e-6)


def test_effectively_shannon_near_one():
    gen = torch.Generator().manual_seed(3)
    ws, bs, _ = random_net(gen)
    h1 = path_entropy(ws, bs, 1.0)
    assert path_entropy(ws, bs, 1.0 + 1e-7).item() == h1.item()
    # genuinely Rényi just outside the tolerance, and continuous there
    assert path_entropy(ws, bs, 1.0 + 1e-4).item() == pytest.approx(h1.item(), abs=1e-3)


def test_base_two_is_bits():
    gen = torch.Generator().manual_seed(5)
    ws, bs, _ = random_net(gen)
    for alpha in (0.5, 1.0, math.inf):
        nats = path_entropy(ws, bs, alpha)
        bits = path_entropy(ws, bs, alpha, base=2)
        assert bits.item() == pytest.approx(nats.item() / math.log(2), rel=1e-12)


def test_renyi_decreases_with_alpha():
    gen = torch.Generator().manual_seed(11)
    ws, bs, _ = random_net(gen, max_layers=5)
    values = [path_entropy(ws, bs, a).item() for a in [0.0, 0.5, 1.0, 2.0, 5.0, math.inf]]
    assert all(x >= y - 1e-12 for x, y in itertools.pairwise(values))


# --------------------------------------------------------------------------------------------
# Analytic values
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", ALPHAS)
def test_uniform_net_gives_log_number_of_paths(alpha):
    sizes = [3, 4, 2, 5]
    ws = [torch.full((o, i), 0.7, dtype=torch.float64) for i, o in itertools.pairwise(sizes)]
    for source, target in [(None, None), (1, None), (None, 4), (2, 0)]:
        h = path_entropy(ws, None, alpha, source, target)
        n = count_paths(sizes, source, target)
        assert h.item() == pytest.approx(math.log(n), abs=1e-12)
    # equal |W| + |b| also counts as uniform
    bs = [torch.full((o,), 0.3, dtype=torch.float64) for o in sizes[1:]]
    ws_b = [torch.full_like(w, -0.4) for w in ws]
    h = path_entropy(ws_b, bs, alpha, base=2)
    assert h.item() == pytest.approx(math.log2(count_paths(sizes)), abs=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("alpha", ALPHAS)
def test_single_path_has_zero_entropy(alpha, dtype):
    sizes = [4, 3, 5, 2]
    route = [2, 0, 4, 1]
    ws = []
    for l, (i, o) in enumerate(itertools.pairwise(sizes)):
        w = torch.zeros(o, i, dtype=dtype)
        w[route[l + 1], route[l]] = -1.7 + l
        ws.append(w.requires_grad_())
    h = path_entropy(ws, None, alpha)
    assert h.item() == pytest.approx(0.0, abs=1e-6)
    h.backward()
    assert all(torch.isfinite(w.grad).all() for w in ws)


def test_single_layer_is_entropy_of_edges():
    w = torch.tensor([[1.0, -2.0], [0.0, 3.0]], dtype=torch.float64)
    p = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64) / 6
    assert path_entropy([w]).item() == pytest.approx(-(p * p.log()).sum().item(), rel=1e-12)


# --------------------------------------------------------------------------------------------
# Gradients
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [1.0, 2.0])
def test_gradcheck(alpha):
    gen = torch.Generator().manual_seed(0)
    sizes = [3, 4, 2, 3]
    ws = [
        (0.3 + torch.rand(o, i, generator=gen, dtype=torch.float64)).requires_grad_()
        for i, o in itertools.pairwise(sizes)
    ]
    b1 = (0.2 + torch.rand(sizes[1], generator=gen, dtype=torch.float64)).requires_grad_()
    b3 = (0.2 + torch.rand(sizes[3], generator=gen, dtype=torch.float64)).requires_grad_()

    def f(w1, w2, w3, b1, b3):
        return path_entropy([w1, w2, w3], [b1, None, b3], alpha)

    assert torch.autograd.gradcheck(f, (*ws, b1, b3))

    def g(w1, w2, w3):
        return path_entropy([w1, w2, w3], None, alpha, source=1, target=2)

    assert torch.autograd.gradcheck(g, tuple(ws))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0, 2.0, math.inf])
def test_gradients_finite_with_zeros(alpha, dtype):
    gen = torch.Generator().manual_seed(2)
    ws = [torch.randn(5, 4, generator=gen), torch.randn(3, 5, generator=gen)]
    ws[0][1] = 0.0  # a dead node: nothing reaches it
    ws[0][0, 2] = 0.0
    ws[1][:, 3] = 0.0
    ws = [w.to(dtype).requires_grad_() for w in ws]
    b = torch.zeros(3, dtype=dtype).requires_grad_()
    h = path_entropy(ws, [None, b], alpha)
    assert torch.isfinite(h)
    h.backward()
    for t in [*ws, b]:
        assert torch.isfinite(t.grad).all()


def test_gradient_flows_to_modules():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3, bias=False), nn.Linear(3, 2))
    ws, bs = linear_params(net)
    assert bs[1] is None and len(ws) == 3
    path_entropy(ws, bs).backward()
    for p in net.parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0


# --------------------------------------------------------------------------------------------
# Numerical safety
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [1.0, 2.0, math.inf])
def test_deep_float32_is_safe(alpha):
    gen = torch.Generator().manual_seed(0)
    w64 = [torch.randn(64, 64, generator=gen, dtype=torch.float64) for _ in range(30)]
    w32 = [w.float().requires_grad_() for w in w64]
    h32 = path_entropy(w32, None, alpha)
    h64 = path_entropy(w64, None, alpha)
    assert h32.dtype == torch.float32 and torch.isfinite(h32)
    assert h32.item() == pytest.approx(h64.item(), rel=1e-4)
    assert 0.0 < h64.item() <= math.log(count_paths([64] * 31))
    h32.backward()
    assert all(torch.isfinite(w.grad).all() for w in w32)


def test_deep_float32_marginals_and_bruteforce_scale():
    gen = torch.Generator().manual_seed(1)
    ws = [torch.randn(64, 64, generator=gen) for _ in range(30)]
    ms = node_path_marginals(ws)
    assert len(ms) == 31
    for m in ms:
        assert torch.isfinite(m).all() and m.sum().item() == pytest.approx(1.0, abs=1e-5)
    # tiny weights: a product of 30 layers underflows without rescaling
    small = [1e-3 * w for w in ws]
    assert path_entropy(small).item() == pytest.approx(path_entropy(ws).item(), rel=1e-4)


def test_float64_fallback_when_float32_overflows():
    # |W| log |W| overflows float32 for entries near 1e37; the result is still exact
    ws = [torch.full((3, 2), 1e37), torch.full((2, 3), -1e37)]
    h = path_entropy(ws)
    assert h.dtype == torch.float32
    assert h.item() == pytest.approx(math.log(12), rel=1e-6)


# --------------------------------------------------------------------------------------------
# Marginals and effective nodes
# --------------------------------------------------------------------------------------------


def test_marginals_match_bruteforce():
    gen = torch.Generator().manual_seed(21)
    for _ in range(12):
        ws, bs, sizes = random_net(gen)
        for source, target in endpoints(gen, sizes):
            try:
                ref = brute_marginals(ws, bs, source, target)
            except RuntimeError:
                continue
            if not all(torch.isfinite(m).all() for m in ref):  # zero mass
                with pytest.raises(ValueError, match="zero weight"):
                    node_path_marginals(ws, bs, source, target)
                continue
            got = node_path_marginals(ws, bs, source, target)
            assert [m.shape[0] for m in got] == sizes
            for a, b in zip(got, ref, strict=True):
                torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-8)
                assert a.sum().item() == pytest.approx(1.0, abs=1e-12)


def test_effective_nodes_uniform_is_width():
    sizes = [6, 3, 5, 2]
    ws = [torch.ones(o, i) for i, o in itertools.pairwise(sizes)]
    for alpha in (0.0, 0.5, 1.0, 2.0, math.inf):
        eff = effective_nodes(ws, alpha=alpha)
        torch.testing.assert_close(eff, torch.tensor(sizes, dtype=torch.float32))
    eff = effective_nodes(ws, source=4, target=1)
    torch.testing.assert_close(eff, torch.tensor([1.0, 3.0, 5.0, 1.0]))


def test_effective_nodes_sees_bottleneck():
    gen = torch.Generator().manual_seed(4)
    sizes = [8, 6, 6, 6, 8]
    ws = [0.5 + torch.rand(o, i, generator=gen) for i, o in itertools.pairwise(sizes)]
    ws[1][[0, 1, 3, 4, 5]] = 1e-7  # layer 2: all mass through node 2
    eff = effective_nodes(ws)
    assert eff.shape == (5,)
    assert eff[2].item() == pytest.approx(1.0, abs=1e-4)
    assert eff[0].item() > 7.0 and eff[4].item() > 7.0
    ms = node_path_marginals(ws)
    assert ms[2][2].item() == pytest.approx(1.0, abs=1e-5)


def test_effective_nodes_differentiable():
    w = [torch.rand(4, 3, requires_grad=True), torch.rand(2, 4, requires_grad=True)]
    effective_nodes(w)[1].backward()
    assert torch.isfinite(w[0].grad).all()


# --------------------------------------------------------------------------------------------
# Counting and helpers
# --------------------------------------------------------------------------------------------


def test_count_paths():
    assert count_paths(AE_SIZES) == 784 * 64 * 16**3 * 64 * 784
    assert count_paths(AE_SIZES, source=3) == 64 * 16**3 * 64 * 784
    assert count_paths(AE_SIZES, target=783) == 784 * 64 * 16**3 * 64
    assert count_paths(AE_SIZES, source=0, target=0) == 64 * 16**3 * 64
    assert count_paths([2, 3]) == 6
    assert isinstance(count_paths([10**6] * 5), int) and count_paths([10**6] * 5) == 10**30
    with pytest.raises(ValueError, match="source=784"):
        count_paths(AE_SIZES, source=784)
    with pytest.raises(ValueError, match="target=-1"):
        count_paths(AE_SIZES, target=-1)
    with pytest.raises(ValueError, match="positive"):
        count_paths([3, 0, 2])
    with pytest.raises(ValueError, match="at least two"):
        count_paths([3])
    with pytest.raises(TypeError):
        count_paths([3, 2.5])


def test_linear_params_and_layer_sizes():
    net = nn.Sequential(nn.Linear(7, 5), nn.Tanh(), nn.Sequential(nn.Linear(5, 3)))
    ws, bs = linear_params(net)
    assert [w.shape for w in ws] == [(5, 7), (3, 5)]
    assert ws[0] is net[0].weight and bs[1] is net[2][0].bias
    assert layer_sizes(ws) == [7, 5, 3]
    ws2, _ = linear_params([net[0], net[2][0]])
    assert ws2[1] is ws[1]
    with pytest.raises(ValueError, match="no nn.Linear"):
        linear_params(nn.ReLU())
    with pytest.raises(TypeError):
        linear_params([net[0], nn.ReLU()])


def test_bruteforce_refuses_large_networks():
    ws = [torch.ones(o, i) for i, o in itertools.pairwise(AE_SIZES)]
    with pytest.raises(ValueError, match=str(count_paths(AE_SIZES))):
        path_entropy_bruteforce(ws)
    with pytest.raises(ValueError, match="max_paths=10"):
        path_entropy_bruteforce([torch.ones(4, 4)], max_paths=10)


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------


def _net():
    return [torch.rand(4, 3), torch.rand(2, 4)]


@pytest.mark.parametrize("fn", [path_entropy, path_entropy_bruteforce])
def test_bad_input(fn):
    w = _net()
    with pytest.raises(ValueError, match="empty"):
        fn([])
    with pytest.raises(ValueError, match="2-D"):
        fn([torch.rand(3)])
    with pytest.raises(ValueError, match="2-D"):
        fn([torch.rand(2, 3, 4)])
    with pytest.raises(ValueError, match="do not chain"):
        fn([torch.rand(4, 3), torch.rand(2, 5)])
    with pytest.raises(ValueError, match="empty dimension"):
        fn([torch.rand(0, 3)])
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        fn(w, [torch.rand(3), None])
    with pytest.raises(ValueError, match="2 weight matrices"):
        fn(w, [torch.rand(4)])
    with pytest.raises(ValueError, match="alpha"):
        fn(w, alpha=-0.5)
    with pytest.raises(ValueError, match="NaN"):
        fn(w, alpha=math.nan)
    with pytest.raises(ValueError, match="source=3"):
        fn(w, source=3)
    with pytest.raises(ValueError, match="source=-1"):
        fn(w, source=-1)
    with pytest.raises(ValueError, match="target=2"):
        fn(w, target=2)
    with pytest.raises(ValueError, match="base"):
        fn(w, base=1)
    with pytest.raises(ValueError, match="base"):
        fn(w, base=-2)
    with pytest.raises(TypeError, match="linear_params"):
        fn(nn.Sequential(nn.Linear(3, 2)))
    with pytest.raises(TypeError, match="linear_params"):
        fn([nn.Linear(3, 2)])
    with pytest.raises(TypeError, match="single tensor"):
        fn(torch.rand(3, 3))
    with pytest.raises(TypeError, match="floating point"):
        fn([torch.ones(2, 2, dtype=torch.int64)])
    with pytest.raises(TypeError, match="source"):
        fn(w, source=1.5)
    with pytest.raises(TypeError, match="biases"):
        fn(w, torch.rand(4))


@pytest.mark.parametrize("fn", [path_entropy, path_entropy_bruteforce])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("where", ["weight", "bias"])
def test_nonfinite_input(fn, bad, where):
    w = _net()
    b = [torch.rand(4), torch.rand(2)]
    if where == "weight":
        w[1][1, 3] = bad
        match = "weight of layer 2 contains NaN or inf"
    else:
        b[0][2] = bad
        match = "bias of layer 1 contains NaN or inf"
    with pytest.raises(ValueError, match=match):
        fn(w, b)
    # also when the bad entry lies outside the restricted paths
    with pytest.raises(ValueError, match=match):
        fn(w, b, source=0, target=0 if where == "weight" else 1)


@pytest.mark.parametrize("alpha", [0.0, 1.0, 2.0, math.inf])
def test_zero_path_mass(alpha):
    w = _net()
    w[1].zero_()
    with pytest.raises(ValueError, match="zero weight"):
        path_entropy(w, alpha=alpha)
    with pytest.raises(ValueError, match="zero weight"):
        path_entropy_bruteforce(w, alpha=alpha)
    with pytest.raises(ValueError, match="zero weight"):
        node_path_marginals(w)
    # mass exists, but nothing reaches output node 0
    w = _net()
    w[1][0] = 0.0
    assert torch.isfinite(path_entropy(w, alpha=alpha, source=1, target=1))
    with pytest.raises(ValueError, match=r"zero weight \(source=1, target=0\)"):
        path_entropy(w, alpha=alpha, source=1, target=0)


def test_other_functions_validate():
    w = _net()
    with pytest.raises(ValueError, match="target=5"):
        node_path_marginals(w, target=5)
    with pytest.raises(ValueError, match="alpha"):
        effective_nodes(w, alpha=-1)
    with pytest.raises(ValueError, match="do not chain"):
        effective_nodes([torch.rand(4, 3), torch.rand(2, 3)])


# --------------------------------------------------------------------------------------------
# Speed on the book's autoencoder
# --------------------------------------------------------------------------------------------


def _median_ms(fn, repeats=20, warmup=5) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def test_timing_autoencoder(record_property, capsys):
    torch.manual_seed(0)
    net = nn.Sequential(*[nn.Linear(i, o) for i, o in itertools.pairwise(AE_SIZES)])
    ws, bs = linear_params(net)

    def step(alpha=1.0):
        net.zero_grad(set_to_none=True)
        path_entropy(ws, bs, alpha).backward()

    # one thread (see the fixture): a busy machine makes multi-threaded timings erratic
    single = _median_ms(step)
    renyi = _median_ms(lambda: step(2.0))
    record_property("path_entropy_fwd_bwd_ms", round(single, 3))
    record_property("path_entropy_renyi2_fwd_bwd_ms", round(renyi, 3))
    with capsys.disabled():
        print(
            f"\npath_entropy forward+backward on {'-'.join(map(str, AE_SIZES))}, CPU, 1 thread, "
            f"median of 20: {single:.2f} ms (Shannon), {renyi:.2f} ms (alpha=2)"
        )
    assert single < 50.0


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


# --------------------------------------------------------------------------------------------
# Data-dependent path mass against enumeration of every path of every input
# --------------------------------------------------------------------------------------------

DATA_ALPHAS = [0.0, 0.5, 1.0, 2.0, math.inf]


def data_gates(ws, bs, x):
    """ReLU gates by an explicit forward pass, float64 (pre-activation > 0)."""
    gates, h = [], x.double()
    for w, b in zip(ws[:-1], bs[:-1], strict=True):
        z = h @ w.detach().double().T + (0 if b is None else b.detach().double())
        gates.append(z > 0)
        h = z.clamp_min(0)
    return gates


def enumerate_data_paths(ws, bs, x, gates, bias_paths=True):
    """Every path with its weight for every input, float64 and differentiable.

    A path is (k, nodes): it starts at pixel nodes[0] (k = 0) or at the bias of unit nodes[0]
    of layer k (k >= 1) and visits nodes[l - k] in layer l = k..L. Its weight for input x is
    the start weight (|x_i| or |b_k[j]| g_k(j)) times |W_l[j, i]| g_l(j) for every later edge.
    Returns the list of paths and the weights, shape (B, number of paths).
    """
    n_layers = len(ws)
    sizes = [ws[0].shape[1]] + [w.shape[0] for w in ws]
    batch = x.shape[0]

    def gate(l, j):
        if l == n_layers:
            return torch.ones(batch, dtype=torch.float64)
        return gates[l - 1][:, j].double()

    paths, columns = [], []
    for k in range(n_layers + 1):
        if k >= 1 and (not bias_paths or bs[k - 1] is None):
            continue
        for nodes in itertools.product(*[range(n) for n in sizes[k:]]):
            if k == 0:
                weight = x[:, nodes[0]].double().abs()
            else:
                weight = bs[k - 1][nodes[0]].double().abs() * gate(k, nodes[0])
            for l in range(k + 1, n_layers + 1):
                j, i = nodes[l - k], nodes[l - k - 1]
                weight = weight * ws[l - 1][j, i].double().abs() * gate(l, j)
            paths.append((k, nodes))
            columns.append(weight)
    return paths, torch.stack(columns, dim=1)


def entropy_of(p, alpha=1.0):
    """Entropy of a probability vector by its definition (0 log 0 = 0)."""
    p = p[p > 0]
    if alpha == 0:
        return torch.log(torch.tensor(float(p.numel()), dtype=torch.float64)) + 0 * p.sum()
    if math.isinf(alpha):
        return -p.max().log()
    if alpha == 1:
        return -(p * p.log()).sum()
    return (p**alpha).sum().log() / (1 - alpha)


class BruteData:
    """Everything the data-dependent functions compute, from the enumerated paths."""

    def __init__(self, ws, bs, x, gates, bias_paths=True):
        self.paths, w = enumerate_data_paths(ws, bs, x, gates, bias_paths)
        z = w.sum(1)
        keep = z > 0
        self.p = w[keep] / z[keep].unsqueeze(1)  # per-input path distributions
        self.mix = self.p.mean(0)  # the batch mixture
        self.sizes = [ws[0].shape[1]] + [w_.shape[0] for w_ in ws]
        n_layers = len(ws)
        self.n_layers = n_layers
        zero = torch.zeros((), dtype=torch.float64)
        self.nodes = [[zero] * n for n in self.sizes]
        self.constant = [zero] * n_layers
        self.edges = [[[zero] * self.sizes[l - 1] for _ in range(self.sizes[l])]
                      for l in range(1, n_layers + 1)]
        self.bias_edges = [[zero] * self.sizes[l] for l in range(1, n_layers + 1)]
        for q, (k, nodes) in zip(self.mix, self.paths, strict=True):
            for l in range(n_layers + 1):
                if l < k:
                    self.constant[l] = self.constant[l] + q
                else:
                    self.nodes[l][nodes[l - k]] = self.nodes[l][nodes[l - k]] + q
            if k >= 1:
                self.bias_edges[k - 1][nodes[0]] = self.bias_edges[k - 1][nodes[0]] + q
            for l in range(max(k, 1), n_layers + 1):
                if l - 1 >= k:
                    j, i = nodes[l - k], nodes[l - k - 1]
                    self.edges[l - 1][j][i] = self.edges[l - 1][j][i] + q

    def node_vector(self, l):
        return torch.stack(self.nodes[l])

    def node_entropy(self, l, alpha=1.0):
        m = self.node_vector(l)
        return entropy_of(m / m.sum(), alpha)

    def chain_entropy(self):
        """H(Q), with Q built path by path from the averaged flows (constant nodes included)."""
        total = torch.zeros((), dtype=torch.float64)
        qs = []
        for k, nodes in self.paths:
            q = None
            for l in range(1, self.n_layers + 1):
                if l < k:
                    flow, prev = self.constant[l], self.constant[l - 1]
                elif l == k:
                    flow, prev = self.bias_edges[l - 1][nodes[0]], self.constant[l - 1]
                else:
                    i, j = nodes[l - 1 - k], nodes[l - k]
                    flow, prev = self.edges[l - 1][j][i], self.nodes[l - 1][i]
                if q is None:
                    q = flow
                else:  # a transition out of a node without mass never happens
                    q = q * torch.where(prev > 0, flow / torch.where(prev > 0, prev, 1.0), 0.0)
            qs.append(q)
        qs = torch.stack(qs)
        total = qs.sum()
        return entropy_of(qs), total

    def example_entropy(self):
        return torch.stack([entropy_of(p) for p in self.p]).mean()

    def mixture_entropy(self):
        return entropy_of(self.mix)


def random_data_case(gen, n_inputs=4, bias_kind=None, max_width=3):
    """A random small ReLU net, inputs with zero pixels, and its gates."""
    ws, bs, sizes = random_net(gen, max_layers=4, max_width=max_width)
    if bias_kind == "all":
        bs = [torch.randn(n, generator=gen, dtype=torch.float64) for n in sizes[1:]]
    x = torch.rand(n_inputs, sizes[0], generator=gen, dtype=torch.float64)
    x[torch.rand(x.shape, generator=gen) < 0.3] = 0.0
    bs_full = bs if bs is not None else [None] * len(ws)
    return ws, bs_full, x, data_gates(ws, bs_full, x)


def params_of(ws, bs):
    for t in ws + [b for b in bs if b is not None]:
        t.requires_grad_(True)
    return ws + [b for b in bs if b is not None]


def grads_of(value, params):
    got = torch.autograd.grad(value, params, allow_unused=True, retain_graph=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, got, strict=True)]


def max_gap(a, b):
    return max(float((x - y).abs().max()) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("bias_paths", [True, False])
def test_data_flows_match_enumeration(bias_paths):
    gen = torch.Generator().manual_seed(10)
    worst_value, worst_grad = 0.0, 0.0
    for _ in range(12):
        ws, bs, x, gates = random_data_case(gen)
        ref = BruteData(ws, bs, x, gates, bias_paths)
        if ref.p.shape[0] == 0:
            continue
        flows = data_path_flows(ws, bs, x, gates, bias_paths=bias_paths)
        for l in range(len(ws) + 1):
            worst_value = max(worst_value, float((flows.nodes[l] - ref.node_vector(l)).abs().max()))
        worst_value = max(worst_value,
                          float((flows.constant - torch.stack(ref.constant)).abs().max()))
        for l in range(1, len(ws) + 1):
            want = torch.stack([torch.stack(row) for row in ref.edges[l - 1]])
            worst_value = max(worst_value, float((flows.edges[l - 1] - want).abs().max()))
            want_b = torch.stack(ref.bias_edges[l - 1])
            worst_value = max(worst_value, float((flows.bias_edges[l - 1] - want_b).abs().max()))
            # every unit's mass is its in-flow, and every layer holds all the mass
            torch.testing.assert_close(flows.edges[l - 1].sum(1) + flows.bias_edges[l - 1],
                                       flows.nodes[l])
        for l in range(len(ws)):
            assert float(flows.nodes[l].sum() + flows.constant[l]) == pytest.approx(1, abs=1e-12)
        assert float(flows.nodes[-1].sum()) == pytest.approx(1, abs=1e-12)
        # gradients of a generic functional of all flows
        params = params_of(ws, bs)
        probe = torch.randn(sum(e.numel() for e in flows.edges), generator=gen,
                            dtype=torch.float64)
        dp = data_path_flows(ws, bs, x, gates, bias_paths=bias_paths)
        ref = BruteData(ws, bs, x, gates, bias_paths)
        dp_value = torch.cat([e.reshape(-1) for e in dp.edges]) @ probe
        ref_value = torch.cat([torch.stack([torch.stack(r) for r in e]).reshape(-1)
                               for e in ref.edges]) @ probe
        worst_grad = max(worst_grad, max_gap(grads_of(dp_value, params),
                                             grads_of(ref_value, params)))
    assert worst_value < 1e-10 and worst_grad < 1e-9


@pytest.mark.parametrize("alpha", DATA_ALPHAS)
def test_data_node_entropies_and_objectives_match_enumeration(alpha):
    gen = torch.Generator().manual_seed(11)
    checked = 0
    while checked < 10:
        ws, bs, x, gates = random_data_case(gen, bias_kind="all" if checked % 2 else None)
        if len(ws) < 2:
            continue
        ref = BruteData(ws, bs, x, gates)
        hidden = range(1, len(ws))
        if ref.p.shape[0] == 0 or any(float(ref.node_vector(l).sum()) == 0 for l in hidden):
            continue
        checked += 1
        params = params_of(ws, bs)
        ref = BruteData(ws, bs, x, gates)
        want = torch.stack([ref.node_entropy(l, alpha) for l in hidden])
        got = data_node_entropies(ws, bs, x, gates, alpha=alpha)
        torch.testing.assert_close(got, want, rtol=0, atol=1e-9)
        tau = 0.3
        want_soft = -tau * torch.log(torch.exp(-want / tau).mean())
        cases = [("softmin", want_soft), ("sum", want.sum())]
        for objective, ref_value in cases:
            value = data_path_objective(ws, bs, x, gates, objective=objective, alpha=alpha,
                                        tau=tau)
            assert value.item() == pytest.approx(ref_value.item(), abs=1e-9)
            if alpha in (0.0, math.inf):
                continue  # piecewise constant / a subgradient: values only
            assert max_gap(grads_of(value, params), grads_of(ref_value, params)) < 1e-8
        soft, low = float(want_soft.detach()), float(want.detach().min())
        assert low - 1e-12 <= soft <= low + tau * math.log(len(hidden)) + 1e-12


@pytest.mark.parametrize("bias_paths", [True, False])
def test_chain_and_example_entropies_match_enumeration(bias_paths):
    gen = torch.Generator().manual_seed(12)
    checked = 0
    while checked < 10:
        ws, bs, x, gates = random_data_case(gen, bias_kind="all" if checked % 2 else None)
        params = params_of(ws, bs)
        ref = BruteData(ws, bs, x, gates, bias_paths)
        if ref.p.shape[0] == 0:
            continue
        checked += 1
        want_chain, q_total = ref.chain_entropy()
        assert float(q_total.detach()) == pytest.approx(1.0, abs=1e-12)  # Q is a distribution
        chain = data_path_chain_entropy(ws, bs, x, gates, bias_paths=bias_paths)
        example = data_path_example_entropy(ws, bs, x, gates, bias_paths=bias_paths)
        want_example = ref.example_entropy()
        assert chain.item() == pytest.approx(want_chain.item(), abs=1e-9)
        assert example.item() == pytest.approx(want_example.item(), abs=1e-9)
        for value, ref_value in ((chain, want_chain), (example, want_example)):
            assert max_gap(grads_of(value, params), grads_of(ref_value, params)) < 1e-8
        # mean per-input entropy <= entropy of the mixture <= the Markov chain's entropy
        mixture = float(ref.mixture_entropy().detach())
        assert float(want_example.detach()) <= mixture + 1e-12 <= float(want_chain.detach()) + 2e-12
        for objective in ("chain", "example"):
            value = data_path_objective(ws, bs, x, gates, objective=objective,
                                        bias_paths=bias_paths)
            assert value.item() == pytest.approx((chain if objective == "chain"
                                                  else example).item(), rel=1e-12)


def test_single_input_chain_is_the_path_entropy_of_that_input():
    """For one input the path distribution is itself a Markov chain: H(Q) = H(p_x)."""
    gen = torch.Generator().manual_seed(13)
    for _ in range(5):
        ws, bs, x, gates = random_data_case(gen, n_inputs=1, bias_kind="all")
        ref = BruteData(ws, bs, x, gates)
        chain = data_path_chain_entropy(ws, bs, x, gates)
        assert chain.item() == pytest.approx(ref.example_entropy().item(), abs=1e-10)
        example = data_path_example_entropy(ws, bs, x, gates)
        assert example.item() == pytest.approx(chain.item(), abs=1e-10)


def test_gradcheck_data_objectives():
    """Finite differences (gates fixed), away from |w| = 0."""
    gen = torch.Generator().manual_seed(14)
    sizes = [4, 3, 3, 4]
    ws = [torch.randn(o, i, generator=gen, dtype=torch.float64) for i, o in
          itertools.pairwise(sizes)]
    bs = [torch.randn(o, generator=gen, dtype=torch.float64) for o in sizes[1:]]
    x = torch.rand(5, 4, generator=gen, dtype=torch.float64)
    gates = data_gates(ws, bs, x)
    gates[0][0, 1] = False  # an extra gate off
    n = len(ws)

    for objective, alpha in (("softmin", 1.0), ("softmin", 2.0), ("sum", 0.5), ("chain", 1.0),
                             ("example", 1.0)):
        def fn(*params, objective=objective, alpha=alpha):
            return data_path_objective(list(params[:n]), list(params[n:]), x, gates,
                                       objective=objective, alpha=alpha)

        inputs = tuple(t.clone().requires_grad_(True) for t in ws + bs)
        assert torch.autograd.gradcheck(fn, inputs)


def test_data_path_mass_is_invariant_to_relu_rescaling_and_ignores_dead_units():
    gen = torch.Generator().manual_seed(15)
    sizes = [6, 5, 4, 5, 6]
    ws = [torch.randn(o, i, generator=gen, dtype=torch.float64) for i, o in
          itertools.pairwise(sizes)]
    bs = [torch.randn(o, generator=gen, dtype=torch.float64) for o in sizes[1:]]
    x = torch.rand(20, 6, generator=gen, dtype=torch.float64)

    def measures(ws, bs):
        return (data_path_flows(ws, bs, x).nodes,
                data_path_objective(ws, bs, x, objective="chain"),
                data_node_entropies(ws, bs, x))

    nodes0, chain0, ent0 = measures(ws, bs)
    ws2, bs2 = [w.clone() for w in ws], [b.clone() for b in bs]
    for layer, unit, c in ((1, 2, 30.0), (2, 0, 0.01), (3, 4, 7.0)):
        ws2[layer - 1][unit] *= c
        bs2[layer - 1][unit] *= c
        ws2[layer][:, unit] /= c
    nodes1, chain1, ent1 = measures(ws2, bs2)
    for a, b in zip(nodes0, nodes1, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-14)
    assert chain1.item() == pytest.approx(chain0.item(), rel=1e-10)
    torch.testing.assert_close(ent1, ent0, rtol=1e-10, atol=1e-14)
    # a decoy: unit 1 of layer 2 never fires, yet has huge weights; it gets no mass at all,
    # while the weight-only path entropy makes it the carrier
    ws3, bs3 = [w.clone() for w in ws], [b.clone() for b in bs]
    ws3[1][1] = 50.0
    bs3[1][1] = -1e4
    ws3[2][:, 1] = 50.0
    nodes3 = data_path_flows(ws3, bs3, x).nodes
    assert nodes3[2][1] == 0.0
    assert float(node_path_marginals(ws3, bs3)[2][1]) > 0.5


def test_per_input_entropy_rewards_sparsity_not_a_shared_bottleneck():
    """Each input fires a different single unit of the middle layer: every input uses few
    paths (low per-input entropy) but the batch spreads over all units (high node entropy)."""
    n = 4
    w1 = torch.eye(n, dtype=torch.float64)
    w2 = torch.eye(n, dtype=torch.float64)
    x = torch.eye(n, dtype=torch.float64)  # input k lights pixel k, which fires unit k only
    ws, bs = [w1, w2], [None, None]
    hidden = data_node_entropies(ws, bs, x)
    assert hidden.item() == pytest.approx(math.log(n), rel=1e-12)
    assert data_path_example_entropy(ws, bs, x).item() == pytest.approx(0.0, abs=1e-12)
    # a shared bottleneck: all inputs pass unit 0
    w1b = torch.zeros(n, n, dtype=torch.float64)
    w1b[0] = 1.0
    w2b = torch.zeros(n, n, dtype=torch.float64)
    w2b[:, 0] = 1.0
    shared = data_node_entropies([w1b, w2b], bs, x)
    assert shared.item() == pytest.approx(0.0, abs=1e-12)
    assert data_path_example_entropy([w1b, w2b], bs, x).item() == pytest.approx(
        math.log(n), rel=1e-12)


def test_inputs_without_paths_are_left_out():
    ws = [torch.rand(3, 4, dtype=torch.float64) + 0.1, torch.rand(2, 3, dtype=torch.float64)]
    bs = [None, None]
    x = torch.rand(3, 4, dtype=torch.float64)
    x[1] = 0.0  # no path mass at all
    full = data_path_flows(ws, bs, x)
    kept = data_path_flows(ws, bs, x[[0, 2]])
    for a, b in zip(full.nodes, kept.nodes, strict=True):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="no input of the batch"):
        data_path_objective(ws, bs, torch.zeros(2, 4, dtype=torch.float64))


def test_layer_without_mass_is_reported():
    ws = [torch.rand(3, 4, dtype=torch.float64), torch.rand(3, 3, dtype=torch.float64),
          torch.rand(2, 3, dtype=torch.float64)]
    bs = [torch.full((3,), -100.0, dtype=torch.float64), torch.ones(3, dtype=torch.float64),
          torch.ones(2, dtype=torch.float64)]
    x = torch.rand(5, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"layer\(s\) \[1\]"):
        data_node_entropies(ws, bs, x)
    assert data_node_entropies(ws, bs, x, layers=[2]).shape == (1,)


def test_float32_matches_float64_and_deep_nets_stay_in_range():
    gen = torch.Generator().manual_seed(16)
    sizes = [20] + [8] * 30 + [20]
    ws = [3.0 * torch.randn(o, i, generator=gen, dtype=torch.float64) for i, o in
          itertools.pairwise(sizes)]
    bs = [torch.randn(o, generator=gen, dtype=torch.float64) for o in sizes[1:]]
    x = torch.rand(6, 20, generator=gen, dtype=torch.float64)
    gates = data_gates(ws, bs, x)
    h64 = data_node_entropies(ws, bs, x, gates)
    h32 = data_node_entropies([w.float() for w in ws], [b.float() for b in bs], x.float(), gates)
    assert h32.dtype == torch.float32
    torch.testing.assert_close(h32.double(), h64, rtol=1e-4, atol=1e-4)
    chain = data_path_chain_entropy([w.float() for w in ws], [b.float() for b in bs],
                                    x.float(), gates)
    assert math.isfinite(chain.item())


def test_relu_gates_match_the_model():
    torch.manual_seed(0)
    model = MLPAutoencoder([12, 6, 4, 6, 12])
    x = torch.rand(7, 12)
    ws, bs = linear_params(model)
    outs = model.layer_outputs(x)
    for g, h in zip(relu_gates(ws, bs, x), outs[1:-1], strict=True):
        assert torch.equal(g, h > 0)


def test_data_effective_nodes():
    gen = torch.Generator().manual_seed(17)
    ws, bs, x, gates = random_data_case(gen, n_inputs=9, bias_kind="all")
    while len(ws) < 2:
        ws, bs, x, gates = random_data_case(gen, n_inputs=9, bias_kind="all")
    ref = BruteData(ws, bs, x, gates)
    want = torch.stack([ref.node_entropy(l).exp() for l in range(len(ws) + 1)])
    for batch_size in (1024, 4, 1):
        got = data_effective_nodes(ws, bs, x, gates, batch_size=batch_size)
        torch.testing.assert_close(got, want.detach(), rtol=1e-10, atol=1e-12)
    # uniform: identity layers, all inputs equal
    eye = [torch.eye(3, dtype=torch.float64)] * 3
    en = data_effective_nodes(eye, None, torch.ones(4, 3, dtype=torch.float64))
    torch.testing.assert_close(en, torch.full((4,), 3.0, dtype=torch.float64))


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda ws, bs, x: data_path_flows(ws, bs, x.tolist()), TypeError, "torch.Tensor"),
        (lambda ws, bs, x: data_path_flows(ws, bs, x[:, :3]), ValueError, "entries each"),
        (lambda ws, bs, x: data_path_flows(ws, bs, x[0]), ValueError, "entries each"),
        (lambda ws, bs, x: data_path_flows(ws, bs, x.long()), TypeError, "floating"),
        (lambda ws, bs, x: data_path_flows(ws, bs, x, [torch.ones(5, 3)]), TypeError, "boolean"),
        (lambda ws, bs, x: data_path_flows(ws, bs, x, [torch.ones(5, 2, dtype=torch.bool)]),
         ValueError, "shape"),
        (lambda ws, bs, x: data_path_flows(ws, bs, x, []), ValueError, "one gate tensor"),
        (lambda ws, bs, x: data_path_flows(ws, bs, x * math.nan), ValueError, "NaN"),
        (lambda ws, bs, x: data_path_objective(ws, bs, x, objective="max"), ValueError,
         "objective"),
        (lambda ws, bs, x: data_path_objective(ws, bs, x, tau=0.0), ValueError, "tau"),
        (lambda ws, bs, x: data_path_objective(ws, bs, x, tau="1"), TypeError, "tau"),
        (lambda ws, bs, x: data_path_objective(ws, bs, x, objective="chain", alpha=2.0),
         ValueError, "Shannon"),
        (lambda ws, bs, x: data_path_objective(ws, bs, x, objective="chain", layers=[1]),
         ValueError, "layers"),
        (lambda ws, bs, x: data_node_entropies(ws, bs, x, layers=[2]), ValueError, "1..1"),
        (lambda ws, bs, x: data_node_entropies(ws, bs, x, layers=[]), ValueError, "empty"),
        (lambda ws, bs, x: data_node_entropies(ws, bs, x, layers=[1.0]), TypeError, "ints"),
        (lambda ws, bs, x: data_node_entropies(ws[:1], bs[:1], x), ValueError, "hidden layer"),
        (lambda ws, bs, x: data_effective_nodes(ws, bs, x, batch_size=0), ValueError,
         "batch_size"),
        (lambda ws, bs, x: data_node_entropies(ws, bs, x, alpha=-1.0), ValueError, "alpha"),
    ],
)
def test_data_functions_validate(call, error, match):
    ws = [torch.rand(3, 4), torch.rand(2, 3)]
    bs = [torch.rand(3), torch.rand(2)]
    with pytest.raises(error, match=match):
        call(ws, bs, torch.rand(5, 4))


# --------------------------------------------------------------------------------------------
# DataPathEntropyTerm: the data objective as a training term, every k steps
# --------------------------------------------------------------------------------------------


def data_batches(n=7, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.rand(8, 5, generator=gen) for _ in range(n)]


def data_reference(net, x, **kwargs):
    ws, bs = linear_params(net)
    value = data_path_objective(ws, bs, x, **kwargs)
    return value.detach(), list(torch.autograd.grad(value, ws + bs))


@pytest.mark.parametrize("mode", ["reuse", "scale"])
@pytest.mark.parametrize("objective", ["softmin", "sum", "chain", "example"])
def test_data_term_every_one_is_the_plain_objective(mode, objective):
    net = small_net()
    term = DataPathEntropyTerm(every=1, objective=objective, mode=mode)
    for step, x in enumerate(data_batches(3)):
        value = term(net, x)
        want, want_grads = data_reference(net, x, objective=objective)
        torch.testing.assert_close(value.detach(), want)
        for g, r in zip(term_grads(value, net), want_grads, strict=True):
            torch.testing.assert_close(g, r)
        nudge(net, step)
    assert term.calls == 3 and term.evaluations == 3


def test_data_term_reuses_the_last_evaluation_between_evaluations():
    net = small_net()
    term = DataPathEntropyTerm(every=3, tau=0.2, layers=[2])
    stored = None
    for step, x in enumerate(data_batches(7)):
        value = term(net, x)
        if step % 3 == 0:
            stored = data_reference(net, x, tau=0.2, layers=[2])
        torch.testing.assert_close(value.detach(), stored[0])
        for g, r in zip(term_grads(value, net), stored[1], strict=True):
            torch.testing.assert_close(g, r)
        nudge(net, step)
    assert term.evaluations == 3


def test_data_term_takes_the_gates_from_layer_outputs():
    torch.manual_seed(0)
    model = MLPAutoencoder([12, 6, 4, 6, 12])
    x = torch.rand(10, 12)
    term = DataPathEntropyTerm(every=1)
    a = term(model, x)
    b = term(model, x, layer_outputs=model.layer_outputs(x))
    torch.testing.assert_close(a, b)
    with torch.no_grad():
        c = term(model, x)
    torch.testing.assert_close(c, a.detach())
    assert term.calls == 2
    with pytest.raises(ValueError, match="5 tensors"):
        term(model, x, layer_outputs=model.layer_outputs(x)[:-1])


def test_train_with_the_data_term_and_an_attached_optimiser():
    data = torch.rand(64, 12)

    def run(attach: bool):
        torch.manual_seed(0)
        model = MLPAutoencoder([12, 6, 4, 6, 12])
        term = DataPathEntropyTerm(every=3)

        def make_optimizer(params):
            opt = torch.optim.Adam(params, lr=0.01)
            return term.attach(opt) if attach else opt

        history = train(model, data_path_entropy_objective(term), data, epochs=2, batch_size=16,
                        weights={"path_entropy": 0.05}, device="cpu", progress=False,
                        optimizer=make_optimizer, callback=lambda epoch, hist: term.reset())
        return model, history, term

    plain, h1, term = run(False)
    attached, h2, _ = run(True)
    assert term.evaluations == 4  # 4 batches per epoch, every 3: steps 0 and 3, twice
    assert all(math.isfinite(v) for v in h1.terms["path_entropy"])
    for p, q in zip(plain.parameters(), attached.parameters(), strict=True):
        torch.testing.assert_close(p, q)


def test_data_term_bad_arguments():
    with pytest.raises(ValueError, match="objective"):
        DataPathEntropyTerm(objective="min")
    with pytest.raises(ValueError, match="Shannon"):
        DataPathEntropyTerm(objective="chain", alpha=2.0)
    with pytest.raises(ValueError, match="layers"):
        DataPathEntropyTerm(objective="example", layers=[1])
    with pytest.raises(ValueError, match="tau"):
        DataPathEntropyTerm(tau=-1.0)
    with pytest.raises(ValueError, match="layers"):
        DataPathEntropyTerm(layers=[0])
    with pytest.raises(ValueError, match="every"):
        DataPathEntropyTerm(every=0)
    term = DataPathEntropyTerm()
    with pytest.raises(TypeError, match="nn.Module"):
        term([torch.ones(2, 2)], torch.rand(3, 2))
    with pytest.raises(TypeError, match="torch.Tensor"):
        term(small_net(), [[0.0] * 5])
    with pytest.raises(ValueError, match="1..2"):
        DataPathEntropyTerm(layers=[3])(small_net(), torch.rand(4, 5))
    assert "softmin" in repr(term)


def test_effective_nodes_of_a_layer_without_mass_is_zero():
    ws = [torch.rand(3, 4, dtype=torch.float64), torch.rand(2, 3, dtype=torch.float64)]
    bs = [torch.ones(3, dtype=torch.float64), torch.ones(2, dtype=torch.float64)]
    en = data_effective_nodes(ws, bs, torch.zeros(5, 4, dtype=torch.float64))
    assert en[0] == 0.0 and 1 < en[1] <= 3 and 1 < en[2] <= 2


def test_a_constant_unit_carries_bias_mass_only_with_bias_paths():
    """The documented loophole: an always-on unit with no input weights and a large bias, its
    output cancelled by the next bias, leaves the function unchanged but holds path mass when
    biases are path sources; with bias_paths=False it holds none."""
    gen = torch.Generator().manual_seed(18)
    ws = [torch.rand(3, 4, generator=gen, dtype=torch.float64),
          torch.rand(2, 3, generator=gen, dtype=torch.float64)]
    bs = [torch.zeros(3, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)]
    ws[0][2] = 0.0  # unit 2: no input weights ...
    bs[0][2] = 100.0  # ... a large bias: constant output 100
    bs[1] -= 100.0 * ws[1][:, 2]  # the next bias cancels it: same function as with unit 2 off
    x = torch.rand(6, 4, generator=gen, dtype=torch.float64)
    with_bias = data_path_flows(ws, bs, x).nodes[1]
    without = data_path_flows(ws, bs, x, bias_paths=False).nodes[1]
    assert with_bias[2] / with_bias.sum() > 0.9 and without[2] == 0.0
    assert data_node_entropies(ws, bs, x).item() < 0.2 < 0.5 < data_node_entropies(
        ws, bs, x, bias_paths=False).item()
