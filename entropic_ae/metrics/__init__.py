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
    FULL_DEPENDENCE_MAX_DIM,
    code_moments,
    gaussianity,
    gaussianity_parts,
    kl_to_standard_normal,
    knn_kl_to_standard_normal,
    shrunk_correlation,
    wishart_log_det_bias,
)
from entropic_ae.metrics.reconstruction import per_class_mse, reconstruction_mse
from entropic_ae.metrics.samples import (
    SAMPLE_SCORE,
    copy_fraction,
    kid,
    precision_recall_density_coverage,
    reference_draw,
    sample_score,
    sample_scores,
)
from entropic_ae.metrics.units import ablation_active_units, active_units, unit_ablation
from entropic_ae.metrics.validation import damage_study, qualifies, verdict_scores

__all__ = ["FULL_DEPENDENCE_MAX_DIM", "SAMPLE_SCORE", "FeatureExtractor", "ablation_active_units",
           "active_units", "code_moments", "copy_fraction", "damage_study", "frechet_distance",
           "frechet_distance_images", "gaussian_frechet_distance", "gaussianity",
           "gaussianity_parts", "image_features", "inception_feature_extractor", "kid",
           "kl_to_standard_normal", "knn_kl_to_standard_normal", "per_class_mse",
           "precision_recall_density_coverage", "qualifies", "reconstruction_mse",
           "reference_draw", "sample_score", "sample_scores", "shrunk_correlation",
           "unit_ablation", "verdict_scores", "wishart_log_det_bias"]
