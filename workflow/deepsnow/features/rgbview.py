"""What the ImageNet extractors (and an RGB simcover) see of a patches, dataset or samples file: 8-bit RGB.
(A reflectance simcover takes the bands it was trained on: :func:`deepsnow.features.embed.band_images`.)

An ``rgb8`` file's images are that already. A reflectance file (``encoding`` = reflectance, channels
named by ``bands``; docs/bands.md) is seen as its RGB composite, rendered as the patches stage renders
``rgb8`` patches (:func:`deepsnow.data.render.render_composite` with ``patches.rgb_max`` and
``patches.rgb_gamma``), so FID, FRD and CRD of a reflectance run measure what they measure on an RGB run.
"""

from __future__ import annotations

import numpy as np

from deepsnow import DeepsnowError
from deepsnow.data.render import render_composite

#: The defaults of ``patches.rgb_max`` and ``patches.rgb_gamma`` (config.yaml, ``--rgb-max``/``--rgb-gamma``).
DEFAULT_RGB = (1.0, 2.2)


def is_reflectance(arrays: dict, path) -> bool:
    """Whether a file's arrays hold reflectance images (``encoding`` = reflectance with ``bands``)."""
    if "encoding" not in arrays:
        return False
    encoding = str(np.asarray(arrays["encoding"]))
    if encoding != "reflectance" or "bands" not in arrays:
        raise DeepsnowError(
            f"{path}: array 'encoding' is {encoding!r}{'' if 'bands' in arrays else ' and there is no array bands'}; "
            "a file with an 'encoding' holds reflectance images named by a 'bands' array"
        )
    return True


def image_key(arrays: dict, key: str, path) -> str:
    """The images' array: ``key``, except that the default ``rgb`` of a reflectance patches or dataset
    file is its ``reflectance`` array."""
    if key == "rgb" and key not in arrays and is_reflectance(arrays, path):
        return "reflectance"
    return key


def rgb_images(arrays: dict, key: str, path, rgb=DEFAULT_RGB) -> np.ndarray:
    """``arrays[key]`` as ``(N, H, W, 3) uint8`` RGB: as stored, or a reflectance file's RGB composite
    rendered with ``rgb`` = (rgb_max, rgb_gamma). Errors name the file and array."""
    if key not in arrays:
        raise DeepsnowError(f"{path}: missing arrays [{key!r}]; found {sorted(arrays)}")
    if not is_reflectance(arrays, path):
        return np.asarray(arrays[key])
    bands = [str(b) for b in np.asarray(arrays["bands"]).ravel()]
    return render_composite(arrays[key], bands, float(rgb[0]), float(rgb[1]), what=f"{path}:{key}")
