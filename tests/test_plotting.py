"""Tests for the book's figures (entropic_ae.plotting), on tiny synthetic inputs."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from entropic_ae import plotting  # noqa: E402
from entropic_ae.training import History  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def toy_decoder(latent_dim: int = 4, side: int = 6):
    """Linear decoder to side×side images, so every unit visibly changes the picture."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(latent_dim, side * side, generator=g)

    def decode(z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(z @ w).reshape(z.shape[0], 1, side, side)

    return decode


def tile(canvas: np.ndarray, row: int, col: int, h: int, w: int, pad: int = 2) -> np.ndarray:
    """Tile (row, col) of a montage with ``pad`` pixels around every tile."""
    y0, x0 = pad + row * (h + pad), pad + col * (w + pad)
    return canvas[y0 : y0 + h, x0 : x0 + w]


def known_decoder(side: int = 4):
    """Decoder of 4 units with known behaviour: unit 0 lights the top half (0.5 + 0.1 z_0),
    unit 2 the bottom half (0.5 + 0.1 z_2); units 1 and 3 are ignored."""

    def decode(z: torch.Tensor) -> torch.Tensor:
        img = torch.full((z.shape[0], 1, side, side), 0.5)
        img[:, 0, : side // 2] += 0.1 * z[:, 0, None, None]
        img[:, 0, side // 2 :] += 0.1 * z[:, 2, None, None]
        return img

    return decode


def sweep_rows(fig, n_values: int, side: int = 4) -> dict[int, list[np.ndarray]]:
    """The tiles of a latent sweep, row by row, keyed by the unit in the row's label."""
    ax = fig.axes[0]
    canvas = ax.images[0].get_array()
    labels = [int(t.get_text()) for t in ax.get_yticklabels()]
    return {u: [np.asarray(tile(canvas, r, c, side, side)) for c in range(n_values)]
            for r, u in enumerate(labels)}


def test_image_grid_layouts():
    for imgs in (torch.rand(10, 1, 8, 8), np.random.rand(10, 8, 8), torch.rand(10, 64),
                 torch.rand(5, 3, 8, 8)):
        fig = plotting.image_grid(imgs, nrow=4)
        assert isinstance(fig, Figure)
        (ax,) = fig.axes
        assert len(ax.images) == 1
    arr = fig.axes[0].images[0].get_array()
    assert arr.shape[-1] == 3  # RGB kept
    fig = plotting.image_grid(torch.rand(10, 1, 8, 8), nrow=4)
    h, w = fig.axes[0].images[0].get_array().shape
    assert (h, w) == (3 * 10 + 2, 4 * 10 + 2)  # 3 rows × 4 columns with 2 px padding


def test_image_grid_titles_and_existing_axes():
    fig, axes = plt.subplots(1, 2)
    out = plotting.image_grid(torch.rand(3, 1, 8, 8), titles=["a", "b", "c"], ax=axes[1])
    assert out is fig
    assert [t.get_text() for t in axes[1].texts] == ["a", "b", "c"]
    assert len(axes[0].images) == 0 and len(axes[1].images) == 1


@pytest.mark.parametrize(
    ("images", "kwargs", "exc", "msg"),
    [
        (torch.rand(4, 2, 8, 8), {}, ValueError, "N×1×H×W"),
        (torch.rand(4, 10), {}, ValueError, "perfect-square"),
        (torch.rand(0, 1, 8, 8), {}, ValueError, "empty"),
        (torch.full((2, 1, 4, 4), float("nan")), {}, ValueError, "NaN"),
        ("images", {}, TypeError, "Tensor"),
        (torch.rand(4, 1, 8, 8), {"nrow": 0}, ValueError, "nrow"),
        (torch.rand(4, 1, 8, 8), {"titles": ["a"]}, ValueError, "titles"),
        (torch.rand(4, 1, 8, 8), {"ax": "left"}, TypeError, "Axes"),
    ],
)
def test_image_grid_bad_inputs(images, kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        plotting.image_grid(images, **kwargs)


def test_reconstructions():
    fig = plotting.reconstructions(torch.rand(12, 1, 8, 8), torch.rand(12, 64), n=5)
    (ax,) = fig.axes
    assert len(ax.images) == 1
    assert ax.images[0].get_array().shape == (2 * 10 + 2, 5 * 10 + 2)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["original", "reconstruction"]
    with pytest.raises(ValueError, match="image shapes"):
        plotting.reconstructions(torch.rand(3, 1, 8, 8), torch.rand(3, 1, 6, 6))


def test_latent_sweep_matches_decoder():
    decode = toy_decoder()
    fig = plotting.latent_sweep(decode, 4)
    (ax,) = fig.axes
    assert len(ax.images) == 1
    assert [t.get_text() for t in ax.get_xticklabels()] == ["-3", "-2", "-1", "0", "1", "2", "3"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0", "1", "2", "3"]
    assert "zeros" in ax.get_title()
    canvas = ax.images[0].get_array()
    assert canvas.shape == (4 * 8 + 2, 7 * 8 + 2)
    # tile (row 2, column 6) is decode(z) with z = 0 except z_2 = 3 (reference, slow path)
    z = torch.zeros(1, 4)
    z[0, 2] = 3.0
    expect = decode(z)[0, 0].numpy()
    tile = canvas[2 + 2 * 8 : 2 + 2 * 8 + 6, 2 + 6 * 8 : 2 + 6 * 8 + 6]
    np.testing.assert_allclose(tile, expect, atol=1e-6)


def test_latent_sweep_units_values_base():
    decode = toy_decoder()
    base = torch.tensor([0.5, -0.5, 0.1, 0.0])
    fig = plotting.latent_sweep(decode, 4, units=[1, 3], values=[-1.0, 1.0], base=base,
                                base_name="mean code")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["1", "3"]
    assert "mean code" in ax.get_title()
    canvas = ax.images[0].get_array()
    z = base.clone()[None]
    z[0, 3] = -1.0
    np.testing.assert_allclose(canvas[2 + 8 : 2 + 8 + 6, 2:8], decode(z)[0, 0].numpy(), atol=1e-6)
    assert "given vector" in plotting.latent_sweep(decode, 4, base=base.numpy()).axes[0].get_title()
    with pytest.raises(ValueError, match="outside"):
        plotting.latent_sweep(decode, 4, units=[4])
    with pytest.raises(ValueError, match="4 entries"):
        plotting.latent_sweep(decode, 4, base=torch.zeros(3))
    with pytest.raises(ValueError, match="base"):
        plotting.latent_sweep(decode, 4, base="mean")
    with pytest.raises(ValueError, match="latent_dim"):
        plotting.latent_sweep(decode, 0)
    with pytest.raises(TypeError, match="callable"):
        plotting.latent_sweep(None, 4)


def test_latent_sweep_with_mlp_autoencoder():
    from entropic_ae.models import MLPAutoencoder

    torch.manual_seed(0)
    m = MLPAutoencoder([64, 16, 4, 4, 16, 64])
    fig = plotting.latent_sweep(lambda h: m.decode_from(h, 2), 4)  # flat 64 -> 8×8
    assert fig.axes[0].images[0].get_array().shape == (4 * 10 + 2, 7 * 10 + 2)


def test_interactive_sweep_updates_image():
    widgets = pytest.importorskip("ipywidgets")
    decode = toy_decoder()
    ui = plotting.interactive_sweep(decode, 4, units=[0, 2], base=torch.zeros(4))
    assert isinstance(ui, widgets.Widget)
    assert len(ui.sliders) == 2
    assert [s.description for s in ui.sliders] == ["z[0]", "z[2]"]
    assert all(isinstance(s, widgets.FloatSlider) for s in ui.sliders)
    assert ui.sliders[0].min == -3 and ui.sliders[0].max == 3
    before = ui.image.value
    assert before[:8] == b"\x89PNG\r\n\x1a\n"
    ui.sliders[1].value = 2.0
    after = ui.image.value
    assert after != before
    ui.reset_button.click()
    assert ui.sliders[1].value == 0.0 and ui.image.value == before
    assert len(plotting.interactive_sweep(decode, 4).sliders) == 4
    mask = torch.tensor([True, False, False, True])
    assert [s.description for s in plotting.interactive_sweep(decode, 4, units=mask).sliders] \
        == ["z[0]", "z[3]"]
    with pytest.raises(ValueError, match="mask"):
        plotting.interactive_sweep(decode, 4, units=np.ones(3, bool))
    with pytest.raises(ValueError, match="value_range"):
        plotting.interactive_sweep(decode, 4, value_range=(1, -1))


def test_interactive_sweep_static_fallback():
    """Displayed, the sweep offers the widget and an HTML fallback (the starting image and a
    note) that the static book shows; moving a slider leaves the fallback at the start."""
    import base64
    import re

    pytest.importorskip("ipywidgets")
    formatters = pytest.importorskip("IPython.core.formatters")
    decode = toy_decoder()
    ui = plotting.interactive_sweep(decode, 4, units=[1, 3], base=torch.tensor([0, 0.5, 0, 2.0]))
    start = ui.image.value
    bundle, _ = formatters.DisplayFormatter().format(ui)
    assert "application/vnd.jupyter.widget-view+json" in bundle
    page = bundle["text/html"]
    assert page == ui.static_html
    (data,) = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert base64.b64decode(data) == start
    assert "kernel" in page and "Colab" in page
    assert "z[1] = 0.50, z[3] = 2.00" in page
    ui.sliders[0].value = -1.0
    assert ui.image.value != start and ui.static_html == page
    note = 'Needs a kernel: <a href="https://example.org/nb">open it</a>; figure 3 is static.'
    custom = plotting.interactive_sweep(decode, 4, static_note=note)
    assert note in custom._repr_mimebundle_()["text/html"]
    with pytest.raises(TypeError, match="static_note"):
        plotting.interactive_sweep(decode, 4, static_note=3)


def test_activity_bars():
    act = torch.tensor([0.5, 0.001, 0.3, 0.0, 0.2])
    fig = plotting.activity_bars(act, threshold=0.01)
    (ax,) = fig.axes
    bars = ax.patches
    assert len(bars) == 5
    grey = [tuple(b.get_facecolor()) == matplotlib.colors.to_rgba("0.75") for b in bars]
    assert grey == [False, True, False, True, False]
    assert "3/5 active" in ax.get_legend().get_texts()[0].get_text()
    fig, ax = plt.subplots()
    assert plotting.activity_bars(np.ones(3), ax=ax) is fig
    with pytest.raises(ValueError, match="1-d"):
        plotting.activity_bars(torch.ones(2, 2))
    with pytest.raises(ValueError, match="NaN"):
        plotting.activity_bars(torch.tensor([1.0, float("nan")]))
    with pytest.raises(ValueError, match="positive"):
        plotting.activity_bars(act, logy=True)


def test_training_curves():
    hist = History(terms={"mse": [0.3, 0.2, 0.1], "ent": [2.0, 1.0, 0.5], "loss": [1, 2, 3]},
                   lr=[1e-3] * 3)
    fig = plotting.training_curves(hist, logy=True)
    (ax,) = fig.axes
    assert [line.get_label() for line in ax.get_lines()] == ["mse", "ent", "loss"]
    np.testing.assert_array_equal(ax.get_lines()[0].get_xdata(), [1, 2, 3])
    assert ax.get_yscale() == "log"
    fig = plotting.training_curves(hist.to_dict(), terms=["mse"])
    assert len(fig.axes[0].get_lines()) == 1
    assert len(plotting.training_curves({"a": [1.0, 2.0]}).axes[0].get_lines()) == 1
    with pytest.raises(ValueError, match="unknown terms"):
        plotting.training_curves(hist, terms=["kl"])
    with pytest.raises(ValueError, match="positive"):
        plotting.training_curves({"a": [1.0, -1.0]}, logy=True)
    with pytest.raises(TypeError, match="History"):
        plotting.training_curves([1, 2, 3])


def test_import_leaves_style_alone():
    import importlib

    before = dict(matplotlib.rcParams)
    importlib.reload(plotting)
    assert dict(matplotlib.rcParams) == before


# --- what is drawn -------------------------------------------------------------------------------


def test_image_grid_shows_the_images_in_order():
    imgs = torch.arange(7, dtype=torch.float32)[:, None, None, None].expand(7, 1, 5, 5) / 10
    fig = plotting.image_grid(imgs, nrow=3, titles=[f"t{k}" for k in range(7)])
    ax = fig.axes[0]
    canvas = ax.images[0].get_array()
    pad = 5 // 2  # titles widen the padding to half a tile
    for k in range(7):
        r, c = divmod(k, 3)
        np.testing.assert_allclose(tile(canvas, r, c, 5, 5, pad), np.full((5, 5), k / 10),
                                   atol=1e-6)
    assert [t.get_text() for t in ax.texts] == [f"t{k}" for k in range(7)]
    xs = [t.get_position()[0] for t in ax.texts]
    assert xs[0] < xs[1] < xs[2] and xs[3] == xs[0]  # row-major: the 4th title starts row 2
    # unused tiles of the last row stay white
    np.testing.assert_array_equal(tile(canvas, 2, 2, 5, 5, pad), np.ones((5, 5)))


def test_reconstructions_pair_originals_with_reconstructions():
    orig = torch.rand(6, 1, 4, 4)
    rec = torch.rand(6, 16)
    fig = plotting.reconstructions(orig, rec, n=4)
    canvas = fig.axes[0].images[0].get_array()
    for k in range(4):
        np.testing.assert_allclose(tile(canvas, 0, k, 4, 4), orig[k, 0].numpy())
        np.testing.assert_allclose(tile(canvas, 1, k, 4, 4), rec[k].reshape(4, 4).numpy())
    assert canvas.shape == (2 * 6 + 2, 4 * 6 + 2)


@pytest.mark.parametrize("units", [
    [0, 2],
    np.array([True, False, True, False]),
    torch.tensor([True, False, True, False]),
    pd.Series([True, False, True, False], name="active"),
    torch.tensor([0, 2]),
    np.array([0, 2]),
    range(0, 4, 2),
])
def test_latent_sweep_rows_are_the_requested_units(units):
    decode = known_decoder()
    values = [-3.0, 0.0, 3.0]
    rows = sweep_rows(plotting.latent_sweep(decode, 4, units=units, values=values), 3)
    assert list(rows) == [0, 2]
    for u, tiles in rows.items():
        for v, t in zip(values, tiles, strict=True):
            z = torch.zeros(1, 4)
            z[0, u] = v
            np.testing.assert_allclose(t, decode(z)[0, 0].numpy(), atol=1e-6)
        assert not np.allclose(tiles[0], tiles[-1])  # an active unit changes the image


def test_latent_sweep_inactive_unit_row_is_constant():
    decode = known_decoder()
    rows = sweep_rows(plotting.latent_sweep(decode, 4, units=[3, 0, 1]), 7)
    assert list(rows) == [3, 0, 1]  # the order given
    for u in (1, 3):  # ignored by the decoder: all columns equal decode(0)
        for t in rows[u]:
            np.testing.assert_allclose(t, np.full((4, 4), 0.5), atol=1e-6)
    assert np.ptp([t.mean() for t in rows[0]]) > 0.2


def test_chapter_2_active_column_selects_the_active_units():
    """The chapter's bug: ``table["active"].to_list()`` is a list of bools, which Python reads
    as units 0 and 1. Such a list is refused; the column itself is a mask."""
    table = pd.DataFrame({"active": [False, False, True, False]})
    decode = known_decoder()
    with pytest.raises(TypeError, match="booleans"):
        plotting.latent_sweep(decode, 4, units=table["active"].to_list())
    with pytest.raises(TypeError, match="booleans"):
        plotting.latent_sweep(decode, 4, units=(True, False, True, False))
    with pytest.raises(TypeError, match="booleans"):
        plotting.latent_sweep(decode, 4, units=[np.bool_(True), 2])
    rows = sweep_rows(plotting.latent_sweep(decode, 4, units=table["active"]), 7)
    assert list(rows) == [2]


@pytest.mark.parametrize(("units", "exc", "msg"), [
    ([0, 0, 1], ValueError, "repeats"),
    ([4], ValueError, "outside"),
    ([-1], ValueError, "outside"),
    ([], ValueError, "empty"),
    ([0.0, 1.0], TypeError, "integer"),
    (np.array([0.5, 1.0]), TypeError, "integer"),
    (np.zeros(4, bool), ValueError, "selects no unit"),
    (np.ones(3, bool), ValueError, "shape"),
    (np.ones((2, 2), bool), ValueError, "1-d"),
    (2, TypeError, "indices"),
    (True, TypeError, "indices"),
    ("0, 1", TypeError, "indices"),
])
def test_unit_selection_refuses_ambiguous_input(units, exc, msg):
    with pytest.raises(exc, match=msg):
        plotting.select_units(units, 4)
    with pytest.raises(exc, match=msg):
        plotting.latent_sweep(known_decoder(), 4, units=units)


def test_latent_sweep_values_checked():
    with pytest.raises(TypeError, match="values"):
        plotting.latent_sweep(known_decoder(), 4, values=[0.0, True])
    with pytest.raises(ValueError, match="finite"):
        plotting.latent_sweep(known_decoder(), 4, values=[0.0, float("nan")])


def test_interactive_sweep_selects_units_like_latent_sweep():
    pytest.importorskip("ipywidgets")
    decode = known_decoder()
    mask = pd.Series([False, True, False, True])
    ui = plotting.interactive_sweep(decode, 4, units=mask, base=torch.tensor([0, 0.5, 0, 2.0]))
    assert [s.description for s in ui.sliders] == ["z[1]", "z[3]"]
    assert "z[1] = 0.50, z[3] = 2.00" in ui.static_html
    with pytest.raises(TypeError, match="booleans"):
        plotting.interactive_sweep(decode, 4, units=mask.to_list())
    ui = plotting.interactive_sweep(decode, 4, units=np.array([True, False, True, False]))
    assert [s.description for s in ui.sliders] == ["z[0]", "z[2]"]
    ui.sliders[1].value = 3.0  # unit 2 lights the bottom half: the image changes
    changed = ui.image.value
    ui.sliders[1].value = 0.0
    assert changed != ui.image.value


def test_activity_bars_heights_and_active_mask():
    act = np.array([0.4, 0.1, 0.3, 0.05, 0.15])
    for active in (np.array([True, False, True, False, False]), [0, 2],
                   torch.tensor([True, False, True, False, False]),
                   pd.Series([True, False, True, False, False])):
        fig = plotting.activity_bars(act, active=active)
        bars = fig.axes[0].patches
        np.testing.assert_allclose([b.get_height() for b in bars], act, rtol=1e-6)
        np.testing.assert_allclose([b.get_x() + b.get_width() / 2 for b in bars], range(5))
        grey = [tuple(b.get_facecolor()) == matplotlib.colors.to_rgba("0.75") for b in bars]
        assert grey == [False, True, False, True, True]
        texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
        assert texts[0] == "2/5 active"
        plt.close(fig)
    with pytest.raises(TypeError, match="booleans"):
        plotting.activity_bars(act, active=[True, False, True, False, False])
    with pytest.raises(ValueError, match="either"):
        plotting.activity_bars(act, threshold=0.1, active=[0])
    fig = plotting.activity_bars(act)
    assert all(tuple(b.get_facecolor()) == matplotlib.colors.to_rgba("C0")
               for b in fig.axes[0].patches)


def test_training_curves_lines_equal_the_history():
    hist = History(terms={"mse": [0.3, 0.2, 0.1], "ent": [2.0, 1.0, 0.5]}, lr=[1e-3] * 3)
    lines = plotting.training_curves(hist).axes[0].get_lines()
    for line, name in zip(lines, ("mse", "ent"), strict=True):
        assert line.get_label() == name
        np.testing.assert_allclose(line.get_ydata(), hist.terms[name])
        np.testing.assert_array_equal(line.get_xdata(), [1, 2, 3])
