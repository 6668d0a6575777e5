"""Active units."""

import pytest
import torch

from entropic_ae.metrics import active_units


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
