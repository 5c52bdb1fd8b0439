"""Spectral and physical checks of reflectance samples (issue #28 item 4; docs/bands.md).

A reflectance run's samples (``uint16`` reflectance x 10000, channels named by ``bands``) are compared
with the real patches of the direction's target domain (AtoB: testB, BtoA: testA), pixel by pixel,
in reflectance (stored value / 10000):

* ``w1_<band>``: the 1-D Wasserstein distance (``scipy.stats.wasserstein_distance``) between the real
  and the generated pixel reflectance of one band; ``w1_mean`` their mean over the run's bands;
* ``ndsi_w1`` (B03 and B11 present): the same distance between the NDSI = (B03 - B11) / (B03 + B11)
  of the real and of the generated pixels (pixels whose NDSI is undefined, B03 + B11 = 0, left out);
* ``snow_share_fake`` / ``snow_share_real`` (B03, B08, B11 present): the share of pixels that the
  mask stage's own rule calls snow (:func:`deepsnow.data.mask.classify`: NDSI > ``mask.ndsi_min`` and
  B08 > ``mask.nir_min``; patches carry no SCL, so its SCL-based classes play no part), in the
  generated and in the real target-domain patches.

A band the samples lack leaves its columns out (and NDSI and snow share NaN).
"""

from __future__ import annotations

import numpy as np

from deepsnow import DeepsnowError
from deepsnow.data.mask import SNOW, classify, ndsi

#: the reflectance of a stored value of 1
SCALE = 10000.0
#: a patch's pixels have no Scene Classification: a class none of the mask's SCL rules names (4, vegetation)
NO_SCL = 4
SNOW_BANDS = ("B03", "B08", "B11")


def _pixels(images: np.ndarray, bands, band: str) -> np.ndarray:
    """Reflectance of every pixel of one band, (N * S * S,) float64."""
    return np.asarray(images[..., list(bands).index(band)], dtype=np.float64).ravel() / SCALE


def _check(images, bands, what: str) -> np.ndarray:
    images = np.asarray(images)
    if images.dtype != np.uint16 or images.ndim != 4 or images.shape[-1] != len(bands):
        raise DeepsnowError(
            f"{what}: expected (N, S, S, {len(bands)}) uint16 reflectance for bands {list(bands)}, got {images.dtype} {images.shape}"
        )
    return images


def snow_share(images, bands, mask_params: dict, what: str = "images") -> float:
    """Share of the pixels of reflectance ``images`` (N, S, S, C) that the mask stage's rule calls snow."""
    images = _check(images, bands, what)
    if not all(b in bands for b in SNOW_BANDS) or images.size == 0:
        return float("nan")
    refl = {b: _pixels(images, bands, b) for b in SNOW_BANDS}
    n = len(refl["B03"])
    classes = classify(refl, np.full(n, NO_SCL, np.uint8), np.ones(n, np.uint8), mask_params)
    return float(np.mean(classes == SNOW))


def spectral_columns(real, fake, bands, mask_params: dict, what: str = "samples") -> dict:
    """``w1_<band>``, ``w1_mean``, ``ndsi_w1``, ``snow_share_fake``, ``snow_share_real`` (module docstring)
    of generated ``fake`` against ``real`` target-domain reflectance patches in the same ``bands``."""
    from scipy.stats import wasserstein_distance

    bands = [str(b) for b in bands]
    real, fake = _check(real, bands, f"{what} (real)"), _check(fake, bands, f"{what} (generated)")
    row = {f"w1_{b}": float(wasserstein_distance(_pixels(real, bands, b), _pixels(fake, bands, b))) for b in bands}
    row["w1_mean"] = float(np.mean([row[f"w1_{b}"] for b in bands]))
    row["ndsi_w1"] = float("nan")
    if "B03" in bands and "B11" in bands:
        (ir, okr), (if_, okf) = (ndsi(_pixels(x, bands, "B03"), _pixels(x, bands, "B11")) for x in (real, fake))
        if okr.any() and okf.any():
            row["ndsi_w1"] = float(wasserstein_distance(ir[okr], if_[okf]))
    row["snow_share_fake"] = snow_share(fake, bands, mask_params, what)
    row["snow_share_real"] = snow_share(real, bands, mask_params, what)
    return row
