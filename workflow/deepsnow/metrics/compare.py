"""The comparison of a sweep's variants: mean, spread and Welch t-tests per group.

Variants that differ only in ``gan.seed`` form a group. From every variant's ``metrics.csv`` (and
its Figure 7 ``artifacts.csv``, for the checkerboard score, a measure of the A->B samples, and its
``train/losses.csv``, for Figure 3's per-epoch losses as ``loss_G``, ``loss_D``, ``loss_cycle`` and
``loss_idt``: the ``_A`` losses under A->B, the ``_B`` ones under B->A; a one-sided model's, CUT or
FastCUT, as ``loss_G``, ``loss_D`` and ``loss_NCE`` under A->B; and its change testbed's
``change/summary.json``, for each detector's AUC on the synthetic and the real pair and their gap,
``change_auc_synthetic|real|gap_<bands>_<detector>`` under A->B at the last epoch) this writes

* ``comparison/summary.csv``: per group, epoch, direction and metric the mean, the sample standard
  deviation (ddof 1; empty for one variant) and n, the number of variants with a finite value.
  The metrics table's ``inception_pretrained`` and ``resnet_pretrained`` join as 1 (pretrained) or 0
  (random weights), so a figure drawn from the summary can flag random weights (not in final.csv);
* ``comparison/final.csv``: the last epoch's values per group, and for every pair of groups a
  two-sided Welch t-test (``scipy.stats.ttest_ind(equal_var=False)``) of each metric both groups
  have; a metric only one group has (one group, or B->A and the cycle losses next to one-sided
  models' groups) as that group's row alone (no test);
* ``comparison/correlations.csv`` (optional): Spearman's rho of each unpaired metric with each
  paired error (simulator runs) over the sweep's variants: ``pooled`` over every (variant, epoch),
  and ``epoch N`` across the variants at each measured epoch: does a metric rank the seeds and
  variants as the true error does?
"""

from __future__ import annotations

import csv
import itertools
import json
import logging
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from deepsnow import DeepsnowError
from deepsnow.metrics.table import (
    CORRELATION_COLUMNS, PAIRED_METRICS, PER_EXTRACTOR_PREFIXES, PRDC_PREFIXES, UNPAIRED_METRICS, correlations, write_csv,
)

log = logging.getLogger("deepsnow.metrics")

#: metrics compared: the unpaired ones, the paired errors, and (added by extractors) the fd_/cd_ and
#: precision_/recall_/density_/coverage_ columns
COMPARED = (*UNPAIRED_METRICS, *PAIRED_METRICS)
EXTRA_PREFIXES = tuple(f"{p}_" for p in (*PER_EXTRACTOR_PREFIXES, *PRDC_PREFIXES))
ARTIFACT_METRIC = "checkerboard_score"
#: whether each variant's extractors were pretrained (1) or random (0): carried for the figures' flags
PRETRAINED_METRICS = ("inception_pretrained", "resnet_pretrained")
#: train/losses.csv columns compared: column -> (direction, metric); G_A, D_A, cycle_A, idt_A are A->B's
LOSS_METRICS = {
    f"{loss}_{d}": (direction, f"loss_{loss}")
    for loss in ("G", "D", "cycle", "idt")
    for d, direction in (("A", "AtoB"), ("B", "BtoA"))
}
#: a one-sided model's (CUT, FastCUT) losses, A->B only: metric -> (the columns averaged, their weights).
#: loss_G and loss_D are cycleGAN's G_A and D_A: the LSGAN loss of the generator and 0.5 x (real + fake)
#: of the discriminator (a mean of per-epoch means is the per-epoch mean of the sum); loss_NCE is PatchNCE.
CUT_LOSS_METRICS = {
    "loss_G": (("G_GAN",), (1.0,)),
    "loss_D": (("D_real", "D_fake"), (0.5, 0.5)),
    "loss_NCE": (("NCE",), (1.0,)),
}
#: a change testbed's summary.json (deepsnow change summary): per band set and detector the mean AUC per
#: pair over the held-out areas and gap_synthetic_real = |AUC_synthetic - AUC_real| (smaller: synthetic
#: snow grades the detector as real snow does) -> change_auc_<what>_<bands>_<detector>
CHANGE_METRICS = {"synthetic": ("auc", "synthetic"), "real": ("auc", "real"), "gap": ("gap_synthetic_real",)}
SUMMARY_COLUMNS = ("group", "epoch", "direction", "metric", "mean", "sd", "n", "variants")
FINAL_COLUMNS = (
    "direction", "metric", "epoch", "group_a", "mean_a", "sd_a", "n_a", "group_b", "mean_b", "sd_b", "n_b",
    "difference", "welch_t", "p_value",
)


