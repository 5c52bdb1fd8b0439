"""The comparison of a sweep's variants (issue #17): mean, spread and Welch t-tests per group.

Variants that differ only in ``gan.seed`` form a group. From every variant's ``metrics.csv`` (and
its Figure 7 ``artifacts.csv``, for the checkerboard score, a measure of the A->B samples) this
writes

* ``comparison/summary.csv``: per group, epoch, direction and metric the mean, the sample standard
  deviation (ddof 1; empty for one variant) and n, the number of variants with a finite value;
* ``comparison/final.csv``: the last epoch's values per group, and for every pair of groups a
  two-sided Welch t-test (``scipy.stats.ttest_ind(equal_var=False)``) of each metric; with one
  group, its rows alone (no test).
"""

from __future__ import annotations

import csv
import itertools
import logging
import math
from collections import defaultdict

import numpy as np

from deepsnow import DeepsnowError
from deepsnow.metrics.table import PAIRED_METRICS, UNPAIRED_METRICS, write_csv

log = logging.getLogger("deepsnow.metrics")

#: metrics compared: the unpaired ones, the paired errors, and (added by extractors) fd_/cd_ columns
COMPARED = (*UNPAIRED_METRICS, *PAIRED_METRICS)
EXTRA_PREFIXES = ("fd_", "cd_")
ARTIFACT_METRIC = "checkerboard_score"
SUMMARY_COLUMNS = ("group", "epoch", "direction", "metric", "mean", "sd", "n", "variants")
FINAL_COLUMNS = (
    "direction", "metric", "epoch", "group_a", "mean_a", "sd_a", "n_a", "group_b", "mean_b", "sd_b", "n_b",
    "difference", "welch_t", "p_value",
)


def _number(text, path, column):
    if text in ("", None):
        return math.nan
    try:
        return float(text)
    except ValueError as exc:
        raise DeepsnowError(f"{path}: column {column!r} holds {text!r}, not a number") from exc


def _read_rows(path) -> list[dict]:
    try:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise DeepsnowError(f"{path}: cannot read ({exc})") from exc
    if not rows:
        raise DeepsnowError(f"{path}: no rows")
    return rows


def variant_values(table, artifacts=None) -> dict[tuple[int, str, str], float]:
    """{(epoch, direction, metric): value} of one variant's metrics.csv (and artifacts.csv)."""
    rows = _read_rows(table)
    for key in ("epoch", "direction"):
        if key not in rows[0]:
            raise DeepsnowError(f"{table}: no column {key!r}; expected a metrics.csv of 'deepsnow metrics table'")
    metrics = [c for c in rows[0] if c in COMPARED or c.startswith(EXTRA_PREFIXES)]
    values = {}
    for r in rows:
        for m in metrics:
            values[(int(r["epoch"]), r["direction"], m)] = _number(r[m], table, m)
    if artifacts is not None:
        for r in _read_rows(artifacts):
            if r.get("source") == "epoch":
                values[(int(r["epoch"]), "AtoB", ARTIFACT_METRIC)] = _number(r[ARTIFACT_METRIC], artifacts, ARTIFACT_METRIC)
    return values


def _stats(values: list[float]) -> tuple[float, float, int]:
    finite = np.array([v for v in values if math.isfinite(v)], dtype=float)
    n = int(finite.size)
    mean = float(finite.mean()) if n else math.nan
    sd = float(finite.std(ddof=1)) if n > 1 else math.nan
    return mean, sd, n


def summarize(variants: dict[str, dict], groups: dict[str, str]) -> list[dict]:
    """Rows of summary.csv from {variant: variant_values(...)} and {variant: group}."""
    by_group: dict[tuple, dict[str, float]] = defaultdict(dict)
    for name, values in variants.items():
        for (epoch, direction, metric), v in values.items():
            by_group[(groups[name], epoch, direction, metric)][name] = v
    rows = []
    for (group, epoch, direction, metric), per in sorted(by_group.items()):
        mean, sd, n = _stats(list(per.values()))
        rows.append({
            "group": group, "epoch": epoch, "direction": direction, "metric": metric,
            "mean": mean, "sd": sd, "n": n, "variants": " ".join(sorted(per)), "_values": list(per.values()),
        })
    return rows


