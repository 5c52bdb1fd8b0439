"""One scene's synthetic product: checkpoint choice, input checks, translation, COG writing.

``snow.tif`` is a Cloud-Optimized GeoTIFF written by GDAL's COG driver from a
temporary tiled GeoTIFF (:mod:`deepsnow.cog`): the input's CRS, transform and size, 3 bands uint8
(red, green, blue), an internal mask from the input's valid data (dataMask, or the
RGB input's own mask), 512 px tiles, DEFLATE with a horizontal predictor, and
average-resampled overviews down to about 256 px (at least one level). Every file is
written to a temporary name and renamed only when complete.

``snow_reflectance.tif``, a uint16 COG of reflectance x 10000 (band scale 1e-4, band descriptions
the band names, the same mask, blocks and overviews), is

- for a reflectance checkpoint (``patches.encoding: reflectance``, docs/bands.md): always written, the
  generator's own output in the checkpoint's bands, read and translated as ``deepsnow translate`` does
  (:func:`deepsnow.gan.translate.read_input` with the checkpoint's band set, the fixed per-band
  mapping back by :func:`deepsnow.data.bands.decode_units`); ``snow.tif`` is then its RGB composite,
  rendered by :func:`deepsnow.data.render.render_composite` (``patches.rgb_max`` / ``rgb_gamma``, as the
  patches stage renders RGB), so the checkpoint must hold B04, B03 and B02;
- for an RGB checkpoint, only with ``synthesize.reflectance``: the inverse of the RGB rendering of the
  patches stage, ``rho = rgb_max * (v / 255) ** rgb_gamma`` for B04, B03, B02. An approximation:
  three bands only, 8-bit steps, and saturated pixels (255) come back as ``rgb_max``.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import re
import time
from pathlib import Path

import numpy as np

from deepsnow import DeepsnowError
from deepsnow.io import atomic_output

log = logging.getLogger("deepsnow.synthesize")

#: the pixel size the generator was trained at (Sentinel-2's 10 m bands)
PIXEL_SIZE_M = 10.0
RGB_NAMES = ("red", "green", "blue")
REFLECTANCE_NAMES = ("B04", "B03", "B02")


# -- which checkpoint ------------------------------------------------------------------------------
def epoch_of(path: str | os.PathLike) -> int:
    m = re.fullmatch(r"epoch_(\d+)\.pt", Path(path).name)
    if not m:
        raise DeepsnowError(f"{path}: expected a checkpoint named epoch_NNN.pt")
    return int(m.group(1))


def choose_checkpoint(choice, checkpoints: list, metrics: str | os.PathLike | None = None) -> tuple[Path, str]:
    """The checkpoint ``synthesize.epoch`` names among the given kept ones, and why it was chosen."""
    by_epoch = {epoch_of(p): Path(p) for p in checkpoints}
    if not by_epoch:
        raise DeepsnowError("--checkpoints: no checkpoint given")
    if choice == "last":
        epoch = max(by_epoch)
        return by_epoch[epoch], f"last epoch ({epoch})"
    if isinstance(choice, int):
        if choice not in by_epoch:
            raise DeepsnowError(
                f"synthesize.epoch {choice}: no such checkpoint among {sorted(by_epoch)} (kept: gan.keep_every)"
            )
        return by_epoch[choice], f"epoch {choice}"
    column = str(choice).removeprefix("best:")
    epoch, value = _best_epoch(metrics, column)
    if epoch not in by_epoch:
        raise DeepsnowError(
            f"synthesize.epoch {choice}: the best epoch is {epoch} ({column} = {value:.4g}), whose checkpoint "
            f"is not kept (kept: {sorted(by_epoch)}; set gan.keep_every: 1)"
        )
    return by_epoch[epoch], f"epoch {epoch}, lowest {column} ({value:.4g}) in the AtoB direction"


def _best_epoch(metrics: str | os.PathLike | None, column: str) -> tuple[int, float]:
    if metrics is None:
        raise DeepsnowError(f"synthesize.epoch best:{column} needs --metrics metrics/metrics.csv")
    try:
        with open(metrics, newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if r.get("direction") == "AtoB"]
    except OSError as exc:
        raise DeepsnowError(f"{metrics}: cannot read the metrics table: {exc}") from exc
    values = []
    for r in rows:
        if column not in r:
            raise DeepsnowError(f"{metrics}: no column {column!r} (synthesize.epoch best:{column})")
        v = float(r[column]) if r[column] not in ("", "nan", "NaN") else math.nan
        if math.isfinite(v):
            values.append((v, int(r["epoch"])))
    if not values:
        raise DeepsnowError(f"{metrics}: no finite {column!r} value in the AtoB rows (synthesize.epoch best:{column})")
    value, epoch = min(values)
    return epoch, value


# -- the input -------------------------------------------------------------------------------------
def check_input(path: str | os.PathLike) -> dict:
    """The input's grid, refusing what the generator cannot translate: pixels other than 10 m (the
    model is resolution-bound; any projected CRS in metres is fine), 3 bands that are not uint8."""
    import rasterio

    path = Path(path)
    if not path.exists():
        raise DeepsnowError(f"{path}: input scene not found")
    try:
        with rasterio.open(path) as src:
            crs, transform, count, dtypes = src.crs, src.transform, src.count, src.dtypes
            shape, tags = (src.height, src.width), src.tags()
    except Exception as exc:
        raise DeepsnowError(f"{path}: not a readable GeoTIFF (truncated or corrupt?): {exc}") from exc
    if crs is None:
        raise DeepsnowError(f"{path}: no CRS; expected a projected CRS in metres with 10 m pixels")
    if not crs.is_projected or (crs.linear_units or "").lower() not in ("metre", "meter", "m"):
        raise DeepsnowError(
            f"{path}: CRS {crs.to_string()} is not projected in metres; reproject to 10 m pixels (e.g. its UTM zone)"
        )
    size = (abs(transform.a), abs(transform.e))
    if transform.b or transform.d or any(abs(s - PIXEL_SIZE_M) > 1e-6 * PIXEL_SIZE_M for s in size):
        raise DeepsnowError(
            f"{path}: pixel size {size[0]:g} x {size[1]:g} m (rotation {transform.b:g}, {transform.d:g}); the generator "
            f"was trained on {PIXEL_SIZE_M:g} m north-up pixels: resample the scene to {PIXEL_SIZE_M:g} m first"
        )
    if count == 3 and dtypes[0] != "uint8":
        raise DeepsnowError(f"{path}: a 3-band input must be uint8 RGB (0-255), found {dtypes[0]} bands")
    return {"crs": crs, "transform": transform, "shape": shape, "tags": tags}


# -- writing ---------------------------------------------------------------------------------------
def write_cog(path, bands: np.ndarray, crs, transform, valid: np.ndarray, names, tags: dict, scale=None) -> None:
    """A COG of ``bands`` ``(count, H, W)`` (:func:`deepsnow.cog.cog_output`), internal mask from ``valid``;
    average-resampled overviews, 512 px blocks; atomically."""
    from deepsnow.cog import cog_output

    count, h, w = bands.shape
    profile = {
        "driver": "GTiff", "height": h, "width": w, "count": count, "dtype": bands.dtype.name, "crs": crs,
        "transform": transform, "blockxsize": 512,
    }
    if count == 3 and bands.dtype == np.uint8:
        profile["photometric"] = "RGB"
    with cog_output(path, profile, resampling="average") as dst:
        for i, name in enumerate(names, start=1):
            dst.write(np.ascontiguousarray(bands[i - 1]), i)  # a band at a time: no whole copy
            dst.set_band_description(i, name)
        if scale is not None:
            dst.scales = (scale,) * count
        dst.write_mask(valid.view(np.uint8) * np.uint8(255))  # one uint8 array (np.where made int64)
        dst.update_tags(**{k: str(v) for k, v in tags.items()})


def reflectance_from_rgb(rgb: np.ndarray, rgb_max: float, rgb_gamma: float) -> np.ndarray:
    """``(3, H, W) uint16`` reflectance x 10000 from ``(H, W, 3) uint8``: the rendering's inverse, by lookup."""
    from deepsnow.data.scene import SCALE

    lut = np.rint(np.clip(rgb_max * (np.arange(256) / 255.0) ** rgb_gamma * SCALE, 0, 65535)).astype(np.uint16)
    return np.stack([lut[rgb[..., i]] for i in range(3)])


