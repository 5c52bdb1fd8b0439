"""``deepsnow download --source sentinelhub`` against a mock Sentinel Hub on 127.0.0.1.

The mock (tests/mock_servers.py) serves the token endpoint, the Catalog and the
Process API, rendering real Sentinel-2 L2A pixels (the BigEarthNet-S2 example
patches of the bigearthnet-common wheel). Covered: CRS, bounds, band order and
values of the written scene; splitting large areas; faults (429 with
Retry-After, 500, token expiry, truncated TIFF, empty or too cloudy catalogue,
missing or wrong credentials) ending in success or in a clear error naming the
area and season with nothing half-written; the request cache (a rerun makes no
request); profiles; the CLI with its provenance sidecar free of secrets; and
the paper config (schema, dry run of the full DAG).
"""

from __future__ import annotations

import copy
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
import yaml
from rasterio.warp import transform_bounds

from deepsnow import DeepsnowError
from deepsnow.config import validate_config, validate_section
from deepsnow.data.download import DownloadError, download_scene
from deepsnow.data.scene import VERSION_TAG, read_scene
from helpers import REPO, copy_workflow, deepsnow, env_with_venv, merged_config, snakemake
from mock_servers import MockSentinelHub, Scene, ben_sources, inner_bbox
from synthetic import bigearthnet_example_dir, v1_stack

pytest.importorskip("bigearthnet_common")
pytest.importorskip("sentinelhub")
pytestmark = pytest.mark.filterwarnings("ignore:Download rate limit hit")

AUSTRIA = "S2A_MSIL2A_20170613T101031_87_48"
FINLAND_SNOW = "S2B_MSIL2A_20180204T94161_57_38"


@pytest.fixture(scope="module")
def ben(tmp_path_factory):
    return ben_sources(bigearthnet_example_dir(tmp_path_factory.mktemp("ben")))


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """No ~/.config writes, plain-http OAuth allowed for the mock, no session leaking between tests."""
    from sentinelhub import SentinelHubDownloadClient

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    for k in ("SH_PROFILE", "SH_CLIENT_ID", "SH_CLIENT_SECRET"):
        monkeypatch.delenv(k, raising=False)
    SentinelHubDownloadClient.clear_cache()
    yield
    SentinelHubDownloadClient.clear_cache()


@pytest.fixture
def serve(monkeypatch):
    """Start a mock Sentinel Hub with the given scenes; credentials in the environment."""
    servers = []

    def start(*scenes, creds=True):
        sh = MockSentinelHub(list(scenes)).start()
        servers.append(sh)
        if creds:
            monkeypatch.setenv("SH_CLIENT_ID", sh.client_id)
            monkeypatch.setenv("SH_CLIENT_SECRET", sh.client_secret)
        return sh

    yield start
    for sh in servers:
        sh.stop()


def params_for(sh, bbox, name="area1", **extra) -> dict:
    sh_cfg = sh.config(**extra.pop("sentinelhub", {}))
    return validate_section(
        "data", {"source": "sentinelhub", "aois": [{"name": name, "bbox": bbox}], "sentinelhub": sh_cfg, **extra}
    )


def summer(source, cc=5.0, sid="S2A_summer"):
    return Scene(sid, "2021-07-10T10:20:31Z", cc, source)


def expected_window(source, path) -> np.ndarray:
    """The served source's (7, h, w) pixels under the written scene's grid (same CRS, aligned)."""
    with rasterio.open(path) as dst:
        t, shape = dst.transform, dst.shape
    r0 = int(round((source.transform.f - t.f) / 10))
    c0 = int(round((t.c - source.transform.c) / 10))
    assert r0 >= 0 and c0 >= 0
    return source.stack10()[:, r0 : r0 + shape[0], c0 : c0 + shape[1]]


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if ".part" in p.name]


# --------------------------------------------------------------------------- pixels and geometry


