"""``deepsnow download --source stac`` against a mock STAC API and a Range-capable COG server on 127.0.0.1.

The mock (tests/mock_servers.py) serves the landing page, ``POST /search``
and the item assets as tiled GeoTIFFs with HTTP range requests; the pixels are
the real BigEarthNet-S2 example patches (B04 B03 B02 B08 at 10 m, B11 at 20 m,
a synthesized 20 m SCL) and synthetic ones. Covered: CRS, bounds, band order
and values (scale and offset of every processing baseline, both asset key
styles, 20 m bands resampled to 10 m); reads confined to the area's window;
choice of the least cloudy item, snow/ice filters, swath-edge items; faults
(429, 500, truncated COG, empty or too cloudy catalogue); the cache (a rerun
makes no request); the CLI and its sidecar; the STAC config (schema, dry run,
in sync with the paper config); areas from a GeoJSON file.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import yaml
from rasterio.warp import transform_bounds

from deepsnow import DeepsnowError
from deepsnow.areas import areas_of
from deepsnow.config import validate_config, validate_section
from deepsnow.data.download import DownloadError, download_scene
from deepsnow.data.download.stac import scale_offset
from deepsnow.data.scene import VERSION_TAG, read_scene
from helpers import REPO, copy_workflow, deepsnow, merged_config, snakemake
from mock_servers import MockStac, ben_sources, inner_bbox, synthetic_source
from synthetic import bigearthnet_example_dir, v1_stack

pytest.importorskip("bigearthnet_common")
pytest.importorskip("pystac_client")

AUSTRIA = "S2A_MSIL2A_20170613T101031_87_48"
FINLAND_SNOW = "S2B_MSIL2A_20180204T94161_57_38"
SUMMER = "2021-07-10T10:20:31Z"


@pytest.fixture(scope="module")
def ben(tmp_path_factory):
    return ben_sources(bigearthnet_example_dir(tmp_path_factory.mktemp("ben")))


@pytest.fixture
def stac(tmp_path):
    with MockStac(tmp_path / "served") as server:
        yield server


def params_for(server, bbox, name="area1", **extra) -> dict:
    st = {"url": server.url, "retry_delay": 0, "max_attempts": 3, "timeout": 10, **extra.pop("stac", {})}
    return validate_section("data", {"source": "stac", "aois": [{"name": name, "bbox": bbox}], "stac": st, **extra})


def expected(source, path, b11="nearest") -> np.ndarray:
    """The source's (7, h, w) pixels under the written grid (same CRS, aligned)."""
    with rasterio.open(path) as dst:
        t, (h, w) = dst.transform, dst.shape
    r0 = int(round((source.transform.f - t.f) / 10))
    c0 = int(round((t.c - source.transform.c) / 10))
    return source.stack10()[:, r0 : r0 + h, c0 : c0 + w]


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if ".part" in p.name]


# --------------------------------------------------------------------------- pixels


@pytest.mark.parametrize(
    "variant",
    [
        # baseline 04.00+: DN carry +1000, raster:bands offset -0.1, offset not applied by the provider
        dict(offset=True, baseline="04.00", offset_applied=False),
        # Earth Search already removed the offset (DN harmonised) but raster:bands still says -0.1
        dict(offset=False, declare_offset=True, baseline="05.09", offset_applied=True),
        # an old baseline with old-style asset keys and no offset at all
        dict(offset=False, baseline="02.14", old_keys=True),
    ],
)
def test_scene_has_right_crs_bounds_bands_and_values(stac, ben, tmp_path, variant):
    src = ben[AUSTRIA]
    stac.add_item(src, "S2A_33UVP_20210710_0_L2A", cloud_cover=3.0, datetime=SUMMER, **variant)
    bbox = inner_bbox(src)
    out = tmp_path / "scenes" / "area1" / "snowfree.tif"
    summary = download_scene(params_for(stac, bbox, stac={"resampling": "nearest"}), "area1", "snowfree", out)
    with rasterio.open(out) as ds:
        assert ds.crs.to_epsg() == 32633 and ds.res == (10.0, 10.0) and ds.tags()[VERSION_TAG] == "2"
        assert ds.descriptions == ("B02", "B03", "B04", "B08", "B11", "SCL", "dataMask")  # today's bands, by name
        env = transform_bounds("EPSG:4326", ds.crs, *bbox, densify_pts=21)
        b = ds.bounds
        assert b.left <= env[0] < b.left + 10 and b.top - 10 < env[3] <= b.top
        assert b.right - 10 < env[2] <= b.right and b.bottom <= env[1] < b.bottom + 10
        tags = ds.tags()
    data = v1_stack(out)
    assert tags["DEEPSNOW_SOURCE"] == "stac" and tags["DEEPSNOW_DATE"] == "2021-07-10"
    assert tags["DEEPSNOW_SCENE"] == "S2A_33UVP_20210710_0_L2A" and tags["DEEPSNOW_SEASON"] == "snowfree"
    # real pixels, offset removed: reflectance x 10000 exactly as in the patch (B11 and SCL nearest from 20 m)
    np.testing.assert_array_equal(data, expected(src, out))
    assert read_scene(out).data_mask.all()
    offsets = {v["offset"] for v in summary["scale_offset"].values()}
    assert offsets == ({-0.1} if variant.get("offset") else {0.0})


