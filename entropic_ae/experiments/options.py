"""Typed options of the model families: one frozen dataclass of training options and one of
measurement options per family, every field with a type, a default, its allowed values and a
line of documentation.

A value is checked when the options are made: an unknown name, a wrong type (``dim=4.7`` for an
int), an out-of-range value (``epochs=0``) or an unknown choice raises one ``ValueError`` that
names the option, the value and what is allowed (with a suggestion for a misspelt name).
Lists become tuples and dicts sorted tuples of pairs, so options are hashable and compare by
value. ``python -c "from entropic_ae.experiments.options import describe; print(describe('conv'))"``
lists a family's options.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from typing import Any, ClassVar

from entropic_ae.parameters import (
    Bool,
    Choice,
    Float,
    Int,
    ListOf,
    MappingOf,
    Optional,
    ParameterError,
    Spec,
)

__all__ = ["ConvMeasure", "ConvOptions", "MLPMeasure", "MLPOptions", "OPTIONS", "Options",
           "ToyMeasure", "ToyOptions", "TrainingOptions", "describe", "did_you_mean", "option"]


class Text(Spec):
    """A non-empty string."""

    def describe(self) -> str:
        return "a non-empty string"

    def clean(self, value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise self._fail()
        return value


class Parent(Spec):
    """A RunConfig of the same family (a model to start from)."""

    def describe(self) -> str:
        return "a RunConfig"

    def clean(self, value: Any) -> Any:
        from entropic_ae.experiments.config import RunConfig

        if not isinstance(value, RunConfig):
            raise self._fail()
        return value


def did_you_mean(name: str, known: list[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``known`` to a misspelt ``name``, else ``""``."""
    close = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def option(default: Any, spec: Spec, doc: str) -> Any:
    """A dataclass field with its spec and documentation."""
    return dataclasses.field(default=default, metadata={"spec": spec, "doc": doc})


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


def _jsonable(value: Any) -> Any:
    from entropic_ae.experiments.config import RunConfig

    if isinstance(value, RunConfig):
        return {"__run__": value.to_dict()}
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


@dataclasses.dataclass(frozen=True)
class Options:
    """Base class: checks and freezes every field (see the module docstring)."""

    kind: ClassVar[str] = "option"
    family: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple) and isinstance(f.metadata["spec"], MappingOf):
                value = dict(value)  # a frozen mapping, read back
            try:
                cleaned = f.metadata["spec"].clean(value)
            except ParameterError as err:
                raise ValueError(f"{self.family} {self.kind} {f.name} = {value!r}: {err}"
                                 ) from None
            object.__setattr__(self, f.name, _freeze(cleaned))

    @classmethod
    def names(cls) -> list[str]:
        """The option names."""
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def make(cls, values: Mapping[str, Any]) -> Options:
        """Options from ``values``; unknown names raise ``ValueError`` with a suggestion."""
        unknown = [k for k in values if k not in cls.names()]
        if unknown:
            hints = ", ".join(f"{name!r}{did_you_mean(name, cls.names())}" for name in unknown)
            raise ValueError(f"unknown {cls.family} {cls.kind}: {hints}; the {cls.kind}s of "
                             f"family {cls.family!r} are {', '.join(cls.names())}")
        return cls(**values)

    def merged(self, changes: Mapping[str, Any]) -> Options:
        """A copy with ``changes``; a value of None resets an option to its default."""
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        current = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name, value in changes.items():
            if name not in defaults:
                type(self).make({name: value})  # raises with a suggestion
            current[name] = defaults[name] if value is None else value
        return type(self)(**current)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every option (mappings as lists of pairs)."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}


_WEIGHTS = MappingOf(Text(), Float(ge=0), min_len=0)


