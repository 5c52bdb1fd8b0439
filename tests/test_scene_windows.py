"""Scenes written and read by row strips (deepsnow.data.scene.SceneWriter, SceneFile; the download
writer deepsnow.data.download.common.write_dn_strips): the same scene as a whole-array write."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from deepsnow import DeepsnowError
from deepsnow.data.download.common import Grid, write_dn_scene, write_dn_strips
from deepsnow.data.download.stac import ScaledDN
from deepsnow.data.scene import REFLECTANCE_BANDS, SCALE, SCENE_BANDS, SceneFile, SceneWriter, read_scene, write_scene

GRID = Grid(32633, 500000.0, 5200000.0, 300, 600)  # 600 rows x 300 columns: 256 px tiles


def random_dn(h, w, seed=0):
    rng = np.random.default_rng(seed)
    dn = {b: rng.integers(0, 12000, (h, w)).astype(np.float64) + rng.random((h, w)) for b in REFLECTANCE_BANDS}
    scl = rng.integers(0, 12, (h, w)).astype(np.uint16)
    mask = rng.random((h, w)) > 0.1
    return dn, scl, mask


def naive_write(path, dn, scl, mask, grid, tags):
    """The download writer before it wrote by strips: whole float64 arrays through write_scene."""
    refl = {b: np.where(mask, dn[b], 0.0) / SCALE for b in REFLECTANCE_BANDS}
    scl8, mask8 = np.where(mask, scl, 0).astype(np.uint8), mask.astype(np.uint8)
    write_scene(path, refl, scl8, mask8, grid.crs, grid.transform, tags)


def same_scene(a, b) -> None:
    with rasterio.open(a) as x, rasterio.open(b) as y:
        assert x.profile == y.profile and x.tags() == y.tags() and x.descriptions == y.descriptions == SCENE_BANDS
        assert np.array_equal(x.read(), y.read())


@pytest.mark.parametrize("step", [37, 100, 256, 600])
def test_strips_give_the_whole_array_scene(tmp_path, step):
    dn, scl, mask = random_dn(GRID.height, GRID.width)
    tags = {"DEEPSNOW_SOURCE": "sentinelhub", "DEEPSNOW_AOI": "a"}
    naive_write(tmp_path / "whole.tif", dn, scl, mask, GRID, tags)
    strips = (
        (r0, {b: v[r0 : r0 + step] for b, v in dn.items()}, scl[r0 : r0 + step], mask[r0 : r0 + step])
        for r0 in range(0, GRID.height, step)
    )
    counts = write_dn_strips(tmp_path / "strips.tif", strips, GRID, tags, tuple(dn))
    same_scene(tmp_path / "whole.tif", tmp_path / "strips.tif")
    # GDAL got whole 256-row block bands: no compressed block was written twice
    assert (tmp_path / "strips.tif").stat().st_size <= 1.02 * (tmp_path / "whole.tif").stat().st_size
    assert counts["valid"] == mask.sum() and counts["total"] == mask.size
    assert counts["scl"][3] == ((scl == 3) & mask).sum()


def test_write_dn_scene_in_small_windows_and_lazy_scaling(tmp_path, monkeypatch):
    dn, scl, mask = random_dn(GRID.height, GRID.width, seed=1)
    raw = {b: (v * 0.5).astype(np.uint16) for b, v in dn.items()}
    scaled = {b: ScaledDN(raw[b], 1.0, -1000.0) for b in raw}
    eager = {b: raw[b].astype(np.float64) * 1.0 + -1000.0 for b in raw}
    naive_write(tmp_path / "whole.tif", eager, scl, mask, GRID, {})
    monkeypatch.setenv("DEEPSNOW_WINDOW_ROWS", "64")
    write_dn_scene(tmp_path / "win.tif", scaled, scl, mask, GRID, {})
    same_scene(tmp_path / "whole.tif", tmp_path / "win.tif")


def test_strips_out_of_order_or_missing_leave_nothing(tmp_path):
    dn, scl, mask = random_dn(40, 30)
    grid = Grid(32633, 500000.0, 5200000.0, 30, 40)
    refl = {b: v / SCALE for b, v in dn.items()}
    with pytest.raises(DeepsnowError, match="only 20 of 40 rows"):
        with SceneWriter(tmp_path / "a.tif", 40, 30, grid.crs, grid.transform, tuple(refl)) as out:
            out.write(0, {b: v[:20] for b, v in refl.items()}, scl[:20], mask[:20])
    with pytest.raises(DeepsnowError, match="does not follow row 0"):
        with SceneWriter(tmp_path / "a.tif", 40, 30, grid.crs, grid.transform, tuple(refl)) as out:
            out.write(10, {b: v[10:] for b, v in refl.items()}, scl[10:], mask[10:])
    with pytest.raises(RuntimeError, match="source failed"):
        with SceneWriter(tmp_path / "a.tif", 40, 30, grid.crs, grid.transform, tuple(refl)) as out:
            out.write(0, {b: v[:20] for b, v in refl.items()}, scl[:20], mask[:20])
            raise RuntimeError("source failed")
    assert not list(tmp_path.iterdir())


def test_scene_file_reads_row_bands_of_the_whole_scene(tmp_path):
    dn, scl, mask = random_dn(GRID.height, GRID.width, seed=2)
    naive_write(tmp_path / "s.tif", dn, scl, mask, GRID, {"DEEPSNOW_SEASON": "snow"})
    whole = read_scene(tmp_path / "s.tif")
    with SceneFile(tmp_path / "s.tif") as sc:
        assert sc.shape == (600, 300) and sc.tags["DEEPSNOW_SEASON"] == "snow" and sc.block_rows == 256
        part = sc.read(250, 400)
        assert part.transform == whole.transform @ whole.transform.translation(0, 250)
        for b in REFLECTANCE_BANDS:
            assert part.reflectance[b].dtype == np.float32
            assert np.array_equal(part.reflectance[b], whole.reflectance[b][250:400])
        assert np.array_equal(part.scl, whole.scl[250:400]) and np.array_equal(part.data_mask, whole.data_mask[250:400])
