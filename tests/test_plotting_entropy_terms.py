"""What the figures of chapter 5 draw (entropic_ae.plotting.entropy_terms), read back from the
matplotlib artists."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import math  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from scipy.special import ndtri  # noqa: E402

from entropic_ae.plotting.entropy_terms import (  # noqa: E402
    correlation_spectra,
    correlation_spectrum,
    marginal_shapes,
    ranking_figure,
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def codes() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    low_rank = rng.standard_normal((300, 2)) @ rng.standard_normal((2, 5))
    return {"gaussian": rng.standard_normal((300, 5)),
            "crowded": low_rank + 0.05 * rng.standard_normal((300, 5)),
            "uniform": torch.rand(300, 5, generator=torch.Generator().manual_seed(0))}


def test_correlation_spectrum_is_sorted_and_sums_to_d():
    c = codes()["crowded"]
    spec = correlation_spectrum(c)
    assert np.all(np.diff(spec) <= 0)
    assert spec.sum() == pytest.approx(5.0)
    np.testing.assert_allclose(spec, np.sort(np.linalg.eigvalsh(np.corrcoef(c.T)))[::-1])
    # two directions carry almost everything
    assert spec[:2].sum() > 4.9


def test_correlation_spectra_draw_one_line_per_model_and_the_references():
    data = codes()
    fig = correlation_spectra(data, title="spectra")
    ax = fig.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    for name, c in data.items():
        np.testing.assert_array_equal(lines[name].get_xdata(), np.arange(1, 6))
        np.testing.assert_allclose(lines[name].get_ydata(),
                                   correlation_spectrum(np.asarray(c, dtype=np.float64)))
    ref = lines["N(0, I), N = 300"]
    np.testing.assert_allclose(
        ref.get_ydata(), correlation_spectrum(np.random.default_rng(0).standard_normal((300, 5))))
    assert ref.get_linestyle() == ":"
    assert any(np.allclose(line.get_ydata(), 1.0) for line in ax.get_lines()
               if line.get_label().startswith("_"))
    assert ax.get_yscale() == "log" and ax.get_title() == "spectra"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(data) + [
        "N(0, I), N = 300"]
    fig2 = correlation_spectra(data, reference=False)
    assert len(fig2.axes[0].get_lines()) == 3


def test_correlation_spectra_refuse_bad_codes():
    with pytest.raises(TypeError, match="mapping"):
        correlation_spectra(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="same size"):
        correlation_spectra({"a": np.random.rand(10, 2), "b": np.random.rand(10, 3)})
    bad = np.random.rand(10, 3)
    bad[:, 1] = 2.0
    with pytest.raises(ValueError, match=r"constant coordinates \[1\]"):
        correlation_spectra({"dead": bad})
    with pytest.raises(ValueError, match="NaN"):
        correlation_spectra({"nan": np.full((4, 2), np.nan)})


def test_marginal_histograms_draw_each_standardized_coordinate_and_the_normal_density():
    data = codes()
    fig = marginal_shapes(data, dims=[0, 3], bins=10, limit=3.0)
    axes = np.array(fig.axes).reshape(3, 2)
    grid = np.linspace(-3, 3, 201)
    for i, (name, c) in enumerate(data.items()):
        c = np.asarray(c, dtype=np.float64)
        std = (c - c.mean(0)) / c.std(0)
        for k, j in enumerate([0, 3]):
            ax = axes[i, k]
            heights = [p.get_height() for p in ax.patches]
            want, _ = np.histogram(std[:, j], bins=10, range=(-3, 3), density=True)
            np.testing.assert_allclose(heights, want)
            (density,) = ax.get_lines()
            np.testing.assert_allclose(density.get_xdata(), grid)
            np.testing.assert_allclose(density.get_ydata(),
                                       np.exp(-grid**2 / 2) / math.sqrt(2 * math.pi))
        assert axes[i, 0].get_ylabel() == name
    assert [ax.get_title() for ax in axes[0]] == ["z0", "z3"]


def test_marginal_qq_plots_draw_sorted_values_against_normal_quantiles():
    data = {"gaussian": codes()["gaussian"]}
    fig = marginal_shapes(data, dims=2, style="qq")
    assert len(fig.axes) == 2
    std = (data["gaussian"] - data["gaussian"].mean(0)) / data["gaussian"].std(0)
    q = ndtri((np.arange(1, 301) - 0.5) / 300)
    for j, ax in enumerate(fig.axes):
        points, diagonal = ax.get_lines()
        np.testing.assert_allclose(points.get_xdata(), q)
        np.testing.assert_allclose(points.get_ydata(), np.sort(std[:, j]))
        np.testing.assert_allclose(diagonal.get_xdata(), diagonal.get_ydata())


def test_marginal_shapes_default_to_sixteen_coordinates_and_check_arguments():
    fig = marginal_shapes({"a": np.random.default_rng(1).standard_normal((50, 20))})
    assert len(fig.axes) == 16
    with pytest.raises(ValueError, match="style"):
        marginal_shapes(codes(), style="violin")
    with pytest.raises(ValueError, match="dims"):
        marginal_shapes(codes(), dims=[7])
    with pytest.raises(ValueError, match="dims"):
        marginal_shapes(codes(), dims=0)
    with pytest.raises(ValueError, match="bins"):
        marginal_shapes(codes(), bins=0)


def made_up_study() -> pd.DataFrame:
    rows = []
    truth = {"gaussian": 3.0, "uniform": 2.0, "two-bump": 1.0}
    for term, shift in (("a", 0.0), ("b", 5.0)):
        for d in (4, 8):
            for kind in ("two-bump", "gaussian", "uniform"):
                for r in range(3):
                    rows.append({"term": term, "kind": kind, "d": d, "repeat": r,
                                 "value": shift + truth[kind] * d + r, "truth": truth[kind] * d})
    return pd.DataFrame(rows)


def test_ranking_figure_draws_mean_and_sd_per_kind_in_true_order():
    study = made_up_study()
    fig = ranking_figure(study, terms=["b", "a"])
    axes = [ax for ax in fig.axes]
    assert len(axes) == 4
    assert [ax.get_title() for ax in axes] == ["b, d = 4", "b, d = 8", "a, d = 4", "a, d = 8"]
    ax = axes[1]  # term b, d = 8
    points = [line for line in ax.get_lines() if line.get_marker() == "o"]
    # kinds left to right by true entropy: gaussian, uniform, two-bump; mean = 5 + 8 t + 1
    assert [p.get_xdata()[0] for p in points] == [0, 1, 2]
    np.testing.assert_allclose([p.get_ydata()[0] for p in points], [30.0, 22.0, 14.0])
    # error bars of one sd (values r = 0, 1, 2 around the mean: sd 1)
    segments = [c for c in ax.collections if hasattr(c, "get_segments")]
    lengths = [seg[1][1] - seg[0][1] for c in segments for seg in c.get_segments()]
    np.testing.assert_allclose(lengths, [2.0, 2.0, 2.0])
    # the dotted line at the Gaussian's mean
    assert any(line.get_linestyle() == ":" and np.allclose(line.get_ydata(), 30.0)
               for line in ax.get_lines())
    legend = fig.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == ["two-bump", "gaussian", "uniform"]


def test_ranking_figure_refuses_unknown_terms_and_kinds():
    study = made_up_study()
    with pytest.raises(ValueError, match="unknown"):
        ranking_figure(study, terms=["c"])
    with pytest.raises(ValueError, match="unknown"):
        ranking_figure(study, kinds=["laplace"])
    with pytest.raises(ValueError, match="columns"):
        ranking_figure(study.drop(columns="truth"))
