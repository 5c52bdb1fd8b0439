"""The synthesize stage streams a scene into its products (issue #28): read a row of tiles at a time,
written a row window at a time into both products at once. The products are what the whole-array code
gave (its steps, kept here as the oracle: the scene read whole, translated in memory, decoded, composited
and written whole): pixels, masks, tags, band descriptions, scales and profile, for RGB checkpoints with
and without synthesize.reflectance, an RGB GeoTIFF input and a ten-band reflectance checkpoint, on scenes
whose size is neither a multiple of 4 nor of the tile stride, with invalid pixels, tiny tiles and small row
windows. A failure part way through leaves neither product."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from deepsnow import DeepsnowError
from deepsnow.data.bands import decode_units
from deepsnow.data.render import TRUE_COLOUR, render_composite
from deepsnow.data.scene import REFLECTANCE_BANDS, write_scene
from deepsnow.gan import checkpoint as ckpt
from deepsnow.gan.data import RGB
from deepsnow.gan.translate import read_input, translate_array
from deepsnow.synthesize import products
from test_translate_stream import CRS, TEN, TRANSFORM, H, W, checkpoint, scene

PARAMS = {"device": "cpu", "tile": 32, "overlap": 8, "batch_size": 4, "norm": "scene", "stats_px": 2**20,
          "reflectance": False}
RGB_STYLE = (0.8, 2.0)


def valid_scene(path):
    """A ten-band scene, 66 x 94, every pixel valid (the products still carry a mask, all valid)."""
    rng = np.random.default_rng(7)
    refl = {b: rng.uniform(0.01, 0.5, (66, 94)).astype(np.float32) for b in REFLECTANCE_BANDS}
    write_scene(path, refl, np.full((66, 94), 4, np.uint8), np.ones((66, 94), np.uint8), CRS, TRANSFORM,
                tags={"DEEPSNOW_SOURCE": "simulator", "DEEPSNOW_DATE": "2021-07-04"})
    return path


def rgb_input(path):
    """A 3-band uint8 RGB GeoTIFF with its own mask: a block and the last 3 columns invalid."""
    img = np.random.default_rng(9).integers(0, 256, (3, H, W)).astype(np.uint8)
    mask = np.full((H, W), 255, np.uint8)
    mask[10:20, 30:50], mask[:, -3:] = 0, 0
    with rasterio.open(path, "w", driver="GTiff", height=H, width=W, count=3, dtype="uint8", crs=CRS,
                       transform=TRANSFORM) as dst:
        dst.write(img)
        dst.write_mask(mask)
    return path


def whole_array_products(ck, path, params, reflectance: bool):
    """The products' pixels as the whole-array code made them: ``{name: (C, H, W)}`` and the valid mask."""
    net, info = ckpt.load_generator(ck, "G_A")
    bands = info["bands"]
    data, valid, *_ = read_input(path, *RGB_STYLE, bands)
    out, _ = translate_array(net, data, params["tile"], params["overlap"], "cpu", params["batch_size"],
                             params["norm"], params["stats_px"])
    out[~valid] = 0
    if bands.encoding == "reflectance":
        refl = np.stack([decode_units(out[..., i], s) for i, s in enumerate(bands.unit_reflectance)])
        refl[:, ~valid] = 0
        pick = [bands.bands.index(b) for b in TRUE_COLOUR]
        rgb = render_composite(np.moveaxis(refl[pick], 0, -1), TRUE_COLOUR, *RGB_STYLE)
        rgb[~valid] = 0
        return {"snow": rgb.transpose(2, 0, 1), "refl": refl}, valid
    expected = {"snow": out.transpose(2, 0, 1)}
    if reflectance:
        expected["refl"] = products.reflectance_from_rgb(out, *RGB_STYLE)
        expected["refl"][:, ~valid] = 0
    return expected, valid


#: case -> (checkpoint bands, input maker, params, whether snow_reflectance.tif is written)
CASES = {
    "rgb": (RGB, scene, {}, False),
    "rgb+reflectance": (RGB, scene, {"reflectance": True}, True),
    "rgb-input+reflectance": (RGB, rgb_input, {"reflectance": True, "norm": "tile"}, True),
    "ten-band": (TEN, scene, {}, True),
    "ten-band-all-valid-sampled": (TEN, valid_scene, {"stats_px": 2**11}, True),
}
COMMON_TAGS = {"DEEPSNOW_CHECKPOINT": "epoch_001.pt", "DEEPSNOW_DIRECTION": "AtoB", "DEEPSNOW_EPOCH": "1",
               "DEEPSNOW_OVERLAP": "8", "DEEPSNOW_SOURCE": "simulator", "DEEPSNOW_TILE": "32", "AREA_OR_POINT": "Area"}


