"""Figure 9: the synthetic change products at scene scale, from the STAC catalog of the synthesize stage.

For every product (catalog item; the first MAX_ITEMS of them): the real snow-free scene (before), the synthetic after-snowfall
scene, the real snow-season scene of the area (when there is one) and the simulator's true snow
scene (simulator data), each at scene scale (decimated reads, overviews where the file has them),
and below them the same zoomed window at full resolution (its box drawn on the scene panels).
The scenes are rendered to RGB as the patches stage renders them (the rendering the item records).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from deepsnow import DeepsnowError
from deepsnow.figures import common

#: asset key -> panel title, in panel order
PANELS = {"before": "before (real)", "after_synthetic": "synthetic after", "after_real": "real after", "truth": "truth (simulator)"}
PREVIEW_PX = 480
ZOOM_PX = 96
#: products shown at most (a run may synthesize thousands; the catalog lists them all)
MAX_ITEMS = 6


def read_items(catalog) -> list[dict]:
    """Per item of the catalog: its id, the absolute path of each panel's asset, its rendering."""
    try:
        root = json.loads(Path(catalog).read_text())
        links = [link["href"] for link in root["links"] if link["rel"] == "item"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DeepsnowError(f"{catalog}: not a readable STAC catalog: {exc}") from exc
    items = []
    for href in links:
        path = (Path(catalog).parent / href).resolve()
        try:
            item = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise DeepsnowError(f"{path}: not a readable STAC item of {catalog}: {exc}") from exc
        assets = {k: (path.parent / a["href"]).resolve() for k, a in item["assets"].items() if k in PANELS}
        if "before" not in assets or "after_synthetic" not in assets:
            raise DeepsnowError(f"{path}: item has no 'before' or 'after_synthetic' asset")
        props = item.get("properties", {})
        items.append({"id": item["id"], "assets": assets, "rgb": (props.get("deepsnow:rgb_max", 1.0),
                      props.get("deepsnow:rgb_gamma", 2.2)), "source": props.get("deepsnow:data_source")})
    if not items:
        raise DeepsnowError(f"{catalog}: the catalog has no items")
    return items


def read_rgb(path: Path, rgb, window=None, out_shape=None) -> np.ndarray:
    """``(H, W, 3) uint8`` of a scene (rendered like the patches) or an RGB GeoTIFF, decimated or windowed."""
    import rasterio
    from rasterio.windows import Window

    from deepsnow.data.render import render_rgb
    from deepsnow.data.scene import SCALE, band_indexes, stored_bands

    rgb_bands = ("B04", "B03", "B02")
    try:
        with rasterio.open(path) as src:
            win = Window(*window) if window else None
            # a scene's red, green and blue found by name (a scene's first bands are not B04 B03 B02)
            index = [1, 2, 3] if src.dtypes[0] == "uint8" else band_indexes(stored_bands(src, path), rgb_bands, path)
            data = src.read(index, window=win, out_shape=(3, *out_shape) if out_shape else None)
            if src.dtypes[0] == "uint8":
                return data.transpose(1, 2, 0)
    except DeepsnowError:
        raise
    except Exception as exc:
        raise DeepsnowError(f"{path}: not a readable GeoTIFF for Figure 9: {exc}") from exc
    refl = {b: data[i].astype(np.float32) / SCALE for i, b in enumerate(rgb_bands)}
    return render_rgb(refl, *rgb)


def zoom_window(path: Path, rgb) -> tuple[int, int, int, int]:
    """``(col, row, w, h)``: a ZOOM_PX window (or a quarter of the scene) where the before scene varies most."""
    import rasterio

    with rasterio.open(path) as src:
        h, w = src.height, src.width
    side = max(8, min(ZOOM_PX, h // 2, w // 2))
    step = max(1, min(h, w) // 8)
    preview = read_rgb(path, rgb, out_shape=(max(1, h // step), max(1, w // step))).astype(float).mean(-1)
    k = max(1, side // step)
    best, where = -1.0, (0, 0)
    for r in range(0, max(1, preview.shape[0] - k + 1)):
        for c in range(0, max(1, preview.shape[1] - k + 1)):
            v = preview[r : r + k, c : c + k].std()
            if v > best:
                best, where = v, (r * step, c * step)
    row, col = min(where[0], h - side), min(where[1], w - side)
    return col, row, side, side


def build_figure9(params: dict, catalog) -> common.Drawn:
    """Figure 9 from the synthetic products' STAC catalog."""
    import rasterio

    every = read_items(catalog)
    items = every[:MAX_ITEMS]
    panels = []
    for it in items:
        window = zoom_window(it["assets"]["before"], it["rgb"])
        row = {}
        for key, path in it["assets"].items():
            with rasterio.open(path) as src:
                f = max(1, int(np.ceil(max(src.height, src.width) / PREVIEW_PX)))
                shape = (max(1, src.height // f), max(1, src.width // f))
            row[key] = (read_rgb(path, it["rgb"], out_shape=shape), read_rgb(path, it["rgb"], window=window), f)
        panels.append((it["id"], row, window))
    sources = {it["source"] for it in items if it["source"]}
    data = common.data_label("+".join(sorted(sources)) if sources else None)
    fig = figure9(panels, data, shown=f"{len(items)} of {len(every)} products: " if len(every) > len(items) else "")
    inputs = [Path(catalog)] + [p for it in items for p in it["assets"].values()]
    extra = {"items": [it["id"] for it in items], "zoom_windows": {p[0]: list(p[2]) for p in panels}}
    return common.Drawn(fig, inputs, extra)


def figure9(panels, data: str = common.UNKNOWN_DATA, shown: str = ""):
    """Rows of scene-scale panels, each followed by the zoomed window; ``panels`` = [(id, {key: (scene,
    zoom, factor)}, (col, row, w, h))]."""
    from matplotlib.patches import Rectangle

    ncol = max(len(row) for _, row, _ in panels)
    fig = common.new_figure(2.3 * ncol, 2 * 2.3 * len(panels) + 0.5)
    axes = fig.subplots(2 * len(panels), ncol, squeeze=False)
    for i, (name, row, (c, r, w, h)) in enumerate(panels):
        keys = [k for k in PANELS if k in row]
        for j in range(ncol):
            top, bottom = axes[2 * i, j], axes[2 * i + 1, j]
            for ax in (top, bottom):
                ax.set_xticks([])
                ax.set_yticks([])
            if j >= len(keys):
                top.set_visible(False)
                bottom.set_visible(False)
                continue
            scene, zoom, f = row[keys[j]]
            top.imshow(scene, interpolation="nearest")
            top.add_patch(Rectangle((c / f - 0.5, r / f - 0.5), w / f, h / f, fill=False, ec="red", lw=1))
            top.set_title(f"{name}: {PANELS[keys[j]]}")
            bottom.imshow(zoom, interpolation="nearest")
            bottom.set_title(f"zoom {w}x{h} px at ({r}, {c})", fontsize=7.5)
    fig.suptitle(f"Figure 9: synthetic change products at scene scale ({shown}{data})")
    return fig
