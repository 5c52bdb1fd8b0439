"""Mock Sentinel Hub and STAC servers on 127.0.0.1 for offline download tests.

Both are real HTTP servers (``http.server.ThreadingHTTPServer`` on port 0, in a
daemon thread), so sentinelhub-py, pystac-client, requests and GDAL talk to
them exactly as to the real services. Every request is logged in
``server.log`` (method, path, status, bytes sent) and faults can be queued per
endpoint.

``MockSentinelHub`` answers

* ``POST /auth/realms/main/protocol/openid-connect/token``: OAuth2 client
  credentials (checks id and secret), tokens ``tok-1``, ``tok-2``, ...;
* ``POST /api/v1/catalog/1.0.0/search``: a FeatureCollection with ``context``
  of the scenes intersecting bbox and datetime, CQL2 ``eo:cloud_cover < N``
  applied unless ``ignore_filter``;
* ``POST /api/v1/process``: a 7-band UINT16 GeoTIFF of the request's bbox (in
  its CRS) and width/height, rendered from the least cloudy scene of the time
  range under maxCloudCoverage (nearest-neighbour reprojection of the scene's
  10 m source array), zeros where no scene covers.

Faults (``server.faults[endpoint]``, consumed in order): ``"429"`` (Retry-After
in ms), ``"500"``, ``"expire"`` (revoke every token, answer 401),
``"truncate"`` (half the TIFF, 200). Faults whose body echoes the caller's
secrets, as careless services do: ``"401-echo"``, ``"403-echo"``, ``"429-echo"``,
``"500-echo"`` on the catalogue and Process API (the body repeats the
``Authorization`` header, the bearer token and the client id) and on the token
endpoint (``"401-echo"``, ``"500-echo"``: the body repeats the client id and
secret that were sent). Tokens are ``token_format.format(n=...)``;
``issued_tokens`` lists them, ``used_tokens`` holds those that authorised a
request, ``echoed`` every response body that repeated a secret.

``MockStac`` serves a STAC API (landing page with ``conformsTo`` and a search
link, ``POST /search`` with bbox, datetime, collections and ``query``
filtering unless ``ignore_query``) and, under ``/files/``, the item assets from
a folder, with HTTP range requests (206 / Content-Range) as GDAL needs them.
Faults: ``server.faults["search"]`` (``"429"``, ``"500"``) and
``server.file_faults[name]`` (``"500"``).

``ben_sources`` turns the six real BigEarthNet-S2 example patches of the
``bigearthnet-common`` wheel into served data: 10 m B04 B03 B02 B08, 20 m
B11, a synthesized 20 m SCL, in the patch's UTM CRS; ``with_all_bands`` adds
20 m B05 B06 B07 B8A B12 (distinct multiples of B11). The Sentinel Hub mock
renders the bands its request's evalscript lists, in that order; ``add_item``
writes an asset for every band its source has.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.io import MemoryFile
from rasterio.transform import Affine
from rasterio.warp import reproject, transform_bounds

SH_TOKEN_PATH = "/auth/realms/main/protocol/openid-connect/token"
CATALOG_PATH = "/api/v1/catalog/1.0.0/search"
PROCESS_PATH = "/api/v1/process"
BAND_ORDER = ("B04", "B03", "B02", "B08", "B11", "SCL", "dataMask")
ECHO_REASONS = {401: "Unauthorized", 403: "Forbidden", 429: "Too Many Requests", 500: "Internal Server Error"}
ECHO_FAULTS = tuple(f"{status}-echo" for status in ECHO_REASONS)


# --------------------------------------------------------------------------- data


@dataclass
class Source:
    """Pixels of one acquisition: 10 m bands and 20 m bands in one UTM CRS (DN, nodata 0)."""

    name: str
    crs: CRS
    transform: Affine  # 10 m grid
    b10: dict  # B04 B03 B02 B08 -> (H, W) uint16
    b20: dict  # B11 SCL -> (H/2, W/2) uint16
    date: dt.date
    meta: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return next(iter(self.b10.values())).shape

    @property
    def transform20(self) -> Affine:
        t = self.transform
        return Affine(t.a * 2, t.b, t.c, t.d, t.e * 2, t.f)

    def stack10(self, reflectance=BAND_ORDER[:5]) -> np.ndarray:
        """(len(reflectance) + 2, H, W) uint16: the ``reflectance`` bands, SCL and dataMask (1 where
        every one of them is non-zero); 20 m bands repeated 2 x 2 (nearest)."""
        h, w = self.shape
        up = {k: np.repeat(np.repeat(v, 2, 0), 2, 1)[:h, :w] for k, v in self.b20.items()}
        bands = [self.b10[b] if b in self.b10 else up[b] for b in reflectance] + [up["SCL"]]
        mask = np.ones((h, w), dtype=np.uint16)
        for b in bands:
            mask &= (b > 0).astype(np.uint16)
        return np.stack(bands + [mask]).astype(np.uint16)

    def wgs84_bounds(self) -> tuple[float, float, float, float]:
        h, w = self.shape
        t = self.transform
        return transform_bounds(self.crs, "EPSG:4326", t.c, t.f + h * t.e, t.c + w * t.a, t.f, densify_pts=21)


def synth_scl(b10: dict, b11_20: np.ndarray) -> np.ndarray:
    """A plausible 20 m SCL from the bands: 11 snow, 6 water, 4 vegetation, 5 otherwise."""
    h2, w2 = b11_20.shape

    def down(a):
        return a[: 2 * h2, : 2 * w2].reshape(h2, 2, w2, 2).astype(np.float64).mean(axis=(1, 3))

    g, r, n = down(b10["B03"]), down(b10["B04"]), down(b10["B08"])
    s = b11_20.astype(np.float64)
    ndsi = (g - s) / np.maximum(g + s, 1)
    ndvi = (n - r) / np.maximum(n + r, 1)
    scl = np.full((h2, w2), 5, dtype=np.uint16)
    scl[ndvi > 0.4] = 4
    scl[(n < 800) & (ndvi < 0.05)] = 6
    scl[(ndsi > 0.4) & (n > 1100)] = 11
    return scl


def ben_sources(example_dir: Path) -> dict[str, Source]:
    """The BigEarthNet-S2 example patches as served sources, by patch name."""
    out = {}
    for patch in sorted(p for p in Path(example_dir).iterdir() if p.is_dir()):
        name = patch.name
        b10 = {}
        for b in ("B04", "B03", "B02", "B08"):
            with rasterio.open(patch / f"{name}_{b}.tif") as src:
                b10[b] = src.read(1).astype(np.uint16)
                crs, transform = src.crs, src.transform
        with rasterio.open(patch / f"{name}_B11.tif") as src:
            b11 = src.read(1).astype(np.uint16)
        meta = json.loads((patch / f"{name}_labels_metadata.json").read_text())
        date = dt.datetime.strptime(meta["acquisition_date"], "%Y-%m-%d %H:%M:%S").date()
        out[name] = Source(name, crs, transform, b10, {"B11": b11, "SCL": synth_scl(b10, b11)}, date)
    return out


def synthetic_source(name: str, epsg: int, left: float, top: float, size: int, date: dt.date, seed: int = 0) -> Source:
    """A textured synthetic acquisition of ``size`` x ``size`` px at 10 m (size even)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    base = (1500 + 800 * np.sin(xx / 17.0) * np.cos(yy / 23.0)).astype(np.float64)
    b10 = {
        b: np.clip(base * f + rng.integers(0, 200, (size, size)), 1, 20000).astype(np.uint16)
        for b, f in (("B04", 0.8), ("B03", 0.9), ("B02", 1.0), ("B08", 1.6))
    }
    h2 = size // 2
    b11 = np.clip(base[::2, ::2] * 1.1 + rng.integers(0, 200, (h2, h2)), 1, 20000).astype(np.uint16)
    scl = rng.choice(np.array([4, 5, 6, 11], dtype=np.uint16), size=(h2, h2))
    return Source(name, CRS.from_epsg(epsg), Affine(10, 0, left, 0, -10, top), b10, {"B11": b11, "SCL": scl}, date)


