"""A sweep's figures: the variant groups compared, with their spread over seeds.

All are drawn from ``comparison/summary.csv`` (per group, epoch, direction and metric: mean,
standard deviation, n; ``deepsnow metrics compare``), as ``comparison/figureN.png``:

* Figures 3, 5 and 7 per group: each per-variant figure's per-epoch curves (Figure 3's losses,
  FID, FRD and CRD; Figure 5's RF log loss; Figure 7's checkerboard score) as each group's mean
  with a ± 1 s.d. band over its variants (A->B, the snow direction, as the per-variant figures);
* Figure 11: FID, RF log loss and checkerboard score per epoch (the three above, side by side), and
  the last epoch's FID, FRD, CRD, KID, RF log loss, checkerboard score and paired L1 per group as
  mean with ± 1 s.d. error bars.

Every title flags random (non-pretrained) extractor weights when any variant used them (the
summary's ``*_pretrained`` rows).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from deepsnow import DeepsnowError
from deepsnow.figures.common import NOT_COMPARABLE, Drawn, epoch_axis, new_figure, panel_label, suptitle

DIRECTION = "AtoB"
LN2 = math.log(2.0)
#: Figure 11's per-epoch panels: metric -> (the figure it extends, y label)
BANDS = {
    "fid": ("Figure 3", "FID"),
    "rf_logloss_mean": ("Figure 5", "RF log loss (nats; ln 2 = chance)"),
    "checkerboard_score": ("Figure 7", "checkerboard score"),
}
#: Figure 11's final-epoch bars: metric -> label
FINAL = {
    "fid": "FID",
    "frd": "FRD",
    "crd": "CRD",
    "kid_mean": "KID",
    "rf_logloss_mean": "RF log loss",
    "checkerboard_score": "checkerboard",
    "paired_l1": "paired L1",
}
#: Figure 3's loss panel: summary metric -> (label, line style); the A->B losses (cycleGAN: G_A, D_A,
#: cycle_A; CUT / FastCUT: G_GAN, 0.5 (D_real + D_fake), NCE)
LOSSES = {
    "loss_G": ("generator (adversarial)", "-"),
    "loss_D": ("discriminator", "--"),
    "loss_cycle": ("cycle A→B→A (L1 × λ; cycleGAN)", ":"),
    "loss_NCE": ("PatchNCE (× λ_NCE; CUT, FastCUT)", "-."),
}
#: which extractor each pretrained flag is about
PRETRAINED = {"inception_pretrained": "Inception", "resnet_pretrained": "ResNet"}


class Summary:
    """One direction of a comparison/summary.csv: {(group, metric, epoch): row}, its groups and their sizes."""

    def __init__(self, path, direction: str = DIRECTION):
        from deepsnow.metrics.compare import read_summary

        rows = [r for r in read_summary(path) if r["direction"] == direction]
        if not rows:
            raise DeepsnowError(f"{path}: no {direction} rows; expected a comparison/summary.csv of a sweep")
        self.path = Path(path)
        self.table = {(r["group"], r["metric"], r["epoch"]): r for r in rows}
        self.groups = sorted({r["group"] for r in rows})
        self.n = {g: max(r["n"] for r in rows if r["group"] == g) for g in self.groups}

    def series(self, group: str, metric: str):
        """Epochs, means and s.d.s of one group's metric, by epoch."""
        epochs = sorted(e for (g, m, e) in self.table if g == group and m == metric)
        mean = np.array([self.table[(group, metric, e)]["mean"] for e in epochs], dtype=float)
        sd = np.array([self.table[(group, metric, e)]["sd"] for e in epochs], dtype=float)
        return np.array(epochs, dtype=int), mean, sd

    def last(self, metric: str) -> int | None:
        epochs = [e for (_, m, e) in self.table if m == metric]
        return max(epochs) if epochs else None

    def has(self, metric: str) -> bool:
        return any(np.isfinite(self.series(g, metric)[1]).any() for g in self.groups)

    def weights_note(self, flags=tuple(PRETRAINED)) -> str:
        """The flag of random extractor weights, when any variant used them ("" otherwise)."""
        random = [PRETRAINED[f] for f in flags
                  if any(r["mean"] < 1.0 for (_, m, _), r in self.table.items() if m == f and math.isfinite(r["mean"]))]
        return f"\nRANDOM (non-pretrained) {'/'.join(random)} weights: {NOT_COMPARABLE}" if random else ""

    def drawn(self, fig) -> Drawn:
        return Drawn(fig, [self.path], {"groups": self.groups, "variants_per_group": self.n})


def band(ax, summary: Summary, group: str, metric: str, color: str, label=None, linestyle="-") -> bool:
    """One group's mean per epoch with a ± 1 s.d. band; False when it has no values."""
    epochs, mean, sd = summary.series(group, metric)
    ok = np.isfinite(mean)
    if not ok.any():
        return False
    ax.plot(epochs[ok], mean[ok], marker="o", markersize=3, color=color, linestyle=linestyle, label=label)
    spread = ok & np.isfinite(sd)
    if spread.any():
        ax.fill_between(epochs[spread], (mean - sd)[spread], (mean + sd)[spread], color=color, alpha=0.2, linewidth=0)
    return True


def _groups_panel(ax, summary: Summary, metric: str, ylabel: str, letter: str, title: str) -> None:
    drawn = [band(ax, summary, g, metric, f"C{k}", label=g) for k, g in enumerate(summary.groups)]
    if not any(drawn):
        ax.text(0.5, 0.5, "not measured", transform=ax.transAxes, ha="center", va="center", color="0.4")
    else:
        ax.legend(loc="best", fontsize=8)
    ax.set_ylabel(ylabel)
    epoch_axis(ax)
    panel_label(ax, letter, title)


