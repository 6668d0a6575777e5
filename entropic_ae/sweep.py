"""Run a whole chapter for every combination of parameter values, in parallel.

::

    python -m entropic_ae.sweep notebooks/01_entropy.ipynb --out runs/seeds \\
        -f notebooks/params/smoke/01_entropy.yaml -p seed 0 1 2 --workers 2

executes the chapter with papermill once per combination of the ``-p`` values (each ``-p
NAME VALUE [VALUE ...]`` is one axis; values are read as YAML, so ``3``, ``0.5``, ``[1, 2]``
and ``null`` mean what they look like), on a Dask cluster: a local one with ``--workers N``
processes, or an existing one at ``--scheduler ADDRESS`` (or ``$ENTROPIC_AE_SCHEDULER``).
Each run goes into its own folder ``OUT/<name>=<value>,.../`` holding the executed notebook
and its ``results/`` (the chapter's ``results_dir``). Chapters that train share one run cache,
``OUT/checkpoints`` (their ``checkpoint_dir``), so runs that two combinations have in common
are trained once; inside a sweep each chapter runs its trainings one after the other
(``ENTROPIC_AE_SCHEDULER=serial``), the sweep itself providing the parallelism.

Afterwards every CSV table the runs wrote is concatenated into ``OUT/<table name>.csv`` with
one column per swept parameter. A rerun skips the combinations that already finished (a
``.done`` file in their folder records the parameters they ran with); failed ones are listed
at the end and the command exits with status 1.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import sys
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["combinations", "execute", "gather_tables", "main", "run_folder", "sweep"]


def _yaml_value(text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ValueError(f"cannot read the value {text!r} as YAML: {err}") from err


def combinations(axes: Sequence[tuple[str, Sequence[Any]]]) -> list[dict[str, Any]]:
    """Every combination of the axes' values, the last axis varying fastest."""
    names = [name for name, _ in axes]
    if len(set(names)) != len(names):
        raise ValueError(f"a parameter is swept twice: {names}")
    for name, values in axes:
        if not values:
            raise ValueError(f"-p {name} needs at least one value")
    return [dict(zip(names, combo, strict=True))
            for combo in itertools.product(*(values for _, values in axes))]


def run_folder(out: Path, params: Mapping[str, Any]) -> Path:
    """``out / "a=1,b=x"``: a folder name made of the swept parameters (``"run"`` if none)."""
    if not params:
        return out / "run"
    parts = [f"{k}={v if isinstance(v, str) else json.dumps(v, separators=('+', ':'))}"
             for k, v in params.items()]
    return out / re.sub(r"[^A-Za-z0-9._=,+-]+", "_", ",".join(parts))


def _notebook_parameters(notebook: Path) -> set[str]:
    import papermill

    return set(papermill.inspect_notebook(str(notebook)))


