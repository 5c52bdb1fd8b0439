"""``deepsnow metrics validity``: every metric of the run along every ladder -> ``metrics/validity.csv``.

Each degraded set is made once and embedded once per extractor; the level-0 sets are shared by
all ladders of a mode, and in the half mode they are rows of the run's real features (the same
images), so they are not embedded again. The metrics are the metrics stage's own functions
(:func:`deepsnow.metrics.epoch.set_metrics`). The bootstrap draws, per replicate, the reference
and the candidate patches with replacement; the same draws serve every ladder and level of a
mode, so the levels' intervals differ by the degradation, not by the draw.

Reflectance test sets are degraded in reflectance (:class:`~deepsnow.validity.ladders.Encoding`) and
seen by each extractor as the run's features saw them (:func:`extractor_view`): the ImageNet
extractors their RGB composite rendered with patches.rgb_max and rgb_gamma, a reflectance simcover
its bands. Their physical metrics (:mod:`deepsnow.validity.physical`) are measured on every set
with the same draws.
"""

from __future__ import annotations

import csv
import logging

import numpy as np

from deepsnow import DeepsnowError
from deepsnow.io import atomic_output, load_npz
from deepsnow.metrics.table import PER_EXTRACTOR_PREFIXES, PRDC_PREFIXES
from deepsnow.validity.ladders import LADDERS, RGB, Encoding, spectral_problem
from deepsnow.validity.sets import Mode, bands_of, check_counts, half_mode, metrics_params, truth_mode
from deepsnow.validity.stats import summarise

log = logging.getLogger("deepsnow.validity")

#: metrics-table columns that are metrics (the others are their spreads, sizes and settings)
METRIC_COLUMNS = ("fid", "frd", "crd", "kid_mean", "rf_logloss_mean")
#: per-extractor metrics: <prefix>_<extractor>
PER_EXTRACTOR = tuple(f"{p}_" for p in (*PER_EXTRACTOR_PREFIXES, *PRDC_PREFIXES))
#: validity.csv's columns: one row per mode, ladder, metric and level
COLUMNS = (
    "mode", "ladder", "metric", "level", "parameter", "parameter_value", "value", "ci_low", "ci_high",
    "worse_when", "rho", "sensitivity", "n_reference", "n_candidate",
)
MODES = ("half", "truth")


def selected(row: dict) -> dict:
    """The metrics of a metrics-table row, in its column order."""
    return {k: v for k, v in row.items() if k in METRIC_COLUMNS or k.startswith(PER_EXTRACTOR)}


# ----------------------------------------------------------------------------- embedding


def build_extractors(features: dict, real: dict, simcover_weights) -> dict:
    """Every extractor of the real features, built as 'deepsnow embed' built them (same weights)."""
    from deepsnow.features.embed import build_from_params

    if simcover_weights is not None:
        features = {**features, "simcover": {**features["simcover"], "weights_path": str(simcover_weights)}}
    out = {}
    for name, arr in real.items():
        ext = build_from_params(name, features)
        if ext.weights != arr["weights"]:
            raise DeepsnowError(
                f"extractor {name} builds with weights {ext.weights}, but {arr['_path']} was embedded with "
                f"{arr['weights']}; give the features section (and --simcover-weights) the real features were made with"
            )
        out[name] = ext
    return out


def extractor_view(images: np.ndarray, ext, encoding: Encoding) -> np.ndarray:
    """What ``ext`` takes of the images, as 'deepsnow embed' gave it the run's (features/embed.py's
    ``_embed_array``): 8-bit RGB as stored; reflectance as its RGB composite (rendered with
    ``encoding.rgb``), or in a reflectance simcover's own bands."""
    from deepsnow.features.embed import band_images
    from deepsnow.features.rgbview import rgb_images

    if not encoding.reflectance:
        return images
    arrays = {"images": images, "encoding": np.array("reflectance"), "bands": np.array(encoding.bands)}
    if ext.bands is None:
        return rgb_images(arrays, "images", "the ladders' sets", encoding.rgb)
    return band_images(arrays, "images", "the ladders' sets", ext.bands, ext.weights)


def embed(images: np.ndarray, ext, features: dict) -> np.ndarray:
    """Features of an extractor's view of the images (:func:`extractor_view`)."""
    from deepsnow.features.embed import embed_images

    return embed_images(images, ext, batch_size=int(features["batch_size"]), device=features["device"])


def degraded(mode: Mode, ladder: str, li: int, level: float, seed: int, encoding: Encoding = RGB) -> np.ndarray:
    """Level ``level`` of ``ladder`` applied to the mode's candidates, with its own seeded noise."""
    rng = np.random.default_rng([seed, MODES.index(mode.name), list(LADDERS).index(ladder), li])
    return LADDERS[ladder].degrade(mode.images, level, rng, snowfree=mode.snowfree, encoding=encoding)


