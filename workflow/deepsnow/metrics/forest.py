"""scikit-learn's random forest classifier, fitted tree by tree without its per-tree Python overhead.

The RF two-sample test fits thousands of small forests (the validity stage: one per set, bootstrap
replicate and fold). On a hundred samples a tree builds in well under a millisecond, while
``RandomForestClassifier.fit`` spends about two more per tree cloning the estimator (parameter
introspection) and validating the same inputs again. :func:`fit_forest` drives scikit-learn's own
tree builder (``sklearn.tree._tree``, the code ``RandomForestClassifier`` runs) with the forest's
random streams, so its probabilities are those of ``RandomForestClassifier(n_estimators,
random_state=seed, max_features=max_features).fit(x, labels).predict_proba`` bit for bit: the tree
seeds drawn in turn from ``RandomState(seed)``, each tree's bootstrap as sample counts from
``RandomState(tree seed)`` and its feature draws from another ``RandomState(tree seed)``, and the
trees' probabilities summed in order and divided by their number. Those are private modules of the
pinned scikit-learn (pyproject.toml); tests/test_metrics_forest.py checks the equality, so an
upgrade that changes them fails there, not silently.
"""

from __future__ import annotations

import math

import numpy as np

_MAX_INT = np.iinfo(np.int32).max


def n_split_features(max_features, n_features: int) -> int:
    """Features drawn at each split, as scikit-learn's trees read ``max_features``."""
    if max_features is None:
        return n_features
    if max_features == "sqrt":
        return max(1, int(math.sqrt(n_features)))
    if max_features == "log2":
        return max(1, int(math.log2(n_features)))
    if isinstance(max_features, (int, np.integer)):
        return int(max_features)
    return max(1, int(max_features * n_features)) if max_features > 0 else 0


def _tree(x, y, n_classes, max_features: int, tree_seed: int):
    """One fully grown tree (gini, min_samples_split 2, min_samples_leaf 1) on a bootstrap of the rows."""
    from sklearn.tree._criterion import Gini
    from sklearn.tree._splitter import BestSplitter
    from sklearn.tree._tree import DepthFirstTreeBuilder, Tree

    rows = np.random.RandomState(tree_seed).randint(0, len(x), len(x)).astype(np.int32)
    counts = np.bincount(rows, minlength=len(x)).astype(np.float64)
    splitter = BestSplitter(Gini(1, n_classes), max_features, 1, 0.0, np.random.RandomState(tree_seed), None)
    tree = Tree(x.shape[1], n_classes, 1)
    DepthFirstTreeBuilder(splitter, 2, 1, 0.0, _MAX_INT, 0.0).build(tree, x, y, counts, None)
    return tree


def fit_forest(x, labels, n_estimators: int = 100, seed: int = 0, max_features="sqrt"):
    """The fitted forest of ``x`` (N, D) with integer ``labels`` (N,): a function of (M, D)
    features -> (M, n_classes) class probabilities, classes in ascending label order."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    classes, encoded = np.unique(labels, return_inverse=True)
    y = np.ascontiguousarray(encoded.reshape(-1, 1), dtype=np.float64)
    n_classes = np.array([len(classes)], dtype=np.intp)
    k = n_split_features(max_features, x.shape[1])
    streams = np.random.RandomState(seed)
    trees = [_tree(x, y, n_classes, k, streams.randint(_MAX_INT)) for _ in range(n_estimators)]

    def predict_proba(features) -> np.ndarray:
        xf = np.ascontiguousarray(features, dtype=np.float32)
        proba = np.zeros((len(xf), len(classes)))
        for tree in trees:
            proba += tree.predict(xf)[:, : len(classes)]
        proba /= len(trees)
        return proba

    return predict_proba