@dataclasses.dataclass(frozen=True)
class TrainingOptions(Options):
    """The training policy shared by the conv and mlp families: a validation split and a
    plateau schedule (:class:`entropic_ae.training.Plateau`)."""

    n_val: int = option(0, Int(min=0), "validation images held out from the end of the "
                                       "training split (0: no validation)")
    patience: int | None = option(None, Optional(Int(min=1)), "epochs without validation "
                                  "progress before the learning rate is cut (None: fixed epochs)")
    decay: float = option(0.3, Float(gt=0, lt=1), "factor of each learning-rate cut")
    cuts: int = option(2, Int(min=0), "cuts before the next plateau stops training")
    min_delta: float = option(0.01, Float(ge=0, lt=1), "relative fall of the validation "
                              "error that counts as progress")


@dataclasses.dataclass(frozen=True)
class ToyOptions(Options):
    """A linear autoencoder on synthetic data (tests and cluster checks)."""

    family: ClassVar[str] = "toy"
    dim: int = option(8, Int(min=1), "data dimension")
    latent: int = option(2, Int(min=1), "code size")
    fault: str | None = option(None, Optional(Text()),
                               "inject a failure: 'raise' or 'kill-once:<file>' (tests)")


@dataclasses.dataclass(frozen=True)
class ToyMeasure(Options):
    """Measurements of a toy run."""

    kind: ClassVar[str] = "measure option"
    family: ClassVar[str] = "toy"
    n_eval: int = option(256, Int(min=2), "samples the reported MSE is computed on")


@dataclasses.dataclass(frozen=True)
class ConvOptions(TrainingOptions):
    """The systems of the EAE paper's Table 1 on one convolutional backbone (chapters 4-5)."""

    family: ClassVar[str] = "conv"
    width: float = option(0.0625, Float(gt=0), "multiplier of the paper's channel counts")
    latent_dim: int = option(16, Int(min=1), "code size")
    weights: Any = option((), _WEIGHTS, "overrides of the system's reference loss weights")
    spectral_norm: bool | None = option(None, Optional(Bool()), "spectrally normalise the "
                                        "decoder (None: as the system says)")
    optimizer: str = option("adam", Choice("adam", "sgd"), "optimiser")


@dataclasses.dataclass(frozen=True)
class ConvMeasure(Options):
    """Measurements of a conv run."""

    kind: ClassVar[str] = "measure option"
    family: ClassVar[str] = "conv"
    n_test: int = option(2000, Int(min=2, max=5000), "reference test images (a random draw); "
                         "as many others are reconstructed")
    n_samples: int = option(2000, Int(min=2), "generated images per sampler")
    gmm_components: int = option(10, Int(min=1), "components of the mixture fitted to codes")
    kl_codes: int = option(2000, Int(min=3), "codes per Gaussianity score")
    feature_epochs: int = option(2, Int(min=1), "training epochs of the feature network")
    feature_limit: int | None = option(None, Optional(Int(min=10)),
                                       "training images of the feature network (None: all)")
    ablation_images: int = option(256, Int(min=2), "images of the unit-ablation measure")
    second_epochs: int = option(60, Int(min=1), "epochs of the 2SVAE's second stage")
    second_batch_size: int = option(64, Int(min=2), "batch size of the 2SVAE's second stage")
    second_lr: float = option(1e-3, Float(gt=0), "learning rate of the 2SVAE's second stage")
    second_hidden: int = option(256, Int(min=1), "units per layer of the 2SVAE's second stage "
                                "(Dai & Wipf: 1024)")


