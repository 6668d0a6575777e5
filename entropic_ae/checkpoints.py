"""Checkpoint files of the training loop: written atomically, checksummed, read back strictly.

A checkpoint is a ``torch.save`` of a dict holding ``format``, ``epoch`` and whatever the loop
needs to resume (model, optimiser, RNG states, history, a fingerprint of the configuration),
plus ``sha256``, the SHA-256 of all the rest (:func:`content_sha256`). Its bytes depend only on
what was trained, never on when: wall-clock times live outside it, so two runs of the same
configuration write the same file.

:func:`load_checkpoint` refuses (:class:`CheckpointError`) anything else: a damaged file is
never resumed from.
"""

from __future__ import annotations

import hashlib
import io
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from entropic_ae._io import atomic_write

__all__ = ["FORMAT", "CheckpointError", "content_sha256", "get_rng_state", "hash_tensor",
           "load_checkpoint", "save_checkpoint", "set_rng_state"]

#: Format 3: no wall-clock times inside, plateau state, the best weights.
FORMAT = 3
_REQUIRED = ("format", "epoch", "sha256")


class CheckpointError(ValueError):
    """A checkpoint file is damaged, incomplete, of another format, or written for another
    configuration; ``path`` names it."""

    def __init__(self, path: str | Path, message: str) -> None:
        self.path = Path(path)
        super().__init__(f"checkpoint {self.path}: {message}")


def hash_tensor(h: Any, t: torch.Tensor) -> None:
    """Feed the bytes of ``t`` (on the CPU, in C order) into the hash ``h``, in 4 Mi-element
    chunks (the digest is that of all the bytes at once)."""
    flat = t.detach().cpu().contiguous().reshape(-1)
    for i in range(0, flat.numel(), 1 << 22):
        h.update(flat[i:i + (1 << 22)].view(torch.uint8).numpy())


def _hash_into(h: Any, obj: object) -> None:
    """Feed ``obj`` (nested dicts, lists, tuples, tensors, numbers, strings, None) into ``h``
    unambiguously: a type tag, then the length or the value (tensors: dtype, shape, bytes)."""
    if isinstance(obj, torch.Tensor):
        h.update(f"T{obj.dtype}{tuple(obj.shape)};".encode())
        hash_tensor(h, obj)
    elif isinstance(obj, Mapping):
        h.update(f"D{len(obj)};".encode())
        for key in sorted(obj, key=repr):
            _hash_into(h, key)
            _hash_into(h, obj[key])
    elif isinstance(obj, list | tuple):
        h.update(f"{'L' if isinstance(obj, list) else 'U'}{len(obj)};".encode())
        for item in obj:
            _hash_into(h, item)
    elif obj is None or isinstance(obj, bool | int | float | str | bytes):
        h.update(f"{type(obj).__name__}:{obj!r};".encode())
    else:
        raise TypeError(f"cannot checksum a {type(obj).__name__} in a checkpoint")


def content_sha256(state: Mapping[str, Any]) -> str:
    """SHA-256 of everything in ``state`` except its ``sha256`` entry."""
    h = hashlib.sha256()
    _hash_into(h, {k: v for k, v in state.items() if k != "sha256"})
    return h.hexdigest()


def save_checkpoint(path: str | Path, state: Mapping[str, Any]) -> Path:
    """Write ``state`` with ``format`` and its ``sha256`` to ``path`` atomically."""
    state = {**state, "format": FORMAT}
    state["sha256"] = content_sha256(state)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return atomic_write(path, buffer.getvalue())


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """The checkpoint at ``path`` after checking its format, its keys and its SHA-256."""
    path = Path(path)
    fix = "delete it to train again"
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # noqa: BLE001 - re-raised with the path
        raise CheckpointError(path, f"cannot be read ({err}); {fix}") from err
    fmt = state.get("format") if isinstance(state, dict) else None
    if fmt != FORMAT:
        raise CheckpointError(path, f"is not a checkpoint of format {FORMAT} (found "
                                    f"{fmt!r}: an older entropic_ae, or another file); {fix}")
    missing = [k for k in _REQUIRED if k not in state]
    if missing:
        raise CheckpointError(path, f"lacks {', '.join(missing)} (incomplete); {fix}")
    try:
        actual = content_sha256(state)
    except TypeError as err:
        raise CheckpointError(path, f"holds unexpected content ({err}); {fix}") from err
    if actual != state["sha256"]:
        raise CheckpointError(path, "its content does not match its SHA-256 checksum (damaged "
                                    f"on disk or edited), so it was not used; {fix}")
    return state


def get_rng_state() -> dict[str, Any]:
    """The states of Python's, NumPy's and torch's (CPU and CUDA) global generators."""
    keys, pos, has_gauss, gauss = np.random.get_state()[1:]
    version, py_state, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": {"version": int(version), "state": torch.tensor(py_state, dtype=torch.int64),
                   "gauss": py_gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`get_rng_state` returned."""
    torch.set_rng_state(state["torch"].cpu())
    npst = state["numpy"]
    np.random.set_state(("MT19937", npst["keys"].numpy().astype(np.uint32), npst["pos"],
                         npst["has_gauss"], npst["gauss"]))
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = [s.cpu() for s in state["cuda"]]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
