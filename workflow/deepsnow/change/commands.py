"""Subcommands ``deepsnow change area`` (one held-out area) and ``deepsnow change summary``."""

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
    AUC gaps and Kendall's tau between the detectors' AUC rankings on the pairs)."""
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
        synthetic_reflectance="synthetic/<area>/snow_reflectance.tif (synthesize.reflectance): adds the "
        "reflectance band set",
        truth="truth/<area>/snow.tif, the simulator's true after-scene (simulator data): adds the truth pair",
    )
    p.add_argument("--area", required=True, help="the area's name (as in the config's AOIs)")
    rgb_options(p)
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
    with --synthetic-reflectance. Errors (exit 2, nothing written): images on different grids, no
    valid pixels, a band constant over the pixels used, change.implant_fraction outside (0, 0.5), an
    unknown detector name, an installed detector that fails or returns scores of the wrong shape or not
    finite."""
    from deepsnow.change import evaluate, implant
    from deepsnow.change.pixels import Image
    from deepsnow.data.scene import window_rows
    from deepsnow.io import write_json

    implant.check_fraction(params["implant_fraction"])
    images = [
        Image("before", args.before, "scene", mask=args.before_mask),
        Image("real", args.real, "scene", mask=args.real_mask),
        Image("synthetic", args.synthetic, "product", reflectance=args.synthetic_reflectance),
    ] + ([Image("truth", args.truth, "scene")] if args.truth else [])
    band_sets = ["rgb"] + (["reflectance"] if args.synthetic_reflectance else [])
    record = evaluate.evaluate_area(
        args.area, images, params, band_sets, (args.rgb_max, args.rgb_gamma), window_rows()
    )
    record["rgb"] = {"rgb_max": args.rgb_max, "rgb_gamma": args.rgb_gamma}
    write_json(args.output, record)
    inputs = [p for im in images for p in (im.path, im.mask, im.reflectance) if p]
    return Made([args.output], inputs=inputs, extra={"area": args.area, "n_pixels": record["n_pixels"]})


def _summary(args, params) -> Made:
    """Tabulate every area's detectors and pairs; state the AUC gap between synthetic and real snow.

    Writes --output (CSV: area, bands, detector, pair, auc, far_at_real_threshold, pd_at_real_threshold,
    untouched_median, untouched_p99, n_pixels, n_implanted) and --output-json (the rows, per band set
    and detector the mean AUC per pair and |AUC_synthetic - AUC_real|, the detector rankings, per area
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