SWEEP_CORRELATION_COLUMNS = ("scope", *(c if c != "n_epochs" else "n" for c in CORRELATION_COLUMNS))


def _number(text, path, column):
    if text in ("", None):
        return math.nan
    try:
        return float(text)
    except ValueError as exc:
        raise DeepsnowError(f"{path}: column {column!r} holds {text!r}, not a number") from exc


def _flag(text, path, column) -> float:
    """A metrics table's True/False cell as 1.0/0.0 (NaN when empty)."""
    low = (text or "").strip().lower()
    if low in ("", "nan"):
        return math.nan
    if low in ("true", "1", "1.0", "false", "0", "0.0"):
        return float(low in ("true", "1", "1.0"))
    raise DeepsnowError(f"{path}: column {column!r} holds {text!r}, expected True or False")


def _read_rows(path) -> list[dict]:
    try:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise DeepsnowError(f"{path}: cannot read ({exc})") from exc
    if not rows:
        raise DeepsnowError(f"{path}: no rows")
    return rows


def variant_values(table, artifacts=None, losses=None) -> dict[tuple[int, str, str], float]:
    """{(epoch, direction, metric): value} of one variant's metrics.csv (and artifacts.csv, losses.csv)."""
    rows = _read_rows(table)
    for key in ("epoch", "direction"):
        if key not in rows[0]:
            raise DeepsnowError(f"{table}: no column {key!r}; expected a metrics.csv of 'deepsnow metrics table'")
    metrics = [c for c in rows[0] if c in COMPARED or c.startswith(EXTRA_PREFIXES)]
    flags = [c for c in rows[0] if c in PRETRAINED_METRICS]
    values = {}
    for r in rows:
        for m in metrics:
            values[(int(r["epoch"]), r["direction"], m)] = _number(r[m], table, m)
        for m in flags:
            values[(int(r["epoch"]), r["direction"], m)] = _flag(r[m], table, m)
    if artifacts is not None:
        for r in _read_rows(artifacts):
            if r.get("source") == "epoch":
                values[(int(r["epoch"]), "AtoB", ARTIFACT_METRIC)] = _number(r[ARTIFACT_METRIC], artifacts, ARTIFACT_METRIC)
    if losses is not None:
        values |= loss_values(losses)
    return values


def loss_values(path) -> dict[tuple[int, str, str], float]:
    """{(epoch, direction, loss_<name>): value} of one variant's train/losses.csv (per-epoch means): a
    cycleGAN's both directions, a one-sided model's (told by its ``G_GAN`` column) A->B only."""
    rows = _read_rows(path)
    one_sided = "G_GAN" in rows[0]
    needed = {c for cols, _ in CUT_LOSS_METRICS.values() for c in cols} if one_sided else set(LOSS_METRICS)
    missing = sorted(c for c in ("epoch", *needed) if c not in rows[0])
    if missing:
        model = "a CUT / FastCUT" if one_sided else "a cycleGAN"
        raise DeepsnowError(f"{path}: no column(s) {missing}; expected {model} train/losses.csv of 'deepsnow train'")
    if one_sided:
        return {
            (int(r["epoch"]), "AtoB", metric): sum(w * _number(r[c], path, c) for c, w in zip(cols, weights))
            for r in rows
            for metric, (cols, weights) in CUT_LOSS_METRICS.items()
        }
    return {
        (int(r["epoch"]), direction, metric): _number(r[col], path, col)
        for r in rows
        for col, (direction, metric) in LOSS_METRICS.items()
    }


def change_values(path, epoch: int) -> dict[tuple[int, str, str], float]:
    """{(epoch, "AtoB", change_auc_<what>_<bands>_<detector>): value} of one variant's change/summary.json:
    its synthetic products are A->B translations, listed at the comparison's last ``epoch`` (whatever
    checkpoint synthesize.epoch chose: the products exist once per variant)."""
    try:
        gaps = json.loads(Path(path).read_text())["gaps"]
        values = {}
        for bands, per in gaps.items():
            for detector, g in per["detectors"].items():
                for what, keys in CHANGE_METRICS.items():
                    v = g[keys[0]][keys[1]] if len(keys) == 2 else g[keys[0]]
                    values[(epoch, "AtoB", f"change_auc_{what}_{bands}_{detector}")] = _number(v, path, "gaps")
    except OSError as exc:
        raise DeepsnowError(f"{path}: cannot read ({exc})") from exc
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DeepsnowError(
            f"{path}: not a change summary ({type(exc).__name__}: {exc}); expected the summary.json of 'deepsnow change"
            " summary' with gaps per band set and detector (auc.synthetic, auc.real, gap_synthetic_real)"
        ) from exc
    if not values:
        raise DeepsnowError(f"{path}: no detector in its gaps; expected the summary.json of 'deepsnow change summary'")
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
    if len(set(a) | set(b)) == 1:  # one value in both groups (the change testbed's real AUC): t is 0/0
        return math.nan, math.nan
    res = ttest_ind(a, b, equal_var=False)
    return float(res.statistic), float(res.pvalue)