#: The 20 m bands beyond B11 that :func:`with_all_bands` adds, and their factor on B11.
EXTRA_20M = {"B05": 0.55, "B06": 0.75, "B07": 0.85, "B8A": 1.3, "B12": 0.6}


def with_all_bands(source: Source, seed: int = 7) -> Source:
    """``source`` with every L2A band: B05 B06 B07 B8A B12 at 20 m, each a distinct multiple of its B11
    plus noise (non-zero where B11 is), so a band read in another band's place shows."""
    rng = np.random.default_rng(seed)
    b11 = source.b20["B11"].astype(np.float64)
    extra = {
        b: np.where(b11 > 0, np.clip(b11 * f + rng.integers(1, 300, b11.shape), 1, 20000), 0).astype(np.uint16)
        for b, f in EXTRA_20M.items()
    }
    return Source(source.name, source.crs, source.transform, dict(source.b10), {**source.b20, **extra}, source.date)


# --------------------------------------------------------------------------- servers


class _Server:
    """A ThreadingHTTPServer on 127.0.0.1:0 in a daemon thread; ``with`` starts and stops it."""

    handler_class: type

    def __init__(self):
        self.log: list[dict] = []
        self.faults: dict[str, list] = {}
        self.lock = threading.Lock()
        owner = self

        class Handler(self.handler_class):
            server_owner = owner

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def next_fault(self, endpoint: str):
        with self.lock:
            queue = self.faults.get(endpoint) or []
            return queue.pop(0) if queue else None

    def record(self, **entry):
        with self.lock:
            self.log.append(entry)

    def count(self, endpoint: str | None = None, status: int | None = None) -> int:
        with self.lock:
            return sum(
                1
                for e in self.log
                if (endpoint is None or e["endpoint"] == endpoint) and (status is None or e["status"] == status)
            )


