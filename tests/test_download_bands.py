"""Downloads fetch exactly the bands a run needs (issue #28 item 1): the mask's B03 B08 B11 plus
``patches.bands``, through both sources, against the mock servers on 127.0.0.1 (tests/mock_servers.py).

Covered: the band list (:func:`download_bands`) and its refusals; an RGB run's request unchanged
(the same evalscript text and the same COG assets as before the band list existed); a 10-band
download through Sentinel Hub and through Earth Search writing a version-2 scene with those bands
by name, every band's values right (the BOA offset removed per band); the caches keyed on the
band list (an RGB entry never answers a 10-band request, nor the reverse); the CLI's ``--bands``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio

from deepsnow import DeepsnowError
from deepsnow.config import validate_section
from deepsnow.data.download import download_scene
from deepsnow.data.download.common import download_bands
from deepsnow.data.scene import VERSION_TAG, read_scene
from mock_servers import MockSentinelHub, MockStac, Scene, ben_sources, inner_bbox, with_all_bands
from synthetic import bigearthnet_example_dir

pytest.importorskip("bigearthnet_common")

AUSTRIA = "S2A_MSIL2A_20170613T101031_87_48"
SUMMER = "2021-07-10T10:20:31Z"
ALL10 = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]
#: The evalscript every download sent before the band list existed (an RGB run's, byte for byte).
RGB_EVALSCRIPT = """//VERSION=3
function setup() {
  return {
    input: [{bands: ["B04", "B03", "B02", "B08", "B11", "SCL", "dataMask"], units: "DN"}],
    output: {bands: 7, sampleType: "UINT16"}
  };
}
function evaluatePixel(s) {
  return [s.B04, s.B03, s.B02, s.B08, s.B11, s.SCL, s.dataMask];
}
"""


@pytest.fixture(scope="module")
def ben(tmp_path_factory):
    return ben_sources(bigearthnet_example_dir(tmp_path_factory.mktemp("ben")))


@pytest.fixture(scope="module")
def austria(ben):
    return with_all_bands(ben[AUSTRIA])


def by_name(path) -> dict:
    with rasterio.open(path) as ds:
        assert ds.tags()[VERSION_TAG] == "2"
        return {name: ds.read(i + 1) for i, name in enumerate(ds.descriptions)}


def served(source, path, bands) -> dict:
    """The source's DN of ``bands`` (20 m ones repeated 2 x 2), SCL and dataMask under the scene's grid."""
    with rasterio.open(path) as dst:
        t, (h, w) = dst.transform, dst.shape
    r0, c0 = int(round((source.transform.f - t.f) / 10)), int(round((t.c - source.transform.c) / 10))
    stack = source.stack10(bands)[:, r0 : r0 + h, c0 : c0 + w]
    return dict(zip(list(bands) + ["SCL", "dataMask"], stack))


# --------------------------------------------------------------------------- the band list


def test_download_bands_are_the_masks_plus_the_patches_in_fetch_order():
    assert download_bands() == ("B04", "B03", "B02", "B08", "B11")  # an RGB run: as before
    assert download_bands(["B04", "B03", "B02"]) == download_bands()
    assert download_bands(["B12"]) == ("B03", "B08", "B11", "B12")
    ten = ("B04", "B03", "B02", "B08", "B11", "B05", "B06", "B07", "B8A", "B12")
    assert download_bands(list(reversed(ALL10))) == download_bands(ALL10) == ten
    with pytest.raises(DeepsnowError, match=r"key 'patches.bands': unknown band names \['B10'\] \(allowed: \["):
        download_bands(["B04", "B10"])


def test_rgb_run_sends_the_same_evalscript_as_before():
    from deepsnow.data.download.sentinelhub import EVALSCRIPT, N_BANDS, evalscript

    assert EVALSCRIPT == RGB_EVALSCRIPT and evalscript(download_bands(["B04", "B03", "B02"])) == RGB_EVALSCRIPT
    assert N_BANDS == 7
    ten = evalscript(download_bands(ALL10))
    assert 'bands: ["B04", "B03", "B02", "B08", "B11", "B05", "B06", "B07", "B8A", "B12", "SCL", "dataMask"]' in ten
    assert "output: {bands: 12, sampleType: \"UINT16\"}" in ten
    assert "return [s.B04, s.B03, s.B02, s.B08, s.B11, s.B05, s.B06, s.B07, s.B8A, s.B12, s.SCL, s.dataMask];" in ten


def test_rgb_run_reads_the_same_assets_as_before():
    from deepsnow.data.download.stac import REFLECTANCE, assets_of

    assert assets_of(REFLECTANCE) == ("B04", "B03", "B02", "B08", "B11", "SCL")
    assert len(assets_of(download_bands(ALL10))) == 11


# --------------------------------------------------------------------------- Sentinel Hub


@pytest.fixture
def sh(monkeypatch, tmp_path, austria):
    pytest.importorskip("sentinelhub")
    from sentinelhub import SentinelHubDownloadClient

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    SentinelHubDownloadClient.clear_cache()
    server = MockSentinelHub([Scene("S2A_summer", SUMMER, 5.0, austria)]).start()
    monkeypatch.setenv("SH_CLIENT_ID", server.client_id)
    monkeypatch.setenv("SH_CLIENT_SECRET", server.client_secret)
    yield server
    server.stop()
    SentinelHubDownloadClient.clear_cache()


def sh_params(server, source) -> dict:
    return validate_section(
        "data",
        {
            "source": "sentinelhub",
            "aois": [{"name": "area1", "bbox": inner_bbox(source)}],
            "sentinelhub": server.config(),
        },
    )


def test_sentinelhub_ten_bands_by_name_with_their_values(sh, austria, tmp_path):
    out = tmp_path / "scene.tif"
    summary = download_scene(sh_params(sh, austria), "area1", "snowfree", out, bands=ALL10)
    got = by_name(out)
    assert list(got) == ALL10 + ["SCL", "dataMask"]
    want = served(austria, out, download_bands(ALL10))
    for band in ALL10 + ["SCL", "dataMask"]:
        np.testing.assert_array_equal(got[band], want[band], err_msg=band)
    assert summary["bands"] == list(download_bands(ALL10)) + ["SCL", "dataMask"]
    from deepsnow.data.download.sentinelhub import evalscript

    assert [b["evalscript"] for b in sh.process_bodies] == [evalscript(download_bands(ALL10))]
    assert read_scene(out).reflectance["B12"].mean() > 0


def test_sentinelhub_rgb_run_requests_what_it_did_before(sh, austria, tmp_path):
    out = tmp_path / "scene.tif"
    download_scene(sh_params(sh, austria), "area1", "snowfree", out)
    assert sh.process_bodies[0]["evalscript"] == RGB_EVALSCRIPT
    assert list(by_name(out)) == ["B02", "B03", "B04", "B08", "B11", "SCL", "dataMask"]


def test_sentinelhub_cache_is_keyed_on_the_band_list(sh, austria, tmp_path):
    from sentinelhub import SentinelHubDownloadClient

    params, cache = sh_params(sh, austria), tmp_path / "cache"
    download_scene(params, "area1", "snowfree", tmp_path / "rgb.tif", cache=cache)
    ten = download_scene(params, "area1", "snowfree", tmp_path / "ten.tif", cache=cache, bands=ALL10)
    assert ten["requests"] == {"process_requests": 1, "cache_hits": 0} and sh.count("process") == 2
    assert list(by_name(tmp_path / "ten.tif"))[:10] == ALL10
    SentinelHubDownloadClient.clear_cache()
    again = download_scene(params, "area1", "snowfree", tmp_path / "rgb2.tif", cache=cache)
    assert again["requests"] == {"process_requests": 0, "cache_hits": 1} and sh.count("process") == 2
    assert list(by_name(tmp_path / "rgb2.tif")) == ["B02", "B03", "B04", "B08", "B11", "SCL", "dataMask"]


# --------------------------------------------------------------------------- Earth Search (STAC)


@pytest.fixture
def stac(tmp_path):
    pytest.importorskip("pystac_client")
    with MockStac(tmp_path / "served") as server:
        yield server


def stac_params(server, source) -> dict:
    st = {"url": server.url, "retry_delay": 0, "max_attempts": 2, "timeout": 10, "resampling": "nearest"}
    return validate_section(
        "data", {"source": "stac", "aois": [{"name": "area1", "bbox": inner_bbox(source)}], "stac": st}
    )


def test_stac_ten_bands_by_name_with_the_offset_removed_per_band(stac, austria, tmp_path):
    stac.add_item(austria, "S2A_1", cloud_cover=3.0, datetime=SUMMER, offset=True, baseline="04.00")
    out = tmp_path / "scene.tif"
    summary = download_scene(stac_params(stac, austria), "area1", "snowfree", out, bands=ALL10)
    got = by_name(out)
    assert list(got) == ALL10 + ["SCL", "dataMask"]
    want = served(austria, out, download_bands(ALL10))  # the DN before the +1000 the COGs carry
    for band in ALL10 + ["SCL", "dataMask"]:
        np.testing.assert_array_equal(got[band], want[band], err_msg=band)
    assert set(summary["scale_offset"]) == set(ALL10)
    assert {v["offset"] for v in summary["scale_offset"].values()} == {-0.1}
    assert summary["reads"]["B05"]["asset"] == "rededge1" and summary["reads"]["B12"]["asset"] == "swir22"
    assert summary["reads"]["B8A"]["asset"] == "nir08" and summary["reads"]["B8A"]["res"] == 20.0


def test_stac_rgb_run_reads_only_its_assets(stac, austria, tmp_path):
    stac.add_item(austria, "S2A_1", cloud_cover=3.0, datetime=SUMMER)
    out = tmp_path / "scene.tif"
    summary = download_scene(stac_params(stac, austria), "area1", "snowfree", out)
    assert sorted(summary["reads"]) == ["B02", "B03", "B04", "B08", "B11", "SCL"]
    assert all(stac.bytes_served(f"S2A_1/{b}.tif") == 0 for b in ("B05", "B06", "B07", "B8A", "B12"))
    assert list(by_name(out)) == ["B02", "B03", "B04", "B08", "B11", "SCL", "dataMask"]


def test_stac_item_without_a_requested_band_is_refused_naming_it(stac, ben, tmp_path):
    stac.add_item(ben[AUSTRIA], "S2A_rgb_only", cloud_cover=3.0, datetime=SUMMER)  # no red-edge, B8A or B12 assets
    out = tmp_path / "scenes" / "s.tif"
    with pytest.raises(DeepsnowError, match=r"item S2A_rgb_only: no asset for B05 \(looked for \['rededge1', 'B05'\]"):
        download_scene(stac_params(stac, ben[AUSTRIA]), "area1", "snowfree", out, bands=ALL10)
    assert not out.parent.exists() or not list(out.parent.iterdir())


def test_stac_pixel_cache_is_keyed_on_the_band_list(stac, austria, tmp_path):
    stac.add_item(austria, "S2A_1", cloud_cover=3.0, datetime=SUMMER)
    params, cache = stac_params(stac, austria), tmp_path / "cache"
    rgb = download_scene(params, "area1", "snowfree", tmp_path / "rgb.tif", cache=cache, bands=["B04", "B03", "B02"])
    ten = download_scene(params, "area1", "snowfree", tmp_path / "ten.tif", cache=cache, bands=ALL10)
    assert rgb["requests"]["items_read"] == 1 and ten["requests"] == {"items_read": 1, "from_cache": 0}
    again = download_scene(params, "area1", "snowfree", tmp_path / "ten2.tif", cache=cache, bands=ALL10)
    assert again["requests"] == {"items_read": 0, "from_cache": 1}
    assert by_name(tmp_path / "ten2.tif").keys() == by_name(tmp_path / "ten.tif").keys()


# --------------------------------------------------------------------------- the command line


def test_cli_bands_fetch_the_masks_and_those(stac, austria, tmp_path):
    from helpers import deepsnow

    stac.add_item(austria, "S2A_1", cloud_cover=3.0, datetime=SUMMER)
    data = {"source": "stac", "aois": [{"name": "area1", "bbox": inner_bbox(austria)}], "stac": {"url": stac.url}}
    out = tmp_path / "scenes" / "s.tif"
    base = ["download", "--params", json.dumps(data), "--aoi", "area1", "--season", "snowfree", "--output", out]
    proc = deepsnow(*base, "--bands", "B12", "B05")
    assert proc.returncode == 0, proc.stderr
    assert list(by_name(out)) == ["B03", "B05", "B08", "B11", "B12", "SCL", "dataMask"]
    served_before = stac.count()
    bad = tmp_path / "scenes" / "bad.tif"
    proc = deepsnow(*base[:-1], bad, "--bands", "B04", "B10")
    assert proc.returncode == 2 and "patches.bands" in proc.stderr and "'B10'" in proc.stderr and "B8A" in proc.stderr
    assert not bad.exists() and not list(bad.parent.glob("bad*")) and stac.count() == served_before
