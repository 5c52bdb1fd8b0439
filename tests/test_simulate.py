"""The offline scene simulator (deepsnow.data.simulator): format, determinism, physics of the pixels."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from scipy import ndimage

from deepsnow import DeepsnowError
from deepsnow.config import validate_section
from deepsnow.data import simulator as sim
from deepsnow.data.scene import REFLECTANCE_BANDS, SCENE_BANDS, V1_BANDS, VERSION_TAG, read_scene
from helpers import pinned

SIZE = 192
CLOUD_CLASSES = (8, 9, 10)


def params(**simulator) -> dict:
    return validate_section("data", {"simulator": {"size": SIZE, **simulator}})


def run_area(outdir: Path, aoi: str, p: dict) -> tuple[dict, dict[str, Path]]:
    paths = {k: outdir / aoi / f"{k}.tif" for k in ("snowfree", "snow", "truth", "snowfall")}
    summary = sim.simulate_area(aoi, p, paths["snowfree"], paths["snow"], paths["truth"], snowfall_path=paths["snowfall"])
    return summary, paths


def ndsi(scene) -> np.ndarray:
    g, s = scene.reflectance["B03"], scene.reflectance["B11"]
    return (g - s) / np.maximum(g + s, 1e-6)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """sim00 and sim01 with the default configuration at 192 px."""
    out = tmp_path_factory.mktemp("sim")
    p = params()
    return {aoi: run_area(out, aoi, p) for aoi in ("sim00", "sim01")}


@pytest.fixture(scope="module")
def cloudy_run(tmp_path_factory):
    """Every acquired scene cloudy, 30 % cover."""
    out = tmp_path_factory.mktemp("cloudy")
    return run_area(out, "sim01", params(cloudy_scene_fraction=1.0, cloud_cover=0.3))


# --------------------------------------------------------------------------- format


def test_scene_format_and_geometry(default_run):
    summary, paths = default_run["sim00"]
    for name, path in paths.items():
        with rasterio.open(path) as src:
            assert src.count == 12  # the simulator writes all ten reflectance bands
            assert tuple(src.descriptions) == SCENE_BANDS
            assert set(src.dtypes) == {"uint16"}
            assert (src.width, src.height) == (SIZE, SIZE)
            epsg = src.crs.to_epsg()
            assert 32601 <= epsg <= 32660, epsg  # default origin 10E 46.5N: UTM north
            assert epsg == 32632 == summary["epsg"]
            t = src.transform
            assert (t.a, t.b, t.d, t.e) == (10.0, 0.0, 0.0, -10.0)
            assert t.c % 10 == 0 and t.f % 10 == 0
            # the upper-left corner of sim00 is the origin projected to UTM 32N
            assert abs(t.c - 576730) < 20 and abs(t.f - 5150089) < 20
            tags = src.tags()
        assert tags["DEEPSNOW_SOURCE"] == "simulator" and tags[VERSION_TAG] == "2"
        assert tags["DEEPSNOW_AOI"] == "sim00"
        assert tags["DEEPSNOW_SEASON"] == ("snowfree" if name == "snowfree" else "snow")
        date = dt.date.fromisoformat(tags["DEEPSNOW_DATE"])
        if name == "snowfree":
            assert 6 <= date.month <= 8
        else:
            assert date.month in (1, 2)
        assert ("DEEPSNOW_TRUTH" in tags) == (name in ("truth", "snowfall"))
        assert ("DEEPSNOW_SNOWFALL" in tags) == (name == "snowfall")
        scene = read_scene(path)  # the project's own reader accepts it
        assert scene.shape == (SIZE, SIZE)
        assert set(np.unique(scene.data_mask)) <= {0, 1}
        assert set(np.unique(scene.scl)) <= set(range(12))
        # nodata only where dataMask is 0, and then every band is 0
        nod = scene.data_mask == 0
        assert np.all(scene.scl[nod] == 0)
        assert all(np.all(scene.reflectance[b][nod] == 0) for b in scene.reflectance)
        assert np.all(scene.scl[~nod] != 0)
        assert all(np.all(scene.reflectance[b][~nod] > 0) for b in scene.reflectance)


def test_summary_is_json_and_complete(default_run):
    summary, paths = default_run["sim00"]
    json.dumps(summary)  # serialisable
    assert summary["seed"] == sim.area_seed(0, 0)
    assert summary["epsg"] == 32632
    assert set(summary["land_cover"]) == set(sim.LAND_COVER)
    assert abs(sum(summary["land_cover"].values()) - 1.0) < 1e-3
    assert set(summary["scenes"]) == {"snowfree", "snow", "truth", "snowfall"}
    assert summary["snow"]["snowfall_line_m"] < summary["elevation_m"]["min"]
    for name, s in summary["scenes"].items():
        for key in ("snow_fraction", "cloud_fraction", "shadow_fraction", "valid_fraction", "cloudy", "date"):
            assert key in s, (name, key)
        scene = read_scene(paths[name])
        valid = scene.data_mask == 1
        assert s["snow_fraction"] == pytest.approx((scene.scl == 11).sum() / valid.sum(), abs=1e-4)
        assert s["cloud_fraction"] == pytest.approx(np.isin(scene.scl, CLOUD_CLASSES).sum() / valid.sum(), abs=1e-4)


def test_southern_hemisphere_origin(tmp_path):
    p = validate_section("data", {"simulator": {"size": 64, "origin": [-70.0, -33.0]}})
    summary, paths = run_area(tmp_path, "sim01", p)
    with rasterio.open(paths["snowfree"]) as src:
        assert src.crs.to_epsg() == 32719  # UTM 19S
        assert src.tags()["DEEPSNOW_DATE"].startswith("2021-0") and dt.date.fromisoformat(src.tags()["DEEPSNOW_DATE"]).month in (1, 2)
    with rasterio.open(paths["snow"]) as src:
        assert dt.date.fromisoformat(src.tags()["DEEPSNOW_DATE"]).month in (6, 7, 8)


def test_origin_outside_utm_is_refused(tmp_path):
    p = validate_section("data", {"simulator": {"size": 64, "origin": [10.0, 88.0]}})
    with pytest.raises(DeepsnowError, match="origin"):
        run_area(tmp_path, "sim00", p)


def test_unknown_area_is_refused(tmp_path):
    p = params(n_aois=4)
    for bad in ("sim04", "sim4", "area1", ""):
        with pytest.raises(DeepsnowError, match="sim00, sim01, sim02, sim03"):
            run_area(tmp_path, bad, p)
    assert not any(tmp_path.rglob("*.tif"))


# --------------------------------------------------------------------------- determinism and layout


def test_deterministic_byte_identical(tmp_path, default_run):
    summary0, paths0 = default_run["sim01"]
    summary1, paths1 = run_area(tmp_path, "sim01", params())
    assert summary1["seed"] == summary0["seed"]
    assert summary1["land_cover"] == summary0["land_cover"]
    for name in paths0:
        assert sha256(paths0[name]) == sha256(paths1[name]), name
        a, b = read_scene(paths0[name]), read_scene(paths1[name])
        assert np.array_equal(a.scl, b.scl)
        assert all(np.array_equal(a.reflectance[k], b.reflectance[k]) for k in a.reflectance)


def test_area_does_not_depend_on_number_of_areas(tmp_path, default_run):
    _, paths = default_run["sim01"]
    _, other = run_area(tmp_path, "sim01", params(n_aois=7))
    assert sha256(paths["snowfree"]) == sha256(other["snowfree"])


#: sha256 of the pixel arrays of area sim00 at 96 px, base seed 1, every acquired scene cloudy at 30 %
#: cover, snow line 500 m, so that terrain, land cover, snow, clouds, shadows and a nodata wedge (in its
#: snow-free scene) all show: of the scenes' version-1 bands (B04 B03 B02 B08 B11 SCL dataMask, read by
#: name and stacked in that order: the bytes of a version-1 scene's rasterio ``read()``) and of the
#: land-cover file (its ``read()``). Recorded by running this case through the single-module simulator
#: (deepsnow/data/simulate.py) of commit b3d4cd1, before it became the deepsnow.data.simulator
#: package, and matched by the package unchanged; the snowfall truth's was recorded when it was added.
#: Unchanged when the five bands B05 B06 B07 B8A B12 were added (branch ``bands``, issue #28): these
#: are main's digests of its 7-band scenes, so the first five bands' pixels, SCL and dataMask are bit
#: for bit as before (the default RGB run is unchanged). A numpy or scipy upgrade that changes the
#: random streams or the FFT changes them too: then re-record with the code before any change of yours.
#: Per SIMD level of the CPU (tests/helpers.py ``pinned``): the same code rounds differently on AVX2 and AVX-512.
PINNED_CASE = {"size": 96, "n_aois": 4, "seed": 1, "cloudy_scene_fraction": 1.0, "cloud_cover": 0.3, "snow_line_m": 500}
PINNED_PIXELS = {
    # the machines of the sessions that recorded them: AVX-512 ones (an AVX2-only CPU rounds the
    # terrain's and clouds' floats differently; its values below)
    "AVX512": {
        "snowfree": "4b658fe8d94c90d1b159c2bbb2f3ab981d4f1ff2a8c5c275b3e15b3951dfaa02",
        "snow": "9cc2239a702710fad376ca4f9f98df3b167d7ae6c8be233ff8821f50d893201f",
        "truth": "d31d02be9597e38dc16675ee0ad32b9315daa50d7750ce55db5af228eb5a6657",
        "snowfall": "f66a93dd6078f9c6e84a392a807202198d8e8e26034b87d8b4bc0c12d5e52e7c",
        "landcover": "b4a2c822c9189b0ece30171679cd7237c1e2f2c469b0043b200ea3550c4a6497",
    },
    # main at 1f7d3f1 (whose simulator matched the AVX-512 pins there) on an AVX2 AMD EPYC, 2026-12-07
    "AVX2": {
        "snowfree": "d410305fc66463c76e8014e9b390b4fca3979427af44e317be11154d11971f26",
        "snow": "2249e3751dabfff4575669a8ef711f6fffb5af786a093c911fd127c318586c1e",
        "truth": "0a74997e725d2915b76f21dcb0b948ae8c027a59111d167ad63079953806afa7",
        "snowfall": "3c22d9408690fc0bf59ddf1dd46b7fac8deaba442274f0fa4bcee2bc44d9d790",
        "landcover": "e20e3049cfa52acd452e7e529be275358e19a93d272abe96f1c6a8e40bc7404b",
    },
}
#: The bands added for issue #28, in this order: sha256 of their pixels (as stored), recorded when they were added.
NEW_BANDS = ("B05", "B06", "B07", "B8A", "B12")
PINNED_NEW_BANDS = {
    "AVX512": {
        "snowfree": "bc5fa8197a79503d3ef8c85bebf1b57dcbcbbefa70c82f27f423ce0ae1038fda",
        "snow": "458b9d07d8499316b52a609ecb336db44ac6f21f2e09c14447078eb5c942371a",
        "truth": "32d42833201c83dc947922cdd9ab5a0780376395ff96fab69f863446d0905b95",
        "snowfall": "0aa4c857530c5ccc8bdfb70eddaef71525545372c91cc1a7aa4c0cf2bc8e3171",
    },
    "AVX2": {  # as the AVX2 pins above
        "snowfree": "77070180bd3f8b97c885a709b20bf5613b31c0e64a5fb4aaab48e5d834b225a2",
        "snow": "660d5222c02f5a619ad7a62871b5210f80241a6df778116d0ba1ac5dc5e5180f",
        "truth": "82b7fe9dcc0aac3a7e09ce2b39c7a72ad77adca1a9dd24a9dbc00c7bb085fe2d",
        "snowfall": "feb22b406a329781a622438e637d5d2a691e6651a5b08d9195f98fde15808280",
    },
}


def pixel_digests(path: Path) -> tuple[str, str | None]:
    """sha256 of a file's version-1 bands (by name, in ``V1_BANDS`` order; every band of a non-scene)
    and of its ``NEW_BANDS`` (None for a non-scene)."""
    with rasterio.open(path) as src:
        index = {d: i for i, d in enumerate(src.descriptions, start=1)}
        if "SCL" not in index:
            return hashlib.sha256(src.read().tobytes()).hexdigest(), None
        old, new = src.read([index[b] for b in V1_BANDS]), src.read([index[b] for b in NEW_BANDS])
    return hashlib.sha256(old.tobytes()).hexdigest(), hashlib.sha256(new.tobytes()).hexdigest()


def test_pixels_are_as_recorded(tmp_path):
    """Refactoring the simulator leaves its pixels alone: a small area's arrays hash as recorded; the
    bands of the earlier 7-band scenes as main recorded them before the five new bands came."""
    pins, pins_new = pinned(PINNED_PIXELS, "simulator pixels"), pinned(PINNED_NEW_BANDS, "simulator pixels")
    paths = {name: tmp_path / f"{name}.tif" for name in pins}
    p = validate_section("data", {"simulator": PINNED_CASE})
    summary = sim.simulate_area(
        "sim00", p, paths["snowfree"], paths["snow"], paths["truth"], paths["landcover"], paths["snowfall"]
    )
    scenes = summary["scenes"]
    assert scenes["snowfree"]["valid_fraction"] < 1 and scenes["snow"]["cloud_fraction"] > 0.3
    assert scenes["truth"]["snow_fraction"] > 0.3  # the case shows what it is meant to
    assert scenes["snowfall"]["snow_fraction"] > scenes["truth"]["snow_fraction"] + 0.2
    for name, path in paths.items():
        old, new = pixel_digests(path)
        assert old == pins[name], name
        assert new == pins_new.get(name), name


def test_spectra_cover_every_band_and_class():
    """The per-band spectra table is the one place a band is added: it matches the scene bands."""
    assert sorted(sim.SPECTRA) == sorted(REFLECTANCE_BANDS)  # all ten, the first five first (noise order)
    assert tuple(sim.SPECTRA)[:5] == V1_BANDS[:5] and set(sim.BAND_NOISE_KEY) == set(tuple(sim.SPECTRA)[5:])
    for band, spec in sim.SPECTRA.items():
        assert len(spec.summer) == len(spec.winter) == len(sim.LAND_COVER), band
        assert 0 < spec.snow_age[0] + spec.snow_age[1] and 0 < spec.snow_age[0], band  # snow stays positive at every age
    for band in ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A"):  # older, wetter snow is darker in the VNIR
        assert sim.SPECTRA[band].snow_age[1] < 0 and sim.SPECTRA[band].snow > 0.7, band
    assert sim.SPECTRA["B12"].snow < sim.SPECTRA["B11"].snow < 0.1  # and dark in the SWIR


def test_areas_differ(default_run):
    (s0, p0), (s1, p1) = default_run["sim00"], default_run["sim01"]
    assert s0["seed"] != s1["seed"]
    a, b = read_scene(p0["snowfree"]), read_scene(p1["snowfree"])
    assert np.corrcoef(a.reflectance["B08"].ravel(), b.reflectance["B08"].ravel())[0, 1] < 0.5
    assert s0["land_cover"] != s1["land_cover"]
    # a different base seed gives a different area too
    assert sim.area_seed(1, 0) != sim.area_seed(0, 0)


def test_areas_do_not_overlap():
    boxes = []
    for i in range(9):
        crs, t, epsg = sim.area_geometry(i, 384, [10.0, 46.5])
        assert epsg == 32632
        boxes.append((t.c, t.f - 384 * 10, t.c + 384 * 10, t.f))
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            disjoint = a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]
            assert disjoint, (a, b)


def test_written_bounds_match_summary(default_run):
    (s0, p0), (s1, p1) = default_run["sim00"], default_run["sim01"]
    with rasterio.open(p0["snow"]) as a, rasterio.open(p1["snow"]) as b:
        assert list(a.bounds) == s0["bounds"] and list(b.bounds) == s1["bounds"]
        assert a.bounds.right < b.bounds.left  # side by side, with a gap


# --------------------------------------------------------------------------- land cover and spectra


def test_every_land_cover_class_present(default_run):
    seen = set()
    for aoi, (summary, _) in default_run.items():
        lc = summary["land_cover"]
        for name in ("water", "forest", "meadow", "rock", "urban", "road"):
            assert lc[name] > 0, (aoi, name)
        assert lc["crop"] + lc["cereal"] + lc["bare_soil"] > 0.01, aoi
        assert 0.1 < lc["forest"] < 0.6 and lc["water"] < 0.1 and lc["urban"] < 0.05
        seen |= {k for k, v in lc.items() if v > 0}
    assert seen == set(sim.LAND_COVER)


def test_land_cover_spectra(default_run):
    """Per class median reflectance of the cloud-free truth and the snow-free scene's clear pixels."""
    summary, paths = default_run["sim01"]
    land = sim.build_landscape(SIZE, summary["seed"])
    scene = read_scene(paths["snowfree"])
    clear = np.isin(scene.scl, (2, 4, 5, 6))
    med = {}
    for k, name in enumerate(sim.LAND_COVER):
        sel = (land.cover == k) & clear
        assert sel.sum() > 5, name
        med[name] = {b: float(np.median(scene.reflectance[b][sel])) for b in scene.reflectance}
    for veg in ("forest", "meadow", "crop"):
        m = med[veg]
        assert m["B08"] > 4 * m["B04"], veg  # red edge
        assert m["B03"] > m["B04"] and m["B03"] > m["B02"], veg  # green peak
        assert 0.2 < m["B08"] < 0.55 and 0.02 < m["B04"] < 0.07, veg
        assert m["B04"] < m["B05"] < m["B06"] < m["B07"] < m["B8A"], veg  # the red edge, up to the NIR plateau
        assert abs(m["B8A"] - m["B08"]) < 0.05 and m["B12"] < m["B11"], veg
    water = med["water"]
    assert water["B08"] < 0.04 and water["B11"] < 0.03 and water["B8A"] < 0.03 and water["B12"] < 0.02
    assert all(water["B08"] < med[c]["B08"] for c in med if c != "water")  # darkest in NIR
    for bare in ("bare_soil", "rock"):
        m = med[bare]
        assert m["B04"] < m["B08"] < m["B11"], bare  # rising from red to SWIR
        assert 0.08 < m["B04"] < 0.25 and 0.15 < m["B11"] < 0.4, bare
    urban = med["urban"]
    assert 0.08 < urban["B02"] < 0.25 and 0.15 < urban["B11"] < 0.35
    assert med["road"]["B03"] < urban["B03"]
    assert med["crop"]["B08"] > med["cereal"]["B08"] and med["cereal"]["B04"] > med["crop"]["B04"]
    # texture: pixels of a class are not all equal
    assert np.std(scene.reflectance["B08"][(land.cover == sim.FOREST) & clear]) > 0.02
    # SCL from the pixels: vegetation is 4, bare land 5, water 6
    scl = scene.scl
    assert np.mean(scl[(land.cover == sim.FOREST) & np.isin(scl, (4, 5))] == 4) > 0.95
    assert np.mean(scl[np.isin(land.cover, (sim.ROCK, sim.URBAN, sim.SOIL)) & np.isin(scl, (4, 5))] == 5) > 0.95
    assert np.all(land.cover[scl == 6] == sim.WATER)


