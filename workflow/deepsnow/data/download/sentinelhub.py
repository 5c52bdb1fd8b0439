"""Scenes from the Sentinel Hub APIs (Sentinel Hub or the Copernicus Data Space Ecosystem).

For one area and season:

1. **Catalog** search (``POST {base_url}/api/v1/catalog/1.0.0/search``) for
   Sentinel-2 L2A acquisitions over the area's bbox within the season window,
   with the CQL2 filter ``eo:cloud_cover <= data.max_cloud_cover`` (``<=`` like
   the Process API's ``maxCloudCoverage``). The returned scenes are checked
   again here (a catalogue that ignores the filter cannot slip a cloudier scene
   through); no scene left is a clear error before any pixel is requested.
2. **Process API** (``POST {base_url}/api/v1/process``), one request per tile
   of the area's UTM grid (tiles at most ``data.sentinelhub.max_tile_px``
   pixels, the API's limit being 2500), least-cloudy mosaicking (``leastCC``)
   over the window, ``maxCloudCoverage`` = ``data.max_cloud_cover``, the
   reflectance bands the run needs (:func:`~deepsnow.data.download.common.download_bands`:
   the mask's B03 B08 B11 plus ``patches.bands``; B04 B03 B02 B08 B11 for an RGB
   run), then SCL and dataMask, in DN as one UINT16 GeoTIFF from an evalscript
   generated from that list (:func:`evalscript`; the 20 m bands B05 B06 B07 B8A
   B11 B12 resampled to 10 m by the service, nearest neighbour by default). The tiles are
   mosaicked into the area's grid one row of tiles at a time, each row
   written straight into the scene GeoTIFF (only that row in memory:
   a full Sentinel-2 tile stays near 1.2 GB), in the scene format with
   ``DEEPSNOW_DATE`` = the window ``start/end`` (leastCC may take different
   pixels from different acquisitions; the least-cloudy catalogue scene is
   recorded as ``DEEPSNOW_LEAST_CLOUDY``).

The collection is redefined against ``data.sentinelhub.base_url``
(``DataCollection.SENTINEL2_L2A`` is pinned to services.sentinel-hub.com and
would otherwise send Process requests there whatever the config says).

Credentials come from ``SH_CLIENT_ID``/``SH_CLIENT_SECRET`` or from the
sentinelhub profile ``data.sentinelhub.profile``, checked right before the
first request (a rerun served from the cache needs none); they are never
logged, never written (the config only names the profile) and never part of
an error message.

Retries: sentinelhub-py retries 5xx and connection errors
``max_download_attempts`` times (sleeping ``download_sleep_time`` x 3^k),
waits out 429 responses for their ``Retry-After`` (milliseconds) up to
``max_rate_limit_retries`` times; a 401 (expired or revoked token) drops the
cached session and retries once with a fresh token; a response that is not a
readable GeoTIFF of the requested bands (truncated) is dropped from the cache and fetched
again.

Cache: with ``--cache DIR`` the Process responses are kept by sentinelhub-py
(``DIR/<md5 of url and payload>/response.tiff``; the payload holds the evalscript, so
the key holds the band list: an RGB run's response never answers a 10-band request, nor the
reverse) and the catalogue results
here (``DIR/catalog/<hash>.json``), so a rerun makes no request at all. A
catalogue answer with no scene clear enough is not cached: the next run asks
again and sees new acquisitions of the window.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from deepsnow import DeepsnowError
from deepsnow.areas import Area
from deepsnow.data.download.common import (
    DownloadError,
    Pixels,
    area_grid,
    cache_key,
    download_bands,
    fetch_scene,
    read_cached_json,
    redact,
    remember_secret,
    scene_tags,
    split_grid,
    write_cached_json,
)

log = logging.getLogger("deepsnow.download.sentinelhub")

#: Copernicus Data Space Ecosystem endpoints (docs of sentinelhub-py, "configure").
CDSE_BASE_URL = "https://sh.dataspace.copernicus.eu"
CDSE_TOKEN_URL = "https://identity.dataspace.copernicus.eu/auth/realms/CDSE/protocol/openid-connect/token"

#: The evalscript's outputs after the reflectance bands.
AUX_OUTPUTS = ("SCL", "dataMask")


def evalscript(bands) -> str:
    """The Process API evalscript of a download fetching the reflectance ``bands`` (in that order): those
    bands, SCL and dataMask in DN as UINT16, the output bands in the same order (20 m bands resampled
    to 10 m by the service)."""
    outputs = tuple(bands) + AUX_OUTPUTS
    names = ", ".join(f'"{b}"' for b in outputs)
    values = ", ".join(f"s.{b}" for b in outputs)
    return f"""//VERSION=3
