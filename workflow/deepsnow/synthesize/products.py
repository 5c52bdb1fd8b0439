"""One scene's synthetic product: checkpoint choice, input checks, translation, COG writing.

``snow.tif`` is a Cloud-Optimized GeoTIFF written by GDAL's COG driver from a
temporary tiled GeoTIFF (:mod:`deepsnow.cog`): the input's CRS, transform and size, 3 bands uint8
(red, green, blue), an internal mask from the input's valid data (dataMask, or the
RGB input's own mask), 512 px tiles, DEFLATE with a horizontal predictor, and
average-resampled overviews down to about 256 px (at least one level). Every file is
written to a temporary name and renamed only when complete; on any error neither product is left.

The scene is streamed (issue #28), as ``deepsnow translate`` streams it: read a row of tiles at a time
(:func:`deepsnow.gan.translate.open_input`), translated by :func:`deepsnow.gan.translate.translate_rows`, and
the finished rows written to every product at once, 512 rows at a time
(:func:`deepsnow.gan.translate.output_rows`, each product's :class:`~deepsnow.gan.translate.Layout` turning
the generator's rows into its bands): neither the scene nor a product is ever whole in memory.

``snow_reflectance.tif``, a uint16 COG of reflectance x 10000 (band scale 1e-4, band descriptions
the band names, the same mask, blocks and overviews), is

- for a reflectance checkpoint (``patches.encoding: reflectance``, docs/bands.md): always written, the
  generator's own output in the checkpoint's bands, read and translated as ``deepsnow translate`` does
  (:func:`deepsnow.gan.translate.open_input` with the checkpoint's band set, the fixed per-band
  mapping back by :func:`deepsnow.data.bands.decode_units`); ``snow.tif`` is then its RGB composite,
  rendered by :func:`deepsnow.data.render.render_composite` (``patches.rgb_max`` / ``rgb_gamma``, as the
  patches stage renders RGB), so the checkpoint must hold B04, B03 and B02;
- for an RGB checkpoint, only with ``synthesize.reflectance``: the inverse of the RGB rendering of the
  patches stage, ``rho = rgb_max * (v / 255) ** rgb_gamma`` for B04, B03, B02. An approximation:
  three bands only, 8-bit steps, and saturated pixels (255) come back as ``rgb_max``.
"""

from __future__ import annotations

import contextlib
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
#: the products' block size (the COG's tiles and the row windows they are written in)
BLOCK = 512


def write_cog(path, bands: np.ndarray, crs, transform, valid: np.ndarray, names, tags: dict, scale=None) -> None:
    """A COG of ``bands`` ``(count, H, W)`` as the products are written (:func:`deepsnow.gan.translate.output_rows`,
    512 px blocks, average-resampled overviews), internal mask from ``valid``; atomically."""
    from deepsnow.gan.scene_norm import ArrayRows
    from deepsnow.gan.translate import Layout, output_rows

    rows = np.moveaxis(bands, 0, -1)
    layout = Layout(tuple(names), bands.dtype.name, lambda r: np.ascontiguousarray(np.moveaxis(r, -1, 0)))
    with output_rows(path, layout, ArrayRows(rows, valid), crs, transform, tags, rows=BLOCK, block=BLOCK,
                     scale=scale, masked=True) as sink:
        sink(0, rows)


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


def composite_layout(bands, rgb):
    """``snow.tif`` of a reflectance checkpoint: rows of the generator's unit codes -> ``(3, n, W) uint8``, the
    RGB composite of their reflectance x 10000 (the checkpoint's per-band mapping,
    :func:`deepsnow.data.bands.decode_units`) rendered by :func:`deepsnow.data.render.render_composite`."""
    from deepsnow.data.bands import decode_units
    from deepsnow.data.render import TRUE_COLOUR, render_composite
    from deepsnow.gan.translate import Layout

    pick = [(bands.bands.index(b), bands.unit_reflectance[bands.bands.index(b)]) for b in TRUE_COLOUR]

    def to_bands(rows: np.ndarray) -> np.ndarray:
        refl = np.stack([decode_units(rows[..., i], s) for i, s in pick], axis=-1)
        rgb_rows = render_composite(refl, TRUE_COLOUR, *rgb, what="the generator's reflectance")
        return np.ascontiguousarray(rgb_rows.transpose(2, 0, 1))

    return Layout(RGB_NAMES, "uint8", to_bands)


