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
  generated and in the real target-domain patches;
* ``sam_w1``: the 1-D Wasserstein distance, in radians, between the spectral angles of the real and of
  the generated pixels, each pixel's angle taken against one fixed reference per direction: the mean
  reflectance spectrum of the real target-domain test pixels (all the run's bands; pixels whose
  reflectance is zero in every band have no angle and are left out). The reference depends on the
  test set only, so it is the same for every epoch of a run.

Against the simulator's truth (AtoB only: ``truth_snowfall`` of testA, paired by ids;
:func:`snow_truth_columns`), the mask stage's snow rule applied to the generated and to the true patch:

* ``snow_cover_mae``: mean over the patches of |generated - true| per-patch snow-cover fraction;
* ``snow_share_truth``: the share of the true pixels called snow;
* ``snow_iou``: the snow pixels' intersection over union, pooled over the test set (sums over every
  patch, then one ratio); ``snow_iou_patch``: the mean of the per-patch IoU over the patches where
  either side has snow (NaN when none has).

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


def snow_pixels(images, bands, mask_params: dict, what: str = "images") -> np.ndarray | None:
    """Where the mask stage's rule calls a pixel of reflectance ``images`` (N, S, S, C) snow, (N, S, S) bool;
    None when B03, B08 or B11 is missing."""
    images = _check(images, bands, what)
    if not all(b in bands for b in SNOW_BANDS):
        return None
    refl = {b: np.asarray(images[..., list(bands).index(b)], dtype=np.float64) / SCALE for b in SNOW_BANDS}
    shape = images.shape[:3]
    return classify(refl, np.full(shape, NO_SCL, np.uint8), np.ones(shape, np.uint8), mask_params) == SNOW


def snow_share(images, bands, mask_params: dict, what: str = "images") -> float:
    """Share of the pixels of reflectance ``images`` (N, S, S, C) that the mask stage's rule calls snow."""
    snow = snow_pixels(images, bands, mask_params, what)
    return float("nan") if snow is None or snow.size == 0 else float(np.mean(snow))


def spectral_angles(images, reference, chunk: int = 16) -> np.ndarray:
    """The angle (radians, 0..pi) between each pixel's reflectance vector of ``images`` (N, S, S, C) and
    ``reference`` (C,); pixels that are zero in every band left out. Patches ``chunk`` at a time."""
    ref = np.asarray(reference, dtype=np.float64)
    ref = ref / np.linalg.norm(ref)
    out = []
    for i in range(0, len(images), chunk):
        x = np.asarray(images[i : i + chunk], dtype=np.float64).reshape(-1, len(ref)) / SCALE
        norm = np.linalg.norm(x, axis=1)
        u = x[norm > 0] / norm[norm > 0, None]
        # 2 atan2(|u - r|, |u + r|): the angle, accurate near 0 where arccos of the cosine is not
        out.append(2 * np.arctan2(np.linalg.norm(u - ref, axis=1), np.linalg.norm(u + ref, axis=1)))
    return np.concatenate(out) if out else np.zeros(0)


def mean_spectrum(images) -> np.ndarray:
    """The mean reflectance of every band over all pixels of ``images`` (N, S, S, C), (C,) float64."""
    images = np.asarray(images)
    sums = np.zeros(images.shape[-1])
    for i in range(0, len(images), 16):
        sums += np.asarray(images[i : i + 16], dtype=np.float64).reshape(-1, images.shape[-1]).sum(0)
    return sums / max(images.size // images.shape[-1], 1) / SCALE


def sam_w1(real, fake) -> float:
    """``sam_w1`` (module docstring): the Wasserstein distance of the real and generated pixels' angles
    to the real pixels' mean spectrum; NaN when that mean is zero or a side has no angle."""
    from scipy.stats import wasserstein_distance

    ref = mean_spectrum(real)
    if not np.linalg.norm(ref) > 0:
        return float("nan")
    ar, af = spectral_angles(real, ref), spectral_angles(fake, ref)
    return float(wasserstein_distance(ar, af)) if len(ar) and len(af) else float("nan")


def snow_truth_columns(fake, truth, bands, mask_params: dict, what: str = "samples") -> dict:
    """``snow_cover_mae``, ``snow_share_truth``, ``snow_iou``, ``snow_iou_patch`` (module docstring) of
    generated patches ``fake`` against the true patches ``truth`` in the same order; {} without B03, B08, B11."""
    bands = [str(b) for b in bands]
    fs = snow_pixels(fake, bands, mask_params, f"{what} (generated)")
    ts = snow_pixels(truth, bands, mask_params, f"{what} (truth)")
    if fs is None or ts is None:
        return {}
    if fs.shape != ts.shape:
        raise DeepsnowError(f"{what}: {fs.shape} generated patches but {ts.shape} true ones")
    nan = float("nan")
    if len(fs) == 0:
        return {"snow_cover_mae": nan, "snow_share_truth": nan, "snow_iou": nan, "snow_iou_patch": nan}
    inter, union = (fs & ts).sum(axis=(1, 2)), (fs | ts).sum(axis=(1, 2))
    some = union > 0
    return {
        "snow_cover_mae": float(np.abs(fs.mean(axis=(1, 2)) - ts.mean(axis=(1, 2))).mean()),
        "snow_share_truth": float(ts.mean()),
        "snow_iou": float(inter.sum() / union.sum()) if union.sum() else nan,
        "snow_iou_patch": float(np.mean(inter[some] / union[some])) if some.any() else nan,
    }


def spectral_columns(real, fake, bands, mask_params: dict, what: str = "samples") -> dict:
    """``w1_<band>``, ``w1_mean``, ``ndsi_w1``, ``snow_share_fake``, ``snow_share_real``, ``sam_w1`` (module docstring)
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
    row["sam_w1"] = sam_w1(real, fake)
    return row
