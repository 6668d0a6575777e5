"""The parameters of each chapter, checked in its setup cell.

A chapter's first code cell (tagged ``parameters``) holds literals that papermill may replace;
its setup cell starts with::

    globals().update(check_parameters("01_entropy", globals()))

:func:`check_parameters` looks up the chapter's schema in :data:`SCHEMAS`, checks every value,
returns the cleaned values (NumPy scalars as Python numbers, tuples and papermill's strings
``'[1, 2]'`` as lists, paths as strings) and raises **one** ``ValueError`` that lists every bad
parameter, its value and what is allowed. A bad value thus stops the chapter in its setup cell
instead of giving NaN in a table or an error ten cells later.

A schema maps each parameter name to a spec: :class:`Int`, :class:`Float`, :class:`Bool`,
:class:`Choice`, :class:`Device`, :class:`PathStr`, :class:`ListOf` and :class:`Optional`.
Adding a chapter is a few lines::

    SCHEMAS["02_compactifier"] = {**COMMON, "n_train": Int(min=1), "lam": Float(gt=0, le=1),
                                  "checkpoint_dir": Optional(PathStr())}
"""

from __future__ import annotations

import ast
import math
import operator
import os
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from entropic_ae._checks import is_integer, is_real

__all__ = [
    "COMMON", "SCHEMAS", "Bool", "Choice", "Device", "Float", "Int", "ListOf", "MappingOf",
    "Optional", "ParameterError", "PathStr", "TupleOf", "Spec", "check_parameters",
]


class ParameterError(ValueError):
    """One value does not satisfy its spec; the message says what is allowed."""


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Spec:
    """A rule for one parameter: :meth:`clean` returns the value to use or raises
    :class:`ParameterError`; :meth:`describe` says in words what is allowed."""

    def describe(self) -> str:
        """What is allowed, e.g. ``"an int >= 1"``."""
        raise NotImplementedError

    def clean(self, value: Any) -> Any:
        """The value to use (e.g. a NumPy integer as an ``int``), or ParameterError."""
        raise NotImplementedError

    def _fail(self) -> ParameterError:
        return ParameterError(f"must be {self.describe()}")


_OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}


class _Bounded(Spec):
    """A number within ``bounds``: (operator, bound) pairs, a bound of None being no bound."""

    noun = unbounded = ""
    bounds: tuple[tuple[str, float | None], ...] = ()

    def describe(self) -> str:
        text = " and ".join(f"{op} {bound:g}" for op, bound in self.bounds if bound is not None)
        return f"{self.noun} {text}" if text else self.unbounded

    def _within(self, value: float) -> bool:
        return all(bound is None or _OPS[op](value, bound) for op, bound in self.bounds)


class Int(_Bounded):
    """An integer (Python or NumPy, never a bool or a float) with ``min <= value <= max``."""

    noun = unbounded = "an int"

    def __init__(self, min: int | None = None, max: int | None = None) -> None:
        self.min, self.max, self.bounds = min, max, ((">=", min), ("<=", max))

    def clean(self, value: Any) -> int:
        if not is_integer(value) or not self._within(int(value)):
            raise self._fail()
        return int(value)


class Float(_Bounded):
    """A finite real number (ints and NumPy scalars accepted, not bools) within the bounds
    ``gt`` (>), ``ge`` (>=), ``lt`` (<), ``le`` (<=) that are given; returned as a ``float``."""

    noun, unbounded = "a number", "a finite number"

    def __init__(self, gt: float | None = None, ge: float | None = None,
                 lt: float | None = None, le: float | None = None) -> None:
        self.gt, self.ge, self.lt, self.le = gt, ge, lt, le
        self.bounds = ((">", gt), (">=", ge), ("<", lt), ("<=", le))

    def clean(self, value: Any) -> float:
        if not is_real(value) or not math.isfinite(value) or not self._within(float(value)):
            raise self._fail()
        return float(value)


class Bool(Spec):
    """``True`` or ``False`` (a NumPy bool too; not 0/1)."""

    def describe(self) -> str:
        return "True or False"

    def clean(self, value: Any) -> bool:
        if not isinstance(value, (bool, np.bool_)):
            raise self._fail()
        return bool(value)


