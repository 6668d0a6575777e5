"""The mlp family's reporting helpers: unit and carrier tables, the width and bottleneck goals."""

import math

import pandas as pd
import pytest
import torch

from entropic_ae.experiments.mlp import (
    bottleneck_goal,
    carrier_table,
    layer_rows,
    unit_table,
    width_goal,
)
from entropic_ae.models.mlp import MLPAutoencoder


@pytest.fixture
def model_and_data():
    torch.manual_seed(0)
    model = MLPAutoencoder([12, 6, 4, 6, 12])
    with torch.no_grad():  # unit 3 of layer 2 never fires: a dead unit
        model.linears[1].weight[3] = 0.0
        model.linears[1].bias[3] = -1.0
    return model.eval(), torch.rand(50, 12, generator=torch.Generator().manual_seed(1))


def test_unit_table_shares_and_a_dead_unit(model_and_data):
    model, x = model_and_data
    table = unit_table(model, 2, x)
    assert list(table.index) == [0, 1, 2, 3]
    for kind in ("in", "out", "data"):
        assert table[f"share {kind}"].sum() == pytest.approx(1.0)
    dead = table.loc[3]
    assert dead["share data"] == 0 and dead["error rise when removed"] == 0
    assert not dead["active"] and dead["largest pre-activation"] == pytest.approx(-1.0)


def test_carrier_table_one_row_per_hidden_layer(model_and_data):
    model, x = model_and_data
    table = carrier_table(model, x)
    assert list(table.index) == [1, 2, 3]
    assert ((table["share of the path mass"] > 0) & (table["share of the path mass"] <= 1)).all()
    assert ((table["fires on"] >= 0) & (table["fires on"] <= 1)).all()


def test_width_goal_picks_the_best_landing_setting_per_width():
    pruned = pd.DataFrame({"variant": ["both", "both", "data", "data"],
                           "w_reg": [0.1, 0.1, 1.0, 1.0], "seed": [0, 1, 0, 1],
                           "k": [4, 5, 4, 4], "test_mse": [0.050, 0.040, 0.042, 0.044]})
    hand = pd.DataFrame({"k": [4, 4, 5, 5, 6, 6], "test_mse": [0.041, 0.043, 0.040, 0.042,
                                                                0.039, 0.041]})
    goal = width_goal(pruned, hand)
    assert goal.loc[4, "variant"] == "data" and goal.loc[4, "MSE"] == pytest.approx(0.043)
    assert goal.loc[4, "met"] and goal.loc[4, "gap"] == pytest.approx(0.043 / 0.042 - 1)
    assert goal.loc[5, "variant"] == "both" and goal.loc[5, "runs"] == 1
    assert goal.loc[6, "runs"] == 0 and not goal.loc[6, "met"] and math.isnan(goal.loc[6, "gap"])


def test_bottleneck_goal_each_condition():
    def rows(nodes, active, mse=0.04):
        return pd.DataFrame([{"seed": s, "layer": l, "data_effective_nodes": n,
                              "active_units": a, "test_mse": mse}
                             for s in (0, 1) for l, n, a in zip((1, 2, 3), nodes, active,
                                                                 strict=True)])

    good = bottleneck_goal(rows([12.0, 4.0, 9.0], [13, 4, 10]), hand_mse=0.039, inner=[1, 2, 3])
    assert good["layer"] == 2 and good["met"]
    assert not bottleneck_goal(rows([12.0, 1.5, 9.0], [13, 4, 10]), 0.039, [1, 2, 3])[
        "carries the signal"]
    assert not bottleneck_goal(rows([7.0, 4.0, 9.0], [8, 4, 10]), 0.039, [1, 2, 3])[
        "the only narrow layer"]
    assert not bottleneck_goal(rows([12.0, 4.0, 9.0], [13, 4, 10], mse=0.05), 0.039,
                               [1, 2, 3])["reconstructs as well"]


def test_layer_rows_explode_the_per_layer_lists():
    table = pd.DataFrame([{"seed": s, "model": "m", "test_mse": 0.1 * s, "layers": [1, 2],
                           "widths": [8, 4], "active_units": [7, 3 + s],
                           "active_units_variance": [8, 4], "effective_nodes": [5.0, 2.0],
                           "data_effective_nodes": [6.0, 3.0], "carrier_fires": [0.5, 0.0]}
                          for s in (0, 1)])
    rows = layer_rows(table, keep=("model",))
    assert len(rows) == 4 and list(rows["layer"]) == [1, 2, 1, 2]
    assert rows.loc[3, "active_units"] == 4 and rows.loc[3, "width"] == 4
    assert rows.loc[2, "test_mse"] == 0.1 and rows.loc[0, "model"] == "m"
    assert layer_rows(table, keep=("optimizer",))["optimizer"].isna().all(), "an option not set"
    with pytest.raises(ValueError, match="mlp grid"):
        layer_rows(table.drop(columns=["layers"]))
