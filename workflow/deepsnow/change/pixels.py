"""Reading an area's images for the change testbed, window by window.

An area has up to four images on one grid: ``before`` (the real snow-free scene),
``real`` (the real snow-season scene), ``synthetic`` (the synthesize stage's product of
the before scene) and ``truth`` (the simulator's true snow scene). Scenes are the
project's scene GeoTIFFs (bands found by name); the synthetic product is a 3-band uint8 RGB COG (and
optionally a uint16 reflectance x 10000 COG whose band descriptions name its bands), valid where its
internal mask is.

Band sets: ``rgb``, the scenes rendered as the patches stage renders them
(:func:`deepsnow.data.render.render_rgb`, ``patches.rgb_max`` / ``rgb_gamma``) beside the
synthetic RGB product; ``reflectance``, the bands of the synthetic reflectance product
(:func:`product_bands`: a reflectance run's checkpoint bands, e.g. all ten; an RGB run's
``synthesize.reflectance`` approximation, B04 B03 B02), read by name from every image.

Everything is read in row windows (:func:`deepsnow.data.scene.window_rows`): a validity
pass builds the (H, W) valid mask, then a gather pass takes the values of chosen flat
pixel indices only, so memory is O(H x W) bits plus O(pixels kept x bands). A window of a band
set with more than three bands has proportionally fewer rows (:func:`band_rows`), and reflectance
is decoded in place (:func:`reflectance`), so a ten-band window holds no more than an RGB one.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepsnow import DeepsnowError
from deepsnow.data.scene import grid_problems

log = logging.getLogger("deepsnow.change")

RGB = ("B04", "B03", "B02")
#: the bands of each band set of an RGB run (rgb: B04 B03 B02 rendered; reflectance: the approximation's)
DEFAULT_BANDS = {"rgb": RGB, "reflectance": RGB}
#: mask classes (deepsnow.data.mask) a pixel may have in the masks to be used: clear, water, snow
USABLE_CLASSES = (1, 2, 3)


@dataclass
class Image:
    """One image of an area: its role, file, kind (``scene`` or ``product``), and scene mask file."""

    role: str
    path: Path
    kind: str
    mask: Path | None = None
    reflectance: Path | None = None


class Opened:
    """An :class:`Image` opened for window reads of its validity and its band sets."""

    def __init__(self, stack: contextlib.ExitStack, image: Image, rgb: tuple[float, float], refl_bands=RGB):
        import rasterio

        from deepsnow.data.scene import SceneFile

        self.image, self.rgb, self.refl_bands = image, rgb, tuple(refl_bands)
        if image.kind == "scene":
            self.scene = stack.enter_context(SceneFile(image.path))
            self.scene.require(tuple(dict.fromkeys(RGB + self.refl_bands + ("dataMask",))))
            self.grid = (self.scene.shape, self.scene.crs, self.scene.transform)
        else:
            self.src = stack.enter_context(_open(rasterio, image.path))
            if self.src.count != 3 or self.src.dtypes[0] != "uint8":
                raise DeepsnowError(f"{image.path}: expected a 3-band uint8 RGB product, found "
                                    f"{self.src.count} {self.src.dtypes[0]} bands")
            self.grid = ((self.src.height, self.src.width), self.src.crs, self.src.transform)
        self.mask = stack.enter_context(_open(rasterio, image.mask)) if image.mask else None
        self.refl = stack.enter_context(_open(rasterio, image.reflectance)) if image.reflectance else None
        self.refl_index = band_index(self.refl, image.reflectance, self.refl_bands) if self.refl else None

    def valid(self, r0: int, r1: int) -> np.ndarray:
        """Valid pixels of rows r0..r1: dataMask (scenes) or the internal mask, and usable mask classes."""
        win = _window(self.grid[0][1], r0, r1)
        if self.image.kind == "scene":
            ok = self.scene.read_bands(r0, r1, ("dataMask",))["dataMask"] == 1
        else:
            ok = _read(self.src, self.image.path, win, masks=True)[0] > 0
        if self.mask is not None:
            ok &= np.isin(_read(self.mask, self.image.mask, win, bands=[1])[0], USABLE_CLASSES)
        return ok

    def bands(self, r0: int, r1: int, which: str) -> np.ndarray:
        """``(d, rows, W)`` values of band set ``which`` (``rgb`` uint8, ``reflectance`` float32 in ``refl_bands``)."""
        from deepsnow.data.render import render_rgb

        win = _window(self.grid[0][1], r0, r1)
        if self.image.kind == "scene":
            if which == "reflectance":
                return reflectance(self.scene.read_dn(r0, r1, self.refl_bands))
            return np.moveaxis(render_rgb(self.scene.read_bands(r0, r1, RGB), *self.rgb), -1, 0)
        if which == "reflectance":
            return reflectance(_read(self.refl, self.image.reflectance, win, bands=self.refl_index))
        return _read(self.src, self.image.path, win)

    def n_bands(self, which: str) -> int:
        """How many bands band set ``which`` has (``rgb``: 3)."""
        return len(self.refl_bands) if which == "reflectance" else len(RGB)


def reflectance(dn: np.ndarray) -> np.ndarray:
    """uint16 reflectance x 10000 as float32 reflectance, in one new array (the values of
    :meth:`deepsnow.data.scene.SceneFile.read_bands`: ``dn.astype(float32) / 10000``)."""
    from deepsnow.data.scene import SCALE

    out = dn.astype(np.float32)
    out /= SCALE
    return out


def band_rows(rows: int, n_bands: int) -> int:
    """Rows per window for a band set of ``n_bands``: ``rows`` for up to three bands, proportionally fewer
    for more (a window of ten bands holds about as many values as a window of ``rows`` RGB rows)."""
    return max(1, int(rows) * len(RGB) // max(int(n_bands), len(RGB)))


def _open(rasterio, path: Path):
    if not Path(path).exists():
        raise DeepsnowError(f"{path}: file not found")
    try:
        return rasterio.open(path)
    except Exception as exc:
        raise DeepsnowError(f"{path}: not a readable GeoTIFF (truncated or corrupt?): {exc}") from exc


def product_bands(path: Path) -> tuple[str, ...]:
    """The bands of a synthetic reflectance product: its band descriptions, each a Sentinel-2 band
    (:data:`deepsnow.data.scene.REFLECTANCE_BANDS`) once, stored as uint16 reflectance x 10000."""
    import rasterio

    from deepsnow.data.scene import REFLECTANCE_BANDS as BAND_NAMES

    with _open(rasterio, path) as src:
        names, dtypes = [d or "" for d in src.descriptions], set(src.dtypes)
    if dtypes != {"uint16"} or not names or any(n not in BAND_NAMES for n in names) or len(set(names)) < len(names):
        raise DeepsnowError(
            f"{path}: expected a synthetic reflectance product: uint16 reflectance x 10000 bands described by "
            f"their names, each one of {', '.join(BAND_NAMES)} once; found {', '.join(sorted(dtypes))} bands {names}"
        )
    return tuple(names)


def band_index(src, path: Path, names) -> list[int]:
    """The 1-based indexes of bands ``names`` in an open product, found by their descriptions."""
    index = {d: i for i, d in enumerate(src.descriptions, start=1) if d}
    missing = [b for b in names if b not in index]
    if missing:
        raise DeepsnowError(f"{path}: no band {', '.join(missing)} (its bands: {list(src.descriptions)}); the "
                            f"reflectance band set is {' '.join(names)}")
    return [index[b] for b in names]


def _window(width: int, r0: int, r1: int):
    from rasterio.windows import Window

    return Window(0, r0, width, r1 - r0)


def _read(src, path, win, bands=None, masks=False) -> np.ndarray:
    try:
        return src.read_masks(window=win) if masks else src.read(bands, window=win)
    except Exception as exc:
        raise DeepsnowError(f"{path}: unreadable at rows {win.row_off}-{win.row_off + win.height}: {exc}") from exc


def check_grids(area: str, opened: dict[str, Opened]) -> tuple[int, int]:
    """Every image (and its mask / reflectance file) on the before image's grid; returns (H, W)."""
    ref = opened["before"]
    others = [(o.image.path, o.grid) for o in opened.values()]
    for o in opened.values():
        for extra in (o.mask, o.refl):
            if extra is not None:
                others.append((Path(extra.name), ((extra.height, extra.width), extra.crs, extra.transform)))
    for path, grid in others:
        problems = grid_problems(grid, ref.grid)
        if problems:
            raise DeepsnowError(f"area {area}: {path} is not on the grid of {ref.image.path}: " + "; ".join(problems))
    return ref.grid[0]


