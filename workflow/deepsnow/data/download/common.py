"""What the real acquisition sources share: the output grid, tags, and the
download itself (:func:`fetch_scene`: search -> choose -> read -> write -> summary, a
:class:`Source` supplying the steps).

The areas themselves (names, bounding boxes, season windows) are
:mod:`deepsnow.areas`.

The output grid of an area is its bounding box projected to the WGS84 / UTM
zone of the box's centre (EPSG 326xx north, 327xx south; the Norway and
Svalbard zone exceptions of MGRS included), the envelope of the projected box
snapped outward to the 10 m pixel grid (multiples of 10 m from the origin, or
from a given grid origin). Both seasons and both sources use the same grid.

Nothing here imports sentinelhub or pystac-client: the plan uses the grid
functions at DAG-build time.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Protocol

import numpy as np

from deepsnow import DeepsnowError
from deepsnow.areas import Area

#: Environment variables holding Sentinel Hub credentials (never logged or recorded).
SECRET_ENV = ("SH_CLIENT_ID", "SH_CLIENT_SECRET")


#: The reflectance bands the mask stage reads (NDSI from B03 and B11, B08 for its rules): every
#: download fetches them, whatever ``patches.bands`` says.
MASK_BANDS = ("B03", "B08", "B11")
#: The order in which a download requests reflectance bands: the five fetched before ``patches.bands``
#: reached the downloads first (so an RGB run's request is unchanged), then the others in wavelength order.
FETCH_ORDER = ("B04", "B03", "B02", "B08", "B11", "B05", "B06", "B07", "B8A", "B12")


def download_bands(patch_bands: Iterable[str] | None = None, key: str = "patches.bands") -> tuple[str, ...]:
    """The reflectance bands a download fetches: the mask's plus ``patch_bands`` (default the RGB
    ones), in :data:`FETCH_ORDER`; a :class:`DeepsnowError` naming ``key`` for an unknown name."""
    from deepsnow.data.bands import BAND_NAMES, RGB_BANDS

    wanted = list(RGB_BANDS if patch_bands is None else patch_bands)
    unknown = [b for b in wanted if b not in FETCH_ORDER]
    if unknown:
        raise DeepsnowError(f"key '{key}': unknown band names {unknown} (allowed: {list(BAND_NAMES)})")
    chosen = set(wanted) | set(MASK_BANDS)
    return tuple(b for b in FETCH_ORDER if b in chosen)


class DownloadError(DeepsnowError):
    """A download failure, always naming the area and season; its text is redacted (:func:`redact`)."""

    def __init__(self, aoi: str, season: str, message: str):
        self.aoi, self.season = aoi, season
        super().__init__(redact(f"area {aoi!r}, season {season!r}: {message}"))


# --------------------------------------------------------------------------- grid


def utm_epsg(lon: float, lat: float) -> int:
    """EPSG code of the WGS84 / UTM zone of a point (MGRS exceptions for Norway and Svalbard)."""
    zone = int(math.floor((lon + 180.0) / 6.0)) % 60 + 1
    if 56.0 <= lat < 64.0 and 3.0 <= lon < 12.0:
        zone = 32
    elif 72.0 <= lat < 84.0 and 0.0 <= lon < 42.0:
        zone = 31 if lon < 9 else 33 if lon < 21 else 35 if lon < 33 else 37
    return (32600 if lat >= 0 else 32700) + zone


@dataclass(frozen=True)
class Grid:
    """A north-up pixel grid: upper-left corner, size and pixel size, in a UTM CRS."""

    epsg: int
    left: float
    top: float
    width: int
    height: int
    res: float = 10.0

    @property
    def crs(self) -> str:
        return f"EPSG:{self.epsg}"

    @property
    def transform(self):
        from rasterio.transform import Affine

        return Affine(self.res, 0.0, self.left, 0.0, -self.res, self.top)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        return (self.left, self.top - self.height * self.res, self.left + self.width * self.res, self.top)

    def sub(self, row0: int, row1: int, col0: int, col1: int) -> "Grid":
        return Grid(
            self.epsg, self.left + col0 * self.res, self.top - row0 * self.res, col1 - col0, row1 - row0, self.res
        )

    def as_dict(self) -> dict:
        return {
            "crs": self.crs,
            "transform": list(self.transform)[:6],
            "bounds": list(self.bounds),
            "width": self.width,
            "height": self.height,
            "resolution_m": self.res,
        }


def area_grid(bbox, res: float = 10.0, epsg: int | None = None, origin: tuple[float, float] = (0.0, 0.0)) -> Grid:
    """The grid of a WGS84 bbox: its envelope in UTM (zone of the centre unless ``epsg``), snapped outward.

    Pixel edges fall on ``origin + k * res`` (a Sentinel-2 tile's corner is a
    multiple of 60 m, so the default origin aligns with every tile grid).
    """
    from rasterio.warp import transform_bounds

    x0, y0, x1, y1 = (float(v) for v in bbox)
    if epsg is None:
        epsg = utm_epsg((x0 + x1) / 2.0, (y0 + y1) / 2.0)
    left, bottom, right, top = transform_bounds("EPSG:4326", f"EPSG:{epsg}", x0, y0, x1, y1, densify_pts=21)
    ox, oy = origin
    eps = 1e-6
    left = ox + math.floor((left - ox) / res + eps) * res
    right = ox + math.ceil((right - ox) / res - eps) * res
    bottom = oy + math.floor((bottom - oy) / res + eps) * res
    top = oy + math.ceil((top - oy) / res - eps) * res
    width, height = int(round((right - left) / res)), int(round((top - bottom) / res))
    if width < 1 or height < 1:
        raise DeepsnowError(f"bbox {list(bbox)} is smaller than one {res} m pixel")
    return Grid(epsg, left, top, width, height, res)


def split_grid(grid: Grid, max_px: int) -> list[tuple[int, int, int, int]]:
    """Tiles ``(row0, row1, col0, col1)`` covering the grid, each at most ``max_px`` wide and high, sizes even."""

    def cuts(n: int) -> list[int]:
        k = max(1, math.ceil(n / max_px))
        return [round(i * n / k) for i in range(k + 1)]

    rows, cols = cuts(grid.height), cuts(grid.width)
    return [(rows[i], rows[i + 1], cols[j], cols[j + 1]) for i in range(len(rows) - 1) for j in range(len(cols) - 1)]


# --------------------------------------------------------------------------- output


def scene_tags(source: str, area: Area, season: str, date: str, **extra) -> dict:
    tags = {"DEEPSNOW_SOURCE": source, "DEEPSNOW_AOI": area.name, "DEEPSNOW_SEASON": season, "DEEPSNOW_DATE": date}
    tags.update({f"DEEPSNOW_{k.upper()}": v for k, v in extra.items() if v is not None})
    return tags


def write_dn_scene(
    path, dn: dict[str, np.ndarray], scl: np.ndarray, data_mask: np.ndarray, grid: Grid, tags: dict
) -> dict:
    """Write a scene from reflectance x 10000 values (``dn``, offset already removed), in row strips.

    Pixels with ``data_mask == 0`` get 0 in every band. ``dn`` values may be arrays or anything
    sliced by rows to arrays (``dn[b][r0:r1]``). Returns the counts of :func:`write_dn_strips`.
    """
    return write_dn_strips(path, whole_strips(dn, scl, data_mask), grid, tags, tuple(dn))


def whole_strips(dn: dict, scl: np.ndarray, mask: np.ndarray, rows: int | None = None):
    """Row strips ``(row0, dn, scl, mask)`` of whole-grid arrays, ``rows`` rows each (:func:`window_rows`)."""
    from deepsnow.data.scene import window_rows

    step = window_rows(rows)
    for r0 in range(0, scl.shape[0], step):
        r1 = min(scl.shape[0], r0 + step)
        yield r0, {b: v[r0:r1] for b, v in dn.items()}, scl[r0:r1], mask[r0:r1]


def write_dn_strips(path, strips, grid: Grid, tags: dict, bands, check=None) -> dict:
    """Write a scene strip by strip (:class:`~deepsnow.data.scene.SceneWriter`) from ``(row0, dn, scl, mask)``
    full-width row strips in order (``dn``: reflectance x 10000 of the reflectance ``bands`` the scene
    holds, by name; ``mask`` non-zero where valid).

    Returns ``{"scl": SCL counts of the valid pixels (invalid ones as 0), "valid": n, "total": n}``.
    ``check(counts)``, when given, runs before the file is put in place and may raise to leave nothing.
    """
    from deepsnow.data.scene import SCALE, SCL_N_CLASSES, SCL_NODATA, SceneWriter
    from deepsnow.data.scene import raster_env, scl_counts

    counts = {"scl": np.zeros(SCL_N_CLASSES, dtype=np.int64), "valid": 0, "total": 0}
    with raster_env(), SceneWriter(path, grid.height, grid.width, grid.crs, grid.transform, bands, tags) as out:
        for r0, dn, scl, mask in strips:
            # a strip (a row of Process API tiles: up to 2500 rows) is converted 256 rows at a time
            for a in range(0, scl.shape[0], 256):
                sl = slice(a, a + 256)
                valid = np.asarray(mask[sl]).astype(bool)
                refl = {
                    b: np.where(valid, np.asarray(dn[b][sl], dtype=np.float64), 0.0) / SCALE for b in bands
                }
                scl8 = np.where(valid, scl[sl], SCL_NODATA).astype(np.uint8)
                out.write(r0 + a, refl, scl8, valid.astype(np.uint8))
                counts["scl"] += scl_counts(scl[sl], valid)[:SCL_N_CLASSES]
                counts["valid"] += int(valid.sum())
                counts["total"] += valid.size
        if check is not None:
            check(counts)
    return counts


#: The keys of :func:`deepsnow.data.scene.scene_stats` a download summary reports.
DOWNLOAD_STATS = ("valid_fraction", "cloud_fraction", "snow_fraction", "water_fraction")


def download_stats(scl: np.ndarray, data_mask: np.ndarray) -> dict:
    """Valid fraction and cloud, snow and water shares of the valid pixels, from the SCL band."""
    from deepsnow.data.scene import scene_stats

    stats = scene_stats(scl, data_mask)
    return {k: stats[k] for k in DOWNLOAD_STATS}


def download_stats_of(counts: dict) -> dict:
    """:func:`download_stats` from the counts :func:`write_dn_strips` returns."""
    from deepsnow.data.scene import stats_from_counts

    stats = stats_from_counts(counts["scl"], counts["valid"], counts["total"])
    return {k: stats[k] for k in DOWNLOAD_STATS}


# --------------------------------------------------------------------------- the download skeleton


@dataclass
class Pixels:
    """What a source read for one area and season, ready to be written as a scene.

    Either whole-grid arrays (``dn``, ``scl``, ``mask``) or ``strips``: full-width row strips
    ``(row0, dn, scl, mask)`` in order, produced while the scene is written (a mosaic goes
    straight into the GeoTIFF). ``no_valid``: the error when no pixel turns out valid.
    """

    dn: dict | None  # band -> reflectance x 10000, offset already removed (or row-sliceable)
    scl: np.ndarray | None
    mask: np.ndarray | None  # bool: valid pixels (the scene's dataMask)
    grid: Grid
    tags: dict
    requests: dict  # request counts, reported in the summary
    bands: tuple[str, ...]  # the reflectance bands read (``dn``'s keys): those the scene will hold
    facts: dict = field(default_factory=dict)  # the source's own record of the read, for its summary
    origin: str = ""  # what the pixels came from, for the log line (" from <item> of <date>")
    note: str | Callable[[], str] = ""  # appended to the log line (a callable: asked after writing)
    strips: Iterable | None = None
    no_valid: str = ""


class Source(Protocol):
    """One acquisition source for one area and season: the steps :func:`fetch_scene` runs in order.

    Failures raise :class:`DownloadError`; nothing is written before ``read`` succeeded.
    """

    name: str  # "sentinelhub", "stac": DEEPSNOW_SOURCE and the summary's "source"
    log: logging.Logger
    area: Area
    season: str
    endpoint: str
    collection: str

    def search(self) -> tuple[list, bool]:
        """What the catalogue holds for the area's season window, and whether it came from the cache."""

    def choose(self, found: list):
        """The acceptable acquisitions of ``found``, best first; :class:`DownloadError` when none."""

    def read(self, chosen) -> Pixels:
        """The pixels of the chosen acquisitions on the area's grid."""

    def details(self, found: list, from_cache: bool, chosen, pixels: Pixels) -> dict:
        """The source's own summary keys (between the common head and ``requests``/``stats``)."""