function setup() {{
  return {{
    input: [{{bands: [{names}], units: "DN"}}],
    output: {{bands: {len(outputs)}, sampleType: "UINT16"}}
  }};
}}
function evaluatePixel(s) {{
  return [{values}];
}}
"""


#: The reflectance bands of an RGB run (the mask's and the RGB's), and its evalscript.
FETCHED_BANDS = download_bands()
EVALSCRIPT = evalscript(FETCHED_BANDS)
OUTPUT_BANDS = FETCHED_BANDS + AUX_OUTPUTS
N_BANDS = len(OUTPUT_BANDS)


def _fail(area: Area, season: str, msg: str, secrets=()) -> DownloadError:
    """A DownloadError whose text holds no secret (``secrets``, the credentials, every token seen)."""
    _remember_tokens()
    return DownloadError(area.name, season, redact(msg, secrets))


def _one_line(text, limit: int = 400) -> str:
    """Remote text on one line, at most ``limit`` characters (redaction comes after, in :func:`_fail`)."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def make_config(sh: dict):
    """An ``SHConfig`` with the configured endpoints and retries, without credentials (:func:`log_in`)."""
    from sentinelhub import SHConfig

    cfg = SHConfig(use_defaults=True)
    cfg.sh_base_url = sh["base_url"].rstrip("/")
    cfg.sh_token_url = sh["token_url"]
    cfg.max_download_attempts = int(sh["max_download_attempts"])
    cfg.download_sleep_time = float(sh["download_sleep_time"])
    cfg.download_timeout_seconds = float(sh["download_timeout_seconds"])
    cfg.max_retries = int(sh["max_rate_limit_retries"])
    cfg.number_of_download_processes = 1
    return cfg


def log_in(cfg, sh: dict, area: Area, season: str) -> None:
    """Give ``cfg`` its credentials right before its first request; a no-op once it has them.

    Called only when a request must be sent: a rerun served entirely from the cache needs no credentials.
    """
    if cfg.sh_client_id and cfg.sh_client_secret:
        return
    cfg.sh_client_id, cfg.sh_client_secret = _credentials(sh, area, season)
    remember_secret(cfg.sh_client_id, cfg.sh_client_secret)  # redacted from every message and log line
    if urlparse(cfg.sh_token_url).scheme == "http" and not os.environ.get("OAUTHLIB_INSECURE_TRANSPORT"):
        raise _fail(
            area,
            season,
            f"data.sentinelhub.token_url {cfg.sh_token_url} is plain http: OAuth refuses it unless "
            "OAUTHLIB_INSECURE_TRANSPORT=1 is set (only ever for a local test server)",
        )