class _Handler(BaseHTTPRequestHandler):
    server_owner: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep test output quiet
        pass

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(
        self,
        status: int,
        body: bytes = b"",
        ctype: str = "application/json",
        headers: dict | None = None,
        endpoint: str = "",
        head: bool = False,
    ):
        # Recorded before the client can see the response, so a test counting requests right
        # after its call returns never races the server thread.
        self.server_owner.record(
            method=self.command,
            path=self.path,
            endpoint=endpoint,
            status=status,
            bytes=0 if head else len(body),
            range=self.headers.get("Range"),
        )
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _json(self, status: int, obj, endpoint: str, headers: dict | None = None):
        self._send(status, json.dumps(obj).encode(), "application/json", headers, endpoint)


# ---- Sentinel Hub


@dataclass
class Scene:
    """One acquisition the mock Sentinel Hub knows about."""

    id: str
    datetime: str  # ISO, Z
    cloud_cover: float
    source: Source


class _SHHandler(_Handler):
    server_owner: "MockSentinelHub"

    def do_POST(self):
        sh = self.server_owner
        path = urllib.parse.urlparse(self.path).path
        body = self._body()
        if path == sh.token_path:
            return self._token(body)
        endpoint = {CATALOG_PATH: "catalog", PROCESS_PATH: "process"}.get(path)
        if endpoint is None:
            return self._json(404, {"error": {"status": 404, "message": f"no route {path}"}}, "unknown")
        fault = sh.next_fault(endpoint)
        if fault == "expire":
            sh.revoke_tokens()
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in sh.valid_tokens:
            return self._json(
                401, {"error": {"status": 401, "reason": "Unauthorized", "message": "token expired"}}, endpoint
            )
        with sh.lock:
            sh.used_tokens.add(auth[7:])
        if fault in ECHO_FAULTS:
            return self._echo(int(fault.split("-")[0]), endpoint, auth)
        if fault == "429":
            return self._json(
                429,
                {"error": {"status": 429, "reason": "Too Many Requests"}},
                endpoint,
                headers={"Retry-After": str(sh.retry_after_ms)},
            )
        if fault == "500":
            return self._json(500, {"error": {"status": 500, "reason": "Internal Server Error"}}, endpoint)
        try:
            payload = json.loads(body)
        except json.JSONDecodeError:
            return self._json(400, {"error": {"status": 400, "message": "bad json"}}, endpoint)
        if endpoint == "catalog":
            return self._json(200, sh.catalog(payload), endpoint)
        tiff = sh.process(payload)
        if fault == "truncate":
            tiff = tiff[: len(tiff) // 2]
        self._send(200, tiff, "image/tiff", endpoint="process")

    def _echo(self, status: int, endpoint: str, auth: str):
        """An error whose body repeats the request's secrets (token, Authorization header, client id)."""
        sh = self.server_owner
        token = auth[7:]
        body = {
            "error": {
                "status": status,
                "reason": ECHO_REASONS[status],
                "message": f"request with 'Authorization: {auth}' (client {sh.client_id}, token {token}) refused",
                "errors": [{"access_token": token, "client_id": sh.client_id}],
            }
        }
        with sh.lock:
            sh.echoed.append(json.dumps(body))
        headers = {"Retry-After": str(sh.retry_after_ms), "WWW-Authenticate": f'Bearer error="{token}"'}
        return self._json(status, body, endpoint, headers=headers if status in (401, 429) else None)

    def _token(self, body: bytes):
        sh = self.server_owner
        form = urllib.parse.parse_qs(body.decode())
        fault = sh.next_fault("token")
        if fault == "500":
            return self._json(500, {"error": "server_error"}, "token")
        if fault in ("401-echo", "500-echo"):
            sent_id, sent_secret = (form.get(k, [""])[0] for k in ("client_id", "client_secret"))
            status = int(fault.split("-")[0])
            desc = f"client_id={sent_id} client_secret={sent_secret} refused (raw body: {body.decode()})"
            doc = {"error": "invalid_client" if status == 401 else "server_error", "error_description": desc}
            with sh.lock:
                sh.echoed.append(json.dumps(doc))
            return self._json(status, doc, "token")
        if (
            form.get("grant_type") != ["client_credentials"]
            or form.get("client_id") != [sh.client_id]
            or form.get("client_secret") != [sh.client_secret]
        ):
            return self._json(
                401, {"error": "invalid_client", "error_description": "Invalid client credentials"}, "token"
            )
        with sh.lock:
            sh.n_tokens += 1
            tok = sh.token_format.format(n=sh.n_tokens)
            sh.valid_tokens.add(tok)
            sh.issued_tokens.append(tok)
        self._json(200, {"access_token": tok, "expires_in": 3600, "token_type": "Bearer"}, "token")


class MockSentinelHub(_Server):
    handler_class = _SHHandler

    def __init__(
        self,
        scenes: list[Scene],
        client_id: str = "deepsnow-test-client",
        client_secret: str = "s3cr3t-VALUE-never-logged",
        token_path: str = SH_TOKEN_PATH,
        token_format: str = "tok-{n}",
    ):
        self.scenes = scenes
        self.client_id, self.client_secret = client_id, client_secret
        self.token_path = token_path
        self.token_format = token_format
        self.issued_tokens: list[str] = []
        self.used_tokens: set[str] = set()
        self.echoed: list[str] = []
        self.valid_tokens: set[str] = set()
        self.n_tokens = 0
        self.ignore_filter = False
        self.blank_process = False  # render no data at all (as for a window without acquisitions)
        self.retry_after_ms = 20
        self.process_bodies: list[dict] = []
        self.catalog_bodies: list[dict] = []
        super().__init__()

    @property
    def token_url(self) -> str:
        return self.url + self.token_path

    def revoke_tokens(self):
        with self.lock:
            self.valid_tokens.clear()

    def config(self, **sh) -> dict:
        """The data.sentinelhub section pointing here, with test-speed retries."""
        return {
            "base_url": self.url,
            "token_url": self.token_url,
            "download_sleep_time": 0,
            "max_download_attempts": 3,
            "download_timeout_seconds": 10,
            **sh,
        }

    def _in_window(self, scene: Scene, start: str, end: str) -> bool:
        t = scene.datetime
        return start <= t <= end

    def catalog(self, payload: dict) -> dict:
        with self.lock:
            self.catalog_bodies.append(payload)
        start, end = payload["datetime"].split("/")
        bbox = payload.get("bbox")
        m = re.search(r"eo:cloud_cover\s*(<=|<)\s*([0-9.]+)", payload.get("filter") or "")
        feats = []
        for s in self.scenes:
            if not self._in_window(s, start, end):
                continue
            if bbox:
                x0, y0, x1, y1 = s.source.wgs84_bounds()
                if x1 < bbox[0] or x0 > bbox[2] or y1 < bbox[1] or y0 > bbox[3]:
                    continue
            if m and not self.ignore_filter:
                limit = float(m.group(2))
                if not (s.cloud_cover < limit if m.group(1) == "<" else s.cloud_cover <= limit):
                    continue
            feats.append(
                {
                    "type": "Feature",
                    "id": s.id,
                    "properties": {"datetime": s.datetime, "eo:cloud_cover": s.cloud_cover},
                    "geometry": None,
                }
            )
        return {
            "type": "FeatureCollection",
            "features": feats,
            "links": [],
            "context": {"limit": payload.get("limit", 100), "returned": len(feats)},
        }

    def process(self, payload: dict) -> bytes:
        with self.lock:
            self.process_bodies.append(payload)
        bounds = payload["input"]["bounds"]
        x0, y0, x1, y1 = bounds["bbox"]
        crs_url = bounds["properties"]["crs"]
        epsg = int(crs_url.rstrip("/").split("/")[-1])
        w, h = payload["output"]["width"], payload["output"]["height"]
        data_filter = payload["input"]["data"][0]["dataFilter"]
        tr = data_filter["timeRange"]
        maxcc = data_filter.get("maxCloudCoverage", 100)
        es = payload["evalscript"]
        asked = re.findall(r'"(\w+)"', re.search(r"input: \[\{bands: \[([^\]]*)\]", es).group(1))
        assert "UINT16" in es and asked[-2:] == ["SCL", "dataMask"], "unexpected evalscript"
        assert f"return [{', '.join('s.' + b for b in asked)}];" in es and f"bands: {len(asked)}," in es
        n = len(asked)
        dst_transform = Affine((x1 - x0) / w, 0.0, x0, 0.0, -(y1 - y0) / h, y1)
        out = np.zeros((n, h, w), dtype=np.uint16)
        chosen = sorted(
            (s for s in self.scenes if self._in_window(s, tr["from"], tr["to"]) and s.cloud_cover <= maxcc),
            key=lambda s: s.cloud_cover,
        )
        for s in [] if self.blank_process else chosen:  # leastCC: fill what is still empty from the next scene
            stack = s.source.stack10(asked[:-2])
            tile = np.zeros_like(out)
            for i in range(n):
                reproject(
                    stack[i],
                    tile[i],
                    src_transform=s.source.transform,
                    src_crs=s.source.crs,
                    dst_transform=dst_transform,
                    dst_crs=CRS.from_epsg(epsg),
                    resampling=Resampling.nearest,
                    src_nodata=0,
                    dst_nodata=0,
                )
            empty = out[n - 1] == 0
            out[:, empty] = tile[:, empty]
        with MemoryFile() as mem:
            with mem.open(
                driver="GTiff",
                width=w,
                height=h,
                count=n,
                dtype="uint16",
                crs=CRS.from_epsg(epsg),
                transform=dst_transform,
            ) as dst:
                dst.write(out)
            return bytes(mem.read())


# ---- STAC


LANDING_CONFORMS = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/item-search",
    "https://api.stacspec.org/v1.0.0/item-search#query",
    "https://api.stacspec.org/v1.0.0/item-search#fields",
    "https://api.stacspec.org/v1.0.0/item-search#sort",
]


