"""Covariance-based anomalous change detectors (Theiler & Perkins 2006; Theiler 2008).

Every detector takes co-registered pixel pairs ``x`` (before, ``(N, dx)``) and ``y``
(after, ``(N, dy)``) and returns ``(N,)`` float64 anomaly scores, larger = more
anomalous. Statistics are global (the whole pixel set): means, covariances
``X = <x x^T>``, ``Y = <y y^T>``, cross-covariance ``C = <y x^T>``, all float64 and
mean-subtracted. ``q(v; S) = v^T S^-1 v``.

- ``rx_difference``: ``e = y - x``, ``A = q(e; <e e^T>)`` (needs dx = dy);
- ``chronochrome``: ``r = y - C X^-1 x``, ``A = q(r; Y - C X^-1 C^T)``;
- ``covariance_equalization``: ``e = Y^-1/2 y - X^-1/2 x`` (symmetric square roots),
  ``A = q(e; <e e^T>)``;
- ``hyperbolic_acd``: ``A = q([x; y]; Z) - q(x; X) - q(y; Y)``.

Ridge: every covariance ``S`` (d x d) is inverted as ``S + eps I`` with
``eps = RIDGE * trace(S) / d`` (``RIDGE = 1e-10``: below float64 rounding for any
covariance of condition number up to ~1e6, so well-posed scores are unchanged), so a singular covariance (a band
constant over the pixels, or a difference that vanishes) stays invertible. A
covariance whose trace is zero, or below ``ZERO = 1e-12`` times the trace of the inputs'
covariances (all pixels identical up to rounding: the difference of two identical
images, or the chronochrome residual of an exact ``y = A x + b``), has no scale at
all: its quadratic form is defined as 0 for every pixel (nothing is anomalous about a
change that is the same everywhere).

Statistics are accumulated over row chunks (``chunk`` pixels at a time) and the
scores computed chunk by chunk, so memory is O(chunk * d) beyond the inputs and the
output. Callers with uint8/uint16 rasters can pass them as they are; values are cast
to float64 per chunk.
"""

from __future__ import annotations

import numpy as np

from deepsnow import DeepsnowError

RIDGE = 1e-10
ZERO = 1e-12
CHUNK = 1 << 20


def _check(x, y, same_dim=False) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise DeepsnowError(
            f"change detectors need pixel arrays (N, d) of equal N; got {x.shape} and {y.shape}"
        )
    if x.shape[0] < 2:
        raise DeepsnowError(f"change detectors need at least 2 pixels; got {x.shape[0]}")
    if same_dim and x.shape[1] != y.shape[1]:
        raise DeepsnowError(
            f"this detector needs the same bands before and after; got {x.shape[1]} and {y.shape[1]}"
        )
    return x, y


