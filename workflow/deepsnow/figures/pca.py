"""Figure 6: pair plot of the PCA of ResNet features (first epoch, last epoch, real).

Off the diagonal: scatter of one principal component against another; on the
diagonal: a Gaussian kernel density estimate of each group
(:class:`scipy.stats.gaussian_kde`), or a density histogram when the KDE is
impossible (fewer than 2 samples, or all values equal).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from deepsnow import DeepsnowError
from deepsnow.figures import common
from deepsnow.figures.common import Drawn, new_figure, numeric, suptitle

log = logging.getLogger("deepsnow.figures")

#: colours of the paper's Figure 6: epoch 1 blue, last epoch orange, real green
COLORS = {"first": "C0", "last": "C1", "real": "C2"}


def _read_summary(path) -> dict:
    path = Path(path)
    if not path.exists():
        raise DeepsnowError(f"{path}: file not found (PCA summary)")
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DeepsnowError(f"{path}: unreadable PCA summary JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise DeepsnowError(f"{path}: expected a JSON object (from 'deepsnow metrics pca')")
    return doc


def build_figure6(params: dict, pca, pca_summary) -> Drawn:
    """Figure 6 from metrics/pca.csv and pca.json, for the direction ``figures.pca_direction``."""
    direction = params["pca_direction"]
    df = common.read_csv(pca, common.PCA_REQUIRED, "PCA table")
    summary = _read_summary(pca_summary)
    groups, pcs = pca_groups(df, direction, pca)
    explained = (summary.get("directions", {}).get(direction) or {}).get("explained_variance_ratio")
    note = common.summary_weights_note(summary.get("pretrained"), summary.get("weights", ""), summary.get("extractor", "resnet50"))
    if "pretrained" not in summary and "weights" not in summary:
        log.warning("%s: no 'pretrained'/'weights' keys; cannot say whether the features used pretrained weights", pca_summary)
    fig = figure6(groups, pcs, explained, direction, note)
    extra = {"direction": direction, "groups": {g[0]: int(len(g[2])) for g in groups}}
    return Drawn(fig, [Path(pca), Path(pca_summary)], extra)


def pca_groups(df, direction: str, path) -> tuple[list[tuple[str, str, np.ndarray]], list[str]]:
    """[(label, colour, (n, k) coordinates)] for the first epoch, the last epoch and the real samples."""
    pcs = [c for c in df.columns if c.startswith("pc") and c[2:].isdigit()]
    pcs = sorted(pcs, key=lambda c: int(c[2:]))[:3]
    if not pcs:
        raise DeepsnowError(f"{path}: no pc1, pc2, ... columns")
    sel = df[df["direction"].astype(str) == direction]
    if sel.empty:
        raise DeepsnowError(f"{path}: no {direction} rows (directions present: {sorted(df['direction'].astype(str).unique())})")
    coords = np.column_stack([numeric(sel, c, path) for c in pcs])
    source = sel["source"].astype(str).to_numpy()
    real = coords[source == "real"]
    gen = source != "real"
    ep = numeric(sel, "epoch", path)
    epochs = sorted({int(e) for e in ep[gen] if np.isfinite(e)})
    groups = []
    if epochs:
        first, last = epochs[0], epochs[-1]
        groups.append((f"generated, epoch {first}", COLORS["first"], coords[gen & (ep == first)]))
        if last != first:
            groups.append((f"generated, epoch {last}", COLORS["last"], coords[gen & (ep == last)]))
    if len(real):
        domain = "B, snowy" if direction == "AtoB" else "A, snow-free"
        groups.append((f"real (domain {domain})", COLORS["real"], real))
    groups = [g for g in groups if len(g[2])]
    if not groups:
        raise DeepsnowError(f"{path}: no {direction} samples to plot")
    return groups, pcs


def density(ax, values: np.ndarray, color: str, label: str, grid: np.ndarray) -> str:
    """Draw a KDE of ``values`` on ``grid``; fall back to a histogram. Returns "kde" or "hist"."""
    from scipy.stats import gaussian_kde

    values = values[np.isfinite(values)]
    try:
        if len(values) < 2 or np.ptp(values) == 0:
            raise ValueError("fewer than 2 distinct values")
        kde = gaussian_kde(values)
        y = kde(grid)
        if not np.all(np.isfinite(y)):
            raise ValueError("non-finite density")
        ax.plot(grid, y, color=color, label=label)
        ax.fill_between(grid, y, color=color, alpha=0.15)
        return "kde"
    except (ValueError, np.linalg.LinAlgError):
        if len(values) == 0:
            return "hist"
        lo, hi = float(grid[0]), float(grid[-1])
        if np.ptp(values) == 0:
            w = max((hi - lo) / 40, 1e-9)
            bins = [values[0] - w, values[0] + w]
        else:
            bins = np.linspace(lo, hi, 16)
        ax.hist(values, bins=bins, density=True, color=color, alpha=0.45, label=f"{label} (histogram)", histtype="stepfilled")
        return "hist"


def figure6(groups, pcs, explained=None, direction: str = "AtoB", note: str = ""):
    """The pair plot; ``explained``: explained variance ratio per component (or None)."""
    k = len(pcs)
    fig = new_figure(2.45 * k + 0.6, 2.3 * k + 0.9)
    axes = fig.subplots(k, k, squeeze=False)
    allv = np.concatenate([g[2] for g in groups])

    def label(i):
        s = f"PC{i + 1} score (a.u."
        if explained is not None and i < len(explained):
            s += f", {100 * explained[i]:.1f}% var."
        return s + ")"

    limits = []
    for i in range(k):
        v = allv[:, i][np.isfinite(allv[:, i])]
        lo, hi = (float(v.min()), float(v.max())) if len(v) else (0.0, 1.0)
        pad = 0.08 * (hi - lo) if hi > lo else 1.0
        limits.append((lo - pad, hi + pad))
    kinds = set()
    for i in range(k):
        for j in range(k):
            ax = axes[i, j]
            if i == j:
                grid = np.linspace(*limits[j], 200)
                for name, color, xy in groups:
                    kinds.add(density(ax, xy[:, j], color, name, grid))
                ax.set_ylabel("density (1/a.u.)")
                ax.set_ylim(bottom=0)
            else:
                for name, color, xy in groups:
                    ax.scatter(xy[:, j], xy[:, i], s=10, color=color, alpha=0.7, edgecolors="none", label=name)
                ax.set_ylabel(label(i))
                ax.set_ylim(*limits[i])
            ax.set_xlim(*limits[j])
            ax.set_xlabel(label(j))
    handles, labels = axes[0, -1 if k > 1 else 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), markerscale=1.8)
    dens = "kernel density" if kinds == {"kde"} else ("histogram (KDE impossible)" if kinds == {"hist"} else "kernel density / histogram")
    title = f"PCA of ResNet features ({direction}): off-diagonal scatter, diagonal {dens}"
    if note:
        title += "\n" + note.lstrip(" —")
    suptitle(fig, title)
    return fig
