"""A training run as a small frozen value: :class:`RunConfig`, and its content-addressed keys.

A :class:`RunConfig` holds everything that changes a run's result: the model family and
name, the data (dataset and number of training images), the optimisation (epochs, batch
size, learning rate, seed), the family's own options (architecture, loss weights, ...) and
the measurement options (how many test images, samples, ...). Nothing else — not the
device, the number of threads, the cache folder, the data folder or whether a progress bar
is shown — enters it, so the same config names the same result wherever it runs.

Three keys are derived from it, each a short SHA-256 of a canonical JSON text:

* :meth:`RunConfig.lineage_key`: every training field except ``epochs``. Runs of one lineage
  differ only in length; a longer run resumes from the longest shorter one (training is
  bit-identical whether or not it was interrupted, so this changes nothing).
* :meth:`RunConfig.train_key`: the lineage and ``epochs``: one trained model.
* :meth:`RunConfig.key`: the trained model and the measurement options: one record.

:data:`CACHE_VERSION` enters every key; bump it when a change to the package changes
training results, so that stale runs are not reused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import numbers
import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["CACHE_VERSION", "FAMILIES", "RunConfig", "find", "grid"]

#: Part of every key: bump when the package's training results change.
CACHE_VERSION = 1

#: Model families the experiment layer knows (see :mod:`entropic_ae.experiments.tasks`).
FAMILIES = ("mlp", "conv", "toy")

Options = tuple[tuple[str, Any], ...]


def _freeze(value: Any, where: str) -> Any:
    """A hashable, canonical copy: lists → tuples, dicts → sorted (key, value) tuples, NumPy
    scalars → Python numbers. Floats must be finite."""
    if isinstance(value, RunConfig):
        return value
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"{where} must be finite, got {value}")
        return value
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _freeze(v, f"{where}[{k!r}]")) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_freeze(v, f"{where}[{i}]") for i, v in enumerate(value))
    raise TypeError(f"{where} must be a number, string, bool, None, list, dict or RunConfig; "
                    f"got {type(value).__name__}")


def _jsonable(value: Any) -> Any:
    if isinstance(value, RunConfig):
        return {"__run__": value.to_dict()}
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


def _canonical_numbers(value: Any) -> Any:
    """Integral floats as ints, so that values Python calls equal (2 == 2.0) hash alike."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list | tuple):
        return [_canonical_numbers(v) for v in value]
    if isinstance(value, dict):
        return {k: _canonical_numbers(v) for k, v in value.items()}
    return value


