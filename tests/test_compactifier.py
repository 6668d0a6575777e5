"""Compactifier losses against loop-by-loop references."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from entropic_ae.compactifier import (
    activity_entropy,
    compactifier_loss,
    data_activity,
    data_compactifier_loss,
    effective_rank,
    effective_units,
    fused_data_compactifier_loss,
    fused_layer_compactifier_loss,
    incoming_activity,
    layer_compactifier_loss,
    outgoing_activity,
    spectrum_entropy,
)
from entropic_ae.models.mlp import MLPAutoencoder


def loop_entropy(values, alpha):
    total = sum(values)
    p = [v / total for v in values]
    if alpha == 1:
        return -sum(q * math.log(q) for q in p if q > 0)
    return math.log(sum(q**alpha for q in p if q > 0)) / (1 - alpha)


def loop_activities(into: nn.Linear, out_of: nn.Linear):
    w_in, b, w_out = into.weight.tolist(), into.bias.tolist(), out_of.weight.tolist()
    n = len(w_in)
    a_in = [sum(abs(x) for x in w_in[j]) + abs(b[j]) for j in range(n)]
    a_out = [sum(abs(w_out[k][j]) for k in range(len(w_out))) + abs(b[j]) for j in range(n)]
    return a_in, a_out


@pytest.fixture
def layers():
    torch.manual_seed(0)
    into = nn.Linear(7, 5).double()
    out_of = nn.Linear(5, 3).double()
    with torch.no_grad():
        into.weight[2].zero_()
        into.bias[2] = 0.0
    return into, out_of


@pytest.mark.parametrize("alpha", [0.04, 0.5, 1.0, 2.0])
@pytest.mark.parametrize("variant", ["in", "out", "both", "cumulative"])
def test_variants_match_loops(layers, variant, alpha):
    into, out_of = layers
    a_in, a_out = loop_activities(into, out_of)
    want = {
        "in": loop_entropy(a_in, alpha),
        "out": loop_entropy(a_out, alpha),
        "both": loop_entropy(a_in, alpha) + loop_entropy(a_out, alpha),
        "cumulative": loop_entropy([x + y for x, y in zip(a_in, a_out, strict=True)], alpha),
    }[variant]
    got = layer_compactifier_loss(into, out_of, variant=variant, alpha=alpha).item()
    assert got == pytest.approx(want, rel=1e-12)


def test_activities_accept_tuples_and_modules(layers):
    into, out_of = layers
    torch.testing.assert_close(incoming_activity(into), incoming_activity((into.weight, into.bias)))
    a_out = outgoing_activity(out_of, into.bias)
    torch.testing.assert_close(a_out, out_of.weight.abs().sum(0) + into.bias.abs())
    assert incoming_activity((into.weight, None)).shape == (5,)


def test_loss_over_several_layers_is_the_sum():
    torch.manual_seed(1)
    linears = [nn.Linear(8, 4), nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 8)]
    total = compactifier_loss(linears, [1, 2, 3], variant="in", alpha=0.5)
    parts = [layer_compactifier_loss(linears[k - 1], linears[k], "in", 0.5) for k in (1, 2, 3)]
    assert total.item() == pytest.approx(sum(p.item() for p in parts), rel=1e-6)


def test_minimising_concentrates_activity():
    torch.manual_seed(2)
    into, out_of = nn.Linear(10, 8), nn.Linear(8, 10)
    before = effective_units(incoming_activity(into))
    opt = torch.optim.Adam([*into.parameters(), *out_of.parameters()], lr=0.02)
    for _ in range(300):
        opt.zero_grad()
        layer_compactifier_loss(into, out_of, "both", alpha=0.5).backward()
        opt.step()
    after = effective_units(incoming_activity(into))
    assert before > 7 and after < 3


def test_effective_units_extremes():
    assert effective_units(torch.ones(6)) == pytest.approx(6.0)
    assert effective_units(torch.tensor([0.0, 3.0, 0.0])) == pytest.approx(1.0)
    assert effective_units(torch.ones(6), alpha=2.0) == pytest.approx(6.0)


def test_gradients_finite_with_dead_neuron(layers):
    into, out_of = layers
    layer_compactifier_loss(into, out_of, "cumulative", alpha=0.04).backward()
    for p in (into.weight, into.bias, out_of.weight):
        assert torch.isfinite(p.grad).all()


def test_invalid_input(layers):
    into, out_of = layers
    with pytest.raises(ValueError, match="variant"):
        layer_compactifier_loss(into, out_of, variant="left")
    with pytest.raises(ValueError, match="do not chain"):
        layer_compactifier_loss(into, nn.Linear(4, 3))
    with pytest.raises(ValueError, match="alpha"):
        layer_compactifier_loss(into, out_of, alpha=-1.0)
    with pytest.raises(TypeError, match="nn.Linear"):
        incoming_activity(into.weight)
    with pytest.raises(ValueError, match="all activities are zero"):
        activity_entropy(torch.zeros(4))
    with pytest.raises(ValueError, match="non-negative"):
        activity_entropy(torch.tensor([1.0, -1.0]))
    with pytest.raises(ValueError, match="1..2"):
        compactifier_loss([into, out_of, nn.Linear(3, 3)], [0])
    with pytest.raises(ValueError, match="2-D"):
        incoming_activity((torch.ones(3), None))


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


# --- Data-dependent activity ---------------------------------------------------------------


def loop_data_activity(h, out_of):
    """a_j = (1/B) sum_b |h[b][j]| * sum_k |W[k][j]|, with Python loops."""
    rows, w = h.tolist(), out_of.weight.tolist()
    n = len(rows[0])
    return [sum(abs(r[j]) for r in rows) / len(rows) * sum(abs(wk[j]) for wk in w)
            for j in range(n)]


def codes_and_layer(seed=0, dead=True):
    gen = torch.Generator().manual_seed(seed)
    h = torch.relu(torch.randn(9, 5, generator=gen, dtype=torch.float64))
    if dead:
        h[:, 3] = 0.0  # unit 3 never fires
    torch.manual_seed(seed)
    return h, nn.Linear(5, 4).double()


def test_data_activity_matches_loops():
    h, out_of = codes_and_layer()
    h[0, 1] = -2.0  # |h| also for signed codes
    want = loop_data_activity(h, out_of)
    got = data_activity(h, out_of)
    assert got.tolist() == pytest.approx(want, rel=1e-12)
    assert got[3] == 0.0
    torch.testing.assert_close(data_activity(h, (out_of.weight, None)), got)


@pytest.mark.parametrize("dead", [False, True])
@pytest.mark.parametrize("alpha", [0.04, 0.5, 1.0, 1.0 + 1e-8, 2.0, 7.0])
def test_fused_data_loss_matches_loops_and_autograd(alpha, dead):
    h, out_of = codes_and_layer(dead=dead)
    h.requires_grad_(True)
    order = 1 if abs(alpha - 1) < 1e-6 else alpha  # the package treats this as Shannon
    want_value = loop_entropy(loop_data_activity(h.detach(), out_of), order)
    want = data_compactifier_loss(h, out_of, alpha)
    got = fused_data_compactifier_loss(h, out_of, alpha)
    assert want.item() == pytest.approx(want_value, rel=1e-10)
    assert got.item() == pytest.approx(want.item(), rel=1e-12, abs=1e-12)
    params = [h, out_of.weight]
    for g_got, g_want in zip(grads(2.5 * got, params), grads(2.5 * want, params), strict=True):
        torch.testing.assert_close(g_got, g_want, rtol=1e-9, atol=1e-12)


def test_fused_data_loss_gradient_by_finite_differences():
    h, out_of = codes_and_layer(seed=2, dead=False)
    h = h + 0.1  # away from |h| = 0, where |.| has no derivative
    for alpha in (0.5, 1.0, 3.0):
        assert torch.autograd.gradcheck(
            lambda a, w, alpha=alpha: fused_data_compactifier_loss(a, _linear(w, None), alpha),
            (h.clone().requires_grad_(), out_of.weight.detach().clone().requires_grad_()))


def _rescale(model, layer, unit, c):
    with torch.no_grad():
        model.linears[layer - 1].weight[unit] *= c
        model.linears[layer - 1].bias[unit] *= c
        model.linears[layer].weight[:, unit] /= c


def test_data_activity_is_invariant_to_rescaling_and_ignores_decoys():
    """h_j -> c h_j and W_out[:, j] -> W_out[:, j] / c keep the function and a; the weight-only
    activities move. A unit that never fires has a = 0 however large its weights."""
    torch.manual_seed(0)
    model = MLPAutoencoder([10, 8, 6, 8, 10]).double()
    x = torch.rand(40, 10, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    layer = 2

    def measures():
        h = model.layer_outputs(x)[layer]
        into, out_of = model.linears[layer - 1], model.linears[layer]
        return (model(x), data_activity(h, out_of),
                fused_data_compactifier_loss(h, out_of, 0.5),
                layer_compactifier_loss(into, out_of, "both", 0.5))

    out0, a0, h0, weight_h0 = measures()
    _rescale(model, layer, 1, 25.0)
    _rescale(model, layer, 4, 0.02)
    out1, a1, h1, weight_h1 = measures()
    torch.testing.assert_close(out1, out0, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(a1, a0, rtol=1e-12, atol=1e-15)
    assert h1.item() == pytest.approx(h0.item(), rel=1e-12)
    assert abs(weight_h1.item() - weight_h0.item()) > 0.1

    # a decoy: unit 0 never fires, and its in- and out-weights are huge
    with torch.no_grad():
        model.linears[layer - 1].weight[0] = 1e3
        model.linears[layer - 1].bias[0] = -1e6
        model.linears[layer].weight[:, 0] = 1e3
    _, a2, _, _ = measures()
    assert a2[0] == 0.0
    torch.testing.assert_close(a2[1:], a0[1:], rtol=1e-12, atol=1e-15)


def test_fused_data_loss_float32_close_to_float64():
    h, out_of = codes_and_layer(dead=False)
    h64 = fused_data_compactifier_loss(h, out_of, 0.5).item()
    h32 = fused_data_compactifier_loss(h.float(), out_of.float(), 0.5).item()
    assert h32 == pytest.approx(h64, rel=1e-5)


def test_data_losses_reject_bad_input():
    h, out_of = codes_and_layer()
    with pytest.raises(ValueError, match="all activities are zero"):
        data_compactifier_loss(torch.zeros(4, 5, dtype=torch.float64), out_of)
    with pytest.raises(ValueError, match="NaN"):
        data_compactifier_loss(h * float("nan"), out_of)
    with pytest.raises(ValueError, match="in_features"):
        data_activity(h[:, :4], out_of)
    with pytest.raises(ValueError, match="shape"):
        data_activity(h[0], out_of)
    with pytest.raises(TypeError, match="floating"):
        data_activity(h.long(), out_of)
    with pytest.raises(TypeError, match="torch.Tensor"):
        data_activity(h.tolist(), out_of)
    with pytest.raises(TypeError, match="nn.Linear"):
        fused_data_compactifier_loss(h, (out_of.weight, None))
    with pytest.raises(ValueError, match="0 < alpha < inf"):
        fused_data_compactifier_loss(h, out_of, 0.0)
    with pytest.raises(ValueError, match="alpha"):
        fused_data_compactifier_loss(h, out_of, -2.0)


def test_fused_data_penalty_of_a_batch_where_no_unit_fires_is_zero_without_gradient():
    from entropic_ae.compactifier import fused_data_compactifier_loss

    out_of = nn.Linear(5, 3)
    h = torch.zeros(8, 5, requires_grad=True)  # a dead layer on this batch
    value = fused_data_compactifier_loss(h, out_of, 0.04)
    value.backward()
    assert value.item() == 0.0
    assert torch.equal(h.grad, torch.zeros_like(h))
    assert torch.equal(out_of.weight.grad, torch.zeros_like(out_of.weight))


# --- Effective rank of activations ----------------------------------------------------------------


def numpy_effective_rank(h: np.ndarray, alpha: float, spectrum: str, center: bool = True) -> float:
    """exp of the Rényi entropy of the normalised singular values, by NumPy's SVD (float64)."""
    s = np.linalg.svd(h - h.mean(0) if center else h, compute_uv=False)
    s = s[s > s.max() * max(h.shape) * np.finfo(h.dtype).eps]  # numerical rank, as matrix_rank
    p = s if spectrum == "singular" else s**2
    if math.isinf(alpha):
        return float(p.sum() / p.max())
    return math.exp(loop_entropy(list(p), alpha))


