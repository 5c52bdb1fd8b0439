"""Artifact measures for Figure 7: checkerboard energy and water vs land differences.

Pure numpy. The paper sees grid-like patterns and speckle in the translated
images, mostly over water (its Figures 2 and 4). Two numbers make that visible
per epoch:

* :func:`checkerboard_score`: how much of the power of ``fake - real`` sits at
  the periods the cycleGAN's generator can imprint. Its decoder upsamples twice
  with stride-2 transposed convolutions, whose uneven kernel overlap leaves
  patterns of period 2 px (last layer) and 4 px (the layer before), i.e. at
  spatial frequencies 1/2 and 1/4 cycles/px along rows, columns or both.
* :func:`water_land_difference`: mean per-band absolute difference between the
  translated and the original patch over water pixels and over land pixels.
"""

from __future__ import annotations

import numpy as np

from deepsnow import DeepsnowError

#: the frequencies (cycles/px) a checkerboard of period 2 or 4 px puts energy at, per axis
CHECKERBOARD_FREQUENCIES = (0.0, 0.25, -0.25, 0.5)


def _as_images(a, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim == 3:  # one (S, S, C) image
        a = a[None]
    if a.ndim != 4:
        raise DeepsnowError(f"{name}: expected (N, H, W, C) images, got shape {a.shape}")
    return a


def checkerboard_mask(height: int, width: int, radius: int = 1) -> np.ndarray:
    """Boolean (H, W) mask over the unshifted FFT bins near the checkerboard frequencies.

    Target bins: every bin whose row frequency lies within ``radius`` bins
    (circularly) of one of 0, ±1/4, 1/2 cycles/px *and* whose column frequency
    lies within ``radius`` bins of one of them, except the neighbourhood of DC
    (0, 0) itself, which holds the smooth, low-frequency part of the difference.
    The DC bin is never a target.
    """

    def near(n: int, freqs) -> np.ndarray:
        f = np.fft.fftfreq(n)  # cycles/px, bin spacing 1/n
        out = np.zeros((len(freqs), n), bool)
        for i, f0 in enumerate(freqs):
            # circular distance in bins (1/2 and -1/2 are the same frequency)
            d = np.abs(((f - f0) * n + n / 2) % n - n / 2)
            out[i] = d <= radius + 1e-9
        return out

    fy = near(height, CHECKERBOARD_FREQUENCIES)
    fx = near(width, CHECKERBOARD_FREQUENCIES)
    mask = np.zeros((height, width), bool)
    for i in range(len(CHECKERBOARD_FREQUENCIES)):
        for j in range(len(CHECKERBOARD_FREQUENCIES)):
            if i == 0 and j == 0:
                continue  # DC neighbourhood: smooth differences, not a checkerboard
            mask |= fy[i][:, None] & fx[j][None, :]
    dc_near = fy[0][:, None] & fx[0][None, :]
    mask &= ~dc_near
    mask[0, 0] = False
    return mask


def difference_power_spectrum(fake, real) -> np.ndarray:
    """Mean (over patches and bands) power spectrum of the Hann-windowed ``fake - real``.

    Unshifted (DC at [0, 0]), shape (H, W). Each patch-band difference has its
    mean removed and is multiplied by a separable Hann window (to keep the edge
    discontinuity of a non-periodic patch from leaking along the axes) before
    the 2-D FFT; power is ``|FFT|^2``.
    """
    fake = _as_images(fake, "fake").astype(np.float64)
    real = _as_images(real, "real").astype(np.float64)
    if fake.shape != real.shape:
        raise DeepsnowError(f"checkerboard: fake {fake.shape} and real {real.shape} differ in shape")
    if fake.shape[0] == 0:
        raise DeepsnowError("checkerboard: no patches")
    n, h, w, c = fake.shape
    if h < 4 or w < 4:
        raise DeepsnowError(f"checkerboard: patches of {h}x{w} px are too small (need at least 4x4)")
    d = fake - real
    d -= d.mean(axis=(1, 2), keepdims=True)
    win = np.outer(np.hanning(h + 1)[:h], np.hanning(w + 1)[:w])  # periodic Hann
    d *= win[None, :, :, None]
    spec = np.fft.fft2(d, axes=(1, 2))
    return (np.abs(spec) ** 2).mean(axis=(0, 3))


def checkerboard_score(fake, real, radius: int = 1) -> float:
    """Spectral checkerboard score of the translated images ``fake`` against their originals ``real``.

    ``fake`` and ``real`` are ``(N, H, W, C)`` (or one ``(H, W, C)``) arrays of
    the same shape, paired patch by patch. Definition:

    1. ``d = fake - real`` per patch and band, mean removed, times a 2-D
       (periodic) Hann window; ``P = |FFT2(d)|^2``.
    2. ``P`` is averaged over patches and bands (one mean spectrum, so patches
       with little difference cannot blow the score up).
    3. Target bins T (:func:`checkerboard_mask`): within ``radius`` bins of the
       frequencies a period-2 or period-4 px pattern occupies, (fy, fx) with
       fy, fx in {0, ±1/4, 1/2} cycles/px, excluding the neighbourhood of
       DC (0, 0). Other bins O: every other bin except DC itself (so the
       low frequencies around DC, where smooth differences live, count in O).
    4. ``score = mean(P[T]) / mean(P[O])``.

    White noise scores about 1; a smooth (low-frequency) difference scores well
    below 1; a grid pattern of period 2 or 4 px scores far above 1. Returns NaN
    when ``fake - real`` has no power outside DC (identical images up to a
    constant per band), where the ratio is undefined; the denominator is
    floored at 1e-9 of the mean non-DC power, so a pure grid pattern gives a
    large finite score. A strong smooth difference (the snow itself) enlarges
    the denominator and so lowers every epoch's score alike: compare epochs
    with each other rather than with a fixed threshold.
    """
    p = difference_power_spectrum(fake, real)
    h, w = p.shape
    target = checkerboard_mask(h, w, radius)
    other = ~target
    other[0, 0] = False
    if not target.any() or not other.any():
        raise DeepsnowError(f"checkerboard: {h}x{w} px patches leave no target or no other frequency bins")
    nondc = p.copy()
    nondc[0, 0] = 0.0
    mean_nondc = float(nondc.sum()) / (h * w - 1)
    if not np.isfinite(mean_nondc) or mean_nondc <= 1e-20:
        return float("nan")
    num = float(p[target].mean())
    # floor the denominator (a pure grid pattern has no power elsewhere): the score stays finite
    denom = max(float(p[other].mean()), 1e-9 * mean_nondc)
    return num / denom


def water_land_difference(fake, real, water) -> dict:
    """Mean absolute difference per band over water pixels and over land pixels.

    ``fake``, ``real``: ``(N, H, W, C)`` (or ``(H, W, C)``) in DN (0-255);
    ``water``: ``(N, H, W)`` (or ``(H, W)``) bool. "Land" is every pixel that
    is not water. Means are over all pixels of the class pooled over patches.
    Returns ``{"water": (C,) array, "land": (C,) array, "n_water_pixels": int,
    "n_land_pixels": int}``; a class without pixels has NaN means.
    """
    fake = _as_images(fake, "fake").astype(np.float64)
    real = _as_images(real, "real").astype(np.float64)
    water = np.asarray(water)
    if water.ndim == 2:
        water = water[None]
    if fake.shape != real.shape:
        raise DeepsnowError(f"water/land difference: fake {fake.shape} and real {real.shape} differ in shape")
    if water.shape != fake.shape[:3]:
        raise DeepsnowError(f"water/land difference: water mask {water.shape} does not match images {fake.shape[:3]}")
    water = water.astype(bool)
    diff = np.abs(fake - real)  # (N, H, W, C)
    n_water = int(water.sum())
    n_land = int(water.size - n_water)
    c = fake.shape[-1]
    w_mean = diff[water].mean(axis=0) if n_water else np.full(c, np.nan)
    l_mean = diff[~water].mean(axis=0) if n_land else np.full(c, np.nan)
    return {"water": np.asarray(w_mean), "land": np.asarray(l_mean), "n_water_pixels": n_water, "n_land_pixels": n_land}


#: columns of figures/artifacts.csv
CSV_COLUMNS = (
    "source",
    "epoch",
    "n_patches",
    "checkerboard_score",
    "diff_water_r",
    "diff_water_g",
    "diff_water_b",
    "diff_land_r",
    "diff_land_g",
    "diff_land_b",
    "n_water_pixels",
    "n_land_pixels",
)


def measure(fake, real, water, radius: int = 1) -> dict:
    """One row of artifacts.csv (without ``source``/``epoch``): both measures of ``fake`` vs ``real``."""
    wl = water_land_difference(fake, real, water)
    row = {"n_patches": int(np.asarray(fake).shape[0]) if np.asarray(fake).ndim == 4 else 1}
    row["checkerboard_score"] = checkerboard_score(fake, real, radius)
    for i, band in enumerate("rgb"):
        row[f"diff_water_{band}"] = float(wl["water"][i])
        row[f"diff_land_{band}"] = float(wl["land"][i])
    row["n_water_pixels"] = wl["n_water_pixels"]
    row["n_land_pixels"] = wl["n_land_pixels"]
    return row
