"""A training run as a small frozen value: :class:`RunConfig`.

A :class:`RunConfig` holds everything that changes a run's result: the family and the system
(``model``, a name of :data:`entropic_ae.systems.SYSTEMS`), the data (dataset, training images),
the optimisation (epochs, batch size, learning rate, seed), the family's typed training options and
its typed measurement options (:mod:`entropic_ae.experiments.options`). Nothing else — not the
device, the number of threads, the cache or data folder, a progress bar — enters it. Every value is
checked when the config is made; a misspelt option or grid axis is refused, with a suggestion.

:meth:`RunConfig.key` digests the config alone; the run cache,
:mod:`entropic_ae.experiments.cache`, adds the code's and the data's digests to it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from typing import Any

from entropic_ae._io import digest
from entropic_ae.experiments.options import OPTIONS, Options, did_you_mean
from entropic_ae.parameters import Float, Int, Optional, ParameterError

__all__ = ["DATASETS", "FAMILIES", "RunConfig", "find", "grid"]

FAMILIES = tuple(OPTIONS)
#: Datasets a run can train on (``synthetic``: the toy family's generated data;
#: ``known-bottleneck``: images from a random generator with a code of known size,
#: :mod:`entropic_ae.synthetic.known_bottleneck`).
DATASETS = ("mnist", "fashion-mnist", "cifar10", "celeba", "synthetic", "known-bottleneck")

_FIELDS = {"n_train": Optional(Int(min=2)), "epochs": Int(min=1), "batch_size": Int(min=2),
           "lr": Float(gt=0), "seed": Int(min=0, max=2**32 - 1)}


def _options(cls: type[Options], value: Any) -> Options:
    if isinstance(value, cls):
        return value
    if isinstance(value, Options):
        raise TypeError(f"expected {cls.__name__}, got {type(value).__name__}")
    pairs = value.items() if isinstance(value, Mapping) else (value or ())
    return cls.make(dict(pairs))


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """One training run (see the module docstring). Build it with :meth:`make`; read options
    as attributes, ``config.options.width``."""

    family: str
    model: str
    dataset: str = "mnist"
    n_train: int | None = None
    epochs: int = 1
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    options: Any = None
    measure: Any = None

    def __post_init__(self) -> None:
        from entropic_ae.systems import SYSTEMS  # here: the systems import the family code

        if self.family not in OPTIONS:
            raise ValueError(f"family must be one of {FAMILIES}, got {self.family!r}")
        names = [n for n, s in SYSTEMS.items() if s.family == self.family]
        if self.model not in names:
            raise ValueError(f"model {self.model!r} is not a system of family {self.family!r}"
                             f"{did_you_mean(str(self.model), names)}; its systems are "
                             f"{', '.join(names)}")
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {self.dataset!r}")
        for name, spec in _FIELDS.items():
            try:
                object.__setattr__(self, name, spec.clean(getattr(self, name)))
            except ParameterError as err:
                raise ValueError(f"{name} = {getattr(self, name)!r}: {err}") from None
        train_cls, measure_cls = OPTIONS[self.family]
        object.__setattr__(self, "options", _options(train_cls, self.options))
        object.__setattr__(self, "measure", _options(measure_cls, self.measure))

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def make(cls, family: str, model: str, *, dataset: str = "mnist", n_train: int | None = None,
             epochs: int = 1, batch_size: int = 128, lr: float = 1e-3, seed: int = 0,
             measure: Mapping[str, Any] | None = None, **options: Any) -> RunConfig:
        """``RunConfig.make("mlp", "plain", epochs=20, layer_sizes=[784, 64, 784])``: every
        keyword that is not a field is a training option of the family; ``measure`` a dict of
        measurement options."""
        return cls(family, model, dataset, n_train, epochs, batch_size, lr, seed, options,
                   measure)

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with changes: fields by name, ``options=`` / ``measure=`` dicts merged into
        the current ones (None resets an option to its default), and any other name an option
        (``config.replace(width=0.25)``); an unknown name raises ``ValueError``."""
        fields = {f.name for f in dataclasses.fields(self)}
        new_options = dict(changes.pop("options", None) or {})
        new_measure = dict(changes.pop("measure", None) or {})
        for name in [n for n in changes if n not in fields]:
            target = new_measure if name in self.measure.names() else new_options
            target[name] = changes.pop(name)
        if new_options:
            changes["options"] = self.options.merged(new_options)
        if new_measure:
            changes["measure"] = self.measure.merged(new_measure)
        return dataclasses.replace(self, **changes)

    # -- identity -------------------------------------------------------------------------------
    def training_dict(self) -> dict[str, Any]:
        """Every field that determines the trained model, except ``epochs``."""
        return {"family": self.family, "model": self.model, "dataset": self.dataset,
                "n_train": self.n_train, "batch_size": self.batch_size, "lr": self.lr,
                "seed": self.seed, "options": self.options.to_dict()}

    def key(self) -> str:
        """Digest of the whole config (its fields, options and measurement options)."""
        return digest(self.to_dict(), 16)

    @property
    def slug(self) -> str:
        """A readable file-name stem: ``conv-EAE-mnist``."""
        return re.sub(r"[^A-Za-z0-9._-]+", "_", f"{self.family}-{self.model}-{self.dataset}")

    # -- conversion -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; :meth:`from_dict` inverts it."""
        return {**self.training_dict(), "epochs": self.epochs,
                "measure": self.measure.to_dict()}

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
                       {k: thaw(v) for k, v in d["options"].items()},
                       {k: thaw(v) for k, v in d["measure"].items()})
        except (KeyError, TypeError, AttributeError) as err:
            raise ValueError(f"not a RunConfig dict ({err}): {dict(d)!r:.200}") from err

    def describe(self) -> dict[str, Any]:
        """The config as one flat row: its fields and every option by name (mappings as
        dicts, nested configs by their slug), for tables and error messages."""
        row: dict[str, Any] = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                               if f.name not in ("options", "measure")}
        for opts in (self.options, self.measure):
            for name in opts.names():
                value = getattr(opts, name)
                if isinstance(value, RunConfig):
                    value = value.slug
                elif isinstance(value, tuple) and all(isinstance(v, tuple) and len(v) == 2
                                                      for v in value) and value:
                    value = repr(dict(value))
                elif isinstance(value, tuple):
                    value = repr(list(value))
                row[name] = value
        return row


