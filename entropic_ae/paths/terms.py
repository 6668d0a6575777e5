r"""Regularisers that act on the parameters around the optimiser's step, every k steps.

The training loop has one place where regularisers act (``regularisers`` is a list of objects
with the :class:`Regulariser` protocol; ``step`` counts the optimiser steps of the whole run,
``xb`` is the step's batch, ``lr`` the current learning rate)::

    for r in regularisers: r.reset()      # at the start of every epoch, and on resume
    for step, xb in batches:
        total = sum(w * terms[n] ...); optimizer.zero_grad(set_to_none=True); total.backward()
        values = {r.name: r.before_step(model, step, xb) for r in regularisers}   # float or None
        optimizer.step()
        for r in regularisers: r.after_step(model, step, lr)

:class:`TermRegulariser` turns a differentiable term :math:`R(\text{model}, x)` into such a
regulariser of weight :math:`w`. It *evaluates* :math:`R` and its gradient :math:`g_s = \nabla R
(\theta_s)` on the first step after a reset and then every ``every`` steps (step :math:`s`), and
between evaluations acts with the stored :math:`g_s` (``mode``):

- ``"reuse"``: every step adds :math:`w\, g_s` (at most ``every - 1`` steps stale);
- ``"scale"``: an evaluating step adds :math:`k\, w\, g_s` (:math:`k` = ``every``), the steps in
  between nothing. The sum over a cycle is the same; but Adam divides by a running RMS of the
  gradient, which spikes of size :math:`k` inflate by about :math:`\sqrt k`, so inside Adam the
  regulariser then acts more weakly.

Where it acts (``decoupled``):

- ``decoupled=False``: ``before_step`` adds the weighted gradient to ``p.grad``, so it enters
  the optimiser's step (inside Adam: normalised by Adam's running RMS, so its step is about the
  learning rate per parameter whatever :math:`w`);
- ``decoupled=True`` (:class:`Decoupled`): ``after_step`` moves the parameters by
  :math:`\theta \leftarrow \theta - \eta\, w\, g_s` (times :math:`k` on evaluating steps with
  ``"scale"``), after the optimiser's own step, as AdamW decouples weight decay from Adam; the
  optimiser never sees it, and its size is proportional to :math:`\eta w`.

``before_step`` returns :math:`R(\theta_s)` on the steps where it evaluated, else None. The
gradients are taken by ``torch.autograd.grad`` in a graph of their own (the loss graph is gone
by then), with respect to every parameter of the model that requires a gradient.
:class:`PathEntropyTerm` and :class:`DataPathEntropyTerm` are the chapter's two terms.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from entropic_ae._checks import check_int, check_real, is_real
from entropic_ae.paths.data import check_layers
from entropic_ae.paths.network import Tensor, check_alpha, check_base, linear_params
from entropic_ae.paths.objectives import (
    DATA_OBJECTIVES,
    MEASURES,
    check_tau,
    check_whole_network,
    data_path_objective,
)
from entropic_ae.paths.weights import path_entropy

__all__ = ["MODES", "DataPathEntropyTerm", "Decoupled", "PathEntropyTerm", "Regulariser",
           "TermRegulariser"]

#: How a regulariser acts between its evaluations.
MODES = ("reuse", "scale")

TermFn = Callable[[nn.Module, Tensor | None], Tensor]


@runtime_checkable
class Regulariser(Protocol):
    """What the training loop needs of a regulariser (see the module notes)."""

    name: str
    weight: float

    def before_step(self, model: nn.Module, step: int, x: Tensor | None = None) -> float | None:
        """After the loss's backward pass: may add to ``p.grad``; the value if evaluated."""

    def after_step(self, model: nn.Module, step: int, lr: float) -> None:
        """After the optimiser's step: may change the parameters in place."""

    def reset(self) -> None:
        """At the start of every epoch (and on resume): forget everything stored."""


def _add_to_grads(params: list[Tensor], grads: list[Tensor], scale: float) -> None:
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    torch._foreach_add_([p.grad for p in params], grads, alpha=scale)


