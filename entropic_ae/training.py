"""Reproducibility helpers and the one training loop every chapter uses.

:func:`train` minimises a weighted sum of named loss terms, ``loss = Σ_k w_k(epoch) · term_k``,
records every term per epoch in a :class:`History`, shows a ``tqdm`` bar, and checkpoints after
every epoch so that a rerun with the same configuration resumes (or just loads) instead of
training again. :func:`evaluate` computes the same terms on held-out data.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.optim import Optimizer
from torch.utils.data import DataLoader, Dataset, TensorDataset
from tqdm.auto import tqdm

from entropic_ae._checks import is_integer, is_real

if TYPE_CHECKING:
    import pandas

__all__ = [
    "History",
    "LossFn",
    "Schedule",
    "checkpoint_path",
    "constant",
    "cosine",
    "data_device",
    "default_device",
    "evaluate",
    "linear_warmup",
    "resolve_precision",
    "seeded",
    "set_seed",
    "steps",
    "train",
]


def _check_seed(seed: object) -> int:
    if not is_integer(seed):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    return int(seed)


def set_seed(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's random number generators (all devices)."""
    seed = _check_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def seeded(factory: Callable[[], nn.Module], seed: int) -> nn.Module:
    """``factory()`` called with the global RNGs seeded as by :func:`set_seed` ``(seed)``: the
    same seed builds the same initial weights. The RNG states (Python, NumPy, PyTorch CPU and
    CUDA) are restored afterwards, so the call changes nothing else.

    ``train(seeded(lambda: MLPAutoencoder(...), seed), ..., seed=seed)`` is the reproducible
    way to train a model built outside :func:`train`; passing the factory itself to
    :func:`train` does the same.
    """
    seed = _check_seed(seed)
    if not callable(factory):
        raise TypeError(f"factory must be a zero-argument callable returning a torch.nn.Module, "
                        f"got {type(factory).__name__}")
    py_state, np_state = random.getstate(), np.random.get_state()
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    try:
        with torch.random.fork_rng(devices=cuda):
            set_seed(seed)
            model = factory()
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    if not isinstance(model, nn.Module):
        raise TypeError(f"the model factory returned {type(model).__name__}, expected a "
                        "torch.nn.Module")
    return model


def default_device(prefer: str | torch.device | None = "auto") -> torch.device:
    """The device to compute on: ``"auto"``/None picks CUDA, then Apple MPS, then the CPU.

    Any other value (``"cpu"``, ``"cuda:1"``, a ``torch.device``) is returned as a device,
    after checking that it is available.
    """
    if prefer is None or prefer == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(prefer)
    except (RuntimeError, TypeError) as err:
        raise ValueError(
            f"device must be 'auto', 'cpu', 'cuda[:n]' or 'mps', got {prefer!r}"
        ) from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but no CUDA GPU is available; use 'auto'")
    if device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(
                "device 'mps' was requested but Apple MPS is not available; use 'auto'"
            )
    return device


# --- Schedules -----------------------------------------------------------------------------------

Schedule = Callable[[int], float]
"""A loss-term weight as a function of the 0-based epoch index."""


def _check_number(name: str, value: object) -> float:
    if not is_real(value):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return float(value)


def _check_epochs(name: str, value: object, minimum: int = 0) -> int:
    if not is_integer(value):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


@dataclass(frozen=True)
class constant:  # noqa: N801  (used like a function)
    """``w(e) = value`` for every epoch ``e``."""

    value: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", _check_number("value", self.value))

    def __call__(self, epoch: int) -> float:
        return self.value


@dataclass(frozen=True)
class linear_warmup:  # noqa: N801
    """``w(e) = start + (target - start) · min(e / warmup_epochs, 1)``: ``start`` at epoch 0,
    ``target`` from epoch ``warmup_epochs`` on (``target`` throughout if ``warmup_epochs == 0``)."""

    target: float
    warmup_epochs: int
    start: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "target", _check_number("target", self.target))
        object.__setattr__(self, "start", _check_number("start", self.start))
        _check_epochs("warmup_epochs", self.warmup_epochs)

    def __call__(self, epoch: int) -> float:
        if self.warmup_epochs == 0:
            return self.target
        frac = min(epoch / self.warmup_epochs, 1.0)
        return self.start + (self.target - self.start) * frac


@dataclass(frozen=True)
class cosine:  # noqa: N801
    """Cosine annealing ``w(e) = end + (start - end) · (1 + cos(π · min(e, T) / T)) / 2`` with
    ``T = epochs``: ``start`` at epoch 0, ``end`` from epoch ``T`` on."""

    start: float
    end: float
    epochs: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", _check_number("start", self.start))
        object.__setattr__(self, "end", _check_number("end", self.end))
        _check_epochs("epochs", self.epochs, minimum=1)

    def __call__(self, epoch: int) -> float:
        frac = min(epoch, self.epochs) / self.epochs
        return self.end + (self.start - self.end) * (1.0 + math.cos(math.pi * frac)) / 2.0


