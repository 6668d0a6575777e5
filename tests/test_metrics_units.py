"""Active units: by variance and by ablation."""

import math

import numpy as np
import pytest
import torch

from entropic_ae.metrics import (
    ablation_active_units,
    active_units,
    unit_ablation,
)
from entropic_ae.models.mlp import MLPAutoencoder


def test_counts_dimensions_above_threshold():
    gen = torch.Generator().manual_seed(0)
    codes = torch.randn(1000, 6, generator=gen)
    codes[:, 1] = 3.0  # constant: inactive
    codes[:, 4] *= 0.01  # variance 1e-4: inactive
    assert active_units(codes) == 4
    assert active_units(codes, threshold=0.0) == 5


@pytest.mark.parametrize(
    "codes, threshold, error",
    [
        (torch.randn(10), 0.01, ValueError),
        (torch.randn(1, 3), 0.01, ValueError),
        (torch.randn(10, 3), -1.0, ValueError),
        ([[0.0, 1.0]], 0.01, TypeError),
        (torch.tensor([[0.0, float("nan")], [1.0, 2.0]]), 0.01, ValueError),
    ],
)
def test_invalid_input(codes, threshold, error):
    with pytest.raises(error):
        active_units(codes, threshold)


@pytest.mark.parametrize(
    ("threshold", "error"),
    [(float("nan"), ValueError), (float("inf"), ValueError), (np.float64("nan"), ValueError),
     (-0.5, ValueError), (True, TypeError), ("0.01", TypeError), (None, TypeError)],
)
def test_active_units_threshold_must_be_finite_and_non_negative(threshold, error):
    with pytest.raises(error, match="threshold"):
        active_units(torch.randn(20, 3), threshold)


# --- Ablation-based active units -----------------------------------------------------------


def reference_ablation(encode, decode, x):
    """One unit at a time over the whole data set, float64: (E_j - E_0) / E_0."""
    with torch.no_grad():
        z = encode(x).double()
        flat = x.reshape(len(x), -1).double()

        def error(codes):
            return float(((decode(codes).reshape(len(x), -1).double() - flat) ** 2).sum())

        e0 = error(z)
        out = []
        for j in range(z.shape[1]):
            zj = z.clone()
            zj[:, j] = z[:, j].mean()
            out.append((error(zj) - e0) / e0)
    return torch.tensor(out, dtype=torch.float64)


def float64_mlp(seed=0, sizes=(12, 8, 5, 8, 12)):
    torch.manual_seed(seed)
    model = MLPAutoencoder(list(sizes)).double()
    with torch.no_grad():
        model.linears[1].bias[2] = -100.0  # unit 2 of layer 2 never fires: dead
    return model


