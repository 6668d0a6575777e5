"""Open every page of the built book in headless Chromium, offline, and check what a reader sees.

    .venv/bin/python tests/browser_check.py _build/html --chromium /usr/bin/chromium \
        --screenshots _build/screenshots --junit _build/junit-browser.xml

``tests/run.py test`` runs it on the book it builds from the smoke-executed chapters, and
``tests/run.py browser [HTML]`` on any built book. Pages are opened from ``file://`` with the
network off (Playwright's offline mode, every non-file request aborted, and no host name
resolves), so anything a page would fetch from the internet shows up as a failure. Per page:

- no JavaScript error (console errors, uncaught exceptions) and no failed or blocked request;
- every formula typeset: no raw ``\\(``, ``\\[``, ``$$`` or ``\\begin{`` left in the visible
  text outside code, a MathJax container in every ``.math`` element, and no TeX error (an
  ``merror`` node, or the red text of an undefined macro such as ``\\E`` or ``\\R``);
- every ``<img>`` loaded with a non-zero natural size;
- on chapters (notebooks) a Colab launch link to this chapter in the repository of
  ``_config.yml``, the repository and issues buttons, and no Colab link to anything else.

Once per book: the table of contents of the root page links to every file of ``_toc.yml``.
A full-page screenshot of every page in the table of contents goes to ``--screenshots``.
Results are written as a JUnit XML file (one test case per check); the exit code is 1 when any
check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import posixpath
import re
import shutil
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

import yaml

CHROMIUM_FLAGS = [
    # root (CI) cannot use the sandbox, nor can Ubuntu's AppArmor'd runners; the pages are our own
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--host-resolver-rules=MAP * ~NOTFOUND",  # no host name resolves: the network is off
]
LOCAL_SCHEMES = {"file", "data", "blob", "about"}
# Console errors that are known, harmless and not ours to fix, each with the reason. Anything
# else fails the page.
KNOWN_ERRORS = {
    "Identifier 'THEBE_JS_URL' has already been declared":
        "sphinx-thebe adds its inline script after the builder started; Sphinx 7.4 then "
        "renders it twice (None and '' filenames); the first copy defines the constants",
}
REFRESH = re.compile(r'<meta http-equiv="Refresh" content="0; url=([^"]+)"', re.IGNORECASE)
RAW_TEX = ["\\(", "\\)", "\\[", "\\]", "$$", "\\begin{"]

# Wait until MathJax has typeset the page (or say why it did not).
WAIT_FOR_MATHJAX = """async () => {
  if (!document.querySelector('.math')) return null;
  const start = Date.now();
  while (!(window.MathJax && MathJax.startup && MathJax.startup.promise)) {
    if (Date.now() - start > 20000) return 'MathJax did not start (its script did not load)';
    await new Promise(r => setTimeout(r, 100));
  }
  await MathJax.startup.promise;
  return null;
}"""

# What the reader sees: formulas, raw TeX outside code, TeX errors, images.
INSPECT = """() => {
  const out = {};
  const maths = [...document.querySelectorAll('.math')];
  out.math = maths.length;
  out.untypeset = maths.filter(m => !m.querySelector('mjx-container'))
                       .map(m => m.textContent.trim().slice(0, 80));
  out.containers = document.querySelectorAll('mjx-container').length;
  out.tex_errors = [];
  if (window.MathJax && MathJax.startup && MathJax.startup.document) {
    for (const item of MathJax.startup.document.math) {
      const mml = MathJax.startup.toMML(item.root);
      if (mml.includes('<merror') || mml.includes('mathcolor="red"'))
        out.tex_errors.push(String(item.math).slice(0, 80));
    }
  }
  const main = (document.querySelector('main') || document.body).cloneNode(true);
  main.querySelectorAll('pre, code, script, style, textarea, mjx-container, .math')
      .forEach(e => e.remove());
  const text = main.textContent;
  out.raw_tex = [];
  for (const mark of RAW_TEX_MARKS) {
    let i = text.indexOf(mark);
    if (i >= 0) out.raw_tex.push(text.slice(Math.max(0, i - 30), i + 50).replace(/\\s+/g, ' '));
  }
  out.images = [...document.images].map(img => ({
    src: img.getAttribute('src'), ok: img.complete && img.naturalWidth > 0 && img.naturalHeight > 0
  }));
  out.links = [...document.querySelectorAll('a[href]')].map(a => a.href);
  out.toc = [...document.querySelectorAll('nav.bd-docs-nav a.reference.internal')]
                .map(a => a.href);
  return out;
}""".replace("RAW_TEX_MARKS", json.dumps(RAW_TEX))

LOAD_IMAGES = """async () => {
  const imgs = [...document.images];
  imgs.forEach(img => { img.loading = 'eager'; });
  await Promise.all(imgs.map(img => img.decode().catch(() => null)));
  await document.fonts.ready;
}"""


@dataclass
class Case:
    name: str
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0


def read_book(book: Path) -> tuple[dict, list[str]]:
    """The book's ``_config.yml`` and the docnames of ``_toc.yml`` (root first)."""
    config = yaml.safe_load((book / "_config.yml").read_text())
    toc = yaml.safe_load((book / "_toc.yml").read_text())
    docs = [toc["root"]]

    def walk(node: dict) -> None:
        for key in ("parts", "chapters", "sections"):
            for child in node.get(key, []):
                if "file" in child:
                    docs.append(child["file"])
                walk(child)

    walk(toc)
    return config, [posixpath.splitext(d)[0] for d in docs]


