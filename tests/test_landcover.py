"""Land-cover labels: the simulator's landcover.tif, per-patch class fractions, their way through split."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import rasterio

from deepsnow import DeepsnowError
from deepsnow.config import validate_section
from deepsnow.data import simulator as sim
from deepsnow.data.landcover import CLASSES, SNOW_SCALE, TARGETS, LandcoverFile, encode_snow, patch_fractions
from deepsnow.data.mask import mask_scene
from deepsnow.data.patches import cut_patches
from deepsnow.data.split import split_dataset

SIZE = 128
PATCH = 32


def data_params() -> dict:
    return validate_section("data", {"simulator": {"size": SIZE, "n_aois": 3, "seed": 1, "snow_line_m": 300}})


def simulate(out, aoi, landcover=True) -> dict:
    paths = {k: out / aoi / f"{k}.tif" for k in ("snowfree", "snow", "truth")}
    paths["landcover"] = out / aoi / "landcover.tif" if landcover else None
    sim.simulate_area(aoi, data_params(), paths["snowfree"], paths["snow"], paths["truth"], paths["landcover"])
    return paths


@pytest.fixture(scope="module")
def area(tmp_path_factory):
    return simulate(tmp_path_factory.mktemp("lc"), "sim00")


def test_landcover_file_holds_the_simulated_classes_and_snow(area):
    """Band 1 is the landscape's class map, band 2 the snow-season snow fraction the scenes were made with."""
    p = data_params()["simulator"]
    seed = sim.area_seed(p["seed"], 0)
    land = sim.build_landscape(SIZE, seed)
    seasons = sim.season_states(land, p, seed)
    with rasterio.open(area["landcover"]) as src:
        assert (src.count, src.dtypes[0], src.descriptions) == (2, "uint8", ("class", "snow"))
        assert src.tags()["DEEPSNOW_CLASSES"].split(",") == list(CLASSES)
        with rasterio.open(area["truth"]) as truth:
            assert src.crs == truth.crs and src.transform == truth.transform
        bands = src.read()
    np.testing.assert_array_equal(bands[0], land.cover)
    np.testing.assert_array_equal(bands[1], encode_snow(seasons.fsnow))
    assert 0 < bands[1].mean() < SNOW_SCALE  # some snow, not all


def test_scenes_do_not_depend_on_writing_the_labels(tmp_path, area):
    """The labels draw no random numbers: the scenes are byte-identical with and without them."""
    plain = simulate(tmp_path, "sim00", landcover=False)
    for name in ("snowfree", "snow", "truth"):
        assert plain[name].read_bytes() == area[name].read_bytes(), name


def test_patch_fractions_by_hand():
    patches = np.zeros((2, 4, 4, 2), dtype=np.uint8)
    patches[0, :2, :, 0] = CLASSES.index("forest")  # half forest, half water
    patches[1, ..., 0] = CLASSES.index("road")
    patches[1, :, :1, 1] = SNOW_SCALE  # a quarter of it fully snowy
    got = patch_fractions(patches, snow_season=True)
    assert got.shape == (2, len(TARGETS)) and got.dtype == np.float32
    assert got[0, CLASSES.index("forest")] == 0.5 and got[0, CLASSES.index("water")] == 0.5
    assert got[1, CLASSES.index("road")] == 1.0 and got[1, -1] == 0.25
    assert patch_fractions(patches, snow_season=False)[1, -1] == 0.0
    np.testing.assert_allclose(got[:, :-1].sum(axis=1), 1.0)


