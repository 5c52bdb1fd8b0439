"""The cycleGAN on reflectance patches (issue #28 item 2): one channel per band, the fixed per-band
mapping, the band set in the checkpoint, and translation refused on a scene lacking a band."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
import torch

from deepsnow import DeepsnowError
from deepsnow.cli import main
from deepsnow.config import validate_section
from deepsnow.data import bands as B
from deepsnow.data.scene import REFLECTANCE_BANDS
from deepsnow.gan import checkpoint as ckpt
from deepsnow.gan.data import RGB, BandSet
from deepsnow.gan.generate import generate, translate_batches
from deepsnow.io import load_npz, save_npz
from random_scene import random_scene
from test_patches_bands import ten_band_scene

TEN = list(REFLECTANCE_BANDS)
PARAMS = dict(ngf=4, ndf=4, n_blocks=1, load_size=32, crop_size=32, batch_size=2, n_epochs=1, n_epochs_decay=1,
              pool_size=2, device="cpu", threads=1, deterministic=True, seed=3)


def reflectance_set(path, n, seed, bands=TEN, size=32):
    """A dataset file of ``n`` random reflectance patches (x 10000, up to 1.3) in ``bands``."""
    rng = np.random.default_rng(seed)
    dn = rng.integers(0, 13000, (n, size, size, len(bands))).astype(np.uint16)
    save_npz(path, reflectance=dn, ids=np.array([f"{path.stem}_{i}" for i in range(n)]),
             bands=np.array(bands), encoding=np.array("reflectance"))
    return path


def rgb_set(path, n, seed, size=32):
    rgb = np.random.default_rng(seed).integers(0, 256, (n, size, size, 3)).astype(np.uint8)
    save_npz(path, rgb=rgb, ids=np.array([f"{path.stem}_{i}" for i in range(n)]))
    return path


def _train(tmp_path, sets, extra=()):
    d = tmp_path / "run"
    return main(["train", "--params", json.dumps(PARAMS), "--samples-params", json.dumps({"batch_size": 2}),
                 "--train-a", str(sets[0]), "--train-b", str(sets[1]), "--test-a", str(sets[2]), "--test-b", str(sets[3]),
                 "--checkpoint-dir", str(d / "ck"), "--samples-dir", str(d / "samples"), "--state-dir", str(d / "st"),
                 "--losses", str(d / "l.csv"), "--iter-losses", str(d / "li.csv"), "--no-progress", *extra])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 2-epoch, ngf 4, 32 px cycleGAN on 10-band reflectance patches, with its samples."""
    tmp = tmp_path_factory.mktemp("refl")
    sets = [reflectance_set(tmp / f"{n}.npz", k, s) for n, k, s in (("trainA", 4, 1), ("trainB", 3, 2), ("testA", 2, 3), ("testB", 2, 4))]
    assert _train(tmp, sets) == 0
    return tmp, sets


def test_the_mapping_is_fixed_per_band_and_round_trips():
    scales = B.unit_scales(TEN)
    assert scales == [1.2] * 8 + [0.6, 0.5]  # SWIR, where snow is dark, keeps its resolution
    dn = np.array([[0, 1, 5000, 6000, 12000, 13000, 40000, 65535, 3000, 2500]], dtype=np.uint16)
    codes = B.encode_units(dn, scales)
    unit = codes / 32767.5 - 1  # what the network sees
    expected = 2 * np.clip(dn / 10000 / np.array(scales), 0, 1) - 1
    assert np.abs(unit - expected).max() <= 1 / 65535 + 1e-12
    back = B.decode_units(codes, scales).astype(int)
    inside = dn / 10000 <= np.array(scales)
    assert np.all(np.abs(back - dn)[inside] <= 1)  # 16-bit codes lose nothing of the 1e-4 step
    assert back[0, 6] == 12000 and back[0, 7] == 12000  # above the scale: clipped to it
    assert codes[0, 8] == codes[0, 9] == 32768  # B11 0.3 of 0.6 and B12 0.25 of 0.5: the middle of the range


