"""Figure 10: the change-detection testbed, real vs synthetic vs true after-images.

Per detector (columns) and band set: the ROC curves of the implanted changes for the pairs
(before, real after), (before, synthetic after) and (before, true after) of every held-out
area (at most MAX_AREAS, line styles), and below them the score histograms of the untouched
pixels. The title states the gap |AUC_synthetic - AUC_real| per detector and whether the
detectors rank the same on synthetic snow as on real snow (from ``change/summary.json``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from deepsnow import DeepsnowError
from deepsnow.figures import common

COLOURS = {"real": "tab:blue", "synthetic": "tab:orange", "truth": "tab:green"}
STYLES = ("-", "--", ":", "-.")
MAX_AREAS = len(STYLES)


def read_summary(path) -> dict:
    """The change summary, checked for the keys Figure 10 draws."""
    try:
        summary = json.loads(Path(path).read_text())
        areas, gaps, sentences = summary["areas"], summary["gaps"], summary["sentences"]
        for rec in areas:
            rec["area"], rec["roc_fpr"], rec["band_sets"]  # noqa: B018 (presence check)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DeepsnowError(f"{path}: not a readable change summary (change/summary.json): {exc}") from exc
    if not areas:
        raise DeepsnowError(f"{path}: the change summary has no areas")
    return {"areas": areas, "gaps": gaps, "sentences": sentences}


def build_figure10(params: dict, change_summary) -> common.Drawn:
    """Figure 10 from change/summary.json."""
    summary = read_summary(change_summary)
    fig = figure10(summary["areas"][:MAX_AREAS], summary["sentences"])
    extra = {w: {d: v["gap_synthetic_real"] for d, v in g["detectors"].items()} for w, g in summary["gaps"].items()}
    return common.Drawn(fig, [Path(change_summary)], {"gap_synthetic_real": extra})


def figure10(areas: list[dict], sentences: dict):
    """ROC curves (top) and untouched-pixel score histograms (bottom) per detector and band set."""
    band_sets = list(areas[0]["band_sets"])
    detectors = list(areas[0]["band_sets"][band_sets[0]])
    fig = common.new_figure(2.6 * len(detectors), 2 * 2.4 * len(band_sets) + 1.2)
    axes = fig.subplots(2 * len(band_sets), len(detectors), squeeze=False)
    for b, which in enumerate(band_sets):
        for j, det in enumerate(detectors):
            roc_ax, hist_ax = axes[2 * b, j], axes[2 * b + 1, j]
            for k, rec in enumerate(areas):
                _draw_area(roc_ax, hist_ax, rec, which, det, STYLES[k])
            roc_ax.plot([1e-4, 1], [1e-4, 1], color="0.7", lw=0.8)
            roc_ax.set_xscale("log")
            roc_ax.set_xlim(1e-4, 1)
            roc_ax.set_ylim(0, 1.02)
            roc_ax.set_xlabel("false-alarm rate")
            roc_ax.set_ylabel("detection rate")
            roc_ax.set_title(f"{det} ({band_label(areas[0], which)})")
            roc_ax.legend(loc="lower right", fontsize=6)
            hist_ax.set_xlabel("anomaly score (untouched pixels)")
            hist_ax.set_ylabel("density")
    words = " ".join(f"[{w}] {s}" for w, s in sentences.items())
    common.suptitle(fig, "Figure 10: change detectors on real vs synthetic vs true after-images. " + words)
    return fig


def band_label(rec: dict, which: str) -> str:
    """A band set as a panel names it: ``rgb``, or ``reflectance: 10 bands`` from the record's band names
    (a summary written before they were recorded: the band set's name alone)."""
    names = rec.get("band_names", {}).get(which, "").split()
    return which if which == "rgb" or not names else f"{which}: {len(names)} bands"


def _draw_area(roc_ax, hist_ax, rec: dict, which: str, det: str, ls: str) -> None:
    res = rec["band_sets"][which][det]
    fpr = np.asarray(rec["roc_fpr"])
    edges = np.asarray(res["hist_edges"])
    for pair, r in res["pairs"].items():
        colour = COLOURS.get(pair, "k")
        roc_ax.plot(fpr, r["roc_tpr"], ls=ls, color=colour, label=f"{rec['area']} {pair} AUC {r['auc']:.3f}")
        counts = np.asarray(r["hist_counts"], dtype=float)
        density = counts / max(counts.sum(), 1.0) / np.diff(edges)
        hist_ax.stairs(density, edges, color=colour, ls=ls, label=f"{rec['area']} {pair}")
    hist_ax.axvline(res["threshold"], color="0.4", lw=0.8, ls=ls)
