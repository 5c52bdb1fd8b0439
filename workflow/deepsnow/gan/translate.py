"""``deepsnow translate``: translate a whole georeferenced scene of any size, tile by tile.

The scene is cut into overlapping ``tile`` x ``tile`` windows (the last row and
column of windows are shifted to end at the scene edge), each window is
translated by the generator, and the results are blended with a smooth 2-D
window (a raised-cosine taper over the ``overlap`` band at each side, 1 inside):
every output pixel is the weighted mean of all windows covering it, weights
summed and normalised. In the overlap of two neighbours the tapers sum to one,
so no seam is visible from the blending itself.

Instance normalisation (``norm``): with ``"tile"`` every tile is normalised by its
own statistics, as the generator does with any image it is given, so a tiled
result differs from a single pass over the whole scene (a 300 px scene in 256 px
tiles: mean 12.6 DN) and neighbouring tiles differ from each other. With
``"scene"`` (the ``translate`` command's and the synthesize stage's default)
every instance-norm layer uses the statistics of the whole scene, measured
exactly by :func:`~deepsnow.gan.scene_norm.scene_statistics` before the tiles
are translated (see :mod:`deepsnow.gan.scene_norm`); tiles then agree with one whole-scene pass to well under
1 DN. This is an inference-time mechanism only: the networks and training are
the reference's, unchanged.

Memory is bounded whatever the scene size: the uint8 input and output, and float
buffers for one row of tiles (scenes are rendered to RGB block by block).

Input: our scene GeoTIFF (its ``B04, B03, B02`` and ``dataMask`` found by name;
rendered to RGB as the patches stage does, ``255 * clip(refl / rgb_max, 0, 1) **
(1 / rgb_gamma)`` rounded) or a 3-band uint8 RGB GeoTIFF. Output: a 3-band
uint8 RGB GeoTIFF (bands described red, green, blue) with the input's CRS and
transform, written atomically; pixels outside the input's valid data are 0 and
masked.

Reflectance checkpoints (``patches.encoding: reflectance``, :mod:`deepsnow.data.bands`): the input must
be a scene holding every band of the checkpoint (refused otherwise, naming the band, before anything is
written); its bands go through the checkpoint's fixed per-band mapping, and the output is a uint16 COG of
reflectance x 10000 in the checkpoint's bands (band descriptions = band names).

Generators: a deepsnow checkpoint (``G_A`` for AtoB, ``G_B`` for BtoA) or a
reference ``<epoch>_net_G_A.pth`` / ``_net_G_B.pth`` state dict (architecture
inferred from the weights; the file's own generator is applied).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from deepsnow import DeepsnowError
from deepsnow.cog import gdal_env
from deepsnow.gan import checkpoint as ckpt
from deepsnow.gan import runtime
from deepsnow.gan.data import RGB, BandSet, to_codes
from deepsnow.gan.scene_norm import ceil4, scene_statistics, tile_tensor, with_scene_norm
from deepsnow.io import atomic_output

log = logging.getLogger("deepsnow.gan")

DIRECTIONS = {"AtoB": "G_A", "BtoA": "G_B"}
#: how instance norm is applied to a tiled scene: statistics of the whole scene, or of each tile
NORMS = ("scene", "tile")


def read_input(path: str | os.PathLike, rgb_max: float = 1.0, rgb_gamma: float = 2.2, bands: BandSet = RGB):
    """``(rgb (H,W,3) uint8, valid (H,W) bool, crs, transform, kind)`` of a scene or an RGB GeoTIFF; for
    reflectance ``bands`` the first is the scene's bands as ``(H,W,C) uint16`` unit codes.

    A scene is rendered block by block (:func:`_render_scene`), so no float copy of it is ever whole.
    """
    import rasterio

    from deepsnow.data.scene import SCENE_BANDS, band_indexes, stored_bands

    path = Path(path)
    if not path.exists():
        raise DeepsnowError(f"{path}: input file not found")
    try:
        with gdal_env(), rasterio.open(path) as src:
            count, dtype, names = src.count, src.dtypes[0], list(src.descriptions)
            if count == 3 and dtype == "uint8" and bands.encoding == "rgb8":
                rgb = src.read().transpose(1, 2, 0)
                valid = src.dataset_mask() > 0
                return np.ascontiguousarray(rgb), valid, src.crs, src.transform, "rgb"
            if set(names) & set(SCENE_BANDS):  # meant as a scene: its header checked, its bands found by name
                index = stored_bands(src, path)
                if rgb_max <= 0 or rgb_gamma <= 0:
                    raise DeepsnowError(f"--rgb-max and --rgb-gamma must be positive, got {rgb_max} and {rgb_gamma}")
                if src.crs is None:
                    raise DeepsnowError(f"{path}: scene has no CRS (expected a UTM CRS, 10 m pixels)")
                if bands.encoding != "rgb8":
                    idx = band_indexes(index, (*bands.bands, "dataMask"), path)  # names a band it lacks
                    codes, valid = _scene_codes(src, idx, bands)
                    return codes, valid, src.crs, src.transform, "scene"
                rgb, valid = _render_scene(src, band_indexes(index, RENDER_BANDS, path), rgb_max, rgb_gamma)
                return rgb, valid, src.crs, src.transform, "scene"
    except DeepsnowError:
        raise
    except Exception as exc:
        raise DeepsnowError(f"{path}: not a readable GeoTIFF (truncated or corrupt?): {exc}") from exc
    if bands.encoding != "rgb8":
        raise DeepsnowError(
            f"{path}: the checkpoint takes {bands.describe()}: expected a deepsnow scene holding those bands "
            f"(uint16 bands named by their descriptions); found {count} {dtype} bands {names}"
        )
    raise DeepsnowError(
        f"{path}: expected a deepsnow scene (uint16 bands named B04, B03, B02, ..., SCL, dataMask) or a 3-band "
        f"uint8 RGB GeoTIFF; found {count} {dtype} bands {names}"
    )


def _scene_codes(src, idx: list[int], bands: BandSet, rows: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """A scene's ``bands`` as ``(H,W,C) uint16`` unit codes (:func:`deepsnow.data.bands.encode_units`) and
    dataMask > 0, read ``rows`` rows at a time; ``idx``: the indexes of the bands, then dataMask's."""
    from rasterio.windows import Window

    from deepsnow.data.bands import encode_units

    h, w = src.height, src.width
    codes, valid = np.empty((h, w, bands.n), np.uint16), np.empty((h, w), bool)
    for r in range(0, h, rows):
        data = src.read(idx, window=Window(0, r, w, min(rows, h - r)))
        codes[r : r + rows] = encode_units(np.moveaxis(data[:-1], 0, -1), bands.unit_reflectance)
        valid[r : r + rows] = data[-1] > 0
    return codes, valid


