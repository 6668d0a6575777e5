r"""The one training loop of the book, and the helpers it needs.

:func:`train` minimises :math:`\mathcal L = \sum_t w_t\,\mathrm{term}_t` (the named terms a loss
function returns for a batch, with fixed weights) by Adam or SGD over shuffled mini-batches.
One step, in order::

    terms = loss_fn(model, x)                   # named, unweighted scalar terms
    total = Σ_t w_t · terms[t];  total.backward()
    for r in regularisers: r.before_step(model, step, x)   # may add its gradient to p.grad
    optimizer.step()
    for r in regularisers: r.after_step(model, step, lr)   # e.g. a decoupled or proximal update

so a regulariser that is not a loss term (a path entropy evaluated every k steps, a decoupled
step as AdamW decouples weight decay, a group-lasso proximal step) has one explicit place.
After each epoch ``validate(model)`` (a number, lower is better) may drive a :class:`Plateau`
policy: cut the learning rate when validation stops improving, stop after the last cut, and
return the best weights. With ``checkpoint`` every epoch is saved (:mod:`entropic_ae.checkpoints`)
and a rerun resumes from it, bit-identically on the CPU.
"""

from __future__ import annotations

import copy
import hashlib
import math
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from entropic_ae._checks import check_int, check_real
from entropic_ae.checkpoints import (
    CheckpointError,
    get_rng_state,
    hash_tensor,
    load_checkpoint,
    save_checkpoint,
    set_rng_state,
)

__all__ = ["History", "LossFn", "OPTIMIZERS", "Plateau", "Regulariser", "data_device",
           "default_device", "resolve_precision", "set_seed", "train", "uses_channels_last"]

LossFn = Callable[[nn.Module, torch.Tensor], Mapping[str, torch.Tensor]]
OPTIMIZERS = ("adam", "sgd")


def set_seed(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's random number generators (all devices)."""
    seed = check_int("seed", seed, 0)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def default_device(prefer: str | torch.device | None = "auto") -> torch.device:
    """``"auto"``/None: CUDA, then Apple MPS, then the CPU; any other value is checked to exist."""
    mps = getattr(torch.backends, "mps", None)
    has_mps = mps is not None and mps.is_available()
    if prefer is None or prefer == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    try:
        device = torch.device(prefer)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda[:n]' or 'mps', got {prefer!r}"
                         ) from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but no CUDA GPU is available; use 'auto'")
    if device.type == "mps" and not has_mps:
        raise ValueError("device 'mps' was requested but Apple MPS is not available; use 'auto'")
    return device


def data_device(n_bytes: int, device: torch.device, free_bytes: int | None = None,
                fraction: float = 0.5) -> torch.device:
    """Where the training tensor lives: on ``device`` when it is not a GPU or when the tensor
    takes at most ``fraction`` of the GPU's free memory, else on the CPU (pinned)."""
    if device.type != "cuda":
        return device
    if free_bytes is None:
        free_bytes = torch.cuda.mem_get_info(device)[0]
    return device if n_bytes <= fraction * free_bytes else torch.device("cpu")


def resolve_precision(precision: str | None, device: torch.device) -> str:
    """``"fp32"`` or ``"bf16"``; ``None``/``"auto"``: bf16 autocast on CUDA GPUs that support
    it, fp32 elsewhere (float64 parts, such as the entropy estimator's, stay float64)."""
    if precision in (None, "auto"):
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be 'auto', 'fp32' or 'bf16', got {precision!r}")
    return precision


class Regulariser(Protocol):
    """What :func:`train` calls around ``optimizer.step()`` (see the module docstring).

    ``before_step`` may add the regulariser's gradient to ``p.grad`` and returns its value on
    steps where it evaluated itself (the history logs their epoch mean under ``name``), else
    None; ``after_step`` may change the parameters in place (under ``torch.no_grad``);
    ``reset`` runs at the start of every epoch, so nothing stale crosses epochs or a resume."""

    name: str

    def before_step(self, model: nn.Module, step: int, x: torch.Tensor) -> float | None: ...

    def after_step(self, model: nn.Module, step: int, lr: float) -> None: ...

    def reset(self) -> None: ...


