"""Metric functions on feature arrays: exact oracles, closed forms, and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg

from deepsnow import DeepsnowError
from deepsnow.metrics import (
    clipped_log_loss,
    cosine_resnet_distance,
    frechet_distance,
    frechet_distance_from_stats,
    kernel_distance,
    mean_cosine_similarity,
    mean_dot_product,
    pair_by_ids,
    paired_errors,
    rf_two_sample_test,
    trace_sqrt_product,
)


def _sqrtm_fd(mu1, s1, mu2, s2):
    """The pytorch-fid formula with scipy's sqrtm (the baseline)."""
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    covmean = np.real(covmean)
    d = mu1 - mu2
    return float(d @ d + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def _random_spd(rng, d, rank=None):
    a = rng.normal(size=(d, rank or d))
    return a @ a.T / d + (0 if rank else 1e-3) * np.eye(d)


# ---------------------------------------------------------------- Fréchet distance


def test_frechet_oracle_unit_covariances_2048():
    d = 2048
    fd = frechet_distance_from_stats(np.zeros(d), np.eye(d), np.ones(d), np.eye(d))
    assert fd == pytest.approx(2048.0, rel=1e-12)


def test_frechet_commuting_covariances_closed_form():
    rng = np.random.default_rng(1)
    d = 40
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    a, b = rng.uniform(0.1, 3.0, d), rng.uniform(0.0, 2.0, d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    # diagonal, then the same pair rotated by a common orthogonal matrix (still commuting)
    assert frechet_distance_from_stats(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-10)
    s1, s2 = q @ np.diag(a) @ q.T, q @ np.diag(b) @ q.T
    assert frechet_distance_from_stats(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)
    # 1-D: (m1 - m2)^2 + (sd1 - sd2)^2
    assert frechet_distance_from_stats([1.0], [[4.0]], [3.0], [[1.0]]) == pytest.approx(4.0 + 1.0)


def test_frechet_identical_sets_and_scaling():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 16)) @ rng.normal(size=(16, 16))
    y = rng.normal(size=(250, 16)) + 0.5
    for method in ("eigh", "samples"):
        assert frechet_distance(x, x, method=method) == pytest.approx(0.0, abs=1e-8 * np.trace(np.cov(x.T)))
        base = frechet_distance(x, y, method=method)
        assert base > 0.1
        for c in (0.1, 3.0):
            assert frechet_distance(c * x, c * y, method=method) == pytest.approx(c * c * base, rel=1e-9)
    # float32 input gives the float64 result
    assert frechet_distance(x.astype(np.float32), y.astype(np.float32)) == pytest.approx(
        frechet_distance(x.astype(np.float32).astype(np.float64), y.astype(np.float32).astype(np.float64)), rel=1e-12
    )


@pytest.mark.parametrize("seed", range(5))
def test_frechet_agrees_with_sqrtm_on_random_spd(seed):
    rng = np.random.default_rng(100 + seed)
    d = int(rng.integers(5, 120))
    s1, s2 = _random_spd(rng, d), _random_spd(rng, d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    ours = frechet_distance_from_stats(mu1, s1, mu2, s2)
    assert ours == pytest.approx(_sqrtm_fd(mu1, s1, mu2, s2), rel=1e-6)


def test_frechet_rank_deficient_sample_covariances_agree_with_sqrtm():
    """N < D, the usual case for small test sets: covariances are singular."""
    rng = np.random.default_rng(7)
    x = np.maximum(rng.normal(size=(40, 64)), 0)  # ReLU-like features
    y = np.maximum(rng.normal(size=(50, 64)) + 0.2, 0)
    mu1, s1 = x.mean(0), np.cov(x, rowvar=False)
    mu2, s2 = y.mean(0), np.cov(y, rowvar=False)
    for method in ("eigh", "samples"):
        assert frechet_distance(x, y, method=method) == pytest.approx(_sqrtm_fd(mu1, s1, mu2, s2), rel=1e-6)
    assert trace_sqrt_product(s1, s2) >= 0


@pytest.mark.parametrize("n, m, d", [(30, 45, 64), (200, 150, 16), (5, 3, 300)])
def test_frechet_sample_space_equals_eigh_form(n, m, d):
    rng = np.random.default_rng(n + m + d)
    x = np.maximum(rng.normal(size=(n, d)), 0) * rng.uniform(0.5, 2, d)
    y = np.maximum(rng.normal(size=(m, d)) + 0.1, 0)
    # rank-deficient covariances: the eigh form takes square roots of round-off-sized
    # eigenvalues (clipped), so the two exact forms agree to ~1e-8, not to 1e-15
    ref = frechet_distance(x, y, method="eigh")
    assert frechet_distance(x, y, method="samples") == pytest.approx(ref, rel=1e-7)
    assert frechet_distance(x, y) == pytest.approx(ref, rel=1e-7)


def test_frechet_bad_input_messages():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(10, 4))
    with pytest.raises(DeepsnowError, match="NaN"):
        frechet_distance(np.where(np.eye(10, 4) > 0, np.nan, x), x)
    with pytest.raises(DeepsnowError, match="dimension 3 does not match"):
        frechet_distance(x, x[:, :3])
    with pytest.raises(DeepsnowError, match="at least 2"):
        frechet_distance(x[:1], x)
    with pytest.raises(DeepsnowError, match="2-D"):
        frechet_distance(x[0], x)
    with pytest.raises(DeepsnowError, match="covariances must be 4 x 4"):
        frechet_distance_from_stats(np.zeros(4), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(DeepsnowError, match="NaN"):
        frechet_distance_from_stats(np.zeros(2), np.eye(2), np.array([0, np.nan]), np.eye(2))


# ---------------------------------------------------------------- cosine distance


def test_crd_closed_form_equals_all_pairs():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 32)) + 0.3
    y = rng.normal(size=(150, 32))
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    yn = y / np.linalg.norm(y, axis=1, keepdims=True)
    all_pairs = float((xn @ yn.T).mean())
    assert mean_cosine_similarity(x, y) == pytest.approx(all_pairs, abs=1e-9)
    assert cosine_resnet_distance(x, y) == pytest.approx(1.0 - all_pairs, abs=1e-9)
    assert mean_dot_product(x, y) == pytest.approx(float((x @ y.T).mean()), rel=1e-9)
    # scale-free per vector, unlike the literal Eq. 5
    assert cosine_resnet_distance(x * rng.uniform(0.1, 10, (200, 1)), y) == pytest.approx(1.0 - all_pairs, abs=1e-9)
    # one direction: distance 0
    v = rng.normal(size=(1, 32))
    assert cosine_resnet_distance(v * [[1], [2], [3]], v * [[5]]) == pytest.approx(0.0, abs=1e-12)