#: The scene bands the rendering reads, in the order :func:`_render_scene` takes their indexes.
RENDER_BANDS = ("B04", "B03", "B02", "dataMask")


def _render_scene(src, idx: list[int], rgb_max: float, rgb_gamma: float, rows: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """RGB as the patches stage renders it (``render_rgb`` of ``read_scene``'s reflectance, bit for bit)
    and dataMask > 0, read ``rows`` rows at a time; ``idx``: the indexes of ``RENDER_BANDS``."""
    from rasterio.windows import Window

    from deepsnow.data.render import render_rgb  # the patches stage's rendering: scenes look like the training data
    from deepsnow.data.scene import SCALE

    h, w = src.height, src.width
    rgb, valid = np.empty((h, w, 3), np.uint8), np.empty((h, w), bool)
    for r in range(0, h, rows):
        data = src.read(idx, window=Window(0, r, w, min(rows, h - r)))
        refl = {b: data[i].astype(np.float32) / SCALE for i, b in enumerate(RENDER_BANDS[:3])}
        rgb[r : r + rows] = render_rgb(refl, rgb_max, rgb_gamma)
        valid[r : r + rows] = data[3] > 0
    return rgb, valid


def taper(length: int, overlap: int) -> np.ndarray:
    """1-D blending weights: raised-cosine ramps over ``overlap`` pixels at both ends, 1 between; all > 0."""
    w = np.ones(length, dtype=np.float64)
    ov = min(overlap, length)
    if ov > 0:
        i = np.arange(length, dtype=np.float64)
        up = 0.5 - 0.5 * np.cos(np.pi * np.minimum((i + 0.5) / ov, 1.0))
        w = np.minimum(up, up[::-1])
    return w


def positions(n: int, tile: int, overlap: int) -> list[int]:
    """Tile start offsets covering ``[0, n)`` with stride ``tile - overlap``; the last one ends at ``n``."""
    if n <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, n - tile, stride))
    if not starts or starts[-1] != n - tile:
        starts.append(n - tile)
    return starts


