"""Subcommands of the data stages: simulate, download, mask, patches, split."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from deepsnow.commands import Made, path_options, stage_command

log = logging.getLogger("deepsnow.data")


def register(sub: argparse._SubParsersAction) -> None:
    for add in (_simulate_command, _download_command, _mask_command, _patches_command, _split_command):
        add(sub)


def _simulate_command(sub: argparse._SubParsersAction) -> None:
    p = stage_command(sub, "simulate", _simulate, section="data")
    p.add_argument("--aoi", required=True, help="simulated area name, sim00, sim01, ...")
    path_options(
        p,
        snowfree="output GeoTIFF of the snow-free season",
        snow="output GeoTIFF of the snow season",
        truth="output GeoTIFF: the snow-free scene's area in the snow season (snowy above the snow line)",
    )
    path_options(
        p,
        required=False,
        landcover="output 2-band uint8 GeoTIFF: land-cover class and snow fraction (optional)",
        snowfall="output GeoTIFF: the same after a snowfall over the whole area, the paired errors' truth (optional)",
    )


def _download_command(sub: argparse._SubParsersAction) -> None:
    p = stage_command(sub, "download", _download, section="data")
    p.add_argument("--aoi", required=True, help="area name (data.aois or data.aoi_file)")
    p.add_argument("--season", required=True, choices=["snowfree", "snow"], help="which date window")
    path_options(p, output="output scene GeoTIFF, e.g. scenes/<aoi>/<season>.tif")
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
    p.add_argument(
        "--bands",
        nargs="+",
        default=None,
        metavar="BAND",
        help="the run's patches.bands (default B04 B03 B02): the download fetches these and the mask's "
        "B03 B08 B11, and the scene holds exactly those",
    )


def _mask_command(sub: argparse._SubParsersAction) -> None:
    p = stage_command(sub, "mask", _mask, section="mask")
    path_options(
        p,
        scene="input scene GeoTIFF",
        output="output class GeoTIFF",
        summary="output JSON with class counts and fractions",
    )


def _patches_command(sub: argparse._SubParsersAction) -> None:
    p = stage_command(sub, "patches", _patches, section="patches")
    path_options(
        p,
        scene="input scene GeoTIFF",
        mask="class GeoTIFF from 'deepsnow mask'",
        output="output .npz shard",
        table="output .csv of all candidate windows",
    )
    path_options(
        p,
        required=False,
        truth="optional true snow-season scene (simulator): array 'truth'",
        truth_snowfall="optional true scene after a snowfall over the whole area (simulator): array 'truth_snowfall'",
    )
    path_options(
        p, required=False, landcover="optional land-cover GeoTIFF (simulator): per-patch class and snow fractions"
    )


def _split_command(sub: argparse._SubParsersAction) -> None:
    p = stage_command(sub, "split", _split, section="split")
    path_options(p, nargs="+", shards="patch shards (.npz)")
    path_options(p, outdir="output folder")


def _simulate(args, params) -> Made:
    """Simulate one area's snow-free and snow-season Sentinel-2 L2A scenes (offline source).

    Write a georeferenced 12-band scene GeoTIFF (the ten L2A reflectance bands B02 B03 B04 B05 B06 B07 B08
    B8A B11 B12, then SCL and dataMask) for the snow-free and the snow season of one simulated area, plus the true snow-season version of the snow-free scene, with
    --snowfall the same after a snowfall over the whole area and with --landcover the land-cover labels
    (class per pixel, snow fraction). Deterministic for a given seed."""
    from deepsnow.data.simulator.area import simulate_area

    summary = simulate_area(
        args.aoi, params, args.snowfree, args.snow, args.truth, args.landcover, snowfall_path=args.snowfall
    )
    outputs = [args.snowfree, args.snow, args.truth] + [p for p in (args.landcover, args.snowfall) if p]
    return Made(outputs, seed=summary.get("seed"), extra=summary)


def _download(args, params) -> Made:
    """Download one area's Sentinel-2 L2A scene of one season (Sentinel Hub / CDSE or a STAC API).

    Search the season window for Sentinel-2 L2A acquisitions under the maximum cloud cover and write the
    area's scene GeoTIFF (the mask's B03 B08 B11 and --bands as reflectance x 10000, SCL, dataMask, by
    name; an RGB run's B02 B03 B04 B08 B11; 10 m, the UTM
    zone of the area's centre) in the format of the simulator, with a provenance sidecar. sentinelhub: Catalog search,
    then Process API requests (least-cloudy mosaicking), credentials from SH_CLIENT_ID/SH_CLIENT_SECRET or
    data.sentinelhub.profile. stac: pystac-client search (default Element 84 Earth Search), windowed COG
    reads of the least-cloudy item. With --cache a rerun makes no request."""
    from deepsnow.data.download import download_scene

    summary = download_scene(
        params, args.aoi, args.season, args.output, cache=args.cache, source=args.source, bands=args.bands
    )
    return Made([args.output], inputs=[params["aoi_file"]] if params.get("aoi_file") else [], extra=summary)


def _mask(args, params) -> Made:
    """Label every pixel of a scene: invalid, clear, water, snow, cloud, cloud shadow.

    Per-pixel classes from SCL and NDSI (see docs/formats.md). Snow is never counted as cloud."""
    from deepsnow.data import mask

    summary = mask.mask_scene(args.scene, params, args.output, args.summary)
    return Made([args.output, args.summary], inputs=[args.scene], extra={"fractions": summary.get("fractions")})


def _patches(args, params) -> Made:
    """Cut labelled RGB patches from a scene and its mask.

    Cut size x size windows, reject those with too little valid data or too much cloud, label each snowy or
    snow-free, drop ambiguous ones and those that do not match the scene's season. Writes one .npz shard of
    kept patches and a .csv of every candidate window with the reason for rejection."""
    from deepsnow.data import patches

    summary = patches.cut_patches(
        args.scene, args.mask, params, args.output, args.table, truth_path=args.truth,
        landcover_path=args.landcover, snowfall_path=args.truth_snowfall,
    )
    inputs = [args.scene, args.mask] + [p for p in (args.truth, args.truth_snowfall, args.landcover) if p]
    return Made([args.output, args.table], inputs=inputs, extra=summary)


def _split(args, params) -> Made:
    """Assemble domains A (snow-free) and B (snowy) and split train/test by area.

    Concatenate patch shards into trainA/trainB/testA/testB .npz files. Whole areas are held out for
    testing, so no test patch overlaps a training area."""
    from deepsnow.data import split

    summary = split.split_dataset(args.shards, params, args.outdir)
    outs = [args.outdir / f"{n}.npz" for n in ("trainA", "trainB", "testA", "testB")]
    outs += [args.outdir / "manifest.csv", args.outdir / "summary.json"]
    return Made(outs, inputs=args.shards, extra={"counts": summary.get("counts")})
