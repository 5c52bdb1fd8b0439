"""Cut labelled RGB patches from a scene and its class mask (docs/formats.md, "Patches").

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

RGB rendering: ``255 * clip(refl / rgb_max, 0, 1) ** (1 / rgb_gamma)`` from
B04, B03, B02, rounded to ``uint8``. ESA's TCI ("visual", reflectance 0..0.2)
and the EO Browser 2.5x gain (0..0.4) would saturate snow, whose reflectance
is 0.6-0.9, to flat white and erase exactly the texture the GAN must learn;
``rgb_max`` 1.0 with a display gamma keeps snow and still brightens dark land.
"""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from rasterio.transform import Affine

from deepsnow import DeepsnowError
from deepsnow.data.mask import CLOUD, SHADOW, SNOW, WATER, INVALID, read_mask
from deepsnow.data.scene import SEASONS, read_scene
from deepsnow.io import atomic_output, save_npz

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
#: The label a window must have to be kept, by scene season (domain rule).
SEASON_LABEL = {"snowfree": "snowfree", "snow": "snowy"}


def render_rgb(reflectance: dict[str, np.ndarray], rgb_max: float, rgb_gamma: float) -> np.ndarray:
    """``(H, W, 3) uint8`` from B04, B03, B02: ``255 * clip(refl / rgb_max, 0, 1) ** (1 / rgb_gamma)``, rounded."""
    h, w = reflectance["B04"].shape
    out = np.empty((h, w, 3), dtype=np.uint8)
    for i, band in enumerate(("B04", "B03", "B02")):
        x = np.clip(np.asarray(reflectance[band], dtype=np.float64) / rgb_max, 0.0, 1.0)
        out[..., i] = np.rint(255.0 * x ** (1.0 / rgb_gamma)).astype(np.uint8)
    return out


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


def _same_grid(a_path, a_shape, a_crs, a_transform, b_path, b_shape, b_crs, b_transform, what: str) -> None:
    problems = []
    if tuple(a_shape) != tuple(b_shape):
        problems.append(f"shape {tuple(b_shape)} vs {tuple(a_shape)}")
    if a_crs != b_crs:
        problems.append(f"CRS {b_crs} vs {a_crs}")
    if not b_transform.almost_equals(a_transform):
        problems.append(f"transform {tuple(b_transform)[:6]} vs {tuple(a_transform)[:6]}")
    if problems:
        raise DeepsnowError(f"{b_path}: {what} is not on the grid of scene {a_path}: " + "; ".join(problems))


