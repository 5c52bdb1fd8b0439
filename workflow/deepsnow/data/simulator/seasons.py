"""The two seasons of a simulated area: acquisition dates, sun, snow cover and surfaces.

The snow-free season is the summer acquisition; the snow season the winter one, with
snow mixed into its surface (docs/simulator.md, "Snow"). The snow season has a second snow
cover: the same after a snowfall over the whole area (docs/simulator.md, "Snowfall truth").
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


#: How far (m) below every pixel's local snow line a snowfall reaches (:func:`snow_fraction` with
#: ``snowfall``): six widths of the 25 m logistic transition, so every pixel's snow probability is at
#: least 0.9975 and cover is left only to canopy, cliffs, cleared roads, roofs and open water.
SNOWFALL_MARGIN_M = 150.0


def snow_fraction(
    land: Landscape, params: dict, seed: int, sun_az: float, snowfall: bool = False
) -> tuple[np.ndarray, dict, np.ndarray]:
    """Snow-season snow cover per pixel (0..1), facts about it and the frozen lakes.

    With ``snowfall``, the same realisation (patchiness, canopy gaps, roofs, frozen lakes) after a
    snowfall that reaches below the lowest point: the snow line lies :data:`SNOWFALL_MARGIN_M`
    under every pixel's local line, so snow is limited only by what the surface holds.
    """
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
    floor = _snowfall_line(land.elevation, facing, patch) if snowfall else line
    local = floor + 60.0 * facing + 50.0 * patch
    p = sigmoid((land.elevation - local) / 25.0)
    f, frozen, n_frozen = _surface_snow(land, rng, p, line)
    info = {"snow_line_m": round(line, 1), "frozen_lakes": n_frozen}
    if snowfall:
        info["snowfall_line_m"] = round(floor, 1)
    return f, info, frozen


def _snowfall_line(elevation: np.ndarray, facing: np.ndarray, patch: np.ndarray) -> float:
    """The snow line of a snowfall covering the whole area: :data:`SNOWFALL_MARGIN_M` below the lowest
    pixel once the local offsets (aspect, patchiness) of :func:`snow_fraction` are taken off."""
    return float(np.min(elevation - 60.0 * facing - 50.0 * patch)) - SNOWFALL_MARGIN_M


def _surface_snow(land: Landscape, rng: np.random.Generator, p: np.ndarray, line: float):
    """The snow the surface holds where snow falls with probability ``p``: all of it on open land (less
    on cliffs), canopy gaps in forest, little on cleared roads, per-block roof shares, none on open
    water; lakes above the season's snow ``line`` + 80 m frozen and snow-covered.
    Returns (snow fraction float32, frozen-lake mask, number of frozen lakes)."""
    cover = land.cover
    n = cover.shape[0]
    f = p.copy()
    # Snow slides off cliffs.
    f *= np.clip((55.0 - land.slope) / 15.0, 0.25, 1.0)
    gap = np.clip(0.45 + 0.35 * (1.0 - land.conifer) + 0.1 * fbm(rng, (n, n), beta=2.0, outer_px=6.0), 0.3, 0.9)
    f = np.where(cover == FOREST, p * gap, f)
    f = np.where(cover == ROAD, p * 0.3, f)
    f = np.where(cover == URBAN, p * land.roof_snow, f)
    # Lakes freeze with the season's cold, not with one snowfall: the season's line decides.
    frozen_ids = [k for k, lv in land.lake_levels.items() if lv > line + 80.0]
    frozen = np.isin(land.lake, frozen_ids) & (land.lake > 0)
    f = np.where(cover == WATER, 0.0, f)
    f = np.where(frozen, 0.95 * np.maximum(p, 0.9), f)
    return f.astype(np.float32), frozen, len(frozen_ids)


@dataclass
class SeasonStates:
    """What differs between the two seasons of one area, and between the snow season's two snow covers."""

    dates: dict  # season -> dt.date
    suns: dict  # season -> (elevation, azimuth) in degrees
    illum: dict  # season -> hillshade factor
    #: surface -> noise-free surface, band -> array: ``snowfree``, ``snow`` (the snow season's snow
    #: mixed in) and ``snowfall`` (the snow season after a snowfall over the whole area)
    surfaces: dict
    snow: dict  # snowy surface (``snow``, ``snowfall``) -> its snow fraction
    frozen: np.ndarray  # frozen lakes of the snow season
    snow_info: dict

    @property
    def fsnow(self) -> np.ndarray:
        """The snow season's snow fraction."""
        return self.snow["snow"]


def season_states(land: Landscape, sim: dict, seed: int) -> SeasonStates:
    """Dates, sun, illumination, snow covers and surfaces of both seasons."""
    lat = float(sim["origin"][1])
    dates = acquisition_dates(lat, seed)
    suns = {s: sun_position(lat, d) for s, d in dates.items()}
    illum = {s: illumination(land, *suns[s]) for s in dates}
    fsnow, snow_info, frozen = snow_fraction(land, sim, seed, suns["snow"][1])
    fall, fall_info, _ = snow_fraction(land, sim, seed, suns["snow"][1], snowfall=True)
    snow_info["snowfall_line_m"] = fall_info["snowfall_line_m"]
    winter = surface(land, "snow", seed)
    surfaces = {
        "snowfree": surface(land, "snowfree", seed),
        "snow": mix_snow(winter, fsnow, seed),
        "snowfall": mix_snow(winter, fall, seed),
    }
    return SeasonStates(dates, suns, illum, surfaces, {"snow": fsnow, "snowfall": fall}, frozen, snow_info)
