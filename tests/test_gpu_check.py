"""python -m entropic_ae.gpu_check: every part's logic on the CPU at tiny sizes (so the GPU
check cannot rot where there is no GPU), its verdicts on failures, and the one-line exit
without a GPU."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from entropic_ae import gpu_check
from entropic_ae.gpu_check import (
    NO_GPU,
    TINY,
    Sizes,
    chapter_parameters,
    check_bench,
    check_chapters,
    check_float64,
    check_precision,
    check_unit,
    compare_precisions,
    main,
    markdown_table,
    run_checks,
)

ROOT = Path(__file__).resolve().parents[1]
THREE = dataclasses.replace(TINY, systems=("AE", "EAE", "RAE-GP"))


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(0))


def notebook(path: Path, *cells: tuple[str, list[str]]) -> Path:
    """A notebook of code cells ``(source, tags)``."""
    nb = {"cells": [{"cell_type": "code", "execution_count": None, "outputs": [], "source": src,
                     "metadata": {"tags": tags}} for src, tags in cells],
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                      "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb))
    return path


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_without_a_gpu_it_says_so_in_one_line_and_exits_0(capsys, tmp_path):
    out = tmp_path / "report.json"
    assert main(["--out", str(out)]) == 0
    assert capsys.readouterr().out == NO_GPU + "\n"
    assert not out.exists()


@pytest.mark.slow
def test_unit_part_runs_the_marked_tests_with_the_device_in_the_environment(tmp_path):
    env = tmp_path / "test_env.py"
    env.write_text("import os\nimport pytest\n\n@pytest.mark.device\ndef test_a():\n"
                   "    assert os.environ['ENTROPIC_AE_TEST_DEVICE'] == 'cpu'\n")
    failing = tmp_path / "test_fails.py"
    failing.write_text("import pytest\n\n@pytest.mark.device\ndef test_b():\n"
                       "    assert 1 == 2\n\ndef test_unmarked():\n    assert False\n")
    skipping = tmp_path / "test_skips.py"
    skipping.write_text("import pytest\n\n@pytest.mark.device\ndef test_c():\n"
                        "    pytest.skip('no such device')\n")
    good = check_unit("cpu", [env], workdir=tmp_path / "a")
    assert good["passed"] and good["tests"] == 1, good
    failed = check_unit("cpu", [env, failing], workdir=tmp_path / "b")
    assert not failed["passed"] and failed["tests"] == 2  # the unmarked test is deselected
    assert failed["failed_tests"] == ["test_fails::test_b"] and "assert 1 == 2" in failed[
        "output"]
    skipped = check_unit("cpu", [skipping], workdir=tmp_path / "c")
    assert not skipped["passed"] and skipped["error"] == "no device test ran"
    assert skipped["skip_reasons"] == ["no such device"]


@pytest.mark.slow
def test_unit_part_uses_the_fixture_of_the_test_suite(tmp_path):
    fixture_test = f"{ROOT / 'tests' / 'test_device.py'}::test_the_fixture_names_an_available_"
    fixture_test += "device"
    assert check_unit("cpu", [fixture_test], workdir=tmp_path / "a")["passed"]
    if not torch.cuda.is_available():
        result = check_unit("cuda", [fixture_test], workdir=tmp_path / "b")
        assert not result["passed"] and result["skipped"] == 1
        assert "no CUDA GPU" in result["skip_reasons"][0]


def test_part_one_collects_only_the_files_that_mark_device_tests():
    assert gpu_check.device_test_files() == [ROOT / "tests" / "test_device.py"]


def test_chapters_part_says_what_is_missing_without_papermill(monkeypatch, tmp_path):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    result = check_chapters("cpu", [tmp_path / "01_x.ipynb"], tmp_path)
    assert not result["passed"] and "not installed here: papermill, ipykernel" in result["error"]


def test_chapter_parameters_are_read_from_the_tagged_cell(tmp_path):
    nb = notebook(tmp_path / "01_x.ipynb", ("import os", []),
                  ('device = "auto"  # d\nn = [1, 2]  # n', ["parameters"]))
    assert chapter_parameters(nb) == {"device": "auto", "n": [1, 2]}
    with pytest.raises(ValueError, match="no code cell tagged 'parameters'"):
        chapter_parameters(notebook(tmp_path / "02_y.ipynb", ("x = 1", [])))


PARAMS = ('device = "auto"  # where\nresults_dir = "results"  # out\nn = 1  # size',
          ["parameters"])


@pytest.mark.slow
def test_chapters_part_runs_each_chapter_with_its_smoke_values_and_reports_each(tmp_path):
    ok = notebook(tmp_path / "nb" / "01_ok.ipynb", PARAMS, (
        "import pathlib\npathlib.Path(results_dir).mkdir(parents=True, exist_ok=True)\n"
        "pathlib.Path(results_dir, 'seen.txt').write_text(f'{device} {n}')", []))
    (tmp_path / "nb" / "params" / "smoke").mkdir(parents=True)
    (tmp_path / "nb" / "params" / "smoke" / "01_ok.yaml").write_text("n: 7\n")
    bad = notebook(tmp_path / "nb" / "02_bad.ipynb", PARAMS,
                   ("raise ValueError('boom in chapter two')", []))
    plain = notebook(tmp_path / "nb" / "04_plain.ipynb", ("n = 1  # size", ["parameters"]))
    result = check_chapters("cpu", [ok, bad, plain], tmp_path / "work", timeout=300, jobs=3)
    chapters = result["chapters"]
    assert not result["passed"]
    assert chapters["01_ok"]["passed"], chapters["01_ok"]
    assert (tmp_path / "work" / "01_ok" / "results" / "seen.txt").read_text() == "cpu 7"
    assert not chapters["02_bad"]["passed"]
    assert "boom in chapter two" in chapters["02_bad"]["error"]
    assert chapters["04_plain"] == {"passed": True, "seconds": 0.0,
                                    "skipped": "the chapter has no device parameter"}


@pytest.mark.slow
def test_a_chapter_that_runs_too_long_is_stopped_and_reported(tmp_path):
    slow = notebook(tmp_path / "03_slow.ipynb", PARAMS, ("import time\ntime.sleep(600)", []))
    result = gpu_check.run_chapter(slow, "cpu", tmp_path / "work", timeout=3)
    assert not result["passed"] and result["error"] == "ran past 3 s"
    assert result["seconds"] < 60


def test_chapters_part_passes_only_when_a_chapter_ran_and_none_failed(monkeypatch, tmp_path):
    outcomes = {"01_a": {"passed": True}, "02_b": {"passed": True, "skipped": "no device"},
                "03_c": {"passed": False, "error": "x"}}
    monkeypatch.setattr(gpu_check, "run_chapter",
                        lambda nb, device, workdir, timeout: outcomes[Path(nb).stem])
    verdict = {names: check_chapters("cpu", [f"{n}.ipynb" for n in names], tmp_path)["passed"]
               for names in [("01_a", "02_b"), ("02_b",), ("01_a", "03_c")]}
    assert verdict == {("01_a", "02_b"): True, ("02_b",): False, ("01_a", "03_c"): False}


@pytest.mark.slow
def test_precision_part_trains_each_system_in_both_precisions(images):
    result = check_precision("cpu", THREE, images)
    assert result["passed"], result
    assert list(result["systems"]) == ["AE", "EAE", "RAE-GP"]
    for name, system in result["systems"].items():
        assert set(system["runs"]) == {"fp32", "bf16"}
        assert 0 <= system["loss_relative_difference"] <= gpu_check.RTOL, name
        assert system["runs"]["bf16"]["images_per_second"] > 0
    assert result["float64"]["passed"]


def test_precision_comparison_fails_beyond_its_tolerance_and_on_a_crash(images):
    strict = compare_precisions("EAE", images, "cpu", TINY, rtol=0.0)
    assert not strict["passed"] and "tolerance 0" in strict["error"]
    assert strict["loss_relative_difference"] > 0  # bf16 does round differently
    crash = compare_precisions("GAN", images, "cpu", TINY)
    assert not crash["passed"] and "fp32: ValueError" in crash["error"]
    with pytest.raises(ValueError, match="need 192 images for 36 steps, got 10"):
        check_precision("cpu", dataclasses.replace(TINY, steps=36), images[:10])


def test_float64_checks_pass_and_fail_when_a_part_drops_to_float32(monkeypatch):
    assert check_float64("cpu")["passed"]
    from entropic_ae import estimators, metrics

    kl, fd = estimators.kozachenko_leonenko, metrics.frechet_distance
    monkeypatch.setattr(estimators, "kozachenko_leonenko", lambda z, k=1: kl(z.float(), k))
    monkeypatch.setattr(metrics, "frechet_distance", lambda x, y: fd(x.float(), y.float()))
    damaged = check_float64("cpu")
    assert not damaged["passed"]
    assert not damaged["kl_float64"]["passed"] and not damaged["frechet"]["passed"]


def test_float64_search_check_fails_when_the_search_is_float32(monkeypatch):
    from entropic_ae import estimators

    search = estimators._kth_neighbours
    monkeypatch.setattr(estimators, "_kth_neighbours", lambda z, k: search(z.float(), k))
    damaged = check_float64("cpu")
    assert not damaged["kl_search"]["passed"] and damaged["kl_search"]["error"] > 0.1


@pytest.mark.slow
def test_bench_part_measures_images_per_second():
    result = check_bench("cpu", TINY)
    assert result["passed"], result
    assert [(r["model"], r["width"]) for r in result["rows"]] == [("AE", 1 / 32)]
    from entropic_ae.bench import ENTROPY_TERMS

    assert set(result["entropy_term_seconds"]) == set(ENTROPY_TERMS)


@pytest.mark.slow
def test_command_line_writes_the_report_and_the_table(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["--device", "cpu", "--tiny", "--parts", "precision", "--systems", "AE", "VAE",
                 "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["passed"] and list(report["parts"]) == ["precision"]
    assert report["environment"]["device"] == "cpu" and report["environment"]["torch"]
    assert report["wall_seconds"] > 0 and report["command"][-1] == str(out)
    assert {(r["model"], r["precision"]) for r in report["images_per_second"]} == {
        ("AE", "fp32"), ("AE", "bf16"), ("VAE", "fp32"), ("VAE", "bf16")}
    capsys.readouterr()
    assert main(["--table", str(out)]) == 0
    table = capsys.readouterr().out
    assert "| AE | 0.03125 |" in table and "training loop, bf16" in table


def test_a_failed_part_makes_the_exit_status_1(monkeypatch, tmp_path):
    monkeypatch.setattr(gpu_check, "check_bench", lambda device, sizes: {"passed": False})
    assert main(["--device", "cpu", "--tiny", "--parts", "bench"]) == 1
    monkeypatch.setattr(gpu_check, "check_bench", lambda device, sizes: 1 / 0)
    report = run_checks("cpu", ["bench"], TINY, tmp_path)
    assert not report["passed"] and "ZeroDivisionError" in report["parts"]["bench"]["error"]


def test_markdown_table_lays_out_systems_by_measurement():
    report = {"environment": {"name": "GPU X", "torch": "2.5", "cuda": "12.4"},
              "images_per_second": [
                  {"model": "EAE", "width": 1.0, "precision": "fp32", "source": "bench (one step)",
                   "images_per_second": 1234.4},
                  {"model": "EAE", "width": 1.0, "precision": "bf16", "source": "training loop",
                   "images_per_second": 2500.0},
                  {"model": "AE", "width": 0.25, "precision": "fp32", "source": "bench (one step)",
                   "images_per_second": 9000.0}]}
    lines = markdown_table(report).splitlines()
    assert lines[0] == "Images per second on GPU X (torch 2.5, CUDA 12.4):"
    assert lines[2] == "| system | width | bench (one step), fp32 | training loop, bf16 |"
    assert lines[4:] == ["| AE | 0.25 | 9,000 | – |", "| EAE | 1 | 1,234 | 2,500 |"]


def test_bad_requests_are_refused():
    with pytest.raises(ValueError, match="unknown part"):
        run_checks("cpu", ["gpu"])
    with pytest.raises(ValueError, match="multiple of epochs"):
        Sizes(steps=10, epochs=4)
    with pytest.raises(SystemExit):
        main(["--device", "cpu", "--systems", "GAN"])
