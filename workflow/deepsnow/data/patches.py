"""Cut labelled patches from a scene and its class mask (docs/formats.md, "Patches").

Candidate windows lie on a regular grid: rows and columns ``0, stride,
2*stride, ...`` while a ``size`` x ``size`` window fits in the scene. For each
window (fractions over all its pixels unless said otherwise):

- ``valid_fraction``: class != 0; ``cloud_fraction``: classes 4 and 5;
  ``water_fraction``: class 2; ``snow_fraction``: class 3 over the *valid*
  pixels of the window.
- Rejections, first match wins: ``nodata`` (valid_fraction < min_valid, or no
  valid pixel at all), ``cloud`` (cloud_fraction > max_cloud), ``ambiguous``
  (snowfree_max < snow_fraction < snowy_min), ``season_mismatch`` (a
  snow-free-season window not labelled snowfree, or a snow-season window not
  labelled snowy). Windows rejected for ``nodata``/``cloud`` get label ``-``.

Window sums come from integral images, so a 2048 x 2048 scene with thousands
of overlapping windows costs a few array passes.

Bands (``patches.encoding``, :mod:`deepsnow.data.bands`): ``rgb8`` renders B04, B03, B02 to the array
``rgb`` ``(N, S, S, 3) uint8`` (below); ``reflectance`` keeps ``patches.bands`` as stored in the scene,
surface reflectance x 10000, in the array ``reflectance`` ``(N, S, S, C) uint16``, and records them in
``bands`` ``(C,)`` and ``encoding`` ``()`` (the truths, if any, are cut the same way).

RGB rendering: ``255 * clip(refl / rgb_max, 0, 1) ** (1 / rgb_gamma)`` from
B04, B03, B02, rounded to ``uint8``. ESA's TCI ("visual", reflectance 0..0.2)
and the EO Browser 2.5x gain (0..0.4) would saturate snow, whose reflectance
is 0.6-0.9, to flat white and erase exactly the texture the GAN must learn;
``rgb_max`` 1.0 with a display gamma keeps snow and still brightens dark land.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from rasterio.transform import Affine

from deepsnow import DeepsnowError
from deepsnow.data.landcover import TARGETS, LandcoverFile, patch_fractions
from deepsnow.data.mask import CLOUD, SHADOW, SNOW, WATER, INVALID, MaskFile
from deepsnow.data.render import render_rgb
from deepsnow.data.scene import SEASONS, Progress, SceneFile, grid_problems, raster_env
from deepsnow.data.scene import window_rows as window_rows_of
from deepsnow.io import NpzArray, atomic_output, save_npz_stream

log = logging.getLogger(__name__)

REASONS = ("nodata", "cloud", "ambiguous", "season_mismatch")
LABELS = ("snowy", "snowfree", "ambiguous", "-")
CSV_COLUMNS = (
    "patch_id",
    "aoi",
    "season",
    "row",
    "col",
    "size",
    "valid_fraction",
    "cloud_fraction",
    "snow_fraction",
    "water_fraction",
    "label",
    "kept",
    "reason",
)
#: The scene bands the patches are rendered from (red, green, blue).
RGB_BANDS = ("B04", "B03", "B02")
#: The label a window must have to be kept, by scene season (domain rule).
SEASON_LABEL = {"snowfree": "snowfree", "snow": "snowy"}


def window_counts(indicator: np.ndarray, rows: np.ndarray, cols: np.ndarray, size: int) -> np.ndarray:
    """Number of true pixels of ``indicator`` in each window ``[r:r+size, c:c+size]`` (integral image).

    ``rows`` and ``cols`` are 1-D offsets; returns ``(len(rows), len(cols)) int64``.
    """
    h, w = indicator.shape
    integral = np.zeros((h + 1, w + 1), dtype=np.int64)
    np.cumsum(np.cumsum(indicator, axis=0, dtype=np.int64), axis=1, out=integral[1:, 1:])
    r0, r1 = rows[:, None], rows[:, None] + size
    c0, c1 = cols[None, :], cols[None, :] + size
    return integral[r1, c1] - integral[r0, c1] - integral[r1, c0] + integral[r0, c0]


@dataclass
class Windows:
    """Statistics of the candidate windows, flattened in row-major grid order."""

    row: np.ndarray  # upper-left row of each window
    col: np.ndarray
    n_valid: np.ndarray  # valid pixels (class != invalid)
    valid_f: np.ndarray  # fractions over all pixels of the window ...
    cloud_f: np.ndarray
    water_f: np.ndarray
    snow_f: np.ndarray  # ... except snow: over the window's valid pixels


@dataclass
class Labels:
    """Label and rejection reason of every window (first match wins), and which are kept."""

    label: np.ndarray
    reason: np.ndarray
    kept: np.ndarray


def cut_patches(
    scene_path: str | os.PathLike,
    mask_path: str | os.PathLike,
    params: dict,
    out_npz: str | os.PathLike,
    out_csv: str | os.PathLike,
    truth_path: str | os.PathLike | None = None,
    window_rows: int | None = None,
    landcover_path: str | os.PathLike | None = None,
    snowfall_path: str | os.PathLike | None = None,
) -> dict:
    """Cut, label and filter the patches of one scene; write the ``.npz`` shard and ``.csv`` table.

    ``params`` is the validated ``patches`` config section. The scene's season
    comes from its ``DEEPSNOW_SEASON`` tag (required); its area from the
    ``DEEPSNOW_AOI`` tag, or, when that tag is absent, the scene's parent folder
    name (``scenes/<aoi>/<season>.tif``). ``truth_path`` is an optional scene on
    the same grid whose RGB is cut with the same windows (array ``truth``),
    ``snowfall_path`` another (array ``truth_snowfall``: the simulator's truth after a
    snowfall over the whole area, which the paired errors compare with);
    ``landcover_path`` an optional land-cover GeoTIFF on the same grid
    (:mod:`deepsnow.data.landcover`) whose class and snow fractions per kept
    window become the arrays ``landcover`` and ``landcover_targets``.

    The rasters are read in full-width row bands (:func:`row_bands`: whole grid
    rows of windows, about ``window_rows`` pixel rows, default
    ``$DEEPSNOW_WINDOW_ROWS`` or 1024), so a window never straddles two reads and
    memory does not grow with the scene: a first pass over the mask gives every
    window's statistics and label, a second streams the kept patches into the
    shard. The result is the same as cutting the whole scene at once.

    Zero kept patches is not an error: the shard then holds empty arrays of the
    right shapes. Both files are written atomically and only after all checks.

    Returns ``scene``, ``aoi``, ``season``, ``size``, ``stride``,
    ``candidates``, ``kept``, ``rejected`` (count per reason), ``labels``
    (count per label over all candidates) and ``kept_labels``.
    """
    scene_path, mask_path = Path(scene_path), Path(mask_path)
    size, stride = int(params["size"]), int(params["stride"])
    rows = window_rows_of(window_rows)
    with contextlib.ExitStack() as stack:
        stack.enter_context(raster_env())
        scene, season, aoi = _open_scene_checked(stack, scene_path, size)
        mask = _open_on_grid(stack, MaskFile, mask_path, scene, "mask")
        truths = {
            key: _open_on_grid(stack, SceneFile, Path(path), scene, f"{what} scene")
            for key, path, what in (("truth", truth_path, "truth"), ("truth_snowfall", snowfall_path, "snowfall truth"))
            if path
        }
        for raster in (scene, *truths.values()):
            raster.require(params["bands"])  # before any window is read
        cover = _open_on_grid(stack, LandcoverFile, Path(landcover_path), scene, "land cover") if landcover_path else None
        bands = row_bands(scene.shape[0], size, stride, rows)
        win = window_stats_banded(mask, bands, size, stride)
        labels = label_windows(win, params, season)
        ids = np.array([f"{aoi}_{season}_r{r}_c{c}" for r, c in zip(win.row, win.col)], dtype=str).astype("U")
        arrays = kept_arrays(scene, truths, mask, bands, win, labels.kept, ids, size, params)
        if cover is not None:
            arrays |= landcover_arrays(cover, bands, win, labels.kept, size, season)
        # The CSV goes in place inside the npz's atomic block: both files or neither.
        with atomic_output(out_npz, suffix=".npz") as tmp:
            save_npz_stream(tmp, arrays)
            _write_table(out_csv, ids, aoi, season, size, win, labels)

    summary = _summary(scene_path, aoi, season, size, stride, labels)
    log.info(
        "%s: %d candidate windows, %d kept (%s), rejected %s",
        scene_path,
        summary["candidates"],
        summary["kept"],
        season,
        summary["rejected"],
    )
    return summary


def _open_scene_checked(stack: contextlib.ExitStack, scene_path: Path, size: int) -> tuple[SceneFile, str, str]:
    """The opened scene, its season (``DEEPSNOW_SEASON`` tag) and area; the patch must fit in it."""
    scene = stack.enter_context(SceneFile(scene_path))
    h, w = scene.shape
    if size > h or size > w:
        raise DeepsnowError(
            f"patches.size = {size} px is larger than scene {scene_path} ({h} x {w} px); "
            f"lower patches.size to at most {min(h, w)}"
        )
    season = scene.tags.get("DEEPSNOW_SEASON")
    if season is None:
        raise DeepsnowError(
            f"{scene_path}: scene has no DEEPSNOW_SEASON tag (expected one of {list(SEASONS)}); "
            "it is needed to keep snow-free patches from the snow-free season and snowy ones from the snow season"
        )
    if season not in SEASONS:
        raise DeepsnowError(
            f"{scene_path}: DEEPSNOW_SEASON tag is {season!r}, expected one of {list(SEASONS)}"
        )
    aoi = scene.tags.get("DEEPSNOW_AOI") or scene_path.parent.name
    if not aoi:
        raise DeepsnowError(f"{scene_path}: no DEEPSNOW_AOI tag and no parent folder to name the area")
    return scene, season, aoi


def _open_on_grid(stack: contextlib.ExitStack, opener, path: Path, scene: SceneFile, what: str):
    """``opener(path)`` (a :class:`MaskFile` or :class:`SceneFile`), checked to lie on the scene's grid."""
    raster = stack.enter_context(opener(path))
    problems = grid_problems((raster.shape, raster.crs, raster.transform), (scene.shape, scene.crs, scene.transform))
    if problems:
        raise DeepsnowError(f"{path}: {what} is not on the grid of scene {scene.path}: " + "; ".join(problems))
    return raster