def product_specs(paths, bands, tags: dict, rgb) -> list[tuple]:
    """``(path, layout, tags, scale)`` of each product the translated rows go to (:func:`write_products`)."""
    from deepsnow.gan.translate import Layout

    output, reflectance_output = paths
    if bands.encoding == "reflectance":
        return [
            (reflectance_output, Layout.of(bands), dict(tags, DEEPSNOW_SCALE=1e-4, DEEPSNOW_REFLECTANCE="the "
             "generator's output, through the checkpoint's per-band mapping"), 1e-4),
            (output, composite_layout(bands, rgb),
             dict(tags, DEEPSNOW_RENDERING=f"RGB composite of {reflectance_output.name} (render_composite)"), None),
        ]
    specs = [(output, Layout.of(bands), tags, None)]
    if reflectance_output is not None:
        inverse = Layout(REFLECTANCE_NAMES, "uint16", lambda rows: reflectance_from_rgb(rows, *rgb))
        specs.append((reflectance_output, inverse, dict(
            tags, DEEPSNOW_REFLECTANCE="rho = rgb_max * (v/255)**rgb_gamma, x10000 (approximation)"), 1e-4))
    return specs


def write_products(paths, translate_into, bands, reader, tags: dict, rgb, rows: int = BLOCK) -> tuple:
    """``snow.tif`` and, when ``paths`` has one, ``snow_reflectance.tif``, streamed: ``translate_into(sink)``
    translates the scene of row reader ``reader``, handing its finished rows (uint8 RGB or uint16 unit codes
    of ``bands``) to ``sink``, which writes them to every product ``rows`` rows at a time
    (:func:`deepsnow.gan.translate.output_rows`; invalid pixels 0 and masked). ``(what translate_into
    returned, the number of valid pixels)``; on any error neither product is left behind."""
    from deepsnow.gan.translate import output_rows

    try:
        with contextlib.ExitStack() as stack:
            writers = [
                stack.enter_context(output_rows(path, layout, reader, reader.crs, reader.transform, product_tags,
                                                zero=True, rows=rows, block=BLOCK, scale=scale, masked=True))
                for path, layout, product_tags, scale in product_specs(paths, bands, tags, rgb)
            ]

            def sink(r0: int, finished: np.ndarray) -> None:
                for writer in writers:
                    writer(r0, finished)

            result = translate_into(sink)
        return result, writers[0].valid_px
    except BaseException:
        for path in paths:
            if path is not None:
                Path(path).unlink(missing_ok=True)
        raise


def synthesize_scene(params: dict, checkpoint, input_path, output, reflectance_output=None, rgb=(1.0, 2.2),
                     rows: int = BLOCK) -> dict:
    """Translate one scene with ``checkpoint``'s G_A (AtoB) and write its product(s), streamed (the scene read
    a row of tiles at a time, the products written ``rows`` rows at a time: :func:`write_products`); a summary
    dict (``seconds``: translating and writing)."""
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
    tags = {
        "DEEPSNOW_CHECKPOINT": Path(checkpoint).name, "DEEPSNOW_EPOCH": info.get("epoch"),
        "DEEPSNOW_DIRECTION": "AtoB", "DEEPSNOW_NORM": params["norm"], "DEEPSNOW_TILE": params["tile"],
        "DEEPSNOW_OVERLAP": params["overlap"], "DEEPSNOW_SOURCE_SCENE": Path(input_path).name,
    }
    tags.update({k: v for k, v in grid["tags"].items() if k in ("DEEPSNOW_AOI", "DEEPSNOW_DATE", "DEEPSNOW_SOURCE")})
    paths = (Path(output), Path(reflectance_output) if reflectance_output is not None else None)
    with translate.open_input(input_path, *rgb, bands) as scene:  # refused before anything is written
        kind, (h, w), started = scene.kind, scene.shape, time.monotonic()

        def translate_into(sink) -> int:
            return translate.translate_rows(
                net, scene, sink, params["tile"], params["overlap"], device, params["batch_size"], params["norm"],
                params["stats_px"], progress=True,
            )

        n_tiles, valid_px = write_products(paths, translate_into, bands, scene, tags, rgb, rows)
    seconds = time.monotonic() - started
    log.info("synthesized %s (%dx%d %s, %s, %d tiles, %.2f Mpx/s) -> %s", input_path, w, h, kind, bands.describe(),
             n_tiles, h * w / 1e6 / max(seconds, 1e-9), output)
    return {
        "input_kind": kind, "shape": [h, w], "tiles": n_tiles, "norm": params["norm"], "epoch": info.get("epoch"),
        "arch": info["arch"], "encoding": bands.encoding, "bands": list(bands.bands),
        "valid_fraction": valid_px / (h * w), "seconds": round(seconds, 3),
        "mpx_per_s": round(h * w / 1e6 / max(seconds, 1e-9), 4),
    }
