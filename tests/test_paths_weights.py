"""Tests for entropic_ae.paths.weights: the dynamic programme against brute-force enumeration."""

from __future__ import annotations

import itertools
import math
import statistics
import time

import pytest
import torch
from test_paths_references import AE_SIZES, brute_marginals, endpoints, random_net
from torch import nn

from entropic_ae.paths import (
    count_paths,
    effective_nodes,
    linear_params,
    node_path_marginals,
    path_entropy,
    path_entropy_bruteforce,
)

pytestmark = pytest.mark.usefixtures("one_thread")

ALPHAS = [0.0, 0.04, 0.5, 1.0, 1.0 + 1e-7, 2.0, 3.5, math.inf]


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

def test_bruteforce_refuses_large_networks():
    ws = [torch.ones(o, i) for i, o in itertools.pairwise(AE_SIZES)]
    with pytest.raises(ValueError, match=str(count_paths(AE_SIZES))):
        path_entropy_bruteforce(ws)
    with pytest.raises(ValueError, match="max_paths=10"):
        path_entropy_bruteforce([torch.ones(4, 4)], max_paths=10)

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
    with pytest.raises(ValueError, match="alpha.*nan"):
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