def test_scene_has_right_crs_bounds_bands_and_values(serve, ben, tmp_path):
    src = ben[AUSTRIA]
    sh = serve(summer(src))
    bbox = inner_bbox(src)
    out = tmp_path / "scenes" / "area1" / "snowfree.tif"
    summary = download_scene(params_for(sh, bbox), "area1", "snowfree", out)
    with rasterio.open(out) as ds:
        assert ds.crs.to_epsg() == 32633  # UTM zone of the bbox centre (13.7 E)
        assert ds.res == (10.0, 10.0) and ds.count == 7 and ds.dtypes[0] == "uint16"
        # the bands fetched today (the mask's and the RGB's), recorded by name in a version-2 scene
        assert ds.descriptions == ("B02", "B03", "B04", "B08", "B11", "SCL", "dataMask")
        assert ds.tags()[VERSION_TAG] == "2"
        tags = ds.tags()
        # the grid covers the bbox's UTM envelope, snapped outward by less than a pixel
        env = transform_bounds("EPSG:4326", ds.crs, *bbox, densify_pts=21)
        b = ds.bounds
        assert b.left <= env[0] < b.left + 10 and b.bottom <= env[1] < b.bottom + 10
        assert b.right - 10 < env[2] <= b.right and b.top - 10 < env[3] <= b.top
        assert ds.transform.c % 10 == 0 and ds.transform.f % 10 == 0
    data = v1_stack(out)
    assert tags["DEEPSNOW_SOURCE"] == "sentinelhub" and tags["DEEPSNOW_AOI"] == "area1"
    assert tags["DEEPSNOW_SEASON"] == "snowfree" and tags["DEEPSNOW_DATE"] == "2021-07-01/2021-08-31"
    # real BigEarthNet pixels, band for band, exactly as served
    np.testing.assert_array_equal(data, expected_window(src, out))
    scene = read_scene(out)  # the shared reader accepts it
    assert scene.data_mask.all() and scene.reflectance["B08"].mean() > 0.1
    assert summary["tiles"] == 1 and summary["requests"] == {"process_requests": 1, "cache_hits": 0}
    assert summary["catalog"]["least_cloudy"]["id"] == "S2A_summer"
    assert sh.count("token") == 1 and sh.count("catalog") == 1 and sh.count("process") == 1


def test_request_bodies_follow_the_config(serve, ben, tmp_path):
    src = ben[AUSTRIA]
    sh = serve(summer(src))
    params = params_for(
        sh, inner_bbox(src), max_cloud_cover=35, seasons={"snowfree": {"start": "2021-06-01", "end": "2021-07-31"}}
    )
    download_scene(params, "area1", "snowfree", tmp_path / "s.tif")
    cat = sh.catalog_bodies[0]
    assert cat["collections"] == ["sentinel-2-l2a"] and cat["filter"] == "eo:cloud_cover <= 35"
    assert cat["datetime"].startswith("2021-06-01T00:00:00") and cat["datetime"].split("/")[1].startswith(
        "2021-07-31T23:59:59"
    )
    body = sh.process_bodies[0]
    flt = body["input"]["data"][0]["dataFilter"]
    assert flt["mosaickingOrder"] == "leastCC" and flt["maxCloudCoverage"] == 35
    assert body["input"]["bounds"]["properties"]["crs"].endswith("/32633")
    assert body["output"]["responses"] == [{"identifier": "default", "format": {"type": "image/tiff"}}]
    assert 'units: "DN"' in body["evalscript"] and "UINT16" in body["evalscript"]
    # the evalscript (unchanged: cached responses stay valid) returns OUTPUT_BANDS, the order the mosaic reads
    from deepsnow.data.download.sentinelhub import OUTPUT_BANDS

    assert f"bands: {json.dumps(list(OUTPUT_BANDS))}" in body["evalscript"]
    assert f"return [{', '.join('s.' + b for b in OUTPUT_BANDS)}];" in body["evalscript"]


def test_log_line_says_the_snow_share_is_scl_snow(serve, ben, tmp_path, caplog):
    # SCL class 11 only: the mask's snow (SCL 11 or NDSI) can be much larger
    src = ben[FINLAND_SNOW]
    sh = serve(Scene("S2B_snow", "2021-02-04T09:41:00Z", 2.0, src))
    with caplog.at_level("INFO", logger="deepsnow.download"):
        download_scene(params_for(sh, inner_bbox(src)), "area1", "snow", tmp_path / "snow.tif")
    wrote = [r.getMessage() for r in caplog.records if ": wrote " in r.getMessage()]
    assert len(wrote) == 1 and "SCL snow " in wrote[0] and ", snow " not in wrote[0], wrote


