"""Figure 12: every metric along every degradation ladder, normalised, with bootstrap bands.

Rows: the ladders; columns: per mode (half, truth) the distances (larger = worse: FID, FRD, CRD,
KID, ``fd_``/``cd_``) and the scores (smaller = worse: RF log loss, precision, recall, density,
coverage). Each curve is turned so that "worse" is up and scaled so that level 0 sits at 0 and the
largest departure at 1: a metric that tracks the ladder climbs from 0 to 1; its band is its
bootstrap 95 % interval on the same scale. The legend gives each metric's rho on that ladder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deepsnow import DeepsnowError
from deepsnow.figures import common

#: the columns of metrics/validity.csv Figure 12 reads
VALIDITY_REQUIRED = ("mode", "ladder", "metric", "level", "value", "ci_low", "ci_high", "worse_when", "rho")
GROUPS = {"higher": "distances (larger = worse)", "lower": "scores (smaller = worse)"}


def build_figure12(params: dict, validity) -> common.Drawn:
    """Figure 12 from metrics/validity.csv."""
    df = common.read_csv(validity, VALIDITY_REQUIRED, "metric validity table")
    for column in ("level", "value", "ci_low", "ci_high", "rho"):
        common.numeric(df, column, validity)
    bad = sorted(set(df["worse_when"]) - set(GROUPS))
    if bad:
        raise DeepsnowError(f"{validity}: worse_when must be 'higher' or 'lower', found {bad}")
    fig = figure12(df)
    rho = df.groupby(["mode", "ladder", "metric"])["rho"].first()
    extra = {"rows": int(len(df)), "monotone_everywhere": _monotone_everywhere(rho)}
    return common.Drawn(fig, [Path(validity)], extra)


def _monotone_everywhere(rho) -> dict[str, list[str]]:
    """Per mode, the metrics whose rho is at least 0.8 on every ladder (one it does not move on, rho
    empty, fails: e.g. every RGB metric on the spectral ladder of a reflectance run)."""
    out = {}
    for mode, per_mode in rho.groupby(level="mode"):
        lowest = per_mode.fillna(-np.inf).groupby(level="metric").min()
        out[str(mode)] = sorted(m for m, r in lowest.items() if np.isfinite(r) and r >= 0.8)
    return out


def normalised(rows) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One metric along one ladder: levels, and value, band low and high turned so that worse is
    up, shifted to 0 at level 0 and scaled to a largest departure of 1."""
    rows = rows.sort_values("level")
    sign = 1.0 if rows["worse_when"].iloc[0] == "higher" else -1.0
    levels = rows["level"].to_numpy(float)
    v0 = float(rows["value"].iloc[0])
    value = sign * (rows["value"].to_numpy(float) - v0)
    lo, hi = (sign * (rows[c].to_numpy(float) - v0) for c in ("ci_low", "ci_high"))
    scale = np.nanmax(np.abs(value)) if np.isfinite(value).any() else 0.0
    scale = scale if scale > 0 else 1.0
    return levels, value / scale, np.fmin(lo, hi) / scale, np.fmax(lo, hi) / scale


def figure12(df):
    modes = list(dict.fromkeys(df["mode"]))
    ladders = list(dict.fromkeys(df["ladder"]))
    metrics = list(dict.fromkeys(df["metric"]))
    colours = {m: f"C{i % 10}" for i, m in enumerate(metrics)}
    styles = {m: ("-", "--", ":")[(i // 10) % 3] for i, m in enumerate(metrics)}
    columns = [(mode, group) for mode in modes for group in GROUPS]
    fig = common.new_figure(4.2 * len(columns), 2.6 * len(ladders) + 1.4)
    axes = fig.subplots(len(ladders), len(columns), squeeze=False, sharex=True)
    for r, ladder in enumerate(ladders):
        for c, (mode, group) in enumerate(columns):
            ax = axes[r, c]
            part = df[(df["mode"] == mode) & (df["ladder"] == ladder) & (df["worse_when"] == group)]
            for metric, rows in part.groupby("metric", sort=False):
                levels, value, low, high = normalised(rows)
                rho = rows["rho"].iloc[0]
                label = f"{metric} ρ {rho:.2f}" if np.isfinite(rho) else f"{metric} ρ n/a"
                ax.plot(levels, value, styles[metric], color=colours[metric], marker="o", ms=2.5, lw=1.0, label=label)
                ax.fill_between(levels, low, high, color=colours[metric], alpha=0.08, lw=0)
            ax.axhline(0, color="0.6", lw=0.8)
            ax.set_ylim(-1.6, 1.6)
            ax.set_title(f"{ladder} · {mode} · {GROUPS[group]}", fontsize=8)
            if c == 0:
                ax.set_ylabel("worse →  (normalised)")
            if r == len(ladders) - 1:
                ax.set_xlabel("degradation level")
            if len(part):
                ax.legend(fontsize=5, loc="upper left", ncol=2, frameon=False)
    common.suptitle(
        fig,
        "Figure 12: every metric along degradation ladders of known severity (0 = the perfect translation). "
        "Up = the metric says worse; 0 = its level-0 value, 1 = its largest departure; bands: bootstrap 95 % intervals.",
    )
    return fig
