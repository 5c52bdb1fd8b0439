"""Distances between two sets of features (N x D arrays): Fréchet, cosine (CRD) and kernel (KID).

All statistics are computed in float64 whatever the input dtype.
"""

from __future__ import annotations

import warnings

import numpy as np

from deepsnow import DeepsnowError


def check_features(x, name: str = "x", min_n: int = 1, dim: int | None = None) -> np.ndarray:
    """``x`` as a finite float64 (N, D) array with N >= ``min_n``; clear errors otherwise."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DeepsnowError(f"{name}: features must be numeric ({exc})") from exc
    if arr.ndim != 2:
        raise DeepsnowError(f"{name}: features must be a 2-D (N, D) array, got shape {arr.shape}")
    if arr.shape[1] < 1:
        raise DeepsnowError(f"{name}: features have no dimensions (shape {arr.shape})")
    if dim is not None and arr.shape[1] != dim:
        raise DeepsnowError(f"{name}: feature dimension {arr.shape[1]} does not match the other set's {dim}")
    if arr.shape[0] < min_n:
        raise DeepsnowError(f"{name}: {arr.shape[0]} samples, need at least {min_n}")
    bad = ~np.isfinite(arr)
    if bad.any():
        rows = np.unique(np.nonzero(bad)[0])
        raise DeepsnowError(
            f"{name}: features contain NaN or infinite values in {len(rows)} of {arr.shape[0]} rows (first row {rows[0]})"
        )
    return arr


def _pair(x, y, min_n: int) -> tuple[np.ndarray, np.ndarray]:
    x = check_features(x, "x", min_n=min_n)
    y = check_features(y, "y", min_n=min_n, dim=x.shape[1])
    return x, y


def feature_stats(x) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D), float64, ddof=1 (as pytorch-fid's ``np.cov``)."""
    x = check_features(x, "features", min_n=2)
    mu = x.mean(axis=0)
    xc = x - mu
    sigma = xc.T @ xc / (len(x) - 1)
    return mu, sigma


def _is_diagonal(s: np.ndarray) -> bool:
    return not np.count_nonzero(s - np.diag(np.diagonal(s)))


def _sym_sqrt(s: np.ndarray) -> np.ndarray:
    if _is_diagonal(s):  # exact and O(D²)
        return np.diag(np.sqrt(np.clip(np.diagonal(s), 0.0, None)))
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def trace_sqrt_product(s1, s2) -> float:
    """tr((S1 S2)^½) for symmetric PSD S1, S2 without ``scipy.linalg.sqrtm``.

    S1 S2 is similar to the PSD matrix M = S1^½ S2 S1^½, so tr((S1 S2)^½) =
    Σ sqrt(λ_i(M)). Both S1^½ and λ(M) come from ``eigh`` of symmetric matrices;
    tiny negative eigenvalues (round-off, rank-deficient covariances when N <= D)
    are clipped to 0.
    """
    s1 = np.asarray(s1, dtype=np.float64)
    s2 = np.asarray(s2, dtype=np.float64)
    r1 = _sym_sqrt((s1 + s1.T) / 2)
    m = r1 @ ((s2 + s2.T) / 2) @ r1
    m = (m + m.T) / 2
    lam = np.diagonal(m) if _is_diagonal(m) else np.linalg.eigvalsh(m)
    return float(np.sqrt(np.clip(lam, 0.0, None)).sum())