@dataclasses.dataclass(frozen=True)
class MLPOptions(TrainingOptions):
    """Fully connected autoencoders with the compactifier or the path entropy (chapters 2-3)."""

    family: ClassVar[str] = "mlp"
    layer_sizes: Any = option((784, 64, 16, 16, 16, 64, 784), ListOf(Int(min=1), min_len=3),
                              "widths of layers 0..L")
    layer: int | None = option(None, Optional(Int(min=1)), "the regularised hidden layer")
    variant: str = option("both", Choice("in", "out", "both", "cumulative"),
                          "compactifier activity: incoming, outgoing, both or cumulative")
    alpha: float = option(1.0, Float(gt=0), "Rényi order (1: Shannon)")
    w_mse: float = option(1.0, Float(gt=0), "weight λ₁ of the reconstruction error")
    w_reg: float = option(0.0, Float(ge=0), "weight λ₂ of the regulariser")
    decoupled: bool = option(False, Bool(), "apply the regulariser as a decoupled step "
                                            "θ ← θ − ηλ₂∇R after the optimiser's")
    path_every: int = option(20, Int(min=1), "evaluate a path entropy every k-th step")
    path_mode: str = option("reuse", Choice("reuse", "scale"),
                            "between evaluations: reuse the last gradient, or k× on evaluation")
    path_objective: str = option("softmin", Choice("softmin", "sum", "chain", "example"),
                                 "batch-level objective of the data path entropy")
    path_layers: Any = option(None, Optional(ListOf(Int(min=1))),
                              "layers of the data path entropy's soft minimum (None: inner)")
    tau: float = option(0.5, Float(gt=0), "temperature of the soft minimum")
    tau_end: float | None = option(None, Optional(Float(gt=0)), "anneal the temperature "
                                   "geometrically to this value (None: constant)")
    tau_steps: int = option(1000, Int(min=1), "steps of the temperature's annealing")
    path_measure: str = option("path", Choice("path", "singular", "variance"),
                               "per-layer width measure of the data path entropy: the path "
                               "mass, or the effective rank of the gated activations")
    path_normalize: bool = option(False, Bool(), "divide each layer's entropy by log(width)")
    bottleneck_k: int = option(4, Int(min=1), "known-bottleneck data: the true code size")
    bottleneck_seed: int = option(0, Int(min=0), "known-bottleneck data: the generator's seed")
    optimizer: str = option("adam", Choice("adam", "sgd"), "optimiser (SGD: momentum 0.9)")
    linear_layers: Any = option((), ListOf(Int(min=1), min_len=0),
                                "hidden layers without a ReLU (their units cannot die)")
    gate_lr: float = option(0.03, Float(gt=0), "learning rate of the L0 gates' log α")
    init_log_alpha: float = option(2.0, Float(), "initial log α of the L0 gates (open)")
    nested_p: float = option(0.1, Float(gt=0, lt=1), "nested dropout: P(stop) per unit")
    parent: Any = option(None, Optional(Parent()), "fine-tune: the run to start from")
    prune: float | None = option(None, Optional(Float(ge=0)),
                                 "fine-tune: remove the parent's units whose ablation raises "
                                 "the error by at most this fraction")


@dataclasses.dataclass(frozen=True)
class MLPMeasure(Options):
    """Measurements of an mlp run."""

    kind: ClassVar[str] = "measure option"
    family: ClassVar[str] = "mlp"
    n_test: int = option(10000, Int(min=2), "test images")
    layers: Any = option(None, Optional(ListOf(Int(min=1))),
                         "hidden layers to analyse (None: all)")
    ablation_images: int = option(2000, Int(min=2), "images of the unit-ablation measure")
    variance_threshold: float = option(0.01, Float(ge=0),
                                       "variance below which a code unit counts as inactive")


#: family -> (training options, measurement options)
OPTIONS: dict[str, tuple[type[Options], type[Options]]] = {
    "toy": (ToyOptions, ToyMeasure),
    "conv": (ConvOptions, ConvMeasure),
    "mlp": (MLPOptions, MLPMeasure),
}


def describe(family: str) -> str:
    """A family's options as text: name, default, what is allowed, what it does."""
    if family not in OPTIONS:
        raise ValueError(f"family must be one of {sorted(OPTIONS)}, got {family!r}")
    lines = []
    for cls in OPTIONS[family]:
        lines.append(f"{family} {cls.kind}s:")
        for f in dataclasses.fields(cls):
            lines.append(f"  {f.name} = {f.default!r}: {f.metadata['doc']} "
                         f"({f.metadata['spec'].describe()})")
    return "\n".join(lines)
