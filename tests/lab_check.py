"""Run a chapter in JupyterLab, in headless Chromium, and move a slider of its live latent sweep.

    .venv/bin/python tests/lab_check.py [NOTEBOOK ...] --chromium /usr/bin/chromium \
        --screenshots _build/screenshots --junit _build/junit-lab.xml

``tests/run.py test`` runs it after the book's browser test on the self-check fixture
(``tests/fixtures/lab_sweep.ipynb``) and chapter 2; ``tests/run.py lab [NOTEBOOK]`` runs it
alone. For every notebook it checks what a reader of the live chapter sees:

1. a copy of the notebook with its smoke parameters (``notebooks/params/smoke/<name>.yaml``, or
   ``<name>.yaml`` beside it, or ``--params``) put after its ``parameters`` cell the way
   papermill does, and ``results_dir``/``checkpoint_dir`` pointing into a temporary folder
   (or ``--checkpoint-dir``), is opened in a JupyterLab started from this Python environment
   (its own port, token, settings and runtime folders, so nothing of the user's is read);
2. Run > Run All Cells (the menu a reader uses); the check waits until no cell is queued and the
   kernel is idle, then saves the notebook: no saved cell may hold an error output, and no
   rendered output may show a traceback or a widget that could not be displayed;
3. the interactive latent sweep (``entropic_ae.plotting.interactive_sweep``, found by its CSS
   class ``entropic-sweep``, else by its layout: a widget box with a slider and an image) is
   scrolled into view; its first slider's handle is dragged with the mouse across the track;
   the slider's value, its readout and the decoded image (the bytes of the ``<img>``, not only
   its ``blob:`` address) must change;
4. no JavaScript error (console error or uncaught exception) beyond ``KNOWN_ERRORS``, and no
   request for anything outside this JupyterLab.

Screenshots of the page before and after the slider moved go to ``--screenshots``
(``lab__<name>__before.png``, ``lab__<name>__after.png``). Results are written as JUnit XML, one
test case per notebook; the exit code is 1 when any check fails. JupyterLab and every process
it started (kernels, and the kernels' Dask workers) are stopped at the end, also on failure.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, urlsplit

import yaml
from browser_check import CHROMIUM_FLAGS, Case

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "lab_sweep.ipynb"
CHAPTER = ROOT / "notebooks" / "02_compactifier.ipynb"
SMOKE = ROOT / "notebooks" / "params" / "smoke"
SWEEP_CLASS = "entropic-sweep"  # plotting.interactive_sweep adds it to the sweep's widget
# JupyterLab user settings for the check (JUPYTERLAB_SETTINGS_DIR is a fresh folder): no news
# toast over the notebook, no request to the internet for news or updates; every cell in the
# page (JupyterLab 4's default windowing, pinned: with "full" windowing, cells outside the view
# leave the page, and a queued cell there would not be seen).
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
        {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings":
        {"windowingMode": "contentVisibility"},
}
# The book's browser-test flags; host names still resolve to nothing, but 127.0.0.1 (where
# JupyterLab listens) is reachable: the rule "MAP *" also catches IP addresses.
FLAGS = [f"{f}, EXCLUDE 127.0.0.1" if f.startswith("--host-resolver-rules=") else f
         for f in CHROMIUM_FLAGS]
# Console errors that are known, harmless and not ours to fix, each with the reason. Anything
# else fails the notebook.
KNOWN_ERRORS: dict[str, str] = {}

# The notebook in the current tab of the main area (hidden tabs stay in the page).
NOTEBOOK = "document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook')"

# Where the run stands: the current tab's name, code cells queued ([*]) and executed, the
# kernel's status, a dialog. (The toolbar's execution indicator says "idle" while the notebook
# is still loading, before there is a kernel; the status bar's kernel item does not.)
RUN_STATE = """() => {
  const nb = NOTEBOOK;
  const prompts = nb ? [...nb.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
    .map(p => p.textContent.replace(/\\s/g, '')) : [];
  const tab = document.querySelector(
    '.lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current .lm-TabBar-tabLabel');
  const dialog = document.querySelector('.jp-Dialog');
  // the status bar's kernel item, "Python 3 (ipykernel) | Idle" ("No Kernel | ..." at first)
  const kernel = [...document.querySelectorAll('.jp-StatusBar-TextItem')]
    .map(e => e.textContent.trim()).find(t => / \\| /.test(t));
  return {
    tab: tab ? tab.textContent.trim() : null,
    cells: prompts.length,
    queued: prompts.filter(p => p === '[*]:').length,
    executed: prompts.filter(p => /^\\[\\d+\\]:$/.test(p)).length,
    kernel: kernel || null,
    idle: !!kernel && !kernel.startsWith('No Kernel') && / \\| Idle$/.test(kernel),
    dialog: dialog ? dialog.innerText.replace(/\\s+/g, ' ').trim().slice(0, 300) : null,
  };
}""".replace("NOTEBOOK", NOTEBOOK)

# What the reader sees as an error: tracebacks and widgets that could not be displayed.
SHOWN_ERRORS = """() => {
  const out = [];
  for (const o of NOTEBOOK.querySelectorAll('.jp-OutputArea-output')) {
    const text = o.innerText || '';
    if (/Traceback \\(most recent call last\\)|Error displaying widget|Failed to display/
        .test(text)) out.push(text.replace(/\\s+/g, ' ').trim().slice(0, 300));
  }
  return out;
}""".replace("NOTEBOOK", NOTEBOOK)

# The sweep: the widget with the class SWEEP_CLASS, else the first widget box holding a slider
# and an image. Marks it with data-lab-check="sweep" and says how it was found.
FIND_SWEEP = """(cls) => {
  const nb = NOTEBOOK;
  const mark = (el, how) => { el.setAttribute('data-lab-check', 'sweep'); return how; };
  const own = nb.querySelector('.' + cls);
  if (own && own.querySelector('.widget-slider .noUi-handle') && own.querySelector('img'))
    return mark(own, 'class');
  for (const box of nb.querySelectorAll('.widget-hbox')) {
    if (box.querySelector('.widget-slider .noUi-handle') && box.querySelector('img.widget-image'))
      return mark(box, 'layout');
  }
  return null;
}""".replace("NOTEBOOK", NOTEBOOK)

# The Log Console's entries of level error or critical: the last line of each (the exception).
LOGGED = """() => [...document.querySelectorAll('.jp-LogConsolePanel .jp-OutputArea-child')]
  .filter(e => ['error', 'critical'].includes(
    (e.querySelector('[data-log-level]') || {dataset: {}}).dataset.logLevel))
  .map(e => (e.querySelector('.jp-OutputArea-output') || e).innerText.trim().split('\\n')
    .filter(l => l.trim()).pop() || '')"""

# Is the sweep's first slider handle and its image inside the notebook's visible area? If not,
# scroll it to the middle. (Cells outside the view are not rendered, `content-visibility`, so
# the layout above the sweep can still change after a scroll.)
IN_VIEW = """(el) => {
  const outer = el.closest('.jp-WindowedPanel-outer') || document.documentElement;
  const o = outer.getBoundingClientRect();
  const parts = [el.querySelector('.widget-slider .noUi-handle'), el.querySelector('img')];
  const inside = parts.every(p => {
    const r = p && p.getBoundingClientRect();
    return r && r.width > 0 && r.height > 0 && r.top >= o.top && r.bottom <= o.bottom;
  });
  if (!inside) el.scrollIntoView({block: 'center'});
  return inside;
}"""

# SHA-256 of the bytes the sweep's <img> shows (null while its blob: address is being replaced).
IMAGE_DIGEST = """async (img) => {
  if (!img.complete || !img.naturalWidth) return null;
  try {
    const bytes = await (await fetch(img.src)).arrayBuffer();
    const hash = await crypto.subtle.digest('SHA-256', bytes);
    return [...new Uint8Array(hash)].map(b => b.toString(16).padStart(2, '0')).join('');
  } catch (e) { return null; }
}"""


class CheckFailed(Exception):
    """A check of one notebook failed; the message says what was expected."""


def smoke_parameters(notebook: Path) -> Path | None:
    """The notebook's smoke parameters: ``notebooks/params/smoke/<name>.yaml`` for a chapter,
    ``<name>.yaml`` beside any other notebook (the fixture); None when there is none."""
    for candidate in (SMOKE / f"{notebook.stem}.yaml", notebook.with_suffix(".yaml")):
        if candidate.exists():
            return candidate
    return None


def parameter_names(nb: dict) -> set[str]:
    """The names assigned in the notebook's cell tagged ``parameters``."""
    for cell in nb["cells"]:
        if cell["cell_type"] == "code" and "parameters" in cell["metadata"].get("tags", []):
            tree = ast.parse("".join(cell["source"]))
            return {t.id for node in tree.body if isinstance(node, ast.Assign)
                    for t in node.targets if isinstance(t, ast.Name)}
    return set()


def prepare(notebook: Path, params: Path | None, folder: Path, scratch: Path,
            checkpoint_dir: Path | None) -> Path:
    """Write ``folder/<name>.ipynb``: the notebook without outputs, its parameters from
    ``params`` (YAML) injected after its ``parameters`` cell as papermill injects them (a cell
    tagged ``injected-parameters``), ``results_dir`` and ``checkpoint_dir`` (where it has them)
    under ``scratch``, or ``checkpoint_dir`` when given."""
    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    nb = load_notebook_node(str(notebook))
    values = (yaml.safe_load(params.read_text()) or {}) if params else {}
    if not isinstance(values, dict):
        raise CheckFailed(f"{params}: expected a mapping of parameter names to values")
    names = parameter_names(nb)
    if unknown := sorted(set(values) - names):
        raise CheckFailed(f"{params} sets {unknown}, which are not parameters of {notebook.name}")
    folders = {"results_dir": scratch / "results",
               "checkpoint_dir": checkpoint_dir or scratch / "checkpoints"}
    values.update({k: str(v) for k, v in folders.items() if k in names})
    if values:
        if not names:
            raise CheckFailed(f"{notebook.name} has no cell tagged 'parameters'")
        nb = parameterize_notebook(nb, values)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    target = folder / notebook.name
    nbformat.write(nb, str(target))
    return target


class Lab:
    """A JupyterLab server of this Python environment on a free port of 127.0.0.1, serving
    ``root``, with its own token and its own (empty) configuration, data, runtime, settings and
    workspace folders under ``home``. ``stop`` shuts every kernel down and ends the server and
    whatever it started (kernels run in sessions of their own, so a process group is not
    enough)."""

    def __init__(self, root: Path, home: Path, jupyter: Path, timeout: float = 120) -> None:
        self.root, self.home, self.token = root, home, secrets.token_hex(16)
        self.log = home / "jupyterlab.log"
        settings = home / "settings"
        for name, values in LAB_SETTINGS.items():
            (settings / name).parent.mkdir(parents=True, exist_ok=True)
            (settings / name).write_text(json.dumps(values))
        env = {**os.environ,
               **{k: str(home / v) for k, v in (
                   ("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"),
                   ("JUPYTER_RUNTIME_DIR", "runtime"), ("JUPYTERLAB_SETTINGS_DIR", "settings"),
                   ("JUPYTERLAB_WORKSPACES_DIR", "workspaces"))}}
        env.pop("JUPYTER_PORT", None)
        cmd = [str(jupyter), "lab", "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1",
               "--ServerApp.port=0", f"--IdentityProvider.token={self.token}",
               f"--ServerApp.root_dir={root}", "--ServerApp.terminals_enabled=False",
               "--LabApp.extension_manager=readonly"]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            self.url = self._wait_until_serving(home / "runtime", timeout)
        except BaseException:  # it did not come up (or we were interrupted): leave nothing
            self.url = ""
            self.stop()
            raise

    def _wait_until_serving(self, runtime: Path, timeout: float) -> str:
        """The server's address, read from the file it writes into its runtime folder once it
        listens (``jpserver-<pid>.json``), after its REST API answered."""
        deadline = time.monotonic() + timeout
        info = runtime / f"jpserver-{self.process.pid}.json"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise CheckFailed(f"JupyterLab exited with code {self.process.returncode} while "
                                  f"starting:\n{self.log_tail()}")
            if info.exists():
                try:
                    url = json.loads(info.read_text())["url"].rstrip("/")
                    self.api("GET", "api/status", base=url)
                    return url
                except (ValueError, KeyError, OSError):
                    pass  # the file is being written, or the server is not answering yet
            time.sleep(0.2)
        raise CheckFailed(f"JupyterLab did not start serving within {timeout:.0f} s:\n"
                          f"{self.log_tail()}")

    def api(self, method: str, path: str, base: str | None = None, timeout: float = 10) -> object:
        request = urllib.request.Request(f"{base or self.url}/{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"},
                                         data=b"" if method == "POST" else None)
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
        return json.loads(body) if body else None

    def page(self, notebook: Path) -> str:
        """The address of ``notebook`` (under ``root``) in JupyterLab, token included."""
        rel = quote(notebook.relative_to(self.root).as_posix())
        workspace = quote(f"lab-check-{notebook.stem}")  # its own, emptied: only this tab
        return f"{self.url}/lab/workspaces/{workspace}/tree/{rel}?token={self.token}&reset"

    def close(self, notebook: Path) -> None:
        """Shut down the kernel of ``notebook`` (its sessions), so that the next notebook runs
        alone; kill what the kernel started (Dask workers) if it outlives it by 10 s."""
        rel = notebook.relative_to(self.root).as_posix()
        started = self.descendants()
        sessions = self.api("GET", "api/sessions")
        for session in sessions if isinstance(sessions, list) else []:
            if session.get("path") == rel:
                self.api("DELETE", f"api/sessions/{session['id']}", timeout=30)
        reap(started, 10)

    def descendants(self) -> list:
        """The processes the server started, recursively (kernels, their workers)."""
        try:
            import psutil  # a dependency of dask.distributed
            return psutil.Process(self.process.pid).children(recursive=True)
        except Exception:  # psutil missing, or the server gone
            return []

    def log_tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join("    " + line for line in text.splitlines()[-lines:])

    def stop(self) -> None:
        """Shut the kernels down through the REST API, then the server; kill the server and
        whatever it started if they are not gone 15 s later."""
        started = self.descendants()
        try:
            if self.url:  # else it never served: it is ended below
                kernels = self.api("GET", "api/kernels")
                for kernel in kernels if isinstance(kernels, list) else []:
                    self.api("DELETE", f"api/kernels/{kernel['id']}", timeout=30)
                self.api("POST", "api/shutdown")
        except (OSError, ValueError) as exc:
            print(f"  note: JupyterLab did not shut down cleanly ({exc}); killing it", flush=True)
        try:
            self.process.wait(timeout=15 if self.url else 0.1)
        except subprocess.TimeoutExpired:
            if os.name == "posix":  # its own session (start_new_session): the whole group
                os.killpg(self.process.pid, signal.SIGKILL)
            else:
                self.process.kill()
            self.process.wait()
        reap(started, 5)


