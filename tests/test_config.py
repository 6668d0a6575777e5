"""The book's configuration: one repository address, and pages that need no network.

``_config.yml``'s ``repository.url`` is the one place that names the repository: the launch,
repository and issue buttons derive from it, and ``python3 tests/run.py set-repository URL``
rewrites it and every chapter's install cell. These tests check that the install cells and
every Colab or ``git+`` link in the chapters and docs agree with it, that the rewrite works,
and that the formulas and widgets are served by the book itself (see ``ensure_web_assets`` in
``tests/run.py``), not fetched from a CDN.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
SPHINX = CONFIG["sphinx"]["config"]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
GITHUB = re.compile(r"https://github\.com/([\w.-]+/[\w.-]+)")
# Links that name a repository of this book: Colab launch links and pip installs from git.
REPO_LINKS = re.compile(r"colab\.research\.google\.com/github/([\w.-]+/[\w.-]+)/blob/([\w.-]+)"
                        r"|git\+https://github\.com/([\w.-]+/[\w.-]+?)(?:\.git)?(?:@([\w.-]+))?"
                        r"(?=[\"'\s]|$)")


def load_runner():
    """``tests/run.py`` as a module (it only defines things at import)."""
    spec = importlib.util.spec_from_file_location("entropic_ae_runner", ROOT / "tests" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


runner = load_runner()


def repo_path() -> str:
    match = GITHUB.fullmatch(CONFIG["repository"]["url"].rstrip("/"))
    assert match, "repository.url must be https://github.com/OWNER/REPO"
    return match.group(1)


def test_repository_is_one_github_address():
    assert repo_path()
    assert CONFIG["repository"].get("branch"), "repository.branch: the branch built from"
    assert CONFIG["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert CONFIG["html"]["use_repository_button"] and CONFIG["html"]["use_issues_button"]
    # tests/run.py reads the block without a YAML parser: it must read the same values
    assert runner.repository() == (CONFIG["repository"]["url"].rstrip("/"),
                                   CONFIG["repository"]["branch"])


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_install_cell_follows_the_repository(nb):
    cells = json.loads(nb.read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    install = runner.install_cells({"cells": cells})
    assert len(install) == 1, f"{nb.name}: expected one install cell tagged remove-cell"
    assert code.index(install[0]) == 1, f"{nb.name}: the install cell follows the parameters"
    want = runner.install_cell_source(*runner.repository())
    assert "".join(install[0]["source"]) == want, (
        f"{nb.name}: its install cell does not match _config.yml's repository; "
        "run `python3 tests/run.py set-repository`")


def repo_links(text: str) -> list[tuple[str, str | None]]:
    out = []
    for m in REPO_LINKS.finditer(text):
        out.append((m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4)))
    return out


def test_every_link_to_the_book_repository_agrees():
    files = [*NOTEBOOKS, *sorted((ROOT / "book").glob("*.md")), ROOT / "README.md",
             ROOT / "CONTRIBUTING.md"]
    branch = CONFIG["repository"]["branch"]
    found = 0
    for f in files:
        text = f.read_text()
        if f.suffix == ".ipynb":
            text = "\n".join("".join(c["source"]) for c in json.loads(text)["cells"])
        for path, ref in repo_links(text):
            found += 1
            assert path == repo_path(), f"{f.name} links to {path}, _config.yml says {repo_path()}"
            assert ref in (None, branch), f"{f.name} links to branch {ref}, not {branch}"
    assert found >= len(NOTEBOOKS)


def test_set_repository_rewrites_config_and_install_cells(tmp_path, monkeypatch):
    for name in ("_config.yml", "notebooks", "book"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    nb = tmp_path / "notebooks" / NOTEBOOKS[0].name
    cells = json.loads(nb.read_text())
    cells["cells"][0]["source"].append(
        f"\n[Colab](https://colab.research.google.com/github/{repo_path()}/blob/"
        f"{CONFIG['repository']['branch']}/notebooks/{nb.name})")
    nb.write_text(json.dumps(cells, indent=1, ensure_ascii=False) + "\n")
    monkeypatch.setattr(runner, "ROOT", tmp_path)
    runner.set_repository("https://github.com/someone/a-fork", "gh-pages")
    config = yaml.safe_load((tmp_path / "_config.yml").read_text())
    assert config["repository"]["url"] == "https://github.com/someone/a-fork"
    assert config["repository"]["branch"] == "gh-pages"
    assert {k: v for k, v in config.items() if k != "repository"} == {
        k: v for k, v in CONFIG.items() if k != "repository"}
    for path in sorted((tmp_path / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        text = path.read_text()
        assert repo_path() not in text
        (cell,) = runner.install_cells(json.loads(text))
        assert "git+https://github.com/someone/a-fork@gh-pages" in "".join(cell["source"])
        assert cell["outputs"] == [] and cell["execution_count"] is None
    assert ("colab.research.google.com/github/someone/a-fork/blob/gh-pages/notebooks/"
            in nb.read_text())
    with pytest.raises(SystemExit):
        runner.set_repository("git@github.com:someone/a-fork", None)


def test_pages_serve_their_own_javascript():
    """MathJax and the widget manager come from the book's _static folder, never a CDN."""
    static = runner.VENDOR_STATIC.relative_to(ROOT).as_posix()
    assert static in SPHINX["html_static_path"]
    assert "://" not in SPHINX["mathjax_path"]
    assert SPHINX["mathjax_path"].startswith("mathjax/")
    assert SPHINX["nb_ipywidgets_js"], "an empty dict would fall back to myst-nb's CDN default"
    assert all("://" not in path for path in SPHINX["nb_ipywidgets_js"])
    assert list(SPHINX["nb_ipywidgets_js"]) == [
        "widgets/require.js", "widgets/config.js", "widgets/embed-amd.js"]
    assert set(SPHINX["mathjax3_config"]["tex"]["macros"]) >= {"E", "R"}
    assert "_vendor" in CONFIG["exclude_patterns"]
    assert "/_vendor/" in (ROOT / ".gitignore").read_text().split()
    # the HTML book ranks an HTML fallback above a widget (plotting.interactive_sweep)
    (override,) = SPHINX["nb_mime_priority_overrides"]
    assert override[:2] == ["html", "application/vnd.jupyter.widget-view+json"]
    assert 30 < override[2] < 50, "between text/html (30) and image/png (50)"


