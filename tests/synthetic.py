"""Test helpers: small scene GeoTIFFs with chosen land cover, SCL and clouds.

``write_cover_scene`` writes a scene in the format of docs/formats.md from a
2-D array of cover names (``"veg"``, ``"soil"``, ``"water"``, ``"snow"``,
``"cloud"``), each with typical Sentinel-2 L2A reflectances and the SCL class
Sen2Cor would give it; SCL and dataMask can be overridden pixel by pixel.

``bigearthnet_example_dir`` / ``bigearthnet_to_scene`` turn the six real
BigEarthNet-S2 example patches shipped in the ``bigearthnet-common`` wheel into
scene GeoTIFFs.
"""

from __future__ import annotations

import datetime as dt
import importlib.resources
import json
import tarfile
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.transform import Affine

from deepsnow.data.scene import V1_BANDS, write_scene

#: Reflectances of each cover type in the bands a download fetches (B04, B03, B02, B08, B11): the
#: synthetic scenes hold these five, as downloaded scenes do.
SPECTRA = {
    # green vegetation: bright NIR, NDSI < 0
    "veg": {"B04": 0.04, "B03": 0.07, "B02": 0.04, "B08": 0.35, "B11": 0.20},
    # bare soil
    "soil": {"B04": 0.20, "B03": 0.15, "B02": 0.12, "B08": 0.28, "B11": 0.32},
    # clear water: NDSI ~ 0.82 (snow-like) but dark NIR
    "water": {"B04": 0.02, "B03": 0.05, "B02": 0.06, "B08": 0.02, "B11": 0.005},
    # fresh snow: NDSI ~ 0.83, bright NIR
    "snow": {"B04": 0.85, "B03": 0.87, "B02": 0.88, "B08": 0.80, "B11": 0.08},
    # thick cloud: bright everywhere, NDSI ~ 0.14
    "cloud": {"B04": 0.60, "B03": 0.60, "B02": 0.62, "B08": 0.60, "B11": 0.45},
}
BANDS = tuple(SPECTRA["veg"])
#: SCL class Sen2Cor would give each cover.
DEFAULT_SCL = {"veg": 4, "soil": 5, "water": 6, "snow": 11, "cloud": 9}

ORIGIN = (500000.0, 5200000.0)  # UTM 33N, metres
CRS = "EPSG:32633"


def transform_at(origin=ORIGIN, pixel: float = 10.0) -> Affine:
    """North-up 10 m transform with the upper-left corner at ``origin``."""
    return Affine(pixel, 0.0, origin[0], 0.0, -pixel, origin[1])


def cover_arrays(cover: np.ndarray) -> dict[str, np.ndarray]:
    """Reflectance bands (float64) for a 2-D array of cover names."""
    cover = np.asarray(cover)
    refl = {b: np.zeros(cover.shape, dtype=np.float64) for b in BANDS}
    for name, spec in SPECTRA.items():
        sel = cover == name
        for b in BANDS:
            refl[b][sel] = spec[b]
    unknown = set(np.unique(cover)) - set(SPECTRA)
    if unknown:
        raise ValueError(f"unknown cover types {sorted(unknown)}; known: {sorted(SPECTRA)}")
    return refl


def write_cover_scene(
    path,
    cover,
    *,
    scl=None,
    data_mask=None,
    season: str | None = "snowfree",
    aoi: str = "t00",
    crs=CRS,
    transform: Affine | None = None,
    reflectance: dict | None = None,
    tags: dict | None = None,
) -> Path:
    """Write a scene GeoTIFF of the five bands of :data:`SPECTRA` for ``cover`` (2-D array of names); returns the path.

    ``scl`` defaults to :data:`DEFAULT_SCL` per cover; ``data_mask`` to all 1;
    ``reflectance`` entries replace bands computed from the cover. ``season``
    None leaves out the ``DEEPSNOW_SEASON`` tag.
    """
    cover = np.asarray(cover)
    refl = cover_arrays(cover)
    if reflectance:
        refl.update({k: np.asarray(v, dtype=np.float64) for k, v in reflectance.items()})
    if scl is None:
        scl = np.zeros(cover.shape, dtype=np.uint8)
        for name, code in DEFAULT_SCL.items():
            scl[cover == name] = code
    if data_mask is None:
        data_mask = np.ones(cover.shape, dtype=np.uint8)
    all_tags = {"DEEPSNOW_SOURCE": "simulator", "DEEPSNOW_AOI": aoi, "DEEPSNOW_DATE": "2020-01-15"}
    if season is not None:
        all_tags["DEEPSNOW_SEASON"] = season
    all_tags.update(tags or {})
    path = Path(path)
    write_scene(
        path,
        refl,
        np.asarray(scl, dtype=np.uint8),
        np.asarray(data_mask, dtype=np.uint8),
        crs,
        transform if transform is not None else transform_at(),
        tags=all_tags,
    )
    return path


def v1_stack(path) -> np.ndarray:
    """A scene's bands B04 B03 B02 B08 B11 SCL dataMask (``V1_BANDS``), found by name and stacked in that
    order: what ``rasterio.open(path).read()`` gave before scenes recorded which bands they hold."""
    with rasterio.open(path) as src:
        index = {d: i for i, d in enumerate(src.descriptions, start=1)}
        return src.read([index[b] for b in V1_BANDS])