def test_landscape_has_structure():
    """Not noise: elevation is smooth with realistic relief and slopes; classes come in patches."""
    land = sim.build_landscape(256, sim.area_seed(0, 2))
    z = land.elevation
    assert 250 < z.min() < 600 and 300 < z.max() - z.min() < 1600
    assert np.median(land.slope) < 35
    # neighbouring pixels are strongly correlated
    assert np.corrcoef(z[:, :-1].ravel(), z[:, 1:].ravel())[0, 1] > 0.99
    same = np.mean(land.cover[:, :-1] == land.cover[:, 1:])
    assert same > 0.8
    # water in the lowest terrain, rock on top
    assert np.median(z[land.cover == sim.WATER]) < np.median(z)
    assert np.median(z[land.cover == sim.ROCK]) > np.percentile(z, 75)


# --------------------------------------------------------------------------- snow


def test_snowfree_scene_has_no_snow(default_run):
    for aoi, (summary, paths) in default_run.items():
        scene = read_scene(paths["snowfree"])
        assert summary["scenes"]["snowfree"]["snow_fraction"] == 0
        assert not np.any(scene.scl == 11)
        # nor would the NDSI rule of the mask stage find snow
        snowlike = (ndsi(scene) > 0.4) & (scene.reflectance["B08"] > 0.11) & (scene.scl != 6) & (scene.data_mask == 1)
        assert snowlike.mean() < 0.002, aoi


