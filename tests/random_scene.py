"""A random scene for the windowed-processing tests: every cover type, noisy spectra, clouds, no-data."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from synthetic import SPECTRA, cover_arrays, write_cover_scene

DEFAULT_SPECTRA_NAMES = tuple(SPECTRA)


def random_scene(path, h: int = 200, w: int = 300, seed: int = 0, season: str = "snowfree", aoi: str = "r00") -> Path:
    """Write a ``h`` x ``w`` scene of 40-px blocks of random covers with noisy reflectances, random SCL
    (cloud, shadow, water, snow and invalid classes included) and a no-data corner; returns the path."""
    rng = np.random.default_rng(seed)
    names = np.array(DEFAULT_SPECTRA_NAMES)
    coarse = names[rng.integers(0, len(names), (h // 40 + 1, w // 40 + 1))]
    cover = np.repeat(np.repeat(coarse, 40, axis=0), 40, axis=1)[:h, :w]
    refl = {b: v * rng.uniform(0.6, 1.4, v.shape) for b, v in cover_arrays(cover).items()}
    scl = np.where(rng.random((h, w)) < 0.995, _default_scl(cover), rng.integers(0, 12, (h, w))).astype(np.uint8)
    data_mask = np.ones((h, w), dtype=np.uint8)
    data_mask[: h // 5, : w // 4] = 0  # a no-data corner: windows rejected for nodata
    return write_cover_scene(path, cover, scl=scl, data_mask=data_mask, reflectance=refl, season=season, aoi=aoi)


def _default_scl(cover: np.ndarray) -> np.ndarray:
    from synthetic import DEFAULT_SCL

    scl = np.zeros(cover.shape, dtype=np.uint8)
    for name, code in DEFAULT_SCL.items():
        scl[cover == name] = code
    return scl
