"""Image embeddings for the metrics: FID Inception-v3, ImageNet ResNet-50, and any registered extractor.

Public API (imported lazily, so ``import deepsnow.features`` does not load torch):

* :func:`register_extractor`, :func:`build_extractor`, :func:`available_extractors`,
  :class:`Extractor`, ``EXTRACTORS`` (the registry), :func:`apply_weights`;
* :func:`embed_images` (uint8 (N, H, W, 3) -> float32 (N, D));
* :func:`fid_inception_v3`, :class:`FIDInceptionFeatures`, ``FID_WEIGHTS_URL``;
* :func:`embed_real`, :func:`embed_samples`, :func:`embed_file`, :func:`read_features`.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "register_extractor": "registry",
    "build_extractor": "registry",
    "available_extractors": "registry",
    "apply_weights": "registry",
    "load_pretrained": "registry",
    "Extractor": "registry",
    "EXTRACTORS": "registry",
    "WEIGHT_KINDS": "registry",
    "embed_images": "embed",
    "embed_real": "embed",
    "embed_samples": "embed",
    "embed_file": "embed",
    "read_features": "embed",
    "fid_inception_v3": "inception",
    "FIDInceptionFeatures": "inception",
    "FID_WEIGHTS_URL": "inception",
    "ResNet50Features": "builtin",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"deepsnow.features.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'deepsnow.features' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
