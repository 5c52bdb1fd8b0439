"""Every raster the workflow writes is a GIS-ready COG: deepsnow.cog and its writers."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window
from rio_cogeo.cogeo import cog_validate

from deepsnow.cog import cog_output, style_paths

TRANSFORM = from_origin(500000, 5200000, 10, 10)


def _profile(h, w, count=2, dtype="uint16"):
    return {"driver": "GTiff", "height": h, "width": w, "count": count, "dtype": dtype, "crs": "EPSG:32633",
            "transform": TRANSFORM, "blockxsize": 256}


@pytest.mark.parametrize("shape", [(100, 130), (700, 530)])  # smaller than one block; several blocks
def test_cog_output_keeps_pixels_mask_and_metadata(tmp_path, shape):
    """Pixels exact under the internal mask (rio-cogeo's warped-VRT path zeroed them and lost the
    mask), the mask, scales, offsets, tags, descriptions; overviews even below one block."""
    h, w = shape
    data = (np.arange(2 * h * w) % 65536).astype(np.uint16).reshape(2, h, w)
    mask = np.full((h, w), 255, np.uint8)
    mask[:7] = 0
    path = tmp_path / "out.tif"
    with cog_output(path, _profile(h, w)) as dst:
        for r0 in range(0, h, 256):  # by windows, as the windowed stages write
            win = Window(0, r0, w, min(256, h - r0))
            dst.write(data[:, r0 : r0 + 256], window=win)
            dst.write_mask(mask[r0 : r0 + 256], window=win)
        dst.scales, dst.offsets = (1e-4, 1.0), (0.0, 0.5)
        dst.set_band_description(1, "B04")
        dst.update_tags(DEEPSNOW_SOURCE="simulator")
        dst.update_tags(2, CLASS_0="invalid")
    ok, errors, warnings = cog_validate(str(path), strict=True)
    assert ok, (errors, warnings)
    with rasterio.open(path) as src:
        assert np.array_equal(src.read(), data)
        assert np.array_equal(src.read_masks(1), mask)
        assert (src.scales, src.offsets) == ((1e-4, 1.0), (0.0, 0.5))
        assert src.descriptions[0] == "B04" and src.tags()["DEEPSNOW_SOURCE"] == "simulator"
        assert src.tags(2)["CLASS_0"] == "invalid"
        assert src.overviews(1) and (src.crs.to_epsg(), src.transform) == (32633, TRANSFORM)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.tif"]  # no intermediate left


def test_ten_band_512_px_blocks_get_the_in_memory_overviews(tmp_path, monkeypatch):
    """A ten-band uint16 raster in 512 px blocks (the synthetic reflectance product) has its overviews built as
    GDAL builds those of 256 px blocks, level from level in memory (cog.overview_chunk_bytes): at GDAL's default
    chunk limit they went through a temporary file band by band (minutes longer; a 16 GB file on a full tile),
    the 1:4 level then up to 1 DN apart."""
    from deepsnow.cog import overview_chunk_bytes

    monkeypatch.delenv("GDAL_OVR_CHUNK_MAX_SIZE", raising=False)
    n = 1024
    y = np.arange(n)[:, None] + np.arange(n)[None, :]
    rng = np.random.default_rng(0)
    data = np.stack([(y * (b + 1) + rng.integers(0, 50, y.shape)) % 10000 for b in range(10)]).astype(np.uint16)
    levels = {}
    for block in (256, 512):
        path = tmp_path / f"b{block}.tif"
        with cog_output(path, {**_profile(n, n, count=10), "blockxsize": block}, resampling="average") as dst:
            dst.write(data)
            dst.write_mask(np.full((n, n), 255, np.uint8))
        assert cog_validate(path)[0]
        with rasterio.open(path) as src:
            assert src.block_shapes[0] == (block, block) and src.overviews(1) == [2, 4]
            levels[block] = [src.read(out_shape=(10, n // f, n // f)) for f in (1, 2, 4)]
    for lo, hi in zip(levels[256], levels[512]):
        assert np.array_equal(lo, hi)
    assert overview_chunk_bytes({"blockxsize": 512, "count": 10}) == 4 * 512 * 512 * 10 * 8
    assert overview_chunk_bytes({"blockxsize": 256, "count": 3}) == 10 * 1024 * 1024  # GDAL's default


def test_cog_output_leaves_nothing_on_error(tmp_path):
    path = tmp_path / "out.tif"
    with pytest.raises(RuntimeError, match="midway"):
        with cog_output(path, _profile(50, 50)) as dst:
            dst.write(np.ones((2, 50, 50), np.uint16))
            raise RuntimeError("midway")
    assert list(tmp_path.iterdir()) == []


def test_scene_is_a_cog_with_reflectance_scale_and_a_datamask_mask(tmp_path):
    from deepsnow.data.scene import REFLECTANCE_BANDS, SCENE_BANDS, read_scene, write_scene

    h, w = 300, 270
    rng = np.random.default_rng(3)
    refl = {b: rng.uniform(0, 1, (h, w)).astype(np.float32) for b in REFLECTANCE_BANDS}
    scl = rng.integers(0, 12, (h, w)).astype(np.uint8)
    valid = np.ones((h, w), np.uint8)
    valid[:, :20] = 0
    path = tmp_path / "scene.tif"
    write_scene(path, refl, scl, valid, "EPSG:32633", TRANSFORM, tags={"DEEPSNOW_DATE": "2021-07-04"})
    assert cog_validate(str(path), strict=True)[0]
    with rasterio.open(path) as src:
        assert src.descriptions == SCENE_BANDS
        assert src.scales == (1e-4,) * 10 + (1.0, 1.0) and src.offsets == (0.0,) * 12
        assert np.array_equal(src.read_masks(1) > 0, valid > 0)  # QGIS hides the dataMask = 0 area
        dn = src.read(SCENE_BANDS.index("B04") + 1)
    assert np.array_equal(dn, np.rint(refl["B04"].astype(np.float64) * 10000).astype(np.uint16))  # DN x scale = refl.
    back = read_scene(path)
    assert np.array_equal(back.scl, scl) and back.tags["DEEPSNOW_DATE"] == "2021-07-04"


def test_class_mask_has_colours_category_names_and_a_qgis_style(tmp_path):
    from random_scene import random_scene

    from deepsnow.config import validate_section
    from deepsnow.data.mask import CLASS_COLOURS, CLASS_NAMES, mask_scene

    scene = random_scene(tmp_path / "s.tif", 200, 240, seed=2)
    params = validate_section("mask", {})  # the defaults
    tif = tmp_path / "mask.tif"
    mask_scene(scene, params, tif, tmp_path / "mask.json")
    assert cog_validate(str(tif), strict=True)[0]
    with rasterio.open(tif) as src, rasterio.open(scene) as sc:
        cmap = src.colormap(1)
        assert all(cmap[c][:3] == CLASS_COLOURS[c][:3] for c in CLASS_NAMES)  # (a TIFF palette has no alpha)
        data_mask = sc.read(sc.descriptions.index("dataMask") + 1)
        assert np.array_equal(src.read_masks(1) > 0, data_mask > 0)  # the mask is the scene's dataMask
    aux, qml = style_paths(tif)
    assert qml.name == "mask.qml"
    names = [c.text or "" for c in ET.parse(aux).getroot().find("PAMRasterBand").find("CategoryNames")]
    assert names == [CLASS_NAMES[c] for c in range(len(CLASS_NAMES))]
    style = ET.parse(qml).getroot()
    renderer = style.find("pipe/rasterrenderer")
    assert renderer.get("type") == "paletted" and renderer.get("band") == "1"
    entries = {int(e.get("value")): (e.get("label"), e.get("color")) for e in renderer.iter("paletteEntry")}
    assert entries == {c: (CLASS_NAMES[c], "#%02x%02x%02x" % CLASS_COLOURS[c][:3]) for c in CLASS_NAMES}
    with rasterio.open(tif) as src:  # GDAL reads the file with its .aux.xml next to it
        assert src.tags(1)["CLASS_3"] == "snow"


FULL_DISK = """
import resource, signal, sys
import numpy as np
from deepsnow.cog import cog_output
from deepsnow import DeepsnowError
from rasterio.transform import from_origin
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
profile = {"driver": "GTiff", "height": 1024, "width": 1024, "count": 3, "dtype": "uint16", "crs": "EPSG:32633",
           "transform": from_origin(500000, 5200000, 10, 10), "blockxsize": 256}
