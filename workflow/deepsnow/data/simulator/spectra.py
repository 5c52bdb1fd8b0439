"""The simulator's spectra: surface reflectance per land-cover class and band, snow, cloud and texture.

One :class:`BandSpectra` per reflectance band in :data:`SPECTRA`, one for each of the ten
Sentinel-2 L2A bands a scene may hold (``deepsnow.data.scene.REFLECTANCE_BANDS``); the model
reads every band's numbers from this table and names only the bands its indices use (NDVI,
NDSI). The first five entries keep their order (their sensor noise is drawn from one stream in
it); a band added after them draws its own (``noise.BAND_NOISE_KEY``). Typical values and their
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


#: Per reflectance band: the first five as they were (never reorder them), then the five added with
#: the red edge, the narrow NIR and the second SWIR band.
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
    "B05": BandSpectra(  # red edge 1, 705 nm: vegetation still near its red absorption, rising
        summer=(0.022, 0.080, 0.090, 0.085, 0.150, 0.165, 0.185, 0.150, 0.095),
        winter=(0.020, 0.090, 0.100, 0.090, 0.145, 0.115, 0.175, 0.150, 0.095),
        conifer=(0.045, 0.040), tile_roof=0.250, snow=0.85, snow_age=(1.03, -0.1), snow_grain=True,
        cloud=0.68, vigour=-0.6,
    ),
    "B06": BandSpectra(  # red edge 2, 740 nm: half way up the red edge
        summer=(0.018, 0.250, 0.230, 0.280, 0.220, 0.185, 0.200, 0.165, 0.105),
        winter=(0.017, 0.130, 0.160, 0.190, 0.170, 0.135, 0.195, 0.165, 0.105),
        conifer=(0.150, 0.125), tile_roof=0.255, snow=0.83, snow_age=(1.02, -0.11), snow_grain=True,
        cloud=0.67, vigour=0.5,
    ),
    "B07": BandSpectra(  # red edge 3, 783 nm: near the NIR plateau
        summer=(0.016, 0.360, 0.320, 0.400, 0.270, 0.200, 0.215, 0.175, 0.110),
        winter=(0.016, 0.155, 0.200, 0.250, 0.190, 0.150, 0.210, 0.180, 0.115),
        conifer=(0.215, 0.180), tile_roof=0.260, snow=0.81, snow_age=(1.02, -0.11), snow_grain=True,
        cloud=0.67, vigour=0.9,
    ),
    "B8A": BandSpectra(  # narrow NIR, 865 nm: the NIR plateau; water and snow absorb a little more than at 842 nm
        summer=(0.014, 0.410, 0.370, 0.450, 0.310, 0.220, 0.240, 0.195, 0.125),
        winter=(0.013, 0.180, 0.230, 0.290, 0.210, 0.170, 0.230, 0.195, 0.125),
        conifer=(0.250, 0.210), tile_roof=0.270, snow=0.76, snow_age=(1.02, -0.13), snow_grain=True,
        cloud=0.66, vigour=1.0,
    ),
    "B12": BandSpectra(  # shortwave infrared, 2190 nm: snow darker still than at 1610 nm; ageing as B11's
        summer=(0.008, 0.090, 0.110, 0.095, 0.200, 0.240, 0.220, 0.210, 0.120),
        winter=(0.007, 0.130, 0.160, 0.110, 0.220, 0.170, 0.220, 0.210, 0.120),
        conifer=(0.050, 0.045), tile_roof=0.300, snow=0.035, snow_age=(0.6, 0.9), snow_grain=False,
        cloud=0.45, vigour=-0.6,
    ),
}

#: Relative texture amplitude per class.
TEXTURE = np.array([0.05, 0.20, 0.08, 0.05, 0.06, 0.10, 0.15, 0.15, 0.05], dtype=np.float32)
#: Classes whose NIR / red respond to the vegetation-vigour field.
VEGETATION_CLASSES = (FOREST, MEADOW, CROP, CEREAL)
