"""Clouds, cloud shadows and swath-edge nodata of a simulated acquisition (docs/simulator.md, "Clouds")."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from deepsnow.data.simulator.geometry import PIXEL_M
from deepsnow.data.simulator.noise import SEASON_KEY, Stream, fbm, stream_rng


@dataclass
class Clouds:
    """The clouds of one scene on its grid."""

    opacity: np.ndarray  # 0..1
    shadow: np.ndarray  # 0..1, opacity displaced away from the sun
    brightness: np.ndarray  # cloud-top brightness factor
    target_cover: float
    height_m: float
    offset_px: tuple


def cloud_field(n: int, seed: int, season: str, params: dict, sun_el: float, sun_az: float) -> Clouds | None:
    """Cloud opacity and shadow fields of one scene, or None for a clear scene."""
    rng = stream_rng(seed, Stream.CLOUDS, SEASON_KEY[season])
    cloudy = rng.random() < float(params["cloudy_scene_fraction"])
    target = float(np.clip(float(params["cloud_cover"]) * math.exp(rng.normal(0.0, 0.35)), 0.0, 1.0))
    if not cloudy or target <= 0.0:
        return None
    height = rng.uniform(600.0, 1200.0)
    length = min(300.0, height * math.tan(math.radians(90.0 - max(sun_el, 5.0))) / PIXEL_M)
    az = math.radians(sun_az)
    # Shadows fall away from the sun: east offset -sin(az), north offset -cos(az) (rows run south).
    dcol, drow = -math.sin(az) * length, math.cos(az) * length
    pad = int(math.ceil(length)) + 2
    # Cumulus-scale structure on top of a regional pattern, so clouds cluster in
    # part of the scene (as cloud fields do) instead of peppering all of it.
    shape = (n + 2 * pad, n + 2 * pad)
    big = fbm(rng, shape, beta=3.3, outer_px=150.0, inner_px=2.0)
    big += 3.0 * fbm(rng, shape, beta=4.5, outer_px=600.0)
    inner = big[pad : pad + n, pad : pad + n]
    r0, c0 = pad - int(round(drow)), pad - int(round(dcol))
    source = big[r0 : r0 + n, c0 : c0 + n]  # where the clouds casting shadows into the scene are
    # The cover target holds for the scene and its shadow source area together.
    both = np.concatenate([inner.ravel(), source.ravel()])
    thresh = float(np.quantile(both, 1.0 - target)) if target < 1.0 else float(both.min()) - 1.0
    ramp = 0.7
    opacity_big = np.clip(0.15 + (big - thresh) / ramp, 0.0, 1.0)
    opacity_big = np.where(big >= thresh, opacity_big, 0.0).astype(np.float32)
    opacity = opacity_big[pad : pad + n, pad : pad + n]
    shadow = opacity_big[r0 : r0 + n, c0 : c0 + n]
    brightness = (0.85 + 0.25 * np.clip((inner - thresh) / 1.5, 0.0, 1.0)).astype(np.float32)
    return Clouds(opacity, shadow, brightness, target, height, (round(drow, 1), round(dcol, 1)))


def nodata_wedge(n: int, seed: int, season: str) -> np.ndarray | None:
    """A thin swath-edge wedge at the left or right edge in about a third of the scenes."""
    rng = stream_rng(seed, Stream.EDGE, SEASON_KEY[season])
    if rng.random() >= 1.0 / 3.0:
        return None
    w_max = rng.uniform(0.02, 0.07) * n
    rows = np.arange(n, dtype=np.float32)[:, None]
    width = w_max * (rows / (n - 1) if rng.random() < 0.5 else 1.0 - rows / (n - 1))
    cols = np.arange(n, dtype=np.float32)[None, :]
    if rng.random() < 0.5:
        return cols < width
    return cols > (n - 1) - width