try:
    data = np.random.default_rng(0).integers(0, 65535, (3, 1024, 1024), dtype=np.uint16)
    with cog_output(sys.argv[1], profile) as dst:  # 6 MB of incompressible blocks, a file limit of 1 MB
        for band in range(3):  # a band at a time (as the download stages write): blocks written as GDAL evicts them
            dst.write(data[band], band + 1)
except DeepsnowError as exc:
    print("REFUSED", exc)
else:
    print("WRITTEN")
"""


def test_cog_output_raises_a_failed_block_write(tmp_path):
    """GDAL writes blocks when it flushes its cache or closes the file; a failure there is only a log
    message in rasterio, and the file was left incomplete with exit 0. Now it is an error, nothing written."""
    import subprocess
    import sys

    path = tmp_path / "out.tif"
    done = subprocess.run([sys.executable, "-c", FULL_DISK, str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "REFUSED" in done.stdout and "GDAL failed while writing its blocks" in done.stdout, done.stdout
    assert "dirty block" in done.stdout or "Write error" in done.stdout, done.stdout
    assert list(tmp_path.iterdir()) == []


def test_gdal_failures_keep_logging_as_it_was(caplog):
    """The collector lowers rasterio's GDAL logger to INFO only to see failures of lost pixels (others
    GDAL signals while writing leave the file whole); records below the level shown before are
    collected, not shown; the logger's level is restored."""
    import logging

    from deepsnow.cog import GDAL_FAILURE, GDAL_LOGGER, gdal_failures

    logger = logging.getLogger(GDAL_LOGGER)
    logger.setLevel(logging.WARNING)
    try:
        with caplog.at_level(logging.DEBUG), gdal_failures() as failed:
            logger.info(GDAL_FAILURE + ": err_no=%r, msg=%r", 1, "TIFFAppendToStrip:Write error")
            logger.info("something else")
            logger.warning("a warning")
            logger.info(GDAL_FAILURE + ": err_no=%r, msg=%r", 1, "TIFFSetField:x.tif: Cannot modify tag "
                        '"PhotometricInterpretation" while writing')  # not about pixels: the file is whole
        assert failed == ["GDAL signalled an error: err_no=1, msg='TIFFAppendToStrip:Write error'"]
        assert [r.getMessage() for r in caplog.records if r.name == GDAL_LOGGER] == ["a warning"]
        assert logger.level == logging.WARNING
    finally:
        logger.setLevel(logging.NOTSET)
