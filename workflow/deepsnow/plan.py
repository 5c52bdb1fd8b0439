"""``deepsnow plan``: what a run will download, cost and train, before anything is spent.

The config files are merged over the project's ``config.yaml`` exactly as
``snakemake --configfile A B`` merges them (mappings recursively, anything else,
lists included, replaced; later files win) and validated as the workflow
validates them. Then, per area and season, from the same code the stages run:

- the output grid (:func:`~deepsnow.data.download.common.area_grid`: the bbox in
  the UTM zone of its centre, snapped to the 10 m grid; the simulator's
  ``size`` x ``size`` px), in px and km;
- the candidate patch windows (the patches stage's grid of ``size`` x ``size``
  windows at ``stride``), before any cloud, nodata or snow rejection;
- what the download requests, for the bands it fetches: the mask's B03 B08 B11
  plus ``patches.bands`` (:func:`~deepsnow.data.download.common.download_bands`;
  B04 B03 B02 B08 B11 for an RGB run). Sentinel Hub: one Catalog search and one
  Process API request per tile of :func:`~deepsnow.data.download.common.split_grid`
  (``data.sentinelhub.max_tile_px``), each answered with the evalscript's
  output bands (those bands, SCL, dataMask) as UINT16 (2 bytes per band and
  pixel: 7 bands for an RGB run, 12 for all ten); STAC: one search and windowed
  reads of one COG asset per band and SCL (B02 B03 B04 B08 as uint16 at 10 m,
  B05 B06 B07 B8A B11 B12 as uint16 and SCL as uint8 at 20 m); the simulator
  downloads nothing.
- Sentinel Hub processing units, by Sentinel Hub's "Processing Unit definition"
  (https://docs.sentinel-hub.com/api/latest/api/overview/processing-unit/):
  1 PU is an output of 512 x 512 px from 3 input bands, one data sample per
  pixel, an output of at most 16 bits per pixel; the multiplication factors
  multiply: area (w x h / 512^2, at least 0.01) x input bands / 3 (``dataMask``
  is not counted: 6 input bands for an RGB run, 11 for all ten) x samples per
  pixel (1: the download's ``leastCC`` mosaic is a
  SIMPLE mosaicking) x 2 for 32-bit output; a Process API request costs at
  least 0.005 PU. Each tile request is priced on its own.

Then totals per domain (A snow-free, B snowy) and split (whole held-out areas,
``split.test_aois`` or the split stage's seeded draw), and the training
iterations of the run: ``ceil(max(|trainA|, |trainB|) / gan.batch_size)`` per
epoch times ``gan.n_epochs + gan.n_epochs_decay`` epochs, taking every candidate
window as a patch (an upper bound). With a throughput (``--train-it-s``, or
iterations per second of a finished run: the iterations of its
``train/losses.csv`` over the seconds of its ``benchmarks/train.tsv``, the whole
training job with its per-epoch samples) the training time is estimated.

A bbox across the antimeridian, a run without areas, an unknown source or any
other invalid config is an error naming the area or key (exit 2). A bbox over
two UTM zones is planned as the download makes it (in the zone of its centre)
and noted; over more than two zones (wider than a zone) it is refused.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
from pathlib import Path

import yaml

from deepsnow import DeepsnowError
from deepsnow.commands import plain_command
from deepsnow.config import merge_config

#: The project root: ``config.yaml`` and the ``Snakefile`` are here.
PROJECT_ROOT = Path(__file__).resolve().parents[2]

#: Sentinel Hub's Processing Unit definition (module docstring).
PU_DEFINITION_URL = "https://docs.sentinel-hub.com/api/latest/api/overview/processing-unit/"
PU_PIXELS = 512 * 512
PU_BANDS = 3
PU_MIN_AREA_FACTOR = 0.01
PU_MIN_REQUEST = 0.005  # Process API and OGC API
PU_UNCOUNTED_BANDS = ("dataMask",)

#: STAC asset reads: band -> (resolution in m, bytes per pixel) of Earth Search's Sentinel-2 L2A COGs.
STAC_ASSETS = {
    **{b: (10, 2) for b in ("B04", "B03", "B02", "B08")},
    **{b: (20, 2) for b in ("B11", "B05", "B06", "B07", "B8A", "B12")},
    "SCL": (20, 1),
}

#: Bytes per pixel of one band of a written scene (uint16, docs/formats.md), uncompressed.
SCENE_BAND_BYTES = 2

DOMAINS = {"snowfree": "a", "snow": "b"}


# --------------------------------------------------------------------------- config


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise DeepsnowError(f"config file {path} not found")
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise DeepsnowError(f"{path}: not valid YAML ({exc})") from exc
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise DeepsnowError(f"{path}: expected a mapping of config sections, got {type(doc).__name__}")
    return doc


def load_config(paths, base: Path | None = None) -> tuple[dict, str]:
    """``config.yaml`` with ``paths`` merged over it, in order, validated; and the files' names."""
    from deepsnow.config import validate_config

    base = base or PROJECT_ROOT / "config.yaml"
    config = _read_yaml(base)
    for p in paths:
        merge_config(config, _read_yaml(Path(p)))
    label = " + ".join([base.name, *(str(p) for p in paths)])
    _check_antimeridian(config)
    validate_config(config, source=label)
    return config, label


