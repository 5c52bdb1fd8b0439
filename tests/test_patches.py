"""Tests of deepsnow.data.patches: windows, labels, reasons, arrays, CSV, errors, the CLI."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import rasterio
from rasterio.transform import Affine

from deepsnow import DeepsnowError
from deepsnow.config import validate_section
from deepsnow.data.mask import mask_scene
from deepsnow.data.patches import cut_patches
from synthetic import blocks, transform_at, v1_stack, write_cover_scene

LAYOUT = [["veg", "snow"], ["water", "cloud"]]


def params(**kw):
    return validate_section("patches", kw)


def make(tmp_path, cover, name="a", season="snowfree", **kw):
    """Scene + mask under tmp_path/<name>/; returns (scene, mask)."""
    scene = write_cover_scene(tmp_path / name / f"{season}.tif", cover, season=season, aoi=name, **kw)
    mask = tmp_path / name / f"{season}_mask.tif"
    mask_scene(scene, validate_section("mask", {}), mask, tmp_path / name / f"{season}_mask.json")
    return scene, mask


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def load(path):
    with np.load(path, allow_pickle=False) as d:
        return {k: d[k] for k in d.files}


def cut(tmp_path, scene, mask, p, truth=None, name="out", snowfall=None):
    npz, table = tmp_path / name / "p.npz", tmp_path / name / "p.csv"
    summary = cut_patches(scene, mask, p, npz, table, truth_path=truth, snowfall_path=snowfall)
    return summary, load(npz), read_csv(table)


def test_labels_reasons_and_counts_snowfree_season(tmp_path):
    scene, mask = make(tmp_path, blocks((64, 64), 32, LAYOUT))
    summary, arr, rows = cut(tmp_path, scene, mask, params(size=32, stride=32))
    by_pos = {(int(r["row"]), int(r["col"])): r for r in rows}
    assert set(by_pos) == {(0, 0), (0, 32), (32, 0), (32, 32)}
    assert (by_pos[0, 0]["label"], by_pos[0, 0]["kept"], by_pos[0, 0]["reason"]) == ("snowfree", "true", "")
    assert (by_pos[0, 32]["label"], by_pos[0, 32]["kept"], by_pos[0, 32]["reason"]) == (
        "snowy",
        "false",
        "season_mismatch",
    )
    assert (by_pos[32, 0]["label"], by_pos[32, 0]["kept"], by_pos[32, 0]["reason"]) == (
        "snowfree",
        "true",
        "",
    )
    assert (by_pos[32, 32]["label"], by_pos[32, 32]["kept"], by_pos[32, 32]["reason"]) == (
        "-",
        "false",
        "cloud",
    )
    assert float(by_pos[32, 0]["water_fraction"]) == 1.0
    assert float(by_pos[32, 32]["cloud_fraction"]) == 1.0
    assert by_pos[0, 0]["patch_id"] == "a_snowfree_r0_c0"
    assert summary["candidates"] == 4 and summary["kept"] == 2
    assert summary["rejected"] == {"nodata": 0, "cloud": 1, "ambiguous": 0, "season_mismatch": 1}
    assert summary["labels"]["snowy"] == 1 and summary["labels"]["snowfree"] == 2
    assert summary["season"] == "snowfree" and summary["aoi"] == "a"
    assert list(arr["ids"]) == ["a_snowfree_r0_c0", "a_snowfree_r32_c0"]
    assert arr["row"].tolist() == [0, 32] and arr["col"].tolist() == [0, 0]
    # water array is the mask's class 2
    assert not arr["water"][0].any() and arr["water"][1].all()
    np.testing.assert_allclose(arr["water_fraction"], [0.0, 1.0])
    json.dumps(summary)  # the CLI stores it in the provenance sidecar


def test_snow_season_keeps_only_snowy(tmp_path):
    scene, mask = make(tmp_path, blocks((64, 64), 32, LAYOUT), season="snow")
    summary, arr, rows = cut(tmp_path, scene, mask, params(size=32, stride=32))
    assert list(arr["ids"]) == ["a_snow_r0_c32"]
    assert summary["rejected"]["season_mismatch"] == 2
    assert arr["snow_fraction"].tolist() == [1.0]
    assert [r["reason"] for r in rows] == ["season_mismatch", "", "season_mismatch", "cloud"]


def test_ambiguous_nodata_and_snow_fraction_over_valid_pixels(tmp_path):
    cover = blocks((64, 64), 16, [["veg", "snow", "snow", "snow"]] * 4)
    dm = np.ones((64, 64), dtype=np.uint8)
    dm[32:, :16] = 0  # bottom-left window: half no data
    scene, mask = make(tmp_path, cover, season="snow", data_mask=dm)
    p = params(size=32, stride=32, snowy_min=0.6, min_valid=0.4)
    summary, arr, rows = cut(tmp_path, scene, mask, p)
    by_pos = {(int(r["row"]), int(r["col"])): r for r in rows}
    # (0,0): half veg, half snow -> 0.5 is neither >= 0.6 nor <= 0.02
    assert (by_pos[0, 0]["label"], by_pos[0, 0]["reason"]) == ("ambiguous", "ambiguous")
    # (32,0): the veg half is no data, so snow is 100 % of the valid pixels
    assert float(by_pos[32, 0]["valid_fraction"]) == 0.5
    assert float(by_pos[32, 0]["snow_fraction"]) == 1.0
    assert (by_pos[32, 0]["label"], by_pos[32, 0]["kept"]) == ("snowy", "true")
    assert summary["rejected"]["ambiguous"] == 1
    assert sorted(arr["ids"]) == ["a_snow_r0_c32", "a_snow_r32_c0", "a_snow_r32_c32"]
    # raising min_valid rejects it for missing data, before labelling
    _, arr2, rows2 = cut(tmp_path, scene, mask, params(size=32, stride=32, snowy_min=0.6), name="out2")
    r = {(int(x["row"]), int(x["col"])): x for x in rows2}[32, 0]
    assert (r["label"], r["reason"]) == ("-", "nodata")
    assert "a_snow_r32_c0" not in arr2["ids"]


def test_cloud_threshold_and_fractions_over_all_pixels(tmp_path):
    cover = np.full((32, 32), "veg", dtype="<U8")
    cover[:4, :] = "cloud"  # 4 rows of 32 = 12.5 %
    scene, mask = make(tmp_path, cover)
    _, arr, rows = cut(tmp_path, scene, mask, params(size=32, stride=32, max_cloud=0.2))
    assert rows[0]["kept"] == "true" and float(rows[0]["cloud_fraction"]) == 0.125
    assert arr["cloud_fraction"].tolist() == [0.125]
    _, arr, rows = cut(tmp_path, scene, mask, params(size=32, stride=32, max_cloud=0.1), name="o2")
    assert rows[0]["reason"] == "cloud" and len(arr["ids"]) == 0


def test_candidate_grid_and_csv_lists_all(tmp_path):
    scene, mask = make(tmp_path, np.full((70, 50), "veg", dtype="<U8"))
    summary, arr, rows = cut(tmp_path, scene, mask, params(size=32, stride=16))
    positions = [(int(r["row"]), int(r["col"])) for r in rows]
    assert positions == [(r, c) for r in (0, 16, 32) for c in (0, 16)]
    assert summary["candidates"] == 6 == len(rows) == summary["kept"]
    assert list(rows[0]) == [
        "patch_id",
        "aoi",
        "season",
        "row",
        "col",
        "size",
        "valid_fraction",
        "cloud_fraction",
        "snow_fraction",
        "water_fraction",
        "label",
        "kept",
        "reason",
    ]
    assert all(r["size"] == "32" and r["aoi"] == "a" and r["season"] == "snowfree" for r in rows)
    assert [r["patch_id"] for r in rows] == list(arr["ids"])


def test_rgb_formula_transform_and_truth_alignment(tmp_path):
    rng = np.random.default_rng(7)
    shape = (48, 40)
    refl = {b: rng.uniform(0.0, 1.2, shape) for b in ("B04", "B03", "B02")}
    refl["B08"] = np.full(shape, 0.3)
    refl["B11"] = np.full(shape, 1.5)  # NDSI < 0: never snow
    origin = (612340.0, 5123450.0)
    tr = transform_at(origin)
    scene, mask = make(tmp_path, np.full(shape, "veg", dtype="<U8"), reflectance=refl, transform=tr)
    truth_refl = {b: rng.uniform(0.0, 1.0, shape) for b in ("B04", "B03", "B02")}
    truth = write_cover_scene(
        tmp_path / "truth.tif", np.full(shape, "snow"), reflectance=truth_refl, transform=tr
    )
    fall_refl = {b: rng.uniform(0.5, 1.0, shape) for b in ("B04", "B03", "B02")}
    snowfall = write_cover_scene(tmp_path / "snowfall.tif", np.full(shape, "snow"), reflectance=fall_refl, transform=tr)
    p = params(size=16, stride=8, rgb_max=0.8, rgb_gamma=2.0)
    _, arr, _ = cut(tmp_path, scene, mask, p, truth=truth, snowfall=snowfall)

    def direct(path):
        dn = v1_stack(path)[:3].astype(np.float64)  # B04, B03, B02, by name
        x = np.clip(dn / 10000.0 / 0.8, 0, 1) ** (1 / 2.0)
        return np.rint(255 * x).astype(np.uint8).transpose(1, 2, 0)

    full, full_truth, full_fall = direct(scene), direct(truth), direct(snowfall)
    assert arr["rgb"].shape == (len(arr["ids"]), 16, 16, 3) and arr["rgb"].dtype == np.uint8
    assert arr["truth"].shape == arr["truth_snowfall"].shape == arr["rgb"].shape
    assert arr["truth_snowfall"].dtype == np.uint8
    assert len(arr["ids"]) == 5 * 4
    for i, (r, c) in enumerate(zip(arr["row"], arr["col"])):
        np.testing.assert_array_equal(arr["rgb"][i], full[r : r + 16, c : c + 16])
        np.testing.assert_array_equal(arr["truth"][i], full_truth[r : r + 16, c : c + 16])
        np.testing.assert_array_equal(arr["truth_snowfall"][i], full_fall[r : r + 16, c : c + 16])
        a = Affine(*arr["transform"][i])
        assert a @ (0, 0) == pytest.approx((origin[0] + 10 * c, origin[1] - 10 * r))
        assert a @ (16, 16) == pytest.approx((origin[0] + 10 * (c + 16), origin[1] - 10 * (r + 16)))
    assert arr["transform"].shape == (20, 6) and arr["transform"].dtype == np.float64
    assert rasterio.crs.CRS.from_wkt(str(arr["crs"])).to_epsg() == 32633
    # the gamma really is applied (not a linear stretch)
    assert not np.array_equal(full, np.rint(255 * np.clip(refl["B04"] / 0.8, 0, 1)).astype(np.uint8))


def test_zero_kept_gives_empty_arrays_with_right_shapes(tmp_path):
    scene, mask = make(tmp_path, np.full((32, 32), "snow", dtype="<U8"))  # snow in the snow-free season
    summary, arr, rows = cut(tmp_path, scene, mask, params(size=16, stride=16))
    assert summary["kept"] == 0 and summary["candidates"] == 4 and len(rows) == 4
    assert arr["rgb"].shape == (0, 16, 16, 3) and arr["rgb"].dtype == np.uint8
    assert arr["water"].shape == (0, 16, 16) and arr["water"].dtype == bool
    assert arr["ids"].shape == (0,) and arr["ids"].dtype.kind == "U"
    assert arr["row"].shape == (0,) and arr["row"].dtype == np.int64
    assert arr["col"].dtype == np.int64
    assert arr["transform"].shape == (0, 6) and arr["transform"].dtype == np.float64
    assert arr["crs"].shape == () and arr["crs"].dtype.kind == "U"
    for k in ("snow_fraction", "cloud_fraction", "valid_fraction", "water_fraction"):
        assert arr[k].shape == (0,) and arr[k].dtype == np.float32
    assert "truth" not in arr and "truth_snowfall" not in arr


def _no_outputs(tmp_path, name="out"):
    d = tmp_path / name
    return not d.exists() or not any(d.iterdir())


def test_patch_larger_than_scene_is_an_error(tmp_path):
    scene, mask = make(tmp_path, np.full((32, 48), "veg", dtype="<U8"))
    with pytest.raises(DeepsnowError, match=r"patches\.size"):
        cut(tmp_path, scene, mask, params(size=40))
    assert _no_outputs(tmp_path)


def test_grid_mismatch_and_missing_season_are_errors(tmp_path):
    scene, mask = make(tmp_path, np.full((32, 32), "veg", dtype="<U8"))
    other, other_mask = make(
        tmp_path,
        np.full((32, 32), "veg", dtype="<U8"),
        name="b",
        transform=transform_at((500010.0, 5200000.0)),
    )
    with pytest.raises(DeepsnowError, match="not on the grid") as err:
        cut(tmp_path, scene, other_mask, params(size=16))
    assert str(other_mask) in str(err.value)
    smaller, smaller_mask = make(tmp_path, np.full((32, 16), "veg", dtype="<U8"), name="c")
    with pytest.raises(DeepsnowError, match="shape"):
        cut(tmp_path, scene, smaller_mask, params(size=16))
    utm34 = write_cover_scene(tmp_path / "t34.tif", np.full((32, 32), "snow"), crs="EPSG:32634")
    with pytest.raises(DeepsnowError, match="truth scene.*CRS"):
        cut(tmp_path, scene, mask, params(size=16), truth=utm34)
    with pytest.raises(DeepsnowError, match="snowfall truth scene.*CRS") as err:
        cut(tmp_path, scene, mask, params(size=16), snowfall=utm34)
    assert str(utm34) in str(err.value)
    untagged = write_cover_scene(tmp_path / "u" / "snowfree.tif", np.full((32, 32), "veg"), season=None)
    with pytest.raises(DeepsnowError, match="DEEPSNOW_SEASON") as err:
        cut(tmp_path, untagged, mask, params(size=16))
    assert str(untagged) in str(err.value)
    assert _no_outputs(tmp_path)


def test_cli_patches_and_bad_scene(tmp_path):
    scene, mask = make(tmp_path, blocks((64, 64), 32, LAYOUT))
    npz, table = tmp_path / "p" / "a" / "snowfree.npz", tmp_path / "p" / "a" / "snowfree.csv"
    base = [sys.executable, "-m", "deepsnow.cli", "patches", "--params", '{"size": 32, "stride": 32}']
    res = subprocess.run(
        base + ["--scene", str(scene), "--mask", str(mask), "--output", str(npz), "--table", str(table)],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    for f in (npz, table):
        prov = json.loads((f.parent / (f.name + ".prov.json")).read_text())
        assert prov["stage"] == "patches" and prov["extra"]["kept"] == 2
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"not a tiff at all")
    res = subprocess.run(
        base
        + [
            "--scene",
            str(bad),
            "--mask",
            str(mask),
            "--output",
            str(tmp_path / "x.npz"),
            "--table",
            str(tmp_path / "x.csv"),
        ],
        capture_output=True,
        text=True,
    )
    assert res.returncode != 0 and str(bad) in res.stderr
    assert not (tmp_path / "x.npz").exists() and not (tmp_path / "x.csv").exists()


# --- windowed processing: the same shard whatever the window --------------------------------------


def _naive_shard(scene_path, mask_path, p, truth_path=None):
    """The kept patches cut from whole in-memory rasters, window by window (the pre-windowed stage)."""
    from deepsnow.data.mask import WATER, read_mask
    from deepsnow.data.patches import label_windows, window_stats
    from deepsnow.data.render import render_rgb
    from deepsnow.data.scene import read_scene

    scene, (classes, _, _) = read_scene(scene_path), read_mask(mask_path)
    size = p["size"]
    win = window_stats(classes, size, p["stride"])
    kept = np.flatnonzero(label_windows(win, p, scene.tags["DEEPSNOW_SEASON"]).kept)
    out = {"row": win.row[kept], "col": win.col[kept], "snow_fraction": win.snow_f[kept].astype(np.float32)}
    images = {"rgb": render_rgb(scene.reflectance, p["rgb_max"], p["rgb_gamma"]), "water": classes == WATER}
    if truth_path is not None:
        images["truth"] = render_rgb(read_scene(truth_path).reflectance, p["rgb_max"], p["rgb_gamma"])
    for key, img in images.items():
        out[key] = np.array([img[r : r + size, c : c + size] for r, c in zip(out["row"], out["col"])]).reshape(
            (len(kept), size, size) + img.shape[2:]
        )
    return out


@pytest.mark.parametrize("size,stride", [(32, 32), (32, 24), (32, 40), (48, 16)])
def test_windowed_patches_equal_whole_scene(tmp_path, size, stride):
    """64-row reads of a 200 x 300 scene: the same arrays and table as one whole-scene read and as a
    naive whole-array cut; windows overlapping (stride < size) or apart (stride > size)."""
    from random_scene import random_scene

    scene = random_scene(tmp_path / "a" / "snowfree.tif", 200, 300, seed=3, aoi="a")
    truth = random_scene(tmp_path / "a" / "truth.tif", 200, 300, seed=4, aoi="a")
    mask = tmp_path / "a" / "mask.tif"
    mask_scene(scene, validate_section("mask", {}), mask, tmp_path / "a" / "mask.json")
    p = params(size=size, stride=stride)
    ref = _naive_shard(scene, mask, p, truth)
    assert len(ref["row"]) > 3  # some windows are kept, others rejected
    got = {}
    for rows in (64, 75, 200):
        npz, table = tmp_path / f"w{rows}" / "p.npz", tmp_path / f"w{rows}" / "p.csv"
        summary = cut_patches(scene, mask, p, npz, table, truth_path=truth, window_rows=rows)
        got[rows] = (load(npz), table.read_bytes(), summary)
    for rows in (64, 75):
        arrays, table, summary = got[rows]
        whole, whole_table, whole_summary = got[200]
        assert table == whole_table and summary == whole_summary
        assert sorted(arrays) == sorted(whole)
        for key in whole:
            assert arrays[key].dtype == whole[key].dtype and np.array_equal(arrays[key], whole[key]), key
        for key in ref:
            assert np.array_equal(arrays[key], ref[key]), key
    assert summary["kept"] < summary["candidates"]


def test_row_bands_hold_every_window_once():
    from deepsnow.data.patches import row_bands

    for height, size, stride, rows in [(200, 32, 32, 64), (200, 32, 24, 64), (200, 32, 40, 100), (97, 32, 8, 20)]:
        bands = row_bands(height, size, stride, rows)
        n = (height - size) // stride + 1
        assert [i for i0, i1, _, _ in bands for i in range(i0, i1)] == list(range(n))
        for i0, i1, r0, r1 in bands:
            assert r0 == i0 * stride and r1 == (i1 - 1) * stride + size <= height
            assert r1 - r0 <= max(rows, size)


def test_streamed_shard_reads_like_save_npz(tmp_path):
    from deepsnow.io import NpzArray, load_npz, save_npz, save_npz_stream

    rgb = np.arange(5 * 4 * 4 * 3, dtype=np.uint8).reshape(5, 4, 4, 3)
    ids = np.array(["a", "bb", "ccc", "d", "e"])
    save_npz(tmp_path / "a.npz", rgb=rgb, ids=ids)
    save_npz_stream(tmp_path / "b.npz", {"rgb": NpzArray(np.uint8, rgb.shape, (rgb[:2], rgb[2:])), "ids": ids})
    a, b = load_npz(tmp_path / "a.npz"), load_npz(tmp_path / "b.npz")
    assert list(a) == list(b) and all(np.array_equal(a[k], b[k]) and a[k].dtype == b[k].dtype for k in a)
    with pytest.raises(ValueError, match=r"chunks hold 72 elements, shape \(2, 4, 4, 3\) needs 96"):
        save_npz_stream(tmp_path / "c.npz", {"rgb": NpzArray(np.uint8, (2, 4, 4, 3), (rgb[:1], rgb[1:2, :2]))})
    assert not (tmp_path / "c.npz").exists() and not list(tmp_path.glob(".c.npz*"))
