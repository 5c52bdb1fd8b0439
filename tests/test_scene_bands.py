"""Scenes record which bands they hold and are read by band name (docs/formats.md, "Scene"): any subset of
the ten L2A reflectance bands plus SCL and dataMask (version 2), and the earlier fixed 7-band layout
(version 1) still read for the bands it has, never by position; a band a reader needs and the file
lacks is an error naming the file and the band, exit 2 from the commands, nothing written."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from deepsnow import DeepsnowError
from deepsnow.cli import main
from deepsnow.cog import cog_output
from deepsnow.data.scene import (
    REFLECTANCE_BANDS,
    SCALE,
    V1_BANDS,
    VERSION_TAG,
    SceneFile,
    SceneWriter,
    read_scene,
    scene_profile,
    write_scene,
)
from deepsnow.gan.translate import read_input
from synthetic import CRS, transform_at

H, W = 40, 24


def reflectances(bands, seed=0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {b: rng.uniform(0.01, 0.9, (H, W)) for b in bands}


def scl_and_mask():
    scl = np.full((H, W), 4, np.uint8)
    mask = np.ones((H, W), np.uint8)
    mask[:3] = 0
    return np.where(mask > 0, scl, 0).astype(np.uint8), mask


def write_v1_scene(path, refl: dict, scl, mask, tags=None) -> None:
    """A version-1 scene as the code before version 2 wrote it (main's ``SceneWriter``/``_describe``):
    7 uint16 bands in the fixed order ``V1_BANDS``, their descriptions and scales, dataMask as the
    internal mask, a COG, and no version tag."""
    profile = scene_profile(H, W, CRS, transform_at(), len(V1_BANDS))
    stack = np.stack(
        [np.clip(np.rint(refl[b] * SCALE), 0, 65535).astype(np.uint16) for b in V1_BANDS[:5]]
        + [scl.astype(np.uint16), mask.astype(np.uint16)]
    )
    with cog_output(path, profile) as dst:
        dst.write(stack)
        dst.write_mask((mask > 0).astype(np.uint8) * 255)
        dst.update_tags(**{"DEEPSNOW_SOURCE": "sentinelhub", "DEEPSNOW_SEASON": "snowfree", **(tags or {})})
        for i, b in enumerate(V1_BANDS, start=1):
            dst.set_band_description(i, b)
        dst.scales = (1e-4,) * 5 + (1.0, 1.0)
        dst.offsets = (0.0,) * 7


def test_version_1_scene_is_read_for_the_bands_it_has(tmp_path):
    refl, (scl, mask) = reflectances(V1_BANDS[:5]), scl_and_mask()
    path = tmp_path / "v1.tif"
    write_v1_scene(path, refl, scl, mask)
    scene = read_scene(path)
    assert set(scene.reflectance) == set(V1_BANDS[:5])
    for b in V1_BANDS[:5]:  # each band under its own name, whatever its position
        assert np.array_equal(scene.reflectance[b], (np.rint(refl[b] * SCALE) / SCALE).astype(np.float32)), b
    assert np.array_equal(scene.scl, scl) and np.array_equal(scene.data_mask, mask)
    with SceneFile(path) as sc:
        assert sc.bands == V1_BANDS and sc.reflectance_bands == V1_BANDS[:5]
        with pytest.raises(DeepsnowError, match=r"v1\.tif: scene has no band B12 \(it holds \['B04'"):
            sc.read_bands(0, 5, ("B03", "B12"))
    rgb, valid, *_ , kind = read_input(path)  # translate renders it as before
    assert kind == "scene" and rgb.shape == (H, W, 3) and np.array_equal(valid, mask > 0)


def test_a_scene_holds_any_subset_in_stored_order_and_records_it(tmp_path):
    refl, (scl, mask) = reflectances(("B12", "B03", "B8A")), scl_and_mask()
    path = tmp_path / "s.tif"
    write_scene(path, refl, scl, mask, CRS, transform_at())
    with rasterio.open(path) as src:
        assert src.descriptions == ("B03", "B8A", "B12", "SCL", "dataMask")
        assert src.tags()[VERSION_TAG] == "2" and src.scales == (1e-4,) * 3 + (1.0, 1.0)
    scene = read_scene(path)
    assert list(scene.reflectance) == ["B03", "B8A", "B12"]
    assert np.allclose(scene.reflectance["B8A"], refl["B8A"], atol=0.5 / SCALE)
    with SceneFile(path) as sc, pytest.raises(DeepsnowError, match=r"s\.tif: scene has no band B04, B02"):
        sc.read_bands(0, None, ("B04", "B03", "B02"))


def raw_scene(path, names, dtype="uint16", tags=None) -> None:
    """A GeoTIFF with bands ``names`` (descriptions; None leaves one unnamed) and ``tags``."""
    prof = dict(driver="GTiff", height=8, width=8, count=len(names), dtype=dtype, crs=CRS, transform=transform_at())
    with rasterio.open(path, "w", **prof) as dst:
        dst.write(np.ones((len(names), 8, 8), dtype=dtype))
        for i, n in enumerate(names, start=1):
            if n is not None:
                dst.set_band_description(i, n)
        dst.update_tags(**(tags or {}))


V2 = {VERSION_TAG: "2"}
#: name, bands, dtype, tags, what the error says
BAD_HEADERS = [
    ("v1-reordered", ("B03", "B04", "B02", "B08", "B11", "SCL", "dataMask"), "uint16", {}, r"version-1 scene .* has 7 bands"),
    ("v1-tag-other-layout", ("B03", "SCL", "dataMask"), "uint16", {VERSION_TAG: "1"}, r"version-1 scene \(DEEPSNOW_SCENE_VERSION 1\)"),
    ("unknown-version", ("B03", "SCL", "dataMask"), "uint16", {VERSION_TAG: "3"}, r"version '3' unknown"),
    ("unknown-band", ("B03", "B13", "SCL", "dataMask"), "uint16", V2, r"bands \['B03', 'B13', 'SCL', 'dataMask'\]"),
    ("repeated-band", ("B03", "B03", "SCL", "dataMask"), "uint16", V2, r"each once"),
    ("unnamed-band", ("B03", None, "SCL", "dataMask"), "uint16", V2, r"bands \['B03', '', 'SCL'"),
    ("no-scl", ("B03", "B11", "dataMask"), "uint16", V2, r"then SCL and dataMask; found 3 bands"),
    ("no-reflectance", ("SCL", "dataMask"), "uint16", V2, r"found 2 bands \['SCL', 'dataMask'\]"),
    ("float-bands", ("B03", "SCL", "dataMask"), "float32", V2, r"expected uint16 bands, found \['float32'\]"),
]


@pytest.mark.parametrize("name,bands,dtype,tags,pattern", BAD_HEADERS, ids=[r[0] for r in BAD_HEADERS])
def test_scene_header_faults_name_the_file(tmp_path, name, bands, dtype, tags, pattern):
    path = tmp_path / f"{name}.tif"
    raw_scene(path, bands, dtype, tags)
    with pytest.raises(DeepsnowError, match=pattern) as err:
        SceneFile(path)
    assert str(path) in str(err.value)
    with pytest.raises(DeepsnowError, match=pattern):
        read_input(path)  # translate checks a scene's header the same way


@pytest.mark.parametrize(
    "bands,given,pattern",
    [
        (("B03", "B13"), None, r"unknown reflectance band\(s\) \['B13'\]"),
        (("B03", "B03"), None, r"\['B03'\] given more than once"),
        ((), None, r"at least one reflectance band"),
        (("B03", "B11"), ("B03",), r"missing \['B11'\]"),
        (("B03",), ("B03", "B12"), r"not in the scene \['B12'\]"),
    ],
)
def test_scene_writer_refuses_bad_band_lists_and_leaves_nothing(tmp_path, bands, given, pattern):
    scl, mask = scl_and_mask()
    with pytest.raises(DeepsnowError, match=pattern) as err:
        with SceneWriter(tmp_path / "w.tif", H, W, CRS, transform_at(), bands) as out:
            out.write(0, reflectances(given), scl, mask)
    assert "w.tif" in str(err.value) and list(tmp_path.iterdir()) == []


def test_commands_refuse_a_scene_without_a_band_they_need(tmp_path, capsys):
    """mask needs B03 B08 B11, patches B04 B03 B02: exit 2 naming the file and the band, nothing written."""
    scl, mask = scl_and_mask()
    scene = tmp_path / "scene.tif"
    write_scene(scene, reflectances(("B03", "B08", "B04")), scl, mask, CRS, transform_at(),
                tags={"DEEPSNOW_SEASON": "snowfree", "DEEPSNOW_AOI": "t00"})  # fmt: skip
    out = tmp_path / "out"
    args = ["mask", "--params", "{}", "--scene", str(scene), "--output", str(out / "m.tif"), "--summary", str(out / "m.json")]
    assert main(args) == 2
    assert f"{scene}: scene has no band B11" in capsys.readouterr().err
    assert not out.exists() or list(out.iterdir()) == []

    full = tmp_path / "full.tif"
    write_scene(full, reflectances(REFLECTANCE_BANDS), scl, mask, CRS, transform_at(),
                tags={"DEEPSNOW_SEASON": "snowfree", "DEEPSNOW_AOI": "t00"})  # fmt: skip
    assert main(args[:3] + ["--scene", str(full), "--output", str(out / "m.tif"), "--summary", str(out / "m.json")]) == 0
    capsys.readouterr()
    no_blue = tmp_path / "no_blue.tif"
    write_scene(no_blue, reflectances(("B03", "B08", "B04", "B11")), scl, mask, CRS, transform_at(),
                tags={"DEEPSNOW_SEASON": "snowfree", "DEEPSNOW_AOI": "t00"})  # fmt: skip
    patches = ["patches", "--params", '{"size": 16, "stride": 16}', "--scene", str(no_blue), "--mask", str(out / "m.tif"),
               "--output", str(out / "p.npz"), "--table", str(out / "p.csv")]  # fmt: skip
    assert main(patches) == 2
    assert f"{no_blue}: scene has no band B02" in capsys.readouterr().err
    assert not (out / "p.npz").exists() and not (out / "p.csv").exists()


@pytest.mark.parametrize("version", [1, 2])
def test_figure_9_renders_a_scene_from_its_red_green_and_blue_by_name(tmp_path, version):
    """Figure 9 reads a scene's B04 B03 B02 by name (a version-2 scene stores B02 first), rendered as the patches are."""
    from deepsnow.data.render import render_rgb
    from deepsnow.figures.synthetic import read_rgb

    refl, (scl, mask) = reflectances(REFLECTANCE_BANDS if version == 2 else V1_BANDS[:5], seed=4), scl_and_mask()
    path = tmp_path / "scene.tif"
    if version == 2:
        write_scene(path, refl, scl, mask, CRS, transform_at())
    else:
        write_v1_scene(path, refl, scl, mask)
    scene = read_scene(path)
    expected = render_rgb({b: scene.reflectance[b] for b in ("B04", "B03", "B02")}, 1.0, 2.2)
    assert np.array_equal(read_rgb(path, (1.0, 2.2)), expected)
