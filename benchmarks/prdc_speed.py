"""Speed and peak memory of precision/recall/density/coverage: deepsnow's blocked computation
(:func:`deepsnow.metrics.prdc_scores`) against the authors' package (PyPI ``prdc`` 0.2,
``compute_prdc``, which holds the N x N, M x M and N x M distance matrices at once), in the same
run on the same features.

Real and generated features: N and M samples of two overlapping Gaussians in D dimensions
(float64). Prints per side the time, the peak memory traced by ``tracemalloc`` beyond the inputs
(NumPy reports its allocations to it, from every thread), the ratios reference / deepsnow, and
the largest difference of the four scores. The reference computes distances with scikit-learn's
``pairwise_distances(n_jobs=8)`` (threads); set OMP_NUM_THREADS to pin the BLAS threads of both.

Usage: python benchmarks/prdc_speed.py [--n 10000] [--m N] [--dim 64] [--k 5] [--chunk 4194304]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import time
import tracemalloc

import numpy as np


def features(n: int, m: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Real N(0, I) and generated features shifted by 1 in total and a little wider."""
    rng = np.random.default_rng(seed)
    real = rng.normal(size=(n, dim))
    fake = rng.normal(1 / np.sqrt(dim), 1 + 1 / np.sqrt(dim), size=(m, dim))
    return real, fake


def measure(fn, *args, **kwargs) -> tuple[dict, float, int]:
    """fn's result (as floats), wall seconds and traced peak bytes."""
    tracemalloc.start()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # the reference prints the set sizes
        out = fn(*args, **kwargs)
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {k: float(v) for k, v in out.items()}, seconds, peak


def main(argv=None) -> None:
    from prdc import compute_prdc

    from deepsnow.metrics.prdc import CHUNK, prdc_scores

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000, help="real samples N (default 10,000)")
    ap.add_argument("--m", type=int, default=None, help="generated samples M (default N)")
    ap.add_argument("--dim", type=int, default=64, help="feature dimension D (default 64)")
    ap.add_argument("--k", type=int, default=5, help="nearest neighbours (default 5)")
    ap.add_argument("--chunk", type=int, default=CHUNK, help=f"distances per block (default {CHUNK})")
    args = ap.parse_args(argv)
    real, fake = features(args.n, args.m or args.n, args.dim)
    print(f"N = {len(real)}, M = {len(fake)}, D = {args.dim}, k = {args.k}, chunk = {args.chunk} distances")
    ours, t_ours, m_ours = measure(prdc_scores, real, fake, k=args.k, chunk=args.chunk)
    ref, t_ref, m_ref = measure(compute_prdc, real_features=real, fake_features=fake, nearest_k=args.k)
    mib = 1 << 20
    print(f"{'':10s} {'seconds':>9s} {'peak MiB':>9s}   " + "  ".join(f"{k:>9s}" for k in ours))
    for name, s, t, mem in (("deepsnow", ours, t_ours, m_ours), ("prdc 0.2", ref, t_ref, m_ref)):
        print(f"{name:10s} {t:9.2f} {mem / mib:9.1f}   " + "  ".join(f"{s[k]:9.6f}" for k in ours))
    print(f"ratio prdc / deepsnow: time {t_ref / t_ours:.2f}x, peak memory {m_ref / max(m_ours, 1):.1f}x")
    print(f"largest score difference: {max(abs(ours[k] - ref[k]) for k in ours):.3g}")


if __name__ == "__main__":
    main()