class TermRegulariser:
    r"""A differentiable term ``term_fn(model, x) -> 0-d tensor`` as a :class:`Regulariser` of
    weight ``weight``, evaluated every ``every`` steps (``mode``), its weighted gradient added to
    ``p.grad`` (``decoupled=False``) or applied as :math:`\theta \leftarrow \theta - \eta w g`
    after the optimiser's step (``decoupled=True``); see the module notes.

    Attributes: ``evaluations`` (in all), ``last`` (the value of the last evaluation, a float or
    None after :meth:`reset`), ``last_step`` (its step).
    """

    def __init__(self, term_fn: TermFn, weight: float, name: str, *, every: int = 1,
                 mode: str = "reuse", decoupled: bool = False) -> None:
        if not callable(term_fn):
            raise TypeError(f"term_fn must be callable as term_fn(model, x) -> scalar tensor, "
                            f"got {type(term_fn).__name__}")
        if not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty str, got {name!r}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if not isinstance(decoupled, bool):
            raise TypeError(f"decoupled must be True or False, got {type(decoupled).__name__}")
        self.term_fn = term_fn
        self.weight = check_real("weight", weight, ge=0)
        self.name = name
        self.every = check_int("every", every, 1)
        self.mode = mode
        self.decoupled = decoupled
        self.evaluations = 0
        self.reset()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, weight={self.weight:g}, "
                f"every={self.every}, mode={self.mode!r}, decoupled={self.decoupled})")

    def reset(self) -> None:
        """Forget the stored gradient: the next :meth:`before_step` evaluates the term."""
        self.last: float | None = None
        self.last_step: int | None = None
        self._model: nn.Module | None = None
        self._params: list[Tensor] = []
        self._grads: list[Tensor] = []
        self._pending = 0.0  # the factor after_step applies (decoupled), set by before_step

    def evaluate(self, model: nn.Module, x: Tensor | None, step: int) -> Tensor:
        """The term's value as a differentiable 0-d tensor (``step``: for schedules)."""
        return self.term_fn(model, x)

    def value(self, model: nn.Module, x: Tensor | None = None, step: int | None = None) -> float:
        """The term on ``x`` now, without gradient and without touching the stored state (for
        held-out data); ``step`` picks a scheduled parameter (default: the last evaluation's)."""
        with torch.no_grad():
            step = self.last_step if step is None else step
            return float(self.evaluate(model, x, 0 if step is None else step))

    def _due(self, model: nn.Module, step: int) -> bool:
        return (self.last_step is None or model is not self._model or step < self.last_step
                or step - self.last_step >= self.every)

    def _evaluate_gradient(self, model: nn.Module, step: int, x: Tensor | None) -> float:
        params = [p for p in model.parameters() if p.requires_grad]
        with torch.enable_grad():
            value = self.evaluate(model, x, step)
            if not isinstance(value, Tensor) or value.numel() != 1:
                raise TypeError(f"{self.name}: the term must be a scalar tensor, got "
                                f"{getattr(value, 'shape', type(value).__name__)}")
            if not value.requires_grad:
                raise ValueError(f"{self.name}: the term does not depend on any parameter that "
                                 "requires a gradient")
            grads = torch.autograd.grad(value.reshape(()), params, allow_unused=True)
        used = [(p, g) for p, g in zip(params, grads, strict=True) if g is not None]
        self._params = [p for p, _ in used]
        self._grads = [g.detach() for _, g in used]
        self._model, self.last_step = model, step
        self.evaluations += 1
        self.last = float(value.detach())
        return self.last

    def before_step(self, model: nn.Module, step: int, x: Tensor | None = None) -> float | None:
        """Evaluate when due (returns the value, else None) and, unless decoupled, add
        ``weight`` (× ``every`` on evaluating steps in ``"scale"`` mode) times the stored
        gradient to the parameters' ``.grad``."""
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        step = check_int("step", step, 0)
        value = None
        if self._due(model, step):
            value = self._evaluate_gradient(model, step, x)
            factor = float(self.every) if self.mode == "scale" else 1.0
        else:
            factor = 1.0 if self.mode == "reuse" else 0.0
        scale = self.weight * factor
        self._pending = 0.0
        if scale != 0 and self._params:
            if self.decoupled:
                self._pending = scale
            else:
                _add_to_grads(self._params, self._grads, scale)
        return value

    def after_step(self, model: nn.Module, step: int, lr: float) -> None:
        """Decoupled: :math:`\\theta \\leftarrow \\theta - \\eta\\, w\\, g` (the factor
        ``before_step`` of the same step chose); otherwise nothing."""
        lr = check_real("lr", lr, ge=0)
        if self._pending and lr:
            with torch.no_grad():
                torch._foreach_add_(self._params, self._grads, alpha=-lr * self._pending)
        self._pending = 0.0


class Decoupled(TermRegulariser):
    r"""``term_fn(model, x)`` as a decoupled regulariser: after the optimiser's step,
    :math:`\theta \leftarrow \theta - \eta\, w\, \nabla R(\theta)`, computed every ``every``
    steps (``mode`` as in :class:`TermRegulariser`). Replaces ``losses.decoupled``: e.g.
    ``Decoupled(lambda m, x: fused_layer_compactifier_loss(m.linears[2], m.linears[3]), 0.3,
    "entropy")``."""

    def __init__(self, term_fn: TermFn, weight: float, name: str, *, every: int = 1,
                 mode: str = "reuse") -> None:
        super().__init__(term_fn, weight, name, every=every, mode=mode, decoupled=True)