def frechet_distance_from_stats(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet distance ||μ1-μ2||² + tr Σ1 + tr Σ2 - 2 tr((Σ1 Σ2)^½) between two Gaussians."""
    mu1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    s1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    s2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    d = mu1.shape[0]
    if mu1.ndim != 1 or mu2.shape != (d,):
        raise DeepsnowError(f"means must be 1-D of equal length, got {mu1.shape} and {mu2.shape}")
    if s1.shape != (d, d) or s2.shape != (d, d):
        raise DeepsnowError(f"covariances must be {d} x {d} to match the means, got {s1.shape} and {s2.shape}")
    for name, a in (("mu1", mu1), ("sigma1", s1), ("mu2", mu2), ("sigma2", s2)):
        if not np.isfinite(a).all():
            raise DeepsnowError(f"{name} contains NaN or infinite values")
    diff = mu1 - mu2
    fd = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrt_product(s1, s2))
    # round-off can make identical distributions come out at -1e-12
    return max(fd, 0.0)


def _frechet_sample_space(x: np.ndarray, y: np.ndarray) -> float:
    """Exact Fréchet distance without any D x D matrix, for N, M small against D.

    With A = (X - μx)/sqrt(N-1) and B = (Y - μy)/sqrt(M-1), Σx = AᵀA and
    Σy = BᵀB. The non-zero eigenvalues of Σx Σy = AᵀA BᵀB are those of
    (A Bᵀ)(A Bᵀ)ᵀ, so tr((Σx Σy)^½) is the sum of the singular values of the
    N x M matrix A Bᵀ, and tr Σx = ||A||²_F.
    """
    mx, my = x.mean(axis=0), y.mean(axis=0)
    a = (x - mx) / np.sqrt(len(x) - 1)
    b = (y - my) / np.sqrt(len(y) - 1)
    sv = np.linalg.svd(a @ b.T, compute_uv=False)
    diff = mx - my
    fd = float(diff @ diff + np.einsum("ij,ij->", a, a) + np.einsum("ij,ij->", b, b) - 2.0 * sv.sum())
    return max(fd, 0.0)


def frechet_distance(x, y, method: str = "auto") -> float:
    """Fréchet distance between the Gaussians fitted to feature sets x (N, D) and y (M, D).

    FID is this on FID Inception features, FRD on ResNet-50 features. Needs
    N, M >= 2. For N or M <= D the covariances are rank-deficient: the value is
    defined but strongly biased upwards by small N, so compare epochs only at
    equal N.

    ``method``: ``"eigh"`` forms both D x D covariances and uses
    :func:`frechet_distance_from_stats` (symmetric eigenvalue form);
    ``"samples"`` works in sample space (:func:`_frechet_sample_space`, exact,
    O(N M D), much faster when N, M < D, e.g. a few hundred test patches
    against D = 2048); ``"auto"`` picks ``samples`` when N * M <= D², else ``eigh``.
    """
    x, y = _pair(x, y, 2)
    if method not in ("auto", "eigh", "samples"):
        raise DeepsnowError(f"frechet_distance: method must be auto, eigh or samples, got {method!r}")
    if method == "samples" or (method == "auto" and len(x) * len(y) <= x.shape[1] ** 2):
        return _frechet_sample_space(x, y)
    mu1, s1 = feature_stats(x)
    mu2, s2 = feature_stats(y)
    return frechet_distance_from_stats(mu1, s1, mu2, s2)


def _unit_rows(a: np.ndarray, name: str) -> np.ndarray:
    norms = np.linalg.norm(a, axis=1)
    zero = norms == 0
    if zero.any():
        raise DeepsnowError(f"{name}: {int(zero.sum())} feature vectors are all zero; their cosine is undefined")
    return a / norms[:, None]


def mean_cosine_similarity(x, y) -> float:
    """Mean over all pairs (i, j) of cos(x_i, y_j), in O((N + M) D).

    mean_i mean_j <u_i, v_j> = <mean_i u_i, mean_j v_j> with u, v the rows
    scaled to unit length, so no N x M matrix is formed.
    """
    x, y = _pair(x, y, 1)
    u = _unit_rows(x, "x").mean(axis=0)
    v = _unit_rows(y, "y").mean(axis=0)
    return float(u @ v)


def cosine_resnet_distance(x, y) -> float:
    """CRD as a distance: 1 - mean pairwise cosine similarity of generated x and real y.

    The paper's Eq. 5 writes CRD = 1/N Σ_i 1/M Σ_j G[i]·X[j], a plain dot
    product of unnormalised embeddings, while its text calls it "the average
    cosine distances". We follow the text: rows are L2-normalised (so the
    value does not depend on feature scale, which differs between weights),
    and, as scipy/sklearn's "cosine distance", report 1 - cosine similarity:
    0 = same direction, lower is better, in [0, 2]. The literal Eq. 5 value is
    :func:`mean_dot_product` (``crd_dot`` in the metrics table).
    """
    return 1.0 - mean_cosine_similarity(x, y)


def mean_dot_product(x, y) -> float:
    """The paper's Eq. 5 literally: mean over all pairs of G[i]·X[j] = <mean x, mean y>."""
    x, y = _pair(x, y, 1)
    return float(x.mean(axis=0) @ y.mean(axis=0))


def kernel_distance(
    x,
    y,
    subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1.0,
    seed: int = 0,
) -> tuple[float, float]:
    """Kernel (Inception) distance: unbiased MMD² with k(a, b) = (γ a·b + coef0)^degree, γ = 1/D.

    Averaged over ``subsets`` random subsets of m = :func:`kid_subset_size` (``subset_size``
    capped at half the smaller set) drawn without replacement (seeded). Returns (mean, std) over
    subsets; std is NaN, with a warning, when the sets are too small for subsets that differ. The
    estimate is unbiased, so independent samples of one distribution give
    values scattered around 0, including slightly negative ones. (Passing the
    very same points as x and y gives a small negative value, O(1/m): points
    drawn into both subsets add their self-similarity to the cross term.)
    """
    x, y = _pair(x, y, 2)
    if subsets < 1:
        raise DeepsnowError(f"kernel_distance: subsets must be >= 1, got {subsets}")
    m = kid_subset_size(subset_size, len(x), len(y))
    if m < 2:
        raise DeepsnowError(f"kernel_distance: subset size {m} < 2 (need at least 2 samples per set)")
    g = 1.0 / x.shape[1] if gamma is None else float(gamma)
    rng = np.random.default_rng(seed)
    vals = np.empty(subsets)
    for s in range(subsets):
        a = x[rng.choice(len(x), m, replace=False)]
        b = y[rng.choice(len(y), m, replace=False)]
        kxx = (g * (a @ a.T) + coef0) ** degree
        kyy = (g * (b @ b.T) + coef0) ** degree
        kxy = (g * (a @ b.T) + coef0) ** degree
        off = m * (m - 1)
        vals[s] = (
            (kxx.sum() - np.trace(kxx)) / off + (kyy.sum() - np.trace(kyy)) / off - 2.0 * kxy.sum() / (m * m)
        )
    if 2 * m > min(len(x), len(y)):
        warnings.warn(
            f"kernel_distance: sets of {len(x)} and {len(y)} are too small for distinct subsets (each holds "
            f"{m}, the smaller set has under 4): the spread over subsets is not a spread, std is NaN",
            RuntimeWarning, stacklevel=2,
        )
        return float(vals.mean()), float("nan")
    return float(vals.mean()), float(vals.std())


def kid_subset_size(wanted: int, n_x: int, n_y: int) -> int:
    """Subsets of at most half the smaller set: a subset as large as the set is the whole set
    reshuffled every time, and the spread over subsets (kid_std) would be ~1e-16, not a spread
    (torch-fidelity and torchmetrics refuse that case). Sets under 4 samples use the whole
    smaller set (the spread is then NaN); under 2, kernel_distance refuses."""
    half = min(n_x, n_y) // 2
    return min(int(wanted), half if half >= 2 else min(n_x, n_y))
