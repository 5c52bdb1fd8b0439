"""Paired errors of reflectance samples (issue #28 item 3): against the simulator's truth cut in the same
bands, L1 in reflectance, SSIM of reflectance with data range 1; bands that differ are refused."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from deepsnow import DeepsnowError
from deepsnow.metrics.epoch import paired_inputs
from deepsnow.metrics.paired import paired_errors, patch_l1

TEN = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]


def test_reflectance_paired_errors_are_in_reflectance_over_all_bands():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 9000, (2, 16, 16, 10), dtype=np.uint16)
    fake = truth + np.uint16(250)  # 0.025 reflectance brighter in every band
    r = paired_errors(fake, truth)
    assert r["paired_l1"] == pytest.approx(0.025) and r["n_paired"] == 2
    np.testing.assert_allclose(patch_l1(fake, truth), [0.025, 0.025])
    want = np.mean([structural_similarity(f / 1e4, t / 1e4, channel_axis=-1, data_range=1.0) for f, t in zip(fake, truth)])
    assert r["paired_ssim"] == pytest.approx(want) and r["paired_ssim"] < 1
    assert paired_errors(truth, truth)["paired_ssim"] == pytest.approx(1.0)
    with pytest.raises(DeepsnowError, match="uint8 RGB or uint16 reflectance of equal"):
        paired_errors(fake, (truth // 40).astype(np.uint8))


def _files(tmp_path, sample_bands, truth_bands):
    rng = np.random.default_rng(1)
    ids = np.array(["p0", "p1"])
    truth = rng.integers(0, 9000, (2, 16, 16, len(truth_bands)), dtype=np.uint16)
    np.savez(tmp_path / "testA.npz", reflectance=truth, truth_snowfall=truth, truth=truth, ids=ids,
             bands=np.array(truth_bands), encoding=np.array("reflectance"))
    fake = rng.integers(0, 9000, (2, 16, 16, len(sample_bands)), dtype=np.uint16)
    np.savez(tmp_path / "s.npz", fake_B=fake, ids_A=ids[::-1], epoch=np.int64(3),
             bands=np.array(sample_bands), encoding=np.array("reflectance"))
    return fake, truth


def test_reflectance_samples_pair_with_truths_of_the_same_bands(tmp_path):
    fake, truth = _files(tmp_path, TEN, TEN)
    got = paired_inputs([tmp_path / "s.npz"], tmp_path / "testA.npz", {"paired": True}, {3})[3]
    np.testing.assert_array_equal(got["truth"], truth[::-1])
    assert paired_errors(got["fake"], got["truth"])["paired_l1"] == pytest.approx(
        np.abs(fake.astype(int) - truth[::-1].astype(int)).mean() / 1e4)


def test_samples_and_truths_of_other_bands_are_refused_naming_both(tmp_path):
    _files(tmp_path, TEN, TEN[:3])
    with pytest.raises(DeepsnowError, match=r"s.npz: samples in bands .*B12.*testA.npz are in \['B02', 'B03', 'B04'\]"):
        paired_inputs([tmp_path / "s.npz"], tmp_path / "testA.npz", {"paired": True}, {3})
    with np.load(tmp_path / "testA.npz") as d:
        np.savez(tmp_path / "testA.npz", **{k: d[k] for k in ("ids",)}, truth=(d["truth"] // 40).astype(np.uint8)[..., :3])
    with pytest.raises(DeepsnowError, match=r"samples in bands .*B12.* are in \['rgb8'\]"):
        paired_inputs([tmp_path / "s.npz"], tmp_path / "testA.npz", {"paired": True}, {3})
