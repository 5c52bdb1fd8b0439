"""Build one figure from its input files: read and check everything, then draw.

:func:`make_figure` returns the matplotlib Figure (nothing is written), the
input files it used (for provenance), a summary and, for Figure 7, the rows of
``figures/artifacts.csv``. ``deepsnow figures`` saves them.
"""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path

from deepsnow import DeepsnowError
from deepsnow.figures import common

log = logging.getLogger("deepsnow.figures")

#: figure number -> (title, input options it needs)
FIGURES = {
    1: ("test patches and their snow translations", ("test_a", "samples")),
    2: ("close-up: original, translated, per-band differences", ("test_a", "samples")),
    3: ("training dynamics: losses, FID, FRD, CRD", ("losses", "metrics")),
    4: ("close-up at chosen epochs with the all-band L1 map", ("test_a", "samples")),
    5: ("random-forest log loss per epoch", ("metrics",)),
    6: ("PCA pair plot", ("pca", "pca_summary")),
    7: ("artifact measures per epoch (+ artifacts.csv)", ("test_a", "samples", "output_csv")),
    8: ("paired ground-truth error beside the unpaired metrics", ("metrics", "correlations")),
}
OPTION = {
    "test_a": "--test-a",
    "samples": "--samples",
    "losses": "--losses",
    "metrics": "--metrics",
    "correlations": "--correlations",
    "pca": "--pca",
    "pca_summary": "--pca-summary",
    "output_csv": "--output-csv",
}


def check_inputs(number: int, given: dict) -> None:
    """Every input option figure ``number`` needs is given (non-empty)."""
    if number not in FIGURES:
        raise DeepsnowError(f"--figure {number}: no such figure (1..{max(FIGURES)})")
    missing = [OPTION[k] for k in FIGURES[number][1] if not given.get(k)]
    if missing:
        raise DeepsnowError(f"figure {number} ({FIGURES[number][0]}) needs {', '.join(missing)}")
    unused = [OPTION[k] for k, v in given.items() if v and k in OPTION and k not in FIGURES[number][1]]
    if unused:
        log.warning("figure %d does not use %s; ignored", number, ", ".join(unused))


def _metrics_rows(path, direction: str = "AtoB"):
    df = common.read_csv(path, common.METRICS_REQUIRED, "metrics table")
    return common.direction_rows(df, direction, path)


def _closeup_inputs(params: dict, test_a_path, sample_paths):
    test_a = common.load_test_a(test_a_path)
    epochs = common.sample_epochs(sample_paths)
    k = common.check_patch_index(int(params["closeup_patch"]), test_a)
    window = common.closeup_window(params["closeup_window"], test_a["rgb"].shape[1:3])
    return test_a, epochs, k, window


def make_figure(number: int, params: dict, **inputs) -> dict:
    """Figure ``number`` from ``inputs`` (keys as in :data:`OPTION`, paths).

    Returns ``{"figure", "inputs", "extra", "csv_rows"}``.
    """
    check_inputs(number, inputs)
    with common.style():  # font sizes are fixed when the text is created
        return _BUILDERS[number](params, **{k: v for k, v in inputs.items() if v})


def _fig1(params, test_a, samples, **_):
    from deepsnow.figures import images

    ta, epochs, k, window = _closeup_inputs(params, test_a, samples)
    epoch = common.choose_epoch(epochs, int(params["epoch"]))
    fake = common.load_translated(epochs[epoch], ta)
    n = len(ta["rgb"])
    order = [k] + [i for i in range(n) if i != k]
    order = order[: min(int(params["samples_count"]), n)]
    fig = images.figure1(ta["rgb"][order], fake[order], ta["ids"][order], epoch, window, len(order))
    return {
        "figure": fig,
        "inputs": [Path(test_a), epochs[epoch]],
        "extra": {"epoch": epoch, "patches": ta["ids"][order].tolist(), "closeup_window": list(window)},
        "csv_rows": None,
    }


def _fig2(params, test_a, samples, **_):
    from deepsnow.figures import images

    ta, epochs, k, window = _closeup_inputs(params, test_a, samples)
    epoch = common.choose_epoch(epochs, int(params["epoch"]))
    fake = common.load_translated(epochs[epoch], ta)
    fig = images.figure2(ta["rgb"][k], fake[k], str(ta["ids"][k]), epoch, window)
    return {
        "figure": fig,
        "inputs": [Path(test_a), epochs[epoch]],
        "extra": {"epoch": epoch, "patch": str(ta["ids"][k]), "closeup_window": list(window)},
        "csv_rows": None,
    }


