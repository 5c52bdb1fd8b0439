"""The testbed: one area's detectors on the real, synthetic and truth pairs, and the summary.

Per area (:func:`evaluate_area`): the pixels valid in every image (masks: clear, water or
snow in both seasons' masks; dataMask; the product's internal mask); seeded pixel-swap
blobs (:mod:`deepsnow.change.implant`) on that valid area, the *same* locations and donor
positions for every pair; at most ``change.max_pixels`` valid pixels (a seeded uniform
sample when there are more, so implanted pixels keep their share); then per band set,
detector and pair:

* ``auc``: ROC AUC (scikit-learn) of the scores for the implanted mask;
* ``far_at_real_threshold``: the fraction of untouched pixels above the threshold that
  gives ``change.far`` (1 %) false alarms on the real pair (so ~``far`` for ``real``);
  ``pd_at_real_threshold``: the implanted pixels above it;
* the score distribution of untouched pixels: median, 99th percentile and a histogram on
  bins shared by the pairs of a detector; the ROC curve at fixed false-alarm rates.

The summary (:func:`summarize`) tabulates every area and states, per band set and detector,
the gap ``|AUC_synthetic - AUC_real|`` (mean over areas), the same for truth, and whether
the detectors' ranking by mean AUC on synthetic snow is the ranking on real snow.
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path

import numpy as np

from deepsnow import DeepsnowError
from deepsnow.change import benchmark as bench
from deepsnow.change import implant, pixels, registry, sampling
from deepsnow.data.scene import raster_env

log = logging.getLogger("deepsnow.change")

PAIRS = ("real", "synthetic", "truth")
#: false-alarm rates the stored ROC curves are sampled at (log-spaced, plus 0 and 1)
ROC_FPR = np.concatenate([[0.0], np.logspace(-4, 0, 49)])
HIST_BINS = 40
#: the change params a benchmark records (anomalies.tif's tags, the catalog's item properties)
BENCHMARK_PARAMS = ("implant_fraction", "blob_px", "seed", "max_pixels", "far")
SUMMARY_COLUMNS = (
    "area", "bands", "band_names", "detector", "pair", "auc", "far_at_real_threshold", "pd_at_real_threshold",
    "untouched_median", "untouched_p99", "n_pixels", "n_implanted",
)


def roc(labels: np.ndarray, scores: np.ndarray) -> tuple[float, list[float]]:
    """ROC AUC and the TPR at :data:`ROC_FPR` (scikit-learn's curve, interpolated)."""
    from sklearn.metrics import roc_auc_score, roc_curve

    fpr, tpr, _ = roc_curve(labels, scores)
    return float(roc_auc_score(labels, scores)), np.interp(ROC_FPR, fpr, tpr).tolist()


def _rate(values: np.ndarray, threshold: float | None) -> float:
    """The fraction of ``values`` above ``threshold``; NaN without one."""
    return float("nan") if threshold is None else float(np.mean(values > threshold))


def compare_pairs(scores: dict[str, np.ndarray], implanted: np.ndarray, far: float) -> dict:
    """One detector's numbers for each pair, against the real pair's ``far`` threshold (the two
    threshold rates are NaN when ``scores`` has no real pair: ``deepsnow change score`` without it)."""
    untouched = ~implanted
    threshold = float(np.quantile(scores["real"][untouched], 1.0 - far)) if "real" in scores else None
    pooled = np.concatenate([s[untouched] for s in scores.values()])
    lo, hi = np.quantile(pooled, [0.001, 0.995])
    edges = np.linspace(lo, hi if hi > lo else lo + 1.0, HIST_BINS + 1)
    out = {"threshold": threshold, "hist_edges": edges.tolist(), "pairs": {}}
    for pair, s in scores.items():
        auc, tpr = roc(implanted, s)
        counts, _ = np.histogram(np.clip(s[untouched], edges[0], edges[-1]), bins=edges)
        out["pairs"][pair] = {
            "auc": auc,
            "far_at_real_threshold": _rate(s[untouched], threshold),
            "pd_at_real_threshold": _rate(s[implanted], threshold),
            "untouched_median": float(np.median(s[untouched])),
            "untouched_p99": float(np.quantile(s[untouched], 0.99)),
            "roc_tpr": tpr,
            "hist_counts": counts.tolist(),
        }
    return out


def choose_pixels(valid: np.ndarray, max_pixels: int, seed: int) -> np.ndarray:
    """Sorted flat indices of the valid pixels, a seeded uniform sample of ``max_pixels`` if more
    (without an index per valid pixel: :mod:`deepsnow.change.sampling`)."""
    n_valid = int(np.count_nonzero(valid))
    if n_valid <= max_pixels:
        return np.flatnonzero(valid.ravel())
    ranks = np.sort(sampling.sample_ranks(np.random.default_rng([seed, 2]), n_valid, max_pixels))
    return sampling.flat_indices(valid, ranks)


def check_bands(area: str, o: pixels.Opened, which: str, values: np.ndarray) -> None:
    """Refuse a band that is constant over the pixels used (its covariance would be singular)."""
    const = [i for i in range(values.shape[1]) if np.ptp(values[:, i]) == 0]
    if const:
        names = ", ".join(o.refl_bands[i] if which == "reflectance" else "RGB"[i] for i in const)
        path = o.image.reflectance if which == "reflectance" and o.image.kind == "product" else o.image.path
        raise DeepsnowError(
            f"area {area}: {path}: band(s) {names} ({which}) constant at {values[0, const[0]]} over the "
            f"{values.shape[0]} pixels used: a singular covariance; the change detectors need varying bands"
        )


def _plan(area, opened, params, rows):
    """Valid area, implant mask, pixels used, and the flat index each pixel's after-value comes from."""
    shape = pixels.check_grids(area, opened)
    valid = pixels.valid_mask(opened, shape, rows)
    n_valid = int(valid.sum())
    if n_valid < 2:
        files = ", ".join(str(o.image.path) for o in opened.values())
        raise DeepsnowError(f"area {area}: {n_valid} pixels valid in every image ({files}): nothing to compare")
    mask = implant.implant_mask(valid, params["implant_fraction"], params["blob_px"], params["seed"])
    used = choose_pixels(valid, params["max_pixels"], params["seed"])
    implanted = mask.ravel()[used]
    if not 0 < int(implanted.sum()) < used.size:
        raise DeepsnowError(
            f"area {area}: {int(implanted.sum())} implanted among the {used.size} pixels used: an ROC needs "
            "both; raise change.implant_fraction or change.max_pixels"
        )
    source = used.copy()
    source[implanted] = implant.donor_indices(used[implanted], mask, valid, params["seed"])
    return shape, n_valid, used, implanted, source


def evaluate_area(area: str, images: list[pixels.Image], params: dict, band_sets, rgb, rows: int,
                  benchmark: Path | None = None) -> dict:
    """Every detector of ``params["detectors"]`` on every pair of one area; the per-area record
    (ROC curves, histograms). ``band_sets``: ``{band set: its bands}`` (or names, :func:`pixels.band_sets`).
    With ``benchmark``, the area's benchmark files are written there (:mod:`deepsnow.change.benchmark`)."""
    started = time.monotonic()
    band_sets = pixels.band_sets(band_sets)
    fns = registry.resolve(params["detectors"])
    with contextlib.ExitStack() as stack:
        # GDAL's default block cache (5 % of the machine's memory) would keep the blocks of every image
        # read once per pass: on a full tile most of the stage's peak
        stack.enter_context(raster_env())
        opened = pixels.open_images(stack, images, rgb, band_sets.get("reflectance", pixels.RGB))
        shape, n_valid, used, implanted, source = _plan(area, opened, params, rows)
        log.info("area %s: %d of %d pixels valid, %d used, %d implanted", area, n_valid, shape[0] * shape[1],
                 used.size, int(implanted.sum()))
        tags = {"area": area, **{k: params[k] for k in BENCHMARK_PARAMS}, "rgb_max": rgb[0], "rgb_gamma": rgb[1],
                "n_valid": n_valid, "n_pixels": used.size, "n_implanted": int(implanted.sum()),
                "pairs": ",".join(p for p in PAIRS if p in opened)}
        writer = (stack.enter_context(bench.Writer(benchmark, opened, used, implanted, tags, rows, band_sets))
                  if benchmark else None)
        results = {which: _band_set(area, opened, which, used, source, implanted, params, shape, rows, fns, writer)
                   for which in band_sets}
    elapsed = time.monotonic() - started
    log.info("area %s: done in %.1f s (%.2f M pixel-pairs/s)", area, elapsed,
             used.size * len(band_sets) * (len(opened) - 1) * len(fns) / 1e6 / max(elapsed, 1e-9))
    return {
        "area": area, "shape": list(shape), "n_valid": n_valid, "n_pixels": int(used.size),
        "n_implanted": int(implanted.sum()), "pairs": [p for p in PAIRS if p in opened],
        "inputs": pixels.describe(images), "roc_fpr": ROC_FPR.tolist(),
        "params": dict(params), "band_sets": results,
        "band_names": {which: " ".join(names) for which, names in band_sets.items()},
    }


def _band_set(area, opened, which, used, source, implanted, params, shape, rows, fns, writer) -> dict:
    x = pixels.gather(opened["before"], which, used, shape, rows)
    check_bands(area, opened["before"], which, x)
    ys = {}
    for pair in (p for p in PAIRS if p in opened):
        ys[pair] = pixels.gather(opened[pair], which, source, shape, rows)
        check_bands(area, opened[pair], which, ys[pair])
    out = {}
    for name, fn in fns.items():
        t0 = time.monotonic()
        scores = {pair: fn(x, y) for pair, y in ys.items()}
        out[name] = compare_pairs(scores, implanted, params["far"])
        log.info("area %s %s %s: %s (%.2f s)", area, which, name, ", ".join(
            f"{p} AUC {r['auc']:.3f}" for p, r in out[name]["pairs"].items()), time.monotonic() - t0)
    if writer is not None:  # after the detectors: an area they fail on gets no benchmark either
        writer.write(which, ys)
    return out


def summary_rows(records: list[dict]) -> list[dict]:
    """One row per area, band set, detector and pair (:data:`SUMMARY_COLUMNS`)."""
    rows = []
    for rec in records:
        for which, dets in rec["band_sets"].items():
            for name, res in dets.items():
                for pair, r in res["pairs"].items():
                    rows.append({
                        "area": rec["area"], "bands": which, "band_names": band_names(rec, which),
                        "detector": name, "pair": pair,
                        **{k: r[k] for k in SUMMARY_COLUMNS[5:10]},
                        "n_pixels": rec["n_pixels"], "n_implanted": rec["n_implanted"],
                    })
    return rows


def band_names(record: dict, which: str) -> str:
    """The bands of band set ``which`` of an area's record, space-separated (e.g. ``B04 B03 B02``)."""
    names = record.get("band_names", {}).get(which)
    return names if names is not None else " ".join(pixels.DEFAULT_BANDS[which])


def gaps(rows: list[dict]) -> dict:
    """Per band set: its bands (``band_names``), per detector the mean AUC per pair over areas,
    ``|AUC_synthetic - AUC_real|`` (and truth vs real, synthetic vs truth where there is truth), and the detector rankings."""
    out = {}
    for which in sorted({r["bands"] for r in rows}):
        mean = {}
        for r in (r for r in rows if r["bands"] == which):
            mean.setdefault(r["detector"], {}).setdefault(r["pair"], []).append(r["auc"])
        mean = {d: {p: float(np.mean(v)) for p, v in pairs.items()} for d, pairs in mean.items()}
        per = {}
        for d, m in mean.items():
            per[d] = {"auc": m, "gap_synthetic_real": abs(m["synthetic"] - m["real"])}
            if "truth" in m:
                per[d]["gap_truth_real"] = abs(m["truth"] - m["real"])
                per[d]["gap_synthetic_truth"] = abs(m["synthetic"] - m["truth"])
        ranking = {p: sorted(mean, key=lambda d: -mean[d][p]) for p in next(iter(mean.values()))}
        out[which] = {
            "band_names": next(r.get("band_names") for r in rows if r["bands"] == which),
            "detectors": per, "ranking": ranking,
            "ranking_matches": ranking["synthetic"] == ranking["real"],
            "max_gap_synthetic_real": max(v["gap_synthetic_real"] for v in per.values()),
        }
    return out


def gap_sentence(g: dict) -> str:
    """The report's words for one band set's gaps."""
    dets = "; ".join(f"{d} {v['gap_synthetic_real']:.3f}" for d, v in g["detectors"].items())
    verdict = "matches" if g["ranking_matches"] else "does not match"
    return (f"|AUC_synthetic - AUC_real| per detector: {dets}. The detectors' ranking on synthetic snow "
            f"({' > '.join(g['ranking']['synthetic'])}) {verdict} the ranking on real snow "
            f"({' > '.join(g['ranking']['real'])}); AUCs agree within {g['max_gap_synthetic_real']:.3f}.")
