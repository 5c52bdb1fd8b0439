"""Spectral and physical checks of reflectance samples (issue #28 item 4): per-band Wasserstein distances,
the NDSI distance and the mask stage's snow share, against scipy and the mask stage's own classifier."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import wasserstein_distance

from deepsnow import DeepsnowError
from deepsnow.config import validate_section
from deepsnow.data.mask import SNOW, classify
from deepsnow.metrics.spectral import sam_w1, snow_share, snow_truth_columns, spectral_angles, spectral_columns

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


def test_spectral_angle_by_hand():
    # reference (1, 1): a pixel (r, 0) is 45 degrees off it, (r, r) on it; all-zero pixels have no angle
    img = np.zeros((1, 1, 3, 2), np.uint16)
    img[0, 0, 0] = (5000, 0)
    img[0, 0, 1] = (2000, 2000)
    angles = spectral_angles(img, [1.0, 1.0])
    assert angles == pytest.approx([np.pi / 4, 0.0])
    # sam_w1: real pixels all (1, 1)-shaped, generated all (1, 0): every angle moves by pi/4
    real = np.full((2, 2, 2, 2), 3000, np.uint16)
    fake = real.copy()
    fake[..., 1] = 0
    assert sam_w1(real, real) == 0.0 and sam_w1(real, fake) == pytest.approx(np.pi / 4)


def test_swir_raised_snow_is_further_from_real_snow():
    """Generated snow whose SWIR is raised (cloud-like: bright at 1.6 um) is further from real snow in NDSI
    and spectral angle, and the mask rule calls less of it snow."""
    real = _images(0, snowy=True)
    good, bad = real.copy(), real.copy()
    bad[..., TEN.index("B11")] = np.minimum(bad[..., TEN.index("B11")].astype(int) + 4000, 65535).astype(np.uint16)
    g, b = spectral_columns(real, good, TEN, MASK), spectral_columns(real, bad, TEN, MASK)
    assert g["ndsi_w1"] == 0 and b["ndsi_w1"] > 0.3
    assert g["sam_w1"] == 0 and b["sam_w1"] > 0.05
    assert g["snow_share_fake"] == pytest.approx(0.5) and b["snow_share_fake"] == 0.0


def test_snow_against_the_truth():
    truth = _images(0, n=2, snowy=True)  # left half snow in both patches
    same = snow_truth_columns(truth, truth, TEN, MASK)
    assert same == {"snow_cover_mae": 0.0, "snow_share_truth": 0.5, "snow_iou": 1.0, "snow_iou_patch": 1.0}
    fake = truth.copy()
    fake[0, :, :, TEN.index("B11")] = 9000  # patch 0: no snow at all; patch 1: as the truth
    fake[1, :2, :, TEN.index("B11")] = 600  # patch 1: rows 0-1 snow across the whole width as well
    fake[1, :2, :, TEN.index("B03")], fake[1, :2, :, TEN.index("B08")] = 8500, 7500
    cols = snow_truth_columns(fake, truth, TEN, MASK)
    # patch 0: fraction 0 vs 0.5, IoU 0; patch 1: 32 + 8 = 40 of 64 vs 32, IoU 32 / 40
    assert cols["snow_cover_mae"] == pytest.approx((0.5 + 8 / 64) / 2)
    assert cols["snow_iou"] == pytest.approx(32 / (32 + 40))
    assert cols["snow_iou_patch"] == pytest.approx((0 + 32 / 40) / 2)
    assert snow_truth_columns(fake[..., :4], truth[..., :4], TEN[:4], MASK) == {}
    with pytest.raises(DeepsnowError, match="x.npz: .* generated patches but"):
        snow_truth_columns(fake[:1], truth, TEN, MASK, what="x.npz")


def test_correlations_take_the_spectral_and_physical_columns_only_where_present():
    from deepsnow.metrics.table import PAIRED_METRICS, correlations, unpaired_metrics

    rng = np.random.default_rng(0)
    rgb = [{"epoch": e, "direction": "AtoB", "fid": rng.random(), "paired_l1": rng.random(), "paired_ssim": rng.random(),
            "paired_l1_water": None} for e in range(4)]
    corr = correlations(rgb)
    assert [(c["metric"], c["paired"]) for c in corr] == [(m, p) for p in PAIRED_METRICS for m in unpaired_metrics(rgb)]
    refl = [{**r, "w1_B03": e, "w1_mean": e, "ndsi_w1": e, "sam_w1": -e, "snow_share_fake": 1.0,
             "snow_cover_mae": e, "snow_iou": -e} for e, r in enumerate(rgb)]
    got = {(c["metric"], c["paired"]): c for c in correlations(refl)}
    assert got[("ndsi_w1", "snow_cover_mae")]["spearman_rho"] == pytest.approx(1.0)
    assert got[("sam_w1", "snow_iou")]["spearman_rho"] == pytest.approx(1.0)
    assert got[("sam_w1", "snow_iou")]["expected_sign"] == -1 and got[("w1_B03", "paired_l1")]["expected_sign"] == 1
    assert ("snow_share_fake", "paired_l1") not in got and ("fid", "snow_iou") in got


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
    truth = _images(11, n=6, snowy=True)[..., : len(bands)]
    save_npz(tmp_path / "testA.npz", reflectance=test_a, ids=ids_a, truth_snowfall=truth, truth=truth, **refl)
    save_npz(tmp_path / "testB.npz", reflectance=test_b, ids=ids_b, **refl)
    fake_b, fake_a = _images(9, n=6, snowy=True), _images(10, n=6)
    save_npz(tmp_path / "s1.npz", fake_B=fake_b, fake_A=fake_a, ids_A=ids_a, ids_B=ids_b, epoch=np.int64(1), **refl)
    return test_a, test_b, fake_b, fake_a, truth


def test_metrics_epoch_writes_the_spectral_columns_and_the_table_carries_them(tmp_path):
    import csv
    import json

    from helpers import deepsnow

    test_a, test_b, fake_b, fake_a, truth = _tiny_run(tmp_path)
    params = json.dumps({"rf_repeats": 2, "rf_n_estimators": 5, "kid_subsets": 2, "prdc_k": 2})
    args = ["metrics", "epoch", "--params", params, "--real", *(tmp_path / f"real_{n}.npz" for n in ("inception", "resnet50")),
            "--features", *(tmp_path / f"e1_{n}.npz" for n in ("inception", "resnet50")), "--samples", tmp_path / "s1.npz",
            "--outputs", tmp_path / "epoch_001.json"]
    p = deepsnow(*args, "--test-a", tmp_path / "testA.npz", "--test-b", tmp_path / "testB.npz", "--mask-params", "{}",
                 "--truth", tmp_path / "testA.npz")
    assert p.returncode == 0, p.stderr[-3000:]
    rows = {r["direction"]: r for r in json.loads((tmp_path / "epoch_001.json").read_text())["rows"]}
    assert rows["AtoB"] == {**rows["AtoB"], **spectral_columns(test_b, fake_b, TEN, MASK), **snow_truth_columns(fake_b, truth, TEN, MASK)}
    assert rows["BtoA"] == {**rows["BtoA"], **spectral_columns(test_a, fake_a, TEN, MASK)}
    assert rows["AtoB"]["snow_share_real"] == pytest.approx(0.5)
    # fake_b and the truth both have the left half snow: they agree exactly
    assert rows["AtoB"]["snow_iou"] == 1.0 and rows["AtoB"]["snow_cover_mae"] == 0.0
    assert "snow_iou" not in rows["BtoA"] and rows["BtoA"]["sam_w1"] > 0  # no truth for B->A
    p = deepsnow("metrics", "table", "--params", params, "--epochs", tmp_path / "epoch_001.json", "--output", tmp_path / "m.csv")
    assert p.returncode == 0, p.stderr[-3000:]
    header = (tmp_path / "m.csv").read_text().splitlines()[0].split(",")
    assert header[-19:] == [f"w1_{b}" for b in TEN] + [
        "w1_mean", "ndsi_w1", "snow_share_fake", "snow_share_real", "sam_w1",
        "snow_cover_mae", "snow_share_truth", "snow_iou", "snow_iou_patch",
    ]
    # both directions carry every column: the B->A row leaves the truth's empty
    table = list(csv.DictReader((tmp_path / "m.csv").read_text().splitlines()))
    assert [r["direction"] for r in table] == ["AtoB", "BtoA"] and table[1]["snow_iou"] == "" and table[1]["sam_w1"] != ""
    # a test set of other bands than the samples: exit 2 naming both, nothing written
    (tmp_path / "x").mkdir()
    _tiny_run(tmp_path / "x", TEN[:4])
    p = deepsnow(*args[:-1], tmp_path / "bad.json", "--test-a", tmp_path / "x" / "testA.npz",
                 "--test-b", tmp_path / "x" / "testB.npz", "--mask-params", "{}")
    assert p.returncode == 2 and "s1.npz: samples in bands" in p.stderr and "x/testA.npz is in" in p.stderr
    assert not (tmp_path / "bad.json").exists()
