"""Scenes from a STAC API of Sentinel-2 L2A COGs (default: Element 84 Earth Search v1, no credentials).

For one area and season:

1. **Search** (pystac-client, ``POST {data.stac.url}/search``) in
   ``data.stac.collection`` over the area's bbox and the season window, with
   ``query`` filters ``eo:cloud_cover <= data.max_cloud_cover`` (``<=`` as for
   Sentinel Hub) and, when set, ``s2:snow_ice_percentage >=
   data.stac.snow_ice_percentage.snow_min`` (snow season) or ``<=
   ...snowfree_max`` (snow-free season). Every returned item
   is checked again here (a server that ignores the query cannot slip a
   cloudier scene through). The items are ranked by cloud cover (then by
   whether they are in the area's UTM zone, then date and id).
2. **Windowed COG reads** (rasterio / GDAL ``/vsicurl/``) of the least cloudy
   item: the area's window is located in each asset with
   ``rasterio.windows.from_bounds`` (in the asset's CRS) and only the blocks
   under it are fetched (HTTP range requests), through a ``WarpedVRT`` onto
   the output grid. The output grid is the area's bbox in the UTM zone of its
   centre at 10 m, aligned to the item's 10 m grid when the item is in that
   zone (then the 10 m bands are copied pixel for pixel); an item of a
   neighbouring zone is reprojected (``data.stac.resampling`` for reflectance,
   nearest for SCL). Only the assets of the bands the run needs are read
   (:func:`~deepsnow.data.download.common.download_bands`: the mask's B03 B08
   B11 plus ``patches.bands``, then SCL; B04 B03 B02 B08 B11 SCL for an RGB
   run). The 20 m bands are resampled to 10 m: SCL by nearest neighbour, B05
   B06 B07 B8A B11 B12 by ``data.stac.resampling`` (bilinear by default: nearest
   would leave 2 x 2 blocks; bilinear never mixes nodata in, GDAL skips it).
   If the item covers less than ``data.stac.min_valid_fraction`` of the area
   (swath edge), the next item is tried (up to ``max_candidates``). The reads
   go a window of ``$DEEPSNOW_WINDOW_ROWS`` rows at a time into one ``.npy``
   file per band (:mod:`~deepsnow.data.download.rawstore`: the pixel cache
   entry, or a scratch folder beside the output removed at the end), and the
   scene is written from there strip by strip: a full tile's raw bands are
   never whole in memory. GDAL's resampling scale is fixed to the resolution
   ratio (``XSCALE``/``YSCALE``), so the pixels do not depend on the windows.
3. **Scale and offset**: reflectance = DN x scale + offset, output
   reflectance x 10000. With ``data.stac.boa_offset: auto`` the offset is 0
   when the item says ``earthsearch:boa_offset_applied: true`` (Element 84
   already removed it from the DNs) or its ``s2:processing_baseline`` is
   before 04.00 (no offset then); otherwise the asset's ``raster:bands``
   scale/offset apply (-0.1 for baseline 04.00 and later when ``raster:bands``
   says nothing). ``raster`` trusts ``raster:bands`` only; ``none`` never
   subtracts an offset (Earth Search is known to mislabel a few items).
   The scale and offset are found per band, for every band read.
4. **dataMask** = 1 where every band read (the reflectance bands and SCL) is
   non-zero (0 is nodata in every Sentinel-2 L2A COG).

Asset keys: Earth Search v1 ``blue green red rededge1 rededge2 rededge3 nir
nir08 swir16 swir22 scl`` (B02 B03 B04 B05 B06 B07 B08 B8A B11 B12 SCL); the
older keys named as the bands are accepted too.

Retries: the search retries 429/5xx and connection errors (urllib3,
``Retry-After`` honoured); GDAL retries HTTP errors of the COG reads
(``GDAL_HTTP_MAX_RETRY``) and a failed read is tried again with GDAL's cache
for those files off, up to ``data.stac.max_attempts`` times in all.

Cache: with ``--cache DIR`` the search results (``DIR/search/``) and the
pixels read (``DIR/pixels/<key>/``: ``<band>.npy`` and ``grid.json``, written
last; the key holds the hrefs of the assets read, so an entry of an RGB run never
answers a 10-band read, nor the reverse) are kept, so a rerun makes no request. A search
result of which no item passes the query is not cached: the next run asks
again and sees new acquisitions of the window.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import numpy as np

from deepsnow import DeepsnowError
from deepsnow.areas import Area
from deepsnow.data.download.common import (
    DownloadError,
    Grid,
    Pixels,
    area_grid,
    cache_key,
    download_bands,
    fetch_scene,
    read_cached_json,
    scene_tags,
    utm_epsg,
    write_cached_json,
)
from deepsnow.data.download import rawstore
from deepsnow.data.download.rawstore import RawBands

log = logging.getLogger("deepsnow.download.stac")

#: Output band -> asset keys, Earth Search v1 first, then older catalogues.
ASSET_KEYS = {
    "B04": ("red", "B04"),
    "B03": ("green", "B03"),
    "B02": ("blue", "B02"),
    "B08": ("nir", "B08"),
    "B11": ("swir16", "B11"),
    "B05": ("rededge1", "B05"),
    "B06": ("rededge2", "B06"),
    "B07": ("rededge3", "B07"),
    "B8A": ("nir08", "B8A"),
    "B12": ("swir22", "B12"),
    "SCL": ("scl", "SCL"),
}
#: The reflectance bands an RGB run fetches (the mask's and the RGB's; a scene records which it holds).
REFLECTANCE = download_bands()


def assets_of(bands) -> tuple[str, ...]:
    """The assets read for the reflectance ``bands``: those bands, then SCL."""
    return tuple(bands) + ("SCL",)
RETRY_STATUS = (429, 500, 502, 503, 504)


# --------------------------------------------------------------------------- search


def _query(params: dict, season: str) -> dict:
    st = params["stac"]
    q = {"eo:cloud_cover": {"lte": float(params["max_cloud_cover"])}}
    si = st["snow_ice_percentage"]
    if season == "snow" and si.get("snow_min") is not None:
        q["s2:snow_ice_percentage"] = {"gte": float(si["snow_min"])}
    if season == "snowfree" and si.get("snowfree_max") is not None:
        q["s2:snow_ice_percentage"] = {"lte": float(si["snowfree_max"])}
    return q


def _passes(item: dict, query: dict) -> str | None:
    """Why an item fails the query (None when it passes)."""
    props = item.get("properties") or {}
    ops = {"lt": lambda a, b: a < b, "lte": lambda a, b: a <= b, "gt": lambda a, b: a > b, "gte": lambda a, b: a >= b}
    for prop, cond in query.items():
        value = props.get(prop)
        if value is None:
            return f"no {prop}"
        for op, ref in cond.items():
            if not ops[op](float(value), ref):
                return f"{prop} {value:g}"
    return None


def search(params: dict, area: Area, season: str, cache) -> tuple[list[dict], bool]:
    """Items (raw STAC dicts) of the area and window matching the query; cached when one passes the query
    (checked here); and whether from the cache."""
    st = params["stac"]
    start, end = area.window(season)
    query = _query(params, season)
    key = cache_key("stac-search", st["url"], st["collection"], list(area.bbox), start, end, query, st["max_items"])
    cached = read_cached_json(cache, "search", key)
    if cached is not None:
        log.info("STAC search for %s/%s read from the cache", area.name, season)
        return cached["items"], True
    from pystac_client import Client
    from pystac_client.stac_api_io import StacApiIO
    from urllib3 import Retry

    retry = Retry(
        total=max(0, int(st["max_attempts"]) - 1),
        backoff_factor=float(st["retry_delay"]),
        status_forcelist=RETRY_STATUS,
        allowed_methods=None,
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    try:
        client = Client.open(st["url"], stac_io=StacApiIO(max_retries=retry, timeout=float(st["timeout"])))
        found = client.search(
            collections=[st["collection"]],
            bbox=list(area.bbox),
            datetime=f"{start}/{end}",
            query=query,
            max_items=int(st["max_items"]),
            limit=min(100, int(st["max_items"])),
        )
        items = list(found.items_as_dicts())
    except DeepsnowError:
        raise
    except Exception as exc:  # APIError, requests errors, NotImplementedError (no search link)...
        raise DownloadError(
            area.name, season, f"STAC search at {st['url']} failed: {type(exc).__name__}: {exc}"
        ) from None
    if any(_passes(it, query) is None for it in items):
        write_cached_json(
            cache,
            "search",
            key,
            {"query": [st["url"], st["collection"], list(area.bbox), start, end, query], "items": items},
        )
    return items, False


# --------------------------------------------------------------------------- assets


def _asset(item: dict, band: str) -> tuple[str, dict]:
    assets = item.get("assets") or {}
    for key in ASSET_KEYS[band]:
        if key in assets and assets[key].get("href"):
            return key, assets[key]
    raise DeepsnowError(
        f"item {item.get('id')}: no asset for {band} (looked for {list(ASSET_KEYS[band])}; has {sorted(assets)})"
    )


def _href(item: dict, asset: dict) -> str:
    href = asset["href"]
    if "://" not in href and not href.startswith("/"):
        self_link = next((ln["href"] for ln in item.get("links", []) if ln.get("rel") == "self"), None)
        if self_link:
            href = urljoin(self_link, href)
    return href


def _baseline(props: dict) -> float | None:
    for k in ("s2:processing_baseline", "processing:version", "sentinel:processing_baseline"):
        if props.get(k) is not None:
            try:
                return float(props[k])
            except (TypeError, ValueError):
                pass
    return None


def scale_offset(item: dict, asset: dict, mode: str) -> tuple[float, float, str]:
    """(scale, offset, why) turning an asset's DN into reflectance."""
    props = item.get("properties") or {}
    rb = (asset.get("raster:bands") or [{}])[0] or {}
    scale = float(rb.get("scale", 1e-4))
    declared = rb.get("offset")
    if mode == "none":
        return scale, 0.0, "boa_offset: none"
    if mode == "raster":
        return scale, float(declared or 0.0), "raster:bands"
    applied = props.get("earthsearch:boa_offset_applied", props.get("sentinel:boa_offset_applied"))
    baseline = _baseline(props)
    if applied is True:
        return scale, 0.0, "earthsearch:boa_offset_applied"
    if baseline is not None and baseline < 4.0:
        return scale, 0.0, f"processing baseline {baseline:.2f} < 04.00"
    if declared is not None:
        return scale, float(declared), "raster:bands"
    if baseline is not None and baseline >= 4.0:
        return scale, -0.1, f"processing baseline {baseline:.2f} >= 04.00"
    return scale, 0.0, "no offset information"