def needs_reflectance_output(params: dict, bands, checkpoint) -> bool:
    """Whether ``snow_reflectance.tif`` is written: for a reflectance checkpoint (the generator's output;
    refused unless it holds the RGB composite's bands) or with synthesize.reflectance (the approximate inverse)."""
    from deepsnow.data.render import TRUE_COLOUR, has_bands

    reflectance = bands.encoding == "reflectance"
    if reflectance and not has_bands(bands.bands, TRUE_COLOUR):
        raise DeepsnowError(
            f"{checkpoint}: a checkpoint of {bands.describe()}: snow.tif is its RGB composite, which needs "
            f"{' '.join(TRUE_COLOUR)} among its bands (patches.bands)"
        )
    return reflectance or bool(params["reflectance"])


def decode_reflectance(codes: np.ndarray, bands, rows: int = 1024) -> np.ndarray:
    """``(C, H, W) uint16`` reflectance x 10000 of the generator's ``(H, W, C)`` unit codes, through the
    checkpoint's own per-band mapping, ``rows`` rows at a time (no float copy of the scene)."""
    from deepsnow.data.bands import decode_units

    h, w, nc = codes.shape
    out = np.empty((nc, h, w), np.uint16)
    for i, scale in enumerate(bands.unit_reflectance):
        for r in range(0, h, rows):
            out[i, r : r + rows] = decode_units(codes[r : r + rows, :, i], scale)
    return out