def test_reflectance_training_stores_the_bands_and_restores_them(trained):
    tmp, sets = trained
    path = tmp / "run" / "ck" / "epoch_002.pt"
    payload = torch.load(path, weights_only=True)  # plain types and tensors only
    assert payload["bands"] == {"bands": TEN, "encoding": "reflectance", "unit_reflectance": B.unit_scales(TEN)}
    assert payload["arch"]["input_nc"] == payload["arch"]["output_nc"] == 10
    assert payload["G_A"]["model.1.weight"].shape[1] == 10 and payload["D_A"]["model.0.weight"].shape[1] == 10
    g_a, g_b, info = ckpt.load_generators(path)
    assert info["bands"] == BandSet(tuple(TEN), "reflectance", tuple(B.unit_scales(TEN)))
    samples = load_npz(tmp / "run" / "samples" / "epoch_002.npz")
    assert samples["fake_B"].dtype == np.uint16 and samples["fake_B"].shape == (2, 32, 32, 10)
    assert samples["fake_A"].shape == (2, 32, 32, 10)
    assert list(samples["bands"]) == TEN and str(samples["encoding"]) == "reflectance"
    assert samples["fake_B"].max() <= 12000 and samples["fake_B"][..., 8].max() <= 6000  # within each band's scale
    # the samples are the generator's output through the checkpoint's mapping, back to reflectance x 10000
    codes = B.encode_units(load_npz(sets[2])["reflectance"], info["bands"].unit_reflectance)
    again = B.decode_units(translate_batches(g_a, codes, 2, torch.device("cpu")), info["bands"].unit_reflectance)
    np.testing.assert_array_equal(samples["fake_B"], again)


def test_an_rgb_checkpoint_records_rgb(tmp_path):
    sets = [rgb_set(tmp_path / f"{n}.npz", 3, s) for s, n in enumerate(("trainA", "trainB", "testA", "testB"))]
    assert _train(tmp_path, sets) == 0
    payload = torch.load(tmp_path / "run" / "ck" / "epoch_002.pt", weights_only=True)
    assert payload["bands"] == {"bands": ["B04", "B03", "B02"], "encoding": "rgb8", "unit_reflectance": None}
    assert payload["arch"]["input_nc"] == 3
    assert "bands" not in load_npz(tmp_path / "run" / "samples" / "epoch_002.npz")  # RGB samples as before
    del payload["bands"]  # a checkpoint written before checkpoints had bands reads as RGB
    torch.save(payload, tmp_path / "old.pt")
    assert ckpt.load_generator(tmp_path / "old.pt")[1]["bands"] == RGB


def test_training_on_sets_of_different_bands_is_refused(tmp_path):
    sets = [reflectance_set(tmp_path / "trainA.npz", 3, 1), reflectance_set(tmp_path / "trainB.npz", 3, 2, bands=TEN[::-1]),
            reflectance_set(tmp_path / "testA.npz", 2, 3), reflectance_set(tmp_path / "testB.npz", 2, 4)]
    assert _train(tmp_path, sets) == 2
    assert not (tmp_path / "run" / "ck").exists() or not list((tmp_path / "run" / "ck").iterdir())
    with pytest.raises(DeepsnowError, match=r"trainB.npz: patches of reflectance B12 B11"):
        from deepsnow.gan.train import train

        train(validate_section("gan", PARAMS), sets[0], sets[1], tmp_path / "c", tmp_path / "s", tmp_path / "l", tmp_path / "li")


def test_generate_refuses_test_sets_of_other_bands(trained, tmp_path):
    tmp, _ = trained
    sets = [rgb_set(tmp_path / f"{n}.npz", 2, s) for s, n in enumerate(("testA", "testB"))]
    with pytest.raises(DeepsnowError, match=r"epoch_002.pt: the checkpoint takes reflectance B02 .* the test sets hold rgb8"):
        generate(validate_section("samples", {}), [tmp / "run" / "ck" / "epoch_002.pt"], [tmp_path / "s.npz"], *sets, device="cpu")
    assert not (tmp_path / "s.npz").exists()


