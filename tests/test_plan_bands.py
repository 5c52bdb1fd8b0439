"""``deepsnow plan`` counts what a download fetches by its band list (issue #28 item 1): the mask's
B03 B08 B11 plus ``patches.bands``. An RGB run costs what it did before; ten bands cost, by hand, for
the paper's zell_am_see (4017 x 4005 px, 2 x 2 Sentinel Hub tiles; 16,088,085 px at 10 m, 2009 x 2003
= 4,024,027 px at 20 m):

- Sentinel Hub: 12 output bands (10 + SCL + dataMask) x 2 bytes = 386,114,040 bytes per season;
  11 counted input bands (dataMask is not), so 16,088,085 / 512^2 x 11 / 3 = 225.028 PU per season
  (RGB: 7 bands, 225,233,190 bytes, 6 counted bands, 122.742 PU).
- STAC: 11 COG reads: B02 B03 B04 B08 at 10 m (4 x 16,088,085 x 2 bytes = 128,704,680) and
  B05 B06 B07 B8A B11 B12 (uint16) and SCL (uint8) at 20 m (4,024,027 x 13 = 52,312,351):
  181,017,031 bytes (RGB: 6 reads, 140,776,761 bytes).
"""

from __future__ import annotations

import pytest
from helpers import REPO

from deepsnow.plan import format_plan, load_config, make_plan, scene_bands

ALL10 = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]
PX10, PX20 = 4017 * 4005, 2009 * 2003


@pytest.fixture(autouse=True)
def _elsewhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no results/<run> of the project is read


def zell(config_name: str, bands=None) -> tuple[dict, dict]:
    """The plan of a paper config (with ``patches.bands`` set after validation: the workflow still refuses
    reflectance runs after train) and its zell_am_see snow season."""
    config, label = load_config([REPO / "configs" / config_name])
    if bands is not None:
        config["patches"].update(bands=list(bands), encoding="reflectance")
    plan = make_plan(config, label)
    return plan, next(a for a in plan["areas"] if a["name"] == "zell_am_see")["seasons"]["snow"]


def test_rgb_run_costs_what_it_did_before():
    plan, s = zell("paper.yaml")
    assert plan["download_bands"] == ["B04", "B03", "B02", "B08", "B11"]
    assert plan["scene_bands"] == ["B02", "B03", "B04", "B08", "B11", "SCL", "dataMask"]
    assert s["download_bytes"] == PX10 * 7 * 2 == 225_233_190
    assert s["processing_units"] == pytest.approx(PX10 / 512**2 * 6 / 3) == pytest.approx(122.742, abs=1e-3)
    assert s["requests"] == {"catalog": 1, "process": 4}
    plan, s = zell("stac.yaml")
    assert s["download_bytes"] == 4 * PX10 * 2 + PX20 * 3 == 140_776_761
    assert s["requests"] == {"search": 1, "cog_reads": 6}
    assert "B04 B03 B02 B08 uint16 at 10 m, B11 uint16 and SCL uint8 at 20 m" in format_plan(plan)


def test_ten_bands_are_counted_in_bytes_and_processing_units():
    plan, s = zell("paper.yaml", ALL10)
    assert plan["download_bands"] == ["B04", "B03", "B02", "B08", "B11", "B05", "B06", "B07", "B8A", "B12"]
    assert plan["scene_bands"] == ALL10 + ["SCL", "dataMask"]
    assert s["download_bytes"] == PX10 * 12 * 2 == 386_114_040
    assert s["processing_units"] == pytest.approx(PX10 / 512**2 * 11 / 3) == pytest.approx(225.028, abs=1e-3)
    assert s["requests"] == {"catalog": 1, "process": 4}  # more bands, not more requests
    assert s["scene_bytes"] == PX10 * 2 * 12
    text = format_plan(plan)
    assert "Process API responses: 12 bands (B04 B03 B02 B08 B11 B05 B06 B07 B8A B12 SCL dataMask)" in text
    plan, s = zell("stac.yaml", ALL10)
    assert s["download_bytes"] == 4 * PX10 * 2 + PX20 * (6 * 2 + 1) == 181_017_031
    assert s["requests"] == {"search": 1, "cog_reads": 11} and s["processing_units"] == 0


def test_scene_bands_follow_the_band_list():
    assert scene_bands("stac", ["B12"]) == ("B03", "B08", "B11", "B12", "SCL", "dataMask")
    assert scene_bands("sentinelhub") == ("B02", "B03", "B04", "B08", "B11", "SCL", "dataMask")
    assert len(scene_bands("simulator", ["B04", "B03", "B02"])) == 12  # the simulator writes all ten