def test_b11_bilinear_is_close_and_scl_stays_nearest(stac, ben, tmp_path):
    src = ben[AUSTRIA]
    stac.add_item(src, "S2A_1", cloud_cover=3.0, datetime=SUMMER)
    out = tmp_path / "s.tif"
    download_scene(params_for(stac, inner_bbox(src)), "area1", "snowfree", out)
    data, exp = v1_stack(out), expected(src, out)
    np.testing.assert_array_equal(data[[0, 1, 2, 3, 5, 6]], exp[[0, 1, 2, 3, 5, 6]])
    b11, ref = data[4].astype(float), exp[4].astype(float)
    assert not np.array_equal(b11, ref)  # really interpolated ...
    assert np.abs(b11 - ref).mean() < 0.1 * ref.mean()  # ... but close to the 20 m values
    assert ref.min() - 1 <= b11.min() and b11.max() <= ref.max() + 1


def test_snowy_item_in_the_next_utm_zone_is_reprojected(stac, ben, tmp_path):
    src = ben[FINLAND_SNOW]  # EPSG:32635 item, area centre in zone 36
    stac.add_item(src, "S2B_35VPJ_20210204_0_L2A", cloud_cover=1.0, snow_ice=96.0, datetime="2021-02-04T09:41:00Z")
    params = params_for(stac, inner_bbox(src), stac={"snow_ice_percentage": {"snow_min": 50}})
    out = tmp_path / "snow.tif"
    summary = download_scene(params, "area1", "snow", out)
    scene = read_scene(out)
    assert scene.crs.to_epsg() == 32636 and scene.tags["DEEPSNOW_DATE"] == "2021-02-04"
    assert summary["reads"]["B04"]["resampling"] == "bilinear" and summary["reads"]["SCL"]["resampling"] == "nearest"
    valid = scene.data_mask > 0
    assert valid.mean() > 0.97 and (scene.scl[valid] == 11).mean() > 0.8
    assert stac.search_bodies[0]["query"] == {"eo:cloud_cover": {"lte": 20.0}, "s2:snow_ice_percentage": {"gte": 50.0}}


def test_only_the_area_window_is_read(stac, tmp_path):
    src = synthetic_source("synth", 32633, 500000.0, 5200000.0, 1024, dt.date(2021, 7, 10), seed=3)
    stac.add_item(src, "S2A_big", cloud_cover=1.0, datetime=SUMMER, blocksize=256)
    # an area of ~60 x 60 px in the middle of a 1024 x 1024 px tile
    x0, y0, x1, y1 = transform_bounds("EPSG:32633", "EPSG:4326", 503000, 5196400, 503600, 5197000)
    out = tmp_path / "s.tif"
    download_scene(params_for(stac, [x0, y0, x1, y1], stac={"resampling": "nearest"}), "area1", "snowfree", out)
    np.testing.assert_array_equal(v1_stack(out), expected(src, out))
    for band in ("B04", "B03", "B02", "B08", "B11", "SCL"):
        size = (stac.root / "S2A_big" / f"{band}.tif").stat().st_size
        served = stac.bytes_served(f"S2A_big/{band}.tif")
        assert 0 < served < 0.3 * size, (band, served, size)
    assert all(e["status"] in (200, 206) for e in stac.log)
    assert any(e["status"] == 206 for e in stac.log)