def test_snow_pixels_have_snow_spectra(default_run, cloudy_run):
    runs = [default_run["sim00"], default_run["sim01"], cloudy_run]
    n_snow = 0
    for summary, paths in runs:
        for name in ("snow", "truth"):
            scene = read_scene(paths[name])
            snow = scene.scl == 11
            n_snow += snow.sum()
            if not snow.any():
                continue
            assert np.all(ndsi(scene)[snow] > 0.4), name
            assert np.all(scene.reflectance["B08"][snow] > 0.11), name
            r = {b: float(np.median(v[snow])) for b, v in scene.reflectance.items()}
            assert r["B11"] < 0.2 and r["B03"] > 0.35
            assert r["B02"] >= r["B04"]  # slightly brighter in blue
            assert r["B12"] < r["B11"] and r["B8A"] > 0.3  # darker still at 2190 nm; bright in the NIR
            assert r["B04"] > r["B05"] > r["B07"] > r["B8A"], name  # falling from the red through the NIR
    assert n_snow > 1000


def test_snow_season_is_substantially_snowy(tmp_path):
    """With the default configuration (384 px, snow line 600 m) winter is snowy, summer not."""
    p = validate_section("data", {})
    assert p["simulator"]["size"] == 384
    fractions = []
    for aoi in ("sim00", "sim02"):
        summary, _ = run_area(tmp_path, aoi, p)
        assert summary["scenes"]["snowfree"]["snow_fraction"] == 0
        fractions.append(summary["scenes"]["truth"]["snow_fraction"])
        assert 0.3 < fractions[-1] < 0.95, (aoi, fractions[-1])
    assert np.mean(fractions) > 0.4