@dataclass(frozen=True)
class Plateau:
    """Learning-rate decay on a validation plateau, then stop: after ``patience`` epochs
    without a relative improvement of ``min_delta`` the rate is multiplied by ``factor``
    (:class:`torch.optim.lr_scheduler.ReduceLROnPlateau`); the plateau after the ``cuts``-th cut
    ends training, and the weights of the best validation epoch are returned."""

    patience: int = 2
    factor: float = 0.3
    cuts: int = 2
    min_delta: float = 1e-3

    def __post_init__(self) -> None:
        check_int("patience", self.patience, 1)
        check_real("factor", self.factor, gt=0, lt=1)
        check_int("cuts", self.cuts, 0)
        check_real("min_delta", self.min_delta, ge=0, lt=1)


@dataclass
class History:
    """Per epoch: ``terms[name]`` the sample-weighted mean of each unweighted term (``"loss"``:
    the weighted total; a regulariser's name: the mean of its evaluated values),
    ``validation`` the validation value, ``lr`` the learning rate used. ``stopped`` is the
    epoch count at which a :class:`Plateau` ended training (None: it ran all epochs),
    ``best_epoch`` the 1-based epoch whose weights the model holds. ``epoch_seconds`` holds the
    wall-clock seconds of the epochs trained in this call only (never saved)."""

    terms: dict[str, list[float]] = field(default_factory=dict)
    validation: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    stopped: int | None = None
    best_epoch: int | None = None
    epoch_seconds: list[float] = field(default_factory=list)

    @property
    def epochs(self) -> int:
        """Completed epochs."""
        return len(self.lr)

    def last(self) -> dict[str, float]:
        """The terms of the last completed epoch."""
        if not self.epochs:
            raise ValueError("the history is empty: no epoch has been completed")
        return {name: values[-1] for name, values in self.terms.items()}

    def to_dict(self) -> dict[str, Any]:
        """Plain Python (for checkpoints and records; without the wall-clock times)."""
        return {"terms": {k: list(v) for k, v in self.terms.items()},
                "validation": list(self.validation), "lr": list(self.lr),
                "stopped": self.stopped, "best_epoch": self.best_epoch}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> History:
        """Inverse of :meth:`to_dict`."""
        return cls({str(k): [float(x) for x in v] for k, v in d["terms"].items()},
                   [float(x) for x in d["validation"]], [float(x) for x in d["lr"]],
                   d["stopped"], d["best_epoch"])

    def as_frame(self) -> Any:
        """A pandas DataFrame indexed by the 1-based epoch: the terms, ``validation``, ``lr``."""
        import pandas as pd

        columns: dict[str, list[float]] = dict(self.terms)
        if self.validation:
            columns["validation"] = self.validation
        columns["lr"] = self.lr
        return pd.DataFrame(columns, index=pd.RangeIndex(1, self.epochs + 1, name="epoch"))


# --- Data ----------------------------------------------------------------------------------------


def _check_data(x: object) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"data must be a torch.Tensor of inputs, got {type(x).__name__}")
    if x.dim() < 1 or x.shape[0] < 2:
        raise ValueError(f"data must hold at least 2 samples, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"data must be floating point, got {x.dtype}; convert images to float "
                        "in [0, 1] first (x.float() / 255)")
    bad = ~torch.isfinite(x.reshape(x.shape[0], -1)).all(1)
    if bad.any():
        raise ValueError(f"data hold non-finite values in {int(bad.sum())} sample(s), first in "
                         f"sample {int(bad.nonzero()[0, 0])}: remove or repair them first")
    return x


