"""The features file's metadata: what :mod:`deepsnow.features.embed` writes beside every features
array, and the reader the metrics stage uses (which so needs none of the extractors).
"""

from __future__ import annotations

import numpy as np

from deepsnow.io import load_npz


def metadata_arrays(ext) -> dict:
    """What every features file records of its :class:`~deepsnow.features.base.Extractor`."""
    return {
        "extractor": np.array(ext.name),
        "weights": np.array(ext.weights),
        "pretrained": np.array(bool(ext.pretrained)),
        "dim": np.array(int(ext.dim), dtype=np.int64),
        "preprocessing": np.array(ext.preprocessing),
    }


def read_features(path, required: tuple[str, ...] = ()) -> dict:
    """Load a features file and check its metadata arrays."""
    arrays = load_npz(path, required=tuple(required) + ("extractor", "weights", "pretrained"))
    arrays["extractor"] = str(arrays["extractor"])
    arrays["weights"] = str(arrays["weights"])
    arrays["pretrained"] = bool(arrays["pretrained"])
    return arrays