def _fig3(params, losses, metrics, **_):
    from deepsnow.figures import curves

    ldf = common.read_csv(losses, common.LOSSES_REQUIRED, "training losses table")
    rows = _metrics_rows(metrics)
    for col in ("fid", "frd", "crd"):
        if col not in rows.columns:
            raise DeepsnowError(f"{metrics}: metrics table lacks column {col!r}; found {list(rows.columns)}")
    fig = curves.figure3(ldf, losses, rows, metrics)
    return {"figure": fig, "inputs": [Path(losses), Path(metrics)], "extra": {"epochs": rows["epoch"].tolist()}, "csv_rows": None}


def _fig4(params, test_a, samples, **_):
    from deepsnow.figures import images

    ta, epochs, k, window = _closeup_inputs(params, test_a, samples)
    chosen, note = common.select_epochs(params["epochs_fig4"], list(epochs))
    if note:
        log.info("figure 4: %s", note)
    fakes = {e: common.load_translated(epochs[e], ta)[k] for e in chosen}
    fig = images.figure4(ta["rgb"][k], fakes, str(ta["ids"][k]), window, note)
    return {
        "figure": fig,
        "inputs": [Path(test_a), *[epochs[e] for e in chosen]],
        "extra": {"epochs": chosen, "note": note, "patch": str(ta["ids"][k]), "closeup_window": list(window)},
        "csv_rows": None,
    }


def _fig5(params, metrics, **_):
    from deepsnow.figures import curves

    rows = _metrics_rows(metrics)
    if "rf_logloss_mean" not in rows.columns:
        raise DeepsnowError(f"{metrics}: metrics table lacks column 'rf_logloss_mean'; found {list(rows.columns)}")
    fig = curves.figure5(rows, metrics)
    return {"figure": fig, "inputs": [Path(metrics)], "extra": {"epochs": rows["epoch"].tolist()}, "csv_rows": None}


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


def _fig6(params, pca, pca_summary, **_):
    from deepsnow.figures import pairplot

    direction = params["pca_direction"]
    df = common.read_csv(pca, common.PCA_REQUIRED, "PCA table")
    summary = _read_summary(pca_summary)
    groups, pcs = pairplot.pca_groups(df, direction, pca)
    explained = (summary.get("directions", {}).get(direction) or {}).get("explained_variance_ratio")
    note = common.summary_weights_note(summary.get("pretrained"), summary.get("weights", ""), summary.get("extractor", "resnet50"))
    if "pretrained" not in summary and "weights" not in summary:
        log.warning("%s: no 'pretrained'/'weights' keys; cannot say whether the features used pretrained weights", pca_summary)
    fig = pairplot.figure6(groups, pcs, explained, direction, note)
    return {
        "figure": fig,
        "inputs": [Path(pca), Path(pca_summary)],
        "extra": {"direction": direction, "groups": {g[0]: int(len(g[2])) for g in groups}},
        "csv_rows": None,
    }


def _fig7(params, test_a, samples, **_):
    from deepsnow.figures import artifact_figure

    ta = common.load_test_a(test_a, need_water=True)
    epochs = common.sample_epochs(samples)
    lazy = [(e, functools.partial(common.load_translated, p, ta)) for e, p in epochs.items()]
    radius = int(params["checkerboard_radius"])
    rows, spectra = artifact_figure.compute(ta, lazy, int(params["artifact_max_patches"]), radius)
    fig = artifact_figure.figure7(rows, spectra, radius, ta["rgb"].shape[1:3])
    return {
        "figure": fig,
        "inputs": [Path(test_a), *epochs.values()],
        "extra": {"epochs": list(epochs), "n_patches": rows[0]["n_patches"] if rows else 0},
        "csv_rows": rows,
    }


def _fig8(params, metrics, correlations, **_):
    from deepsnow.figures import curves

    rows = _metrics_rows(metrics)
    corr = common.read_csv(correlations, common.CORRELATIONS_REQUIRED, "correlations table", allow_empty=True)
    fig = curves.figure8(rows, metrics, corr)
    return {
        "figure": fig,
        "inputs": [Path(metrics), Path(correlations)],
        "extra": {"epochs": rows["epoch"].tolist(), "paired_truth": curves.has_truth(rows, metrics)},
        "csv_rows": None,
    }


_BUILDERS = {1: _fig1, 2: _fig2, 3: _fig3, 4: _fig4, 5: _fig5, 6: _fig6, 7: _fig7, 8: _fig8}