class _StacHandler(_Handler):
    server_owner: "MockStac"

    def do_GET(self):
        self._route(head=False)

    def do_HEAD(self):
        self._route(head=True)

    def do_POST(self):
        st = self.server_owner
        path = urllib.parse.urlparse(self.path).path
        body = self._body()
        if path != "/search":
            return self._json(404, {"code": "NotFound"}, "unknown")
        fault = st.next_fault("search")
        if fault == "429":
            return self._json(429, {"code": "TooManyRequests"}, "search", headers={"Retry-After": "0"})
        if fault == "500":
            return self._json(500, {"code": "InternalServerError"}, "search")
        self._json(200, st.search(json.loads(body or b"{}")), "search")

    def _route(self, head: bool):
        st = self.server_owner
        path = urllib.parse.urlparse(self.path).path
        if path in ("/", ""):
            return self._json(200, st.landing(), "landing")
        if path == "/conformance":
            return self._json(200, {"conformsTo": LANDING_CONFORMS}, "landing")
        if path.startswith("/collections/"):
            return self._json(
                200,
                {
                    "type": "Collection",
                    "id": path.split("/")[2],
                    "stac_version": "1.0.0",
                    "description": "mock",
                    "license": "proprietary",
                    "links": [],
                    "extent": {"spatial": {"bbox": [[-180, -90, 180, 90]]}, "temporal": {"interval": [[None, None]]}},
                },
                "collection",
            )
        if path.startswith("/files/"):
            return self._file(path[len("/files/") :], head)
        self._json(404, {"code": "NotFound"}, "unknown")

    def _file(self, name: str, head: bool):
        st = self.server_owner
        f = st.root / name
        if ".." in name or not f.is_file():
            return self._send(404, b"not found", "text/plain", endpoint="file", head=head)
        if st.next_fault(f"file:{name}") == "500":
            return self._send(500, b"internal error", "text/plain", endpoint="file", head=head)
        data = f.read_bytes()
        size = len(data)
        rng = self.headers.get("Range")
        base = {"Accept-Ranges": "bytes"}
        if rng and not head:
            m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip())
            if not m:
                return self._send(416, b"", "text/plain", {"Content-Range": f"bytes */{size}"}, "file")
            a, b = m.groups()
            if a == "":
                start, end = max(0, size - int(b)), size - 1
            else:
                start, end = int(a), min(int(b) if b else size - 1, size - 1)
            if start >= size or start > end:
                return self._send(416, b"", "text/plain", {"Content-Range": f"bytes */{size}"}, "file")
            return self._send(
                206,
                data[start : end + 1],
                "image/tiff",
                {**base, "Content-Range": f"bytes {start}-{end}/{size}"},
                "file",
            )
        self._send(200, data, "image/tiff", base, "file", head=head)


