"""Per-epoch metrics from feature files, the metrics table, the correlations and the PCA.

Directions: ``AtoB`` compares ``fake_B`` (testA translated to snowy) with the
real snowy test set ``B``; ``BtoA`` compares ``fake_A`` with the real ``A``.
The FID and KID use the ``metrics.inception_extractor`` features (default the
FID Inception); FRD, CRD, the RF test and the PCA the
``metrics.resnet_extractor`` features (default ResNet-50). The real features
and the epoch features of an extractor must have been made with the same
weights, otherwise the command refuses.
"""

from __future__ import annotations

import csv
import logging
import math
import re
from pathlib import Path

import numpy as np

from deepsnow import DeepsnowError
from deepsnow.io import load_npz, write_json

log = logging.getLogger("deepsnow.metrics")

#: direction -> (array in the epoch features file, array in the real features file)
DIRECTIONS = {"AtoB": ("fake_B", "B"), "BtoA": ("fake_A", "A")}

TABLE_COLUMNS = (
    "epoch",
    "direction",
    "n_real",
    "n_fake",
    "inception_extractor",
    "inception_weights",
    "inception_pretrained",
    "resnet_extractor",
    "resnet_weights",
    "resnet_pretrained",
    "fid",
    "frd",
    "crd",
    "crd_dot",
    "kid_mean",
    "kid_std",
    "rf_logloss_mean",
    "rf_logloss_std",
    "rf_accuracy_mean",
    "rf_accuracy_std",
    "rf_auc_mean",
    "rf_auc_std",
    "rf_n_per_class",
    "rf_repeats",
    "paired_l1",
    "paired_ssim",
    "paired_l1_water",
    "n_paired",
)

#: unpaired metrics correlated with the paired errors, and the sign each should
#: have against paired_l1 if it tracks quality (both fall as images improve => +1)
UNPAIRED_METRICS = {
    "fid": 1,
    "frd": 1,
    "crd": 1,
    "crd_dot": -1,
    "kid_mean": 1,
    "rf_logloss_mean": -1,
    "rf_accuracy_mean": 1,
    "rf_auc_mean": 1,
}
#: paired measures and their orientation (+1: lower is better, -1: higher is better)
PAIRED_METRICS = {"paired_l1": 1, "paired_ssim": -1, "paired_l1_water": 1}

CORRELATION_COLUMNS = ("metric", "paired", "direction", "spearman_rho", "p_value", "n_epochs", "expected_sign")
PCA_COLUMNS_FIXED = ("source", "epoch", "direction", "id")


# ----------------------------------------------------------------------------- loading


def _read_features(path) -> dict:
    from deepsnow.features.embed import read_features

    return read_features(path)


def _check_feature_array(x: np.ndarray, key: str, path, where: str) -> None:
    """A features array as 'deepsnow embed' writes it: (N, D) numeric, every value finite."""
    if x.ndim != 2 or x.dtype.kind not in "fiu":
        raise DeepsnowError(
            f"{path}: array {key!r} ({where}) must be (N, D) numeric features, found shape {x.shape} of {x.dtype}"
        )
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise DeepsnowError(
            f"{path}: array {key!r} ({where}) holds NaN or infinite features in {int(bad.sum())} of {len(x)} rows "
            f"(first row {int(np.argmax(bad))}); expected finite features from 'deepsnow embed'"
        )


#: features array -> the direction whose metrics it enters
_DIRECTION_OF = {k: d for d, keys in DIRECTIONS.items() for k in keys}


def load_real(paths) -> dict[str, dict]:
    """Real features files -> {extractor: arrays}."""
    out: dict[str, dict] = {}
    for p in paths:
        arr = _read_features(p)
        for key in ("A", "B"):
            if key not in arr:
                raise DeepsnowError(f"{p}: not a real-features file (no {key!r} array; made by 'deepsnow embed --real-a/--real-b'?)")
            _check_feature_array(arr[key], key, p, f"real, {_DIRECTION_OF[key]}")
        name = arr["extractor"]
        if name in out:
            raise DeepsnowError(f"{p}: a second real-features file for extractor {name!r} ({out[name]['_path']})")
        arr["_path"] = str(p)
        out[name] = arr
    return out


