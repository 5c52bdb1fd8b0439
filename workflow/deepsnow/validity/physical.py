"""The physical metrics of reflectance sets along the ladders, with the same bootstrap draws as the others.

On a reflectance run every candidate set is also measured in pixels against the mode's reference
patches, as the metrics stage measures a reflectance epoch (:mod:`deepsnow.metrics.spectral`):

* ``w1_mean``: the mean over the bands of the 1-D Wasserstein distance of the pixels' reflectance;
* ``ndsi_w1``: the same distance between the pixels' NDSI (B03 and B11 present; pixels whose NDSI
  is undefined left out);
* ``sam_w1``: the same distance between the pixels' spectral angles to the reference set's mean
  spectrum (all the run's bands; the whole reference set's, kept for every replicate, as the metrics
  stage keeps one per run for every epoch);
* ``snow_share_gap``: |share of the candidate's pixels the mask's rule calls snow - that share of
  the reference's|. ``snow_share_fake`` alone is no distance (a right share is the reference's, not
  0 or 1): the gap is 0 for a translation with as much snow as the real snowy patches, and grows
  with snow missing or added, so "worse" is "higher" as for the other distances.

In truth mode, against the undegraded truth (the same patches, paired): ``snow_cover_mae`` and
``snow_iou`` as :func:`deepsnow.metrics.spectral.snow_truth_columns` defines them.

A bootstrap replicate draws reference and candidate patches with replacement, so its pixel
distributions are sums of per-patch ones. Each set is therefore summarised once as per-patch
histograms (reflectance in bins of :data:`CODE_BIN` stored units, 0.001 reflectance; NDSI and angle
in bins of :data:`UNIT_BIN`), the snow pixels per patch, and (truth mode) the intersection and
union with the truth's snow per patch; a replicate's histogram is the drawn patches' sum (one
matrix product for all replicates), and the Wasserstein distance is read from the two cumulative
histograms, W1 = bin x sum |F - G|. That is the exact distance between the pixel values rounded down
to their bins: each value moves by less than a bin, so it differs from the exact W1 of the pixels
(``scipy.stats.wasserstein_distance``, as metrics.csv has it) by less than one bin (0.001),
tests/test_validity_reflectance.py. The snow shares, cover error and IoU are exact. The set's own
value is the all-patches histogram's, the same approximation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deepsnow.data.mask import ndsi
from deepsnow.metrics.spectral import SCALE, spectral_angles

#: reflectance histogram bin in stored units (10: 0.001 reflectance)
CODE_BIN = 10
#: NDSI and spectral-angle (radians) histogram bin
UNIT_BIN = 0.001
#: physical metrics: the set against the reference, and (truth mode) against the undegraded truth
AGAINST_REFERENCE = ("w1_mean", "ndsi_w1", "sam_w1", "snow_share_gap")
AGAINST_TRUTH = ("snow_cover_mae", "snow_iou")


@dataclass
class Summary:
    """One set's pixels, per patch: histograms per band (N, C, bins), of NDSI (N, bins) and of the
    spectral angle (N, bins), snow pixel counts (N,), pixels per patch; (truth mode) the snow
    pixels' intersection and union with the truth's (N,) and the truth's snow counts (N,)."""

    bands: np.ndarray
    ndsi: np.ndarray | None
    angle: np.ndarray
    snow: np.ndarray | None
    pixels: int
    inter: np.ndarray | None = None
    union: np.ndarray | None = None
    truth_snow: np.ndarray | None = None


def patch_histograms(bins: np.ndarray, valid: np.ndarray, n_bins: int) -> np.ndarray:
    """(N, n_bins) counts of the bin indices ``bins`` (N, ...) of every patch where ``valid``."""
    n = len(bins)
    patch = np.broadcast_to(np.arange(n).reshape((n,) + (1,) * (bins.ndim - 1)), bins.shape)
    flat = (patch * n_bins + np.clip(bins, 0, n_bins - 1))[valid]
    return np.bincount(flat.ravel(), minlength=n * n_bins).reshape(n, n_bins)


def unit_bins(values: np.ndarray, low: float, high: float) -> tuple[np.ndarray, int]:
    """Bin indices of ``values`` in [low, high] by :data:`UNIT_BIN`, and the number of bins."""
    n_bins = int(np.ceil((high - low) / UNIT_BIN)) + 1
    return np.floor((values - low) / UNIT_BIN).astype(np.int64), n_bins


def angle_histograms(images: np.ndarray, spectrum: np.ndarray) -> np.ndarray:
    """(N, bins) histograms of each patch's pixel angles to ``spectrum`` (zero pixels left out)."""
    n_bins = unit_bins(np.zeros(0), 0.0, np.pi)[1]
    out = np.zeros((len(images), n_bins), dtype=np.int64)
    for i, patch in enumerate(images):
        bins, _ = unit_bins(spectral_angles(patch[None], spectrum), 0.0, np.pi)
        out[i] = np.bincount(np.clip(bins, 0, n_bins - 1), minlength=n_bins)
    return out


