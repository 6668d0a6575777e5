"""Tests of the width-comparison figures (Pareto figure, widths per layer) and of the
validation curves: what each draws, read back from the Axes."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.container import ErrorbarContainer  # noqa: E402

from entropic_ae import plotting  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def runs_table() -> pd.DataFrame:
    """Two methods, three seeds per setting. Means (units, mse): a/1 (4, 0.04), a/2 (8, 0.02),
    b/1 (4, 0.05) dominated by a/1, b/2 (6, 0.03) on the frontier."""
    rows = []
    for method, setting, u, m in (("a", 1, 4, 0.04), ("a", 2, 8, 0.02), ("b", 1, 4, 0.05),
                                  ("b", 2, 6, 0.03)):
        for d in (-1, 0, 1):
            rows.append({"method": method, "setting": setting, "active_units": u + d,
                         "test_mse": m * (1 + 0.1 * d)})
    return pd.DataFrame(rows)


def errorbars(ax) -> list[ErrorbarContainer]:
    return [c for c in ax.containers if isinstance(c, ErrorbarContainer)]


def test_pareto_figure_points_errorbars_and_frontier():
    fig = plotting.pareto_figure(runs_table())
    (ax,) = fig.axes
    bars = errorbars(ax)
    assert [c.get_label() for c in bars] == ["a", "b"]
    a_line, b_line = (c.lines[0] for c in bars)
    np.testing.assert_allclose(a_line.get_xdata(), [4, 8])
    np.testing.assert_allclose(a_line.get_ydata(), [0.04, 0.02])
    np.testing.assert_allclose(b_line.get_xdata(), [4, 6])  # sorted by units
    np.testing.assert_allclose(b_line.get_ydata(), [0.05, 0.03])
    # error bars: ±1 sd (ddof = 1) of the three seeds, in x (units) and y (mse)
    segs_y = bars[0].lines[2][1].get_segments()  # a's vertical bars
    np.testing.assert_allclose([s[1][1] - s[0][1] for s in segs_y],
                               [2 * 0.004, 2 * 0.002], rtol=1e-6)
    segs_x = bars[0].lines[2][0].get_segments()
    np.testing.assert_allclose([s[1][0] - s[0][0] for s in segs_x], [2.0, 2.0])
    stair = next(line for line in ax.get_lines() if line.get_gid() == "pareto-frontier")
    np.testing.assert_allclose(stair.get_xdata(), [4, 6, 8, 8])
    np.testing.assert_allclose(stair.get_ydata(), [0.04, 0.03, 0.02, 0.02])
    assert stair.get_drawstyle() == "steps-post"
    ring = next(c for c in ax.collections if c.get_gid() == "frontier-points")
    np.testing.assert_allclose(ring.get_offsets(), [[4, 0.04], [6, 0.03], [8, 0.02]])
    assert ax.get_yscale() == "log"


def test_pareto_figure_bad_input():
    with pytest.raises(ValueError, match="columns"):
        plotting.pareto_figure(runs_table().drop(columns="test_mse"))
    bad = runs_table()
    bad.loc[0, "test_mse"] = -1.0
    with pytest.raises(ValueError, match="logy"):
        plotting.pareto_figure(bad.assign(test_mse=-bad["test_mse"].abs()))


def layer_rows() -> pd.DataFrame:
    rows = []
    for net, profile in (("plain", [16, 12, 16]), ("narrow", [16, 3, 14])):
        for seed, d in enumerate((-1.0, 0.0, 1.0)):
            for layer, v in zip((2, 3, 4), profile, strict=True):
                rows.append({"network": net, "seed": seed, "layer": layer,
                             "active_units": v + d, "effective_nodes": v / 2 + 2 * d})
    return pd.DataFrame(rows)


def test_layer_widths_lines_are_the_means():
    fig = plotting.layer_widths(layer_rows(), widths={2: 16, 3: 16, 4: 16})
    assert len(fig.axes) == 2
    for ax, scale, shift in ((fig.axes[0], 1.0, 1.0), (fig.axes[1], 0.5, 2.0)):
        bars = errorbars(ax)
        assert [c.get_label() for c in bars] == ["plain", "narrow"]
        for c, profile in zip(bars, ([16, 12, 16], [16, 3, 14]), strict=True):
            np.testing.assert_array_equal(c.lines[0].get_xdata(), [2, 3, 4])
            np.testing.assert_allclose(c.lines[0].get_ydata(), np.array(profile) * scale)
            segs = c.lines[2][0].get_segments()
            np.testing.assert_allclose([s[1][1] - s[0][1] for s in segs], [2 * shift] * 3)
        width_line = next(line for line in ax.get_lines() if line.get_gid() == "layer-widths")
        np.testing.assert_allclose(width_line.get_ydata(), [16, 16, 16])
        assert [t.get_text() for t in ax.get_xticklabels()] == ["2", "3", "4"]
    assert fig.axes[0].get_ylabel().startswith("active units")


def test_layer_widths_reference_lines_and_a_legend_clear_of_the_data():
    fig = plotting.layer_widths(layer_rows(), widths={2: 16, 3: 16, 4: 16},
                                reference={"true width k = 3": 3})
    fig.canvas.draw()
    for ax in fig.axes:
        (ref,) = [line for line in ax.get_lines() if line.get_gid() == "reference"]
        np.testing.assert_allclose(ref.get_ydata(), [3, 3])
        assert ref.get_linestyle() == ":"
        legend = ax.get_legend()
        assert [t.get_text() for t in legend.get_texts()] == [
            "layer width", "true width k = 3", "plain", "narrow"]
        # the legend lies wholly below the axes, so no point or error bar is hidden
        assert legend.get_window_extent().y1 < ax.get_window_extent().y0


def test_layer_widths_bars():
    fig = plotting.layer_widths(layer_rows(), measures=["active_units"], kind="bar",
                                labels={"active_units": "units"})
    (ax,) = fig.axes
    heights = [p.get_height() for p in ax.patches]
    np.testing.assert_allclose(heights, [16, 12, 16, 16, 3, 14])  # plain's bars, then narrow's
    centres = [p.get_x() + p.get_width() / 2 for p in ax.patches]
    np.testing.assert_allclose(centres, [1.8, 2.8, 3.8, 2.2, 3.2, 4.2])
    assert ax.get_ylabel() == "units (mean ± sd)"
    with pytest.raises(ValueError, match="kind"):
        plotting.layer_widths(layer_rows(), kind="pie")
    with pytest.raises(ValueError, match="columns"):
        plotting.layer_widths(layer_rows(), measures=["width"])
    with pytest.raises(ValueError, match="layers"):
        plotting.layer_widths(layer_rows(), widths=[16, 16])
    fig, axes = plt.subplots(1, 2)
    assert plotting.layer_widths(layer_rows(), axes=axes) is fig


def test_validation_curves_one_line_per_run_coloured_by_method():
    curves = {"a0": [0.5, 0.3, 0.2], "a1": [0.6, 0.35, 0.25], "b0": [0.4, 0.38],
              "c0": [0.9, 0.8, 0.7, 0.6]}
    methods = {"a0": "lasso", "a1": "lasso", "b0": "L0", "c0": "nested"}
    fig = plotting.validation_curves(curves, methods, logy=True)
    (ax,) = fig.axes
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == list(curves)
    for line, values in zip(lines, curves.values(), strict=True):
        np.testing.assert_allclose(line.get_ydata(), values)
        np.testing.assert_array_equal(line.get_xdata(), np.arange(1, len(values) + 1))
    colours = [matplotlib.colors.to_hex(line.get_color()) for line in lines]
    assert colours[0] == colours[1] != colours[2] != colours[3] != colours[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "lasso (2 runs)", "L0 (1 run)", "nested (1 run)"]
    assert ax.get_yscale() == "log"
    assert len(plotting.validation_curves({"x": [1.0, 2.0]}).axes[0].get_lines()) == 1
    with pytest.raises(ValueError, match="no entry"):
        plotting.validation_curves(curves, {"a0": "lasso"})
    with pytest.raises(ValueError, match="NaN"):
        plotting.validation_curves({"x": [1.0, float("nan")]})
    with pytest.raises(ValueError, match="no epochs"):
        plotting.validation_curves({"x": []})
    with pytest.raises(ValueError, match="positive"):
        plotting.validation_curves({"x": [1.0, 0.0]}, logy=True)
    with pytest.raises(TypeError, match="mapping"):
        plotting.validation_curves([[1.0, 2.0]])