def load_epochs(paths) -> dict[int, dict[str, dict]]:
    """Epoch features files -> {epoch: {extractor: arrays}}."""
    out: dict[int, dict[str, dict]] = {}
    for p in paths:
        arr = _read_features(p)
        for key in ("fake_B", "fake_A", "epoch"):
            if key not in arr:
                raise DeepsnowError(f"{p}: not an epoch-features file (no {key!r} array; made by 'deepsnow embed --samples'?)")
        epoch = int(np.asarray(arr["epoch"]).reshape(()))
        for key in ("fake_B", "fake_A"):
            _check_feature_array(arr[key], key, p, f"epoch {epoch} {_DIRECTION_OF[key]}")
        name = arr["extractor"]
        slot = out.setdefault(epoch, {})
        if name in slot:
            raise DeepsnowError(f"{p}: a second {name!r} features file for epoch {epoch} ({slot[name]['_path']})")
        arr["_path"] = str(p)
        slot[name] = arr
    return out


def _check_pair(real: dict, fake: dict, name: str, epoch: int) -> None:
    if real["weights"] != fake["weights"]:
        raise DeepsnowError(
            f"{name} features were made with different weights: real {real['weights']} ({real['_path']}) vs "
            f"epoch {epoch} {fake['weights']} ({fake['_path']}); re-embed both with the same features config"
        )
    for rk, fk in (("A", "fake_A"), ("B", "fake_B")):
        if real[rk].ndim != 2 or fake[fk].ndim != 2 or real[rk].shape[1] != fake[fk].shape[1]:
            raise DeepsnowError(
                f"{name}: feature dimensions differ: {real['_path']}:{rk} {real[rk].shape} vs {fake['_path']}:{fk} {fake[fk].shape}"
            )


# ----------------------------------------------------------------------------- one epoch


def _full_params(params: dict | None) -> dict:
    """The metrics config section with the schema's defaults filled in (validated)."""
    from deepsnow.config import validate_section

    return validate_section("metrics", params or {}, source="metrics params")


