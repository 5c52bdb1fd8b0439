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

Memory is bounded whatever the scene size, and small: the scene is streamed. Each row of tiles
reads only the rows it covers (:class:`SceneRows`: a window of the file, rendered to RGB or encoded
to unit codes as it is read; the statistics pass reads a row of cores at a time alike), float
buffers hold one row of tiles, and finished rows go to the output GeoTIFF a row window at a time
(:class:`RowWriter`, their mask with them). :func:`translate_array` runs the same code on an
in-memory image (:class:`~deepsnow.gan.scene_norm.ArrayRows`).

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

import contextlib
import logging
import os
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import torch

from deepsnow import DeepsnowError
from deepsnow.cog import gdal_env
from deepsnow.gan import checkpoint as ckpt
from deepsnow.gan import runtime
from deepsnow.gan.data import RGB, BandSet, to_codes
from deepsnow.gan.scene_norm import ArrayRows, as_rows, ceil4, read_slab, scene_statistics, tile_tensor, with_scene_norm
from deepsnow.io import atomic_output

log = logging.getLogger("deepsnow.gan")

DIRECTIONS = {"AtoB": "G_A", "BtoA": "G_B"}
#: how instance norm is applied to a tiled scene: statistics of the whole scene, or of each tile
NORMS = ("scene", "tile")


def read_input(path: str | os.PathLike, rgb_max: float = 1.0, rgb_gamma: float = 2.2, bands: BandSet = RGB,
               rows: int = 1024):
    """``(rgb (H,W,3) uint8, valid (H,W) bool, crs, transform, kind)`` of a scene or an RGB GeoTIFF; for
    reflectance ``bands`` the first is the scene's bands as ``(H,W,C) uint16`` unit codes. The whole scene in
    memory, read through :func:`open_input` ``rows`` rows at a time (no float copy of it is ever whole);
    ``deepsnow translate`` streams the scene instead (:func:`translate_scene`)."""
    with open_input(path, rgb_max, rgb_gamma, bands) as scene:
        (h, w), nc = scene.shape, scene.channels
        data, valid = np.empty((h, w, nc), scene.dtype), np.empty((h, w), bool)
        for r in range(0, h, rows):
            data[r : r + rows], valid[r : r + rows] = scene.read(r, r + rows), scene.valid(r, r + rows)
        return data, valid, scene.crs, scene.transform, scene.kind


@contextlib.contextmanager
def open_input(path: str | os.PathLike, rgb_max: float = 1.0, rgb_gamma: float = 2.2, bands: BandSet = RGB):
    """A :class:`SceneRows` of a scene or an RGB GeoTIFF, open for the block (its header and bands checked
    first: a :class:`DeepsnowError` naming the file before anything is read or written)."""
    import rasterio

    path = Path(path)
    if not path.exists():
        raise DeepsnowError(f"{path}: input file not found")
    with gdal_env():
        try:
            src = rasterio.open(path)
        except Exception as exc:
            raise DeepsnowError(f"{path}: not a readable GeoTIFF (truncated or corrupt?): {exc}") from exc
        with src:
            try:
                scene = _scene_rows(src, path, rgb_max, rgb_gamma, bands)
            except DeepsnowError:
                raise
            except Exception as exc:
                raise DeepsnowError(f"{path}: not a readable GeoTIFF (truncated or corrupt?): {exc}") from exc
            yield scene