def blocks(shape, block: int, layout: list[list[str]]) -> np.ndarray:
    """Cover array of ``shape`` made of ``block`` x ``block`` squares named by ``layout[i][j]``."""
    cover = np.empty(shape, dtype="<U8")
    for i, row in enumerate(layout):
        for j, name in enumerate(row):
            cover[i * block : (i + 1) * block, j * block : (j + 1) * block] = name
    return cover


# --- BigEarthNet-S2 example patches (real Sentinel-2 L2A) ---------------------------------------

BEN_ARCHIVE = "BigEarthNet-S2-Example.tar.bz2"
BEN_BANDS = {"B04": "B04", "B03": "B03", "B02": "B02", "B08": "B08", "B11": "B11"}
SNOW_MONTHS = (11, 12, 1, 2, 3, 4)  # northern-hemisphere snow season


def bigearthnet_example_dir(dest: Path) -> Path:
    """Extract the wheel's ``BigEarthNet-S2-Example.tar.bz2`` under ``dest``; return the patch folder."""
    archive = importlib.resources.files("bigearthnet_common").joinpath(BEN_ARCHIVE)
    with importlib.resources.as_file(archive) as path, tarfile.open(path, "r:bz2") as tar:
        tar.extractall(dest, filter="data")
    return Path(dest) / "BigEarthNet-S2-Example"


def season_of(date: dt.date) -> str:
    """``snow`` for November to April (northern hemisphere), else ``snowfree``."""
    return "snow" if date.month in SNOW_MONTHS else "snowfree"


def bigearthnet_to_scene(patch_dir: Path, out_path: Path) -> dict:
    """Convert one BigEarthNet-S2 patch folder to a scene GeoTIFF in our format.

    B02/B03/B04/B08 are 120 x 120 at 10 m; B11 (60 x 60 at 20 m) is upsampled
    to the 10 m grid by bilinear resampling. BigEarthNet ships no SCL, so SCL
    is 7 (unclassified) everywhere and dataMask is 1. CRS and transform come
    from the B04 file; ``DEEPSNOW_SEASON`` from the acquisition month.
    Returns ``{"name", "date", "season", "crs"}``.
    """
    patch_dir = Path(patch_dir)
    name = patch_dir.name
    with rasterio.open(patch_dir / f"{name}_B04.tif") as src:
        crs, transform, shape = src.crs, src.transform, (src.height, src.width)
    refl = {}
    for band, suffix in BEN_BANDS.items():
        with rasterio.open(patch_dir / f"{name}_{suffix}.tif") as src:
            data = src.read(1, out_shape=shape, resampling=Resampling.bilinear)
        refl[band] = data.astype(np.float64) / 10000.0
    meta = json.loads((patch_dir / f"{name}_labels_metadata.json").read_text())
    date = dt.datetime.strptime(meta["acquisition_date"], "%Y-%m-%d %H:%M:%S").date()
    season = season_of(date)
    write_scene(
        out_path,
        refl,
        np.full(shape, 7, dtype=np.uint8),
        np.ones(shape, dtype=np.uint8),
        crs,
        transform,
        tags={
            "DEEPSNOW_SOURCE": "bigearthnet",
            "DEEPSNOW_AOI": name,
            "DEEPSNOW_SEASON": season,
            "DEEPSNOW_DATE": date.isoformat(),
        },
    )
    return {"name": name, "date": date, "season": season, "crs": crs}


def install_distribution(site: Path, name: str, module: str, group: str, points: dict[str, str]) -> Path:
    """Install into ``site`` (a folder to put on PYTHONPATH) a real distribution ``name``: the
    module ``name.py`` holding ``module``, and ``group`` entry points ``points`` (name -> target)."""
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{name}.py").write_text(module)
    dist = site / f"{name}-0.1.dist-info"
    dist.mkdir(exist_ok=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        f"[{group}]\n" + "".join(f"{point} = {target}\n" for point, target in points.items())
    )
    return site


def install_tinyplug(site: Path, entry_points: dict[str, str] | None = None) -> Path:
    """A distribution 'tinyplug' whose 'deepsnow.extractors' entry points are ``entry_points``
    (default: tinyplug = tinyplug:build, an extractor of the per-channel means)."""
    module = (
        "import torch\n"
        "from deepsnow.features import Extractor\n"
        "class Means(torch.nn.Module):\n"
        "    def forward(self, x):\n"
        "        return x.mean(dim=(2, 3))\n"
        "def build(options, seed):\n"
        "    return Extractor('tinyplug', Means(), dim=3, weights='none', pretrained=False, preprocessing='none')\n"
    )
    points = entry_points or {"tinyplug": "tinyplug:build"}
    return install_distribution(site, "tinyplug", module, "deepsnow.extractors", points)


def install_tinydetector(site: Path) -> Path:
    """A distribution 'tinydetector' with 'deepsnow.detectors' entry points: absdiff (the L1 norm of
    after - before, a working detector), and badshape / nanscores / crashes, which break the
    detector contract."""
    module = (
        "import numpy as np\n"
        "def absdiff(before, after):\n"
        "    return np.abs(after.astype(np.float64) - before.astype(np.float64)).sum(axis=1)\n"
        "def badshape(before, after):\n"
        "    return np.zeros((before.shape[0], 2))\n"
        "def nanscores(before, after):\n"
        "    return np.full(before.shape[0], np.nan)\n"
        "def crashes(before, after):\n"
        "    before[0, 0] = 0  # the inputs are read-only: a detector cannot change what the others score\n"
    )
    points = {name: f"tinydetector:{name}" for name in ("absdiff", "badshape", "nanscores", "crashes")}
    return install_distribution(site, "tinydetector", module, "deepsnow.detectors", points)