def _batch_bounds(n: int, batch_size: int) -> list[tuple[int, int]]:
    """``[start, stop)`` of each batch; a last batch of one sample joins the previous one
    (batch norm cannot normalise a single sample)."""
    bounds = [(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        bounds[-2:] = [(bounds[-2][0], n)]
    return bounds


def _epoch_batches(x: torch.Tensor, batch_size: int, seed: int, epoch: int,
                   device: torch.device, channels_last: bool) -> Iterator[torch.Tensor]:
    """Epoch ``epoch``'s shuffled batches; the permutation depends on ``(seed, epoch)`` only."""
    state = np.random.SeedSequence([seed, epoch]).generate_state(2, dtype=np.uint32)
    gen = torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))
    perm = torch.randperm(x.shape[0], generator=gen).to(x.device)
    for start, stop in _batch_bounds(x.shape[0], batch_size):
        xb = x.index_select(0, perm[start:stop]).to(device, non_blocking=True)
        yield xb.contiguous(memory_format=torch.channels_last) if channels_last else xb


def _fingerprint(model: nn.Module, optimizer: str, batch_size: int, seed: int,
                 x: torch.Tensor, precision: str) -> dict[str, str]:
    """What a checkpoint must have been trained with to be resumed: parameter shapes, the
    optimiser, batch size, seed, precision and the data (shape, dtype, SHA-256 of its bytes)."""
    params = "; ".join(f"{k} {tuple(v.shape)}" for k, v in model.state_dict().items())
    h = hashlib.sha256()
    hash_tensor(h, x)
    return {"model": f"{type(model).__qualname__}: {params}", "optimizer": optimizer,
            "batch_size": str(batch_size), "seed": str(seed), "precision": precision,
            "data": f"{tuple(x.shape)} {x.dtype} sha256 {h.hexdigest()}"}


def uses_channels_last(model: nn.Module, x: torch.Tensor) -> bool:
    """Whether the loop trains ``model`` in the channels-last layout: for convolutional models
    on image batches, where it is fastest (measured on the CPU at width 1/32: 33 against 42 ms
    a step; on a GPU with cuDNN's autotuning too)."""
    return x.dim() == 4 and any(isinstance(m, nn.Conv2d | nn.ConvTranspose2d)
                                for m in model.modules())


# --- The loop ------------------------------------------------------------------------------------


@dataclass
class _Run:
    """The state a checkpoint carries besides the model and the optimiser."""

    history: History
    scheduler: Any = None
    best: float = math.inf
    best_state: dict[str, torch.Tensor] | None = None
    cuts: int = 0


def _optimizer(model: nn.Module, name: str, lr: float,
               groups: Callable[[nn.Module, float], list] | None = None) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    fused = all(p.device.type in ("cpu", "cuda") for p in params)
    target = groups(model, lr) if groups is not None else params
    if name == "sgd":
        return torch.optim.SGD(target, lr=lr, momentum=0.9)
    return torch.optim.Adam(target, lr=lr, fused=fused or None)


def _check_terms(terms: object, weights: Mapping[str, float]) -> Mapping[str, torch.Tensor]:
    if not isinstance(terms, Mapping) or not terms:
        raise TypeError("loss_fn must return a non-empty mapping {name: scalar tensor}, got "
                        f"{type(terms).__name__}")
    for name, value in terms.items():
        if name == "loss" or not isinstance(value, torch.Tensor) or value.numel() != 1:
            raise TypeError(f"loss term {name!r} must be a scalar tensor named other than "
                            f"'loss', got {type(value).__name__}")
    unknown = sorted(set(weights) - set(terms))
    if unknown:
        raise ValueError(f"weights given for {unknown}, but loss_fn returns only {list(terms)}")
    return terms