def _gdal_env(st: dict, non_cached: list[str] | None = None) -> dict:
    env = {
        "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
        "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff,.TIF,.TIFF",
        "GDAL_HTTP_MAX_RETRY": str(max(0, int(st["max_attempts"]) - 1)),
        "GDAL_HTTP_RETRY_DELAY": str(max(0.001, float(st["retry_delay"]))),
        "GDAL_HTTP_RETRY_CODES": ",".join(map(str, RETRY_STATUS)),
        "GDAL_HTTP_TIMEOUT": str(max(1, int(math.ceil(float(st["timeout"]))))),
        "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
        "AWS_NO_SIGN_REQUEST": "YES",
    }
    if non_cached:
        env["CPL_VSIL_CURL_NON_CACHED"] = ":".join(f"/vsicurl/{h}" for h in non_cached)
    return env


def read_item(item: dict, grid, st: dict, store: RawBands) -> dict:
    """Read an item's raw bands (uint16, on ``grid``) into ``store`` (a :class:`RawBands`, zero-filled);
    facts about the reads."""
    from rasterio.enums import Resampling
    from rasterio.errors import RasterioError, RasterioIOError

    resampling = Resampling[st["resampling"]]
    facts = {}
    for band in store.bands:
        key, asset = _asset(item, band)
        href = _href(item, asset)
        try:
            facts[band] = _read_band(band, key, href, grid, resampling, store)
        except (RasterioError, OSError) as exc:
            cause = f" ({exc.__cause__})" if exc.__cause__ else ""
            raise RasterioIOError(f"asset {key} ({href}): {exc}{cause}") from exc
    return facts