def _credentials(sh: dict, area: Area, season: str) -> tuple[str, str]:
    """The OAuth client id and secret: of the sentinelhub profile ``sh["profile"]``, else of the environment."""
    profile = sh.get("profile") or ""
    if not profile:
        cid, secret = os.environ.get("SH_CLIENT_ID", ""), os.environ.get("SH_CLIENT_SECRET", "")
        missing = [k for k, v in (("SH_CLIENT_ID", cid), ("SH_CLIENT_SECRET", secret)) if not v]
        if missing:
            raise _fail(
                area,
                season,
                f"no Sentinel Hub credentials: environment variable(s) {', '.join(missing)} not set. Set "
                "SH_CLIENT_ID and SH_CLIENT_SECRET (an OAuth client of Sentinel Hub or of the Copernicus Data "
                "Space Ecosystem), or name a sentinelhub profile in data.sentinelhub.profile",
            )
        return cid, secret
    from sentinelhub import SHConfig

    location = Path(SHConfig.get_config_location())
    if not location.exists():
        raise _fail(
            area,
            season,
            f"sentinelhub profile {profile!r} configured (data.sentinelhub.profile) but {location} does not "
            "exist; create the profile with `sentinelhub.config --profile NAME --sh_client_id ... "
            "--sh_client_secret ...`, or set SH_CLIENT_ID and SH_CLIENT_SECRET and no profile",
        )
    try:
        prof = SHConfig(profile)  # the environment's SH_CLIENT_ID/SH_CLIENT_SECRET take precedence, as before
    except KeyError:
        raise _fail(area, season, f"sentinelhub profile {profile!r} not found in {location}") from None
    if not (prof.sh_client_id and prof.sh_client_secret):
        raise _fail(area, season, f"sentinelhub profile {profile!r} has no sh_client_id/sh_client_secret")
    return prof.sh_client_id, prof.sh_client_secret


def collection_for(base_url: str):
    """Sentinel-2 L2A bound to ``base_url`` (one collection name per URL)."""
    from sentinelhub import DataCollection

    name = "DEEPSNOW_S2L2A_" + hashlib.sha1(base_url.rstrip("/").encode()).hexdigest()[:12]
    return DataCollection.SENTINEL2_L2A.define_from(name, service_url=base_url.rstrip("/"))


def _response(exc):
    """The HTTP response behind a sentinelhub or requests exception, if any."""
    resp = getattr(getattr(exc, "request_exception", None), "response", None)
    return resp if resp is not None else getattr(exc, "response", None)


def _status(exc) -> int | None:
    return getattr(_response(exc), "status_code", None)


def _remember_tokens() -> None:
    """Add the access tokens of sentinelhub-py's cached sessions to the redacted secrets."""
    try:
        from sentinelhub import SentinelHubDownloadClient

        for session in list(SentinelHubDownloadClient._CACHED_SESSIONS.values()):
            remember_secret((getattr(session, "_token", None) or {}).get("access_token"))
    except Exception:  # private API changed: the Bearer/access_token patterns of redact() still apply
        pass


def _drop_session(cfg) -> None:
    from sentinelhub import SentinelHubDownloadClient

    _remember_tokens()  # the revoked token may still appear in later error bodies
    try:
        SentinelHubDownloadClient._CACHED_SESSIONS.pop(SentinelHubDownloadClient._get_cache_key(cfg), None)
    except Exception:  # private API changed: drop every cached session instead
        SentinelHubDownloadClient.clear_cache()


def _failed_url(exc) -> str:
    """The URL (without query) of the failed request: its response's, or its own when no response came."""
    cause = getattr(exc, "request_exception", None) or exc
    for answer_or_request in (_response(exc), getattr(cause, "request", None)):
        url = getattr(answer_or_request, "url", None)
        if url:
            return url.split("?")[0]
    return ""


def _at_token_url(exc, cfg) -> bool:
    """Whether the failed request went to the token endpoint."""
    url = _failed_url(exc)
    return bool(url) and url == cfg.sh_token_url.split("?")[0]