def _check_antimeridian(config: dict) -> None:
    """A ``data.aois`` bbox whose min_lon exceeds its max_lon crosses the antimeridian: named before the
    schema's generic bbox message."""
    aois = (config.get("data") or {}).get("aois")
    for i, a in enumerate(aois if isinstance(aois, list) else []):
        box = a.get("bbox") if isinstance(a, dict) else None
        if not (isinstance(box, list) and len(box) == 4 and all(isinstance(v, (int, float)) for v in box)):
            continue  # the schema names it
        x0, _, x1, _ = box
        if -180 <= x1 < x0 <= 180:
            raise DeepsnowError(
                f"area {a.get('name')!r} (data.aois[{i}].bbox {box}): crosses the antimeridian (min_lon {x0} > "
                f"max_lon {x1}); a bbox needs min_lon < max_lon: split the area in two at 180 degrees"
            )


# --------------------------------------------------------------------------- geometry


def utm_zones(bbox) -> list[int]:
    """The UTM zone numbers a WGS84 bbox touches (MGRS exceptions of Norway and Svalbard included)."""
    from deepsnow.data.download.common import utm_epsg

    x0, y0, x1, y1 = (float(v) for v in bbox)
    n = max(2, math.ceil((x1 - x0) / 0.5) + 1)
    xs = {x0 + (x1 - x0) * i / (n - 1) for i in range(n)}
    eps = 1e-9  # every zone edge, exceptions included, is a multiple of 3 degrees
    xs |= {b + d for b in range(-177, 180, 3) if x0 < b < x1 for d in (-eps, eps)}
    ys = {y0, y1} | {b + d for b in (56, 64, 72, 84) if y0 < b < y1 for d in (-eps, eps)}
    return sorted({utm_epsg(x, y) % 100 for x in xs for y in ys})


def _zone_notes(name: str, bbox, epsg: int) -> list[str]:
    zones = utm_zones(bbox)
    if len(zones) > 2:
        raise DeepsnowError(
            f"area {name!r}: bbox {list(bbox)} spans {len(zones)} UTM zones ({zones[0]}..{zones[-1]}); an area "
            "must lie within one zone or straddle two (a bbox across the antimeridian reads as nearly 360 "
            "degrees wide: split it in two at 180 degrees)"
        )
    if len(zones) == 2:
        return [
            f"{name}: bbox spans UTM zones {zones[0]} and {zones[1]}; planned (and downloaded) on the grid of "
            f"zone {epsg % 100} of its centre, the rest projected across the zone edge"
        ]
    return []


