"""Improved precision and recall (Kynkäänniemi et al. 2019), density and coverage (Naeem et al. 2020)
of generated features against real ones, from k-nearest-neighbour balls.

Every real sample X_i has a radius r(X_i), the distance to its k-th nearest other real sample, and
every generated sample Y_j a radius r(Y_j) among the generated ones. Then

* precision: the share of the Y_j inside at least one real ball (fidelity);
* recall: the share of the X_i inside at least one generated ball (diversity);
* density: how many real balls hold a Y_j, on average, over k (fidelity; about 1 for equal distributions);
* coverage: the share of the X_i whose ball holds at least one Y_j (diversity; robust to outliers).

"Inside" is strict (d < r), as in the authors' reference implementation (PyPI ``prdc`` 0.2), so the
two agree on the same features. Unlike the reference, which holds three full distance matrices, the
distances are computed in blocks of rows of at most ``chunk`` float64 values: memory is
O((N + M) * D + chunk), about 100 MB for N = M = 10,000 with the default.
"""

from __future__ import annotations

import numpy as np

from deepsnow import DeepsnowError
from deepsnow.metrics.distances import check_features

#: distances held at once (float64): 32 MiB per block
CHUNK = 1 << 22


def _row_blocks(n_rows: int, n_cols: int, chunk: int):
    """Row slices of an n_rows x n_cols matrix, each block at most ``chunk`` values (at least one row)."""
    step = max(1, chunk // max(1, n_cols))
    for start in range(0, n_rows, step):
        yield slice(start, min(start + step, n_rows))


def _distances(a, a_sq, b, b_sq) -> np.ndarray:
    """Euclidean distances between the rows of ``a`` and ``b``: sqrt(|a|² + |b|² − 2 a·b), float64,
    the squares clipped at 0 (round-off can make them slightly negative for near-identical rows)."""
    d = a @ b.T
    d *= -2.0
    d += a_sq[:, None]
    d += b_sq[None, :]
    np.maximum(d, 0.0, out=d)
    return np.sqrt(d, out=d)


def knn_radii(x: np.ndarray, k: int, chunk: int = CHUNK) -> np.ndarray:
    """Distance from each row of ``x`` to its k-th nearest other row, in row blocks."""
    sq = np.einsum("ij,ij->i", x, x)
    radii = np.empty(len(x))
    for s in _row_blocks(len(x), len(x), chunk):
        d = _distances(x[s], sq[s], x, sq)
        # a row's distance to itself is exactly 0, so the (k+1)-th smallest is the k-th neighbour
        d[np.arange(s.stop - s.start), np.arange(s.start, s.stop)] = 0.0
        d.partition(k, axis=1)
        radii[s] = d[:, k]
    return radii


def _ball_counts(x, y, r_x, r_y, chunk: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One pass over the real x generated distances, in blocks of real rows: per generated sample the
    number of real balls holding it; per real sample whether a generated ball holds it (recall) and
    whether its own ball holds its nearest generated sample (coverage)."""
    x_sq, y_sq = np.einsum("ij,ij->i", x, x), np.einsum("ij,ij->i", y, y)
    held = np.zeros(len(y), dtype=np.int64)
    recalled = np.zeros(len(x), dtype=bool)
    covered = np.zeros(len(x), dtype=bool)
    for s in _row_blocks(len(x), len(y), chunk):
        d = _distances(x[s], x_sq[s], y, y_sq)
        held += np.count_nonzero(d < r_x[s, None], axis=0)
        recalled[s] = (d < r_y[None, :]).any(axis=1)
        covered[s] = d.min(axis=1) < r_x[s]
    return held, recalled, covered


def _check_k(k, n_real: int, n_fake: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise DeepsnowError(f"prdc: k (nearest neighbours) must be an integer >= 1, got {k!r}")
    for name, n in (("real", n_real), ("generated", n_fake)):
        if k >= n:
            raise DeepsnowError(
                f"prdc: k = {k} nearest neighbours need more than k samples, but the {name} features hold {n}"
            )
    return int(k)


def prdc_scores(real, fake, k: int = 5, chunk: int = CHUNK) -> dict[str, float]:
    """Precision, recall, density and coverage of ``fake`` (M x D) against ``real`` (N x D), k neighbours."""
    x = check_features(real, "real", min_n=1)
    y = check_features(fake, "generated", min_n=1, dim=x.shape[1])
    k = _check_k(k, len(x), len(y))
    if not (isinstance(chunk, int) and chunk >= 1):
        raise DeepsnowError(f"prdc: chunk must be a positive integer, got {chunk!r}")
    # distances do not change under a shift; centring on the real mean shrinks the norms, and with
    # them the cancellation in |a|² + |b|² − 2 a·b
    centre = x.mean(axis=0)
    x, y = x - centre, y - centre
    r_x, r_y = knn_radii(x, k, chunk), knn_radii(y, k, chunk)
    held, recalled, covered = _ball_counts(x, y, r_x, r_y, chunk)
    return {
        "precision": float(np.mean(held > 0)),
        "recall": float(np.mean(recalled)),
        "density": float(held.sum() / (k * len(y))),
        "coverage": float(np.mean(covered)),
    }
