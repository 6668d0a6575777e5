r"""Does the book run on a GPU? ``python -m entropic_ae.gpu_check --out REPORT.json``.

Four parts, each a function returning a dict with ``passed``, ``seconds`` and its details:

1. ``unit`` (:func:`check_unit`): the unit tests marked ``@pytest.mark.device`` run with
   ``ENTROPIC_AE_TEST_DEVICE`` set to the device (their fixture ``test_device`` reads it);
2. ``chapters`` (:func:`check_chapters`): every chapter ``notebooks/NN_*.ipynb`` executed by
   papermill with its smoke parameters and ``-p device DEVICE``, into a work folder, one
   sub-result per chapter with its error (a chapter without a ``device`` parameter is
   skipped, with the reason);
3. ``precision`` (:func:`check_precision`): every system of :data:`entropic_ae.systems.CONV`
   at the paper's full width trained for the same steps from the same weights on the same
   batches in fp32 and with bf16 autocast (:func:`compare_precisions`), and the float64 parts
   of the Kozachenko–Leonenko estimator and of the Fréchet distance checked under autocast
   (:func:`check_float64`);
4. ``bench`` (:func:`check_bench`): :func:`entropic_ae.bench.bench` at widths 0.25 and 1,
   images per second per system and width, each measured in a fresh process.

The report (JSON) holds the device, the torch/CUDA/cuDNN versions, each part's result, a table
of images per second and the total wall time; the exit status is 1 when a part failed. With
``--device cuda`` (the default) on a machine without a CUDA GPU it prints one line and exits
0. ``--tiny`` uses sizes a CPU runs in seconds (the unit test ``tests/test_gpu_check.py``
runs every part that way on the CPU), ``--parts`` selects parts, and ``--table REPORT.json``
prints a report's throughput as a Markdown table (for ``book/how_to_run.md``)::

    python -m entropic_ae.gpu_check --out _build/gpu-report.json
    python -m entropic_ae.gpu_check --device cpu --tiny --parts precision bench --out r.json
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import dataclasses
import json
import math
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["DEVICE_ENV", "FULL", "PARTS", "RTOL", "TINY", "Sizes", "chapter_parameters",
           "chapters", "check_bench", "check_chapters", "check_float64", "check_precision",
           "check_unit", "compare_precisions", "device_test_files", "environment", "main",
           "markdown_table", "run_chapter", "run_checks", "training_images"]

#: The environment variable the ``test_device`` fixture of the unit tests reads.
DEVICE_ENV = "ENTROPIC_AE_TEST_DEVICE"
PARTS = ("unit", "chapters", "precision", "bench")
#: Relative tolerance of the bf16-versus-fp32 comparison (see :func:`compare_precisions`).
RTOL = 0.05
#: Tolerance of the float64 checks: relative to max(1, |reference|).
FLOAT64_TOL = 1e-10
#: The issue's time budget for the whole check on one modern GPU.
BUDGET_SECONDS = 480
ROOT = Path(__file__).resolve().parents[1]
NO_GPU = "no CUDA GPU: nothing to check"


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How big each part runs. ``steps`` optimisation steps of ``batch_size`` images over
    ``epochs`` epochs (so ``steps * batch_size / epochs`` training images) per system and
    precision; ``bench_*``: what :func:`check_bench` measures; ``chapter_timeout``: seconds
    per chapter; ``jobs``: chapters executed at once."""

    width: float = 1.0
    latent_dim: int = 16
    steps: int = 200
    batch_size: int = 100
    epochs: int = 4
    systems: tuple[str, ...] | None = None  # None: every system of CONV
    bench_widths: tuple[float, ...] = (0.25, 1.0)
    bench_models: tuple[str, ...] = ("BN-AE", "EAE", "VAE", "RAE-GP")
    bench_batch_size: int = 100
    bench_repeats: int = 5
    chapter_timeout: float = 360.0
    unit_timeout: float = 300.0
    jobs: int = 4

    def __post_init__(self) -> None:
        if self.steps % self.epochs:
            raise ValueError(f"steps ({self.steps}) must be a multiple of epochs "
                             f"({self.epochs})")