def _builder(draw):
    """A figure table builder: read the summary, ``draw(summary)``, record the summary as the input."""

    def build(params: dict, comparison_summary) -> Drawn:
        summary = Summary(comparison_summary)
        return summary.drawn(draw(summary))

    build.__name__ = build.__qualname__ = f"build_{draw.__name__}"
    return build


def _one_panel(summary: Summary, metric: str, ylabel: str, title: str, level: tuple, heading: str):
    """Figures 5 and 7 per group: one metric's bands with a reference level ``(y, label, style)``."""
    fig = new_figure(6.4, 4.4)
    ax = fig.subplots()
    _groups_panel(ax, summary, metric, ylabel, "a", title)
    y, label, style = level
    ax.axhline(y, color="0.35", linestyle=style, linewidth=1.1, label=label)
    ax.legend(loc="best", fontsize=8)
    suptitle(fig, heading)
    return fig


def _spread_title(summary: Summary) -> str:
    n = ", ".join(f"{g}: {summary.n[g]}" for g in summary.groups)
    return f"mean ± 1 s.d. over each group's variants ({n})"


# ----------------------------------------------------------------------------- Figures 3, 5, 7 per group


def figure3(summary: Summary):
    fig = new_figure(8.0, 6.4)
    axes = fig.subplots(2, 2)
    _loss_panel(axes[0, 0], summary)
    for ax, metric, letter, title, ylabel in (
        (axes[0, 1], "fid", "b", "Fréchet Inception Distance", "FID (squared units)"),
        (axes[1, 0], "frd", "c", "Fréchet ResNet Distance", "FRD (squared units)"),
        (axes[1, 1], "crd", "d", "Cosine ResNet Distance", "CRD (1 − mean cosine similarity)"),
    ):
        _groups_panel(ax, summary, metric, ylabel, letter, title)
    suptitle(fig, f"Training dynamics per variant group (snow-free → snow), {_spread_title(summary)}"
             + summary.weights_note())
    return fig


def _loss_panel(ax, summary: Summary) -> None:
    """Figure 3 (a): the A->B losses per group, colour by group, line style by loss."""
    from matplotlib.lines import Line2D

    for k, g in enumerate(summary.groups):
        for metric, (_, style) in LOSSES.items():
            band(ax, summary, g, metric, f"C{k}", linestyle=style)
    handles = [Line2D([], [], color=f"C{k}", label=g) for k, g in enumerate(summary.groups)]
    present = [m for m in LOSSES if summary.has(m)]  # a sweep of one model family draws its losses only
    handles += [Line2D([], [], color="0.3", linestyle=LOSSES[m][1], label=LOSSES[m][0]) for m in present]
    if not present:
        ax.text(0.5, 0.5, "no losses in the summary", transform=ax.transAxes, ha="center", va="center", color="0.4")
    ax.legend(handles=handles, loc="upper right", fontsize=7, ncol=2)
    ax.set_ylabel("loss (per-epoch mean, unitless)")
    epoch_axis(ax)
    panel_label(ax, "a", "losses, snow direction (A→B)")


def figure5(summary: Summary):
    return _one_panel(
        summary, "rf_logloss_mean", "RF log loss, real vs generated (nats)", "",
        (LN2, f"chance (ln 2 ≈ {LN2:.3f})", "--"),
        f"Random forest, real vs generated snow images, per variant group: {_spread_title(summary)}"
        + summary.weights_note(("resnet_pretrained",)),
    )


def figure7(summary: Summary):
    return _one_panel(
        summary, "checkerboard_score", "checkerboard score\n(power ratio, unitless)", "power at 1/2 and 1/4 cycles/px",
        (1.0, "white-noise level (1)", ":"),
        f"Generator artifacts per variant group (translated vs original), {_spread_title(summary)}",
    )


# ----------------------------------------------------------------------------- Figure 11


def figure11(summary: Summary):
    fig = new_figure(13.0, 7.0)
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.15, 1.0])
    for i, (ax, (metric, (source, label))) in enumerate(zip(top.subplots(1, len(BANDS)), BANDS.items())):
        _groups_panel(ax, summary, metric, label, "abc"[i], f"{label} per epoch (as {source})")
        if metric == "rf_logloss_mean":
            ax.axhline(LN2, color="0.3", linestyle="--", linewidth=1.0)
    for i, (ax, (metric, label)) in enumerate(zip(bottom.subplots(1, len(FINAL)), FINAL.items())):
        _final_bars(ax, summary, metric, label)
        if i == 0:
            panel_label(ax, "d", "")
    last = max(summary.last(m) or 0 for m in FINAL)
    suptitle(fig, f"Variant groups compared: mean ± 1 s.d. over each group's seeds (A→B; bars: epoch {last})"
             + summary.weights_note())
    return fig


def _final_bars(ax, summary: Summary, metric: str, label: str) -> None:
    """One metric at its last epoch: a bar per group with ± 1 s.d. error bars."""
    last = summary.last(metric)
    got = [(k, g, summary.table.get((g, metric, last))) for k, g in enumerate(summary.groups)]
    got = [(k, g, r) for k, g, r in got if r is not None and math.isfinite(r["mean"])]
    for k, g, r in got:
        ax.bar(k, r["mean"], yerr=0.0 if not math.isfinite(r["sd"]) else r["sd"], color=f"C{k}", capsize=4)
    ax.set_xticks([k for k, _, _ in got], [g for _, g, _ in got], rotation=30, ha="right", fontsize=8)
    ax.set_title(label if got else f"{label}\n(not measured)", fontsize=9)


build_figure3, build_figure5, build_figure7, build_figure11 = map(_builder, (figure3, figure5, figure7, figure11))