def fetch_scene(source: Source, output) -> dict:
    """search -> choose -> read -> write -> summary, for one area and season; the JSON-able summary."""
    area, season = source.area, source.season
    found, from_cache = source.search()
    chosen = source.choose(found)
    px = source.read(chosen)
    strips = px.strips if px.strips is not None else whole_strips(px.dn, px.scl, px.mask)

    def check(counts: dict) -> None:
        if px.no_valid and counts["valid"] == 0:
            raise DownloadError(area.name, season, px.no_valid)

    stats = download_stats_of(write_dn_strips(output, strips, px.grid, px.tags, px.bands, check=check))
    # "SCL snow" is SCL class 11 alone: the mask stage's snow (SCL 11 or NDSI) is often much larger
    source.log.info(
        "%s/%s: wrote %s%s (valid %.1f %%, cloud %.1f %%, SCL snow %.1f %%)%s",
        area.name,
        season,
        output,
        px.origin,
        100 * stats["valid_fraction"],
        100 * stats["cloud_fraction"],
        100 * stats["snow_fraction"],
        px.note() if callable(px.note) else px.note,
    )
    return {
        "source": source.name,
        "endpoint": source.endpoint,
        "collection": source.collection,
        "aoi": area.name,
        "season": season,
        "bbox_wgs84": list(area.bbox),
        "window": list(area.window(season)),
        **source.details(found, from_cache, chosen, px),
        "requests": px.requests,
        "stats": stats,
    }


