"""The candidate and reference sets of the two modes, and how many patches they need.

* ``half``: the real snowy test patches (test B) split at random into two disjoint halves; one
  half is the reference, the other the "perfect" translation that the ladders degrade. The only
  mode on downloaded data. Both halves' level-0 features are rows of the run's real features.
* ``truth``: on the simulator, the reachable paired truth (``truth_snowfall`` in testA.npz: the
  test-A patches after a snowfall that covers the whole area) is the perfect translation, and the
  whole of test B the reference. Its paired snow-free input is test A itself.

The images are the test sets' own: ``rgb`` (uint8) of an RGB run, ``reflectance`` (uint16 x 10000,
channels named by ``bands``) of a reflectance run, whose ``truth_snowfall`` is cut in the same
bands; :func:`encoding_of` tells them apart.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from deepsnow import DeepsnowError

log = logging.getLogger("deepsnow.validity")

#: testA.npz array holding the reachable paired truth (encoded as the test images, rows as testA's ids)
TRUTH_KEY = "truth_snowfall"


@dataclass
class Mode:
    """One mode's sets: the candidate images at level 0, a snow-free patch per candidate, the
    reference features per extractor and, where the run already has them, the candidates' level-0
    features per extractor (else None: they are embedded); the reference images (the physical
    metrics of reflectance runs compare the candidates' pixels with them)."""

    name: str
    images: np.ndarray
    snowfree: np.ndarray
    reference: dict[str, np.ndarray]
    level0: dict[str, np.ndarray] | None
    reference_images: np.ndarray


def metrics_params(metrics: dict, validity: dict) -> dict:
    """The metrics section as the validity stage uses it: ``validity.prdc_k`` (when set) in place of
    ``metrics.prdc_k``, for sets too small for the run's k."""
    k = validity["prdc_k"]
    return metrics if k is None else {**metrics, "prdc_k": k}


def min_patches(metrics: dict) -> int:
    """The fewest patches a set may hold: two per bootstrap class for any spread, more than
    ``prdc_k`` neighbours, and two per class and fold for the random-forest test."""
    return max(2, metrics["prdc_k"] + 1, 2 * metrics["rf_folds"])


def count_problems(sets: dict[str, tuple[int, int]], metrics: dict, where: str) -> list[str]:
    """Lines naming the key for every mode whose (reference, candidate) counts are too few."""
    need = min_patches(metrics)
    return [
        f"key 'validity' ({where}): mode {mode!r} compares {n_ref} reference with {n_cand} candidate patches, "
        f"but every set needs at least {need} (2 per bootstrap class, more than k = {metrics['prdc_k']} "
        f"neighbours (validity.prdc_k, else metrics.prdc_k), 2 per class and fold of metrics.rf_folds = "
        f"{metrics['rf_folds']}); set a smaller validity.prdc_k or use more test patches"
        for mode, (n_ref, n_cand) in sets.items()
        if min(n_ref, n_cand) < need
    ]


def half_counts(n_test_b: int) -> tuple[int, int]:
    """(reference, candidate) sizes of the half mode: the smaller half is the reference."""
    return n_test_b // 2, n_test_b - n_test_b // 2


def _check_ids(real: dict, ids_b: np.ndarray, test_b) -> None:
    for arr in real.values():
        if not np.array_equal(np.asarray(arr["ids_B"]).astype(str), ids_b):
            raise DeepsnowError(
                f"{arr['_path']}: its test-B ids are not those of {test_b} (in order); re-embed the real test sets"
            )


def images_of(arrays: dict, path) -> np.ndarray:
    """A test set's images: ``rgb``, or a reflectance set's ``reflectance`` (:func:`~deepsnow.features.rgbview.image_key`)."""
    from deepsnow.features.rgbview import image_key

    key = image_key(arrays, "rgb", path)
    if key not in arrays:
        raise DeepsnowError(f"{path}: missing arrays [{key!r}]; found {sorted(arrays)}")
    return np.asarray(arrays[key])


def bands_of(test_a: dict, test_b: dict, test_a_path, test_b_path) -> tuple[str, ...] | None:
    """The test sets' reflectance bands (None: 8-bit RGB); both sets encoded alike, else an error naming both."""
    from deepsnow.features.rgbview import is_reflectance

    seen = [
        tuple(str(b) for b in np.asarray(arrays["bands"]).ravel()) if is_reflectance(arrays, path) else None
        for arrays, path in ((test_a, test_a_path), (test_b, test_b_path))
    ]
    if seen[0] != seen[1]:
        raise DeepsnowError(
            f"{test_a_path} and {test_b_path}: the test sets must hold the same images, but hold "
            f"{[list(s) if s else '8-bit RGB' for s in seen]}; cut both with the run's patches section"
        )
    return seen[1]


def half_mode(test_a: dict, test_b: dict, real: dict, seed: int, test_b_path, test_a_path="testA") -> Mode:
    """Disjoint halves of test B; each candidate gets a random test-A patch as its snow-free input."""
    ids_b = np.asarray(test_b["ids"]).astype(str)
    _check_ids(real, ids_b, test_b_path)
    rng = np.random.default_rng([seed, 0])
    order = rng.permutation(len(ids_b))
    n_ref, _ = half_counts(len(ids_b))
    ref, cand = np.sort(order[:n_ref]), np.sort(order[n_ref:])
    images_a, images_b = images_of(test_a, test_a_path), images_of(test_b, test_b_path)
    snowfree = images_a[rng.integers(0, len(images_a), len(cand))]
    return Mode(
        "half",
        images_b[cand],
        snowfree,
        {name: arr["B"][ref] for name, arr in real.items()},
        {name: arr["B"][cand] for name, arr in real.items()},
        images_b[ref],
    )


def truth_mode(test_a: dict, test_b: dict, real: dict, test_a_path, test_b_path="testB") -> Mode | None:
    """The reachable paired truth against the whole of test B; None when testA.npz has none."""
    if TRUTH_KEY not in test_a:
        log.info("%s has no %r array: half mode only", test_a_path, TRUTH_KEY)
        return None
    truth, images = np.asarray(test_a[TRUTH_KEY]), images_of(test_a, test_a_path)
    if truth.shape != images.shape or truth.dtype != images.dtype:
        kind = "uint8 RGB" if images.dtype == np.uint8 else f"{images.dtype} reflectance"
        raise DeepsnowError(
            f"{test_a_path}: {TRUTH_KEY!r} must be {kind} shaped as the test images {images.shape}, got {truth.dtype} {truth.shape}"
        )
    reference = {name: arr["B"] for name, arr in real.items()}
    return Mode("truth", truth, images, reference, None, images_of(test_b, test_b_path))


def check_counts(modes: list[Mode], metrics: dict) -> None:
    sets = {m.name: (len(next(iter(m.reference.values()))), len(m.images)) for m in modes}
    problems = count_problems(sets, metrics, "the test sets given")
    if problems:
        raise DeepsnowError("\n  ".join(problems))


def summary_problems(summary_path, metrics: dict, validity: dict) -> list[str]:
    """At DAG build: the half mode's sets are too few for the metrics, by the test-B count of the
    run's dataset summary; nothing to say before the data stage has written it."""
    import json
    from pathlib import Path

    path = Path(summary_path)
    if not path.is_file():
        return []
    try:
        n_test_b = int(json.loads(path.read_text())["counts"]["testB"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DeepsnowError(f"{path}: not a dataset summary with counts.testB ({type(exc).__name__}: {exc})") from exc
    return count_problems({"half": half_counts(n_test_b)}, metrics_params(metrics, validity), str(path))