def test_crd_rejects_zero_vectors():
    x = np.zeros((3, 4))
    with pytest.raises(DeepsnowError, match="all zero"):
        cosine_resnet_distance(x, np.ones((3, 4)))


# ---------------------------------------------------------------- KID


def _unbiased_mmd2(x, y, d):
    k = lambda a, b: (a @ b.T / d + 1) ** 3  # noqa: E731
    m, n = len(x), len(y)
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    return (
        (kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1)) - 2 * kxy.mean()
    )


def test_kid_matches_direct_unbiased_mmd_and_detects_shift():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(80, 10))
    y = rng.normal(size=(80, 10))
    # one subset (capped at half the sets: 40 of 80) = the unbiased estimate on the points it drew
    mean, std = kernel_distance(x, y, subsets=1, subset_size=1000, seed=7)
    rng_subsets = np.random.default_rng(7)
    a, b = x[rng_subsets.choice(80, 40, replace=False)], y[rng_subsets.choice(80, 40, replace=False)]
    assert mean == pytest.approx(_unbiased_mmd2(a, b, 10), rel=1e-10)
    assert std == 0.0
    a, b = rng.normal(size=(300, 64)), rng.normal(size=(300, 64))
    same, _ = kernel_distance(a, b, subsets=50, subset_size=150, seed=1)
    shifted, shifted_std = kernel_distance(a + 0.5, b, subsets=50, subset_size=150, seed=1)
    assert shifted > 0.5 and shifted_std >= 0
    assert abs(same) < 0.02 * shifted
    # the very same points: only the O(1/m) self-similarity term of shared points remains
    ident, _ = kernel_distance(a, a, subsets=50, subset_size=150, seed=2)
    assert abs(ident) < 0.1 * shifted
    # deterministic for a seed
    assert kernel_distance(x, y, subsets=5, subset_size=20, seed=3) == kernel_distance(x, y, subsets=5, subset_size=20, seed=3)


def test_kid_bad_input():
    with pytest.raises(DeepsnowError, match="at least 2"):
        kernel_distance(np.ones((1, 3)), np.ones((5, 3)))
    with pytest.raises(DeepsnowError, match="does not match"):
        kernel_distance(np.ones((5, 3)), np.ones((5, 2)))


# ---------------------------------------------------------------- RF two-sample test


def test_rf_same_distribution_is_near_chance():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(100, 16)), rng.normal(size=(100, 16))
    r = rf_two_sample_test(x, y, repeats=5, n_estimators=50, seed=0)
    assert abs(r["logloss_mean"] - math.log(2)) < 0.1
    assert 0.35 < r["accuracy_mean"] < 0.65 and 0.35 < r["auc_mean"] < 0.65
    assert r["logloss"].shape == (5,) and r["n_per_class"] == 100


def test_rf_separable_sets_near_zero_log_loss():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(60, 8)) + 3.0, rng.normal(size=(60, 8))
    r = rf_two_sample_test(x, y, repeats=5, n_estimators=50, seed=0)
    assert r["logloss_mean"] < 0.15
    assert r["accuracy_mean"] > 0.97
    assert r["auc_mean"] > 0.99


