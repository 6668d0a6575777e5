"""Measurements of trained autoencoders, one module per idea:

- :mod:`~entropic_ae.metrics.units`: active code units (variance; ablation);
- :mod:`~entropic_ae.metrics.reconstruction`: reconstruction errors;
- :mod:`~entropic_ae.metrics.features`: image features for sample scores;
- :mod:`~entropic_ae.metrics.frechet`: the Fréchet distance;
- :mod:`~entropic_ae.metrics.samples`: the chapter's sample score, KID, fidelity and coverage
  (precision/recall, density/coverage), copies of training images, seeded reference draws;
- :mod:`~entropic_ae.metrics.validation`: the study of sample scores on known damage of real
  images, and the check which scores qualify;
- :mod:`~entropic_ae.metrics.gaussianity`: how Gaussian codes are, the KL divergence to
  :math:`\\mathcal N(0, I)` split into its moment, marginal-shape and dependence parts;
- :mod:`~entropic_ae.metrics.dependence`: the dependence part's estimators (Gaussian copula,
  nearest neighbours).

Every public name is re-exported here, so ``from entropic_ae.metrics import X`` and
``metrics.X`` work as they did when this was one module.
"""

from entropic_ae.metrics.features import (
    FeatureExtractor,
    image_features,
    inception_feature_extractor,
)
from entropic_ae.metrics.frechet import (
    frechet_distance,
    frechet_distance_images,
    gaussian_frechet_distance,
)
from entropic_ae.metrics.gaussianity import (
    code_moments,
    gaussianity,
    kl_to_standard_normal,
    knn_kl_to_standard_normal,
    shrunk_correlation,
    wishart_log_det_bias,
)
from entropic_ae.metrics.reconstruction import per_class_mse, reconstruction_mse
from entropic_ae.metrics.units import ablation_active_units, active_units, unit_ablation

__all__ = [
    "FeatureExtractor",
    "ablation_active_units",
    "active_units",
    "code_moments",
    "frechet_distance",
    "frechet_distance_images",
    "gaussian_frechet_distance",
    "gaussianity",
    "image_features",
    "inception_feature_extractor",
    "kl_to_standard_normal",
    "knn_kl_to_standard_normal",
    "per_class_mse",
    "reconstruction_mse",
    "shrunk_correlation",
    "unit_ablation",
    "wishart_log_det_bias",
]