def windows(width: int, height: int, size: int, stride: int) -> int:
    """Candidate windows of the patches stage: rows and columns 0, stride, ... while a window fits."""
    if width < size or height < size:
        return 0
    return ((width - size) // stride + 1) * ((height - size) // stride + 1)


# --------------------------------------------------------------------------- costs


def request_pu(width: int, height: int, input_bands: int, samples: int = 1, output_bits: int = 16) -> float:
    """Processing units of one Process API request (module docstring: Sentinel Hub's definition)."""
    area = max(PU_MIN_AREA_FACTOR, width * height / PU_PIXELS)
    bits = 1 if output_bits <= 16 else 2
    return max(PU_MIN_REQUEST, area * (input_bands / PU_BANDS) * samples * bits)


def evalscript_request(bands=None) -> dict:
    """What the Sentinel Hub download's evalscript for the reflectance ``bands`` (default an RGB run's)
    asks for: input bands, the counted ones, output bands and bits, read from the evalscript itself."""
    from deepsnow.data.download.sentinelhub import FETCHED_BANDS, evalscript

    script = evalscript(FETCHED_BANDS if bands is None else bands)
    names = re.findall(r'"(\w+)"', re.search(r"bands:\s*\[([^\]]*)\]", script).group(1))
    n_out = int(re.search(r"output:\s*\{bands:\s*(\d+)", script).group(1))
    sample_type = re.search(r'sampleType:\s*"(\w+)"', script).group(1)
    bits = {"UINT8": 8, "UINT16": 16, "FLOAT32": 32}[sample_type]
    counted = [b for b in names if b not in PU_UNCOUNTED_BANDS]
    return {"input_bands": names, "counted_bands": len(counted), "output_bands": n_out, "output_bits": bits}


def sentinelhub_cost(grid, sh: dict, bands=None) -> dict:
    """One area and season from Sentinel Hub fetching the reflectance ``bands`` (default an RGB run's):
    a Catalog search, one Process request per tile, bytes, PUs."""
    from deepsnow.data.download.common import split_grid

    req = evalscript_request(bands)
    tiles = [(r1 - r0, c1 - c0) for r0, r1, c0, c1 in split_grid(grid, int(sh["max_tile_px"]))]
    pus = [request_pu(w, h, req["counted_bands"], 1, req["output_bits"]) for h, w in tiles]
    pixels = sum(h * w for h, w in tiles)
    return {
        "download_bytes": pixels * req["output_bands"] * req["output_bits"] // 8,
        "requests": {"catalog": 1, "process": len(tiles)},
        "tiles_px": [[w, h] for h, w in tiles],
        "processing_units": sum(pus),
    }


def stac_cost(grid, bands=None) -> dict:
    """One area and season from a STAC API fetching the reflectance ``bands`` (default an RGB run's): a
    search and the pixels of one windowed COG read per band and SCL."""
    from deepsnow.data.download.stac import REFLECTANCE, assets_of

    assets = assets_of(REFLECTANCE if bands is None else bands)
    read = 0
    for res, nbytes in (STAC_ASSETS[a] for a in assets):
        f = res // 10
        read += math.ceil(grid.width / f) * math.ceil(grid.height / f) * nbytes
    return {"download_bytes": read, "requests": {"search": 1, "cog_reads": len(assets)}, "processing_units": 0.0}


def simulator_cost(grid) -> dict:
    return {"download_bytes": 0, "requests": {}, "processing_units": 0.0}


# --------------------------------------------------------------------------- the plan


def _area_grids(config: dict) -> list[dict]:
    """``[{name, bbox, grid, windows: {season: (start, end) | None}, notes}]`` of the run's areas."""
    data = config["data"]
    if data["source"] == "simulator":
        from deepsnow.areas import simulated_aoi_names
        from deepsnow.data.download.common import Grid
        from deepsnow.data.simulator.geometry import area_geometry

        sim, out = data["simulator"], []
        for i, name in enumerate(simulated_aoi_names(sim["n_aois"])):
            _, t, epsg = area_geometry(i, sim["size"], sim["origin"])
            grid = Grid(epsg, t.c, t.f, sim["size"], sim["size"], t.a)
            out.append({"name": name, "bbox": None, "grid": grid, "windows": dict.fromkeys(DOMAINS), "notes": []})
        return out
    from deepsnow.areas import areas_of, find_area
    from deepsnow.data.download.common import area_grid, utm_epsg

    areas = areas_of(data)
    if not areas:  # validation refuses it for a real source; kept for a direct call
        raise DeepsnowError(f"key 'data.aois': source {data['source']!r} has no area to plan")
    out = []
    for a in areas:
        area = find_area(data, a["name"])
        x0, y0, x1, y1 = area.bbox
        notes = _zone_notes(area.name, area.bbox, utm_epsg((x0 + x1) / 2, (y0 + y1) / 2))
        try:
            grid = area_grid(area.bbox, float(data["resolution"]))
        except DeepsnowError as exc:
            raise DeepsnowError(f"area {area.name!r}: {exc}") from None
        out.append({"name": area.name, "bbox": list(area.bbox), "grid": grid, "windows": area.windows, "notes": notes})
    return out


def fetched_bands(config: dict) -> tuple[str, ...]:
    """The reflectance bands a config's download fetches: the mask's plus ``patches.bands``."""
    from deepsnow.data.download.common import download_bands

    return download_bands(config["patches"]["bands"])


def _scene_cost(config: dict, grid) -> dict:
    data = config["data"]
    if data["source"] == "sentinelhub":
        return sentinelhub_cost(grid, data["sentinelhub"], fetched_bands(config))
    if data["source"] == "stac":
        return stac_cost(grid, fetched_bands(config))
    if data["source"] == "simulator":
        return simulator_cost(grid)
    raise DeepsnowError(f"key 'data.source': no plan for source {data['source']!r}")


def scene_bands(source: str, patch_bands=None) -> tuple[str, ...]:
    """The bands of the scene ``source`` writes (docs/formats.md): the simulator all ten reflectance
    bands, a download those it fetches (the mask's plus ``patch_bands``, default the RGB ones); then SCL
    and dataMask."""
    from deepsnow.data.download.common import download_bands
    from deepsnow.data.scene import AUX_BANDS, REFLECTANCE_BANDS

    if source == "simulator":
        return REFLECTANCE_BANDS + AUX_BANDS
    fetched = download_bands(patch_bands)
    return tuple(b for b in REFLECTANCE_BANDS if b in fetched) + AUX_BANDS


def _scene_bands(config: dict) -> tuple[str, ...]:
    return scene_bands(config["data"]["source"], config["patches"]["bands"])


def _area_entry(config: dict, area: dict, split: str) -> dict:
    g, p = area["grid"], config["patches"]
    n = windows(g.width, g.height, p["size"], p["stride"])
    seasons = {}
    for season, domain in DOMAINS.items():
        win = area["windows"].get(season)
        seasons[season] = {
            "domain": domain.upper(),
            "window": list(win) if win else None,
            "patches_max": n,
            "scene_bytes": g.width * g.height * SCENE_BAND_BYTES * len(_scene_bands(config)),
            **_scene_cost(config, g),
        }
    return {
        "name": area["name"],
        "split": split,
        "bbox_wgs84": area["bbox"],
        "crs": g.crs,
        "utm_zones": utm_zones(area["bbox"]) if area["bbox"] else [g.epsg % 100],
        "width_px": g.width,
        "height_px": g.height,
        "width_km": g.width * g.res / 1000,
        "height_km": g.height * g.res / 1000,
        "patches_max": n,
        "seasons": seasons,
        "notes": area["notes"],
    }


def _totals(entries: list[dict]) -> dict:
    patches = {f"{s}_{d}": 0 for s in ("train", "test") for d in DOMAINS.values()}
    totals = {"scenes": 0, "download_bytes": 0, "scene_bytes": 0, "processing_units": 0.0, "requests": {}}
    for e in entries:
        for season, s in e["seasons"].items():
            patches[f"{e['split']}_{DOMAINS[season]}"] += s["patches_max"]
            totals["scenes"] += 1
            for key in ("download_bytes", "scene_bytes", "processing_units"):
                totals[key] += s[key]
            for kind, count in s["requests"].items():
                totals["requests"][kind] = totals["requests"].get(kind, 0) + count
    return {"patches_max": patches, **totals}


def _training(config: dict, patches: dict, it_s: float | None, it_s_source: str | None) -> dict:
    gan, samples = config["gan"], config["samples"]
    epochs = gan["n_epochs"] + gan["n_epochs_decay"]
    per_epoch = math.ceil(max(patches["train_a"], patches["train_b"]) / gan["batch_size"])
    test = {d: patches[f"test_{d}"] for d in DOMAINS.values()}
    if samples["max_samples"]:
        test = {d: min(n, samples["max_samples"]) for d, n in test.items()}
    saved = len(range(gan["save_every"], epochs + 1, gan["save_every"])) + (epochs % gan["save_every"] != 0)
    return {
        "epochs": epochs,
        "batch_size": gan["batch_size"],
        "iterations_per_epoch": per_epoch,
        "iterations": per_epoch * epochs,
        "saved_epochs": saved,
        "test_translations": (test["a"] + test["b"]) * saved,
        "it_per_s": it_s,
        "throughput_source": it_s_source,
        "seconds": per_epoch * epochs / it_s if it_s else None,
    }


def make_plan(config: dict, label: str = "config", it_s: float | None = None, it_s_source: str | None = None) -> dict:
    """The plan of a validated config (the JSON ``deepsnow plan --json`` prints)."""
    from deepsnow.areas import aoi_names
    from deepsnow.data.split import choose_test_areas

    areas = _area_grids(config)
    test = set(choose_test_areas(aoi_names(config), config["split"]))
    entries = [_area_entry(config, a, "test" if a["name"] in test else "train") for a in areas]
    totals = _totals(entries)
    notes = [n for e in entries for n in e["notes"]] + _overlap_notes(entries)
    return {
        "configs": label,
        "run": config["run"],
        "source": config["data"]["source"],
        "scene_bands": list(_scene_bands(config)),
        "download_bands": [] if config["data"]["source"] == "simulator" else list(fetched_bands(config)),
        "resolution_m": float(config["data"].get("resolution", 10)),
        "patches": {"size": config["patches"]["size"], "stride": config["patches"]["stride"]},
        "areas": entries,
        "totals": totals,
        "training": _training(config, totals["patches_max"], it_s, it_s_source),
        "processing_unit_definition": PU_DEFINITION_URL,
        "notes": notes,
    }


def _overlap_notes(entries: list[dict]) -> list[str]:
    """A held-out area whose bbox overlaps a training area's: its test patches are not independent."""
    notes = []
    for t in (e for e in entries if e["split"] == "test" and e["bbox_wgs84"]):
        for e in (e for e in entries if e["split"] == "train" and e["bbox_wgs84"]):
            a, b = t["bbox_wgs84"], e["bbox_wgs84"]
            if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                notes.append(f"held-out area {t['name']} overlaps training area {e['name']}")
    return notes


# --------------------------------------------------------------------------- throughput


def run_throughput(run_dir, required: bool = False) -> tuple[float, str] | None:
    """Iterations per second of a finished run: its ``train/losses.csv`` iterations over the seconds of its
    ``benchmarks/train.tsv`` (the whole training job). None when the run has neither (an error if ``required``)."""
    run_dir = Path(run_dir)
    bench, losses = run_dir / "benchmarks" / "train.tsv", run_dir / "train" / "losses.csv"
    missing = [str(p) for p in (bench, losses) if not p.is_file()]
    if missing:
        if required:
            raise DeepsnowError(f"--from-run {run_dir}: not a finished run ({', '.join(missing)} not found)")
        return None
    try:
        with open(bench, newline="") as fh:
            seconds = [float(r["s"]) for r in csv.DictReader(fh, delimiter="\t")]
        with open(losses, newline="") as fh:
            iterations = sum(int(float(r["iterations"])) for r in csv.DictReader(fh))
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise DeepsnowError(
            f"{bench} / {losses}: expected Snakemake's benchmark TSV (column 's') and the training loss CSV "
            f"(column 'iterations'): {exc!r}"
        ) from None
    if not seconds or sum(seconds) <= 0 or iterations <= 0:
        raise DeepsnowError(f"{bench}: no training time or no iterations recorded")
    return iterations / (sum(seconds) / len(seconds)), f"{iterations} iterations in {bench}"


# --------------------------------------------------------------------------- text


def _size(n: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


def _duration(seconds: float) -> str:
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} days"
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def _requests(req: dict) -> str:
    return " + ".join(f"{n} {kind}" for kind, n in req.items()) or "none"


def format_plan(plan: dict) -> str:
    """The plan as the text ``deepsnow plan`` prints."""
    p, t, tr = plan["patches"], plan["totals"], plan["training"]
    lines = [
        f"run {plan['run']!r}, source {plan['source']} ({plan['configs']}); {p['size']} px patch windows at "
        f"stride {p['stride']}",
        "",
        f"{'area':<14}{'split':<7}{'grid px':<14}{'km':<14}{'zone':<6}{'windows':>7}  {'season':<9}"
        f"{'date window':<24}{'download':>10}  {'requests':<24}{'PU':>9}",
    ]
    for a in plan["areas"]:
        grid = f"{a['width_px']} x {a['height_px']}"
        km = f"{a['width_km']:.1f} x {a['height_km']:.1f}"
        zones = ",".join(map(str, a["utm_zones"]))
        head = f"{a['name']:<14}{a['split']:<7}{grid:<14}{km:<14}{zones:<6}{a['patches_max']:>7,}"
        for i, (season, s) in enumerate(a["seasons"].items()):
            win = "..".join(s["window"]) if s["window"] else "(simulated)"
            lines.append(
                f"{head if i == 0 else ' ' * len(head)}  {season:<9}{win:<24}{_size(s['download_bytes']):>10}  "
                f"{_requests(s['requests']):<24}{_pu(plan, s['processing_units']):>9}"
            )
    pm = t["patches_max"]
    lines += [
        "",
        f"totals: {t['scenes']} scenes; download {_size(t['download_bytes'])} "
        f"({_download_words(plan)}); scenes written {_size(t['scene_bytes'])} uncompressed "
        f"({len(plan['scene_bands'])} uint16 bands: {' '.join(plan['scene_bands'])}); "
        f"requests {_requests(t['requests'])}; "
        + (
            f"{t['processing_units']:,.3f} Sentinel Hub processing units ({PU_DEFINITION_URL})"
            if _sh(plan)
            else "no Sentinel Hub processing units"
        ),
        f"candidate patches (before cloud, nodata and snow rejection): train A {pm['train_a']:,}, train B "
        f"{pm['train_b']:,}, test A {pm['test_a']:,}, test B {pm['test_b']:,}",
        f"training: {tr['epochs']} epochs x {tr['iterations_per_epoch']:,} iterations (max(|trainA|, |trainB|) / "
        f"batch {tr['batch_size']}, every candidate kept) = {tr['iterations']:,} iterations; "
        f"{tr['test_translations']:,} test-patch translations over {tr['saved_epochs']} saved epochs",
    ]
    if tr["it_per_s"]:
        lines.append(
            f"estimated training time: {_duration(tr['seconds'])} at {tr['it_per_s']:.3g} it/s "
            f"({tr['throughput_source']})"
        )
    else:
        lines.append("estimated training time: unknown (give --train-it-s, or --from-run results/<finished run>)")
    lines += [f"note: {n}" for n in plan["notes"]]
    return "\n".join(lines)


def _sh(plan: dict) -> bool:
    return plan["source"] == "sentinelhub"


def _pu(plan: dict, pu: float) -> str:
    return f"{pu:,.3f}" if _sh(plan) else "-"


def _download_words(plan: dict) -> str:
    """What the download's bytes are, for the bands the plan's download fetches."""
    source, bands = plan["source"], plan.get("download_bands") or []
    if source == "sentinelhub":
        return f"Process API responses: {len(bands) + 2} bands ({' '.join(bands)} SCL dataMask) x uint16 per pixel"
    if source == "stac":
        at10 = [b for b in bands if STAC_ASSETS[b][0] == 10]
        at20 = [b for b in bands if STAC_ASSETS[b][0] == 20]
        return (
            f"pixels of the COG read windows, uncompressed: {' '.join(at10)} uint16 at 10 m, "
            f"{' '.join(at20)} uint16 and SCL uint8 at 20 m"
        )
    return {"simulator": "nothing: scenes are simulated"}.get(source, source)


# --------------------------------------------------------------------------- command


def register(sub: argparse._SubParsersAction) -> None:
    p = plain_command(
        sub,
        "plan",
        _plan,
        description="Merge the config files over config.yaml as snakemake --configfile does, validate them, and "
        "print, before anything is downloaded or trained: per area and season the grid (px, km), the candidate "
        "patch windows, the bytes and requests of the download and the Sentinel Hub processing "
        f"units ({PU_DEFINITION_URL}); totals per domain and split; the training iterations, and the training "
        "time when a throughput is known. Invalid configs, areas across the antimeridian or over more than two "
        "UTM zones are refused (exit 2). See docs/plan.md.",
    )
    p.add_argument("configs", nargs="+", metavar="CONFIG", help="config files merged over config.yaml, in order")
    p.add_argument("--json", action="store_true", help="print the plan as JSON (stable keys) instead of text")
    p.add_argument(
        "--train-it-s",
        type=_positive,
        default=None,
        metavar="IT_PER_S",
        help="training iterations per second, for the time estimate",
    )
    p.add_argument(
        "--from-run",
        default=None,
        metavar="DIR",
        help="a finished run's folder (results/<run>) whose benchmarks/train.tsv and train/losses.csv give the "
        "throughput (default: results/<the config's run> when finished)",
    )


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _plan(args: argparse.Namespace) -> None:
    """Before you spend processing units: areas, grids, downloads, PUs, patches and training of a config."""
    config, label = load_config(args.configs)
    it_s, source = args.train_it_s, "--train-it-s" if args.train_it_s else None
    if it_s is None:
        found = run_throughput(args.from_run or Path("results") / config["run"], required=bool(args.from_run))
        if found:
            it_s, source = found
    plan = make_plan(config, label, it_s, source)
    print(json.dumps(plan, indent=2) if args.json else format_plan(plan))