@dataclass(frozen=True)
class steps:  # noqa: N801
    """Piecewise constant: ``w(e) = values[max{k in values : k <= e}]``, e.g. ``{0: 0.0, 5: 1.0}``
    (0 for epochs 0-4, then 1). The smallest key must be 0."""

    values: Mapping[int, float]

    def __post_init__(self) -> None:
        if not isinstance(self.values, Mapping) or not self.values:
            raise TypeError("values must be a non-empty mapping {first_epoch: weight}")
        clean = {}
        for k, v in self.values.items():
            clean[_check_epochs("an epoch key of values", k)] = _check_number(f"values[{k}]", v)
        if min(clean) != 0:
            raise ValueError(f"the first epoch key must be 0, got {min(clean)}")
        object.__setattr__(self, "values", dict(sorted(clean.items())))

    def __call__(self, epoch: int) -> float:
        current = 0.0
        for start, value in self.values.items():
            if start > epoch:
                break
            current = value
        return current


def _as_schedule(name: str, weight: float | Schedule) -> Schedule:
    if callable(weight):
        return weight
    try:
        return constant(weight)
    except (TypeError, ValueError) as err:
        raise type(err)(f"weights[{name!r}]: {err}") from None


def _weight_at(name: str, schedule: Schedule, epoch: int) -> float:
    w = schedule(epoch)
    if isinstance(w, torch.Tensor) and w.numel() == 1:
        w = w.item()
    if not is_real(w) or not math.isfinite(w):
        raise ValueError(f"the schedule of {name!r} returned {w!r} at epoch {epoch}; "
                         "expected a finite number")
    return float(w)


# --- History -------------------------------------------------------------------------------------


