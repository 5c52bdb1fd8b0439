"""Degradation ladders: name -> ``degrade(images, level, rng, snowfree, encoding)``, severity ``level`` in [0, 1].

Each ladder is one thing that goes wrong in synthetic snow. Level 0 returns the images unchanged,
level 1 is the severe end; the ladder's ``scale`` turns a level into its physical parameter
(``parameter`` names it). ``snowfree`` is a snow-free patch of the same shape per image (the
paired snow-free input where there is one), used by the ladders that put the input back (partial
translation) or move the snow (spatial); the others ignore it.

The images are stored as :class:`Encoding` says: uint8 RGB (N, H, W, 3) (the default), or a
reflectance run's uint16 reflectance x 10000 (N, H, W, C) in named bands, degraded in reflectance.
The scales are given in 8-bit DN; in reflectance one DN is ``patches.rgb_max`` / 255 reflectance
(the composite's range, rgb_max rendered as 255, spread linearly over 255 steps; the composite's
gamma then shows a reflectance step larger in the dark than in the bright: docs/metrics.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from deepsnow import DeepsnowError

#: a pixel of 8-bit RGB counts as snow from this mean RGB (DN) on: snow renders bright in every band
#: (reflectance images: the mask stage's own rule, :func:`deepsnow.metrics.spectral.snow_pixels`)
SNOW_DN = 170.0
#: a reflectance value of 1 as stored
REFLECTANCE_CODE = 10000.0
#: the colour cast's band weights by wavelength (nm): the RGB ladder's (B, G, R) = (1, 0.5, 0.2) at
#: the composite's bands B02, B03, B04, falling linearly to 0 at 865 nm (NIR and SWIR untouched)
CAST_WEIGHTS = ((490.0, 1.0), (560.0, 0.5), (665.0, 0.2), (865.0, 0.0))
#: the spectral ladder at level 1: snow's NDSI this far below mask.ndsi_min (default 0.4 -> 0.2)
NDSI_BELOW = 0.2
#: the bands the mask stage's snow rule reads: the spectral ladder needs them
SNOW_RULE_BANDS = ("B03", "B08", "B11")
#: the SWIR bands the spectral ladder raises (those the images hold)
SWIR = ("B11", "B12")


@dataclass(frozen=True)
class Encoding:
    """How a set's images store their values: 8-bit RGB (``bands`` None), or reflectance x 10000
    in ``bands``, whose snow is the mask section ``mask``'s rule and whose composite the extractors
    see is rendered with ``rgb`` = (patches.rgb_max, patches.rgb_gamma)."""

    bands: tuple[str, ...] | None = None
    mask: dict | None = None
    rgb: tuple[float, float] = (1.0, 2.2)

    @property
    def reflectance(self) -> bool:
        return self.bands is not None

    @property
    def dn(self) -> float:
        """Stored units per 8-bit DN of the ladders' scales."""
        return self.rgb[0] * REFLECTANCE_CODE / 255.0 if self.reflectance else 1.0

    def store(self, x: np.ndarray) -> np.ndarray:
        """Float values rounded and clipped into the encoding's integer type."""
        dtype = np.uint16 if self.reflectance else np.uint8
        return np.clip(np.rint(x), 0, np.iinfo(dtype).max).astype(dtype)


#: 8-bit RGB: the ladders as they were before reflectance runs had them
RGB = Encoding()


@dataclass(frozen=True)
class Ladder:
    """One degradation: what it does, the parameter a level sets, and that parameter at level 1."""

    degrade: Callable[..., np.ndarray]
    parameter: str
    scale: float
    what: str

    def value(self, level: float) -> float:
        return float(level) * self.scale


def blur(images, level, rng, snowfree=None, encoding=RGB):
    """Gaussian blur of each band, sigma = level x scale px: detail a generator smooths away."""
    from scipy.ndimage import gaussian_filter

    sigma = LADDERS["blur"].value(level)
    if sigma == 0:
        return images.copy()
    return encoding.store(gaussian_filter(images.astype(np.float64), sigma=(0, sigma, sigma, 0), mode="reflect"))


def noise(images, level, rng, snowfree=None, encoding=RGB):
    """Additive Gaussian noise, standard deviation level x scale DN, independent per pixel and band."""
    std = LADDERS["noise"].value(level) * encoding.dn
    if std == 0:
        return images.copy()
    return encoding.store(images + rng.normal(0.0, std, images.shape))


