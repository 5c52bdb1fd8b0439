"""Quality metrics of generated images, computed on feature arrays (N x D).

Public API (imported lazily, so ``import deepsnow.metrics`` stays cheap):

* :func:`frechet_distance` (x, y) and :func:`frechet_distance_from_stats` (mu1, s1, mu2, s2):
  FID on Inception features, FRD on ResNet-50 features; eigenvalue form, no ``sqrtm``;
* :func:`cosine_resnet_distance` (1 - mean pairwise cosine similarity),
  :func:`mean_cosine_similarity`, :func:`mean_dot_product` (the paper's Eq. 5 literally);
* :func:`kernel_distance` (unbiased KID, returns mean and std);
* :func:`rf_two_sample_test` (the paper's random-forest real-vs-generated test),
  :func:`clipped_log_loss`;
* :func:`prdc_scores` (precision, recall, density, coverage by k nearest neighbours, in row blocks), :func:`knn_radii`;
* :func:`paired_errors` (L1 and SSIM against the simulator's true snow images);
* :func:`feature_stats`, :func:`trace_sqrt_product`, :func:`check_features`.
"""

from __future__ import annotations

from deepsnow.lazy import lazy_exports

#: submodule -> the public names it defines
_EXPORTS = {
    "distances": (
        "frechet_distance", "frechet_distance_from_stats", "feature_stats", "trace_sqrt_product", "check_features",
        "cosine_resnet_distance", "mean_cosine_similarity", "mean_dot_product", "kernel_distance",
    ),
    "rf": ("rf_two_sample_test", "clipped_log_loss"),
    "paired": ("paired_errors", "pair_by_ids"),
    "prdc": ("prdc_scores", "knn_radii"),
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