def test_large_area_is_split_into_tiles_and_mosaicked(serve, ben, tmp_path):
    src = ben[AUSTRIA]
    sh = serve(summer(src))
    out = tmp_path / "big.tif"
    summary = download_scene(params_for(sh, inner_bbox(src), sentinelhub={"max_tile_px": 32}), "area1", "snowfree", out)
    with rasterio.open(out) as ds:
        h, w = ds.shape
    n = -(-h // 32) * -(-w // 32)
    assert summary["tiles"] == n > 1 and sh.count("process") == n
    assert all(b["output"]["width"] <= 32 and b["output"]["height"] <= 32 for b in sh.process_bodies)
    np.testing.assert_array_equal(v1_stack(out), expected_window(src, out))


def test_snowy_area_in_the_next_utm_zone(serve, ben, tmp_path):
    src = ben[FINLAND_SNOW]  # served in EPSG:32635, but the area's centre (30.3 E) lies in zone 36
    sh = serve(Scene("S2B_snow", "2021-02-04T09:41:00Z", 2.0, src))
    out = tmp_path / "snow.tif"
    download_scene(params_for(sh, inner_bbox(src)), "area1", "snow", out)
    scene = read_scene(out)
    assert scene.crs.to_epsg() == 32636 and scene.tags["DEEPSNOW_SEASON"] == "snow"
    assert scene.data_mask.mean() > 0.97
    valid = scene.data_mask > 0
    assert (scene.scl[valid] == 11).mean() > 0.8  # snow everywhere
    assert scene.reflectance["B03"][valid].mean() > 0.2


def test_collection_is_bound_to_the_configured_url():
    from deepsnow.data.download.sentinelhub import CDSE_BASE_URL, collection_for

    col = collection_for(CDSE_BASE_URL)
    assert col.service_url == CDSE_BASE_URL and col.api_id == "sentinel-2-l2a"
    assert collection_for(CDSE_BASE_URL) == col  # same name, same definition: no error
    assert collection_for("http://127.0.0.1:1").service_url == "http://127.0.0.1:1"


# --------------------------------------------------------------------------- faults


@pytest.mark.parametrize(
    "endpoint, faults, check",
    [
        ("process", ["429"], lambda sh: sh.count("process", 429) == 1),
        ("catalog", ["429"], lambda sh: sh.count("catalog", 429) == 1),
        ("process", ["500"], lambda sh: sh.count("process", 500) == 1),
        ("catalog", ["500", "500"], lambda sh: sh.count("catalog", 500) == 2),
        ("process", ["expire"], lambda sh: sh.count("process", 401) == 1 and sh.count("token") == 2),
        ("catalog", ["expire"], lambda sh: sh.count("catalog", 401) == 1 and sh.count("token") == 2),
        ("process", ["truncate"], lambda sh: sh.count("process", 200) == 2),
        ("token", ["500"], lambda sh: sh.count("token", 500) == 1),
    ],
)
def test_transient_faults_end_in_success(serve, ben, tmp_path, endpoint, faults, check):
    src = ben[AUSTRIA]
    sh = serve(summer(src))
    sh.faults[endpoint] = list(faults)
    out = tmp_path / "o" / "s.tif"
    t0 = time.monotonic()
    download_scene(params_for(sh, inner_bbox(src)), "area1", "snowfree", out, cache=tmp_path / "cache")
    assert check(sh), [(e["endpoint"], e["status"]) for e in sh.log]
    np.testing.assert_array_equal(v1_stack(out), expected_window(src, out))
    if faults == ["429"]:
        assert time.monotonic() - t0 >= sh.retry_after_ms / 1000  # Retry-After (milliseconds) was honoured
    assert no_temp_files(tmp_path)


def test_token_expiring_between_tiles_is_refreshed(serve, ben, tmp_path):
    src = ben[AUSTRIA]
    sh = serve(summer(src))
    sh.faults["process"] = ["ok", "ok", "expire"]  # the third of four tile requests meets a revoked token
    out = tmp_path / "s.tif"
    summary = download_scene(params_for(sh, inner_bbox(src), sentinelhub={"max_tile_px": 40}), "area1", "snowfree", out)
    assert summary["tiles"] == 4 and sh.count("process", 401) == 1 and sh.count("process", 200) == 4
    assert sh.count("token", 200) == 2
    np.testing.assert_array_equal(v1_stack(out), expected_window(src, out))


@pytest.mark.parametrize(
    "setup, words",
    [
        (lambda sh: sh.faults.__setitem__("process", ["truncate"] * 3), "no readable GeoTIFF after 3 attempt"),
        (lambda sh: sh.faults.__setitem__("process", ["500"] * 3), "Process API request failed"),
        (lambda sh: sh.faults.__setitem__("process", ["429"] * 3), "rate-limited"),
        (lambda sh: sh.faults.__setitem__("process", ["expire", "expire"]), "401"),
    ],
)
def test_persistent_faults_fail_cleanly(serve, ben, tmp_path, setup, words):
    src = ben[AUSTRIA]
    sh = serve(summer(src))
    setup(sh)
    out_dir = tmp_path / "scenes" / "area1"
    params = params_for(sh, inner_bbox(src), sentinelhub={"max_rate_limit_retries": 3})
    with pytest.raises(DownloadError) as err:
        download_scene(params, "area1", "snowfree", out_dir / "snowfree.tif", cache=tmp_path / "cache")
    msg = str(err.value)
    assert "area 'area1', season 'snowfree'" in msg and words in msg, msg
    assert sh.client_secret not in msg
    assert not (out_dir / "snowfree.tif").exists() and no_temp_files(tmp_path)
    assert not list((tmp_path / "cache").rglob("response.tiff"))  # no bad response left in the cache


def test_empty_catalogue_is_a_clear_error_before_any_pixel(serve, ben, tmp_path):
    sh = serve(summer(ben[AUSTRIA]))
    params = params_for(
        sh, inner_bbox(ben[AUSTRIA]), seasons={"snowfree": {"start": "2019-07-01", "end": "2019-08-31"}}
    )
    with pytest.raises(DownloadError, match=r"area 'area1', season 'snowfree': no Sentinel-2 L2A scene .* 2019-07-01"):
        download_scene(params, "area1", "snowfree", tmp_path / "s.tif")
    assert sh.count("process") == 0 and not (tmp_path / "s.tif").exists()


def test_cloudier_scene_than_allowed_is_refused(serve, ben, tmp_path):
    sh = serve(summer(ben[AUSTRIA], cc=80.0))
    sh.ignore_filter = True  # a catalogue that ignores the CQL2 filter
    with pytest.raises(DownloadError, match=r"cloud_cover <= 20 % .*S2A_summer \(80.0 %\)"):
        download_scene(params_for(sh, inner_bbox(ben[AUSTRIA])), "area1", "snowfree", tmp_path / "s.tif")
    assert sh.count("process") == 0 and not (tmp_path / "s.tif").exists()


def test_scene_at_the_cloud_cover_limit_is_taken(serve, ben, tmp_path):
    # data.max_cloud_cover means <= for the catalogue filter, the check here and the Process API alike
    sh = serve(summer(ben[AUSTRIA], cc=20.0))
    summary = download_scene(params_for(sh, inner_bbox(ben[AUSTRIA])), "area1", "snowfree", tmp_path / "s.tif")
    assert summary["catalog"]["least_cloudy"]["cloud_cover"] == 20.0 and sh.count("process", 200) == 1
    assert sh.process_bodies[0]["input"]["data"][0]["dataFilter"]["maxCloudCoverage"] == 20


def test_too_cloudy_answer_is_not_cached(serve, ben, tmp_path):
    # a catalogue answer that selects nothing is asked again next time: new acquisitions are seen
    sh = serve(summer(ben[AUSTRIA], cc=80.0, sid="S2A_cloudy"))
    sh.ignore_filter = True
    params, cache = params_for(sh, inner_bbox(ben[AUSTRIA])), tmp_path / "cache"
    with pytest.raises(DownloadError, match="S2A_cloudy"):
        download_scene(params, "area1", "snowfree", tmp_path / "s.tif", cache=cache)
    assert not list(cache.rglob("catalog/*.json"))
    sh.scenes.append(summer(ben[AUSTRIA], cc=5.0, sid="S2A_new"))
    summary = download_scene(params, "area1", "snowfree", tmp_path / "s.tif", cache=cache)
    assert summary["catalog"]["least_cloudy"]["id"] == "S2A_new" and sh.count("catalog") == 2


def test_no_valid_pixel_is_an_error(serve, ben, tmp_path):
    # the catalogue lists a clear scene but the Process API renders nothing over the area
    sh = serve(summer(ben[AUSTRIA]))
    sh.blank_process = True
    out = tmp_path / "scenes" / "s.tif"
    with pytest.raises(DownloadError, match="area 'area1', season 'snowfree': the Process API returned no valid pixel"):
        download_scene(params_for(sh, inner_bbox(ben[AUSTRIA])), "area1", "snowfree", out)
    assert sh.count("process") == 1 and not out.exists() and no_temp_files(tmp_path)


def test_missing_credentials_fail_before_any_request(serve, ben, tmp_path):
    sh = serve(summer(ben[AUSTRIA]), creds=False)
    with pytest.raises(DownloadError, match="SH_CLIENT_ID, SH_CLIENT_SECRET not set"):
        download_scene(params_for(sh, inner_bbox(ben[AUSTRIA])), "area1", "snowfree", tmp_path / "s.tif")
    assert sh.log == []


def test_wrong_credentials_fail_clearly_without_the_secret(serve, ben, tmp_path, monkeypatch):
    sh = serve(summer(ben[AUSTRIA]))
    monkeypatch.setenv("SH_CLIENT_SECRET", "wrong-secret-value-123")
    with pytest.raises(DownloadError) as err:
        download_scene(params_for(sh, inner_bbox(ben[AUSTRIA])), "area1", "snowfree", tmp_path / "s.tif")
    msg = str(err.value)
    assert "authentication" in msg and "SH_CLIENT_ID/SH_CLIENT_SECRET" in msg, msg
    assert "wrong-secret-value-123" not in msg and sh.client_secret not in msg
    assert sh.count("process") == 0


def test_wrong_credentials_are_reported_as_authentication_failure(serve, ben, tmp_path, monkeypatch):
    sh = serve(summer(ben[AUSTRIA]))
    monkeypatch.setenv("SH_CLIENT_SECRET", "wrong-secret-value-123")
    with pytest.raises(DownloadError) as err:
        download_scene(params_for(sh, inner_bbox(ben[AUSTRIA])), "area1", "snowfree", tmp_path / "s.tif")
    msg = str(err.value)
    assert f"authentication failed: {sh.token_url}" in msg and "catalogue search" not in msg, msg


def closed_port_url() -> str:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_unreachable_token_server_is_named(serve, ben, tmp_path):
    token_url = closed_port_url() + "/oauth/token"
    sh = serve(summer(ben[AUSTRIA]))
    params = params_for(sh, inner_bbox(ben[AUSTRIA]), sentinelhub={"token_url": token_url})
    with pytest.raises(DownloadError) as err:
        download_scene(params, "area1", "snowfree", tmp_path / "s.tif")
    msg = str(err.value)
    assert f"authentication failed: {token_url}: ConnectionError" in msg and sh.url not in msg, msg
    assert sh.log == []


def test_unreachable_api_is_named(serve, ben, tmp_path):
    base_url = closed_port_url()  # the token server answers, the catalogue does not
    sh = serve(summer(ben[AUSTRIA]))
    params = params_for(sh, inner_bbox(ben[AUSTRIA]), sentinelhub={"base_url": base_url})
    with pytest.raises(DownloadError) as err:
        download_scene(params, "area1", "snowfree", tmp_path / "s.tif")
    msg = str(err.value)
    assert f"catalogue search failed: {base_url}/api/v1/catalog/1.0.0/search: ConnectionError" in msg, msg
    assert sh.count("token", 200) == 1


def test_plain_http_token_url_needs_the_insecure_transport_flag(serve, ben, tmp_path, monkeypatch):
    sh = serve(summer(ben[AUSTRIA]))
    monkeypatch.delenv("OAUTHLIB_INSECURE_TRANSPORT")
    with pytest.raises(DownloadError, match="OAUTHLIB_INSECURE_TRANSPORT=1"):
        download_scene(params_for(sh, inner_bbox(ben[AUSTRIA])), "area1", "snowfree", tmp_path / "s.tif")
    assert sh.log == []


# --------------------------------------------------------------------------- cache, profiles


def test_rerun_with_cache_makes_no_request(serve, ben, tmp_path):
    from sentinelhub import SentinelHubDownloadClient

    src = ben[AUSTRIA]
    sh = serve(summer(src))
    params = params_for(sh, inner_bbox(src), sentinelhub={"max_tile_px": 48})
    cache = tmp_path / "cache" / "sentinelhub"
    first = download_scene(params, "area1", "snowfree", tmp_path / "a.tif", cache=cache)
    n = len(sh.log)
    assert n == 2 + first["tiles"] and first["requests"]["cache_hits"] == 0
    SentinelHubDownloadClient.clear_cache()  # a new process would have no session either
    second = download_scene(params, "area1", "snowfree", tmp_path / "b.tif", cache=cache)
    assert len(sh.log) == n, sh.log[n:]  # zero requests: no token, no catalogue, no process
    assert second["requests"] == {"process_requests": 0, "cache_hits": first["tiles"]}
    assert second["catalog"]["from_cache"] is True
    np.testing.assert_array_equal(rasterio.open(tmp_path / "a.tif").read(), rasterio.open(tmp_path / "b.tif").read())
    # sentinelhub-py's own cache layout: <hash>/request.json + response.tiff, a readable GeoTIFF
    responses = list(cache.glob("*/response.tiff"))
    assert len(responses) == first["tiles"]
    with rasterio.open(responses[0]) as ds:
        assert ds.count == 7 and ds.crs.to_epsg() == 32633


def test_rerun_from_the_cache_needs_no_credentials(serve, ben, tmp_path, monkeypatch):
    from sentinelhub import SentinelHubDownloadClient

    src = ben[AUSTRIA]
    sh = serve(summer(src))
    params, cache = params_for(sh, inner_bbox(src), sentinelhub={"max_tile_px": 48}), tmp_path / "cache"
    first = download_scene(params, "area1", "snowfree", tmp_path / "a.tif", cache=cache)
    SentinelHubDownloadClient.clear_cache()
    for k in ("SH_CLIENT_ID", "SH_CLIENT_SECRET"):
        monkeypatch.delenv(k)
    n = len(sh.log)
    second = download_scene(params, "area1", "snowfree", tmp_path / "b.tif", cache=cache)
    assert len(sh.log) == n and second["requests"] == {"process_requests": 0, "cache_hits": first["tiles"]}
    # a tile that must be fetched again needs the credentials, checked before its request
    next(cache.glob("*/response.tiff")).unlink()
    with pytest.raises(DownloadError, match="SH_CLIENT_ID, SH_CLIENT_SECRET not set"):
        download_scene(params, "area1", "snowfree", tmp_path / "c.tif", cache=cache)
    assert len(sh.log) == n and not (tmp_path / "c.tif").exists()


def test_credentials_from_a_sentinelhub_profile(serve, ben, tmp_path, monkeypatch):
    sh = serve(summer(ben[AUSTRIA]), creds=False)
    cfg_dir = Path(os.environ["XDG_CONFIG_HOME"]) / "sentinelhub"
    cfg_dir.mkdir(parents=True)
    (cfg_dir / "config.toml").write_text(
        f'[deepsnow-test]\nsh_client_id = "{sh.client_id}"\nsh_client_secret = "{sh.client_secret}"\n'
    )
    params = params_for(sh, inner_bbox(ben[AUSTRIA]), sentinelhub={"profile": "deepsnow-test"})
    download_scene(params, "area1", "snowfree", tmp_path / "s.tif")
    assert (tmp_path / "s.tif").exists() and sh.count("token", 200) == 1
    with pytest.raises(DownloadError, match="profile 'nope' not found"):
        download_scene(
            dict(params, sentinelhub=dict(params["sentinelhub"], profile="nope")),
            "area1",
            "snowfree",
            tmp_path / "t.tif",
        )


def test_unknown_area_and_simulator_source_are_refused(serve, ben, tmp_path):
    sh = serve(summer(ben[AUSTRIA]))
    params = params_for(sh, inner_bbox(ben[AUSTRIA]))
    with pytest.raises(DeepsnowError, match="--aoi 'elsewhere'"):
        download_scene(params, "elsewhere", "snow", tmp_path / "s.tif")
    with pytest.raises(DeepsnowError, match="deepsnow simulate"):
        download_scene(dict(params, source="simulator"), "area1", "snow", tmp_path / "s.tif")


# --------------------------------------------------------------------------- command line


def test_cli_writes_scene_and_sidecar_without_secrets(serve, ben, tmp_path, monkeypatch):
    src = ben[AUSTRIA]
    sh = serve(summer(src))
    work = tmp_path / "work"
    work.mkdir()
    data = {"source": "sentinelhub", "aois": [{"name": "area1", "bbox": inner_bbox(src)}], "sentinelhub": sh.config()}
    out = Path("results/run/scenes/area1/snowfree.tif")
    args = [
        "download",
        "--params",
        json.dumps(data),
        "--aoi",
        "area1",
        "--season",
        "snowfree",
        "--output",
        str(out),
        "--cache",
        "results/run/cache/sentinelhub",
    ]
    proc = deepsnow(*args, cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert (work / out).exists()
    doc = json.loads((work / f"{out}.prov.json").read_text())
    assert doc["stage"] == "download" and doc["config_section"] == "data"
    assert doc["config"]["sentinelhub"]["base_url"] == sh.url and doc["extra"]["aoi"] == "area1"
    assert doc["package"]["code_sha256"]
    # the secret (and the id) never reach an output, a sidecar, the cache or the log
    (work / "stderr.log").write_text(proc.stderr + proc.stdout)
    for f in work.rglob("*"):
        if f.is_file():
            blob = f.read_bytes()
            assert sh.client_secret.encode() not in blob, f
            assert sh.client_id.encode() not in blob, f
    # rerun through the CLI: served from the cache, zero requests, no credentials needed
    n = len(sh.log)
    monkeypatch.delenv("SH_CLIENT_ID")
    monkeypatch.delenv("SH_CLIENT_SECRET")
    proc = deepsnow(*args[:-4], "--output", "again.tif", "--cache", "results/run/cache/sentinelhub", cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert len(sh.log) == n


def test_workflow_download_rule_against_the_mock(serve, ben, tmp_path):
    """The Snakemake rule end to end: scenes, sidecars, logs; no secret anywhere; a rerun is a no-op."""
    import subprocess
    import sys

    src = ben[AUSTRIA]
    sh = serve(summer(src), Scene("S2A_winter", "2021-01-20T10:20:31Z", 3.0, src))
    work = copy_workflow(tmp_path / "wf")
    cfg = {
        "run": "mock",
        "split": {"test_aois": []},
        "features": {"extractors": ["inception", "resnet50"]},  # the demo's simcover needs simulator labels
        "data": {
            "source": "sentinelhub",
            "aois": [{"name": "lake", "bbox": inner_bbox(src)}],
            "sentinelhub": sh.config(),
        },
    }
    (work / "mock.yaml").write_text(yaml.safe_dump(cfg))
    env = dict(
        env_with_venv(),
        SH_CLIENT_ID=sh.client_id,
        SH_CLIENT_SECRET=sh.client_secret,
        OAUTHLIB_INSECURE_TRANSPORT="1",
        XDG_CONFIG_HOME=str(tmp_path / "xdg"),
    )
    targets = ["results/mock/scenes/lake/snowfree.tif", "results/mock/scenes/lake/snow.tif"]
    cmd = [str(Path(sys.executable).parent / "snakemake"), "--cores", "2", "-p", *targets, "--configfile", "mock.yaml"]
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    for t in targets:
        scene = read_scene(work / t)
        assert scene.tags["DEEPSNOW_AOI"] == "lake" and scene.crs.to_epsg() == 32633
        assert json.loads((work / f"{t}.prov.json").read_text())["stage"] == "download"
    assert read_scene(work / targets[1]).tags["DEEPSNOW_DATE"] == "2021-01-01/2021-02-28"
    assert list((work / "results/mock/cache/sentinelhub").glob("*/response.tiff"))
    assert (work / "results/mock/logs/download/lake_snow.log").exists()
    (work / "snakemake-output.log").write_text(out)
    for f in work.rglob("*"):
        if f.is_file() and ("results" in f.parts or ".snakemake" in f.parts or f.suffix == ".log"):
            blob = f.read_bytes()
            assert sh.client_secret.encode() not in blob and sh.client_id.encode() not in blob, f
    n = len(sh.log)
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "Nothing to be done" in proc.stdout + proc.stderr
    assert len(sh.log) == n


def test_cli_error_is_one_line_naming_area_and_season(serve, ben, tmp_path):
    sh = serve(summer(ben[AUSTRIA]), creds=False)
    data = {
        "source": "sentinelhub",
        "aois": [{"name": "area1", "bbox": inner_bbox(ben[AUSTRIA])}],
        "sentinelhub": sh.config(),
    }
    env = {k: v for k, v in env_with_venv().items() if k not in ("SH_CLIENT_ID", "SH_CLIENT_SECRET")}
    import subprocess
    import sys

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "deepsnow.cli",
            "download",
            "--params",
            json.dumps(data),
            "--aoi",
            "area1",
            "--season",
            "snow",
            "--output",
            str(tmp_path / "x.tif"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "deepsnow download: error: area 'area1', season 'snow': no Sentinel Hub credentials" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "x.tif").exists()


def test_cli_help():
    proc = deepsnow("download", "--help")
    assert proc.returncode == 0
    for word in ("--aoi", "--season", "--output", "--cache", "--source", "--params"):
        assert word in proc.stdout


# --------------------------------------------------------------------------- the paper config




def test_paper_config_is_the_papers_setting():
    cfg = validate_config(merged_config("configs/paper.yaml"))
    data = cfg["data"]
    assert data["source"] == "sentinelhub" and data["resolution"] == 10
    assert 12 <= len(data["aois"]) <= 20  # four regions; tests/test_plan.py counts their patches
    for a in data["aois"]:
        x0, y0, x1, y1 = a["bbox"]
        lat = (y0 + y1) / 2
        assert 40 <= abs(lat) <= 65, a  # snowy mid-latitudes
        w_km, h_km = (x1 - x0) * 111.32 * np.cos(np.radians(lat)), (y1 - y0) * 111.32
        assert 35 <= w_km <= 45 and 35 <= h_km <= 45, (a["name"], w_km, h_km)  # ~39 km: 225 windows of 256 px
    names = {a["name"] for a in data["aois"]}
    assert set(cfg["split"]["test_aois"]) < names
    p, g = cfg["patches"], cfg["gan"]
    assert (p["size"], p["stride"]) == (256, 256)
    assert (g["ngf"], g["ndf"], g["n_blocks"], g["load_size"], g["crop_size"]) == (64, 64, 9, 286, 256)
    assert g["n_epochs"] + g["n_epochs_decay"] == 200 and g["n_epochs"] == 100
    assert (
        cfg["features"]["inception"]["weights"] == "imagenet" and cfg["features"]["resnet50"]["weights"] == "imagenet"
    )
    assert cfg["metrics"]["rf_repeats"] == 100 and cfg["metrics"]["rf_folds"] == 2
    sh = data["sentinelhub"]
    assert sh["base_url"] == "https://services.sentinel-hub.com" and not sh["profile"]
    # the CDSE endpoints are documented next to it
    text = (REPO / "configs" / "paper.yaml").read_text()
    assert "https://sh.dataspace.copernicus.eu" in text and "identity.dataspace.copernicus.eu" in text


@pytest.mark.parametrize(
    "data, key, words",
    [
        ({"seasons": {"snow": {"start": "2021-03-01", "end": "2021-01-01"}}}, "data.seasons.snow", "before start"),
        ({"seasons": {"snow": {"start": "2021-02-30", "end": "2021-03-01"}}}, "data.seasons.snow", "real dates"),
        (
            {"sentinelhub": {"base_url": "https://user:pw@services.sentinel-hub.com"}},
            "data.sentinelhub.base_url",
            "does not match",
        ),
        ({"sentinelhub": {"max_tile_px": 4000}}, "data.sentinelhub.max_tile_px", "maximum"),
        ({"max_cloud_cover": 120}, "data.max_cloud_cover", "maximum"),
        ({"sentinelhub": {"client_secret": "x"}}, "data.sentinelhub", "client_secret"),
    ],
)
def test_bad_download_keys_are_named(data, key, words):
    cfg = merged_config("configs/paper.yaml")
    for k, v in data.items():
        cfg["data"][k] = {**cfg["data"].get(k, {}), **v} if isinstance(v, dict) else v
    with pytest.raises(DeepsnowError) as err:
        validate_config(cfg)
    assert f"'{key}" in str(err.value) and words in str(err.value), str(err.value)


def test_per_area_season_override():
    from deepsnow.areas import find_area

    data = validate_config(merged_config("configs/paper.yaml"))["data"]
    assert find_area(data, "tampere").window("snow") == ("2021-02-15", "2021-03-31")
    assert find_area(data, "tampere").window("snowfree") == ("2021-06-15", "2021-08-31")
    assert find_area(data, "madison").window("snow") == ("2021-01-01", "2021-02-28")


def test_paper_dry_run_builds_the_full_dag(tmp_path):
    from test_workflow import job_counts

    work = copy_workflow(tmp_path / "wf")
    cfg = validate_config(merged_config("configs/paper.yaml"))
    n = len(cfg["data"]["aois"])
    import subprocess
    import sys

    env = dict(env_with_venv(), SH_CLIENT_ID="dummy-id", SH_CLIENT_SECRET="dummy-secret")
    cmd = [str(Path(sys.executable).parent / "snakemake"), "--cores", "2", "-n", "--configfile", "configs/paper.yaml"]
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    counts = job_counts(out)
    assert counts["download"] == 2 * n and "simulate" not in counts
    assert counts["mask"] == 2 * n and counts["patches"] == 2 * n and counts["split"] == 1
    assert counts["train"] == 1 and counts["embed_samples"] == 400 and counts["metrics_epoch"] == 200
    assert "dummy-secret" not in out
    # without credentials Snakemake stops before any job and names the variables
    env = {k: v for k, v in env_with_venv().items() if k not in ("SH_CLIENT_ID", "SH_CLIENT_SECRET")}
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0 and "SH_CLIENT_ID" in proc.stdout + proc.stderr
    # a profile instead: no environment variables required
    prof = tmp_path / "profile.yaml"
    prof.write_text(yaml.safe_dump({"data": {"sentinelhub": {"profile": "mine"}}}))
    proc = subprocess.run(cmd + [str(prof)], cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]


def test_demo_dry_run_still_simulates(tmp_path):
    from test_workflow import job_counts

    work = copy_workflow(tmp_path / "wf")
    counts = job_counts(snakemake(work, "-n").stdout)
    assert "download" not in counts and counts["simulate"] == 4
