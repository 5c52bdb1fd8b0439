"""The benchmark's STAC collection: ``change/benchmark/catalog.json``, one label item per area.

Written with pystac, self-contained (relative links and asset hrefs, so the folder can be
moved or served as is): the collection ``change/benchmark/catalog.json`` and per held-out
area the item ``change/benchmark/<area>/<area>.json`` with

- the images as assets (``before``, ``after_real``, ``after_synthetic``, ``after_truth``; with
  the band set ``reflectance`` also ``reflectance_before``, ...), each with the EO extension's
  bands (name, common name, centre wavelength) and the raster extension's data type;
- ``anomalies`` (``reflectance_anomalies``), the implanted-change truth, described with the label
  extension: a raster label (``label:type`` raster, ``label:properties`` null), classes 0
  (untouched) and 1 (implanted), task segmentation, method automated, class counts;
- the projection extension (every asset is on one grid), and as properties the implant
  parameters, the seed, the pixel counts and the rendering of the rgb band set.

The item's datetime is the before scene's acquisition date (its ``DEEPSNOW_DATE`` tag, carried
into ``before.tif``), as in the synthetic products' catalog. Validated offline
(:func:`deepsnow.synthesize.catalog.validate`; the label extension's schema
``label-v1.0.1.json`` is kept beside the others, written from that extension's fields table).
"""

from __future__ import annotations

import json
from pathlib import Path

from deepsnow import DeepsnowError
from deepsnow.change import benchmark as bench
from deepsnow.io import atomic_output

IMAGE_TITLES = {
    "before": "before image (the real snow-free scene) as the detectors score it",
    "real": "real after image (snow season) with the implanted changes",
    "synthetic": "synthetic after image (cycleGAN) with the implanted changes",
    "truth": "simulator's true after image with the implanted changes",
}
LABEL_DESCRIPTION = (
    "Implanted anomalous changes (pixel swap, Theiler & Perkins 2006): 1 = implanted (the after-pixel was "
    "replaced by the after-value of a random other pixel of the same image), 0 = untouched, 255 (masked) = "
    "pixel not used. The same locations in every pair of the area; score a detector's (before, after) "
    "pixels against it with 'deepsnow change score'."
)


def _info(path: Path) -> dict:
    import rasterio
    from rasterio.warp import transform_bounds

    if not path.exists():
        raise DeepsnowError(f"{path}: benchmark file not found")
    try:
        with rasterio.open(path) as src:
            return {"crs": src.crs, "transform": list(src.transform)[:6], "shape": [src.height, src.width],
                    "bbox": list(transform_bounds(src.crs, "EPSG:4326", *src.bounds)), "tags": src.tags(),
                    "names": list(src.descriptions), "dtypes": list(src.dtypes), "res": float(abs(src.res[0]))}
    except Exception as exc:
        raise DeepsnowError(f"{path}: not a readable GeoTIFF for the catalog: {exc}") from exc


def _band_sets(folder: Path) -> list[tuple[str, Path]]:
    """``(asset key prefix, folder)`` of each band set written in ``folder``."""
    sets = [("", folder)]
    sub = bench.band_set_folder(folder, "reflectance")
    if (sub / bench.ANOMALIES).exists():
        sets.append(("reflectance_", sub))
    return sets


def _add_asset(item, key: str, path: Path, info: dict, title: str, roles: list[str]) -> None:
    import pystac
    from pystac.extensions.eo import Band, EOExtension
    from pystac.extensions.raster import RasterBand, RasterExtension

    from deepsnow.synthesize.catalog import eo_bands

    asset = pystac.Asset(href=str(path.resolve()), title=title, media_type=pystac.MediaType.COG, roles=roles)
    item.add_asset(key, asset)
    images = key.removeprefix("reflectance_") != "anomalies"
    EOExtension.ext(asset).bands = eo_bands(info["names"]) if images else [Band.create(name=n) for n in info["names"]]
    RasterExtension.ext(asset).bands = [
        RasterBand.create(data_type=d, spatial_resolution=info["res"], sampling="area") for d in info["dtypes"]]


