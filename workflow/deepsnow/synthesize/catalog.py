"""The STAC catalog of the synthetic products: ``synthetic/catalog.json`` and one item per scene.

Written with pystac: a self-contained catalog (relative links and asset hrefs, so the
``results/<run>/`` folder can be moved or served as is), one item per scene at
``synthetic/<name>/<name>.json`` with the assets

- ``after_synthetic``: the product ``snow.tif`` (COG; roles data, after_synthetic),
- ``after_synthetic_reflectance``: ``snow_reflectance.tif`` when written (a reflectance run's generator
  output in the checkpoint's bands, or an RGB run's approximate inverse of its RGB),
- ``before``: the real snow-free scene it was translated from,
- ``after_real``: the real snow-season scene of the same area (held-out areas),
- ``truth``: the simulator's true snow-covered scene (simulator data),
- ``checkpoint``: the generator's checkpoint,

the projection extension on the item (EPSG code, shape, transform: every raster asset is
on the same grid), and on each raster asset the EO extension's bands (name, common name and
centre wavelength of each Sentinel-2 band, :func:`eo_bands`) and the raster
extension's (data type, nodata where the file has one, and for reflectance the scale and
offset from digital numbers; a file whose invalid pixels are in its mask band has no nodata). The item's datetime
is the before scene's acquisition date (its ``DEEPSNOW_DATE`` tag; an interval
``start/end`` gives start and end datetimes), else the GeoTIFF's ``TIFFTAG_DATETIME``,
else the time of synthesis (``deepsnow:datetime_source`` says which). Each asset's
provenance sidecar (``F.prov.json``) is linked from the item (rel ``provenance``).

Validation (:func:`offline_validator`) needs no network: pystac ships the core STAC
schemas, and the extension schemas used are kept in ``stac_schemas/`` (projection v2.0.0
and eo v1.1.0 copied verbatim from stac-extensions, Apache-2.0; raster v1.1.0 written here
from the fields table of that extension's specification) and seeded into the validator's
schema cache.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

from deepsnow import DeepsnowError
from deepsnow.io import atomic_output

SCHEMA_DIR = Path(__file__).with_name("stac_schemas")
#: asset key -> (title, media type kind, extra roles)
ASSETS = {
    "after_synthetic": ("synthetic after-snowfall RGB (cycleGAN)", "cog", ["data"]),
    # an RGB run's approximation (synthesize.reflectance); a reflectance run's generator output (REFLECTANCE_RUN_TITLES)
    "after_synthetic_reflectance": ("synthetic after-snowfall reflectance x 10000 (approximation)", "cog", ["data"]),
    "before": ("real snow-free scene (input)", "geotiff", ["data", "source"]),
    "after_real": ("real snow-season scene of the same area", "geotiff", ["data"]),
    "truth": ("simulator's true snow-covered scene", "geotiff", ["data"]),
    "checkpoint": ("cycleGAN checkpoint whose G_A translated the scene", "model", ["metadata"]),
}
#: Scene band -> STAC eo common name (eo v1.1.0's names; the three red-edge bands share "rededge").
EO_COMMON_NAMES = (("B02", "blue"), ("B03", "green"), ("B04", "red"), ("B05", "rededge"), ("B06", "rededge"),
                   ("B07", "rededge"), ("B08", "nir"), ("B8A", "nir08"), ("B11", "swir16"), ("B12", "swir22"),
                   ("SCL", None), ("dataMask", None))
#: Sentinel-2A centre wavelengths in micrometres (eo:bands' unit; docs/bands.md gives them in nm)
CENTER_WAVELENGTH_UM = {"B02": 0.490, "B03": 0.560, "B04": 0.665, "B05": 0.705, "B06": 0.740, "B07": 0.783,
                        "B08": 0.842, "B8A": 0.865, "B11": 1.610, "B12": 2.190}
#: an RGB product's bands (red, green, blue) are the rendered B04, B03, B02
RGB_SOURCES = {"red": "B04", "green": "B03", "blue": "B02"}
#: asset key -> title when the product is a reflectance checkpoint's (snow.summary.json's encoding)
REFLECTANCE_RUN_TITLES = {
    "after_synthetic": "synthetic after-snowfall RGB: the composite of the reflectance product (cycleGAN)",
    "after_synthetic_reflectance": "synthetic after-snowfall reflectance x 10000 (the generator's output, "
    "the checkpoint's bands)",
}


def offline_validator():
    """A pystac JSON-schema validator that never fetches: core schemas from pystac, extensions from here."""
    from pystac.validation import JsonSchemaSTACValidator

    validator = JsonSchemaSTACValidator()
    for path in sorted(SCHEMA_DIR.glob("*.json")):
        schema = json.loads(path.read_text())
        validator.schema_cache[schema["$id"].rstrip("#")] = schema
    return validator


def scene_datetime(tags: dict) -> tuple[dict, str]:
    """pystac Item datetime keywords from a GeoTIFF's tags, and where they came from."""
    date = tags.get("DEEPSNOW_DATE")
    if date:
        parts = [dt.datetime.fromisoformat(p).replace(tzinfo=dt.timezone.utc) for p in date.split("/")]
        if len(parts) == 2:
            return {"datetime": None, "start_datetime": parts[0], "end_datetime": parts[1]}, "DEEPSNOW_DATE"
        return {"datetime": parts[0]}, "DEEPSNOW_DATE"
    stamp = tags.get("TIFFTAG_DATETIME")
    if stamp:
        return {"datetime": dt.datetime.strptime(stamp, "%Y:%m:%d %H:%M:%S").replace(tzinfo=dt.timezone.utc)}, "TIFFTAG_DATETIME"
    return {"datetime": dt.datetime.now(dt.timezone.utc)}, "synthesis time"


