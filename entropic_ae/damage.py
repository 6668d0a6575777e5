r"""Graded, known damage of real images: the test bench of the book's sample scores.

A sample score is trusted only if it ranks real held-out images first and punishes each kind of
damage the more, the stronger it is (:mod:`entropic_ae.metrics.validation`). This module makes
the damaged sets. :func:`damage` is pure and seeded: the same images, kind, strength and seed
give the same output, and nothing else is touched. Images are (N, C, H, W) in [0, 1]; the output
has as many images as the input (so that scores, whose finite-sample bias depends on the set's
size, compare like with like).

The kinds and the strengths used by the study (:data:`STRENGTHS`, weakest first):

- ``blur``: Gaussian blur with standard deviation :math:`\sigma` = 0.5, 1, 1.5 pixels
  (kernel :math:`2\lceil 3\sigma\rceil + 1` wide, reflected at the border), what a decoder that
  averages over its uncertainty produces;
- ``noise``: independent Gaussian pixel noise of standard deviation 0.05, 0.1, 0.2, clipped to
  [0, 1];
- ``contrast``: a contrast stretch about mid-grey, :math:`x \mapsto \mathrm{clip}(\tfrac12 +
  c(x - \tfrac12), 0, 1)` with :math:`c` = 1.5, 2, 4: grey edges become black or white
  (saturation), as from an over-confident sigmoid;
- ``shift``: every image moved by 1, 2, 3 pixels in one of the four axis directions, drawn per
  image (zeros move in);
- ``classes``: 2, 4, 6 of the 10 classes dropped (the same random order of classes for every
  strength of a seed, so the dropped sets are nested); their images are replaced by images of
  the kept classes from ``pool`` (extra real images with labels), or, without a pool, by the
  kept-class images of the input drawn with replacement;
- ``duplicates``: mode collapse within the data: only :math:`N/r` distinct images of the input,
  each repeated :math:`r` = 4, 16, 64 times;
- ``copies``: memorisation: a fraction 0.25, 0.5, 1 of the images replaced by distinct images
  of ``pool`` (the training images). Copies of training images *are* real images: a score that
  compares distributions cannot punish them, whatever it is; only a look at the training set
  can (:func:`entropic_ae.metrics.samples.copy_fraction`).
"""

from __future__ import annotations

import math

import torch

from entropic_ae._checks import check_int, check_real

__all__ = ["KINDS", "STRENGTHS", "damage"]

STRENGTHS: dict[str, tuple[float, ...]] = {
    "blur": (0.5, 1.0, 1.5),
    "noise": (0.05, 0.1, 0.2),
    "contrast": (1.5, 2.0, 4.0),
    "shift": (1, 2, 3),
    "classes": (2, 4, 6),
    "duplicates": (4, 16, 64),
    "copies": (0.25, 0.5, 1.0),
}
"""The three strengths of each kind of damage used by the validation study, weakest first."""

KINDS = tuple(STRENGTHS)


def _check_images(images: object, name: str = "images") -> torch.Tensor:
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or len(images) == 0:
        raise ValueError(f"{name} must be a non-empty torch.Tensor (N, C, H, W), got "
                         f"{getattr(images, 'shape', type(images).__name__)}")
    if not images.is_floating_point():
        raise TypeError(f"{name} must be floating point in [0, 1], got {images.dtype}")
    return images


def _check_labels(labels: object, n: int, name: str = "labels") -> torch.Tensor:
    if not isinstance(labels, torch.Tensor) or labels.shape != (n,):
        raise ValueError(f"{name} must be a tensor of shape ({n},), one label per image, got "
                         f"{getattr(labels, 'shape', type(labels).__name__)}")
    if labels.is_floating_point() or labels.is_complex():
        raise TypeError(f"{name} must be integers, got {labels.dtype}")
    return labels


def _blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    # deferred: torchvision's import costs about 1.2 s, which a run that never damages images
    # (every training run imports the metrics) should not pay
    from torchvision.transforms.functional import gaussian_blur

    size = 2 * math.ceil(3.0 * sigma) + 1
    return gaussian_blur(images, kernel_size=[size, size], sigma=[sigma, sigma])


def _shift(images: torch.Tensor, pixels: int, gen: torch.Generator) -> torch.Tensor:
    """Each image moved by ``pixels`` right, left, down or up (drawn per image), zeros in:
    windows of the zero-padded images (padded[y + p, x + p] = image[y, x])."""
    p = pixels
    h, w = images.shape[-2:]
    padded = torch.nn.functional.pad(images, (p, p, p, p))
    direction = torch.randint(0, 4, (len(images),), generator=gen)
    out = torch.empty_like(images)
    for d, (row, col) in enumerate(((p, 0), (p, 2 * p), (0, p), (2 * p, p))):
        chosen = direction == d  # right, left, down, up
        out[chosen] = padded[chosen, :, row:row + h, col:col + w]
    return out