def test_no_root_static_folder():
    """Jupyter Book adds every .js and .css under html_static_path to every page as soon as a
    ``_static/`` folder exists at the root: that would load all of MathJax's components."""
    assert not (ROOT / "_static").exists(), (
        "a root _static/ folder makes Jupyter Book load every vendored script on every page; "
        "put custom CSS/JS elsewhere and list it in html_css_files/html_js_files")


def test_data_folder_is_ignored_only_at_the_root():
    lines = (ROOT / ".gitignore").read_text().split()
    assert "data/" not in lines, "data/ would also ignore the package's entropic_ae/data/"
    assert "/data/" in lines


def test_workflows_build_publish_and_test():
    workflows = ROOT / ".github" / "workflows"
    book = yaml.safe_load((workflows / "book.yml").read_text())
    ci = yaml.safe_load((workflows / "ci.yml").read_text())
    triggers = book[True]  # YAML 1.1 reads the key `on` as True
    assert "schedule" in triggers and triggers["push"]["branches"] == ["main"]
    text = (workflows / "book.yml").read_text()
    assert "python3 tests/run.py book" in text
    for action in ("actions/configure-pages", "actions/upload-pages-artifact",
                   "actions/deploy-pages"):
        assert action in text
    deploy = book["jobs"]["deploy"]
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["environment"]["name"] == "github-pages"
    assert "pull_request" in ci[True] and ".ci/run" in (workflows / "ci.yml").read_text()


def test_a_package_change_makes_the_book_reexecute_every_chapter(tmp_path, monkeypatch):
    """A changed package drops the execution cache and Sphinx's record of what it read, so an
    unchanged notebook is re-read and re-executed instead of keeping its old outputs."""
    (tmp_path / "entropic_ae").mkdir()
    module = tmp_path / "entropic_ae" / "a.py"
    module.write_text("x = 1\n")
    build = tmp_path / "_build"
    monkeypatch.setattr(runner, "ROOT", tmp_path)
    monkeypatch.setattr(runner, "BUILD", build)
    runner.clear_stale_cache()  # first build: writes the stamp
    kept = [build / ".jupyter_cache" / "db", build / ".doctrees" / "env.pickle"]
    for path in kept:
        path.parent.mkdir(parents=True)
        path.write_text("old")
    runner.clear_stale_cache()  # same package: both kept
    assert all(path.exists() for path in kept)
    module.write_text("x = 2\n")
    runner.clear_stale_cache()
    assert not (build / ".jupyter_cache").exists() and not (build / ".doctrees").exists()
    assert (build / ".package-digest").read_text() == runner.digest([tmp_path / "entropic_ae"])
