"""Precision, recall, density and coverage: the authors' package, a brute-force oracle, Naeem et al.'s
sanity case, and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from deepsnow import DeepsnowError
from deepsnow.metrics import knn_radii, prdc_scores

KEYS = ("precision", "recall", "density", "coverage")


def _brute_force(x, y, k):
    """The four scores from the definitions, with the full distance matrices (exact differences)."""
    def dist(a, b):
        return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=-1))

    r_x = np.sort(dist(x, x), axis=1)[:, k]  # column 0 is the sample itself
    r_y = np.sort(dist(y, y), axis=1)[:, k]
    d = dist(x, y)  # real x generated
    in_real_ball = d < r_x[:, None]
    return {
        "precision": in_real_ball.any(axis=0).mean(),
        "recall": (d < r_y[None, :]).any(axis=1).mean(),
        "density": in_real_ball.sum() / (k * len(y)),
        "coverage": (d.min(axis=1) < r_x).mean(),
    }


def _sets(n, m, dim, seed):
    """Real and generated features that overlap partly (shifted by 1, wider), so no score is trivially 0 or 1."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, dim)), rng.normal(1 / np.sqrt(dim), 1 + 1 / np.sqrt(dim), size=(m, dim))


@pytest.mark.parametrize(
    "n, m, dim, k", [(40, 40, 2, 1), (200, 150, 16, 5), (120, 300, 64, 10), (301, 97, 5, 3), (500, 500, 512, 5)]
)
def test_equals_the_authors_prdc_package(n, m, dim, k, capsys):
    prdc = pytest.importorskip("prdc")
    x, y = _sets(n, m, dim, seed=n + m + dim + k)
    ref = prdc.compute_prdc(real_features=x, fake_features=y, nearest_k=k)
    ours = prdc_scores(x, y, k=k)
    assert set(ours) == set(KEYS)
    for key in KEYS:
        assert ours[key] == pytest.approx(float(ref[key]), abs=1e-6), key
    assert 0 < ours["precision"] < 1 and 0 < ours["coverage"] < 1  # the case is not degenerate


@pytest.mark.parametrize("chunk", [1, 7, 150, 10**9])
def test_chunked_equals_brute_force(chunk):
    """Any block size (one row, odd blocks that leave a remainder, the whole matrix) gives the definitions' values."""
    x, y = _sets(130, 90, 6, seed=3)
    want = _brute_force(x, y, 4)
    got = prdc_scores(x, y, k=4, chunk=chunk)
    for key in KEYS:
        assert got[key] == pytest.approx(want[key], abs=1e-12), key


def test_radii_are_the_kth_nearest_other_sample():
    x = np.random.default_rng(1).normal(size=(60, 3))
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)  # self excluded
    for k in (1, 2, 5):
        np.testing.assert_allclose(knn_radii(x, k, chunk=13), np.sort(d, axis=1)[:, k - 1], rtol=1e-10)


def test_radii_survive_a_large_offset():
    """Features far from the origin (large norms, small distances) keep their radii: the |a|² + |b|² − 2ab
    identity would cancel there, and the sets are centred first."""
    x, y = _sets(80, 80, 8, seed=5)
    shifted = prdc_scores(x + 1e4, y + 1e4, k=5)
    assert shifted == pytest.approx(_brute_force(x, y, 5), abs=1e-12)


def test_independent_gaussian_samples_give_density_and_coverage_near_one():
    """Naeem et al.'s sanity case, small: two samples of one Gaussian. Density and coverage near 1;
    precision and recall well below 1 even though the distributions are identical."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(1000, 64)), rng.normal(size=(1000, 64))
    s = prdc_scores(x, y, k=5)
    assert 0.85 <= s["density"] <= 1.15 and s["coverage"] >= 0.9, s
    assert s["precision"] < 0.9 and s["recall"] < 0.9, s


def test_identical_sets_are_fully_precise_and_covering():
    x = np.random.default_rng(2).normal(size=(50, 4))
    s = prdc_scores(x, x.copy(), k=3)
    assert s["precision"] == s["recall"] == s["coverage"] == 1.0


@pytest.mark.parametrize(
    "real, fake, k, match",
    [
        ((5, 3), (20, 3), 5, "the real features hold 5"),
        ((20, 3), (5, 3), 5, "the generated features hold 5"),
        ((20, 3), (20, 4), 2, "feature dimension 4 does not match the other set's 3"),
        ((20, 3), (20, 3), 0, "k .* must be an integer >= 1"),
        ((20, 3), (20, 3), 2.5, "k .* must be an integer >= 1"),
        ((20,), (20, 3), 2, "real: features must be a 2-D"),
    ],
)
def test_bad_input_is_refused_naming_what_is_wrong(real, fake, k, match):
    rng = np.random.default_rng(0)
    with pytest.raises(DeepsnowError, match=match):
        prdc_scores(rng.normal(size=real), rng.normal(size=fake), k=k)


def test_non_finite_features_are_refused():
    x = np.random.default_rng(0).normal(size=(20, 3))
    y = x.copy()
    y[4, 1] = np.nan
    with pytest.raises(DeepsnowError, match="generated: features contain NaN"):
        prdc_scores(x, y, k=2)