#: Earth Search v1 asset keys: an RGB run's five bands and SCL, then the bands beyond them.
STAC_KEYS = {"B04": "red", "B03": "green", "B02": "blue", "B08": "nir", "B11": "swir16", "SCL": "scl"}
STAC_KEYS.update({"B05": "rededge1", "B06": "rededge2", "B07": "rededge3", "B8A": "nir08", "B12": "swir22"})


class MockStac(_Server):
    handler_class = _StacHandler

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.items: list[dict] = []
        self.ignore_query = False
        self.search_bodies: list[dict] = []
        super().__init__()

    def bytes_served(self, name: str) -> int:
        with self.lock:
            return sum(e["bytes"] for e in self.log if e["endpoint"] == "file" and e["path"] == f"/files/{name}")

    def landing(self) -> dict:
        return {
            "type": "Catalog",
            "id": "mock-earth-search",
            "stac_version": "1.0.0",
            "description": "mock STAC API",
            "conformsTo": LANDING_CONFORMS,
            "links": [
                {"rel": "self", "href": self.url + "/", "type": "application/json"},
                {"rel": "root", "href": self.url + "/", "type": "application/json"},
                {"rel": "search", "href": self.url + "/search", "type": "application/geo+json", "method": "POST"},
                {"rel": "search", "href": self.url + "/search", "type": "application/geo+json", "method": "GET"},
            ],
        }

    def search(self, body: dict) -> dict:
        with self.lock:
            self.search_bodies.append(body)
        bbox = body.get("bbox")
        collections = body.get("collections")
        start, end = (body.get("datetime") or "../..").split("/")
        feats = []
        for it in self.items:
            if collections and it["collection"] not in collections:
                continue
            t = it["properties"]["datetime"]
            if (start not in ("", "..") and t < start) or (end not in ("", "..") and t > end):
                continue
            if bbox:
                x0, y0, x1, y1 = it["bbox"]
                if x1 < bbox[0] or x0 > bbox[2] or y1 < bbox[1] or y0 > bbox[3]:
                    continue
            if not self.ignore_query and not _query_ok(it["properties"], body.get("query") or {}):
                continue
            feats.append(it)
        limit = int(body.get("limit") or 100)
        return {
            "type": "FeatureCollection",
            "features": feats[:limit],
            "links": [],
            "context": {"returned": len(feats[:limit]), "matched": len(feats), "limit": limit},
        }

    def add_item(
        self,
        source: Source,
        item_id: str,
        *,
        cloud_cover: float,
        snow_ice: float = 0.0,
        old_keys: bool = False,
        offset: bool = False,
        baseline: str = "03.01",
        offset_applied: bool | None = None,
        collection: str = "sentinel-2-l2a",
        datetime: str | None = None,
        blocksize: int = 16,
        declare_offset: bool | None = None,
    ) -> dict:
        """Write the source's bands as tiled GeoTIFFs under the file root and register an item.

        ``offset`` adds the +1000 DN of processing baseline 04.00+ to every valid pixel of the
        reflectance bands; ``declare_offset`` (default: ``offset``) declares ``raster:bands``
        offset -0.1.
        """
        declare_offset = offset if declare_offset is None else declare_offset
        keys = {b: k for b, k in STAC_KEYS.items() if b in source.b10 or b in source.b20}
        folder = self.root / item_id
        folder.mkdir(parents=True, exist_ok=True)
        assets = {}
        for band, key in keys.items():
            arr, transform = (
                (source.b10[band], source.transform) if band in source.b10 else (source.b20[band], source.transform20)
            )
            arr = arr.astype(np.uint16)
            if offset and band != "SCL":
                arr = np.where(arr > 0, arr + 1000, 0).astype(np.uint16)
            fname = f"{band}.tif"
            _write_tiled(folder / fname, arr, source.crs, transform, blocksize)
            rb = {"nodata": 0, "data_type": "uint16", "spatial_resolution": abs(transform.a)}
            if band != "SCL":
                rb.update(scale=0.0001, offset=-0.1 if declare_offset else 0.0)
            assets[band if old_keys else key] = {
                "href": f"{self.url}/files/{item_id}/{fname}",
                "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                "roles": ["data"],
                "raster:bands": [rb],
            }
        x0, y0, x1, y1 = source.wgs84_bounds()
        props = {
            "datetime": datetime or f"{source.date.isoformat()}T10:30:00Z",
            "eo:cloud_cover": cloud_cover,
            "s2:snow_ice_percentage": snow_ice,
            "s2:processing_baseline": baseline,
            "proj:epsg": source.crs.to_epsg(),
        }
        if offset_applied is not None:
            props["earthsearch:boa_offset_applied"] = offset_applied
        item = {
            "type": "Feature",
            "stac_version": "1.0.0",
            "id": item_id,
            "collection": collection,
            "stac_extensions": [],
            "bbox": [x0, y0, x1, y1],
            "geometry": {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]},
            "properties": props,
            "assets": assets,
            "links": [{"rel": "self", "href": f"{self.url}/collections/{collection}/items/{item_id}"}],
        }
        self.items.append(item)
        return item