def _step(model, loss_fn, xb, weights, opt, regs, step, autocast, sums) -> None:
    """One optimisation step (see the module docstring); adds the batch's terms to ``sums``."""
    with autocast:
        terms = _check_terms(loss_fn(model, xb), weights)
    total = sum(weights.get(n, 1.0) * t for n, t in terms.items() if weights.get(n, 1.0) != 0)
    if not isinstance(total, torch.Tensor) or not total.requires_grad:
        raise ValueError("the weighted loss does not depend on any trainable parameter")
    opt.zero_grad(set_to_none=True)
    total.backward()
    for r in regs:
        value = r.before_step(model, step, xb)
        if value is not None:
            sums.setdefault(r.name, []).append(float(value))
    opt.step()
    for r in regs:
        r.after_step(model, step, opt.param_groups[0]["lr"])
    n = xb.shape[0]
    for name, t in [*terms.items(), ("loss", total)]:  # kept on the device: no sync per step
        sums.setdefault(name, []).append(t.detach().float().reshape(()) * n)
    sums.setdefault("_n", []).append(n)


def _epoch_means(sums: dict[str, list[float]], regs: Sequence[Regulariser],
                 epoch: int) -> dict[str, float]:
    n = sum(sums.pop("_n"))
    names = {r.name for r in regs}
    means = {k: (sum(v) / len(v) if k in names else float(torch.stack(v).sum()) / n)
             for k, v in sums.items()}
    bad = [f"{k}={v}" for k, v in means.items() if not math.isfinite(v)]
    if bad:
        raise FloatingPointError(f"non-finite loss term(s) in epoch {epoch} (0-based): "
                                 f"{', '.join(bad)}; lower the learning rate or the term's weight")
    return means


def _after_epoch(model, run: _Run, opt, validate, plateau, means, seconds) -> bool:
    """Log the epoch, step the plateau policy; True when training should stop."""
    h = run.history
    for name, value in means.items():
        h.terms.setdefault(name, []).append(value)
    h.lr.append(opt.param_groups[0]["lr"])
    h.epoch_seconds.append(seconds)
    if validate is None:
        return False
    value = float(validate(model))
    if not math.isfinite(value):
        raise FloatingPointError(f"the validation value of epoch {h.epochs} is {value}")
    h.validation.append(value)
    if plateau is None:
        return False
    if value < run.best * (1 - plateau.min_delta) or run.best_state is None:
        run.best, h.best_epoch = value, h.epochs
        run.best_state = copy.deepcopy(model.state_dict())
    before = opt.param_groups[0]["lr"]
    run.scheduler.step(value)
    if opt.param_groups[0]["lr"] < before:
        run.cuts += 1
        if run.cuts > plateau.cuts:
            h.stopped = h.epochs
            return True
    return False


def _save(path: Path, model, opt, run: _Run, fingerprint: dict[str, str]) -> None:
    save_checkpoint(path, {
        "epoch": run.history.epochs, "model": model.state_dict(), "optimizer": opt.state_dict(),
        "history": run.history.to_dict(), "rng": get_rng_state(), "fingerprint": fingerprint,
        "plateau": None if run.scheduler is None else {
            "scheduler": run.scheduler.state_dict(), "best": run.best, "cuts": run.cuts,
            "best_state": run.best_state}})


def _resume(path: Path, model, opt, run: _Run, fingerprint: dict[str, str],
            device: torch.device) -> None:
    state = load_checkpoint(path, device)
    stored = state.get("fingerprint", {})
    diffs = sorted(k for k in {*stored, *fingerprint} if stored.get(k) != fingerprint.get(k))
    if diffs:
        raise CheckpointError(path, f"was written for a different {', '.join(diffs)} "
                                    f"({[(stored.get(k), fingerprint.get(k)) for k in diffs]}); "
                                    "delete it or train this configuration elsewhere")
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    run.history = History.from_dict(state["history"])
    if state.get("plateau") is not None and run.scheduler is not None:
        run.scheduler.load_state_dict(state["plateau"]["scheduler"])
        run.best, run.cuts = state["plateau"]["best"], state["plateau"]["cuts"]
        run.best_state = state["plateau"]["best_state"]
    set_rng_state(state["rng"])


