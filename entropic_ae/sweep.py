"""Run a whole chapter for every combination of parameter values, in parallel.

::

    python -m entropic_ae.sweep notebooks/01_entropy.ipynb --out runs/seeds \\
        -f notebooks/params/smoke/01_entropy.yaml -p seed 0 1 2 --workers 2

executes the chapter with papermill once per combination of the swept values and gathers the
CSV tables the runs wrote.

Parameters. ``-f FILE`` sets parameters for every run (YAML, read as ``papermill -f`` reads
it). Each ``-p NAME VALUE [VALUE ...]`` is one axis whose values are read exactly as
``papermill -p`` reads a value (papermill's own function does it): ``3`` and ``010`` are ints
(``010`` is 10), ``1e-3`` and ``nan`` are floats, ``True``/``False``/``None`` are Python's
constants, anything else is a string (``true``, ``null`` and ``[1, 2]`` too). ``-y NAME
YAML [YAML ...]`` reads each value as YAML, as ``papermill -y`` does (``-y dims "[1, 2]"
"[4, 8]"`` sweeps two lists), and ``-r NAME VALUE [VALUE ...]`` keeps each value a string, as
``papermill -r`` does. A value given twice in one axis (``-p seed 0 0``) is run once, with a
warning. ``results_dir`` is the sweep's (every run has its own) and cannot be set; the run
cache ``checkpoint_dir`` may be set once with ``-f`` but not swept.

Folders. Each combination runs in ``OUT/<slug>-<hash>/``: the slug shows the swept values
(``seed=0``), the hash (8 hex digits) is that of the exact values and the notebook's name, so
two distinct values never share a folder (``a/b`` and ``a_b`` both read ``a_b`` in a slug). It
holds ``params.json`` (the swept values and every parameter the run got), the executed
notebook, ``papermill.log``, ``results/`` (the chapter's ``results_dir``) and, once the run
has finished, ``.done``. Chapters that train share one run cache, ``OUT/checkpoints`` (their
``checkpoint_dir``), so trainings that two combinations have in common run once.

Reruns. ``.done`` records digests of the notebook's code cells, of the run's parameters and of
the ``entropic_ae`` package's code, and the tables the run wrote. Running the sweep again skips
the combinations whose digests still match; any other combination runs again, its old
``results/`` removed first. Afterwards each table the current runs of this sweep wrote is
concatenated into ``OUT/<table>.csv``, with one leading column per swept parameter (its value
read from ``params.json``; ``swept_<name>`` if the table has a column of that name). A CSV
that cannot be read (an empty file, say) is named in a warning and left out. Tables that an
earlier sweep of the same notebook into ``OUT`` wrote and this one does not are removed.

Where the runs go. Every run is its own ``papermill`` process (papermill starts the notebook's
kernel as a further process), with ``ENTROPIC_AE_SCHEDULER=serial`` in its environment: inside
a sweep the chapter runs its trainings one after the other, the sweep providing the
parallelism. Since the runs are processes already, no worker pool of Python processes is
needed on one machine: ``--workers N`` (default: one per GPU, else one per core) keeps N of
them running at once, each with one torch thread and, on a machine with GPUs, a GPU of its
own (``CUDA_VISIBLE_DEVICES``). ``--scheduler serial`` runs them one after the other.
``--scheduler ADDRESS`` (or ``$ENTROPIC_AE_SCHEDULER`` when neither option is given) sends
them to an existing Dask cluster (Slurm, PBS, Kubernetes); its workers need this package and
papermill, and must see ``OUT`` and the notebook (a shared file system). An unreachable address
fails within a few seconds. A run's kernel talks to papermill over local sockets in a temporary
folder of its own (ZeroMQ's IPC transport), not TCP ports: jupyter_client picks free ports
and the kernel binds them a moment later, so runs that start together could pick the same port
and the loser died or hung for good (nteract/papermill#511; TCP is kept on Windows).

The command prints what ran, what was skipped and where the tables are, and exits with status
1 when a combination failed (each failure is reported with the end of its papermill log) and 2
for a bad command line.
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

from entropic_ae._io import atomic_write, canonical_json, digest, source_digest

__all__ = ["combinations", "execute", "gather_tables", "main", "run_folder", "sweep"]

#: Seconds to wait for a Dask scheduler before the sweep gives up.
CONNECT_TIMEOUT_S = 5.0

_SERIAL = "serial"
_PARAMS, _DONE, _LOG, _RESULTS = "params.json", ".done", "papermill.log", "results"


# --- values ---------------------------------------------------------------------------------


def _yaml_value(text: str) -> Any:
    """A ``-y`` value as ``papermill -y`` reads it (YAML, dates left as strings)."""
    import yaml
    from papermill.iorw import NoDatesSafeLoader

    try:
        return yaml.load(text, Loader=NoDatesSafeLoader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as err:
        raise ValueError(f"cannot read the value {text!r} as YAML: {err}") from err


def _exact(value: Any) -> Any:
    """``value`` as a JSON value that tells apart what Python and papermill tell apart
    (``1``, ``1.0``, ``True`` and ``"1"``; ``-0.0`` and ``0.0``): floats become
    ``{"float": repr}``, mappings ``{"dict": [[key, value], ...]}`` sorted by key."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return {"float": float.__repr__(value)}
    if isinstance(value, list | tuple):
        return [_exact(v) for v in value]
    if isinstance(value, Mapping):
        pairs = [[_exact(k), _exact(v)] for k, v in value.items()]
        return {"dict": sorted(pairs, key=lambda pair: canonical_json(pair[0]))}
    raise TypeError(f"parameter values must be None, bools, ints, floats, strings, lists or "
                    f"dicts, got {type(value).__name__} ({value!r})")


