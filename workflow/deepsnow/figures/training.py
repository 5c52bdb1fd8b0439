"""Figures 3, 5 and 8: how training goes, the losses and metrics per epoch.

Inputs are the tables of the train and metrics stages (``train/losses.csv``,
``metrics/metrics.csv``, ``metrics/correlations.csv``), read and checked with
:mod:`deepsnow.figures.common` by each figure's builder.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from deepsnow import DeepsnowError
from deepsnow.figures import common
from deepsnow.figures.common import Drawn, epoch_axis, new_figure, numeric, panel_label, suptitle, weights_note

LN2 = math.log(2.0)

#: unpaired metrics of Figure 8: column -> (short name, y label)
FIG8_METRICS = {
    "fid": ("FID", "FID (Inception features, squared units)"),
    "frd": ("FRD", "FRD (ResNet-50 features, squared units)"),
    "crd": ("CRD", "CRD (1 − mean cosine similarity)"),
    "kid_mean": ("KID", "KID (Inception features, squared units)"),
    "rf_logloss_mean": ("RF log loss", "RF log loss (nats)"),
}
#: a reflectance run's spectral distances (:mod:`deepsnow.metrics.spectral`), a further row of Figure 8
FIG8_SPECTRAL = {
    "w1_mean": ("W1 mean", "W1 per band, mean (reflectance)"),
    "ndsi_w1": ("NDSI W1", "W1 of the pixels' NDSI"),
    "sam_w1": ("angle W1", "W1 of the spectral angles (radians)"),
}
#: the physical checks against the simulator's truth: columns of Figure 8's ρ table when correlations.csv has them
FIG8_PHYSICAL = (("snow_cover_mae", "ρ(snow MAE)"), ("snow_iou", "ρ(IoU)"))
PAIRED_LABEL = "paired L1 vs snowfall truth (0–1 scale)"
#: a reflectance run's (its metrics.csv has the spectral columns, ``w1_mean``): L1 in reflectance
PAIRED_REFLECTANCE_LABEL = "paired L1 vs snowfall truth (reflectance)"


def _metrics_rows(path, direction: str = "AtoB"):
    df = common.read_csv(path, common.METRICS_REQUIRED, "metrics table")
    return common.direction_rows(df, direction, path)


def _require_columns(rows, path, columns) -> None:
    for col in columns:
        if col not in rows.columns:
            raise DeepsnowError(f"{path}: metrics table lacks column {col!r}; found {list(rows.columns)}")


def _plot_metric(ax, epochs, values, label=None, color="C0", marker="o"):
    ok = np.isfinite(values)
    if not ok.any():
        ax.text(0.5, 0.5, "no values", transform=ax.transAxes, ha="center", va="center", color="0.4")
        return None
    return ax.plot(np.asarray(epochs)[ok], values[ok], marker=marker, color=color, label=label)[0]


def build_figure3(params: dict, losses, metrics) -> Drawn:
    ldf = _losses_table(losses)
    rows = _metrics_rows(metrics)
    _require_columns(rows, metrics, ("fid", "frd", "crd"))
    fig = figure3(ldf, losses, rows, metrics)
    return Drawn(fig, [Path(losses), Path(metrics)], {"epochs": rows["epoch"].tolist()})


#: panel (a) of Figure 3 per model: (column, label, colour) of each loss drawn, and the title's model name
LOSS_PANELS = {
    "cyclegan": (
        (
            ("G_A", "generator G_A (adversarial)", "C0"),
            ("D_A", "discriminator D_A", "C1"),
            ("cycle_A", "cycle-consistency A→B→A (L1 × λ)", "C2"),
        ),
        "CycleGAN",
    ),
    "cut": (
        (
            ("G_GAN", "generator G (adversarial)", "C0"),
            ("D_real", "discriminator D, real B", "C1"),
            ("D_fake", "discriminator D, fake B", "C6"),
            ("NCE", "PatchNCE (× λ_NCE)", "C2"),
        ),
        "CUT",
    ),
}


def _losses_table(path):
    """The training losses table: a cycleGAN's (G_A, D_A, cycle_A, ...) or a one-sided model's
    (G_GAN, D_real, D_fake, NCE, ...), told apart by its columns."""
    head = common.read_csv(path, ("epoch",), "training losses table")
    required = common.LOSSES_REQUIRED if "G_A" in head.columns else common.CUT_LOSSES_REQUIRED
    return common.read_csv(path, required, "training losses table")


def loss_panel(losses) -> tuple[tuple, str]:
    """The curves of panel (a) and the model's name for the losses table's model."""
    return LOSS_PANELS["cyclegan" if "G_A" in losses.columns else "cut"]


def figure3(losses, losses_path, rows, metrics_path):
    """(a) the losses of the snow direction per epoch (cycleGAN: G_A, D_A, cycle_A; CUT / FastCUT:
    G_GAN, D_real, D_fake, NCE); (b) FID, (c) FRD, (d) CRD per epoch (AtoB rows)."""
    fig = new_figure(7.5, 6.0)
    axes = fig.subplots(2, 2)
    ax = axes[0, 0]
    ep = numeric(losses, "epoch", losses_path)
    curves, model_name = loss_panel(losses)
    for col, label, color in curves:
        _plot_metric(ax, ep, numeric(losses, col, losses_path), label=label, color=color)
    _headroom(ax, 0.45)
    ax.legend(loc="upper right")
    ax.set_ylabel("loss (per-epoch mean, unitless)")
    epoch_axis(ax)
    panel_label(ax, "a", "losses, snow direction (A→B)")

    inc_note = " [random weights]" if weights_note(rows, ("inception",)) else ""
    res_note = " [random weights]" if weights_note(rows, ("resnet",)) else ""
    inc = str(rows["inception_extractor"].iloc[0])
    res = str(rows["resnet_extractor"].iloc[0])
    epochs = rows["epoch"].to_numpy()
    for ax, col, letter, title, ylabel, color in (
        (axes[0, 1], "fid", "b", f"Fréchet Inception Distance{inc_note}", f"FID ({inc} features, squared units)", "C3"),
        (axes[1, 0], "frd", "c", f"Fréchet ResNet Distance{res_note}", f"FRD ({res} features, squared units)", "C4"),
        (axes[1, 1], "crd", "d", f"Cosine ResNet Distance{res_note}", "CRD (1 − mean cosine similarity)", "C5"),
    ):
        _plot_metric(ax, epochs, numeric(rows, col, metrics_path), color=color)
        ax.set_ylabel(ylabel)
        epoch_axis(ax)
        panel_label(ax, letter, title)
    suptitle(fig, f"{model_name} training dynamics (snow-free → snow)" + _wrap_note(weights_note(rows)))
    return fig


def _headroom(ax, frac: float) -> None:
    """Extend the y axis upwards by ``frac`` of its range, room for a legend above the curves."""
    lo, hi = ax.get_ylim()
    ax.set_ylim(lo, hi + frac * (hi - lo))


def _wrap_note(note: str) -> str:
    return ("\n" + note.lstrip(" —")) if note else ""


def build_figure5(params: dict, metrics) -> Drawn:
    rows = _metrics_rows(metrics)
    _require_columns(rows, metrics, ("rf_logloss_mean",))
    return Drawn(figure5(rows, metrics), [Path(metrics)], {"epochs": rows["epoch"].tolist()})


def figure5(rows, metrics_path):
    """Random-forest log loss per epoch (AtoB), ± one standard deviation over repeats, and ln 2."""
    fig = new_figure(6.0, 4.2)
    ax = fig.subplots()
    epochs = rows["epoch"].to_numpy()
    mean = numeric(rows, "rf_logloss_mean", metrics_path)
    std = numeric(rows, "rf_logloss_std", metrics_path) if "rf_logloss_std" in rows.columns else np.full(len(rows), np.nan)
    ok = np.isfinite(mean)
    _plot_metric(ax, epochs, mean, label="mean over repeats", color="C0")
    band = ok & np.isfinite(std)
    if band.any():
        ax.fill_between(epochs[band], (mean - std)[band], (mean + std)[band], color="C0", alpha=0.25, label="± 1 s.d. over repeats")
    ax.axhline(LN2, color="0.3", linestyle="--", linewidth=1.1, label=f"chance (ln 2 ≈ {LN2:.3f})")
    ax.set_ylabel("RF log loss, real vs generated (nats)")
    epoch_axis(ax)
    lo = np.nanmin(np.concatenate([(mean - np.nan_to_num(std))[ok], [LN2]])) if ok.any() else 0.0
    hi = np.nanmax(np.concatenate([(mean + np.nan_to_num(std))[ok], [LN2]])) if ok.any() else 1.0
    pad = 0.08 * max(hi - lo, 0.05)
    ax.set_ylim(max(0.0, lo - pad), hi + pad)
    ax.legend(loc="best")
    reps = _first(rows, "rf_repeats")
    n = _first(rows, "rf_n_per_class")
    extra = []
    if reps is not None:
        extra.append(f"{reps} repeats")
    if n is not None:
        extra.append(f"{n} images per class")
    res = str(rows["resnet_extractor"].iloc[0])
    suptitle(fig,
        f"Random forest on {res} features: real vs cycleGAN snow images"
        + (f" ({', '.join(extra)})" if extra else "")
        + _wrap_note(weights_note(rows, ("resnet",)))
    )
    return fig


def _first(rows, col):
    if col not in rows.columns:
        return None
    v = rows[col].dropna()
    if v.empty:
        return None
    try:
        return int(float(v.iloc[0]))
    except (TypeError, ValueError):
        return None


def has_truth(rows, metrics_path) -> bool:
    if "paired_l1" not in rows.columns:
        return False
    return bool(np.isfinite(numeric(rows, "paired_l1", metrics_path)).any())


NO_TRUTH_TEXT = (
    "No paired ground truth in this run:\n"
    "the paired_l1 column of metrics.csv is empty.\n"
    "Paired errors need the simulator's true\n"
    "snow images (testA 'truth_snowfall');\n"
    "real Sentinel-2 data has none. Only the\n"
    "unpaired metrics are shown."
)


def _corr(corr, metric: str, paired: str):
    if corr is None:
        return None
    sel = corr[(corr["metric"].astype(str) == metric) & (corr["paired"].astype(str) == paired)]
    if "direction" in sel.columns:
        sel = sel[sel["direction"].astype(str) == "AtoB"]
    if sel.empty:
        return None
    r = sel.iloc[0]

    def f(v):
        try:
            v = float(v)
        except (TypeError, ValueError):
            return float("nan")
        return v

    return {"rho": f(r["spearman_rho"]), "p": f(r["p_value"]), "n": int(f(r["n_epochs"]) if math.isfinite(f(r["n_epochs"])) else 0), "sign": f(r["expected_sign"])}


def _rho_text(c) -> str:
    if c is None:
        return "ρ: not in correlations.csv"
    if not math.isfinite(c["rho"]):
        return f"Spearman ρ n/a ({c['n']} epochs; needs ≥ 3)"
    sign = "+" if c["sign"] > 0 else "−"
    return f"ρ = {c['rho']:+.2f}, p = {c['p']:.2g}, n = {c['n']} (exp. {sign})"


def build_figure8(params: dict, metrics, correlations) -> Drawn:
    rows = _metrics_rows(metrics)
    corr = common.read_csv(correlations, common.CORRELATIONS_REQUIRED, "correlations table", allow_empty=True)
    fig = figure8(rows, metrics, corr)
    extra = {"epochs": rows["epoch"].tolist(), "paired_truth": has_truth(rows, metrics)}
    return Drawn(fig, [Path(metrics), Path(correlations)], extra)


def extractor_metrics(rows, inc: str, res: str) -> dict:
    """Figure 8's panels for the per-extractor distances of the extractors other than ``inc``/``res``
    (whose Fréchet distance is the FID/FRD): column -> (short name, y label)."""
    out = {}
    for col in rows.columns:
        kind, _, name = str(col).partition("_")
        if kind in ("fd", "cd") and name and name not in (inc, res):
            what = "Fréchet, squared units" if kind == "fd" else "1 − mean cosine"
            out[col] = (f"{kind.upper()} {name}", f"{kind.upper()} {name} ({what})")
    return out


def _fig8_panel(ax, col, name, ylabel, letter, ctx) -> None:
    """One metric per epoch, beside the paired L1 when there is truth, titled with their ρ."""
    rows, metrics_path, epochs, paired, corr = ctx
    paired_label = PAIRED_REFLECTANCE_LABEL if "w1_mean" in rows.columns else PAIRED_LABEL
    if col not in rows.columns:
        ax.text(0.5, 0.5, f"no '{col}' column in metrics.csv", transform=ax.transAxes, ha="center", va="center")
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        panel_label(ax, letter, name)
        return
    h1 = _plot_metric(ax, epochs, numeric(rows, col, metrics_path), label=name, color="C0")
    ax.set_ylabel(ylabel, color="C0")
    ax.tick_params(axis="y", colors="C0")
    epoch_axis(ax)
    if paired is None:
        panel_label(ax, letter, name)
        return
    ax2 = ax.twinx()
    h2 = _plot_metric(ax2, epochs, paired, label="paired L1", color="C3", marker="s")
    if h2 is not None:
        h2.set_linestyle("--")
    ax2.set_ylabel(paired_label, color="C3")
    ax2.tick_params(axis="y", colors="C3")
    _headroom(ax, 0.3)
    _headroom(ax2, 0.3)
    handles = [h for h in (h1, h2) if h is not None]
    ax.legend(handles=handles, labels=[h.get_label() for h in handles], loc="upper center", ncol=2)
    panel_label(ax, letter, f"{name} vs paired L1\n{_rho_text(_corr(corr, col, 'paired_l1'))}")


def figure8(rows, metrics_path, corr=None):
    """Each unpaired metric per epoch beside the paired ground-truth error, with their rank correlation.

    The paper's five metrics, then (a third row) the per-extractor distances of any other extractor
    (``fd_<name>``, ``cd_<name>``: simcover's on the demo), then (a reflectance run's) the spectral
    distances ``w1_mean``, ``ndsi_w1``, ``sam_w1``; the ρ table adds those and, where correlations.csv
    has them, the ρ with the physical checks ``snow_cover_mae`` and ``snow_iou``. Without truth (empty paired columns) the
    last panel of the first two rows says so and only the unpaired metrics are drawn.
    """
    truth = has_truth(rows, metrics_path)
    inc = str(rows["inception_extractor"].iloc[0])
    res = str(rows["resnet_extractor"].iloc[0])
    extra = dict(list(extractor_metrics(rows, inc, res).items())[:3])
    spectral = {c: v for c, v in FIG8_SPECTRAL.items() if c in rows.columns}
    n_rows = 2 + bool(extra) + bool(spectral)
    fig = new_figure(10.0, 3.2 * n_rows)
    flat = fig.subplots(n_rows, 3).ravel()
    paired = numeric(rows, "paired_l1", metrics_path) if truth else None
    ctx = (rows, metrics_path, rows["epoch"].to_numpy(), paired, corr)
    for ax, (col, (name, ylabel)), letter in zip(flat, FIG8_METRICS.items(), "abcde"):
        ylabel = ylabel.replace("Inception features", f"{inc} features").replace("ResNet-50 features", f"{res} features")
        _fig8_panel(ax, col, name, ylabel, letter, ctx)
    for start, panels, letters in ((6, extra, "ghi"), (6 + 3 * bool(extra), spectral, "ghijkl"[3 * bool(extra):])):
        for ax, (col, (name, ylabel)), letter in zip(flat[start : start + 3], panels.items(), letters):
            _fig8_panel(ax, col, name, ylabel, letter, ctx)
        for ax in flat[start + len(panels) : start + 3] if panels else ():
            ax.set_axis_off()
    ax = flat[5]
    ax.set_axis_off()
    if not truth:
        ax.text(
            0.5, 0.5, NO_TRUTH_TEXT, transform=ax.transAxes, ha="center", va="center", fontsize=9,
            bbox={"boxstyle": "round", "facecolor": "#fff3cd", "edgecolor": "#c09000"},
        )
        panel_label(ax, "f", "paired ground truth")
    else:
        _corr_table(ax, corr, {**FIG8_METRICS, **per_extractor_names(corr), **spectral})
        panel_label(ax, "f", "Spearman ρ across epochs (AtoB)")
    suptitle(fig,
        "Unpaired metrics beside the paired ground-truth error (simulator's snowfall truth), per epoch"
        + _wrap_note(weights_note(rows))
    )
    return fig


def per_extractor_names(corr) -> dict:
    """The per-extractor metrics (``fd_<name>``, ``cd_<name>``) correlations.csv holds, as table rows."""
    if corr is None or corr.empty:
        return {}
    names = [m for m in dict.fromkeys(corr["metric"].astype(str)) if m.split("_", 1)[0] in ("fd", "cd") and "_" in m]
    return {m: (f"{m.split('_', 1)[0].upper()} {m.split('_', 1)[1]}", "") for m in names}


def _corr_table(ax, corr, metrics: dict) -> None:
    if corr is None or corr.empty:
        ax.text(0.5, 0.5, "no correlations given", transform=ax.transAxes, ha="center", va="center")
        return
    cols = [("paired_l1", "ρ(L1)"), ("paired_ssim", "ρ(SSIM)"), ("paired_l1_water", "ρ(L1 water)")]
    cols += [c for c in FIG8_PHYSICAL if (corr["paired"].astype(str) == c[0]).any()]
    cells = []
    for col, (name, _) in metrics.items():
        row = [name]
        for p, _ in cols:
            c = _corr(corr, col, p)
            row.append("n/a" if c is None or not math.isfinite(c["rho"]) else f"{c['rho']:+.2f}")
        c = _corr(corr, col, "paired_l1")
        row.append("" if c is None or not math.isfinite(c["sign"]) else ("+" if c["sign"] > 0 else "−"))
        cells.append(row)
    table = ax.table(
        cellText=cells,
        colLabels=["metric", *(label for _, label in cols), "exp. sign"],
        loc="center",
        cellLoc="center",
    )
    table.auto_set_font_size(False)
    table.set_fontsize(7.5 if len(cols) <= 3 else 6.0)  # a reflectance run's physical columns: smaller
    table.auto_set_column_width(list(range(len(cols) + 2)))
    table.scale(1.0, 1.5 if len(cells) <= 6 else max(0.9, 9.0 / len(cells)))
    n = _corr(corr, "fid", "paired_l1")
    if n is not None and not math.isfinite(n["rho"]):
        ax.text(0.5, 0.02, f"n/a: {n['n']} epochs (ρ needs ≥ 3)", transform=ax.transAxes, ha="center", va="bottom", fontsize=7.5)
