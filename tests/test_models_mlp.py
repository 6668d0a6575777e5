"""Tests for the MLP autoencoder and its pruning (entropic_ae.models, MLP section)."""

from __future__ import annotations

import pytest
import torch

from entropic_ae.models.mlp import MLPAutoencoder, PruneReport, prune

SIZES = [64, 32, 8, 8, 8, 32, 64]


def make(seed: int = 0, sizes=SIZES, **kw) -> MLPAutoencoder:
    """A model whose hidden neurons are all alive and non-constant on inputs in [0, 1]^64:
    nonnegative weights and positive biases (random init would leave some neurons dead)."""
    torch.manual_seed(seed)
    m = MLPAutoencoder(sizes, **kw)
    with torch.no_grad():
        for lin in m.linears:
            lin.weight.uniform_(0.0, 2.0 / lin.in_features)
            lin.bias.uniform_(0.1, 0.5)
        m.linears[-1].bias.sub_(1.5)
    return m


def reference_forward(model: MLPAutoencoder, x: torch.Tensor) -> torch.Tensor:
    """Obvious float64 re-implementation: relu after hidden layers, sigmoid at the end."""
    h = x.reshape(x.shape[0], -1).double()
    for i, lin in enumerate(model.linears):
        h = h @ lin.weight.double().T + lin.bias.double()
        h = torch.sigmoid(h) if i == len(model.linears) - 1 else torch.relu(h)
    return h


def test_structure_and_shapes():
    m = make()
    assert m.layer_sizes == tuple(SIZES)
    assert m.num_layers == 6
    assert [(lin.in_features, lin.out_features) for lin in m.linears] == list(
        zip(SIZES[:-1], SIZES[1:], strict=True))
    assert m.latent_layers == (2, 3, 4)
    x = torch.rand(5, 1, 8, 8)
    y = m(x)
    assert y.shape == x.shape
    assert ((y > 0) & (y < 1)).all()
    assert torch.allclose(y.reshape(5, -1).double(), reference_forward(m, x), atol=1e-6)
    assert m(x.reshape(5, 64)).shape == (5, 64)


def test_layer_outputs_encode_decode_consistent():
    m = make()
    x = torch.rand(7, 1, 8, 8)
    outs = m.layer_outputs(x)
    assert [o.shape[1] for o in outs] == SIZES
    assert torch.equal(outs[0], x.reshape(7, -1))
    for o in outs[1:-1]:
        assert (o >= 0).all()  # post-ReLU
    assert torch.allclose(outs[-1], m(x).reshape(7, -1))
    for layer in range(len(SIZES)):
        h = m.encode(x, layer)
        assert torch.allclose(h, outs[layer])
        assert torch.allclose(m.decode_from(h, layer), outs[-1], atol=1e-6)
    # decode_from reshapes to image_shape when the model has one
    mi = make(image_shape=(1, 8, 8))
    assert mi.decode_from(torch.zeros(3, 8), 3).shape == (3, 1, 8, 8)
    assert mi.decode_from(torch.zeros(8), 3).shape == (1, 1, 8, 8)


def test_explicit_latent_layers():
    assert make(latent_layers=[3]).latent_layers == (3,)
    with pytest.raises(ValueError, match="latent_layers"):
        make(latent_layers=[0])
    with pytest.raises(ValueError, match="latent_layers"):
        make(latent_layers=[6])


@pytest.mark.parametrize(
    ("sizes", "exc", "msg"),
    [
        ([64], ValueError, "at least 2"),
        ([], ValueError, "at least 2"),
        ([64, 0, 64], ValueError, "positive"),
        ([64, -3, 64], ValueError, "positive"),
        ([64, 8.0, 64], TypeError, "int"),
        ([64, 8, 32], ValueError, "output width"),
        ("784", TypeError, "sequence"),
        (784, TypeError, "sequence"),
    ],
)
def test_bad_layer_sizes(sizes, exc, msg):
    with pytest.raises(exc, match=msg):
        MLPAutoencoder(sizes)


def test_bad_inputs():
    m = make()
    with pytest.raises(ValueError, match="64 entries"):
        m(torch.rand(2, 1, 7, 7))
    with pytest.raises(ValueError, match="layer must be in"):
        m.encode(torch.rand(2, 64), 7)
    with pytest.raises(ValueError, match="N×8"):
        m.decode_from(torch.rand(2, 9), 3)
    with pytest.raises(TypeError, match="Tensor"):
        m(None)
    with pytest.raises(ValueError, match="image_shape"):
        make(image_shape=(1, 7, 7))


