"""The two seasons of a simulated area: acquisition dates, sun, snow cover and surfaces.

The snow-free season is the summer acquisition; the snow season the winter one, with
snow mixed into its surface (docs/simulator.md, "Snow").
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np

from deepsnow.data.simulator.landscape import Landscape
from deepsnow.data.simulator.noise import Stream, fbm, sigmoid, stream_rng
from deepsnow.data.simulator.radiometry import illumination, mix_snow, sun_position, surface
from deepsnow.data.simulator.spectra import FOREST, ROAD, URBAN, WATER


def acquisition_dates(lat: float, seed: int) -> dict[str, dt.date]:
    """Invented but plausible dates: mid-summer and mid-winter of the area's hemisphere."""
    rng = stream_rng(seed, Stream.DATE)
    summer = dt.date(2021, 6, 25) + dt.timedelta(days=int(rng.integers(0, 50)))
    winter = dt.date(2021, 1, 8) + dt.timedelta(days=int(rng.integers(0, 40)))
    if lat < 0:
        summer, winter = winter, summer
    return {"snowfree": summer, "snow": winter}


def snow_fraction(land: Landscape, params: dict, seed: int, sun_az: float) -> tuple[np.ndarray, dict, np.ndarray]:
    """Snow-season snow cover per pixel (0..1) and facts about it."""
    rng = stream_rng(seed, Stream.SNOW)
    n = land.cover.shape[0]
    line = float(params["snow_line_m"]) + float(np.clip(rng.normal(0.0, 40.0), -80.0, 80.0))
    az = math.radians(sun_az)
    gnorm = np.maximum(np.hypot(land.dzdx, land.dzdy), 1e-6)
    # cos of the angle between the downslope direction and the direction to the sun:
    # +1 on slopes facing the sun, -1 on slopes facing away.
    facing = (-land.dzdx * math.sin(az) - land.dzdy * math.cos(az)) / gnorm
    facing *= np.clip(land.slope / 15.0, 0.0, 1.0)
    patch = fbm(rng, (n, n), beta=3.0, outer_px=40.0, inner_px=1.0)
    local = line + 60.0 * facing + 50.0 * patch
    p = sigmoid((land.elevation - local) / 25.0)
    cover = land.cover
    f = p.copy()
    # Snow slides off cliffs.
    f *= np.clip((55.0 - land.slope) / 15.0, 0.25, 1.0)
    gap = np.clip(0.45 + 0.35 * (1.0 - land.conifer) + 0.1 * fbm(rng, (n, n), beta=2.0, outer_px=6.0), 0.3, 0.9)
    f = np.where(cover == FOREST, p * gap, f)
    f = np.where(cover == ROAD, p * 0.3, f)
    f = np.where(cover == URBAN, p * land.roof_snow, f)
    frozen_ids = [k for k, lv in land.lake_levels.items() if lv > line + 80.0]
    frozen = np.isin(land.lake, frozen_ids) & (land.lake > 0)
    f = np.where(cover == WATER, 0.0, f)
    f = np.where(frozen, 0.95 * np.maximum(p, 0.9), f)
    info = {"snow_line_m": round(line, 1), "frozen_lakes": len(frozen_ids)}
    return f.astype(np.float32), info, frozen


@dataclass
class SeasonStates:
    """What differs between the two seasons of one area, by season name."""

    dates: dict  # season -> dt.date
    suns: dict  # season -> (elevation, azimuth) in degrees
    illum: dict  # season -> hillshade factor
    surfaces: dict  # season -> noise-free surface, band -> array (snow mixed into the snow season's)
    fsnow: np.ndarray  # snow-season snow fraction
    frozen: np.ndarray  # frozen lakes of the snow season
    snow_info: dict


def season_states(land: Landscape, sim: dict, seed: int) -> SeasonStates:
    """Dates, sun, illumination, snow cover and surfaces of both seasons."""
    lat = float(sim["origin"][1])
    dates = acquisition_dates(lat, seed)
    suns = {s: sun_position(lat, d) for s, d in dates.items()}
    illum = {s: illumination(land, *suns[s]) for s in dates}
    fsnow, snow_info, frozen = snow_fraction(land, sim, seed, suns["snow"][1])
    surfaces = {
        "snowfree": surface(land, "snowfree", seed),
        "snow": mix_snow(surface(land, "snow", seed), fsnow, seed),
    }
    return SeasonStates(dates, suns, illum, surfaces, fsnow, frozen, snow_info)
