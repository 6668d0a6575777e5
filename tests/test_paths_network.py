"""Tests for entropic_ae.paths.network: reading a network's layers."""

from __future__ import annotations

import pytest
from torch import nn

from entropic_ae.paths import layer_sizes, linear_params

pytestmark = pytest.mark.usefixtures("one_thread")


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
