"""Slow, obviously-correct references for the tests of entropic_ae.paths (enumeration of every
path, float64), shared by tests/test_paths_*.py, and checks of the references themselves on
cases computed by hand."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

pytestmark = pytest.mark.usefixtures("one_thread")

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


# --------------------------------------------------------------------------------------------
# The references on cases computed by hand
# --------------------------------------------------------------------------------------------


def test_brute_marginals_of_a_hand_computed_net():
    """Two layers, 2-2-1, no biases: paths (i0, i1, 0) weigh |W1[i1, i0]| * |W2[0, i1]|."""
    w1 = torch.tensor([[1.0, 2.0], [0.0, 3.0]], dtype=torch.float64)
    w2 = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    # path weights: (0,0): 1, (1,0): 2, (0,1): 0, (1,1): 6 -> total 9
    ms = brute_marginals([w1, w2], None)
    torch.testing.assert_close(ms[0], torch.tensor([1.0, 8.0], dtype=torch.float64) / 9)
    torch.testing.assert_close(ms[1], torch.tensor([3.0, 6.0], dtype=torch.float64) / 9)
    torch.testing.assert_close(ms[2], torch.tensor([1.0], dtype=torch.float64))


def test_brute_data_of_a_hand_computed_net():
    """One input x = (1, 2) through 2-2-1 with unit 1 of the hidden layer off, no biases."""
    w1 = torch.tensor([[1.0, 1.0], [1.0, -5.0]], dtype=torch.float64)
    w2 = torch.tensor([[3.0, 4.0]], dtype=torch.float64)
    x = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    gates = data_gates([w1, w2], [None, None], x)
    assert gates[0].tolist() == [[True, False]]
    ref = BruteData([w1, w2], [None, None], x, gates)
    # live paths: pixel 0 -> unit 0 -> out: 1*1*3 = 3; pixel 1 -> unit 0 -> out: 2*1*3 = 6
    torch.testing.assert_close(ref.node_vector(0), torch.tensor([1 / 3, 2 / 3],
                                                                dtype=torch.float64))
    torch.testing.assert_close(ref.node_vector(1), torch.tensor([1.0, 0.0], dtype=torch.float64))
    assert float(ref.mixture_entropy()) == pytest.approx(-(1 / 3) * math.log(1 / 3)
                                                         - (2 / 3) * math.log(2 / 3))
    assert entropy_of(torch.tensor([0.5, 0.5, 0.0], dtype=torch.float64), 0.0).item() == \
        pytest.approx(math.log(2))