def test_snow_line_controls_snow(tmp_path):
    low, _ = run_area(tmp_path / "low", "sim00", params(snow_line_m=300))
    high, _ = run_area(tmp_path / "high", "sim00", params(snow_line_m=3000))
    assert low["scenes"]["truth"]["snow_fraction"] > 0.6
    assert high["scenes"]["truth"]["snow_fraction"] < 0.01
    assert low["land_cover"] == high["land_cover"]


def test_snow_above_snow_line(default_run):
    summary, paths = default_run["sim00"]
    land = sim.build_landscape(SIZE, summary["seed"])
    truth = read_scene(paths["truth"])
    line = summary["snow"]["snow_line_m"]
    open_land = np.isin(land.cover, (sim.MEADOW, sim.CROP, sim.CEREAL, sim.SOIL)) & (land.slope < 30)
    high = open_land & (land.elevation > line + 150)
    low = open_land & (land.elevation < line - 150)
    assert high.sum() > 50 and low.sum() > 50
    assert np.mean(truth.scl[high] == 11) > 0.9
    assert np.mean(truth.scl[low] == 11) < 0.05
    # forest above the snow line is only partly white: canopy shows through
    forest_high = (land.cover == sim.FOREST) & (land.elevation > line + 150)
    forest_snow = np.mean(truth.scl[forest_high] == 11)
    assert 0.05 < forest_snow < 0.98
    # snowy forest is darker than snowy open land
    assert np.median(truth.reflectance["B03"][forest_high]) < np.median(truth.reflectance["B03"][high])