def test_least_cloudy_item_is_chosen(stac, ben, tmp_path):
    src = ben[AUSTRIA]
    stac.add_item(src, "S2A_cloudier", cloud_cover=15.0, datetime="2021-07-05T10:20:31Z")
    stac.add_item(src, "S2A_clearest", cloud_cover=2.5, datetime="2021-08-05T10:20:31Z")
    stac.add_item(src, "S2A_too_cloudy", cloud_cover=60.0, datetime="2021-07-20T10:20:31Z")
    out = tmp_path / "s.tif"
    summary = download_scene(params_for(stac, inner_bbox(src)), "area1", "snowfree", out)
    assert read_scene(out).tags["DEEPSNOW_SCENE"] == "S2A_clearest"
    assert summary["search"]["returned"] == 2  # the server applied eo:cloud_cover <= 20
    assert summary["item"]["cloud_cover"] == 2.5


def test_item_at_the_swath_edge_is_passed_over(stac, ben, tmp_path):
    src = ben[AUSTRIA]
    edge = dataclasses.replace(
        src, b10={k: v.copy() for k, v in src.b10.items()}, b20={k: v.copy() for k, v in src.b20.items()}
    )
    for v in edge.b10.values():
        v[:, :90] = 0  # nodata over most of the area
    for v in edge.b20.values():
        v[:, :45] = 0
    stac.add_item(edge, "S2A_edge", cloud_cover=1.0, datetime="2021-07-05T10:20:31Z")
    stac.add_item(src, "S2A_full", cloud_cover=4.0, datetime="2021-07-15T10:20:31Z")
    out = tmp_path / "s.tif"
    summary = download_scene(params_for(stac, inner_bbox(src)), "area1", "snowfree", out)
    assert [c["id"] for c in summary["candidates_tried"]] == ["S2A_edge", "S2A_full"]
    assert read_scene(out).tags["DEEPSNOW_SCENE"] == "S2A_full"
    assert summary["candidates_tried"][0]["valid_fraction"] < 0.5


def test_offset_rules():
    item = {"properties": {"s2:processing_baseline": "04.00"}}
    declared = {"raster:bands": [{"scale": 0.0001, "offset": -0.1}]}
    assert scale_offset(item, declared, "auto")[:2] == (0.0001, -0.1)
    assert scale_offset(item, {}, "auto")[:2] == (0.0001, -0.1)  # baseline says so
    assert scale_offset({"properties": {"earthsearch:boa_offset_applied": True}}, declared, "auto")[1] == 0.0
    assert scale_offset({"properties": {"s2:processing_baseline": "03.01"}}, declared, "auto")[1] == 0.0
    assert scale_offset({"properties": {"earthsearch:boa_offset_applied": True}}, declared, "raster")[1] == -0.1
    assert scale_offset(item, declared, "none")[1] == 0.0


# --------------------------------------------------------------------------- faults


def test_search_429_and_500_are_retried(stac, ben, tmp_path):
    src = ben[AUSTRIA]
    stac.add_item(src, "S2A_1", cloud_cover=3.0, datetime=SUMMER)
    stac.faults["search"] = ["429", "500"]
    out = tmp_path / "s.tif"
    download_scene(params_for(stac, inner_bbox(src)), "area1", "snowfree", out)
    assert stac.count("search", 429) == 1 and stac.count("search", 500) == 1 and stac.count("search", 200) == 1
    assert out.exists()


@pytest.mark.parametrize("n", [1, 5])  # 1: GDAL's own retry; 5: beyond it, our retry with GDAL's cache off
def test_cog_500_is_retried(stac, ben, tmp_path, n):
    src = ben[AUSTRIA]
    stac.add_item(src, "S2A_1", cloud_cover=3.0, datetime=SUMMER)
    stac.faults["file:S2A_1/B08.tif"] = ["500"] * n
    out = tmp_path / "s.tif"
    download_scene(params_for(stac, inner_bbox(src), stac={"resampling": "nearest"}), "area1", "snowfree", out)
    assert stac.count("file", 500) == n
    np.testing.assert_array_equal(v1_stack(out), expected(src, out))