def checker_pattern(height: int, width: int) -> np.ndarray:
    """±1 pattern at the generator's up-sampling periods, 2 and 4 px (two stride-2 transposed
    convolutions), half of each: the checkerboard they print on a flat area."""
    y, x = np.mgrid[0:height, 0:width]
    period2 = np.where((x + y) % 2 == 0, 1.0, -1.0)
    period4 = np.where((x // 2 + y // 2) % 2 == 0, 1.0, -1.0)
    return 0.5 * (period2 + period4)


def checkerboard(images, level, rng, snowfree=None, encoding=RGB):
    """The checkerboard pattern added to every band, amplitude level x scale DN."""
    amplitude = LADDERS["checkerboard"].value(level) * encoding.dn
    if amplitude == 0:
        return images.copy()
    pattern = checker_pattern(*images.shape[1:3])[None, :, :, None]
    return encoding.store(images + amplitude * pattern)


def partial(images, level, rng, snowfree=None, encoding=RGB):
    """A translation only part of the way: (1 - a) x snowy + a x snow-free input, a = level."""
    if level == 0:
        return images.copy()
    return encoding.store((1.0 - level) * images + level * snowfree.astype(np.float64))


def cast_weights(encoding: Encoding) -> np.ndarray:
    """Per channel, the share of the cast it takes: (0.2, 0.5, 1) for R, G, B; a reflectance band's
    by its centre wavelength (:data:`CAST_WEIGHTS`)."""
    if not encoding.reflectance:
        return np.array([0.2, 0.5, 1.0])
    from deepsnow.synthesize.catalog import CENTER_WAVELENGTH_UM

    nm = [1000.0 * CENTER_WAVELENGTH_UM[b] for b in encoding.bands]
    return np.interp(nm, *zip(*CAST_WEIGHTS))


def cast(images, level, rng, snowfree=None, encoding=RGB):
    """A warm, dimmer illumination cast: band gains 1 - level x scale x the band's weight
    (:func:`cast_weights`: R, G, B 0.2, 0.5, 1; reflectance by wavelength, none from 865 nm on)."""
    strength = LADDERS["cast"].value(level)
    if strength == 0:
        return images.copy()
    gains = 1.0 - strength * cast_weights(encoding)
    return encoding.store(images * gains)


def snow_mask(images, encoding=RGB) -> np.ndarray:
    """(N, H, W) True where a pixel is snow: bright enough (RGB: mean >= SNOW_DN), or by the mask stage's
    rule (reflectance; bands without B03, B08 or B11: their RGB composite's brightness, as on RGB runs)."""
    if encoding.reflectance:
        from deepsnow.data.render import render_composite
        from deepsnow.metrics.spectral import snow_pixels

        snow = snow_pixels(images, encoding.bands, encoding.mask, "the ladders' candidates")
        if snow is not None:
            return snow
        images = render_composite(images, encoding.bands, *encoding.rgb, what="the ladders' candidates")
    return images.astype(np.float64).mean(axis=-1) >= SNOW_DN


def spatial(images, level, rng, snowfree=None, encoding=RGB):
    """Snow put where the truth has none: each patch's snow (mask and pixels) is moved by level x
    scale of its size along both axes (wrapping round); where its snow was and no longer is, the
    snow-free input shows. The pixel values stay snowy, only their place is wrong."""
    shift = round(LADDERS["spatial"].value(level) * images.shape[1])
    if shift == 0:
        return images.copy()
    mask = snow_mask(images, encoding)
    moved = np.roll(images, (shift, shift), axis=(1, 2))
    moved_mask = np.roll(mask, (shift, shift), axis=(1, 2))
    background = np.where(mask[..., None], snowfree, images)
    return np.where(moved_mask[..., None], moved, background)


def spectral_problem(encoding: Encoding) -> str | None:
    """Why the spectral ladder cannot run on these images (None when it can)."""
    have = list(encoding.bands or ())
    if encoding.reflectance and all(b in have for b in SNOW_RULE_BANDS):
        return None
    what = f"bands {have}" if encoding.reflectance else "8-bit RGB"
    return (
        f"key 'validity.ladders': the spectral ladder raises snow's SWIR (B11, B12) under unchanged visible bands and "
        f"needs reflectance test sets with bands {list(SNOW_RULE_BANDS)} (the mask's snow rule), but they hold {what}"
    )


def spectral(images, level, rng, snowfree=None, encoding=RGB):
    """Bright visible snow with a non-snow SWIR: each snow pixel's (the mask's rule) NDSI moves level x
    scale of the way from its own n0 to n1 = mask.ndsi_min - NDSI_BELOW (n1 >= -0.9) by raising its
    B11 to B03 x (1 - n) / (1 + n), and B12 (when held) by the same reflectance; every other band,
    and so the RGB composite, stays as it was. A pixel leaves the snow class at level
    (n0 - ndsi_min) / (n0 - n1): the snow share falls over the levels, to none at level 1."""
    share = LADDERS["spectral"].value(level)
    problem = spectral_problem(encoding)
    if problem:
        raise DeepsnowError(problem)
    if share == 0:
        return images.copy()
    from deepsnow.data.mask import ndsi

    bands = list(encoding.bands)
    green, b11 = (images[..., bands.index(b)].astype(np.float64) for b in ("B03", "B11"))
    n0 = ndsi(green, b11)[0]
    n = n0 + share * (max(encoding.mask["ndsi_min"] - NDSI_BELOW, -0.9) - n0)
    raised = green * (1.0 - n) / (1.0 + n) - b11
    snow = snow_mask(images, encoding)
    out = images.copy()
    for band in (b for b in SWIR if b in bands):
        own = images[..., bands.index(band)]
        out[..., bands.index(band)] = np.where(snow, encoding.store(own + raised), own)
    return out


#: name -> ladder, in the order the table and Figure 12 show them
LADDERS: dict[str, Ladder] = {
    "blur": Ladder(blur, "sigma_px", 3.0, "Gaussian blur"),
    "noise": Ladder(noise, "noise_std_dn", 60.0, "additive Gaussian noise"),
    "checkerboard": Ladder(checkerboard, "amplitude_dn", 40.0, "checkerboard at periods 2 and 4 px"),
    "partial": Ladder(partial, "input_share", 1.0, "partial translation (mixed with the snow-free input)"),
    "cast": Ladder(cast, "cast_strength", 0.6, "colour/illumination cast"),
    "spatial": Ladder(spatial, "shift_fraction", 0.5, "snow moved to where the truth has none"),
    "spectral": Ladder(spectral, "ndsi_share", 1.0, "snow's SWIR raised under unchanged visible bands"),
}

#: the ladders that need a snow-free patch per image
NEEDS_SNOWFREE = ("partial", "spatial")
#: the ladders of reflectance test sets only
REFLECTANCE_ONLY = ("spectral",)
