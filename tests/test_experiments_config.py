"""RunConfig and the typed options: canonical values, checked at construction, typos refused
(entropic_ae.experiments.config and .options)."""

import dataclasses

import numpy as np
import pytest

from entropic_ae.experiments.config import RunConfig, find, grid
from entropic_ae.experiments.options import OPTIONS, ConvOptions, describe

BASE = RunConfig.make("conv", "EAE", dataset="mnist", n_train=500, epochs=3, batch_size=100,
                      lr=1e-3, seed=0, width=0.0625, latent_dim=16,
                      weights={"neg_entropy": 1.0}, measure={"n_test": 1000})


def test_values_are_canonical_and_hashable():
    a = RunConfig.make("mlp", "plain", layer_sizes=[784, 16, 784], w_mse=1)
    b = RunConfig.make("mlp", "plain", layer_sizes=(784, 16, 784), w_mse=np.float32(1.0))
    assert a == b and hash(a) == hash(b) and a.key() == b.key()
    assert a.options.layer_sizes == (784, 16, 784) and isinstance(a.options.w_mse, float)
    assert dict(BASE.options.weights) == {"neg_entropy": 1.0}
    assert RunConfig.from_dict(a.to_dict()) == a
    assert RunConfig.from_dict(BASE.to_dict()) == BASE


def test_nested_configs_round_trip_and_enter_the_key():
    parent = RunConfig.make("mlp", "plain", epochs=2)
    child = RunConfig.make("mlp", "plain", parent=parent, layer=2, prune=0.01)
    assert RunConfig.from_dict(child.to_dict()) == child
    assert child.key() != child.replace(parent=parent.replace(seed=1)).key()


@pytest.mark.parametrize("change", [
    {"model": "BN-AE"}, {"dataset": "fashion-mnist"}, {"n_train": 600}, {"n_train": None},
    {"batch_size": 64}, {"lr": 2e-3}, {"seed": 1}, {"width": 0.125}, {"latent_dim": 8},
    {"weights": {"neg_entropy": 0.05}}, {"spectral_norm": True}, {"n_val": 100},
    {"patience": 2}], ids=str)
def test_every_training_field_and_option_enters_the_training_dict(change):
    other = BASE.replace(**change)
    assert other.training_dict() != BASE.training_dict() and other.key() != BASE.key()


def test_epochs_and_measurement_options_stay_out_of_the_training_dict():
    for other in (BASE.replace(epochs=5), BASE.replace(n_test=2000)):
        assert other.training_dict() == BASE.training_dict() and other.key() != BASE.key()


def test_no_field_outside_the_identity():
    names = {f.name for f in dataclasses.fields(RunConfig)}
    assert names == {"family", "model", "dataset", "n_train", "epochs", "batch_size", "lr",
                     "seed", "options", "measure"}
    assert set(BASE.to_dict()) == names


@pytest.mark.parametrize("make, message", [
    (lambda: RunConfig.make("mlp", "compactifier", objectiv="x"), "unknown mlp option"),
    (lambda: RunConfig.make("mlp", "plain", dimm=3), "unknown mlp option: 'dimm'"),
    (lambda: RunConfig.make("toy", "lin", dim=4.7), "dim = 4.7: must be an int"),
    (lambda: RunConfig.make("toy", "lin", epochs=0), "epochs = 0: must be an int >= 1"),
    (lambda: RunConfig.make("toy", "lin", seed=2**64), "seed = .*<= 4.29497e\\+09"),
    (lambda: RunConfig.make("toy", "lin", seed=1.0), "seed = 1.0: must be an int"),
    (lambda: RunConfig.make("toy", "lin", n_train=True), "n_train = True"),
    (lambda: RunConfig.make("toy", "lin", lr=0.0), "lr = 0.0: must be a number > 0"),
    (lambda: RunConfig.make("conv", "GAN"), "not a system of family 'conv'"),
    (lambda: RunConfig.make("conv", "EAE", width=-1), "conv option width = -1"),
    (lambda: RunConfig.make("conv", "EAE", measure={"n_tset": 5}), "did you mean 'n_test'"),
    (lambda: RunConfig.make("gan", "x"), "family must be one of"),
    (lambda: RunConfig.make("conv", "EAE", dataset="svhn"), "dataset must be one of"),
    (lambda: RunConfig.make("mlp", "plain", variant="sideways"), "variant = 'sideways'"),
    (lambda: RunConfig.make("mlp", "plain", parent="plain"), "parent = 'plain'"),
    (lambda: BASE.replace(widht=0.5), "did you mean 'width'"),
])
def test_bad_values_and_typos_are_refused_naming_the_option(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_a_misspelt_grid_axis_is_refused_not_ignored():
    with pytest.raises(ValueError, match="grid axis 'sed'.*did you mean 'seed'"):
        grid(BASE, sed=[0, 1])
    with pytest.raises(ValueError, match="no values"):
        grid(BASE, seed=[])


def test_grid_is_the_product_in_order_over_fields_and_options():
    configs = grid(BASE, model=["EAE", "BN-AE"], seed=[0, 1, 2], width=[0.0625, 0.25])
    assert len(configs) == 12
    assert [(c.model, c.seed, c.options.width) for c in configs[:3]] == [
        ("EAE", 0, 0.0625), ("EAE", 0, 0.25), ("EAE", 1, 0.0625)]
    assert [c.measure.n_test for c in grid(BASE, n_test=[10, 20])] == [10, 20]


def test_replace_merges_options_and_none_resets_to_the_default():
    c = BASE.replace(options={"width": 0.25, "weights": None})
    assert c.options.width == 0.25 and c.options.weights == ()
    assert c.options.latent_dim == 16 and BASE.replace(width=0.25).options.width == 0.25


def test_describe_is_a_flat_row_of_every_option():
    row = BASE.describe()
    assert row["model"] == "EAE" and row["width"] == 0.0625 and row["n_test"] == 1000
    assert row["weights"] == "{'neg_entropy': 1.0}" and row["n_val"] == 0
    assert set(row) >= set(ConvOptions.names())


def test_find_picks_exactly_one():
    configs = grid(BASE, model=["EAE", "BN-AE"], seed=[0, 1])
    assert find(configs, model="BN-AE", seed=1) is configs[3]
    assert find(configs, model="EAE", seed=0, width=0.0625) is configs[0]
    with pytest.raises(LookupError, match="2 configs"):
        find(configs, model="EAE")
    with pytest.raises(ValueError, match="criterion 'sede'"):
        find(configs, sede=0)


def test_every_family_documents_its_options():
    for family in OPTIONS:
        text = describe(family)
        for cls in OPTIONS[family]:
            for name in cls.names():
                assert f"  {name} = " in text
    with pytest.raises(ValueError, match="family"):
        describe("gan")


def test_from_dict_refuses_what_is_not_a_config():
    with pytest.raises(ValueError, match="not a RunConfig"):
        RunConfig.from_dict({"family": "toy"})