def colab_link(config: dict, docname: str) -> str:
    """The launch link sphinx-book-theme makes from ``_config.yml`` for a notebook page."""
    repo = config["repository"]
    owner_repo = urlsplit(repo["url"]).path.strip("/")
    prefix = (repo.get("path_to_book") or "").strip("/")
    path = f"{prefix}/{docname}.ipynb" if prefix else f"{docname}.ipynb"
    colab = config["launch_buttons"]["colab_url"].rstrip("/")
    return f"{colab}/github/{owner_repo}/blob/{repo.get('branch', 'main')}/{path}"


def html_docname(html: Path, url: str) -> str | None:
    """The docname of a ``file://`` link into the built book, or None."""
    parts = urlsplit(url)
    if parts.scheme != "file":
        return None
    try:
        rel = Path(unquote(parts.path)).resolve().relative_to(html.resolve())
    except ValueError:
        return None
    return rel.with_suffix("").as_posix() if rel.suffix == ".html" else None


def check_page(context, html: Path, page: Path, config: dict, book: Path,
               shot: Path | None) -> tuple[Case, dict]:
    docname = page.relative_to(html).with_suffix("").as_posix()
    case = Case(docname)
    start = time.perf_counter()
    errors: list[str] = []
    known: list[str] = []

    def error(text: str) -> None:
        (known if any(k in text for k in KNOWN_ERRORS) else errors).append(text)

    if redirect := REFRESH.search(page.read_text(errors="replace")):  # e.g. index.html
        target = (page.parent / redirect.group(1)).resolve()
        if not target.exists():
            case.failures.append(f"redirects to {redirect.group(1)}, which was not built")
        return case, {"redirect": True, "known": known}
    tab = context.new_page()
    tab.on("console", lambda m: error(f"console {m.type}: {m.text}") if m.type == "error"
           else None)
    tab.on("pageerror", lambda e: error(f"uncaught exception: {e}"))
    tab.on("requestfailed", lambda r: errors.append(
        f"request failed: {r.url[:160]} ({r.failure})"))
    info: dict = {}
    try:
        tab.goto(page.as_uri(), wait_until="load", timeout=60000)
        why = tab.evaluate(WAIT_FOR_MATHJAX)
        if why:
            case.failures.append(why)
        tab.evaluate(LOAD_IMAGES)
        tab.wait_for_timeout(300)  # late console messages (widget manager, fonts)
        info = tab.evaluate(INSPECT)
        if shot is not None:
            shot.parent.mkdir(parents=True, exist_ok=True)
            tab.screenshot(path=str(shot), full_page=True)
    except Exception as exc:  # a page that cannot be loaded or inspected fails, the rest go on
        case.failures.append(f"could not check the page: {exc}")
    finally:
        tab.close()
    case.failures += errors
    info["known"] = known
    if "math" in info:
        if info["untypeset"]:
            case.failures.append(f"{len(info['untypeset'])} of {info['math']} formulas not "
                                 f"typeset, e.g. {info['untypeset'][:3]}")
        if info["math"] and info["containers"] < info["math"]:
            case.failures.append(f"{info['math']} formulas but {info['containers']} MathJax "
                                 "containers")
        if info["tex_errors"]:
            case.failures.append(f"TeX errors (or undefined macros) in {info['tex_errors'][:3]}")
        if info["raw_tex"]:
            case.failures.append(f"raw TeX in the visible text: {info['raw_tex'][:3]}")
        bad = [i["src"] for i in info["images"] if not i["ok"]]
        if bad:
            case.failures.append(f"{len(bad)} of {len(info['images'])} images did not load: "
                                 f"{bad[:3]}")
        if (book / f"{docname}.ipynb").exists():
            case.failures += check_launch_links(info["links"], config, docname)
    case.seconds = time.perf_counter() - start
    return case, info


def check_launch_links(links: list[str], config: dict, docname: str) -> list[str]:
    failures = []
    want = colab_link(config, docname)
    colab = [u for u in links if u.startswith(config["launch_buttons"]["colab_url"])]
    if want not in colab:
        failures.append(f"no Colab launch link {want} (found {colab[:2]})")
    if other := [u for u in colab if u != want]:
        failures.append(f"Colab links to something else: {other[:2]}")
    url = config["repository"]["url"].rstrip("/")
    if url not in [u.rstrip("/") for u in links]:
        failures.append(f"no repository button linking to {url}")
    if not any(u.startswith(f"{url}/issues") for u in links):
        failures.append(f"no issues button linking to {url}/issues")
    return failures