def welch(a: list[float], b: list[float]) -> tuple[float, float]:
    """Two-sided Welch t-test of two samples (finite values); NaN when either has under two."""
    from scipy.stats import ttest_ind

    a = [v for v in a if math.isfinite(v)]
    b = [v for v in b if math.isfinite(v)]
    if len(a) < 2 or len(b) < 2:
        return math.nan, math.nan
    res = ttest_ind(a, b, equal_var=False)
    return float(res.statistic), float(res.pvalue)


def final_rows(summary: list[dict]) -> list[dict]:
    """Rows of final.csv: the last epoch per metric, each group alone or each pair of groups tested."""
    last = max(r["epoch"] for r in summary)
    at_last = defaultdict(dict)
    for r in summary:
        if r["epoch"] == last:
            at_last[(r["direction"], r["metric"])][r["group"]] = r
    rows = []
    for (direction, metric), per in sorted(at_last.items()):
        names = sorted(per)
        pairs = list(itertools.combinations(names, 2)) or [(names[0], None)]
        for ga, gb in pairs:
            a, b = per[ga], per.get(gb)
            row = {"direction": direction, "metric": metric, "epoch": last, "group_a": ga,
                   "mean_a": a["mean"], "sd_a": a["sd"], "n_a": a["n"]}
            if b is not None:
                t, p = welch(a["_values"], b["_values"])
                row |= {"group_b": gb, "mean_b": b["mean"], "sd_b": b["sd"], "n_b": b["n"],
                        "difference": a["mean"] - b["mean"], "welch_t": t, "p_value": p}
            rows.append(row)
    return rows


def compare(tables, names, groups, artifacts, summary_path, final_path) -> dict:
    """Read every variant's tables, write summary.csv and final.csv; returns counts for the sidecar."""
    if not (len(tables) == len(names) == len(groups)) or (artifacts and len(artifacts) != len(tables)):
        raise DeepsnowError(
            f"--tables ({len(tables)}), --variants ({len(names)}), --groups ({len(groups)}) and --artifacts "
            f"({len(artifacts or [])}, or none) must name the variants in the same order"
        )
    if len(set(names)) != len(names):
        raise DeepsnowError(f"--variants: names repeat: {names}")
    values = {n: variant_values(t, artifacts[i] if artifacts else None) for i, (n, t) in enumerate(zip(names, tables))}
    epochs = {n: sorted({k[0] for k in v}) for n, v in values.items()}
    if len({tuple(e) for e in epochs.values()}) > 1:
        raise DeepsnowError(f"the variants' metrics tables hold different epochs: {epochs}")
    summary = summarize(values, dict(zip(names, groups)))
    final = final_rows(summary)
    write_csv(summary_path, summary, SUMMARY_COLUMNS)
    write_csv(final_path, final, FINAL_COLUMNS)
    tested = [r for r in final if r.get("group_b")]
    log.info("compared %d variants in %d groups: %d summary rows, %d final rows (%d Welch tests)",
             len(names), len(set(groups)), len(summary), len(final), len(tested))
    return {"variants": len(names), "groups": sorted(set(groups)), "summary_rows": len(summary), "final_rows": len(final)}


def read_summary(path) -> list[dict]:
    """summary.csv back as rows with numbers (for the figures)."""
    rows = _read_rows(path)
    missing = [c for c in SUMMARY_COLUMNS if c not in rows[0]]
    if missing:
        raise DeepsnowError(f"{path}: missing columns {missing}; expected a comparison/summary.csv")
    for r in rows:
        r["epoch"] = int(r["epoch"])
        for c in ("mean", "sd"):
            r[c] = _number(r[c], path, c)
        r["n"] = int(r["n"])
    return rows

