"""The chapters: committed clean, parameterised the papermill way, and executable.

``test_chapter_smoke_run`` executes every chapter with its smoke parameters
(``notebooks/params/smoke/<chapter>.yaml``) into ``_build/executed/``, with results and
checkpoints under ``_build/smoke/`` (absolute paths, so nbval's re-execution of the copies,
which runs in ``_build/executed/``, writes to the same place); ``tests/run.py test`` then
re-executes those copies under nbval and builds the book from them.
"""

from __future__ import annotations

import ast
import json
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
EXECUTED = ROOT / "_build" / "executed"
SMOKE = ROOT / "notebooks" / "params" / "smoke"
SMOKE_OUT = ROOT / "_build" / "smoke"

ids = [nb.stem for nb in NOTEBOOKS]


def code_cells(nb: Path) -> list[dict]:
    return [c for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code"]


def parameters(nb: Path) -> dict[str, object]:
    """The names and literal values of a chapter's ``parameters`` cell."""
    source = "".join(code_cells(nb)[0]["source"])
    values = {}
    for node in ast.parse(source).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)):
            raise AssertionError(f"{nb.name}: parameters cell may only assign literals to names, "
                                 f"found {ast.dump(node)[:60]}")
        values[node.targets[0].id] = ast.literal_eval(node.value)
    return values


def test_there_are_chapters():
    assert NOTEBOOKS, "no chapters found in notebooks/"
    assert NOTEBOOKS[0].name == "01_entropy.ipynb"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=ids)
def test_committed_without_outputs(nb):
    for cell in code_cells(nb):
        assert not cell.get("outputs"), f"{nb.name} has outputs: clear them before committing"
        assert cell.get("execution_count") is None, f"{nb.name} has execution counts"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=ids)
def test_parameters_cell(nb):
    first = code_cells(nb)[0]
    assert "parameters" in first.get("metadata", {}).get("tags", []), (
        f"{nb.name}: the first code cell must be tagged 'parameters'")
    values = parameters(nb)
    for name in ("seed", "device", "data_root", "results_dir"):
        assert name in values, f"{nb.name}: parameters cell lacks {name!r}"
    for line in "".join(first["source"]).splitlines():
        if "=" in line.split("#")[0]:
            assert "#" in line, f"{nb.name}: parameter line without a comment: {line!r}"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=ids)
def test_smoke_parameters_are_known(nb):
    smoke = SMOKE / f"{nb.stem}.yaml"
    assert smoke.exists(), f"missing smoke parameters {smoke.relative_to(ROOT)}"
    unknown = set(yaml.safe_load(smoke.read_text()) or {}) - set(parameters(nb))
    assert not unknown, f"{smoke.name} sets parameters the chapter does not have: {unknown}"


@pytest.mark.notebooks
@pytest.mark.parametrize("nb", NOTEBOOKS, ids=ids)
def test_chapter_smoke_run(nb, record_property):
    import papermill

    EXECUTED.mkdir(parents=True, exist_ok=True)
    params = yaml.safe_load((SMOKE / f"{nb.stem}.yaml").read_text()) or {}
    folders = {"results_dir": SMOKE_OUT / "results", "checkpoint_dir": SMOKE_OUT / "checkpoints"}
    params.update({k: str(v) for k, v in folders.items() if k in parameters(nb)})
    start = time.perf_counter()
    papermill.execute_notebook(str(nb), str(EXECUTED / nb.name), parameters=params,
                               cwd=str(nb.parent), kernel_name="python3", progress_bar=False)
    seconds = time.perf_counter() - start
    record_property("seconds", round(seconds, 1))
    print(f"{nb.name}: smoke run in {seconds:.1f} s")


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=ids)
def test_every_parameter_has_a_spec_and_the_defaults_and_smoke_values_pass(nb):
    from entropic_ae.parameters import SCHEMAS, check_parameters

    defaults = parameters(nb)
    assert nb.stem in SCHEMAS, f"no parameter schema for {nb.stem} in entropic_ae.parameters"
    assert set(SCHEMAS[nb.stem]) == set(defaults), (
        f"{nb.name}: parameters without a spec {sorted(set(defaults) - set(SCHEMAS[nb.stem]))}, "
        f"specs without a parameter {sorted(set(SCHEMAS[nb.stem]) - set(defaults))}")
    check_parameters(nb.stem, defaults)
    smoke = yaml.safe_load((SMOKE / f"{nb.stem}.yaml").read_text()) or {}
    check_parameters(nb.stem, {**defaults, **smoke})


PRESETS = sorted(p for p in (ROOT / "notebooks" / "params").glob("*/*.yaml")
                 if p.parent.name != "smoke")


@pytest.mark.parametrize("preset", PRESETS, ids=[p.stem for p in PRESETS])
def test_presets_name_only_parameters_of_their_chapter_and_pass_its_schema(preset):
    from entropic_ae.parameters import check_parameters

    chapter = next((nb for nb in NOTEBOOKS if preset.stem.startswith(nb.stem[:3])), None)
    assert chapter is not None, f"{preset.name}: no chapter numbered {preset.stem[:2]}"
    defaults = parameters(chapter)
    values = yaml.safe_load(preset.read_text())
    unknown = sorted(set(values) - set(defaults))
    assert not unknown, f"{preset.name}: not parameters of {chapter.name}: {unknown}"
    own = f"-f notebooks/params/{preset.parent.name}/{preset.name}"
    assert own in preset.read_text(), f"{preset.name} shows its own run command ({own})"
    check_parameters(chapter.stem, {**defaults, **values})


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=ids)
def test_chapters_stay_thin(nb):
    """No helpers defined in a chapter and no code cell over 40 lines (CONTRIBUTING.md)."""
    for i, cell in enumerate(code_cells(nb)):
        source = "".join(cell["source"])
        assert len(source.splitlines()) <= 40, f"{nb.name}: code cell {i} has more than 40 lines"
        assert not any(line.startswith(("def ", "class ")) for line in source.splitlines()), (
            f"{nb.name}: code cell {i} defines a function or class; it belongs in the package")


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=ids)
def test_setup_cell_checks_the_parameters_first(nb):
    cells = code_cells(nb)
    setup = next(c for c in cells[1:] if "remove-cell" not in c.get("metadata", {}).get("tags", []))
    assert f'check_parameters("{nb.stem}", globals())' in "".join(setup["source"])
