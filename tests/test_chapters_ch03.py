"""Chapter 3's analysis helpers (entropic_ae.chapters.ch03) on small inputs with known
answers."""

import pandas as pd
import pytest
import torch

from entropic_ae.chapters import ch03
from entropic_ae.models.mlp import MLPAutoencoder


def test_carrier_table_finds_a_decoy_chain_that_never_fires():
    torch.manual_seed(0)
    model = MLPAutoencoder([6, 4, 4, 6])
    with torch.no_grad():
        for lin in model.linears:
            lin.weight.mul_(0.1)
        # unit 0 of layers 1 and 2: huge weights along the chain, but layer 1's unit never fires
        model.linears[0].weight[0] = 5.0
        model.linears[0].bias[0] = -100.0
        model.linears[1].weight[0, 0] = 50.0
        model.linears[2].weight[:, 0] = 50.0
    x = torch.rand(64, 6)
    table = ch03.carrier_table(model, x)
    assert list(table.index) == [1, 2] and table.loc[1, "carrier"] == 0
    assert table.loc[1, "fires on"] == 0 and table.loc[1, "share of the path mass"] > 0.5
    assert table.loc[1, "error rise, carrier at its mean"] == 0
    assert table.loc[1, "Σ|W| in ÷ median"] > 10
    with pytest.raises(TypeError, match="MLPAutoencoder"):
        ch03.carrier_table(torch.nn.Linear(2, 2), x)


def layer_table():
    """Two groups, three seeds, inner layers 2-4; the true bottleneck is layer 3, width 4."""
    rows = []
    plain = {0: (3, 9), 1: (2, 8), 2: (4, 10)}  # seed -> (narrowest layer, its units)
    path = {0: (3, 4), 1: (2, 4), 2: (3, 6)}
    for group, spec in (("plain", plain), ("path", path)):
        for seed, (narrow, units) in spec.items():
            for layer in (2, 3, 4):
                rows.append({"group": group, "seed": seed, "layer": layer,
                             "active_units": units if layer == narrow else 12,
                             "data_effective_nodes": 5.0})
    return pd.DataFrame(rows)


def test_bottleneck_table_takes_the_narrowest_inner_layer():
    table = ch03.bottleneck_table(layer_table(), [2, 3, 4], 3, 4, reference="plain")
    path = table[table["group"] == "path"].set_index("seed")
    assert list(path["layer"]) == [3, 2, 3] and list(path["units"]) == [4, 4, 6]
    assert list(path["right_layer"]) == [True, False, True]
    assert list(path["right_width"]) == [True, True, False]
    assert list(path["found"]) == [True, False, False]
    assert list(path["as_reference"]) == [True, True, False]
    with pytest.raises(ValueError, match="reference"):
        ch03.bottleneck_table(layer_table(), [2, 3, 4], 3, 4, reference="none")
    with pytest.raises(ValueError, match="inner"):
        ch03.bottleneck_table(layer_table(), [5], 3, 4)


def test_bottleneck_table_breaks_ties_by_data_effective_nodes():
    rows = layer_table()
    rows.loc[(rows["group"] == "path") & (rows["seed"] == 0), "active_units"] = 4
    rows.loc[(rows["group"] == "path") & (rows["seed"] == 0) & (rows["layer"] == 4),
             "data_effective_nodes"] = 1.0
    table = ch03.bottleneck_table(rows, [2, 3, 4], 3, 4)
    assert table.set_index(["group", "seed"]).loc[("path", 0), "layer"] == 4
    assert "as_reference" not in table.columns


def test_bottleneck_summary_counts_and_decides_the_goal():
    table = ch03.bottleneck_table(layer_table(), [2, 3, 4], 3, 4, reference="plain")
    summary = ch03.bottleneck_summary(table, needed=1)
    assert summary.loc["path", "seeds"] == 3 and summary.loc["path", "both"] == 1
    assert summary.loc["path", "layers"] == "3, 2, 3" and summary.loc["path", "goal"]
    assert summary.loc["plain", "both"] == 0 and not summary.loc["plain", "goal"]
    assert summary.loc["path", "layer of the plain network"] == 2
    assert ch03.found_phrase(summary, "path") == ("the right layer in 2 of 3 seeds, the right "
                                                  "width in 2 and both in 1")
    with pytest.raises(ValueError, match="no group"):
        ch03.found_phrase(summary, "other")


def test_min_nodes_is_the_smallest_layer_value():
    table = pd.DataFrame({"effective_nodes": [[3.0, 1.5, 2.0], [9.0, 8.0]]})
    assert list(ch03.min_nodes(table)) == [1.5, 8.0]
    with pytest.raises(ValueError, match="column"):
        ch03.min_nodes(table, "other")


