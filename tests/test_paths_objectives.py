"""Tests for entropic_ae.paths.objectives: the bottleneck objectives and their variants, against
enumeration and float64 references."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from test_paths_references import data_gates, grads_of, max_gap, params_of, random_data_case

from entropic_ae.paths import (
    Annealed,
    data_layer_measures,
    data_node_entropies,
    data_path_objective,
    layer_signals,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def net(seed: int, sizes=(5, 4, 3, 4, 5), n_inputs: int = 9):
    gen = torch.Generator().manual_seed(seed)
    ws = [torch.randn(o, i, generator=gen, dtype=torch.float64)
          for i, o in itertools.pairwise(sizes)]
    bs = [0.5 + 0.3 * torch.randn(o, generator=gen, dtype=torch.float64) for o in sizes[1:]]
    x = torch.rand(n_inputs, sizes[0], generator=gen, dtype=torch.float64)
    return ws, bs, x


def enumerated_gains(ws, gates, x_index: int, layer: int) -> list[float]:
    """t_l(j) for one input: the sum over every path j -> ... -> output of the gated |W|."""
    n_layers = len(ws)
    sizes = [w.shape[0] for w in ws]
    out = []
    for j in range(ws[layer - 1].shape[0]):
        total = 0.0
        for rest in itertools.product(*[range(n) for n in sizes[layer:]]):
            nodes = (j, *rest)
            weight = 1.0
            for m in range(layer + 1, n_layers + 1):
                i_prev, i_next = nodes[m - 1 - layer], nodes[m - layer]
                gate = 1.0 if m == n_layers else float(gates[m - 1][x_index, i_next])
                weight *= abs(float(ws[m - 1][i_next, i_prev])) * gate
            total += weight
        out.append(total)
    return out


def reference_spectrum_entropy(u: np.ndarray, alpha: float, spectrum: str) -> float:
    s = np.linalg.svd(u - u.mean(0), compute_uv=False)
    p = s if spectrum == "singular" else s**2
    p = p / p.sum()
    p = p[p > 0]
    if alpha == 1:
        return float(-(p * np.log(p)).sum())
    return float(np.log((p**alpha).sum()) / (1 - alpha))


# --------------------------------------------------------------------------------------------
# Layer signals and the spectrum measures
# --------------------------------------------------------------------------------------------


def test_layer_signals_are_activations_times_enumerated_gains():
    ws, bs, x = net(0)
    gates = data_gates(ws, bs, x)
    raw = layer_signals(ws, bs, x, gain=False)
    weighted = layer_signals(ws, bs, x)
    h = x
    for l in range(1, len(ws)):
        h = torch.relu(h @ ws[l - 1].T + bs[l - 1])
        torch.testing.assert_close(raw[l - 1], h)
        gains = torch.tensor([enumerated_gains(ws, gates, b, l) for b in range(x.shape[0])],
                             dtype=torch.float64)
        torch.testing.assert_close(weighted[l - 1], h * gains / gains.max(), rtol=1e-12,
                                   atol=1e-14)


@pytest.mark.parametrize("spectrum", ["singular", "variance"])
@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_spectrum_measures_match_numpy(spectrum, alpha):
    ws, bs, x = net(1, n_inputs=12)
    signals = [s.numpy() for s in layer_signals(ws, bs, x)]
    got = data_layer_measures(ws, bs, x, measure=spectrum, alpha=alpha)
    want = [reference_spectrum_entropy(u, alpha, spectrum) for u in signals]
    # a dead unit leaves a singular value at rounding level (~1e-16), whose p**alpha is
    # ~1e-8 for alpha = 0.5: orders below 1 see the rounding of both SVDs
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-7 if alpha < 1 else 1e-10)
    sub = data_layer_measures(ws, bs, x, measure=spectrum, alpha=alpha, layers=[3, 1])
    np.testing.assert_allclose(sub.numpy(), got[[2, 0]].numpy(), rtol=1e-12)


@pytest.mark.parametrize("measure", ["path", "singular", "variance"])
def test_measures_are_invariant_to_rescaling_relu_units(measure):
    ws, bs, x = net(2, n_inputs=15)
    before = data_layer_measures(ws, bs, x, measure=measure)
    ws2, bs2 = [w.clone() for w in ws], [b.clone() for b in bs]
    for layer, unit, c in ((1, 0, 40.0), (2, 1, 0.02), (3, 2, 5.0)):
        ws2[layer - 1][unit] *= c
        bs2[layer - 1][unit] *= c
        ws2[layer][:, unit] /= c
    after = data_layer_measures(ws2, bs2, x, measure=measure)
    torch.testing.assert_close(after, before, rtol=1e-9, atol=1e-12)
    if measure != "path":  # raw activations are not invariant: the loophole the gain closes
        raw_before = data_layer_measures(ws, bs, x, measure=measure, gain=False)
        raw_after = data_layer_measures(ws2, bs2, x, measure=measure, gain=False)
        assert float((raw_after - raw_before).abs().max()) > 0.05


def test_a_layer_holding_a_linear_code_has_its_rank():
    """Inputs on a k-dimensional subspace, every unit on (positive weights, inputs and biases):
    each layer's activations are an affine image of the k-dimensional code, so the rank is k."""
    gen = torch.Generator().manual_seed(3)
    k, sizes = 2, [6, 5, 4, 5, 6]
    ws = [torch.rand(o, i, generator=gen, dtype=torch.float64) for i, o in
          itertools.pairwise(sizes)]
    bs = [torch.full((o,), 0.1, dtype=torch.float64) for o in sizes[1:]]
    z = torch.rand(40, k, generator=gen, dtype=torch.float64)
    x = z @ torch.rand(k, sizes[0], generator=gen, dtype=torch.float64)
    for u in layer_signals(ws, bs, x):
        s = torch.linalg.svdvals(u - u.mean(0))
        assert int((s > 1e-9 * s[0]).sum()) == k
    en = data_layer_measures(ws, bs, x, measure="singular", alpha=0.0)  # log numerical rank
    torch.testing.assert_close(en.exp(), torch.full((3,), float(k), dtype=torch.float64))


