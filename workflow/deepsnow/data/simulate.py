"""Offline scene source: simulated Sentinel-2 L2A acquisitions of invented mountain valleys.

``simulate_area`` writes, for one simulated area of interest (``sim00``,
``sim01``, ...), three scene GeoTIFFs in the format of ``docs/formats.md``:

* the **snow-free** season scene (summer acquisition),
* the **snow** season scene (winter acquisition of the same area),
* the **truth**: the snow-free scene's area as it looks after snowfall,
  cloud-free and complete (paired ground truth for the snow-free scene).

The scenes are built from a small physical-looking model, not from noise.

Geometry
    10 m pixels, ``size`` x ``size``, north-up, in the WGS84 / UTM zone of
    ``data.simulator.origin`` (EPSG 326xx north, 327xx south). Area ``i`` has
    its upper-left corner at the origin projected to UTM (snapped to 10 m),
    plus ``(i % 4)`` steps east and ``(i // 4)`` steps south of
    ``size * 10 m + 1 km``: areas lie side by side in rows of four and never
    overlap.

Terrain
    Fractal elevation from spectral synthesis (power-law spectrum
    ``P(k) ~ k^-4.5`` with an outer scale of 8 km, plus a little small-scale
    roughness), with a flat valley floor 80-220 m either side of a meandering
    river that blends into the slopes over 0.6-1.2 km. It is mapped to metres:
    the lowest point lies 360-480 m a.s.l. and the relief grows with the
    scene's extent (``950 m * sqrt(extent / 3.84 km)``, kept between 450 and
    1500 m; a 384 px scene spans about 380-1400 m, median slope 20-30
    degrees). With the default snow line of 600 m the snow line runs through
    every default area: valley floor below, most slopes above.

Land cover (one class per pixel, ``LAND_COVER``)
    * water: the river (2-5 px wide, meandering across the scene) and 1-3+
      lakes filled to a level in carved basins of the terrain;
    * forest: clustered (fractal field thresholded), favoured on slopes, below
      a tree line; a smooth field mixes conifer and broadleaf spectra;
    * fields: parcels of a rotated rectangular grid (120-300 m x 150-450 m) on
      low, gentle land; each parcel a green crop, ripening cereal, bare soil or
      mown grass;
    * rock / bare ground above the tree line (the highest 8-14 % of the area)
      and on cliffs steeper than 50 degrees;
    * a small town on flat low land near the river: a grid of built-up blocks
      with 10 m streets and gardens; larger scenes get more towns;
    * roads 1-2 px wide: along the valley and from the town to the scene edge;
    * meadow / grassland everywhere else.

Reflectance (surface reflectance, L2A BOA; bands B04 red, B03 green, B02 blue,
B08 NIR, B11 SWIR 1.6 um)
    Orders of magnitude from the spectral libraries and Sentinel-2 L2A
    statistics (ASTER/ECOSTRESS and USGS splib07 spectra, ESA S2 L2A product
    handbook): green vegetation red 0.03-0.05, green 0.06-0.08, blue ~0.03,
    NIR 0.25-0.45, SWIR 0.1-0.25; clear water 0.02-0.05 visible, NIR < 0.03,
    SWIR < 0.02; urban 0.1-0.2 flat, SWIR 0.2-0.3; bare soil and rock rising
    from red (0.1-0.17) to SWIR (0.25-0.35); fresh snow 0.85-0.93 visible
    (highest in blue), NIR 0.7-0.8, SWIR 0.03-0.1 (NDSI ~ 0.85); clouds
    0.55-0.8 in the visible and NIR and 0.45-0.6 in B11 (NDSI ~ 0.1). The
    exact tables are ``SUMMER``, ``WINTER``, ``SNOW`` and ``CLOUD`` below. Every
    class carries texture: a per-pixel brightness field (fractal plus white,
    strongest for forest crowns, rock and roofs), a vegetation-vigour field
    that moves NIR against red, per-parcel and per-block offsets. Winter
    phenology: broadleaf trees lose their leaves, meadows go dormant, fields
    are stubble, winter crop or wet ploughed soil.

Illumination
    A Lambertian hillshade from the sun position of a 10:30 local solar time
    overpass (Sentinel-2) at the origin's latitude on the acquisition date:
    ``I = b * (d + (1 - d) cos i) / (d + (1 - d) cos z)`` with diffuse share
    ``d = 0.3``, clipped to 0.3-1.3; the winter sun (~20 degrees elevation at
    46.5 N) gives strong relief shading and ``b = 0.85`` (darker overall)
    against ``b = 1`` in summer. Sensor noise: Gaussian,
    ``sigma = 0.002 + 0.01 * reflectance`` per band.

Snow (snow season and truth)
    Snow fraction per pixel: a logistic of elevation above a local snow line
    (``snow_line_m`` +- 40 m per area, 60 m lower on slopes facing away from
    the sun, +-50 m of fractal patchiness, 25 m transition). Open land takes
    the full fraction (less on cliffs); forest only its canopy gaps (30-90 %,
    more in leafless broadleaf stands), so canopy shows through; roads are
    mostly cleared, roofs partly snowy (per block); the river stays open and
    dark; lakes above the snow line + 80 m are frozen and snow-covered. A pixel
    is the linear mixture of snow and its winter surface. The snow-free scene
    has no snow at all.

Clouds (snow-free and snow scenes only)
    Each of these two scenes is cloudy with probability
    ``cloudy_scene_fraction`` (independent draws from the area's seed). A
    cloudy scene thresholds a fractal field so that about ``cloud_cover`` (times
    a log-normal factor, sd 0.35) of it is cloud; the optical thickness ramps
    up from the threshold, giving thin edges. A cloud of opacity ``a`` gives
    ``a * cloud + (1 - a) * surface``. Cloud shadows are the opacity field
    displaced away from the sun by ``h tan(z)`` (cloud height 0.6-1.2 km,
    computed on a padded canvas so clouds outside the scene cast shadows into
    it) and darken the surface by up to x0.4.

SCL (Sen2Cor scene classification, consistent with the pixels)
    0 no data; 9 / 8 / 10 for cloud opacity >= 0.85 / >= 0.65 / >= 0.15;
    3 shadow (displaced opacity >= 0.5); 11 snow where the snow fraction is at
    least 0.5 and the noise-free at-sensor pixel has NDSI > 0.45 and
    NIR > 0.13 (margins over the usual 0.4 / 0.11 snow test, so sensor noise
    never breaks it); 6 open water; 2 dark area (terrain shadow, illumination < 0.38); else 4 where the
    noise-free NDVI > 0.35, 5 otherwise. dataMask is 1 except, in about a
    third of the snow-free and snow scenes, a thin swath-edge wedge (at most
    ~3.5 % of the scene) at the left or right edge, where all bands are 0.

Truth
    The truth is the snow-season surface state (same land cover, same snow
    fraction realisation, frozen lakes, winter phenology) under the
    snow-season sun (a winter acquisition), cloud-free and without a nodata
    wedge, with the snow-free acquisition's sensor-noise realisation. It is
    pixel-aligned with both other scenes (same grid and land cover); it
    differs from the snow-season scene only by clouds, shadows, nodata and
    sensor noise, and from the snow-free scene by snow, season and sun.

Land-cover labels
    With a land-cover path, the class of every pixel and the snow-season snow
    fraction are written beside the truth (``truth/<aoi>/landcover.tif``,
    :mod:`deepsnow.data.landcover`): the labels the ``simcover`` extractor learns.

Determinism
    The area seed is ``SeedSequence([data.simulator.seed, i]).generate_state(1)``
    for area index ``i``; every model component draws from its own stream
    ``SeedSequence([area_seed, component, ...])``. Same parameters and area
    give byte-identical files; it does not depend on ``n_aois``.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np
import scipy.fft
from rasterio.crs import CRS
from rasterio.transform import Affine
from rasterio.warp import transform as warp_transform
from scipy import ndimage

from deepsnow import DeepsnowError
from deepsnow.areas import simulated_aoi_names
from deepsnow.data.landcover import CLASSES, write_landcover
from deepsnow.data.scene import (
    REFLECTANCE_BANDS,
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
    scene_stats,
    write_scene,
)

log = logging.getLogger("deepsnow.data.simulate")

PIXEL_M = 10.0
#: Gap between neighbouring simulated areas, metres; areas per row of the layout.
AREA_GAP_M = 1000.0
AREAS_PER_ROW = 4

# Land-cover classes.
WATER, FOREST, MEADOW, CROP, CEREAL, SOIL, ROCK, URBAN, ROAD = range(9)
LAND_COVER = CLASSES  # the names the land-cover labels carry (deepsnow.data.landcover)

#: Surface reflectance per class, snow-free season: B04, B03, B02, B08, B11.
SUMMER = np.array(
    [
        [0.030, 0.045, 0.050, 0.018, 0.010],  # water (clear lake / river)
        [0.032, 0.065, 0.032, 0.400, 0.190],  # forest, broadleaf (conifer: CONIFER)
        [0.040, 0.080, 0.040, 0.360, 0.210],  # meadow / grassland
        [0.030, 0.075, 0.032, 0.440, 0.190],  # green crop (maize, beet)
        [0.110, 0.100, 0.065, 0.300, 0.300],  # ripening cereal
        [0.140, 0.110, 0.080, 0.210, 0.310],  # bare soil
        [0.170, 0.160, 0.140, 0.230, 0.270],  # rock / bare ground
        [0.140, 0.130, 0.120, 0.190, 0.250],  # built-up (roofs, concrete)
        [0.090, 0.085, 0.080, 0.120, 0.150],  # road (asphalt)
    ],
    dtype=np.float32,
)
#: Surface reflectance per class, snow season without snow (winter phenology).
WINTER = np.array(
    [
        [0.028, 0.040, 0.045, 0.016, 0.009],  # water
        [0.060, 0.060, 0.045, 0.170, 0.200],  # forest, broadleaf leafless
        [0.070, 0.080, 0.055, 0.220, 0.250],  # dormant grass
        [0.045, 0.070, 0.040, 0.280, 0.210],  # winter crop (sown cereal)
        [0.120, 0.105, 0.075, 0.200, 0.290],  # stubble
        [0.100, 0.080, 0.060, 0.160, 0.240],  # wet ploughed soil
        [0.160, 0.150, 0.135, 0.220, 0.270],  # rock
        [0.140, 0.130, 0.120, 0.190, 0.250],  # built-up
        [0.090, 0.085, 0.080, 0.120, 0.150],  # road
    ],
    dtype=np.float32,
)
CONIFER_SUMMER = np.array([0.022, 0.040, 0.022, 0.240, 0.110], dtype=np.float32)
CONIFER_WINTER = np.array([0.020, 0.035, 0.020, 0.200, 0.100], dtype=np.float32)
TILE_ROOF = np.array([0.220, 0.110, 0.080, 0.260, 0.320], dtype=np.float32)
SNOW = np.array([0.86, 0.88, 0.91, 0.78, 0.06], dtype=np.float32)
CLOUD = np.array([0.68, 0.70, 0.72, 0.66, 0.57], dtype=np.float32)
#: Relative texture amplitude per class.
TEXTURE = np.array([0.05, 0.20, 0.08, 0.05, 0.06, 0.10, 0.15, 0.15, 0.05], dtype=np.float32)
#: Classes whose NIR / red respond to the vegetation-vigour field.
VEGETATION_CLASSES = (FOREST, MEADOW, CROP, CEREAL)

# Random stream keys, one per model component.
_TERRAIN, _RIVER, _LAKES, _FOREST, _FIELDS, _TOWN, _ROADS, _TEXTURE, _SNOW, _CLOUDS, _NOISE, _EDGE, _DATE = range(1, 14)
_SEASON_KEY = {"snowfree": 0, "snow": 1}


# --------------------------------------------------------------------------- helpers


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


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, *keys]))


def _fbm(rng: np.random.Generator, shape, beta: float, outer_px: float, inner_px: float = 0.0) -> np.ndarray:
    """Fractal (power-law) noise, zero mean and unit variance, float32.

    Power spectrum ``(k^2 + k0^2)^(-beta/2)`` with ``k0 = 1/outer_px`` and a
    Gaussian roll-off below ``inner_px``. Made on a padded canvas, so the
    field does not wrap around at the edges.
    """
    h, w = shape
    pad = int(min(max(h, w) * 0.25, outer_px)) + 8
    H, W = scipy.fft.next_fast_len(h + pad, real=True), scipy.fft.next_fast_len(w + pad, real=True)
    spec = scipy.fft.rfft2(rng.standard_normal((H, W), dtype=np.float32))
    ky = np.fft.fftfreq(H).astype(np.float32)[:, None]
    kx = np.fft.rfftfreq(W).astype(np.float32)[None, :]
    k2 = kx * kx + ky * ky
    amp = (k2 + np.float32(1.0 / outer_px) ** 2) ** np.float32(-beta / 4.0)
    if inner_px > 0:
        amp *= np.exp(-k2 * np.float32((math.pi * inner_px) ** 2))
    amp[0, 0] = 0.0
    out = scipy.fft.irfft2(spec * amp, s=(H, W))[:h, :w]
    out = out - out.mean()
    std = out.std()
    return (out / std if std > 0 else out).astype(np.float32)


def _smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _sigmoid(x):
    return (1.0 / (1.0 + np.exp(-np.clip(x, -30, 30)))).astype(np.float32)


def _rasterize_path(points: np.ndarray, shape) -> np.ndarray:
    """Pixels touched by a densely sampled path of (row, col) points."""
    mask = np.zeros(shape, dtype=bool)
    if len(points) == 0:
        return mask
    seg = np.diff(points, axis=0)
    steps = np.maximum(1, np.ceil(np.hypot(seg[:, 0], seg[:, 1]) * 2).astype(int))
    t = np.concatenate([np.arange(s) / s for s in steps])
    idx = np.repeat(np.arange(len(seg)), steps)
    dense = points[idx] + seg[idx] * t[:, None]
    dense = np.vstack([dense, points[-1:]])
    rc = np.rint(dense).astype(np.int64)
    ok = (rc[:, 0] >= 0) & (rc[:, 0] < shape[0]) & (rc[:, 1] >= 0) & (rc[:, 1] < shape[1])
    mask[rc[ok, 0], rc[ok, 1]] = True
    return mask


def _meander(rng, start, end, wavelength_px, amplitude_px, step=2.0) -> np.ndarray:
    """A meandering path from ``start`` to ``end`` ((row, col)): sum of sines plus a smoothed walk."""
    start, end = np.asarray(start, float), np.asarray(end, float)
    length = float(np.hypot(*(end - start)))
    n = max(2, int(length / step))
    t = np.linspace(0.0, 1.0, n)
    s = t * length
    along = (end - start) / max(length, 1e-9)
    normal = np.array([-along[1], along[0]])
    offset = np.zeros(n)
    for k in range(3):
        lam = wavelength_px * rng.uniform(0.5, 1.5) / (k + 1)
        offset += amplitude_px / (k + 1) * rng.uniform(0.5, 1.0) * np.sin(2 * np.pi * s / lam + rng.uniform(0, 2 * np.pi))
    walk = np.cumsum(rng.standard_normal(n)) * step * 0.6
    walk = ndimage.gaussian_filter1d(walk - np.linspace(walk[0], walk[-1], n), sigma=max(1.0, 25 / step))
    offset += walk
    offset *= np.sin(np.pi * t) ** 0.25  # pinned at both ends
    return start + s[:, None] * along + offset[:, None] * normal


def _edge_point(rng, n, side=None) -> np.ndarray:
    """A point just outside the scene edge (row, col)."""
    side = rng.integers(4) if side is None else side
    u = rng.uniform(0.1, 0.9) * n
    return np.array([[-2.0, u], [u, n + 1.0], [n + 1.0, u], [u, -2.0]][side])


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


# --------------------------------------------------------------------------- geometry


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


# --------------------------------------------------------------------------- landscape


@dataclass
class Landscape:
    """Everything that does not change between acquisitions."""

    elevation: np.ndarray  # metres
    slope: np.ndarray  # degrees
    dzdx: np.ndarray  # east gradient (m/m)
    dzdy: np.ndarray  # north gradient (m/m)
    cover: np.ndarray  # uint8 LAND_COVER index
    conifer: np.ndarray  # forest conifer share 0..1
    lake: np.ndarray  # lake id per pixel (0: not a lake)
    lake_levels: dict  # lake id -> water level (m)
    parcel_var: np.ndarray  # per-parcel / per-block brightness offset
    tile: np.ndarray  # share of tiled (red) roof in built-up pixels
    roof_snow: np.ndarray  # share of snow a roof keeps
    info: dict = field(default_factory=dict)


def _terrain(n: int, seed: int):
    rng = _rng(seed, _TERRAIN)
    extent_km = n * PIXEL_M / 1000.0
    relief = float(np.clip(950.0 * math.sqrt(extent_km / 3.84), 450.0, 1500.0))
    zmin = rng.uniform(360.0, 480.0)
    gamma = rng.uniform(0.8, 1.1)
    z = _fbm(rng, (n, n), beta=4.5, outer_px=800.0, inner_px=1.5)
    z += 0.01 * _fbm(rng, (n, n), beta=3.0, outer_px=20.0, inner_px=0.7)  # small-scale roughness

    # River: enters at one edge, leaves at another (not the same), carves a valley.
    rr = _rng(seed, _RIVER)
    side_in = int(rr.integers(4))
    side_out = int((side_in + rr.choice([1, 2, 2, 3])) % 4)
    start, end = _edge_point(rr, n, side_in), _edge_point(rr, n, side_out)
    path = _meander(rr, start, end, wavelength_px=rr.uniform(60, 140), amplitude_px=rr.uniform(8, 20))
    river_line = _rasterize_path(path, (n, n))
    dist = ndimage.distance_transform_edt(~river_line).astype(np.float32)
    width = rr.uniform(2.0, 5.0)
    river = dist <= width / 2.0
    # A flat valley floor around the river, blending back into the terrain on its sides.
    floor_px, side_px = rr.uniform(8.0, 22.0), rr.uniform(60.0, 120.0)
    floor = float(np.quantile(z, 0.02)) + 0.08 * _fbm(rr, (n, n), beta=4.0, outer_px=200.0)
    w = 1.0 - _smoothstep((dist - floor_px) / side_px)
    z = w * np.minimum(floor, z) + (1.0 - w) * z - 0.05 * np.exp(-dist / 4.0)

    lo, hi = np.percentile(z, [0.5, 99.5])
    u = np.clip((z - lo) / (hi - lo), 0.0, 1.05)
    elev = (zmin + relief * u**gamma).astype(np.float32)
    # The river bed lies a little below its banks.
    elev = np.where(river, elev - 2.0, elev).astype(np.float32)
    info = {"relief_m": relief, "river_width_px": width}
    return elev, river, dist, path, info


def _gradients(elev):
    gy, gx = np.gradient(elev, PIXEL_M)
    dzdx = gx.astype(np.float32)  # east
    dzdy = (-gy).astype(np.float32)  # rows run south
    slope = np.degrees(np.arctan(np.hypot(dzdx, dzdy))).astype(np.float32)
    return dzdx, dzdy, slope


def _lakes(elev, river_dist, seed, n):
    """Fill 1-3 (more in large scenes) basins of the terrain with lakes; returns ids and levels."""
    rng = _rng(seed, _LAKES)
    area_km2 = (n * PIXEL_M / 1000.0) ** 2
    n_lakes = int(rng.integers(1, 3)) + int(rng.poisson(area_km2 / 20.0))
    smooth = ndimage.gaussian_filter(elev, 3.0)
    margin = max(4, n // 12)
    cand = (smooth == ndimage.minimum_filter(smooth, size=max(9, n // 10))) & (river_dist > 15)
    cand[:margin] = cand[-margin:] = False
    cand[:, :margin] = cand[:, -margin:] = False
    rows, cols = np.nonzero(cand)
    if len(rows) < n_lakes:  # add random low points away from the river
        ok = (river_dist > 15) & (smooth < np.percentile(smooth, 50))
        ok[:margin] = ok[-margin:] = False
        ok[:, :margin] = ok[:, -margin:] = False
        r2, c2 = np.nonzero(ok)
        if len(r2):
            pick = rng.choice(len(r2), size=min(len(r2), 4 * n_lakes), replace=False)
            rows, cols = np.concatenate([rows, r2[pick]]), np.concatenate([cols, c2[pick]])
    lake = np.zeros(elev.shape, dtype=np.int32)
    levels = {}
    if len(rows) == 0:
        return elev, lake, levels
    order = rng.permutation(len(rows))
    shore_noise = _fbm(rng, elev.shape, beta=3.0, outer_px=15.0, inner_px=1.0)
    elev = elev.copy()
    lake_id = 0
    for k in order:
        if lake_id >= n_lakes:
            break
        r, c = int(rows[k]), int(cols[k])
        if lake[max(0, r - 5) : r + 6, max(0, c - 5) : c + 6].any():
            continue
        radius = rng.uniform(5.0, 14.0) * max(1.0, math.sqrt(n / 384.0)) ** 0.5
        depth = rng.uniform(15.0, 35.0)
        win = int(radius * 3) + 2
        r0, r1, c0, c1 = max(0, r - win), min(n, r + win + 1), max(0, c - win), min(n, c + win + 1)
        rr, cc = np.mgrid[r0:r1, c0:c1]
        d2 = ((rr - r) ** 2 + (cc - c) ** 2) / radius**2
        bowl = smooth[r0:r1, c0:c1] - depth * np.exp(-d2) + 3.0 * shore_noise[r0:r1, c0:c1]
        level = float(smooth[r, c]) - 0.35 * depth
        for _ in range(6):
            labels, _n = ndimage.label(bowl <= level)
            region = labels == labels[r - r0, c - c0]
            touches = region[0].any() or region[-1].any() or region[:, 0].any() or region[:, -1].any()
            if labels[r - r0, c - c0] and not touches:
                break
            level -= 0.15 * depth
        else:
            continue
        if not labels[r - r0, c - c0]:
            continue
        lake_id += 1
        sub = lake[r0:r1, c0:c1]
        sub[region & (sub == 0)] = lake_id
        e = elev[r0:r1, c0:c1]
        e[region] = level
        levels[lake_id] = level
    return elev, lake, levels


def _fields(n, seed, elev, slope, zmin, relief):
    """Rotated grid of rectangular parcels on low, gentle land.

    Returns (field mask, crop class per pixel, per-parcel brightness offset, elevation limit).
    """
    rng = _rng(seed, _FIELDS)
    theta = rng.uniform(-0.5, 0.5)
    rr, cc = np.mgrid[0:n, 0:n].astype(np.float32)
    u = cc * math.cos(theta) + rr * math.sin(theta)
    v = -cc * math.sin(theta) + rr * math.cos(theta)
    vmin, vmax = float(v.min()), float(v.max())
    heights = rng.uniform(12.0, 30.0, size=int((vmax - vmin) / 12.0) + 2)
    edges = vmin + np.concatenate([[0.0], np.cumsum(heights)])
    row = np.clip(np.searchsorted(edges, v, side="right") - 1, 0, len(heights) - 1)
    widths = rng.uniform(15.0, 45.0, size=len(heights)).astype(np.float32)
    phases = rng.uniform(0.0, 45.0, size=len(heights)).astype(np.float32)
    umin = float(u.min())
    col = np.floor((u - umin + phases[row]) / widths[row]).astype(np.int64)
    ncol = int(col.max()) + 1
    parcel = row.astype(np.int64) * ncol + col
    npar = len(heights) * ncol
    count = np.bincount(parcel.ravel(), minlength=npar)
    denom = np.maximum(count, 1)
    mean_elev = np.where(count > 0, np.bincount(parcel.ravel(), weights=elev.ravel(), minlength=npar) / denom, np.inf)
    mean_slope = np.where(count > 0, np.bincount(parcel.ravel(), weights=slope.ravel(), minlength=npar) / denom, np.inf)
    limit = zmin + relief * rng.uniform(0.25, 0.35)
    eligible_parcel = (mean_elev < limit) & (mean_slope < 14.0)
    eligible_parcel &= rng.random(npar) < 0.9  # a few parcels stay meadow / scrub
    crops = rng.choice(np.array([CROP, CEREAL, SOIL, MEADOW], dtype=np.uint8), size=npar, p=[0.35, 0.25, 0.2, 0.2])
    offset = rng.normal(0.0, 0.06, size=npar).astype(np.float32)
    # One-pixel boundaries (tracks, hedges) between parcels stay meadow.
    boundary = np.zeros((n, n), dtype=bool)
    boundary[1:] |= parcel[1:] != parcel[:-1]
    boundary[:, 1:] |= parcel[:, 1:] != parcel[:, :-1]
    boundary &= rng.random((n, n)) < 0.7
    return eligible_parcel[parcel] & ~boundary, crops[parcel], offset[parcel], float(limit)


def _towns(n, seed, elev, slope, river_dist, water, n_towns):
    """Small towns: grids of built-up blocks with 10 m streets and gardens.

    Each town sits on flat low land (the first one near the river), away from
    the others. Returns (urban, street, block offset, tile share, roof snow
    share, centres).
    """
    urban = np.zeros((n, n), dtype=bool)
    street = np.zeros((n, n), dtype=bool)
    off = np.zeros((n, n), dtype=np.float32)
    tile = np.zeros((n, n), dtype=np.float32)
    roof = np.ones((n, n), dtype=np.float32)
    centres = []
    zs = ndimage.gaussian_filter(elev, 4.0)
    ss = ndimage.gaussian_filter(slope, 4.0)
    zn = (zs - zs.min()) / max(1e-6, float(np.ptp(zs)))
    dry = ~ndimage.binary_dilation(water, iterations=3) & (river_dist > 5)
    taken = np.zeros((n, n), dtype=bool)
    for k in range(n_towns):
        rng = _rng(seed, _TOWN, k)
        half = int(np.clip(0.08 * n, 8, 40) * rng.uniform(0.8, 1.2))
        ok = dry & ~taken
        if k == 0:
            ok &= river_dist < max(30, n / 5)
        m = min(half + 2, n // 3)
        ok[:m] = ok[-m:] = False
        ok[:, :m] = ok[:, -m:] = False
        if not ok.any():
            continue
        score = np.where(ok, zn + 1.5 * ss / 30.0 + 0.3 * rng.random((n, n), dtype=np.float32), np.inf)
        r0, c0 = (int(v) for v in np.unravel_index(int(np.argmin(score)), score.shape))
        centres.append((r0, c0))
        # Work in a window around the centre.
        win = int(half * 1.5) + 2
        wr0, wr1, wc0, wc1 = max(0, r0 - win), min(n, r0 + win + 1), max(0, c0 - win), min(n, c0 + win + 1)
        taken[max(0, r0 - 3 * win) : r0 + 3 * win + 1, max(0, c0 - 3 * win) : c0 + 3 * win + 1] = True
        rr, cc = np.mgrid[wr0:wr1, wc0:wc1]
        br, bc = int(rng.integers(7, 12)), int(rng.integers(7, 12))
        nb = 2 * (win // 7 + 2)
        block = np.clip((rr - r0) // br + nb // 2, 0, nb - 1) * nb + np.clip((cc - c0) // bc + nb // 2, 0, nb - 1)
        # Footprint: a noisy ellipse around the centre, denser in the middle.
        ang = np.arctan2(rr - r0, cc - c0)
        rad = half * (1.0 + 0.25 * np.sin(3 * ang + rng.uniform(0, 6.3)) + 0.15 * np.sin(5 * ang + rng.uniform(0, 6.3)))
        dn = np.hypot(rr - r0, (cc - c0) * rng.uniform(0.8, 1.2)) / rad
        keep = rng.random(nb * nb)[block] > 0.15 + 0.6 * np.clip(dn, 0, 1) ** 2
        grid = (((rr - r0) % br) == 0) | (((cc - c0) % bc) == 0)
        wet = water[wr0:wr1, wc0:wc1]
        built = (dn < 1.0) & keep & ~grid & ~wet & (slope[wr0:wr1, wc0:wc1] < 20)
        streets = grid & ndimage.binary_dilation(built, iterations=1) & (dn < 1.0) & ~wet
        garden = rng.random(built.shape) < (rng.random(nb * nb) * 0.35)[block]
        built &= ~garden
        urban[wr0:wr1, wc0:wc1] |= built
        street[wr0:wr1, wc0:wc1] |= streets
        sub = (slice(wr0, wr1), slice(wc0, wc1))
        off[sub] = np.where(built, rng.normal(0.0, 0.12, size=nb * nb).astype(np.float32)[block], off[sub])
        tiles = np.where(rng.random(nb * nb) < 0.45, rng.uniform(0.4, 0.9, nb * nb), 0.0).astype(np.float32)
        tile[sub] = np.where(built, tiles[block], tile[sub])
        roof[sub] = np.where(built, rng.uniform(0.3, 1.0, size=nb * nb).astype(np.float32)[block], roof[sub])
    return urban, street & ~urban, off, tile, roof, centres


def build_landscape(n: int, seed: int) -> Landscape:
    """Terrain and land cover of one area."""
    elev, river, river_dist, river_path, info = _terrain(n, seed)
    zmin, relief = float(elev.min()), info["relief_m"]
    elev, lake, levels = _lakes(elev, river_dist, seed, n)
    dzdx, dzdy, slope = _gradients(elev)
    water = river | (lake > 0)

    cover = np.full((n, n), MEADOW, dtype=np.uint8)
    rock, forest, conifer, treeline = _rock_and_forest(n, seed, elev, slope, zmin, relief)
    cover[forest] = FOREST
    cover[rock] = ROCK
    # Fields on low gentle land.
    field_ok, crops, parcel_off, field_limit = _fields(n, seed, elev, slope, zmin, relief)
    field = field_ok & ~rock
    cover[field] = crops[field]
    parcel_var = np.where(field, parcel_off, 0.0).astype(np.float32)

    # Towns (about one per 40 km2) and roads.
    n_towns = 1 + int((n * PIXEL_M / 1000.0) ** 2 // 40)
    urban, street, block_off, tile, roof_snow, towns = _towns(n, seed, elev, slope, river_dist, water, n_towns)
    cover[urban] = URBAN
    cover[street] = ROAD
    parcel_var = np.where(urban, block_off, parcel_var)
    roads = _roads(n, seed, river_path, towns)
    cover[roads] = ROAD
    parcel_var = np.where(roads, 0.0, parcel_var)
    # Water last; roads cross the river on bridges.
    cover[river & ~roads] = WATER
    cover[lake > 0] = WATER
    lake = np.where(cover == WATER, lake, 0)

    info.update(
        treeline_m=treeline,
        field_limit_m=field_limit,
        n_lakes=len(levels),
        lake_levels_m=[round(float(v), 1) for v in levels.values()],
        towns=[list(t) for t in towns],
    )
    return Landscape(
        elevation=elev,
        slope=slope,
        dzdx=dzdx,
        dzdy=dzdy,
        cover=cover,
        conifer=conifer.astype(np.float32),
        lake=lake,
        lake_levels=levels,
        parcel_var=parcel_var,
        tile=tile,
        roof_snow=roof_snow,
        info=info,
    )


def _rock_and_forest(n, seed, elev, slope, zmin, relief):
    """Rock above the tree line and on cliffs; clustered forest below it, more on slopes and at mid
    elevations. Returns (rock mask, forest mask, conifer share, tree line in m)."""
    rf = _rng(seed, _FOREST)
    treeline = float(np.percentile(elev, rf.uniform(86.0, 92.0)))
    tl_noise = _fbm(rf, (n, n), beta=3.0, outer_px=40.0, inner_px=1.0)
    rock = (elev > treeline + 25.0 * tl_noise) | (slope > 50.0)
    cluster = _fbm(rf, (n, n), beta=3.0, outer_px=60.0, inner_px=1.2)
    zn = (elev - zmin) / relief
    score = cluster + 0.05 * np.minimum(slope, 35.0) - 1.2 * np.clip(zn - 0.75, 0, None) * 4
    forest_share = rf.uniform(0.32, 0.48)
    forest = score > np.percentile(score, 100.0 * (1.0 - forest_share))
    conifer = np.clip(0.5 + 0.5 * _fbm(rf, (n, n), beta=3.0, outer_px=80.0) + 0.8 * (zn - 0.4), 0.0, 1.0)
    return rock, forest, conifer, treeline


def _roads(n, seed, river_path, towns) -> np.ndarray:
    """Roads: one along the valley, offset from the river, and 2-3 from each town to the scene edge."""
    ro = _rng(seed, _ROADS)
    roads = np.zeros((n, n), dtype=bool)
    seg = np.diff(river_path, axis=0)
    nrm = np.stack([-seg[:, 1], seg[:, 0]], axis=1) / np.maximum(np.hypot(seg[:, 0], seg[:, 1]), 1e-9)[:, None]
    nrm = ndimage.gaussian_filter1d(nrm, 15, axis=0)
    nrm /= np.maximum(np.hypot(nrm[:, 0], nrm[:, 1]), 1e-9)[:, None]
    road_off = ro.choice([-1, 1]) * ro.uniform(6.0, 12.0)
    roads |= _rasterize_path(river_path[:-1] + road_off * nrm, (n, n))
    for centre in towns or [(n // 2, n // 2)]:
        for _ in range(int(ro.integers(2, 4))):
            p = _meander(ro, np.array(centre, float), _edge_point(ro, n), wavelength_px=ro.uniform(80, 200), amplitude_px=ro.uniform(3, 10))
            line = _rasterize_path(p, (n, n))
            if ro.random() < 0.5:  # main road, 2 px
                line = ndimage.binary_dilation(line, structure=np.ones((2, 2), bool))
            roads |= line
    return roads


# --------------------------------------------------------------------------- rendering


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


def snow_fraction(land: Landscape, params: dict, seed: int, sun_az: float) -> tuple[np.ndarray, dict, np.ndarray]:
    """Snow-season snow cover per pixel (0..1) and facts about it."""
    rng = _rng(seed, _SNOW)
    n = land.cover.shape[0]
    line = float(params["snow_line_m"]) + float(np.clip(rng.normal(0.0, 40.0), -80.0, 80.0))
    az = math.radians(sun_az)
    gnorm = np.maximum(np.hypot(land.dzdx, land.dzdy), 1e-6)
    # cos of the angle between the downslope direction and the direction to the sun:
    # +1 on slopes facing the sun, -1 on slopes facing away.
    facing = (-land.dzdx * math.sin(az) - land.dzdy * math.cos(az)) / gnorm
    facing *= np.clip(land.slope / 15.0, 0.0, 1.0)
    patch = _fbm(rng, (n, n), beta=3.0, outer_px=40.0, inner_px=1.0)
    local = line + 60.0 * facing + 50.0 * patch
    p = _sigmoid((land.elevation - local) / 25.0)
    cover = land.cover
    f = p.copy()
    # Snow slides off cliffs.
    f *= np.clip((55.0 - land.slope) / 15.0, 0.25, 1.0)
    gap = np.clip(0.45 + 0.35 * (1.0 - land.conifer) + 0.1 * _fbm(rng, (n, n), beta=2.0, outer_px=6.0), 0.3, 0.9)
    f = np.where(cover == FOREST, p * gap, f)
    f = np.where(cover == ROAD, p * 0.3, f)
    f = np.where(cover == URBAN, p * land.roof_snow, f)
    frozen_ids = [k for k, lv in land.lake_levels.items() if lv > line + 80.0]
    frozen = np.isin(land.lake, frozen_ids) & (land.lake > 0)
    f = np.where(cover == WATER, 0.0, f)
    f = np.where(frozen, 0.95 * np.maximum(p, 0.9), f)
    info = {"snow_line_m": round(line, 1), "frozen_lakes": len(frozen_ids)}
    return f.astype(np.float32), info, frozen


def surface(land: Landscape, season: str, seed: int) -> list[np.ndarray]:
    """Noise-free, unilluminated surface reflectance per band (snow not yet mixed in)."""
    table = SUMMER if season == "snowfree" else WINTER
    conifer_spec = CONIFER_SUMMER if season == "snowfree" else CONIFER_WINTER
    rng = _rng(seed, _TEXTURE)  # same texture in both seasons: it belongs to the surface
    n = land.cover.shape[0]
    cover = land.cover
    smooth = _fbm(rng, (n, n), beta=2.5, outer_px=20.0, inner_px=0.7)
    white = rng.standard_normal((n, n), dtype=np.float32)
    vigour = _fbm(rng, (n, n), beta=3.0, outer_px=30.0, inner_px=1.0)
    amp = TEXTURE[cover]
    crowns = cover == FOREST
    tex = np.where(crowns, 0.4 * smooth + 0.9 * white, 0.7 * smooth + 0.3 * white)
    bright = np.clip(1.0 + amp * tex + land.parcel_var, 0.3, 2.0)
    veg = np.isin(cover, VEGETATION_CLASSES)
    vig = np.where(veg, 0.12 * vigour, 0.0)
    if season == "snow":
        vig *= 0.5
    # band-specific vigour response: B04 down, B03 slightly down, B02 down, B08 up, B11 down
    response = (-1.0, -0.3, -0.8, 1.0, -0.5)
    out = []
    for b in range(len(REFLECTANCE_BANDS)):
        base = table[:, b][cover]
        base = np.where(crowns, land.conifer * conifer_spec[b] + (1.0 - land.conifer) * base, base)
        base = np.where(cover == URBAN, (1.0 - land.tile) * base + land.tile * TILE_ROOF[b], base)
        out.append((base * bright * (1.0 + response[b] * vig)).astype(np.float32))
    return out


def mix_snow(surf: list[np.ndarray], fsnow: np.ndarray, seed: int) -> list[np.ndarray]:
    """Linear mixture of each pixel's surface and snow of varying age/grain size."""
    rng = _rng(seed, _SNOW, 1)
    n = fsnow.shape[0]
    age = np.clip(0.5 + 0.3 * _fbm(rng, (n, n), beta=2.5, outer_px=30.0, inner_px=0.8), 0.0, 1.0)
    grain = 0.015 * rng.standard_normal((n, n), dtype=np.float32)
    out = []
    for b, s in enumerate(surf):
        if REFLECTANCE_BANDS[b] == "B11":
            snow = SNOW[b] * (0.6 + 0.9 * age)  # older, coarser snow: 0.035-0.09
        elif REFLECTANCE_BANDS[b] == "B08":
            snow = SNOW[b] * (1.02 - 0.12 * age) + grain
        else:
            snow = SNOW[b] * (1.03 - 0.1 * age) + grain
        out.append(((1.0 - fsnow) * s + fsnow * snow).astype(np.float32))
    return out


