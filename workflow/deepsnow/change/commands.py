"""Subcommands ``deepsnow change area`` (one held-out area), ``catalog`` (the benchmark's STAC
collection), ``score`` (any score map on a benchmark area) and ``summary``."""

from __future__ import annotations

import argparse
import logging

from deepsnow.commands import Made, command_group, path_options, rgb_options

log = logging.getLogger("deepsnow.change")


def register(sub: argparse._SubParsersAction) -> None:
    """Change-detection testbed: anomalous change detectors on real, synthetic and true after-images.

    'area' runs the anomalous change detectors (change.detectors: four built-ins, and those installed
    packages provide through the entry-point group 'deepsnow.detectors') on one held-out area's pairs (before, real after), (before,
    synthetic after) and (before, true after; simulator) with the same implanted pixel-swap changes
    (change/<area>.json); 'summary' tabulates all areas (change/summary.csv, change/summary.json with the
    AUC gaps and Kendall's tau between the detectors' AUC rankings on the pairs). 'area --benchmark' also
    writes the area's pairs and implanted-change truth as COGs (change/benchmark/<area>), 'catalog' their STAC
    collection, and 'score' scores any detector's score map on them as the built-ins are scored."""
    command = command_group(sub, "change", register.__doc__, section="change", code="change")
    p = command("area", _area, stage="change")
    path_options(
        p,
        before="scenes/<area>/snowfree.tif (scene GeoTIFF)",
        before_mask="masks/<area>/snowfree.tif",
        real="scenes/<area>/snow.tif, the real after-scene (another date)",
        real_mask="masks/<area>/snow.tif",
        synthetic="synthetic/<area>/snow.tif, the synthesize stage's RGB product of the before scene",
        output="change/<area>.json (per detector and pair: AUC, FAR, ROC curve, score histogram)",
    )
    path_options(
        p,
        required=False,
        synthetic_reflectance="synthetic/<area>/snow_reflectance.tif: adds the reflectance band set, in its bands "
        "(a reflectance run's checkpoint bands; an RGB run's synthesize.reflectance approximation, B04 B03 B02)",
        truth="truth/<area>/snow.tif, the simulator's true after-scene (simulator data): adds the truth pair",
        benchmark="change/benchmark/<area>: also write the area's benchmark there (before.tif, after_<pair>.tif, "
        "anomalies.tif; the reflectance band set in its reflectance/ folder)",
    )
    p.add_argument("--area", required=True, help="the area's name (as in the config's AOIs)")
    rgb_options(p)
    p = command("catalog", _catalog, section=None, stage="change_benchmark")
    path_options(p, nargs="+", benchmarks="change/benchmark/<area> of every held-out area")
    path_options(p, output="change/benchmark/catalog.json (the STAC collection; items beside the files)")
    p.add_argument("--run", default="deepsnow", help="the run's name, in the collection's id and title")
    p = command("score", _score, section=None, stage="change_score")
    path_options(p, benchmark="change/benchmark/<area> (or its reflectance/ folder) of a run")
    p.add_argument("--pair", metavar="real|synthetic|truth", help="the pair of a --scores FILE given without PAIR=")
    p.add_argument("--scores", action="append", required=True, metavar="[PAIR=]FILE",
                   help="a single-band score raster on the benchmark's grid (larger = more anomalous; NaN, nodata "
                   "or masked = not scored); once per pair as PAIR=FILE (PAIR real, synthetic or truth)")
    p.add_argument("--detector", default="scores", help="the detector column of the rows (default: scores)")
    p.add_argument("--json", action="store_true", help="print JSON (rows keyed as change/summary.csv) instead of a table")
    p = command("summary", _summary, stage="change_summary")
    path_options(p, nargs="+", areas="change/<area>.json of every held-out area")
    path_options(
        p,
        output="change/summary.csv",
        output_json="change/summary.json (rows, gaps, ROC curves)",
        output_html="change/summary.html (the report's page: the gaps in words and the table)",
    )


