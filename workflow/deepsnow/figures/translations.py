"""Figures 1, 2 and 4: test patches, their translations and close-ups.

Image panels are drawn in patch pixel coordinates (row and column in px;
Sentinel-2 pixels are 10 m), so a close-up's axes say where in the patch it is.
"""

from __future__ import annotations

import logging
import math
import string
from pathlib import Path

import numpy as np

from deepsnow.data.render import FALSE_COLOUR
from deepsnow.figures import common
from deepsnow.figures.common import Drawn, new_figure, panel_label, suptitle

log = logging.getLogger("deepsnow.figures")

PIXEL_NOTE = "10 m pixels"
BAND_MAPS = (("red", "Reds"), ("green", "Greens"), ("blue", "Blues"))


def _show(ax, img, r0: int = 0, c0: int = 0, **kw):
    """Draw an (H, W[, 3]) image with axes in patch pixel coordinates starting at (r0, c0)."""
    from matplotlib.ticker import MaxNLocator

    h, w = img.shape[:2]
    im = ax.imshow(
        img,
        extent=(c0 - 0.5, c0 + w - 0.5, r0 + h - 0.5, r0 - 0.5),
        interpolation="nearest",
        **kw,
    )
    ax.xaxis.set_major_locator(MaxNLocator(3, integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(3, integer=True))
    return im


def _letter(i: int) -> str:
    return string.ascii_lowercase[i] if i < 26 else str(i + 1)


def _short(patch_id: str, n: int = 26) -> str:
    return patch_id if len(patch_id) <= n else "…" + patch_id[-(n - 1):]


def _closeup_inputs(params: dict, test_a_path, sample_paths):
    """testA, the samples by epoch, the close-up patch index and window (all checked)."""
    test_a = common.load_test_a(test_a_path, rgb_view=common.rgb_view(params))
    epochs = common.sample_epochs(sample_paths)
    k = common.check_patch_index(int(params["closeup_patch"]), test_a)
    window = common.closeup_window(params["closeup_window"], test_a["rgb"].shape[1:3])
    return test_a, epochs, k, window


def build_figure1(params: dict, test_a, samples) -> Drawn:
    """Figure 1 from testA and the samples files: the close-up patch first, then the others."""
    ta, epochs, k, window = _closeup_inputs(params, test_a, samples)
    source = common.data_source(test_a)
    epoch = common.choose_epoch(epochs, int(params["epoch"]))
    fake = common.load_translated(epochs[epoch], ta)
    n = len(ta["rgb"])
    order = [k] + [i for i in range(n) if i != k]
    order = order[: min(int(params["samples_count"]), n)]
    data = common.data_label(source)
    real_fc = common.false_colour(ta)  # reflectance with B11, B08, B04: the composite where snow and cloud separate
    false = None if real_fc is None else (real_fc[order], common.load_translated(epochs[epoch], ta, FALSE_COLOUR)[order])
    fig = figure1(ta["rgb"][order], fake[order], ta["ids"][order], epoch, window, len(order), data, false)
    extra = {
        "epoch": epoch, "patches": ta["ids"][order].tolist(), "closeup_window": list(window), "data_source": source,
    }
    if "bands" in ta:
        extra |= {"bands": list(ta["bands"]), "false_colour": list(FALSE_COLOUR) if false else None}
    return Drawn(fig, [Path(test_a), epochs[epoch]], extra)


def figure1(
    real: np.ndarray, fake: np.ndarray, ids, epoch: int, window, count: int, data: str = common.UNKNOWN_DATA, false=None
):
    """Snow-free test patches (upper row of each pair) and their translations (lower row).

    ``real``/``fake``: (N, S, S, 3) uint8 in display order (the close-up patch
    first); the red box marks the close-up ``window`` = (row, col, h, w) on the
    first panel. ``data`` names where the patches came from (:func:`common.data_label`).
    ``false``: (real, fake) false-colour composites (B11, B08, B04) of the same patches, drawn as a
    second pair of rows under each pair (reflectance runs), or None.
    """
    from matplotlib.patches import Rectangle

    n = max(1, min(count, len(real)))
    ncol = min(n, 4)
    npair = math.ceil(n / ncol)
    rows = [(real, "snow-free (real)"), (fake, f"snow (epoch {epoch})")]
    if false is not None:
        rows += [(false[0], "snow-free, B11 B08 B04"), (false[1], f"snow (epoch {epoch}),\nB11 B08 B04")]
    block = len(rows)
    fig = new_figure(1.8 * ncol + 0.9, block * 1.75 * npair + 0.9)
    axes = fig.subplots(block * npair, ncol, squeeze=False, sharex=True, sharey=True)
    for k in range(npair * ncol):
        pr, col = divmod(k, ncol)
        axs = [axes[block * pr + j, col] for j in range(block)]
        if k >= n:
            for ax in axs:
                ax.set_visible(False)
            continue
        for ax, (images, label) in zip(axs, rows):
            _show(ax, images[k])
            if col == 0:
                ax.set_ylabel(f"{label}\nrow (px)")
        axs[0].set_title(_short(str(ids[k])), fontsize=7)
        last_pair = pr == npair - 1 or (pr + 1) * ncol + col >= n
        if last_pair:
            axs[-1].set_xlabel("column (px)")
        for ax in axs:
            ax.tick_params(labelleft=col == 0, labelbottom=last_pair and ax is axs[-1])
    r, c, h, w = window
    axes[0, 0].add_patch(
        Rectangle((c - 0.5, r - 0.5), w, h, fill=False, edgecolor="red", linewidth=1.8, clip_on=False, zorder=5)
    )
    note = "; false colour B11 B08 B04: snow cyan, cloud white" if false is not None else ""
    suptitle(fig,
        f"Snow-free test patches ({data}) and their cycleGAN snow translations (epoch {epoch});\n"
        f"red box: close-up of Figures 2 and 4 ({PIXEL_NOTE}){note}"
    )
    return fig


def crop(img: np.ndarray, window) -> np.ndarray:
    r, c, h, w = window
    return img[r : r + h, c : c + w]


def band_differences(real: np.ndarray, fake: np.ndarray) -> np.ndarray:
    """|fake - real| per band, (H, W, 3) float in DN (0..255)."""
    return np.abs(fake.astype(np.float64) - real.astype(np.float64))


def build_figure2(params: dict, test_a, samples) -> Drawn:
    ta, epochs, k, window = _closeup_inputs(params, test_a, samples)
    epoch = common.choose_epoch(epochs, int(params["epoch"]))
    fake = common.load_translated(epochs[epoch], ta)
    source = common.data_source(test_a)
    fig = figure2(ta["rgb"][k], fake[k], str(ta["ids"][k]), epoch, window, common.data_label(source))
    extra = {"epoch": epoch, "patch": str(ta["ids"][k]), "closeup_window": list(window), "data_source": source}
    return Drawn(fig, [Path(test_a), epochs[epoch]], extra)


def figure2(real: np.ndarray, fake: np.ndarray, patch_id: str, epoch: int, window, data: str = common.UNKNOWN_DATA):
    """(a) original and (b) translated close-up; (c-e) |difference| of the red, green, blue band.

    ``real``/``fake``: one (S, S, 3) patch each; ``window`` already clipped.
    The three difference maps share one colour scale (0 .. the largest 99.5th
    percentile of the three, at least 1 DN) so bands compare directly.
    """
    r, c, h, w = window
    a, b = crop(real, window), crop(fake, window)
    diff = band_differences(a, b)
    vmax = max(1.0, float(max(np.percentile(diff[..., i], 99.5) for i in range(3))))
    fig = new_figure(7.5, 5.6)
    top, bottom = fig.subfigures(2, 1, height_ratios=[1, 1])
    ax_a, ax_b = top.subplots(1, 2)
    for ax, img, letter, title in ((ax_a, a, "a", "original (snow-free)"), (ax_b, b, "b", f"translated, epoch {epoch}")):
        _show(ax, img, r, c)
        panel_label(ax, letter, title)
        ax.set_xlabel("column (px)")
        ax.set_ylabel("row (px)")
    axs = bottom.subplots(1, 3)
    for i, (ax, (band, cmap), letter) in enumerate(zip(axs, BAND_MAPS, "cde")):
        im = _show(ax, diff[..., i], r, c, cmap=cmap, vmin=0, vmax=vmax)
        panel_label(ax, letter, f"{band} band |b − a|")
        ax.set_xlabel("column (px)")
        ax.set_ylabel("row (px)")
        cb = bottom.colorbar(im, ax=ax, shrink=0.85, pad=0.02)
        cb.set_label("|difference| (DN, 0–255)")
    suptitle(fig,
        f"Close-up of patch {patch_id}, rows {r}–{r + h - 1}, columns {c}–{c + w - 1}\n"
        f"(red box of Figure 1; {PIXEL_NOTE}; {data})"
    )
    return fig


def build_figure4(params: dict, test_a, samples) -> Drawn:
    ta, epochs, k, window = _closeup_inputs(params, test_a, samples)
    chosen, note = common.select_epochs(params["epochs_fig4"], list(epochs))
    if note:
        log.info("figure 4: %s", note)
    fakes = {e: common.load_translated(epochs[e], ta)[k] for e in chosen}
    source = common.data_source(test_a)
    fig = figure4(ta["rgb"][k], fakes, str(ta["ids"][k]), window, note, common.data_label(source))
    extra = {
        "epochs": chosen, "note": note, "patch": str(ta["ids"][k]), "closeup_window": list(window),
        "data_source": source,
    }
    return Drawn(fig, [Path(test_a), *[epochs[e] for e in chosen]], extra)


def figure4(real: np.ndarray, fakes: dict, patch_id: str, window, note: str = "", data: str = common.UNKNOWN_DATA):
    """Per chosen epoch: the translated close-up and the all-band L1 map sum_b |fake - real|.

    ``fakes``: ``{epoch: (S, S, 3) uint8}`` in the order to show; the L1 maps
    share one colour scale (DN summed over R, G and B, 0..765).
    """
    r, c, h, w = window
    a = crop(real, window).astype(np.float64)
    epochs = list(fakes)
    l1 = {e: np.abs(crop(fakes[e], window).astype(np.float64) - a).sum(axis=-1) for e in epochs}
    vmax = max(1.0, float(max(np.percentile(m, 99.5) for m in l1.values())))
    k = len(epochs)
    fig = new_figure(6.2, 2.45 * k + 0.9)
    axes = fig.subplots(k, 2, squeeze=False)
    im = None
    for i, e in enumerate(epochs):
        ax_img, ax_l1 = axes[i]
        _show(ax_img, crop(fakes[e], window), r, c)
        panel_label(ax_img, _letter(2 * i), f"translated, epoch {e}")
        im = _show(ax_l1, l1[e], r, c, cmap="magma", vmin=0, vmax=vmax)
        panel_label(ax_l1, _letter(2 * i + 1), f"L1 of R+G+B, epoch {e}")
        for ax in (ax_img, ax_l1):
            ax.set_ylabel("row (px)")
            ax.set_xlabel("column (px)")
    cb = fig.colorbar(im, ax=axes[:, 1].tolist(), shrink=0.8, pad=0.02)
    cb.set_label("|R|+|G|+|B| difference (DN, 0–765)")
    which = f"epoch {epochs[0]}" if k == 1 else f"epochs {', '.join(map(str, epochs))}"
    title = f"Close-up of patch {patch_id} ({data}; as Figure 2) at {which}"
    if note:
        title += f"\n({note})"
    suptitle(fig, title)
    return fig

