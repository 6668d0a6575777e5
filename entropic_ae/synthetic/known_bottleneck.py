r"""Images with a bottleneck of known width, placed at a chosen depth, for bottleneck finders.

Data: :math:`x = g(z)`, :math:`z \sim U[0, 1]^k` (or :math:`\mathcal N(0, I_k)`), where :math:`g`
is a fixed random ReLU network (seeded) with the shape of the *decoder half* of the chapter's
autoencoder below a chosen node layer :math:`\ell^*` (``layer``): for the autoencoder
784-64-16-16-16-64-784 and :math:`\ell^* = 3`, :math:`g` maps
:math:`k \to 16 \to 64 \to 784` with ReLU, ReLU and a sigmoid, exactly the layers
:math:`\ell^*+1, \dots, L` of :class:`~entropic_ae.models.mlp.MLPAutoencoder`. Pixels lie in
:math:`(0, 1)`.

What is known, and what "the right layer" means:

1. *The width.* The data are a smooth function of a :math:`k`-dimensional code: the Jacobian of
   :math:`g` has rank :math:`k` everywhere (tested at random codes), so no layer of an
   autoencoder that reconstructs the data well can carry fewer than :math:`k` independent
   units, and :math:`k` suffice: the right width is :math:`k`.
2. *A layer where width* :math:`k` *is exact.* The autoencoder whose layer :math:`\ell^*` is
   narrowed to :math:`k` units (``info["hand_sizes"]``) can hold :math:`z` itself there (a
   uniform code is non-negative, so ReLU passes it unchanged) and its layers
   :math:`\ell^*+1..L` can *be* :math:`g` (tested: they reproduce :math:`x` to rounding). The
   encoder half only has to invert :math:`g` with as many layers as :math:`g` has.
3. *Why not another layer.* A :math:`k`-wide layer *after* :math:`\ell^*` leaves the decoder one
   or more nonlinear layers short of :math:`g`'s depth (and narrower than :math:`g`'s hidden
   layers, which each hold a curved, higher-rank image of :math:`z`), so it cannot reproduce
   :math:`g` exactly; a :math:`k`-wide layer *before* :math:`\ell^*` can pass the code on
   through the later layers (:math:`k` of their units suffice), but leaves the encoder fewer
   layers to invert :math:`g`. So :math:`\ell^*` is the layer where both halves have the
   generator's depth. This ordering is a claim about what training finds, not a theorem, and
   **measurement does not support it** for the chapter's network: hand-sized autoencoders with
   the :math:`k`-wide layer at 2, 3 or 4 (10,000 images, 30 epochs, Adam, 3 seeds) reach test
   errors of 0.0114 / 0.0080 / 0.0071 (:math:`k = 4`) and 0.0074 / 0.0093 / 0.0240
   (:math:`k = 6`, one run dead), differences that dead ReLU units in the narrow layer dominate.
   So only the *width* is a known answer; which inner layer holds it is not identified by the
   reconstruction. A bottleneck finder is checked on the width (active units of its narrowest
   layer within :math:`k \pm 1`) and on whether its choice of layer is the same across seeds.

The random weights are set so that :math:`g` is injective and every unit is used: in each hidden
layer, :math:`k` units are on for every code (the layer always holds an affine image of
:math:`z`, so the Jacobian of :math:`g` has rank :math:`k` everywhere), and the kink of every other
unit lies inside the data (on for 20-80 % of the codes, a random quantile each); every pixel's
pre-activation has a random mean and a fixed spread over the data (``contrast``), so pixels vary
and do not saturate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from entropic_ae._checks import check_int, check_real

__all__ = ["AE_SIZES", "LATENTS", "known_bottleneck_decoder", "make_known_bottleneck"]

#: The chapters' autoencoder, node layers 0..6.
AE_SIZES = (784, 64, 16, 16, 16, 64, 784)
#: Code distributions: uniform on the unit cube (non-negative: ReLU units hold it exactly), or
#: standard normal.
LATENTS = ("uniform", "gaussian")

_REFERENCE = 4096  # codes used to place the hyperplanes and standardise the pixels


def _check_sizes(layer_sizes: Sequence[int], layer: int, k: int) -> tuple[int, ...]:
    sizes = tuple(check_int(f"layer_sizes[{i}]", n, 1) for i, n in enumerate(layer_sizes))
    if len(sizes) < 3:
        raise ValueError(f"layer_sizes must have at least three node layers, got {list(sizes)}")
    check_int("layer", layer, 1, len(sizes) - 2)
    if k > sizes[layer]:
        raise ValueError(f"k={k} is wider than layer {layer} of the autoencoder "
                         f"({sizes[layer]} units): the code would not fit")
    return sizes


def _codes(n: int, k: int, latent: str, gen: torch.Generator) -> torch.Tensor:
    if latent == "uniform":
        return torch.rand(n, k, generator=gen, dtype=torch.float64)
    return torch.randn(n, k, generator=gen, dtype=torch.float64)


def _hidden(n_in: int, n_out: int, k: int, h_ref: torch.Tensor,
            gen: torch.Generator) -> nn.Linear:
    """He-scaled weights. Units ``0..k-1`` are on for every reference code (bias: the smallest
    pre-activation, less a margin), so the layer always holds an affine image of the code; the
    others have their kink at a random quantile in [0.2, 0.8] of their pre-activation over the
    reference codes (on for 20-80 % of them)."""
    lin = nn.utils.skip_init(nn.Linear, n_in, n_out, dtype=torch.float64)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(n_out, n_in, generator=gen, dtype=torch.float64)
                         * math.sqrt(2.0 / n_in))
        pre = h_ref @ lin.weight.T
        q = 0.2 + 0.6 * torch.rand(n_out, generator=gen, dtype=torch.float64)
        cut = torch.stack([torch.quantile(pre[:, j], float(q[j])) for j in range(n_out)])
        low = pre.amin(0) - 0.5 * pre.std(0)
        on = torch.arange(n_out) < k
        lin.bias.copy_(-torch.where(on, low, cut))
    return lin


def _output(n_in: int, n_out: int, h_ref: torch.Tensor, contrast: float,
            gen: torch.Generator) -> nn.Linear:
    """Weights scaled so that each pixel's pre-activation has spread ``contrast`` over the
    reference codes, around a mean drawn from N(-0.5, 1)."""
    lin = nn.utils.skip_init(nn.Linear, n_in, n_out, dtype=torch.float64)
    with torch.no_grad():
        w = torch.randn(n_out, n_in, generator=gen, dtype=torch.float64)
        pre = h_ref @ w.T
        std = pre.std(0).clamp_min(1e-12)
        w = w * (contrast / std).unsqueeze(1)
        mean = -0.5 + torch.randn(n_out, generator=gen, dtype=torch.float64)
        lin.weight.copy_(w)
        lin.bias.copy_(mean - (h_ref @ w.T).mean(0))
    return lin


def known_bottleneck_decoder(k: int, seed: int = 0, *, layer: int = 3,
                             layer_sizes: Sequence[int] = AE_SIZES, latent: str = "uniform",
                             contrast: float = 1.5) -> nn.Sequential:
    r"""The generator :math:`g`: ``nn.Sequential`` of ``nn.Linear`` (float64) with ReLU after the
    hidden layers and a sigmoid at the end, widths ``[k, *layer_sizes[layer + 1:]]``, built from
    ``seed`` alone (the global RNGs are not touched). See the module notes for the weights."""
    k = check_int("k", k, 1)
    sizes = _check_sizes(layer_sizes, layer, k)
    if latent not in LATENTS:
        raise ValueError(f"latent must be one of {LATENTS}, got {latent!r}")
    contrast = check_real("contrast", contrast, gt=0)
    gen = torch.Generator().manual_seed(check_int("seed", seed, 0))
    widths = [k, *sizes[layer + 1:]]
    h = _codes(_REFERENCE, k, latent, gen)
    modules: list[nn.Module] = []
    for n_in, n_out in zip(widths[:-2], widths[1:-1], strict=True):
        lin = _hidden(n_in, n_out, k, h, gen)
        modules += [lin, nn.ReLU()]
        with torch.no_grad():
            h = torch.relu(lin(h))
    modules += [_output(widths[-2], widths[-1], h, contrast, gen), nn.Sigmoid()]
    return nn.Sequential(*modules).requires_grad_(False)


def make_known_bottleneck(n: int, k: int, seed: int = 0, *, layer: int = 3,
                          layer_sizes: Sequence[int] = AE_SIZES, latent: str = "uniform",
                          contrast: float = 1.5, dtype: torch.dtype = torch.float32,
                          data_seed: int | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
    r"""``n`` images :math:`x_i = g(z_i)` with a true bottleneck of width ``k`` at node layer
    ``layer`` of an autoencoder of shape ``layer_sizes`` (see the module notes).

    The generator :math:`g` is :func:`known_bottleneck_decoder` ``(k, seed, ...)``; the codes are
    drawn from ``latent`` with ``data_seed`` (default ``seed + 1``; a different ``data_seed``
    gives fresh samples of the same distribution, e.g. a test set). Returns ``x`` (n × 784 in
    ``dtype``, values in (0, 1)) and ``info``: ``k``, ``layer`` (the true bottleneck layer),
    ``layer_sizes``, ``hand_sizes`` (``layer_sizes`` with ``layer`` narrowed to ``k``),
    ``generator_sizes``, ``latent``, ``seed``, ``data_seed``, ``z`` (the codes, n × k, float64)
    and ``decoder`` (:math:`g`, float64)."""
    n = check_int("n", n, 1)
    decoder = known_bottleneck_decoder(k, seed, layer=layer, layer_sizes=layer_sizes,
                                       latent=latent, contrast=contrast)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    data_seed = seed + 1 if data_seed is None else check_int("data_seed", data_seed, 0)
    z = _codes(n, k, latent, torch.Generator().manual_seed(data_seed))
    with torch.no_grad():
        x = decoder(z)
    sizes = list(layer_sizes)
    hand = list(sizes)
    hand[layer] = k
    info = {"k": k, "layer": layer, "layer_sizes": sizes, "hand_sizes": hand,
            "generator_sizes": [k, *sizes[layer + 1:]], "latent": latent, "seed": seed,
            "data_seed": data_seed, "z": z, "decoder": decoder}
    return x.to(dtype), info