def _read_band(band: str, key: str, href: str, grid, resampling, store) -> dict:
    """One asset read onto ``grid`` into ``store``, in full-width row windows (``$DEEPSNOW_WINDOW_ROWS``):
    only the blocks under the area's window are fetched, and only a window of rows is in memory."""
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT
    from rasterio.warp import transform_bounds
    from rasterio.windows import Window, from_bounds

    from deepsnow.data.scene import window_rows

    with rasterio.open(href) as src:
        if src.crs is None:
            raise DeepsnowError(f"asset {key} ({href}) has no CRS")
        bounds = transform_bounds(grid.crs, src.crs, *grid.bounds) if src.crs != grid.crs else grid.bounds
        win = from_bounds(*bounds, transform=src.transform)
        overlap = not (
            win.col_off >= src.width
            or win.row_off >= src.height
            or win.col_off + win.width <= 0
            or win.row_off + win.height <= 0
        )
        native = src.crs == grid.crs and abs(src.res[0] - grid.res) < 1e-6
        r = Resampling.nearest if band == "SCL" or native else resampling
        fact = {
            "asset": key,
            "href": href,
            "crs": str(src.crs),
            "res": src.res[0],
            "window": [round(win.col_off, 3), round(win.row_off, 3), round(win.width, 3), round(win.height, 3)],
            "resampling": r.name,
        }
        if not overlap:
            return fact  # the store is zero-filled: nodata
        nodata = src.nodata if src.nodata is not None else 0
        scale = str(min(1.0, src.res[0] / grid.res))
        step = window_rows()
        with WarpedVRT(
            src,
            crs=grid.crs,
            transform=grid.transform,
            width=grid.width,
            height=grid.height,
            resampling=r,
            src_nodata=nodata,
            nodata=0,
            # GDAL widens a downsampling kernel by the scale it measures on each chunk it warps
            # (about 1 +- the rotation between zones here): fixed to the resolution ratio, the
            # pixels do not depend on the window read (or on GDAL's own chunking of a whole read)
            XSCALE=scale,
            YSCALE=scale,
        ) as vrt:
            for r0 in range(0, grid.height, step):
                n = min(step, grid.height - r0)
                store.write(band, r0, vrt.read(1, window=Window(0, r0, grid.width, n)).astype(np.uint16))
        return fact