def _raster_info(path: Path) -> dict:
    import rasterio
    from rasterio.warp import transform_bounds

    try:
        with rasterio.open(path) as src:
            bbox = list(transform_bounds(src.crs, "EPSG:4326", *src.bounds))
            return {"crs": src.crs, "transform": list(src.transform)[:6], "shape": [src.height, src.width],
                    "bbox": bbox, "tags": src.tags(), "names": list(src.descriptions),
                    "raster": _raster_bands(src)}
    except Exception as exc:
        raise DeepsnowError(f"{path}: not a readable GeoTIFF for the catalog: {exc}") from exc


def _raster_bands(src) -> list[dict]:
    """The raster extension's band objects of an open file: what a client needs to read its pixels
    (data type, nodata, scale/offset from digital numbers to reflectance), taken from the file itself."""
    bands = []
    for i, dtype in enumerate(src.dtypes):
        band = {"data_type": dtype, "spatial_resolution": float(abs(src.res[0])), "sampling": "area"}
        if src.nodatavals[i] is not None:
            band["nodata"] = src.nodatavals[i]
        scale, offset = src.scales[i], src.offsets[i]
        if (scale, offset) != (1.0, 0.0):  # digital numbers to a physical value: reflectance = DN x scale + offset
            band.update(scale=scale, offset=offset, unit="1")
        bands.append(band)
    return bands


def eo_bands(names) -> list:
    """eo:bands of a file's band descriptions: a Sentinel-2 band (or red, green, blue, an RGB product's
    rendering of B04, B03, B02) with its common name and centre wavelength; SCL, dataMask by name only."""
    from pystac.extensions.eo import Band

    common = dict(EO_COMMON_NAMES)
    out = []
    for name in (n for n in names if n):
        band = RGB_SOURCES.get(name, name)
        centre = CENTER_WAVELENGTH_UM.get(band)
        out.append(Band.create(name=name, common_name=common.get(band), center_wavelength=centre))
    return out


def grid_item(item_id: str, grid: dict, properties: dict, when: dict):
    """An item over a raster's footprint (``grid``: its ``bbox`` in WGS84, ``crs``, ``shape`` and
    ``transform``), with the projection extension of that grid."""
    import pystac
    from pystac.extensions.projection import ProjectionExtension

    lon0, lat0, lon1, lat1 = grid["bbox"]
    geometry = {"type": "Polygon", "coordinates": [[[lon0, lat0], [lon1, lat0], [lon1, lat1], [lon0, lat1], [lon0, lat0]]]}
    item = pystac.Item(id=item_id, geometry=geometry, bbox=grid["bbox"], properties=properties, **when)
    proj = ProjectionExtension.ext(item, add_if_missing=True)
    epsg = grid["crs"].to_epsg()
    proj.code = f"EPSG:{epsg}" if epsg else None
    if not epsg:
        proj.wkt2 = grid["crs"].to_wkt()
    proj.shape, proj.transform = grid["shape"], grid["transform"]
    return item