def with_spectrum(singular_values, batch=30, seed=0) -> torch.Tensor:
    """A centred B x n matrix whose singular values are exactly ``singular_values``."""
    gen = torch.Generator().manual_seed(seed)
    n = len(singular_values)
    a = torch.randn(batch, n, generator=gen, dtype=torch.float64)
    u, _ = torch.linalg.qr(a - a.mean(0))
    v, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    return u @ torch.diag(torch.tensor(singular_values, dtype=torch.float64)) @ v.T + 3.0


@pytest.mark.parametrize("spectrum", ["singular", "variance"])
@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0, math.inf])
def test_effective_rank_matches_numpy_svd(alpha, spectrum):
    gen = torch.Generator().manual_seed(1)
    for shape in ((50, 6), (4, 9), (128, 16)):
        h = torch.randn(*shape, generator=gen, dtype=torch.float64) @ torch.randn(
            shape[1], shape[1], generator=gen, dtype=torch.float64)
        for center in (True, False):
            got = float(effective_rank(h, alpha, spectrum, center))
            want = numpy_effective_rank(h.numpy(), alpha, spectrum, center)
            assert got == pytest.approx(want, rel=1e-10)


def test_effective_rank_known_values():
    # k equal singular values: rank k whatever the order and spectrum
    for k in (1, 3, 5):
        h = with_spectrum([2.0] * k + [0.0] * (6 - k))
        for alpha in (0.0, 0.5, 1.0, 2.0, math.inf):
            for spectrum in ("singular", "variance"):
                assert float(effective_rank(h, alpha, spectrum)) == pytest.approx(k, rel=1e-9)
    # Roy & Vetterli: p = s / sum s; participation ratio (sum s^2)^2 / sum s^4
    s = [3.0, 2.0, 1.0, 0.5]
    h = with_spectrum(s)
    p = [v / sum(s) for v in s]
    assert float(effective_rank(h)) == pytest.approx(math.exp(-sum(q * math.log(q) for q in p)))
    pr = sum(v**2 for v in s) ** 2 / sum(v**4 for v in s)
    assert float(effective_rank(h, 2.0, "variance")) == pytest.approx(pr, rel=1e-12)
    assert float(spectrum_entropy(h, 2.0, "variance")) == pytest.approx(math.log(pr), rel=1e-12)