def test_slug_and_narrowing_claims():
    assert ch03.slug("Adam, λ = 0.01") == "adam_0_01"
    with pytest.raises(ValueError, match="identifier"):
        ch03.slug("λ")
    table = pd.DataFrame({"group": ["plain"] * 3 + ["Adam, λ = 0.01"] * 3,
                          "min_nodes": [8.0, 8.5, 9.0, 1.0, 1.1, 1.2]})
    (row,) = ch03.narrowing_claims(table, {"Adam, λ = 0.01": "plain"})
    assert row["claim_id"] == "narrows_adam_0_01" and row["verdict"] == "holds"
    assert row["mean_better"] == pytest.approx(1.1) and row["dataset"] == "mnist"


STEPS = {"decoupled 1": (1e-3, "undecided"), "decoupled 10": (1e-2, "holds"),
         "SGD": (1e-1, "holds")}


@pytest.mark.parametrize("adam, steps, expected", [
    ((1e-5, "holds"), STEPS,
     "Inside Adam, λ = 0.01 narrows the path mass, although as a plain gradient step it would "
     "move the weights by only 1 × 10⁻⁵ ∇H per step. Plain gradient steps (decoupled or SGD) "
     "narrow it from 1 × 10⁻² ∇H on and not at 1 × 10⁻³ ∇H: Adam's normalisation makes the small "
     "weight act like a plain step about 1 × 10³ times larger, as the explanation predicts."),
    ((1e-5, "holds"), {"decoupled": (1e-2, "holds")},
     "Inside Adam, λ = 0.01 narrows the path mass, although as a plain gradient step it would "
     "move the weights by only 1 × 10⁻⁵ ∇H per step. Plain gradient steps (decoupled or SGD) "
     "narrow it from 1 × 10⁻² ∇H on: Adam's normalisation makes the small weight act like a "
     "plain step about 1 × 10³ times larger, as the explanation predicts."),
    ((1e-2, "holds"), STEPS,
     "Inside Adam, λ = 0.01 narrows the path mass, although as a plain gradient step it would "
     "move the weights by only 1 × 10⁻² ∇H per step. A plain gradient step of 1 × 10⁻² ∇H, no "
     "larger, narrows it too: Adam's normalisation is not what makes the small weight act."),
    ((1e-5, "holds"), {"decoupled": (1e-3, "undecided")},
     "Inside Adam, λ = 0.01 narrows the path mass, although as a plain gradient step it would "
     "move the weights by only 1 × 10⁻⁵ ∇H per step. No plain gradient step tried, up to "
     "1 × 10⁻³ ∇H, narrows it: only Adam's normalised step does."),
    ((1e-5, "does not hold"), STEPS,
     "Inside Adam, λ = 0.01 does not narrow the path mass, so there is no Adam effect to explain "
     "at this weight."),
    ((1e-5, "undecided"), STEPS,
     "Inside Adam, the verdict at λ = 0.01 is undecided, so the study cannot tell whether Adam "
     "amplifies the regulariser."),
])
def test_adam_sentence_has_a_reading_per_case(adam, steps, expected):
    assert ch03.adam_sentence(adam, steps, 0.01) == expected


def test_adam_sentence_refuses_non_verdicts_and_bad_steps():
    with pytest.raises(ValueError, match="verdict"):
        ch03.adam_sentence((1e-5, "yes"), {}, 0.01)
    with pytest.raises(ValueError, match="step size"):
        ch03.adam_sentence((1e-5, "holds"), {"sgd": (0.0, "holds")}, 0.01)


def test_the_pilot_records_the_settings_the_chapter_uses():
    import ast
    import json
    from pathlib import Path

    nb = json.loads((Path(__file__).resolve().parents[1] / "notebooks" /
                     "03_path_entropy.ipynb").read_text())
    source = "".join(next(c for c in nb["cells"] if c["cell_type"] == "code")["source"])
    defaults = {n.targets[0].id: ast.literal_eval(n.value) for n in ast.parse(source).body}
    used = [r for r in ch03.PILOT if r["used"]]
    assert {r["setting"] for r in used if r["arm"] == "plain, SGD"} == {
        f"lr = {defaults['sgd_lr']:g}"}
    assert {r["setting"] for r in used if r["arm"] == "path entropy, decoupled"} <= {
        f"λ = {w:g}" for w in defaults["decoupled_weights"]}
    assert all(0 < r["val_mse"] < 0.07 and r["min_nodes"] >= 1 for r in ch03.PILOT)
