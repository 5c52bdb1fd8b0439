"""Land cover of a simulated area on its terrain: forest and rock, fields, towns, roads, water.

:func:`build_landscape` makes the :class:`Landscape`, everything about an area that does
not change between its acquisitions (docs/simulator.md, "Terrain" and "Land cover").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from deepsnow.data.simulator.geometry import PIXEL_M
from deepsnow.data.simulator.noise import Stream, fbm, stream_rng
from deepsnow.data.simulator.spectra import CEREAL, CROP, FOREST, MEADOW, ROAD, ROCK, SOIL, URBAN, WATER
from deepsnow.data.simulator.terrain import build_terrain, edge_point, fill_lakes, gradients, meander, rasterize_path


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


def build_landscape(n: int, seed: int) -> Landscape:
    """Terrain and land cover of one area."""
    elev, river, river_dist, river_path, info = build_terrain(n, seed)
    zmin, relief = float(elev.min()), info["relief_m"]
    elev, lake, levels = fill_lakes(elev, river_dist, seed, n)
    dzdx, dzdy, slope = gradients(elev)
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
    rf = stream_rng(seed, Stream.FOREST)
    treeline = float(np.percentile(elev, rf.uniform(86.0, 92.0)))
    tl_noise = fbm(rf, (n, n), beta=3.0, outer_px=40.0, inner_px=1.0)
    rock = (elev > treeline + 25.0 * tl_noise) | (slope > 50.0)
    cluster = fbm(rf, (n, n), beta=3.0, outer_px=60.0, inner_px=1.2)
    zn = (elev - zmin) / relief
    score = cluster + 0.05 * np.minimum(slope, 35.0) - 1.2 * np.clip(zn - 0.75, 0, None) * 4
    forest_share = rf.uniform(0.32, 0.48)
    forest = score > np.percentile(score, 100.0 * (1.0 - forest_share))
    conifer = np.clip(0.5 + 0.5 * fbm(rf, (n, n), beta=3.0, outer_px=80.0) + 0.8 * (zn - 0.4), 0.0, 1.0)
    return rock, forest, conifer, treeline


def _fields(n, seed, elev, slope, zmin, relief):
    """Rotated grid of rectangular parcels on low, gentle land.

    Returns (field mask, crop class per pixel, per-parcel brightness offset, elevation limit).
    """
    rng = stream_rng(seed, Stream.FIELDS)
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
        rng = stream_rng(seed, Stream.TOWN, k)
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


def _roads(n, seed, river_path, towns) -> np.ndarray:
    """Roads: one along the valley, offset from the river, and 2-3 from each town to the scene edge."""
    ro = stream_rng(seed, Stream.ROADS)
    roads = np.zeros((n, n), dtype=bool)
    seg = np.diff(river_path, axis=0)
    nrm = np.stack([-seg[:, 1], seg[:, 0]], axis=1) / np.maximum(np.hypot(seg[:, 0], seg[:, 1]), 1e-9)[:, None]
    nrm = ndimage.gaussian_filter1d(nrm, 15, axis=0)
    nrm /= np.maximum(np.hypot(nrm[:, 0], nrm[:, 1]), 1e-9)[:, None]
    road_off = ro.choice([-1, 1]) * ro.uniform(6.0, 12.0)
    roads |= rasterize_path(river_path[:-1] + road_off * nrm, (n, n))
    for centre in towns or [(n // 2, n // 2)]:
        for _ in range(int(ro.integers(2, 4))):
            p = meander(ro, np.array(centre, float), edge_point(ro, n), wavelength_px=ro.uniform(80, 200), amplitude_px=ro.uniform(3, 10))
            line = rasterize_path(p, (n, n))
            if ro.random() < 0.5:  # main road, 2 px
                line = ndimage.binary_dilation(line, structure=np.ones((2, 2), bool))
            roads |= line
    return roads
