"""The simulator's spectra: surface reflectance per land-cover class and band, snow, cloud and texture.

One :class:`BandSpectra` per reflectance band in :data:`SPECTRA`: adding a Sentinel-2
band to the simulated scenes is adding its entry here (and its name to
``deepsnow.data.scene.REFLECTANCE_BANDS``); the model reads every band's numbers from
this table and names the bands its indices use (NDVI, NDSI). Orders of magnitude and
sources: docs/simulator.md, "Reflectance".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deepsnow.data.landcover import CLASSES

# Land-cover classes (the per-class columns below are in this order).
WATER, FOREST, MEADOW, CROP, CEREAL, SOIL, ROCK, URBAN, ROAD = range(9)
LAND_COVER = CLASSES  # the names the land-cover labels carry (deepsnow.data.landcover)


@dataclass(frozen=True)
class BandSpectra:
    """Everything the simulator knows about one reflectance band (L2A surface reflectance 0..1)."""

    #: Per class, snow-free season: water (clear lake / river), forest (broadleaf; conifer
    #: crowns: ``conifer``), meadow / grassland, green crop (maize, beet), ripening cereal,
    #: bare soil, rock / bare ground, built-up (roofs, concrete), road (asphalt).
    summer: tuple[float, ...]
    #: Per class, snow season without snow (winter phenology): water, leafless broadleaf,
    #: dormant grass, winter crop (sown cereal), stubble, wet ploughed soil, rock, built-up, road.
    winter: tuple[float, ...]
    conifer: tuple[float, float]  # conifer crowns, (snow-free season, snow season)
    tile_roof: float  # red tiled roofs, mixed into built-up pixels by their tile share
    snow: float  # fresh fine-grained snow
    #: Snow ageing: snow reflectance x (a + b x age), age 0 (fresh, fine) .. 1 (old, coarse).
    snow_age: tuple[float, float]
    snow_grain: bool  # whether the per-pixel grain-size speckle (sd 0.015) adds to the snow
    cloud: float  # cloud top
    vigour: float  # response to the vegetation-vigour field (NIR up, the others down)

    def class_reflectance(self, season: str) -> np.ndarray:
        """Surface reflectance per class (float32) in ``season`` (``snowfree`` or ``snow``)."""
        return np.array(self.summer if season == "snowfree" else self.winter, dtype=np.float32)


#: Per reflectance band, in the order of ``REFLECTANCE_BANDS``.
#:   per class:  water  forest meadow crop   cereal soil   rock   urban  road
SPECTRA = {
    "B04": BandSpectra(  # red, 665 nm
        summer=(0.030, 0.032, 0.040, 0.030, 0.110, 0.140, 0.170, 0.140, 0.090),
        winter=(0.028, 0.060, 0.070, 0.045, 0.120, 0.100, 0.160, 0.140, 0.090),
        conifer=(0.022, 0.020), tile_roof=0.220, snow=0.86, snow_age=(1.03, -0.1), snow_grain=True,
        cloud=0.68, vigour=-1.0,
    ),
    "B03": BandSpectra(  # green, 560 nm
        summer=(0.045, 0.065, 0.080, 0.075, 0.100, 0.110, 0.160, 0.130, 0.085),
        winter=(0.040, 0.060, 0.080, 0.070, 0.105, 0.080, 0.150, 0.130, 0.085),
        conifer=(0.040, 0.035), tile_roof=0.110, snow=0.88, snow_age=(1.03, -0.1), snow_grain=True,
        cloud=0.70, vigour=-0.3,
    ),
    "B02": BandSpectra(  # blue, 490 nm
        summer=(0.050, 0.032, 0.040, 0.032, 0.065, 0.080, 0.140, 0.120, 0.080),
        winter=(0.045, 0.045, 0.055, 0.040, 0.075, 0.060, 0.135, 0.120, 0.080),
        conifer=(0.022, 0.020), tile_roof=0.080, snow=0.91, snow_age=(1.03, -0.1), snow_grain=True,
        cloud=0.72, vigour=-0.8,
    ),
    "B08": BandSpectra(  # near infrared, 842 nm
        summer=(0.018, 0.400, 0.360, 0.440, 0.300, 0.210, 0.230, 0.190, 0.120),
        winter=(0.016, 0.170, 0.220, 0.280, 0.200, 0.160, 0.220, 0.190, 0.120),
        conifer=(0.240, 0.200), tile_roof=0.260, snow=0.78, snow_age=(1.02, -0.12), snow_grain=True,
        cloud=0.66, vigour=1.0,
    ),
    "B11": BandSpectra(  # shortwave infrared, 1610 nm: older, coarser snow is brighter here (0.035-0.09)
        summer=(0.010, 0.190, 0.210, 0.190, 0.300, 0.310, 0.270, 0.250, 0.150),
        winter=(0.009, 0.200, 0.250, 0.210, 0.290, 0.240, 0.270, 0.250, 0.150),
        conifer=(0.110, 0.100), tile_roof=0.320, snow=0.06, snow_age=(0.6, 0.9), snow_grain=False,
        cloud=0.57, vigour=-0.5,
    ),
}

#: Relative texture amplitude per class.
TEXTURE = np.array([0.05, 0.20, 0.08, 0.05, 0.06, 0.10, 0.15, 0.15, 0.05], dtype=np.float32)
#: Classes whose NIR / red respond to the vegetation-vigour field.
VEGETATION_CLASSES = (FOREST, MEADOW, CROP, CEREAL)
