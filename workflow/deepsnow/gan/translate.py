"""``deepsnow translate``: translate a whole georeferenced scene of any size, tile by tile.

The scene is cut into overlapping ``tile`` x ``tile`` windows (the last row and
column of windows are shifted to end at the scene edge), each window is
translated by the generator, and the results are blended with a smooth 2-D
window (a raised-cosine taper over the ``overlap`` band at each side, 1 inside):
every output pixel is the weighted mean of all windows covering it, weights
summed and normalised. In the overlap of two neighbours the tapers sum to one,
so no seam is visible. (The generator's instance normalisation sees each tile's
own statistics, so a tiled result differs slightly from a single pass over the
whole image; the blending spreads that difference smoothly.)

Input: our scene GeoTIFF (7 bands ``B04, B03, B02, B08, B11, SCL, dataMask``;
rendered to RGB as the patches stage does, ``255 * clip(refl / rgb_max, 0, 1) **
(1 / rgb_gamma)`` rounded) or a 3-band uint8 RGB GeoTIFF. Output: a 3-band
uint8 RGB GeoTIFF (bands described red, green, blue) with the input's CRS and
transform, written atomically; pixels outside the input's valid data are 0 and
masked.

Generators: a deepsnow checkpoint (``G_A`` for AtoB, ``G_B`` for BtoA) or a
reference ``<epoch>_net_G_A.pth`` / ``_net_G_B.pth`` state dict (architecture
inferred from the weights; the file's own generator is applied).
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import numpy as np
import torch

from deepsnow import DeepsnowError
from deepsnow.gan import checkpoint as ckpt
from deepsnow.gan import runtime
from deepsnow.gan.data import to_uint8
from deepsnow.io import atomic_output

log = logging.getLogger("deepsnow.gan")

DIRECTIONS = {"AtoB": "G_A", "BtoA": "G_B"}


def read_input(path: str | os.PathLike, rgb_max: float = 1.0, rgb_gamma: float = 2.2):
    """``(rgb (H,W,3) uint8, valid (H,W) bool, crs, transform, kind)`` of a scene or an RGB GeoTIFF."""
    import rasterio

    from deepsnow.data.patches import render_rgb  # the patches stage's rendering, so scenes look like the training data
    from deepsnow.data.scene import BANDS, read_scene

    path = Path(path)
    if not path.exists():
        raise DeepsnowError(f"{path}: input file not found")
    try:
        with rasterio.open(path) as src:
            count, dtype, names = src.count, src.dtypes[0], tuple(src.descriptions)
            crs, transform = src.crs, src.transform
            if count == 3 and dtype == "uint8":
                rgb = src.read().transpose(1, 2, 0)
                valid = src.dataset_mask() > 0
                return np.ascontiguousarray(rgb), valid, crs, transform, "rgb"
    except DeepsnowError:
        raise
    except Exception as exc:
        raise DeepsnowError(f"{path}: not a readable GeoTIFF (truncated or corrupt?): {exc}") from exc
    if count == len(BANDS) and names == BANDS:
        if rgb_max <= 0 or rgb_gamma <= 0:
            raise DeepsnowError(f"--rgb-max and --rgb-gamma must be positive, got {rgb_max} and {rgb_gamma}")
        scene = read_scene(path)
        return (
            render_rgb(scene.reflectance, rgb_max, rgb_gamma),
            scene.data_mask > 0,
            scene.crs,
            scene.transform,
            "scene",
        )
    raise DeepsnowError(
        f"{path}: expected a deepsnow scene (7 uint16 bands {list(BANDS)}) or a 3-band uint8 RGB GeoTIFF; "
        f"found {count} {dtype} bands {list(names)}"
    )


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


def _ceil4(n: int) -> int:
    return int(math.ceil(n / 4) * 4)


def translate_array(
    net: torch.nn.Module,
    rgb: np.ndarray,
    tile: int = 256,
    overlap: int = 64,
    device: torch.device | str = "cpu",
    batch_size: int = 4,
) -> tuple[np.ndarray, int]:
    """Translate ``(H,W,3) uint8`` by overlapping tiles blended with :func:`taper`; ``(out uint8, n_tiles)``.

    A side shorter than ``tile`` is processed as one tile (padded by reflection to a multiple of 4).
    """
    if tile % 4 or tile < 4:
        raise DeepsnowError(f"--tile must be a positive multiple of 4, got {tile}")
    if not 0 <= overlap < tile:
        raise DeepsnowError(f"--overlap must be in [0, tile), got {overlap} with tile {tile}")
    h, w = rgb.shape[:2]
    if h < 1 or w < 1:
        raise DeepsnowError(f"input image is empty ({h}x{w})")
    th, tw = min(tile, _ceil4(h)), min(tile, _ceil4(w))
    ph, pw = max(h, th), max(w, tw)
    x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float().div_(127.5).sub_(1.0)
    if (ph, pw) != (h, w):
        mode = "reflect" if min(h, w) > 3 else "replicate"
        x = torch.nn.functional.pad(x[None], (0, pw - w, 0, ph - h), mode=mode)[0]
    ys, xs = positions(ph, th, min(overlap, th - 4)), positions(pw, tw, min(overlap, tw - 4))
    win = torch.from_numpy(np.outer(taper(th, overlap), taper(tw, overlap)).astype(np.float32))
    acc = torch.zeros((3, ph, pw), dtype=torch.float32)
    wsum = torch.zeros((ph, pw), dtype=torch.float32)
    boxes = [(y, xx) for y in ys for xx in xs]
    net.eval()
    with torch.inference_mode():
        for s in range(0, len(boxes), batch_size):
            chunk = boxes[s : s + batch_size]
            batch = torch.stack([x[:, y : y + th, xx : xx + tw] for y, xx in chunk]).to(device)
            out = net(batch).float().cpu()
            for (y, xx), o in zip(chunk, out):
                acc[:, y : y + th, xx : xx + tw] += o * win
                wsum[y : y + th, xx : xx + tw] += win
    res = (acc / wsum)[:, :h, :w]
    return to_uint8(res).numpy().transpose(1, 2, 0).copy(), len(boxes)


def write_rgb(
    path: str | os.PathLike, rgb: np.ndarray, crs, transform, valid: np.ndarray | None = None, tags=None
) -> None:
    """3-band uint8 RGB GeoTIFF (bands red, green, blue), atomically; ``valid`` False -> 0 and masked."""
    import rasterio

    h, w = rgb.shape[:2]
    profile = {
        "driver": "GTiff",
        "height": h,
        "width": w,
        "count": 3,
        "dtype": "uint8",
        "crs": crs,
        "transform": transform,
        "compress": "deflate",
        "predictor": 2,
        "photometric": "RGB",
        "interleave": "pixel",
    }
    if h >= 256 and w >= 256:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    with atomic_output(path, suffix=".tif") as tmp:
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
            with rasterio.open(tmp, "w", **profile) as dst:
                dst.write(rgb.transpose(2, 0, 1))
                for i, name in enumerate(("red", "green", "blue"), start=1):
                    dst.set_band_description(i, name)
                if valid is not None and not valid.all():
                    dst.write_mask(np.where(valid, 255, 0).astype(np.uint8))
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
) -> dict:
    """Translate a whole scene with a checkpoint's generator; returns a summary dict."""
    if direction not in DIRECTIONS:
        raise DeepsnowError(f"--direction must be one of {sorted(DIRECTIONS)}, got {direction!r}")
    if tile % 4 or tile < 4:
        raise DeepsnowError(f"--tile must be a positive multiple of 4, got {tile}")
    if not 0 <= overlap < tile:
        raise DeepsnowError(f"--overlap must be in [0, tile), got {overlap} with tile {tile}")
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
    rgb, valid, crs, transform, kind = read_input(input_path, rgb_max, rgb_gamma)
    out, n_tiles = translate_array(net, rgb, tile, overlap, dev, batch_size)
    out[~valid] = 0
    tags = {
        "DEEPSNOW_CHECKPOINT": Path(checkpoint).name,
        "DEEPSNOW_DIRECTION": direction,
        "DEEPSNOW_EPOCH": info.get("epoch"),
        "DEEPSNOW_TILE": tile,
        "DEEPSNOW_OVERLAP": overlap,
    }
    write_rgb(output_path, out, crs, transform, valid, tags)
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
        "direction": direction,
        "checkpoint_kind": info["kind"],
        "generator": info.get("generator"),
        "epoch": info.get("epoch"),
        "arch": info["arch"],
        "valid_fraction": float(valid.mean()),
    }
