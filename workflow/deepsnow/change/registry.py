"""Change detectors by name: the built-in ones and those installed packages provide.

A detector is a callable ``detector(before, after) -> scores``: ``before`` ``(N, dx)`` and
``after`` ``(N, dy)`` are the pixel arrays the built-ins get (rows = the same pixels;
``uint8`` for the ``rgb`` band set, ``float32`` reflectance for ``reflectance``; read-only),
and ``scores`` is one finite number per pixel, shape ``(N,)``, larger = more anomalous.
A package provides one through the Python entry-point group ``deepsnow.detectors``; its
``pyproject.toml`` declares::

    [project.entry-points."deepsnow.detectors"]
    my_detector = "my_package.change:score"

and once it is installed, ``change.detectors: [..., my_detector]`` selects it. As for the
feature extractors (:mod:`deepsnow.features.registry`), the config only *names* a detector:
a name is checked against the built-in ones and the installed entry points, and only the
entry point of a selected name is loaded, when the testbed runs. A built-in name always
means the built-in detector.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from deepsnow import DeepsnowError, plugins
from deepsnow.change import detectors

#: The detectors of this package, in the order of ``change.detectors``' default.
BUILTIN_DETECTORS = tuple(detectors.DETECTORS)

#: Entry-point group through which installed packages provide detectors (name = detector name).
ENTRY_POINT_GROUP = "deepsnow.detectors"


def entry_point_detectors() -> dict:
    """Installed detectors of the ``deepsnow.detectors`` entry-point group, by name (none loaded)."""
    return plugins.installed(ENTRY_POINT_GROUP)


def known_detector_names() -> list[str]:
    """Built-in and installed (entry point) detector names, without importing any of them."""
    return sorted(set(BUILTIN_DETECTORS) | set(entry_point_detectors()))


def detector_hint() -> str:
    """What a refusal of an unknown name lists: the known names and where more come from."""
    return (f"known: {', '.join(known_detector_names())}; installed packages add more through the "
            f"entry-point group {ENTRY_POINT_GROUP!r}")


def _load_entry_point(name: str) -> Callable:
    return plugins.load(
        ENTRY_POINT_GROUP, name, "change detector", "a callable detector(before, after) -> scores",
        f"unknown change detector {name!r} ({detector_hint()})",
    )


def _checked(name: str, fn: Callable) -> Callable:
    """``fn`` on read-only inputs (the built-ins score the same arrays after it), its scores checked."""

    def run(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        xv, yv = x.view(), y.view()
        xv.flags.writeable = yv.flags.writeable = False
        try:
            scores = fn(xv, yv)
        except Exception as exc:
            raise DeepsnowError(f"change detector {name!r} failed on pixels {x.shape} before, {y.shape} "
                                f"after: {type(exc).__name__}: {exc}") from exc
        scores = np.asarray(scores, dtype=np.float64)
        if scores.shape != (x.shape[0],):
            raise DeepsnowError(f"change detector {name!r} returned scores of shape {scores.shape}; "
                                f"expected one per pixel, ({x.shape[0]},)")
        bad = int(np.count_nonzero(~np.isfinite(scores)))
        if bad:
            raise DeepsnowError(f"change detector {name!r} returned {bad} non-finite scores (NaN or "
                                f"infinite) among {scores.size}; every pixel needs a finite score")
        return scores

    return run


def resolve(names) -> dict[str, Callable]:
    """Name -> ``detector(x, y) -> (N,) float64`` for the selected names, in their order.

    Built-ins are the functions of :mod:`deepsnow.change.detectors` themselves; an installed
    detector is loaded from its entry point and its scores checked (shape, finite).
    """
    return {name: detectors.DETECTORS[name] if name in detectors.DETECTORS
            else _checked(name, _load_entry_point(name)) for name in names}