def _http_failure(exc, cfg, what: str) -> str:
    """What failed, where, with which HTTP status, and what the service said (not yet redacted).

    A failed token request is "authentication failed", whatever request needed the token.
    """
    from sentinelhub.decoding import decode_sentinelhub_err_msg

    resp = _response(exc)
    url = _failed_url(exc)
    auth = _at_token_url(exc, cfg)
    head = "authentication failed" if auth else f"{what} failed"
    where = f"{head}: {url}" if url else head
    status = getattr(resp, "status_code", None)
    reason = getattr(resp, "reason", "") or ""
    try:
        said = decode_sentinelhub_err_msg(resp) if resp is not None else ""
    except Exception:
        said = ""
    hint = ""
    if auth and status in (400, 401, 403):
        hint = "; check SH_CLIENT_ID/SH_CLIENT_SECRET or the sentinelhub profile"
    elif status in (401, 403):
        hint = "; check the credentials and that data.sentinelhub.base_url/token_url belong to the same service"
    elif status is not None and status >= 500:
        hint = f" after {cfg.max_download_attempts} attempt(s) (data.sentinelhub.max_download_attempts)"
    if status is None:  # no response at all: connection refused, timeout, ...
        cause = getattr(exc, "request_exception", None) or exc
        return f"{where}: {type(cause).__name__}: {_one_line(cause)}"
    text = f"{where} answered HTTP {status} {reason}".rstrip() + hint
    return text + (f"; the service said: {_one_line(said)}" if said else "")


def _call(fn, cfg, area: Area, season: str, what: str):
    """Run one sentinelhub call; refresh the token once on 401; turn failures into a DownloadError.

    Every message is redacted: error bodies of real services may repeat the request's token
    or client id, and the token endpoint's the posted secret.
    """
    from oauthlib.oauth2.rfc6749.errors import OAuth2Error
    from sentinelhub.exceptions import DownloadFailedException, OutOfRequestsException

    secrets = (cfg.sh_client_id, cfg.sh_client_secret)
    for attempt in (0, 1):
        try:
            result = fn()
            _remember_tokens()
            return result
        except OutOfRequestsException:
            raise _fail(
                area,
                season,
                f"{what}: still rate-limited (HTTP 429 Too Many Requests) after {cfg.max_retries} attempts "
                "(data.sentinelhub.max_rate_limit_retries); try again later or lower the request rate",
                secrets,
            ) from None
        except DownloadFailedException as exc:
            status = _status(exc)
            if status == 401 and attempt == 0 and not _at_token_url(exc, cfg):
                log.warning("%s: HTTP 401 (access token expired or revoked): fetching a new token and retrying", what)
                _drop_session(cfg)
                continue
            raise _fail(area, season, _http_failure(exc, cfg, what), secrets) from None
        except OAuth2Error as exc:
            detail = _one_line(exc.description or "")
            raise _fail(
                area,
                season,
                f"authentication failed: {cfg.sh_token_url}: the token endpoint refused the "
                f"credentials ({exc.error}{': ' + detail if detail else ''}); check SH_CLIENT_ID/SH_CLIENT_SECRET "
                "or the sentinelhub profile",
                secrets,
            ) from None
        except DeepsnowError:
            raise
        except Exception as exc:  # requests errors, ValueError from the session, decoding...
            if _status(exc) is not None:  # a requests.HTTPError that sentinelhub-py let through
                raise _fail(area, season, _http_failure(exc, cfg, what), secrets) from None
            raise _fail(area, season, f"{what} failed: {type(exc).__name__}: {_one_line(exc)}", secrets) from None
    raise AssertionError("unreachable")


def clear_enough(scenes: list[dict], max_cc: float) -> list[dict]:
    """The scenes with cloud cover <= ``max_cc`` (the Process API's ``maxCloudCoverage`` is <= too),
    least cloudy first."""
    return sorted(
        (s for s in scenes if s["cloud_cover"] is not None and s["cloud_cover"] <= max_cc),
        key=lambda s: (s["cloud_cover"], s["datetime"] or "", s["id"] or ""),
    )


