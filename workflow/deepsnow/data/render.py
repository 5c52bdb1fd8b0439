"""How a scene looks: the RGB rendering of its reflectance.

The patches stage renders its patches this way, and everything shown next to them
(translated scenes, the change testbed's images, Figure 9) is rendered the same way,
so a scene looks like the training data.
"""

from __future__ import annotations

import numpy as np

from deepsnow import DeepsnowError


def render_rgb(reflectance: dict[str, np.ndarray], rgb_max: float, rgb_gamma: float) -> np.ndarray:
    """``(H, W, 3) uint8`` from B04, B03, B02: ``255 * clip(refl / rgb_max, 0, 1) ** (1 / rgb_gamma)``, rounded."""
    h, w = reflectance["B04"].shape
    out = np.empty((h, w, 3), dtype=np.uint8)
    for i, band in enumerate(("B04", "B03", "B02")):
        x = np.clip(np.asarray(reflectance[band], dtype=np.float64) / rgb_max, 0.0, 1.0)
        out[..., i] = np.rint(255.0 * x ** (1.0 / rgb_gamma)).astype(np.uint8)
    return out


#: The false-colour composite (red, green, blue) = (B11, B08, B04): snow is dark in B11 and bright in B08
#: and B04 (cyan), cloud bright in all three (white to pink), so the two separate as they do not in RGB.
FALSE_COLOUR = ("B11", "B08", "B04")
#: The RGB composite: the paper's rendering, as the patches stage renders ``rgb8`` patches.
TRUE_COLOUR = ("B04", "B03", "B02")


def render_composite(
    images: np.ndarray, bands, rgb_max: float, rgb_gamma: float, composite=TRUE_COLOUR, what: str = "images"
) -> np.ndarray:
    """``(..., H, W, 3) uint8`` of reflectance x 10000 images ``(..., H, W, C) uint16`` whose channels are
    ``bands``: the bands ``composite`` (red, green, blue) rendered as :func:`render_rgb` renders B04, B03, B02
    (so the default, the RGB composite, is the patches stage's ``rgb8`` rendering of the same reflectance).
    A band of ``composite`` missing from ``bands`` is an error naming it and ``what``."""
    bands = [str(b) for b in bands]
    images = np.asarray(images)
    if images.dtype != np.uint16 or images.ndim < 3 or images.shape[-1] != len(bands):
        raise DeepsnowError(
            f"{what}: expected uint16 reflectance x 10000 with {len(bands)} channels ({bands}), got {images.dtype} {images.shape}"
        )
    missing = [b for b in composite if b not in bands]
    if missing:
        raise DeepsnowError(f"{what}: bands {missing} of the composite {list(composite)} are not among its bands {bands}")
    lead, (h, w) = images.shape[:-3], images.shape[-3:-1]
    flat = images.reshape((-1, h, w, len(bands)))
    out = np.empty(flat.shape[:3] + (3,), dtype=np.uint8)
    for i, img in enumerate(flat):
        # float32 / 10000, as a scene's reader decodes reflectance (deepsnow.data.scene): the same bytes as rgb8 patches
        refl = {key: img[..., bands.index(b)].astype(np.float32) / 10000.0 for key, b in zip(TRUE_COLOUR, composite)}
        out[i] = render_rgb(refl, rgb_max, rgb_gamma)
    return out.reshape(lead + (h, w, 3))


def has_bands(bands, composite) -> bool:
    """Whether every band of ``composite`` is among ``bands``."""
    return all(b in [str(x) for x in bands] for b in composite)
