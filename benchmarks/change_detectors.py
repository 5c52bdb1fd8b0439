"""Speed and peak memory of the change detectors (deepsnow.change.detectors) against a baseline.

The four detectors on N co-registered pixel pairs of 3 uint8 bands (the RGB products; a full
Sentinel-2 tile is 10980^2 = 120.6 M pixels, ``--pixels 120560400``; the default is a tenth of
it so the baseline fits in memory on a small machine), against a plain loop-free NumPy
implementation written the obvious way (whole arrays cast to float64, ``np.cov``,
``np.linalg.inv``, one ``einsum`` per quadratic form), measured in the same run on the same data.
Prints per detector: both times, the ratio baseline / deepsnow, the peak memory traced by
``tracemalloc`` (NumPy reports its allocations to it) beyond the inputs, and the largest
relative difference of the scores.

Usage: python benchmarks/change_detectors.py [--pixels 12056040] [--chunk 1048576]
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np


def pixel_pairs(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Correlated uint8 RGB before/after pairs: a linear pervasive change plus noise."""
    rng = np.random.default_rng(seed)
    x = np.empty((n, 3), np.uint8)
    y = np.empty((n, 3), np.uint8)
    mix = np.array([[1.0, 0.3, 0.1], [0.2, 1.0, 0.3], [0.1, 0.2, 1.0]])
    for s in range(0, n, 1 << 22):  # generated in blocks: the generator's floats stay small
        m = min(n, s + (1 << 22)) - s
        base = rng.normal(100.0, 30.0, size=(m, 3))
        x[s : s + m] = np.clip(base, 0, 255)
        y[s : s + m] = np.clip(base @ mix.T * 0.8 + 60.0 + rng.normal(0, 8.0, size=(m, 3)), 0, 255)
    return x, y


def _q(v, s):
    return np.einsum("ij,jk,ik->i", v, np.linalg.inv(s), v)


def base_rx(x, y):
    e = y.astype(np.float64) - x.astype(np.float64)
    e = e - e.mean(axis=0)
    return _q(e, np.cov(e, rowvar=False, bias=True))


def base_chronochrome(x, y):
    x, y = x.astype(np.float64), y.astype(np.float64)
    x, y = x - x.mean(axis=0), y - y.mean(axis=0)
    d = x.shape[1]
    z = np.cov(np.concatenate([x, y], axis=1), rowvar=False, bias=True)
    X, C, Y = z[:d, :d], z[d:, :d], z[d:, d:]
    gain = C @ np.linalg.inv(X)
    return _q(y - x @ gain.T, Y - gain @ C.T)


def _isqrt(s):
    w, u = np.linalg.eigh(s)
    return (u / np.sqrt(w)) @ u.T


def base_covariance_equalization(x, y):
    x, y = x.astype(np.float64), y.astype(np.float64)
    x, y = x - x.mean(axis=0), y - y.mean(axis=0)
    e = y @ _isqrt(np.cov(y, rowvar=False, bias=True)) - x @ _isqrt(np.cov(x, rowvar=False, bias=True))
    e = e - e.mean(axis=0)
    return _q(e, np.cov(e, rowvar=False, bias=True))


def base_hyperbolic(x, y):
    x, y = x.astype(np.float64), y.astype(np.float64)
    z = np.concatenate([x, y], axis=1)
    z = z - z.mean(axis=0)
    d = x.shape[1]
    s = np.cov(z, rowvar=False, bias=True)
    return _q(z, s) - _q(z[:, :d], s[:d, :d]) - _q(z[:, d:], s[d:, d:])


BASELINES = {
    "rx_difference": base_rx,
    "chronochrome": base_chronochrome,
    "covariance_equalization": base_covariance_equalization,
    "hyperbolic_acd": base_hyperbolic,
}


def measured(fn, *args):
    """(result, seconds, peak MB traced during the call)."""
    tracemalloc.start()
    t = time.perf_counter()
    out = fn(*args)
    elapsed = time.perf_counter() - t
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return out, elapsed, peak


def main() -> None:
    from deepsnow.change import detectors

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pixels", type=int, default=12_056_040, help="pixel pairs (default: a tenth of a 10980 px tile)")
    p.add_argument("--chunk", type=int, default=detectors.CHUNK, help="deepsnow's rows per chunk")
    args = p.parse_args()
    x, y = pixel_pairs(args.pixels)
    print(f"== change detectors, {args.pixels:,} pixel pairs x 3 uint8 bands "
          f"({args.pixels / 120_560_400:.1%} of a 10980 px tile); inputs {2 * x.nbytes / 2**20:.0f} MB ==")
    print(f"{'detector':>24} {'baseline s':>11} {'deepsnow s':>11} {'ratio':>6} {'base peak MB':>13} "
          f"{'deepsnow peak MB':>17} {'max rel diff':>13}")
    for name, fn in detectors.DETECTORS.items():
        ours, t_ours, m_ours = measured(lambda a, b: fn(a, b, chunk=args.chunk), x, y)
        base, t_base, m_base = measured(BASELINES[name], x, y)
        diff = float(np.max(np.abs(ours - base)) / np.max(np.abs(base)))
        del base
        print(f"{name:>24} {t_base:>11.2f} {t_ours:>11.2f} {t_base / t_ours:>5.2f}x {m_base:>13.0f} "
              f"{m_ours:>17.0f} {diff:>13.1e}")
        del ours


if __name__ == "__main__":
    main()