def search_catalog(
    cfg, collection, area: Area, season: str, max_cc: float, cache, before_request
) -> tuple[list[dict], bool]:
    """Catalogue scenes ``[{id, datetime, cloud_cover}]`` of the window (cached); and whether from the cache.

    ``before_request()`` runs before the request, not for an answer from the cache. An answer of which no
    scene is clear enough is not cached: the next run asks again and sees the window's new acquisitions.
    """
    start, end = area.window(season)
    cql2 = f"eo:cloud_cover <= {max_cc:g}"
    # the filter is part of the key: answers cached under the former "<" filter are asked again
    key = cache_key("sh-catalog", cfg.sh_base_url, collection.catalog_id, list(area.bbox), start, end, max_cc, cql2)
    cached = read_cached_json(cache, "catalog", key)
    if cached is not None:
        log.info("catalogue search for %s/%s read from the cache", area.name, season)
        return cached["features"], True
    from sentinelhub import CRS, BBox, SentinelHubCatalog

    def search():
        catalog = SentinelHubCatalog(config=cfg)
        found = catalog.search(
            collection,
            bbox=BBox(area.bbox, CRS.WGS84),
            time=(start, end),
            filter=cql2,
            fields={"include": ["id", "properties.datetime", "properties.eo:cloud_cover"], "exclude": []},
        )
        return list(found)

    before_request()
    feats = _call(search, cfg, area, season, "catalogue search")
    out = []
    for f in feats:
        props = f.get("properties") or {}
        cc = props.get("eo:cloud_cover")
        out.append(
            {"id": f.get("id"), "datetime": props.get("datetime"), "cloud_cover": None if cc is None else float(cc)}
        )
    if clear_enough(out, max_cc):
        write_cached_json(
            cache, "catalog", key, {"query": [cfg.sh_base_url, list(area.bbox), start, end, max_cc], "features": out}
        )
    return out, False


def decode_tiff(content: bytes, height: int, width: int, n_bands: int = N_BANDS) -> np.ndarray:
    """The (n_bands, h, w) uint16 array of a Process API GeoTIFF; ValueError when it is not one."""
    from rasterio.io import MemoryFile

    if not content:
        raise ValueError("empty response")
    try:
        with MemoryFile(content) as mem, mem.open() as src:
            if src.count != n_bands or (src.height, src.width) != (height, width):
                raise ValueError(
                    f"expected {n_bands} bands of {height} x {width} px, got {src.count} of {src.height} x {src.width}"
                )
            if src.dtypes[0] != "uint16":
                raise ValueError(f"expected uint16, got {src.dtypes[0]}")
            return src.read()
    except ValueError:
        raise
    except Exception as exc:  # RasterioIOError, CPLE_* on truncated data
        raise ValueError(f"not a readable GeoTIFF ({len(content)} bytes; truncated?): {exc}") from exc


