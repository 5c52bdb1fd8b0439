"""Degradation ladders: name -> ``degrade(images, level, rng, snowfree)``, severity ``level`` in [0, 1].

Each ladder is one thing that goes wrong in synthetic snow. Level 0 returns the images unchanged,
level 1 is the severe end; the ladder's ``scale`` turns a level into its physical parameter
(``parameter`` names it). Images are uint8 RGB (N, H, W, 3); ``snowfree`` is a snow-free patch of
the same shape per image (the paired snow-free input where there is one), used by the ladders
that put the input back (partial translation) or move the snow (spatial); the others ignore it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

#: a pixel counts as snow from this mean RGB (8-bit DN) on: snow renders bright in every band
SNOW_DN = 170.0


@dataclass(frozen=True)
class Ladder:
    """One degradation: what it does, the parameter a level sets, and that parameter at level 1."""

    degrade: Callable[..., np.ndarray]
    parameter: str
    scale: float
    what: str

    def value(self, level: float) -> float:
        return float(level) * self.scale


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def blur(images, level, rng, snowfree=None):
    """Gaussian blur of each band, sigma = level x scale px: detail a generator smooths away."""
    from scipy.ndimage import gaussian_filter

    sigma = LADDERS["blur"].value(level)
    if sigma == 0:
        return images.copy()
    return _to_uint8(gaussian_filter(images.astype(np.float64), sigma=(0, sigma, sigma, 0), mode="reflect"))


def noise(images, level, rng, snowfree=None):
    """Additive Gaussian noise, standard deviation level x scale DN, independent per pixel and band."""
    std = LADDERS["noise"].value(level)
    if std == 0:
        return images.copy()
    return _to_uint8(images + rng.normal(0.0, std, images.shape))


def checker_pattern(height: int, width: int) -> np.ndarray:
    """±1 pattern at the generator's up-sampling periods, 2 and 4 px (two stride-2 transposed
    convolutions), half of each: the checkerboard they print on a flat area."""
    y, x = np.mgrid[0:height, 0:width]
    period2 = np.where((x + y) % 2 == 0, 1.0, -1.0)
    period4 = np.where((x // 2 + y // 2) % 2 == 0, 1.0, -1.0)
    return 0.5 * (period2 + period4)


def checkerboard(images, level, rng, snowfree=None):
    """The checkerboard pattern added to every band, amplitude level x scale DN."""
    amplitude = LADDERS["checkerboard"].value(level)
    if amplitude == 0:
        return images.copy()
    pattern = checker_pattern(*images.shape[1:3])[None, :, :, None]
    return _to_uint8(images + amplitude * pattern)


def partial(images, level, rng, snowfree=None):
    """A translation only part of the way: (1 - a) x snowy + a x snow-free input, a = level."""
    if level == 0:
        return images.copy()
    return _to_uint8((1.0 - level) * images + level * snowfree.astype(np.float64))


def cast(images, level, rng, snowfree=None):
    """A warm, dimmer illumination cast: band gains 1 - level x scale x (0.2, 0.5, 1) for R, G, B."""
    strength = LADDERS["cast"].value(level)
    if strength == 0:
        return images.copy()
    gains = 1.0 - strength * np.array([0.2, 0.5, 1.0])
    return _to_uint8(images * gains)


def snow_mask(images) -> np.ndarray:
    """(N, H, W) True where a pixel is bright enough to be snow."""
    return images.astype(np.float64).mean(axis=-1) >= SNOW_DN


def spatial(images, level, rng, snowfree=None):
    """Snow put where the truth has none: each patch's snow (mask and pixels) is moved by level x
    scale of its size along both axes (wrapping round); where its snow was and no longer is, the
    snow-free input shows. The pixel values stay snowy, only their place is wrong."""
    shift = round(LADDERS["spatial"].value(level) * images.shape[1])
    if shift == 0:
        return images.copy()
    mask = snow_mask(images)
    moved = np.roll(images, (shift, shift), axis=(1, 2))
    moved_mask = np.roll(mask, (shift, shift), axis=(1, 2))
    background = np.where(mask[..., None], snowfree, images)
    return np.where(moved_mask[..., None], moved, background)


#: name -> ladder, in the order the table and Figure 12 show them
LADDERS: dict[str, Ladder] = {
    "blur": Ladder(blur, "sigma_px", 3.0, "Gaussian blur"),
    "noise": Ladder(noise, "noise_std_dn", 60.0, "additive Gaussian noise"),
    "checkerboard": Ladder(checkerboard, "amplitude_dn", 40.0, "checkerboard at periods 2 and 4 px"),
    "partial": Ladder(partial, "input_share", 1.0, "partial translation (mixed with the snow-free input)"),
    "cast": Ladder(cast, "cast_strength", 0.6, "colour/illumination cast"),
    "spatial": Ladder(spatial, "shift_fraction", 0.5, "snow moved to where the truth has none"),
}

#: the ladders that need a snow-free patch per image
NEEDS_SNOWFREE = ("partial", "spatial")
