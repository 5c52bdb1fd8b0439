"""Sweeps (issue #17): expansion of ``sweep:`` into variants, names, groups, bad input (in-process)."""

from __future__ import annotations

import pytest

from conftest import merge_config, merged_config

from deepsnow import DeepsnowError
from deepsnow.config import validate_config, variants_of
from deepsnow.sweep import group_of, variant_name


def config_with(sweep, **top) -> dict:
    cfg = merged_config("configs/test.yaml")
    return merge_config(cfg, {"sweep": sweep, **top})


def test_two_by_two_sweep_expands_to_four_validated_variants_in_order():
    cfg = validate_config(config_with({"gan.seed": [0, 1], "gan.upsample": ["transpose", "resize_conv"]}))
    variants = variants_of(cfg)
    assert list(variants) == ["seed0-transpose", "seed0-resize_conv", "seed1-transpose", "seed1-resize_conv"]
    v = variants["seed1-resize_conv"]
    assert v["values"] == {"gan.seed": 1, "gan.upsample": "resize_conv"}
    assert v["group"] == "resize_conv"
    assert v["config"]["gan"]["seed"] == 1 and v["config"]["gan"]["upsample"] == "resize_conv"
    assert "sweep" not in v["config"]
    # every other key is the base config's (defaults filled)
    assert v["config"]["data"] == cfg["data"] and v["config"]["gan"]["ngf"] == cfg["gan"]["ngf"]


def test_without_sweep_there_are_no_variants():
    assert variants_of(validate_config(merged_config("configs/test.yaml"))) == {}


def test_names_and_groups_follow_the_documented_rule():
    assert variant_name({"gan.seed": 3, "gan.lr": 0.0002}) == "seed3-lr0.0002"
    assert variant_name({"gan.upsample": "resize_conv", "metrics.paired": False}) == "resize_conv-pairedfalse"
    assert variant_name({"features.extractors": ["inception", "resnet50"]}) == "inception+resnet50"
    assert group_of({"gan.seed": 2}) == "all"
    assert group_of({"gan.seed": 2, "gan.lr": 0.001}) == "lr0.001"


@pytest.mark.parametrize(
    "sweep, top, words",
    [
        ({"data.simulator.seed": [1, 2]}, {}, ["sweep.data.simulator.seed", "shared by every variant"]),
        ({"patches.size": [32, 64]}, {}, ["sweep.patches.size", "cannot be swept"]),
        ({"gan.nope": [1, 2]}, {}, ["sweep.gan.nope", "no such config key"]),
        ({"gan": [1, 2]}, {}, ["sweep.gan", "no such config key"]),
        ({"gan.seed": []}, {}, ["sweep.gan.seed", "non-empty list"]),
        ({"gan.n_epochs": [1, 2]}, {}, ["sweep.gan.n_epochs", "saved epochs"]),
        ({"features.simcover.weights_path": ["a.pt", "b.pt"]}, {}, ["sweep.features.simcover.weights_path", "cannot be swept"]),
        ({"gan.seed": 3}, {}, ["sweep.gan.seed", "non-empty list"]),
        ({"gan.seed": [0, "one"]}, {}, ["gan.seed", "'one' is not of type 'integer'", "sweep variant gan.seed = \"one\""]),
        ({"gan.upsample": ["transpose", "bilinear"]}, {}, ["gan.upsample", "bilinear"]),
        ({"gan.seed": [0, 1, 2], "gan.lr": [0.1, 0.2]}, {"sweep_max": 5}, ["key 'sweep'", "6 variants", "sweep_max = 5"]),
        ({"gan.seed": [0, 0]}, {}, ["both get the name 'seed0'", "gan.seed"]),
        ({"gan.upsample": ["a b", "a/b"]}, {}, ["both get the name 'a_b'", "gan.upsample"]),
        ([1, 2], {}, ["sweep"]),
    ],
)
def test_bad_sweeps_are_refused_naming_the_key(sweep, top, words):
    with pytest.raises(DeepsnowError) as err:
        validate_config(config_with(sweep, **top))
    for word in words:
        assert word in str(err.value)


def test_a_variant_failing_a_cross_section_check_is_refused_before_any_job():
    # crop_size above load_size only in one variant
    with pytest.raises(DeepsnowError, match=r"(?s)sweep variant gan.crop_size = 64.*gan.crop_size.: 64 is larger"):
        validate_config(config_with({"gan.crop_size": [32, 64]}))


# ------------------------------------------------------------------ the comparison (in-process)

import csv
import math
import statistics
from pathlib import Path

