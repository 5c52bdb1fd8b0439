"""Per-pixel classes of a scene: invalid, clear land, water, snow, cloud, cloud shadow.

The class GeoTIFF (``masks/<aoi>/<season>.tif``, see docs/formats.md) has one
``uint8`` band named ``class`` on the scene's grid:

====  ============  =====================================================
code  name          rule
====  ============  =====================================================
0     invalid       dataMask == 0 or SCL in ``mask.invalid_classes``
1     clear         everything else
2     water         SCL 6
3     snow          SCL 11, or NDSI > ndsi_min and B08 > nir_min and not water
4     cloud         SCL in ``mask.cloud_classes`` (8 medium, 9 high, 10 cirrus)
5     cloud_shadow  SCL 3, when 3 is in ``mask.cloud_classes``
====  ============  =====================================================

Priority: invalid > snow > cloud/shadow > water > clear. Snow is decided
before cloud on purpose: Sen2Cor (and every brightness-based cloud detector)
flags bright snow as cloud, while snow absorbs at 1.6 um (B11) and clouds do
not, so a pixel with snow spectra (high NDSI, bright NIR) is snow even where
SCL says cloud. Snow is therefore never counted as cloud.

``NDSI = (B03 - B11) / (B03 + B11)``; a pixel whose denominator is zero (or
negative, which only bad data gives) has no NDSI and is not NDSI-snow.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import rasterio

from deepsnow import DeepsnowError
from deepsnow.data.scene import SCL_CLOUD_SHADOW, SCL_SNOW, SCL_WATER, read_scene
from deepsnow.io import atomic_output, write_json

log = logging.getLogger(__name__)

INVALID, CLEAR, WATER, SNOW, CLOUD, SHADOW = 0, 1, 2, 3, 4, 5
#: Class code -> name, as used in the JSON summary.
CLASS_NAMES = {
    INVALID: "invalid",
    CLEAR: "clear",
    WATER: "water",
    SNOW: "snow",
    CLOUD: "cloud",
    SHADOW: "cloud_shadow",
}


def ndsi(b03: np.ndarray, b11: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """NDSI and a mask of where it is defined (``b03 + b11 > 0``), without division warnings."""
    b03 = np.asarray(b03, dtype=np.float64)
    b11 = np.asarray(b11, dtype=np.float64)
    den = b03 + b11
    ok = den > 0
    out = np.zeros(den.shape, dtype=np.float64)
    np.divide(b03 - b11, den, out=out, where=ok)
    return out, ok


def classify(
    reflectance: dict[str, np.ndarray],
    scl: np.ndarray,
    data_mask: np.ndarray,
    params: dict,
) -> np.ndarray:
    """The class array (``uint8``, codes as in the module docstring) of one scene.

    ``reflectance`` holds at least ``B03``, ``B08`` and ``B11`` as reflectances
    (0..1); ``params`` is the validated ``mask`` config section.
    """
    scl = np.asarray(scl)
    invalid = (np.asarray(data_mask) == 0) | np.isin(scl, list(params["invalid_classes"]))
    water = scl == SCL_WATER
    index, defined = ndsi(reflectance["B03"], reflectance["B11"])
    nir = np.asarray(reflectance["B08"], dtype=np.float64)
    snow = (scl == SCL_SNOW) | (defined & (index > params["ndsi_min"]) & (nir > params["nir_min"]) & ~water)
    cloud_classes = [c for c in params["cloud_classes"] if c != SCL_SNOW]  # snow is never cloud
    shadow = (scl == SCL_CLOUD_SHADOW) if SCL_CLOUD_SHADOW in cloud_classes else np.zeros(scl.shape, dtype=bool)
    cloud = np.isin(scl, [c for c in cloud_classes if c != SCL_CLOUD_SHADOW])

    # Paint from lowest to highest priority.
    out = np.full(scl.shape, CLEAR, dtype=np.uint8)
    out[water] = WATER
    out[cloud] = CLOUD
    out[shadow] = SHADOW
    out[snow] = SNOW
    out[invalid] = INVALID
    return out


def summarize(classes: np.ndarray) -> dict:
    """Counts and fractions (of all pixels) by class name, plus shares of the valid pixels."""
    counts_arr = np.bincount(classes.ravel(), minlength=len(CLASS_NAMES))[: len(CLASS_NAMES)]
    total = int(classes.size)
    counts = {CLASS_NAMES[c]: int(counts_arr[c]) for c in CLASS_NAMES}
    valid = total - counts["invalid"]
    cloudy = counts["cloud"] + counts["cloud_shadow"]
    return {
        "counts": counts,
        "fractions": {k: (v / total if total else 0.0) for k, v in counts.items()},
        "valid_pixels": valid,
        "valid_fraction": valid / total if total else 0.0,
        "cloud_fraction_of_valid": cloudy / valid if valid else 0.0,
        "snow_fraction_of_valid": counts["snow"] / valid if valid else 0.0,
    }


def mask_scene(
    scene_path: str | os.PathLike,
    params: dict,
    out_tif: str | os.PathLike,
    out_json: str | os.PathLike,
) -> dict:
    """Classify every pixel of a scene; write the class GeoTIFF and a JSON summary.

    ``params`` is the validated ``mask`` config section (``ndsi_min``,
    ``nir_min``, ``cloud_classes``, ``invalid_classes``). Both outputs are
    written atomically, and only once all checks passed.

    Raises :class:`DeepsnowError` naming the scene when it cannot be read (see
    :func:`deepsnow.data.scene.read_scene`), has no valid pixel, or when all
    its valid pixels are cloud or cloud shadow.

    Returns the summary written to ``out_json``: ``scene``, ``shape``,
    ``classes`` (code -> name), ``counts`` and ``fractions`` by class name,
    ``valid_pixels``, ``valid_fraction``, ``cloud_fraction_of_valid``,
    ``snow_fraction_of_valid`` and ``thresholds`` (the params used).
    """
    scene_path = Path(scene_path)
    scene = read_scene(scene_path)
    classes = classify(scene.reflectance, scene.scl, scene.data_mask, params)
    stats = summarize(classes)
    if stats["valid_pixels"] == 0:
        raise DeepsnowError(
            f"{scene_path}: scene has no valid pixel (dataMask is 0 or SCL in "
            f"mask.invalid_classes {list(params['invalid_classes'])} everywhere)"
        )
    if stats["counts"]["cloud"] + stats["counts"]["cloud_shadow"] == stats["valid_pixels"]:
        raise DeepsnowError(
            f"{scene_path}: all-cloud scene: every one of its {stats['valid_pixels']} valid pixels is cloud "
            f"or cloud shadow (SCL in mask.cloud_classes {list(params['cloud_classes'])}); choose another date"
        )
    summary = {
        "scene": str(scene_path),
        "shape": [int(n) for n in classes.shape],
        "classes": {str(c): n for c, n in CLASS_NAMES.items()},
        **stats,
        "thresholds": {
            "ndsi_min": params["ndsi_min"],
            "nir_min": params["nir_min"],
            "cloud_classes": list(params["cloud_classes"]),
            "invalid_classes": list(params["invalid_classes"]),
        },
    }
    _write_classes(out_tif, classes, scene.crs, scene.transform, json_path=out_json, summary=summary)
    log.info(
        "%s: %d x %d px, valid %.1f%%, snow %.1f%% and cloud %.1f%% of valid",
        scene_path,
        classes.shape[0],
        classes.shape[1],
        100 * summary["valid_fraction"],
        100 * summary["snow_fraction_of_valid"],
        100 * summary["cloud_fraction_of_valid"],
    )
    return summary


def _write_classes(path, classes, crs, transform, json_path, summary) -> None:
    """Write the class GeoTIFF and, inside the same atomic block, the JSON summary."""
    h, w = classes.shape
    profile = {
        "driver": "GTiff",
        "height": h,
        "width": w,
        "count": 1,
        "dtype": "uint8",
        "crs": crs,
        "transform": transform,
        "compress": "deflate",
    }
    if h >= 256 and w >= 256:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    with atomic_output(path, suffix=".tif") as tmp:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(classes, 1)
            dst.set_band_description(1, "class")
            dst.update_tags(1, **{f"CLASS_{c}": n for c, n in CLASS_NAMES.items()})
        # The JSON goes in place just before the GeoTIFF; a failure here leaves neither.
        write_json(json_path, summary)


def read_mask(path: str | os.PathLike):
    """Read a class GeoTIFF written by :func:`mask_scene`: ``(classes, crs, transform)``.

    Raises :class:`DeepsnowError` naming the file when it is missing, unreadable
    or not a 1-band ``uint8`` class raster.
    """
    path = Path(path)
    if not path.exists():
        raise DeepsnowError(f"{path}: mask file not found")
    try:
        with rasterio.open(path) as src:
            if src.count != 1 or src.dtypes[0] != "uint8":
                raise DeepsnowError(
                    f"{path}: expected a 1-band uint8 class GeoTIFF from 'deepsnow mask', "
                    f"found {src.count} band(s) of {src.dtypes[0]}"
                )
            classes = src.read(1)
            crs, transform = src.crs, src.transform
    except DeepsnowError:
        raise
    except Exception as exc:
        raise DeepsnowError(f"{path}: not a readable mask GeoTIFF (truncated or corrupt?): {exc}") from exc
    if classes.size and int(classes.max()) > max(CLASS_NAMES):
        raise DeepsnowError(f"{path}: class values above {max(CLASS_NAMES)} found; not a deepsnow mask")
    return classes, crs, transform
