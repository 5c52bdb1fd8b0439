"""One area's change benchmark as files: the pairs the detectors score and the implanted-change truth.

``change/benchmark/<area>/`` holds, for the band set ``rgb`` (and in ``reflectance/`` below it
for the band set ``reflectance``), COGs on the before scene's grid (CRS, transform, shape):

- ``before.tif``: the before image, as the detectors get it (``rgb``: the rendered scene, uint8
  red, green, blue; ``reflectance``: float32 reflectance in the band set's bands, described by name:
  a reflectance run's checkpoint bands, an RGB run's B04, B03, B02);
- ``after_real.tif``, ``after_synthetic.tif``, ``after_truth.tif`` (simulator data): each after
  image with the implanted changes already in it: every pixel used holds exactly the value the
  detectors score (an implanted pixel its donor's after-value);
- ``anomalies.tif``: uint8, 1 implanted, 0 untouched, :data:`NODATA` (255, and masked) where the
  pixel is not used; its tags (``DEEPSNOW_*``) hold the area, band set and its bands (``DEEPSNOW_BAND_NAMES``),
  implant parameters, seed and counts.

Every image's internal mask is the set of pixels used, the same as ``anomalies.tif``'s valid
pixels; values under the mask are the image's own (also inside an implanted blob whose pixels
the ``change.max_pixels`` sample left out). Written by row windows (aligned to the COG blocks)
from what the stage already holds (the sorted pixels used, which are implanted, the gathered
after-values), each file atomically (:func:`deepsnow.cog.cog_output`); on any error the files
written so far are removed (:class:`Writer`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deepsnow import DeepsnowError
from deepsnow.change import pixels

#: role -> file name, in the order the files are written
IMAGE_FILES = {"before": "before.tif", "real": "after_real.tif", "synthetic": "after_synthetic.tif",
               "truth": "after_truth.tif"}
ANOMALIES = "anomalies.tif"
#: anomalies.tif's value where a pixel is not used
NODATA = 255
CLASS_NAMES = {0: "untouched", 1: "implanted"}
#: the band descriptions of the rgb band set's images (a reflectance band set's are its band names)
RGB_DESCRIPTIONS = ("red", "green", "blue")
DTYPES = {"rgb": "uint8", "reflectance": "float32"}
BLOCK = 512
#: the tags of the scenes carried into the benchmark images (the catalog's datetime, the area)
SCENE_TAGS = ("DEEPSNOW_AOI", "DEEPSNOW_DATE", "DEEPSNOW_SOURCE", "DEEPSNOW_SEASON")
#: anomalies.tif tags that are numbers (the rest are text), by type
NUMBER_TAGS = {"implant_fraction": float, "far": float, "rgb_max": float, "rgb_gamma": float, "blob_px": int,
               "seed": int, "max_pixels": int, "n_valid": int, "n_pixels": int, "n_implanted": int}


def band_set_folder(root: Path, which: str) -> Path:
    """The band set ``rgb`` in ``root`` itself, any other in ``root/<band set>``."""
    return Path(root) if which == "rgb" else Path(root) / which


def files(root: Path, band_sets, pairs) -> list[Path]:
    """The files of a benchmark with ``band_sets`` and ``pairs`` (after-images), in writing order."""
    names = [IMAGE_FILES[r] for r in ("before", *pairs)] + [ANOMALIES]
    return [band_set_folder(root, which) / name for which in band_sets for name in names]


def descriptions(which: str, names) -> tuple[str, ...]:
    """The band descriptions of band set ``which``'s images, whose bands are ``names``."""
    return RGB_DESCRIPTIONS if which == "rgb" else tuple(names)


def image_profile(grid, which: str, count: int = 3) -> dict:
    """The COG profile of one benchmark image of band set ``which`` (``count`` bands) on ``grid`` ((H, W), crs,
    transform)."""
    (h, w), crs, transform = grid
    profile = {"driver": "GTiff", "height": h, "width": w, "count": count, "dtype": DTYPES[which], "crs": crs,
               "transform": transform, "blockxsize": BLOCK}
    if which == "rgb":
        profile["photometric"] = "RGB"
    return profile


def windows(shape: tuple[int, int], rows: int):
    """``(r0, r1, window)`` row windows of about ``rows`` rows, whole COG blocks high."""
    from rasterio.windows import Window

    from deepsnow.data.scene import aligned_rows

    (h, w), step = shape, aligned_rows(rows, BLOCK)
    for r0 in range(0, h, step):
        r1 = min(h, r0 + step)
        yield r0, r1, Window(0, r0, w, r1 - r0)


def _in_window(used: np.ndarray, w: int, r0: int, r1: int) -> tuple[int, int]:
    """The positions ``lo:hi`` of the sorted flat indices ``used`` that lie in rows r0..r1."""
    lo, hi = np.searchsorted(used, [r0 * w, r1 * w])
    return int(lo), int(hi)


def _source_tags(o: pixels.Opened) -> dict:
    tags = o.scene.tags if o.image.kind == "scene" else o.src.tags()
    return {k: v for k, v in tags.items() if k in SCENE_TAGS}