def combinations(axes: Sequence[tuple[str, Sequence[Any]]]) -> list[dict[str, Any]]:
    """Every combination of the axes' values, the last axis varying fastest. A value given
    twice in one axis (the same type and value) is kept once, with a warning."""
    names = [name for name, _ in axes]
    if len(set(names)) != len(names):
        raise ValueError(f"a parameter is swept twice: {names}")
    unique_axes = []
    for name, values in axes:
        if not values:
            raise ValueError(f"-p {name} needs at least one value")
        unique: dict[str, Any] = {}
        for value in values:
            unique.setdefault(canonical_json(_exact(value)), value)
        if len(unique) < len(values):
            warnings.warn(f"-p {name}: {len(values) - len(unique)} repeated value(s) dropped; "
                          f"each combination runs once ({name} in {list(unique.values())})",
                          stacklevel=2)
        unique_axes.append(list(unique.values()))
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*unique_axes)]


def run_folder(out: str | os.PathLike, params: Mapping[str, Any],
               notebook: str | None = None) -> Path:
    """``out / "<slug>-<hash>"``: the slug ``a=1,b=x`` shows the swept ``params`` (``run``
    if none), the hash is the first 8 hex digits of the digest of their exact values and the
    ``notebook``'s file name, so that distinct values (or notebooks) never share a folder."""
    parts = [f"{k}={v if isinstance(v, str) else json.dumps(v, separators=(',', ':'))}"
             for k, v in params.items()]
    slug = re.sub(r"[^A-Za-z0-9._=,+-]+", "_", ",".join(parts))[:60] or "run"
    key = digest({"notebook": notebook, "params": _exact(dict(params))}, length=8)
    return Path(out) / f"{slug}-{key}"


# --- one run --------------------------------------------------------------------------------


def _notebook_digest(notebook: Path) -> str:
    """Digest of the source of the notebook's code cells (blind to prose and outputs)."""
    cells = json.loads(notebook.read_text(encoding="utf-8")).get("cells", [])
    return digest(["".join(c.get("source", "")) for c in cells if c.get("cell_type") == "code"])


def _package_digest() -> str:
    """Digest of the code of the imported ``entropic_ae`` package (this module excepted: the
    runs do not use it)."""
    import entropic_ae

    return source_digest(Path(entropic_ae.__file__).parent, exclude=("sweep.py",))


def _stamp(notebook: Path, parameters: Mapping[str, Any],
           package: str | None = None) -> dict[str, str]:
    """What a finished run records in ``.done``; a run whose stamp changed runs again."""
    return {"notebook": _notebook_digest(notebook), "parameters": digest(_exact(parameters)),
            "package": package if package is not None else _package_digest()}