def _scene_rows(src, path: Path, rgb_max: float, rgb_gamma: float, bands: BandSet) -> SceneRows:
    """How rows of ``src`` become the network's input: an RGB GeoTIFF as it is, a scene rendered to RGB
    (:func:`_render`) or encoded to unit codes (reflectance ``bands``); refused with the reason otherwise."""
    from deepsnow.data.scene import SCENE_BANDS, band_indexes, stored_bands

    count, dtype, names = src.count, src.dtypes[0], list(src.descriptions)
    if count == 3 and dtype == "uint8" and bands.encoding == "rgb8":
        return SceneRows(src, path, "rgb", [1, 2, 3], None, lambda d: d.transpose(1, 2, 0), 3, np.uint8)
    if set(names) & set(SCENE_BANDS):  # meant as a scene: its header checked, its bands found by name
        index = stored_bands(src, path)
        if rgb_max <= 0 or rgb_gamma <= 0:
            raise DeepsnowError(f"--rgb-max and --rgb-gamma must be positive, got {rgb_max} and {rgb_gamma}")
        if src.crs is None:
            raise DeepsnowError(f"{path}: scene has no CRS (expected a UTM CRS, 10 m pixels)")
        if bands.encoding != "rgb8":
            from deepsnow.data.bands import encode_units

            *idx, mask = band_indexes(index, (*bands.bands, "dataMask"), path)  # names a band it lacks
            codes = lambda d: encode_units(np.moveaxis(d, 0, -1), bands.unit_reflectance)  # noqa: E731
            return SceneRows(src, path, "scene", idx, mask, codes, bands.n, np.uint16)
        *idx, mask = band_indexes(index, RENDER_BANDS, path)
        render = lambda d: _render(d, rgb_max, rgb_gamma)  # noqa: E731
        return SceneRows(src, path, "scene", idx, mask, render, 3, np.uint8)
    if bands.encoding != "rgb8":
        raise DeepsnowError(
            f"{path}: the checkpoint takes {bands.describe()}: expected a deepsnow scene holding those bands "
            f"(uint16 bands named by their descriptions); found {count} {dtype} bands {names}"
        )
    raise DeepsnowError(
        f"{path}: expected a deepsnow scene (uint16 bands named B04, B03, B02, ..., SCL, dataMask) or a 3-band "
        f"uint8 RGB GeoTIFF; found {count} {dtype} bands {names}"
    )


class SceneRows:
    """Rows of an open GeoTIFF ``src``, read window by window and converted as they are read
    (``convert``: ``(bands, n, W)`` as read -> ``(n, W, C)``): the row reader of
    :class:`~deepsnow.gan.scene_norm.ArrayRows`'s interface that ``deepsnow translate`` streams a scene
    through. ``idx``: the bands read; ``mask``: the dataMask band's index (None: the dataset's mask)."""

    def __init__(self, src, path, kind: str, idx: list[int], mask: int | None, convert, channels: int, dtype):
        self.src, self.path, self.kind, self.idx, self.mask, self.convert = src, path, kind, idx, mask, convert
        self.shape, self.channels, self.dtype = (src.height, src.width), channels, np.dtype(dtype)
        self.crs, self.transform = src.crs, src.transform

    def read(self, r0: int, r1: int, chunk: int = 64) -> np.ndarray:
        """Rows ``[r0, r1)`` (clipped to the scene) as ``(n, W, C)`` of ``dtype``, converted ``chunk`` rows at a
        time (the conversion's float copies are of ``chunk`` rows, not of the window)."""
        data = self._read(lambda w: self.src.read(self.idx, window=w), r0, r1)
        out = np.empty((data.shape[1], data.shape[2], self.channels), self.dtype)
        for i in range(0, len(out), chunk):
            out[i : i + chunk] = self.convert(data[:, i : i + chunk])
        return out

    def valid(self, r0: int, r1: int) -> np.ndarray:
        """Rows ``[r0, r1)``'s valid mask: dataMask > 0 of a scene, the dataset mask of an RGB GeoTIFF."""
        if self.mask is None:
            return self._read(lambda w: self.src.dataset_mask(window=w), r0, r1) > 0
        return self._read(lambda w: self.src.read(self.mask, window=w), r0, r1) > 0

    def all_valid(self, rows: int = 1024) -> bool:
        """Whether every pixel is valid (the mask read ``rows`` rows at a time)."""
        return all(self.valid(r, r + rows).all() for r in range(0, self.shape[0], rows))

    def _read(self, read, r0: int, r1: int) -> np.ndarray:
        from rasterio.windows import Window

        h, w = self.shape
        try:
            return read(Window(0, r0, w, min(r1, h) - r0))
        except Exception as exc:
            raise DeepsnowError(f"{self.path}: not a readable GeoTIFF (truncated or corrupt?): {exc}") from exc


#: The scene bands the rendering reads, in the order :func:`_render` takes them, then the mask.
RENDER_BANDS = ("B04", "B03", "B02", "dataMask")


