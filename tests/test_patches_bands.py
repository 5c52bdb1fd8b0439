"""Patches with chosen bands (issue #28 item 2): ``patches.bands`` and ``patches.encoding``.

The default (rgb8, B04 B03 B02) is bit-identical to the shards cut before the option existed; with
``reflectance`` the chosen bands are kept as uint16 reflectance x 10000 and named in the shard, and the
split passes them through."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import rasterio

from deepsnow import DeepsnowError
from deepsnow.config import validate_config, validate_section
from deepsnow.data import bands as B
from deepsnow.data.mask import mask_scene
from deepsnow.data.patches import cut_patches
from deepsnow.data.scene import REFLECTANCE_BANDS
from deepsnow.data.split import split_dataset
from helpers import deepsnow, merged_config
from random_scene import random_scene
from synthetic import blocks, write_cover_scene

TEN = list(REFLECTANCE_BANDS)

#: sha256 (first 16 hex digits) of each array of the shard that the code before ``patches.bands``
#: existed (main at 5bbe83b) cut from ``random_scene(96 x 128, seed 3)`` with truth seed 4, size 32,
#: stride 16 (``crs``, a WKT string whose spelling follows the PROJ version, is left out).
BEFORE = {
    "rgb": "a0e01adce3d13ed2",
    "truth": "2fc5e1308fc1b61f",
    "water": "af1fb044e41796da",
    "ids": "8d1839b330c23d93",
    "row": "3b28ee667ed17b04",
    "col": "03e4604acb43a0d4",
    "transform": "f13f7e61634fdbb7",
    "snow_fraction": "006152aaa6f556f4",
    "cloud_fraction": "0fbf876ab4589411",
    "valid_fraction": "f912174b3482c478",
    "water_fraction": "7f9cfaea1407e831",
}


def load(path):
    with np.load(path, allow_pickle=False) as d:
        return {k: d[k] for k in d.files}


def _random_pair(tmp_path):
    scene = random_scene(tmp_path / "a" / "snowfree.tif", 96, 128, seed=3, aoi="a")
    truth = random_scene(tmp_path / "a" / "truth.tif", 96, 128, seed=4, aoi="a")
    mask = tmp_path / "a" / "mask.tif"
    mask_scene(scene, validate_section("mask", {}), mask, tmp_path / "a" / "mask.json")
    return scene, truth, mask


def test_default_patches_are_bit_identical_to_before(tmp_path):
    scene, truth, mask = _random_pair(tmp_path)
    p = validate_section("patches", {"size": 32, "stride": 16})
    assert (p["encoding"], p["bands"]) == ("rgb8", ["B04", "B03", "B02"])
    cut_patches(scene, mask, p, tmp_path / "p.npz", tmp_path / "p.csv", truth_path=truth)
    arrays = load(tmp_path / "p.npz")
    assert sorted(arrays) == sorted([*BEFORE, "crs"])  # no band list or encoding added to an rgb8 shard
    got = {k: hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest()[:16] for k, v in arrays.items() if k != "crs"}
    assert got == BEFORE


def ten_band_scene(path, season="snowfree", aoi="a", seed=0, size=64):
    """A ``size`` px scene of the four test covers holding all ten reflectance bands (the five the
    test spectra give, the others random but distinct per band)."""
    rng = np.random.default_rng(seed)
    cover = blocks((size, size), size // 2, [["veg", "snow"], ["veg", "snow"]])
    extra = {b: rng.uniform(0.01 * (i + 1), 0.9, (size, size)) for i, b in enumerate(("B05", "B06", "B07", "B8A", "B12"))}
    return write_cover_scene(path, cover, season=season, aoi=aoi, reflectance=extra)


def _cut(tmp_path, scene, p, name="out", truth=None):
    mask = scene.with_name(scene.stem + "_mask.tif")
    mask_scene(scene, validate_section("mask", {}), mask, scene.with_name(scene.stem + "_mask.json"))
    npz, table = tmp_path / name / "p.npz", tmp_path / name / "p.csv"
    summary = cut_patches(scene, mask, p, npz, table, truth_path=truth)
    return summary, load(npz), table.read_bytes()


def test_reflectance_patches_keep_the_chosen_bands_as_uint16(tmp_path):
    scene = ten_band_scene(tmp_path / "a" / "snowfree.tif", seed=1)
    truth = ten_band_scene(tmp_path / "a" / "truth.tif", seed=2)
    chosen = ["B11", "B02", "B8A", "B12"]  # any subset, in the order given
    p = validate_section("patches", {"size": 32, "stride": 32, "encoding": "reflectance", "bands": chosen})
    summary, arr, table = _cut(tmp_path, scene, p, "refl", truth)
    _, rgb, rgb_table = _cut(tmp_path, scene, validate_section("patches", {"size": 32, "stride": 32}), "rgb")
    assert summary["kept"] == 2 and "rgb" not in arr
    assert list(arr["bands"]) == chosen and str(arr["encoding"]) == "reflectance"
    assert arr["reflectance"].dtype == np.uint16 and arr["reflectance"].shape == (2, 32, 32, 4)
    assert arr["truth"].dtype == np.uint16 and arr["truth"].shape == (2, 32, 32, 4)
    with rasterio.open(scene) as src:
        index = {d: i for i, d in enumerate(src.descriptions, start=1)}
        stored = src.read([index[b] for b in chosen]).transpose(1, 2, 0)  # the scene's own DN
    for j, (r, c) in enumerate(zip(arr["row"], arr["col"])):
        np.testing.assert_array_equal(arr["reflectance"][j], stored[r : r + 32, c : c + 32])
    assert table == rgb_table  # the same windows, labels and reasons whatever the bands
    np.testing.assert_array_equal(arr["ids"], rgb["ids"])


def test_a_scene_lacking_a_band_is_refused_naming_it(tmp_path):
    scene = random_scene(tmp_path / "a" / "snowfree.tif", 64, 64, seed=3, aoi="a")  # five bands: no B05
    p = validate_section("patches", {"size": 32, "stride": 32, "encoding": "reflectance", "bands": ["B03", "B05"]})
    with pytest.raises(DeepsnowError, match=r"snowfree.tif: scene has no band B05"):
        _cut(tmp_path, scene, p)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize(
    "section,words",
    [
        ({"bands": ["B08", "B04", "B03"]}, "with patches.encoding rgb8"),
        ({"bands": ["B04", "B03"]}, "with patches.encoding rgb8"),
        ({"bands": ["B04", "B99"], "encoding": "reflectance"}, "B99"),
        ({"bands": ["B04", "B04"], "encoding": "reflectance"}, "patches.bands"),
        ({"bands": [], "encoding": "reflectance"}, "patches.bands"),
        ({"encoding": "float"}, "patches.encoding"),
    ],
)
def test_bad_band_lists_are_config_errors(section, words):
    with pytest.raises(DeepsnowError, match=words):
        validate_section("patches", {"size": 32, **section})


def test_check_bands_names_the_key_and_the_allowed_bands():
    assert B.check_bands(["B04", "B03", "B02"], "rgb8") == []
    assert B.check_bands(TEN, "reflectance") == []
    (line,) = B.check_bands(["B04", "B1"], "reflectance")
    assert "patches.bands" in line and "B1" in line and "B8A" in line
    (line,) = B.check_bands(["B02", "B02"], "reflectance")
    assert "B02" in line and "more than once" in line
    assert "rgb8" in B.check_bands(TEN, "rgb8")[0]
    assert tuple(B.BAND_NAMES) == REFLECTANCE_BANDS and set(B.UNIT_REFLECTANCE) == set(REFLECTANCE_BANDS)


def test_the_workflow_takes_reflectance_runs_from_every_source():
    cfg = merged_config("configs/test.yaml")
    cfg["patches"] = {**cfg.get("patches", {}), "encoding": "reflectance", "bands": TEN}
    validate_config(cfg)  # the stages after train take reflectance now (what does not is refused at DAG build)
    cfg["data"]["source"] = "stac"  # the downloads fetch every band of patches.bands (issue #28 item 1)
    with pytest.raises(DeepsnowError) as err:  # (the test config has no areas for stac: refused for that alone)
        validate_config(cfg)
    assert "patches.bands" not in str(err.value) and "patches.encoding" not in str(err.value)
    cfg["patches"]["bands"] = ["B04", "B10"]  # unknown names are still refused, naming the key and the allowed
    with pytest.raises(DeepsnowError, match=r"patches.bands.*'B10' is not one of.*B8A"):
        validate_config(cfg)
    ok = merged_config("configs/test.yaml")
    validate_config(ok)  # rgb8 (the default) is untouched


def _reflectance_shards(tmp_path, chosen):
    p = validate_section("patches", {"size": 32, "stride": 32, "encoding": "reflectance", "bands": chosen})
    shards = []
    for i, aoi in enumerate(("a", "b")):
        for season in ("snowfree", "snow"):
            scene = ten_band_scene(tmp_path / "patches" / aoi / f"{season}.tif", season=season, aoi=aoi, seed=i)
            mask = scene.with_name(f"{season}_mask.tif")
            mask_scene(scene, validate_section("mask", {}), mask, scene.with_name(f"{season}_mask.json"))
            shard = tmp_path / "patches" / aoi / f"{season}.npz"
            cut_patches(scene, mask, p, shard, shard.with_suffix(".csv"))
            shards.append(shard)
    return shards


def test_split_passes_reflectance_and_the_band_list_through(tmp_path):
    shards = _reflectance_shards(tmp_path, TEN)
    summary = split_dataset(shards, validate_section("split", {"test_aois": ["b"]}), tmp_path / "dataset")
    assert summary["encoding"] == "reflectance" and summary["bands"] == TEN
    for name in ("trainA", "trainB", "testA", "testB"):
        arr = load(tmp_path / "dataset" / f"{name}.npz")
        assert arr["reflectance"].dtype == np.uint16 and arr["reflectance"].shape[1:] == (32, 32, 10)
        assert list(arr["bands"]) == TEN and str(arr["encoding"]) == "reflectance"
        assert len(arr["ids"]) == summary["counts"][name] == len(arr["reflectance"])


def test_split_refuses_shards_of_different_bands(tmp_path):
    shards = _reflectance_shards(tmp_path, TEN)
    arr = load(shards[0])
    arr["bands"] = np.array(TEN[::-1])  # same count, other order: another band list
    np.savez(shards[0], **arr)
    with pytest.raises(DeepsnowError, match=r"cut all shards with one patches.bands"):
        split_dataset(shards, validate_section("split", {"test_aois": ["b"]}), tmp_path / "dataset")
    assert not (tmp_path / "dataset").exists() or not any((tmp_path / "dataset").iterdir())


def test_patches_command_refuses_rgb8_with_ten_bands_exit_2(tmp_path):
    scene = ten_band_scene(tmp_path / "a" / "snowfree.tif")
    out = tmp_path / "o" / "p.npz"
    res = deepsnow("patches", "--params", '{"size": 32, "bands": ["B02", "B03", "B04", "B08"]}', "--scene", scene,
                   "--mask", scene, "--output", out, "--table", tmp_path / "o" / "p.csv")
    assert res.returncode == 2 and "patches.bands" in res.stderr
    assert not out.exists()