def _check_names(base: RunConfig, names: Iterable[str], what: str) -> None:
    known = sorted({f.name for f in dataclasses.fields(RunConfig)} - {"options", "measure"}
                   | set(base.options.names()) | set(base.measure.names()))
    for name in names:
        if name not in known:
            raise ValueError(f"{what} {name!r} is neither a field nor an option of family "
                             f"{base.family!r}{did_you_mean(name, known)}; known: "
                             f"{', '.join(known)}")


def grid(base: RunConfig, **axes: Iterable[Any]) -> list[RunConfig]:
    """Every combination of the values of ``axes`` applied to ``base`` (a field, training option
    or measurement option each), the last axis varying fastest. An unknown axis raises."""
    if not isinstance(base, RunConfig):
        raise TypeError(f"base must be a RunConfig, got {type(base).__name__}")
    _check_names(base, axes, "grid axis")
    configs = [base]
    for name, values in axes.items():
        values = list(values)
        if not values:
            raise ValueError(f"axis {name!r} has no values")
        configs = [c.replace(**{name: v}) for c in configs for v in values]
    return configs


def find(configs: Iterable[RunConfig], **criteria: Any) -> RunConfig:
    """The one config among ``configs`` whose fields and options equal ``criteria``
    (``find(runs, dataset="mnist", model="EAE", seed=0)``). Raises ``LookupError`` unless
    exactly one matches."""
    configs = list(configs)
    if configs:
        _check_names(configs[0], criteria, "criterion")
    matches = [c for c in configs if c.replace(**criteria) == c]
    if len(matches) != 1:
        raise LookupError(f"{len(matches)} configs match {criteria} (expected exactly one)")
    return matches[0]