def reap(processes: list, timeout: float) -> None:
    """Wait up to ``timeout`` seconds for ``processes`` (psutil) to end, then kill the rest."""
    if not processes:
        return
    import psutil

    _, alive = psutil.wait_procs(processes, timeout=timeout)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:  # it ended meanwhile
            pass


def wait_for(page, description: str, condition: Callable[[], object], timeout: float,
             interval: float = 0.25) -> object:
    """Poll ``condition`` until it returns something truthy, which is returned; raise
    ``CheckFailed`` naming ``description`` after ``timeout`` seconds. Between polls the page's
    events keep flowing (Playwright's sync API handles them only inside its own calls)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise CheckFailed(f"timed out after {timeout:.0f} s waiting for {description}")
        page.wait_for_timeout(interval * 1000)


def run_all(page, name: str, timeout: float) -> dict:
    """Wait for the kernel, click Run > Run All Cells, wait until no cell is queued and the
    kernel is idle. Returns the last state (``RUN_STATE``)."""
    def state(need: Callable[[dict], bool]) -> Callable[[], dict | None]:
        def check() -> dict | None:
            s = page.evaluate(RUN_STATE)
            if s["dialog"]:
                raise CheckFailed(f"JupyterLab shows a dialog: {s['dialog']}")
            return s if need(s) else None
        return check

    start = time.perf_counter()
    wait_for(page, f"{name} to open with its kernel started (the status bar showing "
             "'<kernel> | Idle')",
             state(lambda s: s["tab"] == name and s["cells"] and s["idle"]), 120)
    print(f"         kernel ready in {time.perf_counter() - start:.1f} s", flush=True)
    start = time.perf_counter()
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    # Run All marks every code cell queued ([*]) at once, and the copy starts with no execution
    # counts, so a cell that is queued or numbered means that the run has started.
    wait_for(page, "Run All Cells to start (a cell queued or executed)",
             state(lambda s: s["queued"] or s["executed"]), 30)
    done = wait_for(page, f"every cell to run (Run All Cells within {timeout:.0f} s)",
                    state(lambda s: not s["queued"] and s["idle"]), timeout, 1.0)
    print(f"         Run All Cells: {done['executed']} of {done['cells']} code cells ran in "
          f"{time.perf_counter() - start:.1f} s", flush=True)
    return done


def saved_errors(page, saved: Path, timeout: float = 60) -> list[str]:
    """Save the notebook (the keyboard shortcut) and list the error outputs it holds."""
    page.keyboard.press("ControlOrMeta+s")

    def executed() -> dict | None:
        try:
            nb = json.loads(saved.read_text())
        except ValueError:
            return None  # being written
        cells = [c for c in nb["cells"] if c["cell_type"] == "code"]
        return nb if any(c.get("execution_count") for c in cells) else None

    nb = wait_for(page, f"JupyterLab to save the executed notebook to {saved.name}", executed,
                  timeout)
    errors = []
    for i, cell in enumerate(nb["cells"], 1):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                errors.append(f"cell {i} (In [{cell.get('execution_count')}]) raised "
                              f"{out.get('ename')}: {out.get('evalue', '')[:300]}")
    return errors


def logged_errors(page, timeout: float = 30) -> list[str]:
    """Errors the kernel printed outside the cells (a widget callback's traceback goes there):
    when the status bar shows the Log Console's message count, open the Log Console and list
    its entries of level error or critical (the last line of each)."""
    item = page.locator(".jp-LogConsoleStatusItem")
    if not item.count() or not item.inner_text().strip():
        return []
    item.click()
    wait_for(page, "the Log Console to show its messages",
             lambda: page.locator(".jp-LogConsolePanel [data-log-level]").count(), timeout)
    return counted([f"the kernel logged an error outside the cells (Log Console): {e}"
                    for e in page.evaluate(LOGGED)])


def counted(messages: list[str]) -> list[str]:
    """Each message once, in order, with the number of times it came when more than once."""
    return [m + (f" ({messages.count(m)} times)" if messages.count(m) > 1 else "")
            for m in dict.fromkeys(messages)]


def move_slider(page, sweep, timeout: float) -> str:
    """Drag the sweep's first slider handle across its track (to 85 % of it, or to 15 % if it
    starts in the right half); check that the value, the readout and the image's bytes change.
    Returns a line describing the move."""
    slider = sweep.locator(".widget-slider").first
    handle, track = slider.locator(".noUi-handle"), slider.locator(".noUi-base")
    readout, image = slider.locator(".widget-readout"), sweep.locator("img").first
    label = slider.locator(".widget-label").text_content().strip()
    value, text = handle.get_attribute("aria-valuenow"), readout.text_content()
    digest = wait_for(page, "the sweep's image to load", lambda: image.evaluate(IMAGE_DIGEST),
                      timeout)
    low, high = (float(handle.get_attribute(a)) for a in ("aria-valuemin", "aria-valuemax"))
    start = (float(value) - low) / (high - low) if high > low else 0.0
    box, bar = handle.bounding_box(), track.bounding_box()
    if box is None or bar is None:
        raise CheckFailed(f"slider {label} is not visible")
    x0, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    x1 = bar["x"] + bar["width"] * (0.15 if start > 0.5 else 0.85)
    page.mouse.move(x0, y)
    page.mouse.down()
    page.mouse.move(x1, y, steps=12)
    page.mouse.up()
    moved = wait_for(page, f"slider {label} to take a new value (it was {value})",
                     lambda: (v := handle.get_attribute("aria-valuenow")) != value and v, timeout)
    wait_for(page, f"the readout of {label} to change from {text}",
             lambda: readout.text_content() != text, timeout)
    wait_for(page, f"the decoded image to change after {label} moved from {value} to {moved}",
             lambda: (d := image.evaluate(IMAGE_DIGEST)) and d != digest, timeout)
    wait_for(page, "the kernel to be idle after the slider moved",
             lambda: page.evaluate(RUN_STATE)["idle"], timeout)
    return f"{label}: {value} -> {handle.get_attribute('aria-valuenow')}, image changed"


def drive(page, lab: Lab, copy: Path, shots: Path | None, timeout: float) -> list[str]:
    """Open ``copy``, run all its cells, find the sweep and move its slider (screenshots before
    and after). Returns the failures found on the way; raises ``CheckFailed`` on the first one
    that stops the check."""
    page.goto(lab.page(copy), wait_until="load", timeout=120000)
    run_all(page, copy.name, timeout)
    failures = saved_errors(page, copy)
    failures += [f"an output shows an error: {e}" for e in page.evaluate(SHOWN_ERRORS)]
    if failures:
        return failures
    how = wait_for(page, f"the interactive sweep (a widget with the class {SWEEP_CLASS}, or a "
                   "box with a slider and an image)",
                   lambda: page.evaluate(FIND_SWEEP, SWEEP_CLASS), 60)
    if how != "class":
        print(f"  note: the sweep has no CSS class {SWEEP_CLASS!r}; found by its layout",
              flush=True)
    sweep = page.locator("[data-lab-check=sweep]")
    bring_into_view(page, sweep)
    screenshot(page, shots, copy.stem, "before")
    print(f"         {move_slider(page, sweep, 30)}", flush=True)
    screenshot(page, shots, copy.stem, "after")
    return failures


def check_notebook(context, lab: Lab, copy: Path, shots: Path | None,
                   timeout: float) -> tuple[Case, list[str]]:
    """Check ``copy`` in a new page (``drive``), with the page's JavaScript errors, requests
    that leave JupyterLab and the kernel's errors outside the cells. Returns the test case and
    the known console errors that were ignored."""
    case = Case(copy.stem)
    start = time.perf_counter()
    errors: list[str] = []
    known: list[str] = []
    outside: list[str] = []
    local = urlsplit(lab.url).netloc

    def error(text: str) -> None:
        (known if any(k in text for k in KNOWN_ERRORS) else errors).append(text)

    def request(r) -> None:  # host names resolve to nothing (FLAGS): these requests fail
        parts = urlsplit(r.url)
        if parts.scheme not in {"data", "blob", "about"} and parts.netloc != local:
            outside.append(r.url)

    page = context.new_page()
    page.on("console", lambda m: error(f"console {m.type}: {m.text}") if m.type == "error"
            else None)
    page.on("pageerror", lambda e: error(f"uncaught exception: {e}"))
    page.on("request", request)
    try:
        for step in (lambda: drive(page, lab, copy, shots, timeout), lambda: logged_errors(page)):
            try:
                case.failures += step()
            except CheckFailed as exc:
                case.failures.append(str(exc))
            except Exception as exc:  # Playwright: a page that cannot be driven fails
                case.failures.append(f"could not drive JupyterLab: {type(exc).__name__}: {exc}")
        if case.failures:
            screenshot(page, shots, copy.stem, "failed")
    finally:
        page.close()
        try:
            lab.close(copy)
        except (OSError, ValueError) as exc:
            print(f"  note: could not shut down the kernel of {copy.name}: {exc}", flush=True)
    case.failures += counted(errors + [f"tried to fetch from outside JupyterLab: {u[:160]}"
                                       for u in outside])
    case.seconds = time.perf_counter() - start
    return case, known


def bring_into_view(page, sweep, timeout: float = 30) -> None:
    """Scroll until the sweep's first slider and its image are inside the notebook's view, in
    two polls running (a layout that settled)."""
    seen = [False]

    def settled() -> bool:
        inside = sweep.evaluate(IN_VIEW)
        done, seen[0] = inside and seen[0], inside
        return done

    wait_for(page, "the sweep's slider and image to stay inside the view", settled, timeout)


def screenshot(page, shots: Path | None, stem: str, when: str) -> None:
    """The page as it is now, into ``shots``."""
    if shots is None:
        return
    try:
        page.screenshot(path=str(shots / f"lab__{stem}__{when}.png"))
    except Exception as exc:  # a screenshot that fails is reported, and fails nothing
        print(f"  note: no {when} screenshot of {stem}: {exc}", flush=True)


def write_junit(cases: list[Case], path: Path) -> None:
    failed = sum(1 for c in cases if c.failures)
    suite = ET.Element("testsuite", name="lab", tests=str(len(cases)), failures=str(failed),
                       errors="0", skipped="0", time=f"{sum(c.seconds for c in cases):.1f}")
    for c in cases:
        tc = ET.SubElement(suite, "testcase", classname="lab", name=c.name,
                           time=f"{c.seconds:.2f}")
        if c.failures:
            ET.SubElement(tc, "failure", message=c.failures[0][:200]).text = "\n".join(c.failures)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)


@contextmanager
def browser(chromium: str) -> Iterator[object]:
    """A headless Chromium context with a fresh profile (the book's browser-test flags)."""
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="lab-check-chromium-")
    try:
        with sync_playwright() as p:
            context = p.chromium.launch_persistent_context(
                profile, executable_path=chromium, headless=True, args=FLAGS,
                viewport={"width": 1280, "height": 900}, device_scale_factor=1)
            try:
                yield context
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def check_all(notebooks: list[Path], args: argparse.Namespace, chromium: str,
              home: Path) -> tuple[list[Case], set[str]]:
    """Prepare the copies, start JupyterLab and Chromium, check each notebook in turn; stop
    JupyterLab (and its kernels) whatever happens. Returns the cases and the known console
    errors that were ignored."""
    cases: list[Case] = []
    known: set[str] = set()
    (home / "root").mkdir()
    copies = {}
    for nb in notebooks:
        try:
            copies[nb] = prepare(nb, args.params or smoke_parameters(nb), home / "root",
                                 home / "scratch" / nb.stem,
                                 args.checkpoint_dir and args.checkpoint_dir.resolve())
        except CheckFailed as exc:
            cases.append(Case(nb.stem, [str(exc)]))
    if not copies:
        return cases, known
    start = time.perf_counter()
    try:
        lab = Lab(home / "root", home, args.jupyter.absolute())
    except CheckFailed as exc:  # JupyterLab did not start: every notebook fails
        return cases + [Case(nb.stem, [str(exc)]) for nb in copies], known
    print(f"  JupyterLab serving in {time.perf_counter() - start:.1f} s at {lab.url}", flush=True)
    try:
        with browser(chromium) as context:
            for nb, copy in copies.items():
                case, ignored = check_notebook(context, lab, copy, args.screenshots,
                                               args.timeout)
                cases.append(case)
                known.update(k for k in KNOWN_ERRORS for e in ignored if k in e)
                print(f"  {'ok' if not case.failures else 'FAIL':4} {nb.name:<36} "
                      f"{case.seconds:6.1f} s", flush=True)
                for f in case.failures:
                    print(f"         - {f[:600]}", flush=True)
    except Exception as exc:  # Chromium did not start, or Playwright broke down
        done = {c.name for c in cases}
        cases += [Case(nb.stem, [f"could not run Chromium: {type(exc).__name__}: {exc}"])
                  for nb in copies if nb.stem not in done]
        print(f"  FAIL could not run Chromium ({chromium}): {exc}", flush=True)
    finally:
        start = time.perf_counter()
        lab.stop()
        print(f"  JupyterLab stopped in {time.perf_counter() - start:.1f} s", flush=True)
    return cases, known


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help=f"notebooks to check (default: the fixture "
                             f"{FIXTURE.relative_to(ROOT)} and {CHAPTER.relative_to(ROOT)})")
    parser.add_argument("--params", type=Path,
                        help="YAML parameters for every notebook (default: each one's smoke "
                             "parameters, see smoke_parameters)")
    parser.add_argument("--checkpoint-dir", type=Path,
                        help="the chapters' run cache (default: a fresh temporary folder, so "
                             "they train; tests/run.py passes the smoke runs' cache)")
    parser.add_argument("--chromium", default=os.environ.get("CHROMIUM"),
                        help="the Chromium (or Chrome) executable (default: $CHROMIUM, then "
                             "chromium on PATH)")
    parser.add_argument("--jupyter", type=Path, default=Path(sys.executable).with_name("jupyter"),
                        help="the jupyter command of the environment (default: beside python)")
    parser.add_argument("--timeout", type=float, default=300,
                        help="seconds Run All Cells may take per notebook (default 300)")
    parser.add_argument("--screenshots", type=Path, help="folder for the screenshots")
    parser.add_argument("--junit", type=Path, help="write the results as JUnit XML")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    notebooks = [p.resolve() for p in args.notebooks] or [FIXTURE, CHAPTER]
    chromium = args.chromium or shutil.which("chromium") or shutil.which("google-chrome")
    if not chromium:
        sys.exit("no Chromium: pass --chromium or set CHROMIUM (Debian: apt-get install chromium)")
    if missing := [str(p) for p in notebooks if not p.is_file()]:
        sys.exit(f"no such notebook: {', '.join(missing)}")
    if args.screenshots:
        args.screenshots.mkdir(parents=True, exist_ok=True)
        for old in args.screenshots.glob("lab__*.png"):
            old.unlink()
    print(f"lab check: {len(notebooks)} notebooks in JupyterLab ({args.jupyter}) and "
          f"{chromium}", flush=True)
    home = Path(tempfile.mkdtemp(prefix="lab-check-"))
    try:
        cases, known = check_all(notebooks, args, chromium, home)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    for k in sorted(known):
        print(f"  note: known console error ignored: {k!r}: {KNOWN_ERRORS[k]}", flush=True)
    if args.junit:
        write_junit(cases, args.junit)
    failed = [c.name for c in cases if c.failures]
    print(f"lab check: {len(cases) - len(failed)} passed, {len(failed)} failed"
          + (f" ({', '.join(failed)})" if failed else "")
          + (f"; screenshots in {args.screenshots}" if args.screenshots else ""), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
