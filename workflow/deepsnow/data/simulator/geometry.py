"""Which simulated area a name is, its seed and where it lies: CRS and 10 m grid of each area."""

from __future__ import annotations

import math

import numpy as np
from rasterio.crs import CRS
from rasterio.transform import Affine
from rasterio.warp import transform as warp_transform

from deepsnow import DeepsnowError
from deepsnow.areas import simulated_aoi_names

PIXEL_M = 10.0
#: Gap between neighbouring simulated areas, metres; areas per row of the layout.
AREA_GAP_M = 1000.0
AREAS_PER_ROW = 4


def area_index(aoi: str, n_aois: int) -> int:
    """Index of a simulated area name; :class:`DeepsnowError` for unknown names."""
    names = simulated_aoi_names(n_aois)
    if aoi not in names:
        raise DeepsnowError(
            f"unknown simulated area {aoi!r}: with data.simulator.n_aois = {n_aois} the areas are "
            f"{', '.join(names)}"
        )
    return names.index(aoi)


def area_seed(base_seed: int, index: int) -> int:
    """The per-area seed derived from ``data.simulator.seed`` and the area index."""
    return int(np.random.SeedSequence([int(base_seed), int(index)]).generate_state(1)[0])


def area_geometry(index: int, size: int, origin) -> tuple[CRS, Affine, int]:
    """CRS, north-up 10 m transform and EPSG code of simulated area ``index``."""
    lon, lat = float(origin[0]), float(origin[1])
    if not (-180.0 <= lon <= 180.0 and -80.0 <= lat <= 84.0):
        raise DeepsnowError(
            f"key 'data.simulator.origin': [lon, lat] must lie within UTM coverage "
            f"(-180..180, -80..84 degrees), got {list(origin)}"
        )
    zone = min(60, int((lon + 180.0) // 6.0) + 1)
    epsg = (32600 if lat >= 0 else 32700) + zone
    crs = CRS.from_epsg(epsg)
    xs, ys = warp_transform("EPSG:4326", crs, [lon], [lat])
    x0 = math.floor(xs[0] / PIXEL_M) * PIXEL_M
    y0 = math.floor(ys[0] / PIXEL_M) * PIXEL_M
    step = size * PIXEL_M + AREA_GAP_M
    x = x0 + (index % AREAS_PER_ROW) * step
    y = y0 - (index // AREAS_PER_ROW) * step
    return crs, Affine(PIXEL_M, 0.0, x, 0.0, -PIXEL_M, y), epsg