def _render(data: np.ndarray, rgb_max: float, rgb_gamma: float) -> np.ndarray:
    """RGB ``(n, W, 3) uint8`` of a window's ``(3, n, W)`` B04, B03, B02 as the patches stage renders it
    (``render_rgb`` of ``read_scene``'s reflectance, bit for bit)."""
    from deepsnow.data.render import render_rgb  # the patches stage's rendering: scenes look like the training data
    from deepsnow.data.scene import SCALE

    refl = {b: data[i].astype(np.float32) / SCALE for i, b in enumerate(RENDER_BANDS[:3])}
    return render_rgb(refl, rgb_max, rgb_gamma)


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
    rgb,
    tile: int = 256,
    overlap: int = 64,
    device: torch.device | str = "cpu",
    batch_size: int = 4,
    norm: str = "tile",
    stats_px: int = 2**20,
    progress: bool = False,
) -> tuple[np.ndarray, int]:
    """:func:`translate_rows` of an ``(H,W,C)`` image (or a row reader) into memory: ``(out, n_tiles)``, ``out`` of
    the input's type (uint8 RGB, or uint16 unit codes) and channels."""
    reader = as_rows(rgb)
    out = np.empty((*reader.shape, reader.channels), dtype=reader.dtype)

    def sink(r0: int, rows: np.ndarray) -> None:
        out[r0 : r0 + len(rows)] = rows

    n_tiles = translate_rows(net, reader, sink, tile, overlap, device, batch_size, norm, stats_px, progress)
    return out, n_tiles


def translate_rows(net, reader, sink, tile=256, overlap=64, device="cpu", batch_size=4, norm="tile",
                   stats_px=2**20, progress=False) -> int:
    """Translate the image of row reader ``reader`` (:class:`~deepsnow.gan.scene_norm.ArrayRows`,
    :class:`SceneRows`) by overlapping tiles blended with :func:`taper`, handing finished rows, top to
    bottom, to ``sink(r0, rows (n, W, C))``; the number of tiles.

    ``norm="scene"``: instance norms use the whole scene's statistics (:func:`scene_statistics`);
    then the overlap is rounded up to a multiple of 4 so every tile sits on the generator's
    downsampling grid. A side shorter than ``tile`` is one tile; the image is padded by reflection
    to a multiple of 4. Memory: the rows of one row of tiles, in and out, and float buffers of them.
    """
    check_tiling(tile, overlap, norm)
    h, w = reader.shape
    if h < 1 or w < 1:
        raise DeepsnowError(f"input image is empty ({h}x{w})")
    ph, pw = ceil4(h), ceil4(w)
    th, tw = min(tile, ph), min(tile, pw)
    if norm == "scene":
        overlap = min(ceil4(overlap), tile - 4)
        stats, measured = scene_statistics(net, reader, core=tile, max_px=stats_px, device=device)
        log.info("scene statistics of %d norm layers from %.1f%% of the scene (%s)", len(stats), 100 * measured,
                 "exact" if measured == 1.0 else "an evenly spread sample of tiles")
        net = with_scene_norm(net, stats)
    ys, xs = positions(ph, th, min(overlap, th - 4)), positions(pw, tw, min(overlap, tw - 4))
    win = torch.from_numpy(np.outer(taper(th, overlap), taper(tw, overlap)).astype(np.float32))
    _blend_rows(net, reader, sink, (th, tw), ys, xs, win, device, batch_size, progress)
    return len(ys) * len(xs)


