"""Spectral and physical checks of reflectance samples (issue #28 item 4): per-band Wasserstein distances,
the NDSI distance and the mask stage's snow share, against scipy and the mask stage's own classifier."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import wasserstein_distance

from deepsnow import DeepsnowError
from deepsnow.config import validate_section
from deepsnow.data.mask import SNOW, classify
from deepsnow.metrics.spectral import snow_share, spectral_columns

TEN = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]
MASK = validate_section("mask", {})


def _images(seed, n=3, s=8, snowy=False):
    rng = np.random.default_rng(seed)
    img = rng.integers(200, 3000, (n, s, s, 10), dtype=np.uint16)
    img[..., TEN.index("B11")] += 3000  # land: brighter in the SWIR than in green, no snow
    if snowy:  # the left half snow: bright visible and NIR, dark SWIR
        for b, v in (("B03", 8500), ("B08", 7500), ("B11", 600)):
            img[:, :, : s // 2, TEN.index(b)] = v
    return img


def test_columns_match_scipy_and_the_mask_stages_rule():
    real, fake = _images(0, snowy=True), _images(1)
    row = spectral_columns(real, fake, TEN, MASK)
    for j, b in enumerate(TEN):
        want = wasserstein_distance(real[..., j].ravel() / 1e4, fake[..., j].ravel() / 1e4)
        assert row[f"w1_{b}"] == pytest.approx(want)
    assert row["w1_mean"] == pytest.approx(np.mean([row[f"w1_{b}"] for b in TEN]))
    nd = [(x[..., 1].astype(float) - x[..., 8]) / (x[..., 1].astype(float) + x[..., 8]) for x in (real, fake)]
    assert row["ndsi_w1"] == pytest.approx(wasserstein_distance(nd[0].ravel(), nd[1].ravel()))
    # the snow share is what the mask stage's classify calls snow, pixel by pixel
    refl = {b: real[..., TEN.index(b)].astype(np.float32) / 1e4 for b in ("B03", "B08", "B11")}
    classes = classify(refl, np.full(real.shape[:3], 4, np.uint8), np.ones(real.shape[:3], np.uint8), MASK)
    assert row["snow_share_real"] == pytest.approx(np.mean(classes == SNOW)) == pytest.approx(0.5)
    assert row["snow_share_fake"] == 0.0
    same = spectral_columns(real, real, TEN, MASK)
    assert same["w1_mean"] == 0 and same["ndsi_w1"] == 0 and same["snow_share_fake"] == same["snow_share_real"]


def test_without_the_swir_ndsi_and_snow_share_are_nan():
    bands = ["B02", "B03", "B04", "B08"]
    real, fake = _images(0)[..., :4], _images(1)[..., :4]
    row = spectral_columns(real, fake, bands, MASK)
    assert sorted(k for k in row if k.startswith("w1_")) == sorted(["w1_B02", "w1_B03", "w1_B04", "w1_B08", "w1_mean"])
    assert np.isnan(row["ndsi_w1"]) and np.isnan(row["snow_share_fake"]) and np.isnan(snow_share(real, bands, MASK))


def test_images_that_are_not_reflectance_in_the_bands_are_refused():
    with pytest.raises(DeepsnowError, match=r"s.npz \(generated\): expected \(N, S, S, 10\) uint16"):
        spectral_columns(_images(0), _images(1).astype(np.uint8), TEN, MASK, what="s.npz")


def _tiny_run(tmp_path, bands=TEN):
    """Real features (random, two extractors), one epoch's features and reflectance samples, the test sets."""
    from deepsnow.io import save_npz

    rng = np.random.default_rng(5)
    meta = lambda name: {"extractor": np.array(name), "weights": np.array("random-seed0"), "pretrained": np.array(False),
                         "dim": np.int64(4), "preprocessing": np.array("x")}
    ids_a, ids_b = np.array([f"a{i}" for i in range(6)]), np.array([f"b{i}" for i in range(6)])
    for name in ("inception", "resnet50"):
        save_npz(tmp_path / f"real_{name}.npz", A=rng.normal(size=(6, 4)).astype(np.float32),
                 B=rng.normal(size=(6, 4)).astype(np.float32), ids_A=ids_a, ids_B=ids_b, **meta(name))
        save_npz(tmp_path / f"e1_{name}.npz", fake_B=rng.normal(size=(6, 4)).astype(np.float32),
                 fake_A=rng.normal(size=(6, 4)).astype(np.float32), ids_A=ids_a, ids_B=ids_b, epoch=np.int64(1), **meta(name))
    refl = {"bands": np.array(bands), "encoding": np.array("reflectance")}
    test_a, test_b = _images(7, n=6)[..., : len(bands)], _images(8, n=6, snowy=True)[..., : len(bands)]
    save_npz(tmp_path / "testA.npz", reflectance=test_a, ids=ids_a, **refl)
    save_npz(tmp_path / "testB.npz", reflectance=test_b, ids=ids_b, **refl)
    fake_b, fake_a = _images(9, n=6, snowy=True), _images(10, n=6)
    save_npz(tmp_path / "s1.npz", fake_B=fake_b, fake_A=fake_a, ids_A=ids_a, ids_B=ids_b, epoch=np.int64(1), **refl)
    return test_a, test_b, fake_b, fake_a


