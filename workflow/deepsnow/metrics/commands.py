"""Subcommands ``deepsnow metrics epoch|table|pca|compare``."""

from __future__ import annotations

import argparse
import logging
from typing import Iterator

from deepsnow import DeepsnowError
from deepsnow.commands import Made, command_group, path_options, rgb_options

log = logging.getLogger("deepsnow.metrics")


def register(sub: argparse._SubParsersAction) -> None:
    """FID, FRD, CRD, KID, RF two-sample test and paired errors per epoch; the table; the PCA.

    Metrics on features from 'deepsnow embed'. 'epoch' writes one JSON per epoch, 'table' collects them into
    metrics.csv (+ correlations.csv), 'pca' writes the PCA coordinates for Figure 6."""
    # every subcommand runs the same code: one hash, STAGE_CODE["metrics"]
    command = command_group(sub, "metrics", register.__doc__, section="metrics", code="metrics")
    for add in (_epoch_command, _table_command, _pca_command, _compare_command, _validity_command, _tracking_command, _rank_command):
        add(command)


def _epoch_command(command) -> None:
    p = command("epoch", _epoch, stage="metrics")
    path_options(
        p,
        nargs="+",
        real="real features, one file per extractor (features/real_<extractor>.npz)",
        features="epoch features (features/epoch_NNN_<extractor>.npz), for every extractor used, of one or more epochs",
        outputs="one JSON per epoch, in ascending epoch order",
    )
    path_options(
        p, required=False, nargs="*", default=[], samples="samples/epoch_NNN.npz of the same epochs (for paired errors)"
    )
    path_options(
        p, required=False, truth="dataset/testA.npz holding 'truth_snowfall' and 'truth' (simulator data; paired errors)"
    )
    path_options(
        p, required=False, test_a="dataset/testA.npz (reflectance runs: the real patches of the BtoA spectral columns)",
        test_b="dataset/testB.npz (reflectance runs: the real patches of the AtoB spectral columns)",
    )
    p.add_argument("--mask-params", metavar="JSON|@FILE", default=None,
                   help="the 'mask' config section: its snow rule gives the spectral columns' snow shares")
    p.add_argument("--threads", type=int, default=None, help="parallel RF fits (overrides metrics.n_jobs)")


def _table_command(command) -> None:
    p = command("table", _table, stage="metrics_table")
    path_options(p, nargs="+", epochs="metrics/epoch_NNN.json files")
    path_options(p, output="metrics/metrics.csv")
    path_options(p, required=False, correlations="metrics/correlations.csv (optional)")


def _pca_command(command) -> None:
    p = command("pca", _pca, stage="metrics_pca")
    path_options(p, real="real features of metrics.resnet_extractor")
    path_options(p, nargs="+", features="epoch features of metrics.resnet_extractor")
    path_options(p, output="metrics/pca.csv", summary="metrics/pca.json (explained variance ratios)")


def _compare_command(command) -> None:
    # no config section: it compares the variants' finished tables (the sweep names the groups)
    p = command("compare", _compare, section=None, stage="comparison")
    path_options(p, nargs="+", tables="every variant's metrics/metrics.csv")
    p.add_argument("--variants", nargs="+", required=True, help="the variants' names, in the order of --tables")
    p.add_argument("--groups", nargs="+", required=True, help="each variant's group (variants differing only in gan.seed)")
    path_options(p, required=False, nargs="+", artifacts="every variant's figures/artifacts.csv (checkerboard score), same order")
    path_options(p, required=False, nargs="+", losses="every variant's train/losses.csv (Figure 3's losses), same order")
    path_options(
        p, required=False, nargs="+",
        change="every variant's change/summary.json (the change testbed's AUCs and gap per detector), same order",
    )
    path_options(p, summary="comparison/summary.csv", final="comparison/final.csv")
    path_options(
        p, required=False,
        correlations="comparison/correlations.csv: Spearman's rho of each metric with the paired errors over the variants",
    )


def _validity_command(command) -> None:
    # its own section and code: the ladders embed images (features) and measure them (metrics)
    p = command("validity", _validity, section="validity", stage="validity", code="validity")
    path_options(
        p,
        test_a="dataset/testA.npz (snow-free inputs; 'truth_snowfall' when the simulator wrote it)",
        test_b="dataset/testB.npz (the real snowy test patches)",
        output="metrics/validity.csv",
    )
    path_options(p, nargs="+", real="real features, one file per extractor (features/real_<extractor>.npz)")
    path_options(p, required=False, simcover_weights="simcover.pt the real simcover features were made with")
    p.add_argument("--metrics-params", metavar="JSON|@FILE", default=None, help="the 'metrics' config section")
    p.add_argument("--features-params", metavar="JSON|@FILE", default=None, help="the 'features' config section")
    p.add_argument("--mask-params", metavar="JSON|@FILE", default=None,
                   help="the 'mask' config section (reflectance test sets: its snow rule finds the ladders' snow)")
    rgb_options(p, "reflectance test sets, as the run's features saw them; ")
    p.add_argument("--threads", type=int, default=None, help="torch threads and parallel RF fits (default: the sections')")


