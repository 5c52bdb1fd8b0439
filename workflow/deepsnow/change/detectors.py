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

Statistics come from one pass over row chunks (``chunk`` pixels at a time: the joint
mean and covariance of ``[x; y]``, from which every detector's covariances follow in
closed form), and the scores from a second, so memory is O(chunk * d) beyond the
inputs and the output. Callers with uint8/uint16 rasters can pass them as they are; values are cast
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
    return np.sum((v @ inv) * v, axis=1)


def _apply(n: int, chunk: int, score_chunk) -> np.ndarray:
    out = np.empty(n)
    for s in range(0, n, chunk):
        out[s : s + chunk] = score_chunk(slice(s, min(n, s + chunk)))
    return out


def _joint(x, y, sl) -> np.ndarray:
    return np.concatenate([x[sl].astype(np.float64), y[sl].astype(np.float64)], axis=1)


def joint_moments(x, y, chunk: int = CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (1/N) of the joint pixels ``[x; y]``, in one pass over row chunks.

    Sums are taken about the first chunk's mean (a shifted one-pass estimate), which keeps
    the float64 covariance accurate when the mean is large against the spread. Every
    detector's statistics (``X``, ``Y``, ``C`` and those of differences) follow from these.
    """
    n = x.shape[0]
    first = _joint(x, y, slice(0, min(n, chunk)))
    shift = first.mean(axis=0)
    d = first.shape[1]
    total, outer = np.zeros(d), np.zeros((d, d))
    for s in range(0, n, chunk):
        t = (first if s == 0 else _joint(x, y, slice(s, min(n, s + chunk)))) - shift
        total += t.sum(axis=0)
        outer += t.T @ t
    centred = total / n
    cov = outer / n - np.outer(centred, centred)
    return shift + centred, 0.5 * (cov + cov.T)


def _blocks(mean, cov, dx):
    """(mx, my, X, C, Y) with ``C = <y x^T>`` from the joint moments."""
    return mean[:dx], mean[dx:], cov[:dx, :dx], cov[dx:, :dx], cov[dx:, dx:]


def rx_difference(x, y, chunk: int = CHUNK) -> np.ndarray:
    """RX (Mahalanobis norm) of the difference ``y - x``: ``E = X + Y - C - C^T``."""
    x, y = _check(x, y, same_dim=True)
    mx, my, X, C, Y = _blocks(*joint_moments(x, y, chunk), x.shape[1])
    inv = regularised_inverse(X + Y - C - C.T, np.trace(X) + np.trace(Y))
    me = my - mx

    def score(sl):
        return _quad(y[sl].astype(np.float64) - x[sl] - me, inv)

    return _apply(x.shape[0], chunk, score)


def chronochrome(x, y, chunk: int = CHUNK) -> np.ndarray:
    """Residual of the least-squares prediction of ``y`` from ``x``, Mahalanobis-normed."""
    x, y = _check(x, y)
    mx, my, X, C, Y = _blocks(*joint_moments(x, y, chunk), x.shape[1])
    xinv = regularised_inverse(X)
    gain = np.zeros_like(C) if xinv is None else C @ xinv
    R = Y - gain @ C.T
    rinv = regularised_inverse(0.5 * (R + R.T), np.trace(X) + np.trace(Y))

    def score(sl):
        return _quad((y[sl].astype(np.float64) - my) - (x[sl].astype(np.float64) - mx) @ gain.T, rinv)

    return _apply(x.shape[0], chunk, score)


def covariance_equalization(x, y, chunk: int = CHUNK) -> np.ndarray:
    """Difference of the whitened images ``e = Wy y - Wx x``, Mahalanobis-normed.

    ``E = Wy Y Wy + Wx X Wx - M - M^T`` with ``M = Wy C Wx`` (each term ~I for whitened images).
    """
    x, y = _check(x, y, same_dim=True)
    d = x.shape[1]
    mx, my, X, C, Y = _blocks(*joint_moments(x, y, chunk), d)
    wx, wy = inverse_sqrt(X), inverse_sqrt(Y)
    wx = np.zeros((d, d)) if wx is None else wx
    wy = np.zeros((d, d)) if wy is None else wy
    m = wy @ C @ wx
    inv = regularised_inverse(wy @ Y @ wy + wx @ X @ wx - m - m.T, 2.0 * d)

    def score(sl):
        return _quad((y[sl].astype(np.float64) - my) @ wy - (x[sl].astype(np.float64) - mx) @ wx, inv)

    return _apply(x.shape[0], chunk, score)


def _or_zero(inv: np.ndarray | None, zero: np.ndarray) -> np.ndarray:
    """A zero-scale covariance's form contributes 0 (see the module docstring)."""
    return zero if inv is None else inv


def hyperbolic_acd(x, y, chunk: int = CHUNK) -> np.ndarray:
    """Joint RX of ``[x; y]`` minus the RX of ``x`` and of ``y``.

    One quadratic form per pixel: ``A = z^T (Z^-1 - diag(X^-1, Y^-1)) z``.
    """
    x, y = _check(x, y)
    dx = x.shape[1]
    mean, Z = joint_moments(x, y, chunk)
    zero = np.zeros_like(Z)
    q = _or_zero(regularised_inverse(Z), zero).copy()
    q[:dx, :dx] -= _or_zero(regularised_inverse(Z[:dx, :dx]), zero[:dx, :dx])
    q[dx:, dx:] -= _or_zero(regularised_inverse(Z[dx:, dx:]), zero[dx:, dx:])
    return _apply(x.shape[0], chunk, lambda sl: _quad(_joint(x, y, sl) - mean, q))


DETECTORS = {
    "rx_difference": rx_difference,
    "chronochrome": chronochrome,
    "covariance_equalization": covariance_equalization,
    "hyperbolic_acd": hyperbolic_acd,
}
