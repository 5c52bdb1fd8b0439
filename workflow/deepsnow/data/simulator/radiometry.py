"""Radiometry of a simulated acquisition: sun, hillshade, surface reflectance, snow mixing, the
at-sensor pixels with clouds and sensor noise, and the scene classification (SCL) that matches them.

Reflectances come per band from :data:`~deepsnow.data.simulator.spectra.SPECTRA`, as dicts
band name -> array in the order of that table (the first five bands' sensor noise is drawn in it).
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np

from deepsnow.data.scene import (
    SCL_CIRRUS,
    SCL_CLOUD_HIGH,
    SCL_CLOUD_MEDIUM,
    SCL_CLOUD_SHADOW,
    SCL_DARK,
    SCL_NODATA,
    SCL_NOT_VEGETATED,
    SCL_SNOW,
    SCL_VEGETATION,
    SCL_WATER,
)
from deepsnow.data.simulator.clouds import Clouds
from deepsnow.data.simulator.landscape import Landscape
from deepsnow.data.simulator.noise import Stream, fbm, stream_rng
from deepsnow.data.simulator.spectra import FOREST, SPECTRA, TEXTURE, URBAN, VEGETATION_CLASSES, WATER


def sun_position(lat: float, date: dt.date, hour: float = 10.5) -> tuple[float, float]:
    """Sun (elevation, azimuth from north clockwise) in degrees at local solar ``hour``."""
    doy = date.timetuple().tm_yday
    dec = math.radians(23.44) * math.sin(2 * math.pi * (284 + doy) / 365.0)
    ha = math.radians(15.0 * (hour - 12.0))
    phi = math.radians(lat)
    sin_el = math.sin(phi) * math.sin(dec) + math.cos(phi) * math.cos(dec) * math.cos(ha)
    el = math.asin(max(-1.0, min(1.0, sin_el)))
    az = math.atan2(math.sin(ha), math.cos(ha) * math.sin(phi) - math.tan(dec) * math.cos(phi)) + math.pi
    return math.degrees(el), math.degrees(az) % 360.0


def illumination(land: Landscape, sun_el: float, sun_az: float, diffuse: float = 0.3) -> np.ndarray:
    """Hillshade factor: 1 on flat land in summer, darker in winter and on slopes facing away."""
    el, az = math.radians(sun_el), math.radians(sun_az)
    sx, sy, sz = math.sin(az) * math.cos(el), math.cos(az) * math.cos(el), math.sin(el)
    norm = np.sqrt(land.dzdx**2 + land.dzdy**2 + 1.0)
    cos_i = (-land.dzdx * sx - land.dzdy * sy + sz) / norm
    flat = diffuse + (1.0 - diffuse) * max(sz, 0.05)
    bright = float(np.clip(0.75 + 0.3 * sz, 0.8, 1.0))
    shade = bright * (diffuse + (1.0 - diffuse) * np.maximum(cos_i, 0.0)) / flat
    return np.clip(shade, 0.3, 1.3).astype(np.float32)


def surface(land: Landscape, season: str, seed: int) -> dict[str, np.ndarray]:
    """Noise-free, unilluminated surface reflectance per band (snow not yet mixed in)."""
    rng = stream_rng(seed, Stream.TEXTURE)  # same texture in both seasons: it belongs to the surface
    n = land.cover.shape[0]
    cover = land.cover
    smooth = fbm(rng, (n, n), beta=2.5, outer_px=20.0, inner_px=0.7)
    white = rng.standard_normal((n, n), dtype=np.float32)
    vigour = fbm(rng, (n, n), beta=3.0, outer_px=30.0, inner_px=1.0)
    amp = TEXTURE[cover]
    crowns = cover == FOREST
    tex = np.where(crowns, 0.4 * smooth + 0.9 * white, 0.7 * smooth + 0.3 * white)
    bright = np.clip(1.0 + amp * tex + land.parcel_var, 0.3, 2.0)
    veg = np.isin(cover, VEGETATION_CLASSES)
    vig = np.where(veg, 0.12 * vigour, 0.0)
    if season == "snow":
        vig *= 0.5
    conifer_season = 0 if season == "snowfree" else 1
    out = {}
    for band, spec in SPECTRA.items():
        base = spec.class_reflectance(season)[cover]
        base = np.where(crowns, land.conifer * spec.conifer[conifer_season] + (1.0 - land.conifer) * base, base)
        base = np.where(cover == URBAN, (1.0 - land.tile) * base + land.tile * spec.tile_roof, base)
        out[band] = (base * bright * (1.0 + spec.vigour * vig)).astype(np.float32)
    return out


def mix_snow(surf: dict[str, np.ndarray], fsnow: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Linear mixture of each pixel's surface and snow of varying age/grain size."""
    rng = stream_rng(seed, Stream.SNOW, 1)
    n = fsnow.shape[0]
    age = np.clip(0.5 + 0.3 * fbm(rng, (n, n), beta=2.5, outer_px=30.0, inner_px=0.8), 0.0, 1.0)
    grain = 0.015 * rng.standard_normal((n, n), dtype=np.float32)
    out = {}
    for band, s in surf.items():
        spec = SPECTRA[band]
        fresh, ageing = spec.snow_age
        snow = spec.snow * (fresh + ageing * age)
        if spec.snow_grain:
            snow = snow + grain
        out[band] = ((1.0 - fsnow) * s + fsnow * snow).astype(np.float32)
    return out


