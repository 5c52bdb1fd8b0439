"""Real Sentinel-2 L2A data: the six BigEarthNet-S2 example patches of the bigearthnet-common wheel.

Each 120 x 120 px patch (10 m, UTM) is converted to a scene GeoTIFF (B11
upsampled from 20 m, SCL 7 "unclassified" since BigEarthNet has no SCL), then
masked and cut into one whole-patch window with the default thresholds. The
Finnish patch of 2018-02-04 is fully snow-covered; the five others (Austria
and Ireland in June, Finland in September, Portugal in December) are snow-free.
"""

from __future__ import annotations

import csv
import datetime as dt

import numpy as np
import pytest
import rasterio

from deepsnow.config import validate_section
from deepsnow.data.mask import mask_scene
from deepsnow.data.patches import cut_patches
from synthetic import bigearthnet_example_dir, bigearthnet_to_scene, v1_stack

pytest.importorskip("bigearthnet_common")

SNOWY_PREFIX = "S2B_MSIL2A_20180204"


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("ben")
    examples = bigearthnet_example_dir(root / "raw")
    mask_params = validate_section("mask", {})
    patch_params = validate_section("patches", {"size": 120, "stride": 120})
    out = {}
    for patch in sorted(p for p in examples.iterdir() if p.is_dir()):
        d = root / "scenes" / patch.name
        info = bigearthnet_to_scene(patch, d / "scene.tif")
        summary = mask_scene(d / "scene.tif", mask_params, d / "mask.tif", d / "mask.json")
        cut = cut_patches(d / "scene.tif", d / "mask.tif", patch_params, d / "patches.npz", d / "patches.csv")
        with open(d / "patches.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        with np.load(d / "patches.npz", allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        out[patch.name] = {
            "info": info,
            "mask": summary,
            "cut": cut,
            "rows": rows,
            "arrays": arrays,
            "dir": d,
        }
    return out


def test_six_real_patches_found(results):
    assert len(results) == 6
    assert sum(name.startswith(SNOWY_PREFIX) for name in results) == 1


def test_scenes_are_utm_10m_120px(results):
    for name, r in results.items():
        with rasterio.open(r["dir"] / "scene.tif") as src:
            epsg = src.crs.to_epsg()
            assert 32601 <= epsg <= 32660 or 32701 <= epsg <= 32760, (name, epsg)
            assert (src.width, src.height) == (120, 120)
            assert src.res == (10.0, 10.0)
        assert r["mask"]["shape"] == [120, 120]


def test_finland_february_is_snowy_and_the_others_snowfree(results):
    for name, r in results.items():
        assert len(r["rows"]) == 1, name  # one whole-patch window
        label = r["rows"][0]["label"]
        if name.startswith(SNOWY_PREFIX):
            assert label == "snowy", name
            assert r["mask"]["snow_fraction_of_valid"] > 0.9
        else:
            assert label == "snowfree", name
            assert r["mask"]["snow_fraction_of_valid"] < 0.02


def test_seasons_and_domain_rule_on_real_data(results):
    for name, r in results.items():
        row, info = r["rows"][0], r["info"]
        assert info["season"] == ("snow" if info["date"].month in (11, 12, 1, 2, 3, 4) else "snowfree")
        if name.startswith(SNOWY_PREFIX):
            assert info["date"] == dt.date(2018, 2, 4) and info["season"] == "snow"
            assert row["kept"] == "true"
            assert r["arrays"]["rgb"].shape == (1, 120, 120, 3)
            # snow rendered bright but hardly saturated, whereas ESA's TCI stretch (reflectance
            # 0..0.2 -> 0..255) would clip most of this snowy forest to flat white
            rgb = r["arrays"]["rgb"][0]
            assert rgb.mean() > 120 and (rgb == 255).mean() < 0.05 and rgb.std() > 5
            refl = v1_stack(r["dir"] / "scene.tif")[:3] / 10000.0  # B04 B03 B02, by name
            assert (refl >= 0.2).mean() > 0.5
        elif info["season"] == "snow":  # Portugal in December: snow season, but no snow
            assert (row["kept"], row["reason"]) == ("false", "season_mismatch")
            assert r["arrays"]["rgb"].shape == (0, 120, 120, 3)
        else:
            assert row["kept"] == "true" and row["reason"] == ""
