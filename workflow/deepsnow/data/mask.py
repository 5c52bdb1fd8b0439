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
from rasterio.windows import Window

from deepsnow import DeepsnowError
from deepsnow.data.scene import SCL_CLOUD_SHADOW, SCL_SNOW, SCL_WATER, Progress, RasterFile, SceneFile
from deepsnow.cog import class_colormap, cog_output, write_class_style
from deepsnow.data.scene import aligned_rows, raster_env
from deepsnow.data.scene import window_rows as window_rows_of
from deepsnow.io import write_json

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
#: The colour table of the class GeoTIFF and its QGIS style: ``code: (r, g, b, alpha)``.
CLASS_COLOURS = {
    INVALID: (0, 0, 0, 0),
    CLEAR: (190, 170, 120, 255),
    WATER: (30, 90, 200, 255),
    SNOW: (235, 250, 255, 255),
    CLOUD: (160, 160, 160, 255),
    SHADOW: (70, 70, 70, 255),
}
#: Name and colour of each class, for :mod:`deepsnow.cog`'s colour table, category names and QGIS style.
CLASS_STYLE = {c: (CLASS_NAMES[c], CLASS_COLOURS[c]) for c in CLASS_NAMES}


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
    return summarize_counts(class_counts(classes), int(classes.size))


def class_counts(classes: np.ndarray) -> np.ndarray:
    """Pixels per class code (``len(CLASS_NAMES)`` counts) of a class array or one window of it."""
    return np.bincount(classes.ravel(), minlength=len(CLASS_NAMES))[: len(CLASS_NAMES)]


def summarize_counts(counts_arr: np.ndarray, total: int) -> dict:
    """:func:`summarize` from the class counts (:func:`class_counts`, summed over windows) and the pixel total."""
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
    window_rows: int | None = None,
) -> dict:
    """Classify every pixel of a scene; write the class GeoTIFF and a JSON summary.

    ``params`` is the validated ``mask`` config section (``ndsi_min``,
    ``nir_min``, ``cloud_classes``, ``invalid_classes``). The scene is read,
    classified and written in full-width row bands of about ``window_rows``
    rows (default ``$DEEPSNOW_WINDOW_ROWS`` or 1024, rounded to whole output
    blocks), so memory does not grow with the scene's height; the result is the
    same as classifying the whole scene at once. Both outputs are written
    atomically, and appear only once all checks passed.

    Raises :class:`DeepsnowError` naming the scene when it cannot be read (see
    :func:`deepsnow.data.scene.read_scene`), has no valid pixel, or when all
    its valid pixels are cloud or cloud shadow.

    Returns the summary written to ``out_json``: ``scene``, ``shape``,
    ``classes`` (code -> name), ``counts`` and ``fractions`` by class name,
    ``valid_pixels``, ``valid_fraction``, ``cloud_fraction_of_valid``,
    ``snow_fraction_of_valid`` and ``thresholds`` (the params used).
    """
    scene_path = Path(scene_path)
    rows = window_rows_of(window_rows)
    with raster_env(), SceneFile(scene_path) as scene:
        scene.require(MASK_BANDS)  # before anything is written
        h, w = scene.shape
        with cog_output(out_tif, _class_profile(h, w, scene.crs, scene.transform), resampling="nearest") as dst:
            counts = _classify_windows(scene, dst, params, aligned_rows(rows, dst.block_shapes[0][0]))
            _describe_classes(dst)
            stats = summarize_counts(counts, h * w)
            _check_classes(scene_path, stats, params)
            summary = _summary(scene_path, (h, w), stats, params)
            # The JSON goes in place just before the GeoTIFF; a failure here leaves neither.
            write_json(out_json, summary)
    write_class_style(out_tif, CLASS_STYLE)
    log.info(
        "%s: %d x %d px, valid %.1f%%, snow %.1f%% and cloud %.1f%% of valid",
        scene_path,
        h,
        w,
        100 * summary["valid_fraction"],
        100 * summary["snow_fraction_of_valid"],
        100 * summary["cloud_fraction_of_valid"],
    )
    return summary