def _finished(folder: Path, stamp: Mapping[str, str]) -> bool:
    try:
        done = json.loads((Path(folder) / _DONE).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(done, dict) and done.get("stamp") == dict(stamp)


def _error_summary(log: Path, code: int) -> str:
    """The end of a failed run's papermill log: the notebook's own error where there is one."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        text = ""
    start = text.rfind("Exception encountered at")
    noise = ("Input Notebook:", "Output Notebook:", "[IPKernelApp]", "Executing notebook")
    lines = [line for line in text[max(start, 0):].strip().splitlines()
             if not line.startswith(noise)]
    return "\n".join([f"papermill exited with status {code} (whole log: {log})", *lines[-25:]])


def _papermill_child() -> None:
    """The process of one run (``sys.argv[1:]``: notebook, output, working folder, base64 YAML
    parameters, socket folder): ``papermill.execute_notebook`` as ``python -m papermill``
    runs it, with the kernel's five channels on IPC sockets ``<socket folder>/kernel-N``."""
    import logging

    import papermill
    import yaml
    from papermill.iorw import NoDatesSafeLoader
    from traitlets.config import Config

    notebook, output, cwd, encoded, sockets = sys.argv[1:]
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # as papermill's command
    channels = ({"transport": "tcp"} if os.name == "nt" else
                {"transport": "ipc", "ip": str(Path(sockets) / "kernel")})
    papermill.execute_notebook(
        notebook, output, parameters=yaml.load(base64.b64decode(encoded), NoDatesSafeLoader),
        kernel_name="python3", cwd=cwd, progress_bar=False,
        config=Config(KernelManager=channels))


def execute(notebook: str | os.PathLike, folder: str | os.PathLike, parameters: dict[str, Any],
            swept: Mapping[str, Any] | None = None, stamp: Mapping[str, str] | None = None,
            environment: Mapping[str, str | None] | None = None) -> dict[str, Any]:
    """Run ``notebook`` with ``parameters`` into ``folder`` (one combination of a sweep):
    remove its earlier ``results/`` and ``.done``, write ``params.json`` (``swept`` and
    ``parameters``), run papermill in a process of its own (:func:`_papermill_child`; output
    in ``papermill.log``; environment: ``ENTROPIC_AE_SCHEDULER=serial`` and ``environment``,
    where ``None`` unsets a variable) and on success write ``.done`` with ``stamp`` (computed
    here if not given) and the CSV files in ``results/``. Returns ``{"ok": True}`` or
    ``{"ok": False, "error": text}``; never raises."""
    import yaml

    notebook, target = Path(notebook), Path(folder)
    try:
        stamp = dict(stamp) if stamp is not None else _stamp(notebook, parameters)
        (target / _DONE).unlink(missing_ok=True)
        shutil.rmtree(target / _RESULTS, ignore_errors=True)
        atomic_write(target / _PARAMS, json.dumps({"swept": dict(swept or {}),
                                                   "parameters": parameters}, indent=1))
        env = {**os.environ, **(environment or {}), "ENTROPIC_AE_SCHEDULER": _SERIAL}
        env = {key: value for key, value in env.items() if value is not None}
        encoded = base64.b64encode(yaml.safe_dump(parameters).encode()).decode()
        start = time.perf_counter()
        with open(target / _LOG, "w") as log, \
                tempfile.TemporaryDirectory(prefix="eae-kernel-") as sockets:
            command = [sys.executable, "-c", "from entropic_ae.sweep import _papermill_child; "
                       "_papermill_child()", str(notebook), str(target / notebook.name),
                       str(notebook.parent), encoded, sockets]
            code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                  check=False).returncode
        if code != 0:
            return {"ok": False, "error": _error_summary(target / _LOG, code)}
        tables = sorted(p.name for p in (target / _RESULTS).glob("*.csv"))
        atomic_write(target / _DONE, json.dumps({"stamp": stamp, "tables": tables,
                                                 "seconds": time.perf_counter() - start}))
        return {"ok": True}
    except Exception:  # noqa: BLE001 - reported per combination at the end
        return {"ok": False, "error": traceback.format_exc(limit=3)}


# --- gathering ------------------------------------------------------------------------------


