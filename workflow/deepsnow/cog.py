"""Cloud-Optimized GeoTIFF output, one way for every raster the workflow writes.

A writer fills an ordinary tiled GeoTIFF (windows, internal mask, band tags, scales)
next to the temp file of :func:`deepsnow.io.atomic_output`; on success GDAL's COG
driver copies it into a COG (tiled, DEFLATE with predictor, overviews down to about
256 px, the internal mask and the band metadata carried over) and the temp file is
renamed into place. On any error nothing appears at the path and the intermediate
file is deleted. Memory stays bounded: GDAL copies by blocks and builds the overviews
in a temporary file. (rio-cogeo's ``cog_translate`` was not used here: through its
warped VRT, a raster with an internal mask came out with its masked pixels zeroed and
the mask all valid.) Tests validate every raster with rio-cogeo's ``cog_validate``.

Class rasters get what GIS users need to read them without the JSON sidecar: a
colour table, GDAL category names (``<file>.aux.xml``, GDAL's own place for them in
a GeoTIFF) and a QGIS style ``<file stem>.qml`` that QGIS loads with the raster.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
from pathlib import Path
from typing import Iterator
from xml.sax.saxutils import quoteattr, escape

from deepsnow import DeepsnowError
from deepsnow.io import atomic_output

#: GDAL's block cache for windowed reading and writing, in MB, unless ``GDAL_CACHEMAX`` is set:
#: GDAL's default (5 % of the machine's memory) fills up with blocks each read or written once and
#: dominates the peak memory on a large scene.
GDAL_CACHE_MB = 128


def gdal_env(**options):
    """A ``rasterio.Env`` with ``options`` and GDAL's block cache bounded (``GDAL_CACHE_MB``;
    ``GDAL_CACHEMAX`` in the environment wins)."""
    import rasterio

    if not os.environ.get("GDAL_CACHEMAX"):
        options.setdefault("GDAL_CACHEMAX", GDAL_CACHE_MB)
    return rasterio.Env(**options)


#: GDAL before 3.11 (OSGeo/gdal#12303) builds the overviews of a pixel-interleaved raster whose 2 x 2 source
#: blocks (every band, as float64) pass ``GDAL_OVR_CHUNK_MAX_SIZE`` (10 MB by default) through an uncompressed
#: temporary file, band by band, rewriting each block once per band: a ten-band uint16 raster in 512 px blocks
#: took about 6x longer to convert than in 256 px ones (2048 x 2048 px), and a full tile 16 min with a 16 GB
#: temporary file. :func:`overview_chunk_bytes` raises the limit so that such blocks take the in-memory path.
OVR_CHUNK_DEFAULT = 10 * 1024 * 1024


def overview_chunk_bytes(profile: dict) -> int:
    """``GDAL_OVR_CHUNK_MAX_SIZE`` for a raster of ``profile``: 2 x 2 of its blocks, every band, 8 bytes a value
    (at least GDAL's default): 84 MB for ten bands in 512 px blocks, the memory one overview chunk takes."""
    block = int(profile.get("blockxsize", 256))
    return max(OVR_CHUNK_DEFAULT, 4 * block * block * int(profile.get("count", 1)) * 8)


def overview_levels(h: int, w: int) -> int:
    """Overview levels (factors 2, 4, ...) until the longer side is at most about 256 px; at least one."""
    return max(1, math.ceil(math.log2(max(h, w) / 256))) if max(h, w) > 256 else 1


def source_profile(profile: dict) -> dict:
    """``profile`` as the intermediate GeoTIFF: tiled (blocks of ``blockxsize``, 256 by default), fast DEFLATE."""
    block = int(profile.get("blockxsize", 256))
    out = {k: v for k, v in profile.items() if k not in ("tiled", "blockxsize", "blockysize", "compress", "zlevel")}
    out.update(driver="GTiff", tiled=True, blockxsize=block, blockysize=block, compress="deflate", zlevel=1)
    return out


def cog_options(profile: dict, resampling: str) -> dict:
    """Creation options of GDAL's COG driver: DEFLATE with a predictor, the raster's block size,
    overviews down to about 256 px (at least one level, also on a raster smaller than a block)."""
    h, w = int(profile["height"]), int(profile["width"])
    return {
        "COMPRESS": "DEFLATE", "PREDICTOR": "YES", "BLOCKSIZE": int(profile.get("blockxsize", 256)),
        "OVERVIEW_RESAMPLING": resampling.upper(), "OVERVIEW_COUNT": overview_levels(h, w),
        "NUM_THREADS": 1,
    }


@contextlib.contextmanager
def cog_output(path: str | os.PathLike, profile: dict, resampling: str = "nearest") -> Iterator:
    """Yield a rasterio dataset open for writing with ``profile``; on success ``path`` becomes a COG.

    Write windows, ``write_mask`` (kept as the COG's internal mask), band descriptions,
    tags, scales, offsets and a colour table into the yielded dataset; GDAL's COG driver
    copies them all. ``resampling`` builds the overviews (``nearest`` for classes and
    mixed bands, ``average`` for images). Atomic: the file appears at ``path`` only
    when the block and the conversion succeed.
    """
    import rasterio
    import rasterio.shutil

    chunk = {} if os.environ.get("GDAL_OVR_CHUNK_MAX_SIZE") else {"GDAL_OVR_CHUNK_MAX_SIZE": overview_chunk_bytes(profile)}
    with (atomic_output(path, suffix=".tif") as tmp, gdal_env(GDAL_TIFF_INTERNAL_MASK=True, **chunk),
          gdal_failures() as failed):
        source = tmp.with_name(tmp.name + ".src.tif")
        try:
            with rasterio.open(source, "w", **source_profile(profile)) as dst:
                yield dst
            raise_failures(failed, path, "writing its blocks")
            rasterio.shutil.copy(source, tmp, driver="COG", **cog_options(profile, resampling))
            raise_failures(failed, path, "converting it to a COG")
        finally:
            source.unlink(missing_ok=True)


#: rasterio's logger of GDAL's messages, and how it words a CE_Failure it does not raise
GDAL_LOGGER, GDAL_FAILURE = "rasterio._env", "GDAL signalled an error"
#: the CE_Failure messages of pixels that did not reach the file (libtiff's and GDAL's block writing, the
#: classic-TIFF size limit, the disk). Other failures GDAL signals while a file is written are not about
#: its pixels and leave it whole (e.g. a 2-band class raster's colour table: "Cannot modify tag
#: PhotometricInterpretation while writing"): logged as before.
PIXELS_LOST = re.compile(
    r"write error|WriteEncoded(Tile|Strip)|dirty block|FlushCache|Maximum TIFF file size|No space left|"
    r"File too large|failed to write|write failed",
    re.IGNORECASE,
)


@contextlib.contextmanager
def gdal_failures() -> Iterator[list[str]]:
    """Collect the GDAL failures (CE_Failure) of lost pixels (``PIXELS_LOST``) signalled inside the block: rasterio raises those of the
    calls it checks, but a block GDAL writes later (flushing its cache, closing the file) fails with
    a message only, logged at INFO (e.g. "Write error" on a full disk or past the 4 GB classic-TIFF
    limit), and the file is left incomplete. Logging shows what it showed before."""
    logger = logging.getLogger(GDAL_LOGGER)
    shown, level = logger.getEffectiveLevel(), logger.level
    failures: list[str] = []

    def collect(record: logging.LogRecord) -> bool:
        if str(record.msg).startswith(GDAL_FAILURE) and PIXELS_LOST.search(record.getMessage()):
            failures.append(record.getMessage())
        return record.levelno >= shown

    logger.addFilter(collect)
    logger.setLevel(min(shown, logging.INFO))
    try:
        yield failures
    finally:
        logger.removeFilter(collect)
        logger.setLevel(level)


def raise_failures(failures: list[str], path, doing: str) -> None:
    """Refuse the raster at ``path`` when GDAL signalled a failure while ``doing``."""
    if failures:
        shown = "; ".join(failures[:3]) + (f"; ... ({len(failures)} in all)" if len(failures) > 3 else "")
        raise DeepsnowError(f"{path}: GDAL failed while {doing} (nothing written): {shown}")


# -- class rasters: colour table, category names, QGIS style ---------------------------------------
def hex_colour(rgba) -> str:
    """``#rrggbb`` of an ``(r, g, b[, a])`` tuple."""
    return "#%02x%02x%02x" % tuple(int(c) for c in rgba[:3])


def category_names_xml(classes: dict[int, tuple[str, tuple]]) -> str:
    """GDAL's PAM document naming the classes of band 1 (codes 0..max; unnamed codes are empty)."""
    names = [classes[c][0] if c in classes else "" for c in range(max(classes) + 1)]
    items = "".join(f"      <Category>{escape(n)}</Category>\n" for n in names)
    return (
        '<PAMDataset>\n  <PAMRasterBand band="1">\n    <CategoryNames>\n'
        f"{items}    </CategoryNames>\n  </PAMRasterBand>\n</PAMDataset>\n"
    )


def qml_style(classes: dict[int, tuple[str, tuple]]) -> str:
    """A QGIS paletted-renderer style for band 1: each class's colour, opacity and name."""
    entries = "".join(
        f"        <paletteEntry value=\"{c}\" color=\"{hex_colour(rgba)}\" "
        f"alpha=\"{int(rgba[3]) if len(rgba) > 3 else 255}\" label={quoteattr(name)}/>\n"
        for c, (name, rgba) in sorted(classes.items())
    )
    return (
        "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
        '<qgis version="3.28" styleCategories="Symbology">\n  <pipe>\n'
        '    <rasterrenderer type="paletted" band="1" opacity="1" alphaBand="-1">\n'
        f"      <colorPalette>\n{entries}      </colorPalette>\n"
        "    </rasterrenderer>\n  </pipe>\n</qgis>\n"
    )


def class_colormap(classes: dict[int, tuple[str, tuple]]) -> dict[int, tuple]:
    """The GeoTIFF colour table of ``classes`` (``{code: (name, (r, g, b, a))}``)."""
    return {c: tuple(int(v) for v in (tuple(rgba) + (255,))[:4]) for c, (_, rgba) in classes.items()}


def style_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """``(<file>.aux.xml, <stem>.qml)``: where GDAL finds category names and QGIS its style."""
    path = Path(path)
    return path.with_name(path.name + ".aux.xml"), path.with_suffix(".qml")


def write_class_style(path: str | os.PathLike, classes: dict[int, tuple[str, tuple]]) -> None:
    """Write the category names and the QGIS style next to the class raster ``path`` (atomically)."""
    aux, qml = style_paths(path)
    for out, text in ((aux, category_names_xml(classes)), (qml, qml_style(classes))):
        with atomic_output(out) as tmp:
            tmp.write_text(text)
