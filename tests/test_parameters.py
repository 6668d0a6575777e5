"""entropic_ae.parameters: the schema of each chapter's papermill parameters, checked in its
setup cell so that a bad value fails at once with one message naming it."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from entropic_ae import parameters
from entropic_ae.parameters import (
    SCHEMAS,
    Bool,
    Choice,
    Device,
    Float,
    Int,
    ListOf,
    Optional,
    PathStr,
    check_parameters,
)

ROOT = Path(__file__).resolve().parents[1]
CHAPTER_1 = ROOT / "notebooks" / "01_entropy.ipynb"


def _code_cells(nb: Path) -> list[dict]:
    return [c for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code"]


def _defaults(nb: Path) -> dict[str, object]:
    source = "".join(_code_cells(nb)[0]["source"])
    return {node.targets[0].id: ast.literal_eval(node.value)
            for node in ast.parse(source).body if isinstance(node, ast.Assign)}


@pytest.fixture
def defaults() -> dict[str, object]:
    return _defaults(CHAPTER_1)


# --- chapter 1 -----------------------------------------------------------------------------------


def test_the_schema_covers_exactly_the_parameters_cell(defaults):
    assert set(SCHEMAS["01_entropy"]) == set(defaults)


def test_the_defaults_and_the_smoke_parameters_pass_unchanged(defaults):
    assert check_parameters("01_entropy", defaults) == defaults
    smoke = yaml.safe_load((ROOT / "notebooks/params/smoke/01_entropy.yaml").read_text())
    values = {**defaults, **smoke}
    assert check_parameters("01_entropy", values) == values


def test_only_the_schemas_names_come_back(defaults):
    cleaned = check_parameters("01_entropy", {**defaults, "math": object(), "_": 1})
    assert set(cleaned) == set(defaults)


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        ("mc_samples", 0, "an int >= 1"),
        ("mc_samples", -5, "an int >= 1"),
        ("mc_samples", 2.5, "an int >= 1"),
        ("mc_samples", 200000.0, "an int >= 1"),
        ("mc_samples", True, "an int >= 1"),
        ("mc_samples", "1000", "an int >= 1"),
        ("maxent_steps", 0, "an int >= 1"),
        ("kl_repeats", 0, "an int >= 1"),
        ("kl_repeats", None, "an int >= 1"),
        ("seed", -1, "an int >= 0"),
        ("seed", False, "an int >= 0"),
        ("kl_sample_sizes", "[]", "a non-empty list"),
        ("kl_sample_sizes", [], "a non-empty list"),
        ("kl_sample_sizes", [100, 1], "item 1 (1): must be an int >= 2"),
        ("kl_sample_sizes", "[100, 0]", "item 1 (0): must be an int >= 2"),
        ("kl_sample_sizes", 100, "a non-empty list"),
        ("kl_sample_sizes", "{100: 1}", "a non-empty list"),
        ("kl_sample_sizes", "[100, 300", "not a Python literal"),
        ("kl_sample_sizes", {100: 1}, "a non-empty list"),
        ("kl_dims", [0, 2], "item 0 (0): must be an int >= 1"),
        ("kl_dims", ["2"], "item 0 ('2'): must be an int >= 1"),
        ("kl_dims", [1.5], "item 0 (1.5): must be an int >= 1"),
        ("device", "tpu", "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"),
        ("device", "cuda:x", "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"),
        ("device", None, "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"),
        ("results_dir", "", "a non-empty path"),
        ("results_dir", 5, "a non-empty path"),
        ("results_dir", None, "a non-empty path"),
        ("data_root", "", "None or a non-empty path"),
        ("data_root", 0, "None or a non-empty path"),
    ],
)
def test_a_bad_value_is_named_with_what_is_allowed(defaults, name, value, allowed):
    with pytest.raises(ValueError) as info:
        check_parameters("01_entropy", {**defaults, name: value})
    message = str(info.value)
    assert f"{name} = {value!r}" in message
    assert allowed in message
    assert "01_entropy" in message
    assert message.count("\n  - ") == 1, "only the bad parameter is reported"


def test_all_problems_come_in_one_message(defaults):
    bad = {**defaults, "mc_samples": 0, "kl_repeats": 0, "device": "tpu",
           "kl_sample_sizes": "[]"}
    del bad["maxent_steps"]
    with pytest.raises(ValueError) as info:
        check_parameters("01_entropy", bad)
    message = str(info.value)
    for piece in ("mc_samples = 0", "kl_repeats = 0", "device = 'tpu'", "kl_sample_sizes = '[]'",
                  "maxent_steps: missing"):
        assert piece in message
    assert message.count("\n  - ") == 5


def test_papermill_strings_and_numpy_scalars_are_cleaned(defaults):
    values = {**defaults, "kl_sample_sizes": "[100, 300]", "kl_dims": (1, np.int64(4)),
              "seed": np.int64(3), "device": "cuda:1", "data_root": Path("/tmp/data"),
              "results_dir": "out"}
    cleaned = check_parameters("01_entropy", values)
    assert cleaned["kl_sample_sizes"] == [100, 300]
    assert cleaned["kl_dims"] == [1, 4] and all(type(v) is int for v in cleaned["kl_dims"])
    assert cleaned["seed"] == 3 and type(cleaned["seed"]) is int
    assert cleaned["device"] == "cuda:1"
    assert cleaned["data_root"] == str(Path("/tmp/data")) and cleaned["results_dir"] == "out"


def test_unknown_chapters_and_bad_arguments(defaults):
    with pytest.raises(ValueError, match=r"no parameter schema for chapter '99_x'.*01_entropy"):
        check_parameters("99_x", defaults)
    with pytest.raises(TypeError, match="mapping"):
        check_parameters("01_entropy", [("seed", 0)])


def test_adding_a_chapter_takes_a_few_lines(monkeypatch):
    schema = {**parameters.COMMON, "n_train": Int(min=1), "lam": Float(gt=0, le=1),
              "checkpoint_dir": Optional(PathStr())}
    monkeypatch.setitem(SCHEMAS, "05_new", schema)
    values = {"seed": 0, "device": "auto", "data_root": None, "results_dir": "results",
              "n_train": 100, "lam": 1, "checkpoint_dir": None}
    assert check_parameters("05_new", values) == {**values, "lam": 1.0}
    with pytest.raises(ValueError, match=r"lam = 0: must be a number > 0 and <= 1"):
        check_parameters("05_new", {**values, "lam": 0})


# --- the building blocks -------------------------------------------------------------------------


def _bad(spec, value, match):
    with pytest.raises(parameters.ParameterError, match=match):
        spec.clean(value)


def test_int():
    spec = Int(min=1, max=10)
    assert spec.clean(np.int32(3)) == 3 and type(spec.clean(np.int32(3))) is int
    assert spec.describe() == "an int >= 1 and <= 10"
    for value in (0, 11, 2.0, True, np.bool_(True), "3", None):
        _bad(spec, value, "must be an int >= 1 and <= 10")
    assert Int().clean(-7) == -7 and Int().describe() == "an int"


def test_float():
    spec = Float(gt=0, le=1)
    for value, want in ((1, 1.0), (0.25, 0.25), (np.float32(0.5), 0.5), (np.int64(1), 1.0)):
        assert spec.clean(value) == want and type(spec.clean(value)) is float
    for value in (0, 0.0, 1.5, -1, float("nan"), float("inf"), True, "0.5", None):
        _bad(spec, value, r"must be a number > 0 and <= 1")
    assert Float(ge=0, lt=2).describe() == "a number >= 0 and < 2"
    _bad(Float(), float("nan"), "a finite number")


def test_bool_choice_device_path_list_optional():
    assert Bool().clean(np.bool_(True)) is True and Bool().clean(False) is False
    _bad(Bool(), 1, "True or False")
    spec = Choice("mnist", "fashion-mnist")
    assert spec.clean("mnist") == "mnist"
    _bad(spec, "cifar", "one of 'mnist', 'fashion-mnist'")
    _bad(Choice(1, 2), True, "one of 1, 2")
    for device in ("auto", "cpu", "cuda", "cuda:0", "cuda:12", "mps"):
        assert Device().clean(device) == device
    for device in ("gpu", "cuda:", "cuda:-1", "Cuda", " cpu", 0):
        _bad(Device(), device, "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")
    assert PathStr().clean(Path("a") / "b") == str(Path("a") / "b")
    _bad(PathStr(), "   ", "a non-empty path")
    _bad(PathStr(), "a\0b", "a non-empty path")
    assert ListOf(Float(ge=0)).clean("[0, 0.5]") == [0.0, 0.5]
    assert ListOf(Int(), min_len=0).clean("[]") == []
    _bad(ListOf(Int(min=0)), [1, -1, -2], r"item 1 \(-1\): must be an int >= 0; "
                                           r"item 2 \(-2\): must be an int >= 0")
    assert Optional(Int(min=1)).clean(None) is None
    assert Optional(Int(min=1)).describe() == "None or an int >= 1"
    _bad(Optional(Int(min=1)), 0, "must be None or an int >= 1")


# --- the chapter's setup cell ----------------------------------------------------------------


def test_chapter_1_checks_its_parameters_first_in_the_setup_cell():
    cells = _code_cells(CHAPTER_1)
    assert "parameters" in cells[0]["metadata"]["tags"]
    assert "remove-cell" in cells[1]["metadata"]["tags"]
    setup = "".join(cells[2]["source"])
    first = next(line for line in setup.splitlines()
                 if line.strip() and not line.startswith(("import", "from")))
    assert first.startswith('globals().update(check_parameters("01_entropy", globals()))')
    assert cells[2]["execution_count"] is None and cells[2]["outputs"] == []


@pytest.mark.notebooks
@pytest.mark.slow
def test_papermill_with_a_bad_parameter_fails_in_the_setup_cell(tmp_path):
    papermill = pytest.importorskip("papermill")
    from papermill.exceptions import PapermillExecutionError

    with pytest.raises(PapermillExecutionError) as info:
        papermill.execute_notebook(str(CHAPTER_1), str(tmp_path / "out.ipynb"),
                                   parameters={"mc_samples": 0}, cwd=str(CHAPTER_1.parent),
                                   kernel_name="python3", progress_bar=False)
    err = info.value
    assert err.ename == "ValueError"
    assert "mc_samples = 0" in err.evalue and "an int >= 1" in err.evalue
    assert 'check_parameters("01_entropy", globals())' in err.source, "raised in the setup cell"
    executed = json.loads((tmp_path / "out.ipynb").read_text())
    code = [c for c in executed["cells"] if c["cell_type"] == "code"]
    failed = [i for i, c in enumerate(code)
              if any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    assert failed == [3], "parameters, injected parameters, install cell, then the setup cell"