class Choice(Spec):
    """One of the given values (compared by type and value, so ``True`` is not ``1``)."""

    def __init__(self, *choices: Any) -> None:
        if not choices:
            raise ValueError("Choice needs at least one allowed value")
        self.choices = choices

    def describe(self) -> str:
        return "one of " + ", ".join(repr(c) for c in self.choices)

    def clean(self, value: Any) -> Any:
        for choice in self.choices:
            if type(value) is type(choice) and value == choice:
                return value
        raise self._fail()


class Device(Spec):
    """A device name: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"`` (whether it
    exists is checked later by :func:`entropic_ae.training.default_device`)."""

    _PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")

    def describe(self) -> str:
        return "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"

    def clean(self, value: Any) -> str:
        if not isinstance(value, str) or not self._PATTERN.fullmatch(value):
            raise self._fail()
        return value


class PathStr(Spec):
    """A non-empty path, as a string (``os.PathLike`` values are converted)."""

    def describe(self) -> str:
        return "a non-empty path (a string)"

    def clean(self, value: Any) -> str:
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if not isinstance(value, str) or not value.strip() or "\0" in value:
            raise self._fail()
        return value


def _literal(value: Any, spec: Spec, example: str) -> Any:
    """A string read as a Python literal (how papermill's ``-p`` delivers lists and dicts);
    anything else as it is."""
    if not isinstance(value, str):
        return value
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise ParameterError(f"must be {spec.describe()}; this string is not a Python literal "
                             f"such as {example}") from None


class ListOf(Spec):
    """A list (or tuple) of at least ``min_len`` items, each satisfying ``item``; returned as a
    list. A string is first read as a Python literal (``ast.literal_eval``), which is how
    ``papermill -p name '[1, 2]'`` delivers a list."""

    def __init__(self, item: Spec, min_len: int = 1) -> None:
        if not isinstance(item, Spec):
            raise TypeError(f"ListOf needs a Spec for its items, got {type(item).__name__}")
        self.item, self.min_len = item, min_len

    def describe(self) -> str:
        size = ("a non-empty list" if self.min_len == 1 else
                "a list" if self.min_len <= 0 else f"a list of at least {self.min_len} items")
        return f"{size}, each item {self.item.describe()}"

    def clean(self, value: Any) -> list[Any]:
        value = _literal(value, self, "'[1, 2]'")
        if not isinstance(value, (list, tuple)) or len(value) < self.min_len:
            raise self._fail()
        cleaned, problems = [], []
        for i, item in enumerate(value):
            try:
                cleaned.append(self.item.clean(item))
            except ParameterError as err:
                problems.append(f"item {i} ({_short(item, 30)}): {err}")
        if problems:
            raise ParameterError("; ".join(problems))
        return cleaned


class TupleOf(Spec):
    """A list or tuple of exactly as many items as specs, item ``i`` satisfying spec ``i``
    (e.g. ``TupleOf(Choice("in", "out"), Float(gt=0))`` for ``["in", 0.04]``); returned as a
    list."""

    def __init__(self, *items: Spec) -> None:
        if not items or not all(isinstance(i, Spec) for i in items):
            raise TypeError("TupleOf needs one Spec per item")
        self.items = items

    def describe(self) -> str:
        return "[" + ", ".join(i.describe() for i in self.items) + "]"

    def clean(self, value: Any) -> list[Any]:
        if not isinstance(value, (list, tuple)) or len(value) != len(self.items):
            raise self._fail()
        try:
            return [spec.clean(v) for spec, v in zip(self.items, value, strict=True)]
        except ParameterError:
            raise self._fail() from None


class MappingOf(Spec):
    """A dict whose keys satisfy ``keys`` and values ``values`` (at least ``min_len`` entries);
    a string is first read as a Python literal, as for :class:`ListOf`."""

    def __init__(self, keys: Spec, values: Spec, min_len: int = 1) -> None:
        if not isinstance(keys, Spec) or not isinstance(values, Spec):
            raise TypeError("MappingOf needs a Spec for its keys and one for its values")
        self.keys, self.values, self.min_len = keys, values, min_len

    def describe(self) -> str:
        return (f"a dict of at least {self.min_len} entries, keys {self.keys.describe()}, "
                f"values {self.values.describe()}")

    def clean(self, value: Any) -> dict[Any, Any]:
        value = _literal(value, self, "\"{'a': 1}\"")
        if not isinstance(value, Mapping) or len(value) < self.min_len:
            raise self._fail()
        cleaned, problems = {}, []
        for key, item in value.items():
            try:
                cleaned[self.keys.clean(key)] = self.values.clean(item)
            except ParameterError as err:
                problems.append(f"entry {_short(key, 30)}: {err}")
        if problems:
            raise ParameterError("; ".join(problems))
        return cleaned


