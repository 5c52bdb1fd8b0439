"""The scene GeoTIFF: one format for every acquisition source (see docs/formats.md).

7 ``uint16`` bands ``B04, B03, B02, B08, B11, SCL, dataMask``; reflectance
bands are surface reflectance x 10000; 10 m pixels in a UTM CRS.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.transform import Affine

from deepsnow import DeepsnowError
from deepsnow.io import atomic_output

BANDS = ("B04", "B03", "B02", "B08", "B11", "SCL", "dataMask")
REFLECTANCE_BANDS = ("B04", "B03", "B02", "B08", "B11")
SEASONS = ("snowfree", "snow")
SCALE = 10000.0

# Sen2Cor scene classification (the SCL band), the classes this project reads or writes
# (ESA Sentinel-2 L2A product handbook; 1 saturated and 7 unclassified are never used).
SCL_NODATA = 0
SCL_DARK = 2  # dark area pixels (the simulator's terrain shadow)
SCL_CLOUD_SHADOW = 3
SCL_VEGETATION = 4
SCL_NOT_VEGETATED = 5
SCL_WATER = 6
SCL_CLOUD_MEDIUM = 8
SCL_CLOUD_HIGH = 9
SCL_CIRRUS = 10
SCL_SNOW = 11
#: The SCL classes counted as cloud in the scene statistics.
SCL_CLOUDS = (SCL_CLOUD_MEDIUM, SCL_CLOUD_HIGH, SCL_CIRRUS)
#: Number of SCL classes (codes 0..11).
SCL_N_CLASSES = 12


@dataclass
class Scene:
    """A scene in memory: reflectance as float32 (0..~1.5), SCL and dataMask as uint8."""

    reflectance: dict[str, np.ndarray]
    scl: np.ndarray
    data_mask: np.ndarray
    crs: CRS
    transform: Affine
    tags: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return self.scl.shape


def scene_stats(scl: np.ndarray, valid: np.ndarray) -> dict:
    """SCL class shares of a scene's valid pixels (5 decimals), its valid fraction and SCL class counts.

    ``valid`` is the dataMask (non-zero: valid). Invalid pixels count as SCL 0
    whatever their SCL value, so ``scl_counts["0"]`` is the invalid pixels (plus
    any valid no-data ones) and every other count is over valid pixels only.
    """
    valid = np.asarray(valid) > 0
    n_valid = max(1, int(valid.sum()))
    counts = np.bincount(np.where(valid, scl, SCL_NODATA).ravel(), minlength=SCL_N_CLASSES)

    def share(*classes: int) -> float:
        return round(float(sum(counts[c] for c in classes)) / n_valid, 5)

    return {
        "valid_fraction": round(float(valid.mean()), 5),
        "snow_fraction": share(SCL_SNOW),
        "cloud_fraction": share(*SCL_CLOUDS),
        "shadow_fraction": share(SCL_CLOUD_SHADOW),
        "water_fraction": share(SCL_WATER),
        "scl_counts": {str(c): int(counts[c]) for c in range(SCL_N_CLASSES) if counts[c]},
    }


def write_scene(
    path: str | os.PathLike,
    reflectance: dict[str, np.ndarray],
    scl: np.ndarray,
    data_mask: np.ndarray,
    crs,
    transform: Affine,
    tags: dict | None = None,
) -> None:
    """Write a scene GeoTIFF atomically. ``reflectance`` values are reflectances (0..1+)."""
    missing = [b for b in REFLECTANCE_BANDS if b not in reflectance]
    if missing:
        raise DeepsnowError(f"write_scene {path}: missing reflectance bands {missing}")
    h, w = scl.shape
    stack = np.empty((len(BANDS), h, w), dtype=np.uint16)
    for i, b in enumerate(REFLECTANCE_BANDS):
        arr = np.asarray(reflectance[b], dtype=np.float64)
        if arr.shape != (h, w):
            raise DeepsnowError(f"write_scene {path}: band {b} has shape {arr.shape}, expected {(h, w)}")
        stack[i] = np.clip(np.rint(arr * SCALE), 0, 65535).astype(np.uint16)
    stack[5] = scl.astype(np.uint16)
    stack[6] = data_mask.astype(np.uint16)
    profile = {
        "driver": "GTiff",
        "height": h,
        "width": w,
        "count": len(BANDS),
        "dtype": "uint16",
        "crs": CRS.from_user_input(crs),
        "transform": transform,
        "compress": "deflate",
        "predictor": 2,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "interleave": "band",
    }
    if h < 256 or w < 256:
        profile.update(tiled=False)
        profile.pop("blockxsize")
        profile.pop("blockysize")
    with atomic_output(path, suffix=".tif") as tmp:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(stack)
            for i, b in enumerate(BANDS, start=1):
                dst.set_band_description(i, b)
            dst.update_tags(**{k: str(v) for k, v in (tags or {}).items()})


def read_scene(path: str | os.PathLike) -> Scene:
    """Read and check a scene GeoTIFF; raise :class:`DeepsnowError` naming the file on any defect."""
    path = Path(path)
    if not path.exists():
        raise DeepsnowError(f"{path}: scene file not found")
    try:
        with rasterio.open(path) as src:
            if src.driver != "GTiff":
                raise DeepsnowError(f"{path}: expected a GeoTIFF scene, got a {src.driver} file")
            if src.crs is None:
                raise DeepsnowError(f"{path}: scene has no CRS (expected a UTM CRS, 10 m pixels)")
            names = list(src.descriptions)
            if src.count != len(BANDS) or tuple(names) != BANDS:
                raise DeepsnowError(
                    f"{path}: expected {len(BANDS)} bands {list(BANDS)}, found {src.count} bands {names}"
                )
            if src.dtypes[0] != "uint16":
                raise DeepsnowError(f"{path}: expected uint16 bands, found {src.dtypes[0]}")
            data = src.read()
            crs, transform, tags = src.crs, src.transform, src.tags()
    except DeepsnowError:
        raise
    except Exception as exc:  # RasterioError, CPLE_* from GDAL on truncated files
        raise DeepsnowError(f"{path}: not a readable GeoTIFF scene (truncated or corrupt?): {exc}") from exc
    refl = {b: data[i].astype(np.float32) / SCALE for i, b in enumerate(REFLECTANCE_BANDS)}
    return Scene(
        reflectance=refl,
        scl=data[5].astype(np.uint8),
        data_mask=data[6].astype(np.uint8),
        crs=crs,
        transform=transform,
        tags=tags,
    )
