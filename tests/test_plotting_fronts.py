"""The fronts figure draws what the table holds (entropic_ae.plotting.fronts)."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from entropic_ae.plotting.fronts import front_figure  # noqa: E402


def points():
    return pd.DataFrame({"dataset": "mnist", "model": ["EAE", "EAE", "X", "X"],
                         "beta": [3.0, 1.0, 1.0, 3.0], "val_mse": [0.02, 0.01, 0.012, 0.015],
                         "val_sd": [0.001] * 4, "value": [40.0, 50.0, 45.0, 30.0],
                         "sd": [1.0, 2.0, 3.0, 4.0]})


def test_one_line_per_model_in_order_of_reconstruction_with_beta_labels():
    fig = front_figure(points())
    ax = fig.axes[0]
    handles, labels = ax.get_legend_handles_labels()
    assert labels == ["EAE", "X"]
    lines = {label: h.lines[0] for h, label in zip(handles, labels, strict=True)}
    np.testing.assert_allclose(lines["EAE"].get_xdata(), [0.01, 0.02])
    np.testing.assert_allclose(lines["EAE"].get_ydata(), [50.0, 40.0])
    np.testing.assert_allclose(lines["X"].get_ydata(), [45.0, 30.0])
    assert lines["EAE"].get_linewidth() > lines["X"].get_linewidth()
    texts = sorted(t.get_text() for t in ax.texts)
    assert texts == ["β=1", "β=1", "β=3", "β=3"]


def test_bad_tables_are_refused():
    with pytest.raises(ValueError, match="fronts"):
        front_figure(pd.DataFrame({"model": ["EAE"]}))
    two = pd.concat([points(), points().assign(dataset="fashion-mnist")])
    with pytest.raises(ValueError, match="several datasets"):
        front_figure(two)
