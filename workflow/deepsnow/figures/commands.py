"""Subcommand ``deepsnow figures --figure N``: one figure, PNG and PDF (and Figure 7's CSV)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from deepsnow import DeepsnowError
from deepsnow.commands import Made, stage_command

log = logging.getLogger("deepsnow.figures")


def register(sub: argparse._SubParsersAction) -> None:
    p = stage_command(
        sub,
        "figures",
        _figures,
        section="figures",
        help="draw one figure (1-8) as PNG and PDF from the results of the earlier stages",
        description="Figures 1-6 of the paper and two more. 1: test patches and their snow translations "
        "(--test-a --samples); 2: close-up with per-band differences (--test-a --samples); 3: losses, FID, FRD, "
        "CRD per epoch (--losses --metrics); 4: close-up at chosen epochs (--test-a --samples); 5: RF log loss "
        "(--metrics); 6: PCA pair plot (--pca --pca-summary); 7: artifact measures (--test-a --samples "
        "--output-csv); 8: paired truth error beside the unpaired metrics (--metrics --correlations). "
        "Figures 1, 2 and 4 pick their epochs from the given samples files (give all of them).",
    )
    p.add_argument("--figure", required=True, type=int, choices=range(1, 9), metavar="N", help="figure number, 1..8")
    p.add_argument("--outputs", required=True, nargs=2, type=Path, metavar=("PNG", "PDF"), help="output .png and .pdf")
    p.add_argument("--test-a", type=Path, default=None, help="dataset/testA.npz (figures 1, 2, 4, 7)")
    p.add_argument("--samples", nargs="+", type=Path, default=[], help="samples/epoch_NNN.npz files (figures 1, 2, 4, 7)")
    p.add_argument("--losses", type=Path, default=None, help="train/losses.csv (figure 3)")
    p.add_argument("--metrics", type=Path, default=None, help="metrics/metrics.csv (figures 3, 5, 8)")
    p.add_argument("--correlations", type=Path, default=None, help="metrics/correlations.csv (figure 8)")
    p.add_argument("--pca", type=Path, default=None, help="metrics/pca.csv (figure 6)")
    p.add_argument("--pca-summary", type=Path, default=None, help="metrics/pca.json (figure 6)")
    p.add_argument("--output-csv", type=Path, default=None, help="figures/artifacts.csv, the numbers of figure 7")


def _check_outputs(outputs) -> tuple[Path, Path]:
    png, pdf = outputs
    if png.suffix.lower() != ".png" or pdf.suffix.lower() != ".pdf":
        raise DeepsnowError(f"--outputs: expected a .png then a .pdf path, got {png} {pdf}")
    return png, pdf


def _figures(args, params) -> Made:
    from deepsnow.figures.make import make_figure

    import matplotlib

    matplotlib.use("Agg")
    logging.getLogger("fontTools").setLevel(logging.WARNING)  # PDF font subsetting chatter
    png, pdf = _check_outputs(args.outputs)
    if args.output_csv is not None and args.output_csv.suffix.lower() != ".csv":
        raise DeepsnowError(f"--output-csv: expected a .csv path, got {args.output_csv}")
    built = make_figure(
        args.figure,
        params,
        test_a=args.test_a,
        samples=args.samples,
        losses=args.losses,
        metrics=args.metrics,
        correlations=args.correlations,
        pca=args.pca,
        pca_summary=args.pca_summary,
        output_csv=args.output_csv,
    )
    from deepsnow.figures.common import save_figure

    outputs = [png, pdf]
    if built["csv_rows"] is not None:
        from deepsnow.figures.artifact_figure import write_csv

        write_csv(args.output_csv, built["csv_rows"])
        outputs.append(args.output_csv)
    save_figure(built["figure"], png, pdf, int(params["dpi"]))
    log.info("figure %d -> %s", args.figure, ", ".join(map(str, outputs)))
    return Made(outputs, inputs=built["inputs"], extra={"figure": args.figure, **built["extra"]})
