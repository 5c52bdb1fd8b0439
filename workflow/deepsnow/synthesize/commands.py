"""Subcommands ``deepsnow synthesize scene`` (one scene's product) and ``deepsnow synthesize catalog``."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from deepsnow.commands import Made, command_group, path_options, rgb_options

log = logging.getLogger("deepsnow.synthesize")


def register(sub: argparse._SubParsersAction) -> None:
    """Synthetic after-snowfall products: whole scenes translated to snow as COGs, and their STAC catalog.

    'scene' translates one scene with a chosen checkpoint into a Cloud-Optimized GeoTIFF on exactly the
    input's grid (synthetic/<name>/snow.tif and snow.summary.json); 'catalog' writes the STAC catalog of all
    products (synthetic/catalog.json)."""
    command = command_group(sub, "synthesize", register.__doc__, section="synthesize", code="synthesize")
    p = command("scene", _scene, stage="synthesize")
    path_options(p, nargs="+", checkpoints="kept checkpoints (train/checkpoints/epoch_NNN.pt); synthesize.epoch picks one")
    path_options(
        p,
        input="the snow-free scene: a deepsnow scene GeoTIFF (B04 B03 B02, or a reflectance checkpoint's bands, "
        "among its bands) or, for an RGB checkpoint, a 3-band uint8 RGB GeoTIFF; 10 m pixels",
        output="synthetic/<name>/snow.tif (COG)",
        summary="synthetic/<name>/snow.summary.json (what was made from what, read by 'catalog')",
    )
    path_options(
        p,
        required=False,
        metrics="metrics/metrics.csv (synthesize.epoch best:<column>)",
        reflectance_output="synthetic/<name>/snow_reflectance.tif: the generator's reflectance (reflectance "
        "checkpoints, required) or the approximate inverse of the RGB (RGB checkpoints, synthesize.reflectance)",
        after_real="the real snow-season scene of the area, recorded for the catalog (not read)",
        truth="the simulator's true snow scene, recorded for the catalog (not read)",
    )
    p.add_argument("--name", required=True, help="the product's name (its folder under synthetic/)")
    rgb_options(p)
    p = command("catalog", _catalog, stage="synthesize_catalog")
    path_options(p, nargs="+", products="synthetic/<name>/snow.summary.json of every product")
    path_options(p, output="synthetic/catalog.json (items go to synthetic/<name>/<name>.json)")
    p.add_argument("--run", default="deepsnow", help="run name, part of the catalog's id and title")


def _scene(args, params) -> Made:
    """Translate one whole scene to snow with the checkpoint synthesize.epoch names; write it as a COG.

    Checks the input (10 m pixels on a projected CRS in metres; a 3-band input must be uint8), picks the
    checkpoint among --checkpoints (last, epoch N, or best:<column> of --metrics), translates the scene
    with its G_A tile by tile (synthesize.norm scene: whole-scene instance-norm statistics, seam-free)
    and writes --output, a Cloud-Optimized GeoTIFF on exactly the input's grid (3-band uint8 RGB, internal
    mask from dataMask, 512 px tiles, DEFLATE, overviews), --reflectance-output (uint16 reflectance x 10000,
    band scale 1e-4, bands named) and --summary for the catalog. A reflectance checkpoint (patches.encoding
    reflectance) translates the scene's bands as 'deepsnow translate' does: --reflectance-output is then
    required and is the generator's output in the checkpoint's bands, --output its RGB composite rendered
    with --rgb-max / --rgb-gamma. An RGB checkpoint writes --reflectance-output only with
    synthesize.reflectance, as an approximate inverse of the RGB rendering. Every file is complete or absent."""
    from deepsnow.io import atomic_output
    from deepsnow.synthesize import products

    checkpoint, chosen = products.choose_checkpoint(params["epoch"], args.checkpoints, args.metrics)
    log.info("checkpoint %s: %s", checkpoint, chosen)
    summary = products.synthesize_scene(
        params, checkpoint, args.input, args.output, args.reflectance_output, (args.rgb_max, args.rgb_gamma)
    )
    record = {
        "name": args.name, "after_synthetic": str(args.output), "before": str(args.input),
        "after_synthetic_reflectance": str(args.reflectance_output) if args.reflectance_output else None,
        "after_real": str(args.after_real) if args.after_real else None,
        "truth": str(args.truth) if args.truth else None, "checkpoint": str(checkpoint), "chosen": chosen,
        "rgb_max": args.rgb_max, "rgb_gamma": args.rgb_gamma,
        **summary,
    }
    with atomic_output(args.summary) as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")
    outputs = [args.output, args.summary] + ([args.reflectance_output] if args.reflectance_output else [])
    inputs = [checkpoint, args.input] + ([args.metrics] if args.metrics else [])
    return Made(outputs, inputs=inputs, extra={"checkpoint_choice": chosen, **summary})


def _catalog(args, params) -> Made:
    """Write the STAC catalog of the synthetic products (pystac; validated offline before it is written).

    One item per product (from its snow.summary.json) with the assets after_synthetic, before, after_real (when
    there is one), truth (simulator data) and checkpoint, the proj and eo extensions, datetimes from the
    scene tags and links to each asset's provenance sidecar. The items are written first, the catalog
    last, each atomically."""
    from deepsnow.synthesize.catalog import write_catalog

    written = write_catalog(args.products, args.output, run=args.run)
    log.info("STAC catalog of %d products -> %s", len(args.products), args.output)
    return Made([Path(p) for p in written], inputs=list(args.products), extra={"items": len(written) - 1})