# --------------------------------------------------------------------------- truth


def test_truth_is_aligned_with_snowfree_scene(default_run):
    for aoi, (summary, paths) in default_run.items():
        sf, sn, tr = (read_scene(paths[k]) for k in ("snowfree", "snow", "truth"))
        assert sf.crs == tr.crs and sf.transform == tr.transform and sf.shape == tr.shape
        assert sn.crs == tr.crs and sn.transform == tr.transform
        # truth: cloud-free, complete
        assert np.all(tr.data_mask == 1)
        assert not np.any(np.isin(tr.scl, (0, 3, 8, 9, 10)))
        # same land cover: open water of the snow-free scene is water (or frozen lake) in the truth
        clear = np.isin(sf.scl, (2, 4, 5, 6))
        w_sf = (sf.scl == 6) & clear
        w_tr = np.isin(tr.scl, (6, 11)) & clear
        assert w_sf.sum() > 20
        assert np.mean(w_tr[w_sf]) > 0.95
        open_water = (tr.scl == 6) & clear
        assert np.mean(w_sf[open_water]) > 0.95
        # pixel-aligned: where no snow fell, the snow-free and truth NIR correlate best without a shift
        nosnow = (tr.scl != 11) & clear & (tr.scl != 2)

        def corr(dr, dc):
            m = nosnow[8:-8, 8:-8]
            a = sf.reflectance["B08"][8:-8, 8:-8][m]
            b = np.roll(tr.reflectance["B08"], (dr, dc), axis=(0, 1))[8:-8, 8:-8][m]
            return np.corrcoef(a, b)[0, 1]

        r0 = corr(0, 0)
        assert r0 > 0.4, (aoi, r0)
        assert all(r0 > corr(dr, dc) + 0.1 for dr, dc in ((0, 1), (1, 0), (-1, -1), (0, -3), (3, 0))), aoi
        # the truth is the snow season's surface: same SCL outside the snow scene's clouds and nodata
        # (away from them: faint shadows and haze around clouds may tip a pixel's class)
        sky = ~ndimage.binary_dilation(np.isin(sn.scl, (0, 3, 8, 9, 10)), iterations=6)
        assert sky.mean() > 0.2
        assert np.array_equal(sn.scl[sky], tr.scl[sky])
        assert summary["scenes"]["truth"]["snow_fraction"] > 0.1


