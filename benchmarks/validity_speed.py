"""Speed of the validity stage's measuring (issue #29): one set and its bootstrap replicates, the
way before (``set_metrics`` on every replicate's resampled rows, the RF test with scikit-learn's
``RandomForestClassifier``) against now (:func:`deepsnow.validity.run.measure`: the replicates
from Gram and distance matrices computed once, the RF test with :mod:`deepsnow.metrics.forest`),
in the same run on the same features.

Features: the demo's sizes by default (half mode: 25 reference and 26 candidate patches; truth
mode: 51 and 61) with the demo's extractors' dimensions (inception 2048, resnet50 2048, simcover
512), ReLU-like Gaussian features, the candidate shifted a little; the demo's metrics settings
(config.yaml: kid_subsets 50; validity: rf_repeats 1, n_bootstrap 20). Prints per mode the
CPU seconds of both ways (one process, one BLAS thread: pin it with OMP_NUM_THREADS=1 to compare
with the stage, whose sets run one per process; CPU time, unlike wall time, hardly depends on what
else the machine runs), the wall seconds, the ratio of the CPU times and the largest relative difference
of any metric over the value and every replicate (the RF log loss is equal to the bit, the rest
to round-off).

Usage: OMP_NUM_THREADS=1 python benchmarks/validity_speed.py [--bootstrap 20] [--sets 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

DIMS = {"inception": 2048, "resnet50": 2048, "simcover": 512}
#: (reference, candidate) patches of the demo's modes (test B 51, test A 61)
MODES = {"half": (25, 26), "truth": (51, 61)}


def features(rng, n: int, shift: float) -> dict[str, np.ndarray]:
    return {k: np.maximum(rng.normal(shift, 1.0, size=(n, d)), 0).astype(np.float32) for k, d in DIMS.items()}


def sklearn_forest(x, labels, n_estimators, seed, max_features):
    """The forest as before: RandomForestClassifier, fitted and asked through its public API."""
    from sklearn.ensemble import RandomForestClassifier

    rf = RandomForestClassifier(n_estimators=n_estimators, random_state=seed, n_jobs=1, max_features=max_features)
    return rf.fit(x, labels).predict_proba


def before(reference, candidate, params, draws):
    """The validity stage's measure() before issue #29: set_metrics on every replicate's rows."""
    import deepsnow.metrics.forest as forest
    from deepsnow.metrics.epoch import set_metrics
    from deepsnow.validity.run import selected

    fast, forest.fit_forest = forest.fit_forest, sklearn_forest
    try:
        values = selected(set_metrics(reference, candidate, params, 1))
        boots = []
        for ri, ci in draws:
            ref = {k: v[ri] for k, v in reference.items()}
            boots.append(selected(set_metrics(ref, {k: v[ci] for k, v in candidate.items()}, params, 1)))
    finally:
        forest.fit_forest = fast
    return values, boots


def largest_difference(a, b) -> float:
    pairs = [(a[0], b[0]), *zip(a[1], b[1])]
    return max(abs(x[k] - y[k]) / max(abs(y[k]), 1e-12) for x, y in pairs for k in y)


def main(argv=None) -> None:
    from deepsnow.config import validate_section
    from deepsnow.validity.run import measure

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", type=int, default=20, help="replicates per set (validity.n_bootstrap, default 20)")
    ap.add_argument("--sets", type=int, default=1, help="sets per mode (the stage measures 31 per mode)")
    args = ap.parse_args(argv)
    params = validate_section("metrics", {"kid_subsets": 50, "rf_repeats": 1, "n_jobs": 1})
    rng = np.random.default_rng(0)
    warm = features(rng, 12, 0.0)  # imports and first calls outside the timings
    before(warm, warm, params, [])
    measure(warm, warm, params, [])
    head = ("mode", "ref", "cand", "before CPU s", "now CPU s", "(wall s)", "ratio", "largest rel. diff")
    print(" ".join(f"{h:{'<' if i == 0 else '>'}{w}s}" for i, (h, w) in enumerate(zip(head, (6, 4, 4, 12, 9, 13, 6, 18)))))
    for mode, (n_ref, n_cand) in MODES.items():
        reference = features(rng, n_ref, 0.0)
        draws = [(rng.integers(0, n_ref, n_ref), rng.integers(0, n_cand, n_cand)) for _ in range(args.bootstrap)]
        cpu, wall, diff = np.zeros(2), np.zeros(2), 0.0
        for _ in range(args.sets):
            candidate = features(rng, n_cand, 0.1)
            results = []
            for i, way in enumerate((before, measure)):
                c, w = time.process_time(), time.perf_counter()
                results.append(way(reference, candidate, params, draws))
                cpu[i] += time.process_time() - c
                wall[i] += time.perf_counter() - w
            diff = max(diff, largest_difference(results[1], results[0]))
        print(
            f"{mode:6s} {n_ref:4d} {n_cand:4d} {cpu[0]:12.2f} {cpu[1]:9.2f} {wall[0]:6.1f} {wall[1]:6.1f} "
            f"{cpu[0] / cpu[1]:5.1f}x {diff:18.2g}"
        )


if __name__ == "__main__":
    main()