# --------------------------------------------------------------------------- secrets and caching


#: Secret values met in this process (credentials from a profile, OAuth tokens), besides ``SECRET_ENV``.
_KNOWN_SECRETS: set[str] = set()
_MIN_SECRET_LEN = 4
MASK = "***"

#: Secrets that travel under a recognisable name, whatever their value: ``Bearer <token>``, an
#: ``Authorization`` header's credentials (Bearer, Basic, ...), and ``access_token``/``client_secret``/...
#: as JSON keys, Python reprs or form fields.
_SECRET_PATTERNS = (
    (re.compile(r"(?i)\b(bearer)(\s+|%20|\+)[A-Za-z0-9\-._~+/]+=*"), r"\1\2" + MASK),
    (re.compile(r"""(?i)(\bauthorization["']?\s*[:=]\s*["']?(?:[A-Za-z]+\s+)?)[^"'\s,;}\])]+"""), r"\1" + MASK),
    (
        re.compile(
            r"""(?i)(["']?\b(?:access_token|refresh_token|id_token|client_secret|sh_client_secret|password)"""
            r"""["']?\s*(?:[:=]|%3D)\s*["']?)[^"'\s,;&}\])]+"""
        ),
        r"\1" + MASK,
    ),
)


def secrets_in_env() -> list[str]:
    """Credential values currently in the environment (to scrub from messages)."""
    return [v for k in SECRET_ENV if (v := os.environ.get(k)) and len(v) >= _MIN_SECRET_LEN]