def _digest(payload: Mapping[str, Any]) -> str:
    text = json.dumps(_canonical_numbers(payload), sort_keys=True, separators=(",", ":"),
                      allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """One training run (see the module docstring). Build it with :meth:`make`.

    ``options`` are the family's training options and ``measure`` the measurement options,
    both as sorted ``(name, value)`` pairs of canonical values; read them with
    :meth:`option` and :meth:`measure_option`.
    """

    family: str
    model: str
    dataset: str = "mnist"
    n_train: int | None = None
    epochs: int = 1
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    options: Options = ()
    measure: Options = ()

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"family must be one of {FAMILIES}, got {self.family!r}")
        for name in ("model", "dataset"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise TypeError(f"{name} must be a non-empty string, got {value!r}")
        if self.n_train is not None:
            object.__setattr__(self, "n_train", _check_int("n_train", self.n_train, 1))
        object.__setattr__(self, "epochs", _check_int("epochs", self.epochs, 0))
        object.__setattr__(self, "batch_size", _check_int("batch_size", self.batch_size, 1))
        object.__setattr__(self, "seed", _check_int("seed", self.seed, 0))
        lr = _freeze(self.lr, "lr")
        if isinstance(lr, bool) or not isinstance(lr, int | float) or not lr > 0:
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        object.__setattr__(self, "lr", float(lr))
        for name in ("options", "measure"):
            value = getattr(self, name)
            pairs = value.items() if isinstance(value, Mapping) else value
            try:
                frozen = tuple(sorted((str(k), _freeze(v, f"{name}[{k!r}]")) for k, v in pairs))
            except (TypeError, ValueError) as err:
                raise type(err)(f"{err}") from None
            keys = [k for k, _ in frozen]
            if len(set(keys)) != len(keys):
                raise ValueError(f"{name} names an entry twice: {keys}")
            object.__setattr__(self, name, frozen)

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def make(cls, family: str, model: str, *, dataset: str = "mnist", n_train: int | None = None,
             epochs: int = 1, batch_size: int = 128, lr: float = 1e-3, seed: int = 0,
             measure: Mapping[str, Any] | None = None, **options: Any) -> RunConfig:
        """``RunConfig.make("mlp", "plain", epochs=20, layer_sizes=[784, 64, 784])``: every
        keyword that is not a field goes into ``options``; ``measure`` is a dict."""
        return cls(family, model, dataset, n_train, epochs, batch_size, lr, seed,
                   tuple(options.items()), tuple((measure or {}).items()))

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with fields changed; ``options=`` / ``measure=`` dicts are *merged* into the
        existing ones (a value of None removes an entry)."""
        for name in ("options", "measure"):
            if name in changes:
                merged = dict(getattr(self, name))
                for k, v in dict(changes[name]).items():
                    if v is None:
                        merged.pop(k, None)
                    else:
                        merged[k] = v
                changes[name] = tuple(merged.items())
        return dataclasses.replace(self, **changes)

    # -- access ---------------------------------------------------------------------------------
    def option(self, name: str, default: Any = None) -> Any:
        """The training option ``name`` (its canonical, frozen value), or ``default``."""
        return dict(self.options).get(name, default)

    def measure_option(self, name: str, default: Any = None) -> Any:
        """The measurement option ``name``, or ``default``."""
        return dict(self.measure).get(name, default)

    # -- keys -----------------------------------------------------------------------------------
    def _training_fields(self) -> dict[str, Any]:
        return {"version": CACHE_VERSION, "family": self.family, "model": self.model,
                "dataset": self.dataset, "n_train": self.n_train,
                "batch_size": self.batch_size, "lr": self.lr, "seed": self.seed,
                "options": _jsonable(self.options)}

    def lineage_key(self) -> str:
        """Hash of every training field except ``epochs``."""
        return _digest(self._training_fields())

    def train_key(self) -> str:
        """Hash of every training field, ``epochs`` included: one trained model."""
        return _digest({**self._training_fields(), "epochs": self.epochs})

    def key(self) -> str:
        """Hash of the whole config, measurement options included: one record."""
        return _digest({**self._training_fields(), "epochs": self.epochs,
                        "measure": _jsonable(self.measure)})

    @property
    def slug(self) -> str:
        """A readable file-name stem: ``conv-EAE-mnist``."""
        return re.sub(r"[^A-Za-z0-9._-]+", "_", f"{self.family}-{self.model}-{self.dataset}")

    # -- conversion -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; :meth:`from_dict` inverts it."""
        return {"family": self.family, "model": self.model, "dataset": self.dataset,
                "n_train": self.n_train, "epochs": self.epochs, "batch_size": self.batch_size,
                "lr": self.lr, "seed": self.seed,
                "options": [[k, _jsonable(v)] for k, v in self.options],
                "measure": [[k, _jsonable(v)] for k, v in self.measure]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunConfig:
        """Inverse of :meth:`to_dict`."""

        def thaw(value: Any) -> Any:
            if isinstance(value, dict) and "__run__" in value:
                return cls.from_dict(value["__run__"])
            if isinstance(value, list):
                return tuple(thaw(v) for v in value)
            return value

        try:
            return cls(d["family"], d["model"], d["dataset"], d["n_train"], d["epochs"],
                       d["batch_size"], d["lr"], d["seed"],
                       tuple((k, thaw(v)) for k, v in d["options"]),
                       tuple((k, thaw(v)) for k, v in d["measure"]))
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"not a RunConfig dict ({err}): {dict(d)!r:.200}") from err

    def describe(self) -> dict[str, Any]:
        """The config as one flat row: its fields and ``options``/``measure`` entries by name
        (nested values as text), for tables and error messages."""
        row: dict[str, Any] = {k: getattr(self, k) for k in
                               ("family", "model", "dataset", "n_train", "epochs", "batch_size",
                                "lr", "seed")}
        for name, value in (*self.options, *self.measure):
            row[name] = value.slug if isinstance(value, RunConfig) else (
                repr(value) if isinstance(value, tuple) else value)
        return row


def grid(base: RunConfig, **axes: Iterable[Any]) -> list[RunConfig]:
    """Every combination of the values of ``axes`` applied to ``base``: a field name
    (``seed=[0, 1, 2]``) replaces the field, any other name an option
    (``width=[0.25, 0.5]``), in the order the axes are given (the last varies fastest)."""
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    configs = [base]
    for name, values in axes.items():
        values = list(values)
        if not values:
            raise ValueError(f"axis {name!r} has no values")
        configs = [c.replace(**({name: v} if name in fields else {"options": {name: v}}))
                   for c in configs for v in values]
    return configs


def find(configs: Iterable[RunConfig], **criteria: Any) -> RunConfig:
    """The one config among ``configs`` whose fields and options equal ``criteria``
    (``find(runs, dataset="mnist", model="EAE", seed=0)``); a field or option the criteria
    name as None must be absent. Raises ``LookupError`` unless exactly one matches."""
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    wanted = {k: _freeze(v, k) for k, v in criteria.items()}
    matches = [c for c in configs
               if all((getattr(c, k) if k in fields else c.option(k)) == v
                      for k, v in wanted.items())]
    if len(matches) != 1:
        raise LookupError(f"{len(matches)} configs match {criteria} (expected exactly one)")
    return matches[0]