# -- tiling and blending ---------------------------------------------------------------------------
def check_tiling(tile: int, overlap: int, norm: str) -> None:
    """Refuse a tile size, overlap or norm mode :func:`translate_array` cannot use (named as the options)."""
    if tile % 4 or tile < 4:
        raise DeepsnowError(f"--tile must be a positive multiple of 4, got {tile}")
    if not 0 <= overlap < tile:
        raise DeepsnowError(f"--overlap must be in [0, tile), got {overlap} with tile {tile}")
    if norm not in NORMS:
        raise DeepsnowError(f"--norm must be one of {list(NORMS)}, got {norm!r}")


def translate_array(
    net: torch.nn.Module,
    rgb: np.ndarray,
    tile: int = 256,
    overlap: int = 64,
    device: torch.device | str = "cpu",
    batch_size: int = 4,
    norm: str = "tile",
    stats_px: int = 2**20,
    progress: bool = False,
) -> tuple[np.ndarray, int]:
    """Translate ``(H,W,C)`` by overlapping tiles blended with :func:`taper`; ``(out, n_tiles)``, ``out`` of the
    input's type (uint8 RGB, or uint16 unit codes) and channels.

    ``norm="scene"``: instance norms use the whole scene's statistics (:func:`scene_statistics`);
    then the overlap is rounded up to a multiple of 4 so every tile sits on the generator's
    downsampling grid. A side shorter than ``tile`` is one tile; the image is padded by reflection
    to a multiple of 4. Memory: the uint8 input and output, and float buffers of one row of tiles.
    """
    check_tiling(tile, overlap, norm)
    h, w = rgb.shape[:2]
    if h < 1 or w < 1:
        raise DeepsnowError(f"input image is empty ({h}x{w})")
    ph, pw = ceil4(h), ceil4(w)
    th, tw = min(tile, ph), min(tile, pw)
    if norm == "scene":
        overlap = min(ceil4(overlap), tile - 4)
        stats, measured = scene_statistics(net, rgb, core=tile, max_px=stats_px, device=device)
        log.info("scene statistics of %d norm layers from %.1f%% of the scene (%s)", len(stats), 100 * measured,
                 "exact" if measured == 1.0 else "an evenly spread sample of tiles")
        net = with_scene_norm(net, stats)
    ys, xs = positions(ph, th, min(overlap, th - 4)), positions(pw, tw, min(overlap, tw - 4))
    win = torch.from_numpy(np.outer(taper(th, overlap), taper(tw, overlap)).astype(np.float32))
    out = _blend_rows(net, rgb, (th, tw), ys, xs, win, device, batch_size, progress)
    return out, len(ys) * len(xs)


def _blend_rows(net, rgb, tile_hw, ys, xs, win, device, batch_size, progress) -> np.ndarray:
    """Translate the tiles row of tiles by row, accumulating weighted outputs in a float buffer that
    covers only the rows still being written; finished rows go to the uint8 output."""
    import time

    h, w, nc = rgb.shape
    th, tw = tile_hw
    pw = max(xs) + tw
    out = np.empty((h, w, nc), dtype=rgb.dtype)
    dtype = torch.from_numpy(rgb[:0, :0]).dtype
    top, acc, wsum = 0, torch.zeros((nc, 0, pw)), torch.zeros((0, pw))
    started, done_tiles = time.monotonic(), 0
    net.eval()
    with torch.inference_mode():
        for i, y in enumerate(ys):
            grow = y + th - (top + acc.shape[1])
            if grow > 0:
                acc = torch.cat([acc, torch.zeros((nc, grow, pw))], dim=1)
                wsum = torch.cat([wsum, torch.zeros((grow, pw))], dim=0)
            for s in range(0, len(xs), batch_size):
                chunk = xs[s : s + batch_size]
                batch = torch.stack([tile_tensor(rgb, y, x, th, tw) for x in chunk]).to(device)
                for x, o in zip(chunk, net(batch).float().cpu()):
                    acc[:, y - top : y - top + th, x : x + tw] += o * win
                    wsum[y - top : y - top + th, x : x + tw] += win
            done_tiles += len(xs)
            end = ys[i + 1] if i + 1 < len(ys) else top + acc.shape[1]
            n = min(end, h) - top
            if n > 0:
                out[top : top + n] = to_codes(acc[:, :n, :w] / wsum[:n, :w], dtype).numpy().transpose(1, 2, 0)
            acc, wsum, top = acc[:, end - top :].clone(), wsum[end - top :].clone(), end
            if progress:
                rate = done_tiles * th * tw / 1e6 / max(time.monotonic() - started, 1e-9)
                log.info("row %d/%d of tiles done (%d tiles, %.2f Mpx/s)", i + 1, len(ys), done_tiles, rate)
    return out