@dataclass
class History:
    """Per-epoch record of a training run.

    ``terms[name][e]`` is the mean over the samples of epoch ``e`` of the unweighted term
    ``name`` (each batch's value weighted by its size), ``terms["loss"]`` the same mean of the
    weighted total ``Σ_k w_k(e) · term_k`` that was minimised; ``weights[name][e]`` is
    ``w_k(e)``; ``epoch_seconds[e]`` the wall-clock time of epoch ``e``. :func:`train` sets
    ``model`` to the trained model (the one it built, when given a factory); it takes no part in
    comparisons or in :meth:`to_dict`.
    """

    terms: dict[str, list[float]] = field(default_factory=dict)
    weights: dict[str, list[float]] = field(default_factory=dict)
    epoch_seconds: list[float] = field(default_factory=list)
    model: nn.Module | None = field(default=None, compare=False, repr=False)

    @property
    def epochs(self) -> int:
        """Number of completed epochs."""
        return len(self.epoch_seconds)

    def last(self) -> dict[str, float]:
        """The terms (and ``"loss"``) of the last completed epoch."""
        if not self.epochs:
            raise ValueError("the history is empty: no epoch has been completed")
        return {name: values[-1] for name, values in self.terms.items()}

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python copy (JSON- and checkpoint-friendly)."""
        return {
            "terms": {k: list(v) for k, v in self.terms.items()},
            "weights": {k: list(v) for k, v in self.weights.items()},
            "epoch_seconds": list(self.epoch_seconds),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> History:
        """Inverse of :meth:`to_dict`."""
        try:
            return cls(
                terms={str(k): [float(x) for x in v] for k, v in d["terms"].items()},
                weights={str(k): [float(x) for x in v] for k, v in d["weights"].items()},
                epoch_seconds=[float(x) for x in d["epoch_seconds"]],
            )
        except (KeyError, AttributeError, TypeError) as err:
            raise ValueError(
                "not a History dict: expected keys 'terms', 'weights', 'epoch_seconds'"
            ) from err

    def as_frame(self) -> pandas.DataFrame:
        """A pandas DataFrame indexed by epoch (1-based): one column per term, ``w_<name>``
        per weight and ``seconds``."""
        import pandas as pd

        columns: dict[str, list[float]] = dict(self.terms)
        columns.update({f"w_{k}": v for k, v in self.weights.items()})
        columns["seconds"] = self.epoch_seconds
        frame = pd.DataFrame(columns, index=pd.RangeIndex(1, self.epochs + 1, name="epoch"))
        return frame

    def _append(self, terms: Mapping[str, float], weights: Mapping[str, float], s: float) -> None:
        for name, value in terms.items():
            self.terms.setdefault(name, []).append(value)
        for name, value in weights.items():
            self.weights.setdefault(name, []).append(value)
        self.epoch_seconds.append(s)


# --- Data ----------------------------------------------------------------------------------------


_FLOAT_HINT = ("convert it to floating point first, e.g. images as float32 in [0, 1]: "
               "x.float() / 255")


def _check_inputs(x: torch.Tensor, where: str, items: Sequence[int] | None = None) -> None:
    """TypeError unless ``x`` is floating point; ValueError if it holds NaN or infinities
    (naming how many and the first sample, or Dataset item, that holds one)."""
    if not x.is_floating_point():
        raise TypeError(f"{where} must be floating point, got {x.dtype}; {_FLOAT_HINT}")
    n = x.shape[0] if x.dim() else 1
    rows = max(1, (1 << 24) // max(1, x[:1].numel()))
    for i in range(0, n, rows):
        bad = ~torch.isfinite(x[i : i + rows].reshape(min(rows, n - i), -1))
        if bad.any():
            count = int((~torch.isfinite(x)).sum())
            first = i + int(bad.any(1).nonzero()[0, 0])
            which = f"sample {first}" if items is None else f"Dataset item {items[first]}"
            raise ValueError(f"{where} hold {count} non-finite value(s) (NaN or infinite, first "
                             f"in {which}); training on them turns the weights into NaN: "
                             "remove or repair those samples first")


def _batch_bounds(n: int, batch_size: int) -> list[tuple[int, int]]:
    """``[start, stop)`` of each batch of an epoch; a final batch of one sample is merged into
    the previous one (batch norm cannot normalise a single sample)."""
    bounds = [(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        bounds[-2:] = [(bounds[-2][0], n)]
    return bounds


class _Batches:
    """Shuffled mini-batches of inputs from a tensor (index slicing on the device) or a Dataset.

    Inputs must be floating point and finite: a tensor is checked once here, a Dataset's
    batches one by one before they are used."""

    def __init__(self, data: torch.Tensor | Dataset, batch_size: int, device: torch.device):
        if isinstance(data, TensorDataset):
            data = data.tensors[0]
        self.batch_size = batch_size
        self.device = device
        if isinstance(data, torch.Tensor):
            if data.dim() < 1 or data.shape[0] == 0:
                raise ValueError(f"data must hold at least one sample, got shape "
                                 f"{tuple(data.shape)}")
            if not data.is_floating_point():
                raise TypeError(f"data must be floating point, got {data.dtype}; {_FLOAT_HINT}")
            home = data_device(data.numel() * data.element_size(), device)
            self.tensor: torch.Tensor | None = data.to(home)
            if home.type == "cpu" and device.type == "cuda":
                self.tensor = self.tensor.pin_memory()
            _check_inputs(self.tensor, "data")
            self.dataset: Dataset | None = None
            self.n = data.shape[0]
        elif isinstance(data, Dataset):
            try:
                self.n = len(data)  # type: ignore[arg-type]
            except TypeError as err:
                raise TypeError("a Dataset passed as data must define __len__") from err
            if self.n == 0:
                raise ValueError("data is an empty Dataset")
            self.tensor, self.dataset = None, data
        else:
            raise TypeError(
                f"data must be a torch.Tensor of inputs or a torch Dataset, got "
                f"{type(data).__name__}"
            )

    def fingerprint(self) -> str:
        """Shape, dtype and SHA-256 of the tensor's bytes in sample order (any change of an
        element or of the order changes it); a Dataset is known by its type and length only."""
        if self.tensor is None:
            return f"{type(self.dataset).__name__} of {self.n} items"
        digest = hashlib.sha256()
        row_bytes = max(1, self.tensor[:1].numel() * self.tensor.element_size())
        rows = max(1, (1 << 24) // row_bytes)  # chunks of about 16 MB: no full-size copy
        for i in range(0, self.n, rows):
            digest.update(_tensor_bytes(self.tensor[i : i + rows]))
        return (f"tensor {tuple(self.tensor.shape)} {self.tensor.dtype} "
                f"sha256 {digest.hexdigest()}")

    def __call__(self, generator: torch.Generator) -> Iterator[torch.Tensor]:
        perm = torch.randperm(self.n, generator=generator)
        bounds = _batch_bounds(self.n, self.batch_size)
        if self.tensor is not None:
            perm = perm.to(self.tensor.device)
            for start, stop in bounds:
                yield self.tensor.index_select(0, perm[start:stop]).to(self.device,
                                                                        non_blocking=True)
            return
        index_lists = [perm[start:stop].tolist() for start, stop in bounds]
        # own generator: creating a DataLoader iterator must not draw from the global RNG
        loader = DataLoader(self.dataset, batch_sampler=index_lists, num_workers=0,
                            generator=torch.Generator().manual_seed(0))
        for items, batch in zip(index_lists, loader, strict=True):
            x = batch[0] if isinstance(batch, (list, tuple)) else batch
            if not isinstance(x, torch.Tensor):
                raise TypeError(f"the Dataset's items must be x or (x, y, ...) with x a tensor, "
                                f"got batches of {type(x).__name__}")
            x = x.to(self.device, non_blocking=True)
            _check_inputs(x, "the Dataset's inputs", items)
            yield x


def data_device(n_bytes: int, device: torch.device, free_bytes: int | None = None,
                fraction: float = 0.5) -> torch.device:
    """Where the training tensor lives: on ``device`` when it is the CPU or when the tensor
    takes at most ``fraction`` of the device's free memory (``free_bytes``, default: CUDA's
    own report), else on the CPU (pinned), with each batch copied over as it is used."""
    if device.type != "cuda":
        return device
    if free_bytes is None:
        free_bytes = torch.cuda.mem_get_info(device)[0]
    return device if n_bytes <= fraction * free_bytes else torch.device("cpu")


def resolve_precision(precision: str | None, device: torch.device) -> str:
    """``"fp32"`` or ``"bf16"``: ``None``/``"auto"`` means bf16 autocast on CUDA GPUs that
    support it and fp32 elsewhere."""
    if precision in (None, "auto"):
        cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return "bf16" if cuda_bf16 else "fp32"
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be 'auto', 'fp32' or 'bf16', got {precision!r}")
    return precision


def _uses_convolutions(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d | nn.ConvTranspose2d) for m in model.modules())


def _tensor_bytes(t: torch.Tensor) -> np.ndarray:
    """The bytes of ``t``'s elements in row-major order, on the CPU (a uint8 array, no copy
    when ``t`` is already a contiguous CPU tensor)."""
    flat = t.detach().cpu().contiguous().reshape(-1)
    return flat.view(torch.uint8).numpy() if flat.numel() else np.empty(0, np.uint8)


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """CPU generator for epoch ``epoch``'s shuffle, seeded from ``(seed, epoch)`` only."""
    state = np.random.SeedSequence([seed % 2**64, epoch]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


# --- Checkpoints ---------------------------------------------------------------------------------

#: Format 2 added the SHA-256 of the content and a byte-exact data fingerprint.
_CHECKPOINT_FORMAT = 2
_CHECKPOINT_KEYS = ("format", "epoch", "model", "optimizer", "history", "rng", "fingerprint",
                    "sha256")


def _get_rng_state() -> dict[str, Any]:
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
    mps = getattr(torch, "mps", None)
    if mps is not None and getattr(torch.backends, "mps", None) is not None \
            and torch.backends.mps.is_available():
        state["mps"] = torch.mps.get_rng_state()
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
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
    if "mps" in state and getattr(torch.backends, "mps", None) is not None \
            and torch.backends.mps.is_available():
        torch.mps.set_rng_state(state["mps"].cpu())


def _fingerprint(model: nn.Module, opt: Optimizer, batch_size: int, seed: int,
                 batches: _Batches) -> dict[str, str]:
    params = "; ".join(f"{k} {tuple(v.shape)} {str(v.dtype).removeprefix('torch.')}"
                       for k, v in model.state_dict().items())
    groups = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
    hyper = "; ".join(", ".join(f"{k}={v!r}" for k, v in sorted(g.items())) for g in groups)
    return {
        "model": f"{type(model).__qualname__}: {params}",
        "optimizer": f"{type(opt).__qualname__}: {hyper}",
        "batch_size": str(batch_size),
        "seed": str(seed),
        "data": batches.fingerprint(),
    }


def _hash_into(digest: Any, obj: object) -> None:
    """Feed ``obj`` (nested dicts, lists, tuples, tensors, numbers, strings, None) into
    ``digest`` unambiguously: a type tag, then the length or the value (tensors: dtype, shape
    and bytes)."""
    if isinstance(obj, torch.Tensor):
        digest.update(f"T{obj.dtype}{tuple(obj.shape)};".encode())
        digest.update(_tensor_bytes(obj))
    elif isinstance(obj, Mapping):
        digest.update(f"D{len(obj)};".encode())
        for key in sorted(obj, key=repr):
            _hash_into(digest, key)
            _hash_into(digest, obj[key])
    elif isinstance(obj, (list, tuple)):
        digest.update(f"{'L' if isinstance(obj, list) else 'U'}{len(obj)};".encode())
        for item in obj:
            _hash_into(digest, item)
    elif obj is None or isinstance(obj, (bool, int, float, str, bytes)):
        digest.update(f"{type(obj).__name__}:{obj!r};".encode())
    else:
        raise TypeError(f"cannot checksum a {type(obj).__name__} in a checkpoint")


def _content_sha256(state: Mapping[str, Any]) -> str:
    """SHA-256 of everything in a checkpoint except its stored checksum."""
    digest = hashlib.sha256()
    _hash_into(digest, {k: v for k, v in state.items() if k != "sha256"})
    return digest.hexdigest()


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """``torch.save`` of ``state`` plus its SHA-256 to a temporary file of its own next to
    ``path``, then ``os.replace`` (atomic: readers and concurrent writers never see a partial
    file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {**state, "sha256": _content_sha256(state)}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _load_checkpoint(path: Path, device: torch.device) -> dict[str, Any]:
    """The checkpoint at ``path``, after checking its format, its keys and its SHA-256;
    ValueError naming the file (and telling to delete it) for anything else."""
    retrain = "delete it to retrain (or choose another checkpoint path)"
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # noqa: BLE001 - re-raised with the path in the message
        raise ValueError(f"could not read checkpoint {path}: {err}; {retrain}") from err
    fmt = state.get("format") if isinstance(state, dict) else None
    if isinstance(fmt, int) and not isinstance(fmt, bool) and 0 < fmt < _CHECKPOINT_FORMAT:
        raise ValueError(f"checkpoint {path} has format {fmt}, written by an older version of "
                         f"entropic_ae; this version reads format {_CHECKPOINT_FORMAT} (with a "
                         f"checksum and an exact data fingerprint): {retrain}")
    if fmt != _CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a checkpoint written by entropic_ae.training.train "
                         f"(format {_CHECKPOINT_FORMAT}): {retrain}")
    missing = [k for k in _CHECKPOINT_KEYS if k not in state]
    if missing:
        raise ValueError(f"checkpoint {path} lacks {', '.join(missing)}: it is incomplete or "
                         f"was not written by entropic_ae.training.train; {retrain}")
    try:
        actual = _content_sha256(state)
    except TypeError as err:
        raise ValueError(f"checkpoint {path} holds unexpected content ({err}); {retrain}") from err
    if actual != state["sha256"]:
        raise ValueError(f"checkpoint {path} is corrupted: its content does not match the "
                         f"SHA-256 checksum stored in it (damaged on disk or edited), so it "
                         f"was not used: {retrain}")
    return state


def checkpoint_path(directory: str | Path, name: str, **config: Any) -> Path:
    """``directory / f"{name}-{h}.pt"`` with ``h`` a short hash of ``config``'s sorted items.

    Use the parameters a run depends on as ``config`` so that different settings get different
    files: ``checkpoint_path(results_dir, "mlp_ec", epochs=..., lam=0.3, limit=limit)``. (Leave
    ``epochs`` out to let a longer run resume a shorter one.) The hash also covers the checkpoint
    format, so checkpoints of an older format get other names and are retrained, not reused.
    """
    if not isinstance(name, str) or not name or os.sep in name:
        raise ValueError(f"name must be a non-empty file-name stem, got {name!r}")
    # the checkpoint format is part of the name: files of an older format are not reused
    text = f"format {_CHECKPOINT_FORMAT}: " + repr(sorted((str(k), repr(v))
                                                          for k, v in config.items()))
    digest = hashlib.sha1(text.encode()).hexdigest()[:10]
    return Path(directory) / f"{name}-{digest}.pt"


# --- The loop ------------------------------------------------------------------------------------

LossFn = Callable[[nn.Module, torch.Tensor], Mapping[str, torch.Tensor]]


def _check_terms(terms: object, epoch: int) -> Mapping[str, torch.Tensor]:
    if not isinstance(terms, Mapping) or not terms:
        raise TypeError(f"loss_fn must return a non-empty mapping {{name: scalar tensor}}, got "
                        f"{type(terms).__name__} at epoch {epoch}")
    for name, value in terms.items():
        if not isinstance(name, str):
            raise TypeError(f"loss term names must be str, got {name!r}")
        if name == "loss":
            raise ValueError("'loss' is reserved for the weighted total; rename that term")
        if not isinstance(value, torch.Tensor) or value.numel() != 1:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise TypeError(f"loss term {name!r} must be a scalar tensor, got {shape}")
    return terms


def _raise_non_finite(names: Sequence[str], values: Sequence[float], epoch: int) -> None:
    bad = [f"{n}={v}" for n, v in zip(names, values, strict=True) if not math.isfinite(v)]
    if bad:
        raise FloatingPointError(
            f"non-finite loss term(s) in epoch {epoch} (0-based): {', '.join(bad)}; lower the "
            "learning rate or the term's weight, or check the loss for log(0) / division by 0"
        )


def _adam(model: nn.Module, lr: float) -> Optimizer:
    """``Adam(lr)``, as the fused single-kernel implementation where PyTorch has it (CPU/CUDA,
    torch >= 2.4: about half the per-step cost of the default for small models)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if params and all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params):
        try:
            return torch.optim.Adam(params, lr=lr, fused=True)
        except (RuntimeError, TypeError, ValueError):
            pass
    return torch.optim.Adam(params, lr=lr)