def read_item_retrying(
    item: dict, grid, st: dict, area: Area, season: str, folder, assets=assets_of(REFLECTANCE)
) -> tuple[RawBands, dict]:
    """The item's raw ``assets`` (bands) in a new :class:`RawBands` at ``folder`` (a failed attempt's files
    are removed)."""
    import rasterio
    from rasterio.errors import RasterioError

    attempts = max(1, int(st["max_attempts"]))
    hrefs = [_href(item, _asset(item, b)[1]) for b in assets]
    last = None
    for attempt in range(attempts):
        rawstore.remove(folder)
        store = RawBands.create(folder, assets, (grid.height, grid.width))
        try:
            with rasterio.Env(**_gdal_env(st, hrefs if attempt else None)):
                return store, read_item(item, grid, st, store)
        except (RasterioError, OSError) as exc:  # RasterioIOError, CPLE_* (GDAL errors)
            last = exc
            log.warning("reading item %s failed (attempt %d/%d): %s", item.get("id"), attempt + 1, attempts, exc)
            if attempt + 1 < attempts:
                time.sleep(float(st["retry_delay"]) * 3**attempt)
    rawstore.remove(folder)
    raise DownloadError(
        area.name,
        season,
        f"could not read the COGs of item {item.get('id')} after {attempts} attempt(s) "
        f"(truncated or unreachable file?): {last}",
    )


def _item_date(item: dict) -> str:
    props = item.get("properties") or {}
    stamp = props.get("datetime") or props.get("start_datetime") or ""
    try:
        return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).date().isoformat()
    except ValueError:
        return stamp[:10]


def _item_epsg(item: dict) -> int | None:
    props = item.get("properties") or {}
    if props.get("proj:epsg"):
        return int(props["proj:epsg"])
    code = props.get("proj:code") or ""
    if code.upper().startswith("EPSG:"):
        return int(code.split(":")[1])
    return None


