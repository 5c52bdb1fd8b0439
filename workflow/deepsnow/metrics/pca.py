"""The PCA of Figure 6: per direction, fitted on the real ResNet features plus those of the chosen epochs.

``pca.csv`` holds one row per image (source ``real`` or ``epoch_<e>``) with its
first ``metrics.pca_components`` coordinates; ``pca.json`` the explained
variance ratios and how many images each source gave.
"""

from __future__ import annotations

import numpy as np

from deepsnow import DeepsnowError
from deepsnow.io import write_json
from deepsnow.metrics.load import check_pair, directions_of, load_epochs, load_real
from deepsnow.metrics.table import write_csv

PCA_COLUMNS_FIXED = ("source", "epoch", "direction", "id")

#: generated features array -> the ids array of the images it was made from
_IDS_OF = {"fake_B": "ids_A", "fake_A": "ids_B"}


def select_pca_epochs(available: list[int], wanted: list[int]) -> list[int]:
    """The epochs entering the PCA: ``wanted``, or the first and last available when none are."""
    if not available:
        raise DeepsnowError("PCA: no epoch features given")
    if not wanted:
        return sorted({min(available), max(available)})
    missing = [e for e in wanted if e not in available]
    if missing:
        raise DeepsnowError(f"metrics.pca_epochs {missing} have no features among the given epochs {sorted(available)}")
    return sorted(set(wanted))


def _real_of(real_path, name: str) -> dict:
    real = load_real([real_path])
    if name not in real:
        raise DeepsnowError(f"{real_path}: holds {sorted(real)} features, metrics.resnet_extractor is {name!r}")
    return real[name]


def _parts(real: dict, epochs: dict, chosen: list[int], name: str, fk: str, rk: str) -> list[tuple]:
    """(source, epoch, features, ids) of the real set and of each chosen epoch, for one direction."""
    parts = [("real", None, real[rk], real[f"ids_{rk}"])]
    for e in chosen:
        if name not in epochs[e]:
            raise DeepsnowError(f"epoch {e}: no {name!r} features given for the PCA")
        f = epochs[e][name]
        check_pair(real, f, name, e)
        parts.append((f"epoch_{e}", e, f[fk], f[_IDS_OF[fk]]))
    return parts


def _fit(parts: list[tuple], direction: str, k: int, seed: int):
    """The fitted PCA and the coordinates of every part's images, in the order of ``parts``."""
    from sklearn.decomposition import PCA

    from deepsnow.metrics.distances import check_features

    data = np.concatenate([check_features(p[2], f"{direction} {p[0]}", min_n=0) for p in parts])
    if len(data) < k + 1 or data.shape[1] < k:
        raise DeepsnowError(f"PCA {direction}: {len(data)} samples of dimension {data.shape[1]}; need more than {k}")
    pca = PCA(n_components=k, svd_solver="full", random_state=seed)
    return pca, pca.fit_transform(data)


def _rows(parts: list[tuple], coords: np.ndarray, direction: str, k: int) -> list[dict]:
    rows, i = [], 0
    for source, e, feats, ids in parts:
        for j in range(len(feats)):
            row = {"source": source, "epoch": e, "direction": direction, "id": str(ids[j])}
            row.update({f"pc{c + 1}": float(coords[i + j, c]) for c in range(k)})
            rows.append(row)
        i += len(feats)
    return rows


def pca_projection(real_path, feature_paths, params: dict, output, summary_path) -> dict:
    """``deepsnow metrics pca``: PCA per direction, fitted on the real features plus the chosen epochs' generated ones."""
    name = params["resnet_extractor"]
    real = _real_of(real_path, name)
    epochs = load_epochs(feature_paths)
    chosen = select_pca_epochs(sorted(epochs), list(params["pca_epochs"]))
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
    for direction, (fk, rk) in directions_of(epochs[e][name] for e in chosen if name in epochs[e]).items():
        parts = _parts(real, epochs, chosen, name, fk, rk)
        pca, coords = _fit(parts, direction, k, int(params["seed"]))
        rows += _rows(parts, coords, direction, k)
        summary["directions"][direction] = {
            "explained_variance_ratio": [float(v) for v in pca.explained_variance_ratio_],
            "n": {p[0]: int(len(p[2])) for p in parts},
        }
    write_csv(output, rows, PCA_COLUMNS_FIXED + tuple(f"pc{c + 1}" for c in range(k)))
    write_json(summary_path, summary)
    return {"epochs": chosen, "n_rows": len(rows)}