def _blend_rows(net, reader, sink, tile_hw, ys, xs, win, device, batch_size, progress) -> None:
    """Translate the tiles row of tiles by row (each row's input rows read at once), accumulating weighted
    outputs in a float buffer that covers only the rows still being written; finished rows go to ``sink``."""
    import time

    (h, w), nc = reader.shape, reader.channels
    th, tw = tile_hw
    pw = max(xs) + tw
    dtype = torch.from_numpy(np.empty(0, reader.dtype)).dtype
    top, acc, wsum = 0, torch.zeros((nc, 0, pw)), torch.zeros((0, pw))
    started, done_tiles = time.monotonic(), 0
    net.eval()
    with torch.inference_mode():
        for i, y in enumerate(ys):
            grow = y + th - (top + acc.shape[1])
            if grow > 0:
                acc = torch.cat([acc, torch.zeros((nc, grow, pw))], dim=1)
                wsum = torch.cat([wsum, torch.zeros((grow, pw))], dim=0)
            slab, row0 = read_slab(reader, y, th)
            for s in range(0, len(xs), batch_size):
                chunk = xs[s : s + batch_size]
                batch = torch.stack([tile_tensor(slab, y, x, th, tw, (h, w), row0) for x in chunk]).to(device)
                for x, o in zip(chunk, net(batch).float().cpu()):
                    acc[:, y - top : y - top + th, x : x + tw] += o * win
                    wsum[y - top : y - top + th, x : x + tw] += win
            del slab
            done_tiles += len(xs)
            end = ys[i + 1] if i + 1 < len(ys) else top + acc.shape[1]
            n = min(end, h) - top
            if n > 0:
                sink(top, to_codes(acc[:, :n, :w] / wsum[:n, :w], dtype).numpy().transpose(1, 2, 0))
            acc, wsum, top = acc[:, end - top :].clone(), wsum[end - top :].clone(), end
            if progress:
                rate = done_tiles * th * tw / 1e6 / max(time.monotonic() - started, 1e-9)
                log.info("row %d/%d of tiles done (%d tiles, %.2f Mpx/s)", i + 1, len(ys), done_tiles, rate)


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
    masked. ``rgb`` is ``(H, W, 3)``, written by row windows (:func:`output_rows`)."""
    with output_rows(path, RGB, ArrayRows(rgb, valid), crs, transform, tags) as sink:
        sink(0, rgb)


def write_bands(path, codes: np.ndarray, bands: BandSet, crs, transform, valid: np.ndarray | None = None, tags=None,
                rows: int = 512) -> None:
    """``(H, W, C) uint16`` unit codes of ``bands`` as a C-band uint16 COG of reflectance x 10000 (band
    descriptions = band names), atomically; ``valid`` False -> masked. Decoded and written ``rows`` rows
    at a time, every band at once (:func:`output_rows`)."""
    with output_rows(path, bands, ArrayRows(codes, valid), crs, transform, tags, rows=rows) as sink:
        sink(0, codes)


class Layout(NamedTuple):
    """What an output COG holds: its bands' names (descriptions) and dtype, and ``to_bands``, how finished
    ``(n, W, C)`` rows become the ``(count, n, W)`` written."""

    names: tuple
    dtype: str
    to_bands: Callable[[np.ndarray], np.ndarray]

    @classmethod
    def of(cls, bands: BandSet) -> Layout:
        """The network's own output: RGB as it is (bands red, green, blue), unit codes decoded to reflectance
        x 10000 (:func:`deepsnow.data.bands.decode_units`) in uint16 bands named by ``bands``."""
        from deepsnow.data.bands import decode_units

        if bands.encoding == "rgb8":
            return cls(("red", "green", "blue"), "uint8", lambda rows: np.ascontiguousarray(rows.transpose(2, 0, 1)))
        scales = bands.unit_reflectance
        return cls(tuple(bands.bands), "uint16",
                   lambda rows: np.stack([decode_units(rows[..., i], s) for i, s in enumerate(scales)]))


def _output_profile(layout: Layout, h: int, w: int, crs, transform, block: int) -> dict:
    """The COG's profile: one band per name of ``layout``, ``block`` px blocks (RGB photometric for 3 uint8)."""
    profile = {
        "driver": "GTiff", "height": h, "width": w, "count": len(layout.names), "dtype": layout.dtype, "crs": crs,
        "transform": transform, "blockxsize": block,
    }
    if len(layout.names) == 3 and layout.dtype == "uint8":
        profile["photometric"] = "RGB"
    else:
        # the intermediate GeoTIFF as BigTIFF where it could pass 4 GB (GDAL: over 2 GB uncompressed,
        # e.g. ten bands of a full tile, 2.4 GB); smaller ones, and the COG made from it, as before
        profile["BIGTIFF"] = "IF_SAFER"
    return profile


@contextlib.contextmanager
def output_rows(path, bands: BandSet | Layout, reader, crs, transform, tags=None, zero: bool = False,
                rows: int = 512, block: int = 256, scale: float | None = None, masked: bool | None = None):
    """Yield a :class:`RowWriter` into the COG at ``path`` (:func:`deepsnow.cog.cog_output`, atomic: nothing
    appears unless every row was written and the block succeeded) of ``bands`` (the network's output,
    :meth:`Layout.of`, or any :class:`Layout`), the size of ``reader``'s image, ``block`` px blocks, every
    band's ``scale`` when given. Masked by the reader's valid mask when ``masked`` (None: when any pixel is
    invalid); ``zero``: invalid pixels to 0."""
    from deepsnow.cog import cog_output

    layout = bands if isinstance(bands, Layout) else Layout.of(bands)
    h, w = reader.shape
    masked = not reader.all_valid() if masked is None else masked
    with cog_output(path, _output_profile(layout, h, w, crs, transform, block), resampling="average") as dst:
        for i, name in enumerate(layout.names, start=1):
            dst.set_band_description(i, name)
        if scale is not None:
            dst.scales = (scale,) * len(layout.names)
        dst.update_tags(**{k: str(v) for k, v in (tags or {}).items()})
        writer = RowWriter(dst, reader.valid, masked, layout.to_bands, rows, zero)
        yield writer
        writer.close()