class Optional(Spec):
    """``None``, or a value satisfying ``inner``."""

    def __init__(self, inner: Spec) -> None:
        if not isinstance(inner, Spec):
            raise TypeError(f"Optional needs a Spec, got {type(inner).__name__}")
        self.inner = inner

    def describe(self) -> str:
        return f"None or {self.inner.describe()}"

    def clean(self, value: Any) -> Any:
        if value is None:
            return None
        try:
            return self.inner.clean(value)
        except ParameterError:
            raise self._fail() from None


#: The parameters every chapter has (see CONTRIBUTING.md).
COMMON: dict[str, Spec] = {
    "seed": Int(min=0),
    "device": Device(),
    "data_root": Optional(PathStr()),
    "results_dir": PathStr(),
}

_TRAINING: dict[str, Spec] = {
    "n_seeds": Int(min=1),
    "checkpoint_dir": PathStr(),
    "workers": Optional(Int(min=1)),
    "n_train": Optional(Int(min=2)),
    "n_test": Int(min=2),
    "epochs": Int(min=1),
    "batch_size": Int(min=2),
    "lr": Float(gt=0),
}
_DATASETS = ("mnist", "fashion-mnist", "cifar10", "celeba")
# Chapters 4 and 5 train conv systems under one plateau policy and score their samples alike.
_SAMPLE_STUDY: dict[str, Spec] = {
    "n_val": Int(min=2),
    "patience": Int(min=1),
    "lr_decay": Float(gt=0, lt=1),
    "n_samples": Int(min=2),
    "gmm_components": Int(min=1),
    "kl_codes": Int(min=3),
    "feature_net_epochs": Int(min=1),
    "feature_net_limit": Optional(Int(min=10)),
}


def _systems(family: str) -> tuple[str, ...]:
    from entropic_ae.systems import SYSTEMS  # the registry is the one list of systems

    return tuple(n for n, s in SYSTEMS.items() if s.family == family)


_VARIANTS = ("in", "out", "both", "cumulative", "data")