def _tracking_command(command) -> None:
    # its own section (bootstrap size and seed), the metrics stage's code
    p = command("tracking", _tracking, section="tracking", stage="tracking", code="metrics")
    path_options(p, table="metrics/metrics.csv (its A->B rows: every unpaired metric and paired_l1 per epoch)")
    path_options(
        p,
        nargs="+",
        real="real features, one file per extractor (features/real_<extractor>.npz)",
        features="every epoch's features (features/epoch_NNN_<extractor>.npz), for every extractor of the table",
        samples="every epoch's samples/epoch_NNN.npz (the generated images of the paired errors)",
    )
    path_options(p, truth="dataset/testA.npz holding 'truth_snowfall' (simulator data)", output="metrics/tracking.csv")
    p.add_argument("--metrics-params", metavar="JSON|@FILE", default=None, help="the 'metrics' config section")
    p.add_argument("--threads", type=int, default=None, help="bootstrap replicates in parallel (default 1)")


def _rank_command(command) -> None:
    # no config section: it reads two finished tables; the validity package's code
    p = command("rank", _rank, section=None, stage="ranking", code="validity")
    path_options(p, validity="metrics/validity.csv (the degradation ladders)", output="metrics/ranking.csv")
    path_options(
        p, required=False,
        tracking="metrics/tracking.csv of a reference run (rho with the paired error across its epochs); optional",
    )


def _epoch(args, params) -> list[Made]:
    """Metrics of one or more epochs, one JSON per epoch.

    Rows AtoB (fake_B vs real B) and BtoA (fake_A vs real A) per epoch. The real features are computed once
    ('deepsnow embed --real-a/--real-b') and reused for every epoch."""
    from deepsnow.metrics.epoch import evaluate_files

    from deepsnow.config import parse_params

    if args.samples and args.truth is None:
        log.info("--samples given without --truth: no paired errors")
    if (args.test_a is None) != (args.test_b is None):
        raise DeepsnowError("--test-a and --test-b go together")
    tests = (args.test_a, args.test_b) if args.test_a is not None else None
    mask = parse_params(args.mask_params, "mask") if tests else None
    summaries = evaluate_files(
        args.real, args.features, args.outputs, params, samples_paths=args.samples, truth_path=args.truth,
        n_jobs=args.threads, test_paths=tests, mask_params=mask,
    )
    return [Made([s["output"]], inputs=s["inputs"], extra={"epoch": s["epoch"]}) for s in summaries]


def _validity(args, params) -> Made:
    """Metric validity: every metric of the run along degradation ladders of known severity.

    A "perfect" translation, degraded step by step (blur, noise, checkerboard, partial translation,
    colour cast, misplaced snow, and on reflectance test sets snow's SWIR raised under unchanged
    visible bands; config validity.ladders and validity.levels), is measured against
    the real snowy test patches with every metric of the metrics table, in two modes: 'half' (one
    half of test B against the other) and, when testA.npz holds 'truth_snowfall', 'truth' (the
    simulator's reachable paired truth against test B). Writes one row per mode, ladder, metric and
    level: the value, its bootstrap 95 % interval, Spearman's rho with the level (sign-corrected:
    positive = the metric says "worse" as the degradation grows) and the sensitivity (the smallest
    level outside level 0's interval). Reflectance test sets are degraded in reflectance and also
    measured in pixels (w1_mean, ndsi_w1, sam_w1, snow_share_gap; truth mode snow_cover_mae,
    snow_iou), with the mask section's snow rule (--mask-params)."""
    import torch

    from deepsnow.config import parse_params
    from deepsnow.validity.run import run_validity

    metrics = parse_params(args.metrics_params, "metrics")
    features = parse_params(args.features_params, "features")
    threads = args.threads if args.threads is not None else features["threads"]
    if threads:
        torch.set_num_threads(int(threads))
    n_jobs = args.threads if args.threads is not None else metrics["n_jobs"]
    paths = {"test_a": args.test_a, "test_b": args.test_b, "real": args.real, "simcover_weights": args.simcover_weights}
    mask = parse_params(args.mask_params, "mask") if args.mask_params is not None else None
    view = {"mask": mask, "rgb": (args.rgb_max, args.rgb_gamma)}
    summary = run_validity(paths, args.output, metrics, params, features, n_jobs, view)
    inputs = [args.test_a, args.test_b, *args.real] + ([args.simcover_weights] if args.simcover_weights else [])
    config = {"validity": params, "metrics": metrics, "features": features} | ({"mask": mask} if mask else {})
    return Made([args.output], inputs=inputs, extra=summary, config=config, section="validity")