def expected_metadata(bands, name: str, params, source: str, product: str) -> tuple:
    """``(tags, descriptions, scales, dtype)`` the whole-array code gave ``product`` ("snow" or "refl")."""
    tags = dict(COMMON_TAGS, DEEPSNOW_NORM=params["norm"], DEEPSNOW_SOURCE_SCENE=source)
    if source == "rgb.tif":
        del tags["DEEPSNOW_SOURCE"]  # an RGB GeoTIFF has no scene tags to carry over
    if name == "ten-band-all-valid-sampled":
        tags["DEEPSNOW_DATE"] = "2021-07-04"
    if product == "snow":
        if bands is TEN:
            tags["DEEPSNOW_RENDERING"] = "RGB composite of snow_reflectance.tif (render_composite)"
        return tags, ("red", "green", "blue"), (1.0,) * 3, "uint8"
    if bands is TEN:
        tags.update(DEEPSNOW_SCALE="0.0001",
                    DEEPSNOW_REFLECTANCE="the generator's output, through the checkpoint's per-band mapping")
        return tags, tuple(TEN.bands), (1e-4,) * 10, "uint16"
    tags["DEEPSNOW_REFLECTANCE"] = "rho = rgb_max * (v/255)**rgb_gamma, x10000 (approximation)"
    return tags, ("B04", "B03", "B02"), (1e-4,) * 3, "uint16"


@pytest.mark.parametrize("name", sorted(CASES))
def test_streamed_products_are_the_whole_array_products(tmp_path, name):
    bands, make_input, extra, reflectance = CASES[name]
    params = {**PARAMS, **extra}
    ck = checkpoint(tmp_path / "epoch_001.pt", bands)
    source = make_input(tmp_path / ("rgb.tif" if make_input is rgb_input else "scene.tif"))
    expected, valid = whole_array_products(ck, source, params, reflectance)
    out = {"snow": tmp_path / "p" / "snow.tif", "refl": tmp_path / "p" / "snow_reflectance.tif"}
    summary = products.synthesize_scene(params, ck, source, out["snow"], out["refl"] if reflectance else None,
                                        RGB_STYLE, rows=16)  # 16-row windows: the last one short
    assert set(expected) == {p for p in out if out[p].exists()}
    for product, pixels in expected.items():
        tags, descriptions, scales, dtype = expected_metadata(bands, name, params, source.name, product)
        with rasterio.open(out[product]) as src:
            np.testing.assert_array_equal(src.read(), pixels, err_msg=product)
            np.testing.assert_array_equal(src.dataset_mask(), np.where(valid, 255, 0), err_msg=product)
            assert src.mask_flag_enums[0] == [rasterio.enums.MaskFlags.per_dataset]  # a mask even when all valid
            assert (src.tags(), src.descriptions, src.scales) == (tags, descriptions, scales)
            profile = (src.count, src.dtypes[0], src.block_shapes[0], src.overviews(1))
            assert profile == (len(pixels), dtype, (512, 512), [2])
            assert src.tags(ns="IMAGE_STRUCTURE") == {"LAYOUT": "COG", "COMPRESSION": "DEFLATE", "INTERLEAVE": "PIXEL",
                                                      "PREDICTOR": "2"}
            assert (src.crs, src.transform, src.shape) == (CRS, TRANSFORM, valid.shape)
    assert all(pixels[:, valid].any() for pixels in expected.values())
    assert summary["valid_fraction"] == valid.mean() and summary["shape"] == list(valid.shape)


def test_a_failure_part_way_leaves_neither_product(tmp_path, monkeypatch):
    """A read error after some rows were written, and a failed COG conversion of the last product after the
    other was already in place: neither product is left behind, nor any temporary."""
    from deepsnow.gan.translate import SceneRows

    ck, source = checkpoint(tmp_path / "epoch_001.pt", TEN), scene(tmp_path / "scene.tif")
    out, refl = tmp_path / "p" / "snow.tif", tmp_path / "p" / "snow_reflectance.tif"
    read = SceneRows.read

    def failing_read(self, r0, r1, *args):
        if r1 > 40:
            raise DeepsnowError(f"{self.path}: not a readable GeoTIFF (truncated or corrupt?): block 3")
        return read(self, r0, r1, *args)

    with monkeypatch.context() as m:
        m.setattr(SceneRows, "read", failing_read)
        with pytest.raises(DeepsnowError, match=r"scene\.tif: not a readable GeoTIFF"):
            products.synthesize_scene({**PARAMS, "norm": "tile"}, ck, source, out, refl, RGB_STYLE, rows=16)
    assert not list((tmp_path / "p").iterdir())

    import rasterio.shutil

    copy, copies = rasterio.shutil.copy, []

    def failing_copy(src, dst, **kw):  # the second conversion (snow_reflectance.tif, after snow.tif) fails
        copies.append(dst)
        if len(copies) == 2:
            raise DeepsnowError(f"{dst}: GDAL failed while converting it to a COG (nothing written): disk full")
        return copy(src, dst, **kw)

    monkeypatch.setattr(rasterio.shutil, "copy", failing_copy)
    with pytest.raises(DeepsnowError, match="disk full"):
        products.synthesize_scene(PARAMS, ck, source, out, refl, RGB_STYLE, rows=16)
    assert len(copies) == 2 and not list((tmp_path / "p").iterdir())
