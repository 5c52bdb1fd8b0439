"""Subcommands of the data stages: simulate, download, mask, patches, split."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from deepsnow import provenance
from deepsnow.stages import STAGE_CODE

log = logging.getLogger("deepsnow.data")


def register(sub: argparse._SubParsersAction) -> None:
    from deepsnow.cli import add_params_argument

    p = sub.add_parser(
        "simulate",
        help="simulate one area's snow-free and snow-season Sentinel-2 L2A scenes (offline source)",
        description="Write a georeferenced 7-band scene GeoTIFF (B04 B03 B02 B08 B11 SCL dataMask) for the "
        "snow-free and the snow season of one simulated area, plus the true snow-covered version of the "
        "snow-free scene. Deterministic for a given seed.",
    )
    add_params_argument(p, "data")
    p.add_argument("--aoi", required=True, help="simulated area name, sim00, sim01, ...")
    p.add_argument("--snowfree", required=True, type=Path, help="output GeoTIFF of the snow-free season")
    p.add_argument("--snow", required=True, type=Path, help="output GeoTIFF of the snow season")
    p.add_argument("--truth", required=True, type=Path, help="output GeoTIFF: the snow-free scene after snowfall")
    p.set_defaults(func=_simulate)

    p = sub.add_parser(
        "download",
        help="download one area's Sentinel-2 L2A scene of one season (Sentinel Hub / CDSE or a STAC API)",
        description="Search the season window for Sentinel-2 L2A acquisitions under the maximum cloud cover "
        "and write the area's scene GeoTIFF (B04 B03 B02 B08 B11 SCL dataMask, reflectance x 10000, 10 m, "
        "the UTM zone of the area's centre) in the format of the simulator, with a provenance sidecar. "
        "sentinelhub: Catalog search, then Process API requests (least-cloudy mosaicking), credentials from "
        "SH_CLIENT_ID/SH_CLIENT_SECRET or data.sentinelhub.profile. stac: pystac-client search (default Element 84 "
        "Earth Search), windowed COG reads of the least-cloudy item. With --cache a rerun makes no request.",
    )
    add_params_argument(p, "data")
    p.add_argument("--aoi", required=True, help="area name (data.aois or data.aoi_file)")
    p.add_argument("--season", required=True, choices=["snowfree", "snow"], help="which date window")
    p.add_argument("--output", required=True, type=Path, help="output scene GeoTIFF, e.g. scenes/<aoi>/<season>.tif")
    p.add_argument(
        "--source",
        choices=["sentinelhub", "stac"],
        default=None,
        help="override data.source (default: the config's source)",
    )
    p.add_argument(
        "--cache",
        type=Path,
        default=None,
        metavar="DIR",
        help="keep search results and responses here; a rerun then makes no request",
    )
    p.set_defaults(func=_download)

    p = sub.add_parser(
        "mask",
        help="label every pixel of a scene: invalid, clear, water, snow, cloud, cloud shadow",
        description="Per-pixel classes from SCL and NDSI (see docs/formats.md). Snow is never counted as cloud.",
    )
    add_params_argument(p, "mask")
    p.add_argument("--scene", required=True, type=Path, help="input scene GeoTIFF")
    p.add_argument("--output", required=True, type=Path, help="output class GeoTIFF")
    p.add_argument("--summary", required=True, type=Path, help="output JSON with class counts and fractions")
    p.set_defaults(func=_mask)

    p = sub.add_parser(
        "patches",
        help="cut labelled RGB patches from a scene and its mask",
        description="Cut size x size windows, reject those with too little valid data or too much cloud, label "
        "each snowy or snow-free, drop ambiguous ones and those that do not match the scene's season. Writes "
        "one .npz shard of kept patches and a .csv of every candidate window with the reason for rejection.",
    )
    add_params_argument(p, "patches")
    p.add_argument("--scene", required=True, type=Path)
    p.add_argument("--mask", required=True, type=Path, help="class GeoTIFF from 'deepsnow mask'")
    p.add_argument("--truth", type=Path, default=None, help="optional true snow-covered scene (simulator)")
    p.add_argument("--output", required=True, type=Path, help="output .npz shard")
    p.add_argument("--table", required=True, type=Path, help="output .csv of all candidate windows")
    p.set_defaults(func=_patches)

    p = sub.add_parser(
        "split",
        help="assemble domains A (snow-free) and B (snowy) and split train/test by area",
        description="Concatenate patch shards into trainA/trainB/testA/testB .npz files. Whole areas are held "
        "out for testing, so no test patch overlaps a training area.",
    )
    add_params_argument(p, "split")
    p.add_argument("--shards", required=True, nargs="+", type=Path, help="patch shards (.npz)")
    p.add_argument("--outdir", required=True, type=Path, help="output folder")
    p.set_defaults(func=_split)


def _simulate(args) -> None:
    from deepsnow.config import parse_params
    from deepsnow.data import simulate

    params = parse_params(args.params, "data")
    started = provenance.now()
    summary = simulate.simulate_area(args.aoi, params, args.snowfree, args.snow, args.truth)
    provenance.record(
        [args.snowfree, args.snow, args.truth],
        stage="simulate",
        section="data",
        config=params,
        seed=summary.get("seed"),
        started=started,
        code=STAGE_CODE["simulate"],
        extra=summary,
    )


def _download(args) -> None:
    from deepsnow.config import parse_params
    from deepsnow.data.download import download_scene

    params = parse_params(args.params, "data")
    started = provenance.now()
    summary = download_scene(params, args.aoi, args.season, args.output, cache=args.cache, source=args.source)
    provenance.record(
        [args.output],
        stage="download",
        section="data",
        inputs=[params["aoi_file"]] if params.get("aoi_file") else [],
        config=params,
        started=started,
        code=STAGE_CODE["download"],
        extra=summary,
    )


def _mask(args) -> None:
    from deepsnow.config import parse_params
    from deepsnow.data import mask

    params = parse_params(args.params, "mask")
    started = provenance.now()
    summary = mask.mask_scene(args.scene, params, args.output, args.summary)
    provenance.record(
        [args.output, args.summary],
        stage="mask",
        inputs=[args.scene],
        config=params,
        started=started,
        code=STAGE_CODE["mask"],
        extra={"fractions": summary.get("fractions")},
    )


def _patches(args) -> None:
    from deepsnow.config import parse_params
    from deepsnow.data import patches

    params = parse_params(args.params, "patches")
    started = provenance.now()
    summary = patches.cut_patches(args.scene, args.mask, params, args.output, args.table, truth_path=args.truth)
    inputs = [args.scene, args.mask] + ([args.truth] if args.truth else [])
    provenance.record(
        [args.output, args.table],
        stage="patches",
        inputs=inputs,
        config=params,
        started=started,
        code=STAGE_CODE["patches"],
        extra=summary,
    )


def _split(args) -> None:
    from deepsnow.config import parse_params
    from deepsnow.data import split

    params = parse_params(args.params, "split")
    started = provenance.now()
    summary = split.split_dataset(args.shards, params, args.outdir)
    outs = [args.outdir / f"{n}.npz" for n in ("trainA", "trainB", "testA", "testB")]
    outs += [args.outdir / "manifest.csv", args.outdir / "summary.json"]
    provenance.record(
        outs,
        stage="split",
        inputs=args.shards,
        config=params,
        seed=params["seed"],
        started=started,
        code=STAGE_CODE["split"],
        extra={"counts": summary.get("counts")},
    )
