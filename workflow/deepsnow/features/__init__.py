"""Image embeddings for the metrics: FID Inception-v3, ImageNet ResNet-50, and any registered extractor.

Public API (imported lazily, so ``import deepsnow.features`` does not load torch):

* :func:`register_extractor`, :func:`build_extractor`, :func:`available_extractors`,
  :class:`Extractor`, ``EXTRACTORS`` (the registry), :func:`apply_weights`;
* :func:`embed_images` (uint8 (N, H, W, 3) -> float32 (N, D));
* :func:`fid_inception_v3`, :class:`FIDInceptionFeatures`, ``FID_WEIGHTS_URL``;
* :func:`embed_real`, :func:`embed_samples`, :func:`embed_file`, :func:`read_features`.
"""

from __future__ import annotations

from deepsnow.lazy import lazy_exports

#: submodule -> the public names it defines
_EXPORTS = {
    "registry": ("register_extractor", "build_extractor", "available_extractors", "EXTRACTORS"),
    "base": ("Extractor", "apply_weights", "load_pretrained", "WEIGHT_KINDS"),
    "embed": ("embed_images", "embed_real", "embed_samples", "embed_file"),
    "files": ("read_features",),
    "inception": ("fid_inception_v3", "FIDInceptionFeatures", "FID_WEIGHTS_URL"),
    "builtin": ("ResNet50Features",),
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