def moments(v, chunk: int = CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """Mean (d,) and covariance (d, d) of rows of ``v`` (float64, chunked, 1/N)."""
    n, d = v.shape
    total = np.zeros(d)
    for s in range(0, n, chunk):
        total += v[s : s + chunk].sum(axis=0, dtype=np.float64)
    mean = total / n
    cov = np.zeros((d, d))
    for s in range(0, n, chunk):
        c = v[s : s + chunk].astype(np.float64) - mean
        cov += c.T @ c
    return mean, cov / n


def regularised_inverse(cov: np.ndarray, scale: float = 0.0) -> np.ndarray | None:
    """``(S + eps I)^-1`` with the trace-scaled ridge.

    None when ``trace(S) <= ZERO * scale`` (``scale``: the inputs' total variance).
    """
    d = cov.shape[0]
    tr = float(np.trace(cov))
    if not np.isfinite(tr):
        raise DeepsnowError("covariance is not finite (NaN or infinite pixel values)")
    if tr <= ZERO * scale:
        return None
    return np.linalg.inv(cov + (RIDGE * tr / d) * np.eye(d))


def inverse_sqrt(cov: np.ndarray) -> np.ndarray | None:
    """Symmetric ``(S + eps I)^-1/2``; None when ``trace(S) == 0``."""
    d = cov.shape[0]
    tr = float(np.trace(cov))
    if tr <= 0.0:
        return None
    w, v = np.linalg.eigh(cov + (RIDGE * tr / d) * np.eye(d))
    return (v / np.sqrt(w)) @ v.T


def _quad(v: np.ndarray, inv: np.ndarray | None) -> np.ndarray:
    """Row-wise ``v_i^T inv v_i``; zeros when ``inv`` is None (zero-scale covariance)."""
    if inv is None:
        return np.zeros(v.shape[0])
    return np.einsum("ij,jk,ik->i", v, inv, v, optimize=True)


def _apply(n: int, chunk: int, score_chunk) -> np.ndarray:
    out = np.empty(n)
    for s in range(0, n, chunk):
        out[s : s + chunk] = score_chunk(slice(s, min(n, s + chunk)))
    return out


def _transformed_moments(n, chunk, transform) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (1/N) of ``transform(slice)`` rows, chunk by chunk.

    Sums are taken about the first chunk's mean (a shifted one-pass estimate), which
    keeps the float64 covariance accurate when the mean is large against the spread.
    """
    first = transform(slice(0, min(n, chunk)))
    shift = first.mean(axis=0)
    d = first.shape[1]
    total, outer = np.zeros(d), np.zeros((d, d))
    for s in range(0, n, chunk):
        t = (first if s == 0 else transform(slice(s, min(n, s + chunk)))) - shift
        total += t.sum(axis=0)
        outer += t.T @ t
    centred = total / n
    return shift + centred, outer / n - np.outer(centred, centred)


def rx_difference(x, y, chunk: int = CHUNK) -> np.ndarray:
    """RX (Mahalanobis norm) of the difference ``y - x``."""
    x, y = _check(x, y, same_dim=True)
    n = x.shape[0]

    def diff(sl):
        return y[sl].astype(np.float64) - x[sl]

    mean, cov = _transformed_moments(n, chunk, diff)
    scale = np.trace(moments(x, chunk)[1]) + np.trace(moments(y, chunk)[1])
    inv = regularised_inverse(cov, scale)
    return _apply(n, chunk, lambda sl: _quad(diff(sl) - mean, inv))


def chronochrome(x, y, chunk: int = CHUNK) -> np.ndarray:
    """Residual of the least-squares prediction of ``y`` from ``x``, Mahalanobis-normed."""
    x, y = _check(x, y)
    n, dx = x.shape
    mean, cov = _transformed_moments(n, chunk, lambda sl: _joint(x, y, sl))
    mx, my = mean[:dx], mean[dx:]
    X, C, Y = cov[:dx, :dx], cov[dx:, :dx], cov[dx:, dx:]
    xinv = regularised_inverse(X)
    gain = np.zeros((Y.shape[0], dx)) if xinv is None else C @ xinv
    R = Y - gain @ C.T
    rinv = regularised_inverse(0.5 * (R + R.T), np.trace(X) + np.trace(Y))

    def residual(sl):
        return (y[sl].astype(np.float64) - my) - (x[sl].astype(np.float64) - mx) @ gain.T

    return _apply(n, chunk, lambda sl: _quad(residual(sl), rinv))


def covariance_equalization(x, y, chunk: int = CHUNK) -> np.ndarray:
    """Difference of the whitened images, Mahalanobis-normed."""
    x, y = _check(x, y, same_dim=True)
    n, d = x.shape
    mx, X = moments(x, chunk)
    my, Y = moments(y, chunk)
    wx, wy = inverse_sqrt(X), inverse_sqrt(Y)
    wx = np.zeros((d, d)) if wx is None else wx
    wy = np.zeros((d, d)) if wy is None else wy

    def diff(sl):
        return (y[sl].astype(np.float64) - my) @ wy - (x[sl].astype(np.float64) - mx) @ wx

    mean, cov = _transformed_moments(n, chunk, diff)
    inv = regularised_inverse(cov, 2.0 * d)
    return _apply(n, chunk, lambda sl: _quad(diff(sl) - mean, inv))


def _joint(x, y, sl) -> np.ndarray:
    return np.concatenate([x[sl].astype(np.float64), y[sl].astype(np.float64)], axis=1)


def hyperbolic_acd(x, y, chunk: int = CHUNK) -> np.ndarray:
    """Joint RX of ``[x; y]`` minus the RX of ``x`` and of ``y``."""
    x, y = _check(x, y)
    n, dx = x.shape
    mean, Z = _transformed_moments(n, chunk, lambda sl: _joint(x, y, sl))
    zinv = regularised_inverse(Z)
    xinv = regularised_inverse(Z[:dx, :dx])
    yinv = regularised_inverse(Z[dx:, dx:])

    def score(sl):
        z = _joint(x, y, sl) - mean
        return _quad(z, zinv) - _quad(z[:, :dx], xinv) - _quad(z[:, dx:], yinv)

    return _apply(n, chunk, score)


DETECTORS = {
    "rx_difference": rx_difference,
    "chronochrome": chronochrome,
    "covariance_equalization": covariance_equalization,
    "hyperbolic_acd": hyperbolic_acd,
}