#: The GPU sizes (the issue: full width, a few hundred steps, widths 0.25 and 1).
FULL = Sizes()
#: Sizes a 2-core CPU runs in seconds (the unit test of this module).
TINY = Sizes(width=1 / 32, steps=12, batch_size=16, epochs=3, bench_widths=(1 / 32,),
             bench_models=("AE",), bench_batch_size=8, bench_repeats=2, chapter_timeout=120.0,
             jobs=2)


def _seconds_since(start: float) -> float:
    return round(time.perf_counter() - start, 3)


def _error(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"[:2000]


def _guarded(name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``fn()``, or a failed result holding the exception (one part never stops the others)."""
    start = time.perf_counter()
    try:
        result = fn()
    except Exception as err:  # noqa: BLE001 - reported in the part's result
        result = {"passed": False, "error": _error(err)}
    result.setdefault("seconds", _seconds_since(start))
    print(f"{name}: {'passed' if result['passed'] else 'FAILED'} in {result['seconds']:.1f} s",
          flush=True)
    return result


def environment(device: str | torch.device) -> dict[str, Any]:
    """The machine: device name, torch, CUDA and cuDNN versions, bf16 support, memory."""
    dev = torch.device(device)
    info: dict[str, Any] = {"device": str(dev), "torch": torch.__version__,
                            "cuda": torch.version.cuda, "python": platform.python_version(),
                            "platform": platform.platform(), "cpu_count": os.cpu_count()}
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        info.update(name=props.name, capability=f"{props.major}.{props.minor}",
                    memory_gib=round(props.total_memory / 2**30, 1),
                    cudnn=torch.backends.cudnn.version(),
                    bf16_supported=torch.cuda.is_bf16_supported(),
                    tf32_convolutions=torch.backends.cudnn.allow_tf32,
                    tf32_matmul=torch.backends.cuda.matmul.allow_tf32)
    else:
        info["name"] = platform.processor() or platform.machine()
    return info


# --- Part 1: the unit tests marked `device` ------------------------------------------------------


def _junit_counts(path: Path) -> dict[str, Any]:
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root)
    counts = {k: sum(int(s.get(k, 0)) for s in suites)
              for k in ("tests", "failures", "errors", "skipped")}
    counts["skip_reasons"] = sorted({el.get("message", "") for el in root.iter("skipped")})
    counts["failed_tests"] = [f"{case.get('classname')}::{case.get('name')}"
                              for case in root.iter("testcase")
                              if case.find("failure") is not None
                              or case.find("error") is not None]
    return counts


def device_test_files(root: Path = ROOT) -> list[Path]:
    """The test files of ``root/tests`` that mark tests ``device`` (only these are collected,
    so a machine that lacks what other test files import, such as papermill, still runs
    them)."""
    marked = re.compile(r"^(pytestmark = |@)pytest\.mark\.device\b", re.MULTILINE)
    return sorted(p for p in (root / "tests").glob("test_*.py") if marked.search(p.read_text()))


def check_unit(device: str, paths: Sequence[str | Path] | None = None, timeout: float = 300.0,
               workdir: Path | None = None) -> dict[str, Any]:
    """Part 1: ``pytest -m device PATHS`` (default: :func:`device_test_files`) with
    ``ENTROPIC_AE_TEST_DEVICE=device`` in a subprocess, from the repository root. Passes when
    pytest exits 0 and at least one test ran (was not skipped)."""
    paths = device_test_files() if paths is None else paths
    if not paths:
        return {"passed": False, "error": f"no test file marks tests 'device' in {ROOT}/tests"}
    workdir = Path(workdir or tempfile.mkdtemp(prefix="gpu-check-unit-"))
    workdir.mkdir(parents=True, exist_ok=True)
    junit = workdir / "junit-device.xml"
    cmd = [sys.executable, "-m", "pytest", *map(str, paths), "-m", "device", "-q",
           "-p", "no:cacheprovider", f"--junitxml={junit}"]
    code, output = _run(cmd, ROOT, {DEVICE_ENV: str(device)}, timeout)
    if code is None:
        return {"passed": False, "error": f"pytest ran past {timeout:.0f} s",
                "output": output[-3000:]}
    if not junit.exists():
        return {"passed": False, "error": f"pytest exited {code} without a report",
                "output": output[-3000:]}
    counts = _junit_counts(junit)
    ran = counts["tests"] - counts["skipped"]
    result = {"passed": code == 0 and ran > 0, "exit_code": code, **counts}
    if not result["passed"]:
        result["output"] = output[-3000:]
        if ran == 0:
            result["error"] = "no device test ran"
    return result


def _run(cmd: Sequence[str], cwd: Path, env: dict[str, str], timeout: float
         ) -> tuple[int | None, str]:
    """Run ``cmd`` in its own process group; (exit code, stdout+stderr), code None after
    ``timeout`` seconds (the whole group is killed then, a papermill kernel included)."""
    proc = subprocess.Popen(list(cmd), cwd=cwd, env={**os.environ, **env}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return None, out


# --- Part 2: the chapters ----------------------------------------------------------------------


def chapter_parameters(notebook: str | Path) -> dict[str, Any]:
    """Names and literal values of the cell tagged ``parameters`` (ValueError if none)."""
    nb = json.loads(Path(notebook).read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code" and "parameters" in cell.get("metadata", {}).get(
                "tags", []):
            values = {}
            for node in ast.parse("".join(cell["source"])).body:
                if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
                    try:
                        values[node.targets[0].id] = ast.literal_eval(node.value)
                    except ValueError:
                        values[node.targets[0].id] = None
            return values
    raise ValueError(f"{notebook}: no code cell tagged 'parameters'")


def _papermill_error(output: str) -> str:
    """The most telling lines of a failed papermill run: its exception lines, else the tail."""
    lines = [ln for ln in output.splitlines() if ln.strip()]
    marks = [ln for ln in lines if "Error" in ln or "Exception" in ln]
    return "\n".join((marks or lines)[-8:])[:2000]


def run_chapter(notebook: str | Path, device: str, workdir: str | Path,
                timeout: float = 360.0, smoke: str | Path | None = None) -> dict[str, Any]:
    """Execute one chapter with papermill, its smoke parameters (``smoke``, default
    ``params/smoke/<name>.yaml`` next to it) and ``-p device DEVICE``; results and checkpoints
    go to ``workdir/<name>/``. Skipped when the chapter has no ``device`` parameter."""
    nb = Path(notebook).resolve()
    start = time.perf_counter()
    try:
        params = chapter_parameters(nb)
    except (OSError, ValueError, SyntaxError) as err:
        return {"passed": False, "error": _error(err), "seconds": _seconds_since(start)}
    if "device" not in params:
        return {"passed": True, "skipped": "the chapter has no device parameter",
                "seconds": 0.0}
    folder = Path(workdir).resolve() / nb.stem
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / nb.name
    cmd = [sys.executable, "-m", "papermill", str(nb), str(out), "--cwd", str(nb.parent),
           "-k", "python3", "--no-progress-bar", "-p", "device", str(device)]
    smoke = Path(smoke) if smoke else nb.parent / "params" / "smoke" / f"{nb.stem}.yaml"
    if smoke.exists():
        cmd += ["-f", str(smoke)]
    for name in ("results_dir", "checkpoint_dir"):
        if name in params:
            cmd += ["-p", name, str(folder / name.removesuffix("_dir"))]
    code, output = _run(cmd, nb.parent, {}, timeout)
    result: dict[str, Any] = {"passed": code == 0, "seconds": _seconds_since(start),
                              "executed": str(out), "smoke": str(smoke) if smoke.exists()
                              else None}
    if code is None:
        result["error"] = f"ran past {timeout:.0f} s"
    elif code != 0:
        result["error"] = _papermill_error(output)
    return result


def chapters(root: Path = ROOT) -> list[Path]:
    """The book's chapters, ``notebooks/NN_*.ipynb``."""
    return sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def check_chapters(device: str, notebooks: Sequence[str | Path] | None = None,
                   workdir: str | Path | None = None, timeout: float = 360.0,
                   jobs: int = 4) -> dict[str, Any]:
    """Part 2: :func:`run_chapter` for each notebook (default: every chapter), ``jobs`` at
    once. Passes when no chapter failed and at least one ran."""
    import importlib.util

    notebooks = [Path(p) for p in (chapters() if notebooks is None else notebooks)]
    if not notebooks:
        return {"passed": False, "error": "no chapters found", "chapters": {}}
    missing = [m for m in ("papermill", "ipykernel") if importlib.util.find_spec(m) is None]
    if missing:
        return {"passed": False, "chapters": {},
                "error": f"not installed here: {', '.join(missing)} (pip install -r "
                         "requirements.txt installs what the chapters need)"}
    workdir = Path(workdir or tempfile.mkdtemp(prefix="gpu-check-chapters-"))
    with concurrent.futures.ThreadPoolExecutor(max(1, jobs)) as pool:
        futures = {nb.stem: pool.submit(run_chapter, nb, device, workdir, timeout)
                   for nb in notebooks}
        results = {name: f.result() for name, f in futures.items()}
    ran = [r for r in results.values() if "skipped" not in r]
    return {"passed": bool(ran) and all(r["passed"] for r in results.values()),
            "workdir": str(workdir), "chapters": results}


# --- Part 3: bf16 against fp32, and the float64 parts --------------------------------------------


def _train_once(name: str, precision: str, x: torch.Tensor, device: str, sizes: Sizes,
                seed: int) -> dict[str, Any]:
    """Train system ``name`` from its seed-``seed`` weights; the last epoch's term means."""
    from entropic_ae.experiments import RunConfig
    from entropic_ae.experiments.families import image_shape
    from entropic_ae.systems import SYSTEMS
    from entropic_ae.timing import sync
    from entropic_ae.training import set_seed, train

    config = RunConfig.make("conv", name, batch_size=sizes.batch_size, width=sizes.width,
                            latent_dim=sizes.latent_dim, seed=seed)
    system = SYSTEMS[name]
    objective = system.objective(config)
    with torch.random.fork_rng(devices=[]):
        set_seed(seed)
        model = system.build(config, image_shape(config))
    start = time.perf_counter()
    history = train(model, objective.loss, x, epochs=sizes.epochs, lr=config.lr,
                    batch_size=sizes.batch_size, seed=seed, weights=objective.weights,
                    device=device, precision=precision)
    sync(device)
    seconds = time.perf_counter() - start
    steady = history.epoch_seconds[1:] or history.epoch_seconds  # epoch 1: cuDNN autotuning
    return {"terms": history.last(), "weights": dict(objective.weights),
            "seconds": round(seconds, 3),
            "images_per_second": round(len(x) / float(np.median(steady)), 1)}


def _loss_scale(terms: dict[str, float], weights: dict[str, float]) -> float:
    """:math:`S = \\sum_t |w_t|\\,|T_t|`: the size of the weighted loss's parts."""
    return sum(abs(weights.get(n, 1.0)) * abs(v) for n, v in terms.items() if n != "loss")


def compare_precisions(name: str, x: torch.Tensor, device: str, sizes: Sizes = FULL,
                       rtol: float = RTOL, seed: int = 0) -> dict[str, Any]:
    r"""System ``name`` trained twice on the inputs ``x`` for ``sizes.steps`` steps, from the
    same initial weights on the same batches (the loop's shuffle depends on the seed and the
    epoch only), in fp32 and with bf16 autocast.

    Compared are the last epoch's means (the last ``steps / epochs`` steps, the same batches in
    both runs) of the weighted loss :math:`L` and of the reconstruction error :math:`R`. Rule:
    both runs finite, and

    .. math:: |L_{bf16} - L_{fp32}| \le r\,S_{fp32}, \qquad |R_{bf16} - R_{fp32}| \le
              r\,R_{fp32},

    with :math:`S = \sum_t |w_t|\,|T_t|` the sum of the absolute weighted terms (a scale that
    does not vanish when the terms cancel, as the EAE's reconstruction and negative entropy
    can) and :math:`r` = ``rtol`` (:data:`RTOL` = 5 %).

    Why 5 %: measured on the CPU (bf16 autocast there too, with its own op lists) at width
    1/32, 200 steps of 100 MNIST images over 4 epochs, seeds 0 and 1, the two precisions
    differed by at most 1.1 % of :math:`S` and 1.5 % of :math:`R` over the 14 systems
    (EAE-MB; every other system at most 0.8 %), so 5 % leaves a margin of three for the
    longer, wider GPU runs. Changing
    only the seed moved the fp32 results by 0.5–19 % of :math:`S` (4–5 % for most systems): the
    rule flags a bf16 run that trains differently — a broken term, a collapse, a crash — not
    the rounding noise of two diverging trajectories; it cannot see a bias of bf16 smaller than
    that.
    """
    runs: dict[str, Any] = {}
    for precision in ("fp32", "bf16"):
        try:
            runs[precision] = _train_once(name, precision, x, device, sizes, seed)
        except Exception as err:  # noqa: BLE001 - a crash or non-finite loss is the finding
            runs[precision] = {"error": _error(err)}
        finally:
            if torch.device(device).type == "cuda":
                torch.cuda.empty_cache()
    result: dict[str, Any] = {"runs": runs, "rtol": rtol}
    if any("error" in r for r in runs.values()):
        return {**result, "passed": False,
                "error": "; ".join(f"{p}: {r['error']}" for p, r in runs.items()
                                   if "error" in r)}
    f, b = runs["fp32"]["terms"], runs["bf16"]["terms"]
    scale = _loss_scale(f, runs["fp32"]["weights"])
    loss_rel = abs(b["loss"] - f["loss"]) / scale if scale > 0 else math.inf
    recon_rel = (abs(b["recon"] - f["recon"]) / abs(f["recon"])
                 if f.get("recon") else 0.0)
    finite = all(math.isfinite(v) for r in (f, b) for v in r.values())
    result.update(loss_relative_difference=loss_rel, recon_relative_difference=recon_rel,
                  passed=finite and loss_rel <= rtol and recon_rel <= rtol)
    if not result["passed"]:
        result["error"] = (f"bf16 vs fp32: loss differs by {loss_rel:.3g} of its scale, "
                           f"reconstruction by {recon_rel:.3g} (tolerance {rtol:g})"
                           if finite else "a loss term is not finite")
    return result


def training_images(n: int, root: str | Path | None = None) -> torch.Tensor:
    """The first ``n`` MNIST training images (float32 in [0, 1], N × 1 × 28 × 28)."""
    from entropic_ae.data import load_images

    return load_images("mnist", "train", root=root, limit=n)[0]


def check_precision(device: str, sizes: Sizes = FULL, images: torch.Tensor | None = None,
                    rtol: float = RTOL) -> dict[str, Any]:
    """Part 3: :func:`compare_precisions` for each system (``sizes.systems``, default every
    system of :data:`~entropic_ae.systems.CONV`) on the first MNIST training images (or
    ``images``), then :func:`check_float64`."""
    from entropic_ae.systems import CONV

    n = sizes.steps * sizes.batch_size // sizes.epochs
    x = training_images(n) if images is None else images[:n]
    if len(x) < n:
        raise ValueError(f"need {n} images for {sizes.steps} steps, got {len(x)}")
    systems = {}
    for name in sizes.systems or tuple(CONV):
        start = time.perf_counter()
        systems[name] = compare_precisions(name, x, device, sizes, rtol)
        systems[name]["seconds"] = _seconds_since(start)
        print(f"  {name}: {'ok' if systems[name]['passed'] else 'FAILED'} "
              f"({systems[name]['seconds']:.1f} s)", flush=True)
    float64 = check_float64(device)
    return {"passed": all(s["passed"] for s in systems.values()) and float64["passed"],
            "width": sizes.width, "steps": sizes.steps, "batch_size": sizes.batch_size,
            "systems": systems, "float64": float64}


def _kl_reference(z: np.ndarray, k: int = 1) -> float:
    r"""The Kozachenko–Leonenko estimate in float64 by a k-d tree (an independent search):
    :math:`\psi(N) - \psi(k) + \log V_d + \frac dN\sum_i\log\varepsilon_i`."""
    from scipy.spatial import cKDTree
    from scipy.special import digamma, gammaln

    n, d = z.shape
    eps = cKDTree(z).query(z, k=k + 1)[0][:, k]
    log_ball = 0.5 * d * math.log(math.pi) - gammaln(0.5 * d + 1)
    return float(digamma(n) - digamma(k) + log_ball + d * np.mean(np.log(eps)))


def _frechet_reference(x: np.ndarray, y: np.ndarray) -> float:
    """The Fréchet distance by scipy's matrix square root of :math:`\\Sigma_x\\Sigma_y`."""
    from scipy.linalg import sqrtm

    sx, sy = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    cross = sqrtm(sx @ sy).real
    diff = x.mean(0) - y.mean(0)
    return float(diff @ diff + np.trace(sx) + np.trace(sy) - 2 * np.trace(cross))


def _compare(value: float, reference: float, tol: float, control: float | None = None
             ) -> dict[str, Any]:
    """``value`` within ``tol`` · max(1, |reference|) of ``reference``; a ``control`` value
    (the same computation in lower precision) must miss it, or the check could not fail."""
    bound = tol * max(1.0, abs(reference))
    out = {"value": value, "reference": reference, "error": abs(value - reference),
           "bound": bound, "passed": abs(value - reference) <= bound}
    if control is not None:
        out["control_error"] = abs(control - reference)
        out["passed"] = out["passed"] and out["control_error"] > bound
    return out


def _kl_from_neighbours(z: torch.Tensor, neighbours: torch.Tensor) -> float:
    """The estimate (k = 1) in float64 with given neighbour indices."""
    from entropic_ae.estimators import log_unit_ball_volume

    z64 = z.detach().double().cpu()
    eps = (z64 - z64[neighbours.cpu()]).norm(dim=1)
    n, d = z64.shape
    from scipy.special import digamma

    return float(digamma(n) - digamma(1) + log_unit_ball_volume(d) + d * eps.log().mean())


def check_float64(device: str, seed: int = 0) -> dict[str, Any]:
    """The float64 parts under bf16 autocast, each against an independent float64 reference
    and with a control that the same computation in float32 misses the bound (so a part that
    silently dropped to bf16 or float32 would fail):

    - ``kl_float64``: :func:`~entropic_ae.estimators.kozachenko_leonenko` of float64 codes
      (500 × 4, standard normal) equals a k-d-tree estimate in float64 within
      :data:`FLOAT64_TOL` · max(1, |H|) and stays float64; control: the float32 codes.
    - ``kl_search``: float32 codes far from the origin (400 × 2 around 1000, spread 0.05,
      nearest neighbours ~3e-3 apart, far below float32's resolution of their squared norms,
      ~0.25): the estimate equals the k-d-tree reference on the same values within 1e-5 ·
      max(1, |H|), which needs the neighbour search in float64; control: the package's search
      run in float32.
    - ``frechet``: :func:`~entropic_ae.metrics.frechet_distance` of float64 features on the
      device (2000 × 8 around 1000) equals scipy's ``sqrtm`` formula within
      :data:`FLOAT64_TOL`; control: the float32 features.
    """
    from entropic_ae.estimators import _kth_neighbours, kozachenko_leonenko
    from entropic_ae.metrics import frechet_distance

    dev = torch.device(device)
    gen = torch.Generator().manual_seed(seed)
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16)
    z64 = torch.randn(500, 4, generator=gen, dtype=torch.float64)
    with autocast:
        got = kozachenko_leonenko(z64.to(dev))
    control = float(kozachenko_leonenko(z64.float().to(dev)))
    kl64 = _compare(float(got), _kl_reference(z64.numpy()), FLOAT64_TOL, control)
    kl64["dtype"] = str(got.dtype)
    kl64["passed"] = kl64["passed"] and got.dtype == torch.float64

    z32 = (1000.0 + 0.05 * torch.randn(400, 2, generator=gen, dtype=torch.float64)).float()
    with autocast:
        got = kozachenko_leonenko(z32.to(dev))
    control = _kl_from_neighbours(z32, _kth_neighbours(z32.to(dev), 1))
    search = _compare(float(got), _kl_reference(z32.double().numpy()), 1e-5, control)

    x = 1000.0 + torch.randn(2000, 8, generator=gen, dtype=torch.float64)
    y = 1000.5 + 1.1 * torch.randn(2000, 8, generator=gen, dtype=torch.float64)
    with autocast:
        got = frechet_distance(x.to(dev), y.to(dev))
    control = frechet_distance(x.float().to(dev), y.float().to(dev))
    frechet = _compare(got, _frechet_reference(x.numpy(), y.numpy()), FLOAT64_TOL, control)
    checks = {"kl_float64": kl64, "kl_search": search, "frechet": frechet}
    return {"passed": all(c["passed"] for c in checks.values()), **checks}


# --- Part 4: the benchmark ----------------------------------------------------------------------


def check_bench(device: str, sizes: Sizes = FULL) -> dict[str, Any]:
    """Part 4: :func:`entropic_ae.bench.bench` (``sizes.bench_models`` at
    ``sizes.bench_widths``, each in a fresh process; fp32, as the bench measures) and the
    entropy terms' forward + backward seconds. Passes when every figure is finite and
    positive."""
    from entropic_ae.bench import ENTROPY_TERMS, bench, term_seconds

    threads = 1 if torch.device(device).type == "cpu" else None
    rows = bench(sizes.bench_models, sizes.bench_widths, "mnist", sizes.latent_dim,
                 sizes.bench_batch_size, device, sizes.bench_repeats, threads)
    terms = {name: term_seconds(fn, sizes.bench_batch_size, sizes.latent_dim, device)
             for name, fn in ENTROPY_TERMS.items()}
    figures = [r["images_per_second"] for r in rows] + list(terms.values())
    ok = bool(rows) and all(math.isfinite(v) and v > 0 for v in figures)
    return {"passed": ok, "batch_size": sizes.bench_batch_size, "rows": rows,
            "entropy_term_seconds": terms}


# --- The report -----------------------------------------------------------------------------------


def _throughput(parts: dict[str, Any]) -> list[dict[str, Any]]:
    """Images per second: the bench's rows (fp32 step) and the training loop's (part 3)."""
    rows = [{"model": r["model"], "width": r["width"], "precision": "fp32",
             "source": "bench (one step)", "images_per_second": r["images_per_second"]}
            for r in parts.get("bench", {}).get("rows", [])]
    precision = parts.get("precision", {})
    for name, result in precision.get("systems", {}).items():
        for p, run in result.get("runs", {}).items():
            if "images_per_second" in run:
                rows.append({"model": name, "width": precision["width"], "precision": p,
                             "source": "training loop", "images_per_second":
                             run["images_per_second"]})
    return rows


def run_checks(device: str, parts: Sequence[str] = PARTS, sizes: Sizes = FULL,
               workdir: str | Path | None = None,
               notebooks: Sequence[str | Path] | None = None,
               unit_paths: Sequence[str | Path] | None = None,
               images: torch.Tensor | None = None) -> dict[str, Any]:
    """Run the selected parts in order; the report (see the module docstring)."""
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise ValueError(f"unknown part(s) {unknown}; the parts are {list(PARTS)}")
    start = time.perf_counter()
    workdir = Path(workdir or tempfile.mkdtemp(prefix="gpu-check-"))
    runners = {
        "unit": lambda: check_unit(device, unit_paths, sizes.unit_timeout, workdir / "unit"),
        "chapters": lambda: check_chapters(device, notebooks, workdir / "chapters",
                                           sizes.chapter_timeout, sizes.jobs),
        "precision": lambda: check_precision(device, sizes, images),
        "bench": lambda: check_bench(device, sizes),
    }
    results = {name: _guarded(name, runners[name]) for name in PARTS if name in parts}
    wall = _seconds_since(start)
    return {"passed": all(r["passed"] for r in results.values()),
            "environment": environment(device), "sizes": dataclasses.asdict(sizes),
            "parts": results, "images_per_second": _throughput(results),
            "wall_seconds": wall, "budget_seconds": BUDGET_SECONDS,
            "within_budget": wall <= BUDGET_SECONDS, "workdir": str(workdir)}


def markdown_table(report: dict[str, Any]) -> str:
    """A report's images per second as a Markdown table: one row per system and width, one
    column per measurement (the bench's fp32 step; the training loop in fp32 and bf16)."""
    env = report.get("environment", {})
    cells: dict[tuple[str, float], dict[str, float]] = {}
    for r in report.get("images_per_second", []):
        column = f"{r['source']}, {r['precision']}"
        cells.setdefault((r["model"], r["width"]), {})[column] = r["images_per_second"]
    columns = sorted({c for row in cells.values() for c in row})
    lines = [f"Images per second on {env.get('name', '?')} (torch {env.get('torch', '?')}, "
             f"CUDA {env.get('cuda', '?')}):", "",
             "| system | width | " + " | ".join(columns) + " |",
             "|---|---|" + "---|" * len(columns)]
    for (model, width), row in sorted(cells.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        values = " | ".join(f"{row[c]:,.0f}" if c in row else "–" for c in columns)
        lines.append(f"| {model} | {width:g} | {values} |")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m entropic_ae.gpu_check",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="device to check (default cuda)")
    parser.add_argument("--out", default=None, help="write the JSON report here")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes (a CPU test)")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--steps", type=int, default=None,
                        help="optimisation steps per system and precision (part 3)")
    parser.add_argument("--systems", nargs="+", default=None, metavar="SYSTEM",
                        help="systems of part 3 (default: every system of CONV)")
    parser.add_argument("--workdir", default=None,
                        help="folder for executed chapters and logs (default: a temporary one)")
    parser.add_argument("--notebooks", nargs="+", default=None,
                        help="chapters of part 2 (default: notebooks/NN_*.ipynb)")
    parser.add_argument("--unit-paths", nargs="+", default=None,
                        help="test files or folders of part 1 (default: the files in tests/ "
                             "that mark tests 'device')")
    parser.add_argument("--table", metavar="REPORT", default=None,
                        help="print REPORT's images per second as Markdown, and exit")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The command line (see the module docstring); the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.table:
        print(markdown_table(json.loads(Path(args.table).read_text())))
        return 0
    try:
        device = torch.device(args.device)
    except RuntimeError:
        parser.error(f"--device: not a device: {args.device!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        print(NO_GPU)
        return 0
    sizes = TINY if args.tiny else FULL
    if args.steps is not None:
        try:
            sizes = dataclasses.replace(sizes, steps=args.steps)
        except ValueError as err:
            parser.error(f"--steps: {err}")
    if args.systems:
        from entropic_ae.systems import CONV

        unknown = sorted(set(args.systems) - set(CONV))
        if unknown:
            parser.error(f"--systems: unknown {unknown}; the systems are {list(CONV)}")
        sizes = dataclasses.replace(sizes, systems=tuple(args.systems))
    report = run_checks(str(device), args.parts, sizes, args.workdir, args.notebooks,
                        args.unit_paths)
    report["command"] = ["python", "-m", "entropic_ae.gpu_check",
                         *(sys.argv[1:] if argv is None else argv)]
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=1, default=str))
    failed = [name for name, r in report["parts"].items() if not r["passed"]]
    print(f"gpu check on {report['environment']['name']}: "
          + (f"FAILED parts {', '.join(failed)}" if failed else "every part passed")
          + f" in {report['wall_seconds']:.0f} s"
          + (f"; report {args.out}" if args.out else ""), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