def cut(tmp_path, area, season, window_rows=None, name="p"):
    mask = tmp_path / f"{season}_mask.tif"
    if not mask.exists():
        mask_scene(area[season], validate_section("mask", {}), mask, tmp_path / f"{season}_mask.json")
    npz, table = tmp_path / name / f"{season}.npz", tmp_path / name / f"{season}.csv"
    p = validate_section("patches", {"size": PATCH, "stride": PATCH // 2})
    cut_patches(area[season], mask, p, npz, table, landcover_path=area["landcover"], window_rows=window_rows)
    with np.load(npz, allow_pickle=False) as d:
        return {k: d[k] for k in d.files}


@pytest.mark.parametrize("season", ["snowfree", "snow"])
def test_patches_carry_the_fractions_of_their_window(tmp_path, area, season):
    shard = cut(tmp_path, area, season)
    assert len(shard["rgb"]) > 0
    assert list(shard["landcover_targets"]) == list(TARGETS)
    with rasterio.open(area["landcover"]) as src:
        classes, snow = src.read()
    for k, (r, c) in enumerate(zip(shard["row"], shard["col"])):
        window = classes[r : r + PATCH, c : c + PATCH]
        want = np.bincount(window.ravel(), minlength=len(CLASSES)) / PATCH**2
        np.testing.assert_allclose(shard["landcover"][k, :-1], want, atol=1e-6)
        want_snow = snow[r : r + PATCH, c : c + PATCH].mean() / SNOW_SCALE if season == "snow" else 0.0
        assert shard["landcover"][k, -1] == pytest.approx(want_snow, abs=1e-6)
    if season == "snow":
        assert shard["landcover"][:, -1].mean() > 0.3  # snowy patches are labelled snowy


def test_banded_reading_gives_the_same_fractions(tmp_path, area):
    whole = cut(tmp_path, area, "snow", name="whole")
    banded = cut(tmp_path, area, "snow", window_rows=PATCH + PATCH // 2, name="banded")
    np.testing.assert_array_equal(whole["landcover"], banded["landcover"])


def test_landcover_on_another_grid_or_of_another_kind_is_an_error(tmp_path, area):
    mask = tmp_path / "m.tif"
    mask_scene(area["snow"], validate_section("mask", {}), mask, tmp_path / "m.json")
    p = validate_section("patches", {"size": PATCH, "stride": PATCH})
    other = simulate(tmp_path / "other", "sim01")["landcover"]  # another area: another grid
    with pytest.raises(DeepsnowError, match="land cover is not on the grid"):
        cut_patches(area["snow"], mask, p, tmp_path / "o.npz", tmp_path / "o.csv", landcover_path=other)
    with pytest.raises(DeepsnowError, match=r"m.tif: expected a 2-band uint8 land-cover"):
        LandcoverFile(mask)
    assert not (tmp_path / "o.npz").exists() and not (tmp_path / "o.csv").exists()


def test_split_keeps_the_fractions_of_every_set(tmp_path, area):
    shards = []
    for aoi in ("sim00", "sim01"):
        paths = area if aoi == "sim00" else simulate(tmp_path / "scenes", aoi)
        for season in ("snowfree", "snow"):
            shard = cut(tmp_path / aoi, paths, season, name="patches")
            dst = tmp_path / "patches" / aoi / f"{season}.npz"
            dst.parent.mkdir(parents=True, exist_ok=True)
            np.savez(dst, **shard)
            shards.append(dst)
    split_dataset(shards, validate_section("split", {"test_aois": ["sim01"]}), tmp_path / "dataset")
    for name in ("trainA", "trainB", "testA", "testB"):
        with np.load(tmp_path / "dataset" / f"{name}.npz", allow_pickle=False) as d:
            assert d["landcover"].shape == (len(d["rgb"]), len(TARGETS))
            assert list(d["landcover_targets"]) == list(TARGETS)
            assert (d["landcover"][:, -1] > 0).any() == name.endswith("B")


def test_cli_simulate_writes_landcover_with_provenance(tmp_path):
    out = {k: tmp_path / f"{k}.tif" for k in ("snowfree", "snow", "truth", "landcover")}
    cmd = [
        sys.executable, "-m", "deepsnow.cli", "simulate", "--params", json.dumps({"simulator": {"size": 64}}),
        "--aoi", "sim00", *(x for k, v in out.items() for x in (f"--{k}", str(v))),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    with LandcoverFile(out["landcover"]) as lc:
        assert lc.read().shape == (64, 64, 2)
    assert json.loads((tmp_path / "landcover.tif.prov.json").read_text())["stage"] == "simulate"
