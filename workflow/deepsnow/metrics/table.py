"""The metrics table: the epoch JSONs collected into ``metrics.csv``, and the Spearman correlations
across epochs between each unpaired metric and each paired error (``correlations.csv``).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

from deepsnow import DeepsnowError
from deepsnow.io import atomic_output

#: which row (the table's key) and which features its metrics come from: what any reader needs
ROW_KEY_COLUMNS = ("epoch", "direction")
EXTRACTOR_COLUMNS = tuple(
    f"{kind}_{what}" for kind in ("inception", "resnet") for what in ("extractor", "weights", "pretrained")
)
TABLE_COLUMNS = (
    *ROW_KEY_COLUMNS,
    "n_real",
    "n_fake",
    *EXTRACTOR_COLUMNS,
    "fid",
    "frd",
    "crd",
    "crd_dot",
    "kid_mean",
    "kid_std",
    "kid_subset_size",
    "rf_logloss_mean",
    "rf_logloss_std",
    "rf_accuracy_mean",
    "rf_accuracy_std",
    "rf_auc_mean",
    "rf_auc_std",
    "rf_n_per_class",
    "rf_repeats",
    "paired_l1",
    "paired_ssim",
    "paired_l1_water",
    "n_paired",
    # against the snow season's truth (the paired errors above: the snowfall truth; docs/metrics.md)
    "paired_l1_season",
    "paired_ssim_season",
)

#: unpaired metrics correlated with the paired errors, and the sign each should
#: have against paired_l1 if it tracks quality (both fall as images improve => +1)
UNPAIRED_METRICS = {
    "fid": 1,
    "frd": 1,
    "crd": 1,
    "crd_dot": -1,
    "kid_mean": 1,
    "rf_logloss_mean": -1,
    "rf_accuracy_mean": 1,
    "rf_auc_mean": 1,
}
#: per-extractor distances (one pair of columns per extractor): both fall as images improve
PER_EXTRACTOR_PREFIXES = ("fd", "cd")
#: per-extractor nearest-neighbour scores (four columns per extractor, after the distances): all rise as images improve
PRDC_PREFIXES = ("precision", "recall", "density", "coverage")
#: the per-extractor columns go after this one
PER_EXTRACTOR_AFTER = "crd_dot"
#: paired measures and their orientation (+1: lower is better, -1: higher is better)
PAIRED_METRICS = {"paired_l1": 1, "paired_ssim": -1, "paired_l1_water": 1}
#: a reflectance run's spectral distances (:mod:`deepsnow.metrics.spectral`), correlated like the unpaired
#: metrics (all fall as images improve); ``w1_<band>`` of each band is added to them
SPECTRAL_METRICS = {"w1_mean": 1, "ndsi_w1": 1, "sam_w1": 1}
#: a reflectance run's physical checks against the simulator's truth, correlated like the paired errors
#: (+1: lower is better, -1: higher is better)
PHYSICAL_METRICS = {"snow_cover_mae": 1, "snow_iou": -1}
#: the spectral and physical columns after the per-band ones, in the table's order
SPECTRAL_TAIL = (
    "w1_mean", "ndsi_w1", "snow_share_fake", "snow_share_real", "sam_w1",
    "snow_cover_mae", "snow_share_truth", "snow_iou", "snow_iou_patch",
)

CORRELATION_COLUMNS = ("metric", "paired", "direction", "spearman_rho", "p_value", "n_epochs", "expected_sign")


def collect_rows(json_paths) -> list[dict]:
    """The rows of every epoch JSON, sorted by epoch and direction; an epoch may appear once."""
    rows, seen = [], {}
    for p in json_paths:
        try:
            doc = json.loads(Path(p).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DeepsnowError(f"{p}: unreadable epoch metrics JSON ({exc})") from exc
        if not isinstance(doc, dict) or "rows" not in doc or "epoch" not in doc:
            raise DeepsnowError(f"{p}: not an epoch metrics file from 'deepsnow metrics epoch'")
        e = int(doc["epoch"])
        if e in seen:
            raise DeepsnowError(f"{p}: epoch {e} appears twice (also in {seen[e]})")
        seen[e] = p
        rows.extend(doc["rows"])
    rows.sort(key=lambda r: (r["epoch"], r["direction"]))
    return rows


def _extractor_names(rows: list[dict], prefixes) -> list[str]:
    """The extractors named by the rows' ``<prefix>_<extractor>`` keys, in the order they first appear."""
    starts = tuple(f"{p}_" for p in prefixes)
    return list(dict.fromkeys(k.split("_", 1)[1] for r in rows for k in r if k.startswith(starts)))


def per_extractor_columns(rows: list[dict]) -> list[str]:
    """``fd_<extractor>``, ``cd_<extractor>`` of every extractor the rows hold, in the order they first appear."""
    names = _extractor_names(rows, PER_EXTRACTOR_PREFIXES)
    return [f"{p}_{name}" for name in names for p in PER_EXTRACTOR_PREFIXES]


def prdc_columns(rows: list[dict]) -> list[str]:
    """``precision_``, ``recall_``, ``density_``, ``coverage_<extractor>`` of every extractor the rows hold."""
    names = _extractor_names(rows, PRDC_PREFIXES)
    return [f"{p}_{name}" for name in names for p in PRDC_PREFIXES]