def make_item(product: dict, product_path: Path):
    """One scene's item from its ``snow.summary.json`` (paths in it are as the synthesize command was given them)."""
    import pystac
    from pystac.extensions.eo import EOExtension
    from pystac.extensions.raster import RasterBand, RasterExtension

    paths = {k: Path(product[k]) for k in ASSETS if product.get(k)}
    missing = [f"{k} {p}" for k, p in paths.items() if not p.exists()]
    if missing:
        raise DeepsnowError(f"{product_path}: files of its item are missing: {', '.join(missing)}")
    synth, before = _raster_info(paths["after_synthetic"]), _raster_info(paths["before"])
    when, source = scene_datetime(before["tags"])
    props = {"deepsnow:datetime_source": source, "deepsnow:epoch": product["epoch"],
             "deepsnow:checkpoint_choice": product["chosen"], "deepsnow:norm": product["norm"],
             "deepsnow:rgb_max": product["rgb_max"], "deepsnow:rgb_gamma": product["rgb_gamma"]}
    if before["tags"].get("DEEPSNOW_SOURCE"):
        props["deepsnow:data_source"] = before["tags"]["DEEPSNOW_SOURCE"]
    item = grid_item(product["name"], synth, props, when)
    EOExtension.add_to(item)
    RasterExtension.add_to(item)
    titles = REFLECTANCE_RUN_TITLES if product.get("encoding") == "reflectance" else {}
    for key, path in paths.items():
        title, kind, roles = ASSETS[key]
        title = titles.get(key, title)
        media = {"cog": pystac.MediaType.COG, "geotiff": pystac.MediaType.GEOTIFF}.get(kind, "application/octet-stream")
        asset = pystac.Asset(href=str(path.resolve()), title=title, media_type=media, roles=[key, *roles])
        item.add_asset(key, asset)
        if kind != "model":
            info = synth if key == "after_synthetic" else _raster_info(path)
            EOExtension.ext(asset).bands = eo_bands(info["names"])
            RasterExtension.ext(asset).bands = [RasterBand.create(**band) for band in info["raster"]]
        sidecar = Path(f"{path}.prov.json")
        if sidecar.exists():
            item.add_link(pystac.Link("provenance", str(sidecar.resolve()), "application/json", f"provenance of {key}"))
    return item


def write_catalog(products: list, output: str | os.PathLike, run: str = "deepsnow") -> list[Path]:
    """Build, validate (offline) and write the catalog and its items; returns the files written."""
    import pystac

    output = Path(output)
    catalog = pystac.Catalog(
        id=f"deepsnow-synthetic-{run}",
        description="Synthetic after-snowfall Sentinel-2-like scenes translated by a cycleGAN (deepsnow), "
        "with the real scenes they come from.",
        title=f"deepsnow synthetic products ({run})",
    )
    for path in products:
        try:
            product = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise DeepsnowError(f"{path}: not a readable product summary (snow.summary.json): {exc}") from exc
        catalog.add_item(make_item(product, Path(path)))
    catalog.normalize_hrefs(str(output.parent.resolve()))
    catalog.make_all_asset_hrefs_relative()
    for item in catalog.get_items():
        for link in item.links:
            if link.rel == "provenance":
                link.target = os.path.relpath(link.target, Path(item.get_self_href()).parent)
    validate(catalog)
    written = []
    catalog.catalog_type = pystac.CatalogType.SELF_CONTAINED
    for obj in [*catalog.get_items(), catalog]:  # the catalog last: it exists only once its items do
        target = Path(obj.get_self_href())
        with atomic_output(target) as tmp:
            tmp.write_text(json.dumps(obj.to_dict(include_self_link=False, transform_hrefs=True), indent=2) + "\n")
        written.append(target)
    return written


def validate(catalog) -> None:
    """``catalog.validate_all()`` against the STAC and extension schemas, offline."""
    import pystac.validation

    previous = pystac.validation.RegisteredValidator.get_validator()
    pystac.validation.set_validator(offline_validator())
    try:
        catalog.validate_all()
    except pystac.errors.STACValidationError as exc:
        raise DeepsnowError(f"STAC catalog does not validate: {exc}") from exc
    finally:
        pystac.validation.set_validator(previous)