def download(params: dict, area: Area, season: str, output, cache=None, bands=None) -> dict:
    """Fetch one area and season from a STAC API and write the scene; return a JSON-able summary.
    ``bands``: the reflectance bands to fetch (default :data:`REFLECTANCE`, an RGB run's).

    Without a cache the raw bands go to a scratch folder beside ``output``, removed at the end."""
    source = StacSource(params, area, season, cache, scratch=Path(output).parent, bands=bands)
    try:
        return fetch_scene(source, output)
    finally:
        source.cleanup()


@dataclass
class _Candidate:
    """One item read onto the area's grid."""

    item: dict
    grid: Grid
    raw: RawBands  # band -> uint16 DN, on disk
    facts: dict  # what was read, from where
    frac: float  # valid fraction of the area


class StacSource:
    """The STAC steps of :func:`~deepsnow.data.download.common.fetch_scene` (module docstring, 1-4)."""

    name = "stac"
    log = log

    def __init__(self, params: dict, area: Area, season: str, cache=None, scratch=None, bands=None):
        self.params, self.area, self.season = params, area, season
        self.bands = tuple(bands) if bands is not None else REFLECTANCE
        self.scratch = None if cache else Path(scratch if scratch is not None else ".")
        self.scratch_folders: list[Path] = []
        self.st = params["stac"]
        self.endpoint, self.collection = self.st["url"], self.st["collection"]
        self.res = float(params["resolution"])
        self.cache = Path(cache) if cache else None
        self.epsg = utm_epsg((area.bbox[0] + area.bbox[2]) / 2, (area.bbox[1] + area.bbox[3]) / 2)
        self.query = _query(params, season)

    def search(self) -> tuple[list[dict], bool]:
        start, end = self.area.window(self.season)
        log.info(
            "%s/%s: searching %s (%s) %s..%s with %s",
            self.area.name,
            self.season,
            self.endpoint,
            self.collection,
            start,
            end,
            self.query,
        )
        return search(self.params, self.area, self.season, self.cache)

    def choose(self, items: list[dict]) -> tuple[list[dict], list[str]]:
        """Items passing the query (checked again here), least cloudy first; and the rejected ones."""
        rejected, ok = [], []
        for it in items:
            why = _passes(it, self.query)
            (rejected.append(f"{it.get('id')} ({why})") if why else ok.append(it))
        if not ok:
            raise self._nothing_found(items, rejected)
        ok.sort(
            key=lambda it: (
                float(it["properties"]["eo:cloud_cover"]),
                _item_epsg(it) not in (None, self.epsg),
                it["properties"].get("datetime") or "",
                it.get("id") or "",
            )
        )
        log.info(
            "%s/%s: %d item(s) pass; least cloudy %s (%s %%)",
            self.area.name,
            self.season,
            len(ok),
            ok[0].get("id"),
            ok[0]["properties"]["eo:cloud_cover"],
        )
        return ok, rejected

    def _nothing_found(self, items: list[dict], rejected: list[str]) -> DownloadError:
        start, end = self.area.window(self.season)
        conds = ", ".join(f"{p} {op} {v:g}" for p, c in self.query.items() for op, v in c.items())
        return DownloadError(
            self.area.name,
            self.season,
            f"no Sentinel-2 L2A item in {self.collection} at {self.endpoint} over bbox {list(self.area.bbox)} "
            f"between {start} and {end} with {conds} (the catalogue returned {len(items)}"
            + (f"; rejected: {', '.join(rejected[:10])}" if rejected else "")
            + "); widen the season window (data.seasons or the area's seasons), raise data.max_cloud_cover "
            "or relax data.stac.snow_ice_percentage",
        )

    def read(self, chosen: tuple[list[dict], list[str]]) -> Pixels:
        """The best-covering candidate's pixels, scaled to reflectance x 10000."""
        ok, _ = chosen
        best, tried, counts = self._best_candidate(ok)
        item = best.item
        offsets = _scale_offsets(item, self.st["boa_offset"], self.bands)
        props = item.get("properties") or {}
        date = _item_date(item)
        tags = scene_tags(
            "stac", self.area, self.season, date, scene=item.get("id"), cloud_cover=props.get("eo:cloud_cover")
        )
        return Pixels(
            dn=None,
            scl=None,
            mask=None,
            strips=raw_strips(best.raw, offsets),
            grid=best.grid,
            tags=tags,
            requests=counts,
            bands=self.bands,
            facts={"item": item, "scale_offset": offsets, "reads": best.facts, "candidates_tried": tried},
            origin=f" from {item.get('id')} of {date}",
        )

    def _best_candidate(self, ok: list[dict]) -> tuple[_Candidate, list[dict], dict]:
        """The first item covering ``min_valid_fraction`` of the area, else the best of ``max_candidates``;
        the items tried and the request counts."""
        area, season, st = self.area, self.season, self.st
        tried, best = [], None
        counts = {"items_read": 0, "from_cache": 0}
        for item in ok[: int(st["max_candidates"])]:
            grid, raw, facts, hit = _read_candidate(
                item, area, season, self.res, self.epsg, st, self._folder, assets_of(self.bands)
            )
            counts["from_cache" if hit else "items_read"] += 1
            frac = valid_fraction(raw)
            tried.append({"id": item.get("id"), "valid_fraction": round(frac, 5)})
            if best is None or frac > best.frac:
                best = _Candidate(item, grid, raw, facts, frac)
            if frac >= float(st["min_valid_fraction"]):
                break
            log.warning(
                "%s/%s: item %s covers only %.1f %% of the area; trying the next",
                area.name,
                season,
                item.get("id"),
                100 * frac,
            )
        if best.frac <= 0.0:
            raise DownloadError(area.name, season, f"no item has valid pixels over the area (tried {tried})")
        if best.frac < float(st["min_valid_fraction"]):
            log.warning(
                "%s/%s: best item %s covers %.1f %% of the area (< min_valid_fraction)",
                area.name,
                season,
                best.item.get("id"),
                100 * best.frac,
            )
        return best, tried, counts

    def _folder(self, key: str) -> tuple[Path, bool]:
        """Where an item's raw bands go: its pixel cache entry (kept), else a scratch folder (removed at
        the end); and whether it is a cache entry."""
        if self.cache:
            return self.cache / "pixels" / key, True
        import tempfile

        self.scratch.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=".stac-raw-", dir=self.scratch)) / "bands"
        self.scratch_folders.append(folder.parent)
        return folder, False

    def cleanup(self) -> None:
        """Remove the scratch folders of the raw bands read without a cache."""
        for f in self.scratch_folders:
            rawstore.remove(f)
        self.scratch_folders.clear()

    def details(self, items: list[dict], from_cache: bool, chosen, px: Pixels) -> dict:
        ok, rejected = chosen
        item = px.facts["item"]
        props = item.get("properties") or {}
        return {
            "query": self.query,
            "item": {
                "id": item.get("id"),
                "datetime": props.get("datetime"),
                "cloud_cover": props.get("eo:cloud_cover"),
                "snow_ice_percentage": props.get("s2:snow_ice_percentage"),
                "processing_baseline": props.get("s2:processing_baseline"),
                "boa_offset_applied": props.get("earthsearch:boa_offset_applied"),
            },
            "scale_offset": px.facts["scale_offset"],
            "reads": px.facts["reads"],
            "grid": px.grid.as_dict(),
            "search": {"from_cache": from_cache, "returned": len(items), "passed": len(ok), "rejected": rejected[:20]},
            "candidates_tried": px.facts["candidates_tried"],
        }


