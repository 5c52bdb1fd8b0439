"""The metrics of one epoch: its features (and samples) -> one row per direction -> ``epoch_NNN.json``.

Per direction (see :data:`deepsnow.metrics.load.DIRECTIONS`): for every extractor
whose features are given, ``fd_<extractor>`` (Fréchet distance), ``cd_<extractor>``
(1 − mean cosine similarity) and ``precision_``, ``recall_``, ``density_``, ``coverage_<extractor>``
(``metrics.prdc_k`` nearest neighbours); the FID and KID
use the ``metrics.inception_extractor`` features (default the FID Inception);
FRD, CRD and the RF test the ``metrics.resnet_extractor`` features (default
ResNet-50); the paired errors (AtoB only, simulator data) the generated images
against the true snowy ones: ``paired_l1``, ``paired_ssim``, ``paired_l1_water`` against the
snowfall truth (``truth_snowfall`` of testA.npz, which domain B's snow makes reachable),
``paired_l1_season``, ``paired_ssim_season`` against the snow season's truth (``truth``).
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path

import numpy as np

from deepsnow import DeepsnowError
from deepsnow.io import load_npz, write_json
from deepsnow.metrics.load import check_pair, directions_of, load_epochs, load_real

log = logging.getLogger("deepsnow.metrics")

_EPOCH_IN_NAME = re.compile(r"epoch_?(\d+)")
#: testA.npz's true images: the snowfall truth (the paired errors') and the snow season's
TRUTH_ARRAYS = ("truth_snowfall", "truth")


# ----------------------------------------------------------------------------- one epoch


def _nan_to_none(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _check_extractors(real: dict, fake: dict, names, epoch: int) -> None:
    for name in dict.fromkeys(names):
        if name not in real:
            raise DeepsnowError(f"no real features for extractor {name!r} (given: {sorted(real)}); pass features/real_{name}.npz")
        if name not in fake:
            raise DeepsnowError(f"epoch {epoch}: no features for extractor {name!r} (given: {sorted(fake)})")
        check_pair(real[name], fake[name], name, epoch)


def _extractor_columns(kind: str, name: str, real: dict) -> dict:
    """Which features (and weights) a row's numbers come from."""
    return {
        f"{kind}_extractor": name,
        f"{kind}_weights": real[name]["weights"],
        f"{kind}_pretrained": bool(real[name]["pretrained"]),
    }


def _kid(x, y, params: dict) -> dict:
    import warnings

    from deepsnow.metrics.distances import kernel_distance, kid_subset_size

    # the same subsets every epoch (equal set sizes): less epoch-to-epoch noise
    with warnings.catch_warnings():  # too few for a spread: kid_std is NaN, as the table documents
        warnings.simplefilter("ignore", RuntimeWarning)
        mean, std = kernel_distance(
            x, y, subsets=params["kid_subsets"], subset_size=params["kid_subset_size"],
            degree=params["kid_degree"], coef0=params["kid_coef0"], seed=params["seed"],
        )
    size = kid_subset_size(params["kid_subset_size"], len(x), len(y))
    return {"kid_mean": mean, "kid_std": std, "kid_subset_size": size}


def rf_columns(x, y, params: dict, n_jobs: int) -> dict:
    """The RF test's columns of the metrics table, x generated and y real features."""
    from deepsnow.metrics.rf import rf_two_sample_test

    rf = rf_two_sample_test(
        x, y, repeats=params["rf_repeats"], folds=params["rf_folds"], n_estimators=params["rf_n_estimators"],
        seed=params["seed"], n_jobs=n_jobs, clip=params["rf_clip"],
    )
    cols = {f"rf_{key}_{stat}": rf[f"{key}_{stat}"] for key in ("logloss", "accuracy", "auc") for stat in ("mean", "std")}
    return {**cols, "rf_n_per_class": rf["n_per_class"], "rf_repeats": rf["repeats"]}


def _unpaired(xi, yi, xr, yr, params: dict, n_jobs: int) -> dict:
    """FID and KID on the Inception features (x generated, y real); FRD, CRD and the RF test on the ResNet ones."""
    from deepsnow.metrics.distances import cosine_resnet_distance, frechet_distance, mean_dot_product

    # a dict display runs left to right: the metrics run (and fail) in the column order
    return {
        "fid": frechet_distance(xi, yi),
        "frd": frechet_distance(xr, yr),
        "crd": cosine_resnet_distance(xr, yr),
        "crd_dot": mean_dot_product(xr, yr),
        **_kid(xi, yi, params),
        **rf_columns(xr, yr, params, n_jobs),
    }