def _drop_classes(images: torch.Tensor, labels: torch.Tensor, k: int, gen: torch.Generator,
                  pool: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
    classes = torch.unique(labels)
    if k >= len(classes):
        raise ValueError(f"cannot drop {k} classes of the {len(classes)} present; at least one "
                         "must be kept")
    order = classes[torch.randperm(len(classes), generator=gen)]
    dropped = order[:k]  # the same order for every k of a seed: nested damage
    keep = ~torch.isin(labels, dropped)
    n_missing = int((~keep).sum())
    if pool is not None:
        pool_images, pool_labels = pool
        candidates = pool_images[~torch.isin(pool_labels, dropped)]
        if len(candidates) < n_missing:
            raise ValueError(f"the pool holds {len(candidates)} images of the kept classes, "
                             f"{n_missing} are needed to replace the dropped ones")
        pick = torch.randperm(len(candidates), generator=gen)[:n_missing]
        extra = candidates[pick]
    else:
        kept = images[keep]
        extra = kept[torch.randint(0, len(kept), (n_missing,), generator=gen)]
    out = images.clone()
    out[~keep] = extra.to(images.dtype)
    return out


def _duplicates(images: torch.Tensor, r: int, gen: torch.Generator) -> torch.Tensor:
    n = len(images)
    distinct = max(1, math.ceil(n / r))
    source = torch.randperm(n, generator=gen)[:distinct]
    repeated = source.repeat_interleave(r)[:n]
    return images[repeated[torch.randperm(n, generator=gen)]]


def _copies(images: torch.Tensor, fraction: float, gen: torch.Generator,
            pool: torch.Tensor) -> torch.Tensor:
    n = len(images)
    m = round(fraction * n)
    if len(pool) < m:
        raise ValueError(f"the pool holds {len(pool)} training images, {m} distinct copies are "
                         "needed")
    where = torch.randperm(n, generator=gen)[:m]
    out = images.clone()
    out[where] = pool[torch.randperm(len(pool), generator=gen)[:m]].to(images.dtype)
    return out


def damage(images: torch.Tensor, labels: torch.Tensor | None, kind: str, strength: float,
           seed: int = 0, pool: torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None = None
           ) -> torch.Tensor:
    """``images`` damaged by ``kind`` at ``strength`` (see the module's list and
    :data:`STRENGTHS`), with every random choice drawn from a generator seeded ``seed``.

    ``labels`` (one int per image) are needed for ``classes`` only; ``pool`` is, for
    ``classes``, optional extra real ``(images, labels)`` to replace the dropped classes with,
    and for ``copies`` the training images (required). Returns a new tensor of the input's
    shape and dtype; the input is not changed. Strength 0 (``classes``, ``copies``, ``noise``,
    ``blur``, ``shift``), 1 (``duplicates``, ``contrast``) returns an unchanged copy.
    """
    images = _check_images(images)
    if not isinstance(kind, str) or kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    seed = check_int("seed", seed, minimum=0)
    gen = torch.Generator().manual_seed(seed)
    if kind == "blur":
        sigma = check_real("strength", strength, ge=0)
        return images.clone() if sigma == 0 else _blur(images, sigma)
    if kind == "noise":
        sd = check_real("strength", strength, ge=0)
        noise = torch.randn(images.shape, generator=gen, dtype=torch.float64)
        return (images + sd * noise.to(images.dtype)).clamp(0.0, 1.0)
    if kind == "contrast":
        c = check_real("strength", strength, gt=0)
        return (0.5 + c * (images - 0.5)).clamp(0.0, 1.0)
    if kind == "shift":
        p = check_int("strength", strength, minimum=0, maximum=min(images.shape[-2:]) - 1)
        return images.clone() if p == 0 else _shift(images, p, gen)
    if kind == "duplicates":
        r = check_int("strength", strength, minimum=1)
        return images.clone() if r == 1 else _duplicates(images, r, gen)
    if kind == "classes":
        k = check_int("strength", strength, minimum=0)
        labels = _check_labels(labels, len(images))
        if pool is not None:
            if not isinstance(pool, tuple) or len(pool) != 2:
                raise ValueError("pool must be (images, labels) for kind 'classes'")
            pool = (_check_images(pool[0], "pool images"),
                    _check_labels(pool[1], len(pool[0]), "pool labels"))
        return images.clone() if k == 0 else _drop_classes(images, labels, k, gen, pool)
    fraction = check_real("strength", strength, ge=0, le=1)  # copies
    if pool is None or isinstance(pool, tuple):
        raise ValueError("kind 'copies' needs pool= the training images (N, C, H, W)")
    pool = _check_images(pool, "pool")
    if pool.shape[1:] != images.shape[1:]:
        raise ValueError(f"pool images have shape {tuple(pool.shape[1:])}, the images "
                         f"{tuple(images.shape[1:])}")
    return _copies(images, fraction, gen, pool)
