"""simcover on a reflectance run (issue #28 item 4): it trains on every band, its weights file records
them, and embedding refuses images that lack one; an RGB simcover's weights file is as before."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from deepsnow import DeepsnowError
from deepsnow.cli import main
from deepsnow.config import validate_section
from deepsnow.data.bands import encode_units, unit_scales
from deepsnow.data.scene import REFLECTANCE_BANDS
from deepsnow.features import build_extractor, embed_images
from deepsnow.features.embed import embed_samples
from deepsnow.features.simcover import load_network
from deepsnow.io import save_npz
from deepsnow.torchfile import load_raw, save
from helpers import deepsnow

TEN = list(REFLECTANCE_BANDS)
TARGETS = np.array(["forest", "bare", "snow"])


def _set(n, seed, bands=TEN):
    rng = np.random.default_rng(seed)
    land = rng.dirichlet([1, 1], n).astype(np.float32)
    snow = rng.random(n).astype(np.float32)
    refl = rng.integers(0, 9000, (n, 16, 16, len(bands)), dtype=np.uint16)
    return {"reflectance": refl, "landcover": np.c_[land, snow], "landcover_targets": TARGETS,
            "bands": np.array(bands), "encoding": np.array("reflectance"), "ids": np.arange(n).astype(str)}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("simcover_bands")
    save_npz(d / "trainA.npz", **_set(6, 1))
    save_npz(d / "trainB.npz", **_set(6, 2))
    params = validate_section("simcover", {"size": 16, "epochs": 1, "batch_size": 4, "n_seeds": 1, "threads": 1})
    rc = main(["train-simcover", "--params", json.dumps(params), "--train-a", str(d / "trainA.npz"),
               "--train-b", str(d / "trainB.npz"), "--output", str(d / "simcover.pt"), "--summary", str(d / "s.json")])
    assert rc == 0
    return d


def test_the_weights_record_the_bands_and_take_every_band(trained):
    obj = load_raw(trained / "simcover.pt")
    assert obj["bands"] == {"bands": TEN, "encoding": "reflectance", "unit_reflectance": unit_scales(TEN)}
    assert tuple(obj["state_dict"]["net.conv1.weight"].shape) == (64, 10, 7, 7)
    assert json.loads((trained / "s.json").read_text())["bands"] == TEN
    net, _ = load_network(trained / "simcover.pt")
    assert net.bands["bands"] == TEN and net.channels == 10


def test_embedding_feeds_every_band_as_unit_reflectance(trained, tmp_path):
    """Features of samples = the network on clip(r / s_b, 0, 1) of all ten bands (samples hold them in another
    order: picked by name)."""
    ext = build_extractor("simcover", {"weights_path": str(trained / "simcover.pt")})
    s = _set(3, 7)
    order = TEN[::-1]
    save_npz(tmp_path / "s.npz", fake_B=s["reflectance"][..., ::-1], ids_A=s["ids"], epoch=np.int64(1),
             bands=np.array(order), encoding=np.array("reflectance"))
    params = validate_section("features", {"device": "cpu", "progress": False})
    embed_samples([tmp_path / "s.npz"], [tmp_path / "f.npz"], ext, params)
    net, _ = load_network(trained / "simcover.pt")
    x = torch.from_numpy(encode_units(s["reflectance"], unit_scales(TEN)).astype(np.float32) / 65535).permute(0, 3, 1, 2)
    with torch.inference_mode():
        want = net(x).numpy()
    with np.load(tmp_path / "f.npz") as f:
        np.testing.assert_allclose(f["fake_B"], want, rtol=1e-4, atol=1e-5)
        assert "reflectance bands" in str(f["preprocessing"])
    assert embed_images(encode_units(s["reflectance"], unit_scales(TEN)), ext, device="cpu").shape == (3, 512)


def test_images_lacking_a_band_or_in_rgb_are_refused_naming_it(trained, tmp_path):
    save_npz(tmp_path / "s.npz", fake_B=_set(2, 3, TEN[:9])["reflectance"], ids_A=np.array(["a", "b"]), epoch=np.int64(1),
             bands=np.array(TEN[:9]), encoding=np.array("reflectance"))
    p = deepsnow("embed", "--extractor", "simcover", "--weights-path", trained / "simcover.pt",
                 "--samples", tmp_path / "s.npz", "--outputs", tmp_path / "f.npz")
    assert p.returncode == 2 and "s.npz: no band B12" in p.stderr and "trained on bands" in p.stderr, p.stderr[-2000:]
    assert not (tmp_path / "f.npz").exists()
    ext = build_extractor("simcover", {"weights_path": str(trained / "simcover.pt")})
    with pytest.raises(DeepsnowError, match="expected an \\(N, H, W, 10\\) unit codes array"):
        embed_images(np.zeros((1, 16, 16, 3), np.uint8), ext)
    save_npz(tmp_path / "rgb.npz", images=np.zeros((1, 16, 16, 3), np.uint8))
    p = deepsnow("embed", "--extractor", "simcover", "--weights-path", trained / "simcover.pt",
                 "--images", tmp_path / "rgb.npz", "--images-key", "images", "--output", tmp_path / "g.npz")
    assert p.returncode == 2 and "rgb.npz:images: 8-bit RGB images, but the simcover weights" in p.stderr
    assert not (tmp_path / "g.npz").exists()


def test_a_bad_bands_record_is_refused_naming_the_file(trained, tmp_path):
    obj = load_raw(trained / "simcover.pt")
    save({**obj, "bands": {**obj["bands"], "bands": ["B02", "B99", *TEN[2:]]}}, tmp_path / "bad.pt")
    with pytest.raises(DeepsnowError, match="bad.pt: bands.*B99"):
        load_network(tmp_path / "bad.pt")
    save({**obj, "bands": {**obj["bands"], "unit_reflectance": [1.2]}}, tmp_path / "short.pt")
    with pytest.raises(DeepsnowError, match="short.pt: key 'bands'"):
        load_network(tmp_path / "short.pt")


def test_an_rgb_simcover_is_as_before(tmp_path):
    """RGB training sets: the weights file holds exactly the keys it held before bands, a 3-channel network."""
    rng = np.random.default_rng(0)
    for name in ("trainA", "trainB"):
        save_npz(tmp_path / f"{name}.npz", rgb=rng.integers(0, 255, (4, 16, 16, 3), dtype=np.uint8),
                 landcover=np.c_[rng.dirichlet([1, 1], 4), rng.random(4)].astype(np.float32), landcover_targets=TARGETS)
    params = validate_section("simcover", {"size": 16, "epochs": 1, "batch_size": 4, "n_seeds": 1, "threads": 1})
    assert main(["train-simcover", "--params", json.dumps(params), "--train-a", str(tmp_path / "trainA.npz"),
                 "--train-b", str(tmp_path / "trainB.npz"), "--output", str(tmp_path / "w.pt"),
                 "--summary", str(tmp_path / "s.json")]) == 0
    obj = load_raw(tmp_path / "w.pt")
    assert sorted(obj) == ["arch", "size", "state_dict", "targets"]
    assert tuple(obj["state_dict"]["net.conv1.weight"].shape) == (64, 3, 7, 7)
    assert "bands" not in json.loads((tmp_path / "s.json").read_text())
    assert build_extractor("simcover", {"weights_path": str(tmp_path / "w.pt")}).bands is None
