"""The simulator's land-cover labels: ``truth/<aoi>/landcover.tif`` and per-patch class fractions.

The simulator knows what every pixel is; real data does not. These labels train the
``simcover`` feature extractor (:mod:`deepsnow.features.simcover`), never the cycleGAN.

File (docs/formats.md, "Land cover"): a 2-band ``uint8`` GeoTIFF on the area's scene grid:

* band 1 ``class``: the land-cover class index into :data:`CLASSES` (0 water ... 8 road);
* band 2 ``snow``: the snow-season snow fraction of the pixel, ``round(255 * f)``. The
  snow-free season has no snow (its snow fraction is 0 everywhere), so one band serves both.

A patch's targets (:func:`patch_fractions`) are the share of its pixels in each class and
its mean snow fraction (0 for a snow-free-season patch): ``len(TARGETS)`` numbers.
"""

from __future__ import annotations

import os

import numpy as np

from deepsnow import DeepsnowError
from deepsnow.data.scene import RasterFile

#: Land-cover classes of the simulator, in the order of their index (band 1 values).
CLASSES = ("water", "forest", "meadow", "crop", "cereal", "bare_soil", "rock", "urban", "road")
#: What a patch's label vector holds: one fraction per class, then the snow fraction.
TARGETS = (*CLASSES, "snow")
#: Band 2 value of a fully snow-covered pixel.
SNOW_SCALE = 255
BAND_NAMES = ("class", "snow")


def encode_snow(fsnow: np.ndarray) -> np.ndarray:
    """Snow fraction 0..1 as band 2 values (``uint8``)."""
    return np.rint(SNOW_SCALE * np.clip(fsnow, 0.0, 1.0)).astype(np.uint8)


#: Colours of the classes (colour table of band 1 and the QGIS style), in :data:`CLASSES` order.
COLOURS = ((30, 90, 200), (30, 110, 40), (140, 200, 90), (220, 200, 90), (200, 170, 60), (150, 110, 70),
           (130, 130, 130), (200, 60, 60), (60, 60, 60))
#: Name and colour of each class code, for :mod:`deepsnow.cog`.
STYLE = {i: (name, (*COLOURS[i], 255)) for i, name in enumerate(CLASSES)}


def write_landcover(path: str | os.PathLike, cover: np.ndarray, fsnow: np.ndarray, crs, transform, tags: dict) -> None:
    """Write the 2-band land-cover COG atomically (:mod:`deepsnow.cog`): a colour table, category names
    and a QGIS style for the classes; band 2's GDAL scale ``1 / SNOW_SCALE`` gives the snow fraction."""
    from deepsnow.cog import class_colormap, cog_output, write_class_style

    h, w = cover.shape
    profile = {"driver": "GTiff", "height": h, "width": w, "count": 2, "dtype": "uint8", "crs": crs,
               "transform": transform, "blockxsize": 256}
    with cog_output(path, profile, resampling="nearest") as dst:
        dst.write(np.stack([cover.astype(np.uint8), encode_snow(fsnow)]))
        for i, name in enumerate(BAND_NAMES, start=1):
            dst.set_band_description(i, name)
        dst.scales, dst.offsets = (1.0, 1.0 / SNOW_SCALE), (0.0, 0.0)
        dst.write_colormap(1, class_colormap(STYLE))
        dst.update_tags(DEEPSNOW_CLASSES=",".join(CLASSES), DEEPSNOW_SNOW_SCALE=SNOW_SCALE,
                        **{k: str(v) for k, v in tags.items()})
    write_class_style(path, STYLE)


class LandcoverFile(RasterFile):
    """A land-cover GeoTIFF opened and checked, read by row bands; errors name the file."""

    kind, described = "land-cover", "land-cover GeoTIFF"

    def _check(self) -> None:
        src = self._src
        found = (src.count, src.dtypes[0], tuple(src.descriptions))
        if found != (2, "uint8", BAND_NAMES):
            raise DeepsnowError(
                f"{self.path}: expected a 2-band uint8 land-cover GeoTIFF {list(BAND_NAMES)} from "
                f"'deepsnow simulate', found {found[0]} band(s) {list(found[2])} of {found[1]}"
            )

    def read(self, row0: int = 0, row1: int | None = None) -> np.ndarray:
        """Rows ``row0 .. row1`` as ``(rows, W, 2) uint8`` (class, snow), class values checked."""
        data = self._rows(row0, row1)
        if data.size and int(data[0].max()) >= len(CLASSES):
            raise DeepsnowError(f"{self.path}: class values above {len(CLASSES) - 1} found; classes are {list(CLASSES)}")
        return np.moveaxis(data, 0, -1)


def patch_fractions(patches: np.ndarray, snow_season: bool) -> np.ndarray:
    """``(n, S, S, 2) uint8`` land-cover patches -> ``(n, len(TARGETS)) float32`` targets:
    class shares, then the mean snow fraction (0 for a snow-free-season patch)."""
    n = len(patches)
    classes = patches[..., 0].reshape(n, -1).astype(np.int64)
    npix = classes.shape[1]
    offsets = (np.arange(n, dtype=np.int64) * len(CLASSES))[:, None]
    counts = np.bincount((classes + offsets).ravel(), minlength=n * len(CLASSES)).reshape(n, len(CLASSES))
    out = np.zeros((n, len(TARGETS)), dtype=np.float32)
    out[:, : len(CLASSES)] = counts / max(npix, 1)
    if snow_season and n:
        out[:, -1] = patches[..., 1].reshape(n, -1).mean(axis=1) / SNOW_SCALE
    return out
