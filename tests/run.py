#!/usr/bin/env python3
"""The two commands behind the README: build the book, or run every test.

    python3 tests/run.py book    # environment, data, every chapter executed, HTML in _build/html
    python3 tests/run.py test    # lint, unit tests, smoke-run chapters, nbval, book build

Only the standard library is used here, so the script runs on a machine with nothing but
``python3``. Both commands are idempotent: the virtual environment (``.venv``) is reinstalled
only when ``requirements.txt`` or ``pyproject.toml`` change, data is provisioned only once, and
the book's execution cache is cleared only when the package's code changes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(os.environ.get("ENTROPIC_AE_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
BUILD = ROOT / "_build"
EXECUTED = BUILD / "executed"
CI_BOOK = BUILD / "ci_book"
SANITIZE = ROOT / "tests" / "nbval_sanitize.cfg"
DATASETS = ["mnist", "fashion-mnist"]


def say(message: str) -> None:
    print(f"\n==> {message}", flush=True)


def run(*cmd: str | Path, cwd: Path = ROOT, check: bool = True) -> int:
    print("$ " + " ".join(str(c) for c in cmd), flush=True)
    code = subprocess.call([str(c) for c in cmd], cwd=cwd)
    if check and code != 0:
        sys.exit(f"command failed with exit code {code}: {' '.join(str(c) for c in cmd)}")
    return code


def digest(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for path in paths:
        files = sorted(p for p in path.rglob("*.py")) if path.is_dir() else [path]
        for f in files:
            h.update(str(f.relative_to(ROOT)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def ensure_environment() -> None:
    """Create ``.venv`` and install the project into it, unless it is already up to date."""
    stamp = VENV / ".entropic_ae-installed"
    want = digest([ROOT / "requirements.txt", ROOT / "pyproject.toml"])
    if stamp.exists() and stamp.read_text() == want and PY.exists():
        say(f"environment up to date ({VENV})")
        return
    say(f"installing the environment into {VENV} (a few minutes the first time)")
    if not PY.exists():
        run(sys.executable, "-m", "venv", VENV)
    run(PY, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    run(PY, "-m", "pip", "install", "--quiet", "-r", ROOT / "requirements.txt", "-e", ROOT)
    stamp.write_text(want)


def ensure_data() -> None:
    say("provisioning datasets: " + ", ".join(DATASETS))
    run(PY, "-m", "entropic_ae.data", *DATASETS)


def notebooks() -> list[Path]:
    return sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def clear_stale_cache() -> None:
    """The execution cache only sees notebook code; drop it when the package changes."""
    stamp = BUILD / ".package-digest"
    want = digest([ROOT / "entropic_ae"])
    if stamp.exists() and stamp.read_text() != want:
        say("entropic_ae changed since the last build: clearing the execution cache")
        shutil.rmtree(BUILD / ".jupyter_cache", ignore_errors=True)
    BUILD.mkdir(exist_ok=True)
    stamp.write_text(want)


def build_book() -> None:
    ensure_environment()
    ensure_data()
    clear_stale_cache()
    say("building the book: every chapter runs with its default parameters")
    start = time.time()
    run(BIN / "jupyter-book", "build", ROOT, "-W", "-n", "--keep-going")
    say(f"book built in {time.time() - start:.0f} s: open {BUILD / 'html' / 'index.html'}")


def pytest_counts(junit: Path) -> dict[str, int]:
    suite = ET.parse(junit).getroot()
    suites = [suite] if suite.tag == "testsuite" else list(suite)
    total = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for s in suites:
        for key in total:
            total[key] += int(s.get(key, 0))
    return total


def stage_book_from_executed() -> Path:
    """A copy of the book whose chapters are the smoke-executed notebooks; execution off."""
    shutil.rmtree(CI_BOOK, ignore_errors=True)
    CI_BOOK.mkdir(parents=True)
    shutil.copy(ROOT / "_toc.yml", CI_BOOK)
    shutil.copytree(ROOT / "book", CI_BOOK / "book")
    config = (ROOT / "_config.yml").read_text()
    config, n = re.subn(r"execute_notebooks:\s*\w+", "execute_notebooks: \"off\"", config)
    if n != 1:
        sys.exit("could not switch execution off in a copy of _config.yml")
    (CI_BOOK / "_config.yml").write_text(config)
    (CI_BOOK / "notebooks").mkdir()
    for nb in notebooks():
        executed = EXECUTED / nb.name
        if not executed.exists():
            sys.exit(f"{executed} is missing: the smoke run of {nb.name} did not produce it")
        shutil.copy(executed, CI_BOOK / "notebooks" / nb.name)
    return CI_BOOK


def run_tests(only_unit: bool = False) -> None:
    ensure_environment()
    ensure_data()
    results: list[tuple[str, dict[str, int], float]] = []
    failed = False

    say("lint: ruff check")
    start = time.time()
    lint_ok = run(BIN / "ruff", "check", ROOT, check=False) == 0
    failed |= not lint_ok
    results.append(("lint (ruff)", {"tests": 1, "failures": 0 if lint_ok else 1, "errors": 0,
                                    "skipped": 0}, time.time() - start))

    say("unit tests, and every chapter executed by papermill with its smoke parameters")
    shutil.rmtree(EXECUTED, ignore_errors=True)
    junit = BUILD / "junit-unit.xml"
    start = time.time()
    args = ["-m", "not notebooks"] if only_unit else []
    code = run(PY, "-m", "pytest", ROOT / "tests", "-p", "no:cacheprovider", f"--junitxml={junit}",
               *args, check=False)
    results.append(("unit tests + smoke runs", pytest_counts(junit), time.time() - start))
    failed |= code != 0

    if not only_unit:
        say("nbval: re-execute each smoke-run chapter and compare its outputs")
        # Smoke runs may leave checkpoints; remove them so nbval really trains again.
        shutil.rmtree(BUILD / "smoke" / "checkpoints", ignore_errors=True)
        executed = sorted(EXECUTED.glob("*.ipynb"))
        junit = BUILD / "junit-nbval.xml"
        start = time.time()
        code = run(PY, "-m", "pytest", "--nbval", "--nbval-current-env",
                   f"--nbval-sanitize-with={SANITIZE}", "--nbval-cell-timeout=600",
                   "-p", "no:cacheprovider", "-o", "testpaths=", f"--junitxml={junit}", *executed,
                   check=False)
        results.append(("nbval", pytest_counts(junit), time.time() - start))
        failed |= code != 0

        say("book build (warnings are errors) from the smoke-executed chapters")
        start = time.time()
        book = stage_book_from_executed()
        code = run(BIN / "jupyter-book", "build", book, "-W", "-n", "--keep-going", check=False)
        failed |= code != 0
        results.append(("book build (-W)", {"tests": 1, "failures": 0 if code == 0 else 1,
                                            "errors": 0, "skipped": 0}, time.time() - start))

    say("summary")
    passed = failures = skipped = 0
    for name, c, seconds in results:
        bad = c["failures"] + c["errors"]
        good = c["tests"] - bad - c["skipped"]
        passed, failures, skipped = passed + good, failures + bad, skipped + c["skipped"]
        print(f"  {name:<28} {good:4d} passed {bad:4d} failed {c['skipped']:4d} skipped"
              f"   {seconds:6.0f} s")
    (BUILD / "test-summary.json").write_text(json.dumps(results))
    print(f"summary: {passed} passed, {failures} failed, {skipped} skipped", flush=True)
    if failed:
        sys.exit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["book", "test", "unit", "env"],
                        help="book: build the book; test: the whole test suite; "
                             "unit: unit tests only (quick); env: just set up .venv and data")
    command = parser.parse_args().command
    os.chdir(ROOT)
    if command == "book":
        build_book()
    elif command == "test":
        run_tests()
    elif command == "unit":
        run_tests(only_unit=True)
    else:
        ensure_environment()
        ensure_data()


if __name__ == "__main__":
    main()
