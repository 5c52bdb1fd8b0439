"""Tests of deepsnow.data.mask: per-pixel classes, thresholds, bad scenes, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import rasterio

from deepsnow import DeepsnowError
from deepsnow.config import validate_section
from deepsnow.data.mask import mask_scene
from synthetic import transform_at, write_cover_scene


@pytest.fixture
def params():
    return validate_section("mask", {})


def read_classes(path):
    with rasterio.open(path) as src:
        return src.read(1)


def outputs_absent(folder):
    """No mask output and no temporary file in ``folder``."""
    return not folder.exists() or not any(folder.iterdir())


def test_classes_follow_rules_and_priority(tmp_path, params):
    # one row per case, 10 columns; each case in its own column
    cover = np.full((2, 10), "veg", dtype="<U8")
    scl = np.full((2, 10), 4, dtype=np.uint8)
    dm = np.ones((2, 10), dtype=np.uint8)
    cases = {
        0: ("veg", 4, 1, 1),  # clear vegetation
        1: ("veg", 11, 1, 3),  # snow by SCL 11 even with vegetation spectra
        2: ("snow", 5, 1, 3),  # snow by the NDSI rule, SCL says "not vegetated"
        3: ("water", 6, 1, 2),  # water: NDSI high but dark NIR
        4: ("water", 5, 1, 1),  # water spectra mislabelled by SCL: dark NIR, so not snow
        5: ("cloud", 8, 1, 4),
        6: ("cloud", 9, 1, 4),
        7: ("cloud", 10, 1, 4),
        8: ("veg", 3, 1, 5),  # cloud shadow
        9: ("snow", 9, 1, 3),  # Sen2Cor calls it cloud, the spectra say snow: snow wins
    }
    expected = np.zeros((2, 10), dtype=np.uint8)
    for j, (c, s, d, e) in cases.items():
        cover[:, j], scl[:, j], dm[:, j], expected[:, j] = c, s, d, e
    # second row: invalid pixels override everything
    dm[1, 1] = 0  # snow by SCL 11, but no data
    dm[1, 9] = 0
    scl[1, 0] = 0  # SCL no data
    scl[1, 5] = 1  # saturated / defective
    expected[1, [0, 1, 5, 9]] = 0
    # a snow-spectra pixel that Sen2Cor calls water stays water ("not water")
    cover[1, 3] = "snow"
    expected[1, 3] = 2

    scene = write_cover_scene(tmp_path / "scene.tif", cover, scl=scl, data_mask=dm)
    out_tif, out_json = tmp_path / "m" / "mask.tif", tmp_path / "m" / "mask.json"
    summary = mask_scene(scene, params, out_tif, out_json)

    classes = read_classes(out_tif)
    np.testing.assert_array_equal(classes, expected)
    with rasterio.open(out_tif) as src:
        assert src.count == 1 and src.dtypes[0] == "uint8"
        assert src.descriptions == ("class",)
        assert src.crs.to_epsg() == 32633
        assert src.transform == transform_at()
        assert src.compression.value.lower() == "deflate"
    on_disk = json.loads(out_json.read_text())
    assert on_disk == json.loads(json.dumps(summary))
    counts = np.bincount(expected.ravel(), minlength=6)
    assert summary["counts"] == {
        "invalid": counts[0],
        "clear": counts[1],
        "water": counts[2],
        "snow": counts[3],
        "cloud": counts[4],
        "cloud_shadow": counts[5],
    }
    assert summary["shape"] == [2, 10]
    assert summary["scene"] == str(scene)
    assert summary["fractions"]["snow"] == pytest.approx(counts[3] / 20)
    valid = 20 - counts[0]
    assert summary["cloud_fraction_of_valid"] == pytest.approx((counts[4] + counts[5]) / valid)
    assert summary["snow_fraction_of_valid"] == pytest.approx(counts[3] / valid)
    assert summary["thresholds"] == {
        "ndsi_min": 0.4,
        "nir_min": 0.11,
        "cloud_classes": [3, 8, 9, 10],
        "invalid_classes": [0, 1],
    }


@pytest.mark.filterwarnings("error")
def test_zero_denominator_is_not_snow_and_warns_nothing(tmp_path, params):
    cover = np.full((4, 4), "veg", dtype="<U8")
    zero = np.zeros((4, 4))
    zero_nir = np.full((4, 4), 0.5)
    scene = write_cover_scene(
        tmp_path / "s.tif",
        cover,
        scl=np.full((4, 4), 5),
        reflectance={"B03": zero, "B11": zero, "B08": zero_nir},
    )
    with np.errstate(all="warn"):
        mask_scene(scene, params, tmp_path / "m.tif", tmp_path / "m.json")
    classes = read_classes(tmp_path / "m.tif")
    assert (classes == 1).all()


def test_thresholds_from_params_change_result(tmp_path):
    # NDSI = (0.30 - 0.10) / 0.40 = 0.5, NIR 0.20
    cover = np.full((3, 3), "veg", dtype="<U8")
    refl = {"B03": np.full((3, 3), 0.30), "B11": np.full((3, 3), 0.10), "B08": np.full((3, 3), 0.20)}
    scl = np.full((3, 3), 5, dtype=np.uint8)
    scl[0, 0] = 3  # a shadow pixel, for the cloud_classes check
    scl[0, 1] = 4  # a dark vegetation pixel that is never snow
    refl["B08"][0, 1] = 0.05
    scene = write_cover_scene(tmp_path / "s.tif", cover, scl=scl, reflectance=refl)

    def classes_with(**kw):
        p = validate_section("mask", kw)
        mask_scene(scene, p, tmp_path / "m.tif", tmp_path / "m.json")
        return read_classes(tmp_path / "m.tif")

    assert (classes_with()[1:, :] == 3).all()
    assert classes_with()[0, 0] == 3  # snow spectra beat the shadow flag
    assert (classes_with(ndsi_min=0.6)[1:, :] == 1).all()
    assert (classes_with(nir_min=0.3)[1:, :] == 1).all()
    c = classes_with(ndsi_min=0.6)
    assert c[0, 0] == 5  # not snow any more, so SCL 3 makes it shadow
    assert classes_with(ndsi_min=0.6, cloud_classes=[8, 9, 10])[0, 0] == 1
    c = classes_with(ndsi_min=0.6, invalid_classes=[0, 1, 5])
    assert (c[1:, :] == 0).all() and c[0, 1] == 1


def test_all_nodata_scene_is_an_error(tmp_path, params):
    cover = np.full((8, 8), "veg", dtype="<U8")
    scene = write_cover_scene(tmp_path / "s.tif", cover, data_mask=np.zeros((8, 8)))
    out = tmp_path / "out"
    with pytest.raises(DeepsnowError, match=r"s\.tif.*no valid pixel"):
        mask_scene(scene, params, out / "m.tif", out / "m.json")
    assert outputs_absent(out)


def test_all_cloud_scene_is_an_error(tmp_path, params):
    cover = np.full((8, 8), "cloud", dtype="<U8")
    scl = np.full((8, 8), 9, dtype=np.uint8)
    scl[:2] = 3  # shadow counts as cloud too
    dm = np.ones((8, 8), dtype=np.uint8)
    dm[-1] = 0  # and invalid pixels do not save the scene
    scene = write_cover_scene(tmp_path / "s.tif", cover, scl=scl, data_mask=dm)
    out = tmp_path / "out"
    with pytest.raises(DeepsnowError, match=r"s\.tif.*all-cloud"):
        mask_scene(scene, params, out / "m.tif", out / "m.json")
    assert outputs_absent(out)


def test_mostly_cloud_scene_with_some_snow_is_fine(tmp_path, params):
    cover = np.full((8, 8), "cloud", dtype="<U8")
    cover[0, 0] = "snow"
    scl = np.full((8, 8), 9, dtype=np.uint8)  # Sen2Cor flags the snow pixel as cloud too
    scene = write_cover_scene(tmp_path / "s.tif", cover, scl=scl)
    summary = mask_scene(scene, params, tmp_path / "m.tif", tmp_path / "m.json")
    assert summary["counts"]["snow"] == 1 and summary["counts"]["cloud"] == 63


def _write_raw_tif(path, count, crs="EPSG:32633", descriptions=None, driver="GTiff", dtype="uint16"):
    profile = dict(driver=driver, height=16, width=16, count=count, dtype=dtype)
    if crs is not None:
        profile.update(crs=crs, transform=transform_at())
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.ones((count, 16, 16), dtype=dtype))
        for i, d in enumerate(descriptions or [], start=1):
            dst.set_band_description(i, d)
    return path


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
@pytest.mark.parametrize("kind", ["truncated", "png", "no_crs", "missing_bands", "missing_file"])
def test_bad_scene_files_are_errors(tmp_path, params, kind):
    if kind == "truncated":
        rng = np.random.default_rng(1)
        full = write_cover_scene(
            tmp_path / "full.tif", np.full((64, 64), "veg"), reflectance={"B04": rng.random((64, 64))}
        )
        data = full.read_bytes()
        scene = tmp_path / "scene.tif"
        scene.write_bytes(data[: len(data) // 2])
        pattern = "truncated or corrupt"
    elif kind == "png":
        scene = _write_raw_tif(tmp_path / "scene.png", 3, crs=None, driver="PNG", dtype="uint8")
        pattern = "expected a GeoTIFF"
    elif kind == "no_crs":
        bands = ["B04", "B03", "B02", "B08", "B11", "SCL", "dataMask"]
        scene = _write_raw_tif(tmp_path / "scene.tif", 7, crs=None, descriptions=bands)
        pattern = "no CRS"
    elif kind == "missing_bands":
        scene = _write_raw_tif(tmp_path / "scene.tif", 5, descriptions=["B04", "B03", "B02", "B08", "B11"])
        pattern = r"a version-1 scene \(DEEPSNOW_SCENE_VERSION absent\) has 7 bands"
    else:
        scene = tmp_path / "nowhere.tif"
        pattern = "not found"
    out = tmp_path / "out"
    with pytest.raises(DeepsnowError, match=pattern) as err:
        mask_scene(scene, params, out / "m.tif", out / "m.json")
    assert str(scene) in str(err.value)
    assert outputs_absent(out)


def test_cli_mask_writes_outputs_and_provenance(tmp_path):
    cover = np.full((16, 16), "veg", dtype="<U8")
    cover[:8] = "snow"
    scene = write_cover_scene(tmp_path / "scene.tif", cover)
    out_tif, out_json = tmp_path / "m" / "mask.tif", tmp_path / "m" / "mask.json"
    cmd = [
        sys.executable,
        "-m",
        "deepsnow.cli",
        "mask",
        "--params",
        '{"ndsi_min": 0.4}',
        "--scene",
        str(scene),
    ]
    res = subprocess.run(
        cmd + ["--output", str(out_tif), "--summary", str(out_json)], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    for f in (out_tif, out_json):
        prov = json.loads((f.parent / (f.name + ".prov.json")).read_text())
        assert prov["stage"] == "mask" and prov["inputs"][0]["path"] == str(scene)
    assert json.loads(out_json.read_text())["counts"]["snow"] == 128

    bad = tmp_path / "bad.tif"
    bad.write_bytes(scene.read_bytes()[:100])
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "deepsnow.cli",
            "mask",
            "--scene",
            str(bad),
            "--output",
            str(tmp_path / "b.tif"),
            "--summary",
            str(tmp_path / "b.json"),
        ],
        capture_output=True,
        text=True,
    )
    assert res.returncode != 0
    assert str(bad) in res.stderr
    assert not (tmp_path / "b.tif").exists() and not (tmp_path / "b.json").exists()


# --- windowed processing: the same result whatever the window -------------------------------------


def _naive_mask(scene_path, params):
    """The whole-scene classification, as the stage did before it read by windows."""
    from deepsnow.data.mask import classify, summarize
    from deepsnow.data.scene import read_scene

    scene = read_scene(scene_path)
    classes = classify(scene.reflectance, scene.scl, scene.data_mask, params)
    return classes, summarize(classes)


@pytest.mark.parametrize("shape", [(200, 300), (600, 300)])  # smaller than a block, several blocks
def test_windowed_mask_equals_whole_scene(tmp_path, params, shape):
    from random_scene import random_scene

    scene = random_scene(tmp_path / "s.tif", *shape, seed=7)
    classes, stats = _naive_mask(scene, params)
    out = {}
    for rows in (64, 100, shape[0]):  # 64 and 100 rows per window, and the whole scene in one window
        tif, js = tmp_path / f"m{rows}.tif", tmp_path / f"m{rows}.json"
        summary = mask_scene(scene, params, tif, js, window_rows=rows)
        assert np.array_equal(read_classes(tif), classes)
        assert {k: summary[k] for k in stats} == stats
        out[rows] = (tif.read_bytes(), js.read_text())
    assert out[64] == out[shape[0]] and out[100] == out[shape[0]]  # byte-identical files
    with rasterio.open(tmp_path / "m64.tif") as src:
        assert src.compression is not None and src.block_shapes[0] == (256, 256)
        assert src.descriptions == ("class",) and src.tags(1)["CLASS_3"] == "snow"
        assert src.colormap(1)[3][:3] == (235, 250, 255) and src.overviews(1)  # snow's colour; overviews
    from rio_cogeo.cogeo import cog_validate

    assert cog_validate(str(tmp_path / "m64.tif"), strict=True)[0]


def test_window_rows_from_environment(tmp_path, params, monkeypatch):
    from random_scene import random_scene

    from deepsnow.data.scene import window_rows

    monkeypatch.setenv("DEEPSNOW_WINDOW_ROWS", "16")
    assert window_rows() == 16 and window_rows(8) == 8
    scene = random_scene(tmp_path / "s.tif", 70, 50, seed=1)
    mask_scene(scene, params, tmp_path / "m.tif", tmp_path / "m.json")
    assert np.array_equal(read_classes(tmp_path / "m.tif"), _naive_mask(scene, params)[0])
    for bad in ("0", "many"):
        monkeypatch.setenv("DEEPSNOW_WINDOW_ROWS", bad)
        with pytest.raises(DeepsnowError, match="DEEPSNOW_WINDOW_ROWS"):
            mask_scene(scene, params, tmp_path / "x" / "m.tif", tmp_path / "x" / "m.json")
        assert outputs_absent(tmp_path / "x")


def test_error_found_in_a_later_window_leaves_nothing(tmp_path, params):
    """An all-cloud scene is known only after the last window: nothing is left behind."""
    cover = np.full((90, 40), "cloud", dtype="<U8")
    scene = write_cover_scene(tmp_path / "s.tif", cover)
    with pytest.raises(DeepsnowError, match="all-cloud"):
        mask_scene(scene, params, tmp_path / "m" / "mask.tif", tmp_path / "m" / "mask.json", window_rows=16)
    assert outputs_absent(tmp_path / "m")