def _summary(scene_path: Path, shape: tuple, stats: dict, params: dict) -> dict:
    """The JSON summary of a class GeoTIFF (see :func:`mask_scene`)."""
    return {
        "scene": str(scene_path),
        "shape": [int(shape[0]), int(shape[1])],
        "classes": {str(c): n for c, n in CLASS_NAMES.items()},
        **stats,
        "thresholds": {
            "ndsi_min": params["ndsi_min"],
            "nir_min": params["nir_min"],
            "cloud_classes": list(params["cloud_classes"]),
            "invalid_classes": list(params["invalid_classes"]),
        },
    }


def _describe_classes(dst) -> None:
    """Band name, class names as band tags (``CLASS_<code>``) and the colour table."""
    dst.set_band_description(1, "class")
    dst.update_tags(1, **{f"CLASS_{c}": n for c, n in CLASS_NAMES.items()})
    dst.write_colormap(1, class_colormap(CLASS_STYLE))


#: The scene bands the classification reads.
MASK_BANDS = ("B03", "B08", "B11", "SCL", "dataMask")


def _classify_windows(scene: SceneFile, dst, params: dict, rows: int) -> np.ndarray:
    """Classify ``scene`` in row bands of ``rows`` rows into the open class GeoTIFF ``dst``; the class counts."""
    h, w = scene.shape
    counts = np.zeros(len(CLASS_NAMES), dtype=np.int64)
    progress = Progress(log, f"{scene.path}: mask", h, w)
    for r0 in range(0, h, rows):
        r1 = min(h, r0 + rows)
        bands = scene.read_bands(r0, r1, MASK_BANDS)
        classes = classify(bands, bands["SCL"], bands["dataMask"], params)
        window = Window(0, r0, w, r1 - r0)
        dst.write(classes, 1, window=window)
        dst.write_mask((bands["dataMask"] > 0).view(np.uint8) * np.uint8(255), window=window)
        counts += class_counts(classes)
        progress.step(r1)
    return counts


def _check_classes(scene_path: Path, stats: dict, params: dict) -> None:
    """A scene without a valid pixel, or whose valid pixels are all cloud, is an error."""
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


def _class_profile(h: int, w: int, crs, transform) -> dict:
    """The class GeoTIFF's profile: one uint8 band, 256 px blocks (a COG, see :mod:`deepsnow.cog`)."""
    return {"driver": "GTiff", "height": h, "width": w, "count": 1, "dtype": "uint8", "crs": crs,
            "transform": transform, "blockxsize": 256, "photometric": "palette"}


class MaskFile(RasterFile):
    """A class GeoTIFF written by :func:`mask_scene`, opened and checked, read by row bands.

    ``shape``, ``crs`` and ``transform`` come from the header; :meth:`read` checks
    the class values of what it reads. Errors are :class:`DeepsnowError` naming the file.
    """

    kind, described = "mask", "mask GeoTIFF"

    def _check(self) -> None:
        src = self._src
        if src.count != 1 or src.dtypes[0] != "uint8":
            raise DeepsnowError(
                f"{self.path}: expected a 1-band uint8 class GeoTIFF from 'deepsnow mask', "
                f"found {src.count} band(s) of {src.dtypes[0]}"
            )

    def read(self, row0: int = 0, row1: int | None = None) -> np.ndarray:
        """The classes of rows ``row0 .. row1`` (``uint8``)."""
        classes = self._rows(row0, row1, 1)
        if classes.size and int(classes.max()) > max(CLASS_NAMES):
            raise DeepsnowError(f"{self.path}: class values above {max(CLASS_NAMES)} found; not a deepsnow mask")
        return classes


def read_mask(path: str | os.PathLike):
    """Read a class GeoTIFF written by :func:`mask_scene`: ``(classes, crs, transform)``.

    Raises :class:`DeepsnowError` naming the file when it is missing, unreadable
    or not a 1-band ``uint8`` class raster.
    """
    with MaskFile(path) as mask:
        return mask.read(), mask.crs, mask.transform
