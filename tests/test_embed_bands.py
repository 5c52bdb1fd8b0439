"""Embedding reflectance runs (issue #28 item 3): the extractors see the RGB composite, rendered as the
patches stage renders RGB, of the samples and of the real test sets; simcover trains on it too."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deepsnow import DeepsnowError
from deepsnow.config import validate_section
from deepsnow.data.render import render_composite
from deepsnow.data.scene import REFLECTANCE_BANDS
from deepsnow.features.embed import build_from_params, embed_images, embed_real, embed_samples
from deepsnow.features.simcover_train import load_training_sets
from helpers import deepsnow

TEN = list(REFLECTANCE_BANDS)


def _refl(n, seed):
    return np.random.default_rng(seed).integers(0, 11000, (n, 16, 16, 10), dtype=np.uint16)


def _params():
    return validate_section("features", {"resnet50": {"weights": "random", "size": 32}, "device": "cpu", "progress": False})


def _extra():
    return {"bands": np.array(TEN), "encoding": np.array("reflectance")}


def test_reflectance_samples_and_test_sets_are_embedded_as_their_rgb_composite(tmp_path):
    params, rgb = _params(), (1.0, 2.2)
    ext = build_from_params("resnet50", params)
    fake_b, fake_a = _refl(3, 1), _refl(2, 2)
    np.savez(tmp_path / "s.npz", fake_B=fake_b, fake_A=fake_a, ids_A=np.array(["a0", "a1", "a2"]),
             ids_B=np.array(["b0", "b1"]), epoch=np.int64(4), **_extra())
    embed_samples([tmp_path / "s.npz"], [tmp_path / "f.npz"], ext, params, rgb=rgb)
    with np.load(tmp_path / "f.npz") as f:
        got_b, got_a = f["fake_B"], f["fake_A"]
    want_b = embed_images(render_composite(fake_b, TEN, *rgb), ext)
    np.testing.assert_allclose(got_b, want_b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_a, embed_images(render_composite(fake_a, TEN, *rgb), ext), rtol=1e-5, atol=1e-6)
    # real test sets: the dataset's 'reflectance' array stands for the default 'rgb'
    for name, arr in (("testA", fake_b), ("testB", fake_a)):
        np.savez(tmp_path / f"{name}.npz", reflectance=arr, ids=np.arange(len(arr)).astype(str), **_extra())
    embed_real(tmp_path / "testA.npz", tmp_path / "testB.npz", tmp_path / "real.npz", ext, params, rgb=rgb)
    with np.load(tmp_path / "real.npz") as f:
        np.testing.assert_allclose(f["A"], want_b, rtol=1e-5, atol=1e-6)
    # another rendering gives other features: the composite is rendered with the given rgb_max/rgb_gamma
    embed_samples([tmp_path / "s.npz"], [tmp_path / "g.npz"], ext, params, rgb=(0.5, 1.0))
    with np.load(tmp_path / "g.npz") as f:
        assert not np.allclose(f["fake_B"], got_b)


def test_rgb_samples_are_embedded_as_they_are(tmp_path):
    params = _params()
    ext = build_from_params("resnet50", params)
    rgb = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    np.savez(tmp_path / "s.npz", fake_B=rgb, ids_A=np.array(["a", "b"]), epoch=np.int64(1))
    embed_samples([tmp_path / "s.npz"], [tmp_path / "f.npz"], ext, params, rgb=(0.3, 1.0))  # ignored for RGB
    with np.load(tmp_path / "f.npz") as f:
        np.testing.assert_allclose(f["fake_B"], embed_images(rgb, ext), rtol=1e-5, atol=1e-6)


def test_bad_reflectance_samples_are_refused_naming_the_file(tmp_path):
    params = _params()
    ext = build_from_params("resnet50", params)
    np.savez(tmp_path / "s.npz", fake_B=_refl(2, 0)[..., :8], ids_A=np.array(["a", "b"]), epoch=np.int64(1),
             bands=np.array(TEN[:8]), encoding=np.array("reflectance"))
    embed_samples([tmp_path / "s.npz"], [tmp_path / "ok.npz"], ext, params)  # no SWIR, but B04 B03 B02: fine
    np.savez(tmp_path / "t.npz", fake_B=_refl(2, 0)[..., 3:], ids_A=np.array(["a", "b"]), epoch=np.int64(1),
             bands=np.array(TEN[3:]), encoding=np.array("reflectance"))
    with pytest.raises(DeepsnowError, match=r"t.npz:fake_B: bands \['B04', 'B03', 'B02'\] of the composite"):
        embed_samples([tmp_path / "t.npz"], [tmp_path / "bad.npz"], ext, params)
    assert not (tmp_path / "bad.npz").exists()
    np.savez(tmp_path / "u.npz", fake_B=_refl(2, 0), ids_A=np.array(["a", "b"]), epoch=np.int64(1), encoding=np.array("reflectance"))
    with pytest.raises(DeepsnowError, match=r"u.npz: array 'encoding'.*no array bands"):
        embed_samples([tmp_path / "u.npz"], [tmp_path / "bad.npz"], ext, params)


def test_the_embed_command_renders_with_rgb_max_and_gamma(tmp_path):
    np.savez(tmp_path / "s.npz", fake_B=_refl(2, 3), ids_A=np.array(["a", "b"]), epoch=np.int64(2), **_extra())
    params = json.dumps(_params())
    for name, opts in (("d", []), ("o", ["--rgb-max", "0.5", "--rgb-gamma", "1"])):
        deepsnow("embed", "--params", params, "--extractor", "resnet50", "--samples", tmp_path / "s.npz",
                 "--outputs", tmp_path / f"{name}.npz", *opts, check=True)
    with np.load(tmp_path / "d.npz") as d, np.load(tmp_path / "o.npz") as o:
        assert d["fake_B"].shape == (2, 2048) and not np.allclose(d["fake_B"], o["fake_B"])


def test_simcover_trains_on_every_band_of_reflectance_training_sets(tmp_path):
    from deepsnow.data.bands import encode_units, unit_scales

    refl = _refl(3, 5)
    land = np.random.default_rng(0).random((3, 2)).astype(np.float32)
    np.savez(tmp_path / "trainA.npz", reflectance=refl, landcover=land, landcover_targets=np.array(["forest", "snow"]), **_extra())
    images, y, targets, bands = load_training_sets([tmp_path / "trainA.npz"])
    np.testing.assert_array_equal(images, encode_units(refl, unit_scales(TEN)))
    assert bands == {"bands": TEN, "encoding": "reflectance", "unit_reflectance": unit_scales(TEN)}
    assert targets == ["forest", "snow"] and y.shape == (3, 2)
    rgb = render_composite(refl, TEN, 1.0, 2.2)
    np.savez(tmp_path / "rgbA.npz", rgb=rgb, landcover=land, landcover_targets=np.array(["forest", "snow"]))
    images, _, _, bands = load_training_sets([tmp_path / "rgbA.npz"])
    assert bands is None and images.dtype == np.uint8 and np.array_equal(images, rgb)
    with pytest.raises(DeepsnowError, match=r"trainA.npz: bands .*B02.* differ from rgb8 of .*rgbA.npz"):
        load_training_sets([tmp_path / "rgbA.npz", tmp_path / "trainA.npz"])


