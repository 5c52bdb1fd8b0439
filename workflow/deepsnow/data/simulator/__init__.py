"""Offline scene source: simulated Sentinel-2 L2A acquisitions of invented mountain valleys.

:func:`simulate_area` writes, for one simulated area (``sim00``, ``sim01``, ...), scene
GeoTIFFs in the format of docs/formats.md: the snow-free (summer) scene, the snow-season
(winter) scene, and the truth (the snow-free scene's area in the snow season, cloud-free), plus,
on request, the snowfall truth (the same after a snowfall over the whole area) and the
land-cover labels. The pixels come from a small physical-looking model —
fractal terrain with a river, lakes, forest, fields, towns and roads; per-class spectra;
hillshade from the overpass sun; snow from a snow line; clouds with shadows; sensor noise —
deterministic per area seed. The model, its numbers and their sources: docs/simulator.md.

Modules, in the order the model runs: :mod:`.geometry` (area names, seeds, grids),
:mod:`.noise` (random streams, fractal fields), :mod:`.terrain`, :mod:`.landscape`
(land cover), :mod:`.spectra` (reflectance per band and class), :mod:`.seasons` (dates,
snow), :mod:`.radiometry` (sun, surfaces, at-sensor pixels, SCL), :mod:`.clouds`,
:mod:`.area` (one area end to end, writing).
"""

from __future__ import annotations

from deepsnow.lazy import lazy_exports

#: submodule -> the public names it defines
_EXPORTS = {
    "area": ("simulate_area", "SCENES"),
    "geometry": ("area_index", "area_seed", "area_geometry", "PIXEL_M"),
    "landscape": ("build_landscape", "Landscape"),
    "seasons": ("season_states", "SeasonStates", "acquisition_dates", "snow_fraction"),
    "radiometry": ("sun_position", "illumination", "surface", "mix_snow", "render"),
    "clouds": ("cloud_field", "Clouds", "nodata_wedge"),
    "noise": ("BAND_NOISE_KEY", "sensor_noise_rngs"),
    "spectra": (
        "SPECTRA", "BandSpectra", "LAND_COVER",
        "WATER", "FOREST", "MEADOW", "CROP", "CEREAL", "SOIL", "ROCK", "URBAN", "ROAD",
    ),
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