def _open_land(land) -> np.ndarray:
    """Fields, meadow, bare ground and rock that is not a cliff (from 40 degrees snow slides off)."""
    return np.isin(land.cover, (sim.MEADOW, sim.CROP, sim.CEREAL, sim.SOIL, sim.ROCK)) & (land.slope < 40)


def test_snowfall_truth_is_snowy_wherever_the_surface_holds_snow(tmp_path):
    """A snow line far above the terrain leaves the season's truth bare, yet the snowfall truth is snow on
    all open land, in canopy gaps and on roofs; open water stays water, cleared roads stay dark."""
    summary, paths = run_area(tmp_path, "sim00", params(snow_line_m=3000))
    land = sim.build_landscape(SIZE, summary["seed"])
    truth, fall = read_scene(paths["truth"]), read_scene(paths["snowfall"])
    assert summary["scenes"]["truth"]["snow_fraction"] == 0 and not np.any(truth.scl == 11)
    assert summary["snow"]["frozen_lakes"] == 0  # lakes freeze with the season, not the snowfall
    open_land = _open_land(land)
    assert open_land.mean() > 0.3 and np.all(fall.scl[open_land] == 11)
    water = land.cover == sim.WATER
    assert water.sum() > 20 and np.all(fall.scl[water] == 6)
    assert not np.any(fall.scl[land.cover == sim.ROAD] == 11)
    forest = land.cover == sim.FOREST
    assert 0.5 < np.mean(fall.scl[forest] == 11) < 1.0  # canopy gaps snowy, dense canopy shows through
    assert np.median(fall.reflectance["B03"][forest]) < np.median(fall.reflectance["B03"][open_land])
    assert np.all(ndsi(fall)[fall.scl == 11] > 0.4)
    # same sun, same sensor noise as the season's truth: on open water, which holds no snow, the pixels agree
    assert all(np.array_equal(fall.reflectance[b][water], truth.reflectance[b][water]) for b in fall.reflectance)