def train(
    model: nn.Module | Callable[[], nn.Module],
    loss_fn: LossFn,
    data: torch.Tensor | Dataset,
    *,
    epochs: int,
    weights: Mapping[str, float | Schedule] | None = None,
    lr: float = 1e-3,
    batch_size: int = 128,
    seed: int = 0,
    device: str | torch.device | None = "auto",
    checkpoint: str | Path | None = None,
    progress: bool = True,
    optimizer: Callable[[Iterable[nn.Parameter]], Optimizer] | None = None,
    callback: Callable[[int, History], bool | None] | None = None,
    desc: str = "training",
    precision: str | None = "auto",
    channels_last: bool | None = None,
) -> History:
    """Minimise ``loss = Σ_k w_k(epoch) · term_k`` over ``epochs`` epochs of shuffled batches.

    ``loss_fn(model, x)`` returns named scalar terms for a batch ``x`` of inputs (only the
    inputs: a Dataset's items may be ``x`` or ``(x, y, ...)``). ``weights`` maps term names to a
    number or a :data:`Schedule`; a term without an entry has weight 1, a term of weight 0 is
    only logged. The optimiser is ``Adam(lr)`` (PyTorch's fused implementation where available)
    unless ``optimizer(params)`` builds another.

    ``model`` is a module, or a zero-argument factory that builds one (e.g. the class, or
    ``lambda: MLPAutoencoder(...)``): ``train`` then builds it with the RNGs seeded by ``seed``
    (as :func:`seeded` does) and returns it as ``history.model``. **The seed does not reach a
    model built before the call**: its initial weights come from whatever the RNGs held then,
    so for two identical runs pass a factory, or build the model with ``seeded(factory, seed)``.

    Batches: each epoch is a fresh permutation cut into batches of ``batch_size``; when the last
    batch would hold a single sample (``n % batch_size == 1``), that sample joins the previous
    batch, for every model alike (a batch-norm layer cannot normalise one sample). A model with
    batch norm and a dataset of one sample, or ``batch_size=1``, is refused up front.

    Data: inputs must be floating point (``TypeError`` otherwise: convert images to float in
    [0, 1]) and finite; a tensor holding NaN or infinities is refused before the first step,
    a Dataset's batch before it is used (``ValueError`` naming the sample or item).

    Reproducibility: a fresh run calls :func:`set_seed` ``(seed)``; epoch ``e`` is shuffled by its
    own generator seeded from ``(seed, e)``. With ``checkpoint``, the model, optimiser, history,
    all RNG states and a fingerprint of the configuration (model parameter shapes, optimiser,
    batch size, seed, data: a tensor's shape, dtype and SHA-256 of its bytes in order, a
    Dataset's type and length) are written atomically after every epoch, with the SHA-256 of
    that content. If the file exists, training resumes from it, so an interrupted run ends
    bit-identical (on the CPU) to an uninterrupted one, and a run whose checkpoint has already
    reached ``epochs`` returns the stored history at once (loading the weights into ``model``).
    ``epochs`` is not part of the fingerprint: asking for more epochs continues training. A
    checkpoint written for another configuration, or one that is damaged (checksum mismatch),
    incomplete, of an older format or not a checkpoint at all, raises ``ValueError`` naming the
    file; it is never resumed from.

    GPUs: ``precision="auto"`` (default) runs the forward pass and the loss under bf16 autocast
    on CUDA GPUs that support it (``"fp32"`` switches it off, ``"bf16"`` forces it, also on the
    CPU); parts that compute in float64 on purpose (the entropy estimator's neighbour search)
    stay exact, since autocast leaves float64 alone. Convolutional models use the
    ``channels_last`` memory layout on CUDA (``channels_last=None``: automatically), cuDNN picks
    its fastest kernels (``cudnn.benchmark``, restored afterwards), and a training tensor stays
    on the GPU when it takes at most half of its free memory (:func:`data_device`). The
    precision is part of the checkpoint's fingerprint.

    ``callback(epoch, history)`` runs after each epoch (0-based ``epoch``); returning True stops
    training. Returns the :class:`History`, with the trained model as ``history.model``; a
    module passed as ``model`` is trained in place, moved to the device and left in eval mode.
    A term whose epoch mean is NaN or infinite raises ``FloatingPointError`` naming the term and
    the epoch (no checkpoint is written for it).
    """
    if not isinstance(model, nn.Module) and not callable(model):
        raise TypeError(f"model must be a torch.nn.Module or a zero-argument factory that "
                        f"returns one, got {type(model).__name__}")
    if not callable(loss_fn):
        raise TypeError("loss_fn must be callable as loss_fn(model, x) -> {name: scalar tensor}")
    epochs = _check_epochs("epochs", epochs)
    batch_size = _check_epochs("batch_size", batch_size, minimum=1)
    lr = _check_number("lr", lr)
    seed = _check_seed(seed)
    if weights is not None and not isinstance(weights, Mapping):
        raise TypeError(f"weights must be a mapping {{term: weight or schedule}}, got "
                        f"{type(weights).__name__}")
    schedules = {str(k): _as_schedule(str(k), v) for k, v in (weights or {}).items()}
    if "loss" in schedules:
        raise ValueError("'loss' is the weighted total and cannot be given a weight")

    dev = default_device(device)
    precision = resolve_precision(precision, dev)
    batches = _Batches(data, batch_size, dev)
    if not isinstance(model, nn.Module):
        model = seeded(model, seed)
    _check_batch_norm(model, batches.n, batch_size)
    model.to(dev)
    if channels_last is None:
        channels_last = dev.type == "cuda" and _uses_convolutions(model)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    opt = optimizer(model.parameters()) if optimizer is not None else _adam(model, lr)
    if not isinstance(opt, Optimizer):
        raise TypeError(f"optimizer(params) must return a torch Optimizer, got "
                        f"{type(opt).__name__}")
    path = Path(checkpoint) if checkpoint is not None else None
    fingerprint = _fingerprint(model, opt, batch_size, seed, batches) if path else {}
    if path is not None:
        fingerprint["precision"] = precision
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    benchmark = torch.backends.cudnn.benchmark

    history = History(model=model)
    start = 0
    if path is not None and path.exists():
        state = _load_checkpoint(path, dev)
        _check_fingerprint(path, state["fingerprint"], fingerprint)
        model.load_state_dict(state["model"])
        history = History.from_dict(state["history"])
        history.model = model
        start = int(state["epoch"])
        _check_past_weights(path, history, schedules, start)
        # Leave the global RNGs as the run that wrote the checkpoint left them, so that code
        # after train() draws the same numbers whether it trained or loaded.
        _set_rng_state(state["rng"])
        if start >= epochs:
            if start > epochs:
                warnings.warn(f"{path} holds a model trained for {start} epochs, more than the "
                              f"{epochs} requested; returning it as it is", stacklevel=2)
            # the same (full) bar as a run that trains, so notebook outputs do not depend on
            # whether the checkpoint existed
            with tqdm(total=start, initial=start, desc=desc, unit="epoch",
                      disable=not progress, leave=True) as bar:
                if history.epochs:
                    bar.set_postfix({k: f"{v:.4g}" for k, v in history.last().items()})
            model.eval()
            return history
        opt.load_state_dict(state["optimizer"])
    else:
        set_seed(seed)

    bar = tqdm(total=epochs, initial=start, desc=desc, unit="epoch", disable=not progress,
               leave=True)
    torch.backends.cudnn.benchmark = benchmark or dev.type == "cuda"
    try:
        for epoch in range(start, epochs):
            t0 = time.perf_counter()
            model.train()
            w_now = {name: _weight_at(name, s, epoch) for name, s in schedules.items()}
            names: tuple[str, ...] | None = None
            sums: torch.Tensor | None = None
            for xb in batches(_epoch_generator(seed, epoch)):
                if channels_last and xb.dim() == 4:
                    xb = xb.contiguous(memory_format=torch.channels_last)
                with autocast:
                    terms = loss_fn(model, xb)
                if names is None:
                    names = tuple(_check_terms(terms, epoch))
                    unknown = set(schedules) - set(names)
                    if unknown:
                        raise ValueError(f"weights given for {sorted(unknown)}, but loss_fn "
                                         f"returns only {list(names)}")
                    ws = [w_now.get(n, 1.0) for n in names]
                    if all(w == 0 for w in ws):
                        raise ValueError(f"every loss term has weight 0 at epoch {epoch}: "
                                         "nothing to minimise")
                elif tuple(terms) != names:
                    raise ValueError(f"loss_fn returned terms {list(terms)} after {list(names)}"
                                     f" in epoch {epoch}; it must return the same names always")
                total = sum(w * terms[n] for n, w in zip(names, ws, strict=True) if w != 0)
                if not total.requires_grad:
                    raise ValueError("the weighted loss does not depend on any parameter that "
                                     "requires a gradient")
                opt.zero_grad(set_to_none=True)
                total.backward()
                opt.step()
                vec = torch.stack([terms[n].detach().reshape(()).float() for n in names]
                                  + [total.detach().reshape(()).float()])
                vec = vec * xb.shape[0]
                sums = vec if sums is None else sums + vec
            assert sums is not None and names is not None
            means = (sums / batches.n).tolist()
            _raise_non_finite((*names, "loss"), means, epoch)
            term_means = dict(zip(names, means[:-1], strict=True))
            term_means["loss"] = means[-1]
            history._append(term_means, {n: w_now.get(n, 1.0) for n in names},
                            time.perf_counter() - t0)
            if path is not None:
                _save_checkpoint(path, {
                    "format": _CHECKPOINT_FORMAT,
                    "epoch": epoch + 1,
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "history": history.to_dict(),
                    "rng": _get_rng_state(),
                    "fingerprint": fingerprint,
                })
            bar.set_postfix({k: f"{v:.4g}" for k, v in term_means.items()}, refresh=False)
            bar.update(1)
            if callback is not None and callback(epoch, history):
                break
    finally:
        torch.backends.cudnn.benchmark = benchmark
        bar.close()
        model.eval()
    return history


