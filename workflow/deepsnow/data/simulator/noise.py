"""Random streams and noise primitives of the simulator: fractal fields and smooth ramps.

Every model component draws from its own stream ``SeedSequence([area_seed, Stream.X, ...])``,
so adding draws to one component never changes another's (docs/simulator.md, "Determinism").
"""

from __future__ import annotations

import enum
import math

import numpy as np
import scipy.fft


class Stream(enum.IntEnum):
    """Random stream key of each model component (values are part of the outputs: never renumber)."""

    TERRAIN = 1
    RIVER = 2
    LAKES = 3
    FOREST = 4
    FIELDS = 5
    TOWN = 6
    ROADS = 7
    TEXTURE = 8
    SNOW = 9
    CLOUDS = 10
    NOISE = 11
    EDGE = 12
    DATE = 13


#: Second stream key of the per-season components (clouds, nodata wedge, sensor noise).
SEASON_KEY = {"snowfree": 0, "snow": 1}

#: Third stream key of the sensor noise of the bands added after the first five (never renumber):
#: each draws from its own stream ``[area_seed, Stream.NOISE, season, key]``, so adding them left the
#: first five bands' draws, and pixels, as they were. The bands not listed here (B04, B03, B02, B08,
#: B11) draw in that order from the acquisition's shared stream ``[area_seed, Stream.NOISE, season]``.
BAND_NOISE_KEY = {"B05": 5, "B06": 6, "B07": 7, "B8A": 8, "B12": 12}


def stream_rng(seed: int, *keys: int) -> np.random.Generator:
    """The random generator of one component (``keys``) of the area with ``seed``."""
    return np.random.default_rng(np.random.SeedSequence([seed, *keys]))


def sensor_noise_rngs(seed: int, season_key: int, bands) -> dict[str, np.random.Generator]:
    """The sensor-noise generator of each of ``bands`` in one acquisition (``BAND_NOISE_KEY``): one
    shared generator for the first five bands, to be drawn from in their table order, and one per
    band added since."""
    shared = stream_rng(seed, Stream.NOISE, season_key)
    return {
        b: stream_rng(seed, Stream.NOISE, season_key, BAND_NOISE_KEY[b]) if b in BAND_NOISE_KEY else shared
        for b in bands
    }


def fbm(rng: np.random.Generator, shape, beta: float, outer_px: float, inner_px: float = 0.0) -> np.ndarray:
    """Fractal (power-law) noise, zero mean and unit variance, float32.

    Power spectrum ``(k^2 + k0^2)^(-beta/2)`` with ``k0 = 1/outer_px`` and a
    Gaussian roll-off below ``inner_px``. Made on a padded canvas, so the
    field does not wrap around at the edges.
    """
    h, w = shape
    pad = int(min(max(h, w) * 0.25, outer_px)) + 8
    H, W = scipy.fft.next_fast_len(h + pad, real=True), scipy.fft.next_fast_len(w + pad, real=True)
    spec = scipy.fft.rfft2(rng.standard_normal((H, W), dtype=np.float32))
    ky = np.fft.fftfreq(H).astype(np.float32)[:, None]
    kx = np.fft.rfftfreq(W).astype(np.float32)[None, :]
    k2 = kx * kx + ky * ky
    amp = (k2 + np.float32(1.0 / outer_px) ** 2) ** np.float32(-beta / 4.0)
    if inner_px > 0:
        amp *= np.exp(-k2 * np.float32((math.pi * inner_px) ** 2))
    amp[0, 0] = 0.0
    out = scipy.fft.irfft2(spec * amp, s=(H, W))[:h, :w]
    out = out - out.mean()
    std = out.std()
    return (out / std if std > 0 else out).astype(np.float32)


def smoothstep(x):
    """0 below 0, 1 above 1, a smooth cubic between."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def sigmoid(x):
    """Logistic function (float32), clipped so that ``exp`` never overflows."""
    return (1.0 / (1.0 + np.exp(-np.clip(x, -30, 30)))).astype(np.float32)