def test_a_band_set_must_match_the_networks(trained, tmp_path):
    tmp, _ = trained
    payload = torch.load(tmp / "run" / "ck" / "epoch_002.pt", weights_only=True)
    payload["bands"] = {"bands": ["B03", "B11"], "encoding": "reflectance", "unit_reflectance": [1.2, 0.6]}
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(DeepsnowError, match=r"bad.pt: networks map 10 to 10 channels.*B03 B11 \(2\)"):
        ckpt.load_generator(tmp_path / "bad.pt")
    payload["bands"] = {"bands": ["B03", "B99"], "encoding": "reflectance", "unit_reflectance": [1.2, 0.6]}
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(DeepsnowError, match=r"bad.pt: bands.*B99"):
        ckpt.load_generator(tmp_path / "bad.pt")


def _translate(ck, scene, out):
    return main(["translate", "--checkpoint", str(ck), "--input", str(scene), "--output", str(out),
                 "--tile", "32", "--overlap", "8", "--device", "cpu"])


def test_translate_a_ten_band_scene_to_reflectance(trained, tmp_path):
    tmp, _ = trained
    scene = ten_band_scene(tmp_path / "scene.tif", size=48)
    out = tmp_path / "snowy.tif"
    assert _translate(tmp / "run" / "ck" / "epoch_002.pt", scene, out) == 0
    with rasterio.open(out) as dst:
        assert dst.count == 10 and dst.dtypes == ("uint16",) * 10 and list(dst.descriptions) == TEN
        assert dst.tags()["DEEPSNOW_SCALE"] == "0.0001" and (dst.width, dst.height) == (48, 48)
        data = dst.read()
    assert 0 < data.max() <= 12000 and data[8].max() <= 6000 and data[9].max() <= 5000
    assert len({int(b.mean()) for b in data}) > 1  # the bands are not one image repeated


def test_translate_refuses_a_scene_lacking_a_band_exit_2(trained, tmp_path, capsys):
    tmp, _ = trained
    scene = random_scene(tmp_path / "five.tif", 40, 40, seed=2)  # B02 B03 B04 B08 B11 only
    out = tmp_path / "snowy.tif"
    assert _translate(tmp / "run" / "ck" / "epoch_002.pt", scene, out) == 2
    err = capsys.readouterr().err
    assert "five.tif: scene has no band B05, B06, B07, B8A, B12" in err
    assert not out.exists() and not list(tmp_path.glob("*snowy*"))
    rgb = tmp_path / "rgb.tif"
    with rasterio.open(rgb, "w", driver="GTiff", width=8, height=8, count=3, dtype="uint8") as f:
        f.write(np.zeros((3, 8, 8), np.uint8))
    assert _translate(tmp / "run" / "ck" / "epoch_002.pt", rgb, out) == 2
    assert "the checkpoint takes reflectance B02" in capsys.readouterr().err and not out.exists()


def test_cut_trains_on_reflectance_too(tmp_path):
    sets = [reflectance_set(tmp_path / f"{n}.npz", 2, s, bands=["B03", "B11"]) for s, n in enumerate(("trainA", "trainB", "testA", "testB"))]
    params = {k: v for k, v in PARAMS.items() if k != "pool_size"} | {"model": "cut", "num_patches": 8, "n_epochs_decay": 0}
    d = tmp_path / "run"
    assert main(["train", "--params", json.dumps(params), "--train-a", str(sets[0]), "--train-b", str(sets[1]),
                 "--checkpoint-dir", str(d / "ck"), "--state-dir", str(d / "st"), "--losses", str(d / "l.csv"),
                 "--iter-losses", str(d / "li.csv"), "--no-progress"]) == 0
    g, info = ckpt.load_generator(d / "ck" / "epoch_001.pt")
    assert info["bands"].bands == ("B03", "B11") and info["arch"]["input_nc"] == info["arch"]["output_nc"] == 2
    assert info["arch"]["netG"] != "resnet"  # the antialiased CUT generator, with two channels