def test_normalize_divides_by_log_width():
    ws, bs, x = net(4, sizes=(5, 4, 1, 3, 5))
    raw = data_node_entropies(ws, bs, x)
    norm = data_layer_measures(ws, bs, x, normalize=True)
    want = raw / torch.tensor([math.log(4), 1.0, math.log(3)], dtype=torch.float64)
    torch.testing.assert_close(norm, want)
    assert float(norm[1]) == 0.0  # a layer of width 1 has entropy 0, not 0/0


def test_softmin_of_normalised_measures():
    ws, bs, x = net(5)
    tau = 0.07
    h = data_layer_measures(ws, bs, x, measure="variance", alpha=2.0, normalize=True)
    want = -tau * torch.log(torch.exp(-h / tau).mean())
    got = data_path_objective(ws, bs, x, measure="variance", alpha=2.0, normalize=True, tau=tau)
    assert got.item() == pytest.approx(want.item(), rel=1e-12)
    assert data_path_objective(ws, bs, x, objective="sum", measure="singular").item() == \
        pytest.approx(data_layer_measures(ws, bs, x, measure="singular").sum().item())


def test_gradients_of_the_variants_by_finite_differences():
    ws, bs, x = net(6, sizes=(4, 3, 3, 4), n_inputs=7)
    gates = data_gates(ws, bs, x)
    n = len(ws)
    for kwargs in ({"measure": "singular"}, {"measure": "variance", "alpha": 2.0},
                   {"measure": "path", "normalize": True, "alpha": 0.5}):
        def fn(*params, kwargs=kwargs):
            return data_path_objective(list(params[:n]), list(params[n:]), x, gates, tau=0.2,
                                       **kwargs)

        inputs = tuple(t.clone().requires_grad_(True) for t in ws + bs)
        assert torch.autograd.gradcheck(fn, inputs)


def test_path_measure_gradients_match_enumeration():
    gen = torch.Generator().manual_seed(7)
    checked = 0
    while checked < 4:
        ws, bs, x, gates = random_data_case(gen, bias_kind="all")
        if len(ws) < 2:
            continue
        try:
            ref = data_node_entropies(ws, bs, x, gates, alpha=2.0)
        except ValueError:
            continue
        checked += 1
        params = params_of(ws, bs)
        widths = torch.tensor([math.log(w.shape[0]) if w.shape[0] > 1 else 1.0
                               for w in ws[:-1]], dtype=torch.float64)
        ref = data_node_entropies(ws, bs, x, gates, alpha=2.0) / widths
        got = data_layer_measures(ws, bs, x, gates, alpha=2.0, normalize=True)
        torch.testing.assert_close(got, ref)
        assert max_gap(grads_of(got.sum(), params), grads_of(ref.sum(), params)) < 1e-10


# --------------------------------------------------------------------------------------------
# Annealing and bad input
# --------------------------------------------------------------------------------------------


def test_annealed_is_geometric_then_constant():
    schedule = Annealed(1.0, 0.01, steps=100)
    assert schedule(0) == 1.0
    assert schedule(50) == pytest.approx(0.1)
    assert schedule(100) == pytest.approx(0.01)
    assert schedule(10**6) == pytest.approx(0.01)
    values = [schedule(s) for s in range(0, 101, 10)]
    assert all(a > b for a, b in itertools.pairwise(values))
    with pytest.raises(ValueError, match="step"):
        schedule(-1)
    with pytest.raises(ValueError, match="tau"):
        Annealed(0.0, 1.0, 10)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"measure": "rank"}, ValueError, "measure"),
        ({"objective": "chain", "measure": "singular"}, ValueError, "whole paths"),
        ({"objective": "example", "normalize": True}, ValueError, "whole paths"),
        ({"normalize": 1}, TypeError, "normalize"),
        ({"tau": -1.0}, ValueError, "tau"),
        ({"layers": [4]}, ValueError, "1..3"),
    ],
)
def test_objective_validates(kwargs, error, match):
    ws, bs, x = net(8)
    with pytest.raises(error, match=match):
        data_path_objective(ws, bs, x, **kwargs)


def test_constant_activations_are_refused():
    ws, bs, x = net(9)
    with pytest.raises(ValueError, match="constant"):
        data_layer_measures(ws, bs, x[:1].repeat(4, 1), measure="singular")
    with pytest.raises(ValueError, match="hidden layer"):
        layer_signals(ws[:1], bs[:1], x)
