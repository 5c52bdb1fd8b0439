"""Figure 7 (beyond the paper): the generator's artifacts per epoch, and their table.

The measures themselves are in :mod:`deepsnow.figures.artifact_measures`.
(a) :func:`~deepsnow.figures.artifact_measures.checkerboard_score` per epoch;
(b) mean per-band |fake - real| over water and over land pixels per epoch;
(c, d) the mean power spectrum of ``fake - real`` at the first and the last
epoch, with the checkerboard frequencies marked. The numbers go to
``figures/artifacts.csv`` (one row per epoch, plus a ``truth`` row on
simulator data: the same measures for the true snow images, an artifact-free
reference).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from deepsnow.figures import artifact_measures as artifacts
from deepsnow.figures import common
from deepsnow.figures.common import Drawn, epoch_axis, new_figure, panel_label, suptitle

BAND_COLORS = {"r": "tab:red", "g": "tab:green", "b": "tab:blue"}


def build_figure7(params: dict, test_a, samples) -> Drawn:
    """Figure 7 and the rows of figures/artifacts.csv (written as its extra output ``output_csv``)."""
    ta = common.load_test_a(test_a, need_water=True, rgb_view=common.rgb_view(params))
    epochs = common.sample_epochs(samples)
    lazy = [(e, functools.partial(common.load_translated, p, ta)) for e, p in epochs.items()]
    radius = int(params["checkerboard_radius"])
    rows, spectra = compute(ta, lazy, int(params["artifact_max_patches"]), radius)
    source = common.data_source(test_a)
    fig = figure7(rows, spectra, radius, ta["rgb"].shape[1:3], common.data_label(source))
    extra = {"epochs": list(epochs), "n_patches": rows[0]["n_patches"] if rows else 0, "data_source": source}
    return Drawn(fig, [Path(test_a), *epochs.values()], extra, {"output_csv": functools.partial(write_csv, rows=rows)})


def compute(test_a: dict, fakes, max_patches: int, radius: int) -> tuple[list[dict], dict]:
    """Rows of artifacts.csv and the spectra to draw.

    ``fakes``: ``[(epoch, (N, S, S, 3) array or a callable returning it)]`` in
    ascending epoch order, images in testA order (a callable is loaded when its
    epoch is measured, so one epoch's images are in memory at a time). The
    first ``max_patches`` testA patches are measured.
    """
    n = min(max_patches, len(test_a["rgb"]))
    real = test_a["rgb"][:n]
    water = test_a["water"][:n]
    fakes = list(fakes.items()) if isinstance(fakes, dict) else list(fakes)
    rows, spectra = [], {}
    last = len(fakes) - 1
    for i, (e, fake) in enumerate(fakes):
        fake = (fake() if callable(fake) else fake)[:n]
        rows.append({"source": "epoch", "epoch": int(e), **artifacts.measure(fake, real, water, radius)})
        if i in (0, last):
            spectra[f"epoch {e}"] = artifacts.difference_power_spectrum(fake, real)
    if "truth" in test_a:
        truth = test_a["truth"][:n]
        rows.append({"source": "truth", "epoch": None, **artifacts.measure(truth, real, water, radius)})
        if len(fakes) == 1:
            spectra["true snow (simulator)"] = artifacts.difference_power_spectrum(truth, real)
    return rows, spectra


def _cell(v):
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return ""  # NaN (e.g. no water pixels) and the truth row's epoch: empty
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    return v


def write_csv(path, rows) -> None:
    """figures/artifacts.csv, atomically: one row per epoch (source 'epoch') and a 'truth' row if any."""
    import csv

    from deepsnow.io import atomic_output

    with atomic_output(path, suffix=".csv") as tmp:
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(artifacts.CSV_COLUMNS), extrasaction="ignore")
            w.writeheader()
            for r in rows:
                w.writerow({c: _cell(r.get(c)) for c in artifacts.CSV_COLUMNS})


def figure7(rows: list[dict], spectra: dict, radius: int, size: tuple[int, int], data: str = common.UNKNOWN_DATA):
    """(a) checkerboard score, (b) water vs land differences per epoch, (c, d) difference spectra.

    ``data`` names where the test patches came from (:func:`common.data_label`)."""
    fig = new_figure(8.0, 6.6)
    axes = fig.subplots(2, 2)
    ep_rows = [r for r in rows if r["source"] == "epoch"]
    truth = next((r for r in rows if r["source"] == "truth"), None)
    epochs = np.array([r["epoch"] for r in ep_rows])
    _checkerboard_panel(axes[0, 0], ep_rows, truth, epochs)
    _water_land_panel(axes[0, 1], ep_rows, epochs)
    _spectra_panels(fig, axes[1], spectra, size)
    n_p = ep_rows[0]["n_patches"] if ep_rows else 0
    suptitle(fig,
        f"Generator artifacts per epoch ({n_p} test patches, {data}; circles: checkerboard frequencies,\n"
        f"neighbourhoods of ±{radius} bin; fake = snow translation of the snow-free original)"
    )
    return fig


def _checkerboard_panel(ax, ep_rows, truth, epochs) -> None:
    score = np.array([r["checkerboard_score"] for r in ep_rows], dtype=float)
    ok = np.isfinite(score)
    if ok.any():
        ax.plot(epochs[ok], score[ok], marker="o", color="C0", label="translated vs original")
    ax.axhline(1.0, color="0.4", linestyle=":", linewidth=1.1, label="white-noise level (1)")
    if truth is not None and np.isfinite(truth["checkerboard_score"]):
        ax.axhline(truth["checkerboard_score"], color="C2", linestyle="--", linewidth=1.1, label="true snow vs original")
    vals = np.concatenate([score[ok], [1.0]] + ([[truth["checkerboard_score"]]] if truth is not None and np.isfinite(truth["checkerboard_score"]) and truth["checkerboard_score"] > 0 else []))
    vals = vals[vals > 0]
    if len(vals) and vals.max() / vals.min() > 20:
        ax.set_yscale("log")
    ax.set_ylabel("checkerboard score\n(power ratio, unitless)")
    epoch_axis(ax)
    ax.legend(loc="best")
    panel_label(ax, "a", "power at 1/2 and 1/4 cycles/px")


def _water_land_panel(ax, ep_rows, epochs) -> None:
    n_water = max((r["n_water_pixels"] for r in ep_rows), default=0)
    for band, color in BAND_COLORS.items():
        land = np.array([r[f"diff_land_{band}"] for r in ep_rows], dtype=float)
        ax.plot(epochs, land, marker="s", linestyle="--", color=color, label=f"{band.upper()} land")
        if n_water:
            wat = np.array([r[f"diff_water_{band}"] for r in ep_rows], dtype=float)
            ax.plot(epochs, wat, marker="o", linestyle="-", color=color, label=f"{band.upper()} water")
    if not n_water:
        ax.text(0.5, 0.5, "no water pixels in\nthe measured test patches", transform=ax.transAxes,
                ha="center", va="center", color="0.3")
    ax.set_ylabel("mean |translated − original| (DN, 0–255)")
    epoch_axis(ax)
    ax.legend(loc="best", ncol=2)
    panel_label(ax, "b", "water (solid) vs land (dashed)")


def _spectra_panels(fig, axes, spectra: dict, size: tuple[int, int]) -> None:
    """The difference power spectra (first and last epoch) on one colour scale, checkerboard frequencies circled."""
    keys = list(spectra)
    logs = {k: np.log10(np.fft.fftshift(spectra[k]) + 1e-12) for k in keys}
    finite = np.concatenate([v[np.isfinite(v)].ravel() for v in logs.values()]) if logs else np.array([0.0])
    vmin, vmax = np.percentile(finite, [2, 99.8]) if len(finite) else (0, 1)
    h, w = size
    fy = np.fft.fftshift(np.fft.fftfreq(h))
    fx = np.fft.fftshift(np.fft.fftfreq(w))
    ext = (fx[0] - 0.5 / w, fx[-1] + 0.5 / w, fy[0] - 0.5 / h, fy[-1] + 0.5 / h)
    # checkerboard frequencies inside the shifted spectrum (+1/2 is the same bin as -1/2)
    centres = [(a, b) for a in (0.0, 0.25, -0.25, -0.5) for b in (0.0, 0.25, -0.25, -0.5) if (a, b) != (0.0, 0.0)]
    im = None
    for ax, letter, key in zip(axes, "cd", keys + [None] * (2 - len(keys))):
        if key is None:
            ax.set_axis_off()
            ax.text(0.5, 0.5, "only one epoch:\nno second spectrum", transform=ax.transAxes, ha="center", va="center")
            continue
        im = ax.imshow(
            logs[key], extent=ext, origin="lower", cmap="viridis", vmin=vmin, vmax=vmax, interpolation="nearest"
        )
        ax.scatter(
            [b for a, b in centres], [a for a, b in centres], s=40, facecolors="none", edgecolors="white",
            linewidths=0.8, clip_on=True,
        )
        ax.set_xlim(ext[0], ext[1])
        ax.set_ylim(ext[2], ext[3])
        ax.set_xlabel("frequency along columns (cycles/px)")
        ax.set_ylabel("frequency along rows (cycles/px)")
        panel_label(ax, letter, f"power spectrum of difference, {key}")
    if im is not None:
        cb = fig.colorbar(im, ax=[a for a in axes if a.get_visible() and a.axison], shrink=0.85)
        cb.set_label("log10 power (DN²)")