def _per_extractor(real: dict, fake: dict, params: dict) -> dict:
    """``fd_<name>`` (Fréchet distance), ``cd_<name>`` (1 − mean cosine similarity) and precision,
    recall, density and coverage (``<what>_<name>``) of every extractor of ``real`` (name -> features)."""
    from deepsnow.metrics.distances import cosine_resnet_distance, frechet_distance
    from deepsnow.metrics.prdc import prdc_scores

    out = {}
    for name in real:
        x, y = fake[name], real[name]
        out[f"fd_{name}"] = frechet_distance(x, y)
        out[f"cd_{name}"] = cosine_resnet_distance(x, y)
        try:
            scores = prdc_scores(y, x, k=params["prdc_k"])
        except DeepsnowError as exc:
            raise DeepsnowError(f"{name} features (key metrics.prdc_k = {params['prdc_k']}): {exc}") from exc
        out.update({f"{what}_{name}": v for what, v in scores.items()})
    return out


def set_metrics(real: dict, fake: dict, params: dict, n_jobs: int) -> dict:
    """Every unpaired metric of one generated set against one real set, in the metrics table's
    column order. ``real``, ``fake``: extractor name -> features (N, D); the FID and KID use
    ``params["inception_extractor"]``, FRD, CRD and the RF test ``params["resnet_extractor"]``."""
    inc, res = params["inception_extractor"], params["resnet_extractor"]
    return {
        **_unpaired(fake[inc], real[inc], fake[res], real[res], params, n_jobs),
        **_per_extractor(real, fake, params),
    }


def _paired(direction: str, paired: dict | None) -> dict:
    """Paired errors against the simulator's true snow images: AtoB only, NaN where there is no truth.
    ``paired["truth"]`` is the reachable truth, ``paired["season"]`` the snow season's (None: not given)."""
    nan = float("nan")
    row = {"paired_l1": nan, "paired_ssim": nan, "paired_l1_water": nan, "n_paired": 0}
    row |= {"paired_l1_season": nan, "paired_ssim_season": nan}
    if direction == "AtoB" and paired is not None:
        from deepsnow.metrics.paired import paired_errors

        row.update(paired_errors(paired["fake"], paired["truth"], paired.get("water")))
        if paired.get("season") is not None:
            season = paired_errors(paired["fake"], paired["season"])
            row.update(paired_l1_season=season["paired_l1"], paired_ssim_season=season["paired_ssim"])
    return row


def _log_row(where: str, row: dict) -> None:
    log.info(
        "%s: FID %.3f FRD %.3f CRD %.4f KID %.4g RF log loss %.3f%s",
        where,
        row["fid"],
        row["frd"],
        row["crd"],
        row["kid_mean"],
        row["rf_logloss_mean"],
        f" paired L1 {row['paired_l1']:.4f} SSIM {row['paired_ssim']:.3f}" if row["n_paired"] else "",
    )


def evaluate_epoch(
    real: dict[str, dict],
    fake: dict[str, dict],
    params: dict,
    epoch: int,
    paired: dict | None = None,
    n_jobs: int | None = None,
    spectral: dict | None = None,
) -> list[dict]:
    """The rows (AtoB, BtoA; AtoB alone for a one-sided model) of one epoch. ``paired``: {"fake", "truth",
    "season", "water"} images for AtoB (:func:`_paired`); ``spectral``: direction -> the spectral columns
    of a reflectance run (:func:`spectral_inputs`)."""
    inc, res = params["inception_extractor"], params["resnet_extractor"]
    _check_extractors(real, fake, (inc, res, *real), epoch)
    n_jobs = params["n_jobs"] if n_jobs is None else n_jobs
    rows = []
    for direction, (fk, rk) in directions_of(fake.values()).items():
        where = f"epoch {epoch} {direction}"
        xi, yi = fake[inc][fk], real[inc][rk]
        xr, yr = fake[res][fk], real[res][rk]
        if len(xi) != len(xr) or len(yi) != len(yr):
            raise DeepsnowError(f"{where}: {inc} and {res} features hold different numbers of images")
        row = {"epoch": epoch, "direction": direction, "n_real": int(len(yr)), "n_fake": int(len(xr))}
        row.update(_extractor_columns("inception", inc, real))
        row.update(_extractor_columns("resnet", res, real))
        try:
            row.update(set_metrics({k: v[rk] for k, v in real.items()}, {k: v[fk] for k, v in fake.items()}, params, n_jobs))
        except DeepsnowError as exc:
            raise DeepsnowError(f"{where} (generated {fk} vs real {rk}): {exc}") from exc
        row.update(_paired(direction, paired))
        row.update((spectral or {}).get(direction, {}))
        rows.append({k: _nan_to_none(v) for k, v in row.items()})
        _log_row(where, row)
    return rows


# ----------------------------------------------------------------------------- the command