def valid_mask(opened: dict[str, Opened], shape: tuple[int, int], rows: int) -> np.ndarray:
    """(H, W) pixels valid in every image of the area."""
    h, w = shape
    valid = np.ones((h, w), dtype=bool)
    for r0 in range(0, h, rows):
        r1 = min(h, r0 + rows)
        for o in opened.values():
            valid[r0:r1] &= o.valid(r0, r1)
    return valid


def gather(o: Opened, which: str, flat: np.ndarray, shape: tuple[int, int], rows: int) -> np.ndarray:
    """``(len(flat), d)`` values of band set ``which`` at flat pixel indices ``flat`` (any order), read in
    windows of :func:`band_rows` rows."""
    h, w = shape
    rows = band_rows(rows, o.n_bands(which))
    uniq, back = np.unique(flat, return_inverse=True)
    out = None
    for r0 in range(0, h, rows):
        r1 = min(h, r0 + rows)
        lo, hi = np.searchsorted(uniq, [r0 * w, r1 * w])
        if lo == hi:
            continue
        block = o.bands(r0, r1, which)
        block = block.reshape(block.shape[0], -1)
        if out is None:
            out = np.empty((uniq.size, block.shape[0]), dtype=block.dtype)
        out[lo:hi] = block[:, uniq[lo:hi] - r0 * w].T
    return out[back]


def open_images(stack: contextlib.ExitStack, images: list[Image], rgb, refl_bands=RGB) -> dict[str, Opened]:
    return {im.role: Opened(stack, im, rgb, refl_bands) for im in images}


def band_sets(given) -> dict[str, tuple[str, ...]]:
    """``{band set: its bands}`` from a mapping, or from band set names (their :data:`DEFAULT_BANDS`)."""
    if isinstance(given, dict):
        return {which: tuple(names) for which, names in given.items()}
    return {which: DEFAULT_BANDS[which] for which in given}


def describe(images: list[Image]) -> dict[str, str]:
    return {im.role: os.fspath(im.path) for im in images}
