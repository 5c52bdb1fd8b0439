"""The scene GeoTIFF: one format for every acquisition source (see docs/formats.md).

``uint16`` bands found by name (the band descriptions): any of the ten Sentinel-2 L2A
surface-reflectance bands resampled to 10 m (``REFLECTANCE_BANDS``, x 10000), then ``SCL`` and
``dataMask``; 10 m pixels in a UTM CRS. Version 2 (tag ``DEEPSNOW_SCENE_VERSION``) records its
bands in any subset; version 1 (no tag) is the earlier fixed 7-band layout ``V1_BANDS``, still read
for the bands it has.
"""

from __future__ import annotations

import abc
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.transform import Affine
from rasterio.windows import Window

from deepsnow import DeepsnowError
from deepsnow.cog import cog_output, gdal_env

#: Every Sentinel-2 L2A surface-reflectance band a scene may hold (resampled to 10 m), in ESA's
#: order, which is the order a scene stores them in. B01 and B09 (60 m atmospheric bands) are not
#: scene bands; B10 is not in L2A.
REFLECTANCE_BANDS = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
#: The bands every scene holds after its reflectance bands.
AUX_BANDS = ("SCL", "dataMask")
#: Every band name a scene may hold, in stored order.
SCENE_BANDS = REFLECTANCE_BANDS + AUX_BANDS
#: The scene format written now, and the tag that records it.
SCENE_VERSION = 2
VERSION_TAG = "DEEPSNOW_SCENE_VERSION"
#: Version 1 (no version tag): exactly these 7 bands in this order.
V1_BANDS = ("B04", "B03", "B02", "B08", "B11", "SCL", "dataMask")
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
    """A scene in memory: reflectance (the bands the scene holds, by name) as float32 (0..~1.5), SCL and
    dataMask as uint8."""

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
    return stats_from_counts(scl_counts(scl, valid), int(valid.sum()), int(valid.size))