def spectral_columns(rows: list[dict]) -> list[str]:
    """A reflectance run's ``w1_<band>``, then :data:`SPECTRAL_TAIL` (:mod:`deepsnow.metrics.spectral`), as the
    rows hold them; none for RGB runs."""
    from deepsnow.data.bands import BAND_NAMES

    found = {k for r in rows for k in r if k.startswith("w1_") and k != "w1_mean"}
    w1 = [f"w1_{b}" for b in BAND_NAMES if f"w1_{b}" in found]  # in band order (the epoch JSONs sort their keys)
    return w1 + [c for c in SPECTRAL_TAIL if any(c in r for r in rows)]


def table_columns(rows: list[dict]) -> tuple[str, ...]:
    """:data:`TABLE_COLUMNS` with the rows' per-extractor distances, then their nearest-neighbour
    scores, after ``crd_dot``."""
    i = TABLE_COLUMNS.index(PER_EXTRACTOR_AFTER) + 1
    return (*TABLE_COLUMNS[:i], *per_extractor_columns(rows), *prdc_columns(rows), *TABLE_COLUMNS[i:], *spectral_columns(rows))


def unpaired_metrics(rows: list[dict]) -> dict[str, int]:
    """The unpaired metrics correlated with the paired errors: :data:`UNPAIRED_METRICS`, the
    per-extractor distances (+1) and nearest-neighbour scores (−1: they rise as images improve)."""
    return {**UNPAIRED_METRICS, **{c: 1 for c in per_extractor_columns(rows)}, **{c: -1 for c in prdc_columns(rows)}}


def correlated_metrics(rows: list[dict]) -> tuple[dict[str, int], dict[str, int]]:
    """(unpaired, paired) measures of ``correlations.csv`` with their signs: :func:`unpaired_metrics` and
    :data:`PAIRED_METRICS`, plus, where the rows hold them (reflectance runs), the spectral distances
    (``w1_<band>`` and :data:`SPECTRAL_METRICS`) and the physical checks (:data:`PHYSICAL_METRICS`)."""
    have = {k for r in rows for k in r}
    spectral = [c for c in spectral_columns(rows) if c.startswith("w1_") or c in SPECTRAL_METRICS]
    unpaired = {**unpaired_metrics(rows), **{c: SPECTRAL_METRICS.get(c, 1) for c in spectral}}
    return unpaired, {**PAIRED_METRICS, **{c: s for c, s in PHYSICAL_METRICS.items() if c in have}}


def _fmt(v):
    """A CSV cell: missing and non-finite values empty, booleans lower case, floats in full precision."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    return v


def write_csv(path, rows, columns) -> None:
    """``rows`` as CSV with exactly ``columns``, written atomically."""
    with atomic_output(path) as tmp:
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore")
            w.writeheader()
            for r in rows:
                w.writerow({c: _fmt(r.get(c)) for c in columns})


def _finite_pairs(rows: list[dict], metric: str, paired: str) -> list[tuple[float, float]]:
    """(metric, paired error) of the rows where both are finite numbers."""
    return [
        (r[metric], r[paired])
        for r in rows
        if r.get(metric) is not None and r.get(paired) is not None
        and math.isfinite(r[metric]) and math.isfinite(r[paired])
    ]


def spearman(pairs: list[tuple[float, float]]) -> tuple[float, float]:
    """Spearman's rho and its p-value; NaN below 3 epochs or when a side is constant (rho undefined)."""
    import warnings

    from scipy.stats import spearmanr

    if len(pairs) < 3:
        return float("nan"), float("nan")
    a, b = np.array(pairs, dtype=float).T
    if not (np.ptp(a) > 0 and np.ptp(b) > 0):
        return float("nan"), float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = spearmanr(a, b)
    return float(res.statistic), float(res.pvalue)


def correlations(rows: list[dict]) -> list[dict]:
    """Spearman's rho across epochs between each unpaired metric and each paired error (AtoB rows);
    a reflectance run's spectral and physical columns too (:func:`correlated_metrics`)."""
    out = []
    ab = [r for r in rows if r["direction"] == "AtoB"]
    unpaired, paired_metrics = correlated_metrics(rows)
    for paired, porient in paired_metrics.items():
        for metric, sign in unpaired.items():
            pairs = _finite_pairs(ab, metric, paired)
            rho, p = spearman(pairs)
            out.append(
                {
                    "metric": metric,
                    "paired": paired,
                    "direction": "AtoB",
                    "spearman_rho": rho,
                    "p_value": p,
                    "n_epochs": len(pairs),
                    "expected_sign": sign * porient,
                }
            )
    return out


def make_table(json_paths, table_path, correlations_path=None) -> dict:
    """``deepsnow metrics table``: metrics.csv (and correlations.csv) from the epoch JSONs."""
    rows = collect_rows(json_paths)
    write_csv(table_path, rows, table_columns(rows))
    summary = {"n_rows": len(rows), "epochs": sorted({r["epoch"] for r in rows})}
    if correlations_path is not None:
        corr = correlations(rows)
        write_csv(correlations_path, corr, CORRELATION_COLUMNS)
        summary["n_correlations"] = sum(1 for c in corr if c["n_epochs"] >= 3)
    return summary