def summarise_set(images: np.ndarray, encoding, spectrum: np.ndarray, truth_snow: np.ndarray | None = None) -> Summary:
    """A set's :class:`Summary` (``truth_snow``: the truth's snow mask (N, H, W), truth mode)."""
    from deepsnow.metrics.spectral import snow_pixels

    bands = list(encoding.bands)
    n_code = 65536 // CODE_BIN + 1
    everywhere = np.ones(images.shape[:3], bool)
    codes = (images[..., c].astype(np.int64) // CODE_BIN for c in range(len(bands)))
    per_band = np.stack([patch_histograms(b, everywhere, n_code) for b in codes], axis=1)
    index = None
    if "B03" in bands and "B11" in bands:
        value, ok = ndsi(images[..., bands.index("B03")] / SCALE, images[..., bands.index("B11")] / SCALE)
        bins, n_bins = unit_bins(value, -1.0, 1.0)
        index = patch_histograms(bins, ok, n_bins)
    snow = snow_pixels(images, bands, encoding.mask, "a ladder's set")
    counts = None if snow is None else snow.sum(axis=(1, 2))
    out = Summary(per_band, index, angle_histograms(images, spectrum), counts, int(np.prod(images.shape[1:3])))
    if truth_snow is not None and snow is not None:
        out.inter, out.union = (snow & truth_snow).sum(axis=(1, 2)), (snow | truth_snow).sum(axis=(1, 2))
        out.truth_snow = truth_snow.sum(axis=(1, 2))
    return out


def hist_w1(a: np.ndarray, b: np.ndarray, width: float) -> np.ndarray:
    """W1 between histograms on one grid of bin ``width``, (..., bins) each -> (...,): width x sum |F - G|;
    NaN where either side is empty."""
    na, nb = a.sum(axis=-1), b.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        fa, fb = np.cumsum(a, axis=-1) / na[..., None], np.cumsum(b, axis=-1) / nb[..., None]
        w1 = width * np.abs(fa - fb).sum(axis=-1)
    return np.where((na > 0) & (nb > 0), w1, np.nan)


def weights(draws, n: int, side: int) -> np.ndarray:
    """(R + 1, n): how often each patch is drawn, per replicate (side 0: reference, 1: candidate),
    after a first row of ones (the set itself)."""
    return np.stack([np.ones(n)] + [np.bincount(d[side], minlength=n) for d in draws]).astype(np.float64)


def _pooled(w: np.ndarray, per_patch: np.ndarray) -> np.ndarray:
    """Per replicate (rows of ``w``), the drawn patches' sum of ``per_patch`` (N, ...) -> (R + 1, ...)."""
    return (w @ per_patch.reshape(len(per_patch), -1).astype(np.float64)).reshape((len(w),) + per_patch.shape[1:])


def _against_reference(ref: Summary, cand: Summary, wr: np.ndarray, wc: np.ndarray) -> dict[str, np.ndarray]:
    nan = np.full(len(wr), np.nan)
    out = {
        "w1_mean": (hist_w1(_pooled(wr, ref.bands), _pooled(wc, cand.bands), CODE_BIN / SCALE)).mean(axis=-1),
        "ndsi_w1": nan if ref.ndsi is None else hist_w1(_pooled(wr, ref.ndsi), _pooled(wc, cand.ndsi), UNIT_BIN),
        "sam_w1": hist_w1(_pooled(wr, ref.angle), _pooled(wc, cand.angle), UNIT_BIN),
        "snow_share_gap": nan,
    }
    if ref.snow is not None:
        share = lambda w, s: (w @ s) / (w.sum(axis=1) * ref.pixels)  # noqa: E731
        out["snow_share_gap"] = np.abs(share(wc, cand.snow) - share(wr, ref.snow))
    return out


def _against_truth(cand: Summary, wc: np.ndarray) -> dict[str, np.ndarray]:
    frac = np.abs(cand.snow - cand.truth_snow) / cand.pixels
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = (wc @ cand.inter) / (wc @ cand.union)
    return {"snow_cover_mae": (wc @ frac) / wc.sum(axis=1), "snow_iou": np.where(wc @ cand.union > 0, iou, np.nan)}


def physical_metrics(ref: Summary, cand: Summary, draws) -> tuple[dict, list[dict]]:
    """The physical metrics of a candidate set against the reference (and, when summarised with it,
    the truth): the set's values and each replicate's (``draws``: (reference rows, candidate rows))."""
    wr, wc = weights(draws, len(ref.bands), 0), weights(draws, len(cand.bands), 1)
    columns = _against_reference(ref, cand, wr, wc)
    if cand.inter is not None:
        columns |= _against_truth(cand, wc)
    rows = [{name: float(v[r]) for name, v in columns.items()} for r in range(len(wr))]
    return rows[0], rows[1:]