def _check_arguments(model, loss_fn, optimizer, weights, regularisers) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not callable(loss_fn):
        raise TypeError("loss_fn must be callable as loss_fn(model, x) -> {name: scalar tensor}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    for name, w in weights.items():
        check_real(f"weights[{name!r}]", w)
    for r in regularisers:
        if not all(hasattr(r, a) for a in ("name", "before_step", "after_step", "reset")):
            raise TypeError(f"{r!r} is not a Regulariser (name, before_step, after_step, reset)")


def train(model: nn.Module, loss_fn: LossFn, x: torch.Tensor, *, epochs: int, lr: float,
          batch_size: int, seed: int, weights: Mapping[str, float] | None = None,
          device: str | torch.device = "cpu", optimizer: str = "adam",
          regularisers: Sequence[Regulariser] = (),
          param_groups: Callable[[nn.Module, float], list] | None = None,
          validate: Callable[[nn.Module], float] | None = None, plateau: Plateau | None = None,
          checkpoint: str | Path | None = None, precision: str | None = "auto",
          progress: bool = False, desc: str = "training") -> History:
    """Train ``model`` in place on the inputs ``x`` (see the module docstring); returns the
    :class:`History` and leaves the model in eval mode on ``device``. Seeds the global RNGs with
    ``seed`` before the first step; epoch ``e``'s shuffle depends on ``(seed, e)`` only.
    ``param_groups(model, lr)`` gives parameter groups their own settings (the L0 gates' own
    learning rate). ``plateau`` needs ``validate``. ``checkpoint``: resume from it if it exists
    (a checkpoint written for another configuration or damaged raises
    :class:`CheckpointError`), save every epoch. A term whose epoch mean is not finite raises
    ``FloatingPointError``."""
    weights = dict(weights or {})
    _check_arguments(model, loss_fn, optimizer, weights, regularisers)
    epochs, batch_size = check_int("epochs", epochs, 1), check_int("batch_size", batch_size, 2)
    lr, seed = check_real("lr", lr, gt=0), check_int("seed", seed, 0)
    if plateau is not None and validate is None:
        raise ValueError("a plateau policy needs validate(model) -> float")
    dev = default_device(device)
    precision = resolve_precision(precision, dev)
    x = _check_data(x)
    x = x.to(data_device(x.numel() * x.element_size(), dev))
    model.to(dev)
    channels_last = uses_channels_last(model, x)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    opt = _optimizer(model, optimizer, lr, param_groups)
    run = _Run(History())
    if plateau is not None:
        run.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, factor=plateau.factor, patience=plateau.patience - 1,
            threshold=plateau.min_delta, threshold_mode="rel")
    path = None if checkpoint is None else Path(checkpoint)
    fingerprint = _fingerprint(model, optimizer, batch_size, seed, x, precision)
    if path is not None and path.exists():
        _resume(path, model, opt, run, fingerprint, dev)
    else:
        set_seed(seed)
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    steps_per_epoch = len(_batch_bounds(x.shape[0], batch_size))
    bar = tqdm(total=epochs, initial=run.history.epochs, desc=desc, unit="epoch",
               disable=not progress)
    benchmark, torch.backends.cudnn.benchmark = torch.backends.cudnn.benchmark, dev.type == "cuda"
    try:
        for epoch in range(run.history.epochs, epochs):
            if run.history.stopped is not None:
                break
            t0, sums = time.perf_counter(), {}
            model.train()
            for r in regularisers:
                r.reset()
            batches = _epoch_batches(x, batch_size, seed, epoch, dev, channels_last)
            for i, xb in enumerate(batches):
                _step(model, loss_fn, xb, weights, opt, regularisers,
                      epoch * steps_per_epoch + i, autocast, sums)
            model.eval()
            means = _epoch_means(sums, regularisers, epoch)
            stop = _after_epoch(model, run, opt, validate, plateau, means,
                                time.perf_counter() - t0)
            if path is not None:
                _save(path, model, opt, run, fingerprint)
            bar.set_postfix({k: f"{v:.4g}" for k, v in means.items()}, refresh=False)
            bar.update(1)
            if stop:
                break
    finally:
        torch.backends.cudnn.benchmark = benchmark
        bar.close()
        model.eval()
    if run.best_state is not None:
        model.load_state_dict(run.best_state)
    return run.history

