"""What a metric does along a ladder: rank correlation with the level, bootstrap intervals, sensitivity.

Every metric is turned so that "gets worse" is a larger number before the rank correlation: the
distances (FID, FRD, CRD, KID, ``fd_``/``cd_``; on reflectance runs the physical ``w1_mean``,
``ndsi_w1``, ``sam_w1``, ``snow_share_gap`` and ``snow_cover_mae``) grow as a translation gets worse,
so they keep their sign; the random-forest log loss (higher: real and generated are harder to tell
apart), precision, recall, density and coverage (higher: more faithful, more diverse) and the
snow's IoU with the truth (``snow_iou``) fall, so they are negated. A metric that tracks a ladder then has rho near +1; a negative rho means it moves the
wrong way.
"""

from __future__ import annotations

import numpy as np

from deepsnow.metrics.table import PRDC_PREFIXES

#: metric name prefixes whose larger values mean a better translation (negated before the correlation);
#: the physical ``snow_iou`` (reflectance runs' truth mode) is the snow's overlap with the truth's
HIGHER_IS_BETTER = ("rf_logloss", *(f"{p}_" for p in PRDC_PREFIXES), "snow_iou")


def worse_sign(metric: str) -> int:
    """+1 when a larger value of ``metric`` means a worse translation, -1 when a smaller one does."""
    return -1 if metric.startswith(HIGHER_IS_BETTER) else 1


def spearman_rho(levels, values) -> float:
    """Spearman's rank correlation of ``values`` with ``levels``; NaN when either is constant or
    a value is not finite (no ranking to correlate)."""
    from scipy.stats import rankdata

    x, y = np.asarray(levels, dtype=float), np.asarray(values, dtype=float)
    if len(x) != len(y) or len(x) < 2 or not np.isfinite(y).all() or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    rx, ry = rankdata(x), rankdata(y)
    return float(np.corrcoef(rx, ry)[0, 1])


def bootstrap_interval(value: float, samples, coverage: float = 0.95) -> tuple[float, float]:
    """The central ``coverage`` interval of the bootstrap ``samples``, shifted by the bootstrap's
    bias estimate (their mean minus ``value``) so that it sits where the value does: the Fréchet
    and kernel distances of sets drawn with replacement are biased upwards (a repeated patch adds
    no spread), and an unshifted interval could miss its own value. NaN when a sample or the value
    is not finite."""
    s = np.asarray(samples, dtype=float)
    if len(s) == 0 or not np.isfinite(s).all() or not np.isfinite(value):
        return float("nan"), float("nan")
    tail = 100.0 * (1.0 - coverage) / 2.0
    low, high = np.percentile(s, [tail, 100.0 - tail]) - (s.mean() - value)
    return float(low), float(high)


def sensitivity(levels, values, interval0: tuple[float, float]) -> float:
    """The smallest level above the first whose value lies outside the first level's interval
    (in either direction); NaN when none does or the interval is undefined."""
    low, high = interval0
    if not (np.isfinite(low) and np.isfinite(high)):
        return float("nan")
    for level, value in zip(list(levels)[1:], list(values)[1:]):
        if np.isfinite(value) and not low <= value <= high:
            return float(level)
    return float("nan")


def summarise(metric: str, levels, values, boot) -> dict:
    """One metric along one ladder: ``values`` per level, ``boot`` (levels x replicates) their
    bootstrap replicates -> the sign-corrected rho, the per-level intervals and the sensitivity."""
    intervals = [bootstrap_interval(v, b) for v, b in zip(values, boot)]
    sign = worse_sign(metric)
    return {
        "rho": spearman_rho(levels, sign * np.asarray(values, dtype=float)),
        "intervals": intervals,
        "sensitivity": sensitivity(levels, values, intervals[0]),
        "worse_when": "higher" if sign > 0 else "lower",
    }