def fetch_tile(
    cfg, collection, sub, area: Area, season: str, max_cc: float, order: str, cache, counts: dict, before_request,
    bands=FETCHED_BANDS,
) -> np.ndarray:
    """The pixels of one tile, ``bands`` then SCL and dataMask, from the cache or from a Process request
    (after ``before_request()``). The evalscript names the bands, so the cached response of a request
    for other bands never answers this one."""
    from sentinelhub import CRS, BBox, MimeType, MosaickingOrder, SentinelHubRequest, bbox_to_dimensions

    start, end = area.window(season)
    bbox = BBox(sub.bounds, crs=CRS(sub.epsg))
    size = bbox_to_dimensions(bbox, resolution=sub.res)
    if size != (sub.width, sub.height):  # cannot happen for a UTM bbox on the 10 m grid; be exact anyway
        size = (sub.width, sub.height)
    request = SentinelHubRequest(
        evalscript=evalscript(bands),
        input_data=[
            SentinelHubRequest.input_data(
                collection,
                time_interval=(start, end),
                maxcc=max_cc / 100.0,
                mosaicking_order=MosaickingOrder(order),
            )
        ],
        responses=[SentinelHubRequest.output_response("default", MimeType.TIFF)],
        bbox=bbox,
        size=size,
        config=cfg,
        data_folder=str(cache) if cache else None,
    )
    dl = request.download_list[0]
    cached_dir = Path(cache) / dl.get_hashed_name() if cache else None
    attempts = max(1, int(cfg.max_download_attempts))
    last = None
    for attempt in range(attempts):
        hit = bool(cached_dir) and (cached_dir / "response.tiff").exists() and attempt == 0
        if not hit:
            before_request()
        resp = _call(
            lambda: request.get_data(save_data=bool(cache), decode_data=False, redownload=attempt > 0)[0],
            cfg,
            area,
            season,
            "Process API request",
        )
        counts["cache_hits" if hit else "process_requests"] += 1
        try:
            return decode_tiff(resp.content, sub.height, sub.width, len(bands) + len(AUX_OUTPUTS))
        except ValueError as exc:
            last = exc
            log.warning("Process API response for %s/%s is unusable (%s); fetching it again", area.name, season, exc)
            if cached_dir is not None:
                shutil.rmtree(cached_dir, ignore_errors=True)
            if attempt + 1 < attempts:
                time.sleep(cfg.download_sleep_time * 3**attempt)
    raise _fail(area, season, f"Process API returned no readable GeoTIFF after {attempts} attempt(s): {last}")


def download(params: dict, area: Area, season: str, output, cache=None, bands=None) -> dict:
    """Fetch one area and season from Sentinel Hub and write the scene; return a JSON-able summary.
    ``bands``: the reflectance bands to fetch (default :data:`FETCHED_BANDS`, an RGB run's)."""
    return fetch_scene(SentinelHubSource(params, area, season, cache, bands), output)