class PathEntropyTerm(TermRegulariser):
    r"""The weight path entropy :func:`~entropic_ae.paths.path_entropy` of the model's
    ``nn.Linear`` layers (with their biases unless ``biases=False``; Rényi order ``alpha``,
    ``base``) as a :class:`TermRegulariser` of weight ``weight``. ``x`` is not used."""

    def __init__(self, weight: float, *, every: int = 1, alpha: float = 1.0, biases: bool = True,
                 mode: str = "reuse", decoupled: bool = False, base: float | None = None,
                 name: str = "path_entropy") -> None:
        if not isinstance(biases, bool):
            raise TypeError(f"biases must be True or False, got {type(biases).__name__}")
        self.alpha = check_alpha(alpha)
        self.biases = biases
        self.base = check_base(base)
        super().__init__(self._entropy, weight, name, every=every, mode=mode,
                         decoupled=decoupled)

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f", alpha={self.alpha}, biases={self.biases})"

    def _entropy(self, model: nn.Module, x: Tensor | None = None) -> Tensor:
        ws, bs = linear_params(model)
        return path_entropy(ws, bs if self.biases else None, alpha=self.alpha, base=self.base)


def _check_temperature(tau: float | Callable[[int], float]) -> float | Callable[[int], float]:
    if callable(tau):
        return tau
    if not is_real(tau):
        raise TypeError(f"tau must be a positive number or a schedule step -> tau (e.g. "
                        f"Annealed), got {type(tau).__name__}")
    return check_tau(tau)


class DataPathEntropyTerm(TermRegulariser):
    r""":func:`~entropic_ae.paths.data_path_objective` of the model's ``nn.Linear`` layers on the
    step's batch ``x`` (with the ReLU gates of ``x``), as a :class:`TermRegulariser` of weight
    ``weight``. Options as there: ``objective``, ``alpha``, ``layers``, ``measure``,
    ``normalize``, ``gain``, ``base``; biases are path sources unless ``biases=False``. ``tau`` is
    a number or a schedule ``tau(step)`` (e.g. :class:`~entropic_ae.paths.Annealed`), read at
    each evaluation with the step number the loop passes. The model must be a ReLU network of
    ``nn.Linear`` layers (e.g. :class:`~entropic_ae.models.mlp.MLPAutoencoder`). Between
    evaluations ``x`` is not looked at: the gradient is that of the last evaluated batch.

    Cost (784-64-16-16-16-64-784, batch 128, Adam, one CPU thread, thread CPU time per step on a
    shared 2-core machine; plain step 2.5 ms): every step +145 % (path measure) or +190 %
    (``"singular"``); ``every=10`` +20 % (either measure; +16 % decoupled). The weight-only
    :class:`PathEntropyTerm` every step: +68 %.
    """

    def __init__(self, weight: float, *, every: int = 1, objective: str = "softmin",
                 alpha: float = 1.0, tau: float | Callable[[int], float] = 0.5,
                 layers: Sequence[int] | None = None, measure: str = "path",
                 normalize: bool = False, gain: bool = True, biases: bool = True,
                 mode: str = "reuse", decoupled: bool = False, base: float | None = None,
                 name: str = "path_entropy") -> None:
        if objective not in DATA_OBJECTIVES:
            raise ValueError(f"objective must be one of {DATA_OBJECTIVES}, got {objective!r}")
        if measure not in MEASURES:
            raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}")
        for flag, value in (("normalize", normalize), ("gain", gain), ("biases", biases)):
            if not isinstance(value, bool):
                raise TypeError(f"{flag} must be True or False, got {type(value).__name__}")
        self.alpha = check_alpha(alpha)
        check_whole_network(objective, self.alpha, layers, measure, normalize)
        self.objective, self.measure = objective, measure
        self.normalize, self.gain, self.biases = normalize, gain, biases
        self.tau = _check_temperature(tau)
        self.layers = check_layers(layers)
        self.base = check_base(base)
        super().__init__(self._objective, weight, name, every=every, mode=mode,
                         decoupled=decoupled)

    def __repr__(self) -> str:
        return (super().__repr__()[:-1] + f", objective={self.objective!r}, "
                f"measure={self.measure!r}, alpha={self.alpha}, tau={self.tau!r}, "
                f"layers={self.layers}, normalize={self.normalize})")

    def temperature(self, step: int) -> float:
        """The temperature at ``step``."""
        return check_tau(self.tau(step)) if callable(self.tau) else self.tau

    def evaluate(self, model: nn.Module, x: Tensor | None, step: int) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"{self.name}: x must be the step's batch (a torch.Tensor), got "
                            f"{type(x).__name__}; the loop must pass it to before_step")
        return self._objective(model, x, self.temperature(step))

    def _objective(self, model: nn.Module, x: Tensor, tau: float | None = None) -> Tensor:
        ws, bs = linear_params(model)
        return data_path_objective(
            ws, bs, x, objective=self.objective, alpha=self.alpha,
            tau=self.temperature(0) if tau is None else tau, layers=self.layers,
            bias_paths=self.biases, base=self.base, measure=self.measure,
            normalize=self.normalize, gain=self.gain)