def final_rows(summary: list[dict]) -> list[dict]:
    """Rows of final.csv: each metric's last epoch, each group alone or each pair of groups tested."""
    last = defaultdict(int)  # (direction, metric) -> its last epoch (losses: the last trained one)
    summary = [r for r in summary if r["metric"] not in PRETRAINED_METRICS]
    for r in summary:
        last[(r["direction"], r["metric"])] = max(last[(r["direction"], r["metric"])], r["epoch"])
    at_last = defaultdict(dict)
    for r in summary:
        if r["epoch"] == last[(r["direction"], r["metric"])]:
            at_last[(r["direction"], r["metric"])][r["group"]] = r
    rows = []
    for (direction, metric), per in sorted(at_last.items()):
        names = sorted(per)
        pairs = list(itertools.combinations(names, 2)) or [(names[0], None)]
        for ga, gb in pairs:
            a, b = per[ga], per.get(gb)
            row = {"direction": direction, "metric": metric, "epoch": a["epoch"], "group_a": ga,
                   "mean_a": a["mean"], "sd_a": a["sd"], "n_a": a["n"]}
            if b is not None:
                t, p = welch(a["_values"], b["_values"])
                row |= {"group_b": gb, "mean_b": b["mean"], "sd_b": b["sd"], "n_b": b["n"],
                        "difference": a["mean"] - b["mean"], "welch_t": t, "p_value": p}
            rows.append(row)
    return rows


def sweep_correlations(variants: dict[str, dict]) -> list[dict]:
    """Rows of correlations.csv: rho over every (variant, epoch), then across the variants per epoch."""
    rows = defaultdict(dict)  # one metrics row per (variant, epoch, direction)
    for name, values in variants.items():
        for (epoch, direction, metric), v in values.items():
            rows[(name, epoch, direction)] |= {"epoch": epoch, "direction": direction, metric: v}
    rows = list(rows.values())
    scopes = [("pooled", rows)] + [
        (f"epoch {e}", [r for r in rows if r["epoch"] == e])
        for e in sorted({r["epoch"] for r in rows if any(m in r for m in PAIRED_METRICS)})
    ]
    out = []
    for scope, scoped in scopes:
        out += [{"scope": scope, **c, "n": c["n_epochs"]} for c in correlations(scoped)]
    return out


def compare(
    tables, names, groups, artifacts, summary_path, final_path, losses=None, correlations_path=None, change=None
) -> dict:
    """Read every variant's tables, write summary.csv and final.csv; returns counts for the sidecar."""
    optional = {"--artifacts": artifacts or [], "--losses": losses or [], "--change": change or []}
    if not (len(tables) == len(names) == len(groups)) or any(v and len(v) != len(tables) for v in optional.values()):
        given = ", ".join(f"{k} ({len(v)}, or none)" for k, v in optional.items())
        raise DeepsnowError(
            f"--tables ({len(tables)}), --variants ({len(names)}), --groups ({len(groups)}), {given}"
            " must name the variants in the same order"
        )
    if len(set(names)) != len(names):
        raise DeepsnowError(f"--variants: names repeat: {names}")
    values = {
        n: variant_values(t, artifacts[i] if artifacts else None, losses[i] if losses else None)
        for i, (n, t) in enumerate(zip(names, tables))
    }
    epochs = {n: sorted({k[0] for k in v}) for n, v in values.items()}
    if len({tuple(e) for e in epochs.values()}) > 1:
        raise DeepsnowError(f"the variants' metrics tables hold different epochs: {epochs}")
    for i, n in enumerate(names if change else []):  # the testbed's products: one per variant, at the end
        values[n] |= change_values(change[i], epochs[n][-1])
    summary = summarize(values, dict(zip(names, groups)))
    final = final_rows(summary)
    write_csv(summary_path, summary, SUMMARY_COLUMNS)
    write_csv(final_path, final, FINAL_COLUMNS)
    if correlations_path is not None:
        write_csv(correlations_path, sweep_correlations(values), SWEEP_CORRELATION_COLUMNS)
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