def check_toc(html: Path, root_info: dict, docs: list[str]) -> Case:
    case = Case("table of contents")
    linked = {html_docname(html, u) for u in root_info.get("toc", [])}
    for doc in docs:
        if not (html / f"{doc}.html").exists():
            case.failures.append(f"{doc} (in _toc.yml) was not built: no {doc}.html")
        elif doc != docs[0] and doc not in linked:
            case.failures.append(f"the root page's table of contents does not link to {doc}")
    return case


def write_junit(cases: list[Case], path: Path) -> None:
    failed = sum(1 for c in cases if c.failures)
    suite = ET.Element("testsuite", name="browser", tests=str(len(cases)),
                       failures=str(failed), errors="0", skipped="0",
                       time=f"{sum(c.seconds for c in cases):.1f}")
    for c in cases:
        tc = ET.SubElement(suite, "testcase", classname="browser", name=c.name,
                           time=f"{c.seconds:.2f}")
        if c.failures:
            ET.SubElement(tc, "failure", message=c.failures[0][:200]).text = "\n".join(c.failures)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("html", type=Path, help="the built HTML folder (…/_build/html)")
    parser.add_argument("--book", type=Path,
                        help="the book's source folder with _config.yml and _toc.yml "
                             "(default: two levels above HTML)")
    parser.add_argument("--chromium", default=os.environ.get("CHROMIUM"),
                        help="the Chromium (or Chrome) executable (default: $CHROMIUM, "
                             "then chromium on PATH)")
    parser.add_argument("--screenshots", type=Path, help="folder for full-page screenshots")
    parser.add_argument("--junit", type=Path, help="write the results as JUnit XML")
    args = parser.parse_args()
    html = args.html.resolve()
    book = (args.book or html.parents[1]).resolve()
    chromium = args.chromium or shutil.which("chromium") or shutil.which("google-chrome")
    if not (html / "index.html").exists():
        sys.exit(f"{html} has no index.html: build the book first")
    if not chromium:
        sys.exit("no Chromium: pass --chromium or set CHROMIUM (Debian: apt-get install chromium)")
    config, docs = read_book(book)

    from playwright.sync_api import sync_playwright

    skip = {"_static", "_sources", "_images", "reports", "jupyter_execute"}
    pages = sorted(p for p in html.rglob("*.html") if not skip & set(p.relative_to(html).parts))
    blocked: list[str] = []
    cases: list[Case] = []
    known: set[str] = set()
    if args.screenshots:
        shutil.rmtree(args.screenshots, ignore_errors=True)
    profile = tempfile.mkdtemp(prefix="browser-check-")  # a fresh --user-data-dir
    print(f"browser check: {len(pages)} pages of {html} in {chromium}", flush=True)
    try:
        with sync_playwright() as p:
            context = p.chromium.launch_persistent_context(
                profile, executable_path=chromium, headless=True, args=CHROMIUM_FLAGS,
                offline=True, viewport={"width": 1280, "height": 900}, device_scale_factor=1)

            def route(r):
                if urlsplit(r.request.url).scheme in LOCAL_SCHEMES:
                    r.continue_()
                else:
                    blocked.append(r.request.url)
                    r.abort("internetdisconnected")

            context.route("**/*", route)
            root_info: dict = {}
            for page in pages:
                docname = page.relative_to(html).with_suffix("").as_posix()
                shot = (args.screenshots / f"{docname.replace('/', '__')}.png"
                        if args.screenshots and docname in docs else None)
                before = len(blocked)
                case, info = check_page(context, html, page, config, book, shot)
                case.failures += [f"tried to fetch from the network: {u[:160]}"
                                  for u in blocked[before:]]
                if docname == docs[0]:
                    root_info = info
                cases.append(case)
                status = "ok" if not case.failures else "FAIL"
                what = ("redirect" if info.get("redirect") else
                        f"{info.get('math', 0):4d} formulas {len(info.get('images', [])):3d} "
                        "images")
                print(f"  {status:4} {docname:<36} {what:<24} {case.seconds:5.1f} s",
                      flush=True)
                for f in case.failures:
                    print(f"         - {f[:400]}", flush=True)
                known.update(k for k in KNOWN_ERRORS for e in info.get("known", []) if k in e)
            context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    toc = check_toc(html, root_info, docs)
    cases.append(toc)
    print(f"  {'ok' if not toc.failures else 'FAIL':4} table of contents "
          f"({len(docs)} files in _toc.yml)", flush=True)
    for f in toc.failures:
        print(f"         - {f}", flush=True)
    for k in sorted(known):
        print(f"  note: known console error ignored: {k!r}: {KNOWN_ERRORS[k]}", flush=True)
    if args.junit:
        write_junit(cases, args.junit)
    failed = [c.name for c in cases if c.failures]
    print(f"browser check: {len(cases) - len(failed)} passed, {len(failed)} failed"
          + (f" ({', '.join(failed)})" if failed else "")
          + (f"; screenshots in {args.screenshots}" if args.screenshots else ""), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
