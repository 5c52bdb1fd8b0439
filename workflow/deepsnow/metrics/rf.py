"""The paper's random-forest two-sample test: can a classifier tell real from generated features?

For each repeat r: the larger set is subsampled (seeded) to the size of the
smaller, so classes are balanced and chance level is log loss ln 2 ≈ 0.693,
accuracy 0.5, ROC-AUC 0.5; a stratified, shuffled k-fold split (k = 2) is
drawn; a random forest is fitted on each training fold and scored on the
held-out fold. Fold scores are averaged within a repeat (as
``cross_val_score`` does) and the mean and std over repeats are reported.

Log loss and 0/1 probabilities: forest probabilities are multiples of
1/n_estimators, so exact 0 and 1 are common when the sets are separable, and
a single confidently wrong sample has infinite loss. scikit-learn clips by an
``eps`` that changed over versions (1e-15 before 1.2, dtype eps since, so
36.04 per such sample in float64, 15.94 in float32). We clip explicitly to
[clip, 1 - clip] in float64 with ``clip = 1e-15`` by default: the value the
2020-era scikit-learn (and so, presumably, the paper's Figure 5) used, and
independent of the installed version and of the dtype. Each confidently wrong
sample then costs -ln(1e-15) = 34.54. ``clip`` is a parameter
(``metrics.rf_clip``) for those who prefer a milder cap, e.g. 1e-7 (16.1).
"""

from __future__ import annotations

import math

import numpy as np

from deepsnow import DeepsnowError
from deepsnow.metrics.distances import check_features

DEFAULT_CLIP = 1e-15


def clipped_log_loss(y_true, p_generated, clip: float = DEFAULT_CLIP) -> float:
    """Binary log loss with probabilities clipped to [clip, 1 - clip], in float64."""
    y = np.asarray(y_true, dtype=np.float64)
    p = np.clip(np.asarray(p_generated, dtype=np.float64), clip, 1.0 - clip)
    return float(-np.mean(y * np.log(p) + (1.0 - y) * np.log1p(-p)))


def _fit_fold(x, y, ix, iy, tr, te, n_estimators, rf_seed, clip, max_features):
    from sklearn.metrics import roc_auc_score

    from deepsnow.metrics.forest import fit_forest

    data = np.concatenate([x[ix], y[iy]]).astype(np.float32)
    labels = np.concatenate([np.ones(len(ix), dtype=int), np.zeros(len(iy), dtype=int)])
    # RandomForestClassifier(n_estimators, random_state=rf_seed, max_features) to the bit, faster
    proba = fit_forest(data[tr], labels[tr], n_estimators, rf_seed, max_features)(data[te])
    # column of class 1 (generated, classes in ascending order); a stratified training fold holds both
    p = proba[:, 1]
    yte = labels[te]
    return (
        clipped_log_loss(yte, p, clip),
        float(np.mean((p > 0.5).astype(int) == yte)),
        float(roc_auc_score(yte, p)),
    )


def rf_two_sample_test(
    x,
    y,
    repeats: int = 100,
    folds: int = 2,
    n_estimators: int = 100,
    seed: int = 0,
    n_jobs: int | None = 1,
    clip: float = DEFAULT_CLIP,
    max_features="sqrt",
) -> dict:
    """Random forest real-vs-generated classifier on features x (generated) and y (real).

    Returns a dict with ``logloss_mean``, ``logloss_std``, ``accuracy_mean``,
    ``accuracy_std``, ``auc_mean``, ``auc_std`` (mean and std over repeats of
    the per-repeat fold means), ``n_per_class``, ``repeats``, ``folds``,
    ``n_estimators``, ``clip`` and the per-repeat arrays ``logloss``,
    ``accuracy``, ``auc``. Fits run in parallel over (repeat, fold) with joblib
    (``n_jobs``; -1 = all cores); each forest uses one core.
    """
    x = check_features(x, "x (generated)", min_n=1)
    y = check_features(y, "y (real)", min_n=1, dim=x.shape[1])
    if repeats < 1 or n_estimators < 1:
        raise DeepsnowError(f"rf_two_sample_test: repeats ({repeats}) and n_estimators ({n_estimators}) must be >= 1")
    if folds < 2:
        raise DeepsnowError(f"rf_two_sample_test: folds must be >= 2, got {folds}")
    if not 0 < clip < 0.5:
        raise DeepsnowError(f"rf_two_sample_test: clip must be in (0, 0.5), got {clip}")
    n = min(len(x), len(y))
    if n < 2 * folds:
        raise DeepsnowError(
            f"rf_two_sample_test: {len(x)} generated and {len(y)} real samples; {folds}-fold cross-validation "
            f"needs at least 2 per class per fold, i.e. {2 * folds} per class"
        )
    from joblib import Parallel, delayed
    from sklearn.model_selection import StratifiedKFold

    tasks = []
    labels = np.concatenate([np.ones(n, dtype=int), np.zeros(n, dtype=int)])
    for r in range(repeats):
        rng = np.random.default_rng([seed, r])
        ix = np.sort(rng.choice(len(x), n, replace=False)) if len(x) > n else np.arange(n)
        iy = np.sort(rng.choice(len(y), n, replace=False)) if len(y) > n else np.arange(n)
        skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=int(rng.integers(2**31 - 1)))
        for k, (tr, te) in enumerate(skf.split(np.zeros((2 * n, 1)), labels)):
            tasks.append((r, k, ix, iy, tr, te, int(rng.integers(2**31 - 1))))
    xf = x.astype(np.float32)
    yf = y.astype(np.float32)
    results = Parallel(n_jobs=n_jobs if n_jobs not in (None, 0) else 1)(
        delayed(_fit_fold)(xf, yf, ix, iy, tr, te, n_estimators, rs, clip, max_features)
        for (_, _, ix, iy, tr, te, rs) in tasks
    )
    per = np.zeros((repeats, folds, 3))
    for (r, k, *_), res in zip(tasks, results):
        per[r, k] = res
    rep = per.mean(axis=1)
    out = {
        "n_per_class": n,
        "repeats": repeats,
        "folds": folds,
        "n_estimators": n_estimators,
        "clip": clip,
        "chance_logloss": math.log(2.0),
    }
    for j, key in enumerate(("logloss", "accuracy", "auc")):
        out[f"{key}_mean"] = float(rep[:, j].mean())
        out[f"{key}_std"] = float(rep[:, j].std())
        out[key] = rep[:, j].copy()
    return out