def seam_score(img: np.ndarray, tile: int, overlap: int) -> float:
    """Gradient energy across tile borders / within tiles: the mean squared step between neighbouring
    pixels (averaged over 16 px along the line) on the lines where a tile of
    :func:`translate_array`'s layout starts or ends, over the
    same on the other lines of the same phase modulo 4 (the generator's output has a 4 px period
    from its two stride-2 layers); the larger of rows and columns. 1: borders are invisible."""
    from scipy.ndimage import uniform_filter1d

    x = img.astype(np.float64)
    ratios = []
    for axis in (0, 1):
        n = img.shape[axis]
        starts = positions(ceil4(n), min(tile, ceil4(n)), overlap)
        cuts = {s for s in starts if 0 < s < n} | {s + tile for s in starts if 0 < s + tile < n}
        # steps averaged over 16 px along the line: a seam is coherent along a tile's border, texture
        # and the generator's pixel noise are not
        step = uniform_filter1d(np.diff(x, axis=axis), 16, axis=1 - axis) ** 2
        energy = step.mean(axis=tuple(a for a in range(step.ndim) if a != axis))  # per line, at i | i+1
        border = np.zeros(n - 1, dtype=bool)
        border[[c - 1 for c in cuts]] = True
        phase = np.zeros(n - 1, dtype=bool)
        phase[[i for i in range(n - 1) if (i % 4) in {(c - 1) % 4 for c in cuts}]] = True
        inside = phase & ~border
        if border.any() and inside.any():
            ratios.append(energy[border].mean() / energy[inside].mean())
    return float(max(ratios)) if ratios else 1.0


def write_rgb(
    path: str | os.PathLike, rgb: np.ndarray, crs, transform, valid: np.ndarray | None = None, tags=None
) -> None:
    """3-band uint8 RGB COG (bands red, green, blue; :mod:`deepsnow.cog`), atomically; ``valid`` False ->
    masked. ``rgb`` is ``(H, W, 3)``."""
    from deepsnow.cog import cog_output

    h, w = rgb.shape[:2]
    profile = {
        "driver": "GTiff", "height": h, "width": w, "count": 3, "dtype": "uint8", "crs": crs,
        "transform": transform, "photometric": "RGB", "blockxsize": 256,
    }
    with cog_output(path, profile, resampling="average") as dst:
        for i, name in enumerate(("red", "green", "blue"), start=1):
            dst.write(np.ascontiguousarray(rgb[..., i - 1]), i)  # a band at a time: no whole copy
            dst.set_band_description(i, name)
        if valid is not None and not valid.all():
            dst.write_mask(valid.view(np.uint8) * np.uint8(255))  # one uint8 array (np.where made int64)
        dst.update_tags(**{k: str(v) for k, v in (tags or {}).items()})