def _area(args, params) -> Made:
    """Compare anomalous change detectors on one area's real, synthetic and true after-images.

    The pixels valid in every image (usable mask classes, dataMask, the product's mask) get seeded
    pixel-swap blobs (change.implant_fraction, change.blob_px, change.seed) at the same locations
    for every pair; at most change.max_pixels of them are used (a seeded uniform sample). Each
    detector of change.detectors (built in: rx_difference, chronochrome, covariance_equalization,
    hyperbolic_acd; or an installed 'deepsnow.detectors' entry point) scores every pair; the record holds per detector and pair the ROC AUC for the implants, the false-alarm rate
    at the threshold giving change.far on the real pair, the untouched pixels' score distribution
    and the ROC curve. Band sets: rgb (the scenes rendered as the patches are), plus reflectance
    with --synthetic-reflectance, in that product's bands (its band descriptions), read by name from every
    scene. Errors (exit 2, nothing written): images on different grids, no
    valid pixels, a band constant over the pixels used, change.implant_fraction outside (0, 0.5), an
    unknown detector name, an installed detector that fails or returns scores of the wrong shape or not
    finite, a --synthetic-reflectance whose bands are not uint16 named Sentinel-2 bands, a scene lacking
    one of its bands."""
    from deepsnow.change import benchmark as bench
    from deepsnow.change import evaluate, implant
    from deepsnow.change.pixels import RGB, Image, product_bands
    from deepsnow.data.scene import window_rows
    from deepsnow.io import write_json

    implant.check_fraction(params["implant_fraction"])
    images = [
        Image("before", args.before, "scene", mask=args.before_mask),
        Image("real", args.real, "scene", mask=args.real_mask),
        Image("synthetic", args.synthetic, "product", reflectance=args.synthetic_reflectance),
    ] + ([Image("truth", args.truth, "scene")] if args.truth else [])
    band_sets = {"rgb": RGB} | ({"reflectance": product_bands(args.synthetic_reflectance)}
                                if args.synthetic_reflectance else {})
    record = evaluate.evaluate_area(
        args.area, images, params, band_sets, (args.rgb_max, args.rgb_gamma), window_rows(), args.benchmark
    )
    record["rgb"] = {"rgb_max": args.rgb_max, "rgb_gamma": args.rgb_gamma}
    write_json(args.output, record)
    inputs = [p for im in images for p in (im.path, im.mask, im.reflectance) if p]
    written = bench.files(args.benchmark, band_sets, record["pairs"]) if args.benchmark else []
    return Made([args.output, *written], inputs=inputs, extra={"area": args.area, "n_pixels": record["n_pixels"]})


def _catalog(args, params) -> Made:
    """Write the benchmark's STAC collection (pystac; validated offline before it is written).

    One item per --benchmarks folder (change/benchmark/<area>, as 'change area --benchmark' wrote it) at
    <folder>/<area>.json: the images as assets, anomalies.tif described with the STAC label extension
    (a raster label, classes 0 untouched and 1 implanted, task segmentation), the projection extension,
    and the implant parameters, seed and pixel counts as properties. The items first, the collection
    (--output) last, each atomically. A missing or unreadable benchmark file: exit 2 naming it."""
    from deepsnow.change.catalog import write_catalog

    written = write_catalog(args.benchmarks, args.output, run=args.run)
    log.info("STAC collection of %d benchmark areas -> %s", len(args.benchmarks), args.output)
    inputs = [f for d in args.benchmarks for f in sorted(d.rglob("*.tif"))]
    return Made(written, inputs=inputs, extra={"items": len(written) - 1})