def test_metrics_epoch_writes_the_spectral_columns_and_the_table_carries_them(tmp_path):
    import json

    from helpers import deepsnow

    test_a, test_b, fake_b, fake_a = _tiny_run(tmp_path)
    params = json.dumps({"rf_repeats": 2, "rf_n_estimators": 5, "kid_subsets": 2, "prdc_k": 2})
    args = ["metrics", "epoch", "--params", params, "--real", *(tmp_path / f"real_{n}.npz" for n in ("inception", "resnet50")),
            "--features", *(tmp_path / f"e1_{n}.npz" for n in ("inception", "resnet50")), "--samples", tmp_path / "s1.npz",
            "--outputs", tmp_path / "epoch_001.json"]
    p = deepsnow(*args, "--test-a", tmp_path / "testA.npz", "--test-b", tmp_path / "testB.npz", "--mask-params", "{}")
    assert p.returncode == 0, p.stderr[-3000:]
    rows = {r["direction"]: r for r in json.loads((tmp_path / "epoch_001.json").read_text())["rows"]}
    assert rows["AtoB"] == {**rows["AtoB"], **spectral_columns(test_b, fake_b, TEN, MASK)}
    assert rows["BtoA"] == {**rows["BtoA"], **spectral_columns(test_a, fake_a, TEN, MASK)}
    assert rows["AtoB"]["snow_share_real"] == pytest.approx(0.5)
    p = deepsnow("metrics", "table", "--params", params, "--epochs", tmp_path / "epoch_001.json", "--output", tmp_path / "m.csv")
    assert p.returncode == 0, p.stderr[-3000:]
    header = (tmp_path / "m.csv").read_text().splitlines()[0].split(",")
    assert header[-14:] == [f"w1_{b}" for b in TEN] + ["w1_mean", "ndsi_w1", "snow_share_fake", "snow_share_real"]
    # a test set of other bands than the samples: exit 2 naming both, nothing written
    (tmp_path / "x").mkdir()
    _tiny_run(tmp_path / "x", TEN[:4])
    p = deepsnow(*args[:-1], tmp_path / "bad.json", "--test-a", tmp_path / "x" / "testA.npz",
                 "--test-b", tmp_path / "x" / "testB.npz", "--mask-params", "{}")
    assert p.returncode == 2 and "s1.npz: samples in bands" in p.stderr and "x/testA.npz is in" in p.stderr
    assert not (tmp_path / "bad.json").exists()