def gather_tables(out: str | os.PathLike,
                  folders: Sequence[str | os.PathLike]) -> dict[str, Path]:
    """Concatenate the tables that the finished runs in ``folders`` wrote (the CSV files their
    ``.done`` lists) into ``out/<name>.csv``, with the swept values of each run's
    ``params.json`` as leading columns; returns ``{table name: path}``."""
    import pandas as pd

    tables: dict[str, list[pd.DataFrame]] = {}
    for folder in map(Path, folders):
        try:
            swept = json.loads((folder / _PARAMS).read_text())["swept"]
            names = json.loads((folder / _DONE).read_text())["tables"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            warnings.warn(f"{folder}: no finished run to gather ({type(err).__name__}: {err})",
                          stacklevel=2)
            continue
        for name in names:
            csv = folder / _RESULTS / name
            try:
                frame = pd.read_csv(csv)
            except (OSError, UnicodeDecodeError, pd.errors.EmptyDataError,
                    pd.errors.ParserError) as err:
                warnings.warn(f"{csv}: not a readable CSV table ({type(err).__name__}: {err}); "
                              f"the other tables are gathered without it", stacklevel=2)
                continue
            for i, (key, value) in enumerate(swept.items()):
                column = key
                while column in frame.columns:
                    column = f"swept_{column}"
                frame.insert(i, column, json.dumps(value) if isinstance(value, list | dict)
                             else value)
            tables.setdefault(Path(name).stem, []).append(frame)
    written = {}
    for name, frames in tables.items():
        table = pd.concat(frames, ignore_index=True)
        written[name] = atomic_write(Path(out) / f"{name}.csv", table.to_csv(index=False))
    return written


def _replace_tables(out: Path, notebook: Path, written: Mapping[str, Path]) -> None:
    """Remove the tables the last sweep of ``notebook`` into ``out`` wrote and this one did
    not, and record this sweep's tables (``out/.sweep-<notebook>.json``)."""
    record = out / f".sweep-{notebook.stem}.json"
    try:
        earlier = json.loads(record.read_text()).get("tables", [])
    except (OSError, ValueError, AttributeError):
        earlier = []
    for name in set(earlier) - set(written):
        if isinstance(name, str) and name and Path(name).name == name:
            (out / f"{name}.csv").unlink(missing_ok=True)
    atomic_write(record, json.dumps({"notebook": str(notebook), "tables": sorted(written)},
                                    indent=1))


# --- where the runs go ----------------------------------------------------------------------


class _Task(NamedTuple):
    swept: dict[str, Any]
    folder: Path
    parameters: dict[str, Any]
    stamp: dict[str, str]


_Runs = Iterator[tuple[_Task, dict[str, Any]]]


def _runner(scheduler: str | None, workers: int | None) -> Callable[[Path, list[_Task]], _Runs]:
    """``runner(notebook, tasks)`` yields each task with its outcome: local processes
    (``workers`` at once), one after the other (``"serial"``) or on a Dask scheduler."""
    if workers is not None:
        if scheduler is not None:
            raise ValueError("give workers (local runs) or scheduler, not both")
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be an int >= 1, got {workers!r}")
        return partial(_run_local, workers=workers)
    if scheduler is None:
        scheduler = os.environ.get("ENTROPIC_AE_SCHEDULER", "").strip() or None
    if scheduler is None:
        return partial(_run_local, workers=None)
    if not isinstance(scheduler, str) or not scheduler.strip():
        raise ValueError(f"scheduler must be 'serial' or a Dask scheduler address, got "
                         f"{scheduler!r}")
    scheduler = scheduler.strip()
    return _run_serial if scheduler == _SERIAL else partial(_run_dask, address=scheduler)


def _run_serial(notebook: Path, tasks: list[_Task]) -> _Runs:
    for task in tasks:
        yield task, execute(notebook, task.folder, task.parameters, task.swept, task.stamp)


def _gpu_ids() -> list[str]:
    """The CUDA devices this process sees, as ``CUDA_VISIBLE_DEVICES`` entries."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    visible = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")
               if d.strip()]
    return (visible or [str(i) for i in range(count)])[:count]


def _run_local(notebook: Path, tasks: list[_Task], workers: int | None) -> _Runs:
    """Run the tasks' papermill processes, ``workers`` at a time; each gets one torch thread
    and, on a machine with GPUs, a GPU of its own (or shared in turn if workers > GPUs)."""
    from entropic_ae.experiments.cluster import WORKER_ENVIRONMENT

    gpus = _gpu_ids()
    n = min(workers or len(gpus) or os.cpu_count() or 1, len(tasks))
    slots: queue.SimpleQueue[int] = queue.SimpleQueue()
    for slot in range(n):
        slots.put(slot)

    def one(task: _Task) -> dict[str, Any]:
        slot = slots.get()
        try:
            env = dict(WORKER_ENVIRONMENT)
            if gpus:
                env["CUDA_VISIBLE_DEVICES"] = gpus[slot % len(gpus)]
            return execute(notebook, task.folder, task.parameters, task.swept, task.stamp, env)
        finally:
            slots.put(slot)

    with ThreadPoolExecutor(max_workers=n, thread_name_prefix="sweep") as pool:
        futures = {pool.submit(one, task): task for task in tasks}
        try:
            for future in as_completed(futures):
                yield futures[future], future.result()
        finally:
            for future in futures:
                future.cancel()


def _connect(address: str) -> Any:
    """A Dask client of the scheduler at ``address``; ConnectionError within
    :data:`CONNECT_TIMEOUT_S` seconds if it cannot be reached."""
    from distributed import Client

    try:
        return Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, ValueError, TypeError) as err:
        raise ConnectionError(f"cannot reach the Dask scheduler at {address!r} "
                              f"({type(err).__name__}: {err})") from None


def _run_dask(notebook: Path, tasks: list[_Task], address: str) -> _Runs:
    from distributed import as_completed as dask_completed

    client = _connect(address)
    try:
        futures = {client.submit(execute, str(notebook), str(t.folder), t.parameters, t.swept,
                                 t.stamp, pure=False): t for t in tasks}
        for future in dask_completed(futures, loop=client.loop):
            task = futures[future]
            try:
                outcome = future.result()
            except Exception as err:  # noqa: BLE001 - a killed worker, say
                # A worker can die after the run wrote .done but before Dask heard of it.
                outcome = ({"ok": True} if _finished(task.folder, task.stamp) else
                           {"ok": False, "error": f"{type(err).__name__}: {err}"})
            future.release()
            yield task, outcome
    finally:
        client.close()


# --- the sweep ------------------------------------------------------------------------------


def _plan(notebook: Path, out: Path, axes: Sequence[tuple[str, Sequence[Any]]],
          base: Mapping[str, Any]) -> list[_Task]:
    """One task per combination, with its folder, parameters and stamp."""
    import papermill

    swept = [name for name, _ in axes]
    if "results_dir" in base or "results_dir" in swept:
        where = "given in the parameters for every run (-f)" if "results_dir" in base else \
            "swept (-p)"
        raise ValueError(f"results_dir cannot be {where}: the sweep gives every run its own, "
                         f"OUT/<run>/results, and gathers the tables from there")
    if "checkpoint_dir" in swept:
        raise ValueError("checkpoint_dir cannot be swept: the runs share one run cache "
                         "(OUT/checkpoints, or a folder set once with -f)")
    known = set(papermill.inspect_notebook(str(notebook)))
    unknown = sorted((set(swept) | set(base)) - known)
    if unknown:
        raise ValueError(f"{notebook.name} has no parameter(s) {unknown}; its parameters are "
                         f"{sorted(known)}")
    if "results_dir" not in known:
        warnings.warn(f"{notebook.name} has no results_dir parameter: no tables to gather",
                      stacklevel=3)
    package, tasks, seen = _package_digest(), [], {}
    for combo in combinations(axes):
        folder = run_folder(out, combo, notebook.name)
        if seen.setdefault(folder, combo) is not combo:
            raise RuntimeError(f"{seen[folder]} and {combo} hash alike: shorten the sweep")
        params = {**base, **combo}
        if "results_dir" in known:
            params["results_dir"] = str(folder / _RESULTS)
        if "checkpoint_dir" in known:
            params.setdefault("checkpoint_dir", str(out / "checkpoints"))
        tasks.append(_Task(dict(combo), folder, params, _stamp(notebook, params, package)))
    return tasks


def sweep(notebook: str | os.PathLike, out: str | os.PathLike,
          axes: Sequence[tuple[str, Sequence[Any]]], base: Mapping[str, Any] | None = None,
          workers: int | None = None, scheduler: str | None = None,
          progress: bool = True) -> dict[str, Any]:
    """Run ``notebook`` for every combination of ``axes`` (``[(name, values), ...]``) with the
    parameters ``base`` for all, and gather the tables (see the module docstring). ``workers``:
    local runs at once; ``scheduler``: ``"serial"`` or a Dask scheduler address (default
    ``$ENTROPIC_AE_SCHEDULER``, else local). Returns ``{"ran": [folder, ...], "skipped":
    [...], "failed": {folder: error}, "tables": {name: path}}``."""
    from tqdm.auto import tqdm

    notebook = Path(notebook).resolve()
    if not notebook.is_file():
        raise FileNotFoundError(f"no notebook at {notebook}")
    out = Path(out).resolve()
    run = _runner(scheduler, workers)
    tasks = _plan(notebook, out, axes, dict(base or {}))
    todo = [t for t in tasks if not _finished(t.folder, t.stamp)]
    report: dict[str, Any] = {"ran": [], "skipped": [str(t.folder) for t in tasks
                                                    if t not in todo], "failed": {}}
    if todo:
        with tqdm(total=len(tasks), initial=len(tasks) - len(todo), desc=notebook.stem,
                  unit="run", disable=not progress) as bar:
            for task, outcome in run(notebook, todo):
                if outcome["ok"]:
                    report["ran"].append(str(task.folder))
                else:
                    report["failed"][str(task.folder)] = outcome["error"]
                bar.update(1)
    finished = [t.folder for t in tasks if _finished(t.folder, t.stamp)]
    written = gather_tables(out, finished)
    _replace_tables(out, notebook, written)
    report["tables"] = {name: str(path) for name, path in written.items()}
    return report


# --- the command line -----------------------------------------------------------------------


class _Axis(argparse.Action):
    """``-p/-y/-r NAME VALUE ...``: appends ``(NAME, [parsed values])`` to ``axes``, so that
    the axes keep the order of the command line whichever option gave them."""

    def __init__(self, *args: Any, parse: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.parse = parse

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        if len(values) < 2:
            parser.error(f"{option_string} {values[0]} needs at least one value")
        try:
            axis = (values[0], [self.parse(v) for v in values[1:]])
        except ValueError as err:
            parser.error(f"{option_string} {values[0]}: {err}")
        setattr(namespace, self.dest, [*(getattr(namespace, self.dest) or []), axis])


def _parser() -> argparse.ArgumentParser:
    from papermill.cli import _resolve_type  # how papermill -p reads a value

    parser = argparse.ArgumentParser(
        prog="python -m entropic_ae.sweep", description=__doc__.split("::")[0].strip(),
        epilog=__doc__.split("::", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebook", help="the chapter to run, e.g. notebooks/01_entropy.ipynb")
    parser.add_argument("--out", required=True, help="folder for the runs and the tables")
    parser.add_argument("-f", "--parameters-file", action="append", default=[],
                        metavar="PARAMS.yaml", help="parameters for every run (YAML)")
    for flags, parse, what in (
            (("-p", "--parameter"), _resolve_type, "read as papermill -p: -p seed 0 1"),
            (("-y", "--parameter-yaml"), _yaml_value, "each read as YAML: -y dims '[1, 2]' '[4]'"),
            (("-r", "--parameter-raw"), str, "kept as strings: -r tag 010 abc")):
        parser.add_argument(*flags, action=_Axis, parse=parse, dest="axes", nargs="+",
                            default=[], metavar=("NAME", "VALUE"),
                            help=f"a swept parameter and its values, {what}")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=None,
                       help="runs at once on this machine (default: one per GPU, else per core)")
    where.add_argument("--scheduler", default=None,
                       help="'serial', or the address of a Dask scheduler (default: "
                            "$ENTROPIC_AE_SCHEDULER, else local runs)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _base_parameters(parser: argparse.ArgumentParser, paths: Sequence[str]) -> dict[str, Any]:
    """The ``-f`` files merged in order, each read as ``papermill -f`` reads it."""
    import yaml
    from papermill.iorw import read_yaml_file

    base: dict[str, Any] = {}
    for path in paths:
        try:
            loaded = read_yaml_file(path) or {}
        except (OSError, yaml.YAMLError, ValueError) as err:
            parser.error(f"cannot read {path}: {err}")
        if not isinstance(loaded, dict):
            parser.error(f"{path} must hold a mapping of parameter names to values")
        base.update(loaded)
    return base


def main(argv: Sequence[str] | None = None) -> int:
    """The command line (see the module docstring); returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    base = _base_parameters(parser, args.parameters_file)
    if args.workers is not None and args.workers < 1:
        parser.error("--workers must be at least 1")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            report = sweep(args.notebook, args.out, args.axes, base, workers=args.workers,
                           scheduler=args.scheduler, progress=not args.no_progress)
        except (FileNotFoundError, ValueError, TypeError, ConnectionError) as err:
            report = err
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    if isinstance(report, Exception):
        print(f"error: {report}", file=sys.stderr)
        return 2
    print(f"ran {len(report['ran'])}, skipped {len(report['skipped'])} (already done), "
          f"failed {len(report['failed'])}")
    for name, path in report["tables"].items():
        print(f"table {name}: {path}")
    for folder, error in report["failed"].items():
        print(f"FAILED {folder}:\n{error}", file=sys.stderr)
    return 1 if report["failed"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