def execute(notebook: str, folder: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """Execute ``notebook`` into ``folder`` with ``parameters`` (a sweep's task); returns
    ``{"ok": True}`` or ``{"ok": False, "error": ...}`` and writes ``folder/.done`` on success."""
    import papermill

    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    os.environ["ENTROPIC_AE_SCHEDULER"] = "serial"
    start = time.perf_counter()
    try:
        papermill.execute_notebook(notebook, str(target / Path(notebook).name),
                                   parameters=parameters, cwd=str(Path(notebook).parent),
                                   kernel_name="python3", progress_bar=False)
    except Exception:  # noqa: BLE001 - reported per combination at the end
        return {"ok": False, "error": traceback.format_exc(limit=3)}
    done = {"parameters": parameters, "seconds": time.perf_counter() - start}
    (target / ".done").write_text(json.dumps(done, indent=1, default=str))
    return {"ok": True}


def _finished(folder: Path, parameters: Mapping[str, Any]) -> bool:
    try:
        done = json.loads((folder / ".done").read_text())
    except (OSError, ValueError):
        return False
    return done.get("parameters") == json.loads(json.dumps(parameters, default=str))


def gather_tables(out: Path, runs: Sequence[tuple[dict[str, Any], Path]]) -> dict[str, Path]:
    """Concatenate each CSV table found in the runs' ``results/`` into ``out/<name>.csv``,
    with the swept parameters as leading columns; returns ``{table name: path}``."""
    import pandas as pd

    tables: dict[str, list[pd.DataFrame]] = {}
    for params, folder in runs:
        for csv in sorted((folder / "results").glob("*.csv")):
            frame = pd.read_csv(csv)
            for i, (name, value) in enumerate(params.items()):
                column = name if name not in frame.columns else f"swept_{name}"
                frame.insert(i, column, json.dumps(value) if isinstance(value, list | dict)
                             else value)
            tables.setdefault(csv.stem, []).append(frame)
    written = {}
    for name, frames in tables.items():
        path = out / f"{name}.csv"
        pd.concat(frames, ignore_index=True).to_csv(path, index=False)
        written[name] = path
    return written


def sweep(notebook: str | os.PathLike, out: str | os.PathLike,
          axes: Sequence[tuple[str, Sequence[Any]]], base: Mapping[str, Any] | None = None,
          workers: int | None = None, scheduler: str | None = None,
          progress: bool = True) -> dict[str, Any]:
    """Run ``notebook`` for every combination of ``axes`` (see the module docstring); returns
    ``{"ran": [...], "skipped": [...], "failed": {folder: error}, "tables": {...}}``."""
    from tqdm.auto import tqdm

    from entropic_ae.experiments.cluster import _client

    notebook = Path(notebook).resolve()
    if not notebook.is_file():
        raise FileNotFoundError(f"no notebook at {notebook}")
    out = Path(out).resolve()
    known = _notebook_parameters(notebook)
    unknown = sorted(({n for n, _ in axes} | set(base or {})) - known)
    if unknown:
        raise ValueError(f"{notebook.name} has no parameter(s) {unknown}; its parameters are "
                         f"{sorted(known)}")
    runs = []
    for combo in combinations(axes):
        folder = run_folder(out, combo)
        params = {**(base or {}), **combo}
        params.setdefault("results_dir", str(folder / "results"))
        if "checkpoint_dir" in known:
            params.setdefault("checkpoint_dir", str(out / "checkpoints"))
        runs.append((combo, folder, params))
    todo = [(c, f, p) for c, f, p in runs if not _finished(f, p)]
    report: dict[str, Any] = {"ran": [], "skipped": [str(f) for c, f, p in runs
                                                    if (c, f, p) not in todo],
                              "failed": {}}
    if todo:
        client = _client(scheduler, workers)
        futures = {client.submit(execute, str(notebook), str(f), p, pure=False): (f, p)
                   for _, f, p in todo}
        from distributed import as_completed

        with tqdm(total=len(runs), initial=len(runs) - len(todo), desc=notebook.stem,
                  unit="run", disable=not progress) as bar:
            for future in as_completed(futures, loop=client.loop):
                folder, params = futures[future]
                try:
                    outcome = future.result()
                except Exception as err:  # noqa: BLE001 - a killed worker, say
                    # A worker can die after the run wrote .done but before Dask heard of it.
                    outcome = ({"ok": True} if _finished(folder, params) else
                               {"ok": False, "error": f"{type(err).__name__}: {err}"})
                if outcome["ok"]:
                    report["ran"].append(str(folder))
                else:
                    report["failed"][str(folder)] = outcome["error"]
                bar.update(1)
    finished = [(c, f) for c, f, p in runs if str(f) not in report["failed"]]
    report["tables"] = {k: str(v) for k, v in gather_tables(out, finished).items()}
    return report


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m entropic_ae.sweep", description=__doc__.split("::")[0].strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebook", help="the chapter to run, e.g. notebooks/01_entropy.ipynb")
    parser.add_argument("--out", required=True, help="folder for the runs and the tables")
    parser.add_argument("-f", "--parameters-file", action="append", default=[],
                        metavar="PARAMS.yaml", help="parameters for every run (YAML)")
    parser.add_argument("-p", "--parameter", action="append", nargs="+", default=[],
                        metavar=("NAME", "VALUE"),
                        help="a swept parameter and its values: -p seed 0 1 2")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=None,
                       help="local worker processes (default: one per core)")
    where.add_argument("--scheduler", default=None,
                       help="address of an existing Dask scheduler (default: "
                            "$ENTROPIC_AE_SCHEDULER, else a local cluster)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The command line (see the module docstring)."""
    import yaml

    parser = _parser()
    args = parser.parse_args(argv)
    base: dict[str, Any] = {}
    for path in args.parameters_file:
        try:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            parser.error(f"cannot read {path}: {err}")
        if not isinstance(loaded, dict):
            parser.error(f"{path} must hold a mapping of parameter names to values")
        base.update(loaded)
    axes = []
    for entry in args.parameter:
        if len(entry) < 2:
            parser.error(f"-p {entry[0]} needs at least one value")
        try:
            axes.append((entry[0], [_yaml_value(v) for v in entry[1:]]))
        except ValueError as err:
            parser.error(str(err))
    if args.workers is not None and args.workers < 1:
        parser.error("--workers must be at least 1")
    try:
        report = sweep(args.notebook, args.out, axes, base, workers=args.workers,
                       scheduler=args.scheduler, progress=not args.no_progress)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
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