def test_snowfall_truth_only_adds_snow_to_the_season_truth(default_run):
    """Same snow realisation with a lower line: never less snow than the season's truth, snow wherever the
    truth has snow, and the truth's pixels where its snow cover was already complete."""
    for aoi, (summary, paths) in default_run.items():
        land = sim.build_landscape(SIZE, summary["seed"])
        states = sim.season_states(land, params()["simulator"], summary["seed"])
        season, snowfall = states.snow["snow"], states.snow["snowfall"]
        assert np.all(snowfall >= season)
        truth, fall = read_scene(paths["truth"]), read_scene(paths["snowfall"])
        assert np.all(fall.scl[truth.scl == 11] == 11)
        assert np.mean(fall.scl == 11) > np.mean(truth.scl == 11) + 0.2, aoi
        complete = snowfall - season < 1e-3
        assert complete.sum() > 500, aoi
        for b in fall.reflectance:  # sensor noise scales with the pixel: at most 0.2 % apart
            assert np.abs(fall.reflectance[b] - truth.reflectance[b])[complete].max() < 0.002, (aoi, b)
        assert np.array_equal(states.fsnow, season)  # the season's cover, as the land-cover labels carry it


# --------------------------------------------------------------------------- clouds


def test_clouds_when_scene_is_cloudy(cloudy_run):
    summary, paths = cloudy_run
    truth = read_scene(paths["truth"])
    for name in ("snowfree", "snow"):
        s = summary["scenes"][name]
        assert s["cloudy"] is True
        assert 0.08 < s["cloud_fraction"] < 0.7, (name, s["cloud_fraction"])
        scene = read_scene(paths[name])
        thick = np.isin(scene.scl, (8, 9))
        assert thick.sum() > 100 and (scene.scl == 10).sum() > 10  # thin cirrus edges
        refl = {b: v[thick] for b, v in scene.reflectance.items()}
        for b in ("B04", "B03", "B02", "B08"):
            assert 0.4 < np.median(refl[b]) < 0.95, (name, b)
        assert 0.3 < np.median(refl["B11"]) < 0.7
        assert abs(np.median(ndsi(scene)[scene.scl == 9])) < 0.2  # clouds are not snow
        # cloud shadows: present, and darker than the same surface in the (cloud-free) truth
        shadow = scene.scl == 3
        assert shadow.sum() > 50, name
        if name == "snow":  # same surface and sun as the truth
            ratio = np.median(scene.reflectance["B08"][shadow] / truth.reflectance["B08"][shadow])
            assert 0.3 < ratio < 0.75
    assert summary["scenes"]["truth"]["cloudy"] is False
    assert not np.any(np.isin(truth.scl, (3, 8, 9, 10)))