@dataclass
class Clouds:
    opacity: np.ndarray  # 0..1
    shadow: np.ndarray  # 0..1, opacity displaced away from the sun
    brightness: np.ndarray  # cloud-top brightness factor
    target_cover: float
    height_m: float
    offset_px: tuple


def clouds(n: int, seed: int, season: str, params: dict, sun_el: float, sun_az: float) -> Clouds | None:
    """Cloud opacity and shadow fields of one scene, or None for a clear scene."""
    rng = _rng(seed, _CLOUDS, _SEASON_KEY[season])
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
    big = _fbm(rng, shape, beta=3.3, outer_px=150.0, inner_px=2.0)
    big += 3.0 * _fbm(rng, shape, beta=4.5, outer_px=600.0)
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
    rng = _rng(seed, _EDGE, _SEASON_KEY[season])
    if rng.random() >= 1.0 / 3.0:
        return None
    w_max = rng.uniform(0.02, 0.07) * n
    rows = np.arange(n, dtype=np.float32)[:, None]
    width = w_max * (rows / (n - 1) if rng.random() < 0.5 else 1.0 - rows / (n - 1))
    cols = np.arange(n, dtype=np.float32)[None, :]
    if rng.random() < 0.5:
        return cols < width
    return cols > (n - 1) - width