#: Chapter (notebook stem) -> {parameter name: spec}.
SCHEMAS: dict[str, Mapping[str, Spec]] = {
    "01_entropy": {
        **COMMON,
        "kl_sample_sizes": ListOf(Int(min=2)),  # the estimator needs N >= 2 (k = 1)
        "kl_dims": ListOf(Int(min=1)),
        "kl_repeats": Int(min=1),
        "mc_samples": Int(min=1),
        "maxent_steps": Int(min=1),
        "study_batches": ListOf(Int(min=3)),
        "study_dims": ListOf(Int(min=1)),
        "study_repeats": Int(min=2),
    },
    "02_compactifier": {
        **COMMON, **_TRAINING,
        "n_val": Int(min=2),
        "layer_sizes": ListOf(Int(min=1), min_len=3),
        "latent_layer": Int(min=1),
        "mse_weight": Float(gt=0),
        "entropy_weight": Float(ge=0),
        "renyi_order": Float(gt=0),
        "hand_widths": ListOf(Int(min=1)),
        "nested_ps": ListOf(Float(gt=0, lt=1)),
        "prune_thresholds": ListOf(Float(ge=0)),
        "finetune_epochs": Int(min=1),
        "lasso_weights": ListOf(Float(gt=0)),
        "l0_weights": ListOf(Float(gt=0)),
        "gate_lr": Float(gt=0),
        "data_weights": ListOf(Float(gt=0)),
        "data_order": Float(gt=0),
        "compare_widths": ListOf(Int(min=1)),
        "goal_widths": Int(min=1),
        "ablation_images": Int(min=2),
    },
    "03_path_entropy": {
        **COMMON, **_TRAINING,
        "n_val": Int(min=2),
        "layer_sizes": ListOf(Int(min=1), min_len=3),
        "latent_layer": Int(min=1),
        "path_weight": Float(gt=0),
        "path_order": Float(gt=0),
        "path_every": Int(min=1),
        "decoupled_weights": ListOf(Float(gt=0)),
        "sgd_lr": Float(gt=0),
        "data_weight": Float(gt=0),
        "data_order": Float(gt=0),
        "data_tau": Float(gt=0),
        "data_every": Int(min=1),
        "kb_k": Int(min=1, max=16),
        "kb_generator": Int(min=0),
        "kb_n_train": Optional(Int(min=2)),
        "kb_n_val": Int(min=2),
        "kb_epochs": Int(min=1),
        "kb_anneal": TupleOf(Float(gt=0), Float(gt=0)),
        "kb_decoupled_weight": Float(gt=0),
        "kb_strong_weight": Float(gt=0),
        "compactifier_mse_weight": Float(gt=0),
        "compactifier_weight": Float(ge=0),
        "compactifier_order": Float(gt=0),
        "check_n_train": Int(min=2),
        "check_epochs": Int(min=1),
        "bruteforce_sizes": ListOf(ListOf(Int(min=1), min_len=2)),
        "timing_repeats": Int(min=1),
        "ablation_images": Int(min=2),
    },
    "04_entropic_autoencoder": {
        **COMMON, **_TRAINING,
        "datasets": ListOf(Choice(*_DATASETS)),
        "models": ListOf(Choice(*_systems("conv"))),
        "width": Float(gt=0),
        "latent_dims": MappingOf(Choice(*_DATASETS), Int(min=1)),
        "beta": Float(ge=0),
        "eae_decoder_l2": Optional(Float(gt=0)),
        "eae_spectral_norm": Bool(),
        "width_study_dims": ListOf(Int(min=1), min_len=2),
        **_SAMPLE_STUDY,
        "damage_seeds": Int(min=2),
        "floor_draws": Int(min=2),
        "check_samples": Int(min=10),
    },
    "05_entropy_terms": {
        **COMMON, **_TRAINING,
        "datasets": ListOf(Choice(*_DATASETS)),
        "betas": MappingOf(Choice(*[n for n in _systems("conv") if n.startswith("EAE")]),
                           ListOf(Float(gt=0))),
        "width": Float(gt=0),
        "latent_dim": Int(min=1),
        **_SAMPLE_STUDY,
        "floor_draws": Int(min=2),
        "estimator_batches": ListOf(Int(min=3)),
        "estimator_dims": ListOf(Int(min=1)),
        "estimator_repeats": Int(min=2),
        "ranking_repeats": Int(min=2),
        "cost_repeats": Int(min=1),
    },
    "06_verdicts": {**COMMON},
}


def check_parameters(chapter: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """The cleaned values of ``chapter``'s parameters, taken from ``values`` (e.g. the
    notebook's ``globals()``): ``{name: SCHEMAS[chapter][name].clean(values[name])}``.

    Names outside the schema are ignored. Every missing or bad parameter is collected, and
    one ``ValueError`` lists them all (name, value, what is allowed). An unknown chapter
    raises ``ValueError`` listing the known ones.
    """
    if not isinstance(chapter, str) or chapter not in SCHEMAS:
        raise ValueError(f"no parameter schema for chapter {chapter!r}; known chapters: "
                         f"{', '.join(sorted(SCHEMAS))} (add one to "
                         "entropic_ae.parameters.SCHEMAS)")
    if not isinstance(values, Mapping):
        raise TypeError(f"values must be a mapping {{name: value}} such as globals(), got "
                        f"{type(values).__name__}")
    cleaned: dict[str, Any] = {}
    problems: list[str] = []
    for name, spec in SCHEMAS[chapter].items():
        if name not in values:
            problems.append(f"{name}: missing (expected {spec.describe()})")
            continue
        try:
            cleaned[name] = spec.clean(values[name])
        except ParameterError as err:
            problems.append(f"{name} = {_short(values[name])}: {err}")
    if problems:
        lines = "".join(f"\n  - {p}" for p in problems)
        raise ValueError(f"invalid parameters for chapter {chapter}:{lines}\nSet them in the "
                         "chapter's parameters cell or with `papermill -p NAME VALUE`.")
    return cleaned
