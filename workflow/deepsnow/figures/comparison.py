"""Figure 11 (issue #17): a sweep's variant groups compared, with their spread over seeds.

Drawn from ``comparison/summary.csv`` (per group, epoch, direction and metric: mean, standard
deviation, n; ``deepsnow metrics compare``). Top row: the per-epoch curves of Figures 3 (FID),
5 (RF log loss) and 7 (checkerboard score) as each group's mean with a ± 1 s.d. band over its
variants. Bottom row: the last epoch's FID, FRD, CRD, KID, RF log loss, checkerboard score and
paired L1 per group, mean with ± 1 s.d. error bars (A->B, the snow direction).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from deepsnow import DeepsnowError
from deepsnow.figures.common import Drawn, new_figure, panel_label, suptitle

#: per-epoch panels: metric -> (the figure it extends, y label)
BANDS = {
    "fid": ("Figure 3", "FID"),
    "rf_logloss_mean": ("Figure 5", "RF log loss (nats; ln 2 = chance)"),
    "checkerboard_score": ("Figure 7", "checkerboard score"),
}
#: final-epoch bars: metric -> label
FINAL = {
    "fid": "FID",
    "frd": "FRD",
    "crd": "CRD",
    "kid_mean": "KID",
    "rf_logloss_mean": "RF log loss",
    "checkerboard_score": "checkerboard",
    "paired_l1": "paired L1",
}
DIRECTION = "AtoB"


def build_figure11(params: dict, comparison_summary) -> Drawn:
    from deepsnow.metrics.compare import read_summary

    rows = [r for r in read_summary(comparison_summary) if r["direction"] == DIRECTION]
    if not rows:
        raise DeepsnowError(f"{comparison_summary}: no {DIRECTION} rows")
    groups = sorted({r["group"] for r in rows})
    table = {(r["group"], r["metric"], r["epoch"]): r for r in rows}
    fig = figure11(table, groups, max(r["epoch"] for r in rows))
    n = {g: max(r["n"] for r in rows if r["group"] == g) for g in groups}
    return Drawn(fig, [Path(comparison_summary)], {"groups": groups, "variants_per_group": n})


def _series(table, group, metric):
    epochs = sorted(e for (g, m, e) in table if g == group and m == metric)
    mean = np.array([table[(group, metric, e)]["mean"] for e in epochs], dtype=float)
    sd = np.array([table[(group, metric, e)]["sd"] for e in epochs], dtype=float)
    return np.array(epochs), mean, sd


def figure11(table, groups, last: int):
    fig = new_figure(13.0, 7.0)
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.15, 1.0])
    for i, (ax, (metric, (source, label))) in enumerate(zip(top.subplots(1, len(BANDS)), BANDS.items())):
        for k, g in enumerate(groups):
            epochs, mean, sd = _series(table, g, metric)
            if not epochs.size:
                continue
            ax.plot(epochs, mean, marker="o", markersize=3, color=f"C{k}", label=g)
            ok = np.isfinite(sd)
            if ok.any():
                ax.fill_between(epochs[ok], (mean - sd)[ok], (mean + sd)[ok], color=f"C{k}", alpha=0.2)
        if metric == "rf_logloss_mean":
            ax.axhline(math.log(2.0), color="0.3", linestyle="--", linewidth=1.0)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        panel_label(ax, "abc"[i], f"{label} per epoch (as {source})")
        ax.legend(loc="best", fontsize=8)
    axes = bottom.subplots(1, len(FINAL))
    for i, (ax, (metric, label)) in enumerate(zip(axes, FINAL.items())):
        got = [(k, g, table.get((g, metric, last))) for k, g in enumerate(groups)]
        got = [(k, g, r) for k, g, r in got if r is not None and math.isfinite(r["mean"])]
        for k, g, r in got:
            ax.bar(k, r["mean"], yerr=0.0 if not math.isfinite(r["sd"]) else r["sd"], color=f"C{k}", capsize=4)
        ax.set_xticks([k for k, _, _ in got], [g for _, g, _ in got], rotation=30, ha="right", fontsize=8)
        ax.set_title(label if got else f"{label}\n(not measured)", fontsize=9)
        if i == 0:
            panel_label(ax, "d", "")
    suptitle(fig, f"Variant groups compared: mean ± 1 s.d. over each group's seeds (A→B; bars: epoch {last})")
    return fig