def test_linear_autoencoder_with_a_known_answer():
    """Codes are scaled copies of coordinates 0, 1 (and a dead unit); the decoder undoes the
    scale and fills coordinates 2, 3 with their means. Then E_0 = N (v_2 + v_3) and ablating
    unit j adds N v_j, so r_j = v_j / (v_2 + v_3), with v the population variances."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(500, 4, generator=gen, dtype=torch.float64) * torch.tensor(
        [1.0, 0.3, 0.5, 0.7], dtype=torch.float64) + 2.0
    scale = torch.tensor([5.0, 0.01], dtype=torch.float64)
    mean = x.mean(0)

    def encode(v):
        return torch.cat([v[:, :2] * scale, torch.zeros(len(v), 1, dtype=v.dtype)], dim=1)

    def decode(z):
        rest = mean[2:].expand(len(z), 2)
        return torch.cat([z[:, :2] / scale, rest + 0 * z[:, 2:3]], dim=1)

    var = x.var(0, unbiased=False)
    want = torch.stack([var[0], var[1], torch.zeros((), dtype=torch.float64)]) / (var[2] + var[3])
    for batch_size in (1000, 64, 7):
        got = unit_ablation(encode, decode, x, batch_size=batch_size)
        torch.testing.assert_close(got, want, rtol=1e-10, atol=0)
        assert got[2] == 0.0  # the dead unit: exactly zero
    # r = (0.09, 1, 0) * v/(0.25 + 0.49) ~ (1.35, 0.12, 0): thresholds pick them apart
    assert ablation_active_units(encode, decode, x) == 2
    assert ablation_active_units(encode, decode, x, threshold=float(want[1]) * 1.01) == 1
    assert ablation_active_units(encode, decode, x, threshold=100.0) == 0


def test_matches_one_unit_at_a_time_reference_for_any_chunking():
    model = float64_mlp()
    x = torch.rand(37, 12, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for layer in (1, 2, 3):
        def encode(v, layer=layer):
            return model.encode(v, layer)

        def decode(h, layer=layer):
            return model.decode_from(h, layer)

        want = reference_ablation(encode, decode, x)
        for batch_size in (4096, 37, 10, 1):
            torch.testing.assert_close(unit_ablation(encode, decode, x, batch_size), want,
                                       rtol=1e-9, atol=1e-12)


def test_dead_unit_is_exactly_zero_and_float32_works():
    model = float64_mlp().float()
    x = torch.rand(50, 12, generator=torch.Generator().manual_seed(2))
    codes = model.encode(x, 2)
    assert (codes[:, 2] == 0).all()
    r = unit_ablation(lambda v: model.encode(v, 2), lambda h: model.decode_from(h, 2), x)
    assert r.dtype == torch.float64 and r.shape == (5,)
    constant = (codes == codes[0]).all(0)
    assert constant[2] and not constant.all()
    assert (r[constant] == 0).all() and (r[~constant] != 0).all()


def test_invariant_under_relu_rescaling_unlike_the_variance():
    """h_j -> c h_j (in-weights and bias times c, out-weights divided by c) leaves the function,
    and hence r_j, unchanged; the code variance grows by c**2."""
    model = float64_mlp(seed=3)
    x = torch.rand(200, 12, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    layer, unit, c = 2, 1, 40.0

    def run(m):
        return (unit_ablation(lambda v: m.encode(v, layer), lambda h: m.decode_from(h, layer), x),
                active_units(m.encode(x, layer)))

    before, au_before = run(model)
    with torch.no_grad():
        model.linears[layer - 1].weight[unit] *= c
        model.linears[layer - 1].bias[unit] *= c
        model.linears[layer].weight[:, unit] /= c
    after, au_after = run(model)
    torch.testing.assert_close(after, before, rtol=1e-10, atol=1e-14)
    variance = model.encode(x, layer).var(0, unbiased=False)
    assert variance[unit] > 0.01  # the rescaled unit now counts as active by its variance
    assert au_after >= au_before


def test_perfect_reconstruction_gives_infinite_rise():
    x = torch.rand(10, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    x[:, 2] = 0.5
    r = unit_ablation(lambda v: v, lambda z: z, x)
    assert r[0] == math.inf and r[1] == math.inf and r[2] == 0.0
    assert ablation_active_units(lambda v: v, lambda z: z, x) == 2


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"x": [[0.0, 1.0]] * 3}, TypeError, "torch.Tensor"),
        ({"x": torch.rand(1, 4)}, ValueError, "at least two"),
        ({"x": torch.rand(5)}, ValueError, "at least two"),
        ({"encode": "encoder"}, TypeError, "callables"),
        ({"encode": lambda v: v[:, 0]}, ValueError, "shape"),
        ({"encode": lambda v: v[:1]}, ValueError, "shape"),
        ({"encode": lambda v: v * float("nan")}, ValueError, "NaN"),
        ({"decode": lambda z: z[:, :2]}, ValueError, "reconstructions"),
        ({"decode": lambda z: z * float("inf")}, ValueError, "NaN or infinite"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"batch_size": 2.0}, ValueError, "batch_size"),
        ({"threshold": -0.1}, ValueError, "threshold"),
        ({"threshold": float("nan")}, ValueError, "threshold"),
        ({"threshold": "1%"}, TypeError, "threshold"),
        ({"threshold": True}, TypeError, "threshold"),
    ],
)
def test_ablation_invalid_input(kwargs, error, match):
    args = {"encode": lambda v: v, "decode": lambda z: z + 0.1, "x": torch.rand(6, 4)}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        ablation_active_units(**args)