def composite_of(refl: np.ndarray, bands, rgb, rows: int = 1024) -> np.ndarray:
    """``(H, W, 3) uint8``: the RGB composite of ``(C, H, W)`` reflectance x 10000 in ``bands``, rendered by
    :func:`deepsnow.data.render.render_composite` (the patches stage's RGB), ``rows`` rows at a time."""
    from deepsnow.data.render import TRUE_COLOUR, render_composite

    pick = [bands.bands.index(b) for b in TRUE_COLOUR]
    h, w = refl.shape[1:]
    out = np.empty((h, w, 3), np.uint8)
    for r in range(0, h, rows):
        block = np.moveaxis(refl[pick, r : r + rows], 0, -1)
        out[r : r + rows] = render_composite(block, TRUE_COLOUR, *rgb, what="the generator's reflectance")
    return out


def write_products(paths, out: np.ndarray, bands, grid, valid: np.ndarray, tags: dict, rgb) -> None:
    """``snow.tif`` and, when ``paths`` has one, ``snow_reflectance.tif`` of the translated ``out`` (uint8 RGB
    or uint16 unit codes of ``bands``); on any error neither is left behind."""
    output, reflectance_output = paths
    crs, transform = grid
    written = []
    try:
        if bands.encoding == "reflectance":
            refl = decode_reflectance(out, bands)
            refl[:, ~valid] = 0
            written.append(reflectance_output)
            write_cog(reflectance_output, refl, crs, transform, valid, bands.bands,
                      dict(tags, DEEPSNOW_SCALE=1e-4, DEEPSNOW_REFLECTANCE="the generator's output, "
                           "through the checkpoint's per-band mapping"), scale=1e-4)
            rgb_out = composite_of(refl, bands, rgb)
            rgb_out[~valid] = 0
            written.append(output)
            write_cog(output, rgb_out.transpose(2, 0, 1), crs, transform, valid, RGB_NAMES,
                      dict(tags, DEEPSNOW_RENDERING=f"RGB composite of {reflectance_output.name} (render_composite)"))
            return
        written.append(output)
        write_cog(output, out.transpose(2, 0, 1), crs, transform, valid, RGB_NAMES, tags)
        if reflectance_output is not None:
            refl = reflectance_from_rgb(out, *rgb)
            refl[:, ~valid] = 0
            written.append(reflectance_output)
            write_cog(reflectance_output, refl, crs, transform, valid, REFLECTANCE_NAMES,
                      dict(tags, DEEPSNOW_REFLECTANCE="rho = rgb_max * (v/255)**rgb_gamma, x10000 (approximation)"),
                      scale=1e-4)
    except BaseException:
        for path in written:
            Path(path).unlink(missing_ok=True)
        raise


def synthesize_scene(params: dict, checkpoint, input_path, output, reflectance_output=None, rgb=(1.0, 2.2)) -> dict:
    """Translate one scene with ``checkpoint``'s G_A (AtoB) and write its product(s); a summary dict."""
    from deepsnow.gan import checkpoint as ckpt
    from deepsnow.gan import runtime, translate

    grid = check_input(input_path)
    device = runtime.resolve_device(params["device"], key="synthesize.device")
    net, info = ckpt.load_generator(checkpoint, "G_A", device)
    bands = info["bands"]
    if needs_reflectance_output(params, bands, checkpoint) != (reflectance_output is not None):
        raise DeepsnowError(
            f"--reflectance-output is needed exactly when synthesize.reflectance is true or the checkpoint is of "
            f"reflectance ({checkpoint}: {bands.describe()})"
        )
    data, valid, crs, transform, kind = translate.read_input(input_path, *rgb, bands)
    started = time.monotonic()
    out, n_tiles = translate.translate_array(
        net, data, params["tile"], params["overlap"], device, params["batch_size"], params["norm"],
        params["stats_px"], progress=True,
    )
    seconds = time.monotonic() - started
    del data
    out[~valid] = 0
    tags = {
        "DEEPSNOW_CHECKPOINT": Path(checkpoint).name, "DEEPSNOW_EPOCH": info.get("epoch"),
        "DEEPSNOW_DIRECTION": "AtoB", "DEEPSNOW_NORM": params["norm"], "DEEPSNOW_TILE": params["tile"],
        "DEEPSNOW_OVERLAP": params["overlap"], "DEEPSNOW_SOURCE_SCENE": Path(input_path).name,
    }
    tags.update({k: v for k, v in grid["tags"].items() if k in ("DEEPSNOW_AOI", "DEEPSNOW_DATE", "DEEPSNOW_SOURCE")})
    paths = (Path(output), Path(reflectance_output) if reflectance_output is not None else None)
    write_products(paths, out, bands, (crs, transform), valid, tags, rgb)
    h, w = out.shape[:2]
    log.info("synthesized %s (%dx%d %s, %s, %d tiles, %.2f Mpx/s) -> %s", input_path, w, h, kind, bands.describe(),
             n_tiles, h * w / 1e6 / max(seconds, 1e-9), output)
    return {
        "input_kind": kind, "shape": [h, w], "tiles": n_tiles, "norm": params["norm"], "epoch": info.get("epoch"),
        "arch": info["arch"], "encoding": bands.encoding, "bands": list(bands.bands),
        "valid_fraction": float(valid.mean()), "seconds": round(seconds, 3),
        "mpx_per_s": round(h * w / 1e6 / max(seconds, 1e-9), 4),
    }