def test_rf_is_seeded_balanced_and_parallel_safe():
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(50, 6)) + 0.3, rng.normal(size=(20, 6))
    a = rf_two_sample_test(x, y, repeats=3, n_estimators=20, seed=1, n_jobs=1)
    b = rf_two_sample_test(x, y, repeats=3, n_estimators=20, seed=1, n_jobs=2)
    c = rf_two_sample_test(x, y, repeats=3, n_estimators=20, seed=2, n_jobs=1)
    assert a["n_per_class"] == 20  # larger set subsampled to the smaller
    for key in ("logloss", "accuracy", "auc"):
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["logloss"], c["logloss"])


def test_clipped_log_loss():
    # a confidently wrong prediction costs -ln(clip), whatever the dtype
    for dtype in (np.float32, np.float64):
        p = np.array([0.0, 1.0], dtype=dtype)
        assert clipped_log_loss([1, 1], p) == pytest.approx(-math.log(1e-15) / 2, rel=1e-9)
    assert clipped_log_loss([1], [0.0], clip=1e-7) == pytest.approx(-math.log(1e-7), rel=1e-9)
    assert clipped_log_loss([0, 1], [0.5, 0.5]) == pytest.approx(math.log(2))
    assert clipped_log_loss([0, 1], [0.0, 1.0]) == pytest.approx(-math.log1p(-1e-15), abs=1e-14)


def test_rf_bad_input():
    rng = np.random.default_rng(8)
    with pytest.raises(DeepsnowError, match="at least 2 per class per fold"):
        rf_two_sample_test(rng.normal(size=(3, 4)), rng.normal(size=(10, 4)), repeats=1)
    with pytest.raises(DeepsnowError, match="NaN"):
        rf_two_sample_test(np.full((10, 4), np.nan), rng.normal(size=(10, 4)), repeats=1)
    with pytest.raises(DeepsnowError, match="does not match"):
        rf_two_sample_test(rng.normal(size=(10, 4)), rng.normal(size=(10, 5)), repeats=1)


# ---------------------------------------------------------------- paired errors


def test_paired_errors_and_pairing_by_ids():
    rng = np.random.default_rng(9)
    truth = rng.integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    same = paired_errors(truth, truth)
    assert same["paired_l1"] == 0.0 and same["paired_ssim"] == pytest.approx(1.0)
    shifted = np.clip(truth.astype(int) + 10, 0, 255).astype(np.uint8)
    r = paired_errors(shifted, truth)
    expected = np.abs(shifted.astype(int) - truth.astype(int)).mean() / 255
    assert r["paired_l1"] == pytest.approx(expected) and r["paired_ssim"] < 1.0
    water = np.zeros((3, 16, 16), bool)
    water[0, :4] = True
    r = paired_errors(shifted, truth, water)
    assert r["paired_l1_water"] == pytest.approx(
        np.abs(shifted[0, :4].astype(int) - truth[0, :4].astype(int)).mean() / 255
    )
    fi, ti = pair_by_ids(["c", "a", "zz"], ["a", "b", "c"])
    assert fi.tolist() == [0, 1] and ti.tolist() == [2, 0]
    with pytest.raises(DeepsnowError, match="equal"):
        paired_errors(truth[:2], truth)


def test_kid_subsets_are_smaller_than_the_sets_so_the_spread_is_real():
    """With the default subset size (1000) and 200 test patches, every 'subset' used to be the whole
    set reshuffled (kid_std ~ 3e-16). Subsets are now at most half the smaller set, in the pipeline
    and in the public API alike, and the size used is in the row."""
    from deepsnow.config import validate_section
    from deepsnow.metrics.distances import kid_subset_size
    from deepsnow.metrics.epoch import _kid

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(200, 16)), rng.normal(0.3, 1.0, size=(200, 16))
    params = validate_section("metrics", {})
    row = _kid(x, y, params)
    assert row["kid_subset_size"] == 100
    assert row["kid_std"] > 1e-3 * abs(row["kid_mean"]) and row["kid_std"] > 1e-8
    # the documented API with its defaults gives the pipeline's answer for the same arrays
    assert kernel_distance(x, y, seed=params["seed"]) == (row["kid_mean"], row["kid_std"])
    assert kernel_distance(x, y)[1] > 1e-9
    assert kid_subset_size(50, 300, 80) == 40 and kid_subset_size(10, 300, 80) == 10
    tiny = _kid(x[:3], y[:10], validate_section("metrics", {"kid_subsets": 5}))  # too few for a spread
    assert tiny["kid_subset_size"] == 3 and math.isnan(tiny["kid_std"]) and math.isfinite(tiny["kid_mean"])
    with pytest.warns(RuntimeWarning, match="too small for distinct subsets"):
        mean, std = kernel_distance(x[:3], y[:10], subsets=5)
    assert math.isnan(std) and mean == tiny["kid_mean"]