class SentinelHubSource:
    """The Sentinel Hub steps of :func:`~deepsnow.data.download.common.fetch_scene` (module docstring, 1-2)."""

    name = "sentinelhub"
    log = log

    def __init__(self, params: dict, area: Area, season: str, cache=None, bands=None):
        self.area, self.season = area, season
        self.bands = tuple(bands) if bands is not None else FETCHED_BANDS
        self.outputs = self.bands + AUX_OUTPUTS
        self.sh = params["sentinelhub"]
        self.max_cc = float(params["max_cloud_cover"])
        self.res = float(params["resolution"])
        self.cfg = make_config(self.sh)  # credentials come with the first request (log_in)
        self.cache = Path(cache) if cache else None
        if self.cache:
            self.cache.mkdir(parents=True, exist_ok=True)
        self.sh_collection = collection_for(self.cfg.sh_base_url)
        self.endpoint, self.collection = self.cfg.sh_base_url, self.sh_collection.api_id
        self.grid = area_grid(area.bbox, self.res)

    def search(self) -> tuple[list[dict], bool]:
        start, end = self.area.window(self.season)
        log.info(
            "%s/%s: %d x %d px at %g m in %s, window %s..%s, cloud cover <= %g %% from %s",
            self.area.name,
            self.season,
            self.grid.width,
            self.grid.height,
            self.res,
            self.grid.crs,
            start,
            end,
            self.max_cc,
            self.endpoint,
        )
        return search_catalog(
            self.cfg, self.sh_collection, self.area, self.season, self.max_cc, self.cache, self._log_in
        )

    def _log_in(self) -> None:
        """Credentials into the config, checked before the first request (:func:`log_in`)."""
        log_in(self.cfg, self.sh, self.area, self.season)

    def choose(self, scenes: list[dict]) -> list[dict]:
        """Catalogue scenes within the cloud cover limit (checked again here), least cloudy first."""
        max_cc = self.max_cc
        ok = clear_enough(scenes, max_cc)
        if not ok:
            start, end = self.area.window(self.season)
            seen = ", ".join(f"{s['id']} ({s['cloud_cover']} %)" for s in scenes[:10]) or "none"
            raise _fail(
                self.area,
                self.season,
                f"no Sentinel-2 L2A scene with eo:cloud_cover <= {max_cc:g} % over bbox {list(self.area.bbox)} "
                f"between {start} and {end} (the catalogue returned {len(scenes)}: {seen}); widen the season "
                "window (data.seasons or the area's seasons) or raise data.max_cloud_cover",
            )
        log.info(
            "%s/%s: %d catalogue scene(s) with cloud cover <= %g %%; least cloudy %s (%s %%)",
            self.area.name,
            self.season,
            len(ok),
            max_cc,
            ok[0]["id"],
            ok[0]["cloud_cover"],
        )
        return ok

    def read(self, ok: list[dict]) -> Pixels:
        """The least-cloudy mosaic of the window over the area's grid, tile by tile (Process API), as row
        strips written straight into the scene: one row of tiles in memory at a time."""
        area, season, grid = self.area, self.season, self.grid
        start, end = area.window(season)
        tiles = split_grid(grid, int(self.sh["max_tile_px"]))
        counts = {"process_requests": 0, "cache_hits": 0}
        best = ok[0]
        tags = scene_tags(
            "sentinelhub",
            area,
            season,
            f"{start}/{end}",
            least_cloudy=f"{(best['datetime'] or '')[:10]} {best['id']} ({best['cloud_cover']:g} %)",
        )
        return Pixels(
            dn=None,
            scl=None,
            mask=None,
            grid=grid,
            tags=tags,
            requests=counts,
            bands=self.bands,
            facts={"tiles": len(tiles)},
            note=lambda: f"; {counts['process_requests']} Process request(s), {counts['cache_hits']} from the cache",
            strips=self._mosaic(tiles, counts),
            no_valid=(
                f"the Process API returned no valid pixel between {start} and {end} (no acquisition with cloud "
                f"cover <= {self.max_cc:g} % covers the area)"
            ),
        )

    def _mosaic(self, tiles: list, counts: dict):
        """Full-width row strips ``(row0, dn, scl, mask)`` of the area's grid, one per row of tiles, each
        from one Process request per tile; ``counts`` counts the requests."""
        grid = self.grid
        for r0, r1 in sorted({(t[0], t[1]) for t in tiles}):
            strip = np.zeros((len(self.outputs), r1 - r0, grid.width), dtype=np.uint16)
            for i, (t0, t1, c0, c1) in enumerate(tiles):
                if (t0, t1) != (r0, r1):
                    continue
                sub = grid.sub(t0, t1, c0, c1)
                log.info(
                    "%s/%s: tile %d/%d, %d x %d px",
                    self.area.name,
                    self.season,
                    i + 1,
                    len(tiles),
                    sub.width,
                    sub.height,
                )
                strip[:, :, c0:c1] = fetch_tile(
                    self.cfg,
                    self.sh_collection,
                    sub,
                    self.area,
                    self.season,
                    self.max_cc,
                    self.sh["mosaicking_order"],
                    self.cache,
                    counts,
                    self._log_in,
                    self.bands,
                )
            at = self.outputs.index
            yield r0, {b: strip[at(b)] for b in self.bands}, strip[at("SCL")], strip[at("dataMask")] > 0

    def details(self, scenes: list[dict], from_cache: bool, ok: list[dict], px: Pixels) -> dict:
        return {
            "max_cloud_cover": self.max_cc,
            "mosaicking_order": self.sh["mosaicking_order"],
            "bands": list(self.outputs),
            "grid": self.grid.as_dict(),
            "tiles": px.facts["tiles"],
            "catalog": {
                "from_cache": from_cache,
                "returned": len(scenes),
                "under_max_cloud_cover": len(ok),
                "least_cloudy": ok[0],
                "scenes": ok[:20],
            },
        }
