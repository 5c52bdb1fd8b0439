"""How a scene looks: the RGB rendering of its reflectance.

The patches stage renders its patches this way, and everything shown next to them
(translated scenes, the change testbed's images, Figure 9) is rendered the same way,
so a scene looks like the training data.
"""

from __future__ import annotations

import numpy as np


def render_rgb(reflectance: dict[str, np.ndarray], rgb_max: float, rgb_gamma: float) -> np.ndarray:
    """``(H, W, 3) uint8`` from B04, B03, B02: ``255 * clip(refl / rgb_max, 0, 1) ** (1 / rgb_gamma)``, rounded."""
    h, w = reflectance["B04"].shape
    out = np.empty((h, w, 3), dtype=np.uint8)
    for i, band in enumerate(("B04", "B03", "B02")):
        x = np.clip(np.asarray(reflectance[band], dtype=np.float64) / rgb_max, 0.0, 1.0)
        out[..., i] = np.rint(255.0 * x ** (1.0 / rgb_gamma)).astype(np.uint8)
    return out