def write_bands(path, codes: np.ndarray, bands: BandSet, crs, transform, valid: np.ndarray | None = None, tags=None,
                rows: int = 1024) -> None:
    """``(H, W, C) uint16`` unit codes of ``bands`` as a C-band uint16 COG of reflectance x 10000 (band
    descriptions = band names), atomically; ``valid`` False -> masked. Decoded and written ``rows`` rows
    (a multiple of the 256-px block) at a time, every band at once: no float copy of the scene is ever
    whole, and each compressed block of the pixel-interleaved intermediate is written once (a band at a
    time rewrote every block C times, which on a ten-band full tile outgrew the 4 GB TIFF limit)."""
    from rasterio.windows import Window

    from deepsnow.cog import cog_output
    from deepsnow.data.bands import decode_units

    h, w, nc = codes.shape
    profile = {
        "driver": "GTiff", "height": h, "width": w, "count": nc, "dtype": "uint16", "crs": crs,
        "transform": transform, "blockxsize": 256,
        # the intermediate GeoTIFF as BigTIFF where it could pass 4 GB (GDAL: over 2 GB uncompressed,
        # e.g. ten bands of a full tile, 2.4 GB); smaller ones, and the COG made from it, as before
        "BIGTIFF": "IF_SAFER",
    }
    with cog_output(path, profile, resampling="average") as dst:
        for r in range(0, h, rows):
            n = min(rows, h - r)
            block = np.empty((nc, n, w), dtype=np.uint16)
            for i, scale in enumerate(bands.unit_reflectance):
                block[i] = decode_units(codes[r : r + n, :, i], scale)
            dst.write(block, window=Window(0, r, w, n))
        for i, name in enumerate(bands.bands, start=1):
            dst.set_band_description(i, name)
        if valid is not None and not valid.all():
            dst.write_mask(valid.view(np.uint8) * np.uint8(255))
        dst.update_tags(**{k: str(v) for k, v in (tags or {}).items()})


def translate_scene(
    checkpoint: str | os.PathLike,
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    direction: str = "AtoB",
    tile: int = 256,
    overlap: int = 64,
    device: str = "auto",
    rgb_max: float = 1.0,
    rgb_gamma: float = 2.2,
    batch_size: int = 4,
    norm: str = "tile",
    stats_px: int = 2**20,
) -> dict:
    """Translate a whole scene with a checkpoint's generator; returns a summary dict.

    ``norm``: ``"scene"`` (whole-scene instance-norm statistics, seam-free; the command's default)
    or ``"tile"`` (each tile's own, as the reference implementation does on any image it is given).
    """
    if direction not in DIRECTIONS:
        raise DeepsnowError(f"--direction must be one of {sorted(DIRECTIONS)}, got {direction!r}")
    check_tiling(tile, overlap, norm)  # before the checkpoint is loaded
    if stats_px < 1:
        raise DeepsnowError(f"--stats-px must be positive, got {stats_px}")
    dev = runtime.resolve_device(device, key="--device")
    net, info = ckpt.load_generator(checkpoint, DIRECTIONS[direction], dev)
    if info["kind"] == "reference" and info.get("generator") and info["generator"] != DIRECTIONS[direction]:
        log.warning(
            "%s is the reference's %s; applying it although --direction %s names %s",
            checkpoint,
            info["generator"],
            direction,
            DIRECTIONS[direction],
        )
    bands = info["bands"]
    rgb, valid, crs, transform, kind = read_input(input_path, rgb_max, rgb_gamma, bands)
    out, n_tiles = translate_array(net, rgb, tile, overlap, dev, batch_size, norm, stats_px, progress=True)
    out[~valid] = 0
    tags = {
        "DEEPSNOW_CHECKPOINT": Path(checkpoint).name,
        "DEEPSNOW_DIRECTION": direction,
        "DEEPSNOW_EPOCH": info.get("epoch"),
        "DEEPSNOW_TILE": tile,
        "DEEPSNOW_OVERLAP": overlap,
        "DEEPSNOW_NORM": norm,
    }
    if bands.encoding == "rgb8":
        write_rgb(output_path, out, crs, transform, valid, tags)
    else:
        tags["DEEPSNOW_SCALE"] = 1e-4
        write_bands(output_path, out, bands, crs, transform, valid, tags)
    log.info(
        "translated %s (%dx%d, %s) %s with %d tiles -> %s",
        input_path,
        rgb.shape[1],
        rgb.shape[0],
        kind,
        direction,
        n_tiles,
        output_path,
    )
    return {
        "input_kind": kind,
        "shape": [int(rgb.shape[0]), int(rgb.shape[1])],
        "tiles": n_tiles,
        "norm": norm,
        "direction": direction,
        "checkpoint_kind": info["kind"],
        "generator": info.get("generator"),
        "epoch": info.get("epoch"),
        "arch": info["arch"],
        "bands": list(bands.bands),
        "encoding": bands.encoding,
        "valid_fraction": float(valid.mean()),
    }