def _scale_offsets(item: dict, mode: str, bands=REFLECTANCE) -> dict:
    """Per reflectance band, the scale and offset of DN -> reflectance (module docstring 3) and why."""
    offsets = {}
    for b in bands:
        _, asset = _asset(item, b)
        scale, offset, why = scale_offset(item, asset, mode)
        offsets[b] = {"scale": scale, "offset": offset, "why": why}
    return offsets


def valid_fraction(raw: RawBands, rows: int | None = None) -> float:
    """Fraction of the grid where every band is non-zero (0 is nodata in every Sentinel-2 L2A COG,
    module docstring 4), counted a window of rows at a time."""
    from deepsnow.data.scene import window_rows

    h, w = raw.shape
    step, valid = window_rows(rows), 0
    for r0 in range(0, h, step):
        valid += int(_valid_rows(raw, r0, min(h, r0 + step)).sum())
    return valid / float(h * w) if h * w else 0.0


def _valid_rows(raw: RawBands, r0: int, r1: int) -> np.ndarray:
    mask = np.ones((r1 - r0, raw.shape[1]), dtype=bool)
    for b in raw.bands:
        mask &= raw.read(b, r0, r1) > 0
    return mask


def raw_strips(raw: RawBands, offsets: dict, rows: int | None = None):
    """Full-width row strips ``(row0, dn, scl, mask)`` of a :class:`RawBands` for
    :func:`~deepsnow.data.download.common.write_dn_strips`: reflectance x 10000 = DN x scale x 10000 +
    offset x 10000, computed a strip at a time."""
    from deepsnow.data.scene import window_rows

    h = raw.shape[0]
    step = window_rows(rows)
    for r0 in range(0, h, step):
        r1 = min(h, r0 + step)
        dn = {
            b: ScaledDN(raw.read(b, r0, r1), o["scale"] * 10000.0, o["offset"] * 10000.0) for b, o in offsets.items()
        }
        yield r0, dn, raw.read("SCL", r0, r1), _valid_rows(raw, r0, r1)