def _write_tiled(path: Path, arr: np.ndarray, crs, transform: Affine, blocksize: int) -> None:
    """One uint16 band as a tiled GeoTIFF with nodata 0 (a COG asset as GDAL reads it)."""
    h, w = arr.shape
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=w,
        height=h,
        count=1,
        dtype="uint16",
        crs=crs,
        transform=transform,
        nodata=0,
        tiled=True,
        blockxsize=blocksize,
        blockysize=blocksize,
    ) as dst:
        dst.write(arr, 1)


def _query_ok(props: dict, query: dict) -> bool:
    ops = {
        "lt": lambda a, b: a < b,
        "lte": lambda a, b: a <= b,
        "gt": lambda a, b: a > b,
        "gte": lambda a, b: a >= b,
        "eq": lambda a, b: a == b,
    }
    for prop, conds in query.items():
        v = props.get(prop)
        if v is None:
            return False
        for op, ref in conds.items():
            if not ops[op](v, ref):
                return False
    return True


def inner_bbox(source: Source, margin_px: float = 15) -> list[float]:
    """A WGS84 bbox well inside the source's footprint (``margin_px`` 10 m pixels from each edge)."""
    h, w = source.shape
    t = source.transform
    left, top = t.c + margin_px * 10, t.f - margin_px * 10
    right, bottom = t.c + (w - margin_px) * 10, t.f - (h - margin_px) * 10
    # the inner rectangle of the projected box, so its UTM envelope stays inside the source
    x0, y0, x1, y1 = transform_bounds(source.crs, "EPSG:4326", left, bottom, right, top, densify_pts=21)
    dx, dy = (x1 - x0) * 0.08, (y1 - y0) * 0.08
    return [round(x0 + dx, 6), round(y0 + dy, 6), round(x1 - dx, 6), round(y1 - dy, 6)]