def _check_batch_norm(model: nn.Module, n: int, batch_size: int) -> None:
    """ValueError when ``model`` has batch norm but some batch would hold one sample."""
    if n > 1 and batch_size > 1:
        return  # _batch_bounds never makes a batch of one
    norms = sorted({type(m).__name__ for m in model.modules()
                    if isinstance(m, nn.modules.batchnorm._BatchNorm)})
    if norms:
        why = "the data hold a single sample" if n == 1 else "batch_size is 1"
        raise ValueError(f"the model has batch norm ({', '.join(norms)}), which cannot "
                         f"normalise a batch of one sample in training mode, but {why}; train "
                         "on at least 2 samples per batch")


def _check_fingerprint(path: Path, stored: Mapping[str, str], current: Mapping[str, str]) -> None:
    diffs = [k for k in dict.fromkeys([*current, *stored]) if stored.get(k) != current.get(k)]
    if not diffs:
        return
    what = "model architecture" if "model" in diffs else ", ".join(diffs)
    lines = "\n".join(f"  {k}: checkpoint has {stored.get(k)!r}\n  {' ' * len(k)}  now: "
                      f"{current.get(k)!r}" for k in diffs)
    raise ValueError(f"checkpoint {path} was written for a different {what}:\n{lines}\n"
                     "delete it, or pass another checkpoint path for this configuration "
                     "(see checkpoint_path)")


