r"""Scores of generated images against real ones, on feature vectors of a feature network.

- :func:`kid`: the kernel (Inception) distance, the unbiased estimate of the squared maximum
  mean discrepancy with the cubic polynomial kernel (Bińkowski et al. 2018);
- :func:`precision_recall_density_coverage`: fidelity (precision, density) and coverage
  (recall, coverage) of the generated set, by nearest-neighbour balls (Kynkäänniemi et al.
  2019; Naeem et al. 2020), so that a verdict can say whether a model won on sharp samples or
  on covering the data;
- :func:`copy_fraction`: how many generated images are nearer to a training image than real
  held-out images ever are (memorisation, which no distribution score can see);
- :func:`reference_draw`: seeded, disjoint random draws of image indices (MNIST's test file is
  ordered by writer group: consecutive blocks of it differ more than random draws do);
- :func:`sample_score`, the chapter's verdict score, and :func:`sample_scores`, every column
  at once.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from entropic_ae._checks import check_int, check_real
from entropic_ae.metrics.features import FeatureExtractor, image_features
from entropic_ae.metrics.frechet import frechet_distance, gaussian_frechet_distance
from entropic_ae.sampling import as_float64_matrix

__all__ = [
    "SAMPLE_SCORE",
    "ReferenceSet",
    "copy_fraction",
    "kid",
    "precision_recall_density_coverage",
    "reference_draw",
    "sample_score",
    "sample_scores",
]

SAMPLE_SCORE = "frechet"
"""The score behind :func:`sample_score`, chosen by the validation study of chapter 4
(:mod:`entropic_ae.metrics.validation`): the Fréchet distance and the KID both rank real
held-out images first and are strictly monotone in every damage's strength on MNIST and
Fashion-MNIST; the Fréchet distance is monotone seed by seed in all of them (the KID misses one
on Fashion-MNIST), resolves as many weakest damages from its real-vs-real noise (10 of 12 for
both), and depends less on the feature network's training seed (its values on damaged sets
differ by 11 % (MNIST) and 9 % (Fashion-MNIST) between three LeNet seeds, the KID's by 31 %
and 38 %)."""


def reference_draw(n_images: int, n: int, seed: int, parts: int = 2) -> tuple[torch.Tensor, ...]:
    """``parts`` disjoint sets of ``n`` indices into ``range(n_images)``, drawn at random: one
    permutation of the indices from a generator seeded ``seed``, cut into consecutive blocks.
    E.g. ``ref, comparison = reference_draw(10_000, 2000, seed)``."""
    n_images = check_int("n_images", n_images, minimum=1)
    n = check_int("n", n, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    parts = check_int("parts", parts, minimum=1)
    if n * parts > n_images:
        raise ValueError(f"cannot draw {parts} disjoint sets of n={n} from {n_images} images")
    order = torch.randperm(n_images, generator=torch.Generator().manual_seed(seed))
    return tuple(order[i * n:(i + 1) * n] for i in range(parts))


def _pair(x: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray, least: int = 2
          ) -> tuple[torch.Tensor, torch.Tensor]:
    a = torch.from_numpy(as_float64_matrix(x, "x_features"))
    b = torch.from_numpy(as_float64_matrix(y, "y_features"))
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature dimensions differ: {a.shape[1]} vs {b.shape[1]}")
    if len(a) < least or len(b) < least:
        raise ValueError(f"need at least {least} feature vectors in each set, got {len(a)} and "
                         f"{len(b)}")
    return a, b


def _kernel_mean(a: torch.Tensor, b: torch.Tensor, degree: int, coef: float,
                 within: bool) -> torch.Tensor:
    r"""Mean of :math:`k(a_i, b_j) = (a_i^\top b_j / F + c)^p` over all pairs, or over
    :math:`i \ne j` when ``within`` (then ``a`` is ``b``)."""
    k = (a @ b.T / a.shape[1] + coef) ** degree
    if within:
        m = len(a)
        return (k.sum() - k.diagonal().sum()) / (m * (m - 1))
    return k.mean()


def kid(x_features: torch.Tensor | np.ndarray, y_features: torch.Tensor | np.ndarray,
        degree: int = 3, coef: float = 1.0) -> float:
    r"""Unbiased squared MMD between two sets of feature vectors (M × F and N × F) with the
    polynomial kernel :math:`k(u, v) = (u^\top v / F + c)^p` (``degree`` p = 3, ``coef`` c = 1:
    the KID's kernel):

    .. math:: \frac{\sum_{i \ne j} k(x_i, x_j)}{M(M-1)} + \frac{\sum_{i \ne j} k(y_i, y_j)}
       {N(N-1)} - \frac{2}{MN}\sum_{i,j} k(x_i, y_j),

    in float64 (the three sums are large and nearly cancel; float32 loses the difference).
    Unbiased: its mean over draws is the population MMD², so it is about 0 (and can be
    negative) for two draws of one distribution, whatever the sizes. Equals ``torchmetrics``'
    ``poly_mmd`` on the whole sets when M = N.
    """
    degree = check_int("degree", degree, minimum=1)
    coef = check_real("coef", coef, ge=0)
    x, y = _pair(x_features, y_features)
    return float(_kernel_mean(x, x, degree, coef, True) + _kernel_mean(y, y, degree, coef, True)
                 - 2.0 * _kernel_mean(x, y, degree, coef, False))


class ReferenceSet:
    """A reference set's features with what :func:`frechet_distance` and :func:`kid` need of
    them computed once (mean, covariance, the KID kernel's within-set mean), for scoring many
    sets against one reference: :meth:`frechet` and :meth:`kid` equal those functions."""

    def __init__(self, features: torch.Tensor | np.ndarray) -> None:
        self.features = torch.from_numpy(as_float64_matrix(features, "features"))
        if len(self.features) < 2:
            raise ValueError("a reference set needs at least 2 feature vectors")
        f = self.features.numpy()
        self.mean = f.mean(0)
        self.cov = np.cov(f, rowvar=False, ddof=1).reshape(f.shape[1], f.shape[1])
        self.within = _kernel_mean(self.features, self.features, 3, 1.0, True)

    def frechet(self, features: torch.Tensor | np.ndarray) -> float:
        """:func:`frechet_distance` of ``features`` to the reference."""
        x, _ = _pair(features, self.features)
        f = x.numpy()
        cov = np.cov(f, rowvar=False, ddof=1).reshape(f.shape[1], f.shape[1])
        return gaussian_frechet_distance(f.mean(0), cov, self.mean, self.cov)

    def kid(self, features: torch.Tensor | np.ndarray) -> float:
        """:func:`kid` of ``features`` and the reference (cubic kernel, c = 1)."""
        x, y = _pair(features, self.features)
        return float(_kernel_mean(x, x, 3, 1.0, True) + self.within
                     - 2.0 * _kernel_mean(x, y, 3, 1.0, False))


def _kth_distance(d: torch.Tensor, k: int) -> torch.Tensor:
    """Distance of each row's k-th nearest neighbour in a square distance matrix, itself
    excluded (its own zero is the first of the k + 1 smallest)."""
    return d.topk(k + 1, dim=1, largest=False).values[:, k]


def precision_recall_density_coverage(real_features: torch.Tensor | np.ndarray,
                                      fake_features: torch.Tensor | np.ndarray, k: int = 5
                                      ) -> dict[str, float]:
    r"""Fidelity and coverage of ``fake_features`` (M × F) against ``real_features`` (N × F).

    With :math:`r_i` the distance from real :math:`x_i` to its ``k``-th nearest other real
    vector and :math:`s_j` that of fake :math:`y_j` among the fakes (Euclidean, float64):

    - precision :math:`= \frac1M\sum_j 1[\exists i: \lVert y_j - x_i\rVert < r_i]` (the share of
      fakes inside the real manifold, Kynkäänniemi et al. 2019);
    - recall :math:`= \frac1N\sum_i 1[\exists j: \lVert x_i - y_j\rVert < s_j]` (the share of
      reals inside the fake manifold);
    - density :math:`= \frac1{kM}\sum_j \sum_i 1[\lVert y_j - x_i\rVert < r_i]` (how many real
      balls hold each fake, on average; about 1 for a fake set like the real one, above 1 for
      fakes crowded where the reals are dense);
    - coverage :math:`= \frac1N\sum_i 1[\min_j \lVert x_i - y_j\rVert < r_i]` (the share of real
      balls that hold a fake; Naeem et al. 2020).

    The same definitions (strict inequalities) as the ``prdc`` package; fidelity are precision
    and density, coverage recall and coverage; all are higher-is-better.
    """
    k = check_int("k", k, minimum=1)
    x, y = _pair(real_features, fake_features, least=k + 1)
    real_radius = _kth_distance(torch.cdist(x, x), k)
    fake_radius = _kth_distance(torch.cdist(y, y), k)
    d = torch.cdist(x, y)  # (N, M)
    inside = d < real_radius[:, None]
    return {
        "precision": float(inside.any(0).double().mean()),
        "recall": float((d < fake_radius[None, :]).any(1).double().mean()),
        "density": float(inside.sum(0).double().mean() / k),
        "coverage": float((d.min(1).values < real_radius).double().mean()),
    }


def _nearest_distances(x: torch.Tensor, pool: torch.Tensor, block: int = 1000) -> torch.Tensor:
    """Euclidean distance of each row of ``x`` to its nearest row of ``pool`` (float64)."""
    out = [torch.cdist(x[i:i + block], pool).min(1).values for i in range(0, len(x), block)]
    return torch.cat(out)


def copy_fraction(generated: torch.Tensor, train: torch.Tensor, reference: torch.Tensor,
                  quantile: float = 0.01) -> float:
    r"""Share of ``generated`` images nearer to some ``train`` image than all but a fraction
    ``quantile`` of real held-out images are (pixel space, Euclidean, float64):
    :math:`\frac1M \sum_j 1[\delta(g_j) < \tau]`, :math:`\delta(x) = \min_t \lVert x - t\rVert`,
    :math:`\tau` the ``quantile`` of :math:`\delta` over ``reference`` (held-out images, not in
    ``train``). About ``quantile`` for new real images, 1 for copies of training images.

    A score of distributions cannot see copies of training images (they are real images);
    this column can. ``train`` should be the images the model was trained on.
    """
    quantile = check_real("quantile", quantile, gt=0, lt=1)
    flat = []
    for name, images in (("generated", generated), ("train", train), ("reference", reference)):
        if not isinstance(images, torch.Tensor) or images.dim() < 2 or len(images) == 0:
            raise ValueError(f"{name} must be a non-empty tensor of images (N, ...)")
        flat.append(images.reshape(len(images), -1).to(torch.float64))
    g, t, r = flat
    if not g.shape[1] == t.shape[1] == r.shape[1]:
        raise ValueError(f"the images differ in size: {g.shape[1]}, {t.shape[1]}, {r.shape[1]} "
                         "values each")
    tau = torch.quantile(_nearest_distances(r, t), quantile)
    return float((_nearest_distances(g, t) < tau).double().mean())


Extractors = FeatureExtractor | Sequence[FeatureExtractor]


def _as_list(feature_extractor: Extractors) -> list[FeatureExtractor]:
    nets = [feature_extractor] if callable(feature_extractor) else list(feature_extractor)
    if not nets or not all(callable(f) for f in nets):
        raise TypeError("feature_extractor must be a callable (images -> features) or a "
                        "non-empty sequence of them")
    return nets


def _features(images: torch.Tensor, nets: list[FeatureExtractor]) -> list[torch.Tensor]:
    """Features of ``images`` under each net; precomputed features (a list of (N, F) tensors,
    one per net) pass through."""
    if isinstance(images, list | tuple):
        if len(images) != len(nets):
            raise ValueError(f"got {len(images)} precomputed feature sets for {len(nets)} nets")
        return list(images)
    return [image_features(images, f) for f in nets]


_SCORES = {"frechet": frechet_distance, "kid": kid}


def sample_score(generated: torch.Tensor, reference: torch.Tensor | Sequence[torch.Tensor],
                 feature_extractor: Extractors) -> float:
    """The chapter's verdict score of ``generated`` images against ``reference`` images,
    lower is better: :data:`SAMPLE_SCORE` (the Fréchet distance, :func:`frechet_distance`) in
    the features of ``feature_extractor`` (the book's LeNet); for several extractors (a
    multi-seed feature space), the mean of their scores. ``reference`` may be precomputed
    features, one (N, F) tensor per extractor (a list, even for one), so the reference set is
    embedded once. Draw the reference set at random (:func:`reference_draw`): on MNIST,
    consecutive blocks of the test file differ more than random draws do."""
    nets = _as_list(feature_extractor)
    gen, ref = _features(generated, nets), _features(reference, nets)
    score = _SCORES[SAMPLE_SCORE]
    return float(np.mean([score(g, r) for g, r in zip(gen, ref, strict=True)]))


def sample_scores(generated: torch.Tensor, reference: torch.Tensor | Sequence[torch.Tensor],
                  feature_extractor: Extractors, train: torch.Tensor | None = None,
                  reference_images: torch.Tensor | None = None, k: int = 5) -> dict[str, float]:
    """Every sample column for a results table: ``score`` (:func:`sample_score`),
    ``frechet`` and ``kid`` (means over the extractors), ``precision``, ``recall``,
    ``density`` and ``coverage`` (:func:`precision_recall_density_coverage` with ``k``, in the
    first extractor's features), and, when ``train`` (the model's training images) and
    ``reference_images`` (held-out images; ``reference`` itself when it holds images) are
    given, ``copy_fraction`` (:func:`copy_fraction`)."""
    nets = _as_list(feature_extractor)
    gen, ref = _features(generated, nets), _features(reference, nets)
    out = {"frechet": float(np.mean([frechet_distance(g, r) for g, r in
                                     zip(gen, ref, strict=True)])),
           "kid": float(np.mean([kid(g, r) for g, r in zip(gen, ref, strict=True)]))}
    out["score"] = out[SAMPLE_SCORE]
    out.update(precision_recall_density_coverage(ref[0], gen[0], k))
    if train is not None:
        held_out = reference_images if reference_images is not None else reference
        if not isinstance(held_out, torch.Tensor) or held_out.dim() != 4:
            raise ValueError("copy_fraction needs held-out images: pass reference_images")
        out["copy_fraction"] = copy_fraction(generated, train, held_out)
    return out