import numpy as np
from scipy.stats import ttest_ind

from deepsnow.config import validate_section
from deepsnow.metrics.compare import compare
from deepsnow.metrics.table import TABLE_COLUMNS, write_csv


def write_variant(path: Path, rng, shift: float, epochs=(1, 2)) -> Path:
    rows = [
        {"epoch": e, "direction": d, "fid": 10 + shift + rng.normal(), "rf_logloss_mean": 0.5 + 0.01 * rng.normal(),
         "paired_l1": float("nan") if d == "BtoA" else 0.1 + shift / 100}
        for e in epochs for d in ("AtoB", "BtoA")
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_csv(path, rows, TABLE_COLUMNS)
    return path


def write_artifacts(path: Path, scores: dict[int, float]) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["source", "epoch", "checkerboard_score"])
        w.writeheader()
        w.writerows({"source": "epoch", "epoch": e, "checkerboard_score": s} for e, s in scores.items())
        w.writerow({"source": "truth", "epoch": "", "checkerboard_score": 1.0})
    return path


def read(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_compare_gives_mean_sd_n_per_group_and_welch_tests_between_groups(tmp_path: Path):
    rng = np.random.default_rng(0)
    names = ["seed0-transpose", "seed1-transpose", "seed2-transpose", "seed0-resize_conv", "seed1-resize_conv"]
    groups = ["transpose"] * 3 + ["resize_conv"] * 2
    tables = [write_variant(tmp_path / n / "metrics.csv", rng, 0.0 if g == "transpose" else 5.0) for n, g in zip(names, groups)]
    scores = [{1: 2.0 + i, 2: 1.0 + i / 10} for i in range(5)]
    artifacts = [write_artifacts(tmp_path / n / "artifacts.csv", s) for n, s in zip(names, scores)]
    compare(tables, names, groups, artifacts, tmp_path / "summary.csv", tmp_path / "final.csv")
    summary = {(r["group"], int(r["epoch"]), r["direction"], r["metric"]): r for r in read(tmp_path / "summary.csv")}
    fid = [float(read(t)[2]["fid"]) for t in tables]  # epoch 2, AtoB (rows sorted by epoch, direction)
    row = summary[("transpose", 2, "AtoB", "fid")]
    assert math.isclose(float(row["mean"]), statistics.mean(fid[:3])) and math.isclose(float(row["sd"]), statistics.stdev(fid[:3]))
    assert row["n"] == "3" and row["variants"] == "seed0-transpose seed1-transpose seed2-transpose"
    cb = summary[("resize_conv", 1, "AtoB", "checkerboard_score")]
    assert math.isclose(float(cb["mean"]), 5.5) and math.isclose(float(cb["sd"]), statistics.stdev([5.0, 6.0]))
    assert summary[("resize_conv", 2, "BtoA", "paired_l1")]["n"] == "0"  # not measured: no values, no spread
    final = {(r["direction"], r["metric"]): r for r in read(tmp_path / "final.csv")}
    assert {r["epoch"] for r in final.values()} == {"2"}
    f = final[("AtoB", "fid")]
    assert (f["group_a"], f["group_b"]) == ("resize_conv", "transpose")
    want = ttest_ind(fid[3:], fid[:3], equal_var=False)
    assert math.isclose(float(f["welch_t"]), want.statistic) and math.isclose(float(f["p_value"]), want.pvalue)
    assert math.isclose(float(f["difference"]), statistics.mean(fid[3:]) - statistics.mean(fid[:3]))


def test_compare_refuses_variants_with_different_epochs_or_mismatched_lists(tmp_path: Path):
    rng = np.random.default_rng(1)
    a = write_variant(tmp_path / "a.csv", rng, 0.0, epochs=(1, 2))
    b = write_variant(tmp_path / "b.csv", rng, 0.0, epochs=(1,))
    with pytest.raises(DeepsnowError, match="different epochs"):
        compare([a, b], ["a", "b"], ["all", "all"], None, tmp_path / "s.csv", tmp_path / "f.csv")
    with pytest.raises(DeepsnowError, match="same order"):
        compare([a, b], ["a"], ["all", "all"], None, tmp_path / "s.csv", tmp_path / "f.csv")
    assert not (tmp_path / "s.csv").exists() and not (tmp_path / "f.csv").exists()


def test_figure11_draws_every_group_from_the_summary(tmp_path: Path):
    from deepsnow.figures.table import make_figure

    rng = np.random.default_rng(2)
    names, groups = ["s0-t", "s1-t", "s0-r", "s1-r"], ["t", "t", "r", "r"]
    tables = [write_variant(tmp_path / f"{n}.csv", rng, 0.0) for n in names]
    arts = [write_artifacts(tmp_path / f"{n}-a.csv", {1: 1.0, 2: 2.0}) for n in names]
    compare(tables, names, groups, arts, tmp_path / "summary.csv", tmp_path / "final.csv")
    drawn = make_figure(11, validate_section("figures", {}), comparison_summary=tmp_path / "summary.csv")
    assert drawn.extra == {"groups": ["r", "t"], "variants_per_group": {"r": 2, "t": 2}}
    labels = [t.get_text() for ax in drawn.figure.axes for t in ax.get_xticklabels()]
    # measured here: FID, RF log loss, checkerboard score and paired L1; FRD, CRD, KID are not
    assert labels.count("r") == 4 and labels.count("t") == 4
    assert sum("not measured" in ax.get_title() for ax in drawn.figure.axes) == 3


# ------------------------------------------------------------------ the workflow

from conftest import copy_run, copy_workflow, snakemake  # noqa: E402
from test_workflow import job_counts  # noqa: E402


def test_dry_run_of_a_two_by_two_sweep_plans_four_trainings_on_one_data_half(tmp_path: Path):
    work = copy_workflow(tmp_path / "wf")
    (work / "sweep.yaml").write_text("sweep:\n  gan.seed: [0, 1]\n  gan.upsample: [transpose, resize_conv]\n")
    proc = snakemake(work, "-n", "--configfile", "configs/test.yaml", "sweep.yaml")
    counts = job_counts(proc.stdout + proc.stderr)
    assert counts["train"] == 4 and counts["split"] == 1 and counts["comparison"] == 1
    assert counts["simulate"] == 3 and counts["mask"] == 6 and counts["patches"] == 6  # the data half once
    extractors = merged_config("configs/test.yaml")["features"]["extractors"]
    assert counts["embed_real"] == len(extractors)  # the real embeddings once per extractor: features not swept
    assert counts.get("train_simcover", 0) == ("simcover" in extractors)  # trained once on the shared data
    assert counts["metrics_table"] == 4 and counts["report_pages"] == 4
    out = proc.stdout + proc.stderr
    assert "results/test/comparison/summary.csv" in out and "results/test/comparison/figure11.png" in out
    assert "results/test/variants/seed1-resize_conv/train/losses.csv" in out
    assert "results/test/train/losses.csv" not in out  # no unswept copy


def test_two_seed_sweep_runs_to_its_comparison(test_config_run: Path, tmp_path: Path):
    """The one end-to-end sweep: the test run's data half and real embeddings reused, two 1-epoch trainings."""
    work = copy_run(test_config_run, tmp_path / "run")
    (work / "sweep.yaml").write_text(
        "gan: {n_epochs: 1, n_epochs_decay: 0, keep_every: 1, threads: 1}\n"
        "sweep:\n  gan.seed: [0, 1]\n"
    )
    proc = snakemake(work, "--configfile", "configs/test.yaml", "sweep.yaml", "--", "results/test/comparison/summary.csv")
    counts = job_counts(proc.stdout + proc.stderr)
    assert counts["train"] == 2 and not {"simulate", "split", "embed_real"} & set(counts), counts
    res = work / "results" / "test"
    tables = {v: read(res / "variants" / v / "metrics" / "metrics.csv") for v in ("seed0", "seed1")}
    summary = read(res / "comparison" / "summary.csv")
    for v in tables:  # Figure 7's checkerboard score (A->B) joins the metrics
        tables[v] += [{**r, "direction": "AtoB"} for r in read(res / "variants" / v / "figures" / "artifacts.csv")
                      if r["source"] == "epoch"]
    checked = 0
    for row in summary:
        values = [float(r[row["metric"]]) for t in tables.values() for r in t
                  if r["epoch"] == row["epoch"] and r["direction"] == row["direction"] and r.get(row["metric"], "") != ""]
        assert row["group"] == "all" and int(row["n"]) == len(values)
        if values:
            assert math.isclose(float(row["mean"]), statistics.mean(values), rel_tol=1e-12)
        if len(values) == 2:
            assert math.isclose(float(row["sd"]), statistics.stdev(values), rel_tol=1e-9, abs_tol=1e-15)
            checked += 1
    assert checked >= 10  # FID, FRD, CRD, KID, RF ... in both directions, the checkerboard score
    assert {r["metric"] for r in summary} >= {"fid", "frd", "kid_mean", "rf_logloss_mean", "checkerboard_score"}