def _check_past_weights(path: Path, history: History, schedules: Mapping[str, Schedule],
                        done: int) -> None:
    for name, recorded in history.weights.items():
        schedule = schedules.get(name, constant(1.0))
        for e in range(min(done, len(recorded))):
            now = _weight_at(name, schedule, e)
            if not math.isclose(now, recorded[e], rel_tol=1e-9, abs_tol=1e-12):
                raise ValueError(f"checkpoint {path} was trained with weight {recorded[e]} for "
                                 f"{name!r} at epoch {e}, but the weights now give {now}; delete "
                                 "it or use another checkpoint path")


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loss_fn: LossFn,
    data: torch.Tensor | Dataset,
    *,
    batch_size: int = 1024,
    device: str | torch.device | None = None,
    weights: Mapping[str, float] | None = None,
    seed: int | None = 0,
) -> dict[str, float]:
    """Sample-weighted mean of every term of ``loss_fn`` over ``data``, without gradients.

    Returns ``{name: mean}`` plus ``"loss" = Σ_k w_k · mean_k`` (missing weights are 1). The model
    is put in eval mode; ``device=None`` keeps it where it is, otherwise it is moved. Batches are
    taken in order; with ``seed`` set, random draws inside ``loss_fn`` (e.g. a VAE's sampling) use
    a private generator state seeded with it, so the numbers are reproducible and the global RNG
    is left untouched.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    batch_size = _check_epochs("batch_size", batch_size, minimum=1)
    ws: dict[str, float] = {}
    for name, w in (weights or {}).items():
        if callable(w):
            raise TypeError(f"weights[{name!r}] is a schedule; evaluate needs a number "
                            "(e.g. schedule(last_epoch))")
        ws[str(name)] = _check_number(f"weights[{name!r}]", w)
    if device is None:
        first = next(model.parameters(), None)
        dev = first.device if first is not None else torch.device("cpu")
    else:
        dev = default_device(device)
        model.to(dev)
    model.eval()
    batches = _Batches(data, batch_size, dev)
    if batches.tensor is not None:
        chunks: Iterable[torch.Tensor] = (batches.tensor[i : i + batch_size]
                                          for i in range(0, batches.n, batch_size))
    else:  # a Dataset: a fixed shuffle (the order does not change the means)
        chunks = batches(torch.Generator().manual_seed(0))

    fork_devices: list[int] | None = [] if dev.type == "cpu" else None
    with torch.random.fork_rng(devices=fork_devices, enabled=seed is not None,
                               device_type=dev.type if dev.type != "cpu" else "cuda"):
        if seed is not None:
            torch.manual_seed(seed)
        names: tuple[str, ...] | None = None
        sums: torch.Tensor | None = None
        for xb in chunks:
            terms = _check_terms(loss_fn(model, xb), epoch=0)
            if names is None:
                names = tuple(terms)
                unknown = set(ws) - set(names)
                if unknown:
                    raise ValueError(f"weights given for {sorted(unknown)}, but loss_fn returns "
                                     f"only {list(names)}")
            vec = torch.stack([terms[n].reshape(()).float() for n in names]) * xb.shape[0]
            sums = vec if sums is None else sums + vec
    assert sums is not None and names is not None
    means = dict(zip(names, (sums / batches.n).tolist(), strict=True))
    means["loss"] = sum(ws.get(n, 1.0) * v for n, v in means.items())
    bad = [f"{n}={v}" for n, v in means.items() if not math.isfinite(v)]
    if bad:
        raise FloatingPointError(f"non-finite loss term(s) in evaluation: {', '.join(bad)}")
    return means
