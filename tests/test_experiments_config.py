"""RunConfig: canonical values, the three keys, and what changes them."""

import dataclasses

import numpy as np
import pytest

from entropic_ae.experiments import config as config_module
from entropic_ae.experiments.config import RunConfig, find, grid

BASE = RunConfig.make("conv", "EAE", dataset="mnist", n_train=500, epochs=3, batch_size=100,
                      lr=1e-3, seed=0, width=0.0625, latent_dim=16,
                      weights={"neg_entropy": 1.0}, measure={"n_test": 1000})


def test_values_are_canonical_and_hashable():
    a = RunConfig.make("mlp", "plain", layer_sizes=[784, 16, 784], weights={"b": 1, "a": 2.0})
    b = RunConfig.make("mlp", "plain", weights={"a": 2, "b": np.float32(1.0)},
                       layer_sizes=(784, 16, 784))
    assert a == b and hash(a) == hash(b) and a.key() == b.key()
    assert a.option("layer_sizes") == (784, 16, 784)
    assert dict(a.option("weights")) == {"a": 2.0, "b": 1.0}
    assert RunConfig.from_dict(a.to_dict()) == a


def test_nested_configs_round_trip_and_enter_the_key():
    child = BASE.replace(model="BN-AE", options={"parent": BASE})
    assert RunConfig.from_dict(child.to_dict()) == child
    other = BASE.replace(options={"parent": BASE.replace(seed=1)})
    assert child.key() != other.key()


# Every training field and option changes the lineage, epochs only the train key, the
# measurement options only the record key.
TRAINING_CHANGES = [
    {"family": "mlp"}, {"model": "BN-AE"}, {"dataset": "fashion-mnist"}, {"n_train": 600},
    {"n_train": None}, {"batch_size": 64}, {"lr": 2e-3}, {"seed": 1},
    {"options": {"width": 0.125}}, {"options": {"latent_dim": 8}},
    {"options": {"weights": {"neg_entropy": 0.05}}}, {"options": {"spectral_norm": True}},
]


@pytest.mark.parametrize("change", TRAINING_CHANGES, ids=lambda c: str(c))
def test_every_result_changing_field_changes_every_key(change):
    other = BASE.replace(**change)
    assert other.lineage_key() != BASE.lineage_key()
    assert other.train_key() != BASE.train_key()
    assert other.key() != BASE.key()


def test_epochs_and_measurement_options_change_only_their_keys():
    longer = BASE.replace(epochs=5)
    assert longer.lineage_key() == BASE.lineage_key()
    assert longer.train_key() != BASE.train_key() and longer.key() != BASE.key()
    measured = BASE.replace(measure={"n_test": 2000})
    assert measured.train_key() == BASE.train_key()
    assert measured.key() != BASE.key()


def test_the_cache_version_enters_every_key(monkeypatch):
    keys = (BASE.lineage_key(), BASE.train_key(), BASE.key())
    monkeypatch.setattr(config_module, "CACHE_VERSION", config_module.CACHE_VERSION + 1)
    assert all(a != b for a, b in zip(keys, (BASE.lineage_key(), BASE.train_key(), BASE.key()),
                                      strict=True))


def test_no_field_outside_the_key():
    """A guard for future fields: every dataclass field is part of the key or deliberately
    left out (epochs of the lineage)."""
    names = {f.name for f in dataclasses.fields(RunConfig)}
    assert names == {"family", "model", "dataset", "n_train", "epochs", "batch_size", "lr",
                     "seed", "options", "measure"}


def test_replace_merges_and_removes_options():
    c = BASE.replace(options={"width": 0.25, "weights": None})
    assert c.option("width") == 0.25 and c.option("weights") is None
    assert c.option("latent_dim") == 16


def test_grid_is_the_product_in_order():
    configs = grid(BASE, model=["EAE", "BN-AE"], seed=[0, 1, 2], width=[0.0625, 0.25])
    assert len(configs) == 12
    assert [(c.model, c.seed, c.option("width")) for c in configs[:3]] == [
        ("EAE", 0, 0.0625), ("EAE", 0, 0.25), ("EAE", 1, 0.0625)]
    with pytest.raises(ValueError, match="no values"):
        grid(BASE, seed=[])


def test_describe_is_a_flat_row():
    row = BASE.replace(options={"parent": BASE}).describe()
    assert row["model"] == "EAE" and row["width"] == 0.0625 and row["n_test"] == 1000
    assert row["parent"] == BASE.slug and isinstance(row["weights"], str)


@pytest.mark.parametrize("kwargs, error", [
    ({"family": "gan"}, ValueError), ({"epochs": -1}, ValueError), ({"seed": -2}, ValueError),
    ({"batch_size": 0}, ValueError), ({"lr": 0.0}, ValueError), ({"seed": 1.5}, TypeError),
    ({"n_train": True}, TypeError), ({"model": ""}, TypeError),
])
def test_bad_fields(kwargs, error):
    fields = {"family": "toy", "model": "lin", **kwargs}
    family, model = fields.pop("family"), fields.pop("model")
    with pytest.raises(error):
        RunConfig.make(family, model, **fields)


def test_bad_options():
    with pytest.raises(ValueError, match="finite"):
        RunConfig.make("toy", "lin", w_reg=float("nan"))
    with pytest.raises(TypeError, match="options"):
        RunConfig.make("toy", "lin", fn=print)
    with pytest.raises(ValueError, match="not a RunConfig"):
        RunConfig.from_dict({"family": "toy"})


def test_find_picks_exactly_one():
    configs = grid(BASE, model=["EAE", "BN-AE"], seed=[0, 1])
    assert find(configs, model="BN-AE", seed=1) is configs[3]
    assert find(configs, model="EAE", seed=0, width=0.0625) is configs[0]
    with pytest.raises(LookupError, match="2 configs"):
        find(configs, model="EAE")
    with pytest.raises(LookupError, match="0 configs"):
        find(configs, model="EAE", seed=0, spectral_norm=True)