def test_truncated_cog_fails_cleanly(stac, ben, tmp_path):
    src = ben[AUSTRIA]
    stac.add_item(src, "S2A_1", cloud_cover=3.0, datetime=SUMMER)
    f = stac.root / "S2A_1" / "B08.tif"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    out_dir = tmp_path / "scenes" / "area1"
    with pytest.raises(DownloadError) as err:
        download_scene(
            params_for(stac, inner_bbox(src)), "area1", "snowfree", out_dir / "snowfree.tif", cache=tmp_path / "cache"
        )
    msg = str(err.value)
    assert "area 'area1', season 'snowfree'" in msg and "S2A_1" in msg and "3 attempt" in msg, msg
    assert not (out_dir / "snowfree.tif").exists() and no_temp_files(tmp_path)
    assert not list((tmp_path / "cache").rglob("*.npy")) and not list((tmp_path / "cache").rglob("grid.json"))


def test_empty_catalogue_is_a_clear_error(stac, ben, tmp_path):
    stac.add_item(ben[AUSTRIA], "S2A_1", cloud_cover=3.0, datetime=SUMMER)
    out = tmp_path / "s.tif"
    with pytest.raises(
        DownloadError,
        match=r"area 'area1', season 'snow': no Sentinel-2 L2A item .* 2021-01-01 and 2021-02-28 .*returned 0",
    ):
        download_scene(params_for(stac, inner_bbox(ben[AUSTRIA])), "area1", "snow", out)
    assert stac.count("file") == 0 and not out.exists()


def test_cloudier_item_than_allowed_is_refused(stac, ben, tmp_path):
    stac.add_item(ben[AUSTRIA], "S2A_cloudy", cloud_cover=80.0, datetime=SUMMER)
    stac.ignore_query = True  # a server that ignores the query
    with pytest.raises(DownloadError, match=r"eo:cloud_cover lte 20 .*S2A_cloudy \(eo:cloud_cover 80\)"):
        download_scene(params_for(stac, inner_bbox(ben[AUSTRIA])), "area1", "snowfree", tmp_path / "s.tif")
    assert stac.count("file") == 0


def test_item_at_the_cloud_cover_limit_is_taken(stac, ben, tmp_path):
    # data.max_cloud_cover means <= for both sources (the Process API's maxCloudCoverage is <=)
    stac.add_item(ben[AUSTRIA], "S2A_limit", cloud_cover=20.0, datetime=SUMMER)
    summary = download_scene(params_for(stac, inner_bbox(ben[AUSTRIA])), "area1", "snowfree", tmp_path / "s.tif")
    assert summary["item"]["id"] == "S2A_limit" and summary["search"]["passed"] == 1


def test_answer_that_selects_nothing_is_not_cached(stac, ben, tmp_path):
    # asked again next time, so that new acquisitions in the window are seen
    stac.add_item(ben[AUSTRIA], "S2A_cloudy", cloud_cover=80.0, datetime=SUMMER)
    stac.ignore_query = True
    params, cache = params_for(stac, inner_bbox(ben[AUSTRIA])), tmp_path / "cache"
    with pytest.raises(DownloadError, match="S2A_cloudy"):
        download_scene(params, "area1", "snowfree", tmp_path / "s.tif", cache=cache)
    assert not list(cache.rglob("search/*.json"))
    stac.add_item(ben[AUSTRIA], "S2A_new", cloud_cover=3.0, datetime="2021-08-01T10:20:31Z")
    summary = download_scene(params, "area1", "snowfree", tmp_path / "s.tif", cache=cache)
    assert summary["item"]["id"] == "S2A_new" and not summary["search"]["from_cache"]
    assert len(stac.search_bodies) == 2


def test_snowy_item_in_the_snowfree_season_is_refused(stac, ben, tmp_path):
    stac.add_item(ben[AUSTRIA], "S2A_snowy", cloud_cover=3.0, snow_ice=30.0, datetime=SUMMER)
    stac.ignore_query = True
    params = params_for(stac, inner_bbox(ben[AUSTRIA]), stac={"snow_ice_percentage": {"snowfree_max": 1}})
    with pytest.raises(DownloadError, match=r"S2A_snowy \(s2:snow_ice_percentage 30\)"):
        download_scene(params, "area1", "snowfree", tmp_path / "s.tif")


# --------------------------------------------------------------------------- cache and command line