def test_translated_reflectance_is_the_generator_output_through_the_mapping(trained, tmp_path):
    """One 32 px tile, its own instance norm: the COG is G_A of the scene's codes, decoded (to 1e-4)."""
    tmp, _ = trained
    ck = tmp / "run" / "ck" / "epoch_002.pt"
    scene = ten_band_scene(tmp_path / "scene.tif", size=32, seed=5)
    out = tmp_path / "one.tif"
    assert main(["translate", "--checkpoint", str(ck), "--input", str(scene), "--output", str(out), "--tile", "32",
                 "--overlap", "0", "--norm", "tile", "--device", "cpu"]) == 0
    g, info = ckpt.load_generator(ck)
    scales = info["bands"].unit_reflectance
    with rasterio.open(scene) as src:
        index = {d: i for i, d in enumerate(src.descriptions, start=1)}
        dn = src.read([index[b] for b in TEN]).transpose(1, 2, 0)
    expected = B.decode_units(translate_batches(g, B.encode_units(dn, scales)[None], 1, torch.device("cpu"))[0], scales)
    with rasterio.open(out) as dst:
        got = dst.read().transpose(1, 2, 0)
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1


def test_a_checkpoint_keeps_its_own_mapping(trained, tmp_path):
    """Reading a checkpoint back restores its stored mapping, whatever the code's table says: generate
    maps the test sets as the checkpoint does, and resuming a run of another mapping is refused."""
    tmp, sets = trained
    payload = torch.load(tmp / "run" / "ck" / "epoch_002.pt", weights_only=True)
    other = [1.0] * 10
    payload["bands"]["unit_reflectance"] = other
    torch.save(payload, tmp_path / "epoch_002.pt")
    g, info = ckpt.load_generator(tmp_path / "epoch_002.pt")
    assert info["bands"].unit_reflectance == tuple(other)
    generate(validate_section("samples", {}), [tmp_path / "epoch_002.pt"], [tmp_path / "s.npz"], sets[2], sets[3], device="cpu")
    codes = B.encode_units(load_npz(sets[2])["reflectance"], other)
    expected = B.decode_units(translate_batches(g, codes, 2, torch.device("cpu")), other)
    np.testing.assert_array_equal(load_npz(tmp_path / "s.npz")["fake_B"], expected)
    # the resumable state of a run whose checkpoint maps otherwise than the training data now do
    state = next((tmp / "run" / "st").glob("data-*"))
    copy = tmp_path / "st" / state.name
    copy.mkdir(parents=True)
    for f in state.glob("epoch_*.pt"):
        p = torch.load(f, weights_only=True)
        p["bands"]["unit_reflectance"] = other
        torch.save(p, copy / f.name)
    d = tmp_path / "again"
    with pytest.raises(DeepsnowError, match=r"epoch_002.pt: a run of .*1.0.*but the training data map as .*0.6.*cannot resume"):
        from deepsnow.gan.train import train

        train(validate_section("gan", PARAMS), sets[0], sets[1], d / "ck", tmp_path / "st", d / "l.csv", d / "li.csv",
              progress=False)


def test_write_bands_writes_row_windows_of_every_band(tmp_path, monkeypatch):
    """Row windows of every band at once (not a band at a time, which rewrote each compressed block of the
    intermediate once per band): the values, the names and the mask come out as decoded, also across a
    last, short window; the intermediate asks for BigTIFF when it could pass 4 GB."""
    from rasterio.transform import from_origin

    from deepsnow.gan.translate import write_bands

    real_open = rasterio.open
    bands = BandSet.of(["B03", "B08", "B11", "B12"], "reflectance")
    codes = np.random.default_rng(5).integers(0, 65536, (600, 300, 4)).astype(np.uint16)
    valid = np.ones((600, 300), bool)
    valid[590:, :7] = False
    out = tmp_path / "r.tif"
    write_bands(out, codes, bands, "EPSG:32632", from_origin(0, 6000, 10, 10), valid=valid, rows=256)
    with rasterio.open(out) as ds:
        assert list(ds.descriptions) == list(bands.bands) and ds.count == 4
        for i, scale in enumerate(bands.unit_reflectance):
            assert np.array_equal(ds.read(i + 1), B.decode_units(codes[..., i], scale))
        assert np.array_equal(ds.read_masks(1) > 0, valid)
    seen = []
    monkeypatch.setattr(rasterio, "open", lambda path, mode="r", **kw: (seen.append(kw), real_open(path, mode, **kw))[1])
    write_bands(tmp_path / "s.tif", codes[:256, :256], bands, "EPSG:32632", from_origin(0, 6000, 10, 10))
    assert [kw.get("BIGTIFF") for kw in seen if kw] == ["IF_SAFER"]  # the intermediate's creation options
