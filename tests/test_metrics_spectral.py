"""Spectral and physical checks of reflectance samples (issue #28 item 4): per-band Wasserstein distances,
the NDSI distance and the mask stage's snow share, against scipy and the mask stage's own classifier."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import wasserstein_distance

from deepsnow import DeepsnowError
from deepsnow.config import validate_section
from deepsnow.data.mask import SNOW, classify
from deepsnow.metrics.spectral import snow_share, spectral_columns

TEN = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]
MASK = validate_section("mask", {})


def _images(seed, n=3, s=8, snowy=False):
    rng = np.random.default_rng(seed)
    img = rng.integers(200, 3000, (n, s, s, 10), dtype=np.uint16)
    img[..., TEN.index("B11")] += 3000  # land: brighter in the SWIR than in green, no snow
    if snowy:  # the left half snow: bright visible and NIR, dark SWIR
        for b, v in (("B03", 8500), ("B08", 7500), ("B11", 600)):
            img[:, :, : s // 2, TEN.index(b)] = v
    return img


def test_columns_match_scipy_and_the_mask_stages_rule():
    real, fake = _images(0, snowy=True), _images(1)
    row = spectral_columns(real, fake, TEN, MASK)
    for j, b in enumerate(TEN):
        want = wasserstein_distance(real[..., j].ravel() / 1e4, fake[..., j].ravel() / 1e4)
        assert row[f"w1_{b}"] == pytest.approx(want)
    assert row["w1_mean"] == pytest.approx(np.mean([row[f"w1_{b}"] for b in TEN]))
    nd = [(x[..., 1].astype(float) - x[..., 8]) / (x[..., 1].astype(float) + x[..., 8]) for x in (real, fake)]
    assert row["ndsi_w1"] == pytest.approx(wasserstein_distance(nd[0].ravel(), nd[1].ravel()))
    # the snow share is what the mask stage's classify calls snow, pixel by pixel
    refl = {b: real[..., TEN.index(b)].astype(np.float32) / 1e4 for b in ("B03", "B08", "B11")}
    classes = classify(refl, np.full(real.shape[:3], 4, np.uint8), np.ones(real.shape[:3], np.uint8), MASK)
    assert row["snow_share_real"] == pytest.approx(np.mean(classes == SNOW)) == pytest.approx(0.5)
    assert row["snow_share_fake"] == 0.0
    same = spectral_columns(real, real, TEN, MASK)
    assert same["w1_mean"] == 0 and same["ndsi_w1"] == 0 and same["snow_share_fake"] == same["snow_share_real"]


def test_without_the_swir_ndsi_and_snow_share_are_nan():
    bands = ["B02", "B03", "B04", "B08"]
    real, fake = _images(0)[..., :4], _images(1)[..., :4]
    row = spectral_columns(real, fake, bands, MASK)
    assert sorted(k for k in row if k.startswith("w1_")) == sorted(["w1_B02", "w1_B03", "w1_B04", "w1_B08", "w1_mean"])
    assert np.isnan(row["ndsi_w1"]) and np.isnan(row["snow_share_fake"]) and np.isnan(snow_share(real, bands, MASK))


def test_images_that_are_not_reflectance_in_the_bands_are_refused():
    with pytest.raises(DeepsnowError, match=r"s.npz \(generated\): expected \(N, S, S, 10\) uint16"):
        spectral_columns(_images(0), _images(1).astype(np.uint8), TEN, MASK, what="s.npz")
