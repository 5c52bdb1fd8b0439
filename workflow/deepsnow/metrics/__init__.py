"""Quality metrics of generated images, computed on feature arrays (N x D).

Public API (imported lazily, so ``import deepsnow.metrics`` stays cheap):

* :func:`frechet_distance` (x, y) and :func:`frechet_distance_from_stats` (mu1, s1, mu2, s2):
  FID on Inception features, FRD on ResNet-50 features; eigenvalue form, no ``sqrtm``;
* :func:`cosine_resnet_distance` (1 - mean pairwise cosine similarity),
  :func:`mean_cosine_similarity`, :func:`mean_dot_product` (the paper's Eq. 5 literally);
* :func:`kernel_distance` (unbiased KID, returns mean and std);
* :func:`rf_two_sample_test` (the paper's random-forest real-vs-generated test),
  :func:`clipped_log_loss`;
* :func:`paired_errors` (L1 and SSIM against the simulator's true snow images);
* :func:`feature_stats`, :func:`trace_sqrt_product`, :func:`check_features`.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "frechet_distance": "distances",
    "frechet_distance_from_stats": "distances",
    "feature_stats": "distances",
    "trace_sqrt_product": "distances",
    "check_features": "distances",
    "cosine_resnet_distance": "distances",
    "mean_cosine_similarity": "distances",
    "mean_dot_product": "distances",
    "kernel_distance": "distances",
    "rf_two_sample_test": "rf",
    "clipped_log_loss": "rf",
    "paired_errors": "paired",
    "pair_by_ids": "paired",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"deepsnow.metrics.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'deepsnow.metrics' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