def _force_inactive(m: MLPAutoencoder) -> None:
    """Make neurons inactive on *every* input, so pruning must be exact on held-out data."""
    with torch.no_grad():
        # layer 1: neurons 0, 5 dead (no input, negative bias); neuron 7 constant 0.8
        for i in (0, 5):
            m.linears[0].weight[i] = 0
            m.linears[0].bias[i] = -1.0
        m.linears[0].weight[7] = 0
        m.linears[0].bias[7] = 0.8
        # layer 3 (latent): neurons 1 and 6 dead via a huge negative bias; 4 unused downstream;
        # neuron 2 constant 0.5
        m.linears[2].weight[[1, 6]] = 0
        m.linears[2].bias[[1, 6]] = -5.0
        m.linears[3].weight[:, 4] = 0
        m.linears[2].weight[2] = 0
        m.linears[2].bias[2] = 0.5


def test_prune_is_exact_on_held_out_data():
    m = make(1)
    _force_inactive(m)
    train_x = torch.rand(200, 1, 8, 8)
    test_x = torch.rand(300, 1, 8, 8)
    pruned, report = prune(m, train_x)
    assert isinstance(report, PruneReport)
    assert pruned.layer_sizes == (64, 29, 8, 4, 8, 32, 64)
    assert report.new_sizes == pruned.layer_sizes
    assert report.old_sizes == tuple(SIZES)
    assert report.removed[1] == [0, 5, 7] and report.removed[3] == [1, 2, 4, 6]
    assert report.reasons[3][4] == "no outgoing weights"
    assert report.reasons[1][7] == "no incoming weights"
    assert report.kept[3] == [0, 3, 5, 7]
    assert report.kept[0] == list(range(64))
    assert "layer 3: 8 -> 4" in report.summary()
    assert pruned.latent_layers == m.latent_layers
    with torch.no_grad():
        assert (pruned(test_x) - m(test_x)).abs().max().item() <= 1e-5
        # kept latent neurons carry the same codes
        assert torch.allclose(pruned.encode(test_x, 3), m.encode(test_x, 3)[:, report.kept[3]],
                              atol=1e-5)


def test_prune_data_constant_neurons_exact_on_that_data():
    """A neuron dead only on the data (not structurally) is removed exactly *on that data*."""
    m = make(2)
    x = torch.rand(128, 64)
    with torch.no_grad():
        # neuron 3 of layer 2 (inputs in [0, 1] from layer 1 ... only for this data): make its
        # pre-activation negative for every x in [0, 1]^64 but positive for larger inputs
        m.linears[1].weight[3].abs_()
        h1 = m.encode(torch.ones(1, 64), 1)
        m.linears[1].bias[3] = -(m.linears[1].weight[3] @ h1[0]) - 0.01
    pruned, report = prune(m, x)
    assert report.reasons[2] == {3: "dead"}
    with torch.no_grad():
        assert (pruned(x) - m(x)).abs().max().item() <= 1e-5
        # outside the data's range the neuron wakes up and the pruned net differs: documented
        assert (pruned(3 * x) - m(3 * x)).abs().max().item() > 1e-4


def test_prune_without_data_uses_weights_only():
    m = make(3)
    with torch.no_grad():
        m.linears[2].weight[5] = 0
        m.linears[2].bias[5] = 0.3
    pruned, report = prune(m)
    assert report.removed[3] == [5]
    assert sum(len(r) for r in report.removed) == 1
    x = torch.rand(50, 64)
    with torch.no_grad():
        assert (pruned(x) - m(x)).abs().max().item() <= 1e-5


def test_prune_nothing_and_requested_and_keep_one():
    m = make(4)
    x = torch.rand(64, 64)
    same, report = prune(m, x)
    assert same.layer_sizes == m.layer_sizes and report.summary() == "nothing pruned"
    with torch.no_grad():
        assert torch.allclose(same(x), m(x), atol=1e-6)
    smaller, report = prune(m, x, remove={3: [0, 1]})
    assert smaller.layer_sizes[3] == 6 and report.reasons[3] == {0: "requested", 1: "requested"}
    # a layer that is entirely dead keeps one neuron
    with torch.no_grad():
        m.linears[2].weight.zero_()
        m.linears[2].bias.fill_(-1.0)
    tiny, _ = prune(m, x)
    assert tiny.layer_sizes[3] == 1
    with torch.no_grad():
        assert (tiny(x) - m(x)).abs().max().item() <= 1e-5


def test_prune_bad_arguments():
    m = make()
    with pytest.raises(TypeError, match="MLPAutoencoder"):
        prune(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="hidden-layer"):
        prune(m, layers=[0])
    with pytest.raises(ValueError, match="tol"):
        prune(m, tol=-1.0)
    with pytest.raises(ValueError, match="outside"):
        prune(m, remove={3: [8]})
    with pytest.raises(ValueError, match="empty"):
        prune(m, torch.rand(0, 64))


# --- linear layers and gates ---------------------------------------------------------------------