def _check_outputs(order: list[int], outputs: list[Path]) -> None:
    """One output per epoch, in ascending epoch order; a name that states an epoch must state the right one."""
    if len(outputs) != len(order):
        raise DeepsnowError(
            f"--features hold {len(order)} epochs ({order}) but {len(outputs)} --outputs were given; "
            "give one output per epoch, in ascending epoch order"
        )
    for e, out in zip(order, outputs):
        m = _EPOCH_IN_NAME.search(out.name)
        if m and int(m.group(1)) != e:
            raise DeepsnowError(f"output {out} names epoch {int(m.group(1))} but receives epoch {e} (outputs go in ascending epoch order)")


def _warn_not_pretrained(real: dict, params: dict) -> None:
    for name in dict.fromkeys((params["inception_extractor"], params["resnet_extractor"])):
        if name in real and not real[name]["pretrained"]:
            log.warning(
                "WARNING: %s features use %s weights (not pretrained): FID/FRD/CRD values are not comparable "
                "with published ones", name, real[name]["weights"]
            )


def evaluate_files(
    real_paths,
    feature_paths,
    outputs,
    params: dict,
    samples_paths=(),
    truth_path=None,
    n_jobs: int | None = None,
    test_paths=None,
    mask_params: dict | None = None,
) -> list[dict]:
    """``deepsnow metrics epoch``: one JSON per epoch found in ``feature_paths`` (outputs in ascending epoch order).
    ``test_paths`` (testA, testB) and ``mask_params``: the spectral columns of reflectance samples."""
    real = load_real(real_paths)
    epochs = load_epochs(feature_paths)
    order = sorted(epochs)
    outputs = [Path(o) for o in outputs]
    _check_outputs(order, outputs)
    _warn_not_pretrained(real, params)
    paired_src = paired_inputs(samples_paths, truth_path, params, set(order))
    spectral = spectral_inputs(samples_paths, test_paths, mask_params, set(order))
    add_truth_columns(spectral, paired_src, mask_params)
    summaries = []
    for e, out in zip(order, outputs):
        rows = evaluate_epoch(real, epochs[e], params, e, paired=paired_src.get(e), n_jobs=n_jobs, spectral=spectral.get(e))
        doc = {
            "epoch": e,
            "rows": rows,
            "features": {name: arr["_path"] for name, arr in sorted(epochs[e].items())},
            "real_features": {name: arr["_path"] for name, arr in sorted(real.items())},
            "params": params,
        }
        write_json(out, doc)
        inputs = [arr["_path"] for arr in real.values()] + [arr["_path"] for arr in epochs[e].values()]
        if e in paired_src:
            inputs += [paired_src[e]["samples_path"], str(truth_path)]
        if e in spectral:
            inputs += [spectral[e]["samples_path"], *map(str, test_paths)]
        summaries.append({"epoch": e, "output": str(out), "inputs": inputs})
    return summaries


# ----------------------------------------------------------------------------- paired inputs


def _load_truth(truth_path) -> dict | None:
    """The simulator's test set with its true snowy images, or None when it has none (real data).

    The paired errors' truth is ``truth_snowfall``; a test set cut before it existed has only
    ``truth`` (the snow season's), which then stands in for it, with a warning."""
    truth = load_npz(truth_path)
    given = [k for k in TRUTH_ARRAYS if k in truth]
    if not given:
        log.info("%s has no %s array (not simulator data): paired errors are left empty", truth_path, "/".join(TRUTH_ARRAYS))
        return None
    if "ids" not in truth:
        raise DeepsnowError(f"{truth_path}: has {given} but no 'ids' to pair them with the samples")
    if "truth_snowfall" not in truth:
        log.warning(
            "WARNING: %s has no 'truth_snowfall' (cut before the snowfall truth existed): paired_l1/ssim/l1_water "
            "are measured against the snow season's 'truth', which the generator cannot reach; rerun the "
            "simulate, patches and split stages for the snowfall truth", truth_path,
        )
    return truth


def _paired_epoch(samples: dict, truth: dict, path, truth_path, epoch: int) -> dict:
    """The generated images of one epoch and the true images with the same ids, in the same order."""
    from deepsnow.metrics.paired import pair_by_ids

    _same_bands(samples, truth, path, truth_path)
    fi, ti = pair_by_ids(samples["ids_A"], truth["ids"])
    n = len(samples["ids_A"])
    if len(fi) < n:
        log.warning("epoch %d: %d of %d generated images have no true counterpart in %s", epoch, n - len(fi), n, truth_path)
    reachable = truth["truth_snowfall"] if "truth_snowfall" in truth else truth["truth"]
    return {
        "fake": samples["fake_B"][fi],
        "truth": reachable[ti],
        "season": truth["truth"][ti] if "truth" in truth else None,
        "water": truth["water"][ti] if "water" in truth else None,
        "ids": np.asarray(samples["ids_A"]).astype(str)[fi],
        "samples_path": str(path),
    }


