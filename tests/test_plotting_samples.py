"""The figures of chapter 4's sample scores: what they draw, read back from the Axes."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from entropic_ae.damage import damage  # noqa: E402
from entropic_ae.plotting.samples import (  # noqa: E402
    NOISE_BAND,
    damage_examples,
    damage_sensitivity,
    fidelity_coverage,
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def qualified():
    rows = []
    for metric, scale in (("fd[a]", 1.0), ("kid[b]", 10.0)):
        for kind in ("blur", "noise", "classes"):
            rows.append({"metric": metric, "damage": kind, "z_1": 1 * scale, "z_2": 5 * scale,
                         "z_3": 20 * scale if kind != "noise" else -3.0})
    return pd.DataFrame(rows)


def test_damage_sensitivity_draws_one_line_per_metric_and_damage():
    fig = damage_sensitivity(qualified(), ncols=2)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["blur", "noise", "classes"]
    assert not fig.axes[3].get_visible()  # 3 panels on a 2 x 2 grid
    blur = axes[0]
    lines = {line.get_label(): line for line in blur.get_lines()}
    np.testing.assert_array_equal(lines["fd[a]"].get_xdata(), [0, 1, 2, 3])
    np.testing.assert_array_equal(lines["fd[a]"].get_ydata(), [0, 1, 5, 20])
    np.testing.assert_array_equal(lines["kid[b]"].get_ydata(), [0, 10, 50, 200])
    assert axes[1].get_lines()[0].get_ydata()[-1] == -3.0
    assert [t.get_text() for t in blur.get_xticklabels()] == ["real", "0.5", "1", "1.5"]
    assert blur.get_yscale() == "symlog"
    band = blur.patches[0].get_path().get_extents().transformed(blur.patches[0].get_transform())
    ylim = blur.transData.inverted().transform([[0, band.y0], [0, band.y1]])[:, 1]
    np.testing.assert_allclose(ylim, [-NOISE_BAND, NOISE_BAND], atol=1e-6)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["fd[a]", "kid[b]"]


def test_damage_sensitivity_chooses_and_orders():
    fig = damage_sensitivity(qualified(), metrics=["kid[b]"], damages=["classes", "blur"])
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["classes", "blur"]
    assert [line.get_label() for line in axes[0].get_lines()] == ["kid[b]"]
    assert [t.get_text() for t in axes[0].get_xticklabels()] == ["real", "2", "4", "6"]
    with pytest.raises(ValueError, match="qualifies"):
        damage_sensitivity(pd.DataFrame({"metric": ["x"]}))


def test_damage_examples_show_the_damaged_images():
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(8, 1, 6, 6, generator=gen)
    labels = torch.arange(8) % 4
    strengths = {"blur": (0.5, 1.0), "contrast": (2.0, 4.0)}
    fig = damage_examples(images, labels, damages=["blur", "contrast"], strengths=strengths,
                          count=3)
    grid = np.array(fig.axes).reshape(2, 3)
    assert [ax.get_title() for ax in grid[0]] == ["real", "0.5", "1"]
    assert grid[1, 0].get_ylabel() == "contrast"
    shown = grid[1, 2].get_images()[0].get_array()
    want = damage(images, labels, "contrast", 4.0)
    assert shown.shape == (6, 3 * 7 - 1)
    np.testing.assert_allclose(shown[:, 7:13], want[1, 0].numpy(), atol=1e-6)
    np.testing.assert_allclose(shown[:, 6], 1.0)  # the white gap
    np.testing.assert_allclose(grid[0, 0].get_images()[0].get_array()[:, :6], images[0, 0])
    copies = damage_examples(images, labels, damages=["blur", "copies"], count=2)
    assert len(copies.axes) == 4  # copies left out without a pool: one row of real + 3
    with pytest.raises(ValueError, match="grey"):
        damage_examples(torch.rand(4, 3, 6, 6), labels[:4])


def test_fidelity_coverage_points_and_labels():
    table = pd.DataFrame({"model": ["EAE", "VAE"], "precision": [0.9, 0.6],
                          "coverage": [0.4, 0.8]})
    fig = fidelity_coverage(table)
    ax = fig.axes[0]
    np.testing.assert_allclose(ax.collections[0].get_offsets(), [[0.9, 0.4], [0.6, 0.8]])
    assert [t.get_text() for t in ax.texts] == ["EAE", "VAE"]
    assert ax.get_xlabel() == "precision" and ax.get_ylabel() == "coverage"
    assert ax.get_xlim() == (0, 1.05)
    with pytest.raises(ValueError, match="no column"):
        fidelity_coverage(table, y="recall")
