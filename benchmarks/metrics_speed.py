"""Speed and agreement of the metrics against their baselines, measured in the same run.

1. Fréchet distance at D = 2048: ``deepsnow.metrics`` (symmetric-eigh form on the
   covariances, and the sample-space form used automatically when N*M <= D²)
   against pytorch-fid's formula with ``scipy.linalg.sqrtm`` (time ratio and
   relative difference).
2. Cosine ResNet distance: closed form (mean of unit vectors) against the
   all-pairs N x M cosine matrix, N = M = 5000, D = 2048.
3. Random-forest two-sample test: one epoch's cost at N per class (500) and
   D = 2048, against scikit-learn's ``cross_validate`` with
   ``RepeatedStratifiedKFold`` on the same data. Runs ``--rf-repeats`` repeats
   (default 5) and extrapolates linearly to ``--rf-target-repeats`` (100).

Usage: python benchmarks/metrics_speed.py [--quick] [--dim 2048] ...
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np


def timed(fn, *args, **kwargs):
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t


def sqrtm_fd(x, y):
    """pytorch-fid's calculate_frechet_distance (np.cov + scipy sqrtm), the baseline."""
    import scipy.linalg

    mu1, s1 = x.mean(0), np.cov(x, rowvar=False)
    mu2, s2 = y.mean(0), np.cov(y, rowvar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        covmean = scipy.linalg.sqrtm(s1.dot(s2))
    if not np.isfinite(covmean).all():
        off = np.eye(s1.shape[0]) * 1e-6
        covmean = scipy.linalg.sqrtm((s1 + off).dot(s2 + off))
    covmean = np.real(covmean)
    d = mu1 - mu2
    return float(d @ d + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def features(rng, n, d, shift=0.0):
    """ReLU-like correlated features, as CNN pool outputs are."""
    mix = rng.normal(size=(64, d)) / 8
    z = rng.normal(size=(n, 64)) @ mix + rng.normal(size=(n, d)) * 0.5 + shift
    return np.maximum(z, 0).astype(np.float32)


def bench_frechet(args, rng):
    from deepsnow.metrics import frechet_distance

    print(f"\n== Fréchet distance, D = {args.dim} (baseline: np.cov + scipy.linalg.sqrtm, pytorch-fid) ==")
    print(f"{'N=M':>6} {'sqrtm s':>9} {'eigh s':>8} {'samples s':>10} {'auto':>8} {'eigh x':>7} {'auto x':>7} {'rel diff eigh':>14} {'rel diff auto':>14}")
    for n in args.fd_n:
        x = features(rng, n, args.dim)
        y = features(rng, n, args.dim, shift=0.05)
        base, tb = timed(sqrtm_fd, x, y)
        fe, te = timed(frechet_distance, x, y, method="eigh")
        fs, ts = (timed(frechet_distance, x, y, method="samples") if n <= 2 * args.dim else (float("nan"), float("nan")))
        auto = "samples" if n * n <= args.dim**2 else "eigh"
        ta = ts if auto == "samples" else te
        fa = fs if auto == "samples" else fe
        print(
            f"{n:>6} {tb:>9.2f} {te:>8.2f} {ts:>10.3f} {auto:>8} {tb / te:>6.1f}x {tb / ta:>6.1f}x "
            f"{abs(fe - base) / base:>14.2e} {abs(fa - base) / base:>14.2e}"
        )


def bench_crd(args, rng):
    from deepsnow.metrics import mean_cosine_similarity

    n, d = args.crd_n, args.dim
    print(f"\n== Cosine ResNet distance, N = M = {n}, D = {d} (baseline: all-pairs N x M cosine matrix) ==")
    x = features(rng, n, d).astype(np.float64)
    y = features(rng, n, d, shift=0.05).astype(np.float64)

    def all_pairs(a, b):
        a = a / np.linalg.norm(a, axis=1, keepdims=True)
        b = b / np.linalg.norm(b, axis=1, keepdims=True)
        return float((a @ b.T).mean())

    base, tb = timed(all_pairs, x, y)
    ours, to = timed(mean_cosine_similarity, x, y)
    print(f"all-pairs {tb:.3f} s, closed form {to:.4f} s: {tb / to:.0f}x faster; |difference| {abs(ours - base):.2e}")


def bench_rf(args, rng):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import make_scorer
    from sklearn.model_selection import RepeatedStratifiedKFold, cross_validate

    from deepsnow.metrics import clipped_log_loss, rf_two_sample_test

    n, d, r = args.rf_n, args.dim, args.rf_repeats
    jobs = args.n_jobs
    print(
        f"\n== RF two-sample test, {n} per class, D = {d}, 2 folds x {r} repeats, {args.rf_trees} trees, n_jobs {jobs} "
        f"(baseline: sklearn cross_validate + RepeatedStratifiedKFold) =="
    )
    x = features(rng, n, d)
    y = features(rng, n, d, shift=0.05)
    # start the worker pool and import scikit-learn in the workers outside the timings
    rf_two_sample_test(x[:20, :8], y[:20, :8], repeats=4, n_estimators=2, n_jobs=jobs)
    res, to = timed(rf_two_sample_test, x, y, repeats=r, n_estimators=args.rf_trees, seed=0, n_jobs=jobs)
    data = np.concatenate([x, y])
    labels = np.r_[np.ones(n, int), np.zeros(n, int)]
    scoring = {
        "logloss": make_scorer(clipped_log_loss, response_method="predict_proba", greater_is_better=True),
        "accuracy": "accuracy",
        "auc": "roc_auc",
    }
    cv = RepeatedStratifiedKFold(n_splits=2, n_repeats=r, random_state=0)
    base, tb = timed(
        cross_validate,
        RandomForestClassifier(n_estimators=args.rf_trees, random_state=0),
        data,
        labels,
        cv=cv,
        scoring=scoring,
        n_jobs=jobs,
    )
    scale = args.rf_target_repeats / r
    print(
        f"deepsnow {to:.1f} s, sklearn {tb:.1f} s (ratio {tb / to:.2f}); per fit {to / (2 * r):.2f} s; "
        f"extrapolated to {args.rf_target_repeats} repeats: {to * scale:.0f} s per epoch and direction"
    )
    print(
        f"log loss {res['logloss_mean']:.4f} ± {res['logloss_std']:.4f} (sklearn {np.mean(base['test_logloss']):.4f}), "
        f"accuracy {res['accuracy_mean']:.3f} (sklearn {np.mean(base['test_accuracy']):.3f}), "
        f"AUC {res['auc_mean']:.3f} (sklearn {np.mean(base['test_auc']):.3f})"
    )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dim", type=int, default=2048, help="feature dimension (default 2048)")
    p.add_argument("--fd-n", type=int, nargs="+", default=[500, 5000], help="set sizes for the Fréchet benchmark")
    p.add_argument("--crd-n", type=int, default=5000, help="set size for the CRD benchmark")
    p.add_argument("--rf-n", type=int, default=500, help="samples per class for the RF benchmark")
    p.add_argument("--rf-repeats", type=int, default=5, help="repeats actually run (extrapolated to --rf-target-repeats)")
    p.add_argument("--rf-target-repeats", type=int, default=100)
    p.add_argument("--rf-trees", type=int, default=100)
    p.add_argument("--n-jobs", type=int, default=-1, help="parallel RF fits (default all cores)")
    p.add_argument("--skip", nargs="*", default=[], choices=["fd", "crd", "rf"])
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.quick:
        args.dim, args.fd_n, args.crd_n, args.rf_n, args.rf_repeats = 256, [100, 600], 500, 50, 1
    print(f"CPU cores visible: {os.cpu_count()}, numpy {np.__version__}")
    rng = np.random.default_rng(args.seed)
    if "fd" not in args.skip:
        bench_frechet(args, rng)
    if "crd" not in args.skip:
        bench_crd(args, rng)
    if "rf" not in args.skip:
        bench_rf(args, rng)


if __name__ == "__main__":
    main()
