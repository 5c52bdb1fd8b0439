"""The RF test's forest (deepsnow.metrics.forest) is scikit-learn's RandomForestClassifier to the bit:
same probabilities for the same seed, whatever the max_features rule, labels and sizes."""

from __future__ import annotations

import numpy as np
import pytest

from deepsnow.metrics.forest import fit_forest


@pytest.mark.parametrize(
    "n, dim, seed, max_features, labels",
    [
        (25, 300, 7, "sqrt", (1, 0)),
        (40, 12, 123456, "log2", (1, 0)),
        (18, 16, 5, 0.5, (3, -2)),
        (15, 6, 1, None, (1, 0)),
        (12, 20, 2, 4, (0, 1)),
    ],
)
def test_the_forest_gives_random_forest_classifiers_probabilities(n, dim, seed, max_features, labels):
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(size=(n, dim)), rng.normal(0.3, 1.2, size=(n, dim))])
    y = np.repeat(labels, n)
    train = rng.permutation(2 * n)[: 3 * n // 2]
    rf = RandomForestClassifier(n_estimators=30, random_state=seed, max_features=max_features, n_jobs=1)
    expected = rf.fit(x[train], y[train]).predict_proba(x)
    got = fit_forest(x[train], y[train], n_estimators=30, seed=seed, max_features=max_features)(x)
    assert np.array_equal(got, expected)
