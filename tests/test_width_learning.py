"""Tests of the width-learning baselines (entropic_ae.width_learning): the hard-concrete L0
gate against its closed forms and a Monte Carlo estimate, nested dropout's keep
probabilities, the group-lasso prox against the group soft-threshold, the one active-unit
count for every method, pruning by ablation, and the Pareto frontier against brute force."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from entropic_ae.metrics import ablation_active_units
from entropic_ae.models.mlp import MLPAutoencoder
from entropic_ae.width_learning import (
    GroupLassoProx,
    HardConcreteGate,
    NestedDropout,
    count_units,
    frontier_gap,
    l0_penalty,
    param_groups,
    pareto_mask,
    pareto_table,
    prune_by_ablation,
    truncate,
    width_curve,
)

SIZES = [16, 12, 6, 12, 16]  # latent layer 2


def model(seed: int = 0, **kw) -> MLPAutoencoder:
    """A small untrained autoencoder whose hidden units are alive on inputs in [0, 1]^16."""
    torch.manual_seed(seed)
    m = MLPAutoencoder(SIZES, **kw)
    with torch.no_grad():
        for lin in m.linears:
            lin.weight.uniform_(-0.5, 1.5)
            lin.weight.div_(lin.in_features ** 0.5)
            lin.bias.uniform_(0.1, 0.3)
    return m


def data(n: int = 256, seed: int = 1) -> torch.Tensor:
    """Images of a 4-d latent: sigmoid(z A), z ~ N(0, I)."""
    a = torch.randn(4, 16, generator=torch.Generator().manual_seed(99))
    return torch.sigmoid(torch.randn(n, 4, generator=torch.Generator().manual_seed(seed)) @ a)


@pytest.fixture(scope="module")
def trained_state() -> dict[str, torch.Tensor]:
    """Weights of the SIZES autoencoder after 300 full-batch Adam steps on ``data()``: its
    latent units 0-3 and 5 are active (each raises the error by more than 10x when held at
    its mean), unit 4 is a dead ReLU."""
    torch.manual_seed(1)
    m = MLPAutoencoder(SIZES)
    x = data()
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    for _ in range(300):
        opt.zero_grad()
        (m(x) - x).pow(2).mean().backward()
        opt.step()
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def trained(state: dict[str, torch.Tensor], **kw) -> MLPAutoencoder:
    """The trained weights in a new model (optionally with gates: their parameters keep their
    initial values)."""
    m = MLPAutoencoder(SIZES, **kw)
    missing, unexpected = m.load_state_dict(state, strict=False)
    assert not unexpected and all(k.startswith("gates.") for k in missing)
    return m


# --- hard-concrete gates -------------------------------------------------------------------------


def test_hard_concrete_expected_l0_matches_monte_carlo():
    gate = HardConcreteGate(5)
    with torch.no_grad():
        gate.log_alpha.copy_(torch.tensor([-3.0, -1.0, 0.0, 1.0, 3.0]))
    torch.manual_seed(0)
    n = 200_000
    nonzero = (gate.sample(n) > 0).double().mean(0)
    p = torch.sigmoid(gate.log_alpha.detach().double() - (2 / 3) * math.log(0.1 / 1.1))
    se = (p * (1 - p) / n).sqrt()
    assert ((nonzero - p).abs() < 4 * se).all()  # each unit's P(z != 0)
    total_se = float((p * (1 - p)).sum().sqrt() / math.sqrt(n))
    assert abs(float(nonzero.sum()) - gate.expected_l0().item()) < 4 * total_se
    assert gate.expected_l0().item() == pytest.approx(float(p.sum()), rel=1e-6)


def test_hard_concrete_sample_formula_and_exact_zeros_and_ones():
    gate = HardConcreteGate(4, init_log_alpha=0.5)
    torch.manual_seed(3)
    z = gate.sample(1000)
    torch.manual_seed(3)
    u = torch.rand(1000, 4).double().clamp(1e-6, 1 - 1e-6)
    s = torch.sigmoid((torch.log(u) - torch.log(1 - u) + 0.5) / (2 / 3))
    ref = (s * 1.2 - 0.1).clamp(0, 1)
    torch.testing.assert_close(z.double(), ref, atol=1e-6, rtol=0)
    assert (z == 0).any() and (z == 1).any() and ((z > 0) & (z < 1)).any()


def test_hard_concrete_eval_gate_is_deterministic_and_exact():
    gate = HardConcreteGate(3)
    with torch.no_grad():
        gate.log_alpha.copy_(torch.tensor([-10.0, 0.0, 10.0]))
    g = gate.eval_scale()
    assert g[0].item() == 0.0 and g[2].item() == 1.0
    assert g[1].item() == pytest.approx(0.5 * 1.2 - 0.1)
    assert gate.active().tolist() == [False, True, True]
    h = torch.rand(5, 3) + 0.1
    gate.eval()
    torch.testing.assert_close(gate(h), h * g)
    assert torch.equal(gate(h), gate(h))
    gate.train()
    torch.manual_seed(0)
    a = gate(h)
    assert not torch.equal(a, gate(h))  # stochastic in training
    assert (a[:, 0] == 0).float().mean() > 0.99  # a very negative log alpha: nearly always 0


def test_hard_concrete_gradients_and_checks():
    gate = HardConcreteGate(4)
    torch.manual_seed(0)
    (gate(torch.ones(8, 4)).sum() + gate.expected_l0()).backward()
    assert gate.log_alpha.grad is not None and torch.isfinite(gate.log_alpha.grad).all()
    with pytest.raises(ValueError, match="N×4"):
        gate(torch.ones(8, 3))
    for kw, exc in (({"n_units": 0}, ValueError), ({"n_units": 2.0}, TypeError),
                    ({"n_units": 2, "beta": 0.0}, ValueError),
                    ({"n_units": 2, "gamma": 0.1}, ValueError),
                    ({"n_units": 2, "zeta": 1.0}, ValueError)):
        with pytest.raises(exc):
            HardConcreteGate(**kw)


def test_l0_penalty_and_param_groups():
    gate = HardConcreteGate(6)
    m = model(gates={2: gate})
    assert l0_penalty(m).item() == pytest.approx(gate.expected_l0().item())
    assert l0_penalty(model()).item() == 0.0
    groups = param_groups(m, 1e-3, 3e-2)
    assert [g["lr"] for g in groups] == [1e-3, 3e-2]
    assert groups[1]["params"] == [gate.log_alpha]
    assert len(groups[0]["params"]) == 2 * len(m.linears)
    assert len(param_groups(model(), 1e-3, 3e-2)) == 1
    with pytest.raises(ValueError, match="gate_lr"):
        param_groups(m, 1e-3, 0.0)


# --- nested dropout ------------------------------------------------------------------------------


def test_nested_dropout_keeps_unit_j_with_probability_geometric_tail():
    nd = NestedDropout(6, p=0.3)
    torch.manual_seed(0)
    n = 100_000
    kept = (nd(torch.ones(n, 6)) != 0).double()
    # every row keeps a prefix 0..b-1 with b >= 1
    b = kept.sum(1)
    assert (b >= 1).all()
    assert torch.equal(kept, (torch.arange(6)[None, :] < b[:, None]).double())
    q = nd.keep_probability()
    torch.testing.assert_close(q, 0.7 ** torch.arange(6, dtype=torch.float64))
    se = (q * (1 - q) / n).sqrt()
    assert ((kept.mean(0) - q).abs() <= 4 * se + 1e-12).all()
    nd.eval()
    h = torch.randn(3, 6)
    assert torch.equal(nd(h), h)
    with pytest.raises(ValueError, match="p"):
        NestedDropout(6, p=1.0)
    with pytest.raises(ValueError, match="N×6"):
        nd(torch.ones(2, 5))


def test_truncate_and_width_curve():
    h = torch.arange(12.0).reshape(2, 6)
    t = truncate(h, 2)
    assert t[:, :2].tolist() == h[:, :2].tolist() and (t[:, 2:] == 0).all()
    assert (truncate(h, 0) == 0).all() and torch.equal(truncate(h, 6), h)
    with pytest.raises(ValueError, match="k"):
        truncate(h, 7)
    m = model(gates={2: NestedDropout(6, 0.2)})
    x = data(64)
    curve = width_curve(m, 2, x, batch_size=20)
    assert list(curve) == [1, 2, 3, 4, 5, 6] and m.training  # mode restored
    with torch.no_grad():
        for k in (1, 4, 6):
            m.eval()
            out = m.decode_from(truncate(m.encode(x, 2), k), 2)
            m.train()
            assert curve[k] == pytest.approx(float((out - x).double().pow(2).mean()), rel=1e-6)
    m.eval()
    with torch.no_grad():
        assert curve[6] == pytest.approx(float((m(x) - x).double().pow(2).mean()), rel=1e-6)


# --- group lasso ----------------------------------------------------------------------------------


def test_group_lasso_prox_is_the_group_soft_threshold():
    m = model()
    with torch.no_grad():
        into, out = m.linears[1], m.linears[2]
        into.weight.zero_()
        into.bias.zero_()
        out.weight.zero_()
        into.weight[0, :2] = torch.tensor([3.0, 0.0])  # unit 0: group (3, 0 | b 0 | 4): norm 5
        out.weight[0, 0] = 4.0
        into.weight[1, 0] = 0.3  # unit 1: norm 0.5, below the threshold
        into.bias[1] = 0.4
        into.bias[2] = 2.0  # unit 2: norm 2
    others = [p.detach().clone() for p in (m.linears[0].weight, m.linears[3].weight)]
    reg = GroupLassoProx(layer=2, weight=0.5)
    assert all(hasattr(reg, a) for a in ("name", "before_step", "after_step", "reset"))
    assert reg.before_step(m, 0) == pytest.approx(0.5 * (5 + 0.5 + 2))
    reg.after_step(m, 0, lr=2.0)  # threshold lr * lambda = 1
    with torch.no_grad():
        torch.testing.assert_close(into.weight[0, :2], torch.tensor([2.4, 0.0]))
        torch.testing.assert_close(out.weight[0, 0], torch.tensor(3.2))
        assert (into.weight[1] == 0).all() and into.bias[1] == 0 and (out.weight[:, 1] == 0).all()
        assert into.bias[2].item() == pytest.approx(1.0)
        assert (reg.norms(m)[3:] == 0).all()  # zero groups stay zero, no NaN
    for p, before in zip((m.linears[0].weight, m.linears[3].weight), others, strict=True):
        assert torch.equal(p, before)
    reg.reset()


def test_group_lasso_prox_minimises_the_proximal_objective():
    """Brute-force check: the prox output beats random nearby points on
    1/2 ||x - v||^2 + t sum_g ||x_g|| (the objective the prox minimises)."""
    m = model(2)
    reg = GroupLassoProx(layer=2, weight=1.2)
    into, out = m.linears[1], m.linears[2]
    v = [into.weight.detach().clone(), into.bias.detach().clone(), out.weight.detach().clone()]
    lr = 1.0
    t = lr * reg.weight
    reg.after_step(m, 0, lr)
    x = [into.weight.detach().clone(), into.bias.detach().clone(), out.weight.detach().clone()]

    def objective(p):
        norms = (p[0].pow(2).sum(1) + p[1].pow(2) + p[2].pow(2).sum(0)).sqrt()
        return 0.5 * sum(float((a - b).pow(2).sum()) for a, b in zip(p, v, strict=True)) \
            + t * float(norms.sum())

    best = objective(x)
    gen = torch.Generator().manual_seed(0)
    for _ in range(200):
        trial = [a + 0.01 * torch.randn(a.shape, generator=gen) for a in x]
        assert objective(trial) >= best - 1e-9
    assert (reg.norms(m) == 0).sum() >= 1  # some groups fell below t and are exactly 0


def test_group_lasso_does_not_touch_gradients_and_checks_its_layer():
    m = model()
    loss = m(data(8)).sum()
    loss.backward()
    grads = [p.grad.clone() for p in m.parameters()]
    GroupLassoProx(2, 0.1).before_step(m, 0)
    assert all(torch.equal(p.grad, g) for p, g in zip(m.parameters(), grads, strict=True))
    with pytest.raises(ValueError, match="layer 4"):
        GroupLassoProx(4, 0.1).before_step(m, 0)
    with pytest.raises(ValueError, match="weight"):
        GroupLassoProx(2, -1.0)


# --- one count of active units for every method ---------------------------------------------------


def test_count_units_dead_unused_and_agreement_with_metrics(trained_state):
    m = trained(trained_state)
    x = data(256, seed=2)
    c = count_units(m, 2, x)
    assert c.active.tolist() == [True, True, True, True, False, True]
    assert c.dead.tolist() == [False, False, False, False, True, False]
    with torch.no_grad():
        m.linears[1].weight[0] = 0  # unit 0: dead (no input, negative bias)
        m.linears[1].bias[0] = -1.0
        m.linears[2].weight[:, 1] = 0  # unit 1: fires but is not read
    c = count_units(m, 2, x)
    assert c.dead.tolist() == [True, False, False, False, True, False]
    assert c.n_dead == 2 and c.n_constant == 2 and c.rise[1] == 0
    assert c.active.tolist() == [False, False, True, True, False, True]
    assert c.n_active == 3 == ablation_active_units(lambda v: m.encode(v, 2),
                                                    lambda h: m.decode_from(h, 2), x)
    d = c.as_dict()
    assert d["active_units"] == 3 and d["dead_units"] == 2 and len(d["active"]) == 6
    assert c.width == 6 and c.layer == 2


def test_count_units_gates_and_nested_width(trained_state):
    gate = HardConcreteGate(6, init_log_alpha=3.0)
    with torch.no_grad():
        gate.log_alpha[[2, 5]] = -8.0  # closed in eval mode
    m = trained(trained_state, gates={2: gate})
    x = data(256, seed=2)
    c = count_units(m, 2, x)
    assert m.training  # restored
    assert c.dead.tolist() == [False, False, True, False, True, True]
    assert c.active.tolist() == [True, True, False, True, False, False]
    c3 = count_units(m, 2, x, keep=2)
    assert c3.active.tolist() == [True, True, False, False, False, False]
    assert c3.dead.tolist()[2:] == [True] * 4


def test_group_lasso_training_zeroes_the_unused_unit_the_count_sees(trained_state):
    """SGD with the prox after each step: the dead unit 4 gets no gradient from the error, so
    the prox shrinks its group to exactly 0 first; the used units shrink but stay."""
    m = trained(trained_state)
    reg = GroupLassoProx(2, weight=0.03)
    x = data()
    before = reg.norms(m)
    opt = torch.optim.SGD(m.parameters(), lr=0.5)
    for step in range(60):
        opt.zero_grad()
        (m(x) - x).pow(2).mean().backward()
        reg.before_step(m, step)
        opt.step()
        reg.after_step(m, step, 0.5)
    after = reg.norms(m)
    assert (after == 0).tolist() == [False, False, False, False, True, False]
    assert (after < before).all()
    c = count_units(m, 2, x)
    assert c.dead[4] and not c.active[4] and c.n_active == 5


def test_prune_by_ablation_holds_inactive_units_at_their_mean(trained_state):
    m = trained(trained_state)
    with torch.no_grad():
        m.linears[2].weight[:, [1, 3]] *= 1e-4  # units 1 and 3 barely read: inactive
    x = data(256, seed=2)
    pruned, report, count = prune_by_ablation(m, 2, x)
    assert count.active.tolist() == [True, False, True, False, False, True]
    assert pruned.layer_sizes[2] == 3 and report.removed[2] == [1, 3, 4]
    with torch.no_grad():
        codes = m.encode(x, 2)
        held = codes.clone()
        held[:, [1, 3]] = codes[:, [1, 3]].mean(0)
        torch.testing.assert_close(pruned(x), m.decode_from(held, 2), atol=1e-5, rtol=0)
        assert (pruned(x) - m(x)).abs().max() > 1e-6  # the held units did matter a little


def test_prune_by_ablation_at_a_nested_width_and_with_a_closed_gate(trained_state):
    m = trained(trained_state, gates={2: NestedDropout(6, 0.2)})
    x = data(256, seed=2)
    pruned, report, _ = prune_by_ablation(m, 2, x, keep=3)
    assert pruned.layer_sizes[2] == 3 and report.removed[2] == [3, 4, 5]
    assert "gates" not in dict(pruned.named_children())
    m.eval()
    with torch.no_grad():
        ref = m.decode_from(truncate(m.encode(x, 2), 3), 2)
        torch.testing.assert_close(pruned(x), ref, atol=1e-5, rtol=0)
    gate = HardConcreteGate(6, init_log_alpha=3.0)
    with torch.no_grad():
        gate.log_alpha[0] = -8.0
    g = trained(trained_state, gates={2: gate})
    pruned, report, _ = prune_by_ablation(g, 2, x)
    assert report.removed[2] == [0, 4] and report.reasons[2][0] == "no incoming weights"
    g.eval()
    with torch.no_grad():
        torch.testing.assert_close(pruned(x), g(x), atol=1e-5, rtol=0)


# --- the Pareto frontier --------------------------------------------------------------------------


def brute_frontier(u: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Another characterisation: i is non-dominated iff its MSE is below every point with
    fewer units and at most every point with as many units."""
    out = []
    for ui, mi in zip(u, m, strict=True):
        fewer = m[u < ui]
        same = m[u == ui]
        out.append((fewer.size == 0 or mi < fewer.min()) and mi <= same.min())
    return np.array(out)


