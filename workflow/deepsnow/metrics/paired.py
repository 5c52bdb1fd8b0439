"""Paired error of translated images against the simulator's true snow-covered images.

Only the simulator has ground truth: ``testA.npz`` may hold ``truth_snowfall``, the same
snow-free test patch after a snowfall over the whole area (what domain B's snow asks of the
generator), and ``truth``, the same in the snow season (snowy only above the snow line, which
the input does not show). ``fake_B[i]`` (testA patch i translated A->B) pairs with the true
image of the same id; :mod:`deepsnow.metrics.epoch` measures against both (docs/metrics.md).

* ``paired_l1``: mean absolute difference over pixels and channels, on the
  0..1 scale (uint8 difference / 255);
* ``paired_ssim``: mean over pairs of ``skimage.metrics.structural_similarity``
  (``channel_axis=-1``, ``data_range=255``, default 7x7 uniform window);
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


def _images(fake, truth) -> tuple[np.ndarray, np.ndarray]:
    """Paired uint8 RGB images as arrays of equal (N, S, S, 3) shapes."""
    fake, truth = np.asarray(fake), np.asarray(truth)
    if fake.shape != truth.shape or fake.ndim != 4 or fake.shape[-1] != 3:
        raise DeepsnowError(f"paired images must have equal (N, S, S, 3) shapes, got {fake.shape} and {truth.shape}")
    return fake, truth


def _abs_diff(fake: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """|fake - truth| of uint8 images on the 0..1 scale (float64)."""
    return np.abs(fake.astype(np.int16) - truth.astype(np.int16)).astype(np.float64) / 255.0


def patch_l1(fake, truth) -> np.ndarray:
    """``paired_l1`` of every pair (N,): the mean absolute difference of each patch on the 0..1
    scale. Patches have one size, so their mean is ``paired_l1`` (the metrics tracking bootstraps it)."""
    fake, truth = _images(fake, truth)
    return _abs_diff(fake, truth).mean(axis=(1, 2, 3))


def paired_errors(fake, truth, water=None) -> dict:
    """L1 (0..1 scale) and SSIM between paired uint8 RGB images (N, S, S, 3)."""
    from skimage.metrics import structural_similarity

    fake, truth = _images(fake, truth)
    n = len(fake)
    if n == 0:
        return {"paired_l1": float("nan"), "paired_ssim": float("nan"), "paired_l1_water": float("nan"), "n_paired": 0}
    if min(fake.shape[1:3]) < 7:
        raise DeepsnowError(f"images of {fake.shape[1]}x{fake.shape[2]} px are too small for SSIM's 7x7 window")
    diff = _abs_diff(fake, truth)
    l1 = float(diff.mean())
    ssim = float(
        np.mean([structural_similarity(a, b, channel_axis=-1, data_range=255) for a, b in zip(fake, truth)])
    )
    l1_water = float("nan")
    if water is not None:
        water = np.asarray(water, dtype=bool)
        if water.shape != fake.shape[:3]:
            raise DeepsnowError(f"water masks have shape {water.shape}, expected {fake.shape[:3]}")
        if water.any():
            l1_water = float(diff[water].mean())
    return {"paired_l1": l1, "paired_ssim": ssim, "paired_l1_water": l1_water, "n_paired": n}
