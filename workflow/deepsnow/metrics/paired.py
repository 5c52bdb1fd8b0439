"""Paired error of translated images against the simulator's true snow-covered images.

Only the simulator has ground truth: ``testA.npz`` may hold ``truth_snowfall``, the same
snow-free test patch after a snowfall over the whole area (what domain B's snow asks of the
generator), and ``truth``, the same in the snow season (snowy only above the snow line, which
the input does not show). ``fake_B[i]`` (testA patch i translated A->B) pairs with the true
image of the same id; :mod:`deepsnow.metrics.epoch` measures against both (docs/metrics.md).

* ``paired_l1``: mean absolute difference over pixels and channels, on the
  0..1 scale (uint8 difference / 255); for reflectance samples (``patches.encoding: reflectance``,
  uint16 reflectance x 10000 in the run's bands, the truths cut in the same bands) in reflectance
  (uint16 difference / 10000) over all the bands;
* ``paired_ssim``: mean over pairs of ``skimage.metrics.structural_similarity``
  (``channel_axis=-1``, ``data_range=255``, default 7x7 uniform window); for reflectance, of the
  reflectance (stored value / 10000) with ``data_range=1`` (reflectance 0..1), all bands;
* ``paired_l1_water``: ``paired_l1`` over water pixels only (where the paper
  saw GAN artifacts), when ``water`` masks are given and any water is present.
"""

from __future__ import annotations

import logging

import numpy as np

from deepsnow import DeepsnowError

log = logging.getLogger("deepsnow.metrics")


def pair_by_ids(fake_ids, truth_ids) -> tuple[np.ndarray, np.ndarray]:
    """Indices (into fake, into truth) of the ids present in both, in fake order."""
    fake_ids = np.asarray(fake_ids).astype(str)
    truth_ids = np.asarray(truth_ids).astype(str)
    if len(set(truth_ids)) != len(truth_ids):
        raise DeepsnowError("truth ids are not unique; cannot pair generated and true images")
    where = {k: i for i, k in enumerate(truth_ids)}
    fi = [i for i, k in enumerate(fake_ids) if k in where]
    ti = [where[fake_ids[i]] for i in fi]
    return np.asarray(fi, dtype=int), np.asarray(ti, dtype=int)


#: dtype of the paired images -> the stored value of 1 on the errors' scale: 8-bit RGB on 0..1,
#: uint16 reflectance x 10000 in reflectance
UNIT = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 10000.0}


def _images(fake, truth) -> tuple[np.ndarray, np.ndarray]:
    """Paired images as arrays of equal (N, S, S, C) shapes and dtypes: uint8 RGB (C = 3) or uint16
    reflectance x 10000 (any C)."""
    fake, truth = np.asarray(fake), np.asarray(truth)
    if fake.shape != truth.shape or fake.ndim != 4 or fake.dtype != truth.dtype or fake.dtype not in UNIT:
        raise DeepsnowError(
            "paired images must be uint8 RGB or uint16 reflectance of equal (N, S, S, C) shapes, got "
            f"{fake.dtype} {fake.shape} and {truth.dtype} {truth.shape}"
        )
    if fake.dtype == np.uint8 and fake.shape[-1] != 3:
        raise DeepsnowError(f"paired uint8 images must be (N, S, S, 3) RGB, got {fake.shape}")
    return fake, truth


def _abs_diff(fake: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """|fake - truth| on the errors' scale (float64): 0..1 for uint8 RGB, reflectance for uint16."""
    return np.abs(fake.astype(np.int32) - truth.astype(np.int32)).astype(np.float64) / UNIT[fake.dtype]


def _ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of one pair: uint8 RGB with data range 255, reflectance (value / 10000) with data range 1."""
    from skimage.metrics import structural_similarity

    if a.dtype == np.uint8:
        return structural_similarity(a, b, channel_axis=-1, data_range=255)
    return structural_similarity(a / UNIT[a.dtype], b / UNIT[b.dtype], channel_axis=-1, data_range=1.0)


def patch_l1(fake, truth) -> np.ndarray:
    """``paired_l1`` of every pair (N,): the mean absolute difference of each patch on the 0..1
    scale (reflectance: in reflectance). Patches have one size, so their mean is ``paired_l1`` (the metrics tracking bootstraps it)."""
    fake, truth = _images(fake, truth)
    return _abs_diff(fake, truth).mean(axis=(1, 2, 3))


def paired_errors(fake, truth, water=None) -> dict:
    """L1 and SSIM between paired images (N, S, S, C): uint8 RGB (L1 on the 0..1 scale) or uint16
    reflectance x 10000 (L1 in reflectance)."""
    fake, truth = _images(fake, truth)
    n = len(fake)
    if n == 0:
        return {"paired_l1": float("nan"), "paired_ssim": float("nan"), "paired_l1_water": float("nan"), "n_paired": 0}
    if min(fake.shape[1:3]) < 7:
        raise DeepsnowError(f"images of {fake.shape[1]}x{fake.shape[2]} px are too small for SSIM's 7x7 window")
    diff = _abs_diff(fake, truth)
    l1 = float(diff.mean())
    ssim = float(np.mean([_ssim(a, b) for a, b in zip(fake, truth)]))
    l1_water = float("nan")
    if water is not None:
        water = np.asarray(water, dtype=bool)
        if water.shape != fake.shape[:3]:
            raise DeepsnowError(f"water masks have shape {water.shape}, expected {fake.shape[:3]}")
        if water.any():
            l1_water = float(diff[water].mean())
    return {"paired_l1": l1, "paired_ssim": ssim, "paired_l1_water": l1_water, "n_paired": n}