def scl_counts(scl: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """SCL class counts (``SCL_N_CLASSES`` or more) of one block, invalid pixels counted as SCL 0."""
    valid = np.asarray(valid) > 0
    return np.bincount(np.where(valid, scl, SCL_NODATA).ravel(), minlength=SCL_N_CLASSES)


def stats_from_counts(counts: np.ndarray, n_valid: int, n_total: int) -> dict:
    """:func:`scene_stats` from SCL counts (:func:`scl_counts`, summed over blocks) and pixel counts."""
    counts = np.asarray(counts)
    n_valid_share = max(1, int(n_valid))

    def share(*classes: int) -> float:
        return round(float(sum(counts[c] for c in classes)) / n_valid_share, 5)

    return {
        "valid_fraction": round(float(n_valid) / n_total, 5) if n_total else float("nan"),
        "snow_fraction": share(SCL_SNOW),
        "cloud_fraction": share(*SCL_CLOUDS),
        "shadow_fraction": share(SCL_CLOUD_SHADOW),
        "water_fraction": share(SCL_WATER),
        "scl_counts": {str(c): int(counts[c]) for c in range(SCL_N_CLASSES) if counts[c]},
    }


# --------------------------------------------------------------------------- windows


#: Environment variable: rows per read/write window of the windowed stages (mask, patches,
#: download writing); the default keeps a full Sentinel-2 tile (10,980 px wide) well under 2 GB.
WINDOW_ROWS_ENV = "DEEPSNOW_WINDOW_ROWS"
DEFAULT_WINDOW_ROWS = 1024


def window_rows(rows: int | None = None) -> int:
    """Rows per window: ``rows`` if given, else ``$DEEPSNOW_WINDOW_ROWS``, else ``DEFAULT_WINDOW_ROWS``."""
    if rows is None:
        text = os.environ.get(WINDOW_ROWS_ENV, "").strip()
        if not text:
            return DEFAULT_WINDOW_ROWS
        try:
            rows = int(text)
        except ValueError:
            raise DeepsnowError(f"{WINDOW_ROWS_ENV}={text!r}: expected a whole number of rows (e.g. 1024)") from None
        if rows < 1:
            raise DeepsnowError(f"{WINDOW_ROWS_ENV}={text!r}: expected at least 1 row")
    if int(rows) < 1:
        raise DeepsnowError(f"window rows = {rows}: expected at least 1")
    return int(rows)


def grid_problems(grid, ref) -> list[str]:
    """How raster ``grid`` differs from ``ref``, each a ``(shape, crs, transform)``: [] when on one grid."""
    (shape, crs, transform), (ref_shape, ref_crs, ref_transform) = grid, ref
    problems = []
    if tuple(shape) != tuple(ref_shape):
        problems.append(f"shape {tuple(shape)} vs {tuple(ref_shape)}")
    if crs != ref_crs:
        problems.append(f"CRS {crs} vs {ref_crs}")
    if not transform.almost_equals(ref_transform):
        problems.append(f"transform {tuple(transform)[:6]} vs {tuple(ref_transform)[:6]}")
    return problems


def raster_env():
    """A ``rasterio.Env`` for the windowed stages: GDAL's block cache bounded (``deepsnow.cog.GDAL_CACHE_MB``)."""
    return gdal_env()


def aligned_rows(rows: int, block: int) -> int:
    """``rows`` rounded down to a multiple of ``block`` (at least one block)."""
    block = max(1, int(block))
    return max(block, (int(rows) // block) * block)


class Progress:
    """Log lines with rates for long windowed passes: ``what: rows a-b of h (x Mpx/s)``."""

    def __init__(self, log, what: str, height: int, width: int):
        import time

        self.log, self.what, self.h, self.w = log, what, height, width
        self.t0 = self.last = time.monotonic()
        self.quiet = height * width < 4096 * 4096  # small scenes: one summary line is enough

    def step(self, row1: int) -> None:
        import time

        now = time.monotonic()
        if self.quiet or (now - self.last < 5.0 and row1 < self.h):
            return
        self.last = now
        rate = row1 * self.w / max(now - self.t0, 1e-9) / 1e6
        self.log.info("%s: rows 0-%d of %d (%.0f %%, %.1f Mpx/s)", self.what, row1, self.h, 100 * row1 / self.h, rate)


def scene_layout(bands, where="scene") -> tuple[str, ...]:
    """The stored bands of a scene holding reflectance ``bands``: those in ``REFLECTANCE_BANDS``
    order, then ``SCL`` and ``dataMask``. Unknown or repeated names, or none, are an error naming ``where``."""
    bands = list(bands)
    unknown = [b for b in bands if b not in REFLECTANCE_BANDS]
    if unknown:
        raise DeepsnowError(f"{where}: unknown reflectance band(s) {unknown}; a scene holds any of {list(REFLECTANCE_BANDS)}")
    repeated = sorted({b for b in bands if bands.count(b) > 1})
    if repeated:
        raise DeepsnowError(f"{where}: reflectance band(s) {repeated} given more than once")
    if not bands:
        raise DeepsnowError(f"{where}: a scene needs at least one reflectance band of {list(REFLECTANCE_BANDS)}")
    return tuple(b for b in REFLECTANCE_BANDS if b in bands) + AUX_BANDS


def encode_scene(
    reflectance: dict, scl: np.ndarray, data_mask: np.ndarray, layout: tuple[str, ...], where="scene"
) -> np.ndarray:
    """The ``(len(layout), h, w) uint16`` stack of a scene's bands in ``layout`` (:func:`scene_layout`):
    reflectance x 10000, rounded and clipped; ``reflectance`` holds exactly the layout's reflectance bands."""
    wanted = [b for b in layout if b in REFLECTANCE_BANDS]
    missing, extra = [b for b in wanted if b not in reflectance], [b for b in reflectance if b not in wanted]
    if missing or extra:
        raise DeepsnowError(
            f"write_scene {where}: reflectance bands {sorted(reflectance)} do not match the scene's {wanted}"
            f" (missing {missing}, not in the scene {extra})"
        )
    h, w = scl.shape
    stack = np.empty((len(layout), h, w), dtype=np.uint16)
    for i, b in enumerate(wanted):
        arr = np.asarray(reflectance[b], dtype=np.float64)
        if arr.shape != (h, w):
            raise DeepsnowError(f"write_scene {where}: band {b} has shape {arr.shape}, expected {(h, w)}")
        stack[i] = np.clip(np.rint(arr * SCALE), 0, 65535).astype(np.uint16)
    stack[layout.index("SCL")] = scl.astype(np.uint16)
    stack[layout.index("dataMask")] = data_mask.astype(np.uint16)
    return stack


def scene_profile(height: int, width: int, crs, transform: Affine, count: int) -> dict:
    """The GeoTIFF profile of a scene of ``count`` uint16 bands, band-interleaved, 256 px blocks (a COG,
    see :mod:`deepsnow.cog`)."""
    return {
        "driver": "GTiff",
        "height": height,
        "width": width,
        "count": count,
        "dtype": "uint16",
        "crs": CRS.from_user_input(crs),
        "transform": transform,
        "blockxsize": 256,
        "interleave": "band",
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
    """Write a scene GeoTIFF (a COG) atomically, holding the bands of ``reflectance`` (reflectances, 0..1+)."""
    h, w = scl.shape
    with SceneWriter(path, h, w, crs, transform, tuple(reflectance), tags) as out:
        out.write(0, reflectance, scl, data_mask)


def _describe(dst, layout: tuple[str, ...], tags: dict | None) -> None:
    """Band names, tags with the format version, and the scale turning the stored integers into
    reflectance (GDAL's ``scale``) of an open scene being written with bands ``layout``."""
    dst.update_tags(**{k: str(v) for k, v in dict(tags or {}, **{VERSION_TAG: SCENE_VERSION}).items()})
    for i, b in enumerate(layout, start=1):
        dst.set_band_description(i, b)
    dst.scales = tuple(1.0 / SCALE if b in REFLECTANCE_BANDS else 1.0 for b in layout)
    dst.offsets = (0.0,) * len(layout)


class SceneWriter:
    """Write a scene GeoTIFF in full-width row strips, top to bottom, without holding the scene.

    ``with SceneWriter(path, h, w, crs, transform, bands, tags) as out: out.write(row0, refl, scl, mask)``;
    ``bands`` are the reflectance bands the scene holds (stored as :func:`scene_layout` orders them);
    the strips must follow each other (``row0`` = the rows written so far) and cover the scene.
    Rows are passed to GDAL in whole 256-row block bands (the rest waits for the next strip), so
    no compressed block is written twice; ``dataMask`` becomes the internal mask. The file, a
    Cloud-Optimized GeoTIFF (:func:`deepsnow.cog.cog_output`), appears at ``path`` only when the
    block ends without error and every row was written (temp file, then rename).
    """

    def __init__(self, path, height: int, width: int, crs, transform: Affine, bands, tags: dict | None = None):
        self.path, self.h, self.w = Path(path), int(height), int(width)
        self.layout = scene_layout(bands, where=self.path)
        self.profile = scene_profile(self.h, self.w, crs, transform, len(self.layout))
        self.tags = tags
        self.next_row = 0  # rows received
        self.done_row = 0  # rows handed to GDAL
        self._pending = np.zeros((len(self.layout), 0, self.w), dtype=np.uint16)

    def __enter__(self) -> "SceneWriter":
        import contextlib

        self._stack = contextlib.ExitStack()
        self._dst = self._stack.enter_context(cog_output(self.path, self.profile, resampling="nearest"))
        self._block = self._dst.block_shapes[0][0]
        return self

    def write(self, row0: int, reflectance: dict, scl: np.ndarray, data_mask: np.ndarray) -> None:
        """Rows ``row0 .. row0 + len(scl)`` of every band (reflectances, as :func:`write_scene` takes)."""
        if row0 != self.next_row or scl.ndim != 2 or scl.shape[1] != self.w:
            raise DeepsnowError(
                f"{self.path}: strip at row {row0} of shape {scl.shape} does not follow row {self.next_row} "
                f"of a scene {self.w} px wide"
            )
        stack = encode_scene(reflectance, scl, data_mask, self.layout, where=self.path)
        self.next_row += stack.shape[1]
        if self.next_row > self.h:
            raise DeepsnowError(f"{self.path}: strip ends at row {self.next_row}, past the scene's {self.h} rows")
        pending = np.concatenate([self._pending, stack], axis=1) if self._pending.shape[1] else stack
        n = pending.shape[1] if self.next_row == self.h else (pending.shape[1] // self._block) * self._block
        if n:
            window = Window(0, self.done_row, self.w, n)
            self._dst.write(pending[:, :n], window=window)
            valid = pending[self.layout.index("dataMask"), :n] > 0
            self._dst.write_mask(valid.view(np.uint8) * np.uint8(255), window=window)
            self.done_row += n
        self._pending = pending[:, n:].copy()

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            try:
                if self.next_row != self.h:
                    raise DeepsnowError(f"{self.path}: only {self.next_row} of {self.h} rows were written")
                _describe(self._dst, self.layout, self.tags)
            except BaseException as err:  # nothing appears at the path
                self._stack.__exit__(type(err), err, err.__traceback__)
                raise
        return self._stack.__exit__(exc_type, exc, tb)


class RasterFile(abc.ABC):
    """A GeoTIFF opened and its header checked, read by row bands; a defect, at opening or at a read,
    is a :class:`DeepsnowError` naming the file.

    ``shape``, ``crs`` and ``transform`` come from the header. A subclass says what the file is in its
    messages (``kind``: "file not found"; ``described``: "not a readable ..."), checks the header
    (:meth:`_check`) and decodes the rows :meth:`_rows` reads.
    """

    kind = "raster"
    described = "GeoTIFF"

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.exists():
            raise DeepsnowError(f"{self.path}: {self.kind} file not found")
        try:
            self._src = rasterio.open(self.path)
        except Exception as exc:
            raise DeepsnowError(
                f"{self.path}: not a readable {self.described} (truncated or corrupt?): {exc}"
            ) from exc
        try:
            self._check()
        except BaseException:
            self._src.close()
            raise
        src = self._src
        self.shape, self.crs, self.transform = (src.height, src.width), src.crs, src.transform

    @abc.abstractmethod
    def _check(self) -> None:
        """Raise :class:`DeepsnowError` naming the file when ``self._src`` is not what the class reads."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._src.close()

    def _rows(self, row0: int, row1: int | None, indexes=None) -> np.ndarray:
        """Bands ``indexes`` (rasterio's: an int, a list, or None for all) of rows ``row0 .. row1``, as stored."""
        row1 = self.shape[0] if row1 is None else row1
        try:
            return self._src.read(indexes, window=Window(0, row0, self.shape[1], row1 - row0))
        except Exception as exc:  # RasterioError, CPLE_* from GDAL on truncated files
            raise DeepsnowError(
                f"{self.path}: not a readable {self.described} (truncated or corrupt?) at rows {row0}-{row1}: {exc}"
            ) from exc


def stored_bands(src, path) -> dict[str, int]:
    """Band name -> rasterio band index of an open scene ``src``, its header checked: uint16 bands named
    by their descriptions with names of ``SCENE_BANDS``, each once, ``SCL`` and ``dataMask`` among
    them; a file without the version tag (version 1) holds exactly ``V1_BANDS``. A
    :class:`DeepsnowError` naming ``path`` otherwise: a scene is never read by position."""
    names = [d or "" for d in src.descriptions]
    version = src.tags().get(VERSION_TAG)
    if version is None or version == "1":
        if tuple(names) != V1_BANDS:
            raise DeepsnowError(
                f"{path}: a version-1 scene ({VERSION_TAG} {version or 'absent'}) has {len(V1_BANDS)} bands "
                f"{list(V1_BANDS)}, found {src.count} bands {names}"
            )
    elif version != str(SCENE_VERSION):
        raise DeepsnowError(f"{path}: scene format version {version!r} unknown (this deepsnow reads 1 and {SCENE_VERSION})")
    unknown = [n for n in names if n not in SCENE_BANDS]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if unknown or repeated or not {"SCL", "dataMask"} <= set(names) or not set(names) & set(REFLECTANCE_BANDS):
        raise DeepsnowError(
            f"{path}: expected scene bands named by their descriptions, each once, reflectance bands of "
            f"{list(REFLECTANCE_BANDS)} then SCL and dataMask; found {src.count} bands {names}"
        )
    if set(src.dtypes) != {"uint16"}:
        raise DeepsnowError(f"{path}: expected uint16 bands, found {sorted(set(src.dtypes))}")
    return {n: i for i, n in enumerate(names, start=1)}


def band_indexes(index: dict[str, int], names, path) -> list[int]:
    """The rasterio indexes of bands ``names`` in a scene's :func:`stored_bands`; a :class:`DeepsnowError`
    naming the file ``path`` and every band of ``names`` it does not hold."""
    missing = [n for n in names if n not in index]
    if missing:
        raise DeepsnowError(f"{path}: scene has no band {', '.join(missing)} (it holds {list(index)})")
    return [index[n] for n in names]


class SceneFile(RasterFile):
    """A scene GeoTIFF opened and checked (as :func:`read_scene` does), read by row bands and band names.

    ``with SceneFile(path) as sc: sc.read_bands(r0, r1, ("B03", "SCL"))``; ``bands`` (the names it
    holds, stored order), ``shape``, ``crs``, ``transform``, ``tags`` and ``block_rows`` (rows of one
    GeoTIFF block) come from the header. Raises :class:`DeepsnowError` naming the file on any defect,
    at opening or at a read, and naming the band when a band asked for is not in the file.
    """

    kind, described = "scene", "GeoTIFF scene"

    def __init__(self, path: str | os.PathLike):
        super().__init__(path)
        self.tags = self._src.tags()
        self.block_rows = self._src.block_shapes[0][0]

    def _check(self) -> None:
        src, path = self._src, self.path
        if src.driver != "GTiff":
            raise DeepsnowError(f"{path}: expected a GeoTIFF scene, got a {src.driver} file")
        if src.crs is None:
            raise DeepsnowError(f"{path}: scene has no CRS (expected a UTM CRS, 10 m pixels)")
        self._index = stored_bands(src, path)
        self.bands = tuple(self._index)
        self.reflectance_bands = tuple(b for b in self.bands if b in REFLECTANCE_BANDS)

    def require(self, names) -> None:
        """Raise :class:`DeepsnowError` naming the file and the bands of ``names`` it does not hold."""
        band_indexes(self._index, names, self.path)

    def read_bands(self, row0: int = 0, row1: int | None = None, names=None) -> dict[str, np.ndarray]:
        """Bands ``names`` (default: all it holds) of rows ``row0 .. row1``: reflectance float32
        (0..~1.5), SCL and dataMask uint8."""
        names = self.bands if names is None else tuple(names)
        data = self._rows(row0, row1, band_indexes(self._index, names, self.path))
        return {n: _decode(n, data[i]) for i, n in enumerate(names)}

    def read_dn(self, row0: int = 0, row1: int | None = None, names=None) -> np.ndarray:
        """Bands ``names`` of rows ``row0 .. row1`` as stored: ``(len(names), rows, W) uint16`` (reflectance x 10000)."""
        names = self.bands if names is None else tuple(names)
        return self._rows(row0, row1, band_indexes(self._index, names, self.path))

    def read(self, row0: int = 0, row1: int | None = None) -> Scene:
        """All bands of rows ``row0 .. row1`` as a :class:`Scene` (its transform is that of ``row0``)."""
        bands = self.read_bands(row0, row1)
        return Scene(
            reflectance={b: bands[b] for b in self.reflectance_bands},
            scl=bands["SCL"],
            data_mask=bands["dataMask"],
            crs=self.crs,
            transform=self.transform @ Affine.translation(0, row0) if row0 else self.transform,
            tags=dict(self.tags),
        )


def _decode(name: str, band: np.ndarray) -> np.ndarray:
    if name in REFLECTANCE_BANDS:
        return band.astype(np.float32) / SCALE
    return band.astype(np.uint8)


def read_scene(path: str | os.PathLike) -> Scene:
    """Read and check a scene GeoTIFF; raise :class:`DeepsnowError` naming the file on any defect."""
    with SceneFile(path) as sc:
        return sc.read()