class RowWriter:
    """Finished rows, top to bottom, into an open dataset ``dst`` in row windows of ``rows`` rows (best a
    multiple of the block size: each compressed block of the pixel-interleaved intermediate is written
    once, as GDAL rewrites a block written in parts; a band at a time rewrote each block once per band,
    which on a ten-band full tile outgrew the 4 GB TIFF limit): rows are kept until a window is full.
    ``valid(r0, r1)``: the rows' mask, written as the dataset's mask when ``masked``; ``zero``: invalid
    pixels set to 0 in what is written; ``to_bands``: ``(n, W, C)`` rows -> ``(C, n, W)`` as written."""

    def __init__(self, dst, valid, masked: bool, to_bands, rows: int = 512, zero: bool = False):
        if rows < 1:
            raise DeepsnowError(f"rows must be positive, got {rows}")
        self.dst, self.valid, self.masked, self.to_bands, self.zero = dst, valid, masked, to_bands, zero
        self.rows, self.buf, self.top, self.n, self.valid_px = min(rows, dst.height), None, 0, 0, 0

    def __call__(self, r0: int, rows: np.ndarray) -> None:
        """Take rows ``[r0, r0 + len(rows))``, the next after those already taken."""
        if r0 != self.top + self.n:
            raise DeepsnowError(f"rows from {r0} given; the next row to write is {self.top + self.n}")
        if self.buf is None:
            self.buf = np.empty((self.rows, *rows.shape[1:]), dtype=rows.dtype)
        i = 0
        while i < len(rows):
            k = min(len(rows) - i, self.rows - self.n)
            self.buf[self.n : self.n + k] = rows[i : i + k]
            self.n, i = self.n + k, i + k
            if self.n == self.rows:
                self.flush()

    def flush(self) -> None:
        """Write the rows kept (their mask too, invalid pixels zeroed when asked)."""
        from rasterio.windows import Window

        if not self.n:
            return
        r0, n = self.top, self.n
        data, valid = self.to_bands(self.buf[:n]), self.valid(r0, r0 + n)
        if self.zero:
            data[:, ~valid] = 0
        window = Window(0, r0, self.dst.width, n)
        self.dst.write(data, window=window)
        if self.masked:
            self.dst.write_mask(valid.astype(np.uint8) * np.uint8(255), window=window)
        self.valid_px += int(np.count_nonzero(valid))
        self.top, self.n = r0 + n, 0

    def close(self) -> None:
        """Write the last rows; refuse an output with rows never given (nothing is then kept)."""
        self.flush()
        if self.top != self.dst.height:
            raise DeepsnowError(f"{self.top} of {self.dst.height} output rows were written")


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
    tags = {
        "DEEPSNOW_CHECKPOINT": Path(checkpoint).name,
        "DEEPSNOW_DIRECTION": direction,
        "DEEPSNOW_EPOCH": info.get("epoch"),
        "DEEPSNOW_TILE": tile,
        "DEEPSNOW_OVERLAP": overlap,
        "DEEPSNOW_NORM": norm,
    }
    if bands.encoding != "rgb8":
        tags["DEEPSNOW_SCALE"] = 1e-4
    with open_input(input_path, rgb_max, rgb_gamma, bands) as scene:  # refused before anything is written
        kind, (h, w) = scene.kind, scene.shape
        with output_rows(output_path, bands, scene, scene.crs, scene.transform, tags, zero=True) as sink:
            n_tiles = translate_rows(net, scene, sink, tile, overlap, dev, batch_size, norm, stats_px, progress=True)
    log.info("translated %s (%dx%d, %s) %s with %d tiles -> %s", input_path, w, h, kind, direction, n_tiles,
             output_path)
    return {
        "input_kind": kind,
        "shape": [int(h), int(w)],
        "tiles": n_tiles,
        "norm": norm,
        "direction": direction,
        "checkpoint_kind": info["kind"],
        "generator": info.get("generator"),
        "epoch": info.get("epoch"),
        "arch": info["arch"],
        "bands": list(bands.bands),
        "encoding": bands.encoding,
        "valid_fraction": sink.valid_px / (h * w),
    }
