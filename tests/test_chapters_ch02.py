"""Chapter 2's analysis helpers (entropic_ae.chapters.ch02) on small inputs with known
answers."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from entropic_ae.chapters import ch02
from entropic_ae.models.mlp import MLPAutoencoder


def run_row(**values):
    base = {"group": "hand", "model": "plain", "seed": 0, "layers": [1, 2, 3],
            "widths": [8, 4, 8], "active_units": [8, 3, 7], "val_active_units": [8, 4, 7],
            "test_mse": 0.02, "val_mse": 0.021, "parent": None, "prune": None,
            "layer_sizes": "[784, 8, 4, 8, 784]", "w_reg": 0.0, "nested_p": 0.1}
    base.update(values)
    return base


def test_layer_rows_spreads_the_per_layer_lists():
    table = pd.DataFrame([run_row(seed=0, dead_units=[0, 1, 0]),
                          run_row(seed=1, dead_units=[0, 0, 2], test_mse=0.03)])
    rows = ch02.layer_rows(table, keep=("group", "missing"))
    assert len(rows) == 6 and list(rows["layer"]) == [1, 2, 3, 1, 2, 3]
    assert list(rows["dead_units"]) == [0, 1, 0, 0, 0, 2]
    assert list(rows["val_active_units"][:3]) == [8, 4, 7]
    assert rows["missing"].isna().all() and rows["test_mse"].iloc[-1] == 0.03
    with pytest.raises(ValueError, match="lacks"):
        ch02.layer_rows(table.drop(columns="layers"))


def test_unit_table_finds_a_dead_unit_and_its_shares():
    torch.manual_seed(0)
    model = MLPAutoencoder([16, 6, 3, 6, 16])
    with torch.no_grad():
        model.linears[1].weight[0] = 0.0
        model.linears[1].bias[0] = -1.0  # unit 0 of layer 2 never fires
    x = torch.rand(50, 16)
    table = ch02.unit_table(model, 2, x)
    assert list(table.index) == [0, 1, 2]
    assert table.loc[0, "largest pre-activation"] == pytest.approx(-1.0)
    assert table.loc[0, "error rise when removed"] == 0 and not table.loc[0, "active"]
    assert table.loc[0, "code variance"] == 0
    for kind in ("in", "out", "data"):
        assert table[f"share {kind}"].sum() == pytest.approx(1.0, abs=1e-6)
    assert table.loc[0, "share data"] == 0
    with pytest.raises(ValueError, match="hidden layer"):
        ch02.unit_table(model, 4, x)


@pytest.mark.parametrize("active", [[True, False, True], [False, False, False]])
def test_share_bars_colours_active_units_also_when_there_are_none(active):
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgba

    fig, ax = plt.subplots()
    ch02.share_bars([0.5, 0.2, 0.3], np.array(active), ax, "t")
    heights = [bar.get_height() for bar in ax.patches]
    colours = [bar.get_facecolor() for bar in ax.patches]
    assert heights == pytest.approx([0.5, 0.2, 0.3]) and ax.get_title() == "t"
    grey, blue = to_rgba("0.75"), to_rgba("C0")
    assert colours == [blue if a else grey for a in active]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0] == f"{sum(active)}/3 active"
    with pytest.raises(ValueError, match="entries"):
        ch02.share_bars([0.5, 0.5], np.array(active), ax, "t")
    plt.close(fig)


@pytest.mark.parametrize("rise, expected", [
    ([0.0, 0.5, 0.02, 0.3], ([1, 3, 2], True)),        # active units, largest rise first
    ([0.001, 0.005, 0.0, 0.002], ([1, 3, 0], False)),  # none active: the top positive rises
    ([0.0, 0.0, 0.0], ([0], False)),                   # nothing rises: one row all the same
])
def test_sweep_units_orders_active_units_and_falls_back(rise, expected):
    assert ch02.sweep_units(rise) == expected


def test_sweep_units_rejects_bad_input():
    with pytest.raises(ValueError, match="rise"):
        ch02.sweep_units([])
    with pytest.raises(ValueError, match="fallback"):
        ch02.sweep_units([0.1], fallback=0)


@pytest.mark.parametrize("row, label", [
    (run_row(), "k = 4"),
    (run_row(layer_sizes=[784, 64, 16, 12, 16, 64, 784]), "k = 12"),
    (run_row(parent="mlp-plain-mnist", prune=0.05), "threshold 5 %"),
    (run_row(model="nested-dropout", nested_p=0.2), "p = 0.2"),
    (run_row(model="l0", w_reg=0.001), "λ = 0.001"),
])
def test_setting_label_names_each_method_s_knob(row, label):
    assert ch02.setting_label(row) == label


def test_width_runs_takes_validation_units_and_expands_nested_dropout():
    nested = run_row(group="nested", model="nested-dropout", layers=[2], widths=[4],
                     width_curve=[0.05, 0.04, 0.03, 0.02], width_curve_val=[0.051, 0.041, 0.031,
                                                                            0.021],
                     width_active=[1, 2, 3, 4], width_active_val=[1, 2, 2, 4])
    runs = ch02.width_runs(pd.DataFrame([run_row(), nested]), layer=2, widths=[2, 3])
    assert list(runs["method"]) == ["hand", "nested", "nested"]
    first = runs.iloc[0]
    assert (first["units"], first["test_units"], first["setting"]) == (4, 3, "k = 4")
    assert list(runs["units"][1:]) == [2, 2] and list(runs["test_mse"][1:]) == [0.04, 0.03]
    assert runs["setting"].iloc[2] == "p = 0.1, first 3" and runs["config"].iloc[2] == "p = 0.1"
    assert list(runs["kept"][1:]) == [2, 3] and pd.isna(runs["kept"].iloc[0])
    with pytest.raises(ValueError, match="n_val"):
        ch02.width_runs(pd.DataFrame([run_row()]).drop(columns="val_mse"), layer=2)


def test_choose_on_validation_takes_the_lowest_mean_validation_error():
    runs = pd.DataFrame({"method": ["n"] * 4 + ["m"], "p": [0.1, 0.1, 0.2, 0.2, 0.1],
                         "units": [4, 5, 4, 9, 4], "val_mse": [0.03, 0.02, 0.01, 0.0, 0.0]})
    value, means = ch02.choose_on_validation(runs, "n", "p", [4, 5])
    assert value == 0.2 and means[0.1] == pytest.approx(0.025) and means[0.2] == 0.01
    value, means = ch02.choose_on_validation(runs.assign(kept=[1, 1, 9, 9, 1]), "n", "p", [1],
                                             by="kept")
    assert value == 0.1 and list(means.index) == [0.1]
    with pytest.raises(ValueError, match="no runs"):
        ch02.choose_on_validation(runs, "n", "p", [12])
    with pytest.raises(ValueError, match="columns"):
        ch02.choose_on_validation(runs, "n", "p", [4], by="kept")


def comparison_runs():
    """Baseline 'hand' at 4 and 6 units; entropy 'comp' clearly worse at 4, equal at 5 (against
    the 4-unit frontier, noisy), and a single run at 6 (too few)."""
    rows = []
    for seed, noise in enumerate([-1, 0, 1]):
        rows += [{"method": "hand", "units": 4, "seed": seed, "val_mse": 0.040 + 1e-4 * noise,
                  "test_mse": 0.040 + 1e-4 * noise},
                 {"method": "hand", "units": 6, "seed": seed, "val_mse": 0.030 + 1e-4 * noise,
                  "test_mse": 0.030 + 1e-4 * noise},
                 {"method": "comp", "units": 4, "seed": seed, "val_mse": 0.050 + 1e-4 * noise,
                  "test_mse": 0.050 + 1e-4 * noise},
                 {"method": "comp", "units": 5, "seed": seed, "val_mse": 0.039 + 3e-3 * noise,
                  "test_mse": 0.040 + 3e-3 * noise}]
    rows.append({"method": "comp", "units": 6, "seed": 9, "val_mse": 0.01, "test_mse": 0.01})
    return pd.DataFrame(rows)


def test_width_verdicts_compare_with_the_best_baseline_at_no_more_units():
    v = ch02.width_verdicts(comparison_runs(), ["comp"], widths=[4, 5, 6, 7])
    assert v.loc[4, "verdict"] == "holds" and v.loc[4, "within_rule"] is False
    assert v.loc[4, "reference"] == "hand, 4 units"
    assert v.loc[4, "relative_gap"] == pytest.approx(0.25)
    assert v.loc[5, "verdict"] == "undecided" and v.loc[5, "within_rule"] is True
    assert v.loc[5, "reference"] == "hand, 4 units" and v.loc[5, "n"] == 3
    assert pd.isna(v.loc[6, "method"]) and pd.isna(v.loc[6, "within_rule"])  # one run only
    assert v.loc[6, "reference"] == "hand, 6 units"
    assert math.isnan(v.loc[7, "mse"])


def test_width_claims_repeat_the_verdicts_with_ids():
    runs = comparison_runs()
    v = ch02.width_verdicts(runs, ["comp"], widths=[4, 5, 6])
    rows = ch02.width_claims(runs, v)
    assert [r["claim_id"] for r in rows] == ["baseline_beats_entropy_k4",
                                             "baseline_beats_entropy_k5"]
    assert [r["verdict"] for r in rows] == ["holds", "undecided"]
    assert rows[0]["mean_better"] == pytest.approx(0.04) and rows[0]["seeds"] == 3


def test_claims_table_has_chapter_4_s_columns_and_unique_ids():
    rows = ch02.width_claims(comparison_runs(),
                             ch02.width_verdicts(comparison_runs(), ["comp"], [4, 5]))
    table = ch02.claims_table(rows)
    assert list(table.columns) == ch02.CLAIM_COLUMNS
    assert (table["p_holm"] >= table["p_value"]).all() and table["dataset"].eq("mnist").all()
    with pytest.raises(ValueError, match="unique"):
        ch02.claims_table(rows + rows[:1])
    assert list(ch02.claims_table([]).columns) == ch02.CLAIM_COLUMNS


def verdicts(within, methods):
    return pd.DataFrame({"within_rule": within, "method": methods},
                        index=pd.Index([4, 5, 6], name="width"))


@pytest.mark.parametrize("within, methods, needed, expected", [
    ([True, True, None], ["c", "c", None], 2,
     "An entropy variant is within the rule of the frontier at 2 widths of the 3 (k = 4 and 5), "
     "so it meets the goal of at least 2; no entropy variant ended with k = 6 active units in "
     "enough runs to be compared."),
    ([True, False, False], ["c", "c", "c"], 2,
     "An entropy variant is within the rule of the frontier at one width of the 3 (k = 4), so "
     "it does not meet the goal of at least 2."),
    ([False, False, None], ["c", "c", None], 1,
     "An entropy variant is within the rule of the frontier at none of the 3 widths, so it "
     "does not meet the goal of at least 1; no entropy variant ended with k = 6 active units "
     "in enough runs to be compared."),
])
def test_goal_sentence_reads_right_in_every_case(within, methods, needed, expected):
    assert ch02.goal_sentence(verdicts(within, methods), needed) == expected


def test_goal_sentence_checks_needed():
    with pytest.raises(ValueError, match="needed"):
        ch02.goal_sentence(verdicts([True] * 3, ["c"] * 3), 0)


@pytest.mark.parametrize("fraction, word", [(0, "none"), (1, "all"), (0.61, "most"),
                                            (0.6, "about half"), (0.4, "about half"),
                                            (0.39, "some"), (0.15, "some"), (0.149, "little")])
def test_fraction_word_has_a_word_per_range(fraction, word):
    assert ch02.fraction_word(fraction) == word


def test_fraction_word_refuses_what_is_not_a_fraction():
    with pytest.raises(ValueError, match="fraction"):
        ch02.fraction_word(1.2)


@pytest.mark.parametrize("n_in, n_out, expected", [
    (0, 0, "No inactive unit holds more than the average share 1/16 of the incoming or of the "
           "outgoing activity: this network has no decoys."),
    (1, 0, "One inactive unit holds more than the average share 1/16 of the incoming activity, "
           "and no inactive units more than the average share of the outgoing activity: these "
           "are *decoys*."),
    (3, 2, "3 inactive units hold more than the average share 1/16 of the incoming activity, "
           "and 2 inactive units more than the average share of the outgoing activity: these "
           "are *decoys*."),
    (0, 1, "No inactive units hold more than the average share 1/16 of the incoming activity, "
           "and one inactive unit more than the average share of the outgoing activity: these "
           "are *decoys*."),
])
def test_decoy_sentence_reads_right_for_every_count(n_in, n_out, expected):
    assert ch02.decoy_sentence(n_in, n_out, 16) == expected
    with pytest.raises(ValueError, match="n_in"):
        ch02.decoy_sentence(-1, 0, 16)


def chapter_defaults(name):
    import ast
    import json
    from pathlib import Path

    nb = json.loads((Path(__file__).resolve().parents[1] / "notebooks" / name).read_text())
    source = "".join(next(c for c in nb["cells"] if c["cell_type"] == "code")["source"])
    return {n.targets[0].id: ast.literal_eval(n.value) for n in ast.parse(source).body}


def test_the_pilot_records_the_settings_the_chapter_uses():
    defaults = chapter_defaults("02_compactifier.ipynb")
    used = {}
    for row in ch02.PILOT:
        assert 0 < row["val_mse"] < 0.07 and 0 <= row["val_units"] <= 16
        if row["used"]:
            used.setdefault(row["method"], []).append(row["setting"])
    assert used["hand-sized"] == [f"k = {k}" for k in defaults["hand_widths"]]
    assert used["nested dropout"] == [f"p = {p:g}" for p in defaults["nested_ps"]]
    assert used["compactifier (data activity)"] == [f"λ = {w:g}" for w in
                                                    defaults["data_weights"]]
    assert set(used["L0 gates"]) <= {f"λ = {w:g}" for w in defaults["l0_weights"]}
    assert set(used["group lasso"]) <= {f"λ = {w:g}" for w in defaults["lasso_weights"]}


def setting_runs():
    """Baseline 'hand' at 4 and 6 units (tight); entropy 'comp' settings: a (units 5, 5, 6, as
    good as the 4-unit frontier), b (units 6, 7, 6, clearly worse than the 6-unit frontier),
    c (one run: too few), d (3 units: no baseline that narrow)."""
    rows = []
    for seed, noise in enumerate([-1, 0, 1]):
        for units, mse in ((4, 0.040), (6, 0.030)):
            rows.append({"method": "hand", "config": f"k = {units}", "units": units,
                         "seed": seed, "val_mse": mse, "test_mse": mse + 1e-4 * noise})
        for config, units, mse in (("a", (5, 5, 6), 0.040), ("b", (6, 7, 6), 0.035),
                                   ("d", (3, 3, 3), 0.05)):
            rows.append({"method": "comp", "config": config, "units": units[seed],
                         "seed": seed, "val_mse": mse, "test_mse": mse + 1e-4 * noise})
    rows.append({"method": "comp", "config": "c", "units": 6, "seed": 0, "val_mse": 0.01,
                 "test_mse": 0.01})
    return pd.DataFrame(rows)


def test_setting_verdicts_keep_a_setting_s_seeds_together_at_their_median_width():
    v = ch02.setting_verdicts(setting_runs(), ["comp"]).set_index("config")
    assert list(v.index) == ["a", "b", "d"]  # c has one run
    assert v.loc["a", "units"] == 5 and v.loc["a", "units_range"] == "5 to 6"
    assert v.loc["a", "reference"] == "hand, 4 units" and v.loc["a", "verdict"] == "undecided"
    assert v.loc["a", "within_rule"] is True and v.loc["a", "n"] == 3
    assert v.loc["b", "units"] == 6 and v.loc["b", "reference"] == "hand, 6 units"
    assert v.loc["b", "ref_method"] == "hand" and v.loc["b", "ref_units"] == 6
    assert v.loc["b", "verdict"] == "holds" and v.loc["b", "within_rule"] is False
    assert v.loc["b", "relative_gap"] == pytest.approx(0.035 / 0.030 - 1)
    assert pd.isna(v.loc["d", "reference"]) and pd.isna(v.loc["d", "within_rule"])
    with pytest.raises(ValueError, match="entropy methods"):
        ch02.setting_verdicts(setting_runs(), ["nope"])
    with pytest.raises(ValueError, match="columns"):
        ch02.setting_verdicts(setting_runs().drop(columns="config"), ["comp"])


def test_setting_claims_and_sentence_follow_the_verdicts():
    runs = setting_runs()
    v = ch02.setting_verdicts(runs, ["comp"])
    rows = ch02.setting_claims(runs, v)
    assert [r["claim_id"] for r in rows] == ["frontier_beats_comp_a", "frontier_beats_comp_b"]
    assert [r["verdict"] for r in rows] == ["undecided", "holds"]
    assert rows[1]["mean_better"] == pytest.approx(0.030) and rows[1]["seeds"] == 3
    sentence = ch02.setting_sentence(v)
    assert "comp, a (5 units): test MSE 0.0400, about the same as the frontier's 0.0400" in sentence
    assert "comp, b (6 units)" in sentence and "off the frontier" in sentence
    assert "within the rule of the frontier" in sentence and "no baseline group" in sentence
    assert ch02.setting_sentence(v.iloc[:0]) == "No entropy setting has enough runs to be compared."
