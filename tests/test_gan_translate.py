"""deepsnow translate: whole scenes by blended tiles; georeferencing kept; reference checkpoints accepted."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import Affine

from deepsnow import DeepsnowError, torchfile
from deepsnow.data.scene import write_scene
from deepsnow.gan import checkpoint as ckpt
from deepsnow.gan import networks
from deepsnow.data.render import render_rgb
from deepsnow.gan.translate import positions, taper, translate_array, translate_scene
from test_gan_networks import reference_state_dict

CRS = "EPSG:32633"
TRANSFORM = Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 5200000.0)


def make_checkpoint(path, ngf=8, n_blocks=1, seed=0, g_a_state=None):
    torch.manual_seed(seed)
    arch = networks.Architecture(ngf=ngf, ndf=4, n_blocks=n_blocks)
    g_a, g_b = networks.build_generator(arch), networks.build_generator(arch)
    if g_a_state is not None:
        g_a.load_state_dict(g_a_state)
    payload = {
        "format": ckpt.FORMAT,
        "version": ckpt.VERSION,
        "epoch": 3,
        "iteration": 30,
        "arch": arch.as_dict(),
        "config": {"ngf": ngf},
        "G_A": g_a.state_dict(),
        "G_B": g_b.state_dict(),
        "D_A": networks.build_discriminator(arch).state_dict(),
        "D_B": networks.build_discriminator(arch).state_dict(),
    }
    torchfile.save(payload, path)
    return path


def textured_rgb(h, w, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(h // 4 + 1, w // 4 + 1, 3))
    img = np.kron(base, np.ones((4, 4, 1)))[:h, :w] + 0.5 * rng.normal(size=(h, w, 3))
    return np.clip(128 + 40 * img, 0, 255).astype(np.uint8)


def write_scene_file(path, h=70, w=90, invalid_rows=0, tags=None):
    rng = np.random.default_rng(1)
    refl = {b: rng.uniform(0.02, 0.6, (h, w)).astype(np.float32) for b in ("B04", "B03", "B02", "B08", "B11")}
    scl = np.full((h, w), 4, np.uint8)
    mask = np.ones((h, w), np.uint8)
    mask[:invalid_rows] = 0
    write_scene(path, refl, scl, mask, CRS, TRANSFORM, tags={"DEEPSNOW_SOURCE": "simulator", **(tags or {})})
    return path


def test_taper_and_positions():
    w = taper(64, 16)
    assert (w > 0).all() and w[16:48].tolist() == [1.0] * 32
    np.testing.assert_allclose(w[48:] + w[:16], 1.0)  # neighbours at stride tile - overlap sum to one
    assert positions(128, 64, 32) == [0, 32, 64]
    assert positions(100, 64, 16) == [0, 36]
    assert positions(40, 64, 16) == [0]


def test_tiled_matches_single_pass_without_seams():
    """Blended tiles agree with one pass over the whole image and show no step at tile borders,
    while hard-cut tiles do (the measure is sensitive)."""
    torch.manual_seed(0)
    g = networks.build_generator(networks.Architecture(ngf=8, n_blocks=1)).eval()
    rgb = textured_rgb(128, 128)
    whole, n1 = translate_array(g, rgb, tile=128, overlap=0)
    tiled, n9 = translate_array(g, rgb, tile=64, overlap=32)
    hard, n4 = translate_array(g, rgb, tile=64, overlap=0)
    assert (n1, n9, n4) == (1, 9, 4)
    err = tiled.astype(float) - whole.astype(float)
    # Instance norm sees each tile's own statistics, so values differ a little everywhere (random net here);
    # the whole image varies by ~35 DN from pixel to pixel.
    assert np.abs(err).mean() < 6.0
    assert np.abs(err[16:-16, 16:-16]).mean() < 6.0

    def steps(res, axis):
        e = res.astype(float) - whole.astype(float)
        return np.abs(np.diff(e, axis=axis)).mean(axis=(1, 2) if axis == 0 else (0, 2))

    for axis in (0, 1):
        s_tiled, s_hard = steps(tiled, axis), steps(hard, axis)
        assert s_tiled.max() < 1.5 * np.median(s_tiled)  # no seam anywhere, tile borders at 32, 64, 96 included
        assert s_hard[63] > 2.5 * np.median(s_hard)  # a hard cut at 64 is a visible seam


def test_translate_scene_keeps_georeferencing(tmp_path):
    scene = write_scene_file(tmp_path / "scene.tif", invalid_rows=5)
    ck = make_checkpoint(tmp_path / "epoch_003.pt")
    out = tmp_path / "out" / "snowy.tif"
    summary = translate_scene(ck, scene, out, tile=32, overlap=8, device="cpu")
    assert summary["input_kind"] == "scene" and summary["tiles"] > 4 and summary["epoch"] == 3
    with rasterio.open(out) as src, rasterio.open(scene) as ref:
        assert src.count == 3 and src.dtypes == ("uint8",) * 3
        assert src.descriptions == ("red", "green", "blue")
        assert src.crs == ref.crs and src.transform == ref.transform
        assert (src.height, src.width) == (70, 90)
        data = src.read()
        assert (data[:, :5] == 0).all() and data[:, 5:].std() > 0
        assert (src.dataset_mask()[:5] == 0).all() and (src.dataset_mask()[5:] == 255).all()
    # the same as translating the rendered RGB directly
    from deepsnow.data.scene import read_scene

    sc = read_scene(scene)
    g, _ = ckpt.load_generator(ck, "G_A")
    direct, _ = translate_array(g, render_rgb(sc.reflectance, 1.0, 2.2), tile=32, overlap=8)
    np.testing.assert_array_equal(data.transpose(1, 2, 0)[5:], direct[5:])
    # BtoA uses G_B
    translate_scene(ck, scene, tmp_path / "ba.tif", direction="BtoA", tile=32, overlap=8, device="cpu")
    with rasterio.open(tmp_path / "ba.tif") as src:
        assert not np.array_equal(src.read()[:, 5:], data[:, 5:])


def test_reference_checkpoint_and_rgb_input(tmp_path):
    sd = reference_state_dict(8, 2, seed=4)
    ref = tmp_path / "200_net_G_A.pth"
    torch.save(sd, ref)
    ours = make_checkpoint(tmp_path / "ours.pt", ngf=8, n_blocks=2, g_a_state=sd)
    rgb = textured_rgb(52, 60)
    src_path = tmp_path / "rgb.tif"
    with rasterio.open(
        src_path, "w", driver="GTiff", height=52, width=60, count=3, dtype="uint8", crs=CRS, transform=TRANSFORM
    ) as dst:
        dst.write(rgb.transpose(2, 0, 1))
    s = translate_scene(ref, src_path, tmp_path / "a.tif", tile=32, overlap=8, device="cpu")
    assert s["checkpoint_kind"] == "reference" and s["arch"]["ngf"] == 8 and s["arch"]["n_blocks"] == 2
    translate_scene(ours, src_path, tmp_path / "b.tif", tile=32, overlap=8, device="cpu")
    with rasterio.open(tmp_path / "a.tif") as a, rasterio.open(tmp_path / "b.tif") as b:
        assert a.crs == b.crs and a.transform == TRANSFORM
        np.testing.assert_array_equal(a.read(), b.read())


def test_translate_cli_with_provenance(tmp_path):
    from deepsnow.cli import main

    scene = write_scene_file(tmp_path / "scene.tif", h=40, w=44)
    ck = make_checkpoint(tmp_path / "epoch_003.pt", ngf=4)
    out = tmp_path / "snowy.tif"
    assert (
        main(
            [
                "translate",
                "--checkpoint",
                str(ck),
                "--input",
                str(scene),
                "--output",
                str(out),
                "--tile",
                "32",
                "--overlap",
                "8",
                "--device",
                "cpu",
                "--rgb-max",
                "0.8",
            ]
        )
        == 0
    )
    prov = json.loads((tmp_path / "snowy.tif.prov.json").read_text())
    assert prov["stage"] == "translate" and prov["config"]["rgb_max"] == 0.8


def test_bad_inputs(tmp_path):
    scene = write_scene_file(tmp_path / "scene.tif", h=40, w=44)
    ck = make_checkpoint(tmp_path / "epoch_003.pt", ngf=4)
    trunc = tmp_path / "trunc.pt"
    trunc.write_bytes(ck.read_bytes()[:2000])
    out = tmp_path / "o.tif"
    with pytest.raises(DeepsnowError, match=r"trunc\.pt: not a readable checkpoint"):
        translate_scene(trunc, scene, out, device="cpu")
    with pytest.raises(DeepsnowError, match="multiple of 4"):
        translate_scene(ck, scene, out, tile=30, device="cpu")
    with pytest.raises(DeepsnowError, match="overlap"):
        translate_scene(ck, scene, out, tile=32, overlap=32, device="cpu")
    two = tmp_path / "two.tif"
    with rasterio.open(
        two, "w", driver="GTiff", height=8, width=8, count=2, dtype="float32", crs=CRS, transform=TRANSFORM
    ) as dst:
        dst.write(np.zeros((2, 8, 8), np.float32))
    with pytest.raises(DeepsnowError, match=r"two\.tif: expected a deepsnow scene.*found 2 float32 bands"):
        translate_scene(ck, two, out, device="cpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeepsnowError, match="--device is 'cuda' but no CUDA GPU"):
            translate_scene(ck, scene, out, device="cuda")
    assert not out.exists() and not list(tmp_path.glob(".o.tif*"))