@pytest.mark.parametrize("name", [AUSTRIA, FINLAND_SNOW])  # B11 bilinear from 20 m; reprojected from the next zone
def test_reads_in_row_windows_equal_one_whole_read(stac, ben, tmp_path, monkeypatch, name):
    """The assets are read onto the grid 7 rows at a time (a full tile: 1024) into band files on disk:
    the scene equals one whole-grid read, and no scratch file stays beside it."""
    src = ben[name]
    stac.add_item(src, "S2X_1", cloud_cover=1.0, datetime=SUMMER)
    params = params_for(stac, inner_bbox(src))
    scenes = []
    for rows in ("7", "100000"):
        monkeypatch.setenv("DEEPSNOW_WINDOW_ROWS", rows)
        out = tmp_path / rows / "s.tif"
        download_scene(params, "area1", "snowfree", out)
        scenes.append(rasterio.open(out).read())
        assert [p.name for p in out.parent.iterdir()] == ["s.tif"]
    assert scenes[0].shape[1] > 7 * 3
    np.testing.assert_array_equal(scenes[0], scenes[1])


def test_damaged_pixel_cache_entry_is_read_again(stac, ben, tmp_path):
    src = ben[AUSTRIA]
    stac.add_item(src, "S2A_1", cloud_cover=3.0, datetime=SUMMER)
    cache = tmp_path / "cache"
    params = params_for(stac, inner_bbox(src))
    download_scene(params, "area1", "snowfree", tmp_path / "a.tif", cache=cache)
    (band,) = (cache / "pixels").glob("*/B08.npy")
    band.write_bytes(band.read_bytes()[:200])
    second = download_scene(params, "area1", "snowfree", tmp_path / "b.tif", cache=cache)
    assert second["requests"] == {"items_read": 1, "from_cache": 0}
    np.testing.assert_array_equal(rasterio.open(tmp_path / "a.tif").read(), rasterio.open(tmp_path / "b.tif").read())


def test_rerun_with_cache_makes_no_request(stac, ben, tmp_path):
    src = ben[AUSTRIA]
    stac.add_item(src, "S2A_1", cloud_cover=3.0, datetime=SUMMER)
    cache = tmp_path / "cache" / "stac"
    params = params_for(stac, inner_bbox(src))
    first = download_scene(params, "area1", "snowfree", tmp_path / "a.tif", cache=cache)
    n = len(stac.log)
    second = download_scene(params, "area1", "snowfree", tmp_path / "b.tif", cache=cache)
    assert len(stac.log) == n, stac.log[n:]
    assert first["requests"] == {"items_read": 1, "from_cache": 0}
    assert second["requests"] == {"items_read": 0, "from_cache": 1} and second["search"]["from_cache"]
    np.testing.assert_array_equal(rasterio.open(tmp_path / "a.tif").read(), rasterio.open(tmp_path / "b.tif").read())
    assert rasterio.open(tmp_path / "a.tif").transform == rasterio.open(tmp_path / "b.tif").transform


def test_cli_with_aoi_file_writes_scene_and_sidecar(stac, ben, tmp_path):
    src = ben[AUSTRIA]
    stac.add_item(src, "S2A_1", cloud_cover=3.0, datetime=SUMMER)
    x0, y0, x1, y1 = inner_bbox(src)
    work = tmp_path / "work"
    work.mkdir()
    (work / "areas.geojson").write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {
                            "name": "lakeside",
                            "seasons": {"snowfree": {"start": "2021-07-01", "end": "2021-07-31"}},
                        },
                        "geometry": {
                            "type": "Polygon",
                            "coordinates": [[[x0, y0], [x1, y0], [(x0 + x1) / 2, y1], [x0, y0]]],
                        },
                    }
                ],
            }
        )
    )
    data = {"source": "simulator", "aoi_file": "areas.geojson", "stac": {"url": stac.url, "retry_delay": 0}}
    out = Path("scenes/lakeside/snowfree.tif")
    proc = deepsnow(
        "download",
        "--params",
        json.dumps(data),
        "--source",
        "stac",
        "--aoi",
        "lakeside",
        "--season",
        "snowfree",
        "--output",
        str(out),
        "--cache",
        "cache",
        cwd=work,
    )
    assert proc.returncode == 0, proc.stderr
    scene = read_scene(work / out)
    assert scene.tags["DEEPSNOW_AOI"] == "lakeside" and scene.tags["DEEPSNOW_SOURCE"] == "stac"
    doc = json.loads((work / f"{out}.prov.json").read_text())
    assert doc["stage"] == "download" and doc["extra"]["window"] == ["2021-07-01", "2021-07-31"]
    assert [i["path"] for i in doc["inputs"]] == ["areas.geojson"]  # the area file is a hashed input
    assert doc["extra"]["bbox_wgs84"] == [x0, y0, x1, y1]