def _tracking(args, params) -> Made:
    """How well each metric tracks the paired error across the run's epochs (simulator runs).

    For every unpaired metric of metrics.csv (A->B): Spearman's rho across the epochs with the
    paired L1 to the simulator's truth, sign-corrected (+1: the metric says "worse" exactly when the
    paired error is larger), with a bootstrap 95 % interval over the test patches (tracking.n_bootstrap
    replicates; each recomputes every metric per epoch from the saved features and the paired L1 from
    the per-patch errors), and the epoch the metric would pick (its best value) against the epoch of
    lowest paired L1."""
    from deepsnow.config import parse_params
    from deepsnow.metrics.tracking import run_tracking

    metrics = parse_params(args.metrics_params, "metrics")
    paths = {"table": args.table, "real": args.real, "features": args.features, "samples": args.samples, "truth": args.truth}
    summary = run_tracking(paths, args.output, metrics, params, args.threads)
    inputs = [args.table, *args.real, *args.features, *args.samples, args.truth]
    return Made([args.output], inputs=inputs, extra=summary, config={"tracking": params, "metrics": metrics})


def _rank(args, params) -> Made:
    """Which metric to trust: one row per metric from the ladders and, given, a reference run.

    Per mode of validity.csv: the metric's lowest sign-corrected rho over the ladders (and which
    ladder), the ladders it is strictly monotone on, its median sensitivity; from tracking.csv: its
    rho with the paired error across the epochs, the interval and the regret of the epoch it picks.
    worst_rho, the weakest of that evidence (a metric that does not move counts as rho 0), orders the
    rows. The two tables may come from different runs (e.g. the demo's ladders, the reference run's
    tracking): the provenance records both."""
    from deepsnow.validity.ranking import run_ranking

    summary = run_ranking(args.validity, args.tracking, args.output)
    return Made([args.output], inputs=[args.validity] + ([args.tracking] if args.tracking else []), extra=summary)


def _table(args, params) -> Made:
    """Collect epoch JSONs into metrics.csv and the Spearman correlations with the paired errors."""
    from deepsnow.metrics.table import make_table

    summary = make_table(args.epochs, args.output, args.correlations)
    outs = [args.output] + ([args.correlations] if args.correlations else [])
    return Made(outs, inputs=args.epochs, extra=summary)


def _compare(args, params) -> Made:
    """Mean, standard deviation and n per variant group, epoch, direction and metric; Welch t-tests at the last epoch.

    Reads every variant's metrics.csv (and artifacts.csv, for the checkerboard score, and losses.csv,
    for the per-epoch losses as loss_G/loss_D/loss_cycle/loss_idt per direction, and with --change the change
    testbed's summary.json, for each detector's synthetic and real AUC and their gap) and writes
    comparison/summary.csv and comparison/final.csv (a two-sided Welch t-test between every pair of
    groups per metric), and with --correlations each metric's Spearman rho with the paired errors
    over the variants (pooled over variants and epochs, and across variants per epoch). Groups: the
    variants of a sweep that differ only in gan.seed."""
    from deepsnow.metrics.compare import compare

    summary = compare(
        args.tables, args.variants, args.groups, args.artifacts, args.summary, args.final, args.losses, args.correlations,
        args.change,
    )
    inputs = [*args.tables, *(args.artifacts or []), *(args.losses or []), *(args.change or [])]
    outputs = [args.summary, args.final] + ([args.correlations] if args.correlations else [])
    return Made(outputs, inputs=inputs, extra=summary)


def _pca(args, params) -> Iterator[Made]:
    """PCA (3 components) of real and chosen epochs' ResNet features, for Figure 6.

    Fitted per direction on the real features plus the generated features of metrics.pca_epochs (default:
    the first and last epoch among --features)."""
    from deepsnow.metrics.pca import pca_projection

    summary = pca_projection(args.real, args.features, params, args.output, args.summary)
    yield Made([args.output, args.summary], inputs=[args.real, *args.features], extra=summary)
    if not summary["n_rows"]:
        raise DeepsnowError("PCA wrote no rows")