def row_bands(height: int, size: int, stride: int, rows: int) -> list[tuple[int, int, int, int]]:
    """The reads of a scene ``height`` rows high: ``(i0, i1, row0, row1)`` per band.

    Band ``k`` holds the window grid rows ``i0 .. i1`` (window row offsets
    ``i * stride``) and the pixel rows ``row0 .. row1`` they cover: a multiple of
    the stride plus what one window needs, at most ``max(rows, size)`` rows. Every
    window lies in exactly one band, whole.
    """
    n = (height - size) // stride + 1 if height >= size else 0
    per_band = max(1, (rows - size) // stride + 1) if rows >= size else 1
    return [
        (i0, min(n, i0 + per_band), i0 * stride, (min(n, i0 + per_band) - 1) * stride + size)
        for i0 in range(0, n, per_band)
    ]


def window_stats(classes: np.ndarray, size: int, stride: int) -> Windows:
    """Class fractions of every ``size`` x ``size`` window on the regular grid of step ``stride``."""
    h, w = classes.shape
    rows = np.arange(0, h - size + 1, stride, dtype=np.int64)
    cols = np.arange(0, w - size + 1, stride, dtype=np.int64)
    return _stats(rows, cols, _class_window_counts(classes, rows, cols, size), size)


def window_stats_banded(mask, bands, size: int, stride: int) -> Windows:
    """:func:`window_stats` of an opened mask (:class:`~deepsnow.data.mask.MaskFile`), read band by band
    (:func:`row_bands`); the same numbers, in the same row-major window order."""
    w = mask.shape[1]
    cols = np.arange(0, w - size + 1, stride, dtype=np.int64)
    parts = []
    progress = Progress(log, f"{mask.path}: window statistics", mask.shape[0], w)
    for i0, i1, r0, r1 in bands:
        local = np.arange(i0, i1, dtype=np.int64) * stride - r0
        parts.append(_class_window_counts(mask.read(r0, r1), local, cols, size))
        progress.step(r1)
    counts = tuple(np.concatenate([p[j] for p in parts]) for j in range(4))
    rows = np.arange(0, (bands[-1][1] if bands else 0), dtype=np.int64) * stride
    return _stats(rows, cols, counts, size)


def _class_window_counts(classes: np.ndarray, rows, cols, size: int) -> tuple[np.ndarray, ...]:
    """Valid, cloud (and shadow), snow and water pixels of each window, flattened row-major."""
    return (
        window_counts(classes != INVALID, rows, cols, size).ravel(),
        window_counts((classes == CLOUD) | (classes == SHADOW), rows, cols, size).ravel(),
        window_counts(classes == SNOW, rows, cols, size).ravel(),
        window_counts(classes == WATER, rows, cols, size).ravel(),
    )


def _stats(rows: np.ndarray, cols: np.ndarray, counts: tuple, size: int) -> Windows:
    n_valid, n_cloud, n_snow, n_water = counts
    npix = float(size * size)
    rr, cc = (a.ravel() for a in np.meshgrid(rows, cols, indexing="ij"))
    return Windows(
        row=rr,
        col=cc,
        n_valid=n_valid,
        valid_f=n_valid / npix,
        cloud_f=n_cloud / npix,
        water_f=n_water / npix,
        snow_f=np.divide(n_snow, n_valid, out=np.zeros(n_snow.shape, dtype=np.float64), where=n_valid > 0),
    )


def label_windows(win: Windows, params: dict, season: str) -> Labels:
    """Labels and rejection reasons (module docstring); a window is kept when nothing rejects it."""
    n = win.row.size
    nodata = (win.valid_f < params["min_valid"]) | (win.n_valid == 0)
    cloudy = ~nodata & (win.cloud_f > params["max_cloud"])
    labelled = ~nodata & ~cloudy
    label = np.full(n, "-", dtype="<U9")
    snowy = labelled & (win.snow_f >= params["snowy_min"])
    snowfree = labelled & ~snowy & (win.snow_f <= params["snowfree_max"])
    label[labelled] = "ambiguous"
    label[snowfree] = "snowfree"
    label[snowy] = "snowy"
    reason = np.full(n, "", dtype="<U15")
    reason[nodata] = "nodata"
    reason[cloudy] = "cloud"
    reason[labelled & (label == "ambiguous")] = "ambiguous"
    mismatch = labelled & (label != "ambiguous") & (label != SEASON_LABEL[season])
    reason[mismatch] = "season_mismatch"
    return Labels(label=label, reason=reason, kept=reason == "")


def kept_arrays(scene, truths: dict, mask, bands, win: Windows, kept, ids, size: int, params: dict) -> dict:
    """The shard's arrays (docs/formats.md, "Patches") for the kept windows; the patches themselves as
    :class:`~deepsnow.io.NpzArray` streams, cut band by band (:func:`row_bands`) while the shard is written.
    ``truths``: array name (``truth``, ``truth_snowfall``) -> opened scene cut with the same windows."""
    k = np.flatnonzero(kept)
    kr, kc = win.row[k], win.col[k]
    n_cols = int(np.unique(win.col).size)

    reflectance = params["encoding"] == "reflectance"
    chosen = tuple(params["bands"])

    def image_of(raster):
        def read(r0, r1):
            if reflectance:
                return np.moveaxis(raster.read_dn(r0, r1, chosen), 0, -1)  # (rows, W, C) uint16 x 10000
            refl = raster.read_bands(r0, r1, RGB_BANDS)
            return render_rgb(refl, params["rgb_max"], params["rgb_gamma"])

        dtype, nc = (np.uint16, len(chosen)) if reflectance else (np.uint8, 3)
        return NpzArray(dtype, (len(k), size, size, nc), _band_patches(raster, bands, k, win, n_cols, size, read))

    arrays = {"reflectance" if reflectance else "rgb": image_of(scene)}
    arrays |= {key: image_of(raster) for key, raster in truths.items()}
    if reflectance:  # an rgb8 shard stays as it always was: no band list, rgb8 B04 B03 B02 implied
        arrays |= {"bands": np.array(chosen, dtype=str), "encoding": np.array("reflectance", dtype=str)}
    water = _band_patches(mask, bands, k, win, n_cols, size, lambda r0, r1: mask.read(r0, r1) == WATER)
    arrays["water"] = NpzArray(bool, (len(k), size, size), water)
    arrays["ids"] = np.asarray(ids[k], dtype="U") if len(k) else np.zeros(0, dtype="<U1")
    arrays["row"] = kr.astype(np.int64)
    arrays["col"] = kc.astype(np.int64)
    t0 = scene.transform
    arrays["transform"] = np.array(
        [tuple(t0 @ Affine.translation(int(c), int(r)))[:6] for r, c in zip(kr, kc)], dtype=np.float64
    ).reshape(len(k), 6)
    arrays["crs"] = np.array(scene.crs.to_wkt(), dtype=str)
    arrays["snow_fraction"] = win.snow_f[k].astype(np.float32)
    arrays["cloud_fraction"] = win.cloud_f[k].astype(np.float32)
    arrays["valid_fraction"] = win.valid_f[k].astype(np.float32)
    arrays["water_fraction"] = win.water_f[k].astype(np.float32)
    return arrays


def landcover_arrays(cover, bands, win: Windows, kept, size: int, season: str) -> dict:
    """``landcover`` (n, len(TARGETS)) float32: each kept window's class shares and mean snow fraction
    (0 in the snow-free season), read band by band; ``landcover_targets``: what its columns are."""
    k = np.flatnonzero(kept)
    n_cols = int(np.unique(win.col).size)
    parts = [
        patch_fractions(p, snow_season=season == "snow")
        for p in _band_patches(cover, bands, k, win, n_cols, size, cover.read)
    ]
    fractions = np.concatenate(parts) if parts else np.zeros((0, len(TARGETS)), dtype=np.float32)
    return {"landcover": fractions, "landcover_targets": np.array(TARGETS, dtype=str)}


def _band_patches(raster, bands, k: np.ndarray, win: Windows, n_cols: int, size: int, read):
    """The kept windows' patches, band by band: ``read(row0, row1)`` gives a band's ``(rows, W[, 3])``
    image (only bands holding a kept window are read), cut into ``(n, S, S[, 3])`` arrays."""
    progress = Progress(log, f"{raster.path}: patches", raster.shape[0], raster.shape[1])
    for i0, i1, r0, r1 in bands:
        lo, hi = np.searchsorted(k, [i0 * n_cols, i1 * n_cols])
        if lo == hi:
            continue
        img = read(r0, r1)
        # (H, W[, 3]) -> (n, S, S[, 3]); views first, one copy by fancy indexing.
        view = sliding_window_view(img, (size, size), axis=(0, 1))  # (H-S+1, W-S+1, [3,] S, S)
        patches = view[win.row[k[lo:hi]] - r0, win.col[k[lo:hi]]]
        yield np.moveaxis(patches, 1, -1) if img.ndim == 3 else patches
        progress.step(r1)


def _summary(scene_path: Path, aoi: str, season: str, size: int, stride: int, labels: Labels) -> dict:
    label, reason, kept = labels.label, labels.reason, labels.kept
    return {
        "scene": str(scene_path),
        "aoi": aoi,
        "season": season,
        "size": size,
        "stride": stride,
        "candidates": int(label.size),
        "kept": int(kept.sum()),
        "rejected": {r: int((reason == r).sum()) for r in REASONS},
        "labels": {lab: int((label == lab).sum()) for lab in LABELS},
        "kept_labels": {lab: int((label[kept] == lab).sum()) for lab in ("snowy", "snowfree")},
    }


def _write_table(path, ids, aoi: str, season: str, size: int, win: Windows, labels: Labels) -> None:
    """One CSV row per candidate window (kept or not), fractions to 6 decimals."""
    with atomic_output(path, suffix=".csv") as tmp:
        with open(tmp, "w", newline="") as fh:
            out = csv.writer(fh)
            out.writerow(CSV_COLUMNS)
            for i in range(len(ids)):
                out.writerow(
                    (
                        ids[i],
                        aoi,
                        season,
                        int(win.row[i]),
                        int(win.col[i]),
                        size,
                        f"{win.valid_f[i]:.6f}",
                        f"{win.cloud_f[i]:.6f}",
                        f"{win.snow_f[i]:.6f}",
                        f"{win.water_f[i]:.6f}",
                        labels.label[i],
                        "true" if labels.kept[i] else "false",
                        labels.reason[i],
                    )
                )
