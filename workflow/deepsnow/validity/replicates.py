"""The metrics of a set's bootstrap replicates, from pairwise matrices computed once per set.

A replicate draws the reference rows ``ri`` and the candidate rows ``ci`` with replacement; every
metric but the RF test depends on the features only through their dot products, so each
extractor's Gram matrices of the reference and candidate rows are computed once and a replicate's
metrics read them by index instead of recomputing D-dimensional products per replicate:

* Fréchet distance (``fid``, ``frd``, ``fd_``): the sample-space form of
  :func:`deepsnow.metrics.distances.frechet_distance`, its N x M matrix A Bᵀ the double-centred
  block of the cross Gram matrix (exact for any N, M);
* cosine distance (``crd``, ``cd_``): means of the unit rows, as
  :func:`~deepsnow.metrics.distances.mean_cosine_similarity`;
* KID (``kid_mean``): the polynomial kernel of the Gram matrices, read at the subsets that
  :func:`~deepsnow.metrics.distances.kernel_distance` draws (the same for every replicate of a
  mode, since its seed and set sizes are);
* precision, recall, density, coverage: the Euclidean distances from the Gram matrices, the
  k-nearest-neighbour radii and ball counts as :func:`~deepsnow.metrics.prdc.prdc_scores`.

The RF test is refitted per replicate (:func:`~deepsnow.metrics.rf.rf_two_sample_test`). Every
value equals ``set_metrics`` on the resampled rows up to round-off (tests/test_validity.py); a
pair of copies of one patch is at distance exactly 0 here, where ``prdc_scores`` computes a
round-off residue.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Pairs:
    """One extractor's features of a set against the reference, as the replicates read them:
    Gram matrices of the rows centred on the reference mean (``cc``, ``rr``, ``cr``: candidate x
    candidate, reference x reference, candidate x reference), the Euclidean distances they give
    (``dist_cc``, ``dist_rr``, ``dist_rc``; a row's distance to itself exactly 0), the unit rows, and
    ``raw``, the uncentred Gram matrices (cc, rr, cr) for the kernel of KID (not shift-invariant)."""

    cc: np.ndarray
    rr: np.ndarray
    cr: np.ndarray
    dist_cc: np.ndarray
    dist_rr: np.ndarray
    dist_rc: np.ndarray
    unit_c: np.ndarray
    unit_r: np.ndarray
    raw: tuple[np.ndarray, np.ndarray, np.ndarray]


def _unit(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=1)[:, None]


def _distances(sq_a: np.ndarray, sq_b: np.ndarray, cross: np.ndarray) -> np.ndarray:
    """sqrt(|a|² + |b|² − 2 a·b), the squares clipped at 0 (round-off), as prdc_scores computes them."""
    return np.sqrt(np.maximum(sq_a[:, None] + sq_b[None, :] - 2.0 * cross, 0.0))


def _self_distances(gram: np.ndarray) -> np.ndarray:
    sq = np.diagonal(gram)
    d = _distances(sq, sq, gram)
    np.fill_diagonal(d, 0.0)
    return d


def pairs_of(reference: np.ndarray, candidate: np.ndarray) -> Pairs:
    r, c = np.asarray(reference, dtype=np.float64), np.asarray(candidate, dtype=np.float64)
    # distances and the Fréchet distance do not change under a shift; centring on the reference
    # mean shrinks the norms, and with them the cancellation in the Gram-matrix forms
    centre = r.mean(axis=0)
    rc, cc = r - centre, c - centre
    g_cc, g_rr, g_cr = cc @ cc.T, rc @ rc.T, cc @ rc.T
    dist_rc = _distances(np.diagonal(g_rr), np.diagonal(g_cc), g_cr.T)
    return Pairs(
        g_cc, g_rr, g_cr, _self_distances(g_cc), _self_distances(g_rr), dist_rc,
        _unit(c), _unit(r), (c @ c.T, r @ r.T, c @ r.T),
    )


def frechet(p: Pairs, ci, ri) -> float:
    """Fréchet distance of candidate rows ``ci`` against reference rows ``ri`` (with repeats)."""
    n, m = len(ci), len(ri)
    gxx, gyy, gxy = p.cc[np.ix_(ci, ci)], p.rr[np.ix_(ri, ri)], p.cr[np.ix_(ci, ri)]
    mean_diff = gxx.mean() + gyy.mean() - 2.0 * gxy.mean()
    # tr Σ = (tr G - sum G / n) / (n - 1): the Gram matrix of the rows centred on their own mean
    tr_x = (np.trace(gxx) - gxx.sum() / n) / (n - 1)
    tr_y = (np.trace(gyy) - gyy.sum() / m) / (m - 1)
    # A Bᵀ with A, B the rows centred on their own means: the double-centred cross Gram block
    ab = gxy - gxy.mean(axis=1, keepdims=True) - gxy.mean(axis=0, keepdims=True) + gxy.mean()
    sv = np.linalg.svd(ab / np.sqrt((n - 1) * (m - 1)), compute_uv=False)
    return max(float(mean_diff + tr_x + tr_y - 2.0 * sv.sum()), 0.0)


def cosine_distance(p: Pairs, ci, ri) -> float:
    return 1.0 - float(p.unit_c[ci].mean(axis=0) @ p.unit_r[ri].mean(axis=0))


def kid_subsets(n_cand: int, n_ref: int, params: dict) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (candidate, reference) subsets :func:`~deepsnow.metrics.distances.kernel_distance` draws
    for sets of these sizes with the metrics' seed: positions within the (resampled) sets."""
    from deepsnow.metrics.distances import kid_subset_size

    m = kid_subset_size(params["kid_subset_size"], n_cand, n_ref)
    rng = np.random.default_rng(params["seed"])
    draws = range(params["kid_subsets"])
    return [(rng.choice(n_cand, m, replace=False), rng.choice(n_ref, m, replace=False)) for _ in draws]


def kid(p: Pairs, ci, ri, subsets, params: dict, dim: int) -> float:
    """Mean unbiased MMD² over the subsets, k(a, b) = (a·b / D + coef0)^degree."""
    raw_cc, raw_rr, raw_cr = p.raw
    g, c0, deg = 1.0 / dim, params["kid_coef0"], params["kid_degree"]
    vals = []
    for sa, sb in subsets:
        a, b = ci[sa], ri[sb]
        m = len(a)
        kxx = (g * raw_cc[np.ix_(a, a)] + c0) ** deg
        kyy = (g * raw_rr[np.ix_(b, b)] + c0) ** deg
        kxy = (g * raw_cr[np.ix_(a, b)] + c0) ** deg
        off = m * (m - 1)
        vals.append((kxx.sum() - np.trace(kxx)) / off + (kyy.sum() - np.trace(kyy)) / off - 2.0 * kxy.sum() / (m * m))
    return float(np.mean(vals))


def prdc(p: Pairs, ci, ri, k: int) -> dict[str, float]:
    """Precision, recall, density and coverage of candidate rows ``ci`` against reference rows ``ri``.

    Copies of one patch in a replicate are at distance 0 (the diagonal), as a row is from itself."""
    d_rr, d_cc = p.dist_rr[np.ix_(ri, ri)], p.dist_cc[np.ix_(ci, ci)]
    # with a row's own 0 among them, the (k+1)-th smallest distance is the k-th neighbour's
    r_x, r_y = np.partition(d_rr, k, axis=1)[:, k], np.partition(d_cc, k, axis=1)[:, k]
    d = p.dist_rc[np.ix_(ri, ci)]
    held = np.count_nonzero(d < r_x[:, None], axis=0)
    return {
        "precision": float(np.mean(held > 0)),
        "recall": float(np.mean((d < r_y[None, :]).any(axis=1))),
        "density": float(held.sum() / (k * len(ci))),
        "coverage": float(np.mean(d.min(axis=1) < r_x)),
    }


def _replicate(pairs: dict, reference: dict, candidate: dict, ri, ci, params: dict, subsets) -> dict:
    """The validity table's metrics of one replicate, as ``selected(set_metrics(...))`` names them."""
    from deepsnow.metrics.epoch import rf_columns

    inc, res = params["inception_extractor"], params["resnet_extractor"]
    fd = {name: frechet(p, ci, ri) for name, p in pairs.items()}
    cd = {name: cosine_distance(p, ci, ri) for name, p in pairs.items()}
    out = {
        "fid": fd[inc],
        "frd": fd[res],
        "crd": cd[res],
        "kid_mean": kid(pairs[inc], ci, ri, subsets, params, reference[inc].shape[1]),
        "rf_logloss_mean": rf_columns(candidate[res][ci], reference[res][ri], params, 1)["rf_logloss_mean"],
    }
    for name, p in pairs.items():
        out |= {f"fd_{name}": fd[name], f"cd_{name}": cd[name]}
        out |= {f"{what}_{name}": v for what, v in prdc(p, ci, ri, params["prdc_k"]).items()}
    return out


def replicate_metrics(reference: dict, candidate: dict, params: dict, draws) -> list[dict]:
    """The metrics of every bootstrap replicate (reference rows, candidate rows) in ``draws`` of
    ``candidate`` against ``reference`` (extractor name -> features), one process."""
    pairs = {name: pairs_of(reference[name], candidate[name]) for name in reference}
    n_ref, n_cand = len(next(iter(reference.values()))), len(next(iter(candidate.values())))
    subsets = kid_subsets(n_cand, n_ref, params)
    return [_replicate(pairs, reference, candidate, ri, ci, params, subsets) for ri, ci in draws]