def test_effective_rank_invariances():
    gen = torch.Generator().manual_seed(2)
    h = torch.randn(40, 5, generator=gen, dtype=torch.float64) * torch.tensor(
        [3.0, 1.0, 0.5, 0.2, 0.1], dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(5, 5, generator=gen, dtype=torch.float64))
    base = float(effective_rank(h))
    assert float(effective_rank(h @ q)) == pytest.approx(base, rel=1e-10)  # rotation
    assert float(effective_rank(7.0 * h)) == pytest.approx(base, rel=1e-10)  # common scale
    assert float(effective_rank(h + 4.0)) == pytest.approx(base, rel=1e-10)  # constant, centred
    scaled = h * torch.tensor([1.0, 1.0, 1.0, 1.0, 30.0], dtype=torch.float64)
    assert abs(float(effective_rank(scaled)) - base) > 0.1  # single units: not invariant
    # a dead unit (all zero) changes nothing
    dead = torch.cat([h, torch.zeros(40, 1, dtype=torch.float64)], 1)
    assert float(effective_rank(dead)) == pytest.approx(base, rel=1e-10)


def test_effective_rank_gradient():
    gen = torch.Generator().manual_seed(3)
    h = torch.randn(12, 4, generator=gen, dtype=torch.float64) * torch.tensor(
        [2.0, 1.0, 0.5, 0.25], dtype=torch.float64)
    for alpha, spectrum in ((1.0, "singular"), (2.0, "variance"), (0.5, "singular")):
        assert torch.autograd.gradcheck(
            lambda t, a=alpha, s=spectrum: effective_rank(t, a, s), (h.clone().requires_grad_(),))
    # float32 close to float64
    h32 = h.float()
    assert float(effective_rank(h32)) == pytest.approx(float(effective_rank(h)), rel=1e-5)


def test_effective_rank_rejects_bad_input():
    h = torch.rand(5, 3)
    with pytest.raises(TypeError, match="torch.Tensor"):
        effective_rank(h.tolist())
    with pytest.raises(ValueError, match="shape"):
        effective_rank(torch.rand(5))
    with pytest.raises(ValueError, match="B >= 2"):
        effective_rank(torch.rand(1, 3))
    assert float(effective_rank(torch.rand(1, 3), center=False)) == pytest.approx(1.0)
    with pytest.raises(TypeError, match="floating"):
        effective_rank(torch.ones(4, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match="constant"):
        effective_rank(torch.ones(4, 3))
    with pytest.raises(ValueError, match="NaN"):
        effective_rank(torch.full((4, 3), math.nan))
    with pytest.raises(ValueError, match="spectrum"):
        effective_rank(h, spectrum="eigen")
    with pytest.raises(ValueError, match="alpha"):
        effective_rank(h, alpha=-1.0)
    with pytest.raises(TypeError, match="center"):
        effective_rank(h, center=1)