def test_pareto_mask_and_gap_known_answer():
    u = [4, 8, 4, 6, 6, 10]
    m = [0.04, 0.02, 0.05, 0.03, 0.03, 0.025]
    assert pareto_mask(u, m).tolist() == [True, True, False, True, True, False]
    np.testing.assert_allclose(frontier_gap(u, m), [0, 0, 0.01, 0, 0, 0.005], atol=1e-15)


def test_pareto_mask_and_gap_against_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(30):
        u = rng.integers(1, 8, size=25).astype(float)
        m = rng.integers(1, 10, size=25) / 100
        mask = pareto_mask(u, m)
        assert (mask == brute_frontier(u, m)).all()
        gap = frontier_gap(u, m)
        assert (gap >= 0).all() and (gap[mask] == 0).all()
        fu, fm = u[mask], m[mask]
        ref = np.array([mi - fm[fu <= ui].min() for ui, mi in zip(u, m, strict=True)])
        np.testing.assert_allclose(gap, ref)
    with pytest.raises(ValueError, match="equal length"):
        pareto_mask([1, 2], [0.1])
    with pytest.raises(ValueError, match="finite"):
        frontier_gap([1, np.nan], [0.1, 0.2])


def test_pareto_table_verdicts_by_the_2sd_rule():
    rows = []
    for method, setting, u, m, noise in (("a", 1, 4, 0.040, 0.001), ("a", 2, 8, 0.020, 0.001),
                                         ("b", 1, 4, 0.050, 0.001), ("b", 2, 4, 0.041, 0.02),
                                         ("c", 1, 8, 0.030, 0.0)):
        seeds = (-1, 0, 1) if method != "c" else (0,)
        rows += [{"method": method, "setting": setting, "active_units": u,
                  "test_mse": m + noise * d} for d in seeds]
    table = pareto_table(pd.DataFrame(rows))
    assert table["n"].tolist() == [3, 3, 3, 3, 1]
    assert table["on_frontier"].tolist() == [True, True, False, False, False]
    np.testing.assert_allclose(table["gap"], [0, 0, 0.01, 0.001, 0.01], atol=1e-12)
    np.testing.assert_allclose(table["relative_gap"], [0, 0, 0.25, 0.025, 0.5], atol=1e-12)
    assert table["reference"].tolist() == [("a", 1), ("a", 2), ("a", 1), ("a", 1), ("a", 2)]
    assert table["verdict"].tolist() == [None, None, "holds", "undecided", "undecided"]
    np.testing.assert_allclose(table["mse_sd"].iloc[:3], [0.001, 0.001, 0.001])
    with pytest.raises(ValueError, match="columns"):
        pareto_table(pd.DataFrame(rows), by="family")
