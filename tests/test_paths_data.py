"""Tests for entropic_ae.paths.data: the gated path mass against enumeration of every path of
every input."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from test_paths_references import (
    BruteData,
    data_gates,
    grads_of,
    max_gap,
    params_of,
    random_data_case,
)

from entropic_ae.models.mlp import MLPAutoencoder
from entropic_ae.paths import (
    data_effective_nodes,
    data_node_entropies,
    data_path_chain_entropy,
    data_path_example_entropy,
    data_path_flows,
    data_path_objective,
    linear_params,
    node_path_marginals,
    relu_gates,
)

pytestmark = pytest.mark.usefixtures("one_thread")

DATA_ALPHAS = [0.0, 0.5, 1.0, 2.0, math.inf]


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
