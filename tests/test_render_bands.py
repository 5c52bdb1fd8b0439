"""Rendering reflectance patches and samples (issue #28 item 3): the RGB composite is the patches stage's
rgb8 rendering of the same reflectance, byte for byte; the false-colour composite takes B11, B08, B04."""

from __future__ import annotations

import numpy as np
import pytest

from deepsnow import DeepsnowError
from deepsnow.config import validate_section
from deepsnow.data.render import FALSE_COLOUR, render_composite, render_rgb
from deepsnow.data.scene import REFLECTANCE_BANDS
from test_patches_bands import _cut, ten_band_scene

TEN = list(REFLECTANCE_BANDS)


def test_the_rgb_composite_of_reflectance_patches_is_the_rgb8_patches(tmp_path):
    scene = ten_band_scene(tmp_path / "a" / "snowfree.tif", seed=1)
    p = validate_section("patches", {"size": 32, "stride": 32, "encoding": "reflectance", "bands": TEN[::-1]})
    _, refl, _ = _cut(tmp_path, scene, p, "refl")
    q = validate_section("patches", {"size": 32, "stride": 32})
    _, rgb, _ = _cut(tmp_path, scene, q, "rgb")
    got = render_composite(refl["reflectance"], refl["bands"], q["rgb_max"], q["rgb_gamma"])
    assert got.dtype == np.uint8 and got.shape == rgb["rgb"].shape
    np.testing.assert_array_equal(got, rgb["rgb"])


def test_the_false_colour_composite_renders_b11_b08_b04_as_red_green_blue():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 12000, (2, 8, 8, 10), dtype=np.uint16)
    got = render_composite(img, TEN, 1.0, 2.2, FALSE_COLOUR)
    refl = {k: img[1, :, :, TEN.index(b)].astype(np.float32) / 10000.0 for k, b in zip(("B04", "B03", "B02"), FALSE_COLOUR)}
    np.testing.assert_array_equal(got[1], render_rgb(refl, 1.0, 2.2))
    # snow (bright visible and NIR, dark SWIR) comes out cyan, cloud (bright SWIR too) near white: they separate
    snow = np.zeros((1, 1, 1, 10), np.uint16)
    snow[..., TEN.index("B11")], snow[..., TEN.index("B08")], snow[..., TEN.index("B04")] = 500, 8000, 9000
    cloud = snow.copy()
    cloud[..., TEN.index("B11")] = 4500
    assert render_composite(snow, TEN, 1.0, 2.2, FALSE_COLOUR)[0, 0, 0, 0] < 100
    assert render_composite(cloud, TEN, 1.0, 2.2, FALSE_COLOUR)[0, 0, 0, 0] > 150


@pytest.mark.parametrize(
    "images, bands, words",
    [
        (np.zeros((1, 4, 4, 3), np.uint8), ["B04", "B03", "B02"], "expected uint16"),
        (np.zeros((1, 4, 4, 2), np.uint16), ["B04", "B03", "B02"], "3 channels"),
        (np.zeros((1, 4, 4, 2), np.uint16), ["B04", "B03"], r"bands \['B02'\] of the composite"),
    ],
)
def test_bad_images_or_a_missing_band_are_errors_naming_what(images, bands, words):
    with pytest.raises(DeepsnowError, match=f"x.npz:fake_B.*{words}"):
        render_composite(images, bands, 1.0, 2.2, what="x.npz:fake_B")
