"""The areas of a run: names, bounding boxes, season windows, and where they come from.

An *area* is a name and a WGS84 bounding box, from ``data.aois`` or from the
GeoJSON file ``data.aoi_file`` (a FeatureCollection of polygons with a
``name`` property; the bounding box is the bounds of the geometry). Each area
gets a snow-free and a snow-season date window: ``data.seasons``, overridden
per area by an optional ``seasons`` key (in ``data.aois``) or property (in the
GeoJSON file). A simulator run's areas are named ``sim00``, ``sim01``, ...

The config is never rewritten: the areas of ``data.aoi_file`` are read again
wherever they are needed (:func:`areas_of`). Nothing here imports a download
client or the config module: the config check, the plan, the simulator and the
downloads all read areas from here.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepsnow import DeepsnowError

SEASONS = ("snowfree", "snow")
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")  # used with fullmatch: no trailing newline


def _bounds_of(coords) -> list[float]:
    """[min_x, min_y, max_x, max_y] of nested GeoJSON coordinates."""
    pts = np.asarray(list(_flatten(coords)), dtype=float)
    if pts.ndim != 2 or pts.shape[0] == 0 or pts.shape[1] < 2:
        raise ValueError("no coordinates")
    return [float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max())]


def _flatten(coords):
    if isinstance(coords, (list, tuple)) and coords and isinstance(coords[0], (int, float)):
        yield coords[:2]
        return
    for c in coords or ():
        yield from _flatten(c)


def load_aoi_file(path: str | os.PathLike) -> list[dict]:
    """Areas of a GeoJSON FeatureCollection: ``[{"name", "bbox"[, "seasons"]}]`` in file order.

    Every feature needs a Polygon or MultiPolygon geometry in WGS84 degrees and
    a ``name`` property (letters, digits, ``_``, ``-``); an optional ``seasons``
    property overrides ``data.seasons`` for that area.
    """
    path = Path(path)
    if not path.exists():
        raise DeepsnowError(f"key 'data.aoi_file': {path} not found")
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DeepsnowError(f"key 'data.aoi_file': {path} is not valid GeoJSON ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection" or not isinstance(doc.get("features"), list):
        raise DeepsnowError(f"key 'data.aoi_file': {path} must hold a GeoJSON FeatureCollection")
    areas = []
    for i, feat in enumerate(doc["features"]):
        where = f"{path}, feature {i}"
        props = (feat or {}).get("properties") or {}
        geom = (feat or {}).get("geometry") or {}
        name = props.get("name")
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            raise DeepsnowError(
                f"key 'data.aoi_file': {where}: property 'name' must be letters, digits, '_' or '-', got {name!r}"
            )
        if geom.get("type") not in ("Polygon", "MultiPolygon"):
            raise DeepsnowError(
                f"key 'data.aoi_file': {where} ({name}): expected a Polygon or MultiPolygon, got {geom.get('type')!r}"
            )
        try:
            bbox = _bounds_of(geom.get("coordinates"))
        except (ValueError, TypeError) as exc:
            raise DeepsnowError(f"key 'data.aoi_file': {where} ({name}): bad coordinates ({exc})") from exc
        area = {"name": name, "bbox": bbox}
        if props.get("seasons") is not None:
            area["seasons"] = props["seasons"]
        areas.append(area)
    if not areas:
        raise DeepsnowError(f"key 'data.aoi_file': {path} holds no features")
    return areas


def merge_aoi_file(data: dict) -> list[dict]:
    """``data.aois`` plus the areas of ``data.aoi_file`` (idempotent: an identical area is not added twice)."""
    aois = [dict(a) for a in data.get("aois") or []]
    path = data.get("aoi_file") or ""
    if not path:
        return aois
    by_name = {a["name"]: a for a in aois}
    for area in load_aoi_file(path):
        old = by_name.get(area["name"])
        if old is None:
            aois.append(area)
            by_name[area["name"]] = area
        elif [float(x) for x in old["bbox"]] != area["bbox"] or old.get("seasons") != area.get("seasons"):
            raise DeepsnowError(
                f"key 'data.aoi_file': area {area['name']!r} of {path} is also in data.aois with another "
                f"bbox or seasons ({old['bbox']} vs {area['bbox']})"
            )
    return aois


def check_window(window, key: str) -> list[str]:
    """Problems of one ``{start, end}`` date window (empty list when fine)."""
    try:
        start = dt.date.fromisoformat(window["start"])
        end = dt.date.fromisoformat(window["end"])
    except (KeyError, TypeError, ValueError) as exc:
        return [f"key '{key}': expected {{start: YYYY-MM-DD, end: YYYY-MM-DD}} with real dates, got {window!r} ({exc})"]
    if end < start:
        return [f"key '{key}': end {window['end']} is before start {window['start']}"]
    return []


@dataclass(frozen=True)
class Area:
    name: str
    bbox: tuple[float, float, float, float]
    windows: dict  # season -> (start, end) ISO dates

    def window(self, season: str) -> tuple[str, str]:
        return self.windows[season]


def find_area(data: dict, name: str) -> Area:
    """The area ``name`` of a validated ``data`` section, with its season windows."""
    aois = merge_aoi_file(data)
    match = [a for a in aois if a["name"] == name]
    if not match:
        raise DeepsnowError(f"--aoi {name!r}: not an area of data.aois/data.aoi_file ({[a['name'] for a in aois]})")
    a = match[0]
    x0, y0, x1, y1 = (float(v) for v in a["bbox"])
    if not (-180 <= x0 < x1 <= 180 and -90 <= y0 < y1 <= 90):
        raise DeepsnowError(f"area {name!r}: bad bbox {a['bbox']} (expected min_lon < max_lon, min_lat < max_lat)")
    windows = {}
    for season in SEASONS:
        win = dict((data.get("seasons") or {}).get(season) or {})
        win.update(((a.get("seasons") or {}).get(season)) or {})
        problems = check_window(win, f"data.seasons.{season} (area {name})")
        if problems:
            raise DeepsnowError(problems[0])
        windows[season] = (win["start"], win["end"])
    return Area(name=name, bbox=(x0, y0, x1, y1), windows=windows)


def areas_of(data: dict) -> list[dict]:
    """The areas of a run: ``data.aois`` plus those of ``data.aoi_file`` (read again at each call;
    the config itself is never rewritten)."""
    if not data.get("aoi_file"):
        return list(data["aois"])
    return merge_aoi_file(data)


def simulated_aoi_names(n: int) -> list[str]:
    return [f"sim{i:02d}" for i in range(n)]


def aoi_names(config: dict) -> list[str]:
    """Names of the run's areas: simulated ones, or those of data.aois and data.aoi_file."""
    data = config["data"]
    if data["source"] == "simulator":
        return simulated_aoi_names(data["simulator"]["n_aois"])
    return [a["name"] for a in areas_of(data)]
