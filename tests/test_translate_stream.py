"""deepsnow translate streams a scene (issue #28): read a row of tiles at a time, written a row window at a
time; the result equals translating the whole scene in memory, bit for bit, for RGB and reflectance
checkpoints and both norm modes; a failure part way leaves nothing."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import torch

from deepsnow import DeepsnowError, torchfile
from deepsnow.data import bands as B
from deepsnow.data.scene import REFLECTANCE_BANDS, write_scene
from deepsnow.gan import checkpoint as ckpt
from deepsnow.gan import networks
from deepsnow.gan.data import RGB, BandSet
from deepsnow.gan.scene_norm import ArrayRows, scene_statistics
from deepsnow.gan.translate import open_input, output_rows, read_input, translate_array, translate_rows, translate_scene
from test_gan_translate import CRS, TRANSFORM

TEN = BandSet.of(list(REFLECTANCE_BANDS), "reflectance")
H, W = 70, 90  # neither a multiple of 4 nor of the tile stride (32 - 8)


def checkpoint(path, bands: BandSet, seed=0):
    """An untrained ngf 4, 1-block cycleGAN checkpoint taking and giving ``bands``."""
    torch.manual_seed(seed)
    arch = networks.Architecture(ngf=4, ndf=4, n_blocks=1, input_nc=bands.n, output_nc=bands.n)
    g = networks.build_generator(arch)
    d = networks.build_discriminator(arch)
    torchfile.save({"format": ckpt.FORMAT, "version": ckpt.VERSION, "epoch": 1, "iteration": 1,
                    "arch": arch.as_dict(), "config": {}, "bands": bands.as_dict(), "G_A": g.state_dict(),
                    "G_B": g.state_dict(), "D_A": d.state_dict(), "D_B": d.state_dict()}, path)
    return path


def scene(path, seed=1):
    """A ten-band scene, its first 5 rows and a block at the bottom right invalid."""
    rng = np.random.default_rng(seed)
    refl = {b: rng.uniform(0.01, 0.05 + 0.1 * i, (H, W)).astype(np.float32) for i, b in enumerate(REFLECTANCE_BANDS)}
    mask = np.ones((H, W), np.uint8)
    mask[:5], mask[60:, 70:] = 0, 0
    write_scene(path, refl, np.full((H, W), 4, np.uint8), mask, CRS, TRANSFORM, tags={"DEEPSNOW_SOURCE": "simulator"})
    return path


def whole(ck, path, bands, **kw):
    """The result of the whole-array path: the scene read whole, translated in memory, invalid pixels 0,
    as the COG stores it ``(C, H, W)``; and the valid mask."""
    net, _ = ckpt.load_generator(ck, "G_A")
    data, valid, *_ = read_input(path, bands=bands)
    out, _ = translate_array(net, data, **kw)
    out[~valid] = 0
    if bands.encoding != "rgb8":
        out = np.stack([B.decode_units(out[..., i], s) for i, s in enumerate(bands.unit_reflectance)], -1)
    return out.transpose(2, 0, 1), valid


@pytest.mark.parametrize("bands", [RGB, TEN], ids=["rgb", "reflectance"])
@pytest.mark.parametrize("norm, stats_px", [("tile", 2**20), ("scene", 2**20), ("scene", 2**12)],
                         ids=["tile", "scene-exact", "scene-sampled"])
def test_streamed_equals_whole_array(tmp_path, bands, norm, stats_px):
    ck, sc = checkpoint(tmp_path / "epoch_001.pt", bands), scene(tmp_path / "scene.tif")
    kw = dict(tile=32, overlap=8, norm=norm, stats_px=stats_px)
    expected, valid = whole(ck, sc, bands, **kw)
    net, _ = ckpt.load_generator(ck, "G_A")
    out = tmp_path / "streamed.tif"
    with open_input(sc, bands=bands) as reader, output_rows(out, bands, reader, CRS, TRANSFORM, zero=True,
                                                           rows=16) as sink:  # 5 write windows, the last short
        translate_rows(net, reader, sink, **kw)
    with rasterio.open(out) as dst:
        np.testing.assert_array_equal(dst.read(), expected)
        np.testing.assert_array_equal(dst.dataset_mask() > 0, valid)
    assert expected[:, 5:].any() and not expected[:, :5].any()
    # the command's own path (default write windows) gives the same file contents
    summary = translate_scene(ck, sc, tmp_path / "cmd.tif", tile=32, overlap=8, device="cpu", norm=norm,
                              stats_px=stats_px)
    with rasterio.open(tmp_path / "cmd.tif") as dst:
        np.testing.assert_array_equal(dst.read(), expected)
        np.testing.assert_array_equal(dst.dataset_mask() > 0, valid)
        assert list(dst.descriptions) == (["red", "green", "blue"] if bands is RGB else list(TEN.bands))
    assert summary["valid_fraction"] == pytest.approx(valid.mean()) and summary["shape"] == [H, W]


class CountingRows(ArrayRows):
    """An in-memory image that records the rows asked for."""

    def __init__(self, data):
        super().__init__(data)
        self.asked = []

    def read(self, r0, r1):
        self.asked.append((r0, r1))
        return super().read(r0, r1)


def test_only_a_row_of_tiles_is_read_at_once():
    """The translation and the statistics pass read row slabs of a tile (plus the statistics' halo), never
    the whole image; the results equal the in-memory array's."""
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (150, 60, 3)).astype(np.uint8)
    torch.manual_seed(0)
    net = networks.build_generator(networks.Architecture(ngf=4, ndf=4, n_blocks=1))
    rows = CountingRows(img)
    out, _ = translate_array(net, rows, tile=32, overlap=8, norm="scene")
    assert max(r1 - r0 for r0, r1 in rows.asked) <= 32 + 2 * 32  # a core and its halo at most
    assert max(r1 - r0 for r0, r1 in rows.asked) < 150 and max(r1 for _, r1 in rows.asked) == 150
    ref, _ = translate_array(net, img, tile=32, overlap=8, norm="scene")
    np.testing.assert_array_equal(out, ref)
    for a, b in zip(scene_statistics(net, CountingRows(img), core=32)[0], scene_statistics(net, img, core=32)[0]):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


class FailingRows(ArrayRows):
    def read(self, r0, r1):
        if r1 > 40:
            raise DeepsnowError("scene.tif: not a readable GeoTIFF (truncated or corrupt?): block 3")
        return super().read(r0, r1)


def test_a_failure_part_way_leaves_nothing(tmp_path):
    """Rows already written do not survive a read error further down: no output, no intermediate."""
    img = np.random.default_rng(4).integers(0, 256, (H, W, 3)).astype(np.uint8)
    torch.manual_seed(0)
    net = networks.build_generator(networks.Architecture(ngf=4, ndf=4, n_blocks=1))
    reader = FailingRows(img)
    out = tmp_path / "o" / "snowy.tif"
    with pytest.raises(DeepsnowError, match="truncated or corrupt"):
        with output_rows(out, RGB, reader, CRS, TRANSFORM, rows=16) as sink:
            translate_rows(net, reader, sink, tile=32, overlap=8)
    assert not out.exists() and not list(tmp_path.rglob("*.tif"))
    with pytest.raises(DeepsnowError, match="16 of 70 output rows"):  # rows never given: refused, not padded
        with output_rows(out, RGB, ArrayRows(img), CRS, TRANSFORM, rows=16) as sink:
            sink(0, img[:16])
    assert not out.exists() and not list(tmp_path.rglob("*.tif"))