def _bands_of(arrays: dict) -> list[str]:
    """The bands of a samples or test file: its ``bands`` (reflectance), else the 8-bit RGB's."""
    if "bands" not in arrays:
        return ["rgb8"]
    return [str(b) for b in np.asarray(arrays["bands"]).ravel()]


def _same_bands(samples: dict, truth: dict, path, truth_path) -> None:
    """Samples are paired with truths of the same bands only (reflectance samples with truths cut in the
    same bands, RGB with RGB); an error names both files and their bands."""
    got, want = _bands_of(samples), _bands_of(truth)
    if got != want:
        raise DeepsnowError(
            f"{path}: samples in bands {got}, but the truths of {truth_path} are in {want}; paired errors need "
            "the same bands (rgb8: 8-bit RGB)"
        )


def paired_inputs(samples_paths, truth_path, params, epochs: set[int]) -> dict[int, dict]:
    """{epoch: paired images} for every epoch, or {} when paired errors are off or impossible."""
    samples_paths = list(samples_paths or ())
    if not params["paired"] or not samples_paths or truth_path is None:
        if samples_paths and truth_path is None:
            log.info("no --truth given: paired errors are left empty")
        return {}
    truth = _load_truth(truth_path)
    if truth is None:
        return {}
    out = {}
    for p in samples_paths:
        s = load_npz(p, required=("fake_B", "ids_A", "epoch"))
        e = int(np.asarray(s["epoch"]).reshape(()))
        if e not in epochs:
            raise DeepsnowError(f"{p}: samples of epoch {e}, but no --features were given for that epoch")
        if e in out:
            raise DeepsnowError(f"{p}: a second samples file for epoch {e}")
        out[e] = _paired_epoch(s, truth, p, truth_path, e)
    missing = epochs - set(out)
    if missing:
        raise DeepsnowError(f"--samples lack epochs {sorted(missing)} (paired errors need the images of every epoch)")
    return out


# ----------------------------------------------------------------------------- spectral columns


def _test_reflectance(path) -> tuple[np.ndarray, list[str]]:
    """A reflectance test set's ``reflectance`` and ``bands`` (errors name the file)."""
    from deepsnow.data.bands import image_of

    arrays = load_npz(path)
    key, bands, encoding = image_of(arrays, path, "test set")
    if encoding != "reflectance":
        raise DeepsnowError(f"{path}: an 8-bit RGB test set, but the samples are reflectance")
    return arrays[key], list(bands)


def spectral_inputs(samples_paths, test_paths, mask_params: dict | None, epochs: set[int]) -> dict[int, dict]:
    """{epoch: {direction: spectral columns, "samples_path": ...}} of reflectance samples against the real
    target-domain test patches (AtoB: testB, BtoA: testA; :mod:`deepsnow.metrics.spectral`); {} for RGB
    samples or without ``test_paths``."""
    from deepsnow.metrics.spectral import spectral_columns

    if not test_paths or not samples_paths:
        return {}
    if mask_params is None:
        raise DeepsnowError("the spectral columns need the mask section (--mask-params) for its snow rule")
    tests, out = None, {}
    for p in samples_paths:
        s = load_npz(p, required=("fake_B", "epoch"))
        if "bands" not in s:
            continue  # 8-bit RGB samples: no spectral columns
        e, bands = int(np.asarray(s["epoch"]).reshape(())), _bands_of(s)
        if e not in epochs:
            raise DeepsnowError(f"{p}: samples of epoch {e}, but no --features were given for that epoch")
        tests = tests or [_test_reflectance(t) for t in test_paths]
        for t, (_, tb) in zip(test_paths, tests):
            if tb != bands:
                raise DeepsnowError(f"{p}: samples in bands {bands}, but the test set {t} is in {tb}")
        row = {"samples_path": str(p), "bands": bands, "AtoB": spectral_columns(tests[1][0], s["fake_B"], bands, mask_params, f"{p}:fake_B")}
        if "fake_A" in s:
            row["BtoA"] = spectral_columns(tests[0][0], s["fake_A"], bands, mask_params, f"{p}:fake_A")
        out[e] = row
    return out


def add_truth_columns(spectral: dict[int, dict], paired_src: dict[int, dict], mask_params: dict | None) -> None:
    """Add to the AtoB spectral columns of every epoch with paired truth (simulator data) the mask rule's
    snow checks against it (:func:`deepsnow.metrics.spectral.snow_truth_columns`), in place."""
    from deepsnow.metrics.spectral import snow_truth_columns

    for e, cols in spectral.items():
        if e in paired_src and "AtoB" in cols:
            src = paired_src[e]
            cols["AtoB"].update(snow_truth_columns(src["fake"], src["truth"], cols["bands"], mask_params, src["samples_path"]))