def _label(item, tags: dict) -> None:
    from pystac.extensions.label import LabelClasses, LabelCount, LabelExtension, LabelOverview, LabelType

    n_implanted = int(tags["n_implanted"])
    counts = [LabelCount.create("0", int(tags["n_pixels"]) - n_implanted).to_dict(),
              LabelCount.create("1", n_implanted).to_dict()]
    LabelExtension.ext(item, add_if_missing=True).apply(
        LABEL_DESCRIPTION, LabelType.RASTER, label_properties=None,
        label_classes=[LabelClasses.create(classes=sorted(bench.CLASS_NAMES), name=None)],
        label_tasks=["segmentation"], label_methods=["automated"],
        label_overviews=[LabelOverview({"counts": counts})],  # a raster label has no property key
    )


def _properties(tags: dict) -> dict:
    keys = ("implant_fraction", "blob_px", "seed", "max_pixels", "far", "n_valid", "n_pixels", "n_implanted",
            "rgb_max", "rgb_gamma")
    props = {f"deepsnow:{k}": tags[k] for k in keys if k in tags}
    props["deepsnow:pairs"] = tags["pairs"].split(",")
    props["deepsnow:classes"] = {str(c): name for c, name in bench.CLASS_NAMES.items()} | {
        str(bench.NODATA): "not used"}
    return props


def make_item(folder: Path):
    """One area's item from its benchmark folder's files."""
    from pystac.extensions.eo import EOExtension
    from pystac.extensions.raster import RasterExtension

    from deepsnow.synthesize.catalog import grid_item, scene_datetime

    anomalies = folder / bench.ANOMALIES
    tags, info = bench.read_tags(anomalies), _info(anomalies)
    before = _info(folder / bench.IMAGE_FILES["before"])
    when, source = scene_datetime(before["tags"])
    item = grid_item(tags["area"], info, _properties(tags) | {"deepsnow:datetime_source": source}, when)
    _label(item, tags)
    EOExtension.add_to(item)
    RasterExtension.add_to(item)
    for prefix, sub in _band_sets(folder):
        for role in ["before", *tags["pairs"].split(",")]:
            path = sub / bench.IMAGE_FILES[role]
            key = prefix + ("before" if role == "before" else f"after_{role}")
            _add_asset(item, key, path, _info(path), IMAGE_TITLES[role], ["data"])
        _add_asset(item, prefix + "anomalies", sub / bench.ANOMALIES, _info(sub / bench.ANOMALIES),
                   "implanted changes: 1 implanted, 0 untouched, 255 not used", ["labels", "labels-raster"])
    return item


def _collection(items: list, run: str):
    import pystac

    boxes = [i.bbox for i in items]
    bbox = [min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)]
    times = [t for i in items for t in (i.datetime, i.common_metadata.start_datetime) if t is not None]
    extent = pystac.Extent(pystac.SpatialExtent([bbox]), pystac.TemporalExtent([[min(times), max(times)]]))
    return pystac.Collection(
        id=f"deepsnow-change-benchmark-{run}", extent=extent, license="other",
        title=f"deepsnow change-detection benchmark ({run})",
        description="Anomalous change detection on synthetic and real snow: per held-out area the before "
        "image, the real, synthetic and (simulator) true after images with implanted pixel-swap changes, "
        "and the implanted-change truth as a raster label. Derived from the run's scenes: Sentinel-2 data "
        "under the Copernicus data terms, simulator data under the project's licence.",
    )


def write_catalog(folders: list[Path], output: Path, run: str = "deepsnow") -> list[Path]:
    """Build, validate (offline) and write the collection and its items; returns the files written."""
    import pystac

    from deepsnow.synthesize.catalog import validate

    output = Path(output)
    items = [make_item(Path(f)) for f in folders]
    collection = _collection(items, run)
    collection.add_items(items)
    collection.normalize_hrefs(str(output.parent.resolve()))
    collection.set_self_href(str(output.resolve()))
    collection.make_all_asset_hrefs_relative()
    validate(collection)
    collection.catalog_type = pystac.CatalogType.SELF_CONTAINED
    written = []
    for obj in [*collection.get_items(), collection]:  # the collection last: it exists once its items do
        target = Path(obj.get_self_href())
        with atomic_output(target) as tmp:
            tmp.write_text(json.dumps(obj.to_dict(include_self_link=False, transform_hrefs=True), indent=2) + "\n")
        written.append(target)
    return written