def _score(args, params) -> None:
    """Score your own detector's score map on a benchmark area, as the built-in detectors are scored.

    Reads --scores, a single-band raster on the grid of the benchmark's anomalies.tif (larger = more
    anomalous; NaN, nodata or masked = not scored), by row windows, at the pixels the benchmark uses, and
    prints the row change/summary.csv has for a built-in detector (auc, far_at_real_threshold,
    pd_at_real_threshold, untouched_median, untouched_p99, n_pixels, n_implanted; the same code), the
    detection rates at false-alarm rates 0.001, 0.01, 0.1, and with the real and synthetic pairs'
    scores the gaps |AUC_synthetic - AUC_real| (and with truth, against truth). The threshold of
    far/pd_at_real_threshold is the real pair's: the quantile 1 - far (anomalies.tif's DEEPSNOW_FAR) of
    its untouched pixels' scores, so it needs --scores real=FILE (without it those two are NaN). Only
    pixels scored in every given pair count. Errors (exit 2): a missing benchmark file or score file, a
    score raster on another grid (CRS, transform) or of another size, with several bands, no pixel
    scored (all NaN), constant or infinite scores."""
    import json

    from deepsnow.change import score
    from deepsnow.data.scene import window_rows

    files = score.parse_scores(args.scores, args.pair)
    result = score.score(args.benchmark, files, args.detector, window_rows())
    print(json.dumps(score.json_safe(result), indent=2) if args.json else score.table(result))


def _summary(args, params) -> Made:
    """Tabulate every area's detectors and pairs; state the AUC gap between synthetic and real snow.

    Writes --output (CSV: area, bands (the band set: rgb or reflectance), band_names (its bands, e.g. B04 B03
    B02), detector, pair, auc, far_at_real_threshold, pd_at_real_threshold,
    untouched_median, untouched_p99, n_pixels, n_implanted) and --output-json (the rows, per band set
    its bands and per detector the mean AUC per pair and |AUC_synthetic - AUC_real|, the detector rankings, per area
    and band set Kendall's tau between the detectors' AUCs on synthetic and real (and truth and real)
    pairs, and every area's ROC curves and histograms for Figure 10) and --output-html (the report's
    page: per band set the gap sentence, the tau table, then the rows), each atomically."""
    import csv
    import json

    from deepsnow import DeepsnowError
    from deepsnow.change import evaluate, ranking
    from deepsnow.io import atomic_output, write_json

    records = []
    for path in args.areas:
        try:
            records.append(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            raise DeepsnowError(f"{path}: not a readable change record: {exc}") from exc
    rows = evaluate.summary_rows(records)
    gaps = evaluate.gaps(rows)
    agreement = ranking.agreement(rows)
    for which, g in gaps.items():
        log.info("%s: %s", which, evaluate.gap_sentence(g))
    with atomic_output(args.output) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=evaluate.SUMMARY_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    sentences = {w: evaluate.gap_sentence(g) for w, g in gaps.items()}
    write_json(args.output_json, {"rows": rows, "gaps": gaps, "sentences": sentences,
                                  "ranking_agreement": agreement, "areas": records})
    with atomic_output(args.output_html) as tmp:
        tmp.write_text(_html(rows, sentences, agreement))
    outputs = [args.output, args.output_json, args.output_html]
    return Made(outputs, inputs=list(args.areas), extra={"areas": len(records), "sentences": sentences})


def _html(rows: list[dict], sentences: dict, agreement: list[dict]) -> str:
    """The summary as a standalone HTML page (pandas' tables): the gap sentences, the ranking
    agreement (Kendall's tau per area), then the rows."""
    import html

    import pandas as pd

    from deepsnow.change import ranking

    words = "".join(f"<p><b>{html.escape(w)}</b>: {html.escape(s)}</p>" for w, s in sentences.items())
    table = pd.DataFrame(rows).to_html(index=False, float_format=lambda v: f"{v:.4f}", border=1)
    taus = pd.DataFrame(agreement, columns=ranking.COLUMNS).to_html(
        index=False, float_format=lambda v: f"{v:.4f}", na_rep="NaN", border=1)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Change-detection testbed</title></head>"
            f"<body><h3>Change-detection testbed: real vs synthetic vs true after-images</h3>{words}"
            "<p>Do the pairs rank the detectors alike? Kendall's tau between the detectors' AUCs per area "
            f"(1: the same order, -1: reversed):</p>{taus}<p>Every area, band set, detector and pair:</p>{table}"
            "</body></html>\n")
