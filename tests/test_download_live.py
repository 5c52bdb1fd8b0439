"""Live downloads from the real services (marker ``live``): a 1 x 1 km area per source.

Skipped, with the reason, without network access to the service or (Sentinel
Hub) without ``SH_CLIENT_ID`` / ``SH_CLIENT_SECRET``. Set
``DEEPSNOW_LIVE_CDSE=1`` to test the Copernicus Data Space Ecosystem instead
of Sentinel Hub with those credentials. Deselect with ``-m "not live"``.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

import numpy as np
import pytest

from deepsnow.config import validate_section
from deepsnow.data.download import download_scene
from deepsnow.data.scene import read_scene

pytestmark = pytest.mark.live

# A 1 x 1 km area on the shore of the Zeller See (Austria): land and water.
BBOX = [12.7900, 47.3100, 12.8032, 47.3190]
SUMMER = {"snowfree": {"start": "2021-07-01", "end": "2021-08-31"}}


def reachable_or_skip(url: str) -> None:
    host = urlparse(url).hostname
    try:
        socket.create_connection((host, 443), timeout=5).close()
    except OSError as exc:
        pytest.skip(f"no network: cannot reach {host}:443 ({exc})")


def check_scene(path, source: str) -> None:
    scene = read_scene(path)
    assert scene.tags["DEEPSNOW_SOURCE"] == source and scene.crs.to_epsg() == 32633
    assert scene.transform.a == 10 and scene.shape[0] > 90 and scene.shape[1] > 90
    valid = scene.data_mask > 0
    assert valid.mean() > 0.9
    # summer land and a lake: NIR of vegetation bright, water dark; reflectances plausible (offset handled)
    nir = scene.reflectance["B08"][valid]
    assert 0.0 <= np.percentile(nir, 5) < 0.1 and 0.2 < np.percentile(nir, 95) < 0.8
    assert set(np.unique(scene.scl[valid])) & {4, 5} and 6 in scene.scl[valid]


def test_live_sentinelhub(tmp_path, monkeypatch):
    from deepsnow.data.download.sentinelhub import CDSE_BASE_URL, CDSE_TOKEN_URL

    if not (os.environ.get("SH_CLIENT_ID") and os.environ.get("SH_CLIENT_SECRET")):
        pytest.skip("no Sentinel Hub credentials: set SH_CLIENT_ID and SH_CLIENT_SECRET to run this live test")
    sh = {}
    if os.environ.get("DEEPSNOW_LIVE_CDSE"):
        sh = {"base_url": CDSE_BASE_URL, "token_url": CDSE_TOKEN_URL}
    params = validate_section(
        "data",
        {"source": "sentinelhub", "aois": [{"name": "zell", "bbox": BBOX}], "seasons": SUMMER, "sentinelhub": sh},
    )
    reachable_or_skip(params["sentinelhub"]["base_url"])
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    out = tmp_path / "zell" / "snowfree.tif"
    summary = download_scene(params, "zell", "snowfree", out, cache=tmp_path / "cache")
    check_scene(out, "sentinelhub")
    assert summary["catalog"]["under_max_cloud_cover"] >= 1


def test_live_earth_search(tmp_path):
    params = validate_section(
        "data", {"source": "stac", "aois": [{"name": "zell", "bbox": BBOX}], "seasons": SUMMER, "max_cloud_cover": 10}
    )
    reachable_or_skip(params["stac"]["url"])
    out = tmp_path / "zell" / "snowfree.tif"
    summary = download_scene(params, "zell", "snowfree", out, cache=tmp_path / "cache")
    check_scene(out, "stac")
    assert summary["item"]["cloud_cover"] <= 10
    assert summary["reads"]["B04"]["asset"] in ("red", "B04")