def cut_patches(
    scene_path: str | os.PathLike,
    mask_path: str | os.PathLike,
    params: dict,
    out_npz: str | os.PathLike,
    out_csv: str | os.PathLike,
    truth_path: str | os.PathLike | None = None,
) -> dict:
    """Cut, label and filter the patches of one scene; write the ``.npz`` shard and ``.csv`` table.

    ``params`` is the validated ``patches`` config section. The scene's season
    comes from its ``DEEPSNOW_SEASON`` tag (required); its area from the
    ``DEEPSNOW_AOI`` tag, or, when that tag is absent, the scene's parent folder
    name (``scenes/<aoi>/<season>.tif``). ``truth_path`` is an optional scene on
    the same grid whose RGB is cut with the same windows (array ``truth``).

    Zero kept patches is not an error: the shard then holds empty arrays of the
    right shapes. Both files are written atomically and only after all checks.

    Returns ``scene``, ``aoi``, ``season``, ``size``, ``stride``,
    ``candidates``, ``kept``, ``rejected`` (count per reason), ``labels``
    (count per label over all candidates) and ``kept_labels``.
    """
    scene_path, mask_path = Path(scene_path), Path(mask_path)
    size, stride = int(params["size"]), int(params["stride"])
    scene = read_scene(scene_path)
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

    classes, m_crs, m_transform = read_mask(mask_path)
    _same_grid(
        scene_path,
        scene.shape,
        scene.crs,
        scene.transform,
        mask_path,
        classes.shape,
        m_crs,
        m_transform,
        "mask",
    )
    truth = None
    if truth_path is not None:
        truth_path = Path(truth_path)
        truth = read_scene(truth_path)
        _same_grid(
            scene_path,
            scene.shape,
            scene.crs,
            scene.transform,
            truth_path,
            truth.shape,
            truth.crs,
            truth.transform,
            "truth scene",
        )

    # --- window statistics on the regular grid ---------------------------------------------
    rows = np.arange(0, h - size + 1, stride, dtype=np.int64)
    cols = np.arange(0, w - size + 1, stride, dtype=np.int64)
    npix = float(size * size)
    n_valid = window_counts(classes != INVALID, rows, cols, size).ravel()
    n_cloud = window_counts((classes == CLOUD) | (classes == SHADOW), rows, cols, size).ravel()
    n_snow = window_counts(classes == SNOW, rows, cols, size).ravel()
    n_water = window_counts(classes == WATER, rows, cols, size).ravel()
    rr, cc = (a.ravel() for a in np.meshgrid(rows, cols, indexing="ij"))
    valid_f = n_valid / npix
    cloud_f = n_cloud / npix
    water_f = n_water / npix
    snow_f = np.divide(n_snow, n_valid, out=np.zeros(n_snow.shape, dtype=np.float64), where=n_valid > 0)

    # --- labels and rejection reasons (first match wins) -------------------------------------
    n = rr.size
    nodata = (valid_f < params["min_valid"]) | (n_valid == 0)
    cloudy = ~nodata & (cloud_f > params["max_cloud"])
    labelled = ~nodata & ~cloudy
    label = np.full(n, "-", dtype="<U9")
    snowy = labelled & (snow_f >= params["snowy_min"])
    snowfree = labelled & ~snowy & (snow_f <= params["snowfree_max"])
    label[labelled] = "ambiguous"
    label[snowfree] = "snowfree"
    label[snowy] = "snowy"
    reason = np.full(n, "", dtype="<U15")
    reason[nodata] = "nodata"
    reason[cloudy] = "cloud"
    reason[labelled & (label == "ambiguous")] = "ambiguous"
    mismatch = labelled & (label != "ambiguous") & (label != SEASON_LABEL[season])
    reason[mismatch] = "season_mismatch"
    kept = reason == ""
    ids = np.array([f"{aoi}_{season}_r{r}_c{c}" for r, c in zip(rr, cc)], dtype=str).astype("U")

    # --- arrays of the kept patches -----------------------------------------------------------
    k = np.flatnonzero(kept)
    kr, kc = rr[k], cc[k]

    def cut(img: np.ndarray) -> np.ndarray:
        # (H, W[, 3]) -> (N, S, S[, 3]); views first, one copy by fancy indexing.
        view = sliding_window_view(img, (size, size), axis=(0, 1))  # (H-S+1, W-S+1, [3,] S, S)
        patches = view[kr, kc]
        return np.moveaxis(patches, 1, -1) if img.ndim == 3 else patches

    rgb = cut(render_rgb(scene.reflectance, params["rgb_max"], params["rgb_gamma"]))
    arrays = {
        "rgb": np.ascontiguousarray(rgb, dtype=np.uint8).reshape(len(k), size, size, 3),
    }
    if truth is not None:
        t = cut(render_rgb(truth.reflectance, params["rgb_max"], params["rgb_gamma"]))
        arrays["truth"] = np.ascontiguousarray(t, dtype=np.uint8).reshape(len(k), size, size, 3)
    arrays["water"] = np.ascontiguousarray(cut(classes == WATER), dtype=bool).reshape(len(k), size, size)
    arrays["ids"] = np.asarray(ids[k], dtype="U") if len(k) else np.zeros(0, dtype="<U1")
    arrays["row"] = kr.astype(np.int64)
    arrays["col"] = kc.astype(np.int64)
    t0 = scene.transform
    arrays["transform"] = np.array(
        [tuple(t0 @ Affine.translation(int(c), int(r)))[:6] for r, c in zip(kr, kc)], dtype=np.float64
    ).reshape(len(k), 6)
    arrays["crs"] = np.array(scene.crs.to_wkt(), dtype=str)
    arrays["snow_fraction"] = snow_f[k].astype(np.float32)
    arrays["cloud_fraction"] = cloud_f[k].astype(np.float32)
    arrays["valid_fraction"] = valid_f[k].astype(np.float32)
    arrays["water_fraction"] = water_f[k].astype(np.float32)

    # --- write both files: the CSV goes in place inside the npz's atomic block ---------------
    with atomic_output(out_npz, suffix=".npz") as tmp:
        save_npz(tmp, **arrays)
        _write_table(
            out_csv, ids, aoi, season, rr, cc, size, valid_f, cloud_f, snow_f, water_f, label, kept, reason
        )

    summary = {
        "scene": str(scene_path),
        "aoi": aoi,
        "season": season,
        "size": size,
        "stride": stride,
        "candidates": int(n),
        "kept": int(kept.sum()),
        "rejected": {r: int((reason == r).sum()) for r in REASONS},
        "labels": {lab: int((label == lab).sum()) for lab in LABELS},
        "kept_labels": {lab: int((label[kept] == lab).sum()) for lab in ("snowy", "snowfree")},
    }
    log.info(
        "%s: %d candidate windows, %d kept (%s), rejected %s",
        scene_path,
        summary["candidates"],
        summary["kept"],
        season,
        summary["rejected"],
    )
    return summary


def _write_table(
    path, ids, aoi, season, rr, cc, size, valid_f, cloud_f, snow_f, water_f, label, kept, reason
) -> None:
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
                        int(rr[i]),
                        int(cc[i]),
                        size,
                        f"{valid_f[i]:.6f}",
                        f"{cloud_f[i]:.6f}",
                        f"{snow_f[i]:.6f}",
                        f"{water_f[i]:.6f}",
                        label[i],
                        "true" if kept[i] else "false",
                        reason[i],
                    )
                )