class Scale(torch.nn.Module):
    """A gate with a fixed per-unit scale (deterministic, foldable by prune)."""

    def __init__(self, g: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("g", g)
        self.n_units = g.numel()

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h * self.g

    def eval_scale(self) -> torch.Tensor:
        return self.g


def reference_forward_with(model: MLPAutoencoder, x: torch.Tensor, linear=(), gates=None):
    """float64 reference: identity instead of ReLU on ``linear`` layers, then ``gates[l]``
    (a per-unit scale) on the activations of layer ``l``."""
    gates = gates or {}
    h = x.reshape(x.shape[0], -1).double()
    n = len(model.linears)
    for i, lin in enumerate(model.linears):
        h = h @ lin.weight.double().T + lin.bias.double()
        if i == n - 1:
            return torch.sigmoid(h)
        if i + 1 not in linear:
            h = torch.relu(h)
        if i + 1 in gates:
            h = h * gates[i + 1].double()
    return h


def test_default_model_state_is_unchanged():
    m = make()
    assert all(k.startswith("linears.") for k in m.state_dict())
    assert m.linear_layers == () and m.gate_layers == () and m.gate(3) is None


def test_linear_bottleneck_units_cannot_die():
    m = make(linear_layers=[3])
    with torch.no_grad():
        m.linears[2].bias[:4] = -100.0  # a ReLU unit would be dead on every input
    x = torch.rand(20, 64)
    assert m.linear_layers == (3,) and "linear_layers=[3]" in repr(m)
    h = m.encode(x, 3)
    assert (h[:, :4] < 0).all()  # negative codes pass on: nothing is cut
    assert torch.allclose(m(x).double(), reference_forward_with(m, x, linear={3}), atol=1e-6)
    assert torch.allclose(m.decode_from(h, 3), m(x), atol=1e-6)
    with pytest.raises(ValueError, match="linear_layers"):
        make(linear_layers=[6])


def test_gate_is_applied_and_encode_returns_gated_codes():
    g = torch.tensor([1.0, 0.0, 0.5, 1.0, 0.0, 2.0, 1.0, 0.25])
    m = make(gates={3: Scale(g)})
    x = torch.rand(9, 64)
    assert m.gate_layers == (3,) and isinstance(m.gate(3), Scale)
    ref = reference_forward_with(m, x, gates={3: g})
    assert torch.allclose(m(x).double(), ref, atol=1e-6)
    outs = m.layer_outputs(x)
    h = m.encode(x, 3)
    assert torch.allclose(h, outs[3]) and (h[:, [1, 4]] == 0).all()
    ungated = torch.relu(m.linears[2](m.encode(x, 2)))
    assert torch.allclose(h, ungated * g)
    # decode_from takes layer-3 codes as given (no second gating) and gates later layers
    assert torch.allclose(m.decode_from(h, 3), outs[-1], atol=1e-6)
    assert torch.allclose(m.decode_from(m.encode(x, 2), 2), outs[-1], atol=1e-6)
    assert "gates.3.g" in m.state_dict()
    with pytest.raises(ValueError, match="width"):
        make(gates={3: Scale(torch.ones(5))})
    with pytest.raises(TypeError, match="nn.Module"):
        make(gates={3: lambda h: h})
    with pytest.raises(ValueError, match="gates"):
        make(gates={0: Scale(torch.ones(64))})


def test_prune_folds_gates_and_keeps_linear_layers():
    g = torch.tensor([1.0, 0.0, 0.5, 1.0, 0.0, 2.0, 1.0, 0.25])
    m = make(5, gates={3: Scale(g)}, linear_layers=[2])
    x = torch.rand(100, 64)
    pruned, report = prune(m, x)
    assert report.removed[3] == [1, 4]
    assert {report.reasons[3][i] for i in (1, 4)} == {"no incoming weights"}
    assert pruned.gate_layers == () and pruned.linear_layers == (2,)
    with torch.no_grad():
        assert (pruned(x) - m(x)).abs().max().item() <= 1e-5
        held_out = torch.rand(50, 64)
        assert (pruned(held_out) - m(held_out)).abs().max().item() <= 1e-5
        # surviving codes are the gated codes of the original
        assert torch.allclose(pruned.encode(x, 3), m.encode(x, 3)[:, report.kept[3]], atol=1e-5)


def test_prune_linear_layer_constant_unit_and_unfoldable_gate():
    m = make(6, linear_layers=[3])
    with torch.no_grad():
        m.linears[2].weight[2] = 0  # a linear unit with no input: constant b = -0.7, not 0
        m.linears[2].bias[2] = -0.7
    x = torch.rand(60, 64)
    pruned, report = prune(m)
    assert report.reasons[3] == {2: "no incoming weights"}
    with torch.no_grad():
        assert (pruned(x) - m(x)).abs().max().item() <= 1e-5

    class Opaque(torch.nn.Module):
        def forward(self, h):
            return h

    with pytest.raises(TypeError, match="eval_scale"):
        prune(make(gates={3: Opaque()}))
    with pytest.raises(ValueError, match="negative"):
        prune(make(gates={3: Scale(-torch.ones(8))}))