def _nan_to_none(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def evaluate_epoch(
    real: dict[str, dict],
    fake: dict[str, dict],
    params: dict,
    epoch: int,
    paired: dict | None = None,
    n_jobs: int | None = None,
) -> list[dict]:
    """The two rows (AtoB, BtoA) of one epoch. ``paired``: {"fake", "truth", "water"} images for AtoB."""
    from deepsnow.metrics.distances import cosine_resnet_distance, frechet_distance, kernel_distance, mean_dot_product
    from deepsnow.metrics.rf import rf_two_sample_test

    params = _full_params(params)
    inc, res = params["inception_extractor"], params["resnet_extractor"]
    for name in dict.fromkeys((inc, res)):
        if name not in real:
            raise DeepsnowError(f"no real features for extractor {name!r} (given: {sorted(real)}); pass features/real_{name}.npz")
        if name not in fake:
            raise DeepsnowError(f"epoch {epoch}: no features for extractor {name!r} (given: {sorted(fake)})")
        _check_pair(real[name], fake[name], name, epoch)
    n_jobs = params.get("n_jobs", -1) if n_jobs is None else n_jobs
    rows = []
    for direction, (fk, rk) in DIRECTIONS.items():
        xi, yi = fake[inc][fk], real[inc][rk]
        xr, yr = fake[res][fk], real[res][rk]
        if len(xi) != len(xr) or len(yi) != len(yr):
            raise DeepsnowError(f"epoch {epoch} {direction}: {inc} and {res} features hold different numbers of images")
        row = {
            "epoch": epoch,
            "direction": direction,
            "n_real": int(len(yr)),
            "n_fake": int(len(xr)),
            "inception_extractor": inc,
            "inception_weights": real[inc]["weights"],
            "inception_pretrained": bool(real[inc]["pretrained"]),
            "resnet_extractor": res,
            "resnet_weights": real[res]["weights"],
            "resnet_pretrained": bool(real[res]["pretrained"]),
        }
        where = f"epoch {epoch} {direction}"
        try:
            row["fid"] = frechet_distance(xi, yi)
            row["frd"] = frechet_distance(xr, yr)
            row["crd"] = cosine_resnet_distance(xr, yr)
            row["crd_dot"] = mean_dot_product(xr, yr)
            row["kid_mean"], row["kid_std"] = kernel_distance(
                xi,
                yi,
                subsets=params["kid_subsets"],
                subset_size=params["kid_subset_size"],
                degree=params["kid_degree"],
                coef0=params["kid_coef0"],
                seed=params["seed"],  # the same subsets every epoch (equal set sizes): less epoch-to-epoch noise
            )
            rf = rf_two_sample_test(
                xr,
                yr,
                repeats=params["rf_repeats"],
                folds=params["rf_folds"],
                n_estimators=params["rf_n_estimators"],
                seed=params["seed"],
                n_jobs=n_jobs,
                clip=params["rf_clip"],
            )
        except DeepsnowError as exc:
            raise DeepsnowError(f"{where} (generated {fk} vs real {rk}): {exc}") from exc
        for key in ("logloss", "accuracy", "auc"):
            row[f"rf_{key}_mean"] = rf[f"{key}_mean"]
            row[f"rf_{key}_std"] = rf[f"{key}_std"]
        row["rf_n_per_class"] = rf["n_per_class"]
        row["rf_repeats"] = rf["repeats"]
        nan = float("nan")
        row.update(paired_l1=nan, paired_ssim=nan, paired_l1_water=nan, n_paired=0)
        if direction == "AtoB" and paired is not None:
            from deepsnow.metrics.paired import paired_errors

            row.update(paired_errors(paired["fake"], paired["truth"], paired.get("water")))
        rows.append({k: _nan_to_none(v) for k, v in row.items()})
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
    return rows


_EPOCH_IN_NAME = re.compile(r"epoch_?(\d+)")


def evaluate_files(
    real_paths,
    feature_paths,
    outputs,
    params: dict,
    samples_paths=(),
    truth_path=None,
    n_jobs: int | None = None,
) -> list[dict]:
    """``deepsnow metrics epoch``: one JSON per epoch found in ``feature_paths`` (outputs in ascending epoch order)."""
    params = _full_params(params)
    real = load_real(real_paths)
    epochs = load_epochs(feature_paths)
    order = sorted(epochs)
    outputs = [Path(o) for o in outputs]
    if len(outputs) != len(order):
        raise DeepsnowError(
            f"--features hold {len(order)} epochs ({order}) but {len(outputs)} --outputs were given; "
            "give one output per epoch, in ascending epoch order"
        )
    for e, out in zip(order, outputs):
        m = _EPOCH_IN_NAME.search(out.name)
        if m and int(m.group(1)) != e:
            raise DeepsnowError(f"output {out} names epoch {int(m.group(1))} but receives epoch {e} (outputs go in ascending epoch order)")
    for name in dict.fromkeys((params["inception_extractor"], params["resnet_extractor"])):
        if name in real and not real[name]["pretrained"]:
            log.warning(
                "WARNING: %s features use %s weights (not pretrained): FID/FRD/CRD values are not comparable "
                "with published ones", name, real[name]["weights"]
            )
    paired_src = _paired_inputs(samples_paths, truth_path, params, set(order))
    summaries = []
    for e, out in zip(order, outputs):
        rows = evaluate_epoch(real, epochs[e], params, e, paired=paired_src.get(e), n_jobs=n_jobs)
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
        summaries.append({"epoch": e, "output": str(out), "inputs": inputs})
    return summaries


def _paired_inputs(samples_paths, truth_path, params, epochs: set[int]) -> dict[int, dict]:
    from deepsnow.metrics.paired import pair_by_ids

    samples_paths = list(samples_paths or ())
    if not params.get("paired", True) or not samples_paths or truth_path is None:
        if samples_paths and truth_path is None:
            log.info("no --truth given: paired errors are left empty")
        return {}
    truth = load_npz(truth_path)
    if "truth" not in truth:
        log.info("%s has no 'truth' array (not simulator data): paired errors are left empty", truth_path)
        return {}
    if "ids" not in truth:
        raise DeepsnowError(f"{truth_path}: has 'truth' but no 'ids' to pair them with the samples")
    out = {}
    for p in samples_paths:
        s = load_npz(p, required=("fake_B", "ids_A", "epoch"))
        e = int(np.asarray(s["epoch"]).reshape(()))
        if e not in epochs:
            raise DeepsnowError(f"{p}: samples of epoch {e}, but no --features were given for that epoch")
        if e in out:
            raise DeepsnowError(f"{p}: a second samples file for epoch {e}")
        fi, ti = pair_by_ids(s["ids_A"], truth["ids"])
        if len(fi) < len(s["ids_A"]):
            log.warning("epoch %d: %d of %d generated images have no true counterpart in %s", e, len(s["ids_A"]) - len(fi), len(s["ids_A"]), truth_path)
        out[e] = {
            "fake": s["fake_B"][fi],
            "truth": truth["truth"][ti],
            "water": truth["water"][ti] if "water" in truth else None,
            "samples_path": str(p),
        }
    missing = epochs - set(out)
    if missing:
        raise DeepsnowError(f"--samples lack epochs {sorted(missing)} (paired errors need the images of every epoch)")
    return out


# ----------------------------------------------------------------------------- table and correlations


def collect_rows(json_paths) -> list[dict]:
    import json

    rows, seen = [], {}
    for p in json_paths:
        try:
            doc = json.loads(Path(p).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DeepsnowError(f"{p}: unreadable epoch metrics JSON ({exc})") from exc
        if not isinstance(doc, dict) or "rows" not in doc or "epoch" not in doc:
            raise DeepsnowError(f"{p}: not an epoch metrics file from 'deepsnow metrics epoch'")
        e = int(doc["epoch"])
        if e in seen:
            raise DeepsnowError(f"{p}: epoch {e} appears twice (also in {seen[e]})")
        seen[e] = p
        rows.extend(doc["rows"])
    rows.sort(key=lambda r: (r["epoch"], r["direction"]))
    return rows


def _fmt(v):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    return v


def write_csv(path, rows, columns) -> None:
    from deepsnow.io import atomic_output

    with atomic_output(path) as tmp:
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore")
            w.writeheader()
            for r in rows:
                w.writerow({c: _fmt(r.get(c)) for c in columns})


def correlations(rows: list[dict]) -> list[dict]:
    """Spearman's rho across epochs between each unpaired metric and each paired error (AtoB rows)."""
    import warnings

    from scipy.stats import spearmanr

    out = []
    ab = [r for r in rows if r["direction"] == "AtoB"]
    for paired, porient in PAIRED_METRICS.items():
        for metric, sign in UNPAIRED_METRICS.items():
            pairs = [
                (r[metric], r[paired])
                for r in ab
                if r.get(metric) is not None and r.get(paired) is not None
                and math.isfinite(r[metric]) and math.isfinite(r[paired])
            ]
            rho = p = float("nan")
            if len(pairs) >= 3:
                a, b = np.array(pairs, dtype=float).T
                if np.ptp(a) > 0 and np.ptp(b) > 0:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        res = spearmanr(a, b)
                    rho, p = float(res.statistic), float(res.pvalue)
            out.append(
                {
                    "metric": metric,
                    "paired": paired,
                    "direction": "AtoB",
                    "spearman_rho": rho,
                    "p_value": p,
                    "n_epochs": len(pairs),
                    "expected_sign": sign * porient,
                }
            )
    return out


def make_table(json_paths, table_path, correlations_path=None) -> dict:
    rows = collect_rows(json_paths)
    write_csv(table_path, rows, TABLE_COLUMNS)
    summary = {"n_rows": len(rows), "epochs": sorted({r["epoch"] for r in rows})}
    if correlations_path is not None:
        corr = correlations(rows)
        write_csv(correlations_path, corr, CORRELATION_COLUMNS)
        summary["n_correlations"] = sum(1 for c in corr if c["n_epochs"] >= 3)
    return summary


# ----------------------------------------------------------------------------- PCA


def select_pca_epochs(available: list[int], wanted: list[int]) -> list[int]:
    if not available:
        raise DeepsnowError("PCA: no epoch features given")
    if not wanted:
        return sorted({min(available), max(available)})
    missing = [e for e in wanted if e not in available]
    if missing:
        raise DeepsnowError(f"metrics.pca_epochs {missing} have no features among the given epochs {sorted(available)}")
    return sorted(set(wanted))


def pca_projection(real_path, feature_paths, params: dict, output, summary_path) -> dict:
    """PCA per direction, fitted on the real features plus the chosen epochs' generated ones."""
    from sklearn.decomposition import PCA

    from deepsnow.metrics.distances import check_features

    params = _full_params(params)
    name = params["resnet_extractor"]
    real = load_real([real_path])
    if name not in real:
        raise DeepsnowError(f"{real_path}: holds {sorted(real)} features, metrics.resnet_extractor is {name!r}")
    real = real[name]
    epochs = load_epochs(feature_paths)
    chosen = select_pca_epochs(sorted(epochs), list(params.get("pca_epochs") or []))
    k = int(params["pca_components"])
    rows, summary = [], {
        "extractor": name,
        "weights": real["weights"],
        "pretrained": bool(real["pretrained"]),
        "epochs": chosen,
        "fit_on": "real+epochs",
        "n_components": k,
        "directions": {},
    }
    for direction, (fk, rk) in DIRECTIONS.items():
        parts = [("real", None, real[rk], real[f"ids_{rk}"])]
        for e in chosen:
            if name not in epochs[e]:
                raise DeepsnowError(f"epoch {e}: no {name!r} features given for the PCA")
            f = epochs[e][name]
            _check_pair(real, f, name, e)
            ids_key = "ids_A" if fk == "fake_B" else "ids_B"
            parts.append((f"epoch_{e}", e, f[fk], f[ids_key]))
        data = np.concatenate([check_features(p[2], f"{direction} {p[0]}", min_n=0) for p in parts])
        if len(data) < k + 1 or data.shape[1] < k:
            raise DeepsnowError(f"PCA {direction}: {len(data)} samples of dimension {data.shape[1]}; need more than {k}")
        pca = PCA(n_components=k, svd_solver="full", random_state=int(params["seed"]))
        coords = pca.fit_transform(data)
        i = 0
        for source, e, feats, ids in parts:
            for j in range(len(feats)):
                row = {"source": source, "epoch": e, "direction": direction, "id": str(ids[j])}
                row.update({f"pc{c + 1}": float(coords[i + j, c]) for c in range(k)})
                rows.append(row)
            i += len(feats)
        summary["directions"][direction] = {
            "explained_variance_ratio": [float(v) for v in pca.explained_variance_ratio_],
            "n": {p[0]: int(len(p[2])) for p in parts},
        }
    write_csv(output, rows, PCA_COLUMNS_FIXED + tuple(f"pc{c + 1}" for c in range(k)))
    write_json(summary_path, summary)
    return {"epochs": chosen, "n_rows": len(rows)}
