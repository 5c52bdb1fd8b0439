"""Terrain of a simulated area: fractal relief, a meandering river in a flat valley floor, lakes.

Also the path primitives (a meander, its rasterisation, a point beyond the scene edge)
that the river and the roads (:mod:`.landscape`) are drawn with.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from deepsnow.data.simulator.geometry import PIXEL_M
from deepsnow.data.simulator.noise import Stream, fbm, smoothstep, stream_rng


def rasterize_path(points: np.ndarray, shape) -> np.ndarray:
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


def meander(rng, start, end, wavelength_px, amplitude_px, step=2.0) -> np.ndarray:
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


def edge_point(rng, n, side=None) -> np.ndarray:
    """A point just outside the scene edge (row, col)."""
    side = rng.integers(4) if side is None else side
    u = rng.uniform(0.1, 0.9) * n
    return np.array([[-2.0, u], [u, n + 1.0], [n + 1.0, u], [u, -2.0]][side])


def build_terrain(n: int, seed: int):
    """Elevation (m), river mask, distance to the river (px), river path and facts of one area."""
    rng = stream_rng(seed, Stream.TERRAIN)
    extent_km = n * PIXEL_M / 1000.0
    relief = float(np.clip(950.0 * math.sqrt(extent_km / 3.84), 450.0, 1500.0))
    zmin = rng.uniform(360.0, 480.0)
    gamma = rng.uniform(0.8, 1.1)
    z = fbm(rng, (n, n), beta=4.5, outer_px=800.0, inner_px=1.5)
    z += 0.01 * fbm(rng, (n, n), beta=3.0, outer_px=20.0, inner_px=0.7)  # small-scale roughness

    # River: enters at one edge, leaves at another (not the same), carves a valley.
    rr = stream_rng(seed, Stream.RIVER)
    side_in = int(rr.integers(4))
    side_out = int((side_in + rr.choice([1, 2, 2, 3])) % 4)
    start, end = edge_point(rr, n, side_in), edge_point(rr, n, side_out)
    path = meander(rr, start, end, wavelength_px=rr.uniform(60, 140), amplitude_px=rr.uniform(8, 20))
    river_line = rasterize_path(path, (n, n))
    dist = ndimage.distance_transform_edt(~river_line).astype(np.float32)
    width = rr.uniform(2.0, 5.0)
    river = dist <= width / 2.0
    # A flat valley floor around the river, blending back into the terrain on its sides.
    floor_px, side_px = rr.uniform(8.0, 22.0), rr.uniform(60.0, 120.0)
    floor = float(np.quantile(z, 0.02)) + 0.08 * fbm(rr, (n, n), beta=4.0, outer_px=200.0)
    w = 1.0 - smoothstep((dist - floor_px) / side_px)
    z = w * np.minimum(floor, z) + (1.0 - w) * z - 0.05 * np.exp(-dist / 4.0)

    lo, hi = np.percentile(z, [0.5, 99.5])
    u = np.clip((z - lo) / (hi - lo), 0.0, 1.05)
    elev = (zmin + relief * u**gamma).astype(np.float32)
    # The river bed lies a little below its banks.
    elev = np.where(river, elev - 2.0, elev).astype(np.float32)
    info = {"relief_m": relief, "river_width_px": width}
    return elev, river, dist, path, info


def gradients(elev):
    """East and north gradients (m/m) and slope (degrees) of an elevation grid."""
    gy, gx = np.gradient(elev, PIXEL_M)
    dzdx = gx.astype(np.float32)  # east
    dzdy = (-gy).astype(np.float32)  # rows run south
    slope = np.degrees(np.arctan(np.hypot(dzdx, dzdy))).astype(np.float32)
    return dzdx, dzdy, slope


def fill_lakes(elev, river_dist, seed, n):
    """Fill 1-3 (more in large scenes) basins of the terrain with lakes; returns ids and levels."""
    rng = stream_rng(seed, Stream.LAKES)
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
    shore_noise = fbm(rng, elev.shape, beta=3.0, outer_px=15.0, inner_px=1.0)
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
