"""File writing and content digests shared by the whole package (private).

* :func:`atomic_write` writes a file through a temporary file of its own in the same folder
  and ``os.replace``: readers and concurrent writers never see a partial file.
* :func:`file_sha256` is the SHA-256 of a file's bytes.
* :func:`digest` is the SHA-256 of a value's canonical JSON text (sorted keys, integral floats
  written as ints, so that values Python calls equal, ``2 == 2.0``, digest alike).
* :func:`source_digest` is the SHA-256 of the Python code under a folder, blind to comments,
  docstrings and formatting: it changes exactly when some code changes.
"""

from __future__ import annotations

import ast
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["atomic_write", "canonical_json", "digest", "file_sha256", "source_digest"]


def atomic_write(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` atomically; create its folder; return the
    path. The file is readable by everyone (mode 644), like a plain ``open(..., "w")``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
        os.chmod(tmp, 0o644)  # mkstemp creates files readable by their owner only
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _canonical(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            return repr(value)  # 'nan', 'inf': JSON has no literal for them
        return int(value) if value.is_integer() else value
    if isinstance(value, int):
        return value
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    raise TypeError(f"cannot digest a {type(value).__name__}: use numbers, strings, bools, None, "
                    "lists and dicts")


def canonical_json(value: Any) -> str:
    """The canonical JSON text of ``value`` (sorted keys, no spaces, integral floats as ints,
    non-finite floats as strings)."""
    return json.dumps(_canonical(value), sort_keys=True, separators=(",", ":"))


def digest(value: Any, length: int = 64) -> str:
    """SHA-256 (hex, its first ``length`` characters) of :func:`canonical_json` ``(value)``."""
    if not 1 <= length <= 64:
        raise ValueError(f"length must be in 1..64, got {length}")
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()[:length]


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        scopes = ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef
        first = body[0] if isinstance(node, scopes) and body else None
        if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return tree


_CODE_DIGESTS: dict[bytes, bytes] = {}  # SHA-256 of a file's bytes -> digest of its code


def _code_digest(source: bytes, filename: str) -> bytes:
    """SHA-256 of the syntax tree of ``source`` without docstrings, remembered per content (a
    process digests the package several times: per family, for measurements, for sweeps)."""
    key = hashlib.sha256(source).digest()
    if key not in _CODE_DIGESTS:
        tree = _strip_docstrings(ast.parse(source, filename=filename))
        _CODE_DIGESTS[key] = hashlib.sha256(ast.dump(tree).encode()).digest()
    return _CODE_DIGESTS[key]


def source_digest(folder: str | os.PathLike, exclude: Iterable[str] = ()) -> str:
    """SHA-256 of every ``*.py`` file under ``folder`` (relative path and syntax tree, without
    docstrings; comments and formatting never reach the tree), except the relative paths or
    folder prefixes in ``exclude`` (``"plotting.py"``, ``"chapters/"``)."""
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"folder must be a directory, got {root}")
    skip = tuple(exclude)
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if any(rel == s or (s.endswith("/") and rel.startswith(s)) for s in skip):
            continue
        h.update(rel.encode() + b"\0" + _code_digest(path.read_bytes(), str(path)) + b"\0")
    return h.hexdigest()