def render(
    surf: list[np.ndarray],
    land: Landscape,
    fsnow: np.ndarray | None,
    frozen: np.ndarray | None,
    illum: np.ndarray,
    cloud: Clouds | None,
    nodata: np.ndarray | None,
    noise_rng: np.random.Generator,
):
    """Reflectance bands (list), SCL and dataMask of one acquisition."""
    n = land.cover.shape[0]
    cover = land.cover
    # Noise-free at-sensor reflectance: surface x hillshade, then cloud shadow and cloud.
    clean = []
    for b, s in enumerate(surf):
        refl = s * illum
        if cloud is not None:
            shade = 1.0 - 0.6 * np.clip(cloud.shadow / 0.6, 0.0, 1.0)
            refl = cloud.opacity * (CLOUD[b] * cloud.brightness) + (1.0 - cloud.opacity) * refl * shade
        clean.append(refl.astype(np.float32))
    # SCL from the surface and the noise-free pixels, with margins so that sensor noise
    # cannot move a snow pixel below the NDSI 0.4 / NIR 0.11 snow test.
    b04, b08 = surf[0], surf[3]
    ndvi = (b08 - b04) / np.maximum(b08 + b04, 1e-6)
    ndsi = (clean[1] - clean[4]) / np.maximum(clean[1] + clean[4], 1e-6)
    water = cover == WATER
    if frozen is not None:
        water &= ~frozen
    scl = np.where(ndvi > 0.35, SCL_VEGETATION, SCL_NOT_VEGETATED).astype(np.uint8)
    scl[(illum < 0.38) & ~water] = SCL_DARK
    scl[water] = SCL_WATER
    if fsnow is not None:
        scl[(fsnow >= 0.5) & (ndsi > 0.45) & (clean[3] > 0.13)] = SCL_SNOW
    if cloud is not None:
        a = cloud.opacity
        scl[(cloud.shadow >= 0.5) & (a < 0.15)] = SCL_CLOUD_SHADOW
        scl[a >= 0.15] = SCL_CIRRUS
        scl[a >= 0.65] = SCL_CLOUD_MEDIUM
        scl[a >= 0.85] = SCL_CLOUD_HIGH
    out = []
    for refl in clean:
        refl = refl + (0.002 + 0.01 * refl) * noise_rng.standard_normal((n, n), dtype=np.float32)
        out.append(np.maximum(refl, 1e-4).astype(np.float32))
    mask = np.ones((n, n), dtype=np.uint8)
    if nodata is not None:
        mask[nodata] = 0
        scl[nodata] = SCL_NODATA
        for r in out:
            r[nodata] = 0.0
    return out, scl, mask