def ladder_sets(mode: Mode, validity: dict, encoding: Encoding) -> dict:
    """(ladder, level index) -> the degraded candidates, for every ladder and level above 0."""
    keys = [(ladder, li) for ladder in validity["ladders"] for li in range(1, len(validity["levels"]))]
    return {(ladder, li): degraded(mode, ladder, li, validity["levels"][li], validity["seed"], encoding) for ladder, li in keys}


def embed_ladders(mode: Mode, validity: dict, extractors: dict, features: dict, sets: dict, encoding: Encoding = RGB) -> dict:
    """(ladder, level index) -> features per extractor of the degraded ``sets``; every ladder's level 0
    is the same set.

    Per extractor, the mode's sets it sees differently from level 0 go through it in one pass (full
    batches); a set it sees as the very bytes of level 0 (the spectral ladder's RGB composite) takes
    level 0's features, which the same images would give."""
    level0 = dict(mode.level0) if mode.level0 is not None else {}
    out = {key: {} for key in sets}
    for name, ext in extractors.items():
        base = extractor_view(mode.images, ext, encoding)
        views = {key: extractor_view(images, ext, encoding) for key, images in sets.items()}
        fresh = [key for key, view in views.items() if not np.array_equal(view, base)]
        batch = ([] if name in level0 else [base]) + [views[key] for key in fresh]
        log.info("%s mode, %s: embedding %d sets of %d patches", mode.name, name, len(batch), len(mode.images))
        chunks = np.split(embed(np.concatenate(batch), ext, features), len(batch)) if batch else []
        if name not in level0:
            level0[name] = chunks.pop(0)
        for key in out:
            out[key][name] = chunks[fresh.index(key)] if key in fresh else level0[name]
    return {**{(ladder, 0): level0 for ladder in validity["ladders"]}, **out}


# ----------------------------------------------------------------------------- measuring


def resamples(n_ref: int, n_cand: int, validity: dict, mode: Mode) -> list[tuple[np.ndarray, np.ndarray]]:
    """The bootstrap draws of one mode: (reference rows, candidate rows) per replicate."""
    out = []
    for r in range(validity["n_bootstrap"]):
        rng = np.random.default_rng([validity["seed"], MODES.index(mode.name), 1, r])
        out.append((rng.integers(0, n_ref, n_ref), rng.integers(0, n_cand, n_cand)))
    return out


def measure(reference: dict, candidate: dict, params: dict, draws) -> tuple[dict, list[dict]]:
    """The metrics of one candidate set (the metrics stage's own functions), and of each bootstrap
    replicate of it (the same metrics from pairwise matrices computed once: :mod:`.replicates`);
    one process."""
    from deepsnow.metrics.epoch import set_metrics
    from deepsnow.validity.replicates import replicate_metrics

    values = selected(set_metrics(reference, candidate, params, 1))
    return values, replicate_metrics(reference, candidate, params, draws)


def measure_mode(mode: Mode, feats: dict, params: dict, validity: dict, n_jobs: int, draws) -> dict:
    """(ladder, level index) -> (values, bootstrap replicates), the sets measured in parallel
    (``n_jobs`` processes); level 0, the same set on every ladder, once."""
    from joblib import Parallel, delayed

    # the random-forest test with validity.rf_repeats: dozens of sets, each with its replicates
    params = {**params, "rf_repeats": validity["rf_repeats"]}
    unique = {0 if li == 0 else (ladder, li): candidate for (ladder, li), candidate in feats.items()}
    log.info("%s mode: measuring %d sets x %d bootstrap replicates", mode.name, len(unique), len(draws))
    results = Parallel(n_jobs=n_jobs if n_jobs not in (None, 0) else 1)(
        delayed(measure)(mode.reference, candidate, params, draws) for candidate in unique.values()
    )
    done = dict(zip(unique, results))
    return {(ladder, li): done[0 if li == 0 else (ladder, li)] for ladder, li in feats}


# ----------------------------------------------------------------------------- the table


def ladder_rows(mode: Mode, ladder: str, validity: dict, results: dict) -> list[dict]:
    """The rows of one ladder: every metric at every level, with rho, intervals and sensitivity."""
    levels = validity["levels"]
    per_level = [results[ladder, li] for li in range(len(levels))]
    spec = LADDERS[ladder]
    n_ref, n_cand = len(next(iter(mode.reference.values()))), len(mode.images)
    rows = []
    for metric in per_level[0][0]:
        values = [float(v[metric]) for v, _ in per_level]
        boot = [[float(b[metric]) for b in boots] for _, boots in per_level]
        s = summarise(metric, levels, values, boot)
        for li, level in enumerate(levels):
            rows.append({
                "mode": mode.name, "ladder": ladder, "metric": metric, "level": level,
                "parameter": spec.parameter, "parameter_value": spec.value(level), "value": values[li],
                "ci_low": s["intervals"][li][0], "ci_high": s["intervals"][li][1], "worse_when": s["worse_when"],
                "rho": s["rho"], "sensitivity": s["sensitivity"], "n_reference": n_ref, "n_candidate": n_cand,
            })
    return rows