def render(
    surf: dict[str, np.ndarray],
    land: Landscape,
    fsnow: np.ndarray | None,
    frozen: np.ndarray | None,
    illum: np.ndarray,
    cloud: Clouds | None,
    nodata: np.ndarray | None,
    noise_rngs: dict[str, np.random.Generator],
):
    """Reflectance bands (dict), SCL and dataMask of one acquisition; ``noise_rngs``: each band's
    sensor-noise generator (:func:`~deepsnow.data.simulator.noise.sensor_noise_rngs`)."""
    n = land.cover.shape[0]
    # Noise-free at-sensor reflectance: surface x hillshade, then cloud shadow and cloud.
    clean = {}
    for band, s in surf.items():
        refl = s * illum
        if cloud is not None:
            shade = 1.0 - 0.6 * np.clip(cloud.shadow / 0.6, 0.0, 1.0)
            refl = cloud.opacity * (SPECTRA[band].cloud * cloud.brightness) + (1.0 - cloud.opacity) * refl * shade
        clean[band] = refl.astype(np.float32)
    scl = scene_classification(surf, clean, land.cover, fsnow, frozen, illum, cloud)
    out = clean  # each noise-free band replaced by its noisy one: ten bands, one copy of each
    for band, refl in clean.items():  # in table order: the order of the shared stream's draws
        refl = refl + (0.002 + 0.01 * refl) * noise_rngs[band].standard_normal((n, n), dtype=np.float32)
        out[band] = np.maximum(refl, 1e-4).astype(np.float32)
    mask = np.ones((n, n), dtype=np.uint8)
    if nodata is not None:
        mask[nodata] = 0
        scl[nodata] = SCL_NODATA
        for r in out.values():
            r[nodata] = 0.0
    return out, scl, mask


def scene_classification(surf, clean, cover, fsnow, frozen, illum, cloud: Clouds | None) -> np.ndarray:
    """SCL (uint8) from the surface and the noise-free at-sensor pixels (``clean``).

    Snow needs margins over the usual NDSI 0.4 / NIR 0.11 snow test, so that sensor
    noise cannot move a snow pixel below it.
    """
    b04, b08 = surf["B04"], surf["B08"]
    ndvi = (b08 - b04) / np.maximum(b08 + b04, 1e-6)
    green, swir = clean["B03"], clean["B11"]
    ndsi = (green - swir) / np.maximum(green + swir, 1e-6)
    water = cover == WATER
    if frozen is not None:
        water &= ~frozen
    scl = np.where(ndvi > 0.35, SCL_VEGETATION, SCL_NOT_VEGETATED).astype(np.uint8)
    scl[(illum < 0.38) & ~water] = SCL_DARK
    scl[water] = SCL_WATER
    if fsnow is not None:
        scl[(fsnow >= 0.5) & (ndsi > 0.45) & (clean["B08"] > 0.13)] = SCL_SNOW
    if cloud is not None:
        a = cloud.opacity
        scl[(cloud.shadow >= 0.5) & (a < 0.15)] = SCL_CLOUD_SHADOW
        scl[a >= 0.15] = SCL_CIRRUS
        scl[a >= 0.65] = SCL_CLOUD_MEDIUM
        scl[a >= 0.85] = SCL_CLOUD_HIGH
    return scl