def acquisition_dates(lat: float, seed: int) -> dict[str, dt.date]:
    """Invented but plausible dates: mid-summer and mid-winter of the area's hemisphere."""
    rng = _rng(seed, _DATE)
    summer = dt.date(2021, 6, 25) + dt.timedelta(days=int(rng.integers(0, 50)))
    winter = dt.date(2021, 1, 8) + dt.timedelta(days=int(rng.integers(0, 40)))
    if lat < 0:
        summer, winter = winter, summer
    return {"snowfree": summer, "snow": winter}


# --------------------------------------------------------------------------- entry point


def simulate_area(aoi: str, params: dict, snowfree_path, snow_path, truth_path, landcover_path=None) -> dict:
    """Simulate one area: write the snow-free, snow-season and truth scenes (and, with
    ``landcover_path``, the land-cover labels of :mod:`deepsnow.data.landcover`); return a summary.

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


@dataclass
class SeasonStates:
    """What differs between the two seasons of one area, by season name."""

    dates: dict  # season -> dt.date
    suns: dict  # season -> (elevation, azimuth) in degrees
    illum: dict  # season -> hillshade factor
    surfaces: dict  # season -> noise-free surface bands (snow mixed into the snow season's)
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


#: Scene -> (season, acquired, noise): an acquired scene may have clouds and a nodata wedge; the
#: truth is the snow-season surface under the snow-free acquisition's sensor noise (module docstring).
SCENES = {
    "snowfree": ("snowfree", True, "snowfree"),
    "snow": ("snow", True, "snow"),
    "truth": ("snow", False, "snowfree"),
}


def _write_acquisition(name, path, land, seasons: SeasonStates, sim, seed, crs, transform, base_tags) -> dict:
    """Render and write one scene of ``SCENES``; its SCL statistics, date, sun and cloudiness."""
    season, acquired, noise = SCENES[name]
    n = land.cover.shape[0]
    sun_el, sun_az = seasons.suns[season]
    cloud = clouds(n, seed, season, sim, sun_el, sun_az) if acquired else None
    wedge = nodata_wedge(n, seed, season) if acquired else None
    fs, fz = (seasons.fsnow, seasons.frozen) if season == "snow" else (None, None)
    refl, scl, mask = render(
        seasons.surfaces[season], land, fs, fz, seasons.illum[season], cloud, wedge,
        _rng(seed, _NOISE, _SEASON_KEY[noise]),
    )
    date = seasons.dates[season].isoformat()
    tags = dict(base_tags, DEEPSNOW_SEASON=season, DEEPSNOW_DATE=date)
    if name == "truth":
        tags["DEEPSNOW_TRUTH"] = 1
    write_scene(path, dict(zip(REFLECTANCE_BANDS, refl)), scl, mask, crs, transform, tags=tags)
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