def write_image(path: Path, o: pixels.Opened, which: str, used: np.ndarray, values: np.ndarray | None,
                rows: int, names=pixels.RGB) -> None:
    """One benchmark image: ``o``'s band set ``which`` (bands ``names``), the pixels ``used`` set to ``values``
    (the gathered after-values with the implants; None for the before image, which has none), masked
    elsewhere."""
    from deepsnow.cog import cog_output

    (h, w), _, _ = o.grid
    bands = descriptions(which, names)
    with cog_output(path, image_profile(o.grid, which, len(bands)), resampling="average") as dst:
        for r0, r1, win in windows((h, w), pixels.band_rows(rows, len(bands))):
            block = np.ascontiguousarray(o.bands(r0, r1, which), dtype=DTYPES[which])
            lo, hi = _in_window(used, w, r0, r1)
            at = used[lo:hi] - r0 * w
            if values is not None:
                block.reshape(block.shape[0], -1)[:, at] = values[lo:hi].T
            mask = np.zeros((r1 - r0) * w, np.uint8)
            mask[at] = 255
            dst.write(block, window=win)
            dst.write_mask(mask.reshape(r1 - r0, w), window=win)
        for i, name in enumerate(bands, start=1):
            dst.set_band_description(i, name)
        dst.update_tags(**_source_tags(o))


def write_anomalies(path: Path, grid, used: np.ndarray, implanted: np.ndarray, tags: dict, rows: int) -> None:
    """``anomalies.tif``: 1 at the implanted pixels used, 0 at the untouched ones, :data:`NODATA` elsewhere,
    which is also its internal mask (as every image's: readers without mask support see the 255)."""
    from deepsnow.cog import cog_output

    (h, w), crs, transform = grid
    profile = {"driver": "GTiff", "height": h, "width": w, "count": 1, "dtype": "uint8", "crs": crs,
               "transform": transform, "blockxsize": BLOCK}
    with cog_output(path, profile, resampling="nearest") as dst:
        dst.write_colormap(1, {0: (40, 40, 40, 255), 1: (230, 30, 30, 255)})  # before the pixels: a TIFF tag
        for r0, r1, win in windows((h, w), rows):
            lo, hi = _in_window(used, w, r0, r1)
            block = np.full((r1 - r0) * w, NODATA, np.uint8)
            block[used[lo:hi] - r0 * w] = implanted[lo:hi]
            dst.write(block.reshape(1, r1 - r0, w), window=win)
            dst.write_mask(np.where(block == NODATA, 0, 255).astype(np.uint8).reshape(r1 - r0, w), window=win)
        dst.set_band_description(1, "anomaly: 1 implanted, 0 untouched, 255 not used")
        dst.update_tags(**{f"DEEPSNOW_{k.upper()}": str(v) for k, v in tags.items()})


class Writer:
    """Writes an area's benchmark, band set by band set; a context whose error exit removes every
    file it wrote (the stage writes nothing when it fails)."""

    def __init__(self, root: Path, opened: dict, used: np.ndarray, implanted: np.ndarray, tags: dict, rows: int,
                 band_sets: dict | None = None):
        self.root, self.opened, self.used, self.implanted = Path(root), opened, used, implanted
        self.tags, self.rows, self.written = tags, rows, []
        self.band_sets = band_sets or pixels.DEFAULT_BANDS

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            for path in self.written:
                path.unlink(missing_ok=True)

    def write(self, which: str, gathered: dict[str, np.ndarray]) -> None:
        """Band set ``which``: the images (``gathered``: the after-values at the pixels used, per pair)
        and ``anomalies.tif``."""
        folder = band_set_folder(self.root, which)
        folder.mkdir(parents=True, exist_ok=True)
        names = self.band_sets[which]
        for role, o in self.opened.items():
            path = folder / IMAGE_FILES[role]
            self.written.append(path)
            write_image(path, o, which, self.used, gathered.get(role), self.rows, names)
        path = folder / ANOMALIES
        self.written.append(path)
        grid = self.opened["before"].grid
        tags = {**self.tags, "bands": which, "band_names": " ".join(names)}
        write_anomalies(path, grid, self.used, self.implanted.astype(np.uint8), tags, self.rows)


def read_tags(path: Path) -> dict:
    """The benchmark's parameters from ``anomalies.tif``'s tags (numbers as numbers)."""
    import rasterio

    if not Path(path).exists():
        raise DeepsnowError(f"{path}: benchmark file not found (a change/benchmark/<area> folder holds it)")
    try:
        with rasterio.open(path) as src:
            tags = src.tags()
    except Exception as exc:
        raise DeepsnowError(f"{path}: not a readable GeoTIFF (truncated or corrupt?): {exc}") from exc
    out = {k[len("DEEPSNOW_"):].lower(): v for k, v in tags.items() if k.startswith("DEEPSNOW_")}
    missing = [k for k in ("area", "bands", "far", "n_pixels") if k not in out]
    if missing:
        raise DeepsnowError(f"{path}: not a benchmark's anomalies.tif (no DEEPSNOW_ tag(s) {', '.join(missing)})")
    try:
        return {k: NUMBER_TAGS[k](v) if k in NUMBER_TAGS else v for k, v in out.items()}
    except ValueError as exc:
        raise DeepsnowError(f"{path}: a DEEPSNOW_ tag is not a number: {exc}") from exc
