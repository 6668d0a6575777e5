r"""The standard ways to learn the width of a bottleneck, as components of the book's training
loop, and the one way the book compares them.

The baselines of the width comparison (all on :class:`~entropic_ae.models.mlp.MLPAutoencoder`):

* **hand-sized** autoencoders, with a ReLU bottleneck (whose dead units :func:`count_units`
  reports) or a linear one (``linear_layers``, whose units cannot die);
* **train wide, prune by ablation, fine-tune**: :func:`prune_by_ablation`;
* **group lasso** on the units of a layer, applied by proximal steps: :class:`GroupLassoProx`;
* **L0 gates** with the hard-concrete distribution (Louizos, Welling & Kingma 2018):
  :class:`HardConcreteGate`, whose :meth:`~HardConcreteGate.expected_l0` is the penalty
  (:func:`l0_penalty` sums it over a model's gates; give the gates their own learning rate,
  :func:`param_groups`);
* **nested dropout** (Rippel, Gelbart & Adams 2014): :class:`NestedDropout`, which orders the
  units so that the first ``k`` of them make a width-``k`` code (:func:`truncate`,
  :func:`width_curve`).

Gates go into the model at a layer (``MLPAutoencoder(..., gates={layer: gate})``). Step
regularisers follow the loop's protocol (:class:`entropic_ae.training.Regulariser`):
``before_step`` after ``loss.backward()`` and before ``optimizer.step()``, ``after_step``
after it, ``reset`` at the start of every epoch.

Every method's width is counted the same way (:func:`count_units`): a unit is active when
setting it to its mean over the data raises the reconstruction error by more than 1 %
(:func:`entropic_ae.metrics.unit_ablation`). The methods are compared on the plane (active
units, test MSE) by their Pareto frontier (:func:`pareto_mask`, :func:`frontier_gap`,
:func:`pareto_table`), each point's distance to it decided by the book's 2-sd rule.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from entropic_ae._checks import check_int, check_real
from entropic_ae.metrics import unit_ablation
from entropic_ae.models.mlp import MLPAutoencoder, PruneReport, prune
from entropic_ae.verdicts import UNDECIDED, decide

__all__ = [
    "GroupLassoProx",
    "HardConcreteGate",
    "NestedDropout",
    "UnitCount",
    "count_units",
    "frontier_gap",
    "l0_penalty",
    "param_groups",
    "pareto_mask",
    "pareto_table",
    "prune_by_ablation",
    "truncate",
    "width_curve",
]


# --- L0 gates (Louizos et al. 2018) -------------------------------------------------------------


class HardConcreteGate(nn.Module):
    r"""One stochastic gate per unit with the hard-concrete distribution of Louizos, Welling &
    Kingma (2018), "Learning sparse neural networks through :math:`L_0` regularization".

    Each unit ``j`` has a parameter :math:`\log\alpha_j`. In training mode the gate is sampled
    per example: :math:`u \sim U(0, 1)`,

    .. math::
        s = \sigma\big((\log u - \log(1-u) + \log\alpha)/\beta\big), \quad
        \bar s = s(\zeta - \gamma) + \gamma, \quad z = \min(1, \max(0, \bar s)),

    so :math:`z` is exactly 0 or 1 with positive probability. In eval mode the gate is
    deterministic, :math:`\hat z = \min(1, \max(0, \sigma(\log\alpha)(\zeta-\gamma) + \gamma))`.
    The forward pass returns ``h * z`` (``h``: ``N×n_units``). The penalty is the expected
    number of non-zero gates, :meth:`expected_l0` (their eq. 12), differentiable in
    :math:`\log\alpha`. Defaults :math:`\beta = 2/3, \gamma = -0.1, \zeta = 1.1` are theirs;
    ``init_log_alpha = 2`` starts with nearly open gates (eval gate 0.96, :math:`P(z \ne 0)`
    0.97).
    """

    def __init__(self, n_units: int, beta: float = 2 / 3, gamma: float = -0.1,
                 zeta: float = 1.1, init_log_alpha: float = 2.0) -> None:
        super().__init__()
        self.n_units = check_int("n_units", n_units, minimum=1)
        self.beta = check_real("beta", beta, gt=0)
        self.gamma = check_real("gamma", gamma, lt=0)
        self.zeta = check_real("zeta", zeta, gt=1)
        init = check_real("init_log_alpha", init_log_alpha)
        self.log_alpha = nn.Parameter(torch.full((self.n_units,), init))

    def extra_repr(self) -> str:
        return (f"n_units={self.n_units}, beta={self.beta:g}, gamma={self.gamma:g}, "
                f"zeta={self.zeta:g}")

    def _stretch(self, s: Tensor) -> Tensor:
        return (s * (self.zeta - self.gamma) + self.gamma).clamp(0.0, 1.0)

    def sample(self, n: int) -> Tensor:
        """``n×n_units`` gates drawn as in training mode (from the global torch RNG)."""
        n = check_int("n", n, minimum=1)
        la = self.log_alpha
        u = torch.rand(n, self.n_units, device=la.device, dtype=la.dtype).clamp(1e-6, 1 - 1e-6)
        return self._stretch(torch.sigmoid((u.log() - (-u).log1p() + la) / self.beta))

    def eval_scale(self) -> Tensor:
        r"""The deterministic gates :math:`\hat z` (eval mode), detached, length ``n_units``."""
        with torch.no_grad():
            return self._stretch(torch.sigmoid(self.log_alpha)).detach().clone()

    def forward(self, h: Tensor) -> Tensor:
        if h.dim() != 2 or h.shape[1] != self.n_units:
            raise ValueError(f"the gate expects activations of shape N×{self.n_units}, got "
                             f"{tuple(h.shape)}")
        if self.training:
            return h * self.sample(h.shape[0]).to(h.dtype)
        return h * self._stretch(torch.sigmoid(self.log_alpha)).to(h.dtype)

    def expected_l0(self) -> Tensor:
        r""":math:`\sum_j P(z_j \ne 0) = \sum_j \sigma(\log\alpha_j - \beta\log(-\gamma/\zeta))`,
        a differentiable scalar (Louizos et al. 2018, eq. 12)."""
        return torch.sigmoid(self.log_alpha - self.beta * math.log(-self.gamma / self.zeta)).sum()

    def active(self) -> Tensor:
        """Boolean mask of the units whose eval-mode gate is open (``> 0``)."""
        return self.eval_scale() > 0


def l0_penalty(model: MLPAutoencoder) -> Tensor:
    """The sum of :meth:`HardConcreteGate.expected_l0` over the model's hard-concrete gates
    (the L0 training term; 0 if it has none)."""
    if not isinstance(model, MLPAutoencoder):
        raise TypeError(f"model must be an MLPAutoencoder, got {type(model).__name__}")
    terms = [g.expected_l0() for g in (model.gate(l) for l in model.gate_layers)
             if isinstance(g, HardConcreteGate)]
    return torch.stack(terms).sum() if terms else model.linears[0].weight.new_zeros(())


def param_groups(model: nn.Module, lr: float, gate_lr: float) -> list[dict[str, Any]]:
    """Optimiser parameter groups: the gates' parameters (names starting with ``gates.``) at
    ``gate_lr``, all others at ``lr``. Under Adam a parameter moves at most about ``lr`` per
    step, so at ``lr = 1e-3`` a gate starting at ``log α = 2`` needs thousands of steps to
    close (measured on MNIST, 1,570 steps: no gate closed at any λ); ``gate_lr`` of a few
    hundredths lets the L0 weight decide."""
    lr, gate_lr = check_real("lr", lr, gt=0), check_real("gate_lr", gate_lr, gt=0)
    named = list(model.named_parameters())
    gates = [p for n, p in named if n.startswith("gates.")]
    others = [p for n, p in named if not n.startswith("gates.")]
    return [{"params": others, "lr": lr}] + ([{"params": gates, "lr": gate_lr}] if gates else [])


# --- nested dropout (Rippel et al. 2014) --------------------------------------------------------


class NestedDropout(nn.Module):
    r"""Nested dropout (Rippel, Gelbart & Adams 2014, "Learning ordered representations with
    nested dropout"): in training mode, for each example draw
    :math:`b = \min(1 + F, n)` with :math:`F` geometric, :math:`P(F \ge k) = (1-p)^k`, and
    zero the units with index :math:`\ge b`: unit ``j`` (0-based) is kept with probability
    :math:`(1-p)^j` (unit 0 always; the geometric tail beyond ``n`` keeps all units). The
    first units are then trained to carry the most information, so the first ``k`` units
    form a good width-``k`` code (:func:`truncate`). Eval mode: the identity.
    """

    def __init__(self, n_units: int, p: float) -> None:
        super().__init__()
        self.n_units = check_int("n_units", n_units, minimum=1)
        self.p = check_real("p", p, gt=0, lt=1)

    def extra_repr(self) -> str:
        return f"n_units={self.n_units}, p={self.p:g}"

    def sample_widths(self, n: int, device: torch.device | str | None = None) -> Tensor:
        """``n`` kept widths ``b`` in ``1..n_units`` (inverse CDF of the geometric law)."""
        n = check_int("n", n, minimum=1)
        u = 1.0 - torch.rand(n, device=device, dtype=torch.float64)  # in (0, 1]
        failures = torch.floor(torch.log(u) / math.log1p(-self.p))
        return (1 + failures).clamp(max=self.n_units).long()

    def keep_probability(self) -> Tensor:
        """:math:`P(\\text{unit } j \\text{ kept}) = (1-p)^j`, ``j = 0..n_units-1``."""
        return (1 - self.p) ** torch.arange(self.n_units, dtype=torch.float64)

    def eval_scale(self) -> Tensor:
        """Ones: in eval mode nested dropout is the identity."""
        return torch.ones(self.n_units)

    def forward(self, h: Tensor) -> Tensor:
        if h.dim() != 2 or h.shape[1] != self.n_units:
            raise ValueError(f"nested dropout expects activations of shape N×{self.n_units}, "
                             f"got {tuple(h.shape)}")
        if not self.training:
            return h
        b = self.sample_widths(h.shape[0], h.device)
        keep = torch.arange(self.n_units, device=h.device)[None, :] < b[:, None]
        return h * keep.to(h.dtype)


def truncate(h: Tensor, k: int) -> Tensor:
    """``h`` (``N×d``) with the units ``k..d-1`` set to 0: the width-``k`` code of a model
    trained with :class:`NestedDropout` (dropped units are zeros in training too)."""
    if not isinstance(h, Tensor) or h.dim() != 2:
        raise ValueError(f"h must be an N×d tensor of codes, got "
                         f"{getattr(h, 'shape', type(h).__name__)}")
    k = check_int("k", k, minimum=0, maximum=h.shape[1])
    out = h.clone()
    out[:, k:] = 0
    return out


def _check_model_layer(model: MLPAutoencoder, layer: int, name: str = "model") -> int:
    if not isinstance(model, MLPAutoencoder):
        raise TypeError(f"{name} must be an MLPAutoencoder, got {type(model).__name__}")
    return check_int("layer", layer, minimum=1, maximum=model.num_layers - 1)


@torch.no_grad()
def width_curve(model: MLPAutoencoder, layer: int, x: Tensor,
                widths: Sequence[int] | None = None, batch_size: int = 1000) -> dict[int, float]:
    r"""Per-pixel test MSE at each width ``k``,
    :math:`\frac{1}{N D}\sum_n \lVert D_l(\mathrm{truncate}(E_l(x_n), k)) - x_n\rVert^2`, with
    :math:`E_l`/:math:`D_l` the model's ``encode``/``decode_from`` at ``layer``, in eval mode
    (restored). Default widths: ``1..width``. One nested-dropout model gives a whole curve."""
    layer = _check_model_layer(model, layer)
    width = model.layer_sizes[layer]
    ks = list(range(1, width + 1)) if widths is None else [
        check_int(f"widths[{i}]", k, minimum=0, maximum=width) for i, k in enumerate(widths)]
    batch_size = check_int("batch_size", batch_size, minimum=1)
    if not isinstance(x, Tensor) or x.dim() < 2 or x.shape[0] == 0:
        raise ValueError("x must be a non-empty tensor of inputs (N, ...)")
    device = model.linears[0].weight.device
    was_training = model.training
    model.eval()
    total = dict.fromkeys(ks, 0.0)
    try:
        for start in range(0, x.shape[0], batch_size):
            xb = x[start:start + batch_size].to(device)
            flat = xb.reshape(xb.shape[0], -1).double()
            codes = model.encode(xb, layer)
            for k in ks:
                out = model.decode_from(truncate(codes, k), layer).reshape(xb.shape[0], -1)
                total[k] += float((out.double() - flat).pow(2).sum())
    finally:
        model.train(was_training)
    return {k: v / x[0].numel() / x.shape[0] for k, v in total.items()}


# --- group lasso with proximal steps -------------------------------------------------------------


@dataclass
class GroupLassoProx:
    r"""Group lasso on the units of hidden layer ``layer``, applied by proximal steps.

    The group of unit ``g`` is every parameter that touches it: its incoming weight row
    ``linears[layer-1].weight[g]``, its bias ``linears[layer-1].bias[g]`` and its outgoing
    weight column ``linears[layer].weight[:, g]``; the penalty is
    :math:`\lambda \sum_g \lVert w_g \rVert_2`. It adds nothing to the gradients: after each
    optimiser step with learning rate :math:`\eta`, every group is moved by the proximal map
    of :math:`\eta\lambda\lVert\cdot\rVert_2`, the group soft-threshold

    .. math:: w_g \leftarrow w_g \, \max\big(0, 1 - \eta\lambda / \lVert w_g\rVert_2\big),

    which sets a group of norm at most :math:`\eta\lambda` exactly to 0: the unit is then dead
    (incoming weights and bias 0) and unused (outgoing weights 0). With SGD this is the
    proximal gradient method; under Adam it is the usual heuristic of a prox after the
    adaptive step. Follows :class:`entropic_ae.training.Regulariser`; ``weight`` is :math:`\lambda`.
    """

    layer: int
    weight: float
    name: str = "group_lasso"

    def __post_init__(self) -> None:
        self.layer = check_int("layer", self.layer, minimum=1)
        self.weight = check_real("weight", self.weight, ge=0)

    def _maps(self, model: nn.Module) -> tuple[nn.Linear, nn.Linear]:
        linears = getattr(model, "linears", None)
        if linears is None or not self.layer < len(linears):
            raise ValueError(f"group lasso on layer {self.layer} needs a model with linear maps "
                             f"into and out of that layer (an MLPAutoencoder with at least "
                             f"{self.layer + 1} maps)")
        return linears[self.layer - 1], linears[self.layer]

    def norms(self, model: nn.Module) -> Tensor:
        r""":math:`\lVert w_g\rVert_2` of every unit ``g`` of the layer (detached)."""
        into, out = self._maps(model)
        with torch.no_grad():
            sq = into.weight.pow(2).sum(1) + out.weight.pow(2).sum(0)
            if into.bias is not None:
                sq = sq + into.bias.pow(2)
            return sq.sqrt()

    def before_step(self, model: nn.Module, step: int, x: torch.Tensor | None = None) -> float:
        r"""The penalty :math:`\lambda\sum_g\lVert w_g\rVert_2` for the log; no gradient."""
        return self.weight * float(self.norms(model).sum())

    def after_step(self, model: nn.Module, step: int, lr: float) -> None:
        """The proximal update of every group, in place."""
        lr = check_real("lr", lr, ge=0)
        threshold = lr * self.weight
        norms = self.norms(model)
        factor = torch.where(norms > threshold, 1 - threshold / norms.clamp_min(1e-300),
                             torch.zeros_like(norms))
        into, out = self._maps(model)
        with torch.no_grad():
            into.weight.mul_(factor[:, None])
            if into.bias is not None:
                into.bias.mul_(factor)
            out.weight.mul_(factor[None, :])

    def reset(self) -> None:
        """Nothing to reset between epochs."""


# --- counting units the same way for every method ------------------------------------------------


@dataclass(frozen=True)
class UnitCount:
    """The units of one layer by the book's measure: ``rise[j]`` (the relative rise of the
    error when unit ``j`` is set to its mean), ``active`` (``rise > threshold``), ``dead``
    (the code is exactly 0 on every input: a dead ReLU, a closed gate, a truncated or
    zeroed unit) and ``constant`` (the same value on every input; dead units included)."""

    layer: int
    width: int
    threshold: float
    rise: Tensor
    active: Tensor
    dead: Tensor
    constant: Tensor

    @property
    def n_active(self) -> int:
        return int(self.active.sum())

    @property
    def n_dead(self) -> int:
        return int(self.dead.sum())

    @property
    def n_constant(self) -> int:
        return int(self.constant.sum())

    def as_dict(self) -> dict[str, Any]:
        """Plain numbers and lists, for a results table."""
        return {"layer": self.layer, "width": self.width, "active_units": self.n_active,
                "dead_units": self.n_dead, "constant_units": self.n_constant,
                "active": self.active.tolist(), "rise": self.rise.tolist()}


@torch.no_grad()
def count_units(model: MLPAutoencoder, layer: int, x: Tensor, threshold: float = 0.01,
                keep: int | None = None, batch_size: int = 4096) -> UnitCount:
    r"""Active, dead and constant units of ``layer``, the same measure for every method.

    Unit ``j`` is active when :math:`r_j > \delta` (``threshold``, default 1 %), with
    :math:`r_j` from :func:`entropic_ae.metrics.unit_ablation` on the encoder
    ``model.encode(·, layer)`` and the decoder ``model.decode_from(·, layer)`` over the inputs
    ``x``, in eval mode (restored afterwards): gates are deterministic there, so a closed L0
    gate or a group zeroed by the lasso leaves a dead unit, and ``keep = k`` evaluates a
    nested-dropout model at width ``k`` (codes passed through :func:`truncate`).
    """
    layer = _check_model_layer(model, layer)
    threshold = check_real("threshold", threshold, ge=0)
    width = model.layer_sizes[layer]
    if keep is not None:
        keep = check_int("keep", keep, minimum=0, maximum=width)
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor of inputs, got {type(x).__name__}")
    device = model.linears[0].weight.device
    x = x.to(device)

    def encode(v: Tensor) -> Tensor:
        codes = model.encode(v, layer)
        return codes if keep is None else truncate(codes, keep)

    was_training = model.training
    model.eval()
    try:
        rise = unit_ablation(encode, lambda h: model.decode_from(h, layer), x, batch_size)
        codes = torch.cat([encode(x[i:i + batch_size]) for i in range(0, x.shape[0], batch_size)])
    finally:
        model.train(was_training)
    constant = (codes == codes[:1]).all(0).cpu()
    dead = (codes == 0).all(0).cpu()
    return UnitCount(layer=layer, width=width, threshold=threshold, rise=rise,
                     active=rise > threshold, dead=dead, constant=constant)


def prune_by_ablation(model: MLPAutoencoder, layer: int, x: Tensor, threshold: float = 0.01,
                      keep: int | None = None) -> tuple[MLPAutoencoder, PruneReport, UnitCount]:
    """Train wide, then prune: remove every unit of ``layer`` that is not active by
    :func:`count_units` (set to its mean over ``x``, folded into the next bias, by
    :func:`~entropic_ae.models.mlp.prune`; gates are folded in at their eval value). With
    ``keep = k`` the units ``k..`` are removed too (a nested-dropout model cut to width
    ``k``). Returns the pruned model (eval mode; fine-tune it on the reconstruction alone), the
    prune report and the count it was based on. At least one unit is kept."""
    count = count_units(model, layer, x, threshold, keep)
    quiet = [int(i) for i in torch.nonzero(~count.active).flatten()]
    source = model
    if keep is not None and keep < model.layer_sizes[layer]:
        # the cut units feed the decoder 0 (as truncate() does): zero their outgoing weights,
        # so that removing them folds nothing into the next bias
        source = copy.deepcopy(model)
        with torch.no_grad():
            source.linears[layer].weight[:, keep:] = 0
    was_training = source.training
    source.eval()
    try:
        pruned, report = prune(source, x.to(model.linears[0].weight.device), layers=[layer],
                               remove={layer: quiet})
    finally:
        source.train(was_training)
    return pruned, report, count


# --- the Pareto frontier -------------------------------------------------------------------------


def _points(units: Any, mse: Any) -> tuple[np.ndarray, np.ndarray]:
    u = np.asarray(units, dtype=np.float64).reshape(-1)
    m = np.asarray(mse, dtype=np.float64).reshape(-1)
    if u.shape != m.shape or u.size == 0:
        raise ValueError(f"units and mse must be two non-empty sequences of equal length, got "
                         f"{u.size} and {m.size}")
    if not (np.isfinite(u).all() and np.isfinite(m).all()):
        raise ValueError("units and mse must be finite")
    return u, m


def pareto_mask(units: Any, mse: Any) -> np.ndarray:
    r"""The non-dominated points of the plane (active units, MSE), where fewer units and lower
    MSE are better: point ``i`` is on the frontier unless some ``j`` has
    :math:`u_j \le u_i` and :math:`m_j \le m_i` with at least one inequality strict. (Equal
    points do not dominate each other; both stay.) Returns a boolean array."""
    u, m = _points(units, mse)
    le = (u[None, :] <= u[:, None]) & (m[None, :] <= m[:, None])  # [i, j]: j at least as good
    lt = (u[None, :] < u[:, None]) | (m[None, :] < m[:, None])
    return ~(le & lt).any(axis=1)


def frontier_gap(units: Any, mse: Any) -> np.ndarray:
    r"""Each point's distance to the Pareto frontier in MSE at equal or fewer active units:
    :math:`g_i = m_i - \min\{m_j : u_j \le u_i\}` (the minimum is attained on the frontier
    and includes ``i``, so :math:`g_i \ge 0`, and :math:`g_i = 0` exactly on the frontier
    or on a point that ties a frontier point)."""
    u, m = _points(units, mse)
    best = np.array([m[u <= ui].min() for ui in u])
    return m - best


def pareto_table(runs: pd.DataFrame, by: str | Sequence[str] = ("method", "setting"),
                 units: str = "active_units", mse: str = "test_mse") -> pd.DataFrame:
    r"""The width comparison: one row per group of runs (``by``: a method and its setting,
    each group one configuration over seeds), with the means and sds (``ddof = 1``) of
    ``units`` and ``mse``, the number of runs ``n``, ``on_frontier`` (:func:`pareto_mask` of
    the means), ``gap`` (:func:`frontier_gap` of the means), ``relative_gap``
    (``gap / frontier MSE``), ``reference`` (the group on the frontier that sets the gap:
    the lowest mean MSE at equal or fewer mean units) and ``verdict``: the book's 2-sd rule
    (:func:`entropic_ae.verdicts.decide`) on "the reference has a lower MSE than this group",
    per seed; ``None`` on the frontier, ``"undecided"`` when either group has a single run.
    """
    keys = [by] if isinstance(by, str) else list(by)
    missing = [c for c in [*keys, units, mse] if c not in runs.columns]
    if missing:
        raise ValueError(f"runs has no columns {missing}; it has {list(runs.columns)}")
    if runs.empty:
        raise ValueError("runs is empty")
    groups = runs.groupby(keys, sort=False)
    table = groups.agg(n=(mse, "size"), units_mean=(units, "mean"), units_sd=(units, "std"),
                       mse_mean=(mse, "mean"), mse_sd=(mse, "std"))
    u, m = table["units_mean"].to_numpy(), table["mse_mean"].to_numpy()
    table["on_frontier"] = pareto_mask(u, m)
    table["gap"] = frontier_gap(u, m)
    ref_pos = [int(np.flatnonzero(u <= ui)[np.argmin(m[u <= ui])]) for ui in u]
    table["relative_gap"] = table["gap"].to_numpy() / m[ref_pos]
    table["reference"] = [table.index[j] for j in ref_pos]
    values = [g[mse].to_numpy(dtype=np.float64) for _, g in groups]  # in the table's order
    verdicts: list[str | None] = []
    for i, j in enumerate(ref_pos):
        if table["on_frontier"].iloc[i]:
            verdicts.append(None)
            continue
        a, b = values[j], values[i]
        verdicts.append(UNDECIDED if min(a.size, b.size) < 2 else decide(a, b).verdict)
    table["verdict"] = pd.Series(verdicts, index=table.index, dtype=object)  # None stays None
    return table