class ScaledDN:
    """``raw * factor + add`` in float64, computed only for the rows sliced (``dn[r0:r1]``), so the
    scene writer never holds a whole float64 copy of a band."""

    def __init__(self, raw: np.ndarray, factor: float, add: float):
        self.raw, self.factor, self.add = raw, factor, add
        self.shape = raw.shape

    def __getitem__(self, rows) -> np.ndarray:
        return self.raw[rows].astype(np.float64) * self.factor + self.add

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype)


def _read_candidate(item, area, season, res, epsg, st, folder_for, assets=assets_of(REFLECTANCE)):
    """Grid, raw ``assets`` (:class:`RawBands`), read facts of one item, and whether they came from the
    pixel cache; ``folder_for(key)`` says where the bands go (:meth:`StacSource._folder`). The cache key
    holds the assets' hrefs: the entry of an RGB run never answers a 10-band read, nor the reverse."""
    key = cache_key(
        "stac-pixels",
        item.get("id"),
        [_href(item, _asset(item, b)[1]) for b in assets],
        list(area.bbox),
        res,
        epsg,
        st["resampling"],
    )
    folder, cached = folder_for(key)
    if cached and (folder / rawstore.GRID_FILE).exists():
        try:
            g = rawstore.read_grid(folder)
            grid = Grid(int(g["epsg"]), g["left"], g["top"], int(g["width"]), int(g["height"]), g["res"])
            raw = RawBands.open(folder, assets, (grid.height, grid.width))
            log.info("%s/%s: pixels of %s read from the cache", area.name, season, item.get("id"))
            return grid, raw, {"cached": str(folder)}, True
        except (DeepsnowError, KeyError, TypeError, ValueError) as exc:
            log.warning("%s/%s: damaged cache entry %s (%s); reading the pixels again", area.name, season, folder, exc)
    grid = area_grid(area.bbox, res, epsg=epsg, origin=_grid_origin(item, epsg, st))
    raw, facts = read_item_retrying(item, grid, st, area, season, folder, assets)
    if cached:
        rawstore.write_grid(
            folder,
            {"epsg": grid.epsg, "left": grid.left, "top": grid.top, "width": grid.width, "height": grid.height,
             "res": grid.res},
        )
    return grid, raw, facts, False


def _grid_origin(item: dict, epsg: int, st: dict) -> tuple[float, float]:
    """The item's 10 m grid origin when it is in the area's UTM zone (the output grid aligns to it), else (0, 0)."""
    import rasterio

    _, ref = _asset(item, "B04")
    ref_href = _href(item, ref)
    if _item_epsg(item) not in (None, epsg):
        return (0.0, 0.0)
    try:
        with rasterio.Env(**_gdal_env(st)), rasterio.open(ref_href) as src:
            if src.crs is not None and src.crs.to_epsg() == epsg:
                return (src.transform.c, src.transform.f)
    except Exception as exc:  # noqa: BLE001 - the retrying read reports it properly
        log.debug("could not open %s for its grid origin: %s", ref_href, exc)
    return (0.0, 0.0)