def remember_secret(*values) -> None:
    """Redact these values (and their encodings) from every later message and log line of this process.

    Two values given together are taken as an OAuth client id and secret: their HTTP Basic form
    ``base64(id:secret)`` is redacted too.
    """
    vals = [v for v in values if isinstance(v, str) and len(v) >= _MIN_SECRET_LEN]
    _KNOWN_SECRETS.update(vals)
    if len(vals) == 2:
        import base64

        for a, b in ((vals[0], vals[1]), (quote(vals[0], safe=""), quote(vals[1], safe=""))):
            _KNOWN_SECRETS.add(base64.b64encode(f"{a}:{b}".encode()).decode())


def quote(value: str, safe: str = "/") -> str:
    from urllib.parse import quote as _quote

    return _quote(value, safe=safe)


def _forms(value: str) -> set[str]:
    """A secret as it may appear in text: raw, URL- and form-encoded, JSON-escaped, base64."""
    import base64
    from urllib.parse import quote_plus

    raw = value.encode()
    forms = {
        value,
        quote(value, safe=""),
        quote_plus(value),
        json.dumps(value)[1:-1],
        json.dumps(value)[1:-1].replace("/", "\\/"),
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
    }
    return {f for f in forms if len(f) >= _MIN_SECRET_LEN}


def redact(text, secrets=()) -> str:
    """``text`` with every known secret (environment credentials, remembered values, ``secrets``),
    in any of its usual encodings, and every ``Bearer``/``Basic``/``access_token=...`` value replaced
    by ``***``. Apply it to anything that can carry text from a remote service.
    """
    text = str(text)
    values = {s for s in (*secrets, *secrets_in_env(), *_KNOWN_SECRETS) if s and len(s) >= _MIN_SECRET_LEN}
    forms = set()
    for v in values:
        forms |= _forms(v)
    for f in sorted(forms, key=len, reverse=True):
        text = text.replace(f, MASK)
    for pattern, repl in _SECRET_PATTERNS:
        text = pattern.sub(repl, text)
    return text


#: The former name of :func:`redact`.
scrub = redact


_redaction_installed = False


def install_log_redaction() -> None:
    """Redact every log record (message, arguments, traceback) and warning of this process; idempotent.

    Third-party libraries log secrets at DEBUG level (requests-oauthlib logs the token request's
    form body and the token it obtained), so the redaction sits in the record factory, ahead of
    every handler.
    """
    global _redaction_installed
    if _redaction_installed:
        return
    import warnings

    make_record = logging.getLogRecordFactory()

    def factory(*args, **kwargs):
        record = make_record(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: let logging report it as usual
            return record
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return record

    logging.setLogRecordFactory(factory)
    format_warning = warnings.formatwarning

    def formatwarning(message, category, filename, lineno, line=None):
        return redact(format_warning(message, category, filename, lineno, line))

    warnings.formatwarning = formatwarning
    _redaction_installed = True


def cache_key(*parts) -> str:
    import hashlib

    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def read_cached_json(cache_dir, kind: str, key: str):
    if not cache_dir:
        return None
    p = Path(cache_dir) / kind / f"{key}.json"
    if not p.exists():
        return None
    try:
        return json.loads(p.read_text())
    except (OSError, json.JSONDecodeError):
        return None  # a damaged cache entry is simply fetched again


def write_cached_json(cache_dir, kind: str, key: str, obj) -> None:
    if not cache_dir:
        return
    from deepsnow.io import write_json

    write_json(Path(cache_dir) / kind / f"{key}.json", obj)
