"""One simulated area end to end: its landscape and seasons, the scenes rendered and written (the two
acquisitions, the truth and, on request, the snowfall truth), the land-cover labels, and a summary of
what was made."""

from __future__ import annotations

import logging
import time

import numpy as np

from deepsnow import DeepsnowError
from deepsnow.data.landcover import write_landcover
from deepsnow.data.scene import scene_stats, write_scene
from deepsnow.data.simulator.clouds import cloud_field, nodata_wedge
from deepsnow.data.simulator.geometry import PIXEL_M, area_geometry, area_index, area_seed
from deepsnow.data.simulator.landscape import Landscape, build_landscape
from deepsnow.data.simulator.noise import SEASON_KEY, sensor_noise_rngs
from deepsnow.data.simulator.radiometry import render
from deepsnow.data.simulator.seasons import SeasonStates, season_states
from deepsnow.data.simulator.spectra import LAND_COVER, SPECTRA

log = logging.getLogger("deepsnow.data.simulator")

#: Scene -> (season, surface, acquired, noise): an acquired scene may have clouds and a nodata wedge;
#: the truth is the snow-season surface under the snow-free acquisition's sensor noise, the snowfall
#: truth the same after a snowfall over the whole area (docs/simulator.md).
SCENES = {
    "snowfree": ("snowfree", "snowfree", True, "snowfree"),
    "snow": ("snow", "snow", True, "snow"),
    "truth": ("snow", "snow", False, "snowfree"),
    "snowfall": ("snow", "snowfall", False, "snowfree"),
}
#: The tags that say a scene is a truth, and which one.
TRUTH_TAGS = {"truth": {"DEEPSNOW_TRUTH": 1}, "snowfall": {"DEEPSNOW_TRUTH": 1, "DEEPSNOW_SNOWFALL": 1}}


def simulate_area(
    aoi: str, params: dict, snowfree_path, snow_path, truth_path, landcover_path=None, snowfall_path=None
) -> dict:
    """Simulate one area: write the snow-free, snow-season and truth scenes (with ``landcover_path``
    the land-cover labels of :mod:`deepsnow.data.landcover`, with ``snowfall_path`` the snowfall
    truth); return a summary.

    ``params`` is the validated ``data`` config section. The summary (JSON-
    serialisable) holds the area seed, EPSG code, transform, bounds, terrain
    facts, land-cover fractions and, per scene, date, sun, cloudiness and the
    snow / cloud / shadow / water / valid fractions from its SCL.
    """
    t0 = time.perf_counter()
    sim = params["simulator"]
    index = area_index(aoi, int(sim["n_aois"]))
    seed = area_seed(sim["seed"], index)
    n = int(sim["size"])
    resolution = float(params.get("resolution", PIXEL_M))
    if resolution != PIXEL_M:
        raise DeepsnowError(f"key 'data.resolution': the simulator makes 10 m pixels, got {resolution}")
    crs, transform, epsg = area_geometry(index, n, sim["origin"])
    log.info("simulating %s: %d x %d px at 10 m, EPSG:%d, area seed %d", aoi, n, n, epsg, seed)

    land = build_landscape(n, seed)
    log.info(
        "%s: terrain %.0f-%.0f m, %d lake(s), %d town(s) (%.1f s)",
        aoi, float(land.elevation.min()), float(land.elevation.max()), land.info["n_lakes"],
        len(land.info["towns"]), time.perf_counter() - t0,
    )
    seasons = season_states(land, sim, seed)
    base_tags = {"DEEPSNOW_SOURCE": "simulator", "DEEPSNOW_AOI": aoi, "DEEPSNOW_SEED": seed}
    paths = {"snowfree": snowfree_path, "snow": snow_path, "truth": truth_path}
    if snowfall_path is not None:
        paths["snowfall"] = snowfall_path
    scenes = {
        name: _write_acquisition(name, path, land, seasons, sim, seed, crs, transform, base_tags)
        for name, path in paths.items()
    }
    if landcover_path is not None:
        write_landcover(landcover_path, land.cover, seasons.fsnow, crs, transform, base_tags)
        log.info("%s: wrote land cover %s", aoi, landcover_path)
    summary = _area_summary(aoi, index, seed, sim, epsg, transform, land, seasons.snow_info, scenes)
    log.info("%s: done in %.1f s", aoi, time.perf_counter() - t0)
    return summary


def _write_acquisition(name, path, land, seasons: SeasonStates, sim, seed, crs, transform, base_tags) -> dict:
    """Render and write one scene of ``SCENES``; its SCL statistics, date, sun and cloudiness."""
    season, surf, acquired, noise = SCENES[name]
    n = land.cover.shape[0]
    sun_el, sun_az = seasons.suns[season]
    cloud = cloud_field(n, seed, season, sim, sun_el, sun_az) if acquired else None
    wedge = nodata_wedge(n, seed, season) if acquired else None
    fs, fz = (seasons.snow[surf], seasons.frozen) if season == "snow" else (None, None)
    refl, scl, mask = render(
        seasons.surfaces[surf], land, fs, fz, seasons.illum[season], cloud, wedge,
        sensor_noise_rngs(seed, SEASON_KEY[noise], SPECTRA),
    )
    date = seasons.dates[season].isoformat()
    tags = dict(base_tags, DEEPSNOW_SEASON=season, DEEPSNOW_DATE=date, **TRUTH_TAGS.get(name, {}))
    write_scene(path, refl, scl, mask, crs, transform, tags=tags)
    stats = scene_stats(scl, mask)
    stats.update(
        path=str(path),
        season=season,
        date=date,
        cloudy=cloud is not None,
        cloud_cover_target=round(cloud.target_cover, 4) if cloud is not None else 0.0,
        sun_elevation_deg=round(sun_el, 2),
        sun_azimuth_deg=round(sun_az, 2),
    )
    log.info(
        "%s %s: wrote %s (snow %.1f%%, cloud %.1f%%, shadow %.1f%%, valid %.1f%%)",
        base_tags["DEEPSNOW_AOI"], name, path, 100 * stats["snow_fraction"], 100 * stats["cloud_fraction"],
        100 * stats["shadow_fraction"], 100 * stats["valid_fraction"],
    )
    return stats


def _area_summary(aoi, index, seed, sim, epsg, transform, land: Landscape, snow_info, scenes) -> dict:
    """The JSON-serialisable summary of one simulated area (:func:`simulate_area`)."""
    n = land.cover.shape[0]
    counts = np.bincount(land.cover.ravel(), minlength=len(LAND_COVER))
    left, top = transform.c, transform.f
    return {
        "aoi": aoi,
        "index": index,
        "seed": seed,
        "base_seed": int(sim["seed"]),
        "epsg": epsg,
        "crs": f"EPSG:{epsg}",
        "size": n,
        "resolution_m": PIXEL_M,
        "transform": [transform.a, transform.b, transform.c, transform.d, transform.e, transform.f],
        "bounds": [left, top - n * PIXEL_M, left + n * PIXEL_M, top],
        "elevation_m": {
            "min": round(float(land.elevation.min()), 1),
            "max": round(float(land.elevation.max()), 1),
            "mean": round(float(land.elevation.mean()), 1),
        },
        "terrain": {k: (round(v, 2) if isinstance(v, float) else v) for k, v in land.info.items()},
        "snow": snow_info,
        "land_cover": {name: round(float(counts[i]) / land.cover.size, 5) for i, name in enumerate(LAND_COVER)},
        "scenes": scenes,
    }
