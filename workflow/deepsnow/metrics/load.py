"""Reading the features files the metrics use, and checking that real and generated ones belong together.

Directions: ``AtoB`` compares ``fake_B`` (testA translated to snowy) with the
real snowy test set ``B``; ``BtoA`` compares ``fake_A`` with the real ``A``. A one-sided
model (CUT, FastCUT) has no ``fake_A``: its epochs have the ``AtoB`` direction only
(:func:`directions_of`).
The real features and the epoch features of an extractor must have been made
with the same weights, otherwise the metrics refuse.
"""

from __future__ import annotations

import numpy as np

from deepsnow import DeepsnowError

#: direction -> (array in the epoch features file, array in the real features file)
DIRECTIONS = {"AtoB": ("fake_B", "B"), "BtoA": ("fake_A", "A")}

#: features array -> the direction whose metrics it enters
_DIRECTION_OF = {k: d for d, keys in DIRECTIONS.items() for k in keys}


def _read_features(path) -> dict:
    from deepsnow.features.files import read_features

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
        for key in ("fake_B", "epoch"):
            if key not in arr:
                raise DeepsnowError(f"{p}: not an epoch-features file (no {key!r} array; made by 'deepsnow embed --samples'?)")
        epoch = int(np.asarray(arr["epoch"]).reshape(()))
        for key in ("fake_B", "fake_A"):
            if key in arr:  # no fake_A: a one-sided model's samples
                _check_feature_array(arr[key], key, p, f"epoch {epoch} {_DIRECTION_OF[key]}")
        name = arr["extractor"]
        slot = out.setdefault(epoch, {})
        if name in slot:
            raise DeepsnowError(f"{p}: a second {name!r} features file for epoch {epoch} ({slot[name]['_path']})")
        arr["_path"] = str(p)
        slot[name] = arr
    return out


def directions_of(fakes) -> dict[str, tuple[str, str]]:
    """The :data:`DIRECTIONS` every one of ``fakes`` (epoch-features arrays) holds: both for a cycleGAN,
    ``AtoB`` alone for a one-sided model. Features of both kinds mixed are refused."""
    fakes = list(fakes)
    have = {d: keys for d, keys in DIRECTIONS.items() if all(keys[0] in f for f in fakes)}
    mixed = [f["_path"] for f in fakes if ("fake_A" in f) != ("BtoA" in have)]
    if mixed:
        raise DeepsnowError(
            f"epoch features of a one-sided model (no fake_A) and of a two-sided one given together: {mixed[:3]}"
        )
    return have


def check_pair(real: dict, fake: dict, name: str, epoch: int) -> None:
    """Real and epoch features of extractor ``name``: the same weights and the same dimension."""
    if real["weights"] != fake["weights"]:
        raise DeepsnowError(
            f"{name} features were made with different weights: real {real['weights']} ({real['_path']}) vs "
            f"epoch {epoch} {fake['weights']} ({fake['_path']}); re-embed both with the same features config"
        )
    for rk, fk in (("A", "fake_A"), ("B", "fake_B")):
        if fk not in fake:
            continue
        if real[rk].ndim != 2 or fake[fk].ndim != 2 or real[rk].shape[1] != fake[fk].shape[1]:
            raise DeepsnowError(
                f"{name}: feature dimensions differ: {real['_path']}:{rk} {real[rk].shape} vs {fake['_path']}:{fk} {fake[fk].shape}"
            )