def _cell(value) -> str:
    if isinstance(value, float):
        return "" if not np.isfinite(value) else repr(value)
    return str(value)


def write_table(rows: list[dict], output) -> None:
    with atomic_output(output) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({c: _cell(r[c]) for c in COLUMNS})


# ----------------------------------------------------------------------------- the command


def encoding_of(bands, paths: dict, validity: dict, view: dict) -> Encoding:
    """How the test sets store their images, with what the ladders need of the run (``view``: mask,
    the mask section, and rgb, (rgb_max, rgb_gamma)); a ladder these images cannot take is refused
    before any is made, naming validity.ladders and the bands."""
    if bands is None:
        encoding = RGB
    elif view.get("mask") is None:
        raise DeepsnowError(
            f"{paths['test_b']}: reflectance test sets (bands {list(bands)}); their ladders find snow by the mask's rule: "
            "give the 'mask' config section (--mask-params)"
        )
    else:
        encoding = Encoding(tuple(bands), view["mask"], tuple(view.get("rgb") or RGB.rgb))
    if "spectral" in validity["ladders"] and spectral_problem(encoding):
        raise DeepsnowError(f"{spectral_problem(encoding)} ({paths['test_b']})")
    return encoding


def load_modes(test_a_path, test_b_path, real: dict, validity: dict) -> tuple[list[Mode], tuple | None]:
    """The modes of the test sets, and their reflectance bands (None: 8-bit RGB)."""
    test_a, test_b = load_npz(test_a_path), load_npz(test_b_path, required=("ids",))
    bands = bands_of(test_a, test_b, test_a_path, test_b_path)
    modes = [half_mode(test_a, test_b, real, validity["seed"], test_b_path, test_a_path)]
    truth = truth_mode(test_a, test_b, real, test_a_path, test_b_path)
    return modes + ([truth] if truth is not None else []), bands


def physical_results(mode: Mode, sets: dict, validity: dict, encoding: Encoding, draws) -> dict:
    """(ladder, level index) -> the physical metrics (values, replicates) of a reflectance mode's sets;
    truth mode: also against its undegraded truth (the level-0 candidates)."""
    from deepsnow.metrics.spectral import mean_spectrum
    from deepsnow.validity.ladders import snow_mask
    from deepsnow.validity.physical import physical_metrics, summarise_set

    spectrum = mean_spectrum(mode.reference_images)
    reference = summarise_set(mode.reference_images, encoding, spectrum)
    truth = snow_mask(mode.images, encoding) if mode.name == "truth" else None
    level0 = physical_metrics(reference, summarise_set(mode.images, encoding, spectrum, truth), draws)
    out = {key: physical_metrics(reference, summarise_set(images, encoding, spectrum, truth), draws) for key, images in sets.items()}
    return out | {(ladder, 0): level0 for ladder in validity["ladders"]}


def merged(results: dict, physical: dict) -> dict:
    """Each set's metrics and replicates with its physical ones after them."""
    return {
        key: ({**values, **physical[key][0]}, [{**b, **p} for b, p in zip(boots, physical[key][1])])
        for key, (values, boots) in results.items()
    }


def run_validity(paths: dict, output, metrics: dict, validity: dict, features: dict, n_jobs: int, view: dict | None = None) -> dict:
    """``paths``: test_a, test_b, real (list), simcover_weights (or None); ``view`` (reflectance test
    sets): mask, the mask section, and rgb, (rgb_max, rgb_gamma). Writes ``output``."""
    from deepsnow.metrics.load import load_real

    real = load_real(paths["real"])
    params = metrics_params(metrics, validity)
    for key in ("inception_extractor", "resnet_extractor"):
        if params[key] not in real:
            raise DeepsnowError(f"metrics.{key} = {params[key]!r}: no real features given for it (--real)")
    modes, bands = load_modes(paths["test_a"], paths["test_b"], real, validity)
    encoding = encoding_of(bands, paths, validity, view or {})
    check_counts(modes, params)
    extractors = build_extractors(features, real, paths.get("simcover_weights"))
    rows = []
    for mode in modes:
        sets = ladder_sets(mode, validity, encoding)
        feats = embed_ladders(mode, validity, extractors, features, sets, encoding)
        draws = resamples(len(mode.reference_images), len(mode.images), validity, mode)
        results = measure_mode(mode, feats, params, validity, n_jobs, draws)
        if encoding.reflectance:
            results = merged(results, physical_results(mode, sets, validity, encoding, draws))
        for ladder in validity["ladders"]:
            rows += ladder_rows(mode, ladder, validity, results)
        log.info("%s mode measured: %d ladders x %d levels", mode.name, len(validity["ladders"]), len(validity["levels"]))
    write_table(rows, output)
    return {"modes": [m.name for m in modes], "n_rows": len(rows), "extractors": sorted(real)}