def test_no_clouds_when_no_scene_is_cloudy(tmp_path):
    summary, paths = run_area(tmp_path, "sim01", params(cloudy_scene_fraction=0.0, cloud_cover=0.5))
    for name, path in paths.items():
        scene = read_scene(path)
        assert summary["scenes"][name]["cloudy"] is False
        assert not np.any(np.isin(scene.scl, (3, 8, 9, 10)))


def test_cloudiness_follows_fraction():
    """About cloudy_scene_fraction of scenes carry clouds (decided from the seed, not size)."""
    p = params(cloudy_scene_fraction=0.5)["simulator"]
    cloudy = [
        sim.cloud_field(32, sim.area_seed(0, i), season, p, 40.0, 160.0) is not None
        for i in range(40)
        for season in ("snowfree", "snow")
    ]
    assert 0.3 < np.mean(cloudy) < 0.7


def test_nodata_wedge_is_small(tmp_path):
    n = 64
    aoi = next(
        f"sim{i:02d}" for i in range(30) if sim.nodata_wedge(n, sim.area_seed(0, i), "snowfree") is not None
    )
    p = validate_section("data", {"simulator": {"size": n, "n_aois": 30}})
    summary, paths = run_area(tmp_path, aoi, p)
    scene = read_scene(paths["snowfree"])
    valid = summary["scenes"]["snowfree"]["valid_fraction"]
    assert 0.95 <= valid < 1.0
    assert (scene.data_mask == 0).sum() > 0
    # a wedge at the left or right edge
    bad_cols = np.nonzero((scene.data_mask == 0).any(axis=0))[0]
    assert bad_cols.min() == 0 or bad_cols.max() == n - 1


# --------------------------------------------------------------------------- command line


def test_cli_simulate_end_to_end(tmp_path):
    out = {k: tmp_path / "scenes" / "sim01" / f"{k}.tif" for k in ("snowfree", "snow")}
    out["truth"] = tmp_path / "truth" / "sim01" / "snow.tif"
    out["snowfall"] = tmp_path / "truth" / "sim01" / "snowfall.tif"
    cmd = [
        sys.executable, "-m", "deepsnow.cli", "simulate",
        "--params", json.dumps({"simulator": {"size": 128, "n_aois": 2}}),
        "--aoi", "sim01",
        "--snowfree", str(out["snowfree"]), "--snow", str(out["snow"]), "--truth", str(out["truth"]),
        "--snowfall", str(out["snowfall"]),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    for path in out.values():
        scene = read_scene(path)
        assert scene.shape == (128, 128)
        sidecar = Path(str(path) + ".prov.json")
        assert sidecar.exists(), sidecar
        prov = json.loads(sidecar.read_text())
        assert prov["stage"] == "simulate"
        assert json.dumps(prov).count(str(sim.area_seed(0, 1))) >= 1
    bad = subprocess.run(cmd[:7] + ["sim02"] + cmd[8:], capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0
    assert "sim02" in bad.stderr and "sim00, sim01" in bad.stderr