# --------------------------------------------------------------------------- configs




def test_stac_config_is_the_paper_config_from_earth_search():
    cfg = validate_config(merged_config("configs/stac.yaml"))
    paper = validate_config(merged_config("configs/paper.yaml"))
    assert cfg["data"]["source"] == "stac"
    assert cfg["data"]["stac"]["url"] == "https://earth-search.aws.element84.com/v1"
    assert cfg["data"]["stac"]["collection"] == "sentinel-2-l2a"
    assert cfg["run"] != paper["run"]
    for section in set(cfg) - {"run", "data"}:
        assert cfg[section] == paper[section], section
    for key in set(cfg["data"]) - {"source", "stac", "sentinelhub"}:
        assert cfg["data"][key] == paper["data"][key], key


def test_stac_dry_run_builds_the_full_dag(tmp_path):
    from test_workflow import job_counts

    work = copy_workflow(tmp_path / "wf")
    proc = snakemake(work, "-n", "-p", "--configfile", "configs/stac.yaml")  # no credentials needed
    counts = job_counts(proc.stdout + proc.stderr)
    n = len(validate_config(merged_config("configs/stac.yaml"))["data"]["aois"])
    assert counts["download"] == 2 * n and counts["mask"] == 2 * n and counts["split"] == 1
    assert "simulate" not in counts and counts["metrics_epoch"] == 200
    assert "results/paper-stac/cache/stac" in proc.stdout
    assert proc.stdout.count("--bands B04 B03 B02") == 2 * n  # the download fetches patches.bands too


def test_aoi_file_areas_join_the_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("a.geojson").write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {"name": "pond"},
                        "geometry": {
                            "type": "MultiPolygon",
                            "coordinates": [[[[10.0, 46.0], [10.05, 46.0], [10.05, 46.04], [10.0, 46.0]]]],
                        },
                    },
                ],
            }
        )
    )
    cfg = merged_config("configs/stac.yaml")
    cfg["data"]["aoi_file"] = "a.geojson"
    cfg = validate_config(cfg)
    assert areas_of(cfg["data"])[-1] == {"name": "pond", "bbox": [10.0, 46.0, 10.05, 46.04]}
    assert "pond" not in [a["name"] for a in cfg["data"]["aois"]]  # validation never rewrites the config
    cfg = validate_config(cfg)  # idempotent: validating again adds nothing twice
    assert [a["name"] for a in areas_of(cfg["data"])].count("pond") == 1


@pytest.mark.parametrize(
    "doc, words",
    [
        ({"type": "Feature"}, "FeatureCollection"),
        (
            {
                "type": "FeatureCollection",
                "features": [
                    {"properties": {}, "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1]]]}}
                ],
            },
            "property 'name'",
        ),
        (
            {
                "type": "FeatureCollection",
                "features": [{"properties": {"name": "p"}, "geometry": {"type": "Point", "coordinates": [0, 0]}}],
            },
            "Polygon",
        ),
        (
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "properties": {"name": "davos"},
                        "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]},
                    }
                ],
            },
            "also in data.aois",
        ),
        (
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "properties": {"name": "p", "seasons": {"snow": {"start": "2021"}}},
                        "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]},
                    }
                ],
            },
            "area 'p'",
        ),
        (None, "not found"),
    ],
)
def test_bad_aoi_file_is_named(tmp_path, monkeypatch, doc, words):
    monkeypatch.chdir(tmp_path)
    if doc is not None:
        Path("a.geojson").write_text(json.dumps(doc))
    cfg = merged_config("configs/stac.yaml")
    cfg["data"]["aoi_file"] = "a.geojson"
    with pytest.raises(DeepsnowError) as err:
        validate_config(cfg)
    assert "'data.aoi_file'" in str(err.value) and words in str(err.value), str(err.value)
